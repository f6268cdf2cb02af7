"""A second, differently shaped funnel (B2B SaaS) runs prepare → train → evaluate → report from its spec alone,
through the installed `nextbest` console script; a bad spec or an export that contradicts it ends with one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_each
from nextbest.data.funnel_spec import load_funnel_spec

NEXTBEST = shutil.which("nextbest") or str(Path(sys.executable).with_name("nextbest"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NEXTBEST, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def b2b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """example → prepare → train (Q-learning, 5k episodes) → evaluate (small bootstrap) → report."""
    root = tmp_path_factory.mktemp("b2b")
    export, spec = root / "example" / "b2b_saas.csv", root / "example" / "b2b_saas.toml"
    steps = [
        ("crm", "example", "--out", str(root / "example"), "--leads", "4000", "--seed", "3"),
        ("crm", "prepare", "--data", str(export), "--spec", str(spec), "--out", str(root / "prep")),
        ("crm", "train", "--data", str(root / "prep"), "--episodes", "5000", "--seed", "1", "--out", str(root / "run")),
        ("crm", "evaluate", "--run", str(root / "run"), "--out", str(root / "eval"), "--bootstrap", "6",
         "--replications", "2"),
        ("crm", "report", "--run", str(root / "run"), "--eval", str(root / "eval"), "--out", str(root / "report.html")),
    ]  # fmt: skip
    run_each(run_cli, steps)
    return root


def test_the_prepared_folder_carries_the_spec(b2b: Path) -> None:
    split = json.loads((b2b / "prep" / "split.json").read_text())
    assert split["funnel"] == "b2b-saas" and split["conversion_step"] == "paid"
    assert load_funnel_spec(b2b / "prep" / "funnel_spec.toml").name == "b2b-saas"
    assert sum(split["rows"].values()) > 3500


def test_evaluation_speaks_the_funnel_of_the_spec(b2b: Path) -> None:
    spec = load_funnel_spec(b2b / "example" / "b2b_saas.toml")
    evaluation = json.loads((b2b / "eval" / "evaluation.json").read_text())
    assert set(evaluation["policies"]) == {"learned", "random", "always_wait", "logged", "rule"}
    assert evaluation["settings"]["action_costs"] == {a.name: a.cost for a in spec.actions}
    assert evaluation["settings"]["subscription_value"] == spec.conversion_value
    steps = [s["step"] for s in evaluation["simulator_calibration"]["steps"]]
    assert steps == [*spec.step_names, "dropped"]
    used = {link["from"] for link in evaluation["action_flows"]["logged"]["links"]}
    assert {"nurture_email", "sdr_call", "demo_invite"} <= used
    for segment in evaluation["top_segments"]:
        assert {"industry", "company_size", "source", "stage"} <= set(segment)
    # the readings assume the B2B company steps offered to fewer leads; its own targets are checked under each
    readings = evaluation["readings"]
    assert list(readings) == ["conservative", "middle", "optimistic"]
    company = {s.name for s in spec.steps if s.taken_by == "company"}
    assert set(readings["optimistic"]["offer_rates"]) <= company and readings["optimistic"]["offer_rates"]
    contacts = {a.name for a in spec.actions if a.offers}
    for reading in readings.values():
        assert set(reading["break_even"]) <= {a.name for a in spec.actions} and set(reading["break_even"]) >= contacts
        assert set(reading["targets"]) == set(evaluation["targets"])
    assert evaluation["calibration"]["in_period"]["within_ci_fraction"] >= 0
    assert evaluation["pilot"]["per_arm"] > 0
    for step in evaluation["simulator_calibration"]["steps"]:
        low, high = step["ci"]
        assert 0 <= low <= high <= 1 and 0 <= step["simulated"] <= 1, step
    who = evaluation["who"]  # the lead score at the B2B funnel's decision points, ranked on its test leads
    assert who["rows"] > who["leads"] > 0 and who["auc_ci"][0] <= who["auc"] <= who["auc_ci"][1]


def test_the_report_names_the_spec_actions(b2b: Path) -> None:
    html = (b2b / "report.html").read_text()
    for name in ("nurture_email", "sdr_call", "trial_extension", "paid", "nurture2"):
        assert name in html, name
    for section in ("the policy under each reading", "Break-even value of each action", "What to do next",
                    "Who to contact"):
        assert section in html, section
    segments = json.loads((b2b / "eval" / "evaluation.json").read_text())["top_segments"]
    assert not segments or ("<th>industry</th>" in html and "<th>company size</th>" in html)


def test_a_bad_spec_ends_with_one_line_naming_the_key(tmp_path: Path, b2b: Path) -> None:
    text = (b2b / "example" / "b2b_saas.toml").read_text().replace("cost = 15.0", "cost = -15.0")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = run_cli("crm", "prepare", "--data", str(b2b / "example" / "b2b_saas.csv"), "--spec", str(bad),
                     "--out", str(tmp_path / "prep"))  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "bad.toml" in result.stderr and "actions[1].cost" in result.stderr


def test_an_export_that_contradicts_the_spec_names_file_and_column(tmp_path: Path, b2b: Path) -> None:
    lines = (b2b / "example" / "b2b_saas.csv").read_text().splitlines()
    export = tmp_path / "renamed.csv"
    export.write_text("\n".join([lines[0].replace("Lead Source", "Channel"), *lines[1:]]) + "\n")
    result = run_cli("crm", "prepare", "--data", str(export), "--spec", str(b2b / "example" / "b2b_saas.toml"),
                     "--out", str(tmp_path / "prep"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "renamed.csv" in result.stderr and "Lead Source" in result.stderr


def test_a_spec_without_its_export_is_a_usage_error(tmp_path: Path, b2b: Path) -> None:
    result = run_cli("crm", "prepare", "--spec", str(b2b / "example" / "b2b_saas.toml"), "--out", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--data" in result.stderr


def test_score_and_pilot_run_on_the_b2b_export(b2b: Path, tmp_path: Path) -> None:
    """`crm score` ranks the B2B open leads with the B2B next action; `crm pilot` designs the B2B pilot (its
    uncertain offer, its conversion step) and names an unknown B2B segment value in one line."""
    export, spec = str(b2b / "example" / "b2b_saas.csv"), str(b2b / "example" / "b2b_saas.toml")
    scored = run_cli("crm", "score", "--prepared", str(b2b / "prep"), "--data", export, "--spec", spec,
                     "--out", str(tmp_path / "leads.csv"))  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    import pandas as pd

    leads = pd.read_csv(tmp_path / "leads.csv")
    actions = {a.name for a in load_funnel_spec(spec).actions}
    assert len(leads) > 0 and set(leads["next_action"].dropna()) <= actions | {"none"}  # none: no company step left
    assert (leads["score"].diff().dropna() <= 1e-12).all() and (leads["score_low"] <= leads["score_high"]).all()
    pilot = run_cli("crm", "pilot", "--prepared", str(b2b / "prep"), "--data", export, "--spec", spec,
                    "--out", str(tmp_path / "pilot.json"), "--budget", "3000")  # fmt: skip
    assert pilot.returncode == 0, pilot.stderr
    design = json.loads((tmp_path / "pilot.json").read_text())
    assert "sql" in design["treatment"] and design["per_arm"] > 0
    bad = run_cli("crm", "pilot", "--prepared", str(b2b / "prep"), "--data", export, "--spec", spec,
                  "--out", str(tmp_path / "p2.json"), "--segment", "industry=Shipbuilding")  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "Shipbuilding" in bad.stderr

"""Report figures and the self-contained CRM HTML report, on small synthetic inputs (no data, no training)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from nextbest.errors import NextbestError
from nextbest.evaluation.crm_results import ActionFlow, Calibration, PolicyMetrics, SensitivityRow
from nextbest.report.crm import write_crm_report
from nextbest.report.figures import (
    action_flow,
    calibration_chart,
    fmt_factor,
    fmt_money,
    fmt_pct,
    policy_comparison,
    sensitivity_chart,
    training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ACTIONS = ("email", "call", "demo", "survey", "wait", "manager")
SECTION_TITLES = (
    "Summary",
    "Business metrics",
    "Improvement over the baselines",
    "Top segments",
    "Training",
    "Policy action flows",
    "Simulator calibration",
    "What the data cannot tell: the policy under each reading",  # a file from before the readings: its sensitivity
    "What to do next",
    "Settings",
    "How to read this / limitations",
)


# ---------------------------------------------------------------------------------------------------------------
# sample-shaped inputs
# ---------------------------------------------------------------------------------------------------------------


def curves(n: int = 12) -> dict:
    return {
        "episodes": [1000 * (i + 1) for i in range(n)],
        "epsilon": [max(0.01, 0.5 * 0.7**i) for i in range(n)],
        "mean_business_value": [20.0 + (i % 4) * 5 for i in range(n)],
        "mean_training_reward": [20.0 + (i % 4) * 5 for i in range(n)],
        "subscription_rate": [0.01 + 0.001 * i for i in range(n)],
        "states": [500 * (i + 1) for i in range(n)],
        "max_abs_delta_q": [10.0 / (i + 1) for i in range(n)],
    }


def metrics(rate: float, value: float, cpa: float | None, roi: float | None) -> dict:
    entry = {
        "subscription_rate": rate,
        "first_call_rate": 2 * rate,
        "cost_per_acquisition": cpa,
        "roi": roi,
        "value_per_lead": value,
    }
    out: dict = {}
    for key, number in entry.items():
        out[key] = number
        out[f"{key}_ci"] = [None, None] if number is None else [number * 0.8 - 0.1, number * 1.2 + 0.1]
    return out


def policies() -> dict:
    return {
        "learned": metrics(0.004, 2.5, 300.0, 2.0),
        "random": metrics(0.003, -50.0, 20000.0, -0.9),
        "always_wait": metrics(0.001, 1.0, None, None),
        "logged": metrics(0.005, -30.0, 9000.0, -0.85),
        "rule": metrics(0.002, -10.0, 7000.0, -0.8),
    }


def small_flow() -> dict:
    links = [
        {"week": 0, "from": "email", "to": "call", "count": 60},
        {"week": 0, "from": "email", "to": "wait", "count": 30},
        {"week": 0, "from": "email", "to": "dropped", "count": 10},
        {"week": 1, "from": "call", "to": "wait", "count": 55},
        {"week": 1, "from": "call", "to": "subscribed", "count": 5},
        {"week": 1, "from": "wait", "to": "wait", "count": 30},
        {"week": 2, "from": "wait", "to": "open", "count": 85},
    ]
    return {"episodes": 100, "horizon": 3, "links": links, "outcomes": {"open": 85, "subscribed": 5, "dropped": 10}}


def dense_flow(weeks: int = 10) -> dict:
    """Every action to every action each week (6 actions × 10 weeks), with a few tiny links."""
    links = []
    for week in range(weeks - 1):
        for i, a in enumerate(ACTIONS):
            for j, b in enumerate(ACTIONS):
                links.append({"week": week, "from": a, "to": b, "count": 1 + ((i * 7 + j * 3 + week) % 40) * 10})
            links.append({"week": week, "from": a, "to": "subscribed", "count": 1})
    for a in ACTIONS:
        links.append({"week": weeks - 1, "from": a, "to": "open", "count": 500})
    total = sum(lk["count"] for lk in links if lk["week"] == 0)
    outcomes = {"open": 3000, "subscribed": 6 * (weeks - 1)}
    return {"episodes": total, "horizon": weeks, "links": links, "outcomes": outcomes}


def calibration() -> dict:
    steps = [
        {"step": "msg1", "simulated": 0.9, "actual": 0.91, "ci": [0.88, 0.92], "within": True},
        {"step": "first_call", "simulated": 0.08, "actual": 0.04, "ci": [0.06, 0.1], "within": False},
        {"step": "subscribed", "simulated": 0.004, "actual": 0.009, "ci": [0.0, 0.008], "within": False},
    ]
    return {"policy": "logged", "interval": "95% interval", "steps": steps, "within_ci_fraction": 1 / 3}


def sensitivity() -> list:
    rows = []
    for rate in (1.0, 0.5, 0.25):
        row: dict = {"call_offer_rate": rate}
        for name, scale in (("learned", 1.0), ("random", 0.8), ("logged", 1.2)):
            row[name] = {
                k: v for k, v in metrics(0.004 * scale / rate, 2.0 * scale, 300.0, 1.0).items() if not k.endswith("_ci")
            }
        rows.append(row)
    return rows


def evaluation() -> dict:
    flows = {name: small_flow() for name in ("learned", "random", "logged", "rule")}
    segment = {
        "education": "B27",
        "country": "India",
        "stage": "new",
        "value_per_lead": 3.3,
        "value_ci": [-1.0, 7.5],
        "episodes": 300,
        "action_sequences": [{"sequence": ["email", "wait"], "share": 0.9}, {"sequence": ["wait"], "share": 0.1}],
    }
    return {
        "policies": policies(),
        "improvement_vs_random": {"metric": "subscription_rate ratio", "factor": 1.33, "ci": [0.8, 2.1]},
        "improvement_vs_logged": {"metric": "subscription_rate ratio", "factor": 0.8, "ci": [0.5, 1.2]},
        "action_flows": flows,
        "top_segments": [segment],
        "simulator_calibration": calibration(),
        "targets": {
            "subscription_rate": {"value": 0.004, "target": ">= 0.01", "met": False},
            "roi": {"value": 2.0, "target": "> 0", "met": True},
        },
        "sensitivity": sensitivity(),
        "settings": {
            "subscription_value": 1000.0,
            "action_costs": {"email": 1.0, "call": 5.0, "demo": 10.0, "survey": 2.0, "wait": 0.0, "manager": 20.0},
            "simulator": {"horizon": 3, "logged_contacts": 7, "days_per_step": 7, "call_offer_rate": 1.0},
            "evaluation": {
                "replications": 2,
                "bootstrap": 10,
                "bootstrap_replications": 1,
                "level": 0.95,
                "segment_min_support": 30,
                "sensitivity_rates": [1.0, 0.5, 0.25],
                "seed": 0,
            },
            "test_leads": 100,
            "train_leads": 400,
        },
    }


def write_inputs(root: Path) -> tuple[Path, Path]:
    run, ev = root / "run", root / "eval"
    run.mkdir()
    ev.mkdir()
    (run / "run.json").write_text(
        json.dumps(
            {"settings": {"agent": "qlearning", "episodes": 12000, "seed": 0}, "data_dir": "/data/prep", "created": 0}
        )
    )
    (run / "training_metrics.json").write_text(json.dumps(curves()))
    (run / "training_metrics_final.json").write_text(
        json.dumps({"agent": "qlearning", "episodes": 12000, "q_table_states": 6000, "epsilon_final": 0.01})
    )
    (ev / "evaluation.json").write_text(json.dumps(evaluation()))
    return run, ev


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000


# ---------------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys",
    [None, ("episodes", "mean_business_value"), ("episodes", "mean_business_value", "epsilon"), ()],
    ids=["qlearning", "ppo", "three-panels", "empty"],
)
def test_training_curves_draws_what_exists(tmp_path: Path, keys: tuple[str, ...] | None) -> None:
    data = curves() if keys is None else {k: v for k, v in curves().items() if k in keys}
    path = training_curves(data, tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    assert_png(path)


def test_training_curves_survive_zeros_and_nones_on_log_panels(tmp_path: Path) -> None:
    data = curves(3) | {"max_abs_delta_q": [0.0, None, 0.0], "epsilon": [0.0, 0.0, 0.0]}
    assert_png(training_curves(data, tmp_path / "curves.png"))


@pytest.mark.parametrize("flow", [small_flow(), dense_flow()], ids=["small", "6-actions-x-10-weeks"])
def test_action_flow_writes_png(tmp_path: Path, flow: dict) -> None:
    path = action_flow(ActionFlow.from_dict(flow), tmp_path / "flow.png", title="learned policy")
    assert_png(path)


def test_action_flow_without_links(tmp_path: Path) -> None:
    empty = ActionFlow.from_dict({"episodes": 0, "horizon": 10, "links": [], "outcomes": {}})
    assert_png(action_flow(empty, tmp_path / "flow.png"))


def test_calibration_chart_writes_png(tmp_path: Path) -> None:
    assert_png(calibration_chart(Calibration.from_dict(calibration()), tmp_path / "calibration.png"))


def test_policy_comparison_skips_undefined_values(tmp_path: Path) -> None:
    typed = {name: PolicyMetrics.from_dict(entry) for name, entry in policies().items()}
    assert_png(policy_comparison(typed, tmp_path / "policies.png"))


def test_sensitivity_chart_writes_png(tmp_path: Path) -> None:
    rows = [SensitivityRow.from_dict(row) for row in sensitivity()]
    assert_png(sensitivity_chart(rows, tmp_path / "sensitivity.png"))


def test_number_formats() -> None:
    assert fmt_pct(0.0011) == "0.11%"
    assert fmt_pct(0.125) == "12.5%"
    assert fmt_money(20143.83) == "$20,144"
    assert fmt_money(-58.117) == "-$58.12"
    assert fmt_factor(0.37) == "0.37×"
    assert fmt_pct(None) == fmt_money(None) == fmt_factor(float("nan")) == "n/a"


# ---------------------------------------------------------------------------------------------------------------
# the HTML report
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The report written once for the module: (inputs root, HTML path, page text)."""
    root = tmp_path_factory.mktemp("report")
    run, ev = write_inputs(root)
    out = root / "site" / "report.html"
    assert write_crm_report(run, ev, out) == out
    return root, out, out.read_text(encoding="utf-8")


def test_crm_report_is_one_self_contained_html(report: tuple[Path, Path, str]) -> None:
    _, out, page = report
    assert [p.name for p in out.parent.glob("*.html")] == ["report.html"]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in page
    assert page.count('src="data:image/png;base64,') >= 7  # curves, comparison, 3 flows, calibration, sensitivity


def test_crm_report_shows_unmet_target_plainly(report: tuple[Path, Path, str]) -> None:
    page = report[2]
    targets = page[page.index("<h3>Targets</h3>") : page.index('<section id="metrics">')]
    row = next(r for r in targets.split("<tr>") if "Subscription rate of the learned policy" in r)
    assert "not met" in row and "0.40%" in row and "≥ 1.0%" in row
    roi = next(r for r in targets.split("<tr>") if "ROI" in r)
    assert ">met<" in roi


def test_crm_report_formats_numbers(report: tuple[Path, Path, str]) -> None:
    page = report[2]
    assert "$20,000" in page  # money with thousands separators
    assert "n/a" in page  # always_wait has no CPA and no ROI
    assert "/data/prep" in page  # data folder in the settings


def test_crm_report_writes_json_with_figure_sources(report: tuple[Path, Path, str]) -> None:
    _, out, _ = report
    summary = json.loads((out.parent / "report.json").read_text())
    keys = {f["name"]: f["key"] for f in summary["figures"]}
    assert keys["calibration"] == "simulator_calibration"
    assert keys["action_flow_learned"] == "action_flows.learned"
    assert all(
        Path(f["png"]).is_file() and Path(f["png"]).parent == out.parent / "report_figures" for f in summary["figures"]
    )
    assert summary["report"] == str(out)
    assert summary["headline"]["targets_met"] == 1 and summary["headline"]["targets_total"] == 2
    assert summary["headline"]["policies"]["learned"]["subscription_rate"] == pytest.approx(0.004)


def test_crm_report_without_optional_sections(tmp_path: Path) -> None:
    run, ev = write_inputs(tmp_path)
    data = evaluation()
    for key in ("sensitivity", "top_segments", "simulator_calibration", "action_flows"):
        del data[key]
    (ev / "evaluation.json").write_text(json.dumps(data))
    (run / "training_metrics.json").write_text("{}")
    page = write_crm_report(run, ev, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "'readings' is missing" in html.unescape(page)
    assert "no training curves" not in page  # the figure says it, the page only embeds it
    assert page.count("data:image/png;base64,") == 2


def test_missing_evaluation_names_the_file(tmp_path: Path) -> None:
    run, ev = write_inputs(tmp_path)
    (ev / "evaluation.json").unlink()
    with pytest.raises(NextbestError, match=r"evaluation\.json"):
        write_crm_report(run, ev, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("evaluation.json", "{not json"),
        ("evaluation.json", "[1, 2]"),
        ("evaluation.json", json.dumps({"targets": {}})),
        ("evaluation.json", json.dumps({"policies": {"learned": 3}})),
        ("run.json", "{oops"),
        ("training_metrics_final.json", "[]"),
    ],
)
def test_malformed_inputs_name_the_file(tmp_path: Path, name: str, content: str) -> None:
    run, ev = write_inputs(tmp_path)
    target = (ev if name == "evaluation.json" else run) / name
    target.write_text(content)
    with pytest.raises(NextbestError, match=re.escape(name)):
        write_crm_report(run, ev, tmp_path / "report.html")


def test_malformed_section_names_the_file(tmp_path: Path) -> None:
    run, ev = write_inputs(tmp_path)
    data = evaluation()
    data["simulator_calibration"]["steps"] = [{"step": "msg1", "simulated": "high", "ci": [0, 1]}]
    (ev / "evaluation.json").write_text(json.dumps(data))
    with pytest.raises(NextbestError, match=r"evaluation\.json.*simulator_calibration"):
        write_crm_report(run, ev, tmp_path / "report.html")


def test_missing_run_file_names_it(tmp_path: Path) -> None:
    run, ev = write_inputs(tmp_path)
    (run / "training_metrics_final.json").unlink()
    with pytest.raises(NextbestError, match=r"training_metrics_final\.json"):
        write_crm_report(run, ev, tmp_path / "report.html")

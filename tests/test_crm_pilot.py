"""The pilot that settles the uncertain offer: its design, its stratified assignment, and `nextbest crm pilot`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.data.funnel_spec import default_funnel_spec
from nextbest.errors import NextbestError
from nextbest.evaluation.crm_pilot import design_pilot, stratified_assignment
from nextbest.experiments import power_binary

NEXTBEST = shutil.which("nextbest") or str(Path(sys.executable).with_name("nextbest"))


def test_the_design_reaches_its_power_and_the_budget_lift_inverts_it() -> None:
    """At the seed's rates (0.44% -> 1.0%) the per-arm size has 80% power, and a budget of exactly two arms
    detects the target's lift; a tiny budget detects nothing."""
    spec = default_funnel_spec()
    design = design_pilot(spec, 0.0044, budget=2 * 3438, leads_per_week=100.0)
    assert design.per_arm == 3438 and design.target_rate == pytest.approx(0.01)
    assert power_binary(design.per_arm, 0.0044, design.lift) >= 0.8
    assert design.detectable_rate_at_budget == pytest.approx(0.01, rel=1e-3)
    assert design.weeks == pytest.approx(design.total / 100.0) and "first_call" in design.treatment
    assert design_pilot(spec, 0.0044, budget=4).detectable_lift_at_budget is None
    with pytest.raises(NextbestError, match="rate must be in"):
        design_pilot(spec, 0.0, budget=100)


def test_the_assignment_splits_every_segment_evenly() -> None:
    segments = np.repeat(["a", "b", "c"], [10, 7, 1])
    arms = stratified_assignment(segments, seed=3)
    for segment in ("a", "b"):
        counts = pd.Series(arms[segments == segment]).value_counts()
        assert abs(counts.get("treatment", 0) - counts.get("control", 0)) <= 1
    assert np.array_equal(arms, stratified_assignment(segments, seed=3))


def test_crm_pilot_writes_the_design_and_refuses_bad_input(prepared_crm, tmp_path: Path) -> None:
    folder = str(prepared_crm.directory)
    ok = subprocess.run([NEXTBEST, "crm", "pilot", "--prepared", folder, "--out", str(tmp_path / "pilot.json"),
                         "--assignments", str(tmp_path / "pilot.csv")], capture_output=True, text=True,
                        timeout=300)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    design = json.loads((tmp_path / "pilot.json").read_text())
    assert design["per_arm"] > 0 and design["weeks"] > 0 and design["detectable_lift_at_budget"] > 0
    leads = pd.read_csv(tmp_path / "pilot.csv")
    assert set(leads["arm"]) == {"treatment", "control"} and len(leads) == design["budget"]
    for args, message in (
        (["--segment", "country=Mars"], "no open lead has country = 'Mars'"),
        (["--segment", "planet=Mars"], "unknown covariate 'planet'"),
        (["--budget", "100"], "a budget of 100 leads cannot detect any lift: 50 leads per arm expect"),
    ):
        bad = subprocess.run([NEXTBEST, "crm", "pilot", "--prepared", folder, "--out", str(tmp_path / "x.json"),
                              *args], capture_output=True, text=True, timeout=300)  # fmt: skip
        assert bad.returncode == 2 and "Traceback" not in bad.stderr and message in bad.stderr, bad.stderr


@pytest.fixture(scope="module")
def platform_service(tmp_path_factory: pytest.TempPathFactory):
    """The experiment platform (`nextbest platform serve`) on 127.0.0.1 over a SQLite file, for this module."""
    from nextbest.stream.services import PlatformService

    directory = tmp_path_factory.mktemp("platform")
    with PlatformService(f"sqlite:///{directory / 'platform.db'}", log_dir=directory) as service:
        yield service


def test_crm_pilot_creates_the_pilot_on_the_platform(prepared_crm, platform_service, tmp_path: Path) -> None:
    """`--platform` creates a binary experiment of the pilot's size and rates, prints its id and token on one line
    and keeps them in pilot.json; the token writes the pilot's conversions, which the platform counts per arm."""
    import httpx

    url = platform_service.url
    run = subprocess.run([NEXTBEST, "crm", "pilot", "--prepared", str(prepared_crm.directory), "--out",
                          str(tmp_path / "pilot.json"), "--assignments", str(tmp_path / "pilot.csv"),
                          "--segment", "country=USA", "--platform", url + "/"], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    design = json.loads((tmp_path / "pilot.json").read_text())
    created = design["platform"]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("platform:")]
    assert f"experiment {created['experiment_id']} on {url}, token {created['token']}" in line
    assert created["url"] == url and created["arms"] == {"treatment": "new", "control": "original"}
    assert created["metric"] == "binary" and created["required_sample_size"] == design["per_arm"]
    experiment = httpx.get(f"{url}/api/experiments/{created['experiment_id']}", timeout=10).json()
    assert experiment["metric"] == "binary" and experiment["sample_size"] == design["per_arm"]
    assert experiment["baseline"] == pytest.approx(design["baseline_rate"])
    assert experiment["effect"] == pytest.approx(design["target_rate"] - design["baseline_rate"])
    assert experiment["alpha"] == design["alpha"] and experiment["alternative"] == "two-sided"
    assert experiment["name"] == created["name"] and "salescrm" in experiment["name"]
    assert "first_call" in experiment["name"] and "[country=USA]" in experiment["name"]
    assert experiment["progress"]["original"] == experiment["progress"]["new"] == 0
    leads = pd.read_csv(tmp_path / "pilot.csv")
    assert (leads["platform_arm"] == leads["arm"].map(created["arms"])).all()
    rows = [{"uuid": str(lead), "arm": arm, "decision": int(arm == "new"), "converted": 0}
            for lead, arm in zip(leads["lead_id"].head(10), leads["platform_arm"].head(10), strict=True)]  # fmt: skip
    token = {"Authorization": f"Bearer {created['token']}"}
    posted = httpx.post(created["conversions"], json=rows, headers=token, timeout=10)
    assert posted.json() == {"accepted": 10, "duplicates": 0}, posted.text
    progress = httpx.get(f"{url}/api/experiments/{created['experiment_id']}", timeout=10).json()["progress"]
    assert progress["original"] + progress["new"] == 10 and progress["new"] == sum(r["arm"] == "new" for r in rows)
    assert httpx.post(created["conversions"], json=rows, headers={"Authorization": "Bearer nope"},
                      timeout=10).status_code == 403  # fmt: skip


def test_crm_pilot_platform_errors_are_one_line(prepared_crm, platform_service, tmp_path: Path) -> None:
    """Unreachable, not a platform, a design it refuses, not a URL: exit 2, one line naming the URL and the
    reason, no traceback, nothing written."""
    folder = str(prepared_crm.directory)
    url = platform_service.url
    cases = (
        (["--platform", "http://127.0.0.1:9"], ["the platform at http://127.0.0.1:9 is unreachable", "refused"]),
        (["--platform", f"{url}/elsewhere"], [f"the platform at {url}/elsewhere: no experiment platform answers"]),
        (["--platform", url, "--power", "0.4"], [f"the platform at {url}: the platform refused POST "
                                                 "/api/experiments: 422", "greater than 0.5"]),
        (["--platform", "127.0.0.1:8000"], ["--platform '127.0.0.1:8000': give the platform's address"]),
    )  # fmt: skip
    for args, messages in cases:
        out = tmp_path / "refused.json"
        bad = subprocess.run([NEXTBEST, "crm", "pilot", "--prepared", folder, "--out", str(out), *args],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1, (args, bad.stderr)
        assert all(message in lines[0] for message in messages), (args, bad.stderr)
        assert "Traceback" not in bad.stderr and not out.exists()

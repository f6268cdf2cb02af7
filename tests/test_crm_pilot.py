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

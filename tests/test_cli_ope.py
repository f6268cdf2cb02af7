"""`nextbest ope run` on a logged-bandit table it has never seen, through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

NEXTBEST = shutil.which("nextbest") or str(Path(sys.executable).with_name("nextbest"))
ACTIONS = ["feed", "mixed", "discount"]
SEGMENTS = ["new", "regular", "loyal"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NEXTBEST, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bandit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """20,000 decisions logged by a known exploring policy; a target policy by segment; its exact value."""
    root = tmp_path_factory.mktemp("ope")
    rng = np.random.default_rng(4)
    n = 20_000
    segment = rng.integers(0, 3, n)
    spend = rng.gamma(2.0, 20.0, n).round(2)
    p_reward = np.array([[0.10, 0.15, 0.25], [0.20, 0.18, 0.12], [0.30, 0.22, 0.15]])  # [segment, action]
    logging = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.34, 0.33, 0.33]])
    action = (rng.random(n)[:, None] < logging[segment].cumsum(axis=1)).argmax(axis=1)
    reward = (rng.random(n) < p_reward[segment, action]).astype(int)
    pd.DataFrame({"segment": np.array(SEGMENTS)[segment], "spend": spend, "strategy": np.array(ACTIONS)[action],
                  "clicked": reward, "p": logging[segment, action]}).to_csv(root / "log.csv", index=False)  # fmt: skip
    target = np.array([[0.0, 0.2, 0.8], [0.8, 0.2, 0.0], [1.0, 0.0, 0.0]])
    rows = [{"segment": s, "strategy": a, "probability": target[i, j]}
            for i, s in enumerate(SEGMENTS) for j, a in enumerate(ACTIONS)]  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "target.csv", index=False)
    shares = np.bincount(segment, minlength=3) / n  # the truth over this log's contexts
    return root, root / "target.csv", float((shares[:, None] * target * p_reward).sum())


def test_ope_run_covers_the_true_value(bandit: tuple[Path, Path, float]) -> None:
    root, target, truth = bandit
    result = run_cli("ope", "run", "--logs", str(root / "log.csv"), "--action-col", "strategy", "--reward-col",
                     "clicked", "--pscore-col", "p", "--policy", str(target), "--out", str(root / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((root / "out" / "ope.json").read_text())
    assert report["actions"] == sorted(ACTIONS) and report["n"] == 20_000 and report["refused"] == {}
    for name in ("ips", "snips", "dr"):
        estimate = report["estimators"][name]
        low, high = estimate["ci"]
        assert low <= truth <= high, (name, estimate, truth)
        assert 0 < estimate["ess"] <= 20_000 and estimate["max_weight"] >= 1
    assert (root / "out" / "ope.png").stat().st_size > 5_000
    assert {e["interval"] for e in report["estimators"].values()} == {"normal"}
    booted = run_cli("ope", "run", "--logs", str(root / "log.csv"), "--action-col", "strategy", "--reward-col",
                     "clicked", "--pscore-col", "p", "--policy", str(target), "--out", str(root / "boot"),
                     "--interval", "bootstrap", "--estimators", "ips,dr")  # fmt: skip
    assert booted.returncode == 0, booted.stderr
    intervals = json.loads((root / "boot" / "ope.json").read_text())["estimators"]
    assert {e["interval"] for e in intervals.values()} == {"bootstrap"} and set(intervals) == {"ips", "dr"}
    assert all(e["ci"][0] <= truth <= e["ci"][1] for e in intervals.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("pscore_zero", "row 2, column 'p': a propensity must be in (0, 1]"),
        ("pscore_above_one", "row 2, column 'p': a propensity must be in (0, 1], got 1.5"),
        ("pscore_missing", "row 2, column 'p': not a number"),
        ("target_sum", "the probabilities of context loyal sum to 0.5, not 1"),
        ("target_unknown", "actions ['popup'] never appear in the log's 'strategy' column"),
        ("no_column", "no column 'p'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(bandit: tuple[Path, Path, float], tmp_path: Path, change: str,
                                          message: str) -> None:  # fmt: skip
    root, target, _ = bandit
    log, policy = pd.read_csv(root / "log.csv"), pd.read_csv(target)
    if change == "pscore_zero":
        log.loc[0, "p"] = 0.0
    elif change == "pscore_above_one":
        log.loc[0, "p"] = 1.5
    elif change == "pscore_missing":
        log.loc[0, "p"] = np.nan
    elif change == "target_sum":
        policy.loc[policy.segment == "loyal", "probability"] = [0.5, 0.0, 0.0]
    elif change == "target_unknown":
        policy.loc[0, "strategy"] = "popup"
    else:
        log = log.drop(columns="p")
    log.to_csv(tmp_path / "log.csv", index=False)
    policy.to_csv(tmp_path / "target.csv", index=False)
    result = run_cli("ope", "run", "--logs", str(tmp_path / "log.csv"), "--action-col", "strategy", "--reward-col",
                     "clicked", "--pscore-col", "p", "--policy", str(tmp_path / "target.csv"), "--out",
                     str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr

"""Strategy effects estimated from exploration logs of the synthetic session world (truth known), and the
session pipeline that builds its simulator from them (`--strategy-log`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cli_helpers import run

from nextbest.envs.sessions import default_session_simulator
from nextbest.errors import DataError
from nextbest.sim.session_sim import STRATEGIES, SessionSimulator
from nextbest.sim.strategy_effects import (
    ESTIMATED,
    TRUE_STRATEGIES,
    StrategyEstimates,
    estimate_strategies,
    explore_pages,
    with_strategies,
)

NEXTBEST = shutil.which("nextbest") or str(Path(sys.executable).with_name("nextbest"))
#: P(strategy | purchase power) of a logging policy that shows poor users far more discounts (feed, mixed, discount).
BY_POWER = np.array([[0.15, 0.25, 0.6]] * 3 + [[0.45, 0.45, 0.1]] * 8)


@pytest.fixture(scope="module")
def world() -> SessionSimulator:
    """The true world: the simulator learned from the synthetic source, with strategies unlike the assumed ones."""
    return with_strategies(default_session_simulator(sessions=5_000, seed=0), TRUE_STRATEGIES)


def _covers(estimates: StrategyEstimates, name: str, key: str) -> bool:
    low, high = estimates.strategies[name].parameters[key].ci
    truth = getattr(TRUE_STRATEGIES[name], key)
    return low - 1e-9 * abs(truth) <= truth <= high + 1e-9 * abs(truth)


def test_exploration_log_is_what_a_shop_logs(world: SessionSimulator) -> None:
    log = explore_pages(world, 300, seed=5)
    assert list(log.columns) == ["session_id", "page_id", "hour", "purchase_power", "strategy", "propensity",
                                 "engagement", "bought", "spend", "done"]  # fmt: skip
    assert np.allclose(log["propensity"], 1 / 3) and set(log["strategy"]) == set(TRUE_STRATEGIES)
    assert log.groupby("session_id").done.sum().eq(1).all() and log.session_id.nunique() == 300
    assert ((log.spend > 0) == (log.bought == 1)).all()
    pd.testing.assert_frame_equal(log, explore_pages(world, 300, seed=5))  # same seed, same log


def test_estimated_intervals_cover_the_true_effects(world: SessionSimulator) -> None:
    """Rule fixed before the first run: over seeds 0-7 (3,000 sessions, 100 replicates each), at least 29 of the
    32 engagement and buy intervals (>= 90%) contain the truth, and every price interval does (the simulator's price
    is deterministic given the purchase power, so its estimate is exact)."""
    covered, prices = [], []
    for seed in range(8):
        estimates = estimate_strategies(explore_pages(world, 3_000, seed=seed), STRATEGIES, "mixed", n_boot=100,
                                        seed=seed)  # fmt: skip
        for name in ("feed", "discount"):
            covered += [_covers(estimates, name, key) for key in ("engagement", "buy")]
            prices.append(_covers(estimates, name, "price"))
    assert sum(covered) >= 29, f"{sum(covered)}/32 intervals cover"
    assert all(prices)
    # what the simulator gets: estimates where estimated, the assumed power sensitivity and fatigue elsewhere
    simulated = estimates.to_strategies()
    assert simulated["discount"].fatigue == STRATEGIES["discount"].fatigue and simulated["mixed"].buy == 1.0
    statuses = {key: p.status for key, p in estimates.strategies["feed"].parameters.items()}
    assert statuses == {"engagement": "estimated", "buy": "estimated", "price": "estimated",
                        "power_sensitivity": "assumed", "fatigue": "assumed"}  # fmt: skip


def test_propensities_matter_when_the_logging_policy_favours_some_users(world: SessionSimulator) -> None:
    """Discounts shown mostly to poor users (who engage less): ignoring the propensities makes discount pages look
    less engaging than they are; weighting by 1 / propensity recovers the truth."""
    for seed in (11, 12):
        log = explore_pages(world, 3_000, seed=seed, probabilities=BY_POWER)
        weighted = estimate_strategies(log, STRATEGIES, "mixed", n_boot=100, seed=seed)
        ignored = estimate_strategies(log.assign(propensity=1 / 3), STRATEGIES, "mixed", n_boot=100, seed=seed)
        assert all(_covers(weighted, name, key) for name in ("feed", "discount") for key in ESTIMATED)
        assert not _covers(ignored, "discount", "engagement")
        truth = TRUE_STRATEGIES["discount"].engagement
        assert ignored.strategies["discount"].parameters["engagement"].value < truth - 0.05


def test_same_seed_same_estimates(world: SessionSimulator) -> None:
    log = explore_pages(world, 500, seed=3)
    first = estimate_strategies(log, STRATEGIES, "mixed", n_boot=20, seed=4)
    assert first == estimate_strategies(log.sample(frac=1.0, random_state=1), STRATEGIES, "mixed", n_boot=20, seed=4)


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda log: log.drop(columns="propensity"), "missing column(s) 'propensity'"),
     (lambda log: log.assign(propensity=log.propensity.where(log.index != 4, 0.0)), "column 'propensity', row 5"),
     (lambda log: log.assign(propensity=log.propensity.where(log.index != 2, np.nan)), "column 'propensity', row 3"),
     (lambda log: log.assign(strategy=log.strategy.where(log.index != 0, "flash")), "unknown strategy 'flash'"),
     (lambda log: log[log.strategy != "feed"], "'feed' never logged")],
)  # fmt: skip
def test_bad_logs_are_data_errors_naming_the_column(world: SessionSimulator, change, message: str) -> None:
    log = explore_pages(world, 200, seed=1)
    with pytest.raises(DataError) as error:
        estimate_strategies(change(log), STRATEGIES, "mixed", n_boot=5)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pipeline_builds_its_simulator_from_the_estimates(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_path = tmp_path / "explore" / "log.parquet"
    code, out, err = run(capsys, monkeypatch, "sessions", "explore", "--out", str(log_path), "--sessions", "1500")
    assert code == 0, err
    written = json.loads(out)
    truth = json.loads(Path(written["truth"]).read_text())
    assert truth["discount"]["buy"] == TRUE_STRATEGIES["discount"].buy and written["pages"] > 1500
    code, out, err = run(capsys, monkeypatch, "sessions", "pipeline", "--lake", str(tmp_path / "lake"), "--out",
                         str(tmp_path / "run"), "--sessions", "500", "--q-episodes", "2000", "--ppo-timesteps", "0",
                         "--eval-sessions", "1000", "--strategy-log", str(log_path))  # fmt: skip
    assert code == 0, err
    run_dir = tmp_path / "run"
    estimates = StrategyEstimates.load(run_dir / "agent" / "strategy_estimates.json")
    described = json.loads((run_dir / "agent" / "agent.json").read_text())["strategies"]
    assert described["strategies"] == {name: s.to_dict() for name, s in estimates.to_strategies().items()}
    assert described["strategies"]["discount"]["buy"] != STRATEGIES["discount"].buy
    for name, entry in estimates.strategies.items():
        for key, parameter in entry.parameters.items():
            assert described["sources"][name][key] == {"status": parameter.status, "ci": parameter.ci}
    assert described["strategy_log"]["sessions"] == 1500 and described["strategy_log"]["path"] == str(log_path)
    html = (run_dir / "report.html").read_text()
    assert "estimated from an exploration log" in html and "assumed" in html
    report = json.loads((run_dir / "report.json").read_text())
    assert report["headline"]["strategy_effects"]["discount"]["buy"] == "estimated"


def _nextbest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NEXTBEST, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("rows", "message"),
    [([{}, {"session_id": 1}], "missing column(s) 'hour'"),
     ([{}, {"session_id": 1, "propensity": 1.5}], "column 'propensity', row 2: 1.5 is not a probability"),
     ([{}, {"session_id": 1, "strategy": "flash sale"}], "column 'strategy', row 2: unknown strategy 'flash sale'"),
     ([{"strategy": "feed"}, {"strategy": "feed", "page_id": 2}], "'mixed', 'discount' never logged")],
)  # fmt: skip
def test_bad_strategy_logs_through_the_installed_cli_exit_2_with_one_line(
    rows: list[dict], message: str, tmp_path: Path
) -> None:
    page = {"session_id": 0, "page_id": 1, "hour": 20, "purchase_power": 3, "strategy": "mixed", "propensity": 0.5,
            "engagement": 4, "bought": 0, "spend": 0.0, "done": 0}  # fmt: skip
    table = pd.DataFrame([{**page, **row} for row in rows])
    if "hour" in message:
        table = table.drop(columns=["hour", "engagement"])
    table.to_csv(tmp_path / "bad.csv", index=False)
    result = _nextbest("sessions", "pipeline", "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "run"),
                       "--strategy-log", str(tmp_path / "bad.csv"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "bad.csv" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "pipeline.json").exists()

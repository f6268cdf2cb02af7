"""`nextbest demo loop` end to end on loopback (broker, worker, platform, shop traffic), through the console
script: the exploring worker's log reaches the lake, the candidates are estimated, the chosen one is A/B tested,
and `nextbest ope run` reads the same decision log with a model file as the target policy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nextbest.models.export import export_model
from nextbest.models.targeting import train_targeting
from nextbest.sim.shop import World, write_world_data

pytestmark = pytest.mark.kafka
NEXTBEST = shutil.which("nextbest") or str(Path(sys.executable).with_name("nextbest"))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shop world and its current model (gbm, ONNX) where `demo loop --shop` expects them."""
    folder = tmp_path_factory.mktemp("shop")
    write_world_data(World(11, eval_customers=5_000), folder / "data", customers=20_000)
    export_model(train_targeting(folder / "data", "gbm"), folder / "models" / "gbm.onnx", "onnx")
    return folder


def test_the_loop_runs_from_exploration_to_a_verdict(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "loop"
    run = subprocess.run([NEXTBEST, "demo", "loop", "--out", str(out), "--shop", str(shop), "--log-sessions", "4000",
                          "--rate", "4000", "--explore", "epsilon:0.3"], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((out / "loop.json").read_text())
    collected = result["collected"]
    assert collected["join"]["joined"] == result["rows_logged"] == collected["rows_total"]
    assert result["rows_logged"] >= 3_990 and collected["dead_lettered"] == 0  # every served session logged
    log = pd.read_parquet(result["files"]["decision_log"])
    assert set(log["propensity"].round(6)) == {0.85, 0.15} and log["uuid"].is_unique
    assert log["policy"].str.endswith("/epsilon:0.3").all()
    choice = result["choice"]
    assert set(choice["candidates"]) == {"learned", "current", "original", "show_all", "show_none"}
    assert choice["rows_evaluated"] == result["rows_logged"] - result["rows_learned"]
    chosen = choice["chosen"]
    dr = {name: c["value"]["dr"]["estimate"] for name, c in choice["candidates"].items()}
    assert dr[chosen] == max(dr.values())
    comparison = result["comparison"]
    assert comparison["policy"] == chosen
    assert comparison["true_effect"] == pytest.approx(result["true_value"][chosen] - result["true_value"]["original"])
    if chosen in ("learned", "current"):
        assert result["ab"]["verdict"] and comparison["ab_ci"][0] <= comparison["ab_effect"] <= comparison["ab_ci"][1]
    assert "A/B" in run.stdout and "chosen:" in run.stdout
    assert "OPE vs A/B vs truth" in (out / "loop.html").read_text()

    ope = subprocess.run([NEXTBEST, "ope", "run", "--logs", result["files"]["decision_log"], "--action-col", "action",
                          "--reward-col", "reward", "--pscore-col", "propensity", "--policy",
                          str(shop / "models" / "gbm.onnx"), "--out", str(tmp_path / "ope")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert ope.returncode == 0, ope.stderr
    report = json.loads((tmp_path / "ope" / "ope.json").read_text())
    assert report["n"] == result["rows_logged"] and all(f.startswith("ctx_") for f in report["features"])
    truth = result["true_value"]["current"]
    for name in ("ips", "snips", "dr"):
        low, high = report["estimators"][name]["ci"]
        assert low <= truth <= high, (name, report["estimators"][name], truth)

    learned = tmp_path / "learned.onnx"
    learn = subprocess.run([NEXTBEST, "ope", "learn", "--logs", result["files"]["decision_log"], "--like",
                            str(shop / "models" / "gbm.onnx"), "--out", str(learned)], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    assert learn.returncode == 0, learn.stderr
    estimate = json.loads(learned.with_name("learned.onnx.learn.json").read_text())
    assert set(estimate["candidates"]) == {"learned", "serving"} and estimate["control"] == "serving"
    assert learned.is_file() and learned.with_name("learned.onnx.json").is_file()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "not_a_log.csv", index=False)
    bad = subprocess.run([NEXTBEST, "ope", "learn", "--logs", str(tmp_path / "not_a_log.csv"), "--like",
                          str(shop / "models" / "gbm.onnx"), "--out", str(learned)], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "not a decision log (no column 'action'" in bad.stderr


def test_the_loop_can_test_against_the_policy_that_logged(shop: Path, tmp_path: Path) -> None:
    """--control logged: the logging policy (current model, exploring as it did) is a candidate with its exact
    probabilities and serves the A/B's control arm through a second worker."""
    out = tmp_path / "loop"
    run = subprocess.run([NEXTBEST, "demo", "loop", "--out", str(out), "--shop", str(shop), "--log-sessions", "4000",
                          "--rate", "4000", "--control", "logged", "--seed", "1"], capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((out / "loop.json").read_text())
    choice = result["choice"]
    assert choice["control"] == "logged" and result["settings"]["control"] == "logged"
    logged = choice["candidates"]["logged"]
    assert logged["value"]["ips"]["max_weight"] == pytest.approx(1.0)  # the log's own policy: every weight is 1
    assert logged["value"]["ips"]["estimate"] == pytest.approx(logged["value"]["snips"]["estimate"])
    assert result["true_effect"]["logged"] == 0.0
    if choice["chosen"] in ("learned", "current"):
        control = json.loads((out / "logs" / "control" / "worker-metrics.json").read_text())
        assert control["decided"] > 0 and result["ab"]["verdict"]
    bad = subprocess.run([NEXTBEST, "demo", "loop", "--out", str(tmp_path / "x"), "--control", "rule"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "--control 'rule': choose original or logged" in bad.stderr

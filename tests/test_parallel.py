"""One executor for parallel work (``nextbest.parallel``): the same seed gives the same numbers serially, on local
worker processes and on a real two-node Ray cluster on loopback (started and stopped here); bad addresses and
worker counts end in one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nextbest.agents.baselines import BASELINES, make_baseline
from nextbest.agents.qlearning import QLearningAgent, QLearningConfig
from nextbest.errors import NextbestError
from nextbest.evaluation.crm import EvaluationConfig, evaluate_crm
from nextbest.parallel import SERIAL, LocalExecutor, chunks, local_ray_cluster, make_executor
from nextbest.stream._process import free_port

NEXTBEST = str(Path(sys.executable).with_name("nextbest"))


def _seeded_draw(offset: int, seed: int) -> float:
    return float(np.random.default_rng(seed).normal() + offset)


def test_chunks_cover_every_task_once_in_order() -> None:
    for n_tasks, n_chunks in [(10, 3), (3, 8), (1, 1), (200, 8), (7, 7)]:
        parts = chunks(n_tasks, n_chunks)
        assert [i for part in parts for i in part] == list(range(n_tasks))
        assert len(parts) == min(n_tasks, n_chunks) and min(len(p) for p in parts) >= 1
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_local_workers_return_the_serial_results_in_order() -> None:
    seeds = list(range(40))
    ticks: list[int] = []
    serial = SERIAL.map(_seeded_draw, seeds, 100)
    local = LocalExecutor(2).map(_seeded_draw, seeds, 100, progress=ticks.append)
    assert local == serial and sum(ticks) == len(seeds)
    big = np.zeros(400_000)  # 3.2 MB: joblib would hand it to workers as a read-only memory map by default
    assert LocalExecutor(2).map(lambda c, t: c.__setitem__(t, 1.0) or float(c.sum()), [0, 1, 2], big) == [1.0] * 3
    closure_offset = 5
    assert LocalExecutor(2).map(lambda c, s: s + c + closure_offset, [1, 2, 3], 10) == [16, 17, 18]


def test_bad_executor_settings_are_one_line_errors() -> None:
    with pytest.raises(NextbestError, match="at least 1"):
        make_executor(0)
    with pytest.raises(NextbestError, match="HOST:PORT"):
        make_executor(ray_address="nowhere")
    with pytest.raises(NextbestError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+"):
        make_executor(ray_address=f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize("args", [["--ray-address", "127.0.0.1:{port}"], ["--workers", "0"]])
def test_cli_rejects_an_unreachable_cluster_or_no_workers_with_exit_2(args, tmp_path) -> None:
    args = [a.format(port=free_port()) for a in args]
    done = subprocess.run([NEXTBEST, "crm", "evaluate", "--run", str(tmp_path), "--out", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    message = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    assert len(message) <= 4 and ("Ray cluster" in done.stderr + done.stdout or "workers" in done.stderr + done.stdout)


def test_ope_coverage_study_is_the_same_on_local_workers() -> None:
    from nextbest.evaluation.ope_coverage import coverage_study
    from nextbest.sim.shop import World

    serial = coverage_study(World(0), repetitions=4, customers=2_000, n_boot=50, seed=1)
    parallel = coverage_study(World(0), repetitions=4, customers=2_000, n_boot=50, seed=1, executor=LocalExecutor(2))
    assert parallel.to_dict() == serial.to_dict()
    assert serial.estimators["dr"].intervals == 4 * len(serial.truths)


@pytest.fixture(scope="module")
def crm_inputs(prepared_crm):
    from nextbest.sim import journeys_from_frame, simulator_from_frame

    sim = simulator_from_frame(prepared_crm.train)
    train = journeys_from_frame(prepared_crm.train)
    test = journeys_from_frame(prepared_crm.test)
    agent = QLearningAgent(sim, QLearningConfig(seed=0))
    agent.train(train, 4000)
    policies = {"learned": agent, **{name: make_baseline(name, sim.config) for name in BASELINES}}

    def retrain(variant):
        fresh = QLearningAgent(variant, QLearningConfig(seed=0))
        fresh.train(train, 1000)
        return fresh

    return sim, train, test, policies, retrain


def _evaluate(crm_inputs, executor) -> dict:
    sim, train, test, policies, retrain = crm_inputs
    config = EvaluationConfig(replications=2, bootstrap=8, value_multiples=(1.0, 5.0, 20.0), seed=3)
    result = evaluate_crm(sim, train, test, policies, config, retrain=retrain, executor=executor).to_dict()
    return result


@pytest.fixture(scope="module")
def serial_evaluation(crm_inputs) -> dict:
    return _evaluate(crm_inputs, SERIAL)


def test_crm_evaluation_on_local_workers_equals_the_serial_one(crm_inputs, serial_evaluation) -> None:
    parallel = _evaluate(crm_inputs, LocalExecutor(2))
    assert parallel == serial_evaluation
    assert serial_evaluation["readings"]["middle"]["value_sensitivity"][2]["subscription_value"] > 0


@pytest.mark.ray
def test_crm_evaluation_on_a_two_node_ray_cluster_equals_the_serial_one(crm_inputs, serial_evaluation) -> None:
    with local_ray_cluster(nodes=2) as address:
        executor = make_executor(ray_address=address)
        try:
            assert executor.workers == 2 and "2 nodes" in executor.describe()
            import ray

            @ray.remote(num_cpus=1)
            def node() -> str:
                time.sleep(1.0)
                return ray.get_runtime_context().get_node_id()

            # Two one-CPU tasks at once on two one-CPU nodes: they can only run on different nodes.
            assert len(set(ray.get([node.remote() for _ in range(2)]))) == 2
            on_ray = _evaluate(crm_inputs, executor)
        finally:
            executor.close()
    assert on_ray == serial_evaluation


@pytest.mark.parametrize("agent, episodes", [("qlearning", 3000), pytest.param("ppo", 600, marks=pytest.mark.rl)])
def test_seeds_on_local_workers_are_the_runs_each_seed_gives_alone(prepared_crm, tmp_path, agent, episodes) -> None:
    from dataclasses import replace

    from nextbest.agents.runs import RunSettings, train_run, train_seeds

    settings = RunSettings(agent=agent, episodes=episodes, seed=0)
    result = train_seeds(prepared_crm, settings, tmp_path / "seeds", [4, 5], LocalExecutor(2))
    alone = train_run(prepared_crm, replace(settings, seed=5), tmp_path / "alone")
    curves = json.loads((tmp_path / "alone" / "training_metrics.json").read_text())
    assert json.loads((tmp_path / "seeds" / "seed-5" / "training_metrics.json").read_text()) == curves
    assert result.final_business_value[1] == curves["mean_business_value"][-1]
    assert result.runs[1].episodes == alone.episodes == episodes
    assert result.sd_final_business_value is not None and result.sd_final_business_value >= 0
    saved = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    assert saved["seeds"] == [4, 5] and saved["mean_final_business_value"] == pytest.approx(
        float(np.mean(result.final_business_value)))
    if agent == "qlearning":
        seeded, single = tmp_path / "seeds" / "seed-5" / "policy.npz", tmp_path / "alone" / "policy.npz"
        with np.load(seeded) as a, np.load(single) as b:
            assert all(np.array_equal(a[key], b[key]) for key in b.files)


def test_crm_train_seeds_cli(prepared_crm, tmp_path, capsys, monkeypatch) -> None:
    from cli_helpers import run

    out = tmp_path / "run"
    args = ["crm", "train", "--out", str(out), "--data", str(prepared_crm.directory), "--episodes", "1000"]
    code, stdout, err = run(capsys, monkeypatch, *args, "--seeds", "2", "--workers", "2", "--seed", "7")
    assert code == 0, err
    assert json.loads((out / "seeds.json").read_text())["seeds"] == [7, 8] and "over 2 seeds" in stdout
    assert (out / "seed-8" / "training_curves.png").is_file() and (out / "seed-7" / "policy.npz").is_file()
    code, _, err = run(capsys, monkeypatch, *args, "--seeds", "2", "--resume")
    assert code == 2 and "--resume" in err

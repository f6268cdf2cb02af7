"""MLflow tracking (``--mlflow URI``) against a real ``mlflow server`` on loopback with a SQLite backend, started
and stopped here: each tracked command's run holds its settings, every figure of its JSON as a metric, its
artifacts, and (target train) the ONNX export registered; a dead server is one line and exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import run
from nextbest.sim.shop import World, write_world_data
from nextbest.stream._process import free_port
from nextbest.tracking import flatten_numbers, flatten_params

pytestmark = pytest.mark.mlflow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` with a SQLite store and local artifacts (proxied), on a free loopback port."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=(root / "server.log").open("w"), start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(uri + "/health", timeout=2):
                    break
            except OSError as error:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (root / "server.log").read_text()[-3000:]
                    raise RuntimeError(f"mlflow server did not start:\n{log}") from error
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def client(mlflow_server: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=mlflow_server)


def _latest_run(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    assert runs and runs[0].info.status == "FINISHED"
    return runs[0]


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    names = set()
    for item in client.list_artifacts(run_id, path):
        names.add(item.path)
        if item.is_dir:
            names |= _artifacts(client, run_id, item.path)
    return names


def _assert_metrics_are_the_json(recorded: dict[str, float], payload: dict, prefix: str = "") -> None:
    expected = flatten_numbers(payload, f"{prefix}." if prefix else "")
    assert expected, "the JSON has figures"
    missing = {k: v for k, v in expected.items() if k not in recorded}
    assert not missing, list(missing)[:5]
    wrong = {k: (v, recorded[k]) for k, v in expected.items() if recorded[k] != pytest.approx(v, rel=1e-12)}
    assert not wrong, list(wrong.items())[:5]


def test_flattening_names_every_number_by_its_path() -> None:
    payload = {"a": {"b": 1, "ci": [0.5, None, float("nan")], "ok": True, "name": "x"}, "c d/é": 2.5}
    assert flatten_numbers(payload) == {"a.b": 1.0, "a.ci.0": 0.5, "c d/_": 2.5}
    assert flatten_params({"x": {"y": 1, "z": {}}, "w": [1, 2]}) == {"x.y": "1", "x.z": "{}", "w": "[1, 2]"}


def test_target_train_and_evaluate_are_tracked_and_the_onnx_model_registered(
    mlflow_server, client, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "shop"
    write_world_data(World(3, eval_customers=20_000), data, customers=8_000)
    model = tmp_path / "logreg.pkl"
    code, stdout, err = run(capsys, monkeypatch, "target", "train", "--data", str(data), "--model", "logreg",
                            "--out", str(model), "--mlflow", mlflow_server)  # fmt: skip
    assert code == 0, err
    trained = _latest_run(client, "nextbest-targeting")
    assert trained.data.params["model"] == "logreg" and trained.data.params["seed"] == "0"
    _assert_metrics_are_the_json(trained.data.metrics, {"validation": json.loads(stdout)["validation"]})
    assert {"logreg.pkl", "model.onnx.json"} <= _artifacts(client, trained.info.run_id)
    versions = client.search_model_versions("name='nextbest-target-logreg'")
    assert len(versions) == 1 and versions[0].run_id == trained.info.run_id
    import mlflow

    source = client.get_model_version_download_uri("nextbest-target-logreg", versions[0].version)
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / "registered"),
                                                         tracking_uri=mlflow_server))  # fmt: skip
    assert "onnx:" in (model_dir / "MLmodel").read_text() and (model_dir / "model.onnx").stat().st_size > 100

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the environment variable alone turns tracking on
    code, _, err = run(capsys, monkeypatch, "target", "evaluate", "--model", str(model), "--out",
                       str(tmp_path / "eval.json"))  # fmt: skip
    assert code == 0, err
    evaluated = _latest_run(client, "nextbest-targeting")
    assert evaluated.info.run_id != trained.info.run_id
    _assert_metrics_are_the_json(evaluated.data.metrics, json.loads((tmp_path / "eval.json").read_text()))
    assert "eval.json" in _artifacts(client, evaluated.info.run_id)


def test_crm_train_and_evaluate_are_tracked(
    mlflow_server, client, prepared_crm, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    run_dir, eval_dir = tmp_path / "run", tmp_path / "eval"
    code, _, err = run(capsys, monkeypatch, "crm", "train", "--out", str(run_dir), "--data",
                       str(prepared_crm.directory), "--episodes", "2000", "--mlflow", mlflow_server)  # fmt: skip
    assert code == 0, err
    trained = _latest_run(client, "nextbest-crm")
    assert trained.data.params["agent"] == "qlearning" and trained.data.params["episodes"] == "2000"
    _assert_metrics_are_the_json(trained.data.metrics,
                                 json.loads((run_dir / "training_metrics_final.json").read_text()))  # fmt: skip
    assert {"training_metrics_final.json", "training_curves.png"} <= _artifacts(client, trained.info.run_id)
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the run does not leave MLflow's URI to later commands
    code, _, err = run(capsys, monkeypatch, "crm", "evaluate", "--run", str(run_dir), "--out", str(eval_dir),
                       "--bootstrap", "3", "--replications", "1", "--fit-window", "0", "--no-readings",
                       "--mlflow", mlflow_server)  # fmt: skip
    assert code == 0, err
    evaluated = _latest_run(client, "nextbest-crm")
    assert evaluated.data.params["bootstrap"] == "3" and evaluated.data.params["executor"] == "serial"
    _assert_metrics_are_the_json(evaluated.data.metrics, json.loads((eval_dir / "evaluation.json").read_text()))
    assert "evaluation.json" in _artifacts(client, evaluated.info.run_id)


def test_ope_run_and_sessions_pipeline_are_tracked(
    mlflow_server, client, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 3_000
    segment = rng.integers(0, 2, n)
    action = rng.integers(0, 2, n)
    pd.DataFrame({"segment": segment, "action": action, "reward": rng.random(n) < 0.2 + 0.1 * action * segment,
                  "p": 0.5}).to_csv(tmp_path / "log.csv", index=False)  # fmt: skip
    pd.DataFrame({"segment": [0, 0, 1, 1], "action": [0, 1, 0, 1], "probability": [1.0, 0.0, 0.0, 1.0]}).to_csv(
        tmp_path / "t.csv", index=False)  # fmt: skip
    code, _, err = run(capsys, monkeypatch, "ope", "run", "--logs", str(tmp_path / "log.csv"), "--action-col",
                       "action", "--reward-col", "reward", "--pscore-col", "p", "--policy", str(tmp_path / "t.csv"),
                       "--out", str(tmp_path / "ope"), "--mlflow", mlflow_server)  # fmt: skip
    assert code == 0, err
    ope = _latest_run(client, "nextbest-ope")
    _assert_metrics_are_the_json(ope.data.metrics, json.loads((tmp_path / "ope" / "ope.json").read_text()))
    assert {"ope.json", "ope.png"} <= _artifacts(client, ope.info.run_id)

    out = tmp_path / "sessions"
    code, _, err = run(capsys, monkeypatch, "sessions", "pipeline", "--source", "synthetic", "--sessions", "300",
                       "--lake", str(tmp_path / "lake"), "--out", str(out), "--q-episodes", "2000",
                       "--ppo-timesteps", "0", "--eval-sessions", "500", "--mlflow", mlflow_server)  # fmt: skip
    assert code == 0, err
    pipeline = _latest_run(client, "nextbest-sessions")
    assert pipeline.data.params["source"] == "synthetic" and pipeline.data.params["sessions"] == "300"
    _assert_metrics_are_the_json(pipeline.data.metrics, json.loads((out / "agent" / "agent.json").read_text()),
                                 "agent")  # fmt: skip
    assert {"report.html", "agent/agent.json", "models.json"} <= _artifacts(client, pipeline.info.run_id)


@pytest.mark.parametrize("command", [["target", "evaluate", "--model", "m.pkl", "--out", "e.json"],
                                     ["crm", "evaluate", "--run", "r", "--out", "e"]])  # fmt: skip
def test_an_unreachable_server_is_one_line_and_exit_2(command: list[str], tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run([str(BIN / "nextbest"), *command, "--mlflow", uri], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in output
    assert f"cannot reach the MLflow tracking server at {uri}" in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1

"""The Airflow DAG ``nextbest_sessions`` (``nextbest/pipelines/airflow_dag.py``), run by a real Apache Airflow: it
parses in a DagBag with the six steps chained in order, and ``airflow dags test`` on the synthetic source runs every
task to success and writes the pipeline's outputs.

Airflow pins much of the web stack, so it lives in its own virtualenv, ``.venv-airflow`` (``make airflow-venv``,
from ``requirements-airflow.lock``; ``make test`` builds it). These tests run in the main venv and drive Airflow
through that venv's ``python`` and ``airflow`` commands, with ``AIRFLOW_HOME`` (its SQLite metadata database and
logs) in a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from nextbest.pipelines.sessions import STEPS, default_params

pytestmark = pytest.mark.airflow

DAG_ID = "nextbest_sessions"
ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_VENV = ROOT / ".venv-airflow"

# Runs in the Airflow venv: Airflow's DagBag over a DAG folder; prints what the test checks as one JSON line.
PARSE_DAG = """\
import json
import sys

import airflow
import nextbest
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])  # (Airflow 3.3 never loads its examples here)
dag = bag.dags.get(sys.argv[2])  # (not bag.get_dag: in Airflow 3 that also reads the metadata database)
print("PARSED=" + json.dumps({
    "airflow": airflow.__version__,
    "nextbest": nextbest.__file__,
    "import_errors": {str(path): str(error) for path, error in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "tasks": [task.task_id for task in dag.tasks] if dag else [],
    "downstream": {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks} if dag else {},
    "params": sorted(dag.params) if dag else [],
}))
"""


@pytest.fixture(scope="module")
def airflow_venv() -> Path:
    """The Airflow venv's ``bin`` folder; a clear failure (not a skip: ``make test`` builds it) when it is missing."""
    bin_dir = AIRFLOW_VENV / "bin"
    if not (AIRFLOW_VENV / ".installed").exists() or not os.access(bin_dir / "airflow", os.X_OK):
        pytest.fail(f"the Airflow virtualenv {AIRFLOW_VENV} is missing or incomplete: run `make airflow-venv` "
                    "(make test builds it)", pytrace=False)  # fmt: skip
    return bin_dir


def _dags_folder(tmp_path: Path) -> Path:
    """A DAG folder holding the documented one-line DAG file (Airflow 3 runs DAGs from a bundle: this folder)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "nextbest_sessions.py").write_text("from nextbest.pipelines.airflow_dag import dag  # noqa: F401\n")
    return dags


def _airflow_env(tmp_path: Path, dags: Path) -> dict[str, str]:
    home = tmp_path / "airflow"
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "VIRTUAL_ENV"},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # LightGBM's OpenMP threads crawl (minutes instead of a second) beside the run's own busy threads on a
        # small, loaded machine; one thread keeps the run quick.
        "OMP_NUM_THREADS": "1",
    }


def _run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run an Airflow venv command; its stdout, or a failure showing the end of its output."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        what = " ".join([Path(command[0]).name, *command[1:3]])
        pytest.fail(f"{what} exited {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}", pytrace=False)
    return done.stdout


def _json_rows(stdout: str) -> list[dict]:
    """The table an ``airflow ... -o json`` command prints (its log lines go to stdout too)."""
    rows = [line for line in stdout.splitlines() if line.startswith("[")]
    assert rows, f"no JSON table in:\n{stdout[-3000:]}"
    return json.loads(rows[-1])


def test_dag_parses_with_the_steps_in_order(airflow_venv: Path, tmp_path: Path) -> None:
    dags = _dags_folder(tmp_path)
    script = tmp_path / "parse_dag.py"
    script.write_text(PARSE_DAG)
    stdout = _run([str(airflow_venv / "python"), str(script), str(dags), DAG_ID], _airflow_env(tmp_path, dags),
                  tmp_path)  # fmt: skip
    parsed = json.loads(next(line for line in stdout.splitlines() if line.startswith("PARSED="))[len("PARSED="):])
    assert parsed["airflow"].startswith("3."), parsed["airflow"]
    assert Path(parsed["nextbest"]).is_relative_to(ROOT / "src"), "the Airflow venv must run this tree's nextbest"
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == [DAG_ID]
    assert parsed["tasks"] == list(STEPS) == ["ingest", "features", "eda", "models", "agent", "report"]
    for step, following in zip(STEPS, STEPS[1:] + (None,)):
        assert parsed["downstream"][step] == ([following] if following else []), step
    assert set(parsed["params"]) == set(default_params())


@pytest.mark.slow
def test_airflow_dags_test_runs_every_task_on_the_synthetic_source(airflow_venv: Path, tmp_path: Path) -> None:
    dags = _dags_folder(tmp_path)
    env = _airflow_env(tmp_path, dags)
    airflow = str(airflow_venv / "airflow")
    _run([airflow, "db", "migrate"], env, tmp_path)
    lake, out = tmp_path / "lake", tmp_path / "run"
    conf = {"source": "synthetic", "sessions": 2000, "lake": str(lake), "out": str(out), "q_episodes": 2000,
            "ppo_timesteps": 2048, "eval_sessions": 2000}  # fmt: skip
    log = _run([airflow, "dags", "test", DAG_ID, "--conf", json.dumps(conf)], env, tmp_path, timeout=600)[-6000:]

    # Every task succeeded, by Airflow's own metadata database.
    runs = _json_rows(_run([airflow, "dags", "list-runs", DAG_ID, "-o", "json"], env, tmp_path))
    assert [run["state"] for run in runs] == ["success"], log
    states = _json_rows(_run([airflow, "tasks", "states-for-dag-run", DAG_ID, runs[0]["run_id"], "-o", "json"], env,
                             tmp_path))  # fmt: skip
    assert {row["task_id"]: row["state"] for row in states} == dict.fromkeys(STEPS, "success"), log

    # Each task ran its step with the run's configuration (not the DAG's defaults) and wrote its outputs.
    record = json.loads((out / "pipeline.json").read_text())
    assert {step: entry["status"] for step, entry in record["steps"].items()} == dict.fromkeys(STEPS, "ran")
    assert record["steps"]["ingest"]["settings"]["source"] == "synthetic"
    assert record["steps"]["ingest"]["settings"]["sessions"] == 2000
    assert record["steps"]["agent"]["settings"]["ppo_timesteps"] == 2048
    for step in STEPS:
        for label, location in record["steps"][step]["outputs"].items():
            assert Path(location).exists(), f"{step} {label}: {location}"
    assert {path.name for path in (lake / "processed").iterdir()} >= {"pages.parquet", "features.parquet"}
    assert json.loads((out / "ingest" / "ingest.json").read_text())["sessions"] == 2000
    assert (out / "eda" / "eda.html").stat().st_size > 0 and (out / "models" / "models.pkl").stat().st_size > 0
    assert {"q-learning", "ppo", "random"} <= set(json.loads((out / "agent" / "agent.json").read_text())["policies"])
    assert "q-learning" in (out / "report.html").read_text() and (out / "report.json").exists()

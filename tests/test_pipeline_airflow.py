"""The Airflow DAG ``nextbest_sessions`` (``nextbest/pipelines/airflow_dag.py``): it parses in a DagBag with the six
steps chained in order, and a whole run (``dag.test``) on the Taobao sample runs every step and writes the report.

Airflow is an optional extra that pins much of the web stack, so these tests run only in an environment that has it
(e.g. ``python -m venv /tmp/airflow-venv && /tmp/airflow-venv/bin/pip install apache-airflow
-e '.[models,lake]' pytest``) and skip everywhere else.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nextbest.pipelines
from nextbest.data.paths import DATA_DIR_ENV, resolve_data_file
from nextbest.errors import DataError
from nextbest.pipelines.sessions import STEPS, default_params

airflow = pytest.importorskip("airflow", reason="Airflow is an optional extra: pip install 'nextbest[airflow]'")

DAG_ID = "nextbest_sessions"
DAG_FILE = Path(nextbest.pipelines.__file__).with_name("airflow_dag.py")

# Runs in a fresh interpreter whose AIRFLOW_HOME (and so its metadata database) is a temporary folder: create the
# database, then run the DAG once with the configuration in argv[1]; prints the run's final state as JSON.
RUN_DAG = """\
import json
import subprocess
import sys

migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
if migrate.returncode:
    sys.exit("airflow db migrate failed:\\n" + migrate.stdout[-3000:] + migrate.stderr[-3000:])

from nextbest.pipelines.airflow_dag import dag

run = dag.test(run_conf=json.loads(sys.argv[1]))
print("DAG_RUN_STATE=" + json.dumps(str(getattr(run.state, "value", run.state))))
"""


def _dagbag():
    """Airflow's DagBag over the DAG file alone (its import moved to ``airflow.dag_processing`` in Airflow 3)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2 (and early 3.x, which keeps a deprecated alias there)
        from airflow.models.dagbag import DagBag
    kwargs = {"include_examples": False} if "include_examples" in inspect.signature(DagBag).parameters else {}
    return DagBag(dag_folder=str(DAG_FILE), **kwargs)  # Airflow >= 3.3 never loads examples here


def test_dag_parses_with_the_steps_in_order() -> None:
    bag = _dagbag()
    assert bag.import_errors == {}
    assert DAG_ID in bag.dag_ids
    dag = bag.dags[DAG_ID]  # (not bag.get_dag: in Airflow 3 that also reads the metadata database)
    assert [task.task_id for task in dag.tasks] == list(STEPS) == ["ingest", "features", "eda", "models", "agent",
                                                                  "report"]  # fmt: skip
    for step, following in zip(STEPS, STEPS[1:] + (None,)):
        task = dag.get_task(step)
        assert set(task.downstream_task_ids) == ({following} if following else set()), step
    assert set(dag.params) == set(default_params())


@pytest.mark.slow
def test_dag_run_end_to_end(tmp_path: Path) -> None:
    try:  # the run resolves the same file; point it there explicitly in case the package is not installed editable
        source = resolve_data_file("taobao", "UserBehavior_sample.csv")
    except DataError as error:
        pytest.fail(f"Taobao sample missing (expected in ../shared/data or ${DATA_DIR_ENV}): {error}")
    dags = tmp_path / "dags"  # Airflow 3's dag.test needs the DAG in a DAG bundle: this folder, as documented
    dags.mkdir()
    (dags / "nextbest_sessions.py").write_text("from nextbest.pipelines.airflow_dag import dag  # noqa: F401\n")
    script = tmp_path / "run_dag.py"
    script.write_text(RUN_DAG)
    home = tmp_path / "airflow"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        DATA_DIR_ENV: str(source.parent.parent),
        # LightGBM's OpenMP threads crawl (minutes instead of a second) beside dag.test's own busy threads on a
        # small, loaded machine; one thread keeps the run quick.
        "OMP_NUM_THREADS": "1",
    }
    conf = {"source": "taobao", "lake": str(tmp_path / "lake"), "out": str(tmp_path / "run"), "q_episodes": 2000,
            "ppo_timesteps": 0, "eval_sessions": 2000}  # fmt: skip
    done = subprocess.run([sys.executable, str(script), json.dumps(conf)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    output = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, output
    assert 'DAG_RUN_STATE="success"' in done.stdout, output

    state = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert list(state["steps"]) == list(STEPS)
    assert {step: record["status"] for step, record in state["steps"].items()} == dict.fromkeys(STEPS, "ran")
    # The run configuration reached every task's params (not the DAG's defaults).
    assert state["steps"]["ingest"]["settings"]["source"] == "taobao"
    assert state["steps"]["agent"]["settings"] == {"simulator_models": "sklearn", "q_episodes": 2000,
                                                   "ppo_timesteps": 0, "eval_sessions": 2000, "seed": 0}  # fmt: skip
    assert (tmp_path / "run" / "report.html").stat().st_size > 0
    assert (tmp_path / "lake" / "processed").is_dir()

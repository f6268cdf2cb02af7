"""Apache Airflow DAG ``nextbest_sessions``: the session pipeline's steps as tasks, in order, each one
``nextbest.pipelines.sessions.run_step`` (so Airflow skips nothing itself: an unchanged step is a quick no-op).

Put this file (or a one-line ``from nextbest.pipelines.airflow_dag import dag``) in the DAGs folder of an
environment with ``pip install 'nextbest[airflow,models,lake,rl]'`` (``make airflow-venv`` builds one). Trigger
with a configuration, e.g.
``airflow dags trigger nextbest_sessions --conf '{"source": "taobao", "lake": "s3://bucket/lake", "out": "/runs"}'``;
the params are the fields of ``SessionPipelineConfig`` (S3 keys come from the workers' environment).
"""

from __future__ import annotations

from typing import Any

try:  # Airflow 3
    from airflow.sdk import DAG, get_current_context, task
except ImportError:  # Airflow 2.9+
    from airflow import DAG
    from airflow.decorators import task
    from airflow.operators.python import get_current_context

from nextbest.pipelines.sessions import STEPS, default_params, run_step_from_params

DAG_ID = "nextbest_sessions"


def _step_task(step: str) -> Any:
    @task(task_id=step)
    def run() -> dict[str, Any]:
        return run_step_from_params(step, dict(get_current_context()["params"]))

    return run()


with DAG(dag_id=DAG_ID, schedule=None, catchup=False, params=default_params(), tags=["nextbest", "sessions"],
         doc_md=__doc__) as dag:  # fmt: skip
    previous = None
    for name in STEPS:
        current = _step_task(name)
        if previous is not None:
            previous >> current
        previous = current

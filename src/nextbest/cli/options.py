"""Options several commands share: where their parallel part runs (``--workers N`` processes on this machine,
``--ray-address HOST:PORT`` a running Ray cluster; the numbers never depend on them, see ``nextbest.parallel``) and
where their run is tracked (``--mlflow URI``, see ``nextbest.tracking``) and what sessionizes a Taobao file
(``--engine duckdb|spark``, ``--spark-master URL``, see ``nextbest.data.taobao``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

WORKERS = typer.Option(
    1, "--workers", help="Worker processes on this machine for the parallel part (bootstrap refits, retrains, "
    "replications); 1 runs it in this process. The same seed gives the same numbers for any N.", metavar="N"
)
RAY_ADDRESS = typer.Option(
    None, "--ray-address", help="Run the parallel part on the Ray cluster at HOST:PORT (its head, started with "
    "`ray start --head`; every node needs nextbest installed). Overrides --workers.", metavar="HOST:PORT",
    envvar="NEXTBEST_RAY_ADDRESS",
)

MLFLOW = typer.Option(
    None, "--mlflow", help="Track this run on MLflow at URI (http://HOST:PORT of an `mlflow server`, or a local store "
    "such as sqlite:///mlflow.db): settings as parameters, every figure of the JSON as a metric, the JSON, reports "
    "and figures as artifacts, exported ONNX models registered. Off when absent.", metavar="URI",
    envvar="MLFLOW_TRACKING_URI",
)

ENGINE = typer.Option(
    "duckdb", "--engine", help="What sessionizes a Taobao UserBehavior file: duckdb (this machine) | spark (a Spark "
    "master, --spark-master; needs Java 17+). Both write the same page table.", metavar="duckdb|spark",
)
SPARK_MASTER = typer.Option(
    "local[2]", "--spark-master", help="With --engine spark: local[N] (N cores in this process) or spark://HOST:PORT "
    "(a standalone cluster; the source file and the lake must be reachable from its workers, an s3:// lake needs "
    "the hadoop-aws jars there).", metavar="URL", envvar="NEXTBEST_SPARK_MASTER",
)


@contextmanager
def executor_for(workers: int, ray_address: str | None) -> Iterator:
    """The executor these options name (checked at once: a bad count or an unreachable cluster is a one-line
    error), closed at the end."""
    from nextbest.parallel import make_executor

    executor = make_executor(workers, ray_address)
    try:
        yield executor
    finally:
        executor.close()

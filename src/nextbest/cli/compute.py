"""Options shared by the commands whose work runs in parallel: ``--workers N`` (processes on this machine) and
``--ray-address HOST:PORT`` (a running Ray cluster). The numbers never depend on them (``nextbest.parallel``)."""

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

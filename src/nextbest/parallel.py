"""One executor for embarrassingly parallel work: bootstrap refits, sensitivity retrains, seeded replications.

Contract: ``executor.map(fn, tasks, context)`` returns ``[fn(context, task) for task in tasks]`` — the same list,
in the same order, whichever executor runs it. Each task carries everything random about it (its seed or its
pre-drawn indices), so the same seed gives the same numbers serially, on local processes or on a Ray cluster.
``context`` is the large input every task shares (a simulator, the train leads); it is shipped once per chunk of
tasks (local processes) or put once in the object store (Ray), never once per task. Every chunk works on its own
writable copy, so a task may change the context (a Q-table growing while it acts), but the changes stay in that
worker: a task must not rely on what an earlier task left there.

Three executors, chosen with :func:`make_executor`:

- ``SerialExecutor`` — this process (the default);
- ``LocalExecutor(workers)`` — ``workers`` processes on this machine (joblib's loky backend; closures travel by
  cloudpickle);
- ``RayExecutor(address)`` — a running Ray cluster (``ray start --head`` …). Every node needs nextbest installed
  in the same version; each chunk asks for one CPU.

The Ray executor is, with the lake's S3 backend, the one place below the faces that talks to the network: it
connects to the cluster the user names and checks first that the address answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from nextbest.errors import NextbestError

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int], None]


class Executor(Protocol):
    """Runs ``fn(context, task)`` for every task; results in task order (see the module docstring)."""

    workers: int

    def map(self, fn: Callable[[C, T], R], tasks: Sequence[T], context: C, progress: Progress | None = None
            ) -> list[R]: ...  # fmt: skip

    def describe(self) -> str: ...


def chunks(n_tasks: int, n_chunks: int) -> list[range]:
    """``n_tasks`` split into at most ``n_chunks`` contiguous, non-empty ranges of near-equal length."""
    n_chunks = max(1, min(n_chunks, n_tasks))
    bounds = [round(i * n_tasks / n_chunks) for i in range(n_chunks + 1)]
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run_chunk(fn: Callable[[C, T], R], context: C, tasks: Sequence[T]) -> list[R]:
    """``[fn(context, task) for task in tasks]``: what one worker runs."""
    return [fn(context, task) for task in tasks]


def run_pickled_chunk(fn: Callable[[C, T], R], context: bytes, tasks: Sequence[T]) -> list[R]:
    """``run_chunk`` on a context shipped pickled: each chunk unpickles its own, writable copy (Ray's zero-copy
    arrays are read-only, and a policy may grow its tables while it acts)."""
    import cloudpickle

    return run_chunk(fn, cloudpickle.loads(context), tasks)


class SerialExecutor:
    """Every task in this process, one after another."""

    workers = 1

    def map(self, fn, tasks, context, progress=None):
        results = []
        for task in tasks:
            results.append(fn(context, task))
            if progress is not None:
                progress(1)
        return results

    def describe(self) -> str:
        return "serial"

    def close(self) -> None:
        pass


class LocalExecutor:
    """``workers`` processes on this machine (joblib/loky; the pool is reused across calls)."""

    #: Chunks per worker: a few, so one slow chunk does not leave the others idle at the end.
    CHUNKS_PER_WORKER = 4

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise NextbestError(f"--workers must be at least 1, got {workers}")
        self.workers = workers

    def map(self, fn, tasks, context, progress=None):
        from joblib import Parallel, delayed

        parts = chunks(len(tasks), self.workers * self.CHUNKS_PER_WORKER)
        # max_nbytes=None: no read-only memory maps of large arrays; each chunk gets its own writable copy.
        pool = Parallel(n_jobs=self.workers, backend="loky", return_as="generator", max_nbytes=None)
        done = pool(delayed(run_chunk)(fn, context, [tasks[i] for i in part]) for part in parts)
        return _gather(done, parts, progress)

    def describe(self) -> str:
        return f"{self.workers} local worker processes"

    def close(self) -> None:
        pass


class RayExecutor:
    """The CPUs of a running Ray cluster at ``address`` (``HOST:PORT`` of its head's GCS)."""

    CHUNKS_PER_WORKER = 4

    def __init__(self, address: str, connect_timeout: float = 5.0) -> None:
        check_reachable(address, connect_timeout, "Ray cluster")
        try:
            import ray
        except ImportError as error:
            raise NextbestError("--ray-address needs Ray: pip install 'nextbest[scale]'") from error
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
        except Exception as error:  # ray raises ConnectionError, RuntimeError… for a port that is not Ray's
            raise NextbestError(f"cannot join the Ray cluster at {address}: {_one_line(error)}") from error
        self._ray = ray
        self.address = address
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1)(run_pickled_chunk)

    def map(self, fn, tasks, context, progress=None):
        import cloudpickle

        ray = self._ray
        shared = ray.put(cloudpickle.dumps(context))
        parts = chunks(len(tasks), self.workers * self.CHUNKS_PER_WORKER)
        refs = [self._remote.remote(fn, shared, [tasks[i] for i in part]) for part in parts]
        return _gather((ray.get(ref) for ref in refs), parts, progress)

    def describe(self) -> str:
        nodes = sum(1 for node in self._ray.nodes() if node.get("Alive"))
        return f"Ray cluster at {self.address} ({nodes} nodes, {self.workers} CPUs)"

    def close(self) -> None:
        self._ray.shutdown()


def _gather(done: Iterator[list[R]], parts: list[range], progress: Progress | None) -> list[R]:
    """Concatenate the chunks' results in order, ticking ``progress`` as each chunk arrives."""
    results: list[R] = []
    for part, chunk_results in zip(parts, done):
        results.extend(chunk_results)
        if progress is not None:
            progress(len(part))
    return results


def check_reachable(address: str, timeout: float, what: str) -> None:
    """NextbestError (one line) unless a TCP connection to ``HOST:PORT`` opens within ``timeout`` seconds."""
    host, _, port = address.rpartition(":")
    if "://" in host:
        host = host.split("://", 1)[1]
    if not host or not port.isdigit():
        raise NextbestError(f"the {what} address must be HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise NextbestError(f"cannot reach the {what} at {address}: {reason}") from error


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def make_executor(workers: int = 1, ray_address: str | None = None) -> SerialExecutor | LocalExecutor | RayExecutor:
    """Serial for ``workers == 1`` and no address; local processes for ``workers > 1``; a Ray cluster when an
    address is given (``workers`` is then ignored: the cluster's CPUs decide)."""
    if ray_address:
        return RayExecutor(ray_address)
    if workers < 1:
        raise NextbestError(f"--workers must be at least 1, got {workers}")
    return SerialExecutor() if workers == 1 else LocalExecutor(workers)


SERIAL = SerialExecutor()

RAY = str(Path(sys.executable).with_name("ray"))
#: Small object stores: the machine has other work to do.
NODE_FLAGS = ["--num-cpus", "1", "--object-store-memory", "100000000", "--disable-usage-stats"]


@contextmanager
def local_ray_cluster(nodes: int = 2) -> Iterator[str]:
    """A real ``nodes``-node Ray cluster on this machine, for tests, benchmarks and trying ``--ray-address``: a head
    (``ray start --head --num-cpus 1``) and ``nodes - 1`` nodes joining it, each a raylet with one CPU and a small
    object store, in a temporary folder. Yields the address (``127.0.0.1:PORT``); ``ray stop --force`` at the end
    (which stops every Ray process of this user)."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        _ray_command([RAY, "start", "--head", "--port", str(port), "--include-dashboard=false",
                      "--temp-dir", str(temp), *NODE_FLAGS], env)  # fmt: skip
        for _ in range(nodes - 1):
            _ray_command([RAY, "start", "--address", address, *NODE_FLAGS], env)
        _wait_for_nodes(address, nodes, env)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_command(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _wait_for_nodes(address: str, nodes: int, env: dict[str, str], timeout: float = 60.0) -> None:
    """Poll ``ray status`` until ``nodes`` nodes are active."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        done = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True, env=env)
        status = done.stdout
        active = status.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in status else ""
        if active.count("node_") >= nodes:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {nodes} nodes:\n{status[-2000:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


__all__ = ["SERIAL", "Executor", "LocalExecutor", "RayExecutor", "SerialExecutor", "chunks", "local_ray_cluster",
           "make_executor"]  # fmt: skip

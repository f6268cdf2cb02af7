"""A real Spark standalone cluster on loopback for the tests: one master and one worker (1 core, 1 GB), started
with PySpark's own ``spark-class`` and stopped at the end, also when a test or the start fails.

    with standalone_cluster(tmp_path) as master:        # "spark://127.0.0.1:PORT", the worker registered
        spark = spark_session(master)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spark_class() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "bin" / "spark-class"


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("wb") as handle:  # the child keeps its own descriptor
        return subprocess.Popen([str(_spark_class()), *args], stdout=handle, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group this fixture started (the daemon's JVM and, for a worker, its executors), then
    SIGKILL when it has not ended within 15 s."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _alive_workers(webui: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=2) as response:
            state = json.load(response)
    except (OSError, ValueError):
        return -1
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextmanager
def standalone_cluster(folder: Path, cores: int = 1, memory: str = "1g") -> Iterator[str]:
    """Start ``spark-class ...deploy.master.Master --host 127.0.0.1`` and one ``...deploy.worker.Worker`` with
    ``cores`` and ``memory``, on free ports, logs and work folder in ``folder``; wait until the master lists the
    worker as ALIVE; yield the master URL; stop both."""
    folder.mkdir(parents=True, exist_ok=True)
    port, webui, worker_port, worker_webui = (free_port() for _ in range(4))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m", "SPARK_LOG_DIR": str(folder),
           "SPARK_WORKER_DIR": str(folder / "work"), "SPARK_NO_DAEMONIZE": "1"}  # fmt: skip
    master_url = f"spark://127.0.0.1:{port}"
    started: list[subprocess.Popen] = []
    try:
        started.append(_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                               "--webui-port", str(webui)], folder / "master.log", env))  # fmt: skip
        started.append(_start(["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1", "--port",
                               str(worker_port), "--webui-port", str(worker_webui), "--cores", str(cores),
                               "--memory", memory, "--work-dir", str(folder / "work")],
                              folder / "worker.log", env))  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while _alive_workers(webui) < 1:
            ended = [p for p in started if p.poll() is not None]
            if ended or time.monotonic() > deadline:
                raise RuntimeError(f"the Spark standalone cluster did not come up (master log:\n"
                                   f"{_tail(folder / 'master.log')}\nworker log:\n{_tail(folder / 'worker.log')})")
            time.sleep(0.5)
        yield master_url
    finally:
        for process in reversed(started):
            _stop(process)

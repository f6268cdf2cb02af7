"""A real two-node Ray cluster on this machine for the tests: a head (``ray start --head --num-cpus 1``) and a
second node joining it (``ray start --address … --num-cpus 1``), each a separate raylet with its own CPU, in a
temporary folder; ``ray stop --force`` at the end (it stops every Ray process of this user: the tests own Ray)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nextbest.stream._process import free_port

RAY = str(Path(sys.executable).with_name("ray"))
#: Small object stores: the machine has other work to do.
NODE_FLAGS = ["--num-cpus", "1", "--object-store-memory", "100000000", "--disable-usage-stats"]


@contextmanager
def ray_cluster(nodes: int = 2) -> Iterator[str]:
    """Yield the address (``127.0.0.1:PORT``) of a running ``nodes``-node Ray cluster; stop it afterwards."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        _run([RAY, "start", "--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", str(temp),
              *NODE_FLAGS], env)  # fmt: skip
        for _ in range(nodes - 1):
            _run([RAY, "start", "--address", address, *NODE_FLAGS], env)
        _wait_for_nodes(address, nodes, env)
        yield address
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


def _run(command: list[str], env: dict[str, str]) -> None:
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

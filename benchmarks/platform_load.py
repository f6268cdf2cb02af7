"""Benchmark: 100,000 decisions through the platform's batch endpoint on loopback (target ≤ 10 s on 2 cores).

Starts the service (`nextbest platform serve`, i.e. uvicorn with `create_app`) in a subprocess on a free
loopback port over a SQLite file in a temporary folder (or `--db URL`), creates an experiment, sends
10 POSTs of 10,000 decisions with httpx, and prints one JSON line: seconds, errors, decisions_per_second,
meets_target. The server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

DECISIONS = 100_000
BATCH = 10_000
TARGET_SECONDS = 10.0
DESIGN = {"owner": "bench", "name": "load", "alpha": 0.05, "power": 0.8, "effect": 0.7, "sd": 15.0,
          "sample_size": 7300, "alternative": "two-sided"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(db_url: str, port: int, log: Path) -> subprocess.Popen:
    """`nextbest platform serve` in a subprocess; returns once /healthz answers (RuntimeError after 60 s)."""
    command = [sys.executable, "-m", "nextbest.cli", "platform", "serve", "--db", db_url, "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}: {log.read_text()[-500:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError("server did not answer /healthz within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    """SIGINT (uvicorn's graceful shutdown), then kill after 10 s."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def send_decisions(base: str, token: str, experiment_id: int) -> tuple[float, int]:
    """Wall seconds and number of errors (non-200 answers or rows not accepted) of the whole load."""
    batches = [[{"uuid": f"unit-{start + i:07d}", "value": (start + i) % 2} for i in range(BATCH)]
               for start in range(0, DECISIONS, BATCH)]  # fmt: skip
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        for batch in batches:
            try:
                response = client.post(f"/api/experiments/{experiment_id}/decisions", json=batch)
                ok = response.status_code == 200 and response.json() == {"accepted": BATCH, "duplicates": 0}
            except httpx.HTTPError:
                ok = False
            errors += 0 if ok else 1
        seconds = time.perf_counter() - started
    return seconds, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URL (default: SQLite file in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nextbest-load-") as folder:
        db_url = args.db or f"sqlite:///{os.path.join(folder, 'platform.db')}"
        port = free_port()
        server = start_server(db_url, port, Path(folder) / "server.log")
        try:
            base = f"http://127.0.0.1:{port}"
            created = httpx.post(f"{base}/api/experiments", json=DESIGN, timeout=30)
            created.raise_for_status()
            seconds, errors = send_decisions(base, created.json()["token"], created.json()["id"])
            recorded = httpx.get(f"{base}/api/experiments/{created.json()['id']}", timeout=30).json()
        finally:
            stop_server(server)
    errors += 0 if recorded["progress"]["decisions"] == DECISIONS else 1
    print(json.dumps({
        "benchmark": "platform_load",
        "database": db_url.split(":", 1)[0],
        "decisions": DECISIONS,
        "batches": DECISIONS // BATCH,
        "seconds": round(seconds, 3),
        "errors": errors,
        "decisions_per_second": round(DECISIONS / seconds),
        "meets_target": errors == 0 and seconds <= TARGET_SECONDS,
        "target_seconds": TARGET_SECONDS,
    }))  # fmt: skip


if __name__ == "__main__":
    main()

"""Benchmark: decisions per second of `nextbest platform serve --workers N` on PostgreSQL, 200,000 decisions posted
concurrently, for 1 and 2 worker processes.

For each N of ``--workers-list`` (default 1,2): a fresh database (on a throw-away PostgreSQL cluster started here,
or on the server of ``--db postgresql://USER@HOST:PORT/DB``, whose user needs CREATEDB), the service started as a
person starts it (`nextbest platform serve --workers N` in a subprocess, its own process group, stopped at the end),
one experiment; then ``--clients`` threads post ``--decisions`` distinct decisions in batches of ``--batch`` (bodies
encoded before the clock starts), each request on a new connection (the workers share the listening socket, and a
few long-lived connections may all land on one worker). Every ``--replay``-th batch is posted a second time right
after the first, in the opposite order, by another thread: the same uuids at two connections at once, as a client
retrying a timed-out request would (0 turns replays off). ``requests_per_worker`` shows how the requests spread.

Counted per run: ``errors`` (transport errors, non-200 answers, and answers that do not add up: a batch posted once
must be accepted whole; a batch and its replay must together accept each uuid once and count it once as a
duplicate), ``duplicates`` (rows in the database beyond the distinct uuids posted, read with SQL), ``missing``
(distinct uuids posted that have no row). ``decisions_per_second`` is distinct decisions recorded over the wall
seconds of the posting. One JSON line: each run's figures and the ratio of the last run's rate to the first's.

The load generator shares the machine with the server's processes and PostgreSQL: on 2 cores, N = 2 competes with
them for the same CPU time, so the ratio says how much a second worker gains *here*, not on a bigger machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

from nextbest.platform.pgserver import PostgresServer, free_port, temporary_server

DECISIONS = 200_000
BATCH = 10_000
CLIENTS = 4
REPLAY = 10
TARGET_DECISIONS_PER_SECOND = 10_000  # the single-process target of the SQLite days: 100,000 decisions in 10 s
DESIGN = {"owner": "bench", "name": "load", "alpha": 0.05, "power": 0.8, "effect": 0.7, "sd": 15.0,
          "sample_size": 7300, "alternative": "two-sided"}  # fmt: skip


def start_server(db_url: str, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`nextbest platform serve --workers N` in its own process group; (process, base URL) once /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "nextbest.cli", "platform", "serve", "--db", db_url, "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}: {log.read_text()[-500:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError("server did not answer /healthz within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (supervisor and workers), SIGKILL after 15 s."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def jobs(decisions: int, batch: int, replay: int) -> list[tuple[int, bytes, int]]:
    """(batch index, encoded body, rows) of every request in posting order; a replay follows its batch, reversed."""
    out = []
    for index, start in enumerate(range(0, decisions, batch)):
        rows = [{"uuid": f"unit-{i:07d}", "value": i % 2} for i in range(start, min(start + batch, decisions))]
        out.append((index, json.dumps(rows).encode(), len(rows)))
        if replay and index % replay == replay - 1:
            out.append((index, json.dumps(rows[::-1]).encode(), len(rows)))
    return out


def post_all(base: str, token: str, experiment_id: int, work: list[tuple[int, bytes, int]],
             clients: int) -> tuple[float, dict[int, list[dict[str, int] | None]], dict[str, int]]:  # fmt: skip
    """Wall seconds of posting ``work`` with ``clients`` threads, each taking the next request in turn and sending
    it on a new connection, the answers per batch (None for a failed request) and the requests each server process
    answered (by the ``X-Nextbest-Worker`` of a GET /healthz on the same connection).

    A new connection per request, because the workers share one listening socket: a few long-lived connections
    may all be accepted by one worker (seen here: 4 of 4), which would measure one worker however many run."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"/api/experiments/{experiment_id}/decisions"
    pending = iter(work)
    lock = threading.Lock()
    answers: dict[int, list[dict[str, int] | None]] = {}
    per_worker: dict[str, int] = {}

    def client() -> None:
        ready.wait()
        while True:
            with lock:
                index, body, _ = next(pending, (None, b"", 0))
            if index is None:
                return
            worker = "unknown"
            try:
                with httpx.Client(base_url=base, headers=headers, timeout=300) as connection:
                    worker = connection.get("/healthz").headers.get("X-Nextbest-Worker", worker)
                    response = connection.post(url, content=body)
                answer = response.json() if response.status_code == 200 else None
            except httpx.HTTPError:
                answer = None
            with lock:
                answers.setdefault(index, []).append(answer)
                per_worker[worker] = per_worker.get(worker, 0) + 1

    ready = threading.Event()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    ready.set()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, answers, per_worker


def answer_errors(answers: dict[int, list[dict[str, int] | None]], sizes: dict[int, int]) -> int:
    """Requests that failed, plus batches whose answers do not add up to each uuid accepted once (and counted as a
    duplicate once per replay)."""
    errors = sum(answer is None for batch in answers.values() for answer in batch)
    for index, batch in answers.items():
        if any(answer is None for answer in batch):
            continue
        accepted = sum(answer["accepted"] for answer in batch)  # type: ignore[index]
        duplicates = sum(answer["duplicates"] for answer in batch)  # type: ignore[index]
        errors += not (accepted == sizes[index] and duplicates == sizes[index] * (len(batch) - 1))
    return errors


def run(server_pg: PostgresServer, workers: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One measured run with ``workers`` worker processes on a fresh database; its figures."""
    db_url = server_pg.new_database()
    work = jobs(args.decisions, args.batch, args.replay)
    sizes = {index: rows for index, _, rows in work}
    server, base = start_server(db_url, workers, folder / f"serve-{workers}.log")
    try:
        created = httpx.post(f"{base}/api/experiments", json=DESIGN, timeout=30)
        created.raise_for_status()
        experiment_id, token = created.json()["id"], created.json()["token"]
        seconds, answers, per_worker = post_all(base, token, experiment_id, work, args.clients)
        progress = httpx.get(f"{base}/api/experiments/{experiment_id}", timeout=60).json()["progress"]
    finally:
        stop_server(server)
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        rows, distinct = connection.execute("SELECT count(*), count(DISTINCT uuid) FROM decisions "
                                            "WHERE experiment_id = %s", (experiment_id,)).fetchone()  # fmt: skip
    replayed = sum(size for index, size in sizes.items() if len(answers.get(index, [])) > 1)
    errors = answer_errors(answers, sizes)
    errors += progress["decisions"] != rows or progress["duplicate_decisions"] != replayed
    return {
        "workers": workers,
        "seconds": round(seconds, 3),
        "decisions_per_second": round(distinct / seconds),
        "requests": len(work),
        "requests_per_worker": sorted(per_worker.values(), reverse=True),
        "replayed_decisions": replayed,
        "errors": int(errors),
        "duplicates": max(0, rows - args.decisions),
        "missing": max(0, args.decisions - distinct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None,
                        help="a PostgreSQL server URL whose user may CREATE DATABASE (default: a throw-away cluster)")
    parser.add_argument("--workers-list", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--decisions", type=int, default=DECISIONS, help="distinct decisions posted per run")
    parser.add_argument("--batch", type=int, default=BATCH, help="decisions per request")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent client connections")
    parser.add_argument("--replay", type=int, default=REPLAY,
                        help="post every k-th batch twice at once (0: no replays)")  # fmt: skip
    args = parser.parse_args()
    workers_list = [int(n) for n in args.workers_list.split(",") if n.strip()]
    if args.db is not None and not args.db.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        parser.error("--db must be a postgresql:// URL (several workers need PostgreSQL)")
    with tempfile.TemporaryDirectory(prefix="nextbest-load-") as folder, ExitStack() as stack:
        server_pg = PostgresServer(url=args.db) if args.db else stack.enter_context(temporary_server())
        runs = [run(server_pg, workers, args, Path(folder)) for workers in workers_list]
    rates = [figures["decisions_per_second"] for figures in runs]
    print(json.dumps({
        "benchmark": "platform_load",
        "database": "postgresql",
        "decisions": args.decisions,
        "batch": args.batch,
        "clients": args.clients,
        "cpu_cores": os.cpu_count(),
        "runs": runs,
        "ratio": round(rates[-1] / rates[0], 2) if rates else None,
        "ratio_of": f"{workers_list[-1]} workers / {workers_list[0]} worker(s)" if rates else None,
        "errors": sum(figures["errors"] for figures in runs),
        "duplicates": sum(figures["duplicates"] for figures in runs),
        "missing": sum(figures["missing"] for figures in runs),
        "target_decisions_per_second": TARGET_DECISIONS_PER_SECOND,
        "meets_target": all(figures["errors"] == figures["duplicates"] == figures["missing"] == 0
                            and figures["decisions_per_second"] >= TARGET_DECISIONS_PER_SECOND for figures in runs),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

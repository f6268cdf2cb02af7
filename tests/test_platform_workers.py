"""`nextbest platform serve --workers N` on a real PostgreSQL server, run as a person runs it: the installed
console script in a subprocess (its own process group, killed at teardown).

Two servers run side by side on two databases of the session's PostgreSQL (conftest's `postgres` fixture): one
with 2 worker processes, one with 1 (the reference). The same decisions and outcomes go to the 2-worker server
concurrently, each batch twice (once reversed) on separate connections, mixed with requests carrying bad tokens;
every uuid must be recorded once, each pair of answers must add up (one accepted, one duplicate per uuid), the bad
tokens refused with nothing recorded, and the verdict must equal the one-process server's on the same data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from nextbest.platform.pgserver import free_port
from test_platform_api import DESIGN, simulated_outcomes

pytestmark = pytest.mark.postgres

NEXTBEST = str(Path(sys.executable).with_name("nextbest"))
SAMPLE_SIZE = 200  # per arm: exactly this many outcomes per arm are posted, so arrival order cannot change the set
DECISIONS = 20_000  # in 4 batches of 5,000: big enough that the two copies of a batch insert at the same time


@dataclass
class Server:
    """A `nextbest platform serve` subprocess: its base URL, database URL and log."""

    process: subprocess.Popen
    base: str
    db_url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM to the whole process group (the supervisor and its workers), SIGKILL after 15 s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_server(db_url: str, workers: int, log: Path) -> Server:
    port = free_port()
    command = [NEXTBEST, "platform", "serve", "--db", db_url, "--workers", str(workers), "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(process, f"http://127.0.0.1:{port}", db_url, log)


def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"the server did not answer /healthz within 60 s:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def servers(postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Server]]:
    """{workers: Server} for 1 and 2 workers, each on a fresh database, started at once."""
    folder = tmp_path_factory.mktemp("workers")
    started = {n: start_server(postgres.new_database(), n, folder / f"serve-{n}.log") for n in (1, 2)}
    try:
        for server in started.values():
            wait_until_up(server)
        yield started
    finally:
        for server in started.values():
            server.stop()


def parent_of(pid: int) -> int:
    """The parent process id of ``pid`` (from /proc/PID/stat: the field after the state)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_two_worker_processes_answer(servers: dict[int, Server]) -> None:
    """New connections are answered by two distinct processes, both children of the served command."""
    server = servers[2]
    seen: set[int] = set()
    for _ in range(200):  # a fresh connection each time; the kernel hands it to either worker
        response = httpx.get(f"{server.base}/healthz", timeout=10)
        assert response.status_code == 200 and response.json() == {"status": "ok", "database": "postgresql"}
        seen.add(int(response.headers["X-Nextbest-Worker"]))
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"one process answered 200 connections: {seen}"
    assert all(parent_of(pid) == server.process.pid for pid in seen)
    single = {int(httpx.get(f"{servers[1].base}/healthz").headers["X-Nextbest-Worker"]) for _ in range(10)}
    assert single == {servers[1].process.pid}  # one worker: the served command itself answers


def create(base: str, **overrides: Any) -> tuple[int, str]:
    response = httpx.post(f"{base}/api/experiments", json={**DESIGN, "sample_size": SAMPLE_SIZE, **overrides})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def chunks(rows: list[dict], size: int) -> list[list[dict]]:
    return [rows[start:start + size] for start in range(0, len(rows), size)]


def post(base: str, path: str, rows: list[dict], token: str | None) -> httpx.Response:
    """One POST on a connection of its own (its ``worker``: the process that answered the connection's /healthz)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with httpx.Client(base_url=base, timeout=60) as client:
        worker = client.get("/healthz").headers["X-Nextbest-Worker"]
        response = client.post(path, json=rows, headers=headers)
    response.worker = worker  # type: ignore[attr-defined]
    return response


def counts(db_url: str, table: str, experiment_id: int) -> tuple[int, int, int]:
    """(rows, distinct uuids, rows whose uuid starts with 'bad') of one experiment in ``table``."""
    with psycopg.connect(db_url) as connection:
        return connection.execute(f"SELECT count(*), count(DISTINCT uuid), count(*) FILTER (WHERE uuid LIKE 'bad%%') "
                                  f"FROM {table} WHERE experiment_id = %s", (experiment_id,)).fetchone()  # fmt: skip


def test_concurrent_writes_are_recorded_once_and_the_verdict_matches_one_process(servers: dict[int, Server]) -> None:
    decisions = [{"uuid": f"d{i:05d}", "value": i % 2} for i in range(DECISIONS)]
    outcomes = simulated_outcomes(SAMPLE_SIZE, true_effect=3.0, sd=10.0, seed=16)
    batches = [batch for pair in zip(chunks(decisions, DECISIONS // 4), chunks(outcomes, SAMPLE_SIZE // 2), strict=True)
               for batch in zip(("decisions", "outcomes"), pair)]  # fmt: skip

    reference_id, reference_token = create(servers[1].base)
    for kind, chunk in batches:  # the reference: each batch once, one after the other, to one process
        answer = post(servers[1].base, f"/api/experiments/{reference_id}/{kind}", chunk, reference_token)
        assert answer.json() == {"accepted": len(chunk), "duplicates": 0}

    base = servers[2].base
    experiment_id, token = create(base)
    other_id, other_token = create(base, name="other")
    bad = [{"uuid": f"bad{i}", "value": 1} for i in range(50)]
    mine, others = f"/api/experiments/{experiment_id}/decisions", f"/api/experiments/{other_id}/decisions"
    refused = [(mine, "not-a-token", 403), (mine, other_token, 403), (mine, None, 401), (others, token, 403)]
    jobs = []  # (index of the batch or None, path, rows, token, expected status, barrier of the pair)
    for index, (kind, chunk) in enumerate(batches):  # each batch twice at once, the second in the opposite order
        path, together = f"/api/experiments/{experiment_id}/{kind}", threading.Barrier(2)
        jobs += [(index, path, chunk, token, 200, together), (index, path, chunk[::-1], token, 200, together)]
        if index % 2 == 0:  # a refused request between the pairs
            url, key, status = refused[index // 2]
            jobs.append((None, url, bad, key, status, None))

    workers: set[str] = set()

    def run(job: tuple) -> tuple[int | None, int, dict]:
        index, path, rows, key, _, together = job
        if together is not None:
            together.wait(timeout=30)  # both copies of a batch leave together
        response = post(base, path, rows, key)
        workers.add(response.worker)
        return index, response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(run, jobs))
    assert len(workers) == 2  # the requests reached both processes

    assert [status for _, status, _ in answers] == [job[4] for job in jobs], answers
    for index, (_, chunk) in enumerate(batches):  # per pair: every uuid accepted once, a duplicate once
        pair = [body for batch, _, body in answers if batch == index]
        assert sum(b["accepted"] for b in pair) == len(chunk) and sum(b["duplicates"] for b in pair) == len(chunk)
    assert counts(servers[2].db_url, "decisions", experiment_id) == (DECISIONS, DECISIONS, 0)
    assert counts(servers[2].db_url, "outcomes", experiment_id) == (2 * SAMPLE_SIZE, 2 * SAMPLE_SIZE, 0)
    assert counts(servers[2].db_url, "decisions", other_id) == (0, 0, 0)
    replay = post(base, f"/api/experiments/{experiment_id}/outcomes", outcomes[:10], token)
    assert replay.json() == {"accepted": 0, "duplicates": 10}  # an idempotent replay, later

    shown = httpx.get(f"{base}/api/experiments/{experiment_id}").json()
    reference = httpx.get(f"{servers[1].base}/api/experiments/{reference_id}").json()
    assert shown["status"] == reference["status"] == "complete"
    assert shown["progress"] == {**reference["progress"], "duplicate_decisions": DECISIONS,
                                 "duplicate_outcomes": 2 * SAMPLE_SIZE + 10}  # fmt: skip
    result, expected = shown["result"], reference["result"]
    for field in ("verdict", "recommendation", "summary", "improves", "improves_by_target", "n_original", "n_new",
                  "srm_flagged"):  # fmt: skip
        assert result[field] == expected[field], field
    for field in ("effect", "p_value", "target_p_value", "srm_p_value"):  # sums in another order: last bits may move
        assert result[field] == pytest.approx(expected[field], rel=1e-9), field
    assert result["ci"] == pytest.approx(expected["ci"], rel=1e-9)


def test_migrations_run_once_when_processes_start_at_once(pg_url: str) -> None:
    """Four migrators on one empty database at once (what N workers starting together would do without the parent
    migrating first): the advisory lock lets one create the schema, the others find it at head."""
    from nextbest.platform.db import current_revision, make_engine, migrate

    engines = [make_engine(pg_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))

    def run(engine) -> None:
        barrier.wait(timeout=10)
        migrate(engine)

    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(run, engines))
        assert current_revision(engines[0]) == "0003"
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.parametrize(("args", "message"), [
    (["--db", "sqlite:///platform.db", "--workers", "2"], "SQLite is single-process"),
    (["--db", "sqlite://", "--workers", "3"], "SQLite is single-process"),
    (["--workers", "0"], "--workers"),
])  # fmt: skip
def test_several_workers_on_sqlite_or_none_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([NEXTBEST, "platform", "serve", *args, "--port", str(free_port())], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr + done.stdout
    if "SQLite" in message:
        assert done.stderr.strip().count("\n") == 0  # one line
    assert not (tmp_path / "platform.db").exists()  # refused before anything was opened

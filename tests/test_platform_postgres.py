"""The experiment platform on a real PostgreSQL server started for this session (initdb + pg_ctl on a free port).

Set NEXTBEST_TEST_POSTGRES_URL=postgresql://USER@HOST:PORT/DB to use an existing server instead (each test then
creates its own database there, so the user needs CREATEDB).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from test_platform_api import DESIGN, auth, close, create, new_client, post_concurrently, run_api_flow
from test_platform_binary import check_migration_from_0001, run_binary_flow
from test_platform_metrics import check_migration_from_0002, run_metrics_flow

pytestmark = pytest.mark.postgres
_names = itertools.count(1)


def _bindir() -> Path | None:
    """Folder of initdb/pg_ctl: PostgreSQL 15 preferred, else the newest installed version, else the PATH."""
    candidates = ["/usr/lib/postgresql/15/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    found = shutil.which("initdb")
    candidates += [str(Path(found).parent)] if found else []
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster: ``url`` of its maintenance database, ``restart()`` a full server restart."""

    url: str
    bindir: Path | None = None
    data: Path | None = None
    as_user: tuple[str, ...] = ()
    options: str = ""
    log: Path | None = None

    def pg_ctl(self, *args: str) -> None:
        command = [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        done = subprocess.run(command, cwd=self.data.parent, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log and self.log.exists() else ""
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stderr.strip()}\n{log}")

    def start(self) -> None:
        self.pg_ctl("-o", self.options, "-l", str(self.log), "start", "-w", "-t", "60")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def restart(self) -> None:
        if self.data is None:
            pytest.fail("this test restarts PostgreSQL, which it cannot do to the external server of "
                        "NEXTBEST_TEST_POSTGRES_URL: unset it so that the tests start their own (make test does)")
        self.stop()
        self.start()

    def new_database(self) -> str:
        """Create an empty database; its URL."""
        import psycopg

        url = make_url(self.url)
        name = f"nextbest_test_{os.getpid()}_{next(_names)}"
        params = {"host": url.host, "port": url.port or 5432, "user": url.username, "dbname": url.database}
        params |= {"password": url.password} if url.password else {}
        with psycopg.connect(**params, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session: initdb in a temp folder (as user postgres when run as root)."""
    external = os.environ.get("NEXTBEST_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(url=external)
        return
    bindir = _bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found (make test installs postgresql)")
    root = Path(tempfile.mkdtemp(prefix="nextbest-pg-"))
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ("runuser", "-u", "postgres", "--")
        shutil.chown(root, "postgres", "postgres")
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", bindir, root / "data", as_user,
                            options, root / "server.log")  # fmt: skip
    initdb = [*as_user, str(bindir / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres",
              "-E", "UTF8", "--locale=C", "--no-sync"]  # fmt: skip
    done = subprocess.run(initdb, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"initdb failed: {done.stderr.strip()}"
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def pg_url(postgres: PostgresServer) -> str:
    """URL of a fresh, empty database on the session's server."""
    return postgres.new_database()


def test_full_flow_and_restart_on_postgres(pg_url: str) -> None:
    run_api_flow(pg_url)


def test_schema_is_migrated_and_url_uses_psycopg3(pg_url: str) -> None:
    from nextbest.platform.db import current_revision

    client = new_client(pg_url)
    store = client.app.state.store
    assert store.engine.dialect.name == "postgresql" and store.engine.dialect.driver == "psycopg"
    assert current_revision(store.engine) == "0003"
    assert client.get("/healthz").json() == {"status": "ok", "database": "postgresql"}
    close(client)
    again = new_client(pg_url)  # migrating an up-to-date schema is a no-op
    assert current_revision(again.app.state.store.engine) == "0003"
    close(again)


def test_binary_flow_on_postgres(pg_url: str) -> None:
    run_binary_flow(pg_url)


def test_migration_from_0001_on_postgres(pg_url: str) -> None:
    check_migration_from_0001(pg_url)


def test_metrics_and_migration_from_0002_on_postgres(postgres: PostgresServer, pg_url: str) -> None:
    """Migration 0003 and its JSON and boolean columns on PostgreSQL: a 0002 database upgraded (old rows get the
    defaults), then an experiment with every option (CUPED, posterior, secondary metrics, a guardrail) end to end."""
    check_migration_from_0002(pg_url)
    run_metrics_flow(postgres.new_database())


def test_concurrent_duplicates_on_postgres(pg_url: str) -> None:
    client = new_client(pg_url)
    experiment_id, _ = create(client)
    answers = post_concurrently(client.app.state.store, experiment_id)
    assert sum(a.accepted for a in answers) == 2000 and sum(a.duplicates for a in answers) == 3 * 2000
    assert client.get(f"/api/experiments/{experiment_id}").json()["progress"]["duplicate_decisions"] == 6000
    close(client)


def test_hostile_text_and_malformed_input_on_postgres(pg_url: str) -> None:
    client = new_client(pg_url)
    hostile = "'); DROP TABLE outcomes; -- <script>alert(1)</script> ✓"
    experiment_id, token = create(client, owner=hostile, name=hostile)
    url = f"/api/experiments/{experiment_id}/outcomes"
    assert client.post(url, json={"uuid": hostile, "arm": "new", "decision": 1, "revenue": 2.5},
                       headers=auth(token)).json() == {"accepted": 1, "duplicates": 0}  # fmt: skip
    for body in (b'{"uuid": "a\\u0000b", "arm": "new", "decision": 1, "revenue": 1}',
                 b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": NaN}'):  # fmt: skip
        response = client.post(url, content=body, headers={**auth(token), "content-type": "application/json"})
        assert response.status_code == 422
    name_with_nul = client.post("/api/experiments", json={**DESIGN, "name": "a\x00b"})
    assert name_with_nul.status_code == 422
    shown = client.get(f"/api/experiments/{experiment_id}").json()
    assert shown["owner"] == hostile and shown["name"] == hostile and shown["progress"]["new"] == 1
    close(client)


def test_recorded_data_survives_a_server_restart(postgres: PostgresServer, pg_url: str) -> None:
    client = new_client(pg_url)
    experiment_id, token = create(client)
    rows = [{"uuid": f"r{i}", "value": 1} for i in range(100)]
    assert client.post(f"/api/experiments/{experiment_id}/decisions", json=rows, headers=auth(token)).status_code == 200
    close(client)
    postgres.restart()
    restarted = new_client(pg_url)
    assert restarted.get(f"/api/experiments/{experiment_id}").json()["progress"]["decisions"] == 100
    close(restarted)

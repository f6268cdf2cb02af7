"""A throw-away PostgreSQL server on loopback (initdb + pg_ctl in a temporary folder, a free port) for the tests and
the platform benchmark; or an existing server named by URL.

``temporary_server()`` yields a :class:`PostgresServer` and removes the cluster at the end; ``new_database()``
creates an empty database on it and returns its URL. The server binaries are PostgreSQL 15's when installed, else
the newest installed version's, else the PATH's. Run as root, the cluster belongs to the user ``postgres`` (the
server refuses to run as root). Settings for throw-away data: no fsync, 100 connections at most.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nextbest.errors import NextbestError

_names = itertools.count(1)


def server_bindir() -> Path | None:
    """Folder of initdb/pg_ctl: PostgreSQL 15 preferred, else the newest installed version, else the PATH."""
    candidates = ["/usr/lib/postgresql/15/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    found = shutil.which("initdb")
    candidates += [str(Path(found).parent)] if found else []
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A PostgreSQL server: ``url`` of its maintenance database; ``restart()`` a full restart of a cluster this
    process started (``data`` set), refused for an external server."""

    url: str
    bindir: Path | None = None
    data: Path | None = None
    as_user: tuple[str, ...] = ()
    options: str = ""
    log: Path | None = None

    def pg_ctl(self, *args: str) -> None:
        if self.bindir is None or self.data is None:
            raise NextbestError("this PostgreSQL server was not started here: pg_ctl cannot control it")
        command = [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]
        done = subprocess.run(command, cwd=self.data.parent, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log and self.log.exists() else ""
            raise NextbestError(f"pg_ctl {' '.join(args)} failed: {done.stderr.strip()}\n{log}")

    def start(self) -> None:
        self.pg_ctl("-o", self.options, "-l", str(self.log), "start", "-w", "-t", "60")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def restart(self) -> None:
        if self.data is None:
            raise NextbestError("cannot restart the external PostgreSQL server of NEXTBEST_TEST_POSTGRES_URL: unset "
                                "it so that a server of our own is started (make test does)")  # fmt: skip
        self.stop()
        self.start()

    def new_database(self) -> str:
        """Create an empty database; its URL (the user needs CREATEDB on an external server)."""
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.url)
        name = f"nextbest_test_{os.getpid()}_{next(_names)}"
        params = {"host": url.host, "port": url.port or 5432, "user": url.username, "dbname": url.database}
        params |= {"password": url.password} if url.password else {}
        with psycopg.connect(**params, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return url.set(database=name).render_as_string(hide_password=False)


@contextmanager
def temporary_server() -> Iterator[PostgresServer]:
    """A fresh cluster in a temporary folder on a free loopback port, stopped and removed at the end.

    NextbestError (one line, plus the server log when it exists) when the binaries are missing or it does not start.
    """
    bindir = server_bindir()
    if bindir is None:
        raise NextbestError("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="nextbest-pg-"))
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ("runuser", "-u", "postgres", "--")
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    server = PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/postgres", bindir, root / "data", as_user,
                            options, root / "server.log")  # fmt: skip
    initdb = [*as_user, str(bindir / "initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres",
              "-E", "UTF8", "--locale=C", "--no-sync"]  # fmt: skip
    try:
        done = subprocess.run(initdb, cwd=root, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise NextbestError(f"initdb failed: {done.stderr.strip()}")
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

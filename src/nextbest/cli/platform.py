"""`nextbest platform ...`: run the experiment platform service (API; web pages when installed).

``serve --workers N`` runs N worker processes under uvicorn's own supervisor (``uvicorn.run(import string,
factory=True, workers=N)``) rather than gunicorn with uvicorn workers, because:

- it is the server ``--workers 1`` already runs, from the ``platform`` extra: one HTTP stack, one set of options
  and logs for 1 and N workers; gunicorn would be one more dependency (the ``scale`` extra) and its uvicorn worker
  class is deprecated in uvicorn itself (moved to the separate ``uvicorn-worker`` package);
- what production needs of a supervisor is there (uvicorn >= 0.30): it pings the workers, replaces one that dies
  or hangs, stops when a worker cannot start at all, SIGHUP replaces them one by one, SIGINT/SIGTERM stop them;
- the workers are spawned, not forked: no database connection or pool is ever shared by two processes (a preloaded
  gunicorn app would fork the parent's engine).

The parent migrates the schema before any worker starts (a database that cannot be opened is a one-line error,
and the upgrade runs once); each worker builds the app from ``$NEXTBEST_PLATFORM_DB``
(:func:`nextbest.platform.app.app_from_environment`) and finds the schema at head. Several processes need
PostgreSQL: SQLite has one writer and a file per machine, so ``--workers`` > 1 with a SQLite URL is refused.
"""

from __future__ import annotations

import errno
import os
import socket

import typer

from nextbest.errors import NextbestError

platform_app = typer.Typer(help="Experiment platform: design, run and read A/B tests over HTTP.", no_args_is_help=True)

DEFAULT_DB = "sqlite:///nextbest-platform.db"


def ensure_port_free(host: str, port: int) -> None:
    """NextbestError (one line) when ``host:port`` cannot be bound: in use, or not an address of this machine."""
    if not 0 < port < 65536:
        raise NextbestError(f"port {port} is not between 1 and 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise NextbestError(f"cannot resolve host {host!r}: {error.strerror}") from error
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise NextbestError(f"port {port} on {host} is already in use; choose another with --port") from error
            raise NextbestError(f"cannot listen on {host}:{port}: {error.strerror}") from error


@platform_app.command("serve")
def serve(
    db: str = typer.Option(DEFAULT_DB, "--db", help="Database URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level (debug, info, warning, error)."),
    workers: int = typer.Option(1, "--workers", min=1,
                                help="Worker processes (uvicorn's supervisor); more than 1 needs PostgreSQL."),
) -> None:
    """Migrate the database schema, then serve the API (OpenAPI at /openapi.json, docs at /docs) with uvicorn, in
    one process or in --workers N processes sharing the port (PostgreSQL only)."""
    try:
        import uvicorn

        from nextbest.platform import Store, create_app
        from nextbest.platform.app import DB_ENV, app_from_environment
        from nextbest.platform.db import normalize_url
    except ImportError as error:
        raise NextbestError(f"the platform needs its extra: pip install 'nextbest[platform]' ({error})") from error
    if normalize_url(db).drivername == "sqlite" and workers > 1:
        raise NextbestError("SQLite is single-process: use a postgresql:// database for --workers > 1")
    ensure_port_free(host, port)
    if workers == 1:
        app = create_app(db)
        database = app.state.store.engine.url.render_as_string(hide_password=True)
        typer.echo(f"nextbest platform on http://{host}:{port} (database {database})")
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    store = Store.open(db)  # the migration runs here, once, before any worker starts
    database = store.engine.url.render_as_string(hide_password=True)
    store.close()
    typer.echo(f"nextbest platform on http://{host}:{port} (database {database}, {workers} worker processes)")
    os.environ[DB_ENV] = db  # the spawned workers inherit it
    uvicorn.run(f"{app_from_environment.__module__}:{app_from_environment.__name__}", factory=True,
                workers=workers, host=host, port=port, log_level=log_level)  # fmt: skip

"""`nextbest platform ...`: run the experiment platform service (API; web pages when installed)."""

from __future__ import annotations

import errno
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
) -> None:
    """Migrate the database schema, then serve the API (OpenAPI at /openapi.json, docs at /docs) with uvicorn."""
    try:
        import uvicorn

        from nextbest.platform import create_app
        from nextbest.platform.db import normalize_url
    except ImportError as error:
        raise NextbestError(f"the platform needs its extra: pip install 'nextbest[platform]' ({error})") from error
    normalize_url(db)
    ensure_port_free(host, port)
    app = create_app(db)
    database = app.state.store.engine.url.render_as_string(hide_password=True)
    typer.echo(f"nextbest platform on http://{host}:{port} (database {database})")
    uvicorn.run(app, host=host, port=port, log_level=log_level)

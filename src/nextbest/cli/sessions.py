"""`nextbest sessions ...`: session retention — ingest page-level data into the data lake."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

sessions_app = typer.Typer(
    help="Session retention: page-level data into the lake (Taobao UserBehavior, the RL page log, or synthetic).",
    no_args_is_help=True,
)
SOURCES = ("taobao", "pagelog", "synthetic")


@sessions_app.command("ingest")
def ingest(
    source: str = typer.Option(..., "--source", help="taobao (UserBehavior CSV) | pagelog (RL page log) | synthetic."),
    path: Path | None = typer.Option(None, "--path", help="Input file (taobao: default the shared sample)."),
    lake: str = typer.Option(..., "--lake", help="Lake root: a folder, or s3://bucket/prefix."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
    key: str | None = typer.Option(None, "--key", help="S3 access key (default: AWS_ACCESS_KEY_ID)."),
    secret: str | None = typer.Option(None, "--secret", help="S3 secret key (default: AWS_SECRET_ACCESS_KEY)."),
    sessions: int = typer.Option(100_000, "--sessions", min=1, help="synthetic: sessions to generate."),
    seed: int = typer.Option(0, "--seed", help="synthetic: world seed."),
) -> None:
    """Clean the source into the page table and write it to <lake>/processed/pages.parquet; prints a JSON summary
    (rows read, pages, sessions, malformed rows with line numbers)."""
    from nextbest.data.lake import Lake
    from nextbest.errors import NextbestError

    if source not in SOURCES:
        raise NextbestError(f"--source {source!r}: choose one of {', '.join(SOURCES)}")
    target = Lake(lake, endpoint_url=endpoint_url, key=key, secret=secret)
    if source == "taobao":
        summary = _taobao(path, target)
    elif source == "pagelog":
        summary = _pagelog(path, target)
    else:
        summary = _synthetic(sessions, seed, target)
    typer.echo(json.dumps({"source": source, **summary}))


def _taobao(path: Path | None, lake) -> dict:
    from nextbest.data.paths import resolve_data_file
    from nextbest.data.taobao import sessionize

    source = resolve_data_file("taobao", "UserBehavior_sample.csv", path)
    with tempfile.TemporaryDirectory() as tmp:
        result = sessionize(source, Path(tmp) / "pages.parquet")
        written = lake.put_table("pages", Path(tmp) / "pages.parquet")
    summary = result.as_json()
    summary["path"] = summary.pop("source")
    return {**summary, "out": written}


def _pagelog(path: Path | None, lake) -> dict:
    from nextbest.data.pagelog import read_page_log
    from nextbest.errors import NextbestError

    if path is None:
        raise NextbestError("--source pagelog needs --path FILE")
    result = read_page_log(path)
    written = lake.write_table("pages", result.pages)
    return {"path": str(path), **result.summary(), "sessions": int(result.pages.session_id.nunique()),
            "out": written}  # fmt: skip


def _synthetic(sessions: int, seed: int, lake) -> dict:
    from nextbest.sim.sessions import SessionWorld, SessionWorldConfig

    world = SessionWorld(SessionWorldConfig(seed=seed))
    pages = world.pages(sessions)
    written = lake.write_table("pages", pages)
    return {"sessions": sessions, "pages": len(pages), "malformed_rows": 0, "truth": world.truth(), "out": written}


@sessions_app.command("eda")
def eda(
    lake: str = typer.Option(..., "--lake", help="Lake root holding processed/pages.parquet (folder or s3://)."),
    out: Path = typer.Option(..., "--out", help="Folder for eda.json, eda.html and figures/."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL)."),
    key: str | None = typer.Option(None, "--key", help="S3 access key (default: AWS_ACCESS_KEY_ID)."),
    secret: str | None = typer.Option(None, "--secret", help="S3 secret key (default: AWS_SECRET_ACCESS_KEY)."),
) -> None:
    """The five features and their hypotheses: churn balance, correlations, non-zero rewards, churn by hour and
    by depth, engagement -> retention, purchase power vs session reward; PNGs, one HTML page and eda.json."""
    from nextbest.data.lake import Lake
    from nextbest.report.eda import write_eda

    source = Lake(lake, endpoint_url=endpoint_url, key=key, secret=secret)
    page = write_eda(source.read_table("pages"), out, source.path("pages"))
    typer.echo(json.dumps({"html": str(page), "json": str(out / "eda.json"), "figures": str(out / "figures")}))

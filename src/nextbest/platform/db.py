"""Database of the experiment platform: SQLAlchemy 2 models, engine from a URL, Alembic migrations at start-up.

Contract:
- :func:`normalize_url` accepts ``sqlite:///path`` (embedded default), ``sqlite://`` (in memory) and
  ``postgresql://...`` / ``postgres://...`` (mapped to the psycopg 3 driver ``postgresql+psycopg://``); anything
  else raises :class:`~nextbest.errors.NextbestError` with a one-line reason.
- :func:`make_engine` returns an engine; SQLite files run in WAL mode with foreign keys on and a busy timeout.
- :func:`migrate` brings the schema to the newest revision of the migration scripts shipped in
  ``nextbest/platform/migrations`` (no ``alembic.ini``: the configuration is built in code). On PostgreSQL it holds
  an advisory lock while it runs, so that processes starting at once on one database (the workers of
  ``nextbest platform serve --workers N``, several servers) migrate one after the other: the first upgrades, the
  others find the schema at the newest revision and change nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool

from nextbest.errors import NextbestError

OWNER_MAX = 100
NAME_MAX = 200
UUID_MAX = 128
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The PostgreSQL advisory lock (one 64-bit key: b"nbmigrat") a migration holds until its transaction ends.
MIGRATION_LOCK = int.from_bytes(b"nbmigrat", "big", signed=True)

#: 64-bit ids on PostgreSQL; plain INTEGER on SQLite so that the column aliases the rowid (autoincrement).
RowId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the platform tables."""


class Experiment(Base):
    """One A/B experiment: its design, its assignment salt and the SHA-256 of its write token.

    ``metric`` is "continuous" (revenue), "binary" (a conversion, whose control rate is ``baseline``; null for the
    other metrics) or "ratio" (revenue over a per-unit denominator). Migration 0002 added both; experiments created
    before it are continuous. Migration 0003 added the analysis options: ``bayesian``, ``cuped``, ``correction``
    and ``metrics``, the secondary and guardrail specs in order, each a dict with its ``role`` ("secondary" or
    "guardrail") and its fields (name, kind, denominator; harm and max_harm for a guardrail)."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(OWNER_MAX), nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_MAX), nullable=False)
    metric: Mapped[str] = mapped_column(String(16), nullable=False, default="continuous")
    baseline: Mapped[float | None] = mapped_column(Double, nullable=True)
    alpha: Mapped[float] = mapped_column(Double, nullable=False)
    power: Mapped[float] = mapped_column(Double, nullable=False)
    effect: Mapped[float] = mapped_column(Double, nullable=False)
    sd: Mapped[float] = mapped_column(Double, nullable=False)
    sample_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    alternative: Mapped[str] = mapped_column(String(16), nullable=False)
    salt: Mapped[str] = mapped_column(String(64), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    duplicate_decisions: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    duplicate_outcomes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    bayesian: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cuped: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    correction: Mapped[str] = mapped_column(String(8), nullable=False, default="holm")
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)

    def specs(self, role: str) -> list[dict[str, Any]]:
        """The specs of the secondary metrics (``role`` "secondary") or the guardrails ("guardrail"), in order,
        without their role."""
        return [{key: value for key, value in spec.items() if key != "role"}
                for spec in self.metrics or [] if spec.get("role") == role]  # fmt: skip

    @property
    def secondary(self) -> list[dict[str, Any]]:
        return self.specs("secondary")

    @property
    def guardrails(self) -> list[dict[str, Any]]:
        return self.specs("guardrail")


class Decision(Base):
    """The new system's decision for one unit (1 = show, 0 = don't); the first one received wins."""

    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("experiment_id", "uuid", name="uq_decisions_experiment_uuid"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), nullable=False)
    uuid: Mapped[str] = mapped_column(String(UUID_MAX), nullable=False)
    value: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Outcome(Base):
    """What one unit spent (``revenue``; for a binary experiment 1.0 when it converted, 0.0 when not; for a ratio
    experiment the numerator), with the arm it was served and the decision applied; the first one received wins.
    ``covariate`` (CUPED experiments), ``denominator`` (ratio experiments) and ``values`` (the secondary and
    guardrail metrics by name; null when the experiment has none) came with migration 0003."""

    __tablename__ = "outcomes"
    __table_args__ = (
        UniqueConstraint("experiment_id", "uuid", name="uq_outcomes_experiment_uuid"),
        Index("ix_outcomes_experiment_arm", "experiment_id", "arm", "id"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), nullable=False)
    uuid: Mapped[str] = mapped_column(String(UUID_MAX), nullable=False)
    arm: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    revenue: Mapped[float] = mapped_column(Double, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    covariate: Mapped[float | None] = mapped_column(Double, nullable=True)
    denominator: Mapped[float | None] = mapped_column(Double, nullable=True)
    values: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)


def normalize_url(db_url: str) -> URL:
    """Parse ``db_url`` into a SQLAlchemy URL with the driver the platform uses; NextbestError if unusable."""
    try:
        url = make_url(db_url)
    except (ArgumentError, ValueError) as error:
        expected = "expected sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
        raise NextbestError(f"cannot read database URL {db_url!r}: {expected}") from error
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return url.set(drivername="sqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return url.set(drivername="postgresql+psycopg")
    raise NextbestError(
        f"unsupported database URL scheme {url.drivername!r}: use sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
    )


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """Per-connection SQLite settings: WAL journal, enforced foreign keys, 30 s busy timeout."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(db_url: str) -> Engine:
    """An engine for ``db_url`` (see :func:`normalize_url`); a SQLite file's folder must exist."""
    url = normalize_url(db_url)
    if url.drivername != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    database = url.database or ""
    if database in ("", ":memory:"):
        return _with_pragmas(
            create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        )
    folder = Path(database).expanduser().resolve().parent
    if not folder.is_dir():
        raise NextbestError(f"folder {folder} of the SQLite database does not exist")
    return _with_pragmas(create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}))


def _with_pragmas(engine: Engine) -> Engine:
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(connection=None):
    """The Alembic configuration of the platform, built in code; ``connection`` is handed to ``env.py``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema of ``engine``'s database to ``revision`` (idempotent; creates the tables on first use).

    On PostgreSQL the upgrade runs under the transaction-scoped advisory lock MIGRATION_LOCK: a concurrent migration
    waits for this one to commit, then reads the new revision and has nothing left to do (DDL is transactional
    there, so a failed upgrade leaves the schema as it was)."""
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

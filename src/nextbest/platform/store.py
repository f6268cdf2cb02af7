"""The platform's repository: every read and write of experiments, decisions and outcomes goes through `Store`.

The API (`nextbest.platform.app`) and the web pages call these methods; none of them knows SQL. Methods
raise :class:`UnknownExperiment` for an id that does not exist, :class:`DesignRejected` for an incoherent or
invalid design, :class:`TokenRejected` for a token that does not open the experiment, :class:`MetricMismatch` for
outcomes of the other metric (revenue for a binary experiment, a conversion for a continuous or ratio one) and for
rows that lack what the experiment measures or carry what it does not (:class:`RowRules`); nothing of a refused
request is recorded.

The result of a complete experiment is :func:`nextbest.experiments.analyze_experiment` of the first
``sample_size`` outcomes per arm (arrival order): the primary metric (revenue, with its covariate when the
experiment uses CUPED; the conversions; or revenue over denominator for a ratio), the secondary metrics and the
guardrails (from each outcome's ``values``), see :func:`_analysis_result`.

Several processes may write to one PostgreSQL database at once (``nextbest platform serve --workers N``), so
every guarantee lives in the database, never in a read-then-write in Python: a unit is recorded once per experiment
by the unique constraint on (experiment_id, uuid) and ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (the rows
it returns are the accepted ones; of two requests racing for one uuid, one inserts and the other waits for its
commit, then counts a duplicate); the duplicate counters are ``UPDATE ... SET n = n + k``; the completion check
locks the experiment's row (``FOR NO KEY UPDATE``) before it counts, so that of two requests finishing an
experiment at once the second sees the first's rows. Rows are inserted in uuid order (their ids, drawn first,
keep the arrival order), so that two requests sharing uuids cannot deadlock; should PostgreSQL still abort a
transaction for a deadlock or a serialization failure, :meth:`Store._write` runs it again (a few times at most).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import JSON, Connection, Engine, Insert, Table, Text, bindparam, cast, func, literal, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import sessionmaker

from nextbest.errors import NextbestError
from nextbest.experiments import (
    ExperimentAnalysis,
    Guardrail,
    MetricSamples,
    analyze_experiment,
    assign,
    assign_many,
    srm_test,
    validate_design,
    validate_design_binary,
)
from nextbest.platform.db import Decision, Experiment, Outcome, make_engine, migrate, utcnow
from nextbest.platform.schemas import (
    ARMS,
    AssignmentOut,
    AssignmentsOut,
    BinaryExperimentIn,
    ConversionIn,
    CreatedOut,
    DecisionIn,
    ExperimentIn,
    ExperimentOut,
    ExperimentSummary,
    IngestOut,
    OutcomeIn,
    OutcomeRecord,
    Progress,
    RatioExperimentIn,
    Result,
)
from nextbest.platform.tokens import hash_token, new_salt, new_token, verify_token

SRM_RATIOS = (0.5, 0.5)
LABELS = ("original", "new")
#: The primary metric's name in the analysis: with a space, so that no secondary metric or guardrail (identifiers)
#: can take it.
PRIMARY_NAMES = {"continuous": "revenue (primary)", "binary": "conversion (primary)",
                 "ratio": "revenue per denominator (primary)"}  # fmt: skip
Design = ExperimentIn | BinaryExperimentIn | RatioExperimentIn
#: SQLSTATEs of a transaction PostgreSQL aborted so that another could go on (deadlock, serialization failure):
#: running it again is safe and is what the server asks for.
RETRYABLE = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 5
T = TypeVar("T")


class PlatformError(NextbestError):
    """A request the platform refuses, explained in one line."""


class UnknownExperiment(PlatformError):
    """No experiment has this id."""


class TokenRejected(PlatformError):
    """The token does not open this experiment."""


class MetricMismatch(PlatformError):
    """Outcomes of the other metric than the experiment's, or a row that lacks what the experiment measures or
    carries what it does not; nothing of the request was recorded."""


class DesignRejected(PlatformError):
    """The design is invalid or incoherent; ``check`` holds the DesignCheck when one was computed."""

    def __init__(self, message: str, check: Any = None) -> None:
        super().__init__(message)
        self.check = check


def finite_or_none(value: Any) -> Any:
    """JSON-safe copy of ``value``: numpy scalars become Python numbers, NaN/inf become None, tuples lists."""
    if isinstance(value, dict):
        return {str(key): finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [finite_or_none(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Store:
    """Experiments, decisions and outcomes in one database (SQLite file or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, db_url: str) -> Store:
        """Connect to ``db_url`` and migrate its schema to the newest revision (NextbestError if unusable); on
        PostgreSQL concurrent openers migrate one after the other (see :func:`~nextbest.platform.db.migrate`)."""
        from sqlalchemy.exc import SQLAlchemyError

        engine = make_engine(db_url)
        try:
            migrate(engine)
        except SQLAlchemyError as error:
            engine.dispose()
            first = str(getattr(error, "orig", error) or error).strip().splitlines()[0]
            safe = engine.url.render_as_string(hide_password=True)
            raise NextbestError(f"cannot open database {safe}: {first}") from error
        return cls(engine)

    def close(self) -> None:
        """Release every pooled connection (what is recorded stays recorded)."""
        self.engine.dispose()

    # ------------------------------------------------------------------ experiments

    def create_experiment(self, spec: Design) -> CreatedOut:
        """Record a coherent design and return its id and token (the only time the token is available). A binary
        design is stored with the sd of one conversion at its baseline (``BinaryDesignCheck.sd``); the secondary
        metrics and guardrails in ``metrics``, in order, each with its role."""
        check = _check_design(spec)
        token = new_token()
        row = Experiment(
            **_design_columns(spec),
            **({"sd": check.sd} if isinstance(spec, BinaryExperimentIn) else {}),
            salt=new_salt(),
            token_hash=hash_token(token),
            created_at=utcnow(),
            status="running",
            duplicate_decisions=0,
            duplicate_outcomes=0,
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.flush()
            experiment_id = row.id
        return CreatedOut(
            id=experiment_id,
            token=token,
            required_sample_size=check.required_sample_size,
            achieved_power=check.achieved_power,
        )

    def list_experiments(self) -> list[ExperimentSummary]:
        """Every experiment, newest first, without tokens or salts."""
        with self._sessions() as session:
            rows = session.scalars(select(Experiment).order_by(Experiment.id.desc())).all()
            return [ExperimentSummary.model_validate(row) for row in rows]

    def summary(self, experiment_id: int) -> ExperimentSummary:
        """Configuration of one experiment (UnknownExperiment if absent)."""
        return ExperimentSummary.model_validate(self._experiment(experiment_id))

    def get_experiment(self, experiment_id: int) -> ExperimentOut:
        """Configuration, progress and (once both arms reached ``sample_size``) the result."""
        row = self._experiment(experiment_id)
        progress = self._progress(row)
        result = self._result(row, progress) if progress.complete else None
        summary = ExperimentSummary.model_validate(row)
        return ExperimentOut(**summary.model_dump(), progress=progress, result=result)

    def check_token(self, experiment_id: int, token: str) -> None:
        """Pass silently when ``token`` opens ``experiment_id``; UnknownExperiment / TokenRejected otherwise."""
        with self.engine.connect() as connection:
            stored = connection.scalar(select(Experiment.token_hash).where(Experiment.id == experiment_id))
        if stored is None:
            raise UnknownExperiment(f"experiment {experiment_id} does not exist")
        if not verify_token(token, stored):
            raise TokenRejected(f"this token does not open experiment {experiment_id}")

    def assignment(self, experiment_id: int, uuid: str) -> AssignmentOut:
        """The arm of ``uuid``: ``assign(uuid, salt)`` with a 50/50 split, the same in every process."""

        arm = assign(uuid, self._experiment(experiment_id).salt)
        return AssignmentOut(experiment_id=experiment_id, uuid=uuid, arm=arm)

    def assignments(self, experiment_id: int, uuids: Sequence[str]) -> AssignmentsOut:
        """The arms of many units at once (``assign_many``): equal to ``assignment`` unit by unit."""

        salt = self._experiment(experiment_id).salt
        arms = assign_many(list(uuids), salt).tolist() if uuids else []
        return AssignmentsOut(experiment_id=experiment_id, arms=arms)

    # ------------------------------------------------------------------ ingestion

    def add_decisions(self, experiment_id: int, rows: Sequence[DecisionIn]) -> IngestOut:
        """Record decisions; a uuid already recorded (or repeated in ``rows``) is a counted, ignored duplicate."""
        now = utcnow()
        unique = _first_per_uuid(rows)
        values = [{"experiment_id": experiment_id, "uuid": r.uuid, "value": r.value} for r in unique]

        def write(connection: Connection) -> IngestOut:
            accepted = self._insert_new(connection, Decision.__table__, values, now)
            duplicates = len(rows) - accepted
            if duplicates:
                self._count_duplicates(connection, experiment_id, Experiment.duplicate_decisions, duplicates)
            return IngestOut(accepted=accepted, duplicates=duplicates)

        return self._write(write)

    def add_outcomes(self, experiment_id: int, rows: Sequence[OutcomeIn]) -> IngestOut:
        """Record outcomes (first per uuid wins, duplicates counted); mark the experiment complete when due.
        MetricMismatch (nothing recorded) when the experiment's metric is binary, or when a row breaks the
        experiment's :class:`RowRules` (a missing or unexpected covariate, denominator or value)."""
        return self._add_outcomes(experiment_id, rows, ("continuous", "ratio"), lambda row: row.revenue)

    def add_conversions(self, experiment_id: int, rows: Sequence[ConversionIn]) -> IngestOut:
        """Record the conversions of a binary experiment as ``add_outcomes`` records revenue (stored as 1.0 / 0.0);
        MetricMismatch (nothing recorded) when the experiment's metric is not binary or a row breaks its rules."""
        return self._add_outcomes(experiment_id, rows, ("binary",), lambda row: float(row.converted))

    def _add_outcomes(self, experiment_id: int, rows: Sequence[Any], metrics: tuple[str, ...],
                      value_of: Callable[[Any], float]) -> IngestOut:  # fmt: skip
        """Insert the first row per uuid, its metric ``value_of(row)`` in the revenue column, once the experiment
        measures one of ``metrics`` and every row of the request follows its :class:`RowRules` (MetricMismatch
        otherwise); count duplicates; mark the experiment complete when due."""
        now = utcnow()

        def write(connection: Connection) -> IngestOut:
            found = connection.execute(select(Experiment.metric, Experiment.cuped, Experiment.metrics)
                                       .where(Experiment.id == experiment_id)).first()  # fmt: skip
            if found is None:
                raise UnknownExperiment(f"experiment {experiment_id} does not exist")
            if found.metric not in metrics:
                raise MetricMismatch(_mismatch(experiment_id, found.metric))
            RowRules.of(experiment_id, found.metric, found.cuped, found.metrics).check(rows)
            values = [_outcome_columns(experiment_id, row, value_of) for row in _first_per_uuid(rows)]
            accepted = self._insert_new(connection, Outcome.__table__, values, now)
            duplicates = len(rows) - accepted
            if duplicates:
                self._count_duplicates(connection, experiment_id, Experiment.duplicate_outcomes, duplicates)
            if accepted:
                self._mark_complete(connection, experiment_id)
            return IngestOut(accepted=accepted, duplicates=duplicates)

        return self._write(write)

    # ------------------------------------------------------------------ reads for pages and analysis

    def progress(self, experiment_id: int) -> Progress:
        """Outcomes per arm against the designed size per arm, decisions and duplicates received."""
        return self._progress(self._experiment(experiment_id))

    def result(self, experiment_id: int) -> Result | None:
        """The result once both arms reached ``sample_size`` outcomes, else None."""
        row = self._experiment(experiment_id)
        progress = self._progress(row)
        return self._result(row, progress) if progress.complete else None

    def outcomes(self, experiment_id: int, limit: int | None = None) -> list[OutcomeRecord]:
        """Recorded outcomes in arrival order (at most ``limit``), e.g. for the cumulative-effect plot."""
        self._experiment(experiment_id)
        query = select(Outcome).where(Outcome.experiment_id == experiment_id).order_by(Outcome.id).limit(limit)
        with self._sessions() as session:
            return [OutcomeRecord.model_validate(row) for row in session.scalars(query)]

    def arm_data(self, experiment_id: int, limit_per_arm: int | None = None,
                 with_values: bool = False) -> dict[str, ArmData]:  # fmt: skip
        """Each arm's outcomes as :class:`ArmData` (revenue, covariate, denominator; ``values`` when asked), in
        arrival order, at most ``limit_per_arm`` each."""
        self._experiment(experiment_id)
        with self.engine.connect() as connection:
            return {arm: _arm_data(connection, experiment_id, arm, limit_per_arm, with_values) for arm in ARMS}

    # ------------------------------------------------------------------ internals

    def _write(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` in one transaction, committed; run again from the start (at most WRITE_ATTEMPTS
        times in all, after a short pause) when the database aborted the transaction for a deadlock or a
        serialization failure (RETRYABLE), which only concurrent writers of PostgreSQL cause."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except DBAPIError as error:
                if attempt == WRITE_ATTEMPTS or getattr(error.orig, "sqlstate", None) not in RETRYABLE:
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _experiment(self, experiment_id: int) -> Experiment:
        with self._sessions() as session:
            row = session.get(Experiment, experiment_id)
        if row is None:
            raise UnknownExperiment(f"experiment {experiment_id} does not exist")
        return row

    def _insert_new(self, connection, table: Table, values: list[dict[str, Any]], received_at: datetime) -> int:
        """Insert rows whose (experiment_id, uuid) is new; number inserted. PostgreSQL: one statement with an array
        per column (:func:`_insert_unnested`); SQLite: SQLAlchemy's batched multi-row statements.

        Every row of the batch gets the same ``received_at``; arrival order within a batch is the row id. On
        PostgreSQL the ids are drawn first, in arrival order, and the rows are then inserted in uuid order: two
        requests racing for the same uuids wait for each other in one order, so they cannot deadlock."""
        if not values:
            return 0
        if connection.dialect.name == "postgresql":
            values = _in_uuid_order(connection, table, values)
            return len(connection.execute(_insert_unnested(table, values, received_at)).all())
        statement = _insert_ignoring_conflicts(connection.dialect.name, table)
        statement = statement.values(received_at=literal(received_at, table.c.received_at.type)).returning(table.c.id)
        return len(connection.execute(statement, values).all())

    @staticmethod
    def _count_duplicates(connection, experiment_id: int, column, count: int) -> None:
        statement = update(Experiment).where(Experiment.id == experiment_id).values({column: column + count})
        connection.execute(statement)

    def _arm_counts(self, connection, experiment_id: int) -> dict[str, int]:
        query = (
            select(Outcome.arm, func.count())
            .where(Outcome.experiment_id == experiment_id)
            .group_by(Outcome.arm)
        )
        counts = dict.fromkeys(ARMS, 0)
        counts.update({arm: int(n) for arm, n in connection.execute(query)})
        return counts

    def _mark_complete(self, connection, experiment_id: int) -> None:
        """Set the status "complete" once both arms have ``sample_size`` outcomes. The experiment's row is locked
        first (FOR NO KEY UPDATE, which inserts' foreign-key checks do not wait for; SQLite has one writer anyway),
        so that the count runs after any concurrent request's commit: the last of them sees every row."""
        required = connection.scalar(
            select(Experiment.sample_size).where(Experiment.id == experiment_id, Experiment.status == "running")
            .with_for_update(key_share=True)
        )
        if required is None:
            return
        counts = self._arm_counts(connection, experiment_id)
        if min(counts.values()) >= required:
            connection.execute(update(Experiment).where(Experiment.id == experiment_id).values(status="complete"))

    def _progress(self, row: Experiment) -> Progress:
        with self.engine.connect() as connection:
            counts = self._arm_counts(connection, row.id)
            decisions = connection.scalar(select(func.count()).where(Decision.experiment_id == row.id))
        return Progress(
            original=counts["original"],
            new=counts["new"],
            required_per_arm=row.sample_size,
            decisions=int(decisions or 0),
            duplicate_decisions=row.duplicate_decisions,
            duplicate_outcomes=row.duplicate_outcomes,
            complete=min(counts.values()) >= row.sample_size,
        )

    def _result(self, row: Experiment, progress: Progress) -> Result:
        with self.engine.connect() as connection:
            arms = {arm: _arm_data(connection, row.id, arm, row.sample_size, bool(row.metrics)) for arm in ARMS}
        return _analysis_result(row, arms, (progress.original, progress.new))


@dataclass(frozen=True)
class ArmData:
    """One arm's outcomes in arrival order: ``revenue`` (the metric: revenue, 1.0 / 0.0 for a conversion, the
    numerator of a ratio), ``covariate`` and ``denominator`` (NaN where absent) and ``values`` (one dict per row;
    empty when not read)."""

    revenue: np.ndarray
    covariate: np.ndarray
    denominator: np.ndarray
    values: list[dict[str, float]]

    def value(self, name: str) -> np.ndarray:
        """The values of ``name`` in every row (NaN where a row has none)."""
        return np.asarray([row.get(name, math.nan) for row in self.values], dtype=float)


def _arm_data(connection, experiment_id: int, arm: str, limit: int | None, with_values: bool) -> ArmData:
    """The first ``limit`` outcomes of ``arm`` (arrival order) as ArmData; ``values`` read when ``with_values``."""
    columns = [Outcome.revenue, Outcome.covariate, Outcome.denominator] + ([Outcome.values] if with_values else [])
    query = (select(*columns).where(Outcome.experiment_id == experiment_id, Outcome.arm == arm)
             .order_by(Outcome.id).limit(limit))  # fmt: skip
    rows = connection.execute(query).all()
    floats = [np.asarray([row[i] for row in rows], dtype=float).reshape(-1) for i in range(3)]
    values = [row[3] or {} for row in rows] if with_values else []
    return ArmData(*floats, values=values)


@dataclass(frozen=True)
class RowRules:
    """What every outcome (or conversion) row of one experiment must carry, and nothing more: a ``covariate``
    exactly when the experiment uses CUPED, a ``denominator`` exactly when its metric is a ratio, and in ``values``
    exactly the names of ``expected`` (each secondary metric and guardrail, and each ratio's denominator), 0 or 1
    for a binary-kind metric and >= 0 for a denominator. :meth:`check` raises MetricMismatch naming the first row
    (its index in the request) and the field that breaks them."""

    experiment_id: int
    metric: str
    cuped: bool
    expected: dict[str, str]
    binary: frozenset[str]
    denominators: frozenset[str]

    @classmethod
    def of(cls, experiment_id: int, metric: str, cuped: bool, specs: list[dict[str, Any]] | None) -> RowRules:
        """The rules of an experiment measuring ``metric`` (with CUPED when ``cuped``) with these metric specs."""
        expected: dict[str, str] = {}
        for spec in specs or []:
            expected.setdefault(spec["name"], f"{spec['role']} metric {spec['name']!r}")
        denominators = {spec["denominator"]: spec["name"] for spec in specs or [] if spec.get("denominator")}
        for denominator, name in denominators.items():
            expected.setdefault(denominator, f"the denominator of ratio metric {name!r}")
        binary = frozenset(spec["name"] for spec in specs or [] if spec.get("kind") == "binary")
        return cls(experiment_id, metric, bool(cuped), expected, binary, frozenset(denominators))

    def check(self, rows: Sequence[Any]) -> None:
        """MetricMismatch for the first row that breaks the rules (nothing of the request is recorded)."""
        for index, row in enumerate(rows):
            problem = self.problem(row)
            if problem:
                raise MetricMismatch(f"row {index}: {problem}; nothing of this request was recorded")

    def problem(self, row: Any) -> str | None:
        """What is wrong with ``row`` in one phrase, or None."""
        return self._covariate(getattr(row, "covariate", None)) or self._denominator(
            getattr(row, "denominator", None)) or self._values(row.values)  # fmt: skip

    def _covariate(self, covariate: float | None) -> str | None:
        if self.cuped and covariate is None:
            return (f"covariate is missing: experiment {self.experiment_id} uses CUPED, every outcome carries its "
                    "unit's pre-period value of the metric")  # fmt: skip
        if not self.cuped and covariate is not None:
            return f"covariate is not expected: experiment {self.experiment_id} does not use CUPED"
        return None

    def _denominator(self, denominator: float | None) -> str | None:
        if self.metric == "ratio" and denominator is None:
            return (f"denominator is missing: experiment {self.experiment_id} measures a ratio, every outcome "
                    "carries revenue (the numerator) and denominator")  # fmt: skip
        if self.metric != "ratio" and denominator is not None:
            return (f"denominator is not expected: experiment {self.experiment_id} measures {self.metric} "
                    "revenue, not a ratio")  # fmt: skip
        return None

    def _values(self, values: dict[str, float]) -> str | None:
        for name, what in self.expected.items():
            if name not in values:
                return f"values.{name} is missing ({what} of experiment {self.experiment_id})"
        for name, value in values.items():
            if name not in self.expected:
                declared = ", ".join(self.expected) or "none"
                return (f"values.{name} is not expected: experiment {self.experiment_id} has no metric of that name "
                        f"(its values: {declared})")  # fmt: skip
            if name in self.binary and value not in (0, 1):
                return f"values.{name} must be 0 or 1 ({self.expected[name]} is binary), got {value:g}"
            if name in self.denominators and value < 0:
                return f"values.{name} must be >= 0 (a ratio's denominator), got {value:g}"
        return None


def _outcome_columns(experiment_id: int, row: Any, value_of: Callable[[Any], float]) -> dict[str, Any]:
    """The columns of one outcome row: ``value_of(row)`` as revenue, covariate, denominator, values (null when
    empty)."""
    return {"experiment_id": experiment_id, "uuid": row.uuid, "arm": row.arm, "decision": row.decision,
            "revenue": value_of(row), "covariate": getattr(row, "covariate", None),
            "denominator": getattr(row, "denominator", None), "values": dict(row.values) or None}  # fmt: skip


def _design_columns(spec: Design) -> dict[str, Any]:
    """The experiments-table columns of ``spec``: its fields, with the secondary metrics and guardrails as one
    ``metrics`` list (each spec with its role)."""
    columns = spec.model_dump(exclude={"secondary", "guardrails"})
    columns["metrics"] = ([{"role": "secondary", **metric.model_dump()} for metric in spec.secondary]
                          + [{"role": "guardrail", **guard.model_dump()} for guard in spec.guardrails])  # fmt: skip
    return columns


def _first_per_uuid(rows: Sequence[Any]) -> list[Any]:
    """Rows with a uuid not seen earlier in ``rows`` (the first occurrence wins)."""
    first: dict[str, Any] = {}
    for row in rows:
        first.setdefault(row.uuid, row)
    return list(first.values())


def _in_uuid_order(connection, table: Table, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``values`` with their row ids drawn from the table's sequence in the order given (arrival order), sorted by
    uuid (PostgreSQL): a request that inserts in uuid order takes the unique index's entries in that order, so two
    requests sharing uuids never each wait for the other (the deadlock of opposite orders)."""
    drawn = select(func.nextval(func.pg_get_serial_sequence(table.name, "id"))).select_from(
        func.generate_series(1, len(values)))  # fmt: skip
    ids = sorted(connection.scalars(drawn).all())  # one session's nextval() only grows
    return sorted(({**row, "id": row_id} for row, row_id in zip(values, ids, strict=True)), key=lambda row: row["uuid"])


def _insert_unnested(table: Table, values: list[dict[str, Any]], received_at: datetime) -> Insert:
    """PostgreSQL: ``INSERT INTO table (c1, ..., received_at) SELECT unnest(:c1), ..., :received_at ON CONFLICT
    (experiment_id, uuid) DO NOTHING RETURNING id`` with one array parameter per column; the arrays unnest in
    lockstep, in the order of ``values``. A multi-row VALUES of 10,000 rows costs the driver more time to rewrite
    than the database to run (``benchmarks/platform_load.py``); this statement carries the same rows in a few
    parameters. JSON columns travel as text (``json.dumps``, so None is JSON null as SQLAlchemy stores it)."""
    from sqlalchemy.dialects.postgresql import ARRAY

    names = list(values[0])
    unnested = []
    for name in names:
        column = table.c[name]
        if isinstance(column.type, JSON):
            array = bindparam(name, [json.dumps(row[name]) for row in values], type_=ARRAY(Text))
            unnested.append(cast(func.unnest(array), column.type))
        else:
            unnested.append(func.unnest(bindparam(name, [row[name] for row in values], type_=ARRAY(column.type))))
    source = select(*unnested, literal(received_at, table.c.received_at.type))
    statement = _insert_ignoring_conflicts("postgresql", table).from_select([*names, "received_at"], source)
    return statement.returning(table.c.id)


def _insert_ignoring_conflicts(dialect: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT (experiment_id, uuid) DO NOTHING for SQLite or PostgreSQL."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - normalize_url admits only these two
        raise PlatformError(f"unsupported database dialect {dialect}")
    return insert(table).on_conflict_do_nothing(index_elements=["experiment_id", "uuid"])


def _mismatch(experiment_id: int, metric: str) -> str:
    """The one line of a MetricMismatch: what the experiment measures and where its outcomes go."""
    if metric == "binary":
        return (f"experiment {experiment_id} measures a conversion: post {{uuid, arm, decision, converted: 0 or 1}} to "
                f"/api/experiments/{experiment_id}/conversions")  # fmt: skip
    return (f"experiment {experiment_id} measures revenue: post {{uuid, arm, decision, revenue}} to "
            f"/api/experiments/{experiment_id}/outcomes")  # fmt: skip


def _check_design(spec: Design):
    """validate_design (validate_design_binary for a binary metric; a ratio is checked as a continuous metric on its
    linearized sd) of ``spec``; DesignRejected with the explanation when invalid or incoherent."""

    try:
        if isinstance(spec, BinaryExperimentIn):
            check = validate_design_binary(spec.alpha, spec.power, spec.baseline, spec.effect, spec.sample_size,
                                           spec.alternative)  # fmt: skip
        else:
            check = validate_design(spec.alpha, spec.power, spec.effect, spec.sd, spec.sample_size, spec.alternative)
    except (NextbestError, ValueError) as error:
        raise DesignRejected(str(error)) from error
    if not check.coherent:
        raise DesignRejected(check.message, check)
    return check


Guarded = tuple[MetricSamples, Guardrail]


def experiment_samples(row: Experiment, arms: dict[str, ArmData]) -> tuple[MetricSamples, list[MetricSamples],
                                                                             list[Guarded]]:  # fmt: skip
    """The primary metric's samples (continuous: revenue, with the covariate when the experiment uses CUPED;
    binary: the conversions; ratio: revenue over denominator), the secondary metrics' and the guardrails' (each
    read from ``values`` by name, a ratio's denominator by its ``denominator``), of the arms' outcomes."""
    control, treatment = arms["original"], arms["new"]
    primary: dict[str, Any] = {}
    if row.metric == "ratio":
        primary = {"denominator_control": control.denominator, "denominator_treatment": treatment.denominator}
    elif row.cuped:
        primary = {"covariate_control": control.covariate, "covariate_treatment": treatment.covariate}
    main = MetricSamples(PRIMARY_NAMES[row.metric], control.revenue, treatment.revenue, kind=row.metric, **primary)
    secondary = [_spec_samples(spec, control, treatment) for spec in row.secondary]
    guardrails = [(_spec_samples(spec, control, treatment), Guardrail(spec["harm"], float(spec["max_harm"])))
                  for spec in row.guardrails]  # fmt: skip
    return main, secondary, guardrails


def _spec_samples(spec: dict[str, Any], control: ArmData, treatment: ArmData) -> MetricSamples:
    """The samples of one secondary or guardrail metric: ``values[name]`` (over ``values[denominator]`` for a
    ratio) in each arm, of the kind the spec names."""
    name, denominator = spec["name"], spec.get("denominator")
    ratio = {"denominator_control": control.value(denominator),
             "denominator_treatment": treatment.value(denominator)} if denominator else {}  # fmt: skip
    return MetricSamples(name, control.value(name), treatment.value(name), kind=spec["kind"], **ratio)


def analyze_all(row: Experiment, arms: dict[str, ArmData]) -> ExperimentAnalysis:
    """:func:`~nextbest.experiments.analyze_experiment` of every metric of the experiment (its alpha, alternative,
    target effect, correction and Bayesian choice); a secondary metric or guardrail that cannot be analyzed is
    reported with its reason there. NextbestError / ValueError when the primary metric cannot be analyzed."""
    primary, secondary, guardrails = experiment_samples(row, arms)
    return analyze_experiment(primary, secondary, guardrails, alpha=row.alpha, alternative=row.alternative,
                              target_effect=row.effect, correction=row.correction, labels=LABELS,
                              bayesian=row.bayesian)  # fmt: skip


def _analysis_result(row: Experiment, arms: dict[str, ArmData], counts: tuple[int, int]) -> Result:
    """The result of a complete experiment: :func:`analyze_all` of the arms' outcomes (the Result's test fields are
    the primary metric's, against the design's target effect; the recommendation weighs the guardrails), plus the
    sample-ratio-mismatch test on ``counts``. When the primary metric cannot be analyzed, the verdict says why."""

    srm = srm_test(list(counts), list(SRM_RATIOS))
    common = {
        "srm_p_value": finite_or_none(float(srm.p_value)),
        "srm_threshold": float(srm.threshold),
        "srm_flagged": bool(srm.flagged),
        "srm_message": str(srm.message),
        "n_original": int(arms["original"].revenue.size),
        "n_new": int(arms["new"].revenue.size),
        "correction": row.correction,
    }
    try:
        experiment = analyze_all(row, arms)
    except (NextbestError, ValueError) as error:
        return Result(
            verdict=f"cannot analyze: {error}", effect=None, ci=(None, None), p_value=None,
            alpha_threshold=row.alpha, target_p_value=None, target_threshold=None,
            improves=False, improves_by_target=False, analysis={}, recommendation="no decision",
            summary=f"cannot analyze: {error}", **common,
        )  # fmt: skip
    analysis = experiment.primary.analysis
    posterior = experiment.primary.bayesian
    return Result(
        verdict=str(analysis.verdict),
        effect=finite_or_none(float(analysis.effect)),
        ci=tuple(finite_or_none([float(bound) for bound in analysis.ci])),
        p_value=finite_or_none(float(analysis.p_value)),
        alpha_threshold=float(analysis.alpha),
        target_p_value=finite_or_none(float(analysis.target_p_value)),
        target_threshold=float(analysis.target_alpha),
        improves=bool(analysis.improves),
        improves_by_target=bool(analysis.improves_by_target),
        analysis=finite_or_none(analysis.to_dict()),
        recommendation=experiment.recommendation,
        summary=experiment.summary,
        bayesian=finite_or_none(posterior.to_dict()) if posterior is not None else None,
        metrics=finite_or_none([m.to_dict() for m in (*experiment.secondary, *experiment.guardrails)]),
        **common,
    )


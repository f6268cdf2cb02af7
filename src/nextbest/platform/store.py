"""The platform's repository: every read and write of experiments, decisions and outcomes goes through `Store`.

The API (`nextbest.platform.app`) and the web pages call these methods; none of them knows SQL. Methods
raise :class:`UnknownExperiment` for an id that does not exist, :class:`DesignRejected` for an incoherent or
invalid design, :class:`TokenRejected` for a token that does not open the experiment, :class:`MetricMismatch` for
outcomes of the other metric (revenue for a binary experiment, a conversion for a continuous one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine, Insert, Table, func, literal, select, update
from sqlalchemy.orm import sessionmaker

from nextbest.errors import NextbestError
from nextbest.experiments import (
    analyze,
    analyze_proportions,
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
    Result,
)
from nextbest.platform.tokens import hash_token, new_salt, new_token, verify_token

SRM_RATIOS = (0.5, 0.5)


class PlatformError(NextbestError):
    """A request the platform refuses, explained in one line."""


class UnknownExperiment(PlatformError):
    """No experiment has this id."""


class TokenRejected(PlatformError):
    """The token does not open this experiment."""


class MetricMismatch(PlatformError):
    """Outcomes of the other metric than the experiment's; nothing of the request was recorded."""


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
        """Connect to ``db_url`` and migrate its schema to the newest revision (NextbestError if unusable)."""
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

    def create_experiment(self, spec: ExperimentIn | BinaryExperimentIn) -> CreatedOut:
        """Record a coherent design and return its id and token (the only time the token is available). A binary
        design is stored with the sd of one conversion at its baseline (``BinaryDesignCheck.sd``)."""
        check = _check_design(spec)
        token = new_token()
        row = Experiment(
            **spec.model_dump(),
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
        with self.engine.begin() as connection:
            accepted = self._insert_new(connection, Decision.__table__, values, now)
            duplicates = len(rows) - accepted
            if duplicates:
                self._count_duplicates(connection, experiment_id, Experiment.duplicate_decisions, duplicates)
        return IngestOut(accepted=accepted, duplicates=duplicates)

    def add_outcomes(self, experiment_id: int, rows: Sequence[OutcomeIn]) -> IngestOut:
        """Record outcomes (first per uuid wins, duplicates counted); mark the experiment complete when due.
        MetricMismatch (nothing recorded) when the experiment's metric is binary."""
        return self._add_outcomes(experiment_id, rows, "continuous", lambda row: row.revenue)

    def add_conversions(self, experiment_id: int, rows: Sequence[ConversionIn]) -> IngestOut:
        """Record the conversions of a binary experiment as ``add_outcomes`` records revenue (stored as 1.0 / 0.0);
        MetricMismatch (nothing recorded) when the experiment's metric is continuous."""
        return self._add_outcomes(experiment_id, rows, "binary", lambda row: float(row.converted))

    def _add_outcomes(self, experiment_id: int, rows: Sequence[Any], metric: str,
                      value_of: Callable[[Any], float]) -> IngestOut:  # fmt: skip
        """Insert the first row per uuid, its metric ``value_of(row)`` in the revenue column, once the experiment
        measures ``metric`` (MetricMismatch otherwise); count duplicates; mark the experiment complete when due."""
        now = utcnow()
        values = [
            {"experiment_id": experiment_id, "uuid": row.uuid, "arm": row.arm, "decision": row.decision,
             "revenue": value_of(row)}
            for row in _first_per_uuid(rows)
        ]
        with self.engine.begin() as connection:
            measured = connection.scalar(select(Experiment.metric).where(Experiment.id == experiment_id))
            if measured is None:
                raise UnknownExperiment(f"experiment {experiment_id} does not exist")
            if measured != metric:
                raise MetricMismatch(_mismatch(experiment_id, measured))
            accepted = self._insert_new(connection, Outcome.__table__, values, now)
            duplicates = len(rows) - accepted
            if duplicates:
                self._count_duplicates(connection, experiment_id, Experiment.duplicate_outcomes, duplicates)
            if accepted:
                self._mark_complete(connection, experiment_id)
        return IngestOut(accepted=accepted, duplicates=duplicates)

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

    def revenues(self, experiment_id: int, limit_per_arm: int | None = None) -> dict[str, np.ndarray]:
        """Revenue per arm ({"original": array, "new": array}) in arrival order, at most ``limit_per_arm`` each."""
        self._experiment(experiment_id)
        with self.engine.connect() as connection:
            return {arm: self._arm_revenues(connection, experiment_id, arm, limit_per_arm) for arm in ARMS}

    # ------------------------------------------------------------------ internals

    def _experiment(self, experiment_id: int) -> Experiment:
        with self._sessions() as session:
            row = session.get(Experiment, experiment_id)
        if row is None:
            raise UnknownExperiment(f"experiment {experiment_id} does not exist")
        return row

    def _insert_new(self, connection, table: Table, values: list[dict[str, Any]], received_at: datetime) -> int:
        """Insert rows whose (experiment_id, uuid) is new, in batched multi-row statements; number inserted.

        Every row of the batch gets the same ``received_at``; arrival order within a batch is the row id."""
        if not values:
            return 0
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
        required = connection.scalar(
            select(Experiment.sample_size).where(Experiment.id == experiment_id, Experiment.status == "running")
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

    @staticmethod
    def _arm_revenues(connection, experiment_id: int, arm: str, limit: int | None) -> np.ndarray:
        query = (
            select(Outcome.revenue)
            .where(Outcome.experiment_id == experiment_id, Outcome.arm == arm)
            .order_by(Outcome.id)
            .limit(limit)
        )
        return np.asarray(connection.scalars(query).all(), dtype=float)

    def _result(self, row: Experiment, progress: Progress) -> Result:
        with self.engine.connect() as connection:
            control = self._arm_revenues(connection, row.id, "original", row.sample_size)
            treatment = self._arm_revenues(connection, row.id, "new", row.sample_size)
        return _analysis_result(row, control, treatment, (progress.original, progress.new))


def _first_per_uuid(rows: Sequence[Any]) -> list[Any]:
    """Rows with a uuid not seen earlier in ``rows`` (the first occurrence wins)."""
    first: dict[str, Any] = {}
    for row in rows:
        first.setdefault(row.uuid, row)
    return list(first.values())


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


def _check_design(spec: ExperimentIn | BinaryExperimentIn):
    """validate_design (validate_design_binary for a binary metric) of ``spec``; DesignRejected with the
    explanation when invalid or incoherent."""

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


def _analysis_result(row: Experiment, control: np.ndarray, treatment: np.ndarray, counts: tuple[int, int]) -> Result:
    """Welch analysis (a binary metric: the two-proportion z-test of the conversions, 1.0 / 0.0) against the
    design's target effect, plus the sample-ratio-mismatch test on ``counts``."""

    srm = srm_test(list(counts), list(SRM_RATIOS))
    srm_fields = {
        "srm_p_value": finite_or_none(float(srm.p_value)),
        "srm_threshold": float(srm.threshold),
        "srm_flagged": bool(srm.flagged),
        "srm_message": str(srm.message),
        "n_original": int(control.size),
        "n_new": int(treatment.size),
    }
    try:
        if row.metric == "binary":
            analysis = analyze_proportions(
                int(control.sum()), control.size, int(treatment.sum()), treatment.size,
                alpha=row.alpha, alternative=row.alternative, target_effect=row.effect, labels=("original", "new"),
            )  # fmt: skip
        else:
            analysis = analyze(
                control,
                treatment,
                alpha=row.alpha,
                alternative=row.alternative,
                target_effect=row.effect,
                labels=("original", "new"),
            )
    except (NextbestError, ValueError) as error:
        return Result(
            verdict=f"cannot analyze: {error}", effect=None, ci=(None, None), p_value=None,
            alpha_threshold=row.alpha, target_p_value=None, target_threshold=None,
            improves=False, improves_by_target=False, analysis={}, **srm_fields,
        )
    details = finite_or_none(analysis.to_dict())
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
        analysis=details,
        **srm_fields,
    )


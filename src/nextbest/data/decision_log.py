"""The decision log: served decisions joined with their outcomes, one row per customer (uuid), for off-policy work.

A **decision** (``topic_decision_log``, written by ``nextbest stream run --log-decisions``) is
``{uuid, value, token, propensity, policy, decided_at, context}``: the action served, the exact probability with
which it was chosen, the policy id and the features it was decided on (``context``: name -> value, zeros left out).
An **outcome** (``topic_outcome``, written by the shop side) is ``{uuid, experiment, arm, decision, revenue, served,
at}``: what the customer was actually shown and spent, ``served`` true when that was the stream's decision.

``join_decisions`` keeps, per uuid, the first valid decision and the first outcome, and writes a row only when the
outcome applied the decision logged (``served`` and the same action): reward = revenue. Everything else is counted,
never guessed: a decision with no outcome yet (``awaiting_outcome``: late, collected by a later run), an outcome
whose applied action is not the logged one (``applied_other_action``: the control arm, a fallback), an outcome
with no decision (``outcome_without_decision``). ``merge`` adds new rows to an existing log, keeping the first row
per uuid, so collecting twice writes nothing new (idempotent per uuid).

Columns: uuid, action, propensity, policy, token, reward, decided_at, outcome_at, experiment, then one column per
context feature (``ctx_`` + its name; 0 where the decision left it out).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from nextbest.results import Result

CONTEXT_PREFIX = "ctx_"
BASE_COLUMNS = ("uuid", "action", "propensity", "policy", "token", "reward", "decided_at", "outcome_at", "experiment")


@dataclass(frozen=True)
class Rejected:
    """A message that cannot enter the log, and why (goes to the dead-letter topic)."""

    reason: str


def parse_decision(raw: bytes | str) -> dict[str, Any] | Rejected:
    """A decision-log message as a dict, or ``Rejected`` naming the field: uuid and value integers, propensity a
    number in (0, 1], policy a string, context an object of numbers."""
    record = _json_object(raw)
    if isinstance(record, Rejected):
        return record
    for name in ("uuid", "value"):
        if not _is_int(record.get(name)):
            return Rejected(f"bad_decision: field '{name}' must be an integer, got {record.get(name)!r}")
    propensity = record.get("propensity")
    if propensity is None:
        return Rejected("bad_decision: field 'propensity' is missing")
    if not _is_number(propensity) or not 0 < propensity <= 1:
        return Rejected(f"bad_decision: field 'propensity' must be in (0, 1], got {propensity!r}")
    if not isinstance(record.get("policy"), str):
        return Rejected("bad_decision: field 'policy' must be a string")
    context = record.get("context", {})
    if not isinstance(context, dict) or not all(_is_number(v) for v in context.values()):
        return Rejected("bad_decision: field 'context' must be an object of numbers")
    return record


def parse_outcome(raw: bytes | str) -> dict[str, Any] | Rejected:
    """An outcome message as a dict, or ``Rejected``: uuid and decision integers, revenue a finite number."""
    record = _json_object(raw)
    if isinstance(record, Rejected):
        return record
    for name in ("uuid", "decision"):
        if not _is_int(record.get(name)):
            return Rejected(f"bad_outcome: field '{name}' must be an integer, got {record.get(name)!r}")
    if not _is_number(record.get("revenue")):
        return Rejected(f"bad_outcome: field 'revenue' must be a number, got {record.get('revenue')!r}")
    return record


def _json_object(raw: bytes | str) -> dict[str, Any] | Rejected:
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        return Rejected(f"not_json: {error}")
    return record if isinstance(record, dict) else Rejected("not_an_object: expected a JSON object")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class JoinCounts(Result):
    """What a join found (see the module docstring)."""

    decisions: int
    outcomes: int
    joined: int
    awaiting_outcome: int
    applied_other_action: int
    outcome_without_decision: int
    repeated_decisions: int
    repeated_outcomes: int


@dataclass
class _Latest:
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)
    repeats: Counter[str] = field(default_factory=Counter)


def join_decisions(decisions: list[dict[str, Any]], outcomes: list[dict[str, Any]],
                   token: str | None = None) -> tuple[pd.DataFrame, JoinCounts]:  # fmt: skip
    """Rows of the decisions (of ``token`` when given) whose outcome applied them, and the counts."""
    latest = _Latest()
    for decision in decisions:
        if token is not None and decision.get("token") != token:
            continue
        if decision["uuid"] in latest.decisions:
            latest.repeats["decisions"] += 1
        else:
            latest.decisions[decision["uuid"]] = decision
    for outcome in outcomes:
        if outcome["uuid"] in latest.outcomes:
            latest.repeats["outcomes"] += 1
        else:
            latest.outcomes[outcome["uuid"]] = outcome
    rows, other = [], 0
    for uuid, decision in latest.decisions.items():
        outcome = latest.outcomes.get(uuid)
        if outcome is None:
            continue
        if not outcome.get("served", True) or outcome["decision"] != decision["value"]:
            other += 1
            continue
        rows.append(_row(decision, outcome))
    joined_or_other = len(rows) + other
    counts = JoinCounts(
        decisions=len(latest.decisions), outcomes=len(latest.outcomes), joined=len(rows),
        awaiting_outcome=len(latest.decisions) - joined_or_other, applied_other_action=other,
        outcome_without_decision=sum(uuid not in latest.decisions for uuid in latest.outcomes),
        repeated_decisions=latest.repeats["decisions"], repeated_outcomes=latest.repeats["outcomes"],
    )  # fmt: skip
    return _frame(rows), counts


def _row(decision: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    row = {"uuid": decision["uuid"], "action": decision["value"], "propensity": float(decision["propensity"]),
           "policy": decision["policy"], "token": str(decision.get("token", "")), "reward": float(outcome["revenue"]),
           "decided_at": float(decision.get("decided_at", math.nan)), "outcome_at": float(outcome.get("at", math.nan)),
           "experiment": int(outcome.get("experiment", -1))}  # fmt: skip
    row.update({CONTEXT_PREFIX + name: float(value) for name, value in decision.get("context", {}).items()})
    return row


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table (see ``_ordered``)."""
    return _ordered(pd.DataFrame(rows, columns=None if rows else list(BASE_COLUMNS)))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """The base columns first, then the context columns sorted, a missing context value 0."""
    context = sorted(c for c in frame.columns if c.startswith(CONTEXT_PREFIX))
    frame[context] = frame[context].fillna(0.0)
    return frame[[*BASE_COLUMNS, *context]]


def merge(existing: pd.DataFrame | None, new: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``existing`` plus the rows of ``new`` whose uuid it does not hold; returns (log, rows added)."""
    if existing is None or existing.empty:
        return new.reset_index(drop=True), len(new)
    fresh = new[~new["uuid"].isin(existing["uuid"])]
    merged = pd.concat([existing, fresh], ignore_index=True, sort=False)
    return _ordered(merged), len(fresh)


def context_columns(log: pd.DataFrame) -> list[str]:
    """The context feature columns of a decision log (prefix ``ctx_``)."""
    return [c for c in log.columns if c.startswith(CONTEXT_PREFIX)]


def context_frame(log: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The features ``features`` (by name, without the prefix) of each logged row; a feature never logged as
    non-zero is 0 (the worker leaves zeros out)."""
    return pd.DataFrame({name: (log[CONTEXT_PREFIX + name].to_numpy(dtype=float)
                                if CONTEXT_PREFIX + name in log.columns else 0.0)
                         for name in features}, index=log.index)  # fmt: skip

"""A funnel described as data: its steps, how an export records each, its company actions and costs (TOML).

    spec = load_funnel_spec("my_funnel.toml")     # or default_funnel_spec(): SalesCRM's, shipped in specs/
    reached, dropped = spec.reached(frame)        # which steps each lead of an export reached, who dropped out

The keys (``docs/funnel_spec.md`` has a worked example):

* ``name``, ``description``; ``covariates``: categorical columns that describe a lead;
* ``[[steps]]`` in funnel order: ``name``, ``taken_by`` (``company`` or ``lead``), ``key`` (the step carries
  information about later steps), ``requires`` (an earlier step only after which this one can be reached),
  ``history`` (false: modelled from the covariates alone, for a step the export records unreliably),
  ``bonus`` (the shaped training reward for first reaching a key step; 0 by default),
  ``reached``: one of ``{date = COLUMN}`` (a filled-in date), ``{status = COLUMN, levels = {VALUE = LEVEL,
  ...}, at_least = LEVEL}`` (a status at or above a level) or ``{column = COLUMN, values = [...]}`` (one of
  some values);
* ``[[actions]]`` in the order of the action space: ``name``, ``cost`` (>= 0), ``offers``: the steps the action
  can bring about, in order (the first one not yet reached whose requirement is met is offered; empty for
  waiting), ``signals_interest`` (default true: taking or declining the offer sets the lead's stage);
* ``[dropout]``: ``column`` and the ``values`` that mean the lead left; ``[conversion]``: the final ``step`` and
  its ``value``; ``uncertain_offer``: the company step whose offers the export never records (the evaluation
  varies the assumed share of leads offered it);
* ``[export]`` (optional): ``rename`` (export column → name used in the spec), ``id`` (the lead id column,
  default ``lead_id``), ``dates`` (further date columns to read, e.g. first and last contact),
  ``autofilled_dates`` (date columns whose dates after the latest date of the other date columns are
  defects), ``contact_span`` (the first- and last-contact date columns), ``date_format`` (a strftime format;
  default: ISO, ``DD.MM.YYYY`` and ``MM-DD-YYYY`` recognised).

A bad spec ends with one ``DataError`` naming the file and the key (``steps[3].reached``); an export that lacks
a column the spec names, naming the column.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import DataError

SPECS = Path(__file__).resolve().parent / "specs"
TAKERS = ("company", "lead")
#: The business targets a spec may set for the learned policy, in the order the evaluation reports them; each is
#: a lower bound (ROI: the learned policy's ROI must be above it). Rates and factors are of the conversion step
#: ("subscription") and of the first key step ("first_call"), named as SalesCRM's evaluation JSON names them.
TARGETS = ("subscription_rate", "subscription_factor_vs_random", "first_call_factor_vs_random",
           "cpa_reduction_vs_random", "improvement_vs_random_lower_bound", "roi")  # fmt: skip


@dataclass(frozen=True)
class Step:
    """A funnel step and how the export records that a lead reached it."""

    name: str
    taken_by: str
    key: bool
    reached: dict[str, Any]
    requires: str | None = None
    history: bool = True
    bonus: float = 0.0

    def columns(self) -> list[str]:
        return [self.reached[kind] for kind in ("date", "status", "column") if kind in self.reached]


@dataclass(frozen=True)
class Action:
    """A company action: its name, its cost and the steps it can bring about, in order."""

    name: str
    cost: float
    offers: tuple[str, ...]
    signals_interest: bool = True


@dataclass(frozen=True)
class Export:
    """How the export file is laid out: column renames, the id column, date columns and their format."""

    rename: dict[str, str]
    id: str = "lead_id"
    dates: tuple[str, ...] = ()
    autofilled_dates: tuple[str, ...] = ()
    contact_span: tuple[str, str] | None = None
    date_format: str | None = None


@dataclass(frozen=True)
class FunnelSpec:
    """A funnel: its steps in order, its actions, drop-out, conversion value and covariates (see the module doc)."""

    name: str
    description: str
    steps: tuple[Step, ...]
    actions: tuple[Action, ...]
    dropout_column: str
    dropout_values: frozenset[str]
    conversion_step: str
    conversion_value: float
    covariates: tuple[str, ...]
    source: str
    export: Export = Export(rename={})
    uncertain_offer: str | None = None
    targets: dict[str, float] = field(default_factory=dict)

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps)

    @property
    def key_steps(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps if step.key)

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(action.name for action in self.actions)

    @property
    def action_costs(self) -> np.ndarray:
        return np.array([action.cost for action in self.actions])

    @property
    def company_steps(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps if step.taken_by == "company")

    @property
    def lead_steps(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.steps if step.taken_by == "lead")

    def step(self, name: str) -> Step:
        return self.steps[self.step_names.index(name)]

    def columns(self) -> list[str]:
        """Every export column the spec reads (after renames)."""
        named = [column for step in self.steps for column in step.columns()]
        return list(dict.fromkeys([*named, self.dropout_column, *self.covariates]))

    def date_columns(self) -> list[str]:
        """The columns read as dates: the steps' date rules and the export's further dates."""
        named = [step.reached["date"] for step in self.steps if "date" in step.reached]
        return list(dict.fromkeys([*self.export.dates, *named]))

    def text_columns(self) -> list[str]:
        """The columns read as text: covariates, status and value columns, the drop-out column."""
        named = [step.reached[kind] for step in self.steps for kind in ("status", "column") if kind in step.reached]
        return list(dict.fromkeys([*self.covariates, *named, self.dropout_column]))

    def reached(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``reached`` bool [n, steps] (step j reached by lead i) and ``dropped`` bool [n] (left, not converted)."""
        absent = [column for column in self.columns() if column not in frame.columns and column not in self.covariates]
        if absent:
            raise DataError(f"{self.source}: the export lacks the columns {absent} that the funnel spec reads")
        reached = np.column_stack([_reached(step, frame) for step in self.steps])
        converted = reached[:, self.step_names.index(self.conversion_step)]
        dropped = frame[self.dropout_column].isin(self.dropout_values).to_numpy() & ~converted
        return reached, dropped


def _reached(step: Step, frame: pd.DataFrame) -> np.ndarray:
    rule = step.reached
    if "date" in rule:
        return frame[rule["date"]].notna().to_numpy()
    if "status" in rule:
        level = frame[rule["status"]].map(rule["levels"]).fillna(0).to_numpy(dtype=float)
        return level >= rule["at_least"]
    return frame[rule["column"]].isin(rule["values"]).to_numpy()


def default_funnel_spec() -> FunnelSpec:
    """SalesCRM's funnel, shipped with nextbest."""
    return load_funnel_spec(SPECS / "salescrm.toml")


def load_funnel_spec(path: str | Path) -> FunnelSpec:
    """Read and check a funnel spec (TOML); DataError naming the file and the key when it is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: funnel spec not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a TOML file ({error})") from error
    return _Checker(str(path)).spec(raw)


class _Checker:
    """Builds the typed spec from the parsed TOML, naming file and key in every refusal."""

    TOP = {"name", "description", "covariates", "steps", "actions", "dropout", "conversion", "export",
           "uncertain_offer", "targets"}  # fmt: skip
    EXPORT = {"rename", "id", "dates", "autofilled_dates", "contact_span", "date_format"}

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> DataError:
        return DataError(f"{self.source}: {key}: {message}")

    def spec(self, raw: dict[str, Any]) -> FunnelSpec:
        self._keys(raw, "the spec", self.TOP, {"name", "steps", "actions", "dropout", "conversion"})
        steps = tuple(self._step(item, i) for i, item in enumerate(self._list(raw, "steps")))
        names = [step.name for step in steps]
        self._unique(names, "steps")
        actions = tuple(self._action(item, i, names) for i, item in enumerate(self._list(raw, "actions")))
        self._unique([action.name for action in actions], "actions")
        self._offered(steps, actions)
        dropout, conversion = raw["dropout"], raw["conversion"]
        self._keys(dropout, "dropout", {"column", "values"}, {"column", "values"})
        self._keys(conversion, "conversion", {"step", "value"}, {"step", "value"})
        if conversion["step"] not in names:
            raise self.fail("conversion.step", f"{conversion['step']!r} is not one of the steps {names}")
        value = conversion["value"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.fail("conversion.value", f"must be a positive number, got {value!r}")
        covariates = raw.get("covariates", [])
        if not isinstance(covariates, list) or not all(isinstance(c, str) for c in covariates):
            raise self.fail("covariates", "must be a list of column names")
        self._requirements(steps)
        if not any(step.key for step in steps if step.name != conversion["step"]):
            raise self.fail("steps", "mark at least one step before the conversion `key = true`")
        uncertain = raw.get("uncertain_offer")
        if uncertain is not None and uncertain not in [s.name for s in steps if s.taken_by == "company"]:
            raise self.fail("uncertain_offer", f"{uncertain!r} is not one of the company steps")
        return FunnelSpec(str(raw["name"]), str(raw.get("description", "")), steps, actions, str(dropout["column"]),
                          frozenset(map(str, dropout["values"])), conversion["step"], float(value),
                          tuple(covariates), self.source, self._export(raw.get("export", {})),
                          uncertain, self._targets(raw.get("targets", {})))  # fmt: skip

    def _targets(self, table: Any) -> dict[str, float]:
        self._keys(table, "targets", set(TARGETS), set())
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(f"targets.{key}", f"must be a number, got {value!r}")
        return {key: float(table[key]) for key in TARGETS if key in table}

    def _offered(self, steps: tuple[Step, ...], actions: tuple[Action, ...]) -> None:
        """Actions offer company steps only, and every company step is offered by exactly one action."""
        offered = [(i, name) for i, action in enumerate(actions) for name in action.offers]
        takers = {step.name: step.taken_by for step in steps}
        for i, name in offered:
            if takers[name] != "company":
                raise self.fail(f"actions[{i}].offers", f"{name!r} is the lead's own step; actions offer company steps")
        for step in steps:
            count = sum(name == step.name for _, name in offered)
            if step.taken_by == "company" and count != 1:
                raise self.fail("actions", f"company step {step.name!r} is offered by {count} actions; give it one")
        if all(action.offers for action in actions):
            raise self.fail("actions", "give a waiting action (offers = []): the policy must be able to do nothing")

    def _requirements(self, steps: tuple[Step, ...]) -> None:
        names = [step.name for step in steps]
        for i, step in enumerate(steps):
            if step.requires is not None and step.requires not in names[:i]:
                raise self.fail(f"steps[{i}].requires", f"{step.requires!r} is not an earlier step ({names[:i]})")

    def _export(self, table: Any) -> Export:
        self._keys(table, "export", self.EXPORT, set())
        rename = table.get("rename", {})
        if not isinstance(rename, dict) or not all(isinstance(v, str) for v in rename.values()):
            raise self.fail("export.rename", "must map export column names to names")
        lists = {}
        for key in ("dates", "autofilled_dates", "contact_span"):
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(f"export.{key}", "must be a list of column names")
            lists[key] = tuple(value)
        span = lists["contact_span"]
        if span and len(span) != 2:
            raise self.fail("export.contact_span", f"give two columns [first, last], got {list(span)}")
        date_format = table.get("date_format")
        if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
            raise self.fail("export.date_format", f"must be a strftime format such as '%d/%m/%Y', got {date_format!r}")
        return Export(dict(rename), str(table.get("id", "lead_id")), lists["dates"], lists["autofilled_dates"],
                      (span[0], span[1]) if span else None, date_format)  # fmt: skip

    def _keys(self, table: Any, where: str, allowed: set[str], required: set[str]) -> None:
        if not isinstance(table, dict):
            raise self.fail(where, "must be a table")
        unknown, missing = sorted(set(table) - allowed), sorted(required - set(table))
        if unknown:
            raise self.fail(where, f"unknown keys {unknown} (known: {sorted(allowed)})")
        if missing:
            raise self.fail(where, f"missing keys {missing}")

    def _list(self, raw: dict[str, Any], key: str) -> list[Any]:
        if not isinstance(raw[key], list) or not raw[key]:
            raise self.fail(key, f"needs at least one [[{key}]] entry")
        return raw[key]

    def _unique(self, names: list[str], key: str) -> None:
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise self.fail(key, f"names repeated: {repeated}")

    def _step(self, item: Any, i: int) -> Step:
        where = f"steps[{i}]"
        allowed = {"name", "taken_by", "key", "reached", "requires", "history", "bonus"}
        self._keys(item, where, allowed, {"name", "taken_by", "reached"})
        if item["taken_by"] not in TAKERS:
            raise self.fail(f"{where}.taken_by", f"must be one of {TAKERS}, got {item['taken_by']!r}")
        rule = self._rule(item["reached"], f"{where}.reached")
        requires, bonus = item.get("requires"), item.get("bonus", 0.0)
        if isinstance(bonus, bool) or not isinstance(bonus, int | float) or bonus < 0:
            raise self.fail(f"{where}.bonus", f"must be a number >= 0, got {bonus!r}")
        return Step(str(item["name"]), item["taken_by"], bool(item.get("key", False)), rule,
                    None if requires is None else str(requires), bool(item.get("history", True)),
                    float(bonus))  # fmt: skip

    def _rule(self, rule: Any, where: str) -> dict[str, Any]:
        kinds = {"date": {"date"}, "status": {"status", "levels", "at_least"}, "column": {"column", "values"}}
        if not isinstance(rule, dict) or len([k for k in kinds if k in rule]) != 1:
            raise self.fail(where, "give exactly one of {date = COLUMN}, {status = COLUMN, levels, at_least}, "
                                   "{column = COLUMN, values}")  # fmt: skip
        kind = next(k for k in kinds if k in rule)
        self._keys(rule, where, kinds[kind], kinds[kind])
        levels = rule.get("levels")
        if kind == "status" and (not isinstance(levels, dict) or rule["at_least"] not in levels.values()):
            raise self.fail(where, "levels must map status values to levels and at_least must be one of the levels")
        if kind == "column" and not isinstance(rule["values"], list):
            raise self.fail(f"{where}.values", "must be a list")
        return dict(rule)

    def _action(self, item: Any, i: int, steps: list[str]) -> Action:
        where = f"actions[{i}]"
        self._keys(item, where, {"name", "cost", "offers", "signals_interest"}, {"name", "cost", "offers"})
        cost = item["cost"]
        if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
            raise self.fail(f"{where}.cost", f"must be a number >= 0, got {cost!r}")
        unknown = [step for step in item["offers"] if step not in steps]
        if unknown:
            raise self.fail(f"{where}.offers", f"unknown steps {unknown}")
        return Action(str(item["name"]), float(cost), tuple(item["offers"]), bool(item.get("signals_interest", True)))

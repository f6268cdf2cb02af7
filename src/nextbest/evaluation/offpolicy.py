"""Off-policy evaluation of a target policy on any logged-bandit table (`nextbest ope run`).

    report = evaluate_logged_table(logs, action_col, reward_col, pscore_col, policy_csv)

The log is a CSV or Parquet table with one row per served decision: the action served, its reward and the
probability with which the logging policy served it, plus any context columns. The target policy is a CSV of
action probabilities: zero or more context columns (matched by name in the log), the action column and
``probability``, summing to 1 within each context; or an exported model file. The reward model of the DM/DR
family is a ridge regression per action on the encoded context features (`nextbest.models.tables.TableEncoding`:
numeric as is, categories one-hot; default every other column, or a decision log's ``ctx_`` columns),
cross-fitted on two folds so that no row's own reward enters its prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge

from nextbest.data.decision_log import CONTEXT_PREFIX, context_columns
from nextbest.errors import DataError
from nextbest.models.tables import TableEncoding, read_table
from nextbest.ope import ESTIMATORS, LoggedBandit, OPEEstimate, SupportViolation
from nextbest.results import Result
from nextbest.stats import mean_interval

PROBABILITY = "probability"


class OnPolicy(Result):
    """The logging policy's own mean reward in the log, with its normal interval."""

    mean: float
    ci: list[float]
    n: int


class OPEReport(Result):
    """ope.json: every estimator's value of the target policy, the logged policy's own value and the setup."""

    logs: str
    policy: str
    actions: list[str]
    features: list[str]
    n: int
    estimators: dict[str, OPEEstimate]
    on_policy: OnPolicy
    unsupported_mass: float
    refused: dict[str, str]


def evaluate_logged_table(logs: str | Path, action_col: str, reward_col: str, pscore_col: str,
                          policy: str | Path, features: Sequence[str] | None = None, estimators: Sequence[str] = (),
                          n_boot: int = 200, seed: int = 0, level: float = 0.95,
                          interval: str = "normal") -> OPEReport:  # fmt: skip
    """Estimate the target policy in ``policy`` from the decisions logged in ``logs`` (see the module doc)."""
    frame = read_table(logs)
    source = str(logs)
    for column in (action_col, reward_col, pscore_col):
        if column not in frame.columns:
            raise DataError(f"{source}: no column {column!r} (columns: {', '.join(map(str, frame.columns[:12]))})")
    actions = sorted(frame[action_col].dropna().astype(str).unique().tolist())
    if Path(policy).suffix.lower() in MODEL_SUFFIXES:
        target = model_probabilities(policy, frame, actions)
    else:
        target, _ = target_probabilities(read_table(policy), frame, action_col, actions, str(policy))
    pscores = _numbers(frame, pscore_col, source)
    bad = np.flatnonzero(~((pscores > 0) & (pscores <= 1)))
    if bad.size:
        raise DataError(f"{source}, row {int(bad[0]) + 2}, column {pscore_col!r}: a propensity must be in (0, 1], got "
                        f"{pscores[bad[0]]:g} ({bad.size} such rows)")  # fmt: skip
    log = LoggedBandit(_codes(frame, action_col, actions, source), _numbers(frame, reward_col, source), pscores,
                       len(actions))  # fmt: skip
    default = context_columns(frame) or list(frame.columns)  # a decision log: its context features
    chosen = [c for c in (features if features is not None else default)
              if c not in (action_col, reward_col, pscore_col)]  # fmt: skip
    model = cross_fitted_rewards(frame, chosen, log, seed, source)
    names = list(estimators) or list(ESTIMATORS)
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown:
        raise DataError(f"unknown estimators {unknown}; choose from {', '.join(ESTIMATORS)}")
    results, refused = {}, {}
    for name in names:
        try:
            results[name] = ESTIMATORS[name]().estimate(log, target, model, level=level, n_boot=n_boot, seed=seed,
                                                        interval=interval)  # fmt: skip
        except SupportViolation as refusal:  # reported, not fatal: the other estimators still answer
            refused[name] = str(refusal)
    own = mean_interval(log.rewards, level)
    return OPEReport(logs=source, policy=str(policy), actions=actions, features=list(chosen), n=len(log),
                     estimators=results, on_policy=OnPolicy(mean=own.mean, ci=[own.low, own.high], n=own.n),
                     unsupported_mass=log.unsupported_mass(target), refused=refused)  # fmt: skip


MODEL_SUFFIXES = (".onnx", ".pmml")


def model_probabilities(path: str | Path, logs: pd.DataFrame, actions: list[str]) -> np.ndarray:
    """π(a | x_i) [n, k] of an exported targeting model (``nextbest target export``): action "1" (show) where it
    shows, "0" elsewhere, probability 1. Its features are read from the log's columns of the same name, or of the
    name with the decision log's ``ctx_`` prefix (a decision-log feature absent from the table is 0)."""
    from nextbest.models.serving import ExportedModel

    model = ExportedModel.load(path)
    unknown = sorted(set(actions) - {"0", "1"})
    if unknown:
        raise DataError(f"{path}: a targeting model decides 0 (don't show) or 1 (show), the log's actions include "
                        f"{unknown}")  # fmt: skip
    prefixed = any(str(c).startswith(CONTEXT_PREFIX) for c in logs.columns)
    columns = {}
    for name in model.features:
        if name in logs.columns:
            columns[name] = logs[name]
        elif prefixed:
            columns[name] = logs.get(CONTEXT_PREFIX + name, pd.Series(0.0, index=logs.index))
        else:
            raise DataError(f"{path}: the model reads the feature {name!r}, which the log has no column for")
    X = pd.DataFrame(columns).apply(pd.to_numeric, errors="coerce")
    bad = np.argwhere(X.isna().to_numpy())
    if bad.size:
        row, col = bad[0]
        raise DataError(f"the log's row {int(row) + 2}, feature {X.columns[col]!r}: not a number")
    shows = model.decide(X.to_numpy(dtype=float))
    target = np.zeros((len(logs), len(actions)))
    for value, action in ((1, "1"), (0, "0")):
        if action in actions:
            target[shows == value, actions.index(action)] = 1.0
    missing = np.flatnonzero(target.sum(axis=1) == 0)
    if missing.size:
        raise DataError(f"{path}: the model chooses action {int(shows[missing[0]])} at row {int(missing[0]) + 2}, "
                        "which the log never took: nothing to estimate it from")  # fmt: skip
    return target


def target_probabilities(policy: pd.DataFrame, logs: pd.DataFrame, action_col: str, actions: list[str],
                         source: str) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """π(a | x_i) [n, k] for every logged row from a policy table (context columns, action, probability)."""
    for column in (action_col, PROBABILITY):
        if column not in policy.columns:
            raise DataError(f"{source}: the target policy needs the columns {action_col!r} and {PROBABILITY!r}")
    contexts = [c for c in policy.columns if c not in (action_col, PROBABILITY)]
    missing = [c for c in contexts if c not in logs.columns]
    if missing:
        raise DataError(f"{source}: context columns {missing} are not in the log")
    policy = policy.assign(**{action_col: policy[action_col].astype(str)})
    unknown = sorted(set(policy[action_col]) - set(actions))
    if unknown:
        raise DataError(f"{source}: actions {unknown} never appear in the log's {action_col!r} column ({actions})")
    probability = pd.to_numeric(policy[PROBABILITY], errors="coerce")
    bad = np.flatnonzero(probability.isna().to_numpy() | (probability < 0).to_numpy() | (probability > 1).to_numpy())
    if bad.size:
        raise DataError(f"{source}, row {int(bad[0]) + 2}, column {PROBABILITY!r}: must be a number in [0, 1]")
    keys = [policy[c].astype(str) for c in contexts]
    wide = (policy.assign(**{PROBABILITY: probability})
            .pivot_table(index=keys or None, columns=action_col, values=PROBABILITY, aggfunc="sum", fill_value=0.0)
            if contexts else None)  # fmt: skip
    if wide is None:
        row = probability.groupby(policy[action_col]).sum().reindex(actions, fill_value=0.0).to_numpy()
        _sums_to_one(row[None, :], ["(every context)"], source)
        return np.tile(row, (len(logs), 1)), contexts
    wide = wide.reindex(columns=actions, fill_value=0.0)
    _sums_to_one(wide.to_numpy(), [str(i) for i in wide.index], source)
    logged_keys = pd.MultiIndex.from_arrays([logs[c].astype(str) for c in contexts]) if len(contexts) > 1 \
        else pd.Index(logs[contexts[0]].astype(str))  # fmt: skip
    rows = wide.reindex(logged_keys)
    uncovered = np.flatnonzero(rows.isna().any(axis=1).to_numpy())
    if uncovered.size:
        raise DataError(f"{source}: the target policy gives no probabilities for the log's context "
                        f"{logged_keys[int(uncovered[0])]!r} (row {int(uncovered[0]) + 2} of the log)")  # fmt: skip
    return rows.to_numpy(dtype=float), contexts


def _sums_to_one(table: np.ndarray, labels: list[str], source: str) -> None:
    off = np.flatnonzero(~np.isclose(table.sum(axis=1), 1.0, atol=1e-6))
    if off.size:
        raise DataError(f"{source}: the probabilities of context {labels[int(off[0])]} sum to "
                        f"{table[int(off[0])].sum():.6g}, not 1")  # fmt: skip


def cross_fitted_rewards(frame: pd.DataFrame, features: list[str], log: LoggedBandit, seed: int,
                         source: str) -> np.ndarray:  # fmt: skip
    """q̂(x_i, a) [n, k]: per action a ridge regression of the reward on the encoded features, fitted on the other
    fold (two folds; an action too rare in a fold falls back to that fold's mean reward of the action)."""
    n = len(log)
    if features:
        encoded = TableEncoding.fit(frame.assign(__reward=log.rewards), "__reward", features, source)
        x = encoded.transform(frame, source).to_numpy(dtype=float)
    else:
        x = np.zeros((n, 0))
    fold = np.random.default_rng(seed).integers(0, 2, size=n)
    out = np.empty((n, log.n_actions))
    for part in (0, 1):
        fit, predict = fold != part, fold == part
        for action in range(log.n_actions):
            rows = fit & (log.actions == action)
            mean = float(log.rewards[rows].mean()) if rows.any() else float(log.rewards[fit].mean())
            if rows.sum() <= x.shape[1] + 1 or x.shape[1] == 0:
                out[predict, action] = mean
                continue
            out[predict, action] = Ridge(alpha=1.0).fit(x[rows], log.rewards[rows]).predict(x[predict])
    return out


def _codes(frame: pd.DataFrame, column: str, actions: list[str], source: str) -> np.ndarray:
    values = frame[column]
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise DataError(f"{source}, row {int(missing[0]) + 2}, column {column!r}: no action")
    lookup = {a: i for i, a in enumerate(actions)}
    return values.astype(str).map(lookup).to_numpy(dtype=np.int64)


def _numbers(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        raise DataError(f"{source}, row {int(bad[0]) + 2}, column {column!r}: not a number "
                        f"({frame[column].iloc[int(bad[0])]!r})")  # fmt: skip
    return values.to_numpy(dtype=float)

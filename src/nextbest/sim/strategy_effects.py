"""Page-strategy effects estimated from an exploration log instead of assumed.

Serve each page's strategy at random, log the probability it was chosen with (its propensity), and estimate the
multipliers that ``SessionSimulator`` otherwise assumes:

    log = explore_pages(true_world, n_sessions=5_000, seed=0)             # one row per page (LOG_COLUMNS)
    estimates = estimate_strategies(log, STRATEGIES, reference="mixed")  # a StrategyEstimates
    SessionSimulator.from_pages(pages, churn, value, **estimates.simulator_options("log.parquet"))

The log holds what a shop can log: ``session_id``, ``page_id`` (1, 2, ... within the session), the page's
``hour``, ``purchase_power``, ``strategy``, ``propensity``, ``engagement``, ``bought`` (0/1), ``spend`` and ``done``.
The exposure to fatiguing strategies is recomputed from each session's strategy sequence; nothing hidden is logged.

Estimands are relative to the reference strategy (multipliers 1 by definition, like "mixed"). For a strategy s,
sums run over its pages i ("ref": the reference's pages), with w_i = 1 / propensity_i:

    engagement  engagement ~ Poisson(base(pp) e_s), so e_s = E[eng | s] / E[eng | ref] over one population of
                reached pages (randomization makes the strategies' pages comparable; the weights undo a logging
                policy that favours some pages):
                    ê_s = (Σ_s w eng / Σ_s w) / (Σ_ref w eng / Σ_ref w)
    price       a purchase at purchase power pp costs price(pp) p_s:
                    π̂(pp) = Σ_{ref, bought, pp} w spend / Σ_{ref, bought, pp} w
                    p̂_s   = Σ_{s, bought} w spend / Σ_{s, bought} w π̂(pp)
    buy         P(bought | page, s) = q(page) (1 + (b_s - 1) g),   g = (1 + ps_s (5 - pp) / 5) exp(-f_s x),
                q(page) = P(bought | page, ref): the baseline given the page (its engagement, which s moves, its
                hour, depth and power), fitted on the reference pages in the simulator's own form,
                    q̂ = max(0, V̂(page)) / π̂(pp),   V̂(page) = [1, page_features] β̂,
                    β̂ = weighted least squares of spend on [1, page_features] over the reference pages with V̂ > 0
                        (iterated to its fixed point: the least-squares fit of a linear value clipped at 0),
                then the moment match Σ_s w bought = Σ_s w q̂ (1 + (b - 1) g):
                    b̂_s = 1 + Σ_s w (bought - q̂) / Σ_s w q̂ g
                A raw purchase-rate ratio would mix in the engagement effect (more engaged pages sell more at
                b = 1); conditioning on the page through q̂ does not.

``power_sensitivity`` and ``fatigue`` stay assumed: they shape how the buy lift varies with purchase power and
exposure, which would need a nonlinear fit of that second-order variation (not attempted here), and ``fatigue > 0``
also decides which strategies count towards the exposure. b̂_s is estimated given them (g uses the assumed values
and the exposure x recomputed with the assumed fatiguing strategies and ``exposure_decay``). Pages at a purchase
power without a reference purchase carry no price (π̂) and are left out of the buy and price sums. The cap
min(1, .) of P(bought) is ignored: b̂ is exact while q (1 + (b - 1) g) <= 1 (every page of the synthetic world).

Intervals: 95% percentile intervals of ``n_boot`` bootstrap replicates that resample whole sessions (the pages of
a session share a user and an exposure), refitting everything (π̂, β̂, q̂) in each replicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import DataError, NextbestError
from nextbest.models.sessions import page_features
from nextbest.results import Result
from nextbest.sim.session_sim import (
    STRATEGY_PARAMETERS,
    EffectSource,
    SessionSimulator,
    Strategy,
    StrategyLogSummary,
)
from nextbest.stats import percentile_interval

#: The exploration log's columns (``done`` is written but not needed to estimate).
LOG_COLUMNS = ("session_id", "page_id", "hour", "purchase_power", "strategy", "propensity", "engagement", "bought",
               "spend", "done")  # fmt: skip
REQUIRED_COLUMNS = LOG_COLUMNS[:-1]
#: The parameters a randomized log identifies (the rest stay assumed).
ESTIMATED = ("engagement", "buy", "price")
LEVEL = 0.95
#: The synthetic world's true strategies (``nextbest sessions explore``'s default): every multiplier differs from
#: the assumed ``STRATEGIES``; power sensitivity and fatigue equal the assumed ones (they stay assumed).
TRUE_STRATEGIES: dict[str, Strategy] = {
    "feed": Strategy(engagement=1.4, buy=0.7, price=1.1),
    "mixed": Strategy(),
    "discount": Strategy(engagement=0.85, buy=2.0, price=0.7, power_sensitivity=0.8, fatigue=0.5),
}
_POWERS = 11
_CELLS = 2_500_000  # replicate x page cells per bootstrap chunk (memory bound)
_DIGITS = 10  # estimates and bounds are rounded to 10 decimals: float noise of an exact estimate (a deterministic
# price) would otherwise put the point a few 1e-16 outside its zero-width interval


class ParameterEstimate(Result):
    """One strategy parameter: its value, "estimated" (``ci`` its 95% bootstrap interval), "assumed" or
    "reference" (1 by definition)."""

    value: float
    status: str
    ci: list[float] | None = None


class StrategyEstimate(Result):
    """One strategy: its pages and purchases in the log and its parameters (in ``Strategy``'s field order)."""

    pages: int
    purchases: int
    parameters: dict[str, ParameterEstimate]


class StrategyEstimates(Result):
    """``estimate_strategies``: each strategy's parameters relative to ``reference``, from a log of ``sessions``
    sessions and ``pages`` pages (intervals: ``n_boot`` session-bootstrap replicates of ``seed`` at ``level``)."""

    reference: str
    sessions: int
    pages: int
    level: float
    n_boot: int
    seed: int
    exposure_decay: float
    strategies: dict[str, StrategyEstimate]

    def to_strategies(self) -> dict[str, Strategy]:
        """The strategies the simulator uses: estimates where estimated, the assumed values elsewhere."""
        return {name: Strategy(**{key: p.value for key, p in entry.parameters.items()})
                for name, entry in self.strategies.items()}  # fmt: skip

    def sources(self) -> dict[str, dict[str, EffectSource]]:
        """Where each value comes from, for ``SimulatorDescription.sources``."""
        return {name: {key: EffectSource(status=p.status, ci=p.ci) for key, p in entry.parameters.items()}
                for name, entry in self.strategies.items()}  # fmt: skip

    def summary(self, path: str | Path | None = None) -> StrategyLogSummary:
        """The log the estimates come from, for ``SimulatorDescription.strategy_log``."""
        return StrategyLogSummary(path=None if path is None else str(path), sessions=self.sessions, pages=self.pages,
                                  reference=self.reference, level=self.level, n_boot=self.n_boot)  # fmt: skip

    def simulator_options(self, path: str | Path | None = None) -> dict[str, Any]:
        """Keywords of ``SessionSimulator``: the strategies, their sources and the log's summary."""
        return {"strategies": self.to_strategies(), "sources": self.sources(), "strategy_log": self.summary(path)}


# ---------------------------------------------------------------------------------------------- exploration
def with_strategies(simulator: SessionSimulator, strategies: dict[str, Strategy]) -> SessionSimulator:
    """The same learned simulator (models, tables, start pages, settings) with other strategies: a true world."""
    return SessionSimulator(simulator.churn_model, simulator.value_model, simulator.engagement_by_power,
                            simulator.price_by_power, simulator.first_pages, strategies=strategies,
                            max_depth=simulator.max_depth, exposure_decay=simulator.exposure_decay)  # fmt: skip


def logging_table(probabilities: Any, n_strategies: int) -> np.ndarray:
    """The logging policy as an (11, k) table, P(strategy | purchase power): uniform for None, one row for all
    powers for a vector of k, or a table of 11 rows; every entry > 0 and every row summing to 1."""
    if probabilities is None:
        return np.full((_POWERS, n_strategies), 1.0 / n_strategies)
    table = np.asarray(probabilities, dtype=float)
    if table.ndim == 1:
        table = np.tile(table, (_POWERS, 1))
    if table.shape != (_POWERS, n_strategies):
        raise NextbestError(f"probabilities: give {n_strategies} (one per strategy) or an {_POWERS} x "
                            f"{n_strategies} table by purchase power, got shape {np.shape(probabilities)}")  # fmt: skip
    if not np.all(np.isfinite(table)) or (table <= 0).any() or not np.allclose(table.sum(axis=1), 1.0, atol=1e-9):
        raise NextbestError("probabilities: every strategy needs a probability > 0, and they must sum to 1")
    return table


def explore_pages(simulator: SessionSimulator, n_sessions: int, seed: int, probabilities: Any = None) -> pd.DataFrame:
    """Play ``n_sessions`` sessions in ``simulator`` (the true world), each page's strategy drawn from
    ``logging_table(probabilities)`` given the user's purchase power; returns the exploration log (``LOG_COLUMNS``,
    sorted by session and page). The strategy draws and the world's draws use separate streams of ``seed``."""
    if n_sessions < 1:
        raise NextbestError("explore: n_sessions must be at least 1")
    table = logging_table(probabilities, len(simulator.names))
    cumulative = np.cumsum(table, axis=1)
    policy_rng, world_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    state = simulator.reset(n_sessions, world_rng)
    blocks: list[dict[str, np.ndarray]] = []
    while state.active.any():
        rows = np.flatnonzero(state.active)
        power = np.clip(state.power, 0, _POWERS - 1)
        draw = policy_rng.random(n_sessions)[:, None]
        actions = np.minimum((draw > cumulative[power]).sum(axis=1), len(simulator.names) - 1)
        spend, done = simulator.step(state, actions, world_rng)
        hour = (state.hour + (state.depth - 1) // 20) % 24
        page = {"session_id": np.arange(n_sessions), "page_id": state.depth, "hour": hour,
                "purchase_power": state.power, "strategy": actions, "propensity": table[power, actions],
                "engagement": state.last_engagement, "bought": state.last_bought, "spend": spend, "done": done}
        blocks.append({key: np.asarray(value)[rows] for key, value in page.items()})  # fmt: skip
    log = pd.DataFrame({key: np.concatenate([block[key] for block in blocks]) for key in LOG_COLUMNS})
    log["strategy"] = np.asarray(simulator.names, dtype=object)[log["strategy"].to_numpy()]
    types = {"session_id": np.int64, "page_id": np.int32, "hour": np.int8, "purchase_power": np.int8,
             "engagement": np.int32, "bought": np.int8, "spend": np.float64, "done": np.int8}  # fmt: skip
    log = log.astype(types).sort_values(["session_id", "page_id"], kind="stable")
    return log[list(LOG_COLUMNS)].reset_index(drop=True)


def read_strategy_log(path: str | Path) -> pd.DataFrame:
    """An exploration log from CSV or Parquet; a missing or unreadable file is a DataError naming it."""
    source = Path(path)
    if not source.is_file():
        raise DataError(f"{source}: no such strategy log file")
    try:
        if source.suffix.lower() == ".csv":
            return pd.read_csv(source)
        if source.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(source)
    except Exception as error:  # pandas and pyarrow raise many kinds
        raise DataError(f"{source}: cannot read the strategy log ({type(error).__name__}: {error})") from None
    raise DataError(f"{source}: a strategy log is a .csv or .parquet file")


def write_strategy_log(log: pd.DataFrame, path: str | Path) -> Path:
    """Write an exploration log as CSV or Parquet (by the suffix); returns the path."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix.lower() == ".csv":
            log.to_csv(target, index=False)
        elif target.suffix.lower() in (".parquet", ".pq"):
            log.to_parquet(target, index=False)
        else:
            raise NextbestError(f"{target}: give a .csv or .parquet path for the strategy log")
    except OSError as error:
        raise NextbestError(f"{target}: cannot write ({error})") from None
    return target


# ---------------------------------------------------------------------------------------------- checks
def reference_strategy(assumed: dict[str, Strategy]) -> str:
    """The first strategy whose engagement, buy and price are all 1 (the baseline the others are measured
    against, like "mixed"); a NextbestError when there is none."""
    for name, strategy in assumed.items():
        if strategy.engagement == strategy.buy == strategy.price == 1.0:
            return name
    raise NextbestError("a strategy log needs a reference strategy with engagement, buy and price 1 (like "
                        "'mixed') among the strategies; the others are measured against it")  # fmt: skip


@dataclass(frozen=True)
class _Log:
    """The checked log as arrays, sorted by session and page."""

    session: np.ndarray  # session index, 0..sessions-1
    sessions: int
    strategy: np.ndarray  # index into the assumed strategies
    weight: np.ndarray  # 1 / propensity
    power: np.ndarray
    engagement: np.ndarray
    bought: np.ndarray
    spend: np.ndarray
    features: np.ndarray  # [1, page_features]
    lift_scale: np.ndarray  # g = (1 + ps (5 - pp) / 5) exp(-f x) of the page's strategy, at the assumed values


def _first_bad(mask: np.ndarray) -> int:
    """The 1-based row (1 = the first data row) of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1


def _numeric(log: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(log[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first_bad(bad)
        raise DataError(f"column '{column}', row {row}: {log[column].iloc[row - 1]!r} is not a number")
    return values


def _check_range(values: np.ndarray, column: str, ok: np.ndarray, expected: str) -> None:
    if not ok.all():
        row = _first_bad(~ok)
        raise DataError(f"column '{column}', row {row}: {values[row - 1]:g} is not {expected}")


def check_log(log: pd.DataFrame, assumed: dict[str, Strategy]) -> pd.DataFrame:
    """The log with numeric columns, sorted by session and page; a DataError names the column (and the row,
    1 = the first data row) when a column is missing, a value is missing or out of range (propensity in (0, 1]),
    a strategy is unknown or never logged, or a session skips pages (the exposure needs all of them)."""
    missing = [column for column in REQUIRED_COLUMNS if column not in log.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(repr(c) for c in missing)}; a strategy log has "
                        f"{', '.join(REQUIRED_COLUMNS)}")  # fmt: skip
    if log.empty:
        raise DataError("the strategy log has no rows")
    checked = pd.DataFrame({"session_id": log["session_id"].to_numpy()})
    if checked["session_id"].isna().any():
        raise DataError(f"column 'session_id', row {_first_bad(checked['session_id'].isna().to_numpy())}: missing")
    ranges = {"propensity": (lambda v: (v > 0) & (v <= 1), "a probability in (0, 1]"),
              "page_id": (lambda v: (v >= 1) & (v == np.round(v)), "a page number (1, 2, ...)"),
              "hour": (lambda v: (v >= 0) & (v <= 23), "an hour 0-23"),
              "purchase_power": (lambda v: (v >= 0) & (v <= 10) & (v == np.round(v)), "a purchase power 0-10"),
              "engagement": (lambda v: v >= 0, "a non-negative engagement"),
              "bought": (lambda v: (v == 0) | (v == 1), "0 or 1"),
              "spend": (lambda v: v >= 0, "a non-negative spend")}  # fmt: skip
    for column, (rule, expected) in ranges.items():
        values = _numeric(log, column)
        _check_range(values, column, rule(values), expected)
        checked[column] = values
    names = log["strategy"].astype("string")
    unknown = ~names.isin(list(assumed)).fillna(False).to_numpy(dtype=bool)
    if unknown.any():
        row = _first_bad(unknown)
        raise DataError(f"column 'strategy', row {row}: unknown strategy {log['strategy'].iloc[row - 1]!r} "
                        f"(the strategies are {', '.join(assumed)})")  # fmt: skip
    never = [name for name in assumed if not (names == name).any()]
    if never:
        raise DataError(f"column 'strategy': {', '.join(repr(n) for n in never)} never logged; every strategy "
                        "needs pages to be estimated")  # fmt: skip
    checked["strategy"] = names.to_numpy(dtype=object)
    checked["row"] = np.arange(1, len(log) + 1)
    checked = checked.sort_values(["session_id", "page_id"], kind="stable").reset_index(drop=True)
    expected_page = checked.groupby("session_id", sort=False).cumcount().to_numpy() + 1
    gap = checked["page_id"].to_numpy() != expected_page
    if gap.any():
        where = int(np.flatnonzero(gap)[0])
        raise DataError(f"column 'page_id', row {checked['row'].iloc[where]}: session "
                        f"{checked['session_id'].iloc[where]!r} has page {checked['page_id'].iloc[where]:g} where "
                        f"page {expected_page[where]} was due (every page of a session, once)")  # fmt: skip
    return checked


def _exposure(session_start: np.ndarray, page: np.ndarray, fatiguing: np.ndarray, decay: float) -> np.ndarray:
    """The exposure before each page, as the simulator keeps it: x_1 = 0, x_{t+1} = decay x_t + [page t's strategy
    fatigues] (rows sorted by session and page, every page present)."""
    exposure = np.zeros(page.size)
    for depth in range(2, int(page.max()) + 1):
        rows = np.flatnonzero((page == depth) & ~session_start)
        exposure[rows] = decay * exposure[rows - 1] + fatiguing[rows - 1]
    return exposure


def _arrays(checked: pd.DataFrame, assumed: dict[str, Strategy], exposure_decay: float) -> _Log:
    names = list(assumed)
    strategy = pd.Categorical(checked["strategy"], categories=names).codes.astype(int)
    session, _ = pd.factorize(checked["session_id"], sort=False)
    power = checked["purchase_power"].to_numpy(dtype=int)
    page = checked["page_id"].to_numpy(dtype=int)
    fatigue = np.array([assumed[n].fatigue for n in names])
    sensitivity = np.array([assumed[n].power_sensitivity for n in names])
    start = np.r_[True, session[1:] != session[:-1]]
    exposure = _exposure(start, page, (fatigue[strategy] > 0).astype(float), exposure_decay)
    lift_scale = (1 + sensitivity[strategy] * (5 - power) / 5) * np.exp(-fatigue[strategy] * exposure)
    columns = {key: checked[key].to_numpy(dtype=float) for key in ("hour", "purchase_power", "engagement", "page_id")}
    features = np.column_stack([np.ones(len(checked)), page_features(columns, with_purchase=False)])
    return _Log(session=session, sessions=int(session.max()) + 1, strategy=strategy,
                weight=1.0 / checked["propensity"].to_numpy(dtype=float), power=power,
                engagement=checked["engagement"].to_numpy(dtype=float),
                bought=checked["bought"].to_numpy(dtype=float), spend=checked["spend"].to_numpy(dtype=float),
                features=features, lift_scale=lift_scale)  # fmt: skip


# ---------------------------------------------------------------------------------------------- estimation
def _price_by_power(log: _Log, weights: np.ndarray, reference: int) -> np.ndarray:
    """π̂(pp) of every replicate, (R, 11): the weighted mean spend of the reference's purchases at each power
    (NaN where there is none)."""
    rows = (log.strategy == reference) & (log.bought > 0)
    onehot = np.eye(_POWERS)[log.power[rows]]
    purchases = weights[:, rows] @ onehot
    spent = weights[:, rows] @ (onehot * log.spend[rows, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(purchases > 0, spent / purchases, np.nan)


def _value_coefficients(log: _Log, weights: np.ndarray, reference: int, iterations: int = 50) -> np.ndarray:
    """β̂ of every replicate, (R, d): weighted least squares of the reference pages' spend on [1, page_features]
    over the pages where the fit is positive, iterated until that set stops changing (the clipped linear value)."""
    rows = log.strategy == reference
    x, y, w = log.features[rows], log.spend[rows], weights[:, rows]
    d = x.shape[1]
    products = (x[:, :, None] * x[:, None, :]).reshape(len(x), d * d)
    active = np.ones_like(w, dtype=bool)
    beta = np.zeros((w.shape[0], d))
    for _ in range(iterations):
        wa = w * active
        gram = (wa @ products).reshape(-1, d, d)
        beta = np.einsum("rij,rj->ri", np.linalg.pinv(gram), wa @ (x * y[:, None]))
        now = (x @ beta.T).T > 0
        if np.array_equal(now, active):
            break
        active = now
    return beta


def _baseline(log: _Log, weights: np.ndarray, reference: int) -> tuple[np.ndarray, np.ndarray]:
    """(q̂, π̂(pp) of each page) of every replicate, both (R, N); 0 where the page's power has no price."""
    price = _price_by_power(log, weights, reference)[:, log.power]
    beta = _value_coefficients(log, weights, reference)
    priced = np.isfinite(price)
    price = np.where(priced, price, 0.0)
    value = np.maximum((log.features @ beta.T).T, 0.0)
    return np.divide(value, price, out=np.zeros_like(value), where=priced), price


def _estimate(log: _Log, counts: np.ndarray, reference: int) -> np.ndarray:
    """The (engagement, buy, price) multipliers of every strategy in every replicate, (R, k, 3), for session
    counts (R, sessions): each page weighs counts[session] / propensity (formulas: module docstring)."""
    weights = counts[:, log.session] * log.weight
    baseline, price = _baseline(log, weights, reference)
    ref = log.strategy == reference
    ref_engagement = (weights[:, ref] @ log.engagement[ref]) / weights[:, ref].sum(axis=1)
    out = np.ones((counts.shape[0], int(log.strategy.max()) + 1, 3))
    for s in range(out.shape[1]):
        rows = log.strategy == s
        if s == reference or not rows.any():
            continue
        w, q, bought = weights[:, rows], baseline[:, rows], log.bought[rows]
        priced = w * (price[:, rows] > 0)  # pages whose power has a reference price
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, s, 0] = (w @ log.engagement[rows]) / w.sum(axis=1) / ref_engagement
            out[:, s, 1] = 1 + (priced * (bought - q)).sum(axis=1) / (priced * q * log.lift_scale[rows]).sum(axis=1)
            out[:, s, 2] = (priced * bought) @ log.spend[rows] / (priced * bought * price[:, rows]).sum(axis=1)
    return out


def _bootstrap(log: _Log, reference: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, k, 3) replicates: whole sessions resampled with replacement, in chunks that bound the memory."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS // max(1, log.session.size))
    replicates = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        counts = rng.multinomial(log.sessions, np.full(log.sessions, 1.0 / log.sessions), size=size).astype(float)
        replicates.append(_estimate(log, counts, reference))
    return np.concatenate(replicates) if replicates else np.empty((0, 0, 3))


def estimate_strategies(log: pd.DataFrame, assumed: dict[str, Strategy], reference: str, n_boot: int = 200,
                        seed: int = 0, exposure_decay: float = 0.8) -> StrategyEstimates:  # fmt: skip
    """The engagement, buy and price multipliers of every strategy of ``assumed`` relative to ``reference``, from
    an exploration ``log`` (the estimators are in the module docstring), each with a 95% session-bootstrap interval
    (``n_boot`` replicates of ``seed``; values rounded to 10 decimals); power sensitivity and fatigue keep their
    assumed values, and so do the reference's (its multipliers are 1). ``exposure_decay`` is the simulator's. A bad
    log is a DataError naming the column and row; a reference without multipliers 1 is a NextbestError."""
    if reference not in assumed:
        raise NextbestError(f"reference strategy {reference!r} is not among the strategies ({', '.join(assumed)})")
    if reference_strategy({reference: assumed[reference]}) != reference:
        raise NextbestError(f"reference strategy {reference!r} must have engagement, buy and price 1")
    if n_boot < 1:
        raise NextbestError("n_boot must be at least 1")
    checked = check_log(log, assumed)
    arrays = _arrays(checked, assumed, exposure_decay)
    names = list(assumed)
    ref = names.index(reference)
    _check_purchases(arrays, names, ref)
    point = _estimate(arrays, np.ones((1, arrays.sessions)), ref)[0]
    for s, j in zip(*np.nonzero(~np.isfinite(point))):
        raise DataError(f"column 'purchase_power': strategy {names[s]!r}: no {ESTIMATED[j]} estimate, the reference "
                        "has no purchase at the purchase powers of its pages")  # fmt: skip
    replicates = _bootstrap(arrays, ref, n_boot, seed)
    strategies = {}
    for s, name in enumerate(names):
        parameters = {}
        for key in STRATEGY_PARAMETERS:
            if key in ESTIMATED and s == ref:
                parameters[key] = ParameterEstimate(value=1.0, status="reference", ci=[1.0, 1.0])
            elif key in ESTIMATED:
                j = ESTIMATED.index(key)
                ci = [round(bound, _DIGITS) for bound in percentile_interval(replicates[:, s, j], LEVEL)]
                parameters[key] = ParameterEstimate(value=round(float(point[s, j]), _DIGITS), status="estimated",
                                                    ci=ci)  # fmt: skip
            else:
                parameters[key] = ParameterEstimate(value=float(getattr(assumed[name], key)), status="assumed")
        rows = arrays.strategy == s
        strategies[name] = StrategyEstimate(pages=int(rows.sum()), purchases=int(arrays.bought[rows].sum()),
                                            parameters=parameters)  # fmt: skip
    return StrategyEstimates(reference=reference, sessions=arrays.sessions, pages=int(arrays.session.size),
                             level=LEVEL, n_boot=n_boot, seed=seed, exposure_decay=float(exposure_decay),
                             strategies=strategies)  # fmt: skip


def _check_purchases(log: _Log, names: list[str], reference: int) -> None:
    """Every strategy needs purchases for its price, the reference at least one purchase with a positive spend."""
    for s, name in enumerate(names):
        bought = (log.strategy == s) & (log.bought > 0)
        if not bought.any():
            raise DataError(f"column 'bought': strategy {name!r} has no purchase in the log; its price and the "
                            "baseline cannot be estimated")  # fmt: skip
    if not (log.spend[(log.strategy == reference) & (log.bought > 0)] > 0).any():
        raise DataError(f"column 'spend': the reference strategy {names[reference]!r} has no purchase with a spend")


def load_strategy_log(path: str | Path, assumed: dict[str, Strategy]) -> pd.DataFrame:
    """``read_strategy_log`` then ``check_log``: a bad log is one DataError naming the file, the column and row."""
    log = read_strategy_log(path)
    try:
        check_log(log, assumed)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    return log


def estimate_from_log(path: str | Path, assumed: dict[str, Strategy], n_boot: int = 200, seed: int = 0,
                      exposure_decay: float = 0.8) -> StrategyEstimates:  # fmt: skip
    """``estimate_strategies`` on the log at ``path`` against ``reference_strategy(assumed)``; errors name the
    file."""
    log = load_strategy_log(path, assumed)
    try:
        return estimate_strategies(log, assumed, reference_strategy(assumed), n_boot=n_boot, seed=seed,
                                   exposure_decay=exposure_decay)  # fmt: skip
    except DataError as error:
        raise DataError(f"{path}: {error}") from None

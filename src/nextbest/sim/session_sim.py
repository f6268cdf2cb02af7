"""A learned session simulator: what the next page shows (a strategy) -> engagement, spend, churn, page by page.

Learned from a page table (``from_pages``):
    engagement  ~ Poisson(mean engagement of the user's purchase power in the data  x  strategy.engagement)
    spend       = bought * price(pp) * strategy.price,   bought ~ Bernoulli(min(1, E[value] / price(pp) * buy))
                  with E[value] from the value model and price(pp) the mean non-zero page value at that power
    buy         = 1 + (strategy.buy - 1) * (1 + strategy.power_sensitivity * (5 - pp) / 5)
                        * exp(-strategy.fatigue * exposure)
    exposure    <- exposure_decay * exposure + [the page's strategy fatigues]      (starts at 0)
    done        ~ Bernoulli(churn model's P(done | hour, pp, engagement, depth, bought))

The logged data show no strategies, so their effects are assumptions (``STRATEGIES``, configurable): a discount
lifts purchases more for users with little purchase power (price-sensitive) and wears off when shown page after
page (``exposure``, a decayed count of recent fatiguing pages); engaging content keeps users scrolling but sells
less. Engagement, prices, purchases and churn given the page come from the data through the fitted models. An
exploration log (pages served under randomly chosen strategies, with the propensities) lets
``nextbest.sim.strategy_effects`` estimate the engagement, buy and price multipliers instead; ``describe()`` says
for each parameter whether it is assumed or estimated (``sources``).

The churn and value models are any fitted estimators on ``nextbest.models.sessions.page_features`` (the training
code's feature builder). Every array has one entry per simulated session; the Gymnasium environment steps the same
simulator with one session (``SessionState`` of size 1), the batched path with thousands.

A page is compiled (numba, cached on disk): the stage kernels ``session_begin``, ``session_pages``,
``session_purchases`` and ``session_ends`` hold the formulas above, once, and loop over the sessions, which do not
interact. ``SessionSimulator.step`` runs them in order with the numpy generator's draws where the numpy simulator
made them (after the first stage: a Poisson engagement for every session, then a uniform each for the purchases,
then one each for the churn) and the two models between the stages. A scikit-learn ``LinearRegression`` value model
and binary ``LogisticRegression`` churn model (alone or after a ``StandardScaler`` in a pipeline) are evaluated
compiled too (``linear_model``: the scaled features' dot product in feature order plus the intercept, σ with libm's
exp: what scikit-learn computes for one row), and the stages after the draws are then one call (``session_page``);
any other model is called (``predict``, ``predict_proba``) on the features the kernels build. The hour's sine and
cosine come from ``page_features`` itself, tabulated for the 24 hours. So one session is stepped by the same code
as a batch (the Gymnasium env: a batch of one), and the draws, purchases, spend and ends are those of the numpy
simulator. Its floats may differ at rounding level (its batched model calls summed the dot products in BLAS's
order, its exp was numpy's SIMD one; the value model's dot product cancels large terms, so its prediction agrees to
about 1e-12, relative): a draw falls on the other side of a probability only if it lies in that gap (below 1e-12 per
draw), and ``last_expected_spend`` agrees to about 1e-12. Like the numpy simulator, ``step`` gives the state new
arrays for the fields a page changes (the kernels fill them), so an array read before a page keeps its values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from numba import njit

from nextbest.errors import DataError
from nextbest.models.sessions import page_features
from nextbest.results import Result


class Strategy(Result, frozen=True):
    """How a page strategy scales engagement, the chance of a purchase and the price paid (keywords only).

    ``power_sensitivity`` tilts the purchase lift towards low purchase power (0: the same for everyone);
    ``fatigue`` shrinks it with the session's exposure to fatiguing strategies (0: never wears off).
    """

    engagement: float = 1.0
    buy: float = 1.0
    price: float = 1.0
    power_sensitivity: float = 0.0
    fatigue: float = 0.0


STRATEGIES: dict[str, Strategy] = {
    "feed": Strategy(engagement=1.25, buy=0.8),
    "mixed": Strategy(),
    "discount": Strategy(engagement=0.9, buy=1.6, price=0.8, power_sensitivity=0.8, fatigue=0.5),
}


#: The fields of a ``SessionState`` that a page changes (``SessionSimulator.step`` gives them new arrays).
_STEPPED = ("depth", "engagement", "spend", "active", "exposure", "last_expected_spend", "last_engagement",
            "last_bought")  # fmt: skip

#: The strategy parameters, in ``Strategy``'s field order.
STRATEGY_PARAMETERS: tuple[str, ...] = tuple(Strategy.__struct_fields__)


class EffectSource(Result):
    """Where a strategy parameter's value comes from: "assumed" (set by hand), "estimated" (from an exploration
    log; ``ci`` its 95% interval) or "reference" (1 by definition: the strategy the others are measured against)."""

    status: str = "assumed"
    ci: list[float] | None = None


class StrategyLogSummary(Result):
    """The exploration log that estimated parameters come from (``nextbest.sim.strategy_effects``)."""

    path: str | None
    sessions: int
    pages: int
    reference: str
    level: float
    n_boot: int


class SimulatorDescription(Result):
    """``describe()``: the strategies (name -> effects, in action order), the simulator's settings, and for each
    strategy and parameter where its value comes from (``sources``; files written before they existed lack it:
    read as assumed) and the exploration log the estimated ones come from (``strategy_log``, None if none)."""

    strategies: dict[str, Strategy]
    exposure_decay: float
    max_depth: int
    sources: dict[str, dict[str, EffectSource]] = msgspec.field(default_factory=dict)
    strategy_log: StrategyLogSummary | None = None

    def source(self, strategy: str, parameter: str) -> EffectSource:
        """Where ``strategy``'s ``parameter`` comes from ("assumed" when not recorded)."""
        return self.sources.get(strategy, {}).get(parameter) or EffectSource()


def read_strategies(path: str | Path) -> dict[str, Strategy]:
    """Strategies from a JSON file ``{"name": {"engagement": 1.2, "buy": 0.8, ...}, ...}`` (omitted fields keep
    ``Strategy``'s defaults); a clear DataError names the file and the bad entry."""
    source = Path(path)
    try:
        payload = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{source}: cannot read strategies ({error})") from error
    if not isinstance(payload, dict) or len(payload) < 2:
        raise DataError(f"{source}: expected an object with at least two strategies, name -> effects")
    known = set(Strategy.__struct_fields__)
    strategies = {}
    for name, effects in payload.items():
        if not isinstance(effects, dict) or set(effects) - known:
            raise DataError(f"{source}: strategy {name!r}: expected an object with fields among {sorted(known)}")
        bad = [key for key, value in effects.items() if not isinstance(value, int | float) or value < 0]
        if bad:
            raise DataError(f"{source}: strategy {name!r}: {', '.join(bad)} must be non-negative numbers")
        strategies[str(name)] = Strategy(**{key: float(value) for key, value in effects.items()})
    return strategies


@dataclass
class SessionState:
    """Per-session arrays: start hour, purchase power, pages seen, cumulative engagement and spend, still active,
    the exposure to fatiguing strategies, and the expected spend of the last page given its engagement
    (P(bought) x price: the same mean as the spend with less noise, a variance-reduced reward for learners);
    the last page's engagement and purchase (0 / False before the first page and for sessions already ended)."""

    hour: np.ndarray
    power: np.ndarray
    depth: np.ndarray
    engagement: np.ndarray
    spend: np.ndarray
    active: np.ndarray
    exposure: np.ndarray
    last_expected_spend: np.ndarray
    last_engagement: np.ndarray
    last_bought: np.ndarray

    def __len__(self) -> int:
        """Sessions in the batch (the rows a policy decides for)."""
        return int(self.hour.size)


class SessionSimulator:
    """Steps many sessions at once; see the module docstring for the model."""

    def __init__(self, churn_model: Any, value_model: Any, engagement_by_power: np.ndarray, price_by_power: np.ndarray,
                 first_pages: pd.DataFrame, strategies: dict[str, Strategy] | None = None,
                 max_depth: int = 60, exposure_decay: float = 0.8,
                 sources: dict[str, dict[str, EffectSource]] | None = None,
                 strategy_log: StrategyLogSummary | None = None) -> None:  # fmt: skip
        self.churn_model, self.value_model = churn_model, value_model
        self.engagement_by_power = np.asarray(engagement_by_power, dtype=float)
        self.price_by_power = np.asarray(price_by_power, dtype=float)
        self.first_pages = first_pages[["hour", "purchase_power"]].reset_index(drop=True)
        self._first_hour = self.first_pages["hour"].to_numpy(dtype=int)
        self._first_power = self.first_pages["purchase_power"].to_numpy(dtype=int)
        self.strategies = dict(strategies or STRATEGIES)
        self.names = list(self.strategies)
        self._factors = np.array([[s.engagement, s.buy, s.price] for s in self.strategies.values()])
        self._sensitivity = np.array([s.power_sensitivity for s in self.strategies.values()])
        self._fatigue = np.array([s.fatigue for s in self.strategies.values()])
        self.max_depth = max_depth
        self.exposure_decay = exposure_decay
        self.sources = dict(sources or {})
        self.strategy_log = strategy_log
        self._strategy_table = np.column_stack([self._factors, self._sensitivity, self._fatigue]).astype(np.float64)
        self._hours = hour_features()
        self._value_form = linear_form(value_model, logistic=False)
        self._churn_form = linear_form(churn_model, logistic=True)

    @classmethod
    def from_pages(cls, pages: pd.DataFrame, churn_model: Any, value_model: Any, **options: Any) -> SessionSimulator:
        """Learn the engagement and price tables and the start distribution from a page table."""
        power = pages["purchase_power"].clip(0, 10).astype(int)
        overall = pages["engagement"].mean()
        engagement = pages.groupby(power).engagement.mean().reindex(range(11)).fillna(overall).to_numpy()
        spent = pages[pages["page_value"] > 0]
        fallback = spent["page_value"].mean() if len(spent) else 1.0
        price = spent.groupby(spent["purchase_power"].clip(0, 10).astype(int)).page_value.mean()
        price = price.reindex(range(11)).fillna(fallback).to_numpy()
        first = pages[pages["page_id"] == 1]
        return cls(churn_model, value_model, engagement, price, first, **options)

    def reset(self, n: int, rng: np.random.Generator) -> SessionState:
        """``n`` new sessions, their (hour, purchase power) drawn from the data's first pages."""
        rows = rng.integers(0, self._first_hour.size, n)
        return SessionState(self._first_hour[rows], self._first_power[rows], np.zeros(n, dtype=int), np.zeros(n),
                            np.zeros(n), np.ones(n, dtype=bool), np.zeros(n), np.zeros(n), np.zeros(n, dtype=int),
                            np.zeros(n, dtype=bool))  # fmt: skip

    def step(self, state: SessionState, actions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Show one page to every active session; returns (spend, done). Finished sessions get 0 and stay done.

        The compiled stages (module docstring) with the draws in between, for every session: engagement ~
        Poisson(mean), then a uniform per session for the purchase, then one for the churn. With two linear models
        the page after the draws is one compiled call (`session_page`)."""
        actions = np.ascontiguousarray(actions, dtype=np.int64)
        n = len(state)
        for name in _STEPPED:  # new arrays for what the page changes: arrays read before it keep their values
            setattr(state, name, getattr(state, name).copy())
        mean = np.empty(n)
        session_begin(actions, state.power, state.depth, state.active, self.engagement_by_power,
                      self._strategy_table, mean)  # fmt: skip
        engagement = rng.poisson(mean)
        u_buy, u_churn = rng.random(n), rng.random(n)
        spend, done = np.empty(n), np.empty(n, dtype=bool)
        if self._value_form is not None and self._churn_form is not None:
            session_page(engagement, u_buy, u_churn, actions, *self._state_arrays(state), *self._tables,
                         *self._value_form, *self._churn_form, spend, done)  # fmt: skip
            return spend, done
        features, buy_factor, bought = np.empty((n, 6)), np.empty(n), np.empty(n, dtype=bool)
        active = state.active
        session_pages(actions, engagement, state.hour, state.power, state.depth, state.exposure, active, 0,
                      self._strategy_table, self._hours, features, buy_factor)  # fmt: skip
        session_purchases(self._predict(False, features, active), u_buy, actions, state.power, active,
                          self.price_by_power, self._strategy_table, buy_factor, features, spend, bought,
                          state.last_expected_spend)  # fmt: skip
        session_ends(self._predict(True, features, active), u_churn, actions, engagement, state.depth, active,
                     state.engagement, state.spend, spend, bought, state.last_engagement, state.last_bought,
                     state.exposure, self._strategy_table, self.exposure_decay, self.max_depth, done)  # fmt: skip
        return spend, done

    @staticmethod
    def _state_arrays(state: SessionState) -> tuple[np.ndarray, ...]:
        """The state fields in `session_page`'s order."""
        return (state.hour, state.power, state.depth, state.engagement, state.spend, state.active, state.exposure,
                state.last_expected_spend, state.last_engagement, state.last_bought)  # fmt: skip

    @property
    def _tables(self) -> tuple:
        """The simulator's constants in `session_page`'s order."""
        return (self.price_by_power, self._strategy_table, self._hours, float(self.exposure_decay),
                int(self.max_depth))  # fmt: skip

    def expected_spend(self, state: SessionState, action: int) -> np.ndarray:
        """Expected spend of the next page under ``action`` at the mean engagement (no draw, state unchanged)."""
        n = len(state)
        actions, everyone = np.full(n, action, dtype=np.int64), np.ones(n, dtype=bool)
        mean = self.engagement_by_power[state.power] * self._factors[action, 0]
        features, buy_factor = np.empty((n, 6)), np.empty(n)
        session_pages(actions, mean, state.hour, state.power, state.depth, state.exposure, everyone, 1,
                      self._strategy_table, self._hours, features, buy_factor)  # fmt: skip
        expected = np.empty(n)
        session_purchases(self._predict(False, features, everyone), np.ones(n), actions, state.power, everyone,
                          self.price_by_power, self._strategy_table, buy_factor, features, np.empty(n),
                          np.empty(n, dtype=bool), expected)  # fmt: skip
        return expected

    def _predict(self, churn: bool, features: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Each page's P(done) from the churn model (all six feature columns) or its predicted value from the value
        model (the first five): compiled for a linear model (`linear_form`; active rows only), else the model's own
        method (every row)."""
        form = self._churn_form if churn else self._value_form
        if form is not None:
            out = np.empty(features.shape[0])
            linear_model(features, *form, active, out)
            return out
        if churn:
            return np.ascontiguousarray(self.churn_model.predict_proba(features)[:, 1], dtype=np.float64)
        return np.ascontiguousarray(self.value_model.predict(features[:, :5]), dtype=np.float64)

    def describe(self) -> SimulatorDescription:
        """The strategies' effects, where each comes from (``sources`` as given, "assumed" for the rest) and the
        simulator's settings (for JSON next to results)."""
        sources = {name: {parameter: self.sources.get(name, {}).get(parameter) or EffectSource()
                          for parameter in STRATEGY_PARAMETERS} for name in self.strategies}  # fmt: skip
        return SimulatorDescription(strategies=dict(self.strategies), exposure_decay=float(self.exposure_decay),
                                    max_depth=int(self.max_depth), sources=sources,
                                    strategy_log=self.strategy_log)  # fmt: skip

    def buy_factor(self, state: SessionState, actions: np.ndarray) -> np.ndarray:
        """The purchase-probability multiplier of each session's strategy (module docstring, ``buy``)."""
        out = np.empty(len(state))
        buy_factors(np.ascontiguousarray(actions, dtype=np.int64), state.power, state.exposure, self._strategy_table,
                    out)  # fmt: skip
        return out


def hour_features() -> np.ndarray:
    """(24, 2): the first two columns of ``page_features`` (the hour's sine and cosine) for hours 0..23, from the
    feature builder itself, for the kernels to look up."""
    hours = np.arange(24)
    zeros = np.zeros(24)
    probe = {"hour": hours, "purchase_power": zeros, "engagement": zeros, "page_id": zeros + 1, "page_value": zeros}
    return np.ascontiguousarray(page_features(probe)[:, :2], dtype=np.float64)


def linear_form(model: Any, logistic: bool) -> tuple | None:
    """(mean, scale, coef, intercept, logistic) of a scikit-learn ``LinearRegression`` (value model, five features)
    or binary ``LogisticRegression`` (churn model, six features), alone or after a ``StandardScaler`` in a
    ``Pipeline``, for `linear_model`; None for any other model (the simulator then calls the model). Read once:
    refitting the model in place later is not seen."""
    steps = [step for _, step in model.steps] if _is_sklearn(model, "Pipeline") else [model]
    scaler = steps[0] if len(steps) == 2 and _is_sklearn(steps[0], "StandardScaler") else None
    estimator = steps[-1]
    if len(steps) > 2 or (len(steps) == 2 and scaler is None):
        return None
    if logistic:
        if not _is_sklearn(estimator, "LogisticRegression") or len(getattr(estimator, "classes_", ())) != 2:
            return None
        coef, intercept = np.asarray(estimator.coef_, dtype=np.float64), float(np.ravel(estimator.intercept_)[0])
        if coef.shape[0] != 1:
            return None
    else:
        if not _is_sklearn(estimator, "LinearRegression") or np.ndim(estimator.coef_) != 1:
            return None
        coef, intercept = np.asarray(estimator.coef_, dtype=np.float64), float(estimator.intercept_)
    coef = np.ascontiguousarray(coef.reshape(-1))
    if coef.size != (6 if logistic else 5):
        return None
    mean, scale = np.zeros(coef.size), np.ones(coef.size)
    if scaler is not None:
        if scaler.with_mean:
            mean = np.asarray(scaler.mean_, dtype=np.float64)
        if scaler.with_std:
            scale = np.asarray(scaler.scale_, dtype=np.float64)
    return np.ascontiguousarray(mean), np.ascontiguousarray(scale), coef, intercept, logistic


def _is_sklearn(thing: Any, name: str) -> bool:
    kind = type(thing)
    return kind.__name__ == name and kind.__module__.startswith("sklearn.")


# ----------------------------------------------------------------- the compiled stages (the one copy of the dynamics)
# The strategy table (strategies, 5) float64 holds each strategy's engagement, buy, price, power_sensitivity and
# fatigue (`Strategy`'s fields, in order). State arrays are a `SessionState`'s fields; every stage loops over the
# sessions, which do not interact, so a session's page is the same whether it is stepped alone or in a batch.
@njit(cache=True, inline="always")
def _buy_factor(buy, sensitivity, fatigue, power, exposure):  # pragma: no cover - compiled
    """The purchase multiplier (module docstring, ``buy``), in numpy's order of operations."""
    lift = buy - 1
    tilt = 1 + sensitivity * (5 - power) / 5
    return max(0.0, 1 + lift * tilt * math.exp(-fatigue * exposure))


@njit(cache=True)
def buy_factors(actions, power, exposure, strategies, out):  # pragma: no cover - compiled
    """`_buy_factor` of each session under its strategy, into out."""
    for i in range(actions.shape[0]):
        a = actions[i]
        out[i] = _buy_factor(strategies[a, 1], strategies[a, 3], strategies[a, 4], power[i], exposure[i])


@njit(cache=True)
def session_begin(actions, power, depth, active, engagement_by_power, strategies, mean):  # pragma: no cover
    """Stage 1 of a page: checks the strategies and purchase powers, counts the page of each active session
    (depth += 1) and writes its mean engagement (the power's mean × the strategy's engagement) for the draw."""
    for i in range(actions.shape[0]):
        if actions[i] < 0 or actions[i] >= strategies.shape[0]:
            raise IndexError("a strategy index is out of range")
        if power[i] < 0 or power[i] >= engagement_by_power.shape[0]:
            raise IndexError("a purchase power is out of range (0..10)")
        if active[i]:
            depth[i] += 1
        mean[i] = engagement_by_power[power[i]] * strategies[actions[i], 0]


@njit(cache=True)
def session_pages(actions, engagement, hour, power, depth, exposure, active, offset, strategies, hours, features,
                  buy_factor):  # pragma: no cover - compiled
    """Stage 2: each active session's page (number max(depth + offset, 1), its hour, the drawn engagement) as the
    first five ``page_features`` columns, and the strategy's purchase multiplier (zeros for the others: nothing of
    their page is used)."""
    for i in range(actions.shape[0]):
        if not active[i]:
            features[i, :5] = 0.0
            buy_factor[i] = 0.0
            continue
        a = actions[i]
        buy_factor[i] = _buy_factor(strategies[a, 1], strategies[a, 3], strategies[a, 4], power[i], exposure[i])
        page = max(depth[i] + offset, 1)
        at = (hour[i] + (page - 1) // 20) % 24
        features[i, 0] = hours[at, 0]
        features[i, 1] = hours[at, 1]
        features[i, 2] = power[i]
        features[i, 3] = engagement[i]
        features[i, 4] = page


@njit(cache=True)
def session_purchases(value, u_buy, actions, power, active, price_by_power, strategies, buy_factor, features, spend,
                      bought, expected):  # pragma: no cover - compiled
    """Stage 3, given the value model's prediction: for an active session P(bought) = min(1, max(value, 0) / price ·
    multiplier), bought when u_buy < P, the spend (price × the strategy's price), the expected spend (P(bought) ×
    price × the strategy's price) and the purchase flag, the sixth feature; nothing (zeros) for the others."""
    for i in range(actions.shape[0]):
        if not active[i]:
            spend[i] = expected[i] = features[i, 5] = 0.0
            bought[i] = False
            continue
        price, factor = price_by_power[power[i]], strategies[actions[i], 2]
        chance = min(1.0, max(value[i], 0.0) / price * buy_factor[i])
        bought[i] = u_buy[i] < chance
        spend[i] = price * factor if bought[i] else 0.0
        expected[i] = chance * price * factor
        features[i, 5] = 1.0 if spend[i] > 0 else 0.0


@njit(cache=True)
def session_ends(churn, u_churn, actions, engagement, depth, active, engagement_sum, spend_sum, spend, bought,
                 last_engagement, last_bought, exposure, strategies, decay, max_depth, done):  # pragma: no cover
    """Stage 4, given the churn model's P(done): done when u_churn < P or at max_depth (active sessions only), and
    the state's totals, last page and exposure (decayed, +1 for a fatiguing strategy) of the active sessions."""
    for i in range(actions.shape[0]):
        ended = (u_churn[i] < churn[i] or depth[i] >= max_depth) and active[i]
        if active[i]:
            engagement_sum[i] = engagement_sum[i] + engagement[i]
            last_engagement[i] = engagement[i]
            last_bought[i] = bought[i]
            exposure[i] = decay * exposure[i] + (1.0 if strategies[actions[i], 4] > 0 else 0.0)
        else:
            last_engagement[i] = 0
            last_bought[i] = False
        spend_sum[i] = spend_sum[i] + spend[i]
        active[i] = active[i] and not ended
        done[i] = ended


@njit(cache=True)
def session_page(engagement, u_buy, u_churn, actions, hour, power, depth, engagement_sum, spend_sum, active, exposure,
                 last_expected_spend, last_engagement, last_bought, price_by_power, strategies, hours, decay, max_depth,
                 value_mean, value_scale, value_coef, value_intercept, value_logistic, churn_mean, churn_scale,
                 churn_coef, churn_intercept, churn_logistic, spend, done):  # pragma: no cover - compiled
    """The page after `session_begin` and the draws, with two linear models (`linear_form`), in one call: stages 2
    to 4 with `linear_model` between them, as `SessionSimulator.step` runs them for any models. Updates the state
    arrays in place and writes spend and done."""
    n = actions.shape[0]
    features, buy_factor, predicted = np.empty((n, 6)), np.empty(n), np.empty(n)
    bought = np.empty(n, dtype=np.bool_)
    session_pages(actions, engagement, hour, power, depth, exposure, active, 0, strategies, hours, features,
                  buy_factor)  # fmt: skip
    linear_model(features, value_mean, value_scale, value_coef, value_intercept, value_logistic, active, predicted)
    session_purchases(predicted, u_buy, actions, power, active, price_by_power, strategies, buy_factor, features,
                      spend, bought, last_expected_spend)  # fmt: skip
    linear_model(features, churn_mean, churn_scale, churn_coef, churn_intercept, churn_logistic, active, predicted)
    session_ends(predicted, u_churn, actions, engagement, depth, active, engagement_sum, spend_sum, spend, bought,
                 last_engagement, last_bought, exposure, strategies, decay, max_depth, done)


@njit(cache=True)
def linear_model(features, mean, scale, coef, intercept, logistic, active, out):  # pragma: no cover - compiled
    """A linear model (`linear_form`) on the first coef.size feature columns of each active row: Σ_j ((x_j − mean_j)
    / scale_j) · coef_j in feature order, plus the intercept; σ of it (libm's exp) when logistic (0 for the rest)."""
    for i in range(features.shape[0]):
        if not active[i]:
            out[i] = 0.0
            continue
        total = 0.0
        for j in range(coef.shape[0]):
            total = total + (features[i, j] - mean[j]) / scale[j] * coef[j]
        total = total + intercept
        out[i] = 1.0 / (1.0 + math.exp(-total)) if logistic else total

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

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
        self.strategies = dict(strategies or STRATEGIES)
        self.names = list(self.strategies)
        self._factors = np.array([[s.engagement, s.buy, s.price] for s in self.strategies.values()])
        self._sensitivity = np.array([s.power_sensitivity for s in self.strategies.values()])
        self._fatigue = np.array([s.fatigue for s in self.strategies.values()])
        self.max_depth = max_depth
        self.exposure_decay = exposure_decay
        self.sources = dict(sources or {})
        self.strategy_log = strategy_log

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
        rows = self.first_pages.iloc[rng.integers(0, len(self.first_pages), n)]
        zeros = np.zeros(n)
        return SessionState(rows["hour"].to_numpy(dtype=int), rows["purchase_power"].to_numpy(dtype=int),
                            zeros.astype(int), zeros.copy(), zeros.copy(), np.ones(n, dtype=bool),
                            zeros.copy(), zeros.copy(), zeros.astype(int), np.zeros(n, dtype=bool))  # fmt: skip

    def step(self, state: SessionState, actions: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Show one page to every active session; returns (spend, done). Finished sessions get 0 and stay done."""
        actions = np.asarray(actions, dtype=int)
        n = state.hour.size
        engagement_factor, _, price_factor = self._factors[actions].T
        buy_factor = self.buy_factor(state, actions)
        state.depth = state.depth + state.active
        engagement = rng.poisson(self.engagement_by_power[state.power] * engagement_factor)
        page = self._page(state, np.maximum(state.depth, 1), engagement)
        price = self.price_by_power[state.power]
        buy_probability = self._buy_probability(page, price, buy_factor)
        bought = rng.random(n) < buy_probability
        spend = np.where(bought & state.active, price * price_factor, 0.0)
        state.last_expected_spend = np.where(state.active, buy_probability * price * price_factor, 0.0)
        page["page_value"] = spend
        churn = self.churn_model.predict_proba(page_features(page))[:, 1]
        done = (rng.random(n) < churn) | (state.depth >= self.max_depth)
        done &= state.active
        state.engagement = state.engagement + engagement * state.active
        state.spend = state.spend + spend
        state.last_engagement = engagement * state.active
        state.last_bought = bought & state.active
        fatiguing = (self._fatigue[actions] > 0) & state.active
        state.exposure = np.where(state.active, self.exposure_decay * state.exposure + fatiguing, state.exposure)
        state.active = state.active & ~done
        return spend, done

    def expected_spend(self, state: SessionState, action: int) -> np.ndarray:
        """Expected spend of the next page under ``action`` at the mean engagement (no draw, state unchanged)."""
        engagement_factor, _, price_factor = self._factors[action]
        buy_factor = self.buy_factor(state, np.full(state.hour.size, action))
        engagement = self.engagement_by_power[state.power] * engagement_factor
        page = self._page(state, state.depth + 1, engagement)
        price = self.price_by_power[state.power]
        return self._buy_probability(page, price, buy_factor) * price * price_factor

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
        lift = self._factors[actions, 1] - 1
        tilt = 1 + self._sensitivity[actions] * (5 - state.power) / 5
        return np.maximum(0.0, 1 + lift * tilt * np.exp(-self._fatigue[actions] * state.exposure))

    @staticmethod
    def _page(state: SessionState, depth: np.ndarray, engagement: np.ndarray) -> dict[str, np.ndarray]:
        """The page's columns for ``page_features`` (a dict of arrays: a DataFrame per step costs more than the
        models)."""
        hour = (state.hour + (depth - 1) // 20) % 24
        return {"hour": hour, "purchase_power": state.power, "engagement": engagement, "page_id": depth,
                "page_value": np.zeros(state.hour.size)}  # fmt: skip

    def _buy_probability(self, page: dict[str, np.ndarray], price: np.ndarray,
                         buy_factor: np.ndarray | float) -> np.ndarray:  # fmt: skip
        expected = np.maximum(self.value_model.predict(page_features(page, with_purchase=False)), 0.0)
        return np.minimum(1.0, expected / price * buy_factor)

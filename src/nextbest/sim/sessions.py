"""A feed-shop session world with a known ground truth: pages in the shared page schema, at any size.

Each session has a user with a purchase power ``pp`` (0-10) and a start hour. On page ``t`` (depth, from 1):

    engagement_t ~ Poisson(lambda),  lambda = 2 + 0.35 pp + 1.5 evening(hour)            (clicks + add-to-carts)
    bought_t     ~ Bernoulli(sigmoid(-3.6 + 0.22 pp + 0.12 engagement_t))
    page_value_t = bought_t * price,  price ~ LogNormal(log(15 + 4 pp), 0.4)            (money spent on the page)
    done_t       ~ Bernoulli(churn_t),  churn_t = sigmoid(-2.3 + 0.09 t - 0.16 engagement_t - 0.11 pp
                                                          - 0.9 bought_t + 0.5 night(hour))

so the five hypotheses of the EDA hold by construction: richer users churn less and spend more; engagement on
page t keeps the user for t+1; churn rises with depth (fatigue); spending resets the churn clock; the hour
matters (night scrolling vs evening shopping). ``churn_probability`` and ``expected_value`` give the truth that
fitted models can be scored against. Sessions stop at ``max_depth`` pages (the last one has done = 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.taobao import PAGE_COLUMNS
from nextbest.results import Result


class SessionWorldConfig(Result, frozen=True):
    """The ground-truth parameters (keywords only); ``truth()`` writes them next to generated data."""

    seed: int = 0
    max_depth: int = 60
    churn_intercept: float = -2.3
    churn_depth: float = 0.09
    churn_engagement: float = -0.16
    churn_power: float = -0.11
    churn_bought: float = -0.9
    churn_night: float = 0.5
    buy_intercept: float = -3.6
    buy_power: float = 0.22
    buy_engagement: float = 0.12


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def evening(hour: np.ndarray) -> np.ndarray:
    """1 at 20:00, 0 twelve hours away (shopping time)."""
    return 0.5 * (1 + np.cos(2 * np.pi * (np.asarray(hour) - 20) / 24))


def night(hour: np.ndarray) -> np.ndarray:
    """1 at 02:00, 0 twelve hours away (doom-scrolling time)."""
    return 0.5 * (1 + np.cos(2 * np.pi * (np.asarray(hour) - 2) / 24))


class SessionWorld:
    """Generates sessions page by page (vectorized over sessions) from the ground-truth model above."""

    def __init__(self, config: SessionWorldConfig | None = None) -> None:
        self.config = config or SessionWorldConfig()

    def churn_probability(self, depth: Any, engagement: Any, power: Any, bought: Any, hour: Any) -> np.ndarray:
        c = self.config
        logit = (c.churn_intercept + c.churn_depth * np.asarray(depth) + c.churn_engagement * np.asarray(engagement)
                 + c.churn_power * np.asarray(power) + c.churn_bought * np.asarray(bought)
                 + c.churn_night * night(hour))  # fmt: skip
        return _sigmoid(logit)

    def buy_probability(self, engagement: Any, power: Any) -> np.ndarray:
        c = self.config
        return _sigmoid(c.buy_intercept + c.buy_power * np.asarray(power) + c.buy_engagement * np.asarray(engagement))

    def expected_value(self, engagement: Any, power: Any) -> np.ndarray:
        """E[page_value | engagement, power] (the log-normal price has mean exp(mu + sigma^2 / 2))."""
        price_mean = (15 + 4 * np.asarray(power)) * np.exp(0.4**2 / 2)
        return self.buy_probability(engagement, power) * price_mean

    def pages(self, sessions: int, stream: int = 0) -> pd.DataFrame:
        """``sessions`` sessions as the page table (``PAGE_COLUMNS``), seeded by (seed, stream)."""
        c = self.config
        rng = np.random.default_rng([c.seed, stream])
        power = np.minimum(rng.poisson(2.5, sessions), 10)
        start_hour = rng.integers(0, 24, sessions)
        ids = np.arange(sessions, dtype=np.int64) + stream * 10_000_000
        active = np.ones(sessions, dtype=bool)
        blocks = []
        for depth in range(1, c.max_depth + 1):
            rows = np.flatnonzero(active)
            if rows.size == 0:
                break
            hour = (start_hour[rows] + (depth - 1) // 20) % 24  # a page takes ~3 minutes
            engagement = rng.poisson(2 + 0.35 * power[rows] + 1.5 * evening(hour))
            bought = rng.random(rows.size) < self.buy_probability(engagement, power[rows])
            price = rng.lognormal(np.log(15 + 4 * power[rows]), 0.4)
            value = np.where(bought, price, 0.0)
            done = rng.random(rows.size) < self.churn_probability(depth, engagement, power[rows], bought, hour)
            done |= depth == c.max_depth
            blocks.append(pd.DataFrame({
                "session_id": ids[rows], "page_id": depth, "hour": hour, "purchase_power": power[rows],
                "engagement": engagement, "page_value": value, "reward": value, "done": done,
            }))  # fmt: skip
            active[rows[done]] = False
        table = pd.concat(blocks, ignore_index=True).sort_values(["session_id", "page_id"], kind="stable")
        types = {"session_id": np.int64, "page_id": np.int32, "hour": np.int8, "purchase_power": np.int8,
                 "engagement": np.int32, "page_value": np.float64, "reward": np.float64, "done": np.int8}  # fmt: skip
        return table[PAGE_COLUMNS].astype(types).reset_index(drop=True)

    def truth(self) -> SessionWorldConfig:
        """The ground-truth parameters, for the JSON next to generated data."""
        return self.config

"""Normal-approximation intervals of a mean and of the difference of two independent means.

    z_value(level)             z = Φ⁻¹((1 + level) / 2)                       (1.95996... for 95%)
    mean_interval(x, level)    mean ∓ z · se,  se = s / √n  (s with ddof 1; se = 0 when n < 2)
    difference_interval(a, b)  (a.mean − b.mean) ∓ z · √(a.se² + b.se²)       (independent samples)
    percentile_interval(r, level)  [q((1 − level) / 2), q((1 + level) / 2)] of bootstrap replicates r
    proportion_interval(k, n, level)  Wilson score interval of a proportion k / n (scipy's binomtest)

Assumptions, carried by every result: independent observations, a mean close to normal (central limit theorem),
so these are for large simulated or held-out samples, not for a handful of heavy-tailed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


def z_value(level: float = 0.95) -> float:
    """The two-sided standard normal quantile of ``level``: Φ⁻¹((1 + level) / 2)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(stats.norm.ppf((1 + level) / 2))


@dataclass(frozen=True)
class MeanInterval:
    """A mean with its standard error and its ``level`` interval [low, high] from ``n`` observations."""

    mean: float
    se: float
    low: float
    high: float
    level: float
    n: int

    ASSUMPTIONS = "independent observations; normal approximation of the mean (central limit theorem)"

    def as_json(self) -> dict[str, Any]:
        """``{"mean", "ci": [low, high], "se"}``: the keys the JSON outputs have always used, plus the error."""
        return {"mean": self.mean, "ci": [self.low, self.high], "se": self.se}


def _interval(mean: float, se: float, level: float, n: int) -> MeanInterval:
    half = z_value(level) * se
    return MeanInterval(mean, se, mean - half, mean + half, level, n)


def mean_interval(values: Any, level: float = 0.95) -> MeanInterval:
    """The mean of ``values`` with its normal-approximation interval (zero width for fewer than 2 values)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("a mean needs at least one value")
    se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
    return _interval(float(values.mean()), se, level, int(values.size))


def difference_interval(a: MeanInterval, b: MeanInterval) -> MeanInterval:
    """``a − b`` for independent samples: se = √(a.se² + b.se²), at ``a``'s level."""
    return _interval(a.mean - b.mean, float(math.hypot(a.se, b.se)), a.level, a.n + b.n)


def percentile_interval(replicates: Any, level: float = 0.95) -> list[float]:
    """[low, high] percentile interval of bootstrap replicates (linear interpolation between order statistics);
    infinities count as very large values, NaNs are left out; no replicate gives [nan, nan]."""
    values = np.asarray(replicates, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [math.nan, math.nan]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [float(low), float(high)]


def proportion_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``successes / n``: the z-test inverted, so it stays inside [0, 1]
    and keeps its coverage near 0 and 1 (where the normal interval fails)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)

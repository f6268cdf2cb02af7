"""Statistics shared by every use case: intervals of means and of their differences (built on scipy).

The A/B tests (Welch, CUPED, bootstrap, sequential) live in ``nextbest.experiments``; what more than one use case
computes lives here, once.
"""

from nextbest.stats.intervals import (
    MeanInterval,
    difference_interval,
    mean_interval,
    percentile_interval,
    proportion_interval,
    z_value,
)

__all__ = ["MeanInterval", "difference_interval", "mean_interval", "percentile_interval", "proportion_interval",
           "z_value"]

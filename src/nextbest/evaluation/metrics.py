"""Business metrics of a sales policy and percentile intervals."""

from __future__ import annotations

import math

import numpy as np

METRICS = ("subscription_rate", "first_call_rate", "cost_per_acquisition", "roi", "value_per_lead")


def business_metrics(
    subscribed: np.ndarray, first_call: np.ndarray, cost: np.ndarray, subscription_value: float
) -> dict[str, float]:
    """Metrics over n simulated leads.

    subscription_rate = mean(subscribed); first_call_rate = mean(first_call);
    cost_per_acquisition (CPA) = Σ cost / Σ subscribed (inf without a subscription);
    roi = (V · Σ subscribed − Σ cost) / Σ cost (nan when nothing was spent);
    value_per_lead = (V · Σ subscribed − Σ cost) / n.
    """
    n = max(int(subscribed.size), 1)
    subs = float(np.sum(subscribed))
    spent = float(np.sum(cost))
    revenue = subscription_value * subs
    return {
        "subscription_rate": subs / n,
        "first_call_rate": float(np.sum(first_call)) / n,
        "cost_per_acquisition": spent / subs if subs > 0 else math.inf,
        "roi": (revenue - spent) / spent if spent > 0 else math.nan,
        "value_per_lead": (revenue - spent) / n,
    }


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator with inf for x/0 (x > 0) and nan for 0/0."""
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return numerator / denominator


def json_number(value: float) -> float | None:
    """A float for JSON: None for nan and ±inf (JSON has no such numbers)."""
    return None if value is None or not math.isfinite(value) else float(value)

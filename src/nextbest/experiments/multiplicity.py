"""Corrections for testing several metrics at once: Holm (family-wise error rate) and Benjamini–Hochberg (false
discovery rate), vectorized over many families at once (the simulation checks 10,000 experiments in one call).

With ``m`` p-values sorted ascending ``p_(1) <= ... <= p_(m)``, the adjusted p-values are

    Holm:                 p~_(i) = max_{j <= i} min(1, (m − j + 1) p_(j))
    Benjamini–Hochberg:   p~_(i) = min_{j >= i} min(1, m p_(j) / j)

and a hypothesis is rejected when its adjusted p-value is at most alpha; both equal
``statsmodels.stats.multitest.multipletests(p, method="holm" | "fdr_bh")`` (tested). Holm keeps the chance of any
false positive among the m metrics at most alpha whatever their dependence; BH keeps the expected share of false
positives among the rejections at most alpha (independent or positively dependent metrics), and under the global
null, where every rejection is false, that is the family-wise rate too.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from nextbest.experiments.design import InvalidParameter

Correction = Literal["holm", "bh", "none"]
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def check_correction(correction: Any) -> str:
    """``correction`` when it is one of CORRECTIONS (InvalidParameter naming the choices otherwise)."""
    if correction not in CORRECTIONS:
        raise InvalidParameter(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    return correction


def adjust_p_values(p_values: Any, correction: str = "holm") -> np.ndarray:
    """Adjusted p-values along the last axis (one family per row); formulas in the module docstring.

    ``correction`` "none" returns the p-values unchanged. Reject where ``adjusted <= alpha``."""
    correction = check_correction(correction)
    p = np.asarray(p_values, dtype=np.float64)
    if p.size and (np.isnan(p).any() or p.min() < 0 or p.max() > 1):
        raise InvalidParameter("p-values must lie in [0, 1]")
    if correction == "none" or p.shape[-1] == 0:
        return p.copy()
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    rank = np.arange(1, m + 1)
    if correction == "holm":
        ranked = np.maximum.accumulate(np.minimum(1.0, (m - rank + 1) * ranked), axis=-1)
    else:
        ranked = np.flip(np.minimum.accumulate(np.flip(np.minimum(1.0, m * ranked / rank), -1), axis=-1), -1)
    adjusted = np.empty_like(ranked)
    np.put_along_axis(adjusted, order, ranked, axis=-1)
    return adjusted


__all__ = ["CORRECTIONS", "Correction", "adjust_p_values", "check_correction"]

"""Deterministic assignment of units to arms by hashing (experiment salt, unit id).

``u = int(sha256(len(salt) ":" salt ":" str(unit_id))[:8], big-endian) / 2**64`` is uniform on [0, 1) and the
unit goes to the first arm ``k`` with ``u < split[0] + ... + split[k]``. The salt is length-prefixed so that
("ab", "c") and ("a", "bc") cannot collide. SHA-256 (not Python's salted ``hash()``) makes the assignment
identical across processes, restarts, machines and languages. Unit ids are hashed by their ``str()`` form:
``42`` and ``"42"`` get the same arm. Different salts give independent assignments, so one unit's arm in one
experiment says nothing about its arm in another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from nextbest.experiments.design import InvalidParameter

_SCALE = float(2**64)


def _check_split(split: Sequence[float], arms: Sequence[str]) -> np.ndarray:
    """Cumulative shares (normalized split), validated against the arms."""
    if isinstance(arms, str):
        raise InvalidParameter("arms must be a sequence of arm names, not one string")
    try:
        shares = np.asarray(split, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidParameter(f"split must be a sequence of shares, got {split!r}") from None
    if len(shares) != len(arms):
        raise InvalidParameter(f"split has {len(shares)} shares but there are {len(arms)} arms ({', '.join(arms)})")
    if len(arms) < 2:
        raise InvalidParameter("an experiment needs at least two arms")
    if len(set(arms)) != len(arms):
        raise InvalidParameter(f"arm names must be distinct, got {list(arms)}")
    if not np.isfinite(shares).all() or (shares < 0).any() or shares.sum() <= 0:
        raise InvalidParameter(f"split shares must be non-negative numbers with a positive sum, got {list(split)}")
    if abs(shares.sum() - 1.0) > 1e-6:
        raise InvalidParameter(f"split shares must sum to 1, got {list(split)} (sum {shares.sum():g})")
    cumulative = np.cumsum(shares / shares.sum())
    cumulative[-1] = np.inf  # u < 1 always lands in the last arm with a positive share at worst
    return cumulative


def _prefix(salt: Any) -> bytes:
    text = str(salt)
    if not text:
        raise InvalidParameter("salt must be a non-empty string (one per experiment)")
    return f"{len(text)}:{text}:".encode()


def hash_uniform(unit_ids: Iterable[Any], salt: Any) -> np.ndarray:
    """The uniform [0, 1) number of each unit in experiment ``salt`` (float64; 53 of the 64 hash bits)."""
    seed = hashlib.sha256(_prefix(salt))
    digests = bytearray()
    for unit in unit_ids:
        h = seed.copy()
        h.update(str(unit).encode())
        digests += h.digest()[:8]
    return np.frombuffer(bytes(digests), dtype=">u8").astype(np.float64) / _SCALE


def assign_many(
    unit_ids: Iterable[Any],
    salt: Any,
    split: Sequence[float] = (0.5, 0.5),
    arms: Sequence[str] = ("original", "new"),
) -> np.ndarray:
    """Arms of many units at once: a numpy array of arm names (``dtype=object``), same order as ``unit_ids``."""
    cumulative = _check_split(split, arms)
    u = hash_uniform(unit_ids, salt)
    index = np.searchsorted(cumulative, u, side="right")
    return np.asarray(list(arms), dtype=object)[index]


def assign(
    unit_id: Any,
    salt: Any,
    split: Sequence[float] = (0.5, 0.5),
    arms: Sequence[str] = ("original", "new"),
) -> str:
    """The arm of one unit in experiment ``salt``: deterministic, stable across processes and restarts."""
    return str(assign_many([unit_id], salt, split, arms)[0])

"""Malformed messages of every kind the decision worker must dead-letter (for traffic, tests and benchmarks).

``corrupt(record, topic, kind, rng)`` turns a valid message (a dict of the platform schema) into raw bytes that
break one rule of ``nextbest.data.feed``; ``FAULT_KINDS[topic]`` lists the kinds of each half, ``REASON_PREFIX``
the start of the dead-letter reason each one must get. The feed's normal quirks (repeated keys, missing flags,
unknown keys) are not faults: ``nextbest.sim.shop.FeedStyle`` writes those.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from nextbest.data.feed import MAX_BYTES
from nextbest.stream import topics

#: The ways each half can be broken (the traffic draws a kind by index from its half's list: both lists are as long).
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    topics.DEMOGRAPHIC: ("invalid_json", "missing_uuid", "non_integer_uuid", "missing_field", "wrong_type",
                         "boolean_value", "out_of_range", "both_sexes", "conflicting_duplicate", "oversized"),
    topics.HISTORIC: ("invalid_json", "missing_uuid", "non_integer_uuid", "missing_field", "wrong_type",
                      "boolean_value", "out_of_range", "too_few_flags", "conflicting_duplicate", "oversized"),
}  # fmt: skip
REASON_PREFIX = {
    "invalid_json": "invalid JSON",
    "missing_uuid": "invalid field",
    "non_integer_uuid": "invalid field",
    "missing_field": "invalid field",
    "wrong_type": "invalid field",
    "boolean_value": "invalid field",
    "out_of_range": "invalid field",
    "both_sexes": "invalid field: man and woman are both 1",
    "too_few_flags": "too few known flags",
    "conflicting_duplicate": "conflicting values for key",
    "oversized": "oversized message",
}


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def _conflicting_duplicate(record: dict[str, Any], topic: str) -> bytes:
    """The uuid (historic) or the age (demographic) named twice with different values."""
    key = "uuid" if topic == topics.HISTORIC else "age"
    other = record[key] + 1 if record[key] < 100 else record[key] - 1
    return _dumps(record)[:-1] + f', "{key}": {other}}}'.encode()


def _first_flag(record: dict[str, Any]) -> str:
    return next(iter(record["products"]))


def corrupt(
    record: dict[str, Any], topic: str, kind: str, rng: np.random.Generator, max_bytes: int = MAX_BYTES
) -> bytes:
    """Raw bytes of ``record`` broken in the way ``kind`` names (the uuid stays readable where it can)."""
    record = json.loads(json.dumps(record))
    historic = topic == topics.HISTORIC
    pick = int(rng.integers(3))
    if kind == "invalid_json":
        return _dumps(record)[: -int(rng.integers(1, 5))]
    if kind == "conflicting_duplicate":
        return _conflicting_duplicate(record, topic)
    if kind == "missing_uuid":
        record.pop("uuid")
    elif kind == "non_integer_uuid":
        record["uuid"] = [str(record["uuid"]), record["uuid"] + 0.5, True][pick]
    elif kind == "missing_field" and historic:
        record.pop("products")
    elif kind == "missing_field":
        record.pop(["age", "man", "woman"][pick])
    elif kind == "wrong_type" and historic:
        record["products"] = [list(record["products"].values()), {**record["products"], _first_flag(record): "1"},
                              {**record["products"], _first_flag(record): 0.5}][pick]  # fmt: skip
    elif kind == "wrong_type":
        record["age"] = [str(record["age"]), float(record["age"]) + 0.5, None][pick]
    elif kind == "out_of_range" and historic:
        record["products"][_first_flag(record)] = [2, -1, 7][pick]
    elif kind == "out_of_range":
        field, value = [("age", -3), ("age", 250), ("man", 2)][pick]
        record[field] = value
    elif kind == "boolean_value" and historic:
        record["products"][_first_flag(record)] = bool(pick % 2)
    elif kind == "boolean_value":
        record[["man", "woman", "age"][pick]] = True
    elif kind == "both_sexes" and not historic:
        record["man"] = record["woman"] = 1
    elif kind == "too_few_flags" and historic:
        names = list(record["products"])
        keep = rng.choice(len(names), size=int(rng.integers(0, len(names) // 2)), replace=False)
        record["products"] = {names[i]: record["products"][names[i]] for i in sorted(keep)}
    elif kind == "oversized":
        record["padding"] = "x" * (max_bytes + 1)
    else:
        raise ValueError(f"unknown fault kind {kind!r} for {topic}; one of {FAULT_KINDS[topic]}")
    return _dumps(record)

"""Malformed messages of every kind the decision worker must dead-letter (for traffic, tests and benchmarks).

``corrupt(record, topic, kind, rng)`` turns a valid message (a dict of the platform schema) into raw bytes that
break one rule of ``nextbest.stream.messages``; ``FAULT_KINDS`` lists the kinds, ``REASON_PREFIX`` the start of
the dead-letter reason each one must get.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from nextbest.stream import topics
from nextbest.stream.messages import MAX_BYTES

FAULT_KINDS = (
    "invalid_json",
    "missing_uuid",
    "non_integer_uuid",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "duplicate_key",
    "oversized",
)
REASON_PREFIX = {
    "invalid_json": "invalid JSON",
    "missing_uuid": "invalid field",
    "non_integer_uuid": "invalid field",
    "missing_field": "invalid field",
    "wrong_type": "invalid field",
    "out_of_range": "invalid field",
    "duplicate_key": "duplicate key",
    "oversized": "oversized message",
}


def _dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def _duplicate_key(record: dict[str, Any], topic: str, rng: np.random.Generator) -> bytes:
    if topic == topics.HISTORIC:
        products = record["products"]
        name = list(products)[int(rng.integers(len(products)))]
        body = json.dumps(products)[1:-1]
        return f'{{"uuid": {record["uuid"]}, "products": {{{body}, "{name}": {1 - products[name]}}}}}'.encode()
    return _dumps(record)[:-1] + f', "age": {record["age"]}}}'.encode()


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
    if kind == "duplicate_key":
        return _duplicate_key(record, topic, rng)
    if kind == "missing_uuid":
        record.pop("uuid")
    elif kind == "non_integer_uuid":
        record["uuid"] = [str(record["uuid"]), record["uuid"] + 0.5, True][pick]
    elif kind == "missing_field" and historic:
        record["products"].pop(list(record["products"])[int(rng.integers(len(record["products"])))])
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
    elif kind == "oversized":
        record["padding"] = "x" * (max_bytes + 1)
    else:
        raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
    return _dumps(record)

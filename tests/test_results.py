"""Typed results: one serializer, one checked reader that names the file and the key."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest

from nextbest.errors import NextbestError
from nextbest.results import Result, name_dict_keys


class Link(Result):
    week: int
    from_: str = msgspec.field(name="from")


class Report(Result, kw_only=True):
    title: str = "untitled"
    score: float | None
    links: list[Link]
    by_policy: dict[str, Link] = {}


def test_one_serializer_round_trips_and_writes_null_for_non_finite(tmp_path: Path) -> None:
    report = Report(score=math.inf, links=[Link(week=1, from_="email")], by_policy={"a": Link(week=2, from_="call")})
    data = json.loads(report.to_json())
    assert data == {"title": "untitled", "score": None, "links": [{"week": 1, "from": "email"}],
                    "by_policy": {"a": {"week": 2, "from": "call"}}}  # fmt: skip
    assert Report.load(report.write(tmp_path / "r.json")).to_dict() == data
    assert Report.from_dict(data) == Report.load(tmp_path / "r.json")


def test_a_wrong_shape_names_the_file_and_the_dict_key(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"score": 1.0, "links": [], "by_policy": {"a": {"week": 1, "from": "x"},
                                                                          "b": {"week": "two", "from": "y"}}}))
    with pytest.raises(NextbestError, match=r"r\.json: Expected `int`, got `str` - at `\$\.by_policy\.b\.week`; run"):
        Report.load(path, "run it first")
    path.write_text("{not json")
    with pytest.raises(NextbestError, match="not valid JSON"):
        Report.load(path)
    with pytest.raises(NextbestError, match="not found; run it first"):
        Report.load(tmp_path / "absent.json", "run it first")


def test_dict_keys_are_named_for_missing_fields_and_left_alone_when_ambiguous() -> None:
    data = {"p": {"a": {"x": 1}, "b": {}}}
    assert name_dict_keys("Object missing required field `x` - at `$.p[...]`", data).endswith("`$.p.b`")
    both = {"p": {"a": {}, "b": {}}}
    assert name_dict_keys("Object missing required field `x` - at `$.p[...]`", both).endswith("`$.p.a and $.p.b`")
    assert name_dict_keys("Expected `int`, got `str` - at `$.q`", data) == "Expected `int`, got `str` - at `$.q`"

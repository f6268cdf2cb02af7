"""Typed results: every figure that crosses from the core to a face (CLI JSON, HTML reports, the platform) is a
`Result`, a msgspec Struct with one JSON serializer and one checked reader.

    result.to_json()                    # the JSON a command writes (keys in field order, 2-space indent)
    result.to_dict()                    # plain builtins (dicts, lists, numbers, strings, None)
    Evaluation.load(path, hint)         # read a file back as its type; a wrong shape ends in one NextbestError
                                        # naming the file and the key, e.g. "...: Expected `float`, got `str` -
                                        # at `$.policies.learned.roi`"

msgspec does not pass ``kw_only`` on to subclasses: a result with a defaulted field before required ones
says ``class Summary(Result, kw_only=True)``. A field whose JSON key is not a Python name (``from``) is declared
with ``msgspec.field(name="from")``. Numbers that are not finite are written as null (the JSON that scripts read
has always done so).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Self

import msgspec

from nextbest.errors import NextbestError


class Result(msgspec.Struct, kw_only=True):
    """Base of the typed results (see the module doc)."""

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON builtins (tuples become lists); non-finite floats become None."""
        return _finite(msgspec.to_builtins(self))

    def to_json(self) -> str:
        """The one JSON form of the result."""
        return msgspec.json.format(msgspec.json.encode(self.to_dict()), indent=2).decode() + "\n"

    def write(self, path: str | Path) -> Path:
        """Write `to_json()` to `path`; an unwritable path is a NextbestError naming it."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.to_json(), encoding="utf-8")
        except OSError as error:
            raise NextbestError(f"{path}: cannot write ({error})") from None
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "result") -> Self:
        """Check plain data against the type; a wrong shape is a NextbestError naming `source` and the key."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as error:
            raise NextbestError(f"{source}: {name_dict_keys(str(error), data)}") from None

    @classmethod
    def load(cls, path: str | Path, hint: str = "") -> Self:
        """Read a JSON file written by `write`; missing, unreadable or wrongly shaped files are NextbestErrors."""
        path = Path(path)
        suffix = f"; {hint}" if hint else ""
        if not path.is_file():
            raise NextbestError(f"{path}: not found{suffix}")
        raw = path.read_bytes()
        try:
            return msgspec.json.decode(raw, type=cls)
        except msgspec.ValidationError as error:
            raise NextbestError(f"{path}: {name_dict_keys(str(error), msgspec.json.decode(raw))}{suffix}") from None
        except msgspec.DecodeError as error:
            raise NextbestError(f"{path}: not valid JSON ({error}){suffix}") from None


_JSON_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "null": type(None), "array": list,
               "object": dict}  # fmt: skip


def name_dict_keys(message: str, data: Any) -> str:
    """msgspec's message with each ``[...]`` of its path (an entry of a dict) replaced by the key whose value is
    the one it complains about (``$.policies[...].roi`` → ``$.policies.learned.roi``), when the data says which."""
    found = re.search(r"at `(\$[^`]*)`", message)
    if found is None or "[...]" not in found.group(1):
        return message
    candidates: list[tuple[str, Any]] = [("$", data)]
    for name, index in re.findall(r"\.([^.\[]+)|\[([^\]]+)\]", found.group(1)[1:]):
        step: list[tuple[str, Any]] = []
        for where, value in candidates:
            if name and isinstance(value, dict) and name in value:
                step.append((f"{where}.{name}", value[name]))
            elif index == "..." and isinstance(value, dict):
                step += [(f"{where}.{key}", item) for key, item in value.items()]
            elif index.isdigit() and isinstance(value, list) and int(index) < len(value):
                step.append((f"{where}[{index}]", value[int(index)]))
        candidates = step
    got = re.search(r"got `(\w+)`", message)
    missing = re.search(r"missing required field `(\w+)`", message)
    if got and got.group(1) in _JSON_TYPES:
        kind = _JSON_TYPES[got.group(1)]
        candidates = [(w, v) for w, v in candidates
                      if isinstance(v, kind) and (kind is bool or not isinstance(v, bool))]  # fmt: skip
    elif missing:
        candidates = [(w, v) for w, v in candidates if isinstance(v, dict) and missing.group(1) not in v]
    if not candidates:
        return message
    return message.replace(found.group(1), " and ".join(w for w, _ in candidates[:3]))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value

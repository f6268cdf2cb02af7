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
            raise NextbestError(f"{source}: {error}") from None

    @classmethod
    def load(cls, path: str | Path, hint: str = "") -> Self:
        """Read a JSON file written by `write`; missing, unreadable or wrongly shaped files are NextbestErrors."""
        path = Path(path)
        suffix = f"; {hint}" if hint else ""
        if not path.is_file():
            raise NextbestError(f"{path}: not found{suffix}")
        try:
            return msgspec.json.decode(path.read_bytes(), type=cls)
        except msgspec.ValidationError as error:
            raise NextbestError(f"{path}: {error}{suffix}") from None
        except msgspec.DecodeError as error:
            raise NextbestError(f"{path}: not valid JSON ({error}){suffix}") from None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value

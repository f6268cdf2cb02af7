"""Decode and validate the two input halves of a customer; anything invalid becomes a ``Rejected`` reason.

    demographic  {"uuid": 404180, "age": 41, "man": 1, "woman": 0}
    historic     {"uuid": 404180, "products": {"cat0": 0, ..., "cat99": 1, "u0": 0, ..., "u9": 0}}

Rules (each broken rule is one reason, the text that goes to the dead-letter topic):
    * at most ``max_bytes`` bytes, valid UTF-8 JSON, an object;
    * ``uuid`` a JSON integer in [0, 2^63); ``age`` an integer in [0, 120]; ``man``, ``woman`` 0 or 1, not both 1;
    * ``products`` an object holding every flag the model reads, each the integer 0 or 1; other flags are ignored;
    * no key twice in one object (the real feed repeats keys inside ``products``; a JSON parser would silently
      keep the last value, so such a message is rejected rather than guessed).

Validation runs in msgspec's C decoder. Duplicate keys are found without a second parse: every key is a quoted
string and every valid value is a number, so a valid message holds exactly ``2 × keys`` quote characters; a
message whose count differs is parsed again with Python's ``json`` to name the repeated key (or accepted when
the difference came from something harmless, such as an extra text field).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta

MAX_BYTES = 64 * 1024
Uuid = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Flag = Annotated[int, Meta(ge=0, le=1)]


class Demographic(msgspec.Struct):
    uuid: Uuid
    age: Annotated[int, Meta(ge=0, le=120)]
    man: Flag
    woman: Flag


@dataclass(frozen=True)
class Rejected:
    """Why a message cannot be used (the dead-letter reason)."""

    reason: str


@dataclass(slots=True)
class DemographicHalf:
    uuid: int
    values: tuple[int, int, int]  # age, man, woman


@dataclass(slots=True)
class HistoricHalf:
    uuid: int
    flags: bytes  # one byte (0 or 1) per product flag, in the model's order


def _first_repeated_key(raw: bytes) -> str | None:
    repeated: list[str] = []

    def hook(pairs: list[tuple[str, object]]) -> dict:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen and not repeated:
                repeated.append(key)
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=hook)
    except ValueError:
        return None
    return repeated[0] if repeated else None


class MessageDecoder:
    """Decodes demographic and historic messages for a model reading ``flags`` (product names, in order)."""

    def __init__(self, flags: Sequence[str], max_bytes: int = MAX_BYTES) -> None:
        self.flags = list(flags)
        self.max_bytes = max_bytes
        products = msgspec.defstruct("Products", [(name, Flag) for name in self.flags])
        historic = msgspec.defstruct("Historic", [("uuid", Uuid), ("products", products)])
        self._demographic = msgspec.json.Decoder(Demographic)
        self._historic = msgspec.json.Decoder(historic)
        self._astuple = msgspec.structs.astuple
        self._historic_quotes = 2 * (2 + len(self.flags))

    def _precheck(self, raw: bytes | None) -> Rejected | None:
        if not raw:
            return Rejected("empty message")
        if len(raw) > self.max_bytes:
            return Rejected(f"oversized message: {len(raw)} bytes > {self.max_bytes}")
        return None

    @staticmethod
    def _invalid(error: Exception) -> Rejected:
        kind = "invalid field" if isinstance(error, msgspec.ValidationError) else "invalid JSON"
        return Rejected(f"{kind}: {error}")

    def _repeated(self, raw: bytes, expected_quotes: int) -> Rejected | None:
        if raw.count(b'"') == expected_quotes:
            return None
        key = _first_repeated_key(raw)
        return Rejected(f"duplicate key {key!r}") if key is not None else None

    def demographic(self, raw: bytes | None) -> DemographicHalf | Rejected:
        """The demographic half, or why not."""
        rejected = self._precheck(raw)
        if rejected:
            return rejected
        try:
            record = self._demographic.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return self._invalid(error)
        if record.man and record.woman:
            return Rejected("invalid field: man and woman are both 1")
        return self._repeated(raw, 8) or DemographicHalf(record.uuid, (record.age, record.man, record.woman))

    def historic(self, raw: bytes | None) -> HistoricHalf | Rejected:
        """The historic half (its flags packed in the model's order), or why not."""
        rejected = self._precheck(raw)
        if rejected:
            return rejected
        try:
            record = self._historic.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            return self._invalid(error)
        return self._repeated(raw, self._historic_quotes) or HistoricHalf(
            record.uuid, bytes(self._astuple(record.products))
        )

"""The shop feed's two messages: decode, validate, and read the products the way the real feed writes them.

    demographic  {"uuid": 404180, "age": 41, "man": 1, "woman": 0}
    historic     {"uuid": 404180, "products": {"cat17": 0, ..., "u4": 0, ...}}

The real feed names a subset of the flags, repeats keys and adds keys the model does not know (the example message
of the shop's architecture document does all three). The decoder accepts such messages and says what it did; the
tally (``FeedTally``) counts every case per key:

* **Repeated product keys.** The same value: one record. Conflicting values: **a purchase flag is 1 if any of its
  records says 1** (a record of a purchase is evidence; a 0 only says that one source saw none). Never a rejection.
* **Missing flags** are left ``MISSING`` (255) in the half; the model's feature builder
  (``nextbest.models.targeting.assemble_rows``) imputes them with the value the model was trained with (its
  ``Imputation``, written in the export sidecar). A message naming fewer than ``1 - max_missing_share`` of the
  model's flags (default: more than half missing) is rejected as "too few known flags".
* **Unknown product keys** are ignored and counted by name (schema drift shows in the metrics, not as lost
  customers). Unknown top-level keys are ignored.

Rejections (each is the reason that goes to the dead-letter topic): empty or oversized message; not valid UTF-8
JSON; not an object; ``uuid`` not a JSON integer in [0, 2^63); ``age`` not an integer in [0, 120]; ``man``,
``woman`` not 0 or 1, or both 1; a product flag (any of its records) not the integer 0 or 1 (booleans included);
``products`` missing or not an object; too few known flags; a demographic key or ``uuid`` repeated with
conflicting values, or ``products`` repeated.

Speed: the historic message is read in one pass by the compiled ``HistoricScanner`` (``_historic_scan.c``), which
declines whatever it cannot decide exactly (escapes, non-ASCII text, nested values, invalid values...). A declined
message takes the reference path written here (msgspec validation, then the same rule on the parsed pairs), which
is also the specification the tests hold the scanner to.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import Meta

try:
    from nextbest.data._historic_scan import HistoricScanner
except ImportError:  # not compiled (a source checkout without a build): the reference path does all the work
    HistoricScanner = None

MAX_BYTES = 64 * 1024
MISSING = 255
DEFAULT_MAX_MISSING_SHARE = 0.5
Uuid = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Flag = Annotated[int, Meta(ge=0, le=1)]
NOT_REPEATED, REPEATED, CONFLICTING = 0, 1, 2


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
    repeated: tuple[str, ...] = ()  # keys the message repeats (always with the same value)


@dataclass(slots=True)
class HistoricHalf:
    """The products of one customer: ``flags`` holds one byte per model flag (0, 1 or ``MISSING``).

    ``repeats`` is None or one byte per flag (0 not repeated, 1 repeated with one value, 2 with conflicting values);
    ``unknown`` is None or the product keys the model does not know, in message order.
    """

    uuid: int
    flags: bytes
    repeats: bytes | None = None
    unknown: list[str] | None = None


def _pairs(raw: bytes) -> list[tuple[str, Any]]:
    """The top-level members of a JSON object in message order, repeats kept (nested objects as pair lists too)."""
    return json.loads(raw, object_pairs_hook=list)


def resolve_products(
    pairs: Sequence[tuple[str, Any]], index: dict[str, int]
) -> tuple[bytes, int, bytes | None, list[str] | None]:
    """THE rule for the products object: ``(flags, known, repeats, unknown)`` from its members in message order.

    ``index`` maps a flag name to its position. A flag named once takes its value; named again, it is marked
    repeated (conflicting when the values differ) and becomes 1 if any record says 1. Values of known flags must
    already be validated as the integers 0 or 1. ``_historic_scan.c`` implements the same loop.
    """
    flags, repeats = bytearray([MISSING]) * len(index), bytearray(len(index))
    known, unknown = 0, []
    for key, value in pairs:
        i = index.get(key)
        if i is None:
            unknown.append(key)
        elif flags[i] == MISSING:
            flags[i] = value
            known += 1
        else:
            repeats[i] = CONFLICTING if flags[i] != value or repeats[i] == CONFLICTING else REPEATED
            flags[i] |= value
    return bytes(flags), known, bytes(repeats) if any(repeats) else None, unknown or None


class MessageDecoder:
    """Decodes the two halves for a model reading ``flags`` (product names, in the model's order)."""

    def __init__(
        self, flags: Sequence[str], max_bytes: int = MAX_BYTES, max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
    ) -> None:
        if not 0 <= max_missing_share <= 1:
            raise ValueError(f"max_missing_share must be in [0, 1], got {max_missing_share}")
        self.flags = list(flags)
        self.index = {name: i for i, name in enumerate(self.flags)}
        self.max_bytes = max_bytes
        self.max_missing_share = max_missing_share
        self.min_known = len(self.flags) - math.floor(max_missing_share * len(self.flags) + 1e-9)
        products = msgspec.defstruct("Products", [(name, Flag, MISSING) for name in self.flags])
        self._historic = msgspec.json.Decoder(msgspec.defstruct("Historic", [("uuid", Uuid), ("products", products)]))
        self._demographic = msgspec.json.Decoder(Demographic)
        self._scanner = _scanner(self.flags)

    @property
    def compiled(self) -> bool:
        """Whether the compiled fast path reads historic messages (else the reference path reads them all)."""
        return self._scanner is not None

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

    # ------------------------------------------------------------------ demographic
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
        half = DemographicHalf(record.uuid, (record.age, record.man, record.woman))
        if raw.count(b'"') == 8:  # exactly the four keys, each once: nothing else to look at
            return half
        repeated, conflicting = _repeated_keys(_pairs(raw))
        if conflicting:
            return Rejected(f"conflicting values for key {conflicting[0]!r}")
        half.repeated = tuple(repeated)
        return half

    # ------------------------------------------------------------------ historic
    def historic(self, raw: bytes | None) -> HistoricHalf | Rejected:
        """The historic half (flags in the model's order, ``MISSING`` where the message names none), or why not."""
        rejected = self._precheck(raw)
        if rejected:
            return rejected
        scanned = self._scanner.scan(raw) if self._scanner is not None else None
        if scanned is None:
            return self._historic_reference(raw)
        uuid, flags, known, repeats, unknown = scanned
        if known < self.min_known:
            return self._too_few(known)
        return HistoricHalf(uuid, flags, repeats, unknown)

    def _too_few(self, known: int) -> Rejected:
        share = f"{self.max_missing_share:.0%}"
        return Rejected(f"too few known flags: {known} of {len(self.flags)} named (at most {share} may be missing)")

    def _historic_reference(self, raw: bytes) -> HistoricHalf | Rejected:
        """The specification: msgspec validates every record, then ``resolve_products`` reads the pairs."""
        try:
            record = self._historic.decode(raw)
            top = _pairs(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
            return self._invalid(error)
        repeated, conflicting = _repeated_keys([(k, v) for k, v in top if k in ("uuid", "products")])
        if "products" in repeated:
            return Rejected("duplicate key 'products'")
        if conflicting:
            return Rejected(f"conflicting values for key {conflicting[0]!r}")
        products = next(value for key, value in reversed(top) if key == "products")
        flags, known, repeats, unknown = resolve_products(products, self.index)
        if known < self.min_known:
            return self._too_few(known)
        return HistoricHalf(record.uuid, flags, repeats, unknown)


def _scanner(flags: list[str]) -> Any:
    if HistoricScanner is None:
        return None
    try:
        return HistoricScanner(flags)
    except ValueError:  # names the compiled path cannot hold (non-ASCII...): the reference path reads everything
        return None


def _repeated_keys(pairs: Sequence[tuple[str, Any]]) -> tuple[list[str], list[str]]:
    """Keys named more than once, and those among them with different values (compared as JSON text)."""
    seen: dict[str, set[str]] = {}
    counts = Counter(key for key, _ in pairs)
    for key, value in pairs:
        if counts[key] > 1:
            seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return list(seen), [key for key, values in seen.items() if len(values) > 1]


class FeedTally:
    """What the decoder resolved, per key, over the customers it was given (``add``): ``as_json()`` for metrics.

    ``missing_flags`` counts customers whose message did not name the flag (imputed), ``repeated_keys`` customers
    whose message repeated it, ``conflicting_keys`` those among them with conflicting values, ``unknown_keys``
    occurrences of product keys the model does not know; ``demographic_repeated_keys`` the same for demographics.
    """

    def __init__(self, flags: Sequence[str]) -> None:
        self.flags = list(flags)
        n = len(self.flags)
        self.customers = 0
        self.missing = np.zeros(n, dtype=np.int64)
        self.repeated = np.zeros(n, dtype=np.int64)
        self.conflicting = np.zeros(n, dtype=np.int64)
        self.with_missing = self.with_repeats = self.with_unknown = 0
        self.unknown: Counter[str] = Counter()
        self.demographic_repeated: Counter[str] = Counter()

    def add(
        self, flags: np.ndarray, historic: Sequence[HistoricHalf], demographic: Sequence[DemographicHalf] = ()
    ) -> None:
        """Count one batch: ``flags`` is the [n, flags] uint8 matrix of ``historic`` (``MISSING`` marks a gap)."""
        self.customers += len(historic)
        missing = flags == MISSING
        self.missing += missing.sum(axis=0)
        self.with_missing += int(missing.any(axis=1).sum())
        repeats = [half.repeats for half in historic if half.repeats is not None]
        if repeats:
            matrix = np.frombuffer(b"".join(repeats), dtype=np.uint8).reshape(len(repeats), -1)
            self.repeated += (matrix != NOT_REPEATED).sum(axis=0)
            self.conflicting += (matrix == CONFLICTING).sum(axis=0)
            self.with_repeats += len(repeats)
        for half in historic:
            if half.unknown:
                self.unknown.update(half.unknown)
                self.with_unknown += 1
        for half in demographic:
            if half.repeated:
                self.demographic_repeated.update(half.repeated)

    def _named(self, counts: np.ndarray) -> dict[str, int]:
        return {self.flags[i]: int(counts[i]) for i in np.flatnonzero(counts)}

    def as_json(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "customers_with_repeated_keys": self.with_repeats,
            "customers_with_missing_flags": self.with_missing,
            "customers_with_unknown_keys": self.with_unknown,
            "repeated_keys": self._named(self.repeated),
            "conflicting_keys": self._named(self.conflicting),
            "missing_flags": self._named(self.missing),
            "unknown_keys": dict(self.unknown),
            "demographic_repeated_keys": dict(self.demographic_repeated),
        }


def flag_matrix(halves: Sequence[HistoricHalf]) -> np.ndarray:
    """The [n, flags] uint8 matrix of historic halves (``MISSING`` where a flag was not named)."""
    if not halves:
        return np.zeros((0, 0), dtype=np.uint8)
    return np.frombuffer(b"".join(half.flags for half in halves), dtype=np.uint8).reshape(len(halves), -1)

"""The stream's state: halves waiting for their twin (bounded, with a time-to-live) and the input offsets that
may be committed.

``JoinBuffer`` pairs a customer's demographic and historic halves by uuid, whichever arrives first. A half
waits at most ``ttl`` seconds and the buffer holds at most ``max_waiting`` halves; a half that expires or is
evicted is handed back to the caller (which dead-letters it and counts it). A half for a uuid decided
recently (``recent`` uuids remembered) is answered at once as a repeat, so that redelivered input after a
restart or a rebalance does not wait for a twin that will not come again.

``OffsetTracker`` implements "commit only what is done": each consumed message is a ``Ticket``; the offset
committed for a partition is the lowest ticket not yet done (or one past the last consumed), so a crash
replays every message whose decision (or dead-letter entry) the broker had not acknowledged.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Ticket(NamedTuple):
    """Where a consumed message came from."""

    topic: str
    partition: int
    offset: int


@dataclass
class Waiting:
    """A half waiting for its twin."""

    kind: str  # "demographic" | "historic"
    half: Any
    ticket: Ticket
    arrived: float
    raw: bytes


@dataclass
class Pair:
    """Both halves of one customer, with the tickets to mark done once the decision is acknowledged."""

    uuid: int
    demographic: Any
    historic: Any
    tickets: tuple[Ticket, Ticket]


@dataclass
class JoinBuffer:
    """Pairs halves by uuid; see the module docstring for the contract."""

    ttl: float = 60.0
    max_waiting: int = 1_000_000
    recent: int = 1_000_000
    waiting: OrderedDict[int, Waiting] = field(default_factory=OrderedDict)
    decided: OrderedDict[int, None] = field(default_factory=OrderedDict)

    def add(self, kind: str, uuid: int, half: Any, ticket: Ticket, now: float, raw: bytes) -> Pair | str | None:
        """A ``Pair`` when the twin was waiting; "repeat" for a half already waiting or decided; else None."""
        if uuid in self.decided:
            return "repeat"
        twin = self.waiting.get(uuid)
        if twin is None:
            self.waiting[uuid] = Waiting(kind, half, ticket, now, raw)
            return None
        if twin.kind == kind:
            return "repeat"
        del self.waiting[uuid]
        self._remember(uuid)
        if kind == "demographic":
            return Pair(uuid, half, twin.half, (ticket, twin.ticket))
        return Pair(uuid, twin.half, half, (twin.ticket, ticket))

    def _remember(self, uuid: int) -> None:
        self.decided[uuid] = None
        if len(self.decided) > self.recent:
            self.decided.popitem(last=False)

    def expire(self, now: float) -> list[Waiting]:
        """Remove and return the halves older than ``ttl`` and, beyond ``max_waiting``, the oldest ones."""
        gone = []
        while self.waiting:
            uuid, oldest = next(iter(self.waiting.items()))
            if now - oldest.arrived <= self.ttl and len(self.waiting) <= self.max_waiting:
                break
            del self.waiting[uuid]
            gone.append(oldest)
        return gone

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> int:
        """Forget the halves read from ``partitions`` (revoked: their new owner re-reads them). Returns how many."""
        doomed = [u for u, w in self.waiting.items() if (w.ticket.topic, w.ticket.partition) in partitions]
        for uuid in doomed:
            del self.waiting[uuid]
        return len(doomed)


@dataclass
class _Partition:
    consumed: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    last: int = -1


class OffsetTracker:
    """Per partition, the next offset that is safe to commit."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def consumed(self, ticket: Ticket) -> None:
        """Record a message as read and not yet done."""
        state = self._partitions.setdefault((ticket.topic, ticket.partition), _Partition())
        state.consumed.append(ticket.offset)
        state.last = max(state.last, ticket.offset)

    def done(self, ticket: Ticket) -> None:
        """Mark a message done (its decision or dead-letter entry acknowledged, or nothing left to do)."""
        state = self._partitions.get((ticket.topic, ticket.partition))
        if state is None:
            return  # the partition was revoked meanwhile
        state.done.add(ticket.offset)
        while state.consumed and state.consumed[0] in state.done:
            state.done.discard(state.consumed.popleft())

    def committable(self) -> dict[tuple[str, int], int]:
        """Offset to commit per partition: the lowest offset not done, or one past the last consumed."""
        return {
            key: state.consumed[0] if state.consumed else state.last + 1
            for key, state in self._partitions.items()
            if state.last >= 0
        }

    def pending(self) -> int:
        """Messages consumed and not yet done."""
        return sum(len(state.consumed) for state in self._partitions.values())

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        for key in partitions:
            self._partitions.pop(key, None)

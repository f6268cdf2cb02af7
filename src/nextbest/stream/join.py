"""The stream's state: halves waiting for their twin (bounded, with a time-to-live) and the input offsets that
may be committed.

``JoinBuffer`` pairs a customer's demographic and historic halves by uuid, whichever arrives first. A half
waits at most ``ttl`` seconds (event time: see ``JoinBuffer``) and the buffer holds at most ``max_waiting``
halves; a half that expires or is evicted is handed back to the caller (which dead-letters it and counts
it). A half for a uuid decided recently (``recent`` uuids remembered) is answered at once as a repeat, so
that redelivered input after a rebalance does not wait for a twin that will not come again. ``take_fresh()``
hands out, once, the halves that started waiting and still wait, for the worker to write them to the join changelog
(``nextbest.stream.changelog``), except those whose twin may still be on its way (see ``take_fresh``); ``restore``
puts a half read back from there in the buffer.

``OffsetTracker`` implements "commit only what is done": each consumed message is a ``Ticket``; the offset
committed for a partition is the lowest ticket not yet done (or one past the last consumed), so a crash
replays every message whose outputs (decision, dead-letter entry, or the changelog entry of a waiting half) the
broker had not acknowledged. The two tickets of a pair are committed together (``bind``): a crash never replays one
half of a decided pair without the other, which would wait for a twin that is not coming again.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Ticket(NamedTuple):
    """Where a consumed message came from."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Waiting:
    """A half waiting for its twin; ``logged`` once it was handed out to be written to the changelog."""

    uuid: int
    kind: str  # "demographic" | "historic"
    half: Any
    ticket: Ticket
    event_time: float  # the message's timestamp, seconds
    arrived: float  # when this worker read it (monotonic clock)
    raw: bytes
    logged: bool = False


@dataclass(slots=True)
class Pair:
    """Both halves of one customer, with the tickets to mark done once the decision is acknowledged and the kinds
    of the halves that are in the changelog (to delete there once the tickets are committed)."""

    uuid: int
    demographic: Any
    historic: Any
    tickets: tuple[Ticket, Ticket]
    logged: tuple[str, ...] = ()


TWIN = {"demographic": "historic", "historic": "demographic"}
CaughtUp = Callable[[str, int], "bool | None"]


@dataclass
class JoinBuffer:
    """Pairs halves by uuid; see the module docstring for the contract.

    Expiry runs on event time, per partition: a half expires once its twin's stream (same partition of the other
    topic) has shown a message more than ``ttl`` seconds younger than the half, so that a backlog read at full
    speed (one topic racing ahead of the other) expires nothing that is still on its way. When the twin's stream
    has been read to its end (``caught_up``, given by the consumer) or, if that is unknown, has been silent for
    ``idle`` seconds, a half also expires ``ttl`` seconds (wall clock) after it was read.
    """

    ttl: float = 60.0
    max_waiting: int = 1_000_000
    recent: int = 1_000_000
    idle: float = 1.0
    waiting: dict[int, Waiting] = field(default_factory=dict)
    decided: OrderedDict[int, None] = field(default_factory=OrderedDict)
    _fresh: dict[tuple[str, int], deque[Waiting]] = field(default_factory=dict)
    _queues: dict[tuple[str, int], deque[tuple[int, Waiting]]] = field(default_factory=dict)
    _clock: dict[tuple[str, int], float] = field(default_factory=dict)
    _last_seen: dict[tuple[str, int], float] = field(default_factory=dict)

    def observe(self, kind: str, partition: int, event_time: float, now: float) -> None:
        """Advance the stream clock of ``kind``'s ``partition`` (call for every message read, valid or not)."""
        key = (kind, partition)
        if event_time > self._clock.get(key, float("-inf")):
            self._clock[key] = event_time
        self._last_seen[key] = now

    def add(self, kind: str, uuid: int, half: Any, ticket: Ticket, event_time: float, now: float,
            raw: bytes) -> Pair | str | None:  # fmt: skip
        """A ``Pair`` when the twin was waiting; "repeat" for a half already waiting or decided; else None."""
        if uuid in self.decided:
            return "repeat"
        twin = self.waiting.get(uuid)
        if twin is None:
            waiting = Waiting(uuid, kind, half, ticket, event_time, now, raw)
            self.waiting[uuid] = waiting
            where = (kind, ticket.partition)
            queue = self._queues.get(where)
            if queue is None:
                queue = self._queues[where] = deque()
                self._fresh[where] = deque()
            queue.append((uuid, waiting))
            self._fresh[where].append(waiting)
            return None
        if twin.kind == kind:
            return "repeat"
        del self.waiting[uuid]
        self.remember(uuid)
        logged = (twin.kind,) if twin.logged else ()
        if kind == "demographic":
            return Pair(uuid, half, twin.half, (ticket, twin.ticket), logged)
        return Pair(uuid, twin.half, half, (twin.ticket, ticket), logged)

    def restore(self, kind: str, uuid: int, half: Any, ticket: Ticket, event_time: float, now: float,
                raw: bytes) -> Pair | str | None:  # fmt: skip
        """``add`` a half read back from the changelog: it is logged already (a ``Pair`` it completes names both
        halves as logged)."""
        result = self.add(kind, uuid, half, ticket, event_time, now, raw)
        if result is None:
            self._fresh[(kind, ticket.partition)].pop().logged = True
        elif result.__class__ is Pair:
            result.logged = (*result.logged, kind)
        return result

    def take_fresh(self, caught_up: CaughtUp = lambda kind, partition: None, force: bool = False) -> list[Waiting]:
        """The halves that wait and were not handed out yet, marked logged now; unless ``force``, not those whose twin
        may still be on its way: the twin's stream (same partition of the other topic) has shown no message as young
        as the half and has not been read to its end (``caught_up`` False; None, unknown, counts as read). So a backlog
        read at full speed, one topic racing ahead of the other, writes (almost) nothing."""
        taken: list[Waiting] = []
        waiting = self.waiting
        for (kind, partition), fresh in self._fresh.items():
            twin = (TWIN[kind], partition)
            clock, behind = self._clock.get(twin, float("-inf")), None
            while fresh:
                half = fresh[0]
                if half.logged or waiting.get(half.uuid) is not half:
                    fresh.popleft()
                    continue
                if not force and half.event_time > clock:
                    if behind is None:
                        behind = caught_up(*twin) is False
                    if behind:
                        break
                fresh.popleft()
                half.logged = True
                taken.append(half)
        return taken

    def remember(self, uuid: int) -> None:
        """Note ``uuid`` as decided: its halves are repeats from now on (the last ``recent`` uuids are kept)."""
        self.decided[uuid] = None
        if len(self.decided) > self.recent:
            self.decided.popitem(last=False)

    def _expired(self, waiting: Waiting, now: float, caught_up: CaughtUp) -> bool:
        twin = (TWIN[waiting.kind], waiting.ticket.partition)
        if self._clock.get(twin, float("-inf")) - waiting.event_time > self.ttl:
            return True
        if now - waiting.arrived <= self.ttl:
            return False
        at_end = caught_up(*twin)
        if at_end is None:
            return now - self._last_seen.get(twin, float("-inf")) > self.idle
        return at_end

    def expire(self, now: float, caught_up: CaughtUp = lambda kind, partition: None) -> list[Waiting]:
        """Remove and return the halves whose twin is overdue and, beyond ``max_waiting``, the oldest ones.

        ``caught_up(kind, partition)`` tells whether that stream has been read to its end (None: unknown).
        """
        gone = []
        for queue in self._queues.values():
            while queue:
                uuid, waiting = queue[0]
                if self.waiting.get(uuid) is not waiting:
                    queue.popleft()  # joined or dropped meanwhile
                elif self._expired(waiting, now, caught_up) or len(self.waiting) > self.max_waiting:
                    queue.popleft()
                    del self.waiting[uuid]
                    gone.append(waiting)
                else:
                    break
        return gone

    def drop_partitions(self, partitions: set[tuple[str, int]]) -> int:
        """Forget the halves read from ``partitions`` (revoked: their new owner re-reads them). Returns how many."""
        doomed = [u for u, w in self.waiting.items() if (w.ticket.topic, w.ticket.partition) in partitions]
        for uuid in doomed:
            del self.waiting[uuid]
        return len(doomed)


@dataclass(slots=True)
class _Partition:
    consumed: deque[int] = field(default_factory=deque)
    done: set[int] = field(default_factory=set)
    last: int = -1


class OffsetTracker:
    """Per partition, the next offset that is safe to commit."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._bound: list[tuple[Ticket, ...]] = []

    def consumed(self, ticket: Ticket) -> None:
        """Record a message as read and not yet done."""
        state = self._partitions.get((ticket.topic, ticket.partition))
        if state is None:
            state = self._partitions[(ticket.topic, ticket.partition)] = _Partition()
        state.consumed.append(ticket.offset)
        if ticket.offset > state.last:
            state.last = ticket.offset

    def done(self, ticket: Ticket) -> None:
        """Mark a message done (its outputs acknowledged, or nothing left to do). Idempotent: a message done already,
        or not consumed by this tracker (a partition revoked meanwhile), is ignored."""
        state = self._partitions.get((ticket.topic, ticket.partition))
        if state is None or not state.consumed or ticket.offset < state.consumed[0]:
            return
        state.done.add(ticket.offset)
        while state.consumed and state.consumed[0] in state.done:
            state.done.discard(state.consumed.popleft())

    def bind(self, tickets: tuple[Ticket, ...]) -> None:
        """Commit ``tickets`` (consumed here) together: none of them while another one is not committable."""
        self._bound.append(tickets)

    def committable(self) -> dict[tuple[str, int], int]:
        """Offset to commit per partition: the lowest offset not done, or one past the last consumed; lowered so that
        no bound group is cut (some of its tickets committed, some not)."""
        offsets = {
            key: state.consumed[0] if state.consumed else state.last + 1
            for key, state in self._partitions.items()
            if state.last >= 0
        }
        cut = True
        while cut:  # lowering one partition's offset may cut another group: repeat until none is cut
            cut = False
            for group in self._bound:
                held = [t for t in group if offsets.get((t.topic, t.partition), -1) <= t.offset]
                if held and len(held) < len(group):
                    for t in group:
                        if t not in held:
                            offsets[(t.topic, t.partition)] = t.offset
                    cut = True
        self._bound = [g for g in self._bound if any(offsets.get((t.topic, t.partition), -1) <= t.offset for t in g)]
        return offsets

    def pending(self) -> int:
        """Messages consumed and not yet done."""
        return sum(len(state.consumed) for state in self._partitions.values())

    def positions(self) -> dict[tuple[str, int], int]:
        """One past the last offset consumed, per partition."""
        return {key: state.last + 1 for key, state in self._partitions.items() if state.last >= 0}

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drop the state of revoked ``partitions`` (and the bound groups with a ticket there)."""
        for key in partitions:
            self._partitions.pop(key, None)
        self._bound = [g for g in self._bound if not any((t.topic, t.partition) in partitions for t in g)]

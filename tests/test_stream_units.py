"""The decision pipeline's pieces without a broker: message validation, every fault kind, the join, offsets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nextbest.models.targeting import FEATURES, assemble_rows, features_from_frame
from nextbest.sim.shop import World
from nextbest.stream import topics
from nextbest.stream.faults import FAULT_KINDS, REASON_PREFIX, corrupt
from nextbest.stream.join import JoinBuffer, OffsetTracker, Pair, Ticket
from nextbest.stream.messages import DemographicHalf, HistoricHalf, MessageDecoder, Rejected

FLAGS = FEATURES()[3:]


@pytest.fixture(scope="module")
def messages() -> tuple[list[dict], list[dict], pd.DataFrame]:
    world = World(3)
    customers = world.sample(200)
    demographic, historic = world.messages(customers)
    return demographic, historic, world.frame(customers)


def test_valid_messages_give_the_training_features(messages: tuple[list[dict], list[dict], pd.DataFrame]) -> None:
    demographic, historic, frame = messages
    decoder = MessageDecoder(FLAGS)
    dem = [decoder.demographic(json.dumps(r).encode()) for r in demographic]
    his = [decoder.historic(json.dumps(r).encode()) for r in historic]
    assert all(isinstance(h, DemographicHalf) for h in dem) and all(isinstance(h, HistoricHalf) for h in his)
    assert [h.uuid for h in dem] == [r["uuid"] for r in demographic] == [h.uuid for h in his]
    flags = np.frombuffer(b"".join(h.flags for h in his), dtype=np.uint8).reshape(len(his), -1)
    rows = assemble_rows(np.array([h.values for h in dem]), flags, FEATURES())
    np.testing.assert_array_equal(rows, features_from_frame(frame).to_numpy())


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("topic", [topics.DEMOGRAPHIC, topics.HISTORIC])
def test_every_fault_kind_is_rejected_with_its_reason(
    kind: str, topic: str, messages: tuple[list[dict], list[dict], pd.DataFrame]
) -> None:
    demographic, historic, _ = messages
    records = demographic if topic == topics.DEMOGRAPHIC else historic
    decoder = MessageDecoder(FLAGS)
    decode = decoder.demographic if topic == topics.DEMOGRAPHIC else decoder.historic
    rng = np.random.default_rng(0)
    for record in records[:30]:
        result = decode(corrupt(record, topic, kind, rng))
        assert isinstance(result, Rejected), (kind, topic, record["uuid"])
        assert result.reason.startswith(REASON_PREFIX[kind]), result.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (None, "empty message"),
        (b"\xff\xfe{}", "invalid JSON"),
        (b"[1, 2]", "invalid field"),
        (b'{"uuid": -1, "age": 30, "man": 1, "woman": 0}', "invalid field"),
        (b'{"uuid": 1, "age": 30, "man": 1, "woman": 1}', "invalid field: man and woman are both 1"),
        (b'{"uuid": 1, "uuid": 2, "age": 30, "man": 1, "woman": 0}', "duplicate key 'uuid'"),
    ],
)
def test_demographic_rules(raw: bytes | None, reason: str) -> None:
    result = MessageDecoder(FLAGS).demographic(raw)
    assert isinstance(result, Rejected) and result.reason.startswith(reason), result


def test_harmless_extras_are_accepted(messages: tuple[list[dict], list[dict], pd.DataFrame]) -> None:
    _, historic, _ = messages
    decoder = MessageDecoder(FLAGS)
    extra = {**historic[0], "source": 'say "hi"', "products": {**historic[0]["products"], "cat999": 1}}
    accepted = decoder.historic(json.dumps(extra).encode())
    assert isinstance(accepted, HistoricHalf)
    assert accepted.flags == decoder.historic(json.dumps(historic[0]).encode()).flags
    spaced = b'{ "uuid" : 7 , "age" : 41 , "man" : 1 , "woman" : 0 }'
    assert decoder.demographic(spaced) == DemographicHalf(7, (41, 1, 0))


def test_join_pairs_in_either_order_and_answers_repeats() -> None:
    buffer = JoinBuffer(ttl=10.0)
    t = [Ticket("d", 0, 0), Ticket("h", 0, 0), Ticket("h", 0, 1), Ticket("d", 0, 1), Ticket("d", 0, 2)]
    assert buffer.add("demographic", 1, "D1", t[0], 0.0, 0.0, b"") is None
    pair = buffer.add("historic", 1, "H1", t[1], 1.0, 1.0, b"")
    assert isinstance(pair, Pair) and (pair.demographic, pair.historic, pair.tickets) == ("D1", "H1", (t[0], t[1]))
    assert buffer.add("historic", 2, "H2", t[2], 2.0, 2.0, b"") is None
    assert buffer.add("historic", 2, "H2 again", t[2], 2.5, 2.5, b"") == "repeat"
    pair = buffer.add("demographic", 2, "D2", t[3], 3.0, 3.0, b"")
    assert isinstance(pair, Pair) and (pair.demographic, pair.historic) == ("D2", "H2")
    assert buffer.add("demographic", 1, "D1 replayed", t[4], 4.0, 4.0, b"") == "repeat"
    assert not buffer.waiting


def test_join_expires_on_the_twin_streams_event_time() -> None:
    """A backlog read at full speed expires nothing: only the twin stream's progress (or its silence) does."""
    buffer = JoinBuffer(ttl=5.0, idle=1.0)
    buffer.observe("demographic", 0, 100.0, now=0.0)
    buffer.add("demographic", 1, "D1", Ticket("d", 0, 0), 100.0, 0.0, b"")
    buffer.observe("historic", 0, 50.0, now=10.0)  # historic lags 50 s behind: still on its way
    assert buffer.expire(10.5) == [] and 1 in buffer.waiting
    buffer.observe("historic", 0, 106.0, now=11.0)  # the twin stream passed D1 + ttl: D1's twin is not coming
    assert [w.half for w in buffer.expire(11.0)] == ["D1"]
    buffer.add("historic", 2, "H2", Ticket("h", 1, 0), 200.0, 20.0, b"")
    assert buffer.expire(24.0) == []  # the demographic stream of partition 1 was never seen, but ttl not over
    assert buffer.expire(25.5, caught_up=lambda kind, partition: False) == []  # twin stream still has a backlog
    assert [w.half for w in buffer.expire(25.5, caught_up=lambda kind, partition: True)] == ["H2"]
    buffer.add("historic", 3, "H3", Ticket("h", 1, 1), 201.0, 30.0, b"")
    assert [w.half for w in buffer.expire(35.5)] == ["H3"]  # unknown position, silent twin stream: wall clock


def test_join_bounds_waiting_halves() -> None:
    buffer = JoinBuffer(ttl=100.0, max_waiting=2)
    for uuid in range(3):
        buffer.add("demographic", uuid, uuid, Ticket("d", 0, uuid), float(uuid), float(uuid), b"")
    assert [w.half for w in buffer.expire(3.0)] == [0] and len(buffer.waiting) == 2
    assert buffer.drop_partitions({("d", 0)}) == 2 and not buffer.waiting


def test_offsets_commit_only_what_is_done() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.consumed(Ticket("d", 0, offset))
    assert tracker.committable() == {("d", 0): 0}
    for offset in (1, 2, 4):
        tracker.done(Ticket("d", 0, offset))
    assert tracker.committable() == {("d", 0): 0} and tracker.pending() == 5
    tracker.done(Ticket("d", 0, 0))
    assert tracker.committable() == {("d", 0): 3}
    tracker.done(Ticket("d", 0, 3))
    assert tracker.committable() == {("d", 0): 5} and tracker.pending() == 0
    tracker.forget({("d", 0)})
    tracker.done(Ticket("d", 0, 9))
    assert tracker.committable() == {}

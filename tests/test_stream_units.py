"""The decision pipeline's pieces without a broker: message validation, every fault kind, the join, offsets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.data.feed import (
    MISSING,
    DemographicHalf,
    FeedTally,
    HistoricHalf,
    MessageDecoder,
    Rejected,
    flag_matrix,
)
from nextbest.models.targeting import FEATURES, assemble_rows, features_from_frame
from nextbest.sim.shop import REALISTIC_FEED, World
from nextbest.stream import changelog, topics
from nextbest.stream.faults import FAULT_KINDS, REASON_PREFIX, corrupt
from nextbest.stream.join import JoinBuffer, OffsetTracker, Pair, Ticket

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


@pytest.mark.parametrize(("topic", "kind"), [(topic, kind) for topic, kinds in FAULT_KINDS.items() for kind in kinds])
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
        (b'{"uuid": 1, "uuid": 2, "age": 30, "man": 1, "woman": 0}', "conflicting values for key 'uuid'"),
        (b'{"uuid": 1, "age": 30, "man": true, "woman": 0}', "invalid field"),
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


def test_offsets_done_twice_or_never_consumed_change_nothing() -> None:
    """A ticket done by its changelog entry and again by its pair's decision, or restored from a run before."""
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.consumed(Ticket("d", 0, offset))
    for offset in (5, 5, 2, 6):
        tracker.done(Ticket("d", 0, offset))
    assert tracker.committable() == {("d", 0): 7} and tracker.pending() == 1 and tracker.positions() == {("d", 0): 8}
    tracker.done(Ticket("d", 0, 6))
    tracker.done(Ticket("h", 3, 1))
    assert tracker.committable() == {("d", 0): 7}
    tracker.done(Ticket("d", 0, 7))
    assert tracker.committable() == {("d", 0): 8} and tracker.pending() == 0


def test_a_pairs_two_offsets_are_committed_together() -> None:
    """A decided pair whose demographic offset is done while an older historic message is not: the demographic
    partition's offset stays below the pair until the historic one passes it (no half replayed alone)."""
    d, h = "topic_demographic", "topic_historic"
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.consumed(Ticket(d, 0, offset))
        tracker.consumed(Ticket(h, 0, offset))
    pair = (Ticket(d, 0, 1), Ticket(h, 0, 2))
    tracker.bind(pair)
    for ticket in (Ticket(d, 0, 0), Ticket(d, 0, 2), Ticket(h, 0, 0), *pair):
        tracker.done(ticket)
    assert tracker.committable() == {(d, 0): 1, (h, 0): 1}  # h 1 is pending: the pair is held on both sides
    tracker.done(Ticket(h, 0, 1))
    assert tracker.committable() == {(d, 0): 3, (h, 0): 3} and tracker._bound == []


# ------------------------------------------------------------------------------------------ the join changelog
class _Message:
    """What the changelog reader needs of a confluent-kafka message."""

    def __init__(self, record: changelog.Record | None, key: bytes = b"", partition: int = 0) -> None:
        self._record = record
        self._key = record.key if record else key
        self._partition = record.partition if record else partition

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._record.value if self._record else None

    def partition(self) -> int:
        return self._partition

    def headers(self) -> list | None:
        return self._record.headers if self._record else None

    def timestamp(self) -> tuple[int, int]:
        return (1, self._record.timestamp if self._record else 0)


def _halves(n: int) -> tuple[list[bytes], list[bytes]]:
    world = World(8)
    demographic, historic = world.messages(world.sample(n))
    return [json.dumps(r).encode() for r in demographic], [json.dumps(r).encode() for r in historic]


def _logged(buffer: JoinBuffer) -> list[_Message]:
    return [_Message(changelog.record(waiting)) for waiting in buffer.take_fresh()]


def test_waiting_halves_are_handed_out_once_for_the_changelog() -> None:
    """``take_fresh`` gives the halves still waiting, once, but not while their twin may still be in the unread
    input; a pair names its logged twin."""
    decoder = MessageDecoder(FLAGS)
    dem, his = _halves(3)
    buffer = JoinBuffer()
    halves = [decoder.demographic(raw) for raw in dem]
    for i, (half, raw) in enumerate(zip(halves, dem)):
        buffer.add("demographic", half.uuid, half, Ticket(topics.DEMOGRAPHIC, 1, i), 10.0 + i, 0.0, raw)
    twin = decoder.historic(his[0])
    first = buffer.add("historic", twin.uuid, twin, Ticket(topics.HISTORIC, 1, 0), 11.0, 0.0, his[0])
    assert isinstance(first, Pair) and first.logged == ()  # paired before a commit: never written
    # the twin stream (unread input left) has passed the second half's time (11.0), not the third's (12.0): only
    # the second one's twin is late; the third one's may still be on its way
    buffer.observe("historic", 1, 11.5, now=0.0)
    taken = buffer.take_fresh(caught_up=lambda kind, partition: False)
    assert [w.uuid for w in taken] == [halves[1].uuid] and all(w.logged for w in taken)
    assert [w.uuid for w in buffer.take_fresh(lambda kind, partition: True)] == [halves[2].uuid]  # read to its end
    assert buffer.take_fresh(force=True) == []
    twin = decoder.historic(his[1])
    second = buffer.add("historic", twin.uuid, twin, Ticket(topics.HISTORIC, 1, 1), 12.0, 0.0, his[1])
    assert isinstance(second, Pair) and second.logged == ("demographic",)
    record = changelog.record(taken[0])
    assert record.key == f"d:{halves[1].uuid}".encode() and record.value == dem[1]
    assert (record.partition, record.timestamp, record.headers) == (1, 11_000, [("offset", b"1")])


def test_changelog_restore_rebuilds_the_buffer_and_tombstones_delete() -> None:
    """The last record per key wins, a tombstone deletes: what the restored buffer holds is what was waiting."""
    decoder = MessageDecoder(FLAGS)
    dem, his = _halves(4)
    before = JoinBuffer()
    for i in range(4):
        half = decoder.demographic(dem[i]) if i % 2 else decoder.historic(his[i])
        kind, topic = ("demographic", topics.DEMOGRAPHIC) if i % 2 else ("historic", topics.HISTORIC)
        before.add(kind, half.uuid, half, Ticket(topic, i % 2, 100 + i), 50.0 + i, 0.0, dem[i] if i % 2 else his[i])
    messages = sorted(_logged(before), key=lambda message: int(dict(message.headers())["offset"]))
    gone = messages[0]
    messages += [_Message(None, gone.key(), gone.partition()), messages[1]]  # deleted; written twice
    entries = changelog.live(messages)
    assert [(e.kind, e.partition, e.offset) for e in entries] == [("historic", 0, 102), ("demographic", 1, 103),
                                                                   ("demographic", 1, 101)]  # fmt: skip
    after = JoinBuffer()
    decode = {"demographic": decoder.demographic, "historic": decoder.historic}
    for e in entries:
        ticket = Ticket(changelog.INPUT[e.kind], e.partition, e.offset)
        assert after.restore(e.kind, e.uuid, decode[e.kind](e.raw), ticket, e.event_time, 5.0, e.raw) is None
    kept = {uuid: w for uuid, w in before.waiting.items() if uuid != int(gone.key()[2:])}
    assert {u: (w.kind, w.half, w.ticket, w.event_time, w.raw) for u, w in after.waiting.items()} == {
        u: (w.kind, w.half, w.ticket, w.event_time, w.raw) for u, w in kept.items()}
    assert all(w.logged for w in after.waiting.values()) and after.take_fresh() == []


def test_pairing_after_restore() -> None:
    """A restored half pairs with its twin read after the restart (its logged entry to delete), answers its own
    replayed input as a repeat, and expires on the twin stream's event time like any other half."""
    decoder = MessageDecoder(FLAGS)
    dem, his = _halves(2)
    d0, d1 = decoder.demographic(dem[0]), decoder.demographic(dem[1])
    buffer = JoinBuffer(ttl=5.0)
    buffer.restore("demographic", d0.uuid, d0, Ticket(topics.DEMOGRAPHIC, 0, 7), 100.0, 0.0, dem[0])
    buffer.restore("demographic", d1.uuid, d1, Ticket(topics.DEMOGRAPHIC, 0, 8), 101.0, 0.0, dem[1])
    assert buffer.add("demographic", d0.uuid, d0, Ticket(topics.DEMOGRAPHIC, 0, 7), 100.0, 1.0, dem[0]) == "repeat"
    h0 = decoder.historic(his[0])
    pair = buffer.add("historic", h0.uuid, h0, Ticket(topics.HISTORIC, 0, 3), 100.5, 1.0, his[0])
    assert isinstance(pair, Pair) and (pair.demographic, pair.historic) == (d0, h0)
    assert pair.tickets == (Ticket(topics.DEMOGRAPHIC, 0, 7), Ticket(topics.HISTORIC, 0, 3))
    assert pair.logged == ("demographic",)
    buffer.observe("historic", 0, 107.0, now=2.0)
    expired = buffer.expire(2.0)
    assert [(w.uuid, w.logged) for w in expired] == [(d1.uuid, True)] and not buffer.waiting
    both = JoinBuffer()
    both.restore("historic", h0.uuid, h0, Ticket(topics.HISTORIC, 0, 3), 100.5, 0.0, his[0])
    pair = both.restore("demographic", d0.uuid, d0, Ticket(topics.DEMOGRAPHIC, 0, 7), 100.0, 0.0, dem[0])
    assert isinstance(pair, Pair) and set(pair.logged) == {"demographic", "historic"}


# ------------------------------------------------------------------------------------------ the real feed's quirks
EXAMPLE = (Path(__file__).parent / "data" / "shop_example_historic.json").read_bytes().strip()
EXAMPLE_DEMOGRAPHIC = b'{"uuid": 404180, "age": 41, "man": 1, "woman": 0}'


def test_the_compiled_fast_path_is_built() -> None:
    assert MessageDecoder(FLAGS).compiled, "nextbest.data._historic_scan is not compiled: run `make install`"


def test_the_example_message_is_read_with_every_quirk_counted() -> None:
    """The shop document's example: 100 of 110 flags, 13 keys repeated (cat91 1 then 0, cat59 0 then 1)."""
    decoder = MessageDecoder(FLAGS)
    half = decoder.historic(EXAMPLE)
    assert isinstance(half, HistoricHalf) and half.uuid == 404180
    values = dict(zip(FLAGS, half.flags))
    assert values["cat91"] == 1 and values["cat59"] == 1  # a flag is 1 if any of its records says 1
    assert values["cat16"] == 1 and values["cat17"] == 0
    missing = [name for name, value in values.items() if value == MISSING]
    assert missing == ["cat1", "cat4", "cat5", "cat9", "cat39", "cat92", "cat95", "cat99", "u7", "u8"]
    tally = FeedTally(FLAGS)
    tally.add(flag_matrix([half]), [half])
    counts = tally.as_json()
    assert len(counts["repeated_keys"]) == 13 and sorted(counts["conflicting_keys"]) == ["cat59", "cat91"]
    assert counts["unknown_keys"] == {} and sorted(counts["missing_flags"]) == sorted(missing)
    assert half == decoder._historic_reference(EXAMPLE)  # the compiled path agrees with the specification


def _reference_resolution(raw: bytes, flags: list[str]) -> tuple[dict[str, int], set[str], set[str], list[str]]:
    """The rule read literally from the docs: 1 if any record says 1; repeated / conflicting / unknown keys."""
    products = dict(json.loads(raw, object_pairs_hook=list))["products"]
    records: dict[str, list[int]] = {}
    unknown = []
    for key, value in products:
        if key in flags:
            records.setdefault(key, []).append(value)
        else:
            unknown.append(key)
    resolved = {key: int(any(values)) for key, values in records.items()}
    repeated = {key for key, values in records.items() if len(values) > 1}
    conflicting = {key for key, values in records.items() if len(set(values)) > 1}
    return resolved, repeated, conflicting, unknown


ODD_VALUES = [0, 7, "x", 1.5, None, True, [1, 2], {"a": 1}]


def _random_message(rng: np.random.Generator, flags: list[str]) -> bytes:
    """Flags in random order, some repeated (some of those conflicting), unknown keys, odd spacing and escapes."""
    members = []
    for name in rng.permutation(flags)[: int(rng.integers(5, len(flags) + 1))]:
        members += [(str(name), int(rng.integers(2)))] * (2 if rng.random() < 0.2 else 1)
    for i in rng.permutation(len(members))[: len(members) // 10]:
        members[i] = (members[i][0], 1 - members[i][1])  # some repeats now conflict
    for _ in range(int(rng.integers(3))):
        members.append((f"new{int(rng.integers(5))}", ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]))
    escaped = rng.random() < 0.05  # "\u0063at3" is "cat3": only the reference path reads escapes

    def key(name: str) -> str:
        return '"' + "".join(f"\\u{ord(c):04x}" for c in name) + '"' if escaped else json.dumps(name)

    space = [", ", ",", ",\n  ", " ,\t"][int(rng.integers(4))]
    body = space.join(f"{key(members[i][0])}: {json.dumps(members[i][1])}" for i in rng.permutation(len(members)))
    extra = ', "source": "web"' if rng.random() < 0.3 else ""
    return f'{{"uuid": {int(rng.integers(0, 2**62))}, "products": {{{body}}}{extra}}}'.encode()


def test_compiled_and_reference_paths_agree_with_the_literal_rule() -> None:
    flags = FEATURES(30, 5)[3:]
    decoder = MessageDecoder(flags, max_missing_share=1.0)
    rng = np.random.default_rng(7)
    compiled = 0
    for _ in range(2000):
        raw = _random_message(rng, flags)
        fast, reference = decoder.historic(raw), decoder._historic_reference(raw)
        assert fast == reference, raw
        compiled += decoder._scanner.scan(raw) is not None
        resolved, repeated, conflicting, unknown = _reference_resolution(raw, flags)
        assert {name: v for name, v in zip(flags, fast.flags) if v != MISSING} == resolved
        marks = fast.repeats or bytes(len(flags))
        assert {name for name, m in zip(flags, marks) if m} == repeated
        assert {name for name, m in zip(flags, marks) if m == 2} == conflicting
        assert (fast.unknown or []) == unknown
    assert 1000 < compiled < 2000  # most messages take the compiled path; the rest exercise the reference path


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"uuid": 1, "products": {"cat0": 1, "cat0": 2}}', "invalid field"),  # every record is validated
        (b'{"uuid": 1, "products": {"cat0": 1, "cat0": true}}', "invalid field"),
        (b'{"uuid": 1, "products": {"cat0": 1}, "products": {"cat0": 1}}', "duplicate key 'products'"),
        (b'{"uuid": 1, "products": {"cat0": 1}, "uuid": 2}', "conflicting values for key 'uuid'"),
        (b'{"uuid": 01, "products": {}}', "invalid JSON"),
        (b'{"uuid": 1, "products": {"cat0": 1,}}', "invalid JSON"),
        (b'{"uuid": 1, "products": {"cat0": 1}} x', "invalid JSON"),
        (b'{"uuid": 18446744073709551616, "products": {}}', "invalid field"),
        (b'{"uuid": 1, "products": {"\\u00e9": 1, "cat0": 0}, "x": "\xff"}', "invalid JSON"),
        (b'{"uuid": 1, "products": []}', "invalid field"),
        (b'{"uuid": 1}', "invalid field"),
    ],
)
def test_historic_rules(raw: bytes, reason: str) -> None:
    result = MessageDecoder(FEATURES(2, 0)[3:]).historic(raw)
    assert isinstance(result, Rejected) and result.reason.startswith(reason), result


def test_repeats_with_one_value_and_unknown_keys_are_accepted() -> None:
    decoder = MessageDecoder(FEATURES(2, 0)[3:])
    half = decoder.historic(b'{"uuid": 1, "products": {"cat0": 1, "new": [1, {"a": 2}], "cat1": 0, "cat0": 1}}')
    assert half == HistoricHalf(1, b"\x01\x00", b"\x01\x00", ["new"])
    demographic = decoder.demographic(b'{"uuid": 1, "age": 30, "age": 30, "man": 1, "woman": 0, "ts": "x"}')
    assert demographic == DemographicHalf(1, (30, 1, 0), ("age",))
    conflicting = decoder.demographic(b'{"uuid": 1, "age": 30, "age": 31, "man": 1, "woman": 0}')
    assert conflicting == Rejected("conflicting values for key 'age'")


def test_stream_stats_reads_a_metrics_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    import subprocess
    import sys

    decoder = MessageDecoder(FLAGS)
    half = decoder.historic(EXAMPLE)
    tally = FeedTally(FLAGS)
    tally.add(flag_matrix([half]), [half])
    good = tmp_path / "metrics.json"
    good.write_text(json.dumps({"consumed": 2, "decided": 1, "dead_letter_reasons": {"invalid JSON": 3},
                                "feed": tally.as_json()}))  # fmt: skip
    nextbest = [str(Path(sys.executable).with_name("nextbest")), "stream", "stats"]
    shown = subprocess.run([*nextbest, str(good)], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "conflicting keys (1 wins): 2 keys" in shown.stdout and "cat91" in shown.stdout
    assert "invalid JSON" in shown.stdout
    (tmp_path / "bad.json").write_text("{not json")
    for path in (tmp_path / "bad.json", tmp_path / "absent.json"):
        refused = subprocess.run([*nextbest, str(path)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and str(path) in refused.stderr and "Traceback" not in refused.stderr
    run = subprocess.run([str(Path(sys.executable).with_name("nextbest")), "stream", "run", "--bootstrap-servers",
                          "127.0.0.1:1", "--model", "m.onnx", "--token", "t", "--max-missing-share", "1.5"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and "--max-missing-share" in run.stderr and "Traceback" not in run.stderr


def test_mutated_messages_never_crash_and_both_paths_agree() -> None:
    """Bytes flipped, cut and inserted anywhere in real messages: the compiled scanner either declines or reads
    exactly what the reference path reads; every message gets a half or a reason."""
    world = World(5)
    _, historic = world.feed_messages(world.sample(200), REALISTIC_FEED, np.random.default_rng(5))
    decoder = MessageDecoder(FLAGS, max_missing_share=1.0)
    rng = np.random.default_rng(11)
    alphabet = np.frombuffer(b'{}[]":,0123456789 \\\t\nnulrefas-.eE\x00\xff\xc3\xa9', dtype=np.uint8)
    for _ in range(5000):
        raw = bytearray(historic[int(rng.integers(len(historic)))])
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(len(raw)))
            action = rng.integers(3)
            if action == 0:
                raw[at] = int(rng.choice(alphabet))
            elif action == 1:
                del raw[at : at + int(rng.integers(1, 8))]
            else:
                raw[at:at] = bytes(rng.choice(alphabet, size=int(rng.integers(1, 4))))
        result = decoder.historic(bytes(raw))
        assert isinstance(result, HistoricHalf | Rejected)
        if decoder._scanner.scan(bytes(raw)) is not None:
            assert result == decoder._historic_reference(bytes(raw)), bytes(raw)


def test_the_example_rows_equal_on_the_message_and_the_table_paths() -> None:
    """The example pair through the stream's decoder (build_features) and as a store table row (the literal rule:
    1 if any record says 1; the absent flags left out of the table) give one feature vector, imputed alike."""
    from nextbest.models.targeting import Imputation, build_features

    resolved, _, _, _ = _reference_resolution(EXAMPLE, FLAGS)
    table = pd.DataFrame([{"uuid": 404180, "age": 41, "man": 1, "woman": 0, **resolved}])
    for imputation in (Imputation.zero(FEATURES()), Imputation("mean", np.linspace(0.05, 0.4, len(FLAGS)))):
        from_messages = build_features([EXAMPLE_DEMOGRAPHIC], [EXAMPLE], FEATURES(), imputation)
        from_table = features_from_frame(table, FEATURES(), imputation)
        pd.testing.assert_frame_equal(from_messages, from_table)
    assert from_messages.loc[0, "cat5"] == imputation.values[FLAGS.index("cat5")]


def test_a_decided_marker_replaces_the_logged_half() -> None:
    """Once its pair is decided, a logged half's key holds a marker naming the twin's input position: restored, the
    uuid is decided (a replayed twin is a repeat) and the marker waits for that position to be committed."""
    decoder = MessageDecoder(FLAGS)
    dem, his = _halves(1)
    d0, h0 = decoder.demographic(dem[0]), decoder.historic(his[0])
    buffer = JoinBuffer()
    buffer.add("demographic", d0.uuid, d0, Ticket(topics.DEMOGRAPHIC, 2, 40), 100.0, 0.0, dem[0])
    messages = _logged(buffer)
    pair = buffer.add("historic", h0.uuid, h0, Ticket(topics.HISTORIC, 2, 9), 100.5, 0.0, his[0])
    assert isinstance(pair, Pair) and pair.logged == ("demographic",)
    (entry,) = changelog.live([*messages, _Message(changelog.marker("demographic", pair))])
    assert (entry.kind, entry.uuid, entry.raw) == ("demographic", d0.uuid, b"")
    assert entry.ticket == Ticket(topics.DEMOGRAPHIC, 2, 40) and entry.twin == Ticket(topics.HISTORIC, 2, 9)
    restored = JoinBuffer()
    restored.remember(entry.uuid)
    assert restored.add("historic", h0.uuid, h0, entry.twin, 100.5, 1.0, his[0]) == "repeat"

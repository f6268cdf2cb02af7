"""The join changelog: a compacted topic holding the halves that wait for their twin, so that a worker that starts
(after a crash, a restart or a rebalance) restores them instead of re-reading its input from the oldest waiting half
(as Kafka Streams and Quix Streams keep their state stores).

Record of a waiting half: partition = its input partition (both input topics are co-partitioned, so the worker that
owns input partition i owns changelog partition i); key ``d:<uuid>`` or ``h:<uuid>`` (its kind and uuid); value its
raw input bytes; timestamp its event time (ms); header ``offset``, its input offset. Once the half is paired and
decided, a **decided marker** replaces it (same key, empty value, header ``twin``: ``topic/partition/offset`` of the
other half): a worker that restores it knows the uuid is decided, so a replay of the twin is a repeat, not a half
waiting in vain. A record with a null value (a tombstone) deletes its key. The topic is created with
``cleanup.policy=compact``; a broker that never compacts (Tansu) keeps every record, and ``live`` reads them as
compaction would: the last value per key, a tombstone deleting it.

When records are written is the worker's contract (``nextbest.stream.worker``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from nextbest.errors import NextbestError
from nextbest.stream import topics
from nextbest.stream.join import Pair, Ticket, Waiting

KINDS = {"d": "demographic", "h": "historic"}
INPUT = {"demographic": topics.DEMOGRAPHIC, "historic": topics.HISTORIC}


@dataclass(frozen=True, slots=True)
class Entry:
    """A waiting half as the changelog holds it."""

    kind: str  # "demographic" | "historic"
    uuid: int
    raw: bytes
    partition: int
    offset: int  # its input offset
    event_time: float  # seconds
    twin: Ticket | None = None  # a decided marker: where the other half of the pair was read

    @property
    def ticket(self) -> Ticket:
        """Where the half was read."""
        return Ticket(INPUT[self.kind], self.partition, self.offset)


def key(kind: str, uuid: int) -> bytes:
    """The record key of ``kind``'s half of ``uuid``."""
    return f"{kind[0]}:{uuid}".encode()


class Record(NamedTuple):
    """What to produce to the changelog for a waiting half."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int
    timestamp: int  # ms


def record(waiting: Waiting) -> Record:
    """The changelog record of a waiting half."""
    ticket = waiting.ticket
    return Record(key(waiting.kind, waiting.uuid), waiting.raw, [("offset", str(ticket.offset).encode())],
                  ticket.partition, round(waiting.event_time * 1000))  # fmt: skip


def marker(kind: str, pair: Pair) -> Record:
    """The decided marker that replaces ``kind``'s logged half of ``pair``."""
    own, twin = pair.tickets if kind == "demographic" else pair.tickets[::-1]
    headers = [("offset", str(own.offset).encode()), ("twin", f"{twin.topic}/{twin.partition}/{twin.offset}".encode())]
    return Record(key(kind, pair.uuid), b"", headers, own.partition, 0)


def live(messages: Iterable[Any]) -> list[Entry]:
    """The entries still waiting in changelog ``messages`` (confluent-kafka messages, read in log order per
    partition): the last record per key, unless it is a tombstone. In the order they were last written."""
    last: dict[tuple[int, bytes], Any] = {}
    _keep_last(last, messages)
    return [_entry(message) for message in last.values()]


def _keep_last(last: dict[tuple[int, bytes], Any], messages: Iterable[Any]) -> None:
    for message in messages:
        where = (message.partition(), message.key())
        last.pop(where, None)
        if message.value() is not None:
            last[where] = message


def _entry(message: Any) -> Entry:
    kind, uuid = message.key().decode().split(":")
    headers = dict(message.headers() or ())
    twin = None
    if "twin" in headers:
        topic, partition, offset = headers["twin"].decode().rsplit("/", 2)
        twin = Ticket(topic, int(partition), int(offset))
    return Entry(KINDS[kind], int(uuid), message.value(), message.partition(), int(headers["offset"]),
                 message.timestamp()[1] / 1000.0, twin)  # fmt: skip


def ensure_topic(bootstrap: str, name: str, timeout: float = 30.0) -> int:
    """Create the changelog ``name`` (compacted, as many partitions as the input topics) unless it exists; return its
    partition count. NextbestError if an existing one has another partition count than the input."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = len(admin.list_topics(topics.DEMOGRAPHIC, timeout=timeout).topics[topics.DEMOGRAPHIC].partitions)
    future = admin.create_topics([NewTopic(name, partitions, 1, config={"cleanup.policy": "compact"})])[name]
    try:
        future.result(timeout)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise NextbestError(f"cannot create the join changelog {name}: {error.args[0].str()}") from error
    deadline = time.monotonic() + timeout
    while not (found := len(admin.list_topics(name, timeout=timeout).topics[name].partitions)):
        if time.monotonic() > deadline:  # a topic just created may show no partitions for a moment
            break
        time.sleep(0.1)
    if found != partitions:
        raise NextbestError(f"the join changelog {name} has {found} partitions, the input {partitions}")
    return partitions


def read(bootstrap: str, name: str, partitions: Iterable[int], group_id: str, timeout: float = 300.0) -> list[Entry]:
    """Read ``partitions`` of changelog ``name`` from their start to their end; return the ``live`` entries.

    A consumer of its own (``group_id``, never committing) reads each partition until its end-of-partition event;
    NextbestError if that takes longer than ``timeout`` seconds (an unreachable broker)."""
    from confluent_kafka import Consumer, TopicPartition

    from nextbest.stream.broker import consumer_config

    wanted = set(partitions)
    if not wanted:
        return []
    settings = consumer_config(bootstrap, group_id, **{"enable.partition.eof": True, "fetch.wait.max.ms": 10,
                                                       "max.partition.fetch.bytes": 8 * 1024 * 1024})  # fmt: skip
    consumer = Consumer(settings)
    # offset 0, not OFFSET_BEGINNING (an extra offset request that Tansu answers slowly); a log whose start was
    # deleted resets to its earliest offset (auto.offset.reset)
    consumer.assign([TopicPartition(name, partition, 0) for partition in sorted(wanted)])
    last: dict[tuple[int, bytes], Any] = {}
    ended: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while ended != wanted:
            if time.monotonic() > deadline:
                raise NextbestError(f"the join changelog {name} was not read to its end within {timeout:g} s")
            batch = consumer.consume(10_000, 0.1)
            _keep_last(last, (message for message in batch if message.error() is None))
            ended.update(message.partition() for message in batch if _is_end(message))
    finally:
        consumer.close()
    return [_entry(message) for message in last.values()]


def _is_end(message: Any) -> bool:
    from confluent_kafka import KafkaError

    error = message.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF

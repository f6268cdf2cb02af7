"""`nextbest log collect`: the decision log and the outcome topic, joined, into the lake (idempotent per uuid).

``collect_decision_log(bootstrap, lake)`` reads ``topic_decision_log`` and ``topic_outcome`` from their start to
their current end (no consumer group: every run sees everything the broker keeps), joins them
(``nextbest.data.decision_log.join_decisions``) and adds the rows whose uuid the lake's table does not hold yet.
A message that cannot enter the log (a propensity missing, 0 or above 1, not JSON, ...) goes to
``topic_dead_letter`` with its reason and source in the headers, once: the lake keeps the positions already
dead-lettered (table ``<table>_rejected``), so a second run sends nothing twice. Nothing is lost: every message is
a row, a counted wait for its outcome, or a dead-letter entry.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pandas as pd

from nextbest.data.decision_log import JoinCounts, Rejected, join_decisions, merge, parse_decision, parse_outcome
from nextbest.data.lake import Lake
from nextbest.errors import DataError, NextbestError
from nextbest.results import Result
from nextbest.stream import topics
from nextbest.stream.broker import consumer_config, producer_config


class CollectSummary(Result):
    """One collection: messages read, the join's counts, rows added, rejections (by reason), the table's path."""

    table: str
    path: str
    messages: dict[str, int]
    join: JoinCounts
    rows_added: int
    rows_total: int
    rejected: dict[str, int]
    dead_lettered: int
    seconds: float


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[tuple[int, int, bytes | None]]:
    """Every message of ``topic`` from its start to its end now: (partition, offset, value)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(consumer_config(bootstrap, "nextbest-log-collect", **{"enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        partitions = sorted(metadata.topics[topic].partitions) if topic in metadata.topics else []
        if not partitions or metadata.topics[topic].error is not None:
            raise NextbestError(f"topic {topic} does not exist on {bootstrap}: run a worker with --log-decisions")
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
        wanted = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return _drain(consumer, ends, wanted, timeout)
    finally:
        consumer.close()


def _drain(consumer: Any, ends: dict[int, int], wanted: set[int], timeout: float,
           idle: float = 1.5) -> list[tuple[int, int, Any]]:  # fmt: skip
    """Consume until every partition has reached the end it reported and then ``idle`` seconds pass with nothing
    new: a broker's reported end can lag its last messages (Tansu's does, by a batch)."""
    messages: list[tuple[int, int, Any]] = []
    deadline = time.monotonic() + timeout
    quiet_since = None
    while True:
        batch = [m for m in consumer.consume(num_messages=10_000, timeout=0.25) if m.error() is None]
        now = time.monotonic()
        for message in batch:
            partition, offset = message.partition(), message.offset()
            messages.append((partition, offset, message.value()))
            if offset + 1 >= ends[partition]:
                wanted.discard(partition)
        if batch:
            deadline, quiet_since = now + timeout, None
        elif not wanted:
            quiet_since = quiet_since or now
            if now - quiet_since >= idle:
                return messages
        if now > deadline:
            raise NextbestError(f"reading the topic stalled with partitions {sorted(wanted)} unfinished")


def _parsed(messages: list[tuple[int, int, Any]], topic: str, parse: Any,
            seen: set[str]) -> tuple[list[dict[str, Any]], list[tuple[str, str, bytes]]]:  # fmt: skip
    """Valid records, and the rejected ones not dead-lettered before: (position, reason, raw)."""
    good, rejected = [], []
    for partition, offset, raw in messages:
        record = parse(raw or b"")
        if isinstance(record, Rejected):
            position = f"{topic}/{partition}/{offset}"
            if position not in seen:
                rejected.append((position, record.reason, raw or b""))
        else:
            good.append(record)
    return good, rejected


def collect_decision_log(bootstrap: str, lake: Lake, table: str = "decision_log", token: str | None = None,
                         area: str = "processed") -> CollectSummary:  # fmt: skip
    """Join what the topics hold now and add it to ``lake``'s ``table`` (see the module docstring)."""
    started = time.monotonic()
    decisions_raw = read_topic(bootstrap, topics.DECISION_LOG)
    outcomes_raw = read_topic(bootstrap, topics.OUTCOME)
    seen = _rejected_before(lake, table, area)
    decisions, bad_decisions = _parsed(decisions_raw, topics.DECISION_LOG, parse_decision, seen)
    outcomes, bad_outcomes = _parsed(outcomes_raw, topics.OUTCOME, parse_outcome, seen)
    rejected = bad_decisions + bad_outcomes
    _dead_letter(bootstrap, rejected)
    if rejected:
        positions = pd.DataFrame({"position": sorted(seen | {position for position, _, _ in rejected})})
        lake.write_table(f"{table}_rejected", positions, area)
    frame, counts = join_decisions(decisions, outcomes, token)
    existing = lake.read_table(table, area) if table in lake.tables(area) else None
    log, added = merge(existing, frame)
    path = lake.write_table(table, log, area) if added or existing is None else lake.path(table, area)
    return CollectSummary(
        table=table, path=path,
        messages={"decision_log": len(decisions_raw), "outcomes": len(outcomes_raw)},
        join=counts, rows_added=added, rows_total=len(log),
        rejected=dict(Counter(reason.split(":")[0] for _, reason, _ in rejected)),
        dead_lettered=len(rejected), seconds=time.monotonic() - started,
    )  # fmt: skip


def _rejected_before(lake: Lake, table: str, area: str) -> set[str]:
    if f"{table}_rejected" not in lake.tables(area):
        return set()
    try:
        return set(lake.read_table(f"{table}_rejected", area)["position"].astype(str))
    except (DataError, KeyError):
        return set()


def _dead_letter(bootstrap: str, rejected: list[tuple[str, str, bytes]]) -> None:
    """Each rejected message to ``topic_dead_letter`` with headers reason/topic/partition/offset; waits for acks."""
    if not rejected:
        return
    from confluent_kafka import Producer

    producer = Producer(producer_config(bootstrap))
    failures: list[str] = []
    for position, reason, raw in rejected:
        topic, partition, offset = position.split("/")
        headers = [("reason", reason.encode()), ("topic", topic.encode()), ("partition", partition.encode()),
                   ("offset", offset.encode())]  # fmt: skip
        producer.produce(topics.DEAD_LETTER, raw, None, headers=headers,
                         on_delivery=lambda error, _m, p=position: failures.append(p) if error else None)
    if producer.flush(30) > 0 or failures:
        raise NextbestError(f"could not write {len(failures) or 'some'} dead-letter entries; nothing was recorded")

"""The decision worker: join the two input topics by uuid, score with the exported model, write the decision.

    topic_demographic ─┐                          ┌─> topic_student_prediction  {"uuid": 1, "value": 1, "token": "…"}
                       ├─ decode ─ join ─ score ──┤      (key: the uuid)
    topic_historic ────┘    │        │            └─> topic_dead_letter  original bytes, headers reason/topic/
                            └────────┴──────────────> partition/offset (invalid input; a half whose twin never came)

Guarantees:
* **Nothing is lost.** An input offset is committed only after everything it produced (the decision, its
  dead-letter entry, or the changelog entry of a half still waiting) is acknowledged by the broker
  (``OffsetTracker``). A crash replays the rest; every joined customer still gets a decision. Replays can repeat a
  decision: the value is a deterministic function of the two halves (and, when exploring, of the uuid's own draw),
  and consumers keep the first decision per uuid.
* **A restart replays about one commit interval, not the join TTL.** The halves waiting for their twin live in the
  group's compacted join changelog (``nextbest.stream.changelog``), restored when partitions are assigned, before
  their input is read. Like Kafka Streams' record cache, a half is written there only if it still waits at a commit
  (every ``commit_interval``) and its twin is not possibly still in the unread input (``JoinBuffer.take_fresh``):
  most halves pair before and cost nothing, and a backlog read with one topic ahead of the other writes almost
  nothing (a crash then replays that read-ahead). Its input offset is done once that write is acknowledged, so
  waiting halves no longer hold the commit back. When a logged half is paired, the decision is
  written first; then a decided marker replaces the half in the changelog; the pair's input is done once the marker
  is acknowledged, and the marker is deleted once that input is committed. So a crash before the marker replays
  the twin, which finds the logged half (a repeated decision, not a lost one), and a crash after it replays a twin
  that the restored marker answers as a repeat (no decision lost, none repeated, no twin dead-lettered in vain). A
  logged half that expires is deleted once its dead-letter entry is acknowledged.
* **Every decision says how it was made**: ``propensity``, the exact probability with which the served value was
  chosen (1 without exploration; ``--explore epsilon:E`` or ``softmax:T``, ``nextbest.policies.explore``), and
  ``policy``, the model file, its hash and the exploration: what off-policy evaluation needs.
* **Decision log** (``--log-decisions``): each decision also goes to ``topic_decision_log`` with the context it
  was decided on (``context``: the model's features as served, zeros left out), ``decided_at`` (epoch seconds)
  and the fields above; the input offsets wait for both acknowledgements. ``nextbest log collect`` joins it with
  the outcomes.
* **Bad input never stops the worker.** Each invalid message goes to the dead-letter topic with its reason
  (``nextbest.data.feed``) and is counted; broker errors are logged and retried. The feed's normal quirks are not
  bad input: repeated product keys, missing flags (imputed by the model's rule) and unknown keys are resolved by
  the decoder's documented rules and counted per key in the metrics' ``feed`` entry.
* **Co-partitioned join.** Both input topics are keyed by uuid with the same partition count; the range
  assignor gives partition i of both topics to the same worker, so 2+ workers in one group can share the work.
  On a rebalance the waiting halves of revoked partitions are forgotten (uncommitted: their new owner re-reads).

Features come from ``nextbest.models.targeting.assemble_rows``, the step the model was trained with (missing flags
take the sidecar's ``missing_flags`` values); scoring is by the exported file
(``nextbest.models.serving.ExportedModel``: ONNX or PMML) in micro-batches.
"""

from __future__ import annotations

import gc
import hashlib
import json
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.data.feed import DEFAULT_MAX_MISSING_SHARE, FeedTally, MessageDecoder, Rejected, flag_matrix
from nextbest.models.serving import ExportedModel
from nextbest.models.targeting import assemble_rows
from nextbest.policies.explore import Exploration
from nextbest.stream import changelog, topics
from nextbest.stream.broker import consumer_config, producer_config
from nextbest.stream.join import JoinBuffer, OffsetTracker, Pair, Ticket, Waiting


@dataclass
class WorkerConfig:
    """Settings of one decision worker (a process; run several with the same ``group_id`` to scale out)."""

    bootstrap_servers: str
    model: Path
    token: str
    group_id: str = "nextbest-decisions"
    join_ttl: float = 60.0
    max_waiting: int = 1_000_000
    batch_size: int = 2000
    poll_timeout: float = 0.005
    commit_interval: float = 0.2
    metrics_file: Path | None = None
    metrics_interval: float = 1.0
    max_bytes: int = 64 * 1024
    max_missing_share: float = DEFAULT_MAX_MISSING_SHARE
    explore: Exploration = field(default_factory=Exploration)
    log_decisions: bool = False
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    producer_overrides: dict[str, Any] = field(default_factory=dict)


def consumer_settings(config: WorkerConfig) -> dict[str, Any]:
    """The worker's confluent-kafka consumer settings (also those of the benchmark's forwarder)."""
    return consumer_config(
        config.bootstrap_servers,
        config.group_id,
        **{
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 20,
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
            **config.consumer_overrides,
        },
    )


def producer_settings(config: WorkerConfig) -> dict[str, Any]:
    """The worker's confluent-kafka producer settings (also those of the benchmark's forwarder)."""
    return producer_config(
        config.bootstrap_servers,
        **{"linger.ms": 2, "batch.num.messages": 10_000, "queue.buffering.max.messages": 1_000_000,
           **config.producer_overrides},
    )  # fmt: skip


def _quiet_garbage_collector() -> None:
    """Collect once, move what exists out of the collector's sight, and collect young objects rarely.

    The hot loop allocates no reference cycles (messages, halves, tuples are freed by reference counting), so
    frequent generational passes over the join state only cost time and add pauses to the latency tail.
    """

    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)


def policy_id(model: Path, explore: Exploration) -> str:
    """``<model file name>@<first 12 hex of its SHA-256>/<exploration>``: which model and settings decided."""
    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()[:12]
    return f"{Path(model).name}@{digest}/{explore.label}"


class DecisionWorker:
    """One consumer + one producer + the join state; ``run()`` loops until ``stop()`` or SIGTERM/SIGINT."""

    def __init__(self, config: WorkerConfig, log: Callable[[str], None] = print) -> None:
        from confluent_kafka import Consumer, Producer

        self.config = config
        self.log = log
        self.model = ExportedModel.load(config.model)
        flags = self.model.features[3:]
        self.decoder = MessageDecoder(flags, max_bytes=config.max_bytes, max_missing_share=config.max_missing_share)
        self.tally = FeedTally(flags)
        self.buffer = JoinBuffer(ttl=config.join_ttl, max_waiting=config.max_waiting)
        self.tracker = OffsetTracker()
        self.counts: Counter[str] = Counter()
        self.dead_letter_reasons: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=20_000)
        self.processing: deque[float] = deque(maxlen=20_000)
        self._token_json = json.dumps(config.token)
        self.policy_id = policy_id(config.model, config.explore)
        self._policy_json = json.dumps(self.policy_id)
        self._running = False
        self._retry: list[tuple[Any, ...]] = []
        self.changelog = topics.join_changelog(config.group_id)
        self._committed_offsets: dict[tuple[str, int], int] = {}
        self._tombstones: list[tuple[tuple[Ticket, ...], tuple[tuple[int, bytes], ...]]] = []
        self.consumer = Consumer({**consumer_settings(config), "on_commit": self._committed})
        self.producer = Producer(producer_settings(config))

    # ------------------------------------------------------------------ the loop
    def run(self, max_seconds: float | None = None) -> Counter[str]:
        """Consume, join, decide, commit until stopped; returns the counters."""
        self._install_signals()
        _quiet_garbage_collector()
        self.consumer.subscribe([topics.DEMOGRAPHIC, topics.HISTORIC], on_assign=self._on_assign,
                                on_revoke=self._on_revoke)  # fmt: skip
        self._running = True
        started = last_commit = last_metrics = time.monotonic()
        try:
            while self._running:
                self._step()
                now = time.monotonic()
                if now - last_commit >= self.config.commit_interval:
                    self._log_waiting()
                    self._commit()
                    self._release_tombstones()
                    last_commit = now
                if now - last_metrics >= self.config.metrics_interval:
                    self._write_metrics()
                    last_metrics = now
                if max_seconds is not None and now - started >= max_seconds:
                    break
        finally:
            self._shutdown()
        return self.counts

    def stop(self) -> None:
        self._running = False

    def _install_signals(self) -> None:
        try:
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
            signal.signal(signal.SIGINT, lambda *_: self.stop())
        except ValueError:  # not the main thread (tests): stop() is called directly
            pass

    def _step(self) -> None:
        messages = self.consumer.consume(num_messages=self.config.batch_size, timeout=self.config.poll_timeout)
        now = time.monotonic()
        pairs, second_in = self._ingest(messages, now)
        for waiting in self.buffer.expire(now, self._caught_up):
            self.counts["expired"] += 1
            reason = f"no twin within the join TTL ({self.config.join_ttl:g} s)"
            then = self._forget_logged(waiting) if waiting.logged else None
            self._dead_letter(waiting.raw, None, waiting.ticket, reason, then)
        if pairs:
            self._decide(pairs)
            self.latencies.extend(time.time() - np.array(second_in))
            self.processing.extend([time.monotonic() - now] * len(pairs))
        self._flush_retries()
        self.producer.poll(0)

    def _ingest(self, messages: list, now: float) -> tuple[list[Pair], list[float]]:
        """Validate, track and join a batch of messages (the hot loop: names bound once, one pass).

        Returns the completed pairs and, for each, its second half's event time (seconds).
        """
        pairs: list[Pair] = []
        second_in: list[float] = []
        consumed, done, observe, add = self.tracker.consumed, self.tracker.done, self.buffer.observe, self.buffer.add
        bind = self.tracker.bind
        decode = {topics.DEMOGRAPHIC: self.decoder.demographic, topics.HISTORIC: self.decoder.historic}
        kinds = {topics.DEMOGRAPHIC: "demographic", topics.HISTORIC: "historic"}
        wall = time.time()
        new_ticket = tuple.__new__  # a Ticket without the Python-level namedtuple constructor
        good = repeats = 0
        clocks: dict[tuple[str, int], float] = {}
        for message in messages:
            if message.error():
                self.counts["consume_errors"] += 1
                self.log(f"consume error: {message.error()}")
                continue
            topic, partition = message.topic(), message.partition()
            ticket = new_ticket(Ticket, (topic, partition, message.offset()))
            consumed(ticket)
            good += 1
            raw = message.value()
            kind_of_time, millis = message.timestamp()
            event_time = millis / 1000.0 if kind_of_time else wall
            if event_time > clocks.get((topic, partition), -1.0):
                clocks[(topic, partition)] = event_time
            half = decode[topic](raw)
            if half.__class__ is Rejected:
                self._dead_letter(raw, message.key(), ticket, half.reason)
                continue
            joined = add(kinds[topic], half.uuid, half, ticket, event_time, now, raw)
            if joined is None:
                continue
            if joined.__class__ is Pair:
                pairs.append(joined)
                second_in.append(event_time)
                if not joined.logged:  # a logged twin's marker answers a replayed half; else commit both at once
                    bind(joined.tickets)
            else:
                repeats += 1
                done(ticket)
        for (topic, partition), event_time in clocks.items():
            observe(kinds[topic], partition, event_time, now)
        self.counts["consumed"] += good
        self.counts["repeats"] += repeats
        return pairs, second_in

    # ------------------------------------------------------------------ outputs
    def _decide(self, pairs: list[Pair]) -> None:
        """Score the joined pairs and write one decision each: uuid, value, token, the propensity of the value
        served (1 without exploration) and the policy id."""
        demographic = [p.demographic for p in pairs]
        historic = [p.historic for p in pairs]
        flags = flag_matrix(historic)
        self.tally.add(flags, historic, demographic)
        values = np.array([half.values for half in demographic], dtype=np.float64)
        X = assemble_rows(values, flags, self.model.features, self.model.imputation)
        token, policy = self._token_json, self._policy_json
        if self.config.explore.kind == "none":
            decisions, propensities = self.model.decide(X).tolist(), ["1.0"] * len(pairs)
        else:
            uuids = np.array([pair.uuid for pair in pairs], dtype=np.int64)
            decision = self.config.explore.decide(self.model.action_scores(X), uuids)
            decisions, propensities = decision.actions.tolist(), [repr(p) for p in decision.probabilities.tolist()]
        contexts = self._contexts(X) if self.config.log_decisions else None
        decided_at = repr(time.time())
        for i, (pair, value, propensity) in enumerate(zip(pairs, decisions, propensities)):
            fields = (f'"uuid": {pair.uuid}, "value": {value}, "token": {token}, "propensity": {propensity}, '
                      f'"policy": {policy}')  # fmt: skip
            key = str(pair.uuid).encode()
            waits = None
            tickets, then = pair.tickets, None
            if pair.logged:  # the input is done once the decided markers written after the decision are acknowledged
                tickets, then = (), self._mark_decided(pair)
            if contexts is not None:
                waits = [2]  # the input is done once the decision and its log entry are both acknowledged
                entry = f'{{{fields}, "decided_at": {decided_at}, "context": {contexts[i]}}}'.encode()
                self._produce(topics.DECISION_LOG, entry, key, None, tickets, "logged", waits, then)
            self._produce(topics.PREDICTION, f"{{{fields}}}".encode(), key, None, tickets, "decided", waits, then)

    def _contexts(self, X: np.ndarray) -> list[str]:
        """Each row's features as served, a JSON object of the non-zero ones (a feature left out is 0)."""
        names = self.model.features
        rows, cols = np.nonzero(X)
        objects: list[list[str]] = [[] for _ in range(len(X))]
        for row, col in zip(rows.tolist(), cols.tolist()):
            objects[row].append(f'"{names[col]}": {float(X[row, col])!r}')
        return ["{" + ", ".join(items) + "}" for items in objects]

    def _dead_letter(self, raw: bytes | None, key: bytes | None, ticket: Ticket, reason: str,
                     then: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.dead_letter_reasons[reason.split(":")[0]] += 1
        headers = [("reason", reason.encode()), ("topic", ticket.topic.encode()),
                   ("partition", str(ticket.partition).encode()), ("offset", str(ticket.offset).encode())]  # fmt: skip
        self._produce(topics.DEAD_LETTER, raw or b"", key, headers, (ticket,), "dead_lettered", None, then)

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, headers: list | None,
                 tickets: tuple[Ticket, ...], outcome: str, waits: list[int] | None = None,
                 then: Callable[[], None] | None = None, partition: int = -1, timestamp: int = 0) -> None:  # fmt: skip
        """Produce (to ``partition`` when given, else by key; ``timestamp`` in ms, 0: now); once the broker
        acknowledges, ``tickets`` are done and ``then()`` runs (with ``waits``, a counter shared by several messages
        of the same input: once the last of them is acknowledged). Failures are produced again."""
        retry = (topic, value, key, headers, tickets, outcome, waits, then, partition, timestamp)

        def acked(error: Any, _message: Any) -> None:
            if error is None:
                self.counts[outcome] += 1
                if waits is not None:
                    waits[0] -= 1
                    if waits[0] > 0:
                        return
                for ticket in tickets:
                    self.tracker.done(ticket)
                if then is not None:
                    then()
                return
            self.counts["delivery_errors"] += 1
            self.log(f"delivery failed ({error}); producing again")
            self._retry.append(retry)

        try:
            self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=acked,
                                  partition=partition, timestamp=timestamp)  # fmt: skip
        except BufferError:
            self.producer.poll(0.05)
            self._retry.append(retry)
        except Exception as error:  # noqa: BLE001 - e.g. KafkaException while the broker restarts
            self.counts["produce_errors"] += 1
            self.log(f"produce failed ({error}); retrying")
            self._retry.append(retry)

    def _flush_retries(self) -> None:
        retries, self._retry = self._retry, []
        for retry in retries:
            self._produce(*retry)

    # ------------------------------------------------------------------ the join changelog
    def _log_waiting(self, force: bool = False) -> None:
        """Write the halves that started waiting and still wait to the changelog (unless ``force``, not those whose
        twin may still be in the unread input: ``JoinBuffer.take_fresh``); each one's input offset is done once the
        broker acknowledges."""
        for waiting in self.buffer.take_fresh(self._caught_up, force):
            key, value, headers, partition, timestamp = changelog.record(waiting)
            self._produce(self.changelog, value, key, headers, (waiting.ticket,), "changelog_written", None, None,
                          partition, timestamp)  # fmt: skip

    def _mark_decided(self, pair: Pair) -> Callable[[], None]:
        """What to do once the decision of a pair with logged halves is acknowledged: replace them by decided markers;
        once those are acknowledged, the pair's input is done; once it is committed, delete the markers."""

        def write() -> None:
            records = [changelog.marker(kind, pair) for kind in pair.logged]
            entries = tuple((record.partition, record.key) for record in records)
            waits = [len(records)]
            for key, value, headers, partition, _ in records:
                self._produce(self.changelog, value, key, headers, pair.tickets, "changelog_decided", waits,
                              lambda: self._tombstones.append((pair.tickets, entries)), partition)  # fmt: skip

        return write

    def _forget_logged(self, waiting: Waiting) -> Callable[[], None]:
        """What to do once a logged half's dead-letter entry is acknowledged: delete it from the changelog."""
        return lambda: self._tombstone(((waiting.ticket.partition, changelog.key(waiting.kind, waiting.uuid)),))

    def _release_tombstones(self) -> None:
        """Delete the decided markers whose pair's input offsets are committed now."""
        committed, waiting = self._committed_offsets, []
        for tickets, entries in self._tombstones:
            if all(committed.get((t.topic, t.partition), -1) > t.offset for t in tickets):
                self._tombstone(entries)
            else:
                waiting.append((tickets, entries))
        self._tombstones = waiting

    def _tombstone(self, entries: tuple[tuple[int, bytes], ...]) -> None:
        """Delete changelog ``entries`` (partition, key)."""
        for partition, key in entries:
            self._produce(self.changelog, None, key, None, (), "changelog_deleted", None, None, partition)

    def _restore(self, partitions: set[int]) -> None:
        """Read the changelog's ``partitions``: decided markers make their uuid a repeat (and are deleted once their
        pair's input is committed); waiting halves go back in the join buffer (pairs that two of them complete are
        decided). Logs how many entries and how long it took."""
        started = time.monotonic()
        changelog.ensure_topic(self.config.bootstrap_servers, self.changelog)
        entries = changelog.read(self.config.bootstrap_servers, self.changelog, partitions,
                                 f"{self.config.group_id}-restore")  # fmt: skip
        markers = [entry for entry in entries if entry.twin is not None]
        for entry in markers:
            self.buffer.remember(entry.uuid)
            where = ((entry.partition, changelog.key(entry.kind, entry.uuid)),)
            self._tombstones.append(((entry.ticket, entry.twin), where))
        pairs = [self._restore_half(entry, time.monotonic()) for entry in entries if entry.twin is None]
        if any(pairs):
            self._decide([pair for pair in pairs if pair is not None])
        seconds = time.monotonic() - started
        self.counts["restored"] += len(entries) - len(markers)
        self.log(json.dumps({"restored": len(entries) - len(markers), "decided_markers": len(markers),
                             "partitions": sorted(partitions), "seconds": round(seconds, 3)}))  # fmt: skip

    def _restore_half(self, entry: changelog.Entry, now: float) -> Pair | None:
        """Put a logged half back in the join buffer; the pair it completes, if any. A half that is no longer valid
        input (the model's flags changed) is dead-lettered, one of a decided uuid deleted."""
        forget = ((entry.partition, changelog.key(entry.kind, entry.uuid)),)
        half = (self.decoder.demographic if entry.kind == "demographic" else self.decoder.historic)(entry.raw)
        if half.__class__ is Rejected:
            self._dead_letter(entry.raw, None, entry.ticket, half.reason, lambda: self._tombstone(forget))
            return None
        joined = self.buffer.restore(entry.kind, entry.uuid, half, entry.ticket, entry.event_time, now, entry.raw)
        if joined == "repeat":
            self._tombstone(forget)
        return joined if joined.__class__ is Pair else None

    # ------------------------------------------------------------------ offsets, rebalances, metrics
    def _commit(self, wait: bool = False) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(t, p, o) for (t, p), o in self.tracker.committable().items()]
        if not offsets:
            return
        try:
            committed = self.consumer.commit(offsets=offsets, asynchronous=not wait)
            self.counts["commits"] += 1
        except KafkaException as error:
            self.log(f"commit failed ({error}); will retry")
            return
        if wait:
            self._record_commits(committed)

    def _caught_up(self, kind: str, partition: int) -> bool | None:
        """Whether this worker has read ``kind``'s ``partition`` to its end (None: not known yet)."""
        from confluent_kafka import TopicPartition

        where = TopicPartition(topics.DEMOGRAPHIC if kind == "demographic" else topics.HISTORIC, partition)
        try:
            _, high = self.consumer.get_watermark_offsets(where, cached=True)
            (position,) = self.consumer.position([where])
        except Exception:  # noqa: BLE001 - not assigned (any more), or no fetch yet
            return None
        if high < 0 or position.offset < 0:
            return None
        return position.offset >= high

    def _committed(self, error: Any, partitions: list) -> None:
        failed = [p for p in partitions if p.error is not None]
        if error is not None or failed:
            self.counts["commit_errors"] += 1
            self.log(f"commit failed: {error or failed[0].error}")
        if error is None:
            self._record_commits(partitions)

    def _record_commits(self, partitions: list) -> None:
        for p in partitions:
            if p.error is None and p.offset >= 0:
                self._committed_offsets[(p.topic, p.partition)] = p.offset

    def _on_assign(self, consumer: Any, partitions: list) -> None:
        """Restore the changelog of the assigned partitions before their input is read."""
        from confluent_kafka import KafkaException

        try:
            self._record_commits(consumer.committed(partitions, timeout=30))
        except KafkaException as error:
            self.log(f"committed offsets not read ({error}); decided markers are deleted after the next commit")
        self._restore({p.partition for p in partitions})

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        """Write and commit what is done, delete what the commit allows from the changelog; forget the rest (the
        partitions' next owner restores their changelog and replays their uncommitted input)."""
        self._log_waiting(force=True)
        self.producer.flush(10)
        self._commit(wait=True)
        self._release_tombstones()
        self.producer.flush(10)
        revoked = {(p.topic, p.partition) for p in partitions}
        self.counts["dropped_on_revoke"] += self.buffer.drop_partitions(revoked)
        self.tracker.forget(revoked)
        self._tombstones = [entry for entry in self._tombstones
                            if not any((t.topic, t.partition) in revoked for t in entry[0])]  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        return {
            **dict(self.counts),
            "waiting": len(self.buffer.waiting),
            "pending_offsets": self.tracker.pending(),
            "positions": {f"{topic}/{partition}": offset for (topic, partition), offset in self._positions()},
            "dead_letter_reasons": dict(self.dead_letter_reasons),
            **self._latency_percentiles(),
            "feed": self.tally.as_json(),
        }

    def _positions(self) -> list[tuple[tuple[str, int], int]]:
        """One past the last input offset read, per partition (what a restart reads again starts below it)."""
        return sorted(self.tracker.positions().items())

    def _latency_percentiles(self) -> dict[str, float]:
        """Over the last 20,000 decisions: second half produced (its timestamp) -> decision handed to the producer
        (``join_to_decision``, the broker's delivery included), and its batch read -> decision handed to the producer
        (``processing``: what the worker itself adds)."""
        if not self.latencies:
            return {}
        p50, p99 = np.percentile(np.fromiter(self.latencies, dtype=float), [50, 99]) * 1000
        q50, q99 = np.percentile(np.fromiter(self.processing, dtype=float), [50, 99]) * 1000
        return {"join_to_decision_p50_ms": round(float(p50), 2), "join_to_decision_p99_ms": round(float(p99), 2),
                "processing_p50_ms": round(float(q50), 2), "processing_p99_ms": round(float(q99), 2)}  # fmt: skip

    def _write_metrics(self) -> None:
        if self.config.metrics_file is not None:
            path = Path(self.config.metrics_file)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(self.metrics()))
            tmp.replace(path)

    def _shutdown(self) -> None:
        self._log_waiting(force=True)
        self.producer.flush(10)
        self._flush_retries()
        self.producer.flush(10)
        self._commit(wait=True)
        self._release_tombstones()
        self.producer.flush(10)
        try:
            self.consumer.close()
        finally:
            self._write_metrics()


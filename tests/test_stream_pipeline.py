"""The decision worker on a real broker: decisions and dead letters, a chaos run, two workers in one group.

Every worker is a real `nextbest stream run` subprocess; brokers are real Tansu processes (memory, or durable
on SeaweedFS for the chaos run).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import confluent_kafka
import numpy as np
import pytest

from nextbest.models.export import export_model
from nextbest.models.targeting import TargetingModel, features_from_frame, train_targeting
from nextbest.sim.shop import World, write_world_data
from nextbest.stream import topics
from nextbest.stream.faults import FAULT_KINDS, REASON_PREFIX, corrupt

pytestmark = pytest.mark.kafka

TOKEN = "tok-123"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[TargetingModel, Path]:
    """A gradient-boosting model trained on a small world, exported to ONNX."""
    folder = tmp_path_factory.mktemp("served")
    write_world_data(World(11, eval_customers=5_000), folder / "world", customers=20_000)
    model = train_targeting(folder / "world", "gbm")
    return model, export_model(model, folder / "gbm.onnx", "onnx").path


def start_worker(bootstrap: str, model: Path, folder: Path, name: str, ttl: str = "60s") -> subprocess.Popen:
    command = [sys.executable, "-m", "nextbest.cli", "stream", "run", "--bootstrap-servers", bootstrap,
               "--model", str(model), "--token", TOKEN, "--join-ttl", ttl,
               "--metrics-file", str(folder / f"{name}.json")]  # fmt: skip
    log = (folder / f"{name}.log").open("a")
    return subprocess.Popen(command, stdout=log, stderr=log)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 120.0, idle: float = 8.0) -> list:
    """Every message of ``topic`` from the beginning (a fresh group): stops at ``expected`` or after ``idle`` s."""
    from nextbest.stream.broker import consumer_config

    consumer = confluent_kafka.Consumer(consumer_config(bootstrap, f"reader-{topic}-{time.monotonic_ns()}"))
    consumer.subscribe([topic])
    messages, deadline, last = [], time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline and (len(messages) < expected or time.monotonic() - last < 1.0):
        batch = [m for m in consumer.consume(5000, 0.5) if m.error() is None]
        if batch:
            messages.extend(batch)
            last = time.monotonic()
        elif messages and time.monotonic() - last > idle:
            break
    consumer.close()
    return messages


def decisions_by_uuid(messages: list) -> dict[int, set[int]]:
    values: dict[int, set[int]] = defaultdict(set)
    for message in messages:
        record = json.loads(message.value())
        assert record["token"] == TOKEN and message.key() == str(record["uuid"]).encode()
        values[record["uuid"]].add(record["value"])
    return values


class Traffic:
    """Customers as the two raw halves, a share of them malformed (every fault kind, either half)."""

    def __init__(self, n: int, malformed: float, seed: int) -> None:
        world = World(seed)
        customers = world.sample(n, stream=5, uuid_start=7_000_000)
        self.demographic, self.historic = world.messages(customers)
        self.frame = world.frame(customers)
        rng = np.random.default_rng(seed)
        self.bad: dict[int, tuple[str, str, bytes]] = {}
        for i in np.flatnonzero(rng.random(n) < malformed):
            topic = topics.DEMOGRAPHIC if rng.random() < 0.5 else topics.HISTORIC
            kind = FAULT_KINDS[int(rng.integers(len(FAULT_KINDS)))]
            record = (self.demographic if topic == topics.DEMOGRAPHIC else self.historic)[i]
            self.bad[int(i)] = (topic, kind, corrupt(record, topic, kind, rng))
        self.order = rng.random(n) < 0.5

    def valid_uuids(self) -> set[int]:
        return {d["uuid"] for i, d in enumerate(self.demographic) if i not in self.bad}

    def produce(self, bootstrap: str, start: int = 0, stop: int | None = None) -> None:
        from nextbest.stream.broker import producer_config

        producer = confluent_kafka.Producer(producer_config(bootstrap, **{"linger.ms": 20}))
        for i in range(start, len(self.demographic) if stop is None else stop):
            key = str(self.demographic[i]["uuid"]).encode()
            halves = [(topics.DEMOGRAPHIC, json.dumps(self.demographic[i]).encode()),
                      (topics.HISTORIC, json.dumps(self.historic[i]).encode())]  # fmt: skip
            if i in self.bad:
                topic, _, raw = self.bad[i]
                halves = [(t, raw if t == topic else value) for t, value in halves]
            for topic, value in halves if self.order[i] else halves[::-1]:
                producer.produce(topic, value, key)
            producer.poll(0)
        assert producer.flush(120) == 0


def test_worker_decides_valid_customers_and_dead_letters_the_rest(
    kafka_broker: str, served: tuple[TargetingModel, Path], tmp_path: Path
) -> None:
    model, path = served
    traffic = Traffic(3_000, malformed=0.1, seed=3)
    traffic.produce(kafka_broker)
    worker = start_worker(kafka_broker, path, tmp_path, "w", ttl="3s")
    try:
        predictions = read_all(kafka_broker, topics.PREDICTION, len(traffic.valid_uuids()))
        dead = read_all(kafka_broker, topics.DEAD_LETTER, 2 * len(traffic.bad))
        assert worker.poll() is None, "the worker exited on bad input"
    finally:
        stop(worker)
    decided = decisions_by_uuid(predictions)
    assert set(decided) == traffic.valid_uuids()
    expected = model.decide(features_from_frame(traffic.frame, model.features))
    for i, record in enumerate(traffic.demographic):
        if record["uuid"] in decided:
            assert decided[record["uuid"]] == {int(expected[i])}
    reasons = {bytes(m.value()): dict(m.headers())["reason"].decode() for m in dead}
    for topic, kind, raw in traffic.bad.values():
        assert raw in reasons, (topic, kind)
        assert reasons[raw].startswith(REASON_PREFIX[kind]), (kind, reasons[raw])
    unmatched = [r for r in reasons.values() if r.startswith("no twin")]
    assert len(unmatched) == len(traffic.bad)  # each malformed customer's valid half expires
    metrics = json.loads((tmp_path / "w.json").read_text())
    assert metrics["decided"] == len(decided) and metrics["expired"] == len(traffic.bad)


def test_chaos_no_decision_lost(
    start_durable_broker, served: tuple[TargetingModel, Path], tmp_path: Path
) -> None:
    """100k sessions, 5% malformed, the worker SIGKILLed 3 times, the durable broker restarted once: 0 lost."""
    _, path = served
    broker = start_durable_broker()
    broker.create_topics(partitions=4)
    bootstrap = broker.bootstrap_servers
    traffic = Traffic(100_000, malformed=0.05, seed=4)
    rng = np.random.default_rng(4)
    chunks = np.linspace(0, 100_000, 9).astype(int)
    kill_after = set(rng.choice(np.arange(1, 8), size=3, replace=False).tolist())
    restart_after = int(rng.choice([c for c in range(1, 8) if c not in kill_after]))
    worker = start_worker(bootstrap, path, tmp_path, "chaos", ttl="20s")
    kills = 0
    try:
        for chunk, (start, stop_at) in enumerate(zip(chunks[:-1], chunks[1:]), start=1):
            traffic.produce(bootstrap, int(start), int(stop_at))
            time.sleep(float(rng.uniform(0.2, 2.0)))
            if chunk in kill_after:
                assert worker.poll() is None, "the worker exited before it was killed"
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                kills += 1
                worker = start_worker(bootstrap, path, tmp_path, "chaos", ttl="20s")
            if chunk == restart_after:
                broker.restart()
        predictions = read_all(bootstrap, topics.PREDICTION, len(traffic.valid_uuids()), timeout=400, idle=30)
        dead = read_all(bootstrap, topics.DEAD_LETTER, 2 * len(traffic.bad), timeout=200, idle=30)
        assert worker.poll() is None, "the worker exited on bad input"
    finally:
        stop(worker)
    assert kills == 3
    decided = decisions_by_uuid(predictions)
    lost = traffic.valid_uuids() - set(decided)
    assert not lost, f"{len(lost)} valid customers got no decision"
    assert all(len(values) == 1 for values in decided.values())
    assert not set(decided) - traffic.valid_uuids()
    reasons = {bytes(m.value()): dict(m.headers())["reason"].decode() for m in dead}
    missing = [kind for _, kind, raw in traffic.bad.values() if raw not in reasons]
    assert not missing, f"{len(missing)} malformed messages not dead-lettered: {sorted(set(missing))}"
    assert all(reasons[raw].startswith(REASON_PREFIX[kind]) for _, kind, raw in traffic.bad.values())
    print(json.dumps({"chaos": {"valid": len(traffic.valid_uuids()), "decided": len(decided),
                                "decision_messages": len(predictions), "malformed": len(traffic.bad),
                                "dead_letters": len(dead), "kills": kills, "broker_restarts": 1}}))  # fmt: skip


def test_two_workers_share_four_partitions(served: tuple[TargetingModel, Path], tmp_path: Path) -> None:
    """Two workers in one group: every customer decided, one decision value per uuid, both did work."""
    _, path = served
    from nextbest.stream.broker import Broker

    with Broker(storage="memory") as broker:
        broker.create_topics(partitions=4)
        bootstrap = broker.bootstrap_servers
        traffic = Traffic(20_000, malformed=0.0, seed=5)
        workers = [start_worker(bootstrap, path, tmp_path, f"w{i}") for i in range(2)]
        try:
            time.sleep(6)
            traffic.produce(bootstrap)
            predictions = read_all(bootstrap, topics.PREDICTION, 20_000)
        finally:
            for worker in workers:
                stop(worker)
    decided = decisions_by_uuid(predictions)
    assert set(decided) == traffic.valid_uuids()
    assert all(len(values) == 1 for values in decided.values())
    shares = [json.loads((tmp_path / f"w{i}.json").read_text())["decided"] for i in range(2)]
    assert min(shares) > 0 and sum(shares) >= 20_000, shares
    print(json.dumps({"scale": {"decided_per_worker": shares, "decision_messages": len(predictions),
                                "uuids": len(decided)}}))  # fmt: skip

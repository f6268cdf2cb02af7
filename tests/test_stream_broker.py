"""The Tansu broker launcher: topics, keyed round trip through a consumer group, durable restart, CLI."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import confluent_kafka as kafka
import pytest

from nextbest.stream import ALL_TOPICS, consumer_config, create_topics, producer_config

pytestmark = pytest.mark.kafka


def produce(bootstrap: str, topic: str, keys: range) -> None:
    producer = kafka.Producer(producer_config(bootstrap))
    for key in keys:
        producer.produce(topic, key=str(key).encode(), value=f"value-{key}".encode())
    assert producer.flush(15) == 0


def consume(consumer, topic: str, count: int, timeout: float = 30.0, settle: float = 1.0) -> list[int]:
    """Keys of the messages read until ``count`` arrived (then ``settle`` s more, to catch extras) or time ran out."""
    consumer.subscribe([topic])
    keys: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            keys.append(int(message.key()))
        if len(keys) >= count:
            deadline = min(deadline, time.monotonic() + settle)
    return keys


def read_group(bootstrap: str, group: str, topic: str, count: int) -> list[int]:
    consumer = kafka.Consumer(consumer_config(bootstrap, group))
    try:
        keys = consume(consumer, topic, count)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return keys


def test_topics_have_four_partitions(kafka_broker: str) -> None:
    metadata = kafka.admin.AdminClient({"bootstrap.servers": kafka_broker}).list_topics(timeout=10)
    for topic in ALL_TOPICS:
        assert len(metadata.topics[topic].partitions) == 4
    assert create_topics(kafka_broker, partitions=4) == list(ALL_TOPICS)


def test_consumer_group_reads_all_keyed_messages(kafka_broker: str) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker, partitions=4, topics=[topic])
    produce(kafka_broker, topic, range(100))
    keys = read_group(kafka_broker, "roundtrip", topic, 100)
    assert sorted(keys) == list(range(100))


def test_durable_broker_keeps_messages_and_offsets_over_restart_and_crash(start_durable_broker) -> None:
    broker = start_durable_broker()
    topic = "durable"
    broker.create_topics(partitions=4, topics=[topic])
    produce(broker.bootstrap_servers, topic, range(20))
    assert sorted(read_group(broker.bootstrap_servers, "resume", topic, 20)) == list(range(20))

    broker.restart()
    produce(broker.bootstrap_servers, topic, range(20, 30))
    assert sorted(read_group(broker.bootstrap_servers, "resume", topic, 10)) == list(range(20, 30))

    broker.kill()
    broker.start()
    assert sorted(read_group(broker.bootstrap_servers, "fresh", topic, 30)) == list(range(30))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nextbest.cli", "broker", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_cli_broker_start_help() -> None:
    result = run_cli("start", "--help")
    assert result.returncode == 0
    assert "--storage" in result.stdout


def test_cli_bad_storage_exits_2() -> None:
    result = run_cli("start", "--storage", "bogus")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "bogus" in result.stderr


def test_port_in_use_is_a_one_line_error(kafka_broker: str) -> None:
    from nextbest.errors import NextbestError
    from nextbest.stream import Broker

    port = int(kafka_broker.rsplit(":", 1)[1])
    with pytest.raises(NextbestError, match="already in use"):
        Broker(port=port).start()

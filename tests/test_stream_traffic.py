"""The shop traffic and the A/B experiment end to end, for real: Tansu broker, platform subprocess, decision worker
subprocess (plus an impostor worker writing another token), traffic in this process; and the CLI's refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextbest.platform.store import Store
from nextbest.stream import _process, topics
from nextbest.stream.services import PlatformService, WorkerProcess
from nextbest.stream.traffic import PlatformClient, make_plan

NEXTBEST = [sys.executable, "-m", "nextbest.cli"]
SMALL = {"owner": "test", "name": "traffic", "effect": 5.0, "sd": 15.0, "sample_size": 143}  # coherent: 143 per arm


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    """A platform subprocess on a SQLite file: (service, db_url)."""
    directory = tmp_path_factory.mktemp("platform")
    db_url = f"sqlite:///{directory / 'platform.db'}"
    with PlatformService(db_url, log_dir=directory) as service:
        yield service, db_url


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    """A logistic-regression model on a small shop world, exported to ONNX: (path, world)."""
    from nextbest.stream.e2e import prepare_model

    return prepare_model(tmp_path_factory.mktemp("model"), "logreg", seed=3, customers=20_000)


def create(platform_url: str) -> dict:
    client = PlatformClient(platform_url)
    try:
        return client.create_experiment(SMALL)
    finally:
        client.close()


def pipeline_decisions(bootstrap: str, token: str) -> dict[int, int]:
    """The first decision per uuid with ``token`` on the whole prediction topic."""
    from confluent_kafka import Consumer, TopicPartition

    from nextbest.stream.broker import consumer_config

    consumer = Consumer(consumer_config(bootstrap, "test-reader"))
    partitions = consumer.list_topics(topics.PREDICTION, timeout=10).topics[topics.PREDICTION].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topics.PREDICTION, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(topics.PREDICTION, p, 0) for p in partitions])
    first: dict[int, int] = {}
    positions = dict.fromkeys(partitions, 0)
    while any(positions[p] < ends[p] for p in partitions):
        for message in consumer.consume(1000, timeout=1.0):
            positions[message.partition()] = message.offset() + 1
            record = json.loads(message.value())
            if record["token"] == token:
                first.setdefault(int(record["uuid"]), int(record["value"]))
    consumer.close()
    return first


@pytest.mark.kafka
def test_end_to_end_experiment_reaches_a_verdict(fresh_kafka_broker: str, platform, model, tmp_path: Path) -> None:
    from nextbest.stream.traffic import TrafficConfig, run_traffic

    bootstrap = fresh_kafka_broker
    service, db_url = platform
    path, world = model
    created = create(service.url)
    config = TrafficConfig(bootstrap, service.url, created["id"], created["token"], sessions=3000, rate=400.0,
                           seed=11, malformed_rate=0.02, decision_timeout=10.0)  # fmt: skip
    impostor = WorkerProcess(bootstrap, path, "not-the-token", group_id="impostor", log_dir=tmp_path / "impostor")
    with WorkerProcess(bootstrap, path, created["token"], group_id="test-traffic", log_dir=tmp_path), impostor:
        summary = run_traffic(config, world)
    assert summary["complete"] and summary["verdict"]
    assert min(summary["progress"]["original"], summary["progress"]["new"]) >= SMALL["sample_size"]
    assert summary["n_original"] == summary["n_new"] == SMALL["sample_size"]
    assert summary["token_mismatches"] > 0  # the impostor's decisions were read and ignored
    assert summary["outcomes_duplicates"] == 0 and summary["srm_flagged"] is False
    assert summary["malformed_customers"] > 0
    assert summary["outcomes_original"] + summary["outcomes_new"] == summary["outcomes_accepted"]
    assert summary["feed_style"]["keys"] == "example" and summary["feed_style"]["repeat_rate"] > 0
    assert summary["fallback_timeouts"] == 0  # every valid customer of the realistic feed was decided in time
    feed = json.loads((tmp_path / "worker-metrics.json").read_text())["feed"]
    assert feed["customers_with_repeated_keys"] > 0 and feed["conflicting_keys"] and "u8" in feed["missing_flags"]

    pipeline = pipeline_decisions(bootstrap, created["token"])
    plan = make_plan(world, config.sessions, config.seed, config.max_delay, config.malformed_rate)
    index = {int(u): i for i, u in enumerate(plan.customers.uuid)}
    store = Store.open(db_url)
    try:
        outcomes = store.outcomes(created["id"])
    finally:
        store.close()
    assert all(outcome.uuid == str(int(outcome.uuid)) for outcome in outcomes)  # integers sent, one canonical form
    fallbacks = 0
    for outcome in outcomes:
        i = index[int(outcome.uuid)]
        if outcome.arm == "original":
            assert outcome.decision == plan.original[i]
        elif plan.malformed[i] or int(outcome.uuid) not in pipeline:
            assert outcome.decision == 0
            fallbacks += 1
        else:
            assert outcome.decision == pipeline[int(outcome.uuid)]
        assert outcome.revenue == pytest.approx(plan.revenue[i, outcome.decision])
    assert fallbacks == summary["malformed_fallbacks"] + summary["fallback_timeouts"]
    assert np.mean([o.arm == "new" for o in outcomes]) == pytest.approx(0.5, abs=0.1)


def traffic_cli(*args: str) -> subprocess.CompletedProcess:
    base = ["shop", "traffic", "--bootstrap-servers", "127.0.0.1:1", "--sessions", "10", "--rate", "10"]
    return subprocess.run([*NEXTBEST, *base, *args], capture_output=True, text=True, timeout=120)


def test_traffic_cli_refuses_bad_input_with_one_line(platform) -> None:
    service, _ = platform
    created = create(service.url)
    nowhere = f"http://127.0.0.1:{_process.free_port()}"
    cases = {
        "unreachable": (["--platform", nowhere, "--experiment", "1", "--token", "x"], "unreachable"),
        "unknown experiment": (["--platform", service.url, "--experiment", "99999", "--token", "x"], "does not exist"),
        "wrong token": (["--platform", service.url, "--experiment", str(created["id"]), "--token", "nope"], "token"),
        "bad rate": (["--platform", service.url, "--experiment", "1", "--token", "x", "--rate", "0"], "--rate"),
        "bad feed": (["--platform", service.url, "--experiment", "1", "--token", "x", "--feed", "dirty"], "feed"),
        "bad repeat rate": (["--platform", service.url, "--experiment", "1", "--token", "x", "--repeat-rate", "2"],
                            "repeat rate"),
    }
    for name, (args, expected) in cases.items():
        result = traffic_cli(*args)
        assert result.returncode == 2, (name, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)


def test_bulk_assignments_equal_the_single_unit_route(platform) -> None:
    service, _ = platform
    created = create(service.url)
    client = PlatformClient(service.url)
    try:
        uuids = [str(u) for u in range(1000, 1040)]
        arms = client.arms(created["id"], uuids)
        single = [client._http.get(f"/api/experiments/{created['id']}/assignment/{u}").json()["arm"] for u in uuids]
    finally:
        client.close()
    assert arms == single and set(arms) == {"original", "new"}

"""Shared fixtures: the real SalesCRM data prepared once per test session, the Kafka-compatible brokers and the
PostgreSQL server of the platform tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from nextbest.data import prepare_crm
from nextbest.data.prepared import PreparedCRM, load_prepared
from nextbest.errors import DataError


@pytest.fixture(scope="session")
def prepared_crm(tmp_path_factory: pytest.TempPathFactory) -> PreparedCRM:
    """The embedded SalesCRM data prepared (split, train statistics, features) in a session temp folder."""
    directory = tmp_path_factory.mktemp("prep")
    try:
        prepare_crm(directory)
    except DataError as error:
        pytest.fail(f"real SalesCRM data missing (expected in ../shared/data or $NEXTBEST_DATA_DIR): {error}")
    return load_prepared(directory)


@pytest.fixture(scope="session")
def prepared(prepared_crm: PreparedCRM) -> PreparedCRM:
    """Alias of `prepared_crm`."""
    return prepared_crm


@pytest.fixture(scope="session")
def train_journeys(prepared_crm: PreparedCRM):
    from nextbest.sim import journeys_from_frame

    return journeys_from_frame(prepared_crm.train)


@pytest.fixture(scope="session")
def test_journeys(prepared_crm: PreparedCRM):
    from nextbest.sim import journeys_from_frame

    return journeys_from_frame(prepared_crm.test)


@pytest.fixture()
def simulator(prepared_crm: PreparedCRM):
    """A fresh simulator fitted on the train split."""
    from nextbest.sim import simulator_from_frame

    return simulator_from_frame(prepared_crm.train)


@pytest.fixture(scope="session")
def funnel(prepared_crm: PreparedCRM):
    """(simulator fitted on train, covariate codes (n, 2) of the train leads)."""
    from nextbest.sim import journeys_from_frame, simulator_from_frame

    sim = simulator_from_frame(prepared_crm.train)
    return sim, sim.model.encode_leads(journeys_from_frame(prepared_crm.train))


@pytest.fixture(scope="session")
def kafka_broker():
    """Bootstrap servers of a memory-storage Tansu broker with the pipeline's topics (4 partitions each)."""
    yield from _memory_broker()


@pytest.fixture()
def fresh_kafka_broker():
    """Like `kafka_broker`, but a broker of the test's own: a new consumer group reads the input topics from their
    start, so on the session's shared broker a new worker would first replay every earlier test's traffic."""
    yield from _memory_broker()


def _memory_broker():
    from nextbest.errors import NextbestError
    from nextbest.stream import Broker

    try:
        broker = Broker(storage="memory").start()
    except NextbestError as error:
        pytest.fail(f"Tansu broker did not start (make test installs it with the 'stream' extra): {error}")
    try:
        broker.create_topics(partitions=4)
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture()
def start_durable_broker(tmp_path_factory: pytest.TempPathFactory):
    """A function that starts a durable (S3 on SeaweedFS) Tansu broker; every broker it started stops at teardown."""
    from nextbest.stream import Broker

    started: list[Broker] = []

    def start(**options) -> Broker:
        broker = Broker(storage="durable", data_dir=tmp_path_factory.mktemp("durable-broker"), **options)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator:
    """A real PostgreSQL server for the session (a PostgresServer): initdb in a temp folder (as user postgres when
    run as root) on a free port. Set NEXTBEST_TEST_POSTGRES_URL=postgresql://USER@HOST:PORT/DB to use an existing
    server instead (each test then creates its own database there, so the user needs CREATEDB)."""
    from nextbest.errors import NextbestError
    from nextbest.platform.pgserver import PostgresServer, temporary_server

    external = os.environ.get("NEXTBEST_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(url=external)
        return
    try:
        with temporary_server() as server:
            yield server
    except NextbestError as error:
        pytest.fail(f"the test PostgreSQL server failed (make test installs postgresql): {error}")


@pytest.fixture()
def pg_url(postgres) -> str:
    """URL of a fresh, empty database on the session's server."""
    return postgres.new_database()

"""The experiment platform on a real PostgreSQL server started for this session (the `postgres` and `pg_url`
fixtures of conftest.py: initdb + pg_ctl on a free port, or NEXTBEST_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import pytest

from nextbest.platform.pgserver import PostgresServer
from test_platform_api import DESIGN, auth, close, create, new_client, post_concurrently, run_api_flow
from test_platform_binary import check_migration_from_0001, run_binary_flow
from test_platform_metrics import check_migration_from_0002, run_metrics_flow

pytestmark = pytest.mark.postgres


def test_full_flow_and_restart_on_postgres(pg_url: str) -> None:
    run_api_flow(pg_url)


def test_schema_is_migrated_and_url_uses_psycopg3(pg_url: str) -> None:
    from nextbest.platform.db import current_revision

    client = new_client(pg_url)
    store = client.app.state.store
    assert store.engine.dialect.name == "postgresql" and store.engine.dialect.driver == "psycopg"
    assert current_revision(store.engine) == "0003"
    assert client.get("/healthz").json() == {"status": "ok", "database": "postgresql"}
    close(client)
    again = new_client(pg_url)  # migrating an up-to-date schema is a no-op
    assert current_revision(again.app.state.store.engine) == "0003"
    close(again)


def test_binary_flow_on_postgres(pg_url: str) -> None:
    run_binary_flow(pg_url)


def test_migration_from_0001_on_postgres(pg_url: str) -> None:
    check_migration_from_0001(pg_url)


def test_metrics_and_migration_from_0002_on_postgres(postgres: PostgresServer, pg_url: str) -> None:
    """Migration 0003 and its JSON and boolean columns on PostgreSQL: a 0002 database upgraded (old rows get the
    defaults), then an experiment with every option (CUPED, posterior, secondary metrics, a guardrail) end to end."""
    check_migration_from_0002(pg_url)
    run_metrics_flow(postgres.new_database())


def test_concurrent_duplicates_on_postgres(pg_url: str) -> None:
    client = new_client(pg_url)
    experiment_id, _ = create(client)
    answers = post_concurrently(client.app.state.store, experiment_id)
    assert sum(a.accepted for a in answers) == 2000 and sum(a.duplicates for a in answers) == 3 * 2000
    assert client.get(f"/api/experiments/{experiment_id}").json()["progress"]["duplicate_decisions"] == 6000
    close(client)


def test_hostile_text_and_malformed_input_on_postgres(pg_url: str) -> None:
    client = new_client(pg_url)
    hostile = "'); DROP TABLE outcomes; -- <script>alert(1)</script> ✓"
    experiment_id, token = create(client, owner=hostile, name=hostile)
    url = f"/api/experiments/{experiment_id}/outcomes"
    assert client.post(url, json={"uuid": hostile, "arm": "new", "decision": 1, "revenue": 2.5},
                       headers=auth(token)).json() == {"accepted": 1, "duplicates": 0}  # fmt: skip
    for body in (b'{"uuid": "a\\u0000b", "arm": "new", "decision": 1, "revenue": 1}',
                 b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": NaN}'):  # fmt: skip
        response = client.post(url, content=body, headers={**auth(token), "content-type": "application/json"})
        assert response.status_code == 422
    name_with_nul = client.post("/api/experiments", json={**DESIGN, "name": "a\x00b"})
    assert name_with_nul.status_code == 422
    shown = client.get(f"/api/experiments/{experiment_id}").json()
    assert shown["owner"] == hostile and shown["name"] == hostile and shown["progress"]["new"] == 1
    close(client)


def test_recorded_data_survives_a_server_restart(postgres: PostgresServer, pg_url: str) -> None:
    client = new_client(pg_url)
    experiment_id, token = create(client)
    rows = [{"uuid": f"r{i}", "value": 1} for i in range(100)]
    assert client.post(f"/api/experiments/{experiment_id}/decisions", json=rows, headers=auth(token)).status_code == 200
    close(client)
    postgres.restart()
    restarted = new_client(pg_url)
    assert restarted.get(f"/api/experiments/{experiment_id}").json()["progress"]["decisions"] == 100
    close(restarted)


ARRAY_HOSTILE_UUIDS = ["NULL", "null", "{a,b}", '"quoted"', "back\\slash", " padded ", "a,b", "ü✓", "{}", "x" * 128]


def test_rows_travel_as_arrays_without_losing_a_character(pg_url: str) -> None:
    """PostgreSQL inserts the rows as one array per column (unnest): texts that mean something inside an array
    literal (NULL, braces, quotes, commas, backslashes, spaces) come back exactly, in arrival order, with their
    values, and a repeat of one of them is a duplicate."""
    client = new_client(pg_url)
    experiment_id, token = create(client)
    rows = [{"uuid": uuid, "arm": "new" if i % 2 else "original", "decision": i % 2, "revenue": i + 0.25}
            for i, uuid in enumerate(ARRAY_HOSTILE_UUIDS)]  # fmt: skip
    answer = client.post(f"/api/experiments/{experiment_id}/outcomes", json=[*rows, rows[3]], headers=auth(token))
    assert answer.json() == {"accepted": len(rows), "duplicates": 1}
    stored = client.app.state.store.outcomes(experiment_id)
    assert [(o.uuid, o.arm, o.decision, o.revenue) for o in stored] == [
        (r["uuid"], r["arm"], r["decision"], r["revenue"]) for r in rows]  # fmt: skip
    close(client)

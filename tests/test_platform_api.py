"""The experiment platform's REST API on SQLite files: design checks, tokens, ingestion, verdict, persistence,
hostile input. The helpers (`new_client`, `create`, `simulated_outcomes`, `run_api_flow`) also drive the
PostgreSQL tests in test_platform_postgres.py."""

from __future__ import annotations

import json
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from nextbest.experiments import analyze, srm_test
from nextbest.platform import create_app

with warnings.catch_warnings():  # newer Starlette warns that its httpx-based TestClient is deprecated
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

DESIGN = {"owner": "ana", "name": "category display", "alpha": 0.05, "power": 0.8, "effect": 5.0, "sd": 10.0,
          "sample_size": 64, "alternative": "two-sided"}  # fmt: skip
HOSTILE = [
    "'; DROP TABLE experiments; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM outcomes WHERE ('1'='1",
    "<script>alert('xss')</script>",
    "<img src=x onerror=alert(1)>",
    "{{ 7*7 }} ${7*7} %s %(x)s \\ ` ' \"",
    "ünïcödé ✓ 中文 🎉",
]


# ---------------------------------------------------------------------------------------------- helpers


def new_client(db_url: str) -> TestClient:
    """A test client on a fresh application over ``db_url``; server errors come back as responses (never raised)."""
    return TestClient(create_app(db_url), raise_server_exceptions=False)


def close(client: TestClient) -> None:
    """Dispose the application's engine, as a process exit would."""
    client.app.state.store.close()


def create(client: TestClient, **overrides: Any) -> tuple[int, str]:
    """Create an experiment (DESIGN with ``overrides``); its (id, token)."""
    response = client.post("/api/experiments", json={**DESIGN, **overrides})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def simulated_outcomes(n_per_arm: int, true_effect: float, sd: float, seed: int, prefix: str = "u") -> list[dict]:
    """Outcomes of ``n_per_arm`` units per arm, interleaved; revenue ~ N(50, sd) + true_effect in arm "new"."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_per_arm):
        for arm, shift in (("original", 0.0), ("new", true_effect)):
            revenue = float(rng.normal(50.0 + shift, sd))
            rows.append({"uuid": f"{prefix}-{arm}-{i}", "arm": arm, "decision": int(arm == "new"), "revenue": revenue})
    return rows


def revenues(rows: list[dict], arm: str) -> np.ndarray:
    return np.array([row["revenue"] for row in rows if row["arm"] == arm])


def run_api_flow(db_url: str) -> None:
    """Create → decisions (single, list, duplicates) → outcomes → result → restart → still there, on ``db_url``."""
    client = new_client(db_url)
    experiment_id, token = create(client)
    other_id, other_token = create(client, name="other")
    decisions = [{"uuid": f"d{i}", "value": i % 2} for i in range(500)]
    url = f"/api/experiments/{experiment_id}/decisions"
    assert client.post(url, json=decisions[0], headers=auth(token)).json() == {"accepted": 1, "duplicates": 0}
    answer = client.post(url, json=decisions + decisions[:3], headers=auth(token))
    assert answer.status_code == 200 and answer.json() == {"accepted": 499, "duplicates": 4}
    refused = client.post(url, json=decisions, headers=auth(other_token))
    assert refused.status_code == 403

    outcomes = simulated_outcomes(64, true_effect=8.0, sd=10.0, seed=7)
    half = client.post(f"/api/experiments/{experiment_id}/outcomes", json=outcomes[:100], headers=auth(token))
    assert half.json() == {"accepted": 100, "duplicates": 0}
    running = client.get(f"/api/experiments/{experiment_id}").json()
    assert running["result"] is None and running["status"] == "running"
    assert running["progress"]["original"] == 50 and running["progress"]["new"] == 50
    changed = [dict(row, revenue=row["revenue"] + 1000.0) for row in outcomes[:10]]  # duplicates: the first wins
    rest = client.post(f"/api/experiments/{experiment_id}/outcomes", json=changed + outcomes[100:], headers=auth(token))
    assert rest.json() == {"accepted": 28, "duplicates": 10}

    done = client.get(f"/api/experiments/{experiment_id}").json()
    expected = analyze(
        revenues(outcomes, "original"),
        revenues(outcomes, "new"),
        alpha=0.05,
        target_effect=5.0,
        labels=("original", "new"),
    )
    assert_result(done, expected, srm_p_value=1.0)
    assert done["progress"] == {"original": 64, "new": 64, "required_per_arm": 64, "decisions": 500,
                                "duplicate_decisions": 4, "duplicate_outcomes": 10, "complete": True}  # fmt: skip
    assert client.get(f"/api/experiments/{other_id}").json()["progress"]["decisions"] == 0
    close(client)

    restarted = new_client(db_url)
    again = restarted.get(f"/api/experiments/{experiment_id}").json()
    assert again["progress"] == done["progress"] and again["result"] == done["result"]
    late = restarted.post(url, json=decisions[:5], headers=auth(token))
    assert late.json() == {"accepted": 0, "duplicates": 5}
    shop = [{"uuid": 404180, "value": 1}, {"uuid": "404180", "value": 0}]  # one unit: the integer and its text
    assert restarted.post(url, json=shop, headers=auth(token)).json() == {"accepted": 1, "duplicates": 1}
    close(restarted)


def post_concurrently(store, experiment_id: int, writers: int = 4, rows: int = 2000) -> list:
    """``writers`` threads record the same ``rows`` decisions at once through ``store``; their IngestOut answers."""
    from concurrent.futures import ThreadPoolExecutor

    from nextbest.platform.schemas import DecisionIn

    batch = [DecisionIn(uuid=f"c{i}", value=i % 2) for i in range(rows)]
    with ThreadPoolExecutor(writers) as pool:
        return list(pool.map(lambda _: store.add_decisions(experiment_id, batch), range(writers)))


def assert_result(experiment: dict, expected, srm_p_value: float) -> None:
    """The experiment's result carries the figures of ``expected`` (an AnalysisResult) and the SRM p-value."""
    result = experiment["result"]
    assert experiment["status"] == "complete" and result is not None
    assert result["verdict"] == expected.verdict
    assert result["effect"] == pytest.approx(expected.effect)
    assert result["ci"] == pytest.approx(list(expected.ci))
    assert result["p_value"] == pytest.approx(expected.p_value)
    assert result["improves"] is bool(expected.improves)
    assert result["srm_p_value"] == pytest.approx(srm_p_value)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'platform.db'}"


@pytest.fixture()
def client(db_url: str):
    client = new_client(db_url)
    yield client
    close(client)


@pytest.fixture()
def experiment(client: TestClient) -> tuple[int, str]:
    return create(client)


# ---------------------------------------------------------------------------------------------- creation


def test_create_returns_id_and_token_stored_hashed(client: TestClient) -> None:
    response = client.post("/api/experiments", json=DESIGN)
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body["id"], int) and len(body["token"]) >= 40
    assert body["required_sample_size"] == 64
    with client.app.state.store.engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM experiments")).scalar_one()
    assert stored != body["token"] and body["token"] not in stored and len(stored) == 64
    shown = client.get(f"/api/experiments/{body['id']}").text + client.get("/api/experiments").text
    assert body["token"] not in shown and stored not in shown and "salt" not in shown


def test_incoherent_design_is_refused_with_the_explanation(client: TestClient) -> None:
    response = client.post("/api/experiments", json={**DESIGN, "sample_size": 20})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "raise it to 64" in detail and "power" in detail
    assert client.get("/api/experiments").json() == []


@pytest.mark.parametrize(
    "change",
    [
        {"alpha": 0.7},
        {"power": 0.01},
        {"effect": 0},
        {"effect": -5.0, "alternative": "larger"},
        {"sd": 0},
        {"alternative": "bigger"},
        {"sample_size": 1},
        {"sample_size": 10.5},
        {"owner": ""},
        {"owner": "x" * 101},
        {"name": "n" * 201},
        {"name": 42},
    ],
)
def test_invalid_design_is_422(client: TestClient, change: dict) -> None:
    response = client.post("/api/experiments", json={**DESIGN, **change})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_one_sided_design_and_listing(client: TestClient) -> None:
    first, _ = create(client)
    second, _ = create(client, alternative="larger", sample_size=51, name="one-sided")
    listed = client.get("/api/experiments").json()
    assert [item["id"] for item in listed] == [second, first]
    assert listed[0]["alternative"] == "larger" and listed[0]["status"] == "running"
    assert all("token" not in item for item in listed)


# ---------------------------------------------------------------------------------------------- tokens


def test_tokens_open_only_their_own_experiment(client: TestClient) -> None:
    first, token = create(client)
    second, other_token = create(client, name="second")
    url = f"/api/experiments/{first}/decisions"
    row = {"uuid": "a", "value": 1}
    missing = client.post(url, json=row)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert client.post(url, json=row, headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert client.post(url, json=row, headers={"Authorization": "Bearer "}).status_code == 401
    assert client.post(url, json=row, headers=auth(token[:-1] + "x")).status_code == 403
    assert client.post(url, json=row, headers=auth(other_token)).status_code == 403
    assert client.post(f"/api/experiments/{first}/outcomes", headers=auth(other_token),
                       json={"uuid": "a", "arm": "new", "decision": 1, "revenue": 1.0}).status_code == 403  # fmt: skip
    assert client.post("/api/experiments/999/decisions", json=row, headers=auth(token)).status_code == 404
    assert client.get("/api/experiments/999").status_code == 404
    assert client.get(f"/api/experiments/{first}").json()["progress"]["decisions"] == 0
    assert client.post(url, json=row, headers=auth(token)).json() == {"accepted": 1, "duplicates": 0}
    assert client.post(f"/api/experiments/{second}/decisions", json=row, headers=auth(other_token)).status_code == 200


# ---------------------------------------------------------------------------------------------- ingestion


def test_decisions_single_list_and_duplicates(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment
    url = f"/api/experiments/{experiment_id}/decisions"
    assert client.post(url, json={"uuid": "x", "value": 1}, headers=auth(token)).json() == {
        "accepted": 1,
        "duplicates": 0,
    }
    batch = [{"uuid": "x", "value": 0}, {"uuid": "y", "value": 0}, {"uuid": "y", "value": 1}, {"uuid": "z", "value": 1}]
    assert client.post(url, json=batch, headers=auth(token)).json() == {"accepted": 2, "duplicates": 2}
    assert client.post(url, json=batch, headers=auth(token)).json() == {"accepted": 0, "duplicates": 4}
    assert client.post(url, json=[], headers=auth(token)).json() == {"accepted": 0, "duplicates": 0}
    with client.app.state.store.engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT uuid, value FROM decisions")).all())
    assert stored == {"x": 1, "y": 0, "z": 1}  # the first one wins
    progress = client.get(f"/api/experiments/{experiment_id}").json()["progress"]
    assert progress["decisions"] == 3 and progress["duplicate_decisions"] == 6


def test_outcomes_single_list_duplicates_first_wins(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment
    url = f"/api/experiments/{experiment_id}/outcomes"
    first = {"uuid": "u1", "arm": "new", "decision": 1, "revenue": 12.5}
    assert client.post(url, json=first, headers=auth(token)).json() == {"accepted": 1, "duplicates": 0}
    batch = [dict(first, revenue=99.0, arm="original"), {"uuid": "u2", "arm": "original", "decision": 0, "revenue": 0}]
    assert client.post(url, json=batch, headers=auth(token)).json() == {"accepted": 1, "duplicates": 1}
    records = client.app.state.store.outcomes(experiment_id)
    assert [(r.uuid, r.arm, r.decision, r.revenue) for r in records] == [
        ("u1", "new", 1, 12.5),
        ("u2", "original", 0, 0.0),
    ]
    assert records[0].received_at.tzinfo is not None
    progress = client.get(f"/api/experiments/{experiment_id}").json()["progress"]
    assert (progress["original"], progress["new"], progress["duplicate_outcomes"]) == (1, 1, 1)
    assert progress["required_per_arm"] == 64 and progress["complete"] is False


@pytest.mark.parametrize("field", ["revenue", "decision"])
@pytest.mark.parametrize("flag", [False, True])
def test_a_boolean_is_not_a_number(client: TestClient, experiment: tuple[int, str], field: str, flag: bool) -> None:
    experiment_id, token = experiment
    row = {"uuid": "u1", "arm": "new", "decision": 1, "revenue": 12.5, field: flag}
    response = client.post(f"/api/experiments/{experiment_id}/outcomes", json=row, headers=auth(token))
    assert response.status_code == 422, response.text
    assert ["body", "OutcomeIn", field] in [issue["loc"] for issue in response.json()["detail"]]
    assert client.app.state.store.outcomes(experiment_id) == []


def test_integral_decimals_are_integers(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment  # JSON Schema's integer includes 1.0; 1.5 is not one
    url = f"/api/experiments/{experiment_id}/decisions"
    assert client.post(url, json={"uuid": "a", "value": 1.0}, headers=auth(token)).json()["accepted"] == 1
    assert client.post(url, json={"uuid": "b", "value": 0.5}, headers=auth(token)).status_code == 422
    created = client.post("/api/experiments", json={**DESIGN, "sample_size": 64.0})
    assert created.status_code == 201 and client.get(f"/api/experiments/{created.json()['id']}").json()[
        "sample_size"] == 64  # fmt: skip


def test_integer_uuids_are_the_units_of_their_decimal_text(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment  # the shop's uuids are integers
    base = f"/api/experiments/{experiment_id}"
    decision = client.post(f"{base}/decisions", json={"uuid": 404180, "value": 1}, headers=auth(token))
    assert decision.json() == {"accepted": 1, "duplicates": 0}
    again = [{"uuid": "404180", "value": 0}, {"uuid": 404180.0, "value": 0}, {"uuid": 0, "value": 1}]
    assert client.post(f"{base}/decisions", json=again, headers=auth(token)).json() == {"accepted": 1, "duplicates": 2}
    outcome = {"uuid": 404180, "arm": "new", "decision": 1, "revenue": 3.5}
    assert client.post(f"{base}/outcomes", json=outcome, headers=auth(token)).json()["accepted"] == 1
    same = dict(outcome, uuid="404180", revenue=99.0)
    assert client.post(f"{base}/outcomes", json=same, headers=auth(token)).json() == {"accepted": 0, "duplicates": 1}
    big = dict(outcome, uuid=2**53 - 1)  # the largest integer every JSON reader takes exactly
    assert client.post(f"{base}/outcomes", json=big, headers=auth(token)).json()["accepted"] == 1
    with client.app.state.store.engine.connect() as connection:
        decisions = dict(connection.execute(text("SELECT uuid, value FROM decisions")).all())
        outcomes = dict(connection.execute(text("SELECT uuid, revenue FROM outcomes")).all())
    assert decisions == {"404180": 1, "0": 1}  # one canonical row per unit: the decimal string
    assert outcomes == {"404180": 3.5, str(2**53 - 1): 3.5}

    arms = client.post(f"{base}/assignments", json={"uuids": [404180, "404180", 404180.0, 7, "7"]}).json()["arms"]
    single = client.get(f"{base}/assignment/404180").json()
    assert arms[0] == arms[1] == arms[2] == single["arm"] and arms[3] == arms[4]
    assert single["uuid"] == "404180"
    for refused in (-1, True, 1.5, 2**53, None, [7]):
        response = client.post(f"{base}/assignments", json={"uuids": [refused]})
        assert response.status_code == 422, refused


def test_result_states_the_threshold_of_each_p_value(client: TestClient) -> None:
    experiment_id, token = create(client, alternative="larger", sample_size=51)
    outcomes = simulated_outcomes(51, true_effect=8.0, sd=10.0, seed=5)
    client.post(f"/api/experiments/{experiment_id}/outcomes", json=outcomes, headers=auth(token))
    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    expected = analyze(revenues(outcomes, "original"), revenues(outcomes, "new"), alpha=0.05, alternative="larger",
                       target_effect=5.0, labels=("original", "new"))  # fmt: skip
    assert result["alpha_threshold"] == 0.05 and result["target_threshold"] == expected.target_alpha == 0.05
    assert result["target_p_value"] == pytest.approx(expected.target_p_value)
    assert result["improves_by_target"] is (expected.target_p_value < 0.05)


def test_full_flow_and_restart_on_sqlite(db_url: str) -> None:
    run_api_flow(db_url)


def test_concurrent_duplicates_are_counted_once(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, _ = experiment
    answers = post_concurrently(client.app.state.store, experiment_id)
    assert sum(a.accepted for a in answers) == 2000 and sum(a.duplicates for a in answers) == 3 * 2000
    progress = client.get(f"/api/experiments/{experiment_id}").json()["progress"]
    assert progress["decisions"] == 2000 and progress["duplicate_decisions"] == 6000


def test_result_appears_when_both_arms_reach_the_sample_size(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment
    outcomes = simulated_outcomes(64, true_effect=8.0, sd=10.0, seed=3)
    new_only = [row for row in outcomes if row["arm"] == "new"]
    original = [row for row in outcomes if row["arm"] == "original"]
    url = f"/api/experiments/{experiment_id}/outcomes"
    client.post(url, json=new_only + original[:-1], headers=auth(token))
    assert client.get(f"/api/experiments/{experiment_id}").json()["result"] is None
    assert client.app.state.store.result(experiment_id) is None
    extra_new = simulated_outcomes(100, true_effect=8.0, sd=10.0, seed=4, prefix="late")[1::2]
    client.post(url, json=extra_new + original[-1:], headers=auth(token))
    done = client.get(f"/api/experiments/{experiment_id}").json()
    # the designed horizon: the first 64 outcomes of each arm; SRM on all counts (64 vs 164: a broken split)
    expected = analyze(
        revenues(original, "original"),
        revenues(new_only, "new"),
        alpha=0.05,
        target_effect=5.0,
        labels=("original", "new"),
    )
    assert_result(done, expected, srm_p_value=srm_test([64, 164], [0.5, 0.5]).p_value)
    result = done["result"]
    assert result["n_original"] == 64 and result["n_new"] == 64 and result["srm_flagged"] is True
    assert result["improves"] is True and result["ci"][0] < result["effect"] < result["ci"][1]
    assert result["p_value"] < 0.05 and result["effect"] > 0
    assert result["analysis"]["target_effect"] == 5.0 and result["analysis"]["assumptions"]
    assert done["progress"]["new"] == 164


def test_nothing_recorded_is_lost_on_restart(db_url: str) -> None:
    client = new_client(db_url)
    experiment_id, token = create(client)
    client.post(f"/api/experiments/{experiment_id}/decisions", json=[{"uuid": "a", "value": 1}], headers=auth(token))
    client.post(f"/api/experiments/{experiment_id}/outcomes", headers=auth(token),
                json={"uuid": "a", "arm": "new", "decision": 1, "revenue": 3.25})  # fmt: skip
    arm = client.get(f"/api/experiments/{experiment_id}/assignment/a").json()["arm"]
    close(client)
    restarted = new_client(db_url)
    assert restarted.get(f"/api/experiments/{experiment_id}/assignment/a").json()["arm"] == arm
    progress = restarted.get(f"/api/experiments/{experiment_id}").json()["progress"]
    assert progress["decisions"] == 1 and progress["new"] == 1
    assert restarted.app.state.store.outcomes(experiment_id)[0].revenue == 3.25
    assert restarted.post(f"/api/experiments/{experiment_id}/decisions", json={"uuid": "b", "value": 0},
                          headers=auth(token)).status_code == 200  # fmt: skip
    close(restarted)


def test_assignment_is_deterministic_and_balanced(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, _ = experiment
    other_id, _ = create(client, name="other")
    arms = [client.get(f"/api/experiments/{experiment_id}/assignment/unit-{i}").json()["arm"] for i in range(40)]
    again = [client.app.state.store.assignment(experiment_id, f"unit-{i}").arm for i in range(40)]
    elsewhere = [client.get(f"/api/experiments/{other_id}/assignment/unit-{i}").json()["arm"] for i in range(40)]
    assert arms == again and set(arms) == {"original", "new"}
    assert 8 <= arms.count("new") <= 32
    assert arms != elsewhere  # each experiment has its own salt
    assert client.get("/api/experiments/999/assignment/x").status_code == 404


# ---------------------------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("hostile", HOSTILE)
def test_text_fields_are_stored_verbatim_and_harmless(client: TestClient, hostile: str) -> None:
    experiment_id, token = create(client, owner=hostile[:100], name=hostile)
    unit = hostile[:128]
    assert client.post(f"/api/experiments/{experiment_id}/decisions", json={"uuid": unit, "value": 1},
                       headers=auth(token)).json() == {"accepted": 1, "duplicates": 0}  # fmt: skip
    assert client.post(f"/api/experiments/{experiment_id}/outcomes", headers=auth(token),
                       json={"uuid": unit, "arm": "new", "decision": 1, "revenue": 1.0}).status_code == 200  # fmt: skip
    response = client.get(f"/api/experiments/{experiment_id}")
    assert response.headers["content-type"] == "application/json"
    assert response.json()["owner"] == hostile[:100] and response.json()["name"] == hostile
    assert client.app.state.store.outcomes(experiment_id)[0].uuid == unit
    assignment = client.get(f"/api/experiments/{experiment_id}/assignment/{unit.replace('/', '%2F')}")
    assert assignment.status_code in (200, 404)  # a '/' can split the path; never a server error
    listed = client.get("/api/experiments").json()
    assert len(listed) == 1 and listed[0]["name"] == hostile
    with client.app.state.store.engine.connect() as connection:  # every table is still there, intact
        counts = [connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                  for table in ("experiments", "decisions", "outcomes")]  # fmt: skip
    assert counts == [1, 1, 1]


def test_oversized_bodies_are_413(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment
    url = f"/api/experiments/{experiment_id}/decisions"
    headers = {**auth(token), "content-type": "application/json"}
    huge = b'[{"uuid": "a", "value": 1}' + b" " * (8 * 1024 * 1024) + b"]"
    assert len(huge) > 8 * 1024 * 1024
    response = client.post(url, content=huge, headers=headers)
    assert response.status_code == 413 and "detail" in response.json()

    def chunks():
        yield huge[: len(huge) // 2]
        yield huge[len(huge) // 2 :]

    assert client.post(url, content=chunks(), headers=headers).status_code == 413  # streamed, no Content-Length
    too_many = b"[" + b",".join([b'{"uuid":"%d","value":0}' % i for i in range(200_001)]) + b"]"
    assert len(too_many) < 8 * 1024 * 1024
    response = client.post(url, content=too_many, headers=headers)
    assert response.status_code == 413 and "200,000" in response.json()["detail"]
    assert client.get(f"/api/experiments/{experiment_id}").json()["progress"]["decisions"] == 0


MALFORMED_DECISIONS = [
    b'{"uuid": "a"}',
    b'{"value": 1}',
    b'{"uuid": "a", "value": 2}',
    b'{"uuid": "a", "value": -1}',
    b'{"uuid": "a", "value": true}',
    b'{"uuid": "a", "value": "1"}',
    b'{"uuid": "a", "value": 0.5}',
    b'{"uuid": -1, "value": 1}',
    b'{"uuid": 1.5, "value": 1}',
    b'{"uuid": true, "value": 1}',
    b'{"uuid": 9007199254740992, "value": 1}',
    b'{"uuid": [1], "value": 1}',
    b'{"uuid": null, "value": 1}',
    b'{"uuid": "", "value": 1}',
    b'{"uuid": "' + b"x" * 129 + b'", "value": 1}',
    b'{"uuid": "a\\u0000b", "value": 1}',
    b'{"uuid": "a\\ud800", "value": 1}',
    b'[{"uuid": "ok", "value": 1}, {"uuid": "bad", "value": 3}]',
    b"[1, 2, 3]",
    b'"text"',
    b"null",
    b"",
    b"{not json",
    b"[" * 50_000 + b"]" * 50_000,
]
MALFORMED_OUTCOMES = [
    b'{"uuid": "a", "arm": "treatment", "decision": 1, "revenue": 1}',
    b'{"uuid": "a", "arm": "NEW", "decision": 1, "revenue": 1}',
    b'{"uuid": "a", "arm": "new", "decision": 2, "revenue": 1}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": NaN}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": Infinity}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": -Infinity}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": 1e400}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": "lots"}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": "12.5"}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": false}',
    b'{"uuid": "a", "arm": "new", "decision": 1, "revenue": true}',
    b'{"uuid": "a", "arm": "new", "decision": true, "revenue": 1}',
    b'{"uuid": "a", "arm": "new", "decision": 1}',
    b'{"uuid": "a", "arm": null, "decision": 1, "revenue": 1}',
    b'[{"uuid": "ok", "arm": "new", "decision": 1, "revenue": 1}, {"uuid": "bad", "arm": "x", "decision": 1}]',
    b'{"uuid": "a", "value": 1}',
]
MALFORMED_DESIGNS = [
    json.dumps({**DESIGN, "alpha": "five percent"}).encode(),
    json.dumps({**DESIGN, "owner": None}).encode(),
    *(json.dumps({**DESIGN, field: True}).encode() for field in ("alpha", "power", "effect", "sd", "sample_size")),
    json.dumps({**DESIGN, "sd": "10"}).encode(),
    json.dumps({**DESIGN, "sample_size": "64"}).encode(),
    json.dumps({key: value for key, value in DESIGN.items() if key != "effect"}).encode(),
    json.dumps({**DESIGN, "sample_size": 10**30}).encode(),
    json.dumps({**DESIGN, "name": "a\x00b"}).encode(),
    json.dumps(DESIGN).replace('"effect": 5.0', '"effect": NaN').encode(),
    json.dumps(DESIGN).replace('"sd": 10.0', '"sd": Infinity').encode(),
    b"[]",
    b"{",
]


def test_malformed_bodies_are_422_never_500(client: TestClient, experiment: tuple[int, str]) -> None:
    experiment_id, token = experiment
    headers = {**auth(token), "content-type": "application/json"}
    cases = [(f"/api/experiments/{experiment_id}/decisions", body) for body in MALFORMED_DECISIONS]
    cases += [(f"/api/experiments/{experiment_id}/outcomes", body) for body in MALFORMED_OUTCOMES]
    cases += [("/api/experiments", body) for body in MALFORMED_DESIGNS]
    for url, body in cases:
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 422, (url, body[:80], response.status_code, response.text[:300])
        assert "Traceback" not in response.text and response.json()["detail"]
    for path in ("/api/experiments/abc", "/api/experiments/0", f"/api/experiments/{10**20}",
                 f"/api/experiments/{experiment_id}/assignment/{'u' * 129}"):  # fmt: skip
        assert client.get(path).status_code == 422, path
    progress = client.get(f"/api/experiments/{experiment_id}").json()["progress"]
    assert progress["decisions"] == 0 and progress["original"] + progress["new"] == 0
    assert len(client.get("/api/experiments").json()) == 1


def test_database_errors_become_json_without_traceback(
    client: TestClient, experiment: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    experiment_id, token = experiment
    store = client.app.state.store
    for error, status in ((IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed")), 409),
                          (OperationalError("INSERT ...", {}, Exception("disk I/O error")), 500)):  # fmt: skip

        def fail(*_args, error=error):
            raise error

        monkeypatch.setattr(store, "add_decisions", fail)
        response = client.post(f"/api/experiments/{experiment_id}/decisions", json={"uuid": "a", "value": 1},
                               headers=auth(token))  # fmt: skip
        assert response.status_code == status
        assert "Traceback" not in response.text and "INSERT" not in response.text and response.json()["detail"]


# ---------------------------------------------------------------------------------------------- contract, CLI


def test_openapi_schema_and_health(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/experiments", "/api/experiments/{experiment_id}", "/api/experiments/{experiment_id}/decisions",
                 "/api/experiments/{experiment_id}/outcomes", "/api/experiments/{experiment_id}/assignment/{uuid}",
                 "/healthz"):  # fmt: skip
        assert path in paths, path
    components = schema["components"]["schemas"]
    assert {"ExperimentIn", "CreatedOut", "DecisionIn", "OutcomeIn", "IngestOut", "ExperimentOut", "Result"} <= set(
        components
    )
    assert components["OutcomeIn"]["properties"]["arm"]["enum"] == ["original", "new"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert client.get("/healthz").json() == {"status": "ok", "database": "sqlite"}


def _declared(schema: dict, path: str, method: str, status: int) -> str:
    """The component name of the body an operation declares for ``status``."""
    content = schema["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    return content["$ref"].rsplit("/", 1)[-1]


def test_openapi_declares_what_the_server_does(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    write = "/api/experiments/{experiment_id}/decisions"
    assert [_declared(schema, write, "post", code) for code in (401, 403, 404, 409, 413, 422)] == [
        "ErrorOut", "ErrorOut", "ErrorOut", "ErrorOut", "ErrorOut", "ValidationErrorOut"]  # fmt: skip
    assert "WWW-Authenticate" in schema["paths"][write]["post"]["responses"]["401"]["headers"]
    assert _declared(schema, "/api/experiments", "post", 422) == "RefusalOut"  # issues, or an incoherent design
    assert _declared(schema, "/api/design", "get", 422) == "ValidationErrorOut"
    assert "HTTPValidationError" not in components  # every 422 is declared with the body it really carries
    design = components["ExperimentIn"]
    assert design["properties"]["effect"]["not"] == {"const": 0} and design["allOf"]  # non-zero, signed by alternative
    assert design["properties"]["alpha"]["maximum"] == 0.5 and design["properties"]["power"]["exclusiveMinimum"] == 0.5
    uuid = components["DecisionIn"]["properties"]["uuid"]["oneOf"]
    assert [form["type"] for form in uuid] == ["string", "integer"] and uuid[1]["maximum"] == 2**53 - 1
    parameters = {p["name"]: p for p in schema["paths"]["/api/design"]["get"]["parameters"]}
    assert parameters["effect"]["required"] and parameters["sd"]["required"]  # the server needs both
    assert {"alpha_threshold", "target_p_value", "target_threshold"} <= set(components["Result"]["properties"])


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("OPTIONS", "/api/experiments", "GET, POST"), ("DELETE", "/api/experiments/1", "GET"),
     ("PUT", "/api/experiments/1/decisions", "POST"), ("GET", "/api/experiments/1/assignments", "POST"),
     ("PATCH", "/healthz", "GET"), ("PUT", "/api/design", "GET")],
)  # fmt: skip
def test_an_unsupported_method_is_405_listing_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize("body", [b"\xff\xfe{", b"{not json", b'{"uuids": [1, 2'])
def test_a_body_that_is_not_json_gets_the_declared_422(client: TestClient, experiment: tuple[int, str],
                                                       body: bytes) -> None:  # fmt: skip
    experiment_id, _ = experiment
    response = client.post(f"/api/experiments/{experiment_id}/assignments", content=body,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422
    (issue,) = response.json()["detail"]  # a ValidationErrorOut: [{loc, msg, type}]
    assert issue["loc"][0] == "body" and issue["type"] == "json_invalid" and issue["msg"]


@pytest.mark.parametrize(
    ("url", "driver"),
    [("sqlite:///x.db", "sqlite"), ("postgresql://u@h:5432/db", "postgresql+psycopg"),
     ("postgres://u:p@h/db", "postgresql+psycopg"), ("postgresql+psycopg://u@h/db", "postgresql+psycopg")],
)  # fmt: skip
def test_database_urls_map_to_the_drivers_used(url: str, driver: str) -> None:
    from nextbest.platform.db import normalize_url

    assert normalize_url(url).drivername == driver


def test_sqlite_file_is_migrated_and_in_wal_mode(client: TestClient) -> None:
    from nextbest.platform.db import current_revision

    engine = client.app.state.store.engine
    assert current_revision(engine) == "0003"
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_serve_refuses_bad_url_and_busy_port(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nextbest.cli.main import app
    from nextbest.errors import NextbestError

    runner = CliRunner()
    for url in ("mysql://u@h/db", "not a url", f"sqlite:///{tmp_path}/missing/dir/x.db"):
        result = runner.invoke(app, ["platform", "serve", "--db", url, "--port", "8"])
        assert isinstance(result.exception, NextbestError), (url, result.output)
        assert "\n" not in str(result.exception)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["platform", "serve", "--db", f"sqlite:///{tmp_path}/p.db", "--port", str(port)])
    assert isinstance(result.exception, NextbestError) and "already in use" in str(result.exception)

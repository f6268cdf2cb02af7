"""The platform's binary metric (a conversion): design, refusals, conversions, the two-proportion verdict, the
design endpoint, the pages and the migration of a database made before it. `run_binary_flow` and
`check_migration_from_0001` also run on PostgreSQL (test_platform_postgres.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.power import NormalIndPower

from nextbest.experiments import analyze_proportions, sample_size_binary
from test_platform_api import DESIGN, auth, close, create, new_client

BINARY = {"owner": "crm", "name": "first call pilot", "metric": "binary", "baseline": 0.2, "effect": 0.1,
          "alpha": 0.05, "power": 0.8, "alternative": "two-sided"}  # fmt: skip
#: Conversions per arm the flow posts (of the designed size per arm): 20% in the original arm, 31% in the new one.
RATES = {"original": 0.20, "new": 0.31}


def required(**design) -> int:
    """The per-arm size sample_size_binary gives for a BINARY design with ``design`` changed."""
    spec = {**BINARY, **design}
    return int(sample_size_binary(spec["baseline"], spec["effect"], spec["alpha"], spec["power"],
                                  spec["alternative"], relative=False))  # fmt: skip


def conversions(n: int, arm: str, prefix: str = "lead") -> list[dict]:
    """``n`` conversions of ``arm``, the first ``round(RATES[arm] n)`` converted, in a seeded random order."""
    converted = np.zeros(n, dtype=int)
    converted[: round(RATES[arm] * n)] = 1
    np.random.default_rng(len(arm)).shuffle(converted)
    return [{"uuid": f"{prefix}-{arm}-{i}", "arm": arm, "decision": int(arm == "new"), "converted": int(c)}
            for i, c in enumerate(converted)]  # fmt: skip


def run_binary_flow(db_url: str) -> None:
    """Create a binary experiment, post its conversions (with duplicates), read the two-proportion verdict, and
    check that it survives a restart; on ``db_url`` (SQLite file or PostgreSQL)."""
    client = new_client(db_url)
    n = required()
    created = client.post("/api/experiments", json={**BINARY, "sample_size": n})
    assert created.status_code == 201, created.text
    experiment_id, token = created.json()["id"], created.json()["token"]
    assert created.json()["required_sample_size"] == n
    url = f"/api/experiments/{experiment_id}/conversions"
    original, new = conversions(n, "original"), conversions(n, "new")
    assert client.post(url, json=original[: n // 2] + new[: n // 2], headers=auth(token)).json() == {
        "accepted": 2 * (n // 2), "duplicates": 0}  # fmt: skip
    assert client.get(f"/api/experiments/{experiment_id}").json()["result"] is None
    changed = [dict(row, converted=1 - row["converted"]) for row in original[:5]]  # duplicates: the first wins
    answer = client.post(url, json=original[n // 2:] + new[n // 2:] + changed, headers=auth(token)).json()
    assert answer == {"accepted": 2 * (n - n // 2), "duplicates": 5}
    experiment = client.get(f"/api/experiments/{experiment_id}").json()
    assert experiment["metric"] == "binary" and experiment["baseline"] == 0.2 and experiment["status"] == "complete"
    assert experiment["sd"] == pytest.approx(np.sqrt(0.2 * 0.8))
    x_c, x_t = round(RATES["original"] * n), round(RATES["new"] * n)
    result = experiment["result"]
    expected = analyze_proportions(x_c, n, x_t, n, alpha=0.05, target_effect=0.1, labels=("original", "new"))
    assert result["analysis"]["method"] == "two-proportion z-test"
    assert result["effect"] == pytest.approx(x_t / n - x_c / n) and result["verdict"] == expected.verdict
    statsmodels_test = sm_proportion.test_proportions_2indep(x_t, n, x_c, n, method="wald", compare="diff")
    low, high = sm_proportion.confint_proportions_2indep(x_t, n, x_c, n, method="wald", compare="diff", alpha=0.05)
    assert result["p_value"] == pytest.approx(statsmodels_test.pvalue, rel=1e-9)
    assert result["ci"] == pytest.approx([low, high], rel=1e-9)
    assert result["improves"] and result["p_value"] < 0.05 and result["target_threshold"] == 0.025
    assert result["analysis"]["mean_control"] == pytest.approx(x_c / n) and result["n_original"] == n
    close(client)
    restarted = new_client(db_url)  # what was recorded is still there, and still binary
    again = restarted.get(f"/api/experiments/{experiment_id}").json()
    assert again["metric"] == "binary" and again["result"]["p_value"] == result["p_value"]
    close(restarted)


def check_migration_from_0001(db_url: str) -> None:
    """A database made by revision 0001 with an experiment and an outcome: migrated to head, the experiment is
    continuous with no baseline, its outcome is intact, and binary experiments can be created next to it."""
    from nextbest.platform.db import current_revision, make_engine, migrate

    engine = make_engine(db_url)
    migrate(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO experiments (owner, name, alpha, power, effect, sd, sample_size, alternative, salt, "
            "token_hash, created_at, status, duplicate_decisions, duplicate_outcomes) VALUES ('ana', 'old', 0.05, "
            "0.8, 5.0, 10.0, 64, 'two-sided', 'salt', 'hash', CURRENT_TIMESTAMP, 'running', 0, 0)"))  # fmt: skip
        connection.execute(text("INSERT INTO outcomes (experiment_id, uuid, arm, decision, revenue, received_at) "
                                "VALUES (1, 'u1', 'new', 1, 12.5, CURRENT_TIMESTAMP)"))  # fmt: skip
    engine.dispose()
    client = new_client(db_url)  # create_app migrates to head
    assert current_revision(client.app.state.store.engine) == "0003"
    old = client.get("/api/experiments/1").json()
    assert old["metric"] == "continuous" and old["baseline"] is None and old["sd"] == 10.0
    assert old["progress"]["new"] == 1
    created = client.post("/api/experiments", json={**BINARY, "sample_size": required()})
    assert created.status_code == 201 and created.json()["id"] == 2
    assert [item["metric"] for item in client.get("/api/experiments").json()] == ["binary", "continuous"]
    close(client)


@pytest.fixture()
def client(tmp_path: Path):
    client = new_client(f"sqlite:///{tmp_path / 'platform.db'}")
    yield client
    close(client)


def test_binary_flow_on_sqlite(tmp_path: Path) -> None:
    run_binary_flow(f"sqlite:///{tmp_path / 'platform.db'}")


def test_migration_from_0001_on_sqlite(tmp_path: Path) -> None:
    check_migration_from_0001(f"sqlite:///{tmp_path / 'old.db'}")


def test_the_design_needs_the_size_of_two_proportions(client) -> None:
    """The size the server requires is statsmodels' NormalIndPower on Cohen's h, rounded up; one unit less is
    refused with the way out; a treatment rate outside (0, 1) is refused in one line."""
    n = required()
    h = sm_proportion.proportion_effectsize(0.3, 0.2)
    assert n == int(np.ceil(NormalIndPower().solve_power(h, alpha=0.05, power=0.8, ratio=1.0)))
    short = client.post("/api/experiments", json={**BINARY, "sample_size": n - 1})
    assert short.status_code == 422 and f"raise it to {n:,} per arm" in short.json()["detail"], short.text
    outside = (({"baseline": 0.95, "effect": 0.1}, "treatment rate of 1.05, outside (0, 1)"),
               ({"baseline": 0.05, "effect": -0.1}, "treatment rate of -0.05, outside (0, 1)"))
    for change, message in outside:
        refused = client.post("/api/experiments", json={**BINARY, **change, "sample_size": 100})
        assert refused.status_code == 422 and message in refused.json()["detail"], refused.text
    assert client.get("/api/experiments").json() == []


@pytest.mark.parametrize(
    "change",
    [{"baseline": 0}, {"baseline": 1}, {"baseline": "0.2"}, {"effect": 0}, {"effect": 1.0},
     {"effect": -0.1, "alternative": "larger"}, {"metric": "binomial"}, {"metric": None}, {"baseline": None}],
)  # fmt: skip
def test_a_binary_design_off_the_schema_is_422_with_the_issues(client, change: dict) -> None:
    body = {key: value for key, value in {**BINARY, "sample_size": 400, **change}.items() if value is not None}
    response = client.post("/api/experiments", json=body)
    assert response.status_code == 422, response.text
    issues = response.json()["detail"]
    assert isinstance(issues, list) and issues and all({"loc", "msg", "type"} <= set(issue) for issue in issues)


def test_outcomes_of_the_other_metric_are_409_and_nothing_is_recorded(client) -> None:
    binary, binary_token = create(client, **BINARY, sample_size=required())
    continuous, continuous_token = create(client)
    revenue = {"uuid": "a", "arm": "new", "decision": 1, "revenue": 3.5}
    converted = {"uuid": "a", "arm": "new", "decision": 1, "converted": 1}
    refused = client.post(f"/api/experiments/{binary}/outcomes", json=revenue, headers=auth(binary_token))
    assert refused.status_code == 409 and f"/api/experiments/{binary}/conversions" in refused.json()["detail"]
    refused = client.post(f"/api/experiments/{continuous}/conversions", json=[converted],
                          headers=auth(continuous_token))  # fmt: skip
    assert refused.status_code == 409 and f"/api/experiments/{continuous}/outcomes" in refused.json()["detail"]
    for experiment_id in (binary, continuous):
        assert client.get(f"/api/experiments/{experiment_id}").json()["progress"]["new"] == 0
    assert client.post(f"/api/experiments/{continuous}/outcomes", json=revenue,
                       headers=auth(continuous_token)).json() == {"accepted": 1, "duplicates": 0}  # fmt: skip
    url = f"/api/experiments/{binary}/conversions"
    assert client.post(url, json=converted, headers=auth(continuous_token)).status_code == 403
    assert client.post(url, json=dict(converted, converted=2), headers=auth(binary_token)).status_code == 422
    assert client.post(url, json=dict(converted, converted=True), headers=auth(binary_token)).status_code == 422
    assert client.post(url, json=converted).status_code == 401
    assert client.post("/api/experiments/999/conversions", json=converted,
                       headers=auth(binary_token)).status_code == 404  # fmt: skip


def test_the_binary_design_endpoint(client) -> None:
    n = required()
    answer = client.get("/api/design/binary", params={"baseline": 0.2, "effect": 0.1}).json()
    assert answer["sample_size"] == n and answer["coherent"] and answer["treatment_rate"] == pytest.approx(0.3)
    assert answer["total"] == 2 * n and answer["achieved_power"] >= 0.8
    short = client.get("/api/design/binary", params={"baseline": 0.2, "effect": 0.1, "sample_size": n - 1}).json()
    assert not short["coherent"] and short["sample_size"] == n and f"raise it to {n:,}" in short["message"]
    assert 0.1 < short["minimum_detectable_effect"] < 0.11  # the difference n - 1 per arm can detect
    impossible = client.get("/api/design/binary", params={"baseline": 0.95, "effect": 0.1}).json()
    assert not impossible["coherent"] and impossible["treatment_rate"] is None and "outside (0, 1)" in \
        impossible["message"]  # fmt: skip
    for params in ({"baseline": 0.2}, {"baseline": 1.5, "effect": 0.1}, {"baseline": 0.2, "effect": 0}):
        response = client.get("/api/design/binary", params=params)
        assert response.status_code == 422 and isinstance(response.json()["detail"], list), response.text
    continuous = client.get("/api/design", params={"effect": 5, "sd": 10}).json()  # unchanged
    assert continuous["sample_size"] == 64 and "baseline" not in continuous


def test_the_schema_declares_the_binary_metric(client) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    body = schema["paths"]["/api/experiments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert [form["$ref"].rsplit("/", 1)[-1] for form in body["oneOf"]] == [
        "ExperimentIn", "BinaryExperimentIn", "RatioExperimentIn"]  # fmt: skip
    binary = components["BinaryExperimentIn"]
    assert binary["properties"]["metric"]["const"] == "binary" and {"baseline", "metric"} <= set(binary["required"])
    assert binary["properties"]["baseline"]["exclusiveMinimum"] == 0 and binary["allOf"]
    assert components["ExperimentIn"]["properties"]["metric"]["const"] == "continuous"
    assert "metric" not in components["ExperimentIn"].get("required", [])  # a design without metric is continuous
    write = schema["paths"]["/api/experiments/{experiment_id}/conversions"]["post"]
    assert {"401", "403", "404", "409", "413", "422"} <= set(write["responses"])
    assert components["ConversionIn"]["properties"]["converted"]["maximum"] == 1
    assert "/api/design/binary" in schema["paths"]


def test_a_continuous_design_is_created_as_before(client) -> None:
    """No metric, or metric "continuous": the same experiment, with metric continuous and no baseline."""
    first, _ = create(client)
    second, _ = create(client, metric="continuous", name="explicit")
    for experiment_id in (first, second):
        experiment = client.get(f"/api/experiments/{experiment_id}").json()
        assert experiment["metric"] == "continuous" and experiment["baseline"] is None and experiment["sd"] == 10.0
    assert client.post("/api/experiments", json={**DESIGN, "sample_size": 20}).json()["detail"].startswith(
        "sample_size 20 per arm gives power")  # fmt: skip


def test_the_pages_of_a_binary_experiment(client) -> None:
    n = required()
    experiment_id, token = create(client, **BINARY, sample_size=n)
    empty = client.get(f"/experiments/{experiment_id}").text
    assert f"/api/experiments/{experiment_id}/conversions" in empty and "Baseline rate" in empty
    assert "Std. deviation" not in empty and '"converted": 1' in empty
    rows = conversions(n, "original") + conversions(n, "new")
    client.post(f"/api/experiments/{experiment_id}/conversions", json=rows, headers=auth(token))
    page = client.get(f"/experiments/{experiment_id}").text
    x_c, x_t = round(RATES["original"] * n), round(RATES["new"] * n)
    assert f"{x_c:,} of {n:,}" in page and f"{x_t:,} of {n:,}" in page and "Two-proportion z-test" in page
    assert 'id="plot-cumulative"' in page and 'id="plot-distribution"' not in page
    assert "in conversion rate" in page and "(achieved 0.8" in page
    assert "conversion, baseline 0.2" in client.get("/").text

"""The platform's experiment statistics beyond one metric (TestClient on SQLite files): the Bayesian posterior,
secondary metrics with their correction, guardrails and the recommendation, ratio metrics (delta method) and
CUPED; the 409s of rows that lack or carry the wrong fields, the 422s of bad metric specs, the pages, and the
migration of a database made before them. `run_metrics_flow` and `check_migration_from_0002` also run on
PostgreSQL (test_platform_postgres.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from nextbest.experiments import (
    Guardrail,
    MetricSamples,
    analyze_experiment,
    analyze_ratio,
    bayes_normal,
    bayes_proportions,
)
from nextbest.platform.store import PRIMARY_NAMES, finite_or_none
from test_platform_api import DESIGN, auth, close, create, new_client
from test_platform_binary import BINARY, conversions, required

RATIO = {"owner": "ana", "name": "revenue per session", "metric": "ratio", "effect": 2.0, "sd": 4.0, "alpha": 0.05,
         "power": 0.8, "sample_size": 64, "alternative": "two-sided"}  # fmt: skip
SECONDARY = [{"name": "sessions"}, {"name": "basket", "kind": "ratio", "denominator": "sessions"}]
GUARDRAILS = [{"name": "bounced", "kind": "binary", "harm": "increase", "max_harm": 0.05}]
#: A continuous design with every option: CUPED, the posterior, two secondary metrics (one a ratio) and a guardrail.
FULL = {**DESIGN, "cuped": True, "bayesian": True, "secondary": SECONDARY, "guardrails": GUARDRAILS}
LABELS = ("original", "new")


# ---------------------------------------------------------------------------------------------- helpers


def unit_rows(n: int, seed: int = 3, *, shift: float = 6.0, bounce: tuple[float, float] = (0.2, 0.2),
              covariate: bool = True, values: bool = True, prefix: str = "u") -> list[dict[str, Any]]:  # fmt: skip
    """``n`` outcomes per arm, interleaved: revenue = pre-period value (N(50, 10), the covariate) + N(0, 4), plus
    ``shift`` in the new arm; values: sessions (1 + Poisson(2)), basket (revenue from them) and bounced (0/1 at the
    arm's rate in ``bounce``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for arm, rate in zip(LABELS, bounce, strict=True):
            pre = float(rng.normal(50.0, 10.0))
            row: dict[str, Any] = {"uuid": f"{prefix}-{arm}-{i}", "arm": arm, "decision": int(arm == "new"),
                                   "revenue": pre + float(rng.normal(0.0, 4.0)) + shift * (arm == "new")}  # fmt: skip
            if covariate:
                row["covariate"] = pre
            if values:
                sessions = 1 + int(rng.poisson(2.0))
                row["values"] = {"sessions": sessions, "basket": sessions * float(rng.normal(10.0, 2.0)),
                                 "bounced": int(rng.random() < rate)}  # fmt: skip
            rows.append(row)
    return rows


def ratio_rows(n: int, seed: int = 5, lift: float = 2.0) -> list[dict[str, Any]]:
    """``n`` outcomes per arm of a ratio experiment: sessions 1 + Poisson(2), revenue ≈ sessions × (10 + lift in
    the new arm) with noise; values hold bounced (0/1) for a guardrail."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for arm in LABELS:
            sessions = 1 + int(rng.poisson(2.0))
            per_session = 10.0 + lift * (arm == "new") + float(rng.normal(0.0, 3.0))
            rows.append({"uuid": f"r-{arm}-{i}", "arm": arm, "decision": int(arm == "new"),
                         "revenue": sessions * per_session, "denominator": sessions,
                         "values": {"bounced": int(rng.random() < 0.3)}})  # fmt: skip
    return rows


def column(rows: list[dict], arm: str, key: str, n: int | None = None) -> np.ndarray:
    """``row[key]`` (or ``row["values"][key]``) of the first ``n`` rows of ``arm``, as floats."""
    picked = [row for row in rows if row["arm"] == arm][:n]
    return np.array([row[key] if key in row else row["values"][key] for row in picked], dtype=float)


def samples(rows: list[dict], name: str, key: str, n: int, kind: str, denominator: str | None = None,
            covariate: bool = False) -> MetricSamples:  # fmt: skip
    """The MetricSamples the platform should build from ``rows`` for metric ``name`` (values under ``key``)."""
    extra: dict[str, Any] = {}
    if denominator:
        extra = {"denominator_control": column(rows, "original", denominator, n),
                 "denominator_treatment": column(rows, "new", denominator, n)}  # fmt: skip
    if covariate:
        extra = {"covariate_control": column(rows, "original", "covariate", n),
                 "covariate_treatment": column(rows, "new", "covariate", n)}  # fmt: skip
    return MetricSamples(name, column(rows, "original", key, n), column(rows, "new", key, n), kind=kind, **extra)


def expected_full(rows: list[dict], n: int, correction: str = "holm", bayesian: bool = True, target: float = 5.0):
    """analyze_experiment run directly on FULL's arrays (the first ``n`` rows per arm)."""
    primary = samples(rows, PRIMARY_NAMES["continuous"], "revenue", n, "continuous", covariate=True)
    secondary = [samples(rows, "sessions", "sessions", n, "continuous"),
                 samples(rows, "basket", "basket", n, "ratio", denominator="sessions")]  # fmt: skip
    guardrails = [(samples(rows, "bounced", "bounced", n, "binary"), Guardrail("increase", 0.05))]
    return analyze_experiment(primary, secondary, guardrails, alpha=0.05, alternative="two-sided", labels=LABELS,
                              target_effect=target, correction=correction, bayesian=bayesian)  # fmt: skip


def entries(analysis) -> list[dict[str, Any]]:
    """The ``metrics`` of a Result for ``analysis`` (nothing left out)."""
    return finite_or_none([m.to_dict() for m in (*analysis.secondary, *analysis.guardrails)])


def post(client, experiment_id: int, token: str, rows: Any, path: str = "outcomes"):
    return client.post(f"/api/experiments/{experiment_id}/{path}", json=rows, headers=auth(token))


def recorded(client, experiment_id: int) -> int:
    progress = client.get(f"/api/experiments/{experiment_id}").json()["progress"]
    return progress["original"] + progress["new"]


def run_metrics_flow(db_url: str) -> None:
    """Create FULL, post its outcomes in two requests (a few more than designed), and check that the result is
    analyze_experiment's on the first ``sample_size`` per arm, stored values included; again after a restart."""
    client = new_client(db_url)
    experiment_id, token = create(client, **FULL)
    rows = unit_rows(70)
    assert post(client, experiment_id, token, rows[:60]).json() == {"accepted": 60, "duplicates": 0}
    assert post(client, experiment_id, token, rows[60:]).json() == {"accepted": 80, "duplicates": 0}
    experiment = client.get(f"/api/experiments/{experiment_id}").json()
    assert experiment["status"] == "complete" and experiment["cuped"] and experiment["bayesian"]
    assert experiment["secondary"] == [{"name": "sessions", "kind": "continuous", "denominator": None},
                                       {"name": "basket", "kind": "ratio", "denominator": "sessions"}]  # fmt: skip
    assert experiment["guardrails"] == [dict(GUARDRAILS[0], denominator=None)]
    expected = expected_full(rows, 64)
    result = experiment["result"]
    assert result["analysis"] == finite_or_none(expected.primary.analysis.to_dict())
    main = expected.primary.analysis
    assert result["effect"] == main.effect and result["verdict"] == main.verdict and result["ci"] == list(main.ci)
    assert result["bayesian"] == finite_or_none(expected.primary.bayesian.to_dict())
    assert result["metrics"] == entries(expected)
    assert (result["recommendation"], result["summary"]) == (expected.recommendation, expected.summary)
    records = client.app.state.store.outcomes(experiment_id, limit=1)
    assert records[0].covariate == rows[0]["covariate"] and records[0].values == rows[0]["values"]
    close(client)
    restarted = new_client(db_url)
    assert restarted.get(f"/api/experiments/{experiment_id}").json()["result"] == result
    close(restarted)


def check_migration_from_0002(db_url: str) -> None:
    """A database made by revision 0002 with a binary experiment and a conversion: migrated to head, the experiment
    has no options (bayesian and cuped false, correction holm, no metrics), its outcome has no covariate,
    denominator or values, and an experiment with every option can be created and fed next to it."""
    from nextbest.platform.db import current_revision, make_engine, migrate

    engine = make_engine(db_url)
    migrate(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO experiments (owner, name, metric, baseline, alpha, power, effect, sd, sample_size, "
            "alternative, salt, token_hash, created_at, status, duplicate_decisions, duplicate_outcomes) VALUES "
            "('crm', 'old', 'binary', 0.2, 0.05, 0.8, 0.1, 0.4, 300, 'two-sided', 'salt', 'hash', "
            "CURRENT_TIMESTAMP, 'running', 0, 0)"))  # fmt: skip
        connection.execute(text("INSERT INTO outcomes (experiment_id, uuid, arm, decision, revenue, received_at) "
                                "VALUES (1, 'lead', 'new', 1, 1.0, CURRENT_TIMESTAMP)"))  # fmt: skip
    engine.dispose()
    client = new_client(db_url)  # create_app migrates to head
    assert current_revision(client.app.state.store.engine) == "0003"
    old = client.get("/api/experiments/1").json()
    assert (old["metric"], old["bayesian"], old["cuped"], old["correction"]) == ("binary", False, False, "holm")
    assert old["secondary"] == [] and old["guardrails"] == [] and old["progress"]["new"] == 1
    (record,) = client.app.state.store.outcomes(1)
    assert (record.revenue, record.covariate, record.denominator, record.values) == (1.0, None, None, None)
    experiment_id, token = create(client, **FULL)
    assert experiment_id == 2 and post(client, 2, token, unit_rows(2)).json()["accepted"] == 4
    with client.app.state.store.engine.connect() as connection:
        stored = connection.execute(text("SELECT metrics FROM experiments WHERE id = 2")).scalar_one()
        values = connection.execute(text('SELECT "values" FROM outcomes WHERE experiment_id = 2')).scalars().all()
    stored = json.loads(stored) if isinstance(stored, str) else stored  # SQLite hands JSON back as text
    assert [spec["role"] for spec in stored] == ["secondary", "secondary", "guardrail"]
    assert all({"sessions", "basket", "bounced"} == set(json.loads(v) if isinstance(v, str) else v) for v in values)
    close(client)


@pytest.fixture()
def client(tmp_path: Path):
    client = new_client(f"sqlite:///{tmp_path / 'platform.db'}")
    yield client
    close(client)


# ---------------------------------------------------------------------------------------------- creation


def test_metrics_flow_on_sqlite(tmp_path: Path) -> None:
    run_metrics_flow(f"sqlite:///{tmp_path / 'platform.db'}")


def test_migration_from_0002_on_sqlite(tmp_path: Path) -> None:
    check_migration_from_0002(f"sqlite:///{tmp_path / 'old.db'}")


@pytest.mark.parametrize(
    "design",
    [FULL,
     {**DESIGN, "correction": "bh", "secondary": SECONDARY},
     {**BINARY, "sample_size": required(), "bayesian": True, "secondary": [{"name": "calls"}],
      "guardrails": [{"name": "unsubscribed", "kind": "binary", "harm": "increase"}]},
     {**RATIO, "bayesian": True, "correction": "none", "guardrails": GUARDRAILS},
     RATIO],
    ids=["continuous-all", "continuous-bh", "binary", "ratio-options", "ratio"],
)  # fmt: skip
def test_each_kind_is_created_with_its_options(client, design: dict) -> None:
    experiment_id, _ = create(client, **design)
    shown = client.get(f"/api/experiments/{experiment_id}").json()
    assert shown["metric"] == design.get("metric", "continuous")
    for key, default in (("bayesian", False), ("cuped", False), ("correction", "holm")):
        assert shown[key] == design.get(key, default), key
    assert [spec["name"] for spec in shown["secondary"]] == [spec["name"] for spec in design.get("secondary", [])]
    assert [(g["name"], g["harm"], g["max_harm"]) for g in shown["guardrails"]] == [
        (g["name"], g["harm"], g.get("max_harm", 0.0)) for g in design.get("guardrails", [])]  # fmt: skip
    assert (shown["baseline"] is None) == (design.get("metric") != "binary")
    listed = client.get("/api/experiments").json()
    assert listed[0]["id"] == experiment_id and listed[0]["guardrails"] == shown["guardrails"]


@pytest.mark.parametrize(
    ("change", "words"),
    [({"secondary": [{"name": "x", "kind": "ratio"}]}, "name its denominator"),
     ({"secondary": [{"name": "x", "denominator": "y"}]}, "only a ratio has a denominator"),
     ({"secondary": [{"name": "x", "kind": "ratio", "denominator": "x"}]}, "another value than its numerator"),
     ({"secondary": [{"name": "x"}], "guardrails": [{"name": "x", "harm": "increase"}]}, "named once; repeated: x"),
     ({"secondary": [{"name": "x"}, {"name": "x"}]}, "repeated: x"),
     ({"guardrails": [{"name": "x", "harm": "increase", "max_harm": -0.1}]}, "greater than or equal to 0"),
     ({"guardrails": [{"name": "x"}]}, "Field required"),
     ({"guardrails": [{"name": "x", "harm": "up"}]}, "'increase' or 'decrease'"),
     ({"secondary": [{"name": "x", "harm": "increase"}]}, "Extra inputs are not permitted"),
     ({"secondary": [{"name": "1x"}]}, "should match pattern"),
     ({"secondary": [{"name": "a b"}]}, "should match pattern"),
     ({"secondary": [{"name": "x" * 65}]}, "at most 64"),
     ({"secondary": [{"name": f"m{i}"} for i in range(21)]}, "at most 20"),
     ({"secondary": [{"name": "x", "kind": "count"}]}, "'continuous', 'binary' or 'ratio'"),
     ({"correction": "bonferroni"}, "'holm', 'bh' or 'none'"),
     ({"bayesian": "yes"}, "valid boolean"),
     ({"bayesian": 1}, "valid boolean"),
     ({"cuped": 1}, "valid boolean"),
     ({**BINARY, "sample_size": 300, "cuped": True}, "CUPED applies to the continuous metric only"),
     ({**RATIO, "cuped": True}, "CUPED applies to the continuous metric only"),
     ({**RATIO, "sd": 0}, "greater than 0")],
)  # fmt: skip
def test_bad_metric_specs_are_422_and_nothing_is_created(client, change: dict, words: str) -> None:
    response = client.post("/api/experiments", json={**DESIGN, **change})
    assert response.status_code == 422, response.text
    issues = response.json()["detail"]
    assert isinstance(issues, list) and any(words in issue["msg"] for issue in issues), issues
    assert client.get("/api/experiments").json() == []


def test_a_ratio_design_is_checked_as_a_continuous_one(client) -> None:
    short = client.post("/api/experiments", json={**RATIO, "sample_size": 30})
    assert short.status_code == 422 and "raise it to 64" in short.json()["detail"]
    assert client.post("/api/experiments", json=RATIO).json()["required_sample_size"] == 64


# ---------------------------------------------------------------------------------------------- refusals (409)


def test_rows_off_the_experiments_rules_are_409_and_nothing_is_recorded(client) -> None:
    """Each request is a valid row then a bad one: refused whole, naming the bad row and its field."""
    full, full_token = create(client, **FULL)
    plain, plain_token = create(client, name="plain")
    ratio, ratio_token = create(client, **{**RATIO, "secondary": SECONDARY, "guardrails": GUARDRAILS})
    good = unit_rows(2)
    values = good[1]["values"]
    cases = [
        (full, full_token, dict(good[1], covariate=None), "row 1: covariate is missing"),
        (full, full_token, without(good[1], "values"), "row 1: values.sessions is missing"),
        (full, full_token, dict(good[1], values={"sessions": 2, "basket": 3.0}), "row 1: values.bounced is missing"),
        (full, full_token, dict(good[1], values={**values, "sesions": 2}), "row 1: values.sesions is not expected"),
        (full, full_token, dict(good[1], values={**values, "bounced": 0.5}), "row 1: values.bounced must be 0 or 1"),
        (full, full_token, dict(good[1], values={**values, "sessions": -1}), "row 1: values.sessions must be >= 0"),
        (full, full_token, dict(good[1], denominator=2), "row 1: denominator is not expected"),
        (plain, plain_token, dict(good[1], values={}), "row 1: covariate is not expected"),
        (plain, plain_token, without(good[1], "covariate"), "row 1: values.sessions is not expected"),
        (ratio, ratio_token, without(good[1], "covariate"), "row 1: denominator is missing"),
        (ratio, ratio_token, dict(good[1], denominator=2), "row 1: covariate is not expected"),
    ]  # fmt: skip
    fit = {full: good[0], plain: without(good[0], "covariate", "values"),
           ratio: {**without(good[0], "covariate"), "denominator": 2}}  # fmt: skip
    for experiment_id, token, bad, words in cases:
        response = post(client, experiment_id, token, [fit[experiment_id], bad])
        assert response.status_code == 409, (words, response.text)
        detail = response.json()["detail"]
        assert words in detail and "nothing of this request was recorded" in detail, (words, detail)
        assert recorded(client, experiment_id) == 0
    for experiment_id, token in ((full, full_token), (plain, plain_token), (ratio, ratio_token)):
        assert post(client, experiment_id, token, fit[experiment_id]).json() == {"accepted": 1, "duplicates": 0}
    assert post(client, full, full_token, dict(good[1], revenue=1.0)).status_code == 200


def without(row: dict, *keys: str) -> dict:
    """``row`` without ``keys``."""
    return {key: value for key, value in row.items() if key not in keys}


def test_conversions_carry_their_values_too(client) -> None:
    design = {**BINARY, "sample_size": required(), "guardrails": [{"name": "unsubscribed", "kind": "binary",
                                                                   "harm": "increase"}]}  # fmt: skip
    experiment_id, token = create(client, **design)
    row = {"uuid": "lead-1", "arm": "new", "decision": 1, "converted": 1}
    cases = ((row, "values.unsubscribed is missing"),
             (dict(row, values={"unsubscribed": 2}), "values.unsubscribed must be 0 or 1"),
             (dict(row, values={"unsubscribed": 0, "other": 1}), "values.other is not expected"))  # fmt: skip
    for body, words in cases:
        refused = post(client, experiment_id, token, body, "conversions")
        assert refused.status_code == 409 and words in refused.json()["detail"], refused.text
    assert recorded(client, experiment_id) == 0
    ok = post(client, experiment_id, token, dict(row, values={"unsubscribed": 0}), "conversions")
    assert ok.json() == {"accepted": 1, "duplicates": 0}


@pytest.mark.parametrize(
    "values",
    [{"x": "1"}, {"x": True}, {"x": None}, {"1x": 1}, {"": 1}, {"x" * 65: 1}, {f"m{i}": 1 for i in range(41)},
     {"x": 1e13}],
)  # fmt: skip
def test_values_off_the_schema_are_422(client, values: dict) -> None:
    experiment_id, token = create(client)
    response = post(client, experiment_id, token, {"uuid": "a", "arm": "new", "decision": 1, "revenue": 1.0,
                                                   "values": values})  # fmt: skip
    assert response.status_code == 422, response.text
    for body in ({"uuid": "a", "arm": "new", "decision": 1, "revenue": 1.0, "denominator": -1},
                 {"uuid": "a", "arm": "new", "decision": 1, "revenue": 1.0, "covariate": "5"}):  # fmt: skip
        assert post(client, experiment_id, token, body).status_code == 422


# ---------------------------------------------------------------------------------------------- the result


def test_the_result_is_analyze_experiment_of_the_same_arrays(client) -> None:
    """CUPED on a correlated covariate reduces the variance; the posterior, the corrected secondary metrics and the
    guardrail are analyze_experiment's, and only the first sample_size outcomes per arm count."""
    experiment_id, token = create(client, **{**FULL, "correction": "bh"})
    rows = unit_rows(80, seed=11)
    assert post(client, experiment_id, token, rows).json()["accepted"] == 160
    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    expected = expected_full(rows, 64, correction="bh")
    assert result["analysis"]["method"] == "welch+cuped" and result["analysis"]["variance_reduction"] > 0.5
    assert result["analysis"] == finite_or_none(expected.primary.analysis.to_dict())
    assert result["ci"] == list(expected.primary.analysis.ci) and result["p_value"] == expected.primary.analysis.p_value
    assert result["metrics"] == entries(expected) and result["correction"] == "bh"
    assert [m["p_value_adjusted"] for m in result["metrics"][:2]] == [m.p_value_adjusted for m in expected.secondary]
    assert result["bayesian"]["model"] == "normal"
    posterior = bayes_normal(expected.primary.analysis.effect, expected.primary.analysis.standard_error)
    assert result["bayesian"]["chance_to_beat_control"] == pytest.approx(posterior.chance_to_beat_control)
    assert result["recommendation"] == "ship" and result["summary"] == expected.summary
    assert result["metrics"][2]["guardrail"] in ("passes", "inconclusive")


def test_a_failing_guardrail_means_do_not_ship(client) -> None:
    experiment_id, token = create(client, **FULL)
    rows = unit_rows(64, seed=4, bounce=(0.1, 0.6))
    post(client, experiment_id, token, rows)
    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    assert result["improves"] and result["metrics"][2]["guardrail"] == "fails"
    assert result["recommendation"] == "do not ship" and "Guardrail(s) failed: bounced" in result["summary"]
    assert result["recommendation"] == expected_full(rows, 64).recommendation


def test_the_posterior_is_there_only_when_asked_for(client) -> None:
    asked, asked_token = create(client, **{**BINARY, "sample_size": required(), "bayesian": True})
    plain, plain_token = create(client, **{**FULL, "bayesian": False})
    n = required()
    post(client, asked, asked_token, conversions(n, "original") + conversions(n, "new"), "conversions")
    post(client, plain, plain_token, unit_rows(64))
    binary = client.get(f"/api/experiments/{asked}").json()["result"]
    x_c, x_t = (int(round(rate * n)) for rate in (0.20, 0.31))
    expected = bayes_proportions(x_c, n, x_t, n, 0.05)
    assert binary["bayesian"] == finite_or_none(expected.to_dict()) and binary["bayesian"]["model"] == "beta-binomial"
    assert binary["metrics"] == [] and binary["recommendation"] == "ship"
    continuous = client.get(f"/api/experiments/{plain}").json()["result"]
    assert continuous["bayesian"] is None and all(m["bayesian"] is None for m in continuous["metrics"])
    assert 'id="bayesian"' in client.get(f"/experiments/{asked}").text
    assert 'id="bayesian"' not in client.get(f"/experiments/{plain}").text


def test_a_ratio_experiment_is_analyzed_by_the_delta_method(client) -> None:
    experiment_id, token = create(client, **{**RATIO, "bayesian": True, "guardrails": [
        {"name": "bounced", "kind": "binary", "harm": "increase", "max_harm": 0.35}]})  # fmt: skip
    rows = ratio_rows(64)
    assert post(client, experiment_id, token, rows).json()["accepted"] == 128
    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    expected = analyze_ratio(column(rows, "original", "revenue"), column(rows, "original", "denominator"),
                             column(rows, "new", "revenue"), column(rows, "new", "denominator"), target_effect=2.0,
                             labels=LABELS)  # fmt: skip
    assert result["analysis"] == finite_or_none(expected.to_dict())
    assert result["analysis"]["method"] == "delta method (ratio of means)"
    assert result["bayesian"] == finite_or_none(bayes_normal(expected.effect, expected.standard_error).to_dict())
    assert result["metrics"][0]["name"] == "bounced" and result["metrics"][0]["guardrail"] == "passes"
    page = client.get(f"/experiments/{experiment_id}").text
    assert "Delta method (ratio of means)" in page and 'id="plot-cumulative"' in page
    assert 'alt="Difference of ratios (new − original)' in page and "(the ratio's numerator)" in page


def test_a_metric_that_cannot_be_analyzed_is_left_out_and_withholds_ship(client) -> None:
    """A guardrail without variation (nobody bounced) cannot be tested: the rest is analyzed, the table says why,
    and the recommendation is no decision rather than ship."""
    experiment_id, token = create(client, **FULL)
    rows = unit_rows(64, bounce=(0.0, 0.0))
    post(client, experiment_id, token, rows)
    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    guardrail = result["metrics"][2]
    assert guardrail["analysis"] is None and "no variation" in guardrail["error"] and guardrail["guardrail"] is None
    primary = samples(rows, PRIMARY_NAMES["continuous"], "revenue", 64, "continuous", covariate=True)
    secondary = [samples(rows, "sessions", "sessions", 64, "continuous"),
                 samples(rows, "basket", "basket", 64, "ratio", denominator="sessions")]  # fmt: skip
    kept = analyze_experiment(primary, secondary, alpha=0.05, target_effect=5.0, labels=LABELS, bayesian=True)
    assert result["metrics"][:2] == entries(kept)
    assert result["analysis"] == finite_or_none(kept.primary.analysis.to_dict())
    assert result["improves"] and result["recommendation"] == "no decision"
    assert "bounced" in result["summary"] and "cannot be checked" in result["summary"]
    assert "cannot analyze: the conversion rate is 0" in client.get(f"/experiments/{experiment_id}").text


# ---------------------------------------------------------------------------------------------- pages


def test_the_page_shows_the_recommendation_posterior_cuped_and_metrics(client) -> None:
    experiment_id, token = create(client, **FULL)
    running = client.get(f"/experiments/{experiment_id}").text
    assert "secondary <code>sessions</code>" in running and "guardrail <code>bounced</code>" in running
    assert '&#34;covariate&#34;' not in running and '"covariate": 41.0' in running and '"values":' in running
    post(client, experiment_id, token, unit_rows(64, seed=11))
    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    page = client.get(f"/experiments/{experiment_id}").text
    assert re.search(r'id="recommendation-value">ship<', page) and "Secondary metrics significant after" in page
    for label in ("Chance new beats original", "Expected loss of shipping new", "Expected loss of keeping original",
                  "credible interval", "Model: normal"):  # fmt: skip
        assert label in page, label
    reduction = result["analysis"]["variance_reduction"]
    assert f'id="cuped-reduction">{100 * reduction:.1f}%<' in page and "Welch&#39;s t-test with CUPED" in page
    assert 'id="metrics-table"' in page
    for name, role in (("sessions", "secondary"), ("basket", "secondary"), ("bounced", "guardrail")):
        row = re.search(rf'<tr id="metric-{name}">(.*?)</tr>', page, re.S).group(1)
        assert f"<td>{role}</td>" in row
    guardrail = re.search(r'<tr id="metric-bounced">(.*?)</tr>', page, re.S).group(1)
    assert "harm: increase beyond 0.05" in guardrail and result["metrics"][2]["guardrail"] in guardrail
    assert "not corrected" in guardrail and "Benjamini" not in page and "Holm" in page
    assert "ship" in client.get("/").text


def test_the_form_designs_every_metric_with_its_options(client) -> None:
    form = {"owner": "ana", "name": "form", "alpha": "0.05", "power": "0.8", "alternative": "two-sided"}
    page = client.get("/experiments/new").text
    for words in ('name="metric"', 'name="baseline"', 'name="bayesian"', 'name="cuped"', 'name="secondary"',
                  'name="guardrails"', 'name="correction"', "/api/design/binary?"):  # fmt: skip
        assert words in page, words
    created = client.post("/experiments/new", data={**form, "metric": "binary", "baseline": "0.2", "effect": "0.1",
                                                     "sd": "15", "sample_size": str(required()), "bayesian": "on"})
    assert created.status_code == 201, created.text
    assert "/conversions" in created.text and '"converted": 1' in created.text
    ratio = client.post("/experiments/new", data={**form, "metric": "ratio", "effect": "2", "sd": "4",
                                                   "baseline": "0.1", "sample_size": "64", "correction": "bh",
                                                   "guardrails": json.dumps(GUARDRAILS)})  # fmt: skip
    assert ratio.status_code == 201, ratio.text
    assert '"denominator": 3' in ratio.text and '"values": {"bounced": 1}' in ratio.text
    cuped = client.post("/experiments/new", data={**form, "effect": "5", "sd": "10", "sample_size": "64",
                                                   "cuped": "on", "secondary": json.dumps(SECONDARY)})  # fmt: skip
    assert cuped.status_code == 201 and '"covariate": 41.0' in cuped.text
    listed = {item["name"] + item["metric"]: item for item in client.get("/api/experiments").json()}
    assert listed["formbinary"]["bayesian"] and listed["formbinary"]["baseline"] == 0.2
    assert listed["formratio"]["correction"] == "bh" and listed["formratio"]["guardrails"][0]["name"] == "bounced"
    assert listed["formcontinuous"]["cuped"] and len(listed["formcontinuous"]["secondary"]) == 2
    for change, words in (({"metric": "binary", "baseline": "0.2", "effect": "0.1", "cuped": "on"},
                           "CUPED applies to the continuous metric only"),
                          ({"secondary": "[{name: x}]"}, "secondary: not valid JSON"),
                          ({"guardrails": '[{"name": "x"}]'}, "guardrails.0.harm: Field required"),
                          ({"metric": "poisson"}, "metric: must be one of continuous, binary, ratio")):  # fmt: skip
        refused = client.post("/experiments/new", data={**form, "effect": "5", "sd": "10", "sample_size": "64",
                                                         **change})  # fmt: skip
        assert refused.status_code == 422 and words in refused.text, (change, refused.text[-3000:])
    assert len(client.get("/api/experiments").json()) == 3
    binary_again = client.post("/experiments/new", data={**form, "metric": "binary", "baseline": "0.2",
                                                         "effect": "0.1", "sample_size": "30"})  # fmt: skip
    assert binary_again.status_code == 422 and 'id="baseline" value="0.2"' in binary_again.text
    assert re.search(r'<option value="binary" selected>', binary_again.text)


# ---------------------------------------------------------------------------------------------- contract


def test_the_schema_states_the_metric_rules(client) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    body = schema["paths"]["/api/experiments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "RatioExperimentIn" in {form["$ref"].rsplit("/", 1)[-1] for form in body["oneOf"]}
    metric = next(components[name] for name in components if name.startswith("MetricSpec"))
    assert metric["additionalProperties"] is False and metric["allOf"][0]["if"]["properties"]["kind"]["const"] == \
        "ratio"  # fmt: skip
    assert metric["properties"]["name"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]*$"
    guardrail = next(components[name] for name in components if name.startswith("GuardrailSpec"))
    assert {"name", "harm"} <= set(guardrail["required"]) and guardrail["properties"]["max_harm"]["minimum"] == 0
    design = components["ExperimentIn"]["properties"]
    assert design["secondary"]["maxItems"] == 20 and design["correction"]["enum"] == ["holm", "bh", "none"]
    assert design["bayesian"]["type"] == "boolean" and design["cuped"]["type"] == "boolean"
    assert components["BinaryExperimentIn"]["properties"]["cuped"]["const"] is False
    values = components["OutcomeIn"]["properties"]["values"]
    assert values["maxProperties"] == 40 and values["propertyNames"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]*$"
    assert values["additionalProperties"]["type"] == "number"
    assert components["OutcomeIn"]["properties"]["denominator"]["anyOf"][0]["minimum"] == 0
    result = components["Result"]["properties"]
    assert result["recommendation"]["enum"] == ["ship", "do not ship", "no decision"]
    assert {"summary", "correction", "bayesian", "metrics"} <= set(result)

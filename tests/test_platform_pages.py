"""The platform's web pages (server-rendered, TestClient on SQLite files): list, create form with its live design
endpoint, token shown once, escaping of user text, verdict and plots, 404 page; and the figures' numbers."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from nextbest.experiments import analyze, power, sample_size, validate_design
from nextbest.platform.pages import (
    cumulative_effect,
    cumulative_effect_png,
    design_check,
    revenue_distribution_png,
)
from test_platform_api import DESIGN, HOSTILE, auth, close, create, new_client, simulated_outcomes

FORM = {key: str(value) for key, value in DESIGN.items()}  # ana, "category display", effect 5, sd 10, n 64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def client(tmp_path: Path):
    client = new_client(f"sqlite:///{tmp_path / 'pages.db'}")
    yield client
    close(client)


def token_on(page: str) -> str:
    """The token shown on the creation page."""
    match = re.search(r'<code class="token" id="token">([^<]+)</code>', page)
    assert match, "no token on the page"
    return match.group(1)


def images(page: str) -> dict[str, bytes]:
    """The inline PNG figures of a page, by img id, decoded."""
    found = re.findall(r'<img class="plot" id="([\w-]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return {name: base64.b64decode(data) for name, data in found}


# ---------------------------------------------------------------------------------------------- pages render


def test_pages_render(client) -> None:
    home = client.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert "No experiments yet" in home.text and 'href="/experiments/new"' in home.text

    form = client.get("/experiments/new")
    assert form.status_code == 200
    assert 'id="required-n">7,210<' in form.text  # the issue's example: sd 15, effect 0.7, alpha 0.05, power 0.8
    for name, value in {"alpha": "0.05", "power": "0.8", "effect": "0.7", "sd": "15", "sample_size": "7210"}.items():
        assert re.search(rf'name="{name}" id="{name}" value="{re.escape(value)}"', form.text), name
    assert "/api/design?" in form.text and "Coherent design" in form.text

    experiment_id, _ = create(client)
    listed = client.get("/")
    assert listed.status_code == 200 and f'href="/experiments/{experiment_id}"' in listed.text
    assert "category display" in listed.text and "running" in listed.text and "0 / 64" in listed.text
    page = client.get(f"/experiments/{experiment_id}")
    assert page.status_code == 200 and "No outcomes yet" in page.text and "<img" not in page.text
    assert "0 / 64" in page.text and "Running" in page.text


def test_pages_carry_a_content_security_policy_with_a_script_nonce(client) -> None:
    response = client.get("/experiments/new")
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'<script nonce="{nonce}">' in response.text and "default-src 'none'" in policy
    assert nonce not in client.get("/experiments/new").text  # fresh per response


# ---------------------------------------------------------------------------------------------- design endpoint


@pytest.mark.parametrize(
    ("effect", "sd", "alpha", "power_", "alternative"),
    [
        (0.7, 15, 0.05, 0.8, "two-sided"),
        (0.7, 15, 0.05, 0.8, "larger"),
        (5, 10, 0.05, 0.8, "two-sided"),
        (-2, 7.5, 0.01, 0.9, "smaller"),
        (1.5, 30, 0.1, 0.95, "two-sided"),
    ],
)
def test_design_endpoint_matches_sample_size(client, effect, sd, alpha, power_, alternative) -> None:
    query = {"effect": effect, "sd": sd, "alpha": alpha, "power": power_, "alternative": alternative}
    response = client.get("/api/design", params=query)
    assert response.status_code == 200
    body = response.json()
    expected = sample_size(effect, sd, alpha, power_, alternative)
    assert body["sample_size"] == int(expected) and body["total"] == expected.total
    assert body["given_sample_size"] == int(expected) and body["coherent"] is True
    assert body["achieved_power"] == pytest.approx(power(int(expected), effect, sd, alpha, alternative))
    assert body["message"] == validate_design(alpha, power_, effect, sd, int(expected), alternative).message


def test_design_endpoint_refuses_incoherent_designs_with_the_message(client) -> None:
    body = client.get("/api/design", params={"effect": 5, "sd": 10, "sample_size": 30}).json()
    check = validate_design(0.05, 0.8, 5, 10, 30)
    assert body["coherent"] is False and body["sample_size"] == 64 and body["given_sample_size"] == 30
    assert body["message"] == check.message and "raise it to 64" in body["message"]
    assert body["achieved_power"] == pytest.approx(check.achieved_power)
    assert client.get("/api/design", params={"effect": 5, "sd": 10, "sample_size": 64}).json()["coherent"] is True


@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        ({"effect": 0, "sd": 10}, "effect", "must be non-zero"),
        ({"effect": 5, "sd": -1}, "sd", "greater than 0"),
        ({"effect": 5, "sd": 10, "alpha": "abc"}, "alpha", "valid number"),
        ({"effect": 5, "sd": 10, "alpha": "0.7"}, "alpha", "0.5"),
        ({"effect": 5, "sd": 10, "power": "0.04"}, "power", "0.5"),
        ({"sd": 10}, "effect", "required"),
        ({"effect": "", "sd": 10}, "effect", "valid number"),
        ({"effect": "true", "sd": 10}, "effect", "valid number"),
        ({"effect": 5, "sd": 10, "alternative": "bigger"}, "alternative", "two-sided"),
        ({"effect": 5, "sd": 10, "sample_size": "10.5"}, "sample_size", "valid integer"),
        ({"effect": 5, "sd": 10, "sample_size": "1000000001"}, "sample_size", "1000000000"),
        ({"effect": "nan", "sd": 10}, "effect", "finite"),
    ],
)
def test_design_endpoint_names_parameters_off_the_schema(client, query: dict, parameter: str, words: str) -> None:
    response = client.get("/api/design", params=query)
    assert response.status_code == 422
    issues = response.json()["detail"]  # the declared 422 body: [{loc, msg, type}]
    assert [issue["loc"] for issue in issues] == [["query", parameter]]
    assert words in issues[0]["msg"]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"effect": -5, "sd": 10, "alternative": "larger"}, "negative but alternative is 'larger'"),
        ({"effect": 5, "sd": 10, "alternative": "smaller"}, "positive but alternative is 'smaller'"),
        ({"effect": 1e-12, "sd": 1}, "too small"),
    ],
)
def test_design_endpoint_answers_contradictory_designs_with_the_reason(client, query: dict, words: str) -> None:
    response = client.get("/api/design", params=query)
    assert response.status_code == 200  # well-formed: the check answers, the design is what fails
    body = response.json()
    assert body["coherent"] is False and words in body["message"]
    assert body["sample_size"] is None and body["achieved_power"] is None


def test_design_check_is_the_function_behind_the_endpoint() -> None:
    assert design_check(0.7, 15).sample_size == 7210
    assert design_check("5", "10", "0.05", "0.8", "two-sided", "64").coherent is True


# ---------------------------------------------------------------------------------------------- create form


def test_form_creates_and_shows_the_token_once(client) -> None:
    response = client.post("/experiments/new", data=FORM)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    token = token_on(page)
    experiment_id = int(re.search(r'id="experiment-id">(\d+)<', page).group(1))
    assert "Copy it now, it is not shown again" in page
    assert f"/api/experiments/{experiment_id}/decisions" in page
    assert f"/api/experiments/{experiment_id}/outcomes" in page
    assert f"Authorization: Bearer {token}" in page and "curl -X POST" in page

    # the token works, and no other page shows it
    answer = client.post(f"/api/experiments/{experiment_id}/decisions", json={"uuid": "a", "value": 1},
                         headers=auth(token))  # fmt: skip
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    for url in ("/", f"/experiments/{experiment_id}", "/experiments/new", "/api/experiments"):
        shown = client.get(url)
        assert shown.status_code == 200 and token not in shown.text, url
    assert client.get(f"/experiments/{experiment_id}").text.count("category display") >= 1


def test_form_with_an_incoherent_design_is_422_with_the_explanation(client) -> None:
    response = client.post("/experiments/new", data={**FORM, "sample_size": "30"})
    assert response.status_code == 422
    assert "The experiment was not created" in response.text and "raise it to 64" in response.text
    assert 'name="sample_size" id="sample_size" value="30"' in response.text  # the values are kept
    assert 'id="token"' not in response.text
    assert client.get("/api/experiments").json() == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"owner": ""}, "owner"),
        ({"name": "n" * 201}, "name"),
        ({"alpha": "abc"}, "alpha"),
        ({"alpha": "0.7"}, "alpha: Input should be less than or equal to 0.5"),
        ({"power": "0.3"}, "power: Input should be greater than 0.5"),
        ({"effect": "nan"}, "effect"),
        ({"effect": "0"}, "must be non-zero"),
        ({"effect": "-5", "alternative": "larger"}, "negative but alternative is &#39;larger&#39;"),
        ({"sd": "-3"}, "sd"),
        ({"sample_size": "10.5"}, "sample size"),
        ({"alternative": "bigger"}, "alternative"),
    ],
)
def test_form_with_invalid_input_is_422_never_500(client, change: dict, words: str) -> None:
    response = client.post("/experiments/new", data={**FORM, **change})
    assert response.status_code == 422
    assert "The experiment was not created" in response.text and words in response.text
    assert client.get("/api/experiments").json() == []


def test_form_survives_empty_json_and_file_bodies(client) -> None:
    assert client.post("/experiments/new").status_code == 422
    assert client.post("/experiments/new", json=DESIGN).status_code == 422
    upload = client.post("/experiments/new", data={k: v for k, v in FORM.items() if k != "owner"},
                         files={"owner": ("owner.txt", b"ana")})  # fmt: skip
    assert upload.status_code == 422 and "owner" in upload.text


# ---------------------------------------------------------------------------------------------- escaping


@pytest.mark.parametrize("text", HOSTILE)
def test_user_text_is_rendered_as_text(client, text: str) -> None:
    created = client.post("/experiments/new", data={**FORM, "owner": text, "name": text})
    assert created.status_code == 201
    experiment_id = int(re.search(r'id="experiment-id">(\d+)<', created.text).group(1))
    refused = client.post("/experiments/new", data={**FORM, "owner": text, "name": text, "sample_size": "3"})
    missing = client.get(f"/experiments/{text}")
    pages = [created, refused, client.get("/"), client.get(f"/experiments/{experiment_id}")]
    for response in pages:
        assert "<script>alert" not in response.text and "<img src=x" not in response.text
    if "<" in text:
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        for response in pages:
            assert escaped.split("'")[0] in response.text
    assert missing.status_code == 404 and "<script>alert" not in missing.text


def test_a_script_owner_and_name_appear_as_text(client) -> None:
    experiment_id, _ = create(client, owner="<script>alert('o')</script>", name="<script>alert('n')</script>")
    for url in ("/", f"/experiments/{experiment_id}"):
        page = client.get(url).text
        assert "<script>alert(" not in page
        assert "&lt;script&gt;alert(&#39;o&#39;)&lt;/script&gt;" in page
        assert "&lt;script&gt;alert(&#39;n&#39;)&lt;/script&gt;" in page


# ---------------------------------------------------------------------------------------------- verdict and plots


def test_plots_and_verdict_after_outcomes(client) -> None:
    experiment_id, token = create(client)
    outcomes = simulated_outcomes(64, true_effect=8.0, sd=10.0, seed=7)
    decisions = [{"uuid": row["uuid"], "value": row["decision"]} for row in outcomes]
    assert client.post(f"/api/experiments/{experiment_id}/decisions", json=decisions, headers=auth(token)).is_success

    assert client.post(f"/api/experiments/{experiment_id}/outcomes", json=outcomes[:60], headers=auth(token)).is_success
    running = client.get(f"/experiments/{experiment_id}").text
    assert set(images(running)) == {"plot-cumulative", "plot-distribution"} and "Running" in running

    assert client.post(f"/api/experiments/{experiment_id}/outcomes", json=outcomes[60:], headers=auth(token)).is_success
    page = client.get(f"/experiments/{experiment_id}")
    assert page.status_code == 200
    figures = images(page.text)
    assert set(figures) == {"plot-cumulative", "plot-distribution"}
    assert all(png.startswith(PNG_MAGIC) and len(png) > 5000 for png in figures.values())

    result = client.get(f"/api/experiments/{experiment_id}").json()["result"]
    assert "checkpoints up to 64 per arm" in page.text
    control = np.array([r["revenue"] for r in outcomes if r["arm"] == "original"])
    treatment = np.array([r["revenue"] for r in outcomes if r["arm"] == "new"])
    expected = analyze(control, treatment, target_effect=5.0, labels=("original", "new"))
    assert result["effect"] == pytest.approx(expected.effect)
    assert "The new system improves on the original" in page.text
    assert f"{expected.effect:+.4g}" in page.text  # the effect, as in the statistical detail
    assert 'id="result-p"' in page.text and 'id="result-srm"' in page.text and 'id="result-ci"' in page.text
    # each p-value is shown with the threshold it is compared with (the target's: alpha / 2 when two-sided)
    assert result["alpha_threshold"] == 0.05 and result["target_threshold"] == expected.target_alpha == 0.025
    assert result["target_p_value"] == pytest.approx(expected.target_p_value)
    assert re.search(r'id="result-p-threshold">compared with 0\.05 \(α\)<', page.text)
    assert re.search(r'id="result-target-threshold">compared with\s+0\.025 \(α / 2', page.text)
    assert result["srm_threshold"] == 0.001 and 'id="result-srm-threshold">flagged below 0.001<' in page.text
    assert "64 / 64" in page.text
    listed = client.get("/").text
    assert "beats the target" in listed or "improves, target not shown" in listed


def test_cumulative_effect_passes_through_the_verdict_at_the_designed_n() -> None:
    rng = np.random.default_rng(3)
    original, new = rng.normal(50.0, 10.0, size=1500), rng.normal(57.0, 10.0, size=1400)
    curve = cumulative_effect(original, new, checkpoints=50, level=0.95, sample_size=1000)
    assert 45 <= len(curve["n"]) <= 51 and curve["n"][0] == 2 and curve["n"][-1] == 1400 == curve["per_arm"]
    at = curve["n"].index(1000)
    verdict = analyze(original[:1000], new[:1000], alpha=0.05, target_effect=5.0, labels=("original", "new"))
    assert curve["effect"][at] == pytest.approx(verdict.effect, rel=1e-9)
    assert (curve["low"][at], curve["high"][at]) == pytest.approx(verdict.ci, rel=1e-9)
    final = analyze(original[:1400], new, alpha=0.05, labels=("original", "new"))
    assert (curve["low"][-1], curve["effect"][-1], curve["high"][-1]) == pytest.approx(
        (final.ci[0], final.effect, final.ci[1]), rel=1e-9
    )
    assert all(low <= effect <= high for low, effect, high in zip(curve["low"], curve["effect"], curve["high"]))
    assert cumulative_effect_png(curve, 7.0).startswith(PNG_MAGIC)
    assert revenue_distribution_png({"original": original, "new": new}).startswith(PNG_MAGIC)


def test_cumulative_effect_needs_two_outcomes_per_arm() -> None:
    assert cumulative_effect([], [])["n"] == []
    assert cumulative_effect([1.0], [2.0, 3.0])["n"] == []
    assert cumulative_effect([1.0, 2.0], [2.0, 3.5])["n"] == [2]
    assert cumulative_effect([1.0, 1.0], [2.0, 2.0])["n"] == []  # no variation, no interval


# ---------------------------------------------------------------------------------------------- 404


@pytest.mark.parametrize("raw", ["999", "0", "abc", "99999999999", "-1", "1.5"])
def test_unknown_experiment_is_a_404_page(client, raw: str) -> None:
    response = client.get(f"/experiments/{raw}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Experiment not found" in response.text and 'href="/"' in response.text

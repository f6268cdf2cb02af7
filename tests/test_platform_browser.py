"""The platform's web pages in a real browser: Debian's Chromium driven by Playwright against `nextbest platform
serve` on a loopback port. Creates an experiment through the form (the required sample size updates live), reads
the token, posts decisions and outcomes through the API, and sees the verdict and both plots. Screenshots of every
step land in the test's tmp_path."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """`nextbest platform serve` on a SQLite file and a free loopback port; its base URL once /healthz answers."""
    port = _free_port()
    log_path = tmp_path / "server.log"
    command = [sys.executable, "-m", "nextbest.cli", "platform", "serve", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with code {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /healthz within 60 s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()  # SIGTERM to this PID only
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture()
def browser():
    """Debian's Chromium through Playwright (its own browser download cannot work here)."""
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is not at {CHROMIUM} (make test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _outcomes(n_per_arm: int, seed: int) -> list[dict]:
    """Alternating arms; revenue ~ N(50, 10) in the original arm, N(57, 10) in the new one."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_per_arm):
        for arm, mean in (("original", 50.0), ("new", 57.0)):
            rows.append({"uuid": f"customer-{arm}-{i}", "arm": arm, "decision": int(arm == "new"),
                         "revenue": round(float(rng.normal(mean, 10.0)), 2)})  # fmt: skip
    return rows


def test_create_run_and_read_an_experiment_in_chromium(server: str, browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    # the form: the example first, then a small design, the required size following live
    page.goto(f"{server}/experiments/new")
    required_n = page.locator("#required-n")
    expect(required_n).to_have_text("7,210")
    expect(page.locator("#design-status")).to_contain_text("Coherent design")
    page.fill("#effect", "5")
    expect(required_n).not_to_have_text("7,210")  # effect 5 with sd 15: recomputed live
    live_effect_only = required_n.inner_text()
    page.fill("#sd", "10")
    expect(required_n).not_to_have_text(live_effect_only)
    expect(required_n).to_have_text("64")
    expect(page.locator("#sample_size")).to_have_value("64")  # the size follows the required one
    page.screenshot(path=str(tmp_path / "1-form.png"), full_page=True)

    page.fill("#sample_size", "30")  # too small: the page says why it would be refused
    expect(page.locator("#design-status")).to_contain_text("This design would be refused")
    expect(page.locator("#design-message")).to_contain_text("raise it to 64")
    page.screenshot(path=str(tmp_path / "2-form-incoherent.png"), full_page=True)
    page.select_option("#alternative", "smaller")  # a positive effect against 'smaller': no size to compute
    expect(page.locator("#design-message")).to_contain_text("positive but alternative is 'smaller'")
    expect(required_n).to_have_text("—")
    page.select_option("#alternative", "two-sided")
    expect(page.locator("#design-message")).to_contain_text("raise it to 64")

    page.fill("#owner", "ana <script>alert(1)</script>")
    page.fill("#name", "category display")
    with page.expect_response(lambda response: response.request.method == "POST") as refused:
        page.click("#create")  # the server refuses it too, and says why
    assert refused.value.status == 422
    expect(page.locator("#form-errors")).to_contain_text("raise it to 64")
    expect(page.locator("#owner")).to_have_value("ana <script>alert(1)</script>")  # the values are kept
    page.screenshot(path=str(tmp_path / "3-form-refused.png"), full_page=True)

    required = int(required_n.inner_text().replace(",", ""))
    page.fill("#sample_size", str(required))
    expect(page.locator("#design-status")).to_contain_text("Coherent design")
    with page.expect_response(lambda response: response.request.method == "POST") as created:
        page.click("#create")
    assert created.value.status == 201

    # the token, shown once
    token_box = page.locator("#token")
    expect(token_box).to_be_visible()
    expect(page.get_by_text("Copy it now, it is not shown again")).to_be_visible()
    token = token_box.inner_text().strip()
    experiment_id = int(page.locator("#experiment-id").inner_text())
    assert len(token) >= 40
    page.screenshot(path=str(tmp_path / "4-created.png"), full_page=True)

    page.goto(f"{server}/experiments/{experiment_id}")
    expect(page.locator("#no-outcomes")).to_be_visible()
    assert token not in page.content()
    page.screenshot(path=str(tmp_path / "5-no-outcomes.png"), full_page=True)

    # decisions and outcomes through the API, with the token
    outcomes = _outcomes(required + 3, seed=11)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server, headers=headers, timeout=30.0) as api:
        decisions = [{"uuid": row["uuid"], "value": row["decision"]} for row in outcomes]
        answer = api.post(f"/api/experiments/{experiment_id}/decisions", json=decisions)
        assert answer.json() == {"accepted": len(decisions), "duplicates": 0}
        for start in range(0, len(outcomes), 50):
            answer = api.post(f"/api/experiments/{experiment_id}/outcomes", json=outcomes[start:start + 50])
            assert answer.status_code == 200, answer.text
        result = api.get(f"/api/experiments/{experiment_id}").json()["result"]
    assert result is not None and result["n_original"] == result["n_new"] == required

    # the verdict and both plots after a reload
    page.reload()
    expect(page.locator("#verdict-sentence")).to_contain_text("The new system")
    expect(page.locator("#result-p")).to_be_visible()
    expect(page.locator("#result-target-threshold")).to_contain_text("compared with 0.025")  # α / 2, two-sided
    expect(page.locator("#result-srm")).to_be_visible()
    expect(page.locator("#result-ci")).to_be_visible()
    for plot in ("#plot-cumulative", "#plot-distribution"):
        image = page.locator(plot)
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 600"), plot
    expect(page.locator("#experiment-name")).to_have_text("category display")
    assert "<script>alert(1)</script>" not in page.content()
    expect(page.get_by_text("ana <script>alert(1)</script>")).to_be_visible()  # shown as text
    assert token not in page.content()
    page.screenshot(path=str(tmp_path / "6-experiment.png"), full_page=True)

    page.goto(f"{server}/")
    expect(page.locator("#experiments")).to_contain_text("category display")
    page.screenshot(path=str(tmp_path / "7-list.png"), full_page=True)
    problems = [text for text in problems if "status of 422" not in text]  # the refused form post, on purpose
    assert problems == [], problems  # no script error, no blocked resource (Content Security Policy)
    page.goto(f"{server}/experiments/999")
    expect(page.get_by_text("Experiment not found")).to_be_visible()
    shots = ("1-form", "2-form-incoherent", "3-form-refused", "4-created", "5-no-outcomes", "6-experiment", "7-list")
    for name in shots:
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_the_form_designs_a_conversion_with_the_posterior_in_chromium(server: str, browser, tmp_path: Path) -> None:
    """Choosing the binary metric shows the baseline instead of the sd, asks /api/design/binary for the size, turns
    CUPED off; the experiment is created with the posterior, and its page shows the Bayesian block once complete."""
    from playwright.sync_api import expect

    from nextbest.platform.pages import design_check_binary

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{server}/experiments/new")
    expect(page.locator("#required-n")).to_have_text("7,210")
    expect(page.locator("#baseline")).to_be_hidden()
    page.select_option("#metric", "binary")
    expect(page.locator("#baseline")).to_be_visible()
    expect(page.locator("#sd")).to_be_hidden()
    expect(page.locator("#cuped")).to_be_disabled()
    page.fill("#baseline", "0.2")
    page.fill("#effect", "0.1")
    required = design_check_binary(0.2, 0.1).sample_size
    expect(page.locator("#required-n")).to_have_text(f"{required:,}")
    expect(page.locator("#design-status")).to_contain_text("Coherent design")
    page.check("#bayesian")
    page.fill("#owner", "crm")
    page.fill("#name", "first call")
    page.fill("#guardrails", '[{"name": "unsubscribed", "kind": "binary", "harm": "increase", "max_harm": 0.1}]')
    page.screenshot(path=str(tmp_path / "1-binary-form.png"), full_page=True)
    with page.expect_response(lambda response: response.request.method == "POST") as created:
        page.click("#create")
    assert created.value.status == 201
    expect(page.get_by_text('"converted": 1').first).to_be_visible()
    token = page.locator("#token").inner_text().strip()
    experiment_id = int(page.locator("#experiment-id").inner_text())

    rng = np.random.default_rng(3)
    rows = [{"uuid": f"lead-{arm}-{i}", "arm": arm, "decision": int(arm == "new"),
             "converted": int(rng.random() < (0.2 if arm == "original" else 0.32)),
             "values": {"unsubscribed": int(rng.random() < 0.05)}}
            for i in range(required) for arm in ("original", "new")]  # fmt: skip
    answer = httpx.post(f"{server}/api/experiments/{experiment_id}/conversions", json=rows, timeout=30.0,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    page.goto(f"{server}/experiments/{experiment_id}")
    expect(page.locator("#bayesian")).to_contain_text("Chance new beats original")
    expect(page.locator("#bayes-model")).to_contain_text("beta-binomial")
    expect(page.locator("#metric-unsubscribed")).to_contain_text("guardrail")
    result = httpx.get(f"{server}/api/experiments/{experiment_id}", timeout=30.0).json()["result"]
    assert result["bayesian"]["model"] == "beta-binomial" and result["metrics"][0]["name"] == "unsubscribed"
    expect(page.locator("#recommendation-value")).to_have_text(result["recommendation"])
    page.screenshot(path=str(tmp_path / "2-binary-experiment.png"), full_page=True)
    page.goto(f"{server}/experiments/new")
    page.select_option("#metric", "ratio")
    expect(page.locator("#sd")).to_be_visible()
    expect(page.locator("#cuped")).to_be_disabled()
    expect(page.locator("#effect-hint")).to_contain_text("difference of ratios")
    assert problems == [], problems

"""`nextbest ab analyze` with conversions, ratios, secondary metrics, guardrails and the Bayesian view."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from cli_helpers import run
from nextbest.experiments import analyze_proportions, analyze_ratio, bayes_proportions

NEXTBEST = str(Path(sys.executable).with_name("nextbest"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(5)
    n = 8000
    arm = np.where(rng.random(n) < 0.5, "original", "new")
    new = arm == "new"
    pre = rng.gamma(2, 10, n)
    sessions = rng.poisson(2, n) + 1
    frame = pd.DataFrame({
        "arm": arm, "revenue": 0.8 * pre + rng.gamma(2, 5, n) + 1.0 * new, "pre_revenue": pre,
        "sessions": sessions, "session_revenue": rng.gamma(2, 5, n) * sessions * (1 + 0.1 * new),
        "converted": rng.binomial(1, 0.10 + 0.025 * new), "bounced": rng.binomial(1, 0.30 + 0.05 * new),
        "clicks": rng.poisson(3, n),
    })  # fmt: skip
    path = tmp_path_factory.mktemp("ab_metrics") / "outcomes.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _analyze(capsys, monkeypatch, path: Path, *extra: str) -> dict:
    code, out, err = run(capsys, monkeypatch, "ab", "analyze", "--data", str(path), "--arm-col", "arm", *extra)
    assert code == 0, err
    return json.loads(out)


def test_a_zero_one_metric_is_a_conversion_with_a_beta_binomial_posterior(capsys, monkeypatch, data) -> None:
    path, frame = data
    payload = _analyze(capsys, monkeypatch, path, "--metric", "converted", "--bayesian", "--seed", "3")
    c, t = frame.converted[frame.arm == "original"], frame.converted[frame.arm == "new"]
    expected = analyze_proportions(int(c.sum()), c.size, int(t.sum()), t.size, labels=("original", "new"))
    assert payload["kind"] == "binary" and payload["method"] == "two-proportion z-test"
    assert payload["p_value"] == pytest.approx(expected.p_value)
    posterior = bayes_proportions(int(c.sum()), c.size, int(t.sum()), t.size, seed=3)
    assert payload["bayesian"]["model"] == "beta-binomial"
    assert payload["bayesian"]["chance_to_beat_control"] == pytest.approx(posterior.chance_to_beat_control)
    forced = _analyze(capsys, monkeypatch, path, "--metric", "converted", "--kind", "continuous")
    assert forced["method"] == "welch"


def test_a_ratio_metric_by_the_delta_method(capsys, monkeypatch, data) -> None:
    path, frame = data
    payload = _analyze(capsys, monkeypatch, path, "--metric", "session_revenue", "--denominator", "sessions")
    c, t = frame[frame.arm == "original"], frame[frame.arm == "new"]
    expected = analyze_ratio(c.session_revenue, c.sessions, t.session_revenue, t.sessions, labels=("original", "new"))
    assert payload["kind"] == "ratio" and payload["effect"] == pytest.approx(expected.effect)
    assert payload["ci"] == pytest.approx(list(expected.ci))
    assert payload["input"]["denominator"] == "sessions"


def test_secondary_metrics_are_corrected_and_a_guardrail_can_veto(capsys, monkeypatch, data) -> None:
    path, _ = data
    secondary = ["converted", "session_revenue/sessions", "clicks"]
    payload = _analyze(capsys, monkeypatch, path, "--metric", "revenue", "--covariate", "pre_revenue",
                       *(a for s in secondary for a in ("--secondary", s)), "--guardrail", "bounced:+0.01",
                       "--correction", "bh")  # fmt: skip
    assert payload["method"] == "welch+cuped" and payload["improves"]
    listed = payload["metrics"]
    assert [m["name"] for m in listed] == [*secondary, "bounced"]
    assert [m["kind"] for m in listed] == ["binary", "ratio", "continuous", "binary"]
    raw = [m["analysis"]["p_value"] for m in listed[:3]]
    assert [m["p_value_adjusted"] for m in listed[:3]] == pytest.approx(multipletests(raw, method="fdr_bh")[1])
    assert listed[3]["guardrail"] == "fails" and listed[3]["harm"] == "increase"
    assert payload["recommendation"] == "do not ship" and "bounced" in payload["summary"]
    relaxed = _analyze(capsys, monkeypatch, path, "--metric", "revenue", "--guardrail", "bounced:+0.2")
    assert relaxed["metrics"][0]["guardrail"] == "passes" and relaxed["recommendation"] == "ship"


@pytest.mark.parametrize(("extra", "words"), [
    (["--metric", "revenue", "--guardrail", "bounced:0.01"], "METRIC:+HARM"),
    (["--metric", "revenue", "--guardrail", "bounced:+x"], "METRIC:+HARM"),
    (["--metric", "revenue", "--secondary", "a/b/c"], "NUM/DEN"),
    (["--metric", "revenue", "--secondary", "spend"], "no column 'spend' (given by --secondary spend)"),
    (["--metric", "revenue", "--secondary", "revenue/visits"], "no column 'visits'"),
    (["--metric", "revenue", "--correction", "bonferroni"], "holm, bh, none"),
    (["--metric", "revenue", "--kind", "ratio"], "needs --denominator"),
    (["--metric", "revenue", "--kind", "binary"], "must all be 0 or 1"),
    (["--metric", "revenue", "--kind", "odd"], "--kind 'odd'"),
    (["--metric", "revenue", "--secondary", "revenue"], "repeated: revenue"),
])  # fmt: skip
def test_bad_metric_options_exit_2_with_one_line(capsys, monkeypatch, data, extra, words) -> None:
    path, _ = data
    code, out, err = run(capsys, monkeypatch, "ab", "analyze", "--data", str(path), "--arm-col", "arm", *extra)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and words in err


def test_the_installed_command_answers_and_refuses(data) -> None:
    path, _ = data
    base = [NEXTBEST, "ab", "analyze", "--data", str(path), "--arm-col", "arm", "--metric", "revenue"]
    ok = subprocess.run([*base, "--secondary", "clicks", "--bayesian"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["bayesian"]["model"] == "normal"
    bad = subprocess.run([*base, "--guardrail", "bounced"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--guardrail 'bounced'" in bad.stderr

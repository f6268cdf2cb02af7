"""`nextbest ab design|analyze`: JSON out on the happy paths; exit 2 and one red line on user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import run
from nextbest.experiments import analyze


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 6000
    arm = np.where(rng.random(n) < 0.5, "original", "new")
    pre = rng.gamma(2.0, 10.0, n)
    revenue = 0.8 * pre + rng.normal(0, 10, n) + (arm == "new") * 0.9
    frame = pd.DataFrame({"uuid": np.arange(n), "arm": arm, "revenue": revenue, "pre_revenue": pre})
    root = tmp_path_factory.mktemp("ab")
    paths = {"csv": root / "outcomes.csv", "parquet": root / "outcomes.parquet", "bad": root / "broken.parquet"}
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"])
    paths["bad"].write_bytes(b"not a parquet file at all")
    text = frame.astype({"revenue": object})
    text.loc[17, "revenue"] = "n/a"
    paths["text"] = root / "text.csv"
    text.to_csv(paths["text"], index=False)
    paths["frame"] = frame  # type: ignore[assignment]
    return paths


def test_design_prints_the_required_sample_size(capsys, monkeypatch) -> None:
    code, out, err = run(capsys, monkeypatch, "ab", "design", "--effect", "0.7", "--sd", "15")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["required_sample_size"] == 7210
    assert (payload["n_control"], payload["n_treatment"], payload["total"]) == (7210, 7210, 14420)
    assert payload["exact"] == pytest.approx(7209.0977, abs=1e-3)
    code, out, _ = run(capsys, monkeypatch, "ab", "design", "--effect", "0.7", "--sd", "15",
                       "--alternative", "larger", "--ratio", "2", "--sample-size", "9000")  # fmt: skip
    payload = json.loads(out)
    assert code == 0 and payload["validation"]["coherent"]
    assert payload["n_treatment"] == 2 * payload["n_control"]
    code, out, _ = run(capsys, monkeypatch, "ab", "design", "--baseline", "0.05", "--lift", "0.1")
    assert code == 0 and json.loads(out)["required_sample_size"] == 31218


def test_design_incoherent_exits_2_with_what_to_change(capsys, monkeypatch) -> None:
    code, out, err = run(capsys, monkeypatch, "ab", "design", "--effect", "0.7", "--sd", "15", "--sample-size", "5000")
    assert code == 2
    assert json.loads(out)["validation"]["coherent"] is False
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sample_size 5,000 per arm gives power 0.64")
    assert "raise it to 7,210 per arm" in lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--effect", "0", "--sd", "15"], "effect must be non-zero"),
        (["--effect", "0.7", "--sd", "-1"], "sd must be > 0"),
        (["--effect", "0.7", "--sd", "15", "--alpha", "0.9"], "alpha must be in (0, 0.5]"),
        (["--effect", "0.7", "--sd", "15", "--alternative", "up"], "alternative must be one of"),
        (["--effect", "0.7"], "give --effect and --sd"),
        (["--effect", "0.7", "--sd", "15", "--sample-size", "1"], "at least 2"),
    ],
)
def test_design_bad_inputs(capsys, monkeypatch, args, words) -> None:
    code, out, err = run(capsys, monkeypatch, "ab", "design", *args)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and words in err


def test_analyze_csv_with_cuped_bootstrap_and_srm(capsys, monkeypatch, outcomes) -> None:
    code, out, err = run(capsys, monkeypatch, "ab", "analyze", "--data", str(outcomes["csv"]), "--metric", "revenue",
                         "--arm-col", "arm", "--covariate", "pre_revenue", "--target-effect", "0.5",
                         "--bootstrap", "200")  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    frame = outcomes["frame"]
    c, t = frame["arm"] == "original", frame["arm"] == "new"
    expected = analyze(frame.revenue[c], frame.revenue[t], target_effect=0.5,
                       covariate_control=frame.pre_revenue[c], covariate_treatment=frame.pre_revenue[t])  # fmt: skip
    assert payload["effect"] == pytest.approx(expected.effect)
    assert payload["p_value"] == pytest.approx(expected.p_value)
    assert payload["method"] == "welch+cuped" and payload["variance_reduction"] > 0.3
    assert payload["verdict"].startswith("new is better than original")
    assert set(payload) >= {"ci", "statistic", "df", "improves", "improves_by_target", "target_p_value", "assumptions"}
    assert payload["srm"]["counts"] == [int(c.sum()), int(t.sum())] and payload["srm"]["flagged"] is False
    assert payload["bootstrap"]["n_boot"] == 200 and len(payload["bootstrap"]["ci"]) == 2
    assert payload["input"]["rows"] == 6000 and payload["input"]["ignored_rows"] == 0


def test_analyze_parquet_one_sided(capsys, monkeypatch, outcomes) -> None:
    code, out, err = run(capsys, monkeypatch, "ab", "analyze", "--data", str(outcomes["parquet"]), "--metric",
                         "revenue", "--arm-col", "arm", "--alternative", "larger")  # fmt: skip
    assert code == 0, err
    payload = json.loads(out)
    assert payload["method"] == "welch" and payload["ci"][1] is None  # one-sided: upper end infinite
    assert "bootstrap" not in payload


@pytest.mark.parametrize(
    ("key", "extra", "words"),
    [
        ("parquet", ["--metric", "spend", "--arm-col", "arm"], "no column 'spend' (given by --metric)"),
        ("csv", ["--metric", "revenue", "--arm-col", "group"], "no column 'group' (given by --arm-col)"),
        ("csv", ["--metric", "revenue", "--arm-col", "arm", "--covariate", "pre"], "no column 'pre' (given by --cov"),
        ("csv", ["--metric", "revenue", "--arm-col", "arm", "--treatment-label", "B"], "no rows with arm 'B'"),
        ("text", ["--metric", "revenue", "--arm-col", "arm"], "column 'revenue' (--metric) has 1 missing"),
        ("bad", ["--metric", "revenue", "--arm-col", "arm"], "cannot be read as PARQUET"),
        ("missing", ["--metric", "revenue", "--arm-col", "arm"], "no such file"),
        ("csv", ["--metric", "revenue", "--arm-col", "arm", "--split", "0.5"], "--split"),
    ],
)
def test_analyze_bad_inputs_name_file_and_column(capsys, monkeypatch, outcomes, key, extra, words) -> None:
    path = outcomes["csv"].with_name("absent.csv") if key == "missing" else outcomes[key]
    code, out, err = run(capsys, monkeypatch, "ab", "analyze", "--data", str(path), *extra)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert words in lines[0]
    if "--split" not in extra:  # option mistakes name the option; file mistakes name the file
        assert str(path) in lines[0]


def test_real_process_exit_codes_and_help(outcomes) -> None:
    command = [sys.executable, "-m", "nextbest.cli", "ab"]
    ok = subprocess.run([*command, "design", "--effect", "0.7", "--sd", "15", "--alternative", "larger"],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and json.loads(ok.stdout)["required_sample_size"] == 5679
    bad = subprocess.run([*command, "analyze", "--data", str(outcomes["csv"]), "--metric", "nope", "--arm-col", "arm"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "no column 'nope'" in bad.stderr


@pytest.mark.parametrize("sub", [[], ["design"], ["analyze"]])
def test_help_everywhere(capsys, monkeypatch, sub) -> None:
    code, out, _ = run(capsys, monkeypatch, "ab", *sub, "--help")
    assert code == 0 and "Usage" in out

"""The targeting + uplift HTML report, on inputs actually produced: targeting models trained and evaluated on a
small simulated shop, and an uplift run on a small synthetic experiment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import NextbestError
from nextbest.evaluation.targeting import evaluate_targeting
from nextbest.models.targeting import train_targeting
from nextbest.report import write_targeting_report
from nextbest.report.figures import fmt_money
from nextbest.report.targeting import fmt_signed_money
from nextbest.sim.shop import World, write_world_data
from nextbest.uplift.data import load_experiment
from nextbest.uplift.run import run_uplift

MODELS = ("age-sex", "logreg")


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Evaluation JSON files of `nextbest target evaluate` for the age/sex control and a logistic regression."""
    root = tmp_path_factory.mktemp("targeting")
    write_world_data(World(3, eval_customers=8_000), root / "data", customers=8_000)
    paths = []
    for kind in MODELS:
        path = root / f"{kind}.json"
        paths.append(evaluate_targeting(train_targeting(root / "data", kind, seed=1)).write(path))
    return paths


@pytest.fixture(scope="module")
def uplift_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the uplift.json of a run on a small randomized experiment."""
    root = tmp_path_factory.mktemp("uplift")
    rng = np.random.default_rng(5)
    n = 2000
    treated = rng.random(n) < 0.5
    region = rng.choice(["north", "south"], n)
    p_buy = 0.1 + 0.2 * ((region == "north") & treated)
    frame = pd.DataFrame({
        "age": rng.integers(18, 70, n), "region": region,
        "group": np.where(treated, "mail", "none"), "bought": (rng.random(n) < p_buy).astype(int),
    })  # fmt: skip
    frame.to_csv(root / "experiment.csv", index=False)
    experiment = load_experiment(root / "experiment.csv", "group", "mail", "none", "bought")
    run_uplift(experiment, seed=0, bootstrap=20, base="linear").write(root / "uplift.json")
    return root


@pytest.fixture(scope="module")
def report(evaluations: list[Path], uplift_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("site") / "targeting.html"
    assert write_targeting_report(evaluations, uplift_dir, out) == out
    return out, out.read_text(encoding="utf-8")


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start : page.index("</section>", start)]


def test_report_is_self_contained_with_embedded_figures(report: tuple[Path, str]) -> None:
    out, page = report
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page and "<script" not in page
    assert page.count('src="data:image/png;base64,') >= 3
    assert sorted(p.name for p in (out.parent / "targeting_figures").glob("*.png")) == [
        "policy_value.png",
        "qini_curves.png",
        "value_per_customer.png",
    ]


def test_comparison_table_has_every_model_with_values_from_the_json(
    report: tuple[Path, str], evaluations: list[Path]
) -> None:
    models = _section(report[1], "models")
    rows = models.split("<tr>")
    for path in evaluations:
        data = json.loads(path.read_text())
        row = next(r for r in rows if r.startswith(f"<td>{data['model']}</td>"))
        assert fmt_money(data["value_per_customer"]) in row
        assert fmt_signed_money(data["vs_original"]) in row
        assert f"{data['auc']:.3f}" in row


def test_summary_names_the_best_model_and_judges_the_targets(report: tuple[Path, str], evaluations: list[Path]) -> None:
    out, page = report
    logreg = json.loads(evaluations[1].read_text())
    summary = _section(page, "summary")
    assert "Best full-feature model: logreg" in summary
    gain_row = next(r for r in summary.split("<tr>") if "vs the original system" in r)
    expected = "met" if logreg["vs_original"] >= 0.7 else "unmet"
    assert f'<span class="{expected}">' in gain_row
    headline = json.loads(out.with_suffix(".json").read_text())["headline"]
    assert headline["best_model"] == "logreg" and headline["best_vs_original"] == logreg["vs_original"]
    assert headline["gain_target_met"] is (logreg["vs_original"] >= 0.7)
    assert headline["references"]["original"] == pytest.approx(logreg["value_per_customer"] - logreg["vs_original"])


def test_uplift_section_and_json_name_the_figure_sources(report: tuple[Path, str], uplift_dir: Path) -> None:
    out, page = report
    uplift = json.loads((uplift_dir / "uplift.json").read_text())
    section = _section(page, "uplift")
    for name in uplift["methods"]:
        assert f"<td>{name}</td>" in section
    assert "response-model baseline" in section and "<td>treat none</td>" in section
    summary = json.loads(out.with_suffix(".json").read_text())
    sources = {f["name"]: Path(f["source"]).name for f in summary["figures"]}
    assert sources == {
        "value_per_customer": "age-sex.json",
        "qini_curves": "uplift.json",
        "policy_value": "uplift.json",
    }
    assert all(Path(f["png"]).is_file() for f in summary["figures"])
    assert summary["headline"]["uplift"]["best_method"] == uplift["best_uplift_method"]["name"]


def test_report_without_uplift_has_no_uplift_section(evaluations: list[Path], tmp_path: Path) -> None:
    out = write_targeting_report(evaluations, None, tmp_path / "r.html")
    page = out.read_text(encoding="utf-8")
    assert '<section id="uplift">' not in page and "Qini" not in page
    assert page.count('src="data:image/png;base64,') == 1
    assert "uplift" not in json.loads((tmp_path / "r.json").read_text())["headline"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"model": "gbm", "value_per_customer": 64.0}), "`vs_original`"),
        (json.dumps({"model": "gbm", "value_per_customer": "high", "vs_original": 1.0}), "`$.value_per_customer`"),
    ],
)
def test_malformed_evaluation_is_refused_naming_the_file(
    content: str, expected: str, evaluations: list[Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad eval.json"
    bad.write_text(content)
    with pytest.raises(NextbestError) as info:
        write_targeting_report([evaluations[0], bad], None, tmp_path / "r.html")
    assert str(bad) in str(info.value) and expected in str(info.value)
    assert not (tmp_path / "r.html").exists()


def test_malformed_uplift_json_is_refused_naming_the_file_and_key(
    evaluations: list[Path], uplift_dir: Path, tmp_path: Path
) -> None:
    data = json.loads((uplift_dir / "uplift.json").read_text())
    data["methods"]["t_learner"]["policy_value"]["estimate"] = "high"
    (tmp_path / "uplift.json").write_text(json.dumps(data))
    with pytest.raises(NextbestError) as info:
        write_targeting_report(evaluations, tmp_path, tmp_path / "r.html")
    message = str(info.value)
    assert str(tmp_path / "uplift.json") in message and "`$.methods.t_learner.policy_value.estimate`" in message
    assert not (tmp_path / "r.html").exists()


def test_missing_uplift_json_and_json_out_path_are_refused(evaluations: list[Path], tmp_path: Path) -> None:
    with pytest.raises(NextbestError, match=re.escape(str(tmp_path / "uplift.json"))):
        write_targeting_report(evaluations, tmp_path, tmp_path / "r.html")
    with pytest.raises(NextbestError, match="give a .html path"):
        write_targeting_report(evaluations, None, tmp_path / "r.json")
    with pytest.raises(NextbestError, match="no evaluation files"):
        write_targeting_report([], None, tmp_path / "r.html")


def test_target_demo_runs_end_to_end_on_a_small_world(tmp_path: Path) -> None:
    """`make demo`'s targeting job, small: every command it chains (generate, train, evaluate, export, uplift,
    report) called with its options, through the installed script."""
    import subprocess
    import sys

    script = str(Path(sys.executable).parent / "nextbest")
    result = subprocess.run([script, "target", "demo", "--customers", "5000", "--bootstrap", "20", "--out",
                             str(tmp_path / "demo")], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "uplift" / "uplift.json").is_file()

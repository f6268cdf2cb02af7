"""The learning loop's HTML report, built from a real loop.json (tests/data/loop_result.json: a `nextbest demo loop`
run of 20,000 sessions), a variant without an A/B test, and `nextbest report loop` as a person runs it."""

from __future__ import annotations

import copy
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nextbest.errors import NextbestError
from nextbest.evaluation.loop import LoopResult
from nextbest.report.loop import candidates_chart, effect_chart, fmt_dollars, fmt_effect, write_loop_report

LOOP_JSON = Path(__file__).parent / "data" / "loop_result.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nextbest_script() -> str:
    script = Path(sys.executable).parent / "nextbest"
    if not script.exists():
        pytest.fail(f"no nextbest console script next to {sys.executable}: run `make install` (pip install -e .)")
    return str(script)


@pytest.fixture(scope="module")
def result() -> LoopResult:
    return LoopResult.load(LOOP_JSON)


@pytest.fixture(scope="module")
def report(result: LoopResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("loop_report")
    page = write_loop_report(result, out, source=LOOP_JSON)
    assert page == out / "loop.html"
    return out, page.read_text(encoding="utf-8")


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


def test_page_shows_every_candidate_estimator_and_the_chosen_one(result: LoopResult, report: tuple[Path, str]) -> None:
    _, text = report
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    for section in ("What happened", "Candidates", "Weight diagnostics", "OPE vs A/B vs truth", "Assumptions"):
        assert f">{section}</h2>" in text
    for name in result.choice.candidates:
        assert f"<td>{name}" in text
    assert result.choice.chosen == "current"
    assert '<td>current <span class="met">★ chosen</span></td>' in text
    assert text.count("★ chosen") == 2  # the candidates' table and the weights' table
    assert all(label in text for label in ("<td>IPS</td>", "<td>SNIPS</td>", "<td>DR</td>"))
    learned = result.choice.candidates["learned"]
    assert fmt_dollars(learned.value["dr"].estimate) == "$64.426" and "$64.426" in text
    assert fmt_dollars(result.true_value["learned"]) in text
    assert fmt_effect(learned.versus_control["snips"].estimate) == "+$1.049" and "+$1.049" in text


def test_page_tells_what_happened_and_the_weights(report: tuple[Path, str]) -> None:
    text = html.unescape(report[1])
    assert "served 20,000 sessions" in text and "ε = 0.3" in text and "at least 15%" in text
    assert "9,918 rows to learn" in text and "10,079 held-out rows" in text
    assert "decisions still awaiting their outcome</td><td>3</td>" in text
    assert "<td>8,600</td><td>85.3%</td><td>1.18</td><td>0.00%</td><td>85.3%</td>" in text  # current's ESS, ...
    assert "Why IPS intervals are wide when ESS is small" in text and "show_all has ESS 1,821" in text
    assert "95% normal intervals from each estimator's influence function" in text
    assert "evaluated only on rows it did not learn from" in text


def test_ope_vs_ab_vs_truth(result: LoopResult, report: tuple[Path, str]) -> None:
    text = html.unescape(report[1])
    c = result.comparison
    effects = [fmt_effect(c.ope_effect), fmt_effect(c.ab_effect), fmt_effect(c.true_effect)]
    assert effects == ["+$1.485", "+$0.640", "+$1.127"]
    assert all(effect in text for effect in effects)
    assert "[+$0.958, +$2.013]" in text and "[+$0.100, +$1.180]" in text
    assert f"The platform's verdict: {result.ab.verdict}" in re.sub(r"<[^>]+>", "", text)
    assert "the OPE estimate lies inside the A/B interval</td><td><span class=\"unmet\">no</span>" in text
    assert "the truth lies inside the OPE interval</td><td><span class=\"met\">yes</span>" in text
    assert "No A/B test" not in text


def test_figures_are_pngs_listed_with_their_source(report: tuple[Path, str], tmp_path: Path) -> None:
    out, text = report
    figures = {ref["name"]: ref for ref in json.loads((out / "loop_report.json").read_text())["figures"]}
    assert set(figures) == {"loop_candidates", "loop_effect"}
    for name, ref in figures.items():
        assert Path(ref["png"]) == out / "figures" / f"{name}.png" and _is_png(Path(ref["png"]))
        assert ref["source"] == str(LOOP_JSON) and ref["key"]
    assert text.count('src="data:image/png;base64,') == 2 and "Data: <code>loop_result.json → comparison</code>" in text


def _without_ab(chosen: str) -> LoopResult:
    """The real result as if `chosen` had won: no A/B test, the comparison made from the JSON's own numbers."""
    data = copy.deepcopy(json.loads(LOOP_JSON.read_text()))
    ope = data["choice"]["candidates"][chosen]["versus_control"]["dr"]
    data["choice"]["chosen"] = chosen
    data["ab"] = None
    truth = data["true_effect"][chosen]
    data["comparison"].update(policy=chosen, ope_effect=ope["estimate"], ope_ci=ope["ci"], ab_effect=None, ab_ci=None,
                              true_effect=truth, ope_within_ab_ci=False,
                              truth_within_ope_ci=ope["ci"][0] <= truth <= ope["ci"][1], passed=False)  # fmt: skip
    return LoopResult.from_dict(data, "variant")


@pytest.mark.parametrize(("chosen", "reason"), [("show_none", "has no model to serve"),
                                                ("original", "is the original rule itself")])  # fmt: skip
def test_without_ab_the_page_says_why(chosen: str, reason: str, tmp_path: Path) -> None:
    variant = _without_ab(chosen)
    text = html.unescape(write_loop_report(variant, tmp_path).read_text(encoding="utf-8"))
    assert "No A/B test" in text and reason in text
    assert "The platform's verdict" not in text and "<td>no A/B test</td>" in text
    assert f'<td>{chosen} <span class="met">★ chosen</span>' in text
    assert fmt_effect(variant.comparison.true_effect) in text
    assert all(_is_png(tmp_path / "figures" / f"{name}.png") for name in ("loop_candidates", "loop_effect"))


def test_figure_functions_draw_the_result(result: LoopResult, tmp_path: Path) -> None:
    assert _is_png(candidates_chart(result, tmp_path / "c.png")) and _is_png(effect_chart(result, tmp_path / "e.png"))


def test_unwritable_folder_is_one_error(result: LoopResult, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(NextbestError, match="cannot write the report"):
        write_loop_report(result, tmp_path / "taken")


def test_cli_writes_the_report_and_a_missing_file_is_one_line(tmp_path: Path) -> None:
    script = nextbest_script()
    missing = subprocess.run([script, "report", "loop", "--result", "missing.json", "--out", "x"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and missing.stdout == "" and "Traceback" not in missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.json: not found" in lines[0] and "nextbest demo loop" in lines[0]
    assert not (tmp_path / "x").exists()
    ok = subprocess.run([script, "report", "loop", "--result", str(LOOP_JSON), "--out", str(tmp_path / "site")],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    assert json.loads(ok.stdout) == {"html": str(tmp_path / "site" / "loop.html"),
                                     "json": str(tmp_path / "site" / "loop_report.json")}  # fmt: skip
    assert _is_png(tmp_path / "site" / "figures" / "loop_effect.png")

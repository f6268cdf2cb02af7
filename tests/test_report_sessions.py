"""The session retention report on inputs actually produced: a small simulated page table, its EDA, the churn and
value models, and the agents vs baselines comparison on the simulator learned from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.cli_helpers import run

from nextbest.agents.sessions import QLearningConfig, SessionPPOConfig, compare_policies
from nextbest.errors import NextbestError
from nextbest.models.sessions import fit_session_models
from nextbest.report.eda import write_eda
from nextbest.report.sessions import SECTIONS, write_sessions_report
from nextbest.sim.session_sim import SessionSimulator
from nextbest.sim.sessions import SessionWorld, SessionWorldConfig


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(eda dir, models dir, agent.json) of a 3,000-session world."""
    root = tmp_path_factory.mktemp("sessions")
    pages = SessionWorld(SessionWorldConfig(seed=0)).pages(3000)
    write_eda(pages, root / "eda", "source")
    fitted, table = fit_session_models(pages)
    table.write(root / "models" / "models.json")
    simulator = SessionSimulator.from_pages(pages, fitted["churn_sklearn"], fitted["value_sklearn"])
    ppo = SessionPPOConfig(timesteps=4096, n_envs=64, n_steps=16, batch_size=256)
    study = compare_policies(simulator, QLearningConfig.for_sessions(episodes=2000, batch_size=500), ppo, sessions=2000)
    study.write(root / "agent.json")
    return root / "eda", root / "models", root / "agent.json"


@pytest.fixture(scope="module")
def report(inputs: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("site") / "sessions.html"
    assert write_sessions_report(*inputs, out) == out
    return out, out.read_text(encoding="utf-8")


def test_report_has_every_section_and_policy(inputs: tuple[Path, Path, Path], report: tuple[Path, str]) -> None:
    out, page = report
    agent = json.loads(inputs[2].read_text())
    for title in SECTIONS:
        assert title in page
    for name in agent["policies"]:
        assert f"<td>{name}</td>" in page
    for strategy in agent["strategies"]["strategies"]:
        assert f"<td>{strategy}</td>" in page
    assert "assumptions" in page and page.count('src="data:image/png;base64,') >= 5
    assert ('class="met"' in page) == agent["agent_beats_best_fixed"]
    if not agent["agent_beats_best_fixed"]:
        assert "does not beat the best fixed strategy with disjoint intervals" in page


def test_report_json_lists_figures_and_copies_the_headline(inputs: tuple[Path, Path, Path],
                                                           report: tuple[Path, str]) -> None:  # fmt: skip
    out, _ = report
    summary = json.loads((out.parent / "report.json").read_text())
    agent = json.loads(inputs[2].read_text())
    names = {figure["name"] for figure in summary["figures"]}
    assert {"churn_by_depth", "churn_by_hour", "session_reward_by_power", "session_revenue",
            "discount_share"} <= names  # fmt: skip
    for figure in summary["figures"]:
        assert Path(figure["png"]).is_file() and Path(figure["png"]).parent == out.parent / "figures"
        assert Path(figure["source"]).is_file() and figure["key"]
    assert summary["headline"]["retained_revenue"]["per_session"] == agent["retained_revenue"]["per_session"]
    assert summary["headline"]["best_agent"] == agent["best_agent"]


@pytest.mark.parametrize("spelling", [("sessions", "report"), ("report", "sessions")], ids=["new", "deprecated"])
def test_cli_writes_the_report(inputs: tuple[Path, Path, Path], tmp_path: Path, capsys, monkeypatch,
                               spelling: tuple[str, str]) -> None:  # fmt: skip
    eda, models, agent = inputs
    out = tmp_path / "final" / "report.html"
    code, stdout, stderr = run(capsys, monkeypatch, *spelling, "--eda", str(eda), "--models", str(models),
                               "--agent", str(agent), "--out", str(out))  # fmt: skip
    assert code == 0 and json.loads(stdout) == {"html": str(out), "json": str(out.parent / "report.json")}
    assert out.is_file() and (out.parent / "report.json").is_file()
    deprecated = "`nextbest report sessions` is now `nextbest sessions report`" in stderr
    assert deprecated == (spelling[0] == "report")


def test_missing_agent_key_is_a_clear_error(inputs: tuple[Path, Path, Path], tmp_path: Path, capsys,
                                            monkeypatch) -> None:  # fmt: skip
    eda, models, agent = inputs
    broken = json.loads(agent.read_text())
    del broken["retained_revenue"]
    bad = tmp_path / "broken_agent.json"
    bad.write_text(json.dumps(broken))
    code, _, stderr = run(capsys, monkeypatch, "sessions", "report", "--eda", str(eda), "--models", str(models),
                          "--agent", str(bad), "--out", str(tmp_path / "r.html"))  # fmt: skip
    assert code == 2 and "broken_agent.json" in stderr and "retained_revenue" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_missing_or_malformed_inputs_name_the_file(inputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    eda, models, agent = inputs
    with pytest.raises(NextbestError, match="models.json: not found"):
        write_sessions_report(eda, tmp_path, agent, tmp_path / "r.html")
    broken = json.loads(agent.read_text())
    first = next(iter(broken["policies"]))
    del broken["policies"][first]["revenue"]["ci"]
    (tmp_path / "agent.json").write_text(json.dumps(broken))
    missing_ci = rf"agent\.json: Object missing required field `ci` - at `\$\.policies\.{re.escape(first)}\.revenue`"
    with pytest.raises(NextbestError, match=missing_ci):
        write_sessions_report(eda, models, tmp_path / "agent.json", tmp_path / "r.html")
    with pytest.raises(NextbestError, match="give a .html path"):
        write_sessions_report(eda, models, agent, tmp_path / "r.json")

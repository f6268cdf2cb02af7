"""The `nextbest crm` commands end to end on the real data, and their answers to user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_each

NEXTBEST = [sys.executable, "-m", "nextbest.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NEXTBEST, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prepare → train (Q-learning, 4k episodes) → evaluate (small bootstrap) → report, via the CLI."""
    root = tmp_path_factory.mktemp("crm")
    steps = [
        ("crm", "prepare", "--out", str(root / "prep")),
        ("crm", "train", "--data", str(root / "prep"), "--episodes", "4000", "--seed", "1", "--out", str(root / "run")),
        ("crm", "evaluate", "--run", str(root / "run"), "--out", str(root / "eval"), "--bootstrap", "8",
         "--replications", "2", "--no-readings"),
        ("crm", "report", "--run", str(root / "run"), "--eval", str(root / "eval"), "--out", str(root / "report.html")),
    ]  # fmt: skip
    run_each(run_cli, steps)
    return root


def test_train_writes_the_contracted_files(pipeline: Path) -> None:
    final = json.loads((pipeline / "run" / "training_metrics_final.json").read_text())
    for key in ("wall_seconds", "episodes", "q_table_states", "max_abs_delta_q_last_10k",
                "policy_change_pct_last_10k", "epsilon_final"):  # fmt: skip
        assert key in final
    assert final["episodes"] == 4000
    assert (pipeline / "run" / "training_curves.png").stat().st_size > 1000
    assert (pipeline / "run" / "policy.npz").is_file()


def test_evaluate_writes_the_contracted_json(pipeline: Path) -> None:
    evaluation = json.loads((pipeline / "eval" / "evaluation.json").read_text())
    for name in ("learned", "random", "logged", "rule"):
        for metric in ("subscription_rate", "first_call_rate", "cost_per_acquisition", "roi"):
            assert metric in evaluation["policies"][name]
            assert len(evaluation["policies"][name][f"{metric}_ci"]) == 2
    assert set(evaluation["improvement_vs_random"]) >= {"factor", "ci"}
    assert len(evaluation["top_segments"]) == 3
    assert "within_ci_fraction" in evaluation["simulator_calibration"]
    assert "readings" not in evaluation  # --no-readings
    convergence = evaluation["convergence"]  # Q-learning retrained with both step sizes, the run's episodes
    assert convergence["episodes"] == 4000 and set(convergence["step_sizes"]) == {"constant", "visit-count"}
    for metrics in convergence["step_sizes"].values():
        assert metrics["q_table_states"] > 0 and "max_rel_delta_q_established_last_10k" in metrics
    assert 0 <= convergence["greedy_agreement"]["same_greedy_action_pct"] <= 100
    assert "Step sizes compared" in (pipeline / "report.html").read_text()


def test_report_is_one_self_contained_file(pipeline: Path) -> None:
    html = (pipeline / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert 'src="http' not in html and "<script src" not in html


def test_same_seed_same_training(pipeline: Path, tmp_path: Path) -> None:
    again = run_cli("crm", "train", "--data", str(pipeline / "prep"), "--episodes", "4000", "--seed", "1",
                    "--out", str(tmp_path / "run"))  # fmt: skip
    assert again.returncode == 0, again.stderr
    first = json.loads((pipeline / "run" / "training_metrics.json").read_text())
    second = json.loads((tmp_path / "run" / "training_metrics.json").read_text())
    assert first["mean_business_value"] == second["mean_business_value"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("crm", "train", "--out", "{tmp}/r", "--agent", "sarsa"), "--agent"),
        (("crm", "train", "--out", "{tmp}/r", "--data", "{tmp}/nowhere"), "not a prepared CRM folder"),
        (("crm", "train", "--out", "{tmp}/r", "--oversample", "0.5,0.6"), "--oversample"),
        (("crm", "train", "--out", "{tmp}/r", "--call-offer-rate", "1.5"), "call_offer_rate"),
        (("crm", "evaluate", "--run", "{tmp}/missing", "--out", "{tmp}/e"), "not a training run"),
        (("crm", "report", "--run", "{tmp}/missing", "--eval", "{tmp}/e", "--out", "{tmp}/x.html"), "missing"),
        (("crm", "prepare", "--out", "{tmp}/p", "--data", "{tmp}/none.csv"), "none.csv"),
    ],
)
def test_user_mistakes_end_with_one_line_and_exit_2(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_episodes_must_fit_the_batch(tmp_path: Path, pipeline: Path) -> None:
    result = run_cli("crm", "train", "--data", str(pipeline / "prep"), "--episodes", "1500", "--out", str(tmp_path))
    assert result.returncode == 2 and "multiple" in result.stderr


def test_every_command_has_help() -> None:
    for args in (("--help",), ("crm", "--help"), ("crm", "prepare", "--help"), ("crm", "train", "--help"),
                 ("crm", "evaluate", "--help"), ("crm", "report", "--help"), ("crm", "demo", "--help")):  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 0 and "Usage" in result.stdout, args


@pytest.mark.rl
@pytest.mark.parametrize("agent", ["ppo", "dqn"])
def test_sb3_agents_train_and_evaluate_through_the_cli(agent: str, pipeline: Path, tmp_path: Path) -> None:
    trained = run_cli("crm", "train", "--agent", agent, "--data", str(pipeline / "prep"), "--episodes", "1000",
                      "--out", str(tmp_path / "run"))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / f"{agent}_model.zip").is_file()
    evaluated = run_cli("crm", "evaluate", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "eval"),
                        "--bootstrap", "3", "--replications", "1", "--no-readings")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    evaluation = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert evaluation["policies"]["learned"]["subscription_rate"] is not None


def test_the_demo_runs_every_step_from_python(tmp_path: Path) -> None:
    """`crm demo` calls the other commands' functions with every option given (a new option left out would arrive
    as typer's OptionInfo object); a small run goes from prepare to the report, who and pilot included."""
    result = run_cli("crm", "demo", "--out", str(tmp_path / "demo"), "--episodes", "2000", "--bootstrap", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluation = json.loads((tmp_path / "demo" / "eval" / "evaluation.json").read_text())
    assert {"who", "pilot", "calibration"} <= set(evaluation)
    assert "Who to contact" in (tmp_path / "demo" / "report.html").read_text()


def test_train_under_a_reading_and_an_unknown_reading(pipeline: Path, tmp_path: Path) -> None:
    """--reading optimistic trains in that reading's simulator (in run.json); an unknown one: one line, exit 2."""
    result = run_cli("crm", "train", "--data", str(pipeline / "prep"), "--episodes", "1000", "--reading", "optimistic",
                     "--out", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["settings"]["offer_dial"] == 1.0
    bad = run_cli("crm", "train", "--data", str(pipeline / "prep"), "--reading", "hopeful",
                  "--out", str(tmp_path / "x"))  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--reading 'hopeful'" in bad.stderr and "optimistic" in bad.stderr


def test_a_fit_window_too_small_to_fit_is_one_line(pipeline: Path, tmp_path: Path) -> None:
    bad = run_cli("crm", "train", "--data", str(pipeline / "prep"), "--fit-window", "1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--fit-window 1" in bad.stderr and "widen it" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

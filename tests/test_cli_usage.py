"""The CLI as a person runs it: the installed `nextbest` console script in a subprocess. Every usage error prints
the usage line and one message and exits 2, never a traceback; `--version` prints the version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nextbest


def nextbest_script() -> str:
    script = Path(sys.executable).parent / "nextbest"
    if not script.exists():
        pytest.fail(f"no nextbest console script next to {sys.executable}: run `make install` (pip install -e .)")
    return str(script)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([nextbest_script(), *args], capture_output=True, text=True, timeout=120)


def test_old_verb_first_spellings_still_work_with_a_note() -> None:
    """`nextbest demo ab` is `nextbest ab demo` now: both parse the same options; the old one says so."""
    new, old = run("ab", "demo", "--model-kind", "nope"), run("demo", "ab", "--model-kind", "nope")
    assert new.returncode == old.returncode == 2 and "--model-kind 'nope'" in new.stderr + old.stderr
    assert "is now `nextbest ab demo`" in old.stderr and "is now" not in new.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"nextbest {nextbest.__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["crm", "prepare", "--nosuch"], "No such option: --nosuch"),
        (["crm", "nosuch"], "No such command 'nosuch'"),
        (["crm", "train", "--episodes", "many"], "Invalid value for '--episodes'"),
        (["stream", "run", "--model", "m.onnx", "--token", "t"], "Missing option '--bootstrap-servers'"),
        (["stream", "run", "--bootstrap-servers", "x:1", "--model", "m", "--token", "t", "--batch-size", "0"],
         "Invalid value for '--batch-size'"),
        (["--nosuch"], "No such option: --nosuch"),
    ],
)
def test_usage_errors_exit_2_with_usage_and_one_message(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("Usage: nextbest"), result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr

"""Run the `nextbest` CLI in-process from a test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest

from nextbest.cli.main import main


def run(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Run the CLI entry point in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["nextbest", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def run_each(run_cli: Callable[..., subprocess.CompletedProcess], steps: Sequence[Sequence[str]]) -> None:
    """Run CLI invocations in order; each must exit 0 (the failing one's output is in the assertion)."""
    for args in steps:
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)

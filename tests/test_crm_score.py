"""`nextbest crm score`: the open SalesCRM leads ranked, through the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

NEXTBEST = shutil.which("nextbest") or str(Path(sys.executable).with_name("nextbest"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([NEXTBEST, *args], capture_output=True, text=True, timeout=300)


def test_open_leads_are_ranked_with_an_interval_and_a_next_action(prepared_crm, tmp_path: Path) -> None:
    out = tmp_path / "leads.csv"
    result = run_cli("crm", "score", "--prepared", str(prepared_crm.directory), "--out", str(out), "--bootstrap", "40")
    assert result.returncode == 0, result.stderr
    leads = pd.read_csv(out)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["open_leads"] == len(leads) > 1000 and summary["funnel"] == "salescrm"
    assert leads["rank"].tolist() == list(range(1, len(leads) + 1))
    assert leads["score"].is_monotonic_decreasing and leads["lead_id"].is_unique
    assert ((leads["score_low"] <= leads["score_high"]) & leads["score"].between(0, 1)).all()
    inside = leads["score"].between(leads["score_low"], leads["score_high"]).mean()
    assert inside > 0.9, inside  # a refit's percentile interval holds the full fit's score for most leads
    assert "subscribed" not in set(leads["current_step"])  # converted leads are not open
    assert set(leads["next_action"]) <= {"email", "call", "demo", "survey", "manager", "none"}
    assert "open leads" in result.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = run_cli("crm", "score", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x.csv"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "does not exist" in missing.stderr
    folder = run_cli("crm", "score", "--prepared", str(tmp_path), "--out", str(tmp_path / "x.csv"))
    assert folder.returncode == 2 and "not a prepared CRM folder" in folder.stderr
    assert len(folder.stderr.strip().splitlines()) == 1

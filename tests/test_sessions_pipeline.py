"""`nextbest sessions pipeline`: ingest -> features -> eda -> models -> agent -> report, resumable, on the sample."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.cli_helpers import run

from nextbest.data.paths import resolve_data_file
from nextbest.errors import NextbestError
from nextbest.pipelines.sessions import STEPS, default_params, run_step_from_params

SMALL = ("--q-episodes", "2000", "--ppo-timesteps", "4096", "--eval-sessions", "2000")


def _pipeline(capsys, monkeypatch, root: Path, *extra: str) -> dict[str, str]:
    code, out, err = run(capsys, monkeypatch, "sessions", "pipeline", "--lake", str(root / "lake"), "--out",
                         str(root / "run"), *SMALL, *extra)  # fmt: skip
    assert code == 0, err
    return {name: step["status"] for name, step in json.loads(out)["steps"].items()}


def test_pipeline_runs_end_to_end_on_the_taobao_sample_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "UserBehavior.csv"
    shutil.copy(resolve_data_file("taobao", "UserBehavior_sample.csv", None), source)
    args = ("--source", "taobao", "--path", str(source))
    assert _pipeline(capsys, monkeypatch, tmp_path, *args) == dict.fromkeys(STEPS, "ran")
    run_dir = tmp_path / "run"
    ingest = json.loads((run_dir / "ingest" / "ingest.json").read_text())
    assert ingest["rows"] == 4321 and ingest["pages"] > 0
    agent = json.loads((run_dir / "agent" / "agent.json").read_text())
    assert {"q-learning", "ppo", "random", "greedy one-step", "always mixed"} <= set(agent["policies"])
    html = (run_dir / "report.html").read_text()
    assert "q-learning" in html and (run_dir / "eda" / "eda.html").exists()
    record = json.loads((run_dir / "pipeline.json").read_text())
    assert all(len(record["steps"][step]["key"]) == 64 for step in STEPS)

    # nothing changed: every step is skipped
    assert _pipeline(capsys, monkeypatch, tmp_path, *args) == dict.fromkeys(STEPS, "skipped")
    # an agent setting changed (more evaluation sessions): only the agent and the report run again
    statuses = _pipeline(capsys, monkeypatch, tmp_path, *args, "--eval-sessions", "3000")
    assert [step for step, status in statuses.items() if status == "ran"] == ["agent", "report"]
    # a deleted output is rebuilt
    (run_dir / "eda" / "eda.html").unlink()
    statuses = _pipeline(capsys, monkeypatch, tmp_path, *args, "--eval-sessions", "3000")
    assert statuses["eda"] == "ran" and statuses["models"] == "skipped"
    # the source changed: everything runs again
    lines = source.read_text().splitlines()
    source.write_text("\n".join(lines[:-500]) + "\n")
    assert _pipeline(capsys, monkeypatch, tmp_path, *args, "--eval-sessions", "3000") == dict.fromkeys(STEPS, "ran")
    assert json.loads((run_dir / "ingest" / "ingest.json").read_text())["rows"] == 4321 - 500


def test_one_step_and_force(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _pipeline(capsys, monkeypatch, tmp_path, "--sessions", "300", "--steps", "ingest,eda") == {
        "ingest": "ran", "eda": "ran"}  # fmt: skip
    statuses = _pipeline(capsys, monkeypatch, tmp_path, "--sessions", "300", "--steps", "ingest,eda", "--force")
    assert statuses == {"ingest": "ran", "eda": "ran"}


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--source", "pagelog"), "needs a path"), (("--steps", "ingest,train"), "unknown step"),
     (("--source", "kafka"), "choose one of"), (("--simulator-models", "xgb"), "choose one of")],
)  # fmt: skip
def test_bad_settings_exit_2_with_a_message(
    args: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    code, _, err = run(capsys, monkeypatch, "sessions", "pipeline", "--lake", str(tmp_path / "lake"), "--out",
                       str(tmp_path / "run"), *args)  # fmt: skip
    assert code == 2 and message in err


def test_params_of_the_airflow_tasks(tmp_path: Path) -> None:
    params = default_params()
    assert "storage" not in params and params["source"] == "synthetic"
    with pytest.raises(NextbestError, match="unknown pipeline param"):
        run_step_from_params("ingest", {**params, "colour": "red"})
    params.update(lake=str(tmp_path / "lake"), out=str(tmp_path / "run"), sessions=200)
    result = run_step_from_params("ingest", params)
    assert result["status"] == "ran" and result["outputs"]["table"].endswith("pages.parquet")
    assert run_step_from_params("ingest", params)["status"] == "skipped"


@pytest.mark.s3
def test_pipeline_on_an_s3_lake(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from nextbest.data.lake import Lake
    from nextbest.stream.objectstore import SeaweedFS

    with SeaweedFS(tmp_path / "weed") as store:
        lake = f"s3://{store.bucket}/lake"
        args = ["sessions", "pipeline", "--source", "taobao", "--lake", lake, "--out", str(tmp_path / "run"),
                "--steps", "ingest,features,models", "--endpoint-url", store.endpoint_url, "--key",
                store.access_key, "--secret", store.secret_key]  # fmt: skip
        code, out, err = run(capsys, monkeypatch, *args)
        assert code == 0, err
        assert {name: step["status"] for name, step in json.loads(out)["steps"].items()} == dict.fromkeys(
            ("ingest", "features", "models"), "ran")  # fmt: skip
        s3 = Lake(lake, endpoint_url=store.endpoint_url, key=store.access_key, secret=store.secret_key)
        assert s3.tables() == ["features", "pages"]
        record = json.loads((tmp_path / "run" / "pipeline.json").read_text())
        assert record["steps"]["ingest"]["checksum"] == s3.checksum("pages")
        code, out, err = run(capsys, monkeypatch, *args)
        assert code == 0 and all(step["status"] == "skipped" for step in json.loads(out)["steps"].values())


def test_custom_strategies_drive_the_agent_step(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategies = tmp_path / "strategies.json"
    strategies.write_text(json.dumps({"calm": {"engagement": 1.1}, "push": {"buy": 1.5, "price": 0.9, "fatigue": 1.0},
                                      "flash sale": {"buy": 2.0, "price": 0.5}}))  # fmt: skip
    steps = ("--sessions", "500", "--steps", "ingest,features,models,agent", "--strategies", str(strategies))
    assert set(_pipeline(capsys, monkeypatch, tmp_path, *steps).values()) == {"ran"}
    agent = json.loads((tmp_path / "run" / "agent" / "agent.json").read_text())
    assert list(agent["strategies"]["strategies"]) == ["calm", "push", "flash sale"]
    assert {"always calm", "always push", "always flash sale"} <= set(agent["policies"])
    # editing the file re-runs the agent (and nothing upstream)
    strategies.write_text(json.dumps({"calm": {}, "push": {"buy": 1.2}}))
    statuses = _pipeline(capsys, monkeypatch, tmp_path, *steps)
    assert statuses == {"ingest": "skipped", "features": "skipped", "models": "skipped", "agent": "ran"}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "cannot read strategies"), ('{"only": {}}', "at least two strategies"),
     ('{"a": {}, "b": {"colour": 1}}', "strategy 'b'"), ('{"a": {}, "b": {"buy": -1}}', "non-negative")],
)  # fmt: skip
def test_a_bad_strategies_file_exits_2_naming_it(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategies = tmp_path / "strategies.json"
    strategies.write_text(content)
    code, _, err = run(capsys, monkeypatch, "sessions", "pipeline", "--lake", str(tmp_path / "lake"), "--out",
                       str(tmp_path / "run"), "--strategies", str(strategies))  # fmt: skip
    assert code == 2 and message in err and "strategies.json" in err
    assert not (tmp_path / "run" / "pipeline.json").exists()

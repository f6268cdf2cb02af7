"""The platform's OpenAPI schema is its contract: schemathesis (`--checks all`, fixed seed) against the real
service on 127.0.0.1 finds nothing.

The test starts the app with uvicorn on a SQLite file, creates two experiments, and runs the venv's
`schemathesis run --checks all` (fixed seed, 200 examples per operation, every phase: examples, coverage,
fuzzing, stateful) with the first one's token on every operation but ``POST .../conversions``: conversions belong
to binary experiments (the first one is continuous: its conversions get 409), so a second run checks that operation
alone with the token of a third, binary experiment. This file is also the run's hooks file (``SCHEMATHESIS_HOOKS``):
its one hook, ``before_call``, runs before every request schemathesis sends and

- points most valid ``experiment_id`` path parameters at the seeded experiments (4 in 8 at the one the token
  opens, 1 in 8 at the other one, so writes meet 403), leaves the rest alone (unknown ids: 404), and never touches
  an id the run itself created or drew from the experiments it saw (ids up to 1,000: their chains stay intact)
  nor an invalid one (those test the 422s);
- makes a schema-valid experiment design coherent, the rules JSON Schema cannot state: ``sample_size`` is
  raised to the size ``effect`` / ``sd`` need at ``alpha`` and ``power`` (with ``sd`` = |effect| when no sample
  of at most 10**9 units per arm would do); for a binary design to the size of the change of rate from
  ``baseline`` to ``baseline + effect``, which must lie inside (0, 1) (``baseline`` 0.5 and ``effect`` ±0.25 when
  it does not, or when no sample of at most 10**9 units per arm would do); a ratio design like a continuous one.
  Its secondary metrics and guardrails get distinct names, none equal to its own denominator (the names are
  unique across both lists and a ratio does not divide a value by itself: rules JSON Schema cannot state). A
  design the server's model refuses is left as generated, so that a schema allowing what the server refuses still
  fails the run.

- fits every other valid outcome or conversion body to the seeded experiments, which declare no covariate,
  denominator or values: it drops those fields (which rows an experiment needs is the experiment's, not the
  schema's); the other bodies carrying them get 409 (declared, and nothing recorded). A body off the schema is
  left alone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SEED = 20240611
MAX_EXAMPLES = 200
LOCAL_IDS = 1_000  # ids up to this one are left alone: the experiments the run creates itself live there
ENV_IDS = "NEXTBEST_ST_EXPERIMENTS"  # "<id the token opens>,<another id>", for the hook
DESIGN = {"owner": "schemathesis", "name": "contract", "effect": 5.0, "sd": 10.0, "sample_size": 64}
BINARY = {"owner": "schemathesis", "name": "contract", "metric": "binary", "baseline": 0.2, "effect": 0.1,
          "sample_size": 300}  # fmt: skip
CONVERSIONS = "/api/experiments/{experiment_id}/conversions"


# ---------------------------------------------------------------------------------------------- the hook


def _seeded_ids() -> tuple[int, int] | None:
    raw = os.environ.get(ENV_IDS)
    if not raw:
        return None
    own, other = (int(part) for part in raw.split(","))
    return own, other


def existing_id(value: Any, own: int, other: int) -> Any:
    """The experiment id a request goes to: ``value`` itself when invalid or small, else mostly a seeded one.

    Path parameters reach the hook as integers or as their text; the answer keeps the form it was given."""
    number = int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value
    if not isinstance(number, int) or isinstance(number, bool) or not LOCAL_IDS < number <= 2**31 - 1:
        return value
    slot = number % 8
    chosen = own if slot < 4 else other if slot == 4 else number
    return str(chosen) if isinstance(value, str) else chosen


def distinct_names(body: Any) -> Any:
    """``body`` with distinct names for its secondary metrics and guardrails, none equal to its own denominator."""
    if not isinstance(body, dict):
        return body
    taken: set[str] = set()
    fixed = dict(body)
    for key in ("secondary", "guardrails"):
        if not isinstance(body.get(key), list):
            continue
        fixed[key] = []
        for spec in body[key]:
            if isinstance(spec, dict) and isinstance(spec.get("name"), str):
                name, attempt = spec["name"], 0
                while name in taken or name == spec.get("denominator"):
                    name, attempt = f"m{attempt}_{spec['name'][:40]}", attempt + 1
                spec = {**spec, "name": name}
                taken.add(name)
            fixed[key].append(spec)
    return fixed


def coherent_design(body: Any) -> Any:
    """``body`` with the sample size its design needs (and distinct metric names), when it is a design the server's
    model accepts."""
    from pydantic import TypeAdapter, ValidationError

    from nextbest.errors import NextbestError
    from nextbest.experiments import sample_size
    from nextbest.platform.schemas import SAMPLE_SIZE_MAX, BinaryExperimentIn, ExperimentDesign

    try:
        spec = TypeAdapter(ExperimentDesign).validate_python(distinct_names(body))
    except ValidationError:
        return body
    body = distinct_names(body)
    if isinstance(spec, BinaryExperimentIn):
        return coherent_binary_design(body, spec)
    try:
        needed = int(sample_size(spec.effect, spec.sd, spec.alpha, spec.power, spec.alternative))
    except (NextbestError, ValueError, OverflowError):
        needed = SAMPLE_SIZE_MAX + 1
    if needed > SAMPLE_SIZE_MAX:  # no sample can detect this effect against this sd: take sd = |effect|
        body = {**body, "sd": abs(spec.effect)}
        needed = int(sample_size(spec.effect, abs(spec.effect), spec.alpha, spec.power, spec.alternative))
    return {**body, "sample_size": max(spec.sample_size, needed)}


def coherent_binary_design(body: dict[str, Any], spec: Any) -> dict[str, Any]:
    """A binary ``body`` (validated as ``spec``) with a treatment rate inside (0, 1) and the sample size it needs."""
    import math

    from nextbest.errors import NextbestError
    from nextbest.experiments import sample_size_binary
    from nextbest.platform.schemas import SAMPLE_SIZE_MAX

    def needed(baseline: float, effect: float) -> int:
        if not 0 < baseline + effect < 1:
            return SAMPLE_SIZE_MAX + 1
        try:
            return int(sample_size_binary(baseline, effect, spec.alpha, spec.power, spec.alternative, relative=False))
        except (NextbestError, ValueError, OverflowError):
            return SAMPLE_SIZE_MAX + 1

    size = needed(spec.baseline, spec.effect)
    if size > SAMPLE_SIZE_MAX:  # an impossible rate, or no sample detects this change: a change of 0.25 from 0.5
        body = {**body, "baseline": 0.5, "effect": math.copysign(0.25, spec.effect)}
        size = needed(0.5, body["effect"])
    return {**body, "sample_size": max(spec.sample_size, size)}


_WRITES_SEEN = [0]
EXPERIMENT_FIELDS = ("covariate", "denominator", "values")


def fitted_rows(body: Any, path: str) -> Any:
    """Every other valid body of ``.../outcomes`` or ``.../conversions`` without covariate, denominator and values;
    the rest (and any body off the schema) unchanged."""
    from pydantic import TypeAdapter, ValidationError

    from nextbest.platform.schemas import ConversionIn, OutcomeIn

    model = ConversionIn if path.endswith("/conversions") else OutcomeIn
    try:
        TypeAdapter(model | list[model]).validate_python(body)
    except ValidationError:
        return body
    _WRITES_SEEN[0] += 1
    if _WRITES_SEEN[0] % 2:
        return body
    return [_plain_row(row) for row in body] if isinstance(body, list) else _plain_row(body)


def _plain_row(row: Any) -> Any:
    """``row`` without the fields only some experiments take (covariate, denominator, values)."""
    return {key: value for key, value in row.items() if key not in EXPERIMENT_FIELDS} if isinstance(row, dict) else row


def _register_hook() -> None:
    import schemathesis

    @schemathesis.hook
    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        """Aim ids at the seeded experiments and make valid designs coherent (see the module docstring)."""
        seeded = _seeded_ids()
        if seeded is None:
            return
        parameters = case.path_parameters or {}
        if "experiment_id" in parameters:
            parameters["experiment_id"] = existing_id(parameters["experiment_id"], *seeded)
        if case.method.upper() == "POST" and case.operation.path == "/api/experiments" and isinstance(case.body, dict):
            case.body = coherent_design(case.body)
        if case.method.upper() == "POST" and case.operation.path.endswith(("/outcomes", "/conversions")):
            case.body = fitted_rows(case.body, case.operation.path)


if os.environ.get(ENV_IDS):  # imported by schemathesis as its hooks module
    _register_hook()


# ---------------------------------------------------------------------------------------------- the run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(base: str, server: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the platform exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail("the platform did not answer /healthz within a minute")


@pytest.fixture()
def platform(tmp_path: Path):
    """The platform served by uvicorn on a free port of 127.0.0.1 over a SQLite file; its base URL."""
    port = _free_port()
    code = (
        "import sys, uvicorn\n"
        "from nextbest.platform import create_app\n"
        "uvicorn.run(create_app(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')\n"
    )
    log = tmp_path / "platform.log"
    with log.open("w") as sink:
        server = subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path / 'contract.db'}", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server, log)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _create(base: str, name: str, design: dict[str, Any] = DESIGN) -> tuple[int, str]:
    import httpx

    response = httpx.post(f"{base}/api/experiments", json={**design, "name": name}, timeout=10.0)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def _schemathesis() -> str:
    executable = Path(sys.executable).parent / "schemathesis"
    if not executable.exists():
        pytest.fail(f"schemathesis is not installed in this environment: pip install -e '.[dev]' ({executable})")
    return str(executable)


def _kind(method: str, uri: str) -> str | None:
    """'writes' for decisions and outcomes, 'creations' for new experiments, None for other requests."""
    if method != "POST":
        return None
    path = uri.split("?")[0]
    if path.endswith(("/decisions", "/outcomes", "/conversions")):
        return "writes"
    return "creations" if path.endswith("/api/experiments") else None


def _summary(report: Path) -> dict[str, Any]:
    """From the run's NDJSON events: operations, test cases (and their recorded requests), checks run and failed,
    and the statuses writes and creations answered (did the checks meet existing experiments, and unknown ones?)."""
    operations: set[str] = set()
    summary: dict[str, Any] = {"cases": 0, "interactions": 0, "checks": 0, "failures": 0, "writes": {}, "creations": {}}
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        recorder = finished.get("recorder", {}) if finished else {}
        if "cases" not in recorder:
            continue
        operations.add(recorder["label"])
        summary["cases"] += len(recorder["cases"])
        summary["interactions"] += len(recorder.get("interactions", {}))
        results = [check for checks in recorder["checks"].values() for check in checks]
        summary["checks"] += len(results)
        summary["failures"] += sum(check["status"] in ("failure", "error") for check in results)
        for interaction in recorder.get("interactions", {}).values():
            request, response = interaction["request"], interaction.get("response") or {}
            kind = _kind(request["method"], request["uri"])
            if kind:
                statuses = summary[kind]
                status = str(response.get("status_code"))
                statuses[status] = statuses.get(status, 0) + 1
    summary["operations"] = sorted(operations - {"Stateful tests"})
    return summary


def _run(platform: str, folder: Path, token: str, ids: tuple[int, int], *options: str) -> tuple[str, dict[str, Any]]:
    """`schemathesis run --checks all` against ``platform`` with ``token`` (hooks aimed at ``ids``); its output and
    the summary of its report. A failed run fails the test with the output."""
    folder.mkdir(exist_ok=True)
    report = folder / "events.ndjson"
    command = [
        _schemathesis(), "run", f"{platform}/openapi.json",
        "--checks", "all", "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
        "--header", f"Authorization: Bearer {token}", "--generation-database", "none", "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report), *options,
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve()), ENV_IDS: f"{ids[0]},{ids[1]}"}
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-12000:]
    return output, _summary(report)


def test_schemathesis_finds_nothing(platform: str, tmp_path: Path) -> None:
    own, token = _create(platform, "the token's experiment")
    other, _ = _create(platform, "another experiment")
    binary, binary_token = _create(platform, "a conversion", BINARY)
    output, summary = _run(platform, tmp_path / "all", token, (own, other), "--exclude-path", CONVERSIONS)
    print(json.dumps({key: value for key, value in summary.items() if key != "operations"}))
    assert len(summary["operations"]) == 10 and summary["failures"] == 0, summary
    assert summary["cases"] >= 10 * 100 and summary["checks"] > summary["cases"]
    writes = summary["writes"]  # decisions and outcomes met the open experiment, another one and unknown ids
    assert writes.get("200", 0) >= 50 and writes.get("403", 0) >= 10 and writes.get("404", 0) >= 5, writes
    assert summary["creations"].get("201", 0) >= 50, summary["creations"]  # coherent designs were created
    assert "No issues found" in output, output[-3000:]
    output, summary = _run(platform, tmp_path / "conversions", binary_token, (binary, own), "--include-path",
                           CONVERSIONS)  # fmt: skip
    print(json.dumps({key: value for key, value in summary.items() if key != "operations"}))
    assert summary["operations"] == [f"POST {CONVERSIONS}"] and summary["failures"] == 0, summary
    writes = summary["writes"]  # conversions met the binary experiment, a continuous one and unknown ids
    assert writes.get("200", 0) >= 50 and writes.get("403", 0) >= 10 and writes.get("404", 0) >= 5, writes
    assert "No issues found" in output, output[-3000:]

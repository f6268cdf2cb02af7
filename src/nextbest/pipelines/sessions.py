"""The session-retention pipeline as named, resumable steps: ingest -> features -> eda -> models -> agent -> report.

    config = SessionPipelineConfig(source="taobao", lake="runs/lake", out=Path("runs/sessions"))
    run_pipeline(config)            # runs what changed, skips the rest; returns the run's summary
    run_step("models", config)      # one step (what each Airflow task calls; see ``airflow_dag.py``)

Every step has a key: the SHA-256 of its name, nextbest's version, its settings and the checksums of its inputs
(the source file's path, size and modification time for ``ingest``; the lake tables' bytes and the upstream
outputs' bytes after that). ``<out>/pipeline.json`` records each step's key, outputs and the checksum of what it
wrote. A step whose key is recorded and whose outputs still exist is skipped; a changed input changes its key, so
it runs again and so do the steps that read what it wrote. ``force`` runs every step. Code changes within one
version are not detected: use ``force`` after editing the code.

Outputs:
    ingest    <lake>/processed/pages.parquet      (the page table; a Taobao file sessionized by DuckDB here or, with
                                                  ``engine="spark"``, by Spark on ``spark_master``: the same table)
    features  <lake>/processed/features.parquet   (``nextbest.models.sessions.feature_table``)
    eda       <out>/eda/                          (eda.json, eda.html, figures/)
    models    <out>/models/                       (models.json: scratch vs scikit-learn vs LightGBM; models.pkl)
    agent     <out>/agent/agent.json              (Q-learning and PPO against the baselines in the learned simulator)
              <out>/agent/strategy_estimates.json (with a strategy log: the strategies' effects estimated from it)
    report    <out>/report.html, <out>/report.json

The JSON files are typed results (``nextbest.results.Result``): ``ingest.json`` a ``SyntheticIngest``,
``TaobaoIngest`` or ``PagelogIngest``; ``models.json`` a ``SessionModels``; ``agent.json`` a ``SessionAgentRun``;
``pipeline.json`` a ``PipelineRecord``; ``strategy_estimates.json`` a
``nextbest.sim.strategy_effects.StrategyEstimates``.

The strategies' effects are assumed (``STRATEGIES`` or the ``strategies`` JSON) unless ``strategy_log`` names an
exploration log (pages served under random strategies with their propensities, CSV or Parquet; ``nextbest sessions
explore`` writes one from the synthetic world): then the agent step estimates the engagement, buy and price
multipliers from it (``nextbest.sim.strategy_effects``, relative to the first strategy whose multipliers are 1) and
the agents train on the simulator built from the estimates; agent.json's ``strategies`` says which parameter is
estimated and which assumed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from nextbest import __version__
from nextbest.agents.sessions import SessionStudy
from nextbest.data.lake import Lake
from nextbest.data.taobao import DEFAULT_SPARK_MASTER, ENGINES
from nextbest.errors import NextbestError
from nextbest.results import Result
from nextbest.sim.sessions import SessionWorldConfig

STEPS = ("ingest", "features", "eda", "models", "agent", "report")
SOURCES = ("taobao", "pagelog", "synthetic")
SIMULATOR_MODELS = ("scratch", "sklearn", "gbm")


@dataclass
class SessionPipelineConfig:
    """Where the data come from and go, and the settings of every step (all part of the steps' keys)."""

    source: str = "synthetic"
    lake: str = "runs/sessions/lake"
    out: Path = Path("runs/sessions")
    path: str | None = None
    sessions: int = 20_000
    seed: int = 0
    simulator_models: str = "sklearn"
    q_episodes: int = 200_000
    ppo_timesteps: int = 1_000_000
    eval_sessions: int = 100_000
    strategies: str | None = None
    strategy_log: str | None = None
    layout: str = "nextbest"
    engine: str = "duckdb"
    spark_master: str = DEFAULT_SPARK_MASTER
    storage: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise NextbestError(f"source {self.source!r}: choose one of {', '.join(SOURCES)}")
        if self.source == "pagelog" and not self.path:
            raise NextbestError("source pagelog needs a path to the page log file")
        if self.engine not in ENGINES:
            raise NextbestError(f"engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.engine != "duckdb" and self.source != "taobao":
            raise NextbestError(f"engine {self.engine} sessionizes Taobao UserBehavior files: use it with source "
                                f"taobao, not {self.source}")  # fmt: skip
        if self.simulator_models not in SIMULATOR_MODELS:
            raise NextbestError(f"simulator models {self.simulator_models!r}: choose one of "
                                f"{', '.join(SIMULATOR_MODELS)}")  # fmt: skip
        if min(self.sessions, self.q_episodes, self.eval_sessions) < 1 or self.ppo_timesteps < 0:
            raise NextbestError("sessions, q_episodes and eval_sessions must be positive, ppo_timesteps >= 0")
        self._strategies_json()  # a bad strategies file fails before any step runs
        self._strategy_log_json()  # so does a bad strategy log
        if self.source == "pagelog":
            from nextbest.data.pagelog import layout_named

            layout_named(self.layout)  # so does an unknown layout

    def _strategies_json(self) -> dict[str, Any] | None:
        """The strategies file's content (so that editing it re-runs the agent), None for the defaults."""
        if self.strategies is None:
            return None
        from nextbest.sim.session_sim import read_strategies

        return {name: strategy.to_dict() for name, strategy in read_strategies(self.strategies).items()}

    def assumed_strategies(self) -> dict[str, Any]:
        """The assumed strategies: the strategies file's, or ``STRATEGIES``."""
        from nextbest.sim.session_sim import STRATEGIES, read_strategies

        return read_strategies(self.strategies) if self.strategies else dict(STRATEGIES)

    def _strategy_log_json(self) -> dict[str, Any] | None:
        """The strategy log's path and checksum (so that a new log re-runs the agent), after checking it against the
        assumed strategies; None without a log."""
        if self.strategy_log is None:
            return None
        from nextbest.sim.strategy_effects import load_strategy_log, reference_strategy

        assumed = self.assumed_strategies()
        reference_strategy(assumed)
        load_strategy_log(self.strategy_log, assumed)
        return {"path": str(Path(self.strategy_log).resolve()), "sha256": _sha(Path(self.strategy_log).read_bytes())}

    @property
    def lake_(self) -> Lake:
        return Lake(self.lake, **{k: v for k, v in self.storage.items() if v})

    def settings(self, step: str) -> dict[str, Any]:
        """The settings that change what ``step`` produces."""
        return {
            "ingest": {"source": self.source, "path": self.path, "sessions": self.sessions, "seed": self.seed,
                       "lake": self.lake, **({"layout": self.layout} if self.source == "pagelog" else {}),
                       **({"engine": self.engine} if self.engine != "duckdb" else {})},
            "features": {}, "eda": {}, "models": {"seed": self.seed},
            "agent": {"simulator_models": self.simulator_models, "q_episodes": self.q_episodes,
                      "ppo_timesteps": self.ppo_timesteps, "eval_sessions": self.eval_sessions, "seed": self.seed,
                      "strategies": self._strategies_json(), "strategy_log": self._strategy_log_json()},
            "report": {},
        }[step]  # fmt: skip


class StepResult(Result):
    """What ``run_step`` did: "ran" or "skipped", how long it took, and its outputs (label -> path)."""

    name: str
    status: str
    seconds: float
    outputs: dict[str, str]


class StepRecord(Result):
    """One step in ``pipeline.json``: its key, last status, run time, outputs, the checksum of what the next steps
    read, and its settings (``SessionPipelineConfig.settings``; their keys differ by step)."""

    key: str
    status: str
    seconds: float
    outputs: dict[str, str]
    checksum: str
    settings: dict[str, Any]


class PipelineRecord(Result):
    """``<out>/pipeline.json``: every step run so far, by name."""

    steps: dict[str, StepRecord] = msgspec.field(default_factory=dict)

    def summary(self, out: Path) -> PipelineSummary:
        """What ``nextbest sessions pipeline`` prints: where the record is and each step's status and outputs."""
        return PipelineSummary(pipeline=str(Path(out) / "pipeline.json"),
                               steps={name: StepSummary(status=step.status, seconds=step.seconds, outputs=step.outputs)
                                      for name, step in self.steps.items()})  # fmt: skip


class StepSummary(Result):
    """One step as the pipeline command prints it."""

    status: str
    seconds: float
    outputs: dict[str, str]


class PipelineSummary(Result):
    """The pipeline command's JSON: the record's path and each step's status, seconds and outputs."""

    pipeline: str
    steps: dict[str, StepSummary]


class MalformedRow(Result):
    """A source line that was not read, and why."""

    line: int
    reason: str


class SyntheticIngest(Result):
    """``ingest.json`` of the synthetic source: sessions and pages generated, the world's ground truth, the table."""

    source: str
    sessions: int
    pages: int
    malformed_rows: int
    truth: SessionWorldConfig
    out: str


class TaobaoIngest(Result):
    """``ingest.json`` of a Taobao UserBehavior file (``nextbest.data.taobao.sessionize_to_lake``); ``path`` is the
    CSV, ``engine`` what sessionized it (duckdb or spark: the same table and counts)."""

    source: str
    out: str
    rows: int
    events: int
    sessions: int
    pages: int
    malformed_rows: int
    seconds: float
    malformed: list[MalformedRow]
    path: str
    engine: str = "duckdb"


class PagelogIngest(Result):
    """``ingest.json`` of a page log (``nextbest.data.pagelog.read_page_log``) in ``layout``."""

    source: str
    path: str
    layout: str
    lines: int
    pages: int
    malformed_rows: int
    malformed: list[MalformedRow]
    sessions: int
    out: str


IngestSummary = SyntheticIngest | TaobaoIngest | PagelogIngest


class SessionAgentRun(SessionStudy):
    """``agent.json``: the study of ``compare_policies`` and which fitted models drove the simulator."""

    simulator_models: str


def run_pipeline(config: SessionPipelineConfig, steps: tuple[str, ...] = STEPS, force: bool = False,
                 progress: Callable[[str, str], None] | None = None) -> PipelineRecord:  # fmt: skip
    """Run ``steps`` in order (each skipped when its key is unchanged, unless ``force``); ``progress(step,
    status)`` before ("checking") and after ("ran"/"skipped") each step, and with "working: <what>" while a long
    step works. Returns ``pipeline.json``."""
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise NextbestError(f"unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    for step in steps:
        if progress:
            progress(step, "checking")
        say = (lambda message, step=step: progress(step, f"working: {message}")) if progress else None
        result = run_step(step, config, force=force, progress=say)
        if progress:
            progress(step, result.status)
    return read_state(config.out)


def run_step(name: str, config: SessionPipelineConfig, force: bool = False,
             progress: Callable[[str], None] | None = None) -> StepResult:  # fmt: skip
    """Run one step unless its key (settings + input checksums) matches the recorded run and its outputs exist;
    ``progress(message)`` tells what a long step is doing."""
    config.validate()
    if name not in STEPS:
        raise NextbestError(f"unknown step {name!r}; the steps are {', '.join(STEPS)}")
    state = read_state(config.out)
    key = _key(name, config, state)
    recorded = state.steps.get(name)
    if not force and recorded is not None and recorded.key == key and _outputs_exist(recorded.outputs, config):
        result = StepResult(name=name, status="skipped", seconds=0.0, outputs=recorded.outputs)
        recorded.status = "skipped"
    else:
        started = time.perf_counter()
        runner = _RUNNERS[name]
        outputs = runner(config, progress) if name == "agent" else runner(config)
        seconds = round(time.perf_counter() - started, 2)
        result = StepResult(name=name, status="ran", seconds=seconds, outputs=outputs)
        state.steps[name] = StepRecord(key=key, status="ran", seconds=seconds, outputs=outputs,
                                       checksum=_output_checksum(outputs, config),
                                       settings=config.settings(name))  # fmt: skip
    write_state(config.out, state)
    return result


# ---------------------------------------------------------------------------------------------- state and keys
def read_state(out: Path) -> PipelineRecord:
    """``<out>/pipeline.json`` (an empty record when absent); a malformed one is a NextbestError naming it."""
    path = Path(out) / "pipeline.json"
    if not path.exists():
        return PipelineRecord()
    return PipelineRecord.load(path, "not a pipeline record; delete it to start again")


def write_state(out: Path, state: PipelineRecord) -> None:
    state.write(Path(out) / "pipeline.json")


_INPUTS = {"features": ("ingest",), "eda": ("ingest",), "models": ("features",), "agent": ("ingest", "models"),
           "report": ("eda", "models", "agent")}  # fmt: skip


def _key(name: str, config: SessionPipelineConfig, state: PipelineRecord) -> str:
    inputs: dict[str, Any] = {"settings": config.settings(name), "nextbest": __version__}
    if name == "ingest":
        inputs["source"] = _source_fingerprint(config)
    for upstream in _INPUTS.get(name, ()):
        recorded = state.steps.get(upstream)
        inputs[upstream] = recorded.checksum if recorded is not None else None
    return _sha(json.dumps({"step": name, **inputs}, sort_keys=True, default=str).encode())


def _source_fingerprint(config: SessionPipelineConfig) -> dict[str, Any] | None:
    if config.source == "synthetic":
        return None
    path = _source_path(config)
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _source_path(config: SessionPipelineConfig) -> Path:
    from nextbest.data.paths import resolve_data_file

    if config.source == "taobao":
        return resolve_data_file("taobao", "UserBehavior_sample.csv", Path(config.path) if config.path else None)
    path = Path(config.path or "")
    if not path.is_file():
        raise NextbestError(f"{path}: no such page log file")
    return path


def _output_checksum(outputs: dict[str, str], config: SessionPipelineConfig) -> str:
    """Checksum of what the next steps read: the lake table (ingest, features) or the step's JSON (the rest)."""
    if "table" in outputs:
        return config.lake_.checksum(Path(outputs["table"]).stem) or ""
    return _sha(Path(outputs["json"]).read_bytes())


def _outputs_exist(outputs: dict[str, str], config: SessionPipelineConfig) -> bool:
    lake = config.lake_
    for label, location in outputs.items():
        exists = lake.checksum(Path(location).stem) is not None if label == "table" else Path(location).exists()
        if not exists:
            return False
    return bool(outputs)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- the steps
def _ingest(config: SessionPipelineConfig) -> dict[str, str]:
    """The source into the lake's page table; ``<out>/ingest/ingest.json`` holds the counts (and malformed rows)."""
    summary = ingest_source(config.source, config.lake_, config.path, config.sessions, config.seed, config.layout,
                            config.engine, config.spark_master)  # fmt: skip
    path = summary.write(config.out / "ingest" / "ingest.json")
    return {"table": summary.out, "json": str(path)}


def ingest_source(source: str, lake: Lake, path: str | Path | None = None, sessions: int = 20_000,
                  seed: int = 0, layout: str = "nextbest", engine: str = "duckdb",
                  spark_master: str = DEFAULT_SPARK_MASTER) -> IngestSummary:  # fmt: skip
    """Clean ``source`` (taobao: UserBehavior CSV, default the shared sample, sessionized by ``engine``, duckdb on
    this machine or spark on ``spark_master``; pagelog: the page log at ``path`` written in ``layout``, a name of
    ``nextbest.data.pagelog.LAYOUTS`` or a layout JSON file; synthetic: ``sessions`` sessions of the ground-truth
    world of ``seed``) into ``lake``'s page table. Returns the summary: input ``path``, rows read, pages, sessions,
    malformed rows with line numbers, the table (``out``)."""
    config = SessionPipelineConfig(source=source, path=str(path) if path else None, sessions=sessions, seed=seed,
                                   layout=layout, engine=engine, spark_master=spark_master)  # fmt: skip
    config.validate()
    if source == "synthetic":
        from nextbest.sim.sessions import SessionWorld, SessionWorldConfig

        world = SessionWorld(SessionWorldConfig(seed=seed))
        pages = world.pages(sessions)
        return SyntheticIngest(source=source, sessions=sessions, pages=len(pages), malformed_rows=0,
                               truth=world.truth(), out=lake.write_table("pages", pages))  # fmt: skip
    if source == "taobao":
        from nextbest.data.taobao import sessionize_to_lake

        done = sessionize_to_lake(_source_path(config), lake, engine=engine, spark_master=spark_master)
        return TaobaoIngest(source=source, out=done.out, rows=done.rows, events=done.events, sessions=done.sessions,
                            pages=done.pages, malformed_rows=done.malformed_rows, seconds=done.seconds,
                            malformed=_malformed(done.malformed), path=done.source, engine=engine)  # fmt: skip
    from nextbest.data.pagelog import read_page_log

    result = read_page_log(_source_path(config), layout)
    return PagelogIngest(source=source, path=str(path), layout=layout, lines=result.lines, pages=len(result.pages),
                         malformed_rows=result.malformed_rows, malformed=_malformed(result.malformed),
                         sessions=int(result.pages.session_id.nunique()),
                         out=lake.write_table("pages", result.pages))  # fmt: skip


def _malformed(rows: list[tuple[int, str]]) -> list[MalformedRow]:
    return [MalformedRow(line=line, reason=reason) for line, reason in rows]


def _features(config: SessionPipelineConfig) -> dict[str, str]:
    from nextbest.models.sessions import feature_table

    lake = config.lake_
    return {"table": lake.write_table("features", feature_table(lake.read_table("pages")))}


def _eda(config: SessionPipelineConfig) -> dict[str, str]:
    from nextbest.report.eda import write_eda

    lake = config.lake_
    html = write_eda(lake.read_table("pages"), config.out / "eda", lake.path("pages"))
    return {"html": str(html), "json": str(config.out / "eda" / "eda.json")}


def _models(config: SessionPipelineConfig) -> dict[str, str]:
    table = config.lake_.read_table("features")
    return {label: str(path) for label, path in fit_and_save_models(table, config.out / "models", config.seed).items()}


def fit_and_save_models(pages: Any, folder: Path, seed: int = 0) -> dict[str, Path]:
    """``fit_session_models`` on a page table (or its feature table); writes ``folder/models.json`` (the metrics, a
    ``SessionModels``) and ``folder/models.pkl`` (the fitted models); returns both paths as {"json", "models"}."""
    from nextbest.models.sessions import fit_session_models

    fitted, table = fit_session_models(pages, seed=seed)
    table.write(folder / "models.json")
    with (folder / "models.pkl").open("wb") as handle:
        pickle.dump(fitted, handle)
    return {"json": folder / "models.json", "models": folder / "models.pkl"}


def _agent(config: SessionPipelineConfig, progress: Callable[[str], None] | None = None) -> dict[str, str]:
    from nextbest.agents.sessions import QLearningConfig, SessionPPOConfig, compare_policies
    from nextbest.sim.session_sim import SessionSimulator

    with (config.out / "models" / "models.pkl").open("rb") as handle:
        fitted = pickle.load(handle)
    name = config.simulator_models
    options: dict[str, Any] = {"strategies": config.assumed_strategies()}
    outputs = {}
    if config.strategy_log:
        from nextbest.sim.strategy_effects import estimate_from_log

        if progress:
            progress("estimating the strategies' effects from the strategy log")
        estimates = estimate_from_log(config.strategy_log, options["strategies"], seed=config.seed)
        outputs["estimates"] = str(estimates.write(config.out / "agent" / "strategy_estimates.json"))
        options = estimates.simulator_options(config.strategy_log)
    else:
        (config.out / "agent" / "strategy_estimates.json").unlink(missing_ok=True)  # from an earlier run with a log
    simulator = SessionSimulator.from_pages(config.lake_.read_table("pages"), fitted[f"churn_{name}"],
                                            fitted[f"value_{name}"], **options)  # fmt: skip
    ppo = SessionPPOConfig(timesteps=config.ppo_timesteps, seed=config.seed) if config.ppo_timesteps else None
    study = compare_policies(simulator, QLearningConfig.for_sessions(episodes=config.q_episodes, seed=config.seed), ppo,
                             sessions=config.eval_sessions, progress=progress)  # fmt: skip
    run = SessionAgentRun(**msgspec.structs.asdict(study), simulator_models=name)
    return {"json": str(run.write(config.out / "agent" / "agent.json")), **outputs}


def _report(config: SessionPipelineConfig) -> dict[str, str]:
    from nextbest.report.sessions import write_sessions_report

    html = write_sessions_report(config.out / "eda", config.out / "models", config.out / "agent" / "agent.json",
                                 config.out / "report.html")  # fmt: skip
    return {"html": str(html), "json": str(Path(html).with_name("report.json"))}


_RUNNERS: dict[str, Callable[..., dict[str, str]]] = {
    "ingest": _ingest, "features": _features, "eda": _eda, "models": _models, "agent": _agent, "report": _report,
}  # fmt: skip


def config_as_json(config: SessionPipelineConfig) -> dict[str, Any]:
    """The configuration without secrets (for logs and Airflow params)."""
    payload = asdict(config)
    payload["out"] = str(config.out)
    payload["storage"] = {k: ("***" if k in ("key", "secret") and v else v) for k, v in config.storage.items()}
    return payload


def default_params() -> dict[str, Any]:
    """The DAG's params: every ``SessionPipelineConfig`` field but ``storage``, at its default."""
    params = config_as_json(SessionPipelineConfig())
    params.pop("storage")
    return params


def run_step_from_params(step: str, params: dict[str, Any]) -> dict[str, Any]:
    """``run_step`` with a configuration from plain params (an Airflow task's); returns the step's result as plain
    builtins (``StepResult.to_dict()``)."""
    known = set(default_params())
    unknown = sorted(set(params) - known)
    if unknown:
        raise NextbestError(f"unknown pipeline param(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return run_step(step, SessionPipelineConfig(**params)).to_dict()

"""A training run folder: what was trained, on which data, with which settings, and the policy itself.

RUN/run.json                      agent, episodes, seed, data folder, reward and simulator settings
RUN/training_metrics.json         metrics every 1k episodes (curves)
RUN/training_metrics_final.json   wall_seconds, episodes, q_table_states, max_abs_delta_q_last_10k, ... and the
                                  established-pair convergence metrics (nextbest.agents.qlearning's module doc)
RUN/checkpoints/                  Q-learning checkpoints every 10k episodes (resumable)
RUN/policy.npz | RUN/<algo>_model.zip   the final policy
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.agents.qlearning import QLearningAgent, QLearningConfig, latest_checkpoint
from nextbest.data.funnel_spec import FunnelSpec
from nextbest.data.prepared import PreparedCRM, load_prepared
from nextbest.errors import NextbestError
from nextbest.parallel import SERIAL, Executor
from nextbest.results import Result
from nextbest.sim.funnel import FunnelConfig, FunnelSimulator, RewardConfig, simulator_from_frame, under_reading
from nextbest.sim.journeys import journeys_from_frame
from nextbest.sim.rollout import PolicyFn

AGENTS = ("qlearning", "ppo", "dqn")


class TrainingSummary(Result):
    """training_metrics_final.json of `nextbest crm train` (the Q-learning fields are null for PPO/DQN; the
    fields after ``epsilon_final`` are null in files written before they existed). Formulas: the module doc of
    `nextbest.agents.qlearning`."""

    agent: str
    wall_seconds: float
    episodes: int
    q_table_states: int | None
    max_abs_delta_q_last_10k: float | None
    policy_change_pct_last_10k: float | None
    epsilon_final: float | None
    new_states_last_10k: int | None = None
    established_min_visits: int | None = None
    established_visit_pct_last_10k: float | None = None
    max_abs_delta_q_established_last_10k: float | None = None
    max_rel_delta_q_established_last_10k: float | None = None


@dataclass
class RunSettings:
    """Everything `nextbest crm train` needs besides the data."""

    agent: str = "qlearning"
    episodes: int = 100_000
    seed: int = 0
    subscription_value: float | None = None
    shaped_reward: bool = False
    call_offer_rate: float = 1.0
    smoothing: float = 10.0
    oversample: tuple[float, float, float] | None = (0.3, 0.3, 0.4)
    step_size: str = "constant"  # Q-learning: constant α (the seed's 0.1) or visit-count (values settle)
    decimals: int = 2  # Q-learning: the state grid (observations rounded to this many places)
    offer_dial: float = 0.0  # the reading of the data the simulator assumes (0 conservative … 1 optimistic)
    fit_window_days: int | None = None  # fit on the train leads of the last N days of the train period only
    established_visits: int = 1000  # Q-learning convergence metrics: a pair is established after this many updates

    def reward(self, spec: FunnelSpec) -> RewardConfig:
        """The reward of the run; the conversion value is the spec's unless the run sets it."""
        return RewardConfig(subscription_value=self.subscription_value, shaped=self.shaped_reward, spec=spec)

    def funnel(self) -> FunnelConfig:
        return FunnelConfig(call_offer_rate=self.call_offer_rate, offer_dial=self.offer_dial)

    def qlearning(self) -> QLearningConfig:
        """The Q-learning configuration of the run (seed, oversampling, step size, state grid)."""
        return QLearningConfig(seed=self.seed, oversample=self.oversample, step_size=self.step_size,
                               decimals=self.decimals, established_min_visits=self.established_visits)  # fmt: skip


@dataclass
class LoadedRun:
    """A finished run: its settings, data, simulator (refitted from train, deterministic) and policy."""

    directory: Path
    settings: RunSettings
    prepared: PreparedCRM
    simulator: FunnelSimulator
    policy: PolicyFn
    meta: dict


def training_leads(prepared: PreparedCRM, settings: RunSettings) -> pd.DataFrame:
    """The train leads a run fits on: the whole train split, or with ``fit_window_days`` = W those whose lead date
    is within W days of the train period's last lead date (the most recent leads)."""
    if settings.fit_window_days is None:
        return prepared.train
    dates = pd.to_datetime(prepared.train["lead_date"])
    recent = prepared.train[dates >= dates.max() - pd.Timedelta(days=settings.fit_window_days)]
    if len(recent) < MIN_WINDOW_LEADS:
        days = settings.fit_window_days
        raise NextbestError(f"--fit-window {days}: only {len(recent)} train leads in the last {days} days "
                            f"(at least {MIN_WINDOW_LEADS} needed); widen it")  # fmt: skip
    return recent


#: The fewest train leads a fit window may hold.
MIN_WINDOW_LEADS = 200


def build_simulator(prepared: PreparedCRM, settings: RunSettings) -> FunnelSimulator:
    """The simulator of a run: fitted on the run's train leads (`training_leads`), under its reading of the data."""
    train = training_leads(prepared, settings)
    sim = simulator_from_frame(
        train,
        smoothing=settings.smoothing,
        reward=settings.reward(prepared.spec),
        config=settings.funnel(),
        spec=prepared.spec,
    )
    if settings.offer_dial > 0:
        sim = under_reading(sim, journeys_from_frame(train, prepared.spec), settings.offer_dial)
    return sim


def train_run(
    prepared: PreparedCRM,
    settings: RunSettings,
    out: Path,
    progress: Callable[[int], None] | None = None,
    resume: bool = False,
) -> TrainingSummary:
    """Train the run's agent and write the run folder; returns the final metrics (training_metrics_final.json)."""
    if settings.agent not in AGENTS:
        raise NextbestError(f"unknown agent {settings.agent!r}; choose one of {', '.join(AGENTS)}")
    out.mkdir(parents=True, exist_ok=True)
    sim = build_simulator(prepared, settings)
    journeys = journeys_from_frame(training_leads(prepared, settings), prepared.spec)
    started = time.perf_counter()
    if settings.agent == "qlearning":
        curves, final = _train_qlearning(sim, journeys, settings, out, progress, resume)
    else:
        curves, final = _train_sb3(sim, journeys, settings, out, progress)
    summary = TrainingSummary(agent=settings.agent, wall_seconds=time.perf_counter() - started, **final)
    meta = {"settings": asdict(settings), "data_dir": str(prepared.directory.resolve()), "created": time.time()}
    _write_json(out / "run.json", meta)
    _write_json(out / "training_metrics.json", curves)
    summary.write(out / "training_metrics_final.json")
    return summary


class SeedRuns(Result):
    """seeds.json of ``nextbest crm train --seeds N``: the same settings trained with N seeds, one run folder each
    (``seed-<s>``, evaluable by ``crm evaluate``); each seed's last training-curve value (mean business value per
    lead over its last 1,000 episodes) and their mean and sample standard deviation (ddof 1) — how much of a
    result is the seed."""

    agent: str
    seeds: list[int]
    folders: list[str]
    final_business_value: list[float | None]
    mean_final_business_value: float | None
    sd_final_business_value: float | None
    runs: list[TrainingSummary]


def train_seeds(
    prepared: PreparedCRM,
    settings: RunSettings,
    out: Path,
    seeds: list[int],
    executor: Executor = SERIAL,
    progress: Callable[[int], None] | None = None,
) -> SeedRuns:
    """``train_run`` once per seed into ``out/seed-<s>`` on `executor` (each seed's run is the one ``--seed s``
    gives); writes and returns ``out/seeds.json``. With a Ray cluster of several machines, ``out`` must be a
    folder every node sees."""
    done = executor.map(_seed_run, list(seeds), (prepared, settings, out), progress)
    finals = [last for _, last in done]
    known = np.array([v for v in finals if v is not None], dtype=float)
    result = SeedRuns(
        agent=settings.agent, seeds=list(seeds), folders=[str(out / f"seed-{seed}") for seed in seeds],
        final_business_value=finals,
        mean_final_business_value=float(known.mean()) if known.size else None,
        sd_final_business_value=float(known.std(ddof=1)) if known.size > 1 else None,
        runs=[summary for summary, _ in done],
    )  # fmt: skip
    result.write(out / "seeds.json")
    return result


def _seed_run(context: tuple, seed: int) -> tuple[TrainingSummary, float | None]:
    prepared, settings, out = context
    folder = out / f"seed-{seed}"
    summary = train_run(prepared, replace(settings, seed=seed), folder)
    curve = json.loads((folder / "training_metrics.json").read_text()).get("mean_business_value") or [None]
    return summary, curve[-1]


def _train_qlearning(sim, journeys, settings: RunSettings, out: Path, progress, resume: bool) -> tuple[dict, dict]:
    checkpoints = out / "checkpoints"
    found = latest_checkpoint(checkpoints) if resume else None
    if found is not None:
        agent = QLearningAgent.load(found, sim)
        if progress is not None:
            progress(agent.episodes_done)
    else:
        agent = QLearningAgent(sim, settings.qlearning())
    agent.train(journeys, settings.episodes, checkpoint_dir=checkpoints, progress=progress)
    agent.save(out / "policy.npz")
    return asdict(agent.log), agent.final_metrics()


def _train_sb3(sim, journeys, settings: RunSettings, out: Path, progress) -> tuple[dict, dict]:
    from nextbest.agents.sb3 import train_sb3

    codes = sim.model.encode_leads(journeys)
    policy = train_sb3(settings.agent, sim, codes, settings.episodes, settings.seed, out, progress)
    curves = _curve_per_1k(policy.curve)
    final = {
        "episodes": settings.episodes,
        "q_table_states": None,
        "max_abs_delta_q_last_10k": None,
        "policy_change_pct_last_10k": None,
        "epsilon_final": None,
    }
    return curves, final


def _curve_per_1k(curve, every: int = 1000) -> dict:
    """Mean business value per `every` finished episodes, in the Q-learning curve format."""
    if curve is None or not curve.business_value:
        return {"episodes": [], "mean_business_value": []}
    values = np.asarray(curve.business_value, dtype=float)
    ends = list(range(every, values.size + 1, every)) or [values.size]
    means = [float(values[max(end - every, 0) : end].mean()) for end in ends]
    return {"episodes": ends, "mean_business_value": means}


def load_run(directory: str | Path) -> LoadedRun:
    """Read a run folder written by `train_run`; a missing or damaged folder is a NextbestError."""
    root = Path(directory)
    meta_path = root / "run.json"
    if not meta_path.is_file():
        raise NextbestError(f"{root}: not a training run (no run.json); run `nextbest crm train --out {root}` first")
    try:
        meta = json.loads(meta_path.read_text())
        raw = meta["settings"]
        if raw.get("oversample") is not None:
            raw["oversample"] = tuple(raw["oversample"])
        settings = RunSettings(**raw)
    except (ValueError, KeyError, TypeError) as error:
        raise NextbestError(f"{meta_path}: damaged run description ({error})") from error
    prepared = load_prepared(meta["data_dir"])
    sim = build_simulator(prepared, settings)
    if settings.agent == "qlearning":
        policy: PolicyFn = QLearningAgent.load(root / "policy.npz", sim)
    else:
        from nextbest.agents.sb3 import SB3Policy

        policy = SB3Policy.load(root / f"{settings.agent}_model.zip", settings.agent)
    return LoadedRun(root, settings, prepared, sim, policy, meta)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=_plain) + "\n")


def _plain(value: object) -> object:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value)}")

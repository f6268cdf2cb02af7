"""One turn of the loop on loopback: serve with exploration, log, estimate off-policy, learn, A/B test, compare.

    result = run_loop(LoopConfig(out=Path("runs/loop")))

1. **Serve and log.** The shop's current model (gbm, trained on store data; ``prepare_model``) serves every session
   of ``log_sessions`` with exploration (``explore``, default ε-greedy 0.3) through ``nextbest stream run
   --log-decisions`` on a fresh broker; the shop side applies each decision and writes the outcome
   (``run_traffic`` with ``serve_all``). ``collect_decision_log`` joins them into the lake's table
   ``decision_log_<seed>``.
2. **Learn and estimate.** The log is split (``learn_share`` to learn from, the rest to evaluate on). A policy is
   learned from the first share (``learn_targeting_policy``: doubly robust weighted classification) and exported
   to ONNX, the file the worker would serve. On the second share every candidate — learned, current, the original
   rule, show-all, show-none — is estimated by IPS, SNIPS and DR, with its difference from the original rule
   (``choose_policy``); the best by DR is chosen.
3. **Test.** The chosen policy goes into an A/B experiment on the platform, on a second fresh broker, with the
   platform's default design, against the ``control``: the original rule (``"original"``, the platform's control
   arm, the shop's status quo) or the policy that logged the data (``"logged"``: the current model exploring as it
   did, served by a second worker; it is then a candidate too, its probabilities the exploration's exact ones).
4. **Compare.** The chosen policy's OPE effect over the original rule is set next to the A/B's measured effect and
   the world's true effect (the exact expected revenue of each policy on the world's evaluation population, its
   features read through the same feed style and decoder the worker uses), in ``loop.json`` (``LoopResult``).

A chosen policy without a model file (show-all, show-none, or the control itself) is not A/B tested: the result
says so and ``ab`` is null.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.lake import Lake
from nextbest.errors import NextbestError
from nextbest.evaluation.loop import (
    ABOutcome,
    LoopResult,
    PolicyChoice,
    choose_policy,
    compare,
    learn_from_log,
    read_decision_log,
    split_log,
)
from nextbest.models.export import export_model
from nextbest.models.serving import ExportedModel
from nextbest.models.targeting import AgeSexRule, build_features
from nextbest.policies.contract import deterministic
from nextbest.policies.explore import Exploration
from nextbest.sim.shop import FeedStyle, World
from nextbest.stream.broker import Broker
from nextbest.stream.collect import collect_decision_log
from nextbest.stream.e2e import Design, prepare_model, run_experiment
from nextbest.stream.services import PlatformService, WorkerProcess
from nextbest.stream.traffic import TrafficConfig, run_traffic

CONTROLS = ("original", "logged")
Step = Callable[[str], None]


@dataclass
class LoopConfig:
    """Settings of one turn (module doc). ``shop`` is a folder with the world (``data/``) and the current model
    (``models/gbm.onnx``), e.g. an ``ab demo`` folder; created under ``out/shop`` when missing."""

    out: Path
    shop: Path | None = None
    seed: int = 0
    explore: str = "epsilon:0.3"
    log_sessions: int = 200_000
    rate: float = 5000.0
    learn_share: float = 0.5
    customers: int = 200_000
    feed: str = "realistic"
    control: str = "original"
    design: Design = field(default_factory=lambda: Design(name="loop: the policy chosen off-policy vs its control"))

    def check(self) -> None:
        """NextbestError for settings no turn can use (before anything starts)."""
        exploration = Exploration.parse(self.explore)
        if exploration.kind == "none":
            raise NextbestError("--explore none logs nothing to learn from: give epsilon:E or softmax:T")
        if self.log_sessions < 1_000:
            raise NextbestError(f"--log-sessions must be at least 1,000, got {self.log_sessions}")
        if not 0 < self.learn_share < 1:
            raise NextbestError(f"--learn-share must be in (0, 1), got {self.learn_share}")
        FeedStyle.named(self.feed)
        if self.control not in CONTROLS:
            raise NextbestError(f"--control {self.control!r}: choose {' or '.join(CONTROLS)}")


def run_loop(config: LoopConfig, step: Step = lambda _: None,
             progress: Callable[[int, dict[str, Any]], None] | None = None) -> LoopResult:  # fmt: skip
    """Run one turn (module doc); ``step`` hears what starts, ``progress`` follows the traffic."""
    config.check()
    started = time.monotonic()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    shop = Path(config.shop) if config.shop is not None else out / "shop"
    step(f"preparing the shop world and the current model in {shop} ...")
    current, world = prepare_model(shop, "gbm", 0, config.customers)
    table = f"decision_log_{config.seed}"
    exploration, collected = _serve_and_log(config, current, world, table, step, progress)
    log_frame = Lake(str(out / "lake")).read_table(table)
    step(f"learning from {len(log_frame):,} logged decisions and estimating the candidates ...")
    offline = _learn_and_choose(config, log_frame, current, world)
    ab = None
    if offline.files.get(offline.choice.chosen) and offline.choice.chosen != config.control:
        step(f"A/B test: {offline.choice.chosen} against the {config.control} policy ...")
        ab = _ab_test(config, Path(offline.files[offline.choice.chosen]), current, world, progress)
    effects = {name: value - offline.truth[config.control] for name, value in offline.truth.items()}
    result = LoopResult(
        settings=_settings(config, shop), exploration=exploration, collected=collected.to_dict(),
        rows_logged=len(log_frame), rows_learned=offline.rows_learned, choice=offline.choice,
        true_value=offline.truth, true_effect=effects, ab=ab, comparison=compare(offline.choice, ab, effects),
        files={**{f"model_{k}": v for k, v in offline.files.items()}, "decision_log": collected.path},
        wall_seconds=time.monotonic() - started,
    )  # fmt: skip
    result.write(out / "loop.json")
    return result


def _settings(config: LoopConfig, shop: Path) -> dict[str, Any]:
    return {"seed": config.seed, "explore": config.explore, "log_sessions": config.log_sessions,
            "rate": config.rate, "learn_share": config.learn_share, "feed": config.feed, "shop": str(shop),
            "control": config.control, "design": config.design.payload()}  # fmt: skip


def _serve_and_log(config: LoopConfig, model: Path, world: World, table: str, step: Step,
                   progress: Callable | None) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """Phase 1 on a fresh broker: the current model explores, every decision and outcome is logged, collected."""
    out = Path(config.out)
    token = f"loop-explore-{config.seed}"
    with Broker(storage="memory") as broker:
        broker.create_topics(partitions=4)
        step(f"serving {config.log_sessions:,} sessions with {config.explore} exploration (broker "
             f"{broker.bootstrap_servers}) ...")  # fmt: skip
        worker = WorkerProcess(broker.bootstrap_servers, model, token, group_id=f"loop-{config.seed}",
                               log_dir=out / "logs", explore=config.explore, log_decisions=True,
                               explore_seed=config.seed)  # fmt: skip
        traffic = TrafficConfig(bootstrap_servers=broker.bootstrap_servers, platform="", experiment=0, token=token,
                                sessions=config.log_sessions, rate=config.rate, seed=2 * config.seed,
                                feed=config.feed, serve_all=True)  # fmt: skip
        with worker:
            summary = run_traffic(traffic, world, progress=progress)
        step("collecting the decision log into the lake ...")
        collected = collect_decision_log(broker.bootstrap_servers, Lake(str(out / "lake")), table, token)
    keys = ("sessions_sent", "seconds", "sessions_per_second", "outcomes_served", "shown", "fallback_timeouts",
            "malformed_customers", "token_mismatches", "decisions_matched")  # fmt: skip
    return {key: summary.get(key) for key in keys}, collected


@dataclass
class _Offline:
    choice: PolicyChoice
    truth: dict[str, float]
    files: dict[str, str]
    rows_learned: int


def _learn_and_choose(config: LoopConfig, log_frame: pd.DataFrame, current: Path, world: World) -> _Offline:
    """Phase 2 (no I/O but the learned model's file): split, learn, export, estimate every candidate, truth."""
    served = ExportedModel.load(current)
    data = read_decision_log(log_frame, served.features)
    split = split_log(len(data.log), config.learn_share, config.seed)
    learned = learn_from_log(data.rows(split.learn), served.features, served.imputation, seed=config.seed)
    learned_path = export_model(learned, Path(config.out) / "models" / f"learned_{config.seed}.onnx", "onnx").path
    policies = _policies(ExportedModel.load(learned_path), served, world)
    held_out = data.rows(split.evaluate)
    candidates = {name: deterministic(decide(held_out.X), 2).distribution for name, decide in policies.items()}
    population = _served_population(world, served, config.feed, config.seed)
    truth = {name: float(world.expected_revenue(decide(population))) for name, decide in policies.items()}
    if config.control == "logged":
        exploration = Exploration.parse(config.explore)
        candidates["logged"] = exploration.distribution(served.action_scores(held_out.X.to_numpy(dtype=float)))
        p_show = exploration.distribution(served.action_scores(population.to_numpy(dtype=float)))[:, 1]
        uplift = world.uplift(world.evaluation_customers)
        truth["logged"] = float(world.expected_revenue("none") + np.mean(p_show * uplift))
    choice = choose_policy(held_out.X, held_out.log, candidates, config.control, seed=config.seed)
    files = {"learned": str(learned_path), "current": str(current)}
    return _Offline(choice, truth, files, len(split.learn))


def _policies(learned: ExportedModel, current: ExportedModel, world: World) -> dict[str, Callable]:
    """The candidates as functions of a feature frame (columns in the model's order) -> 0/1 decisions."""
    original = AgeSexRule(world.config.original_max_age).cell
    return {
        "learned": lambda X: learned.decide(X.to_numpy(dtype=float)),
        "current": lambda X: current.decide(X.to_numpy(dtype=float)),
        "original": original,
        "show_all": lambda X: np.ones(len(X), dtype=np.int8),
        "show_none": lambda X: np.zeros(len(X), dtype=np.int8),
    }


def _served_population(world: World, served: ExportedModel, feed: str, seed: int) -> pd.DataFrame:
    """The world's evaluation population as the worker would see it: written in the feed's style, decoded and
    assembled with the served model's missing-flag rule."""
    customers = world.evaluation_customers
    demographic, historic = world.feed_messages(customers, FeedStyle.named(feed), np.random.default_rng([seed, 41]))
    return build_features(demographic, historic, served.features, served.imputation)


def _ab_test(config: LoopConfig, model: Path, current: Path, world: World, progress: Callable | None) -> ABOutcome:
    """Phase 3 on a fresh broker and a platform: the chosen policy against the control (the original rule, or the
    current model exploring as it did when it logged)."""
    out = Path(config.out)
    db_url = f"sqlite:///{(out / 'platform.db').resolve()}"
    with Broker(storage="memory") as broker, PlatformService(db_url, log_dir=out / "logs") as platform:
        broker.create_topics(partitions=4)
        summary = run_experiment(broker.bootstrap_servers, platform.url, model, world, config.design,
                                 seed=2 * config.seed + 1, rate=config.rate, log_dir=out / "logs",
                                 group_id=f"loop-ab-{config.seed}", progress=progress, feed=config.feed,
                                 control=(current, config.explore) if config.control == "logged" else None)  # fmt: skip
    return ABOutcome(verdict=summary.get("verdict"), effect=summary.get("effect"), ci=summary.get("ci"),
                     p_value=summary.get("p_value"), n_original=summary.get("n_original"),
                     n_new=summary.get("n_new"), srm_flagged=summary.get("srm_flagged"),
                     page=summary["page"])  # fmt: skip

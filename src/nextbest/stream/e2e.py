"""The online A/B experiment end to end on loopback: broker, platform, decision worker and shop traffic.

* ``prepare_model(directory, kind, seed, customers)`` writes the shop world's data to ``directory/data`` unless a
  ``world.json`` is there already, trains ``kind`` (``gbm``, ``logreg`` or ``age-sex``: the original rule posing as
  "new") and exports it to ``directory/models/<kind>.onnx`` (+ sidecar); returns the file and the world.
* ``Design`` is the experiment's design; its per-arm ``sample_size`` is the coherent one of
  ``nextbest.experiments.design.sample_size`` (two-sided t-test) unless given.
* ``run_experiment(...)`` creates a new experiment on a running platform, starts ``nextbest stream run`` with its
  token, plays the traffic to completion, stops the worker and returns the traffic summary with the design and
  the experiment's page address, and the worker's last metrics (``worker``: decisions, dead letters and what the
  feed's messages needed, per key). Broker and platform are the caller's. A platform can serve many runs (each has its
  own experiment, token and uuid range); a broker too, but a new worker re-reads the input topics from their start
  (committed offsets did not carry over between workers here), so a fresh broker per run keeps runs independent.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nextbest.experiments.design import sample_size
from nextbest.models.export import export_model
from nextbest.models.targeting import train_targeting
from nextbest.sim.shop import World, load_world_meta, world_from_config, write_world_data
from nextbest.stream.services import WorkerProcess
from nextbest.stream.traffic import PlatformClient, TrafficConfig, run_traffic


@dataclass
class Design:
    """An experiment design; ``sample_size`` None → the coherent per-arm size for alpha, power, effect and sd."""

    effect: float = 0.7
    sd: float = 15.0
    alpha: float = 0.05
    power: float = 0.8
    alternative: str = "two-sided"
    sample_size: int | None = None
    owner: str = "shop"
    name: str = "new category display: targeting model vs original"

    def payload(self) -> dict[str, Any]:
        """The ``POST /api/experiments`` body."""

        n = self.sample_size or int(sample_size(self.effect, self.sd, self.alpha, self.power, self.alternative))
        return {**asdict(self), "sample_size": n}


def prepare_model(directory: Path, kind: str, seed: int = 0, customers: int = 200_000) -> tuple[Path, World]:
    """The exported ONNX model of ``kind`` trained on the shop world in ``directory/data`` (generated if missing)."""

    data = Path(directory) / "data"
    if not (data / "world.json").is_file():
        write_world_data(World(seed), data, customers)
    world = world_from_config(load_world_meta(data)["world"])
    path = Path(directory) / "models" / f"{kind}.onnx"
    if not (path.is_file() and path.with_name(path.name + ".json").is_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        export_model(train_targeting(data, kind, seed=seed), path, "onnx")
    return path, world


def _worker_metrics(path: Path) -> dict[str, Any]:
    """The worker's last metrics (decisions, dead letters by reason, the feed's per-key counts); {} if none."""

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def run_experiment(
    bootstrap_servers: str,
    platform_url: str,
    model: Path,
    world: World,
    design: Design,
    seed: int = 0,
    rate: float = 2000.0,
    sessions: int | None = None,
    log_dir: Path | None = None,
    group_id: str = "nextbest-ab",
    progress: Callable[[int, dict[str, Any]], None] | None = None,
    control: tuple[Path, str] | None = None,
    **traffic: Any,
) -> dict[str, Any]:
    """One experiment from creation to verdict (see the module docstring); the summary of the run.

    ``control`` = (model, exploration): the original arm is served by a second worker running that model with that
    exploration (``--explore``), its decisions carrying the experiment's token + ``":control"``, instead of the
    original rule."""
    client = PlatformClient(platform_url)
    try:
        created = client.create_experiment(design.payload())
    finally:
        client.close()
    n = created["required_sample_size"]
    control_token = f"{created['token']}:control" if control is not None else None
    config = TrafficConfig(
        bootstrap_servers=bootstrap_servers, platform=platform_url, experiment=created["id"], token=created["token"],
        sessions=sessions or 4 * n + 1000, rate=rate, seed=seed, control_token=control_token, **traffic,
    )  # fmt: skip
    worker = WorkerProcess(bootstrap_servers, model, created["token"], group_id=group_id, log_dir=log_dir)
    with contextlib.ExitStack() as services:
        services.enter_context(worker)
        if control is not None:
            control_dir = Path(log_dir) / "control" if log_dir is not None else None
            services.enter_context(WorkerProcess(bootstrap_servers, control[0], control_token,
                                                 group_id=f"{group_id}-control", log_dir=control_dir,
                                                 explore=control[1], explore_seed=seed))  # fmt: skip
        summary = run_traffic(config, world, progress=progress)
    return {
        **summary,
        "worker": _worker_metrics(worker.metrics_path),
        "design": design.payload(),
        "achieved_power": created["achieved_power"],
        "model": str(model),
        "control": None if control is None else {"model": str(control[0]), "explore": control[1]},
        "page": f"{platform_url.rstrip('/')}/experiments/{created['id']}",
    }

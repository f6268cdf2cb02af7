"""Child-process launchers of the end-to-end experiment: the platform service and the decision worker.

`PlatformService(db_url)` runs ``nextbest platform serve`` on a free loopback port and returns from `start()` once
``GET /healthz`` answers; `url` is its base address. `WorkerProcess(bootstrap, model, token)` runs
``nextbest stream run`` (its readiness is proven by traffic's probe customers, not here). Both are context managers
(`nextbest.stream._process.Service`): leaving the block stops the process group (SIGTERM, then SIGKILL); a failure
to start raises `NextbestError` quoting the child's log.
"""

from __future__ import annotations

import sys
import tempfile
import urllib.request
from pathlib import Path

from nextbest.stream import _process

CLI = (sys.executable, "-m", "nextbest.cli")


def _log_dir(log_dir: str | Path | None) -> Path:
    return Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="nextbest-services-"))


class PlatformService(_process.Service):
    """``nextbest platform serve --db DB_URL`` on ``127.0.0.1:port`` (a free port unless given)."""

    def __init__(
        self, db_url: str, port: int | None = None, log_dir: str | Path | None = None, start_timeout: float = 60.0
    ) -> None:
        self.db_url = db_url
        self.port = port if port is not None else _process.free_port()
        self.log_path = _log_dir(log_dir) / "platform.log"
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [*CLI, "platform", "serve", "--db", self.db_url, "--port", str(self.port), "--log-level", "warning"]

    def start(self) -> PlatformService:
        if self.running:
            return self
        self.process = _process.launch(self.command(), self.log_path, self._answers, self.start_timeout, "platform")
        return self

    def stop(self) -> None:
        _process.stop(self.process, timeout=10.0)
        self.process = None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1.0) as response:
                return response.status == 200
        except OSError:
            return False


class WorkerProcess(_process.Service):
    """``nextbest stream run`` with the experiment's token; ``group_id`` shares committed offsets across runs;
    ``explore`` and ``log_decisions`` as the command's ``--explore`` and ``--log-decisions``."""

    def __init__(
        self,
        bootstrap_servers: str,
        model: str | Path,
        token: str,
        group_id: str = "nextbest-decisions",
        log_dir: str | Path | None = None,
        explore: str = "none",
        log_decisions: bool = False,
        explore_seed: int = 0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.explore = explore
        self.log_decisions = log_decisions
        self.explore_seed = explore_seed
        self.model = Path(model)
        self.token = token
        self.group_id = group_id
        directory = _log_dir(log_dir)
        self.log_path = directory / "worker.log"
        self.metrics_path = directory / "worker-metrics.json"

    def command(self) -> list[str]:
        return [
            *CLI, "stream", "run", "--bootstrap-servers", self.bootstrap_servers, "--model", str(self.model),
            "--token", self.token, "--group-id", self.group_id, "--metrics-file", str(self.metrics_path),
            "--explore", self.explore, "--explore-seed", str(self.explore_seed),
            *(["--log-decisions"] if self.log_decisions else []),
        ]  # fmt: skip

    def start(self) -> WorkerProcess:
        if not self.running:
            self.process = _process.spawn(self.command(), self.log_path)
        return self

    def stop(self) -> None:
        _process.stop(self.process, timeout=15.0)
        self.process = None

"""Child processes of the launchers: free ports, start in their own session, wait until ready, stop the group.

A process starts with `start_new_session=True`, so `stop` and `kill` reach everything it spawned.
Its output goes to a log file whose last lines explain a failure to start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from nextbest.errors import NextbestError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def spawn(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, unset: Sequence[str] = ()
) -> subprocess.Popen:
    """Start ``command`` in a new session, output appended to ``log_path``; ``env`` added to ours minus ``unset``."""
    child_env = {key: value for key, value in os.environ.items() if key not in unset}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**child_env, **(env or {})},
            start_new_session=True,
        )


def log_tail(log_path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file, joined by ' | ' so they fit in a one-line error."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(empty log)"


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen, timeout: float, what: str, log_path: Path
) -> float:
    """Poll ``ready`` until it holds; return the seconds waited. NextbestError if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise NextbestError(f"{what} exited with code {process.returncode}: {log_tail(log_path)}")
        if ready():
            return time.monotonic() - start
        time.sleep(0.1)
    raise NextbestError(f"{what} not ready after {timeout:.0f} s: {log_tail(log_path)}")


def launch(
    command: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = 10.0,
) -> subprocess.Popen:
    """`spawn`, then `wait_until` ``ready``; a process that does not become ready is stopped before the error."""
    process = spawn(command, log_path, env=env)
    try:
        wait_until(ready, process, timeout, what, log_path)
    except BaseException:
        stop(process, timeout=stop_timeout)
        raise
    return process


def stop(process: subprocess.Popen | None, timeout: float = 10.0, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to the process group, then SIGKILL it if it is still alive after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    _signal_group(process, signum)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process)


def kill(process: subprocess.Popen | None) -> None:
    """SIGKILL the process group and reap the process."""
    if process is None:
        return
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


class Service:
    """A launched child process used as a context manager: ``with Service(...) as s`` starts, leaving stops."""

    process: subprocess.Popen | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

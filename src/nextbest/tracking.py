"""Run tracking on MLflow, off by default: ``--mlflow URI`` (or ``MLFLOW_TRACKING_URI``) on the commands that train
and evaluate.

A tracked command opens one MLflow run in the experiment ``nextbest-<use case>`` (or ``MLFLOW_EXPERIMENT_NAME``) and
logs:

- parameters: the command's settings (nested ones flattened to ``a.b``);
- metrics: every number of the JSON the command writes, under its dotted path (``policies.learned.roi``,
  ``improvement_vs_random.ci.0``) — the same figures a person reads in the JSON, nothing recomputed;
- artifacts: the JSON, the reports and the figures;
- models: an exported ONNX model is logged with MLflow's ONNX flavour and registered under a model name.

Without a URI every call is a no-op (:class:`NoTracking`). An ``http(s)`` URI is checked before any work starts:
a server that does not answer ``/health`` is a one-line error.
"""

from __future__ import annotations

import logging
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nextbest.errors import NextbestError

#: MLflow's limits: 250 characters per key, 6,000 per parameter value.
MAX_KEY, MAX_PARAM = 250, 6000
_NOT_IN_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")


def flatten_numbers(payload: Any, prefix: str = "") -> dict[str, float]:
    """Every finite number in a JSON-like value, keyed by its dotted path (list items by their index); booleans
    and text are left out."""
    out: dict[str, float] = {}
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            out.update(flatten_numbers(value, f"{prefix}{key}."))
    elif isinstance(payload, list | tuple):
        for index, value in enumerate(payload):
            out.update(flatten_numbers(value, f"{prefix}{index}."))
    elif isinstance(payload, int | float) and not isinstance(payload, bool) and math.isfinite(payload):
        out[_key(prefix.rstrip("."))] = float(payload)
    return out


def flatten_params(payload: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Settings as MLflow parameters: nested mappings flattened to dotted keys, values as text (cut to 6,000)."""
    out: dict[str, str] = {}
    for key, value in payload.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, f"{prefix}{key}."))
        else:
            out[_key(f"{prefix}{key}")] = str(value)[:MAX_PARAM]
    return out


def _key(name: str) -> str:
    return _NOT_IN_KEY.sub("_", name)[:MAX_KEY] or "value"


class NoTracking:
    """The tracker when no URI is given: every call does nothing."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_figures(self, figures: Any, prefix: str = "") -> None:
        pass

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        pass

    def register_onnx(self, path: str | Path, model_name: str) -> None:
        pass


class MLflowTracker(NoTracking):
    """One open MLflow run (see the module docstring)."""

    def __init__(self, mlflow: Any, run_id: str) -> None:
        self._mlflow = mlflow
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow.log_params(flatten_params(params))

    def log_figures(self, figures: Any, prefix: str = "") -> None:
        numbers = flatten_numbers(figures, f"{prefix}." if prefix else "")
        if numbers:
            self._mlflow.log_metrics(numbers)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self._mlflow.log_artifacts(str(path), artifact_path=folder or path.name)
        elif path.is_file():
            self._mlflow.log_artifact(str(path), artifact_path=folder)

    def register_onnx(self, path: str | Path, model_name: str) -> None:
        import onnx

        self._mlflow.onnx.log_model(onnx.load(str(path)), name="model", registered_model_name=model_name)


def check_server(uri: str | None, timeout: float = 5.0) -> None:
    """NextbestError (one line) unless the MLflow server at an http(s) ``uri`` answers ``/health`` (nothing to check
    without a URI or for a local store)."""
    if not uri or not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = str(getattr(error, "reason", error))
    raise NextbestError(f"cannot reach the MLflow tracking server at {uri}: {reason}")


@contextmanager
def tracked_run(uri: str | None, use_case: str, run_name: str) -> Iterator[NoTracking]:
    """An MLflow run in the experiment ``nextbest-<use_case>`` for the block (FAILED if it raises), or
    :class:`NoTracking` when ``uri`` is None or empty."""
    if not uri:
        yield NoTracking()
        return
    check_server(uri)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout is the commands' JSON
    try:
        import mlflow
        import mlflow.onnx  # noqa: F401 - the flavour register_onnx uses
    except ImportError as error:
        raise NextbestError(f"--mlflow needs MLflow: pip install 'nextbest[scale]' ({error})") from error
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)  # (MLflow also exports it to MLFLOW_TRACKING_URI: restored below)
    try:
        try:
            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"nextbest-{use_case}")
            run = mlflow.start_run(run_name=run_name)
        except Exception as error:  # MlflowException, requests' errors: the server or store refused
            raise NextbestError(f"MLflow at {uri} refused the run: {str(error).splitlines()[0]}") from error
        try:
            yield MLflowTracker(mlflow, run.info.run_id)
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.end_run()
    finally:
        mlflow.set_tracking_uri(None)
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def record_run(
    uri: str | None,
    use_case: str,
    run_name: str,
    params: Mapping[str, Any],
    figures: Mapping[str, Any],
    artifacts: Sequence[Path] = (),
    onnx_model: tuple[Path, str] | None = None,
) -> str | None:
    """A finished command's run in one go: its settings, the figures of each JSON it wrote (``figures``: prefix →
    the JSON's content; prefix "" for the command's main JSON), its artifacts (files or folders that exist) and
    an ONNX model to register (path, model name). Returns the run id (None without a URI). Commands call
    :func:`check_server` first, so a dead server fails before the work, not after."""
    with tracked_run(uri, use_case, run_name) as tracker:
        tracker.log_params(params)
        for prefix, payload in figures.items():
            tracker.log_figures(payload, prefix)
        for path in artifacts:
            tracker.log_artifact(path)
        if onnx_model is not None:
            tracker.register_onnx(*onnx_model)
        return tracker.run_id


__all__ = ["MLflowTracker", "NoTracking", "check_server", "flatten_numbers", "flatten_params", "record_run",
           "tracked_run"]  # fmt: skip

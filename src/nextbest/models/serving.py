"""Score an exported targeting model (ONNX or PMML file + its sidecar JSON) outside the training process.

    model = ExportedModel.load("gbm.onnx")        # reads gbm.onnx and gbm.onnx.json
    p = model.predict_proba(X)                    # X: float array [n, len(model.features)], columns in that order
    show = model.decide(X)                        # 1 iff p >= threshold (never when the threshold is null)
    model.imputation                              # what a missing product flag becomes (sidecar "missing_flags")

ONNX files run in onnxruntime (one thread per session by default: a worker is one process on one core);
PMML files in the JPMML evaluator (Java), far slower, kept for the pipelines that import PMML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import NextbestError
from nextbest.models.targeting import Imputation
from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic

SIDECAR_KEYS = ("format", "model", "threshold", "features", "input_dtype")


def _read_sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        raise NextbestError(f"{sidecar} not found: export the model with `nextbest target export`, which writes it")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise NextbestError(f"{sidecar}: not valid JSON ({error})") from error
    missing = [key for key in SIDECAR_KEYS if key not in meta]
    if missing:
        raise NextbestError(f"{sidecar}: missing {missing}")
    return meta


@dataclass
class ExportedModel(Policy):
    """An exported P(buy) model ready to score: ``predict_proba`` and the show/don't-show ``decide``; as a policy
    (``choose``) it shows (action 1) iff P(buy) >= threshold, with probability 1."""

    n_actions = 2

    path: Path
    format: str
    model: str
    threshold: float | None
    features: list[str]
    input_dtype: np.dtype
    _scorer: Any
    imputation: Imputation

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> ExportedModel:
        """Load ``path`` (.onnx or .pmml) with its sidecar ``<path>.json``."""
        path = Path(path)
        if not path.is_file():
            raise NextbestError(f"model file {path} not found")
        meta = _read_sidecar(path)
        scorer = _onnx_scorer(path, threads) if meta["format"] == "onnx" else _pmml_scorer(path, meta["features"])
        features = list(meta["features"])
        entry = meta.get("missing_flags")  # absent in sidecars written before missing flags were imputed
        try:
            imputation = Imputation.zero(features) if entry is None else Imputation.from_json(entry, features)
        except NextbestError as error:
            raise NextbestError(f"{path.name}.json: {error}") from error
        return cls(
            path, meta["format"], meta["model"], meta["threshold"], features, np.dtype(meta["input_dtype"]), scorer,
            imputation,
        )  # fmt: skip

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(buy) per row of ``X`` (columns in ``features`` order); float64."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise NextbestError(f"expected rows of {len(self.features)} features, got shape {X.shape}")
        return self._scorer(X.astype(self.input_dtype, copy=False))

    def decide(self, X: np.ndarray) -> np.ndarray:
        """1 = show the new category (P(buy) >= threshold), 0 = don't; int8."""
        if self.threshold is None:
            return np.zeros(len(X), dtype=np.int8)
        return (self.predict_proba(X) >= self.threshold).astype(np.int8)

    def action_scores(self, X: np.ndarray) -> np.ndarray:
        """Scores [n, 2] of (don't show, show): 0 and P(buy) − threshold, so that the greedy action is ``decide``'s
        and exploration (``nextbest.policies.explore``) leans toward showing where P(buy) is high; showing scores
        −inf when the threshold is null (never show)."""
        show = np.full(len(X), -np.inf) if self.threshold is None else self.predict_proba(X) - self.threshold
        return np.column_stack([np.zeros(len(X)), np.where(show >= 0, np.maximum(show, 1e-12), show)])

    @property
    def name(self) -> str:
        return self.model

    def choose(self, X: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self.decide(X), 2)


def _onnx_scorer(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise NextbestError("scoring ONNX needs onnxruntime: pip install 'nextbest[export]'") from error
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own error types
        raise NextbestError(f"{path}: not a loadable ONNX model ({error})") from error
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    index = outputs.index("probabilities") if "probabilities" in outputs else len(outputs) - 1

    def score(X: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([outputs[index]], {name: X})[0], dtype=np.float64)[:, 1]

    return score


def _pmml_scorer(path: Path, features: list[str]) -> Any:
    try:
        from jpmml_evaluator import make_evaluator
    except ImportError as error:
        raise NextbestError("scoring PMML needs jpmml-evaluator (and Java)") from error

    try:
        evaluator = make_evaluator(str(path)).verify()
    except Exception as error:  # noqa: BLE001 - the Java side reports through generic errors
        raise NextbestError(f"{path}: not a loadable PMML model ({error})") from error

    def score(X: np.ndarray) -> np.ndarray:
        result = evaluator.evaluateAll(pd.DataFrame(X, columns=features))
        return result["probability(1)"].to_numpy(dtype=np.float64)

    return score

"""Export a trained targeting model for serving: ONNX (skl2onnx, onnxmltools) and PMML (sklearn2pmml, needs Java).

Both formats carry the whole fitted model (scaling, classifier, probability calibration), with the inputs
named as ``FEATURES`` (age, man, woman, cat0.., u0..) and P(buy) as the output. The decision threshold is
not part of the file: ``export_model`` writes it, with the feature order, the ONNX input type and what a missing
product flag becomes (``missing_flags``: the model's ``Imputation``, rule, reason and value per flag), to a sidecar
``<file>.json`` (``ExportResult.as_json``) that a server reads next to the model.

Supported: ``logreg`` (a plain ``StandardScaler + LogisticRegression`` pipeline, its Platt calibration
folded into the coefficients; double precision in ONNX) and ``gbm`` (a plain ``LGBMClassifier``, its
Platt calibration folded into the trees; ONNX input float32, exact for these integer-valued features).
Scores match scikit-learn / LightGBM to 1e-6 (tests). ``age-sex``, the original system, is exported as a
depth-2 tree whose output is the rule's decision (threshold 0.5: ``rule_as_tree``), so that the original can
pose as the new system in an A/B test. Not supported, with a clear ``NextbestError``: ``scratch-logreg``
(an estimator the converters do not know).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import NextbestError
from nextbest.models.targeting import Imputation, TargetingModel

ONNX_INPUT = "features"
PMML_TARGET = "bought"


@dataclass
class ExportResult:
    """Where the file went, its format, and the decision threshold to apply to its P(buy)."""

    path: Path
    format: str
    threshold: float
    features: list[str]
    model: str
    input_dtype: str = "float64"
    imputation: Imputation | None = None

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def as_json(self) -> dict:
        """What a server needs besides the file: show iff P(buy) >= threshold (null: never show)."""
        return {
            "file": self.path.name,
            "format": self.format,
            "model": self.model,
            "threshold": self.threshold if np.isfinite(self.threshold) else None,
            "features": self.features,
            "onnx_input": ONNX_INPUT if self.format == "onnx" else None,
            "input_dtype": self.input_dtype,
            "missing_flags": (self.imputation or Imputation.zero(self.features)).as_json(self.features),
        }


def _check_supported(model: TargetingModel, fmt: str) -> None:
    supported = {"onnx": ("logreg", "gbm", "age-sex"), "pmml": ("logreg", "gbm", "age-sex")}
    if model.encoding is not None:
        raise NextbestError("a model trained on a table reads its own encoded columns, not the shop feed's schema: "
                            "export serves the shop's stream and takes models trained on a shop-world folder")
    if model.kind == "gbm" and fmt == "onnx" and importlib.util.find_spec("onnxmltools") is None:
        raise NextbestError("LightGBM to ONNX needs onnxmltools: pip install 'nextbest[export]'")
    if model.kind not in supported[fmt]:
        hints = {"scratch-logreg": " (the from-scratch estimator is unknown to the converters)"}
        hint = hints.get(model.kind, "")
        raise NextbestError(
            f"model {model.kind!r} cannot be exported to {fmt.upper()}{hint}; supported: {', '.join(supported[fmt])}"
        )


def rule_as_tree(model: TargetingModel) -> Any:
    """The age/sex rule as a fitted depth-2 decision tree on the full feature vector, for the converters.

    Its "probability" is the rule's decision (1 = show to a man younger than ``max_age``), so the exported
    threshold is 0.5: a server can run the original system through the same pipeline as a learned model.
    """
    from sklearn.tree import DecisionTreeClassifier

    rule = model.estimator
    grid = pd.DataFrame(0.0, index=range(242), columns=model.features)
    grid["age"] = np.tile(np.arange(121, dtype=float), 2)
    grid["man"] = np.repeat([0.0, 1.0], 121)
    grid["woman"] = 1.0 - grid["man"]
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(grid.to_numpy(), rule.cell(grid))
    if not np.array_equal(tree.predict(grid.to_numpy()), rule.cell(grid)):
        raise NextbestError("the age/sex rule could not be written as a tree")
    return tree


def _exportable(model: TargetingModel) -> tuple[Any, float]:
    """The estimator the converters see and the threshold that goes with it."""
    if model.kind == "age-sex":
        return rule_as_tree(model), 0.5
    return model.estimator, model.threshold


def export_onnx(model: TargetingModel, path: Path) -> ExportResult:
    """Write the model as ONNX; input ``features`` is a double tensor [n, len(features)], output probabilities."""
    _check_supported(model, "onnx")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    if model.kind == "gbm":
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
    # ONNX tree ensembles take and give float32 (exact for this data: integer-valued features)
    tensor_type = FloatTensorType if model.kind in ("gbm", "age-sex") else DoubleTensorType
    estimator, threshold = _exportable(model)
    try:
        onx = convert_sklearn(
            estimator,
            initial_types=[(ONNX_INPUT, tensor_type([None, len(model.features)]))],
            options={"zipmap": False},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    except Exception as error:  # noqa: BLE001 - converter errors are many
        raise NextbestError(f"ONNX conversion of {model.kind!r} failed: {error}") from error
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    dtype = "float32" if tensor_type is FloatTensorType else "float64"
    return ExportResult(path, "onnx", threshold, list(model.features), model.kind, dtype)


#: Newest scikit-learn release the bundled JPMML-SkLearn converter (1.9.41) accepts.
CONVERTER_SKLEARN_VERSION = "1.9.0"


@contextlib.contextmanager
def _converter_version_stamp() -> Iterator[None]:
    """While converting, stamp pickles with the converter's newest supported scikit-learn release.

    JPMML-SkLearn 1.9.41 refuses any pickle stamped with scikit-learn 1.9.1, a patch release that did not
    change the fitted attributes of ``StandardScaler`` or ``LogisticRegression``. ``BaseEstimator.__getstate__``
    writes ``sklearn.base.__version__`` into the pickle, so that name is swapped for the conversion only, and
    only within the same minor version. The parity test with the independent JPMML evaluator checks that the
    PMML scores still match scikit-learn to 1e-6.
    """
    import sklearn.base

    original = sklearn.base.__version__
    same_minor = original.split(".")[:2] == CONVERTER_SKLEARN_VERSION.split(".")[:2]
    if same_minor:
        sklearn.base.__version__ = CONVERTER_SKLEARN_VERSION
    try:
        yield
    finally:
        sklearn.base.__version__ = original


def export_pmml(model: TargetingModel, path: Path) -> ExportResult:
    """Write the model as PMML with sklearn2pmml (Java); fields named as the features, target ``bought``."""
    _check_supported(model, "pmml")
    if shutil.which("java") is None:
        raise NextbestError("PMML export needs Java (sklearn2pmml runs a Java converter); install a JRE")
    from sklearn2pmml import sklearn2pmml
    from sklearn2pmml.pipeline import PMMLPipeline

    estimator, threshold = _exportable(model)
    pipeline = PMMLPipeline([("classifier", estimator)])
    pipeline.active_fields = np.array(model.features)
    pipeline.target_fields = np.array([PMML_TARGET])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _converter_version_stamp():
            sklearn2pmml(pipeline, str(path))
    except Exception as error:  # noqa: BLE001 - the Java converter reports through a generic error
        raise NextbestError(f"PMML conversion of {model.kind!r} failed: {error}") from error
    return ExportResult(path, "pmml", threshold, list(model.features), model.kind)


EXPORTERS = {"onnx": export_onnx, "pmml": export_pmml}


def export_model(model: TargetingModel, path: Path, fmt: str) -> ExportResult:
    """Export to ``fmt`` in {"onnx", "pmml"} and write the sidecar ``<path>.json`` (threshold, features)."""
    if fmt not in EXPORTERS:
        raise NextbestError(f"unknown export format {fmt!r}; use onnx or pmml")
    result = EXPORTERS[fmt](model, path)
    result.imputation = model.missing_flags
    result.sidecar.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    return result

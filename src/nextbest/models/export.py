"""Export a trained targeting model for serving: ONNX (skl2onnx, onnxmltools) and PMML (sklearn2pmml, needs Java).

Both formats carry the whole fitted model (scaling, classifier, probability calibration), with the inputs
named as ``FEATURES`` (age, man, woman, cat0.., u0..) and P(buy) as the output. The decision threshold is
not part of the file: ``export_model`` writes it, with the feature order and the ONNX input type, to a
sidecar ``<file>.json`` (``ExportResult.as_json``) that a server reads next to the model.

Supported: ``logreg`` (a plain ``StandardScaler + LogisticRegression`` pipeline, its Platt calibration
folded into the coefficients; double precision in ONNX) and ``gbm`` (a plain ``LGBMClassifier``, its
Platt calibration folded into the trees; ONNX input float32, exact for these integer-valued features).
Scores match scikit-learn / LightGBM to 1e-6 (tests). Not supported, each with a clear ``NextbestError``:
``age-sex`` (a rule, not a fitted pipeline) and ``scratch-logreg`` (an estimator the converters do not know).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextbest.errors import NextbestError
from nextbest.models.targeting import TargetingModel

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
        }


def _check_supported(model: TargetingModel, fmt: str) -> None:
    supported = {"onnx": ("logreg", "gbm"), "pmml": ("logreg", "gbm")}
    if model.kind == "gbm" and fmt == "onnx" and importlib.util.find_spec("onnxmltools") is None:
        raise NextbestError("LightGBM to ONNX needs onnxmltools: pip install 'nextbest[export]'")
    if model.kind not in supported[fmt]:
        hints = {
            "age-sex": " (a rule on age and sex, not a fitted pipeline)",
            "scratch-logreg": " (the from-scratch estimator is unknown to the converters)",
        }
        hint = hints.get(model.kind, "")
        raise NextbestError(
            f"model {model.kind!r} cannot be exported to {fmt.upper()}{hint}; supported: {', '.join(supported[fmt])}"
        )


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
    # onnxmltools' LightGBM trees take and give float32 (exact for this data: integer-valued features)
    tensor_type = FloatTensorType if model.kind == "gbm" else DoubleTensorType
    try:
        onx = convert_sklearn(
            model.estimator,
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
    return ExportResult(path, "onnx", model.threshold, list(model.features), model.kind, dtype)


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

    pipeline = PMMLPipeline([("classifier", model.estimator)])
    pipeline.active_fields = np.array(model.features)
    pipeline.target_fields = np.array([PMML_TARGET])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _converter_version_stamp():
            sklearn2pmml(pipeline, str(path))
    except Exception as error:  # noqa: BLE001 - the Java converter reports through a generic error
        raise NextbestError(f"PMML conversion of {model.kind!r} failed: {error}") from error
    return ExportResult(path, "pmml", model.threshold, list(model.features), model.kind)


EXPORTERS = {"onnx": export_onnx, "pmml": export_pmml}


def export_model(model: TargetingModel, path: Path, fmt: str) -> ExportResult:
    """Export to ``fmt`` in {"onnx", "pmml"} and write the sidecar ``<path>.json`` (threshold, features)."""
    if fmt not in EXPORTERS:
        raise NextbestError(f"unknown export format {fmt!r}; use onnx or pmml")
    result = EXPORTERS[fmt](model, path)
    result.sidecar.write_text(json.dumps(result.as_json(), indent=2) + "\n")
    return result

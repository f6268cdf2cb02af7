"""Export for serving: ONNX and PMML files scored by independent evaluators match scikit-learn to 1e-6."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import NextbestError
from nextbest.models.export import export_model, export_onnx, export_pmml
from nextbest.models.targeting import TargetingModel, features_from_frame, train_targeting
from nextbest.sim.shop import World, write_world_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TargetingModel, pd.DataFrame, Path]:
    directory = tmp_path_factory.mktemp("export")
    write_world_data(World(8, eval_customers=10_000), directory, customers=25_000)
    model = train_targeting(directory, "logreg")
    rows = features_from_frame(World(9).frame(World(9).sample(10_000)), model.features)
    return model, rows, directory


def test_onnx_parity(trained: tuple[TargetingModel, pd.DataFrame, Path], tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model, rows, _ = trained
    result = export_onnx(model, tmp_path / "model.onnx")
    assert result.threshold == model.threshold and result.features == model.features
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"features": rows.to_numpy()})))
    scored = np.asarray(outputs["probabilities"])[:, 1]
    assert len(scored) == 10_000
    np.testing.assert_allclose(scored, model.predict_proba(rows), rtol=0, atol=1e-6)


def test_pmml_parity(trained: tuple[TargetingModel, pd.DataFrame, Path], tmp_path: Path) -> None:
    jpmml = pytest.importorskip("jpmml_evaluator")
    if shutil.which("java") is None:
        pytest.skip("Java is not installed")
    model, rows, _ = trained
    result = export_model(model, tmp_path / "model.pmml", "pmml")
    evaluator = jpmml.make_evaluator(str(result.path)).verify()
    scored = evaluator.evaluateAll(rows)["probability(1)"].to_numpy(dtype=float)
    assert len(scored) == 10_000
    np.testing.assert_allclose(scored, model.predict_proba(rows), rtol=0, atol=1e-6)


def test_unsupported_models_end_with_a_clear_message(
    trained: tuple[TargetingModel, pd.DataFrame, Path], tmp_path: Path
) -> None:
    _, _, directory = trained
    control = train_targeting(directory, "age-sex")
    with pytest.raises(NextbestError, match="'age-sex' cannot be exported to ONNX"):
        export_onnx(control, tmp_path / "x.onnx")
    with pytest.raises(NextbestError, match="'age-sex' cannot be exported to PMML"):
        export_pmml(control, tmp_path / "x.pmml")
    with pytest.raises(NextbestError, match="unknown export format"):
        export_model(control, tmp_path / "x.bin", "tflite")


def test_gbm_export_is_refused_with_the_reason(
    trained: tuple[TargetingModel, pd.DataFrame, Path], tmp_path: Path
) -> None:
    pytest.importorskip("lightgbm")
    model, _, _ = trained
    gbm = TargetingModel("gbm", object(), 0.1, model.features, model.economics, model.world, model.data_dir)
    with pytest.raises(NextbestError, match="onnxmltools"):
        export_onnx(gbm, tmp_path / "g.onnx")
    with pytest.raises(NextbestError, match="CalibratedClassifierCV"):
        export_pmml(gbm, tmp_path / "g.pmml")

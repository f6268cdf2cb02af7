"""Export for serving: ONNX and PMML files scored by independent evaluators match scikit-learn to 1e-6."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import NextbestError
from nextbest.models.export import export_model, export_onnx, export_pmml
from nextbest.models.targeting import FEATURES, TargetingModel, features_from_frame, train_targeting
from nextbest.sim.shop import World, write_world_data

MODELS = ("logreg", "gbm")


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("export")
    write_world_data(World(8, eval_customers=10_000), directory, customers=25_000)
    return directory


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    world = World(9)
    return features_from_frame(world.frame(world.sample(10_000)), FEATURES(world.config.n_categories, world.config.n_u))


@pytest.fixture(scope="module", params=MODELS)
def model(request: pytest.FixtureRequest, world_dir: Path) -> TargetingModel:
    return train_targeting(world_dir, request.param)


def test_folded_calibration_equals_the_calibrated_model(world_dir: Path, rows: pd.DataFrame) -> None:
    """The exported plain models carry the Platt calibration exactly (folded into coefficients / trees)."""
    from sklearn.calibration import CalibratedClassifierCV

    from nextbest.models import targeting

    train = pd.read_parquet(world_dir / "train.parquet")
    X, y = features_from_frame(train, list(rows.columns)), train["bought"].to_numpy()
    for kind, fold in (("logreg", targeting.fold_platt), ("gbm", targeting.fold_platt_lightgbm)):
        calibrated = targeting._estimator(kind, seed=0).fit(X, y)
        assert isinstance(calibrated, CalibratedClassifierCV)
        folded = fold(calibrated)
        assert not isinstance(folded, CalibratedClassifierCV)
        np.testing.assert_allclose(
            folded.predict_proba(rows)[:, 1], calibrated.predict_proba(rows)[:, 1], rtol=0, atol=1e-12
        )


def test_onnx_parity(model: TargetingModel, rows: pd.DataFrame, tmp_path: Path) -> None:
    import onnxruntime as ort
    result = export_model(model, tmp_path / "model.onnx", "onnx")
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["threshold"] == model.threshold and sidecar["features"] == model.features
    assert sidecar["model"] == model.kind and sidecar["format"] == "onnx"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (declared,) = session.get_inputs()
    assert declared.name == sidecar["onnx_input"] and declared.type == f"tensor({_onnx_type(sidecar)})"
    inputs = {declared.name: rows.to_numpy().astype(sidecar["input_dtype"])}
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    scored = np.asarray(outputs["probabilities"])[:, 1]
    assert len(scored) == 10_000
    np.testing.assert_allclose(scored, model.predict_proba(rows), rtol=0, atol=1e-6)


def _onnx_type(sidecar: dict) -> str:
    return {"float32": "float", "float64": "double"}[sidecar["input_dtype"]]


def test_pmml_parity(model: TargetingModel, rows: pd.DataFrame, tmp_path: Path) -> None:
    import jpmml_evaluator as jpmml

    assert shutil.which("java") is not None, "PMML needs Java: make test installs default-jre-headless"
    result = export_model(model, tmp_path / "model.pmml", "pmml")
    assert json.loads(result.sidecar.read_text())["format"] == "pmml"
    evaluator = jpmml.make_evaluator(str(result.path)).verify()
    scored = evaluator.evaluateAll(rows)["probability(1)"].to_numpy(dtype=float)
    assert len(scored) == 10_000
    np.testing.assert_allclose(scored, model.predict_proba(rows), rtol=0, atol=1e-6)


def test_the_original_rule_exports_as_its_decisions(world_dir: Path, rows: pd.DataFrame, tmp_path: Path) -> None:
    """age-sex goes out as a tree whose output is the rule's decision: served decisions equal the rule's."""
    import onnxruntime as ort
    control = train_targeting(world_dir, "age-sex")
    result = export_model(control, tmp_path / "original.onnx", "onnx")
    assert json.loads(result.sidecar.read_text())["threshold"] == 0.5
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    scored = session.run(["probabilities"], {"features": rows.to_numpy(dtype=np.float32)})[0][:, 1]
    np.testing.assert_array_equal((scored >= 0.5).astype(np.int8), control.decide(rows))
    assert 0.05 < control.decide(rows).mean() < 0.5


def test_unsupported_models_end_with_a_clear_message(world_dir: Path, tmp_path: Path) -> None:
    scratch = train_targeting(world_dir, "scratch-logreg")
    with pytest.raises(NextbestError, match="'scratch-logreg' cannot be exported to ONNX"):
        export_onnx(scratch, tmp_path / "x.onnx")
    with pytest.raises(NextbestError, match="'scratch-logreg' cannot be exported to PMML"):
        export_pmml(scratch, tmp_path / "x.pmml")
    with pytest.raises(NextbestError, match="unknown export format"):
        export_model(scratch, tmp_path / "x.bin", "tflite")
    assert not list(tmp_path.iterdir())


def test_the_sidecar_carries_the_imputation_the_stream_applies(world_dir: Path, tmp_path: Path) -> None:
    """Zero by default; `mean` writes each flag's training mean; the served model imputes exactly those values."""
    from nextbest.models.serving import ExportedModel
    from nextbest.models.targeting import Imputation, assemble_rows

    zero = export_model(train_targeting(world_dir, "logreg"), tmp_path / "zero.onnx", "onnx")
    entry = json.loads(zero.sidecar.read_text())["missing_flags"]
    assert entry["rule"] == "zero" and set(entry["values"].values()) == {0.0} and "not bought" in entry["why"]
    trained = train_targeting(world_dir, "logreg", impute="mean")
    mean = export_model(trained, tmp_path / "mean.onnx", "onnx")
    entry = json.loads(mean.sidecar.read_text())["missing_flags"]
    train = pd.read_parquet(world_dir / "train.parquet")
    assert entry["rule"] == "mean" and entry["values"]["cat17"] == pytest.approx(train["cat17"].mean())
    served = ExportedModel.load(mean.path)
    np.testing.assert_allclose(served.imputation.values, trained.missing_flags.values)
    flags = np.zeros((2, 110), dtype=np.uint8)
    flags[1, 17] = 255  # cat17 missing for the second customer
    rows = assemble_rows(np.array([[30, 1, 0], [30, 1, 0]]), flags, served.features, served.imputation)
    assert rows[1, 3 + 17] == pytest.approx(train["cat17"].mean()) and rows[0, 3 + 17] == 0
    with pytest.raises(NextbestError, match="imputation rule"):
        train_targeting(world_dir, "logreg", impute="median")
    bad = json.loads(mean.sidecar.read_text())
    bad["missing_flags"]["values"].pop("cat3")
    mean.sidecar.write_text(json.dumps(bad))
    with pytest.raises(NextbestError, match="mean.onnx.json: missing_flags"):
        ExportedModel.load(mean.path)
    assert isinstance(Imputation.zero(FEATURES()), Imputation)

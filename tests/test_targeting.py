"""Targeting: one feature builder for messages and tables, threshold on validation, train/evaluate CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import run
from nextbest.errors import NextbestError
from nextbest.models.targeting import (
    FEATURES,
    Imputation,
    TargetingModel,
    build_features,
    choose_threshold,
    features_from_frame,
    train_targeting,
)
from nextbest.sim.shop import World, write_world_data

KEYS = {"value_per_customer", "vs_original", "vs_show_none", "vs_show_all", "oracle_vs_original", "auc", "log_loss"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shop")
    write_world_data(World(3, eval_customers=50_000), directory, customers=30_000)
    return directory


def test_message_features_equal_table_features() -> None:
    world = World(1)
    customers = world.sample(300)
    demographic, historic = world.messages(customers)
    from_messages = build_features(demographic, historic[::-1])  # joined on uuid, not on position
    from_table = features_from_frame(world.frame(customers))
    assert list(from_messages.columns) == FEATURES() == list(from_table.columns)
    pd.testing.assert_frame_equal(from_messages, from_table)
    assert (from_messages.dtypes == np.float64).all()


def test_feature_builder_imputes_missing_flags_and_rejects_too_few() -> None:
    world = World(1)
    demographic, historic = world.messages(world.sample(3))
    with pytest.raises(NextbestError, match="no historic message"):
        build_features(demographic, historic[:2])
    historic[0]["products"]["cat17"] = 1
    complete = build_features(demographic, historic)
    del historic[0]["products"]["cat17"]
    imputed = build_features(demographic, historic)  # the zero rule: not bought
    assert imputed.loc[0, "cat17"] == 0 and complete.loc[0, "cat17"] == 1
    pd.testing.assert_frame_equal(imputed.drop(columns="cat17"), complete.drop(columns="cat17"))
    mean = Imputation("mean", np.full(110, 0.25))
    assert build_features(demographic, historic, imputation=mean).loc[0, "cat17"] == 0.25
    for name in list(historic[1]["products"])[:56]:  # 56 of 110 flags missing: more than half
        del historic[1]["products"][name]
    with pytest.raises(NextbestError, match="too few known flags: 54 of 110"):
        build_features(demographic, historic)
    assert len(build_features(demographic, historic, max_missing_share=0.6)) == 3


def test_table_features_impute_absent_and_nan_flags() -> None:
    world = World(1)
    frame = world.frame(world.sample(50))
    full = features_from_frame(frame)
    gappy = frame.drop(columns=["cat3"]).astype({"cat4": float})
    gappy.loc[:9, "cat4"] = np.nan
    with pytest.raises(NextbestError, match="missing feature columns"):
        features_from_frame(gappy)
    imputed = features_from_frame(gappy, imputation=Imputation.zero(FEATURES()))
    assert (imputed["cat3"] == 0).all() and (imputed.loc[:9, "cat4"] == 0).all()
    pd.testing.assert_frame_equal(imputed.drop(columns=["cat3", "cat4"]), full.drop(columns=["cat3", "cat4"]))
    with pytest.raises(NextbestError, match="missing feature columns"):
        features_from_frame(frame.drop(columns=["age"]), imputation=Imputation.zero(FEATURES()))


def test_choose_threshold_maximizes_realized_value() -> None:
    p = np.array([0.9, 0.6, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 0, 1, 0])
    # gain 10, cost 4: cumulative 6, 12, 8, 14, 10 -> show the top four (threshold 0.2)
    threshold, value = choose_threshold(p, y, 10.0, 4.0)
    assert threshold == 0.2 and value == pytest.approx(14 / 5)
    assert choose_threshold(p, np.zeros(5), 10.0, 4.0)[0] == float("inf")


def test_threshold_is_chosen_on_validation_never_test(data_dir: Path, tmp_path: Path) -> None:
    # a copy of the data without the test split: training must not need it
    copy = tmp_path / "no_test"
    copy.mkdir()
    for name in ("train.parquet", "world.json"):
        (copy / name).write_bytes((data_dir / name).read_bytes())
    model = train_targeting(copy, "logreg", seed=4)
    train = pd.read_parquet(copy / "train.parquet")
    is_val = np.random.default_rng([4, 7]).random(len(train)) < 0.2
    p_val = model.predict_proba(features_from_frame(train[is_val]))
    expected, _ = choose_threshold(p_val, train["bought"].to_numpy()[is_val], **model.economics)
    assert model.threshold == expected
    assert model.validation["rows"] == int(is_val.sum())


def test_train_evaluate_cli_end_to_end(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = {}
    for kind in ("age-sex", "logreg", "gbm"):
        model_path, out = tmp_path / f"{kind}.pkl", tmp_path / f"{kind}.json"
        code, _, err = run(capsys, monkeypatch, "target", "train", "--data", str(data_dir), "--model", kind,
                           "--out", str(model_path))
        assert code == 0, err
        code, _, err = run(capsys, monkeypatch, "target", "evaluate", "--model", str(model_path), "--out", str(out))
        assert code == 0, err
        figures[kind] = json.loads(out.read_text())
        assert set(figures[kind]) >= KEYS
    assert figures["age-sex"]["vs_original"] == 0.0
    assert figures["age-sex"]["vs_show_none"] == pytest.approx(-0.3, abs=0.05)
    assert figures["logreg"]["vs_original"] > 0.4 and figures["gbm"]["vs_original"] > 0.3
    assert figures["logreg"]["auc"] > 0.7 and figures["logreg"]["oracle_vs_original"] > 0.7
    loaded = TargetingModel.load(tmp_path / "logreg.pkl")
    assert loaded.kind == "logreg" and np.isfinite(loaded.threshold)
    code, stdout, err = run(capsys, monkeypatch, "target", "export", "--model", str(tmp_path / "gbm.pkl"),
                            "--out", str(tmp_path / "serve" / "gbm.onnx"))
    assert code == 0, err
    sidecar = json.loads((tmp_path / "serve" / "gbm.onnx.json").read_text())
    assert sidecar["threshold"] == figures["gbm"]["threshold"] and sidecar["input_dtype"] == "float32"
    assert json.loads(stdout)["features"] == len(sidecar["features"]) == len(loaded.features)


def test_shop_generate_cli(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "data"
    code, stdout, err = run(capsys, monkeypatch, "shop", "generate", "--customers", "2000", "--seed", "2",
                            "--out", str(out))
    assert code == 0, err
    meta = json.loads((out / "world.json").read_text())
    assert meta["world"]["seed"] == 2 and meta["train_rows"] + meta["test_rows"] == 2000
    assert len(pd.read_parquet(out / "train.parquet")) == meta["train_rows"]
    assert "ground_truth" in json.loads(stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["target", "train", "--data", "{data}", "--model", "forest", "--out", "{tmp}/m.pkl"],
        ["target", "train", "--data", "{tmp}/nowhere", "--model", "logreg", "--out", "{tmp}/m.pkl"],
        ["target", "evaluate", "--model", "{tmp}/missing.pkl", "--out", "{tmp}/e.json"],
        ["target", "evaluate", "--model", "{data}/world.json", "--out", "{tmp}/e.json"],
        ["shop", "generate", "--customers", "5", "--out", "{tmp}/d"],
        ["target", "export", "--model", "{tmp}/missing.pkl", "--out", "{tmp}/m.onnx"],
        ["target", "export", "--model", "{tmp}/missing.pkl", "--out", "{tmp}/m.onnx", "--format", "tflite"],
        ["target", "report", "--evaluation", "{tmp}/missing.json", "--out", "{tmp}/r.html"],
    ],
)
def test_bad_inputs_exit_2(
    args: list[str], data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled = [arg.format(data=data_dir, tmp=tmp_path) for arg in args]
    code, _, err = run(capsys, monkeypatch, *filled)
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err


def test_scratch_logreg_is_trained_or_refused_clearly(data_dir: Path) -> None:
    if importlib.util.find_spec("nextbest.models.scratch") is None:
        with pytest.raises(NextbestError, match="scratch"):
            train_targeting(data_dir, "scratch-logreg")
        return
    model = train_targeting(data_dir, "scratch-logreg")
    assert np.isfinite(model.threshold) and model.validation["auc"] > 0.7
    again = train_targeting(data_dir, "scratch-logreg")  # the seed fixes the shuffling: the same model
    assert again.threshold == model.threshold and again.validation == model.validation

"""Uplift on randomized experiments: metrics agree with scikit-uplift, IPW is unbiased, learners find a known
effect, the loader explains bad input, and `nextbest uplift run` works end to end (Hillstrom and a synthetic CSV)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import DataError
from nextbest.uplift import metrics as m
from nextbest.uplift.data import load_experiment, split_experiment
from nextbest.uplift.figures import policy_values, qini_curves
from nextbest.uplift.learners import ClassTransformation, OutcomeTransformation, ResponseModel, TLearner, XLearner
from nextbest.uplift.run import run_uplift

NEXTBEST = [sys.executable, "-m", "nextbest.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NEXTBEST, *args], capture_output=True, text=True, timeout=600)


# --- metrics ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_metrics_agree_with_scikit_uplift(seed: int) -> None:
    import sklift.metrics as sklift_metrics
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 600))
    y = rng.integers(0, 2, n)
    t = rng.integers(0, 2, n)
    t[:2] = [0, 1]
    uplift = np.round(rng.normal(size=n), 1 if seed % 2 else 6)  # with and without ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ours, theirs in ((m.qini_curve, sklift_metrics.qini_curve), (m.uplift_curve, sklift_metrics.uplift_curve)):
            x1, y1 = ours(y, uplift, t)
            x2, y2 = theirs(y, uplift, t)
            np.testing.assert_allclose(x1, x2)
            np.testing.assert_allclose(y1, y2, atol=1e-9)
        assert m.qini_auc_score(y, uplift, t) == pytest.approx(sklift_metrics.qini_auc_score(y, uplift, t), abs=1e-9)
        assert m.uplift_auc_score(y, uplift, t) == pytest.approx(
            sklift_metrics.uplift_auc_score(y, uplift, t), abs=1e-9
        )


def test_perfect_ranking_scores_one_and_continuous_outcomes_work() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    t = rng.integers(0, 2, 500)
    perfect = y * t - y * (1 - t)
    assert m.qini_auc_score(y, perfect, t) == pytest.approx(1.0)
    spend = rng.exponential(10, 500) * (rng.random(500) < 0.1)
    assert m.qini_auc_score(spend, spend * t - spend * (1 - t), t) == pytest.approx(1.0)
    assert np.isfinite(m.uplift_auc_score(spend, rng.normal(size=500), t))


@pytest.mark.parametrize("propensity", [0.5, 0.3])
def test_ipw_policy_value_is_unbiased(propensity: float) -> None:
    """Many simulated experiments with a known uplift tau(x) = x: the mean IPW estimate matches the truth."""
    rng = np.random.default_rng(1)
    reps, n = 400, 2000
    x = rng.normal(size=(reps, n))
    t = rng.random((reps, n)) < propensity
    mu0 = 5.0 + x
    tau = x
    y = mu0 + tau * t + rng.normal(0, 3.0, size=(reps, n))
    treat = x > 0
    truth = 5.0 + 0.0 + np.sqrt(1 / (2 * np.pi))  # E[mu0] + E[x·1(x>0)]
    estimates = np.array([m.policy_value(y[i], t[i], treat[i], propensity) for i in range(reps)])
    se = estimates.std(ddof=1) / np.sqrt(reps)
    assert abs(estimates.mean() - truth) < 4 * se
    # treat-all / treat-none reduce to the arm means reweighted
    assert m.policy_value(y[0], t[0], np.ones(n, bool), propensity) == pytest.approx(y[0][t[0]].sum() / propensity / n)
    boot = m.bootstrap_mean(m.ipw_contributions(y[0], t[0], treat[0], propensity), m.bootstrap_indices(n, 200, 0))
    assert boot.ci[0] < boot.estimate < boot.ci[1]


def test_net_value_subtracts_the_cost_of_every_treated_customer() -> None:
    """net = value · IPW(Y) − cost · share treated; treat-none pays nothing; the bootstrap interval follows."""
    rng = np.random.default_rng(4)
    n = 4000
    t = rng.random(n) < 0.5
    y = rng.exponential(2.0, n) * (rng.random(n) < 0.3)
    treat = rng.random(n) < 0.4
    economics = m.Economics(outcome_value=0.3, treatment_cost=0.15)
    gross = m.policy_value(y, t, treat, 0.5)
    assert m.policy_value(y, t, treat, 0.5, economics) == pytest.approx(0.3 * gross - 0.15 * treat.mean())
    none = np.zeros(n, bool)
    assert m.policy_value(y, t, none, 0.5, economics) == pytest.approx(0.3 * m.policy_value(y, t, none, 0.5))
    everyone = m.net_contributions(y, t, np.ones(n, bool), 0.5, economics)
    assert everyone.mean() == pytest.approx(0.3 * m.policy_value(y, t, np.ones(n, bool), 0.5) - 0.15)


def test_costs_change_who_is_worth_treating(experiment_csv: Path) -> None:
    """A cost above the largest uplift makes treating nobody the best share; the figures are net and seeded."""
    exp = load_experiment(experiment_csv, "group", "promo mail", "no mail", "bought")
    free = run_uplift(exp, seed=0, bootstrap=30, base="linear")
    costly = run_uplift(exp, seed=0, bootstrap=30, base="linear", economics=m.Economics(treatment_cost=5.0))
    assert costly.settings.treatment_cost == 5.0 and free.settings.treatment_cost == 0.0
    assert costly.treat_none == free.treat_none  # no one treated, nothing paid
    assert costly.treat_all.estimate == pytest.approx(free.treat_all.estimate - 5.0)
    for method in costly.methods.values():
        assert method.policy_value.validation_share == 0.0 and method.policy_value.treated_share == 0.0
    assert any(method.policy_value.treated_share > 0 for method in free.methods.values())


# --- learners ----------------------------------------------------------------------------------------------------


def _synthetic(n: int, seed: int, binary: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    t = (rng.random(n) < 0.5).astype(int)
    tau = 2.0 * X[:, 0]
    if binary:
        logit = -0.5 + 0.8 * X[:, 1] + 1.2 * X[:, 0] * t
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
        tau = 1 / (1 + np.exp(-(-0.5 + 0.8 * X[:, 1] + 1.2 * X[:, 0]))) - 1 / (1 + np.exp(-(-0.5 + 0.8 * X[:, 1])))
    else:
        y = 3.0 * X[:, 1] + tau * t + rng.normal(0, 2.0, n)
    return X, y, t, tau


@pytest.mark.parametrize(
    "make",
    [lambda: TLearner(seed=0), lambda: XLearner(0.5, seed=0), lambda: OutcomeTransformation(0.5, seed=0),
     lambda: TLearner(base="linear")],
    ids=["t_learner", "x_learner", "outcome_transformation", "t_learner_linear"],
)  # fmt: skip
def test_learners_recover_a_known_heterogeneous_effect(make) -> None:
    X, y, t, tau = _synthetic(6000, 0)
    Xt, yt, tt, tau_t = _synthetic(4000, 1)
    scores = make().fit(X, y, t).predict_uplift(Xt)
    assert np.corrcoef(scores, tau_t)[0, 1] > 0.6
    random_qini = m.qini_auc_score(yt, np.random.default_rng(2).normal(size=len(yt)), tt)
    assert m.qini_auc_score(yt, scores, tt) > random_qini + 0.1


def test_class_transformation_on_binary_outcome_and_response_model_ignores_control() -> None:
    X, y, t, tau = _synthetic(8000, 3, binary=True)
    Xt, yt, tt, tau_t = _synthetic(4000, 4, binary=True)
    scores = ClassTransformation(seed=0).fit(X, y, t).predict_uplift(Xt)
    assert np.corrcoef(scores, tau_t)[0, 1] > 0.5
    assert m.qini_auc_score(yt, scores, tt) > m.qini_auc_score(yt, np.zeros(len(yt)), tt) + 0.05
    with pytest.raises(ValueError):
        ClassTransformation().fit(X, y * 3.5, t)
    model = ResponseModel(seed=0).fit(X, y, t)
    changed = y.copy()
    changed[t == 0] = 1 - changed[t == 0]  # control outcomes cannot matter
    again = ResponseModel(seed=0).fit(X, changed, t)
    np.testing.assert_allclose(model.predict_uplift(Xt), again.predict_uplift(Xt))


# --- data loader -------------------------------------------------------------------------------------------------


@pytest.fixture()
def experiment_csv(tmp_path: Path) -> Path:
    """A randomized experiment with text arms (one extra arm to drop), a binary outcome and mixed features."""
    rng = np.random.default_rng(5)
    n = 3000
    arm = rng.choice(["promo mail", "no mail", "sms"], size=n, p=[0.45, 0.45, 0.10])
    age = rng.integers(18, 70, n)
    region = rng.choice(["north", "south", "east"], n)
    lift = np.where(region == "north", 0.25, 0.0)
    p_buy = 0.1 + 0.002 * (age - 18) + lift * (arm == "promo mail")
    frame = pd.DataFrame({
        "age": age, "region": region, "loyal": rng.integers(0, 2, n), "group": arm,
        "bought": (rng.random(n) < p_buy).astype(int),
    })  # fmt: skip
    path = tmp_path / "promo experiment.csv"
    frame.to_csv(path, index=False)
    return path


def test_loader_encodes_features_drops_other_arms_and_splits(experiment_csv: Path) -> None:
    exp = load_experiment(experiment_csv, "group", "promo mail", "no mail", "bought")
    assert exp.dropped_other_treatments > 0
    assert len(exp.y) + exp.dropped_other_treatments == 3000
    assert exp.binary_outcome
    assert {"age", "loyal", "region=north", "region=south"} <= set(exp.X.columns)
    train, test = split_experiment(exp, 0.3, seed=0)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(exp.y)
    assert exp.t[test].mean() == pytest.approx(exp.t.mean(), abs=0.01)
    again, _ = split_experiment(exp, 0.3, seed=0)
    np.testing.assert_array_equal(train, again)
    parquet = experiment_csv.with_suffix(".parquet")
    pd.read_csv(experiment_csv).to_parquet(parquet)
    same = load_experiment(parquet, "group", "promo mail", "no mail", "bought", features=["age", "region"])
    np.testing.assert_array_equal(same.y, exp.y)
    assert same.features == ["age", "region"] and "loyal" not in same.X.columns


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"outcome": "revenue"}, "'revenue'"),
        ({"treatment_col": "arm"}, "'arm'"),
        ({"treatment": "phone call"}, "'phone call'"),
        ({"outcome": "region"}, "not numeric"),
        ({"features": ["age", "height"]}, "'height'"),
    ],
)
def test_loader_errors_name_the_file_and_column(experiment_csv: Path, kwargs: dict, expected: str) -> None:
    args = {"treatment_col": "group", "treatment": "promo mail", "control": "no mail", "outcome": "bought"}
    args.update(kwargs)
    with pytest.raises(DataError) as info:
        load_experiment(experiment_csv, **args)
    assert str(experiment_csv) in str(info.value) and expected in str(info.value)


def test_run_uplift_and_figures_in_process(experiment_csv: Path, tmp_path: Path) -> None:
    exp = load_experiment(experiment_csv, "group", "promo mail", "no mail", "bought")
    result = run_uplift(exp, seed=0, bootstrap=30, base="linear")
    assert set(result.methods) == {"t_learner", "x_learner", "class_transformation", "response_model"}
    assert json.loads(result.to_json()) == result.to_dict()  # one JSON form, plain builtins
    assert qini_curves(result, tmp_path / "q.png").stat().st_size > 0
    assert policy_values(result, tmp_path / "p.png").stat().st_size > 0
    again = run_uplift(exp, seed=0, bootstrap=30, base="linear")  # same seed, same numbers
    for name, method in result.methods.items():
        for key in ("qini_coefficient", "auuc", "policy_value", "vs_treat_none", "curves"):
            assert getattr(again.methods[name], key) == getattr(method, key)


# --- CLI ---------------------------------------------------------------------------------------------------------


def _check_uplift_json(out: Path, names: set[str]) -> dict:
    result = json.loads((out / "uplift.json").read_text())
    assert set(result["methods"]) == names
    for method in result["methods"].values():
        for key in ("qini_coefficient", "auuc", "policy_value", "treat_all", "treat_none"):
            assert key in method
        value = method["policy_value"]
        assert value["ci"][0] <= value["estimate"] <= value["ci"][1]
        assert 0.0 <= value["treated_share"] <= 1.0
        assert len(method["treat_all"]["ci"]) == len(method["treat_none"]["ci"]) == 2
    for key in ("rows", "treated", "control_rows", "mean_outcome", "ate"):
        assert key in result["dataset"]
    assert (out / "qini_curves.png").stat().st_size > 0 and (out / "policy_value.png").stat().st_size > 0
    return result


def test_cli_on_hillstrom_end_to_end(tmp_path: Path) -> None:
    from nextbest.data.paths import resolve_data_file

    try:
        resolve_data_file("hillstrom", "hillstrom.csv")
    except DataError as error:
        pytest.fail(f"Hillstrom data missing (expected in ../shared/data or $NEXTBEST_DATA_DIR): {error}")
    out = tmp_path / "hill"
    result = run_cli("uplift", "run", "--data", "hillstrom", "--bootstrap", "50", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    data = _check_uplift_json(out, {"t_learner", "x_learner", "outcome_transformation", "response_model"})
    assert data["dataset"]["rows"] == 42613 and data["dataset"]["dropped_other_treatments"] == 21387
    assert data["dataset"]["ate"]["estimate"] == pytest.approx(0.77, abs=0.01)
    assert "visit" not in data["dataset"]["features"]


def test_cli_on_a_synthetic_binary_experiment(experiment_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    result = run_cli("uplift", "run", "--data", str(experiment_csv), "--treatment-col", "group", "--treatment",
                     "promo mail", "--control", "no mail", "--outcome", "bought", "--bootstrap", "40", "--seed", "3",
                     "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    data = _check_uplift_json(out, {"t_learner", "x_learner", "class_transformation", "response_model"})
    assert data["dataset"]["binary_outcome"] and data["settings"]["seed"] == 3
    assert "region" in data["dataset"]["features"] and "group" not in data["dataset"]["features"]
    net = run_cli("uplift", "run", "--data", str(experiment_csv), "--treatment-col", "group", "--treatment",
                  "promo mail", "--control", "no mail", "--outcome", "bought", "--bootstrap", "40", "--seed", "3",
                  "--treatment-cost", "0.02", "--outcome-value", "0.5", "--out", str(tmp_path / "net"))  # fmt: skip
    assert net.returncode == 0, net.stdout + net.stderr
    settings = json.loads((tmp_path / "net" / "uplift.json").read_text())["settings"]
    assert settings["treatment_cost"] == 0.02 and settings["outcome_value"] == 0.5
    assert "net value per customer" in net.stdout


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--treatment", "phone call"], "phone call"),
        (["--outcome", "revenue"], "revenue"),
        (["--features", "age,height"], "height"),
        (["--base", "forest"], "forest"),
        (["--treatment-cost", "-1"], "--treatment-cost"),
        (["--outcome-value", "0"], "--outcome-value"),
        (["--treatment-cost", "nan"], "--treatment-cost"),
        (["--data", "/nonexistent/experiment.csv"], "does not exist"),
    ],
)
def test_cli_bad_inputs_exit_2_with_one_line(
    experiment_csv: Path, tmp_path: Path, extra, expected, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """In process through the real entry point `main()` (the same code path as the `nextbest` command)."""
    from nextbest.cli.main import main

    args = {"--data": str(experiment_csv), "--treatment-col": "group", "--treatment": "promo mail",
            "--control": "no mail", "--outcome": "bought", "--out": str(tmp_path / "bad")}  # fmt: skip
    args.update(dict(zip(extra[::2], extra[1::2])))
    monkeypatch.setattr(sys, "argv", ["nextbest", "uplift", "run", *[item for pair in args.items() for item in pair]])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err
    assert not (tmp_path / "bad" / "uplift.json").exists()


def test_cli_bad_input_as_a_subprocess_prints_one_line(tmp_path: Path) -> None:
    result = run_cli("uplift", "run", "--data", str(tmp_path / "missing.parquet"), "--treatment", "a", "--control",
                     "b", "--outcome", "y", "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.parquet" in lines[0]

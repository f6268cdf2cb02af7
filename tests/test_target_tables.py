"""Targeting on a team's own customer table: CSV/Parquet, a 0/1 label, categories, gaps, text refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import DataError
from nextbest.evaluation.targeting import evaluate_on_table
from nextbest.models.tables import TableEncoding, train_on_table


def customer_table(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Customers whose label depends on a number, a category and a flag; some gaps; an id and a text column."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, n)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    newsletter = rng.random(n) < 0.4
    logit = -2.0 + 0.03 * tenure + np.select([plan == "plus", plan == "pro"], [0.8, 1.6], 0.0) + 0.7 * newsletter
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"customer": np.arange(n), "tenure_months": tenure, "plan": plan,
                          "newsletter": newsletter, "converted": label,
                          "note": [f"called on day {i}" for i in range(n)]})  # fmt: skip
    frame.loc[rng.random(n) < 0.05, "tenure_months"] = np.nan
    frame.loc[rng.random(n) < 0.03, "plan"] = None
    return frame


def test_a_model_learns_a_plain_table_and_is_evaluated_on_held_out_rows(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    customer_table().to_csv(path, index=False)
    model = train_on_table(path, "converted", "logreg", ["tenure_months", "plan", "newsletter"], seed=1)
    assert model.features == ["tenure_months", "newsletter", "tenure_months__missing", "plan=basic", "plan=plus",
                              "plan=pro", "plan=__missing"]  # fmt: skip
    figures = evaluate_on_table(model, path)
    assert figures.held_out_rows == pytest.approx(0.2 * 6000, rel=0.1)
    assert figures.auc > 0.65 and figures.threshold == 0.5
    calibration = figures.calibration
    assert sum(row.rows for row in calibration) == figures.held_out_rows
    predicted = np.array([row.mean_predicted for row in calibration])
    observed = np.array([row.observed_rate for row in calibration])
    assert np.abs(predicted - observed).max() < 0.12  # calibrated within bin noise (about 120 rows per bin)
    other = tmp_path / "new_customers.parquet"
    customer_table(1000, seed=5).to_parquet(other)
    assert evaluate_on_table(model, other).held_out_rows == 1000  # another table: every row is held out


def test_unseen_levels_and_gaps_are_encoded() -> None:
    train = pd.DataFrame({"x": [1.0, np.nan, 3.0], "c": ["a", "b", None], "y": [0, 1, 0]})
    encoding = TableEncoding.fit(train, "y", None, "t")
    rows = encoding.transform(pd.DataFrame({"x": [np.nan], "c": ["zzz"]}))
    assert rows.iloc[0].to_dict() == {"x": 2.0, "x__missing": 1.0, "c=a": 0.0, "c=b": 0.0, "c=__missing": 0.0}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(converted=f.converted.astype(object).where(f.index != 7, "maybe")),
         "row 8, column 'converted'"),
        (lambda f: f.drop(columns="converted"), "no label column 'converted'"),
        (lambda f: f.assign(converted=0), "both 0s and 1s"),
    ],
)
def test_bad_tables_name_the_row_and_column(tmp_path: Path, change, message: str) -> None:
    path = tmp_path / "bad.csv"
    change(customer_table(500)).to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        train_on_table(path, "converted", "logreg", ["tenure_months", "plan"])


def test_free_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    customer_table(500).to_parquet(path)
    with pytest.raises(DataError, match="column 'note': looks like free text"):
        train_on_table(path, "converted", "gbm")


def nextbest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "nextbest"), *args], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_the_cli_trains_and_evaluates_a_table_and_refuses_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    customer_table().to_csv(path, index=False)
    trained = nextbest("target", "train", "--data", str(path), "--label", "converted", "--model", "gbm",
                       "--features", "tenure_months,plan,newsletter", "--gain", "10", "--cost", "2",
                       "--out", str(tmp_path / "m.pkl"))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["threshold"] is not None
    evaluated = nextbest("target", "evaluate", "--model", str(tmp_path / "m.pkl"), "--out", str(tmp_path / "e.json"))
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads((tmp_path / "e.json").read_text())
    assert {"auc", "log_loss", "brier", "calibration", "value_per_row_realized"} <= set(figures)
    for args, message in (
        (["--label", "nosuch"], "no label column 'nosuch'"),
        ([], "--label is required"),
        (["--label", "converted", "--gain", "3"], "--gain and --cost together"),
        (["--label", "converted", "--model", "age-sex"], "cannot learn a table"),
    ):
        refused = nextbest("target", "train", "--data", str(path), "--model", "logreg", *args,
                           "--out", str(tmp_path / "x.pkl"))  # fmt: skip
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr, args
    exported = nextbest("target", "export", "--model", str(tmp_path / "m.pkl"), "--out", str(tmp_path / "m.onnx"))
    assert exported.returncode == 2 and "trained on a table" in exported.stderr


def test_a_table_from_the_shop_world_also_gets_its_ground_truth(tmp_path: Path) -> None:
    from nextbest.models.targeting import FEATURES
    from nextbest.sim.shop import World, write_world_data

    write_world_data(World(3, eval_customers=20_000), tmp_path, customers=30_000)
    half = evaluate_on_table(train_on_table(tmp_path / "train.parquet", "bought", "logreg", FEATURES()))
    economics = json.loads((tmp_path / "world.json").read_text())["economics"]
    priced = evaluate_on_table(train_on_table(tmp_path / "train.parquet", "bought", "logreg", FEATURES(),
                                              economics=economics))  # fmt: skip
    assert half.auc > 0.7 and half.vs_original > 0  # better than the age/sex rule, from the plain table
    assert priced.vs_original > half.vs_original  # the business's economics set a better threshold than 0.5

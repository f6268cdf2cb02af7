"""Targeting models for the new category: features, calibrated P(buy) models, and the show/don't-show rule.

**One feature builder.** ``build_features`` (the feed's messages, read by the stream's decoder),
``features_from_frame`` (the store's DataFrame) and the Kafka worker all end in ``assemble_rows``: the only place
that decides which columns, in which order and type, a model sees, and what a missing product flag becomes (the
model's ``Imputation``, written into the export sidecar). Training (``train_targeting``) and the real-time stream
never rebuild features themselves; ``FEATURES(n_categories, n_u)`` gives the column order.

**Models** (``MODELS``): ``logreg`` (scaled scikit-learn logistic regression, sigmoid-calibrated by
``CalibratedClassifierCV`` on cross-validated scores, the calibration folded into the coefficients: see
``fold_platt``), ``gbm`` (LightGBM, sigmoid-calibrated on its raw margin, the calibration folded into the trees: see
``fold_platt_lightgbm``), ``scratch-logreg`` (the from-scratch
estimator of ``nextbest.models.scratch`` when present, sigmoid-calibrated) and ``age-sex`` (the original
system, reproduced as the control: show to men younger than 35; its P(buy) is the training buy rate of its
two cells).

**Decision rule.** Showing the category to a customer with purchase probability ``p`` is worth
``p * gain_if_buy - cost_of_slot`` (the business's economics, written with the data). The threshold ``t``
(show iff ``P(buy) >= t``) maximizes the realized value ``sum 1[p_hat >= t] (y * gain_if_buy - cost_of_slot)``
on a validation split carved from the training data, never on the test split.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.feed import (
    DEFAULT_MAX_MISSING_SHARE,
    MISSING,
    FeedTally,
    MessageDecoder,
    Rejected,
    flag_matrix,
)
from nextbest.data.worlds import load_world_meta
from nextbest.errors import NextbestError
from nextbest.models.scratch import ScratchLogisticRegression
from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic

MODELS = ("scratch-logreg", "logreg", "gbm", "age-sex")
DEMOGRAPHIC = ["age", "man", "woman"]


def FEATURES(n_categories: int = 100, n_u: int = 10) -> list[str]:  # noqa: N802 - a constant-like helper
    """The model's input columns, in order: age, man, woman, cat0..cat{n-1}, u0..u{m-1}."""
    return DEMOGRAPHIC + [f"cat{j}" for j in range(n_categories)] + [f"u{j}" for j in range(n_u)]


@dataclass
class Imputation:
    """What a missing product flag becomes: ``values[j]`` for flag ``features[3 + j]``, under a named ``rule``.

    ``zero`` (the default): a flag the message or table does not name is 0, "not bought". Chosen over the training
    mean because 0 is every flag's most frequent value and a value every model saw in training: a tree never saw
    0.2 and sends it wherever its 0/1 split sends values above 0 (LightGBM: the "bought" side). Measured on the shop
    world with the feed's 10 absent flags (``benchmarks/missing_flags.py``): zero imputation costs the gradient-
    boosting model 0.03-0.05 $ per customer against full information, the training mean 0.27-0.28 $.
    ``mean``: the training mean of each flag (kept for linear models and for comparison).
    """

    rule: str
    values: np.ndarray

    RULES = ("zero", "mean")

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: Sequence[str], rule: str = "zero") -> Imputation:
        """The imputation of ``rule`` for the flags of ``features`` (``mean``: over the known values of ``frame``)."""
        flags = list(features[len(DEMOGRAPHIC):])
        if rule == "zero":
            return cls("zero", np.zeros(len(flags)))
        if rule != "mean":
            raise NextbestError(f"unknown imputation rule {rule!r}; choose one of {', '.join(cls.RULES)}")
        present = [name for name in flags if name in frame.columns]
        means = frame[present].astype(np.float64).mean().reindex(flags).fillna(0.0)
        return cls("mean", means.to_numpy(dtype=np.float64))

    @classmethod
    def zero(cls, features: Sequence[str]) -> Imputation:
        return cls("zero", np.zeros(len(features) - len(DEMOGRAPHIC)))

    def as_json(self, features: Sequence[str]) -> dict[str, Any]:
        """The sidecar entry: the rule, why, and the value of every flag by name."""
        flags = list(features[len(DEMOGRAPHIC):])
        return {"rule": self.rule, "why": IMPUTATION_WHY[self.rule],
                "values": {name: float(v) for name, v in zip(flags, self.values)}}  # fmt: skip

    @classmethod
    def from_json(cls, payload: dict[str, Any], features: Sequence[str]) -> Imputation:
        flags = list(features[len(DEMOGRAPHIC):])
        values = payload.get("values", {})
        missing = [name for name in flags if name not in values]
        if payload.get("rule") not in cls.RULES or missing:
            raise NextbestError(f"missing_flags entry needs a rule in {cls.RULES} and a value for every flag")
        return cls(payload["rule"], np.array([float(values[name]) for name in flags]))


IMPUTATION_WHY = {
    "zero": "a flag the message does not name is 0 (not bought): every flag's most frequent value, seen in training",
    "mean": "a flag the message does not name takes its training mean",
}


def _missing_mask(flags: np.ndarray) -> np.ndarray:
    """Where a flag is missing: ``MISSING`` (255) in integer flags from messages, NaN in float flags from tables."""
    if np.issubdtype(flags.dtype, np.integer):
        return flags == MISSING
    return np.isnan(flags)


def assemble_rows(
    demographic: np.ndarray, flags: np.ndarray, features: Sequence[str], imputation: Imputation | None = None
) -> np.ndarray:
    """THE feature step: ``[age, man, woman] + product flags`` in ``features`` order, float64, gaps imputed.

    ``demographic`` is [n, 3] (age, man, woman); ``flags`` is [n, len(features) - 3], its columns in the order of
    ``features[3:]``; a missing flag is ``MISSING`` (uint8 flags of the stream's decoder) or NaN (a table's float
    flags) and becomes ``imputation.values[j]``. Without an imputation a missing flag is an error.
    """
    if list(features[: len(DEMOGRAPHIC)]) != DEMOGRAPHIC:
        raise NextbestError(f"features must start with {DEMOGRAPHIC}, got {list(features[:3])}")
    demographic, flags = np.asarray(demographic), np.asarray(flags)
    if demographic.shape[1:] != (len(DEMOGRAPHIC),) or flags.shape != (len(demographic), len(features) - 3):
        expected = f"[n, 3] and [n, {len(features) - 3}]"
        raise NextbestError(f"expected {expected} arrays, got {demographic.shape} and {flags.shape}")
    rows = np.hstack([demographic.astype(np.float64), flags.astype(np.float64)])
    missing = _missing_mask(flags)
    if missing.any():
        if imputation is None:
            gaps = [features[3 + j] for j in np.flatnonzero(missing.any(axis=0))[:5]]
            raise NextbestError(f"missing feature values in columns {gaps} and no imputation to fill them")
        rows[:, len(DEMOGRAPHIC):] = np.where(missing, imputation.values, rows[:, len(DEMOGRAPHIC):])
    return rows


def _assemble(frame: pd.DataFrame, features: Sequence[str], imputation: Imputation | None) -> pd.DataFrame:
    """A table's columns through ``assemble_rows``; flag columns absent or NaN are imputed (when given how)."""
    absent = [name for name in features if name not in frame.columns]
    if absent and (imputation is None or any(name in DEMOGRAPHIC for name in absent)):
        raise NextbestError(f"missing feature columns: {absent[:5]}{' ...' if len(absent) > 5 else ''}")
    demographic = frame.loc[:, DEMOGRAPHIC].astype(np.float64)
    gaps = demographic.columns[demographic.isna().any()].tolist()
    if gaps:
        raise NextbestError(f"missing feature values in columns {gaps}")
    flags = frame.reindex(columns=list(features[len(DEMOGRAPHIC):])).astype(np.float64).to_numpy()
    rows = assemble_rows(demographic.to_numpy(), flags, features, imputation)
    return pd.DataFrame(rows, columns=list(features))


def features_from_frame(
    frame: pd.DataFrame, features: Sequence[str] | None = None, imputation: Imputation | None = None
) -> pd.DataFrame:
    """Features from the store's DataFrame (uuid, age, man, woman, cat*, u*, ...); gaps imputed by ``imputation``."""
    return _assemble(frame, features or FEATURES(), imputation)


def build_features(
    demographic_records: Sequence[dict[str, Any] | bytes | str],
    historic_records: Sequence[dict[str, Any] | bytes | str],
    features: Sequence[str] | None = None,
    imputation: Imputation | None = None,
    max_missing_share: float = DEFAULT_MAX_MISSING_SHARE,
    tally: FeedTally | None = None,
) -> pd.DataFrame:
    """Features from the feed's messages, in the order of ``demographic_records`` (joined on ``uuid``).

    A record is a dict or the raw JSON text (which may repeat keys, as the real feed does). Every message goes
    through the stream's decoder (``nextbest.data.feed.MessageDecoder``: repeated keys, missing and unknown flags
    resolved by its rules; ``tally`` counts them) and ``assemble_rows``, so the row equals the stream's. Missing
    flags take ``imputation`` (default: zero). A message the decoder rejects is an error naming its reason.
    """
    features = list(features or FEATURES())
    imputation = imputation or Imputation.zero(features)
    decoder = MessageDecoder(features[len(DEMOGRAPHIC):], max_missing_share=max_missing_share)
    historic = {half.uuid: half for half in (_decoded(decoder.historic, r, "historic") for r in historic_records)}
    demographic = [_decoded(decoder.demographic, r, "demographic") for r in demographic_records]
    lacking = [half.uuid for half in demographic if half.uuid not in historic]
    if lacking:
        raise NextbestError(f"no historic message for uuid {lacking[0]}")
    joined = [historic[half.uuid] for half in demographic]
    flags = flag_matrix(joined).reshape(len(joined), len(features) - len(DEMOGRAPHIC))
    if tally is not None:
        tally.add(flags, joined, demographic)
    values = np.array([half.values for half in demographic], dtype=np.float64).reshape(-1, len(DEMOGRAPHIC))
    return pd.DataFrame(assemble_rows(values, flags, features, imputation), columns=features)


def _decoded(decode: Any, record: dict[str, Any] | bytes | str, kind: str) -> Any:
    if isinstance(record, dict):
        raw = json.dumps(record).encode()
    else:
        raw = record.encode() if isinstance(record, str) else record
    half = decode(raw)
    if isinstance(half, Rejected):
        uuid = record.get("uuid") if isinstance(record, dict) else None
        raise NextbestError(f"{kind} message{f' of uuid {uuid}' if uuid is not None else ''}: {half.reason}")
    return half


class AgeSexRule(Policy):
    """The original system: show to men younger than ``max_age``; P(buy) = training buy rate of the cell.

    As a policy (``choose``) it shows (action 1) to its cell, deterministically."""

    classes_ = np.array([0, 1])
    n_actions = 2
    name = "age-sex"

    def __init__(self, max_age: int = 35) -> None:
        self.max_age = max_age

    def cell(self, X: pd.DataFrame) -> np.ndarray:
        return ((X["man"].to_numpy() == 1) & (X["age"].to_numpy() < self.max_age)).astype(int)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> AgeSexRule:
        cell = self.cell(X)
        y = np.asarray(y, dtype=float)
        self.rates_ = np.array([y[cell == c].mean() if np.any(cell == c) else y.mean() for c in (0, 1)])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.rates_[self.cell(X)]
        return np.column_stack([1 - p, p])

    def choose(self, X: pd.DataFrame, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self.cell(X), 2)


def _estimator(kind: str, seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logreg":
        base = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=2000))])
        return CalibratedClassifierCV(base, method="sigmoid", cv=3, ensemble=False)
    if kind == "gbm":
        from lightgbm import LGBMClassifier

        base = LGBMClassifier(
            n_estimators=300, learning_rate=0.05, num_leaves=15, min_child_samples=200, random_state=seed, verbose=-1
        )
        return CalibratedClassifierCV(base, method="sigmoid", cv=3, ensemble=False)
    if kind == "scratch-logreg":
        base = Pipeline([("scale", StandardScaler()), ("logreg", ScratchLogisticRegression(random_state=seed))])
        return CalibratedClassifierCV(base, method="sigmoid", cv=3)
    if kind == "age-sex":
        return AgeSexRule()
    raise NextbestError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")


def _platt_member(calibrated: Any) -> tuple[Any, float, float]:
    """The refit estimator (a copy) and the sigmoid ``(a, b)`` of a ``CalibratedClassifierCV(ensemble=False)``."""
    (member,) = calibrated.calibrated_classifiers_
    (calibrator,) = member.calibrators
    return copy.deepcopy(member.estimator), float(calibrator.a_), float(calibrator.b_)


def fold_platt(calibrated: Any) -> Any:
    """Fold a fitted sigmoid (Platt) calibration of a scaled logistic regression into its coefficients.

    ``CalibratedClassifierCV(method="sigmoid", ensemble=False)`` fits the sigmoid ``1 / (1 + exp(a f + b))``
    on cross-validated decision values ``f = w.x + c`` and refits the pipeline on all rows. The composition is
    again a logistic regression, ``coef = -a w``, ``intercept = -(a c + b)``: the returned plain
    ``Pipeline(StandardScaler, LogisticRegression)`` gives the calibrated probabilities exactly and exports
    natively to ONNX and PMML.
    """
    pipeline, a, b = _platt_member(calibrated)
    logreg = pipeline[-1]
    logreg.coef_ = -a * logreg.coef_
    logreg.intercept_ = -(a * logreg.intercept_ + b)
    return pipeline


def fold_platt_lightgbm(calibrated: Any) -> Any:
    """Fold a fitted sigmoid (Platt) calibration of a LightGBM classifier into its trees.

    The calibrated probability is ``sigmoid(-(a f + b))`` with ``f`` the raw margin, the sum of one leaf value
    per tree. Multiplying every leaf value by ``-a`` and adding ``-b`` to the leaves of the first tree gives a
    booster whose margin is ``-(a f + b)``: the returned plain ``LGBMClassifier`` gives the calibrated
    probabilities (to float rounding) and exports natively to ONNX (onnxmltools) and PMML.
    """
    import lightgbm

    classifier, a, b = _platt_member(calibrated)
    lines, tree = [], -1
    for line in classifier.booster_.model_to_string().splitlines():
        if line.startswith("Tree="):
            tree = int(line.removeprefix("Tree="))
        elif line.startswith("leaf_value="):
            leaves = np.array(line.removeprefix("leaf_value=").split(), dtype=np.float64)
            leaves = -a * leaves - (b if tree == 0 else 0.0)
            line = "leaf_value=" + " ".join(repr(float(v)) for v in leaves)
        elif line.startswith("tree_sizes="):
            continue  # byte sizes of the tree blocks, no longer true; LightGBM parses without them
        lines.append(line)
    classifier._Booster = lightgbm.Booster(model_str="\n".join(lines) + "\n")
    return classifier


def fit_model(kind: str, seed: int, X: pd.DataFrame, y: np.ndarray) -> Any:
    """The estimator of ``kind`` fitted on ``(X, y)``, its Platt calibration folded in (logreg, gbm) for export."""
    estimator = _estimator(kind, seed).fit(X, y)
    if kind == "logreg":
        return fold_platt(estimator)
    if kind == "gbm":
        return fold_platt_lightgbm(estimator)
    return estimator


def choose_threshold(p: np.ndarray, y: np.ndarray, gain_if_buy: float, cost_of_slot: float) -> tuple[float, float]:
    """Threshold maximizing ``sum 1[p >= t] (y * gain - cost)`` over candidate thresholds (validation data).

    Returns ``(threshold, value per customer)``; ``inf`` (show to nobody) when no threshold is worth it.
    """
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(-p, kind="stable")
    p_sorted, gains = p[order], y[order] * gain_if_buy - cost_of_slot
    cumulative = np.cumsum(gains)
    # a threshold can only cut between distinct probabilities: keep the last index of each tie group
    last_of_group = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    candidates = np.flatnonzero(last_of_group)
    if candidates.size == 0 or cumulative[candidates].max() <= 0:
        return float("inf"), 0.0
    best = candidates[np.argmax(cumulative[candidates])]
    return float(p_sorted[best]), float(cumulative[best] / len(p))


@dataclass
class TargetingModel(Policy):
    """A trained P(buy) model with its decision threshold and the world it was trained in.

    As a policy (``choose``): show (action 1) iff P(buy) >= threshold, deterministically (probability 1)."""

    n_actions = 2

    kind: str
    estimator: Any
    threshold: float
    features: list[str]
    economics: dict[str, float]
    world: dict[str, Any]
    data_dir: str
    validation: dict[str, float] = field(default_factory=dict)
    imputation: Imputation | None = None  # None (models saved before it existed): the zero rule
    encoding: Any = None  # a team's own table: its nextbest.models.tables.TableEncoding; None for the shop world
    table_split: dict[str, Any] | None = None  # the held-out share of that table: {test_fraction, seed}

    @property
    def missing_flags(self) -> Imputation:
        """What a missing product flag becomes for this model (also written into the export sidecar)."""
        return self.imputation or Imputation.zero(self.features)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(buy) for each row of a feature frame (from ``build_features`` / ``features_from_frame``)."""
        return np.asarray(self.estimator.predict_proba(X[self.features]))[:, 1]

    def decide(self, X: pd.DataFrame) -> np.ndarray:
        """1 = show the new category, 0 = don't. The age/sex control applies its rule directly."""
        if self.kind == "age-sex":
            return self.estimator.cell(X).astype(np.int8)
        return (self.predict_proba(X) >= self.threshold).astype(np.int8)

    @property
    def name(self) -> str:
        return self.kind

    def choose(self, X: pd.DataFrame, rng: np.random.Generator | None = None) -> Decision:
        return deterministic(self.decide(X), 2)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            pickle.dump(self, handle)

    @staticmethod
    def load(path: Path) -> TargetingModel:
        path = Path(path)
        if not path.is_file():
            raise NextbestError(f"model file {path} not found")
        try:
            with path.open("rb") as handle:
                model = pickle.load(handle)
        except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
            raise NextbestError(f"{path} is not a nextbest targeting model: {error}") from error
        if not isinstance(model, TargetingModel):
            raise NextbestError(f"{path} is not a nextbest targeting model")
        return model


def read_split(directory: Path, name: str) -> pd.DataFrame:
    path = Path(directory) / f"{name}.parquet"
    if not path.is_file():
        raise NextbestError(f"{path} not found: generate the data with `nextbest shop generate --out {directory}`")
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises many kinds
        raise NextbestError(f"cannot read {path}: {error}") from error
    if "bought" not in frame.columns:
        raise NextbestError(f"{path} has no 'bought' column")
    return frame


def train_targeting(
    data_dir: Path, kind: str, seed: int = 0, validation_fraction: float = 0.2, impute: str = "zero"
) -> TargetingModel:
    """Fit ``kind`` on the training split minus a validation share, then choose the threshold on validation.

    Flags absent or NaN in the table are imputed by ``impute`` (``Imputation``), the rule the model then serves with.
    """
    from sklearn.metrics import log_loss, roc_auc_score


    if kind not in MODELS:
        raise NextbestError(f"unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    if impute not in Imputation.RULES:
        raise NextbestError(f"unknown imputation rule {impute!r}; choose one of {', '.join(Imputation.RULES)}")
    meta = load_world_meta(data_dir)
    world, economics = meta["world"], meta["economics"]
    features = FEATURES(world["n_categories"], world["n_u"])
    train = read_split(data_dir, "train")
    rng = np.random.default_rng([seed, 7])
    is_val = rng.random(len(train)) < validation_fraction
    imputation = Imputation.fit(train, features, impute)
    X, y = features_from_frame(train, features, imputation), train["bought"].to_numpy()
    if len(np.unique(y[~is_val])) < 2:
        raise NextbestError("the training split needs buyers and non-buyers")
    estimator = fit_model(kind, seed, X[~is_val].reset_index(drop=True), y[~is_val])
    model = TargetingModel(kind, estimator, float("inf"), features, economics, world, str(Path(data_dir).resolve()),
                           imputation=imputation)  # fmt: skip
    p_val = model.predict_proba(X[is_val].reset_index(drop=True))
    threshold, value = choose_threshold(p_val, y[is_val], economics["gain_if_buy"], economics["cost_of_slot"])
    model.threshold = threshold
    model.validation = {
        "rows": int(is_val.sum()),
        "value_vs_show_none_realized": value,
        "auc": float(roc_auc_score(y[is_val], p_val)),
        "log_loss": float(log_loss(y[is_val], np.clip(p_val, 1e-12, 1 - 1e-12))),
    }
    return model

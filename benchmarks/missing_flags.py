"""Benchmark (decision quality): what a missing product flag should become, measured against the shop's ground truth.

The shop's feed never names 10 of the default world's 110 flags (the example message's key set). For each model
(logistic regression, gradient boosting) trained on complete data, the evaluation population is scored three ways
through the one feature builder (``features_from_frame`` with an ``Imputation``): with every flag known (the
ceiling), with the 10 flags imputed by the zero rule ("not bought", the default) and by the training mean; and
through the whole stream path on messages written as the realistic feed writes them (``REALISTIC_FEED``: the
gaps, 1% more flags missing, 13% of keys repeated, 15% of those in conflict, read by the stream's decoder). The
figure is the world's exact expected revenue per customer of the decisions; the baseline is the original age/sex
system. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.models.targeting import Imputation, build_features, features_from_frame, train_targeting
from nextbest.sim.shop import REALISTIC_FEED, World, example_keys, write_world_data


def measure(seed: int, customers: int, folder: Path) -> dict:
    write_world_data(World(seed), folder, customers=customers)
    world = World(seed)
    population = world.frame(world.evaluation_customers)
    train = pd.read_parquet(folder / "train.parquet")
    results: dict = {"original": world.expected_revenue("original")}
    demographic, historic = world.feed_messages(world.evaluation_customers, REALISTIC_FEED, np.random.default_rng(seed))
    for kind in ("logreg", "gbm"):
        model = train_targeting(folder, kind, seed=seed)
        absent = [name for name in model.features[3:] if name not in set(example_keys())]
        gappy = population.drop(columns=absent)
        complete = features_from_frame(population, model.features)
        scores = {"all_flags_known": world.expected_revenue(model.decide(complete))}
        for rule in Imputation.RULES:
            imputation = Imputation.fit(train, model.features, rule)
            rows = features_from_frame(gappy, model.features, imputation)
            scores[f"impute_{rule}"] = world.expected_revenue(model.decide(rows))
        for rule in Imputation.RULES:
            rows = build_features(demographic, historic, model.features, Imputation.fit(train, model.features, rule))
            scores[f"realistic_feed_{rule}"] = world.expected_revenue(model.decide(rows))
        scores["loss_zero"] = scores["all_flags_known"] - scores["impute_zero"]
        scores["loss_mean"] = scores["all_flags_known"] - scores["impute_mean"]
        scores["loss_realistic_feed_zero"] = scores["all_flags_known"] - scores["realistic_feed_zero"]
        results[kind] = {key: round(value, 4) for key, value in scores.items()}
        results["absent_flags"] = absent
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    started = time.perf_counter()
    by_seed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            by_seed[str(seed)] = measure(seed, args.customers, Path(tmp) / f"world{seed}")
    print(json.dumps({"benchmark": "missing_flags", "metric": "expected revenue per customer ($), ground truth",
                      "customers": args.customers, "seeds": by_seed,
                      "seconds": round(time.perf_counter() - started, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()

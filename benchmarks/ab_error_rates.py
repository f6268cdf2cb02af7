"""Benchmark: error rates of the A/B statistics, verified by simulation with fixed seeds (one JSON line).

* 10,000 A/A experiments at the designed n (sd 15, effect 0.7 -> 7,210 per arm), every unit drawn:
  false-positive rate of Welch's test at alpha 5 % (target within [4 %, 6 %]).
* 10,000 experiments at the designed n with the true effect equal to the MDE at that n: power
  (target 0.80 +- 0.03).
* MixtureSPRT (tau 0.7 = the target effect, plug-in variances, burn-in 100) on 10,000 A/A experiments checked
  after every 100 units per arm up to 7,210 per arm (73 looks): false-positive rate (target <= 5.5 %); also
  reported for looks after every 50 units per arm (100 units in total) and with a known variance.
* Sample-ratio mismatch: a 50/50 split served 52/48 at n = 20,000 (p-value; flagged at p < 0.001), and the
  flag rates over 10,000 multinomial draws of that broken split and of a healthy 50/50 one.
* Bayesian 95% credible intervals under their model (target coverage 94-96%): beta-binomial on 10,000 experiments
  (uniform true rates, 200 units per arm, 4,000 posterior draws each), normal model on 10,000 experiments at the
  designed n.
* Several metrics: 10,000 A/A experiments with 5 secondary metrics (pairwise correlation 0.5, 1,000 units per arm,
  every unit drawn): family-wise false-positive rate without correction, with Holm and with Benjamini-Hochberg
  (target <= alpha with a correction).
* Binary metrics: power of the two-proportion z-test (analyze_proportions, once per experiment) at the n that
  sample_size_binary designs for power 0.8, at 10 % -> 11 % and 2 % -> 2.4 % (target 0.80 +- 0.03).
* Ratio metrics: coverage of the delta-method 95 % interval of revenue per session, customers with 1-6 sessions
  (2,000 experiments, 1,000 customers per arm).
"""

from __future__ import annotations

import json
import time

from nextbest.experiments import minimum_detectable_effect, sample_size, sample_size_binary, srm_test
from nextbest.experiments.simulation import (
    aa_false_positive_rate,
    binary_power,
    credible_coverage_binary,
    credible_coverage_means,
    family_false_positive_rate,
    power_at,
    ratio_coverage,
    sequential_false_positive_rate,
    srm_detection,
)

EXPERIMENTS = 10_000
EFFECT, SD, ALPHA, POWER = 0.7, 15.0, 0.05, 0.8
BINARY_DESIGNS = ((0.10, 0.10), (0.02, 0.20))


def _r(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def main() -> None:
    started = time.perf_counter()
    n_arm = int(sample_size(EFFECT, SD, ALPHA, POWER))
    mde = minimum_detectable_effect(n_arm, SD, ALPHA, POWER)

    aa = aa_false_positive_rate(EXPERIMENTS, n_arm, SD, ALPHA, seed=20240501, method="draws")
    pw = power_at(n_arm, mde, SD, ALPHA, n_experiments=EXPERIMENTS, seed=20240502, method="draws")
    seq = sequential_false_positive_rate(EXPERIMENTS, n_arm, tau=EFFECT, check_every=100, alpha=ALPHA, sd=SD,
                                         seed=20240503)  # fmt: skip
    seq50 = sequential_false_positive_rate(EXPERIMENTS, n_arm, tau=EFFECT, check_every=50, alpha=ALPHA, sd=SD,
                                           seed=20240504)  # fmt: skip
    seq_known = sequential_false_positive_rate(EXPERIMENTS, n_arm, tau=EFFECT, check_every=100, alpha=ALPHA, sd=SD,
                                               known_variance=True, seed=20240505)  # fmt: skip
    srm = srm_test([10_400, 9_600], [0.5, 0.5])
    srm_broken = srm_detection(20_000, (0.52, 0.48), (0.5, 0.5), EXPERIMENTS, seed=20240506)
    srm_healthy = srm_detection(20_000, (0.5, 0.5), (0.5, 0.5), EXPERIMENTS, seed=20240507)
    bayes_binary = credible_coverage_binary(EXPERIMENTS, 200, ALPHA, draws=4000, seed=20240508)
    bayes_normal = credible_coverage_means(EXPERIMENTS, n_arm, SD, ALPHA, seed=20240509)
    family = family_false_positive_rate(EXPERIMENTS, 1_000, 5, 0.5, ALPHA, seed=20240510)
    binary = {}
    for baseline, lift in BINARY_DESIGNS:
        n_binary = int(sample_size_binary(baseline, lift, ALPHA, POWER))
        binary[f"{baseline:g}->{baseline * (1 + lift):.3g}"] = (n_binary, binary_power(
            n_binary, baseline, baseline * (1 + lift), ALPHA, n_experiments=EXPERIMENTS, seed=20240511))
    ratio = ratio_coverage(2_000, 1_000, ALPHA, seed=20240512)

    result = {
        "benchmark": "ab_error_rates",
        "design": {"effect": EFFECT, "sd": SD, "alpha": ALPHA, "power": POWER, "n_per_arm": n_arm, "mde": _r(mde, 6)},
        "aa_false_positive_rate": _r(aa.rate),
        "aa_ci95": [_r(v) for v in aa.ci],
        "aa_target": [0.04, 0.06],
        "aa_met": 0.04 <= aa.rate <= 0.06,
        "power_at_mde": _r(pw.rate),
        "power_ci95": [_r(v) for v in pw.ci],
        "power_analytic": _r(pw.expected),
        "power_target": [round(POWER - 0.03, 2), round(POWER + 0.03, 2)],
        "power_met": abs(pw.rate - POWER) <= 0.03,
        "msprt_false_positive_rate": _r(seq.rate),
        "msprt_ci95": [_r(v) for v in seq.ci],
        "msprt_setup": f"tau {EFFECT}, plug-in variance, burn-in 100, looks every 100 units per arm up to {n_arm} "
        f"per arm ({seq.details['checks']} looks)",
        "msprt_false_positive_rate_every_50_per_arm": _r(seq50.rate),
        "msprt_false_positive_rate_known_variance": _r(seq_known.rate),
        "msprt_target_max": 0.055,
        "msprt_met": max(seq.rate, seq50.rate, seq_known.rate) <= 0.055,
        "srm_52_48_at_20000_p_value": float(f"{srm.p_value:.4g}"),
        "srm_52_48_flagged": srm.flagged,
        "srm_flag_rate_52_48": _r(srm_broken.rate),
        "srm_flag_rate_50_50": _r(srm_healthy.rate),
        "srm_threshold": srm.threshold,
        "bayes_binary_credible_coverage": _r(bayes_binary),
        "bayes_normal_credible_coverage": _r(bayes_normal),
        "bayes_coverage_target": [0.94, 0.96],
        "bayes_met": all(0.94 <= c <= 0.96 for c in (bayes_binary, bayes_normal)),
        "family_false_positive_rate": {name: _r(rate.rate) for name, rate in family.items()},
        "family_ci95": {name: [_r(v) for v in rate.ci] for name, rate in family.items()},
        "family_setup": "5 null metrics, correlation 0.5, 1,000 units per arm, Welch two-sided, alpha 0.05",
        "family_met": all(family[c].rate <= ALPHA for c in ("holm", "bh")),
        "binary_power": {name: {"n_per_arm": n, "power": _r(rate.rate), "ci95": [_r(v) for v in rate.ci]}
                         for name, (n, rate) in binary.items()},
        "binary_power_met": all(abs(rate.rate - POWER) <= 0.03 for _, rate in binary.values()),
        "ratio_delta_coverage": _r(ratio.rate),
        "ratio_delta_ci95": [_r(v) for v in ratio.ci],
        "experiments_per_check": EXPERIMENTS,
        "aa_and_power_method": "every unit drawn (normal), Welch t-test per experiment, vectorized",
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    result["all_met"] = bool(result["aa_met"] and result["power_met"] and result["msprt_met"] and srm.flagged
                             and result["bayes_met"] and result["family_met"]
                             and result["binary_power_met"])  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The CRM report: one self-contained HTML file (figures embedded as base64 PNG, inline CSS, no external
resources) from a training run folder and an evaluation folder, plus a JSON file next to it that lists
every figure with the JSON it was drawn from, and the headline numbers.

    write_crm_report(run_dir, eval_dir, out)
        reads   run_dir/run.json, run_dir/training_metrics.json, run_dir/training_metrics_final.json,
                eval_dir/evaluation.json
        writes  out (HTML), <out stem>.json, <out stem>_figures/*.png

evaluation.json is read as the typed `CRMEvaluation` and the sections read it by attribute; the run's files stay
plain JSON. The wording follows the funnel (`Wording`): SalesCRM's "subscription rate" and "first-call rate",
other funnels' step names ("paid rate", "mql rate").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nextbest.errors import NextbestError
from nextbest.evaluation.crm_bootstrap import SEGMENT_FIELDS
from nextbest.evaluation.crm_results import CRMEvaluation, EvaluationSettings, Improvement, Interval
from nextbest.report import figures as fg
from nextbest.report.crm_readings import next_steps_section, range_sentences, readings_figure_data, readings_section
from nextbest.report.figures import fmt_count, fmt_factor, fmt_money, fmt_pct
from nextbest.report.html import (
    FigureRef,
    Raw,
    bullets,
    ci_bounds,
    draw_all,
    escape,
    figure,
    guard,
    note,
    num,
    page,
    paragraph,
    read_json,
    status,
    table,
    with_ci,
)

#: Policies the headline compares: `evaluate_crm` always writes them, the report requires them.
HEADLINE_POLICIES = ("learned", "random", "logged")
#: Policies whose action flow the report shows (those present in the evaluation).
FLOW_POLICIES = ("learned", "logged", "rule")
#: Calibration is called failed below this share of steps inside their 95% interval.
CALIBRATION_PASS = 0.8

#: Policies the sensitivity rows hold, in their order.
SENSITIVITY_POLICIES = ("learned", "random", "logged")
_SECTIONS = (
    ("summary", "Summary"),
    ("who", "Who to contact: lead scores on held-out leads"),
    ("metrics", "Business metrics"),
    ("improvement", "Improvement over the baselines"),
    ("segments", "Top segments"),
    ("training", "Training"),
    ("flows", "Policy action flows"),
    ("calibration", "Simulator calibration"),
    ("readings", "What the data cannot tell: the policy under each reading"),
    ("pilot", "The pilot that settles it"),
    ("next", "What to do next"),
    ("settings", "Settings"),
    ("limitations", "How to read this / limitations"),
)


# ----------------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ReportInputs:
    """The four JSON inputs of the report and where they came from; `result` is the typed evaluation the
    sections render from, the run's files stay plain dicts."""

    run_dir: Path
    eval_dir: Path
    run: dict
    curves: dict
    final: dict
    result: CRMEvaluation
    paths: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Wording:
    """How the report names the funnel's conversion and first key step: SalesCRM keeps its words
    ("subscription rate", "subscribes", "first-call rate"), other funnels use their step names ("paid rate",
    "brings … to paid", "mql rate")."""

    step: str  # the conversion step
    label: str  # "<label> rate", "<label> value": "subscription" or the conversion step
    first: str  # "<first> rate": "first-call" or the first key step

    @classmethod
    def of(cls, settings: EvaluationSettings) -> Wording:
        step, first = settings.conversion_step, settings.first_key_step
        return cls(
            step=step,
            label="subscription" if step == "subscribed" else step,
            first="first-call" if first == "first_call" else first,
        )

    @property
    def salescrm(self) -> bool:
        return self.step == "subscribed"

    def converts(self, leads: str) -> str:
        """'subscribes <leads>' or 'brings <leads> to <step>'."""
        return f"subscribes {leads}" if self.salescrm else f"brings {leads} to {self.step}"

    @property
    def conversions(self) -> str:
        """'subscriptions' or 'leads reaching <step>'."""
        return "subscriptions" if self.salescrm else f"leads reaching {self.step}"

    @property
    def conversion(self) -> str:
        """'subscription' or 'lead reaching <step>'."""
        return "subscription" if self.salescrm else f"lead reaching {self.step}"

    def metric_labels(self) -> dict[str, str]:
        """Labels of the business metrics (`fg.METRIC_FORMATS` order)."""
        renamed = {"subscription_rate": f"{_cap(self.label)} rate", "first_call_rate": f"{_cap(self.first)} rate"}
        return {metric: renamed.get(metric, label) for metric, (label, _) in fg.METRIC_FORMATS.items()}

    def target_labels(self) -> dict[str, tuple[str, Callable]]:
        """Label and number format of each target of evaluation.json."""
        rate, first = f"{_cap(self.label)} rate", f"{_cap(self.first)} rate"
        return {
            "subscription_rate": (f"{rate} of the learned policy", fmt_pct),
            "subscription_factor_vs_random": (f"{rate}, learned ÷ random", fmt_factor),
            "first_call_factor_vs_random": (f"{first}, learned ÷ random", fmt_factor),
            "cpa_reduction_vs_random": ("Cost per acquisition cut vs random", fmt_pct),
            "improvement_vs_random_lower_bound": (
                f"Lower 95% bound of learned ÷ random {self.label} rate",
                fmt_factor,
            ),
            "roi": ("ROI of the learned policy", fmt_pct),
        }


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def load_inputs(run_dir: Path, eval_dir: Path) -> ReportInputs:
    """Read and check the report's inputs; a missing or malformed file is a NextbestError naming it."""
    run_dir, eval_dir = Path(run_dir), Path(eval_dir)
    train_hint = f"run `nextbest crm train --out {run_dir}` first"
    paths = {
        "run": run_dir / "run.json",
        "curves": run_dir / "training_metrics.json",
        "final": run_dir / "training_metrics_final.json",
        "evaluation": eval_dir / "evaluation.json",
    }
    data = {key: read_json(path, train_hint) for key, path in paths.items() if key != "evaluation"}
    hint = f"run `nextbest crm evaluate --run {run_dir} --out {eval_dir}` first"
    result = CRMEvaluation.load(paths["evaluation"], hint)
    missing = [name for name in HEADLINE_POLICIES if name not in result.policies]
    if missing:
        raise NextbestError(f"{paths['evaluation']}: no {', '.join(missing)} policy in 'policies'; {hint}")
    return ReportInputs(run_dir, eval_dir, data["run"], data["curves"], data["final"], result, paths)


# ----------------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------------


def draw_figures(inputs: ReportInputs, folder: Path) -> dict[str, FigureRef]:
    """Draw every figure of the report into `folder`; returns them by name."""
    result, paths = inputs.result, inputs.paths
    labels = Wording.of(result.settings).metric_labels()
    jobs: list[tuple[str, str, Path, str, Callable[[Path], Path]]] = [
        ("training_curves", "Training curves", paths["curves"], "", lambda p: fg.training_curves(inputs.curves, p)),
        (
            "policy_comparison",
            "Business metrics per policy",
            paths["evaluation"],
            "policies",
            lambda p: fg.policy_comparison(result.policies, p, labels),
        ),
    ]
    flows = result.action_flows or {}
    for name in _flow_policies(result):
        jobs.append(
            (
                f"action_flow_{name}",
                f"Action flow of the {name} policy",
                paths["evaluation"],
                f"action_flows.{name}",
                lambda p, n=name: fg.action_flow(flows[n], p, f"{n} policy"),
            )
        )
    calibration = result.simulator_calibration
    if calibration is not None:
        jobs.append(
            (
                "calibration",
                "Simulator calibration",
                paths["evaluation"],
                "simulator_calibration",
                lambda p: fg.calibration_chart(calibration, p),
            )
        )
    if result.readings:
        label = _cap(Wording.of(result.settings).label)
        jobs.append(
            (
                "value_sensitivity",
                "The learned policy against the value of a conversion, per reading",
                paths["evaluation"],
                "readings.*.value_sensitivity",
                lambda p: fg.value_sensitivity_chart(readings_figure_data(result), p, label),
            )
        )
    elif result.sensitivity:
        jobs.append(
            (
                "sensitivity",
                "Sensitivity to the call-offer rate",
                paths["evaluation"],
                "sensitivity",
                lambda p: fg.sensitivity_chart(result.sensitivity, p, labels),
            )
        )
    jobs += _who_figure_jobs(inputs)
    return draw_all(jobs, folder)


def _flow_policies(result: CRMEvaluation) -> list[str]:
    flows = result.action_flows or {}
    return [name for name in FLOW_POLICIES if name in flows]


def _missing_section(key: str) -> str:
    return note(f"Not in evaluation.json ('{key}' is missing): this part of the evaluation was not run.")


# ----------------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------------


def _summary(inputs: ReportInputs) -> str:
    result = inputs.result
    words = Wording.of(result.settings)
    parts = [f"<p class='headline'>{escape(_headline_sentence(result, words))}</p>"]
    parts += [paragraph(line) for line in _headline_details(result, words)]
    calibration = result.simulator_calibration
    fraction = None if calibration is None else num(calibration.within_ci_fraction)
    if fraction is not None and fraction < CALIBRATION_PASS:
        parts.append(
            note(
                f"Warning: the simulator reproduces only {fmt_pct(fraction)} of the funnel steps of the test period "
                "within their 95% interval (see Simulator calibration). Read every number in this report as a "
                "comparison of policies inside the simulator, not as a forecast of real results.",
                "warning",
            )
        )
    parts += [paragraph(line) for line in range_sentences(result, words.label, words.conversions)]
    parts.append("<h3>Targets</h3>")
    parts.append(_targets_table(result, words))
    return "\n".join(parts)


def _headline_sentence(result: CRMEvaluation, words: Wording) -> str:
    policies = result.policies

    def rate(name: str) -> str:
        return fmt_pct(policies[name].subscription_rate)

    low, high = ci_bounds(policies["learned"].subscription_rate_ci)
    text = (
        f"In the simulator, the learned policy {words.converts(rate('learned') + ' of test leads')} "
        f"(95% interval {fmt_pct(low)} to {fmt_pct(high)}), against {rate('random')} for random actions "
        f"and {rate('logged')} for the logged sales process."
    )
    values = [f"{name} {fmt_money(policies[name].value_per_lead)}" for name in HEADLINE_POLICIES]
    return text + " Value per lead: " + ", ".join(values) + "."


def _improvements(result: CRMEvaluation) -> dict[str, Improvement]:
    return {"random": result.improvement_vs_random, "logged": result.improvement_vs_logged}


def _headline_details(result: CRMEvaluation, words: Wording) -> list[str]:
    lines = []
    for baseline, block in _improvements(result).items():
        lines.append(
            f"Learned ÷ {baseline} {words.label} rate: {fmt_factor(block.factor)} "
            f"{_ci_text(block.ci, fmt_factor)} — {_factor_reading(block.ci, words)}."
        )
    if "always_wait" in result.policies:
        idle = result.policies["always_wait"]
        lines.append(
            f"For reference, never contacting anyone (always_wait) gives a {words.label} rate of "
            f"{fmt_pct(idle.subscription_rate)} and a value per lead of {fmt_money(idle.value_per_lead)}."
        )
    if result.targets:
        met = sum(t.met for t in result.targets.values())
        lines.append(f"Targets met: {met} of {len(result.targets)}.")
    return lines


def _ci_text(ci: Interval | None, fmt: Callable) -> str:
    low, high = ci_bounds(ci)
    return f"[{fmt(low)}, {fmt(high)}]"


def _factor_reading(ci: Interval, words: Wording) -> str:
    low, high = ci_bounds(ci)
    if num(high) is not None and high < 1:
        return f"the learned policy {words.converts('clearly fewer leads')} (the whole interval is below 1)"
    if num(low) is not None and low > 1:
        return f"the learned policy {words.converts('clearly more leads')} (the whole interval is above 1)"
    return "no clear difference (the interval contains 1, or is not defined)"


def _targets_table(result: CRMEvaluation, words: Wording) -> str:
    if not result.targets:
        return _missing_section("targets")
    labels = words.target_labels()
    rows = []
    for name, check in result.targets.items():
        label, fmt = labels.get(name, (name.replace("_", " "), _generic))
        rows.append([label, fmt(check.value), _target_text(check.target, fmt), status(check.met)])
    return table(["target", "value", "required", "status"], rows, "targets")


def _generic(value: object) -> str:
    number = num(value)
    return "n/a" if number is None else f"{number:,.4g}"


def _target_text(target: object, fmt: Callable) -> str:
    match = re.fullmatch(r"\s*(>=|<=|>|<|==|=)\s*([-+0-9.eE]+)\s*", str(target))
    if not match:
        return "n/a" if target is None else str(target)
    symbol = {">=": "≥", "<=": "≤", "==": "=", "=": "="}.get(match.group(1), match.group(1))
    return f"{symbol} {fmt(float(match.group(2)))}"


def _metrics(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    result = inputs.result
    words = Wording.of(result.settings)
    headers = ["policy", *words.metric_labels().values()]
    rows = [
        [
            name,
            *(with_ci(getattr(entry, m), getattr(entry, f"{m}_ci"), fmt) for m, (_, fmt) in fg.METRIC_FORMATS.items()),
        ]
        for name, entry in result.policies.items()
    ]
    intro = (
        "Simulated on the held-out test leads over the episode horizon. Brackets: 95% bootstrap interval "
        "(the simulator is refitted on resampled train leads and run on resampled test leads). "
        f"ROI = (value of {words.conversions} − spend) ÷ spend; n/a = not defined (no {words.conversion}, no spend)."
    )
    return "\n".join([paragraph(intro), table(headers, rows, "metrics"), figure(figs.get("policy_comparison"))])


def _improvement(inputs: ReportInputs) -> str:
    result = inputs.result
    words = Wording.of(result.settings)
    rows = [
        [
            baseline,
            block.metric or "subscription_rate ratio",
            fmt_factor(block.factor),
            _ci_text(block.ci, fmt_factor),
            _factor_reading(block.ci, words),
        ]
        for baseline, block in _improvements(result).items()
    ]
    intro = f"Factor = learned policy's {words.label} rate ÷ the baseline's; above 1 means more {words.conversions}."
    return paragraph(intro) + table(["baseline", "metric", "factor", "95% interval", "reading"], rows)


def _segments(inputs: ReportInputs) -> str:
    segments = inputs.result.top_segments
    if segments is None:
        return _missing_section("top_segments")
    if not segments:
        return note("No segment had enough lead-episodes to be ranked.")
    covariates = [key for key in segments[0] if key not in SEGMENT_FIELDS]
    rows = []
    for rank, seg in enumerate(segments[:3], start=1):
        plans = "<br>".join(
            f"{escape(' → '.join(s.get('sequence', [])))} <span class='ci'>({escape(fmt_pct(s.get('share')))})</span>"
            for s in seg.get("action_sequences", [])
        )
        rows.append(
            [
                rank,
                *(seg.get(name) for name in covariates),
                seg.get("stage"),
                with_ci(seg.get("value_per_lead"), seg.get("value_ci"), fmt_money),
                fmt_count(seg.get("episodes")),
                Raw(plans or "n/a"),
            ]
        )
    intro = (
        f"{' × '.join(name.replace('_', ' ').capitalize() for name in [*covariates, 'stage'])} segments with the "
        "highest value per lead under the learned policy, counted from the first week a lead is in the stage to the "
        "end of the episode. Action sequences: the learned policy's most frequent plans in the segment (trailing "
        "waits collapsed)."
    )
    headers = ["#", *(name.replace("_", " ") for name in covariates), "stage", "value per lead [95% CI]",
               "lead-episodes", "learned actions"]  # fmt: skip
    return paragraph(intro) + table(headers, rows)


def _percent(value: object, digits: int = 1) -> str:
    """A number already in percent, e.g. 1.09 → '1.09%'."""
    return "n/a" if num(value) is None else f"{value:.{digits}f}%"


_FINAL_FORMATS: dict[str, tuple[str, Callable]] = {
    "agent": ("agent", str),
    "episodes": ("episodes trained", fmt_count),
    "wall_seconds": ("wall-clock time", lambda v: "n/a" if num(v) is None else f"{v:,.1f} s"),
    "q_table_states": ("Q-table states", fmt_count),
    "max_abs_delta_q_last_10k": ("max |ΔQ| over the last 10k episodes", _generic),
    "policy_change_pct_last_10k": ("greedy-policy change over the last 10k episodes", lambda v: _percent(v, 2)),
    "epsilon_final": ("final exploration rate ε", _generic),
    "max_abs_delta_q_established_last_10k": ("max |ΔQ| of established pairs, last 10k episodes ($)", _generic),
    "max_rel_delta_q_established_last_10k": ("the same ÷ the conversion value (seed's goal < 0.001)", _generic),
    "established_min_visits": ("established pair: updates at the window's start ≥", fmt_count),
    "established_visit_pct_last_10k": ("share of the window's updates on established pairs", _percent),
    "new_states_last_10k": ("states first seen in the last 10k episodes", fmt_count),
}


def _training(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    rows = []
    for key, value in inputs.final.items():
        label, fmt = _FINAL_FORMATS.get(key, (key.replace("_", " "), _generic))
        rows.append([label, "n/a" if value is None else fmt(value)])
    settings = inputs.run.get("settings") or {}
    setting_rows = [[key.replace("_", " "), _setting_text(key, value)] for key, value in settings.items()]
    parts = ["<h3>Technical metrics</h3>", table(["metric", "value"], rows), *_step_sizes(inputs.result.convergence)]
    if setting_rows:
        parts += ["<h3>Training settings</h3>", table(["setting", "value"], setting_rows)]
    caption = (
        f"Mean business value per episode ({Wording.of(inputs.result.settings).label} value − spend) while "
        "training, exploration ε, states visited and the largest Q-value change per window (Q-learning only)."
    )
    parts.append(figure(figs.get("training_curves"), caption))
    return "\n".join(parts)


def _step_sizes(convergence: dict | None) -> list[str]:
    """The seed's constant α and the visit-count step size side by side (evaluation.json ``convergence``)."""
    if not convergence:
        return []
    sizes = convergence["step_sizes"]
    keys = [key for key in _FINAL_FORMATS if key not in ("agent", "episodes") and key in next(iter(sizes.values()))]
    rows = [[_FINAL_FORMATS[key][0], *("n/a" if m.get(key) is None else _FINAL_FORMATS[key][1](m[key])
                                       for m in sizes.values())] for key in keys]  # fmt: skip
    agreement = convergence["greedy_agreement"]
    text = (f"Both step sizes trained for {fmt_count(convergence['episodes'])} episodes with the run's seed and grid. "
            f"Their greedy actions agree in {agreement['same_greedy_action_pct']:.1f}% of the "
            f"{fmt_count(agreement['states_in_both'])} states both visited "
            f"({agreement['same_greedy_action_pct_visit_weighted']:.1f}% weighted by updates). "
            + _goal_reading(sizes))  # fmt: skip
    return ["<h3>Step sizes compared</h3>", paragraph(text), table(["metric", *sizes], rows)]


def _goal_reading(sizes: dict[str, dict]) -> str:
    """Which step size reaches the seed's max |ΔQ| < 0.001, in dollars (all pairs) or relative (established)."""
    absolute = [name for name, m in sizes.items() if (num(m.get("max_abs_delta_q_last_10k")) or 1.0) < 0.001]
    relative = [name for name, m in sizes.items()
                if (num(m.get("max_rel_delta_q_established_last_10k")) or 1.0) < 0.001]  # fmt: skip
    return (f"The seed's goal, max |ΔQ| < 0.001 over the last 10k episodes, is reached in dollars over all pairs by: "
            f"{', '.join(absolute) or 'neither'}; relative to the conversion value over established pairs by: "
            f"{', '.join(relative) or 'neither'}. Over all pairs, first visits of new states move Q by a whole "
            "conversion value; a running average of dollar rewards moves by about (target − Q) / n per update.")


_SETTING_FORMATS: dict[str, Callable] = {
    "episodes": fmt_count,
    "subscription_value": fmt_money,
    "call_offer_rate": fmt_pct,
}


def _setting_text(key: str, value: object) -> str:
    fmt = _SETTING_FORMATS.get(key)
    return fmt(value) if fmt is not None and num(value) is not None else _plain(value)


def _plain(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def _flows(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    result = inputs.result
    flows = result.action_flows
    if flows is None:
        return _missing_section("action_flows")
    names = _flow_policies(result)
    if not names:
        return note("No action flow of the learned, logged or rule policy in evaluation.json.")
    words = Wording.of(result.settings)
    converting = "subscribe" if words.salescrm else f"reach {words.step}"
    intro = (
        "Which action each policy takes week after week on the simulated test leads. Each column is a week; "
        f"node and band heights are proportional to the number of lead-episodes; episodes that {converting} or "
        "drop out early leave through the lane at the top; the right column shows how episodes ended."
    )
    parts = [paragraph(intro)]
    for name in names:
        flow = flows[name]
        outcomes = flow.outcomes
        total = max(flow.episodes or sum(outcomes.values()) or 1, 1)
        ends = ", ".join(f"{k} {fmt_count(v)} ({fmt_pct(v / total)})" for k, v in outcomes.items())
        parts.append(f"<h3>{escape(name)} policy</h3><p>Outcomes: {escape(ends or 'n/a')}.</p>")
        parts.append(figure(figs.get(f"action_flow_{name}")))
    return "\n".join(parts)


def _who(inputs: ReportInputs, figs: dict[str, FigureRef] | None = None) -> str:
    """The lead score at decision points, ranked on the held-out leads (no simulator), and its alternative; its
    gains, lift and reliability figures; the score as of a cutoff date when evaluation.json has it."""
    figs = figs or {}
    who = inputs.result.who
    if who is None:
        return _missing_section("who")
    scorers = {who.scorer: who, **{name.replace("_", " "): q for name, q in who.alternatives.items()}}
    formats = {"auc": "{:.3f}", "pr_auc": "{:.3f}", "top10_capture": "{:.1%}", "top20_capture": "{:.1%}",
               "lift_top10": "{:.2f}×"}  # fmt: skip
    rows = [[name, *(with_ci(getattr(q, key), getattr(q, f"{key}_ci"), fmt.format) for key, fmt in formats.items())]
            for name, q in scorers.items()]  # fmt: skip
    beats = who.top10_capture_ci[0] > 0.10
    reading = (f"The top 10% of the {who.scorer}'s scores hold {who.top10_capture:.0%} of the converting decision "
               f"points (95% interval {who.top10_capture_ci[0]:.0%} to {who.top10_capture_ci[1]:.0%}); a random "
               "ranking holds 10%. " + ("The whole interval is above 10%: the ranking beats random on leads it "
                                        "never saw." if beats else "The interval reaches 10%: on these leads the "
                                        "ranking is not shown to beat random."))  # fmt: skip
    cells = zip(who.reliability.mean_score, who.reliability.observed, who.reliability.rows)
    calibration = [[f"{i + 1}", fmt_pct(score), fmt_pct(observed), fmt_count(rows)]
                   for i, (score, observed, rows) in enumerate(cells)]  # fmt: skip
    return "\n".join([
        paragraph("Every score is taken at a decision point: at each funnel step, among the test leads that reached "
                  "it, from their covariates and the steps reached up to it (later steps are hidden, so the score "
                  "cannot 'predict' from what happened after the decision). The outcome is whether the lead "
                  f"converted. {fmt_count(who.rows)} decision points of {fmt_count(who.leads)} held-out leads, "
                  f"{fmt_count(who.converting_rows)} of them converting ({fmt_pct(who.base_rate)}); intervals: "
                  f"{who.interval}."),
        note(reading, "note" if beats else "warning"),
        table(["score", "AUC", "PR-AUC", "top 10% capture", "top 20% capture", "lift (top 10%)"], rows),
        figure(figs.get("who_gains"), "Contacting the top x% of decision points by score reaches y% of the "
                                      "converting ones; lift = y / x."),
        paragraph("Calibration of the first score: mean score and observed conversion rate per score decile. The "
                  "score is the lead's chance to convert within the simulator's horizon from the state it was in, "
                  "under the process as it ran in the training period; the test leads converted more often (the "
                  "process changed), so read it as a ranking first and a probability second."),
        table(["decile", "mean score", "observed", "rows"], calibration),
        figure(figs.get("who_reliability")),
        *_who_cutoff(who.as_of_cutoff),
        *_who_segments(who),
    ])  # fmt: skip


#: Fewer converters than this after the cutoff: the as-of-cutoff figures are flagged as resting on too few.
_FEW_CONVERTERS = 10


def _who_cutoff(cut) -> list[str]:
    """The score as of a cutoff date: the leads open then, ranked against conversion after it."""
    if cut is None:
        return []
    formats = (("auc", "{:.3f}"), ("top10_capture", "{:.1%}"), ("top20_capture", "{:.1%}"))
    rows = [[cut.scorer, fmt_count(cut.leads), fmt_count(cut.converted_after),
             *(with_ci(getattr(cut, key), getattr(cut, f"{key}_ci"), fmt.format) for key, fmt in formats)]]  # fmt: skip
    undated = ", ".join(cut.undated_steps)
    parts = [
        "<h3>As of a cutoff date</h3>",
        paragraph(f"The leads as sales saw them on {cut.cutoff}, the middle of the test period: "
                  f"{fmt_count(cut.entered)} test leads had entered by then, {fmt_count(cut.converted_before)} of "
                  f"them had already converted (left out); the other {fmt_count(cut.leads)} are scored from the "
                  "steps dated on or before the cutoff" + (f" (steps the export records without a date are left "
                                                           f"out: {undated})" if undated else "")
                  + f", and the outcome is conversion after it ({fmt_count(cut.converted_after)} leads)."),
        table(["score", "open leads", "converted after", "AUC", "top 10% capture", "top 20% capture"], rows),
    ]  # fmt: skip
    if cut.converted_after < _FEW_CONVERTERS:
        parts.append(note(f"Only {cut.converted_after} of the open leads converted after the cutoff: these figures "
                          "rest on too few converters to judge the score, and a bootstrap that resamples so few "
                          "cannot show how uncertain they are.", "warning"))  # fmt: skip
    return parts


def _who_figure_jobs(inputs: ReportInputs) -> list[tuple[str, str, Path, str, Callable[[Path], Path]]]:
    """The figures of the WHO section (for `draw_figures`): gains and lift of every lead score, reliability."""
    who = inputs.result.who
    if who is None:
        return []
    scores = {f"{who.scorer} (decision points)": who,
              **{f"{name.replace('_', ' ')} (decision points)": q for name, q in who.alternatives.items()}}  # fmt: skip
    if who.as_of_cutoff is not None:
        scores[f"{who.as_of_cutoff.scorer}, leads open on {who.as_of_cutoff.cutoff}"] = who.as_of_cutoff
    source = inputs.paths["evaluation"]
    return [("who_gains", "Who to contact: gains and lift", source, "who.gains",
             lambda p: fg.who_gains_chart(scores, p)),
            ("who_reliability", "Who to contact: reliability of the score", source, "who.reliability",
             lambda p: fg.who_reliability_chart(who.reliability, p, who.scorer))]  # fmt: skip


def _who_segments(who) -> list[str]:
    """The segments to contact first: highest mean score, with the conversion their held-out leads showed."""
    if not who.top_segments:
        return []
    names = list(who.top_segments[0].segment)
    rows = [[*(escape(s.segment[n]) for n in names), fmt_count(s.rows), fmt_pct(s.mean_score),
             with_ci(s.observed_rate, s.observed_ci, fmt_pct)] for s in who.top_segments]  # fmt: skip
    return [paragraph("Segments to contact first (at least 10 held-out decision points each), by mean score, with "
                      "the conversion rate their leads then showed (Wilson 95% interval):"),
            table([*names, "decision points", "mean score", "observed conversion"], rows)]  # fmt: skip


def _pilot(inputs: ReportInputs) -> str:
    """The randomized test of the uncertain offer: arms, sizes, what the test period's leads could detect."""
    pilot = inputs.result.pilot
    if pilot is None:
        return _missing_section("pilot")
    lift, rate = pilot.detectable_lift_at_budget, pilot.detectable_rate_at_budget
    detectable = ("nothing: an arm would expect fewer than 5 conversions" if lift is None
                  else f"a lift of {lift:+.0%} (to {fmt_pct(rate)})")  # fmt: skip
    rows = [["treatment", escape(pilot.treatment)], ["control", escape(pilot.control)],
            ["outcome", escape(pilot.outcome)],
            ["rates", f"{fmt_pct(pilot.baseline_rate)} (the logged process, simulated) → {fmt_pct(pilot.target_rate)}"],
            ["leads per arm", f"{fmt_count(pilot.per_arm)} ({fmt_count(pilot.total)} in all; power "
                              f"{fmt_pct(pilot.achieved_power)}, alpha {pilot.alpha:g})"],
            [f"with {fmt_count(pilot.budget)} leads (the test period's)", detectable],
            ["method", escape(pilot.method)]]  # fmt: skip
    return "\n".join([
        paragraph("The export cannot tell whether offering this step causes conversions: the simulator's answer "
                  "depends on a reading of the data. A randomized pilot measures it. `nextbest crm pilot` designs "
                  "it for a team's open leads and budget (segments, duration at the lead volume, assignment)."),
        table(["", "design"], rows),
    ])  # fmt: skip


def _calibration(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    cal = inputs.result.simulator_calibration
    if cal is None:
        return _missing_section("simulator_calibration")
    steps = cal.steps
    rows = [
        [
            s.step,
            fmt_pct(s.simulated),
            fmt_pct(s.actual),
            _ci_text(s.ci, fmt_pct),
            status(s.within, "inside", "outside"),
        ]
        for s in steps
    ]
    fraction = num(cal.within_ci_fraction)
    inside = sum(s.within for s in steps)
    verdict = "passes" if fraction is not None and fraction >= CALIBRATION_PASS else "fails"
    covariates = "country and education" if inputs.result.settings.funnel == "salescrm" else "covariates"
    intro = (
        f"The {cal.policy} process is replayed in the simulator on the test leads (their {covariates} only) "
        "and each funnel step's simulated rate is compared with what the test leads actually did. "
        f"Interval: {cal.interval}."
    )
    summary = (
        f"Within-CI fraction: {fmt_pct(fraction)} ({inside} of {len(steps)} steps inside their interval). "
        f"Calibration {verdict} (this report requires at least {fmt_pct(CALIBRATION_PASS)}; with 95% "
        "intervals about 19 steps in 20 should fall inside if the simulator were right)."
    )
    periods = inputs.result.calibration or {}
    in_period = periods.get("in_period")
    within_training = (
        f"Within the training period ({in_period.fitted_on}): {fmt_pct(in_period.within_ci_fraction)} of steps "
        "inside their interval — where the sales process was stable. The test figure above asks the same across "
        "time, after the process changed." if in_period is not None else ""
    )
    plain = (
        "In plain words: when calibration fails, the simulator does not reproduce what happened in the test "
        "period, so its numbers for that period must not be trusted as forecasts. Use them only to compare "
        "policies under the simulator's assumptions, and confirm any decision with an online A/B test."
    )
    return "\n".join(
        [
            paragraph(intro),
            note(summary, "warning" if verdict == "fails" else "note"),
            *([paragraph(within_training)] if within_training else []),
            *_calibration_options(inputs.result),
            paragraph(plain),
            table(["step", "simulated", "actual (test)", "95% interval", "actual vs interval"], rows),
            figure(figs.get("calibration")),
        ]
    )


def _calibration_options(result: CRMEvaluation) -> list[str]:
    """Calibration with and without a fit window (and on train + validation): within the training period and
    across time, with the best across-time option named as it is."""
    periods = dict(result.calibration or {})
    if result.simulator_calibration_train_val is not None:
        periods["across_time_train_val"] = result.simulator_calibration_train_val
    if len(periods) <= 2:
        return []
    names = {"in_period": "within the training period — the run's fit", "across_time": "across time — the run's fit",
             "in_period_recent": "within the training period — fit window",
             "across_time_recent": "across time — fit window",
             "across_time_train_val": "across time — train + validation (diagnostic)"}  # fmt: skip
    rows = [[names.get(key, key), escape(c.fitted_on or "the run's train leads"), fmt_pct(c.within_ci_fraction)]
            for key, c in periods.items()]  # fmt: skip
    across = {key: c.within_ci_fraction for key, c in periods.items() if key.startswith("across_time")}
    best = max(across, key=across.get)
    return [paragraph(f"Calibration with and without a fit window: the best across-time option is "
                      f"{names.get(best, best)} at {fmt_pct(across[best])} of steps inside their interval."),
            table(["calibration", "simulator fitted on", "steps inside their interval"], rows)]  # fmt: skip


def _sensitivity(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    rows_in = inputs.result.sensitivity
    if rows_in is None:
        return _missing_section("sensitivity")
    rows = []
    for row in sorted(rows_in, key=lambda r: -r.call_offer_rate):
        for name in SENSITIVITY_POLICIES:
            metrics = getattr(row, name)
            cells = [fmt(metrics[m]) for m, (_, fmt) in fg.METRIC_FORMATS.items()]
            rows.append([fmt_pct(row.call_offer_rate), name, *cells])
    step = inputs.result.settings.uncertain_offer
    offered = "a call" if step in (None, "first_call") else f"the {step} step"
    reached = "had a first call" if step in (None, "first_call") else f"reached {step}"
    intro = (
        f"The data records which leads {reached}, never which were offered it. The simulator assumes "
        f"a share of leads the logged process offered {offered} (1.0 = every lead, the most conservative reading). "
        "For each assumed share, the simulator is refitted, the learned policy retrained, and the policies "
        "re-simulated (point estimates, no intervals). Conclusions that flip between rows rest on this "
        "untestable assumption."
    )
    labels = Wording.of(inputs.result.settings).metric_labels()
    headers = ["assumed call-offer rate", "policy", *labels.values()]
    return "\n".join([paragraph(intro), table(headers, rows), figure(figs.get("sensitivity"))])


def _readings(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    """The policy under each reading of the data; files written before the readings show their sensitivity rows."""
    result = inputs.result
    if not result.readings:
        return _sensitivity(inputs, figs) if result.sensitivity else _missing_section("readings")
    words = Wording.of(result.settings)
    return readings_section(result, figs, words.metric_labels(), fg.METRIC_FORMATS, words.target_labels(),
                            _target_text)  # fmt: skip


def _settings(inputs: ReportInputs) -> str:
    settings = inputs.result.settings
    sim, evaluation = settings.simulator, settings.evaluation
    run_settings = inputs.run.get("settings") or {}
    leads = f"{fmt_count(settings.train_leads)} / {fmt_count(settings.test_leads)}"
    rows = [
        [f"{Wording.of(settings).label} value", fmt_money(settings.subscription_value)],
        ["action costs", ", ".join(f"{k} {fmt_money(v)}" for k, v in settings.action_costs.items()) or "n/a"],
        ["horizon", f"{_plain(sim['horizon'])} steps of {_plain(sim['days_per_step'])} days"],
        ["contacts of the logged process (drop-out scale)", _plain(sim["logged_contacts"])],
        ["assumed call-offer rate", fmt_pct(sim["call_offer_rate"])],
        ["bootstrap replicates", _plain(evaluation["bootstrap"])],
        [
            "simulations per test lead (point / per replicate)",
            f"{_plain(evaluation['replications'])} / {_plain(evaluation['bootstrap_replications'])}",
        ],
        ["interval level", fmt_pct(evaluation["level"])],
        ["minimum lead-episodes per segment", _plain(evaluation["segment_min_support"])],
        ["seed (evaluation / training)", f"{_plain(evaluation['seed'])} / {_plain(run_settings.get('seed'))}"],
        ["train / test leads", leads],
        ["data folder", _plain(inputs.run.get("data_dir"))],
        ["run folder", str(inputs.run_dir)],
        ["evaluation folder", str(inputs.eval_dir)],
    ]
    return table(["setting", "value"], rows)


def _limitations(words: Wording) -> str:
    reading = [
        "Rates are shares of test leads over the episode horizon, shown as %; money is in $ (value per lead, "
        f"cost per acquisition); ROI is ({words.label} value − spend) ÷ spend, shown as %.",
        "[low, high] is a 95% bootstrap interval; n/a means not defined (e.g. no cost per acquisition without a "
        f"{words.conversion}, no ROI without spend).",
        "Factors are the learned policy's rate divided by a baseline's: 1 = no difference.",
        "A target that is not met is shown as not met; nothing is hidden or rounded into a pass.",
    ]
    limits = [
        "The simulator is learned from observational data: the CRM export records which funnel steps each lead "
        "reached, never which actions sales tried or why. The effects of actions are therefore not identified; "
        "the simulator's transition probabilities are associations (e.g. account managers went to leads already "
        "likely to buy), and a policy that exploits them may not work in reality.",
        "All policy numbers come from the simulator. The calibration section shows how well it reproduces the "
        "test period; when it fails, the numbers are not forecasts.",
        "The share of leads offered each step is an assumption the data cannot check; the readings section "
        "shows the policy and its results from the conservative to the optimistic reading.",
        "The intervals cover re-estimation of the simulator and sampling of test leads, not errors in the "
        "simulator's structure (one week per action, a fixed horizon, no retries of declined offers).",
        "Action-flow diagrams leave out links under a small share of the episodes; each diagram's caption says "
        "how many.",
        "Before acting on a policy, test it online (A/B test) against the current process.",
    ]
    more = "The simulator's model, data and assumptions are described in <code>docs/crm_funnel.md</code>."
    return f"<h3>How to read this</h3>{bullets(reading)}<h3>Limitations</h3>{bullets(limits)}<p>{more}</p>"


# ----------------------------------------------------------------------------------------------------------------
# page
# ----------------------------------------------------------------------------------------------------------------


def render_html(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    """The whole report page as one string."""
    ev_path = inputs.paths["evaluation"]
    words = Wording.of(inputs.result.settings)
    renderers: dict[str, tuple[Path, str, Callable[[], str]]] = {
        "summary": (ev_path, "policies", lambda: _summary(inputs)),
        "who": (ev_path, "who", lambda: _who(inputs, figs)),
        "metrics": (ev_path, "policies", lambda: _metrics(inputs, figs)),
        "improvement": (ev_path, "improvement_vs_random", lambda: _improvement(inputs)),
        "segments": (ev_path, "top_segments", lambda: _segments(inputs)),
        "training": (inputs.paths["final"], "", lambda: _training(inputs, figs)),
        "flows": (ev_path, "action_flows", lambda: _flows(inputs, figs)),
        "calibration": (ev_path, "simulator_calibration", lambda: _calibration(inputs, figs)),
        "readings": (ev_path, "readings", lambda: _readings(inputs, figs)),
        "pilot": (ev_path, "pilot", lambda: _pilot(inputs)),
        "next": (ev_path, "readings", lambda: next_steps_section(inputs.result, words.label)),
        "settings": (ev_path, "settings", lambda: _settings(inputs)),
        "limitations": (ev_path, "", lambda: _limitations(Wording.of(inputs.result.settings))),
    }
    sections = []
    for anchor, title in _SECTIONS:
        source, key, render = renderers[anchor]
        sections.append((anchor, title, guard(source, key, render)))
    agent = (inputs.run.get("settings") or {}).get("agent", inputs.final.get("agent", "?"))
    subtitle = f"Agent {agent} · run {inputs.run_dir} · evaluation {inputs.eval_dir}"
    return page("CRM next-best-action report", subtitle, sections)


def headline(inputs: ReportInputs) -> dict:
    """The headline numbers of the report, for its JSON file."""
    result = inputs.result
    plain = {name: result.policies[name].to_dict() for name in HEADLINE_POLICIES}
    policies = {
        name: {m: entry[m] for m in fg.METRIC_FORMATS} | {f"{m}_ci": entry[f"{m}_ci"] for m in fg.METRIC_FORMATS}
        for name, entry in plain.items()
    }
    calibration = result.simulator_calibration
    fraction = None if calibration is None else num(calibration.within_ci_fraction)
    return {
        "policies": policies,
        "improvement_vs_random": result.improvement_vs_random.to_dict(),
        "improvement_vs_logged": result.improvement_vs_logged.to_dict(),
        "targets_met": sum(t.met for t in result.targets.values()),
        "targets_total": len(result.targets),
        "targets": {name: check.to_dict() for name, check in result.targets.items()},
        "within_ci_fraction": fraction,
        "calibration_passes": None if calibration is None else (fraction or 0.0) >= CALIBRATION_PASS,
    }


def write_crm_report(run_dir: Path, eval_dir: Path, out: Path) -> Path:
    """Write the CRM report: `out` (self-contained HTML), `<out stem>.json` and `<out stem>_figures/`.

    Raises NextbestError naming the file when an input is missing or malformed. Returns `out`.
    """
    out = Path(out)
    if out.suffix.lower() == ".json":
        raise NextbestError(f"{out}: the report is HTML; give a .html path (its JSON summary is written next to it)")
    inputs = load_inputs(Path(run_dir), Path(eval_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    figs = draw_figures(inputs, out.parent / f"{out.stem}_figures")
    out.write_text(render_html(inputs, figs), encoding="utf-8")
    summary = {
        "report": str(out),
        "inputs": {key: str(path) for key, path in inputs.paths.items()},
        "figures": [ref.as_json() for ref in figs.values()],
        "headline": headline(inputs),
    }
    out.with_name(f"{out.stem}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["FigureRef", "ReportInputs", "draw_figures", "load_inputs", "render_html", "write_crm_report"]

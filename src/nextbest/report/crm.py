"""The CRM report: one self-contained HTML file (figures embedded as base64 PNG, inline CSS, no external
resources) from a training run folder and an evaluation folder, plus a JSON file next to it that lists
every figure with the JSON it was drawn from, and the headline numbers.

    write_crm_report(run_dir, eval_dir, out)
        reads   run_dir/run.json, run_dir/training_metrics.json, run_dir/training_metrics_final.json,
                eval_dir/evaluation.json
        writes  out (HTML), <out stem>.json, <out stem>_figures/*.png
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from nextbest.errors import NextbestError
from nextbest.evaluation.crm_results import CRMEvaluation
from nextbest.report import figures as fg
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

#: Policies whose action flow the report shows (those present in the evaluation).
FLOW_POLICIES = ("learned", "logged", "rule")
#: Calibration is called failed below this share of steps inside their 95% interval.
CALIBRATION_PASS = 0.8

_TARGET_LABELS: dict[str, tuple[str, Callable]] = {
    "subscription_rate": ("Subscription rate of the learned policy", fmt_pct),
    "subscription_factor_vs_random": ("Subscription rate, learned ÷ random", fmt_factor),
    "first_call_factor_vs_random": ("First-call rate, learned ÷ random", fmt_factor),
    "cpa_reduction_vs_random": ("Cost per acquisition cut vs random", fmt_pct),
    "improvement_vs_random_lower_bound": ("Lower 95% bound of learned ÷ random subscription rate", fmt_factor),
    "roi": ("ROI of the learned policy", fmt_pct),
}
_SECTIONS = (
    ("summary", "Summary"),
    ("metrics", "Business metrics"),
    ("improvement", "Improvement over the baselines"),
    ("segments", "Top segments"),
    ("training", "Training"),
    ("flows", "Policy action flows"),
    ("calibration", "Simulator calibration"),
    ("sensitivity", "Sensitivity to the call-offer-rate assumption"),
    ("settings", "Settings"),
    ("limitations", "How to read this / limitations"),
)


# ----------------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ReportInputs:
    """The four JSON inputs of the report and where they came from; `result` is the typed evaluation and
    `evaluation` its plain form, which the sections render from."""

    run_dir: Path
    eval_dir: Path
    run: dict
    curves: dict
    final: dict
    result: CRMEvaluation
    paths: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def evaluation(self) -> dict:
        return self.result.to_dict()


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
    if not result.policies:
        raise NextbestError(f"{paths['evaluation']}: no policies; {hint}")
    return ReportInputs(run_dir, eval_dir, data["run"], data["curves"], data["final"], result, paths)


# ----------------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------------


def draw_figures(inputs: ReportInputs, folder: Path) -> dict[str, FigureRef]:
    """Draw every figure of the report into `folder`; returns them by name."""
    ev, paths = inputs.evaluation, inputs.paths
    jobs: list[tuple[str, str, Path, str, Callable[[Path], Path]]] = [
        ("training_curves", "Training curves", paths["curves"], "", lambda p: fg.training_curves(inputs.curves, p)),
        (
            "policy_comparison",
            "Business metrics per policy",
            paths["evaluation"],
            "policies",
            lambda p: fg.policy_comparison(ev["policies"], p),
        ),
    ]
    for name in _flow_policies(ev):
        jobs.append(
            (
                f"action_flow_{name}",
                f"Action flow of the {name} policy",
                paths["evaluation"],
                f"action_flows.{name}",
                lambda p, n=name: fg.action_flow(ev["action_flows"][n], p, f"{n} policy"),
            )
        )
    if ev.get("simulator_calibration"):
        jobs.append(
            (
                "calibration",
                "Simulator calibration",
                paths["evaluation"],
                "simulator_calibration",
                lambda p: fg.calibration_chart(ev["simulator_calibration"], p),
            )
        )
    if ev.get("sensitivity"):
        jobs.append(
            (
                "sensitivity",
                "Sensitivity to the call-offer rate",
                paths["evaluation"],
                "sensitivity",
                lambda p: fg.sensitivity_chart(ev["sensitivity"], p),
            )
        )
    return draw_all(jobs, folder)


def _flow_policies(ev: dict) -> list[str]:
    flows = ev.get("action_flows") or {}
    return [name for name in FLOW_POLICIES if isinstance(flows.get(name), dict)]


def _missing_section(key: str) -> str:
    return note(f"Not in evaluation.json ('{key}' is missing): this part of the evaluation was not run.")


# ----------------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------------


def _summary(inputs: ReportInputs) -> str:
    ev = inputs.evaluation
    parts = [f"<p class='headline'>{escape(_headline_sentence(ev))}</p>"]
    parts += [paragraph(line) for line in _headline_details(ev)]
    calibration = ev.get("simulator_calibration") or {}
    fraction = num(calibration.get("within_ci_fraction"))
    if fraction is not None and fraction < CALIBRATION_PASS:
        parts.append(
            note(
                f"Warning: the simulator reproduces only {fmt_pct(fraction)} of the funnel steps of the test period "
                "within their 95% interval (see Simulator calibration). Read every number in this report as a "
                "comparison of policies inside the simulator, not as a forecast of real results.",
                "warning",
            )
        )
    parts.append("<h3>Targets</h3>")
    parts.append(_targets_table(ev.get("targets")))
    return "\n".join(parts)


def _headline_sentence(ev: dict) -> str:
    policies = ev["policies"]

    def rate(name: str) -> str:
        entry = policies.get(name) or {}
        return fmt_pct(entry.get("subscription_rate"))

    learned = policies.get("learned") or {}
    low, high = ci_bounds(learned.get("subscription_rate_ci"))
    text = (
        f"In the simulator, the learned policy subscribes {rate('learned')} of test leads "
        f"(95% interval {fmt_pct(low)} to {fmt_pct(high)}), against {rate('random')} for random actions "
        f"and {rate('logged')} for the logged sales process."
    )
    values = [
        f"{name} {fmt_money((policies.get(name) or {}).get('value_per_lead'))}"
        for name in ("learned", "random", "logged")
        if name in policies
    ]
    return text + " Value per lead: " + ", ".join(values) + "."


def _headline_details(ev: dict) -> list[str]:
    lines = []
    for baseline in ("random", "logged"):
        block = ev.get(f"improvement_vs_{baseline}")
        if isinstance(block, dict):
            lines.append(
                f"Learned ÷ {baseline} subscription rate: {fmt_factor(block.get('factor'))} "
                f"{_ci_text(block.get('ci'), fmt_factor)} — {_factor_reading(block.get('ci'))}."
            )
    idle = ev["policies"].get("always_wait")
    if isinstance(idle, dict):
        lines.append(
            "For reference, never contacting anyone (always_wait) gives a subscription rate of "
            f"{fmt_pct(idle.get('subscription_rate'))} and a value per lead of {fmt_money(idle.get('value_per_lead'))}."
        )
    targets = ev.get("targets") or {}
    if targets:
        met = sum(bool(t.get("met")) for t in targets.values() if isinstance(t, dict))
        lines.append(f"Targets met: {met} of {len(targets)}.")
    return lines


def _ci_text(ci: list | None, fmt: Callable) -> str:
    low, high = ci_bounds(ci)
    return f"[{fmt(low)}, {fmt(high)}]"


def _factor_reading(ci: list | None) -> str:
    low, high = ci_bounds(ci)
    if num(high) is not None and high < 1:
        return "the learned policy subscribes clearly fewer leads (the whole interval is below 1)"
    if num(low) is not None and low > 1:
        return "the learned policy subscribes clearly more leads (the whole interval is above 1)"
    return "no clear difference (the interval contains 1, or is not defined)"


def _targets_table(targets: dict | None) -> str:
    if not targets:
        return _missing_section("targets")
    rows = []
    for name, entry in targets.items():
        label, fmt = _TARGET_LABELS.get(name, (name.replace("_", " "), _generic))
        met = bool(entry.get("met"))
        rows.append([label, fmt(entry.get("value")), _target_text(entry.get("target"), fmt), status(met)])
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
    policies = inputs.evaluation["policies"]
    headers = ["policy", *(label for label, _ in fg.METRIC_FORMATS.values())]
    rows = [
        [name, *(with_ci(entry.get(m), entry.get(f"{m}_ci"), fmt) for m, (_, fmt) in fg.METRIC_FORMATS.items())]
        for name, entry in policies.items()
    ]
    intro = (
        "Simulated on the held-out test leads over the episode horizon. Brackets: 95% bootstrap interval "
        "(the simulator is refitted on resampled train leads and run on resampled test leads). "
        "ROI = (value of subscriptions − spend) ÷ spend; n/a = not defined (no subscription, no spend)."
    )
    return "\n".join([paragraph(intro), table(headers, rows, "metrics"), figure(figs.get("policy_comparison"))])


def _improvement(inputs: ReportInputs) -> str:
    ev = inputs.evaluation
    rows = []
    for baseline in ("random", "logged"):
        block = ev.get(f"improvement_vs_{baseline}")
        if not isinstance(block, dict):
            continue
        rows.append(
            [
                baseline,
                block.get("metric", "subscription_rate ratio"),
                fmt_factor(block.get("factor")),
                _ci_text(block.get("ci"), fmt_factor),
                _factor_reading(block.get("ci")),
            ]
        )
    if not rows:
        return _missing_section("improvement_vs_random")
    intro = "Factor = learned policy's subscription rate ÷ the baseline's; above 1 means more subscriptions."
    return paragraph(intro) + table(["baseline", "metric", "factor", "95% interval", "reading"], rows)


def _segments(inputs: ReportInputs) -> str:
    segments = inputs.evaluation.get("top_segments")
    if segments is None:
        return _missing_section("top_segments")
    if not segments:
        return note("No segment had enough lead-episodes to be ranked.")
    fixed = {"stage", "value_per_lead", "value_ci", "episodes", "leads", "action_sequences"}
    covariates = [key for key in segments[0] if key not in fixed]
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


_FINAL_FORMATS: dict[str, tuple[str, Callable]] = {
    "agent": ("agent", str),
    "episodes": ("episodes trained", fmt_count),
    "wall_seconds": ("wall-clock time", lambda v: "n/a" if num(v) is None else f"{v:,.1f} s"),
    "q_table_states": ("Q-table states", fmt_count),
    "max_abs_delta_q_last_10k": ("max |ΔQ| over the last 10k episodes", _generic),
    "policy_change_pct_last_10k": (
        "greedy-policy change over the last 10k episodes",
        lambda v: "n/a" if num(v) is None else f"{v:.2f}%",
    ),
    "epsilon_final": ("final exploration rate ε", _generic),
}


def _training(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    rows = []
    for key, value in inputs.final.items():
        label, fmt = _FINAL_FORMATS.get(key, (key.replace("_", " "), _generic))
        rows.append([label, "n/a" if value is None else fmt(value)])
    settings = inputs.run.get("settings") or {}
    setting_rows = [[key.replace("_", " "), _setting_text(key, value)] for key, value in settings.items()]
    parts = ["<h3>Technical metrics</h3>", table(["metric", "value"], rows)]
    if setting_rows:
        parts += ["<h3>Training settings</h3>", table(["setting", "value"], setting_rows)]
    caption = (
        "Mean business value per episode (subscription value − spend) while training, exploration ε, "
        "states visited and the largest Q-value change per window (Q-learning only)."
    )
    parts.append(figure(figs.get("training_curves"), caption))
    return "\n".join(parts)


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
    flows = inputs.evaluation.get("action_flows")
    if flows is None:
        return _missing_section("action_flows")
    names = _flow_policies(inputs.evaluation)
    if not names:
        return note("No action flow of the learned, logged or rule policy in evaluation.json.")
    intro = (
        "Which action each policy takes week after week on the simulated test leads. Each column is a week; "
        "node and band heights are proportional to the number of lead-episodes; episodes that subscribe or "
        "drop out early leave through the lane at the top; the right column shows how episodes ended."
    )
    parts = [paragraph(intro)]
    for name in names:
        flow = flows[name]
        outcomes = flow.get("outcomes") or {}
        total = max(int(flow.get("episodes") or sum(outcomes.values()) or 1), 1)
        ends = ", ".join(f"{k} {fmt_count(v)} ({fmt_pct(v / total)})" for k, v in outcomes.items())
        parts.append(f"<h3>{escape(name)} policy</h3><p>Outcomes: {escape(ends or 'n/a')}.</p>")
        parts.append(figure(figs.get(f"action_flow_{name}")))
    return "\n".join(parts)


def _calibration(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    cal = inputs.evaluation.get("simulator_calibration")
    if cal is None:
        return _missing_section("simulator_calibration")
    steps = cal.get("steps") or []
    rows = [
        [
            s.get("step"),
            fmt_pct(s.get("simulated")),
            fmt_pct(s.get("actual")),
            _ci_text(s.get("ci"), fmt_pct),
            status(bool(s.get("within")), "inside", "outside"),
        ]
        for s in steps
    ]
    fraction = num(cal.get("within_ci_fraction"))
    inside = sum(bool(s.get("within")) for s in steps)
    verdict = "passes" if fraction is not None and fraction >= CALIBRATION_PASS else "fails"
    intro = (
        f"The {cal.get('policy', 'logged')} process is replayed in the simulator on the test leads (their "
        "country and education only) and each funnel step's simulated rate is compared with what the test "
        f"leads actually did. Interval: {cal.get('interval', '95% interval')}."
    )
    summary = (
        f"Within-CI fraction: {fmt_pct(fraction)} ({inside} of {len(steps)} steps inside their interval). "
        f"Calibration {verdict} (this report requires at least {fmt_pct(CALIBRATION_PASS)}; with 95% "
        "intervals about 19 steps in 20 should fall inside if the simulator were right)."
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
            paragraph(plain),
            table(["step", "simulated", "actual (test)", "95% interval", "actual vs interval"], rows),
            figure(figs.get("calibration")),
        ]
    )


def _sensitivity(inputs: ReportInputs, figs: dict[str, FigureRef]) -> str:
    rows_in = inputs.evaluation.get("sensitivity")
    if rows_in is None:
        return _missing_section("sensitivity")
    rows = []
    for row in sorted(rows_in, key=lambda r: -float(r.get("call_offer_rate", 0))):
        for name, entry in row.items():
            if isinstance(entry, dict):
                cells = [fmt(entry.get(m)) for m, (_, fmt) in fg.METRIC_FORMATS.items()]
                rows.append([fmt_pct(row.get("call_offer_rate")), name, *cells])
    intro = (
        "The data records which leads had a first call, never which were offered one. The simulator assumes "
        "a share of leads the logged process offered a call (1.0 = every lead, the most conservative reading). "
        "For each assumed share, the simulator is refitted, the learned policy retrained, and the policies "
        "re-simulated (point estimates, no intervals). Conclusions that flip between rows rest on this "
        "untestable assumption."
    )
    headers = ["assumed call-offer rate", "policy", *(label for label, _ in fg.METRIC_FORMATS.values())]
    return "\n".join([paragraph(intro), table(headers, rows), figure(figs.get("sensitivity"))])


def _settings(inputs: ReportInputs) -> str:
    ev_settings = inputs.evaluation.get("settings") or {}
    sim = ev_settings.get("simulator") or {}
    evaluation = ev_settings.get("evaluation") or {}
    run_settings = inputs.run.get("settings") or {}
    costs = ev_settings.get("action_costs") or {}
    value = ev_settings.get("subscription_value", run_settings.get("subscription_value"))
    leads = f"{fmt_count(ev_settings.get('train_leads'))} / {fmt_count(ev_settings.get('test_leads'))}"
    rows = [
        ["subscription value", fmt_money(value)],
        ["action costs", ", ".join(f"{k} {fmt_money(v)}" for k, v in costs.items()) or "n/a"],
        ["horizon", f"{_plain(sim.get('horizon'))} steps of {_plain(sim.get('days_per_step'))} days"],
        ["contacts of the logged process (drop-out scale)", _plain(sim.get("logged_contacts"))],
        ["assumed call-offer rate", fmt_pct(sim.get("call_offer_rate", run_settings.get("call_offer_rate")))],
        ["bootstrap replicates", _plain(evaluation.get("bootstrap"))],
        [
            "simulations per test lead (point / per replicate)",
            f"{_plain(evaluation.get('replications'))} / {_plain(evaluation.get('bootstrap_replications'))}",
        ],
        ["interval level", fmt_pct(evaluation.get("level"))],
        ["minimum lead-episodes per segment", _plain(evaluation.get("segment_min_support"))],
        ["seed (evaluation / training)", f"{_plain(evaluation.get('seed'))} / {_plain(run_settings.get('seed'))}"],
        ["train / test leads", leads],
        ["data folder", _plain(inputs.run.get("data_dir"))],
        ["run folder", str(inputs.run_dir)],
        ["evaluation folder", str(inputs.eval_dir)],
    ]
    return table(["setting", "value"], rows)


def _limitations() -> str:
    reading = [
        "Rates are shares of test leads over the episode horizon, shown as %; money is in $ (value per lead, "
        "cost per acquisition); ROI is (subscription value − spend) ÷ spend, shown as %.",
        "[low, high] is a 95% bootstrap interval; n/a means not defined (e.g. no cost per acquisition without a "
        "subscription, no ROI without spend).",
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
        "The share of leads offered a call is an assumption the data cannot check; the sensitivity section "
        "shows how the results move with it.",
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
    renderers: dict[str, tuple[Path, str, Callable[[], str]]] = {
        "summary": (ev_path, "policies", lambda: _summary(inputs)),
        "metrics": (ev_path, "policies", lambda: _metrics(inputs, figs)),
        "improvement": (ev_path, "improvement_vs_random", lambda: _improvement(inputs)),
        "segments": (ev_path, "top_segments", lambda: _segments(inputs)),
        "training": (inputs.paths["final"], "", lambda: _training(inputs, figs)),
        "flows": (ev_path, "action_flows", lambda: _flows(inputs, figs)),
        "calibration": (ev_path, "simulator_calibration", lambda: _calibration(inputs, figs)),
        "sensitivity": (ev_path, "sensitivity", lambda: _sensitivity(inputs, figs)),
        "settings": (ev_path, "settings", lambda: _settings(inputs)),
        "limitations": (ev_path, "", _limitations),
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
    ev = inputs.evaluation
    policies = {
        name: {m: entry.get(m) for m in fg.METRIC_FORMATS}
        | {f"{m}_ci": entry.get(f"{m}_ci") for m in fg.METRIC_FORMATS}
        for name, entry in ev["policies"].items()
        if name in ("learned", "random", "logged")
    }
    targets = ev.get("targets") or {}
    calibration = ev.get("simulator_calibration") or {}
    return {
        "policies": policies,
        "improvement_vs_random": ev.get("improvement_vs_random"),
        "improvement_vs_logged": ev.get("improvement_vs_logged"),
        "targets_met": sum(bool(t.get("met")) for t in targets.values() if isinstance(t, dict)),
        "targets_total": len(targets),
        "targets": targets,
        "within_ci_fraction": calibration.get("within_ci_fraction"),
        "calibration_passes": (num(calibration.get("within_ci_fraction")) or 0.0) >= CALIBRATION_PASS
        if calibration
        else None,
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

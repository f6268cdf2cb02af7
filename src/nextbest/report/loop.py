"""The learning loop's report: one self-contained HTML page (figures embedded as base64 PNG, inline CSS, no external
resources) telling one turn of the loop — what the exploring model logged, every candidate policy estimated
off-policy with its intervals next to the world's truth, the importance-weight diagnostics, and the chosen policy's
effect three ways (OPE, A/B test, truth); plus loop_report.json listing every figure with the key of loop.json it
was drawn from.

    write_loop_report(result, out_dir, source=None)
        reads   nothing but ``result`` (``nextbest.evaluation.loop.LoopResult``, the typed loop.json); ``source`` is
                the loop.json the figures' captions name (default out_dir/loop.json, where `nextbest demo loop`
                writes it)
        writes  out_dir/loop.html, out_dir/loop_report.json, out_dir/figures/loop_*.png

Every number on the page and in the figures is read from the LoopResult; the page adds no estimate of its own
(only the ESS as a share of the rows evaluated, and interval widths quoted in the weights note).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from nextbest.errors import NextbestError
from nextbest.evaluation.loop import CandidateOPE, LoopResult
from nextbest.ope import OPEEstimate
from nextbest.report import figures as fg
from nextbest.report import html as h
from nextbest.report.figures import fmt_count, fmt_pct

#: Plain words for the candidates `nextbest demo loop` estimates; another name is shown as it is.
CANDIDATE_WORDS: dict[str, str] = {
    "learned": "a new policy learned from the log (doubly robust weighted classification), exported as a model",
    "current": "the shop's current model (gbm), the one that served the log with exploration",
    "original": "the original age/sex rule: the shop's status quo (the platform's control arm)",
    "logged": "the policy that logged the data: the current model with its exploration (exact probabilities)",
    "show_all": "show the new category to everyone",
    "show_none": "show it to no one",
}
#: Colours of the estimators in the figures.
ESTIMATOR_COLORS: dict[str, str] = {"ips": "#E07B39", "snips": "#8E6BB0", "dr": "#1F5FA8", "dm": "#2C8A3B",
                                    "sndr": "#17BECF", "switch-dr": "#8C564B"}  # fmt: skip
TRUTH_COLOR = "#222222"
_LOOP_HINT = "run `nextbest demo loop --out DIR` first (it writes DIR/loop.json)"


# ----------------------------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------------------------


def fmt_dollars(value: float | None, signed: bool = False) -> str:
    """Dollars per session to the tenth of a cent ('$64.942'; signed: '+$1.485', '-$1.130', '$0.000')."""
    number = h.num(value)
    if number is None:
        return "n/a"
    sign = "-" if number < 0 else "+" if signed and number > 0 else ""
    return f"{sign}${abs(number):,.3f}"


def fmt_effect(value: float | None) -> str:
    """A difference per session, always signed."""
    return fmt_dollars(value, signed=True)


def estimator_label(name: str) -> str:
    return name.upper()


def _control_words(control: str) -> str:
    """How the page names the control: the original rule or the logging policy."""
    return {"original": "original rule", "logged": "logging policy"}.get(control, control)


def _explore_words(explore: object) -> str:
    """The exploration setting (``epsilon:E`` or ``softmax:T``) in words."""
    kind, _, parameter = str(explore).partition(":")
    value = h.num(_float(parameter))
    if kind == "epsilon" and value is not None:
        return (f"ε-greedy with ε = {value:g}: in each session the model's own choice was replaced, with probability "
                f"{value:g}, by a fair coin flip between showing the new category and not showing it, so every action "
                f"kept a chance of at least {100 * value / 2:g}%")  # fmt: skip
    if kind == "softmax" and value is not None:
        return (
            f"softmax with temperature {value:g}: each action drawn with a probability that grows with the "
            "model's score for it, so the model's favourite is likely but never certain"
        )
    return f"exploration {explore}"


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _ci_width(estimate: OPEEstimate) -> float | None:
    low, high = (h.num(v) for v in h.ci_bounds(estimate.ci))
    return None if low is None or high is None else high - low


# ----------------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------------


def _money_ticks(ax, signed: bool = False) -> None:
    def tick(value: float, _pos: object = None) -> str:
        sign = "-" if value < 0 else "+" if signed and value > 0 else ""
        return rf"{sign}\${abs(value):,.2f}"

    ax.xaxis.set_major_formatter(FuncFormatter(tick))


def _tick_label(name: str, result: LoopResult) -> str:
    choice = result.choice
    return name + (" ★ chosen" if name == choice.chosen else "") + (" (control)" if name == choice.control else "")


def _errorbar(ax, estimate: OPEEstimate, y: float, colour: str, label: str | None) -> None:
    value = h.num(estimate.estimate)
    low, high = (h.num(v) for v in h.ci_bounds(estimate.ci))
    if value is None:
        return
    err = None if low is None or high is None else [[max(value - low, 0.0)], [max(high - value, 0.0)]]
    ax.errorbar([value], [y], xerr=err, fmt="o", color=colour, markersize=4.5, capsize=3, lw=1.3, zorder=3,
                label=label)  # fmt: skip


def candidates_chart(result: LoopResult, path: str | Path) -> Path:
    """Per candidate, each estimator's estimate and 95% interval as horizontal error bars and the world's truth as a
    black tick: the value per session (left) and the difference from the control (right)."""
    choice = result.choice
    names = list(choice.candidates)
    estimators = list(dict.fromkeys(e for c in choice.candidates.values() for e in c.value))
    fig = fg._new_figure(11.5, 0.72 * len(names) + 2.0)
    left, right = fig.subplots(1, 2, sharey=True)
    step = 0.7 / max(len(estimators), 1)
    panels = ((left, "value", result.true_value), (right, "versus_control", result.true_effect))
    for ax, field, truth in panels:
        for i, name in enumerate(names):
            block: dict[str, OPEEstimate] = getattr(choice.candidates[name], field)
            for j, estimator in enumerate(estimators):
                if estimator in block:
                    y = i + (j - (len(estimators) - 1) / 2) * step
                    colour = fg._colour(estimator, ESTIMATOR_COLORS, j)
                    _errorbar(ax, block[estimator], y, colour, estimator_label(estimator) if i == 0 else None)
            true = h.num(truth.get(name))
            if true is not None:
                ax.plot([true], [i], marker="|", markersize=26, mew=2.2, color=TRUTH_COLOR, linestyle="none", zorder=4)
        fg._style(ax)
    if names:
        left.set_yticks(range(len(names)), [_tick_label(n, result) for n in names], fontsize=9)
    left.set_ylim(len(names) - 0.5, -0.5)
    right.axvline(0.0, color="#999999", linestyle="--", linewidth=1.0, zorder=1)
    _money_ticks(left)
    _money_ticks(right, signed=True)
    left.set_title("Value per session", fontsize=11)
    right.set_title(f"Difference from the {_control_words(choice.control)} (the A/B control)", fontsize=11)
    left.set_xlabel(r"expected revenue per session (\$)")
    right.set_xlabel(rf"candidate − {choice.control}, per session (\$)")
    handles, labels = left.get_legend_handles_labels()
    handles.append(Line2D([], [], marker="|", markersize=12, mew=2.2, color=TRUTH_COLOR, linestyle="none"))
    labels.append("truth (the world's exact value)")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(f"Candidates estimated on {choice.rows_evaluated:,} held-out logged sessions (95% intervals)",
                 fontsize=12)  # fmt: skip
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fg._save(fig, path)


def effect_chart(result: LoopResult, path: str | Path) -> Path:
    """The chosen policy's effect over the control three ways: the OPE estimate and the A/B measurement with their
    95% intervals, and the world's true effect (also a dotted line through all rows)."""
    c = result.comparison
    fig = fg._new_figure(9.0, 3.3)
    ax = fig.subplots()
    rows = [f"OPE ({estimator_label(c.estimator)}) on the log", "A/B test", "truth (world)"]
    ope = OPEEstimate(estimator=c.estimator, estimate=c.ope_effect, ci=c.ope_ci, interval="", level=0.95, n=0,
                      ess=None, max_weight=None, unsupported_mass=0.0)  # fmt: skip
    _errorbar(ax, ope, 0, ESTIMATOR_COLORS.get(c.estimator, "#1F5FA8"), None)
    if h.num(c.ab_effect) is not None:
        ab = OPEEstimate(estimator="ab", estimate=c.ab_effect, ci=c.ab_ci or [], interval="", level=0.95, n=0,
                         ess=None, max_weight=None, unsupported_mass=0.0)  # fmt: skip
        _errorbar(ax, ab, 1, "#2C8A3B", None)
    else:
        ax.text(0.5, 1, "no A/B test", transform=ax.get_yaxis_transform(), ha="center", va="center",
                color="#666666", fontsize=10)  # fmt: skip
    true = h.num(c.true_effect)
    if true is not None:
        ax.axvline(true, color=TRUTH_COLOR, linestyle=":", linewidth=1.1, zorder=1)
        ax.plot([true], [2], marker="D", markersize=7, color=TRUTH_COLOR, linestyle="none", zorder=3)
    ax.axvline(0.0, color="#999999", linestyle="--", linewidth=1.0, zorder=1)
    ax.set_yticks(range(3), rows, fontsize=9.5)
    ax.set_ylim(2.6, -0.6)
    _money_ticks(ax, signed=True)
    ax.set_xlabel(rf"{c.policy} − {result.choice.control}, revenue per session (\$; 95% intervals)")
    ax.set_title(f"Effect of the chosen policy ({c.policy}) over the {_control_words(result.choice.control)}",
                 fontsize=11)
    fg._style(ax)
    fig.tight_layout()
    return fg._save(fig, path)


def draw_figures(result: LoopResult, folder: Path, source: Path) -> dict[str, h.FigureRef]:
    """Draw every figure of the report into `folder`; returns them by name."""
    jobs: list[tuple[str, str, Path, str, Callable[[Path], Path]]] = [
        ("loop_candidates", "Candidates: estimates, intervals and truth", source, "choice.candidates",
         lambda p: candidates_chart(result, p)),
        ("loop_effect", "OPE vs A/B vs truth", source, "comparison", lambda p: effect_chart(result, p)),
    ]  # fmt: skip
    return h.draw_all(jobs, folder)


# ----------------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------------


def _headline(result: LoopResult) -> str:
    c, choice = result.comparison, result.choice
    ab = (f"the A/B test measured {h.with_ci(c.ab_effect, c.ab_ci, fmt_effect)}" if h.num(c.ab_effect) is not None
          else "it was not A/B tested")  # fmt: skip
    text = (f"Chosen: {h.escape(c.policy)} (highest {estimator_label(choice.select_by)} value). Its effect over the "
            f"{_control_words(h.escape(choice.control))} per session: off-policy estimate "
            f"{h.with_ci(c.ope_effect, c.ope_ci, fmt_effect)}; {ab}; the world's truth is "
            f"{h.escape(fmt_effect(c.true_effect))}.")  # fmt: skip
    return f"<p class='headline'>{text}</p>"


def _what_happened(result: LoopResult) -> str:
    settings, exploration, collected = result.settings, result.exploration, result.collected
    join: dict[str, Any] = collected.get("join") or {}
    choice = result.choice
    sessions = exploration.get("sessions_sent", settings.get("log_sessions"))
    shown = exploration.get("shown")
    shown_share = h.num(shown) / sessions if h.num(shown) is not None and h.num(sessions) else None
    story = (
        f"The shop's current model served {fmt_count(sessions)} sessions while exploring "
        f"({_explore_words(settings.get('explore'))}). The new category was shown in {fmt_count(shown)} of them "
        f"({fmt_pct(shown_share)}). Every decision was logged with the probability it was taken with (its "
        f"propensity, which the off-policy estimators need), and the shop wrote down what each session earned. "
        f"Decisions and outcomes were joined into {fmt_count(result.rows_logged)} logged rows. The log was then "
        f"split at random: {fmt_count(result.rows_learned)} rows to learn a new policy from, and "
        f"{fmt_count(choice.rows_evaluated)} held-out rows on which every candidate was estimated."
    )
    own = choice.on_policy
    rows = [
        ["sessions served with exploration", fmt_count(sessions)],
        ["exploration", str(settings.get("explore", "n/a"))],
        ["sessions shown the new category", f"{fmt_count(shown)} ({fmt_pct(shown_share)})"],
        ["decisions logged / outcomes written", f"{fmt_count(join.get('decisions'))} / "
                                                f"{fmt_count(join.get('outcomes'))}"],
        ["joined rows in the log", fmt_count(join.get("joined", result.rows_logged))],
        ["decisions still awaiting their outcome", fmt_count(join.get("awaiting_outcome"))],
        ["outcomes without a logged decision", fmt_count(join.get("outcome_without_decision"))],
        ["outcomes that applied another action than logged", fmt_count(join.get("applied_other_action"))],
        ["messages rejected (dead-lettered)", fmt_count(collected.get("dead_lettered"))],
        ["rows learned from / rows evaluated on", f"{fmt_count(result.rows_learned)} / "
                                                  f"{fmt_count(choice.rows_evaluated)}"],
        ["what the exploring model earned on the evaluated rows (mean per session)",
         h.with_ci(own.mean, own.ci, fmt_dollars)],
        ["feed style / seed", f"{settings.get('feed', 'n/a')} / {settings.get('seed', 'n/a')}"],
        ["wall time of the loop", f"{result.wall_seconds:,.0f} s"],
    ]  # fmt: skip
    waiting = note_waiting(join)
    return "\n".join([_headline(result), h.paragraph(story), h.table(["fact", "value"], rows, "facts"), waiting])


def note_waiting(join: dict[str, Any]) -> str:
    """A note on rows the join could not use, when there are any."""
    awaiting, orphans = h.num(join.get("awaiting_outcome")) or 0, h.num(join.get("outcome_without_decision")) or 0
    if not awaiting and not orphans:
        return ""
    return h.note(
        f"{fmt_count(awaiting)} decision(s) had no outcome yet and {fmt_count(orphans)} outcome(s) no decision when "
        "the log was collected: they are counted, not guessed, and left out of the log (a later collection "
        "picks up the late ones)."
    )


def _candidate_cell(name: str, result: LoopResult) -> h.Raw:
    text = h.escape(name)
    if name == result.choice.chosen:
        text += " " + h.status(True, yes="★ chosen")
    if name == result.choice.control:
        text += ' <span class="ci">(control)</span>'
    return h.Raw(text)


def _candidates(result: LoopResult, figs: dict[str, h.FigureRef]) -> str:
    choice = result.choice
    intro = (
        f"Each candidate is a policy that decides, session by session, whether to show the new category. Its value "
        f"is the revenue per session it would have earned on the {fmt_count(choice.rows_evaluated)} held-out "
        f"logged sessions, estimated from what the exploring model actually did there, by each estimator with its "
        f"95% interval. The difference from the {_control_words(choice.control)} is estimated on the same rows "
        f"(paired), so it is more precise than the two values side by side. The truth columns are the world's "
        f"exact figures. The candidate with the highest {estimator_label(choice.select_by)} value is chosen."
    )
    rows = []
    for name, candidate in choice.candidates.items():
        for k, (estimator, value) in enumerate(candidate.value.items()):
            first = k == 0
            versus = candidate.versus_control.get(estimator)
            control = name == choice.control
            rows.append([
                _candidate_cell(name, result) if first else "",
                estimator_label(estimator),
                h.with_ci(value.estimate, value.ci, fmt_dollars),
                fmt_dollars(result.true_value.get(name)) if first else "",
                "— (the control)" if control else "n/a" if versus is None else h.with_ci(versus.estimate, versus.ci,
                                                                                        fmt_effect),
                (fmt_effect(result.true_effect.get(name)) if not control else "—") if first else "",
            ])  # fmt: skip
    words = [[name, CANDIDATE_WORDS.get(name, "")] for name in choice.candidates]
    headers = ["candidate", "estimator", "value per session [95% CI]", "true value",
               f"vs {choice.control} [95% CI]", f"true vs {choice.control}"]  # fmt: skip
    return "\n".join([
        h.paragraph(intro),
        h.table(["candidate", "what it does"], words, "words"),
        h.table(headers, rows, "candidates"),
        h.figure(figs.get("loop_candidates"), "Dots and bars: each estimator's estimate and 95% interval; black "
                 "tick: the world's truth. An interval that misses the tick missed the truth."),
    ])  # fmt: skip


def _weights(result: LoopResult) -> str:
    choice = result.choice
    n = choice.rows_evaluated
    rows = []
    for name, candidate in choice.candidates.items():
        for k, (estimator, value) in enumerate(candidate.value.items()):
            ess = h.num(value.ess)
            rows.append([
                _candidate_cell(name, result) if k == 0 else "",
                estimator_label(estimator),
                "n/a (no weights)" if ess is None else fmt_count(ess),
                "n/a" if ess is None or not n else fmt_pct(ess / n),
                "n/a" if h.num(value.max_weight) is None else f"{value.max_weight:.2f}",
                fmt_pct(value.unsupported_mass),
                fmt_pct(candidate.agrees_with_logged) if k == 0 else "",
            ])  # fmt: skip
    headers = ["candidate", "estimator", "effective sample size (ESS)", "ESS share of rows evaluated",
               "largest weight", "unsupported mass", "agrees with the logged action"]  # fmt: skip
    intro = (
        "Off-policy estimators reweight the logged sessions: a session counts with weight w = (the candidate's "
        "probability of the logged action) / (the probability the exploring model took it with). A candidate that "
        "always picks one action gives weight 0 to the sessions where it would have done something else. The "
        "effective sample size ESS = (Σw)² / Σw² is the number of equally weighted sessions the reweighted log is "
        "worth, at most the sessions with a weight above 0; unsupported mass is the "
        "candidate's probability on actions the log never tried (no weighting can recover those)."
    )
    return "\n".join([h.paragraph(intro), h.table(headers, rows, "weights"), h.note(_weights_note(result))])


def _weights_note(result: LoopResult) -> str:
    """Why IPS intervals are wide when ESS is small, with the candidates of the smallest and largest ESS."""
    text = (
        "Why IPS intervals are wide when ESS is small: IPS averages w·reward over all rows, so its noise comes from "
        "the few heavily weighted sessions and from how much the total weight itself varies; with a small ESS the "
        "estimate rests on few sessions. SNIPS divides by the total weight and DR lets a reward model explain part "
        "of each reward and weights only what it misses, which is why their intervals are narrower on the same rows."
    )
    ips = {n: c.value["ips"] for n, c in result.choice.candidates.items() if "ips" in c.value}
    ranked = sorted((n for n, e in ips.items() if h.num(e.ess) is not None and _ci_width(e) is not None),
                    key=lambda n: ips[n].ess)  # fmt: skip
    if len(ranked) >= 2:
        small, large = ips[ranked[0]], ips[ranked[-1]]
        text += (
            f" Here: {ranked[0]} has ESS {fmt_count(small.ess)} and an IPS interval "
            f"{fmt_dollars(_ci_width(small))} wide; {ranked[-1]} has ESS {fmt_count(large.ess)} and an IPS interval "
            f"{fmt_dollars(_ci_width(large))} wide."
        )
    return text


def _no_ab_reason(result: LoopResult) -> str:
    chosen, control = result.comparison.policy, result.choice.control
    if chosen == control:
        return (f"No A/B test: the chosen policy is the {_control_words(control)} itself, the control arm; there "
                "is nothing to test it against.")  # fmt: skip
    if f"model_{chosen}" not in result.files:
        return (f"No A/B test: the chosen policy ({chosen}) has no model to serve (show-all and show-none are "
                "fixed rules, not models the worker loads), so the platform could not run it against the "
                f"{_control_words(control)}.")  # fmt: skip
    return "No A/B test result in this run."


def _comparison(result: LoopResult, figs: dict[str, h.FigureRef]) -> str:
    c, ab = result.comparison, result.ab
    measured = h.num(c.ab_effect) is not None
    if ab is None:
        ab_row = ["A/B test", "not run", _no_ab_reason(result)]
    elif not measured:
        ab_row = ["A/B test", "no result", "the experiment did not reach a verdict"]
    else:
        ab_row = ["A/B test (the platform, fresh traffic)", h.with_ci(c.ab_effect, c.ab_ci, fmt_effect),
                  f"{fmt_count(ab.n_new)} sessions on {c.policy}, {fmt_count(ab.n_original)} on "
                  f"{result.choice.control}; p = {_p(ab.p_value)}"]  # fmt: skip
    rows = [
        [f"off-policy estimate ({estimator_label(c.estimator)}, the logged sessions)",
         h.with_ci(c.ope_effect, c.ope_ci, fmt_effect),
         f"{fmt_count(result.choice.rows_evaluated)} held-out logged sessions"],
        ab_row,
        ["truth (the world)", fmt_effect(c.true_effect), "exact expected revenue, no sampling noise"],
    ]  # fmt: skip
    checks = [
        ["the OPE estimate lies inside the A/B interval",
         h.status(c.ope_within_ab_ci, "yes", "no") if measured else "no A/B test"],
        ["the truth lies inside the OPE interval", h.status(c.truth_within_ope_ci, "yes", "no")],
        ["both", h.status(c.passed, "passed", "not passed")],
    ]  # fmt: skip
    parts = [
        h.paragraph(f"The chosen policy, {c.policy}, against the {_control_words(result.choice.control)}: its "
                    "effect on revenue per session, estimated from the log before any test, measured by the A/B "
                    "test, and known exactly in the simulated world."),
        h.table(["source", f"effect of {c.policy} over {result.choice.control} [95% CI]", "based on"], rows,
                "comparison"),
    ]  # fmt: skip
    if ab is None:
        parts.append(h.note(_no_ab_reason(result)))
    else:
        if ab.verdict:
            parts.append(f"<p><strong>The platform's verdict:</strong> {h.escape(ab.verdict)}</p>")
        if ab.srm_flagged:
            parts.append(h.note("The platform flagged a sample-ratio mismatch: the arms did not receive the "
                                "planned shares of traffic, so the A/B result is suspect.", "warning"))  # fmt: skip
        parts.append(f"<p>Experiment page during the run: <code>{h.escape(ab.page)}</code></p>")
    parts += [
        h.figure(figs.get("loop_effect"), "Bars: 95% intervals; diamond and dotted line: the world's true effect; "
                 "dashed line: no effect."),
        "<h3>Checks</h3>",
        h.table(["check", "result"], checks, "checks"),
    ]  # fmt: skip
    return "\n".join(parts)


def _p(value: float | None) -> str:
    number = h.num(value)
    return "n/a" if number is None else f"{number:.3g}"


def _intervals(result: LoopResult) -> str:
    """The interval method(s) of the estimates, in words (``OPEEstimate.interval``)."""
    kinds = sorted({(e.interval, e.level) for c in result.choice.candidates.values() for e in _estimates(c)})
    words = {"normal": "normal intervals from each estimator's influence function (estimate ± z · sd / √n over "
                       "the logged rows)",
             "bootstrap": "percentile-bootstrap intervals over the logged rows"}  # fmt: skip
    described = [f"{100 * level:g}% {words.get(kind, f'{kind} intervals')}" for kind, level in kinds]
    return " and ".join(described) if described else "no intervals"


def _estimates(candidate: CandidateOPE) -> list[OPEEstimate]:
    return [*candidate.value.values(), *candidate.versus_control.values()]


def _assumptions(result: LoopResult) -> str:
    settings, choice = result.settings, result.choice
    design = settings.get("design") or {}
    items = [
        f"The control is the {_control_words(choice.control)}, "
        + ("the shop's status quo and the platform's control arm" if choice.control == "original" else
           "served in the A/B test's control arm by a second worker exploring as it did") + ": every "
        f"difference is candidate − {choice.control}, in $ of revenue per session, estimated on the same logged "
        f"rows (paired).",
        f"The truth is the world's exact expected revenue of each policy on the world's evaluation customers, their "
        f"features read through the same feed style ({settings.get('feed', 'n/a')}) and decoder the worker uses. "
        f"It has no sampling noise; the OPE and A/B figures do, so a 95% interval should miss the truth about one "
        f"time in twenty.",
        f"Intervals: {_intervals(result)}.",
        f"The learned policy is evaluated only on rows it did not learn from: it learned from "
        f"{fmt_count(result.rows_learned)} rows and every candidate is estimated on the other "
        f"{fmt_count(choice.rows_evaluated)} (its own rows would flatter it: a learner fits their noise). The DR "
        f"reward model is cross-fitted on the evaluation rows.",
        f"The chosen policy is the one with the highest {estimator_label(choice.select_by)} estimate; picking the "
        f"largest of several noisy estimates tends to overstate the winner's effect a little.",
        "The A/B test runs on fresh traffic, the OPE on the logged sessions and the truth on the world's "
        "evaluation customers: the same world, but not the same sessions.",
    ]
    if design:
        items.append(
            f"The A/B design is the platform's default: {fmt_count(design.get('sample_size'))} sessions per arm to "
            f"detect an effect of {fmt_effect(design.get('effect'))} per session (sd {design.get('sd', 'n/a')}, "
            f"α = {design.get('alpha', 'n/a')}, power {design.get('power', 'n/a')}, {design.get('alternative', '')})."
        )
    return h.bullets(items)


# ----------------------------------------------------------------------------------------------------------------
# page
# ----------------------------------------------------------------------------------------------------------------


def render_html(result: LoopResult, figs: dict[str, h.FigureRef], source: Path) -> str:
    """The whole report page as one string."""
    renderers: list[tuple[str, str, str, Callable[[], str]]] = [
        ("what-happened", "What happened", "collected", lambda: _what_happened(result)),
        ("candidates", "Candidates", "choice.candidates", lambda: _candidates(result, figs)),
        ("weights", "Weight diagnostics", "choice.candidates", lambda: _weights(result)),
        ("comparison", "OPE vs A/B vs truth", "comparison", lambda: _comparison(result, figs)),
        ("assumptions", "Assumptions", "settings", lambda: _assumptions(result)),
    ]
    sections = [(anchor, title, h.guard(source, key, render)) for anchor, title, key, render in renderers]
    subtitle = (f"{fmt_count(result.rows_logged)} logged sessions, {len(result.choice.candidates)} candidates, "
                f"chosen {result.choice.chosen} · {source.name}")  # fmt: skip
    return h.page("The learning loop", subtitle, sections)


def write_loop_report(result: LoopResult, out_dir: Path, source: Path | None = None) -> Path:
    """Write out_dir/loop.html (self-contained), out_dir/loop_report.json and out_dir/figures/loop_*.png from
    ``result``; ``source`` is the loop.json named in the captions (default out_dir/loop.json). Returns the HTML path.

    An unwritable folder or a malformed result is a NextbestError (one line)."""
    out_dir = Path(out_dir)
    source = Path(source) if source is not None else out_dir / "loop.json"
    page = out_dir / "loop.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        figs = draw_figures(result, out_dir / "figures", source)
        page.write_text(render_html(result, figs, source), encoding="utf-8")
        summary = {
            "report": str(page),
            "inputs": {"loop": str(source)},
            "figures": [ref.as_json() for ref in figs.values()],
            "comparison": result.comparison.to_dict(),
        }
        page.with_name("loop_report.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise NextbestError(f"{out_dir}: cannot write the report ({error.strerror or error})") from None
    return page


def load_loop_result(path: Path) -> LoopResult:
    """loop.json as its type; missing or wrongly shaped is one NextbestError naming the file (and key)."""
    return LoopResult.load(path, _LOOP_HINT)


__all__ = ["candidates_chart", "draw_figures", "effect_chart", "fmt_dollars", "fmt_effect", "load_loop_result",
           "render_html", "write_loop_report"]  # fmt: skip

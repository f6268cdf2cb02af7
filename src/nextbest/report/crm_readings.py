"""The CRM report's answers under each reading of the data (`nextbest.evaluation.crm_readings`): the range for the
summary, the readings section (policies, targets, action plans, break-even values, value sensitivity) and
"What to do next" (who to contact, the plan under each reading, the pilot).

Each function takes the typed evaluation (`CRMEvaluation`) and the report's wording, and returns HTML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nextbest.evaluation.crm_bootstrap import SEGMENT_FIELDS
from nextbest.evaluation.crm_results import CRMEvaluation, ReadingResult
from nextbest.report.figures import fmt_money, fmt_pct
from nextbest.report.html import FigureRef, Raw, escape, figure, note, paragraph, status, table, with_ci

#: The two ends of the family, as the summary names them.
CONSERVATIVE, OPTIMISTIC = "conservative", "optimistic"


def _ends(result: CRMEvaluation) -> tuple[str, ReadingResult, str, ReadingResult] | None:
    """The readings with the smallest and the largest dial (conservative, optimistic), or None with fewer than 2."""
    readings = result.readings or {}
    if len(readings) < 2:
        return None
    ordered = sorted(readings.items(), key=lambda item: item[1].dial)
    (low_name, low), (high_name, high) = ordered[0], ordered[-1]
    return low_name, low, high_name, high


def range_sentences(result: CRMEvaluation, label: str, conversions: str) -> list[str]:
    """The summary's range: the learned policy's conversion rate between the conservative and the optimistic
    reading, and which of the spec's targets each reading meets."""
    ends = _ends(result)
    if ends is None:
        return []
    low_name, low, high_name, high = ends
    learned_low, learned_high = low.policies["learned"], high.policies["learned"]
    lines = [
        f"What the export cannot tell, as a range: under the readings of the data the learned policy's {label} rate "
        f"is between {fmt_pct(learned_low.subscription_rate)} ({low_name}: every lead was offered every step) and "
        f"{fmt_pct(learned_high.subscription_rate)} ({high_name}: the company's actions caused the steps seen after "
        f"them), against {fmt_pct(low.policies['logged'].subscription_rate)} to "
        f"{fmt_pct(high.policies['logged'].subscription_rate)} for the logged process. Only a randomized pilot "
        f"tells where in this range the real effect lies (see What to do next)."
    ]
    for name, reading in (result.readings or {}).items():
        met = [target.replace("_", " ") for target, check in reading.targets.items() if check.met]
        missed = [target.replace("_", " ") for target, check in reading.targets.items() if not check.met]
        lines.append(f"Targets met under the {name} reading: {', '.join(met) or 'none'}"
                     + (f"; not met: {', '.join(missed)}." if missed else "."))  # fmt: skip
    return lines


def readings_section(
    result: CRMEvaluation,
    figs: Mapping[str, FigureRef],
    labels: Mapping[str, str],
    formats: Mapping[str, tuple[str, Callable]],
    target_labels: Mapping[str, tuple[str, Callable]],
    target_text: Callable[[object, Callable], str],
) -> str:
    """Per reading: the offer rates it assumes, the policies' metrics with intervals, the targets, the top segments'
    plans; then the break-even value of each action and the value-sensitivity figure."""
    readings = result.readings or {}
    intro = (
        "The export records which steps each lead reached, never which were offered, so how much an action can "
        "move a step is not in the data. Each reading fixes it with one dial d from 0 to 1: the logged process "
        "offered company step j to a lead in state s with probability P(j | s)<sup>d</sup>, and the lead took it "
        "with P(j | s)<sup>1−d</sup>; the product is the logged rate, so every reading replays the export alike. "
        "d = 0 (conservative): every lead was offered every step, so no action raises a step's rate. d = 1 "
        "(optimistic): only the leads that took a step were offered it, so an offer is always taken, and the steps "
        "a lead visits cause the later rates they are associated with. The learned policy is retrained in each "
        "reading's simulator; intervals are the same bootstrap as the main metrics."
    )
    headers = ["reading", "policy", *labels.values()]
    rows = []
    for name, reading in readings.items():
        for policy in ("learned", "random", "logged"):
            entry = reading.policies[policy]
            rows.append([f"{name} (d = {reading.dial:g})", policy,
                         *(with_ci(getattr(entry, m), getattr(entry, f"{m}_ci"), fmt)
                           for m, (_, fmt) in formats.items())])  # fmt: skip
    parts = [Raw(f"<p>{intro}</p>"), table(headers, rows, "metrics"), _offer_rates(readings),
             "<h3>Targets under each reading</h3>", _targets(readings, target_labels, target_text),
             "<h3>The learned plan per reading (top segments)</h3>", _plans(readings),
             "<h3>Break-even value of each action</h3>", _break_even(result, readings),
             figure(figs.get("value_sensitivity"), "The learned policy retrained at other values of a conversion, "
                    "under each reading: what it achieves and how much it spends per lead.")]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def _offer_rates(readings: Mapping[str, ReadingResult]) -> str:
    lines = []
    for name, reading in readings.items():
        rates = ", ".join(f"{step} {fmt_pct(rate)}" for step, rate in reading.offer_rates.items())
        lines.append(f"{name}: {rates or 'every step offered to every lead'} — learned policy: "
                     f"{reading.learned_policy}")  # fmt: skip
    return paragraph("Mean offer rates the logged process made under each reading (train leads exposed to the "
                     "step): " + "; ".join(lines) + ".")


def _targets(readings: Mapping[str, ReadingResult], target_labels: Mapping[str, tuple[str, Callable]],
             target_text: Callable[[object, Callable], str]) -> str:  # fmt: skip
    names = list(readings)
    first = next(iter(readings.values()), None)
    if first is None:
        return ""
    rows = []
    for target, check in first.targets.items():
        label, fmt = target_labels.get(target, (target.replace("_", " "), lambda v: "n/a" if v is None else f"{v:.4g}"))
        cells = []
        for name in names:
            reached = readings[name].targets[target]
            cells.append(Raw(f"{escape(fmt(reached.value))} {status(reached.met)}"))
        rows.append([label, target_text(check.target, fmt), *cells])
    return str(table(["target", "required", *names], rows, "targets"))


def _plans(readings: Mapping[str, ReadingResult]) -> str:
    rows = []
    for name, reading in readings.items():
        for segment in reading.top_segments[:3]:
            who = ", ".join(f"{k} {v}" for k, v in segment.items() if k not in SEGMENT_FIELDS)
            plans = "<br>".join(f"{escape(' → '.join(s['sequence']))} ({fmt_pct(s['share'])})"
                                for s in segment.get("action_sequences", [])[:2])  # fmt: skip
            rows.append([name, f"{who}, {segment['stage']}",
                         with_ci(segment["value_per_lead"], segment["value_ci"], fmt_money), Raw(plans)])  # fmt: skip
    if not rows:
        return note("No segment had enough lead-episodes to be ranked.")
    return str(table(["reading", "segment", "value per lead [95% CI]", "learned actions (share)"], rows))


def _break_even(result: CRMEvaluation, readings: Mapping[str, ReadingResult]) -> str:
    value = result.settings.subscription_value
    names = list(readings)
    first = next(iter(readings.values()), None)
    if first is None:
        return ""
    rows = []
    for action in first.break_even:
        cells = []
        for name in names:
            entry = readings[name].break_even[action]
            pays = entry.value is not None and entry.value <= value
            text = ("never (adds no conversion)" if entry.value is None
                    else f"{fmt_money(entry.value)} [{fmt_money(entry.value_ci[0])}, "
                         f"{fmt_money(entry.value_ci[1]) if entry.value_ci[1] is not None else 'no bound'}]")
            added = with_ci(entry.conversions_per_1000, entry.conversions_per_1000_ci, lambda v: f"{v:+.2f}")
            cells.append(Raw(f"{escape(text)}<br><span class='ci'>{added} per 1,000 leads"
                             f"{' — pays at today’s value' if pays else ''}</span>"))  # fmt: skip
        rows.append([action, *cells])
    intro = (
        f"The value a conversion must have for an action to pay for itself: the logged process with the action "
        f"made to every lead at its planned week, against the same process without it (the action's spend it adds "
        f"÷ the conversions it adds, common random numbers). Today's value: {fmt_money(value)}. Under each value, "
        f"the added conversions per 1,000 leads with their 95% interval; 'no bound' where the interval reaches "
        f"zero added conversions."
    )
    return paragraph(intro) + str(table(["action", *names], rows))


def next_steps_section(result: CRMEvaluation, label: str) -> str:
    """What to do next: who to contact first, the action plan under each reading, the pilot with its size and
    duration at the team's lead volume."""
    parts = ["<h3>1. Contact these leads first</h3>"]
    who = result.who
    if who is not None and who.top_segments:
        segs = "; ".join(", ".join(f"{k} {v}" for k, v in s.segment.items()) + f" ({fmt_pct(s.mean_score)} mean "
                         f"score, {fmt_pct(s.observed_rate)} observed)" for s in who.top_segments[:3])  # fmt: skip
        parts.append(paragraph(f"The segments with the highest lead score: {segs}. "
                               "`nextbest crm score --data EXPORT --out leads.csv` ranks today's open leads with "
                               "their score, its interval and the next action, for the daily call list."))  # fmt: skip
        low, high = who.top10_capture_ci
        parts.append(paragraph(f"On held-out leads the top 10% of scores hold {fmt_pct(who.top10_capture)} of the "
                               f"converting decision points [{fmt_pct(low)}, {fmt_pct(high)}]."))  # fmt: skip
    else:
        parts.append(note("No lead score in evaluation.json (who is missing)."))
    parts.append("<h3>2. The action plan under each reading</h3>")
    items = []
    value = result.settings.subscription_value
    for name, reading in (result.readings or {}).items():
        paying = [a for a, e in reading.break_even.items() if e.value is not None and e.value <= value]
        plan = reading.top_segments[0]["action_sequences"][0]["sequence"] if reading.top_segments else []
        learned = reading.policies["learned"]
        items.append(f"<li><b>{escape(name)}</b>: the learned policy reaches {fmt_pct(learned.subscription_rate)} "
                     f"{escape(label)} rate ({fmt_money(learned.value_per_lead)} per lead); its most valuable "
                     f"segment's plan: {escape(' → '.join(plan) or 'n/a')}; actions that pay at "
                     f"{fmt_money(value)}: {escape(', '.join(paying) or 'none')}.</li>")  # fmt: skip
    parts.append(f"<ul>{''.join(items)}</ul>" if items else note("No readings in evaluation.json."))
    parts.append("<h3>3. Run the pilot that settles it</h3>")
    pilot = result.pilot
    if pilot is not None:
        weeks = pilot.weeks
        duration = f", about {weeks:.0f} weeks of leads at {pilot.leads_per_week:.0f} a week" if weeks else ""
        parts.append(paragraph(
            f"Randomize {escape(pilot.treatment)} against {escape(pilot.control)}: {pilot.per_arm:,} leads per arm "
            f"({pilot.total:,} in all{duration}) detect {fmt_pct(pilot.baseline_rate)} → "
            f"{fmt_pct(pilot.target_rate)} with power {fmt_pct(pilot.achieved_power)}. Its result places the real "
            "effect inside the range of readings. `nextbest crm pilot --out pilot.json --segment ...` designs it for "
            "a segment and budget and writes the stratified assignment."))  # fmt: skip
    else:
        parts.append(note("No pilot in evaluation.json."))
    return "\n".join(parts)


def readings_figure_data(result: CRMEvaluation) -> dict[str, list]:
    """Per reading, its value-sensitivity rows (what the figure draws)."""
    return {name: list(r.value_sensitivity or []) for name, r in (result.readings or {}).items()}


__all__ = ["next_steps_section", "range_sentences", "readings_figure_data", "readings_section"]

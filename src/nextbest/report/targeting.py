"""The targeting + uplift report: one self-contained HTML file (figures embedded as base64 PNG, inline CSS, no
external resources) comparing the targeting models on the simulated shop's ground truth and, when given, the
uplift methods on a randomized experiment; plus a JSON file next to it listing every figure with the JSON it was
drawn from, and the headline numbers.

    write_targeting_report(evaluations, uplift_dir, out)
        reads   each evaluation JSON (`nextbest target evaluate`), uplift_dir/uplift.json (`nextbest uplift run`)
        writes  out (HTML), <out stem>.json, <out stem>_figures/*.png
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from nextbest.errors import NextbestError
from nextbest.evaluation.targeting import TargetingEvaluation
from nextbest.report import figures as fg
from nextbest.report import html as h
from nextbest.report.figures import fmt_count, fmt_money, fmt_pct
from nextbest.uplift import figures as uf
from nextbest.uplift.metrics import BootstrapMean
from nextbest.uplift.run import MethodResult, UpliftResult

#: The age/sex rule re-learned as a model: the control, not a candidate for best model.
CONTROL_MODEL = "age-sex"
#: The issue's target: the best full-feature model beats the original system by at least this much per customer.
TARGET_GAIN = 0.7
#: The control must reproduce the original rule's loss vs showing no one: CONTROL_LOSS ± CONTROL_TOLERANCE.
CONTROL_LOSS, CONTROL_TOLERANCE = -0.3, 0.05

_EVALUATE_HINT = "run `nextbest target evaluate --model MODEL.pkl --out FILE.json` first"
_UPLIFT_HINT = "run `nextbest uplift run --out DIR` first"


# ----------------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class TargetingInputs:
    """The evaluation files (path → evaluation) and the optional uplift result."""

    evaluations: dict[Path, TargetingEvaluation]
    uplift_path: Path | None = None
    uplift: UpliftResult | None = None

    @property
    def first(self) -> tuple[Path, TargetingEvaluation]:
        return next(iter(self.evaluations.items()))


def load_inputs(evaluations: list[Path], uplift_dir: Path | None) -> TargetingInputs:
    """Read the report's inputs as their types; a missing or malformed file is a NextbestError naming it (and the
    key)."""
    if not evaluations:
        raise NextbestError(f"no evaluation files given; {_EVALUATE_HINT}")
    read = {path: TargetingEvaluation.load(path, _EVALUATE_HINT) for path in map(Path, evaluations)}
    if uplift_dir is None:
        return TargetingInputs(read)
    uplift_path = Path(uplift_dir) / "uplift.json"
    return TargetingInputs(read, uplift_path, UpliftResult.load(uplift_path, _UPLIFT_HINT))


# ----------------------------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------------------------


def fmt_signed_money(value: float | None) -> str:
    """Money with an explicit sign for differences ('+$1.22', '-$0.30', '$0.00')."""
    text = fmt_money(value)
    return f"+{text}" if h.num(value) is not None and value > 0 else text


def _fmt3(value: object) -> str:
    number = h.num(value)
    return "n/a" if number is None else f"{number:.3f}"


def references(evaluation: TargetingEvaluation) -> dict[str, float]:
    """Ground-truth value per customer of the reference policies, derived from one evaluation file."""
    value = evaluation.value_per_customer
    original = value - evaluation.vs_original
    return {
        "show-none": value - evaluation.vs_show_none,
        "show-all": value - evaluation.vs_show_all,
        "original": original,
        "oracle": original + evaluation.oracle_vs_original,
    }


def _labels(inputs: TargetingInputs) -> dict[Path, str]:
    """The model name of each file, with the file name added where two files name the same model."""
    names = [data.model for data in inputs.evaluations.values()]
    return {
        path: data.model if names.count(data.model) == 1 else f"{data.model} ({path.name})"
        for path, data in inputs.evaluations.items()
    }


def best_model(inputs: TargetingInputs) -> tuple[Path, TargetingEvaluation] | None:
    """The full-feature model (not the age/sex control) with the highest value per customer."""
    candidates = [(p, d) for p, d in inputs.evaluations.items() if d.model != CONTROL_MODEL]
    return max(candidates, key=lambda item: item[1].value_per_customer, default=None)


def _control(inputs: TargetingInputs) -> TargetingEvaluation | None:
    return next((d for d in inputs.evaluations.values() if d.model == CONTROL_MODEL), None)


def _best_uplift(uplift: UpliftResult) -> tuple[str, MethodResult] | None:
    methods = uplift.methods
    chosen = uplift.best_uplift_method.name
    if chosen in methods:
        return chosen, methods[chosen]
    lifts = {n: m for n, m in methods.items() if m.is_uplift_method}
    name = max(lifts, key=lambda n: lifts[n].policy_value.estimate, default=None)
    return None if name is None else (name, lifts[name])


# ----------------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------------

_BAR_COLORS = {"model": "#1F5FA8", "best": "#2C8A3B", "reference": "#B8C2CC", "original": "#E07B39"}
_BAR_LEGEND = {"best": "best full-feature model", "model": "model", "original": "original (age/sex rule)",
               "reference": "reference policy"}  # fmt: skip


def value_chart(evaluations: dict[str, TargetingEvaluation], path: str | Path) -> Path:
    """Horizontal bars of ground-truth value per customer of each model (name → evaluation) and the reference
    policies, on a zoomed axis, each labelled with its value and its difference to the original age/sex rule."""
    refs = references(next(iter(evaluations.values())))
    bars = [(name, d.value_per_customer, "model") for name, d in evaluations.items()]
    bars += [(name, value, "original" if name == "original" else "reference") for name, value in refs.items()]
    bars.sort(key=lambda bar: bar[1])
    best = max((b for b in bars if b[2] == "model" and b[0] != CONTROL_MODEL), key=lambda b: b[1], default=None)
    fig = fg._new_figure(8.6, 0.5 * len(bars) + 1.6)
    ax = fig.add_subplot()
    low, high = _zoom([value for _, value, _ in bars])
    for y, (name, value, kind) in enumerate(bars):
        colour = _BAR_COLORS["best" if (name, value, kind) == best else kind]
        ax.barh(y, value - low, left=low, color=colour, height=0.66, zorder=2)
        ax.text(value + 0.01 * (high - low), y, _bar_label(value, refs["original"]), va="center", fontsize=8.5)
    ax.axvline(refs["original"], color=_BAR_COLORS["original"], linestyle=":", linewidth=1.2, zorder=3)
    ax.set_yticks(range(len(bars)), [name for name, _, _ in bars], fontsize=9)
    ax.set_xlim(low, high)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"${v:,.2f}"))
    ax.set_xlabel("expected revenue per customer, ground truth of the simulated shop ($; axis does not start at 0)")
    ax.set_title("Value per customer in the simulated shop (ground truth)")
    handles = [Patch(color=_BAR_COLORS[k], label=text) for k, text in _BAR_LEGEND.items()]
    ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    fg._style(ax)
    fig.tight_layout()
    return fg._save(fig, path)


def _bar_label(value: float, original: float) -> str:
    diff = value - original
    sign = "+" if diff > 0 else "-" if diff < 0 else "±"
    return rf"\${value:,.3f}   ({sign}\${abs(diff):.3f} vs original)"


def _zoom(values: list[float]) -> tuple[float, float]:
    """Axis limits around the values with room on the right for the labels."""
    low, high = min(values), max(values)
    span = max(high - low, 0.1)
    return low - 0.15 * span, high + 0.6 * span


def draw_figures(inputs: TargetingInputs, folder: Path) -> dict[str, h.FigureRef]:
    """Draw every figure of the report into `folder`; returns them by name."""
    labels = _labels(inputs)
    by_name = {labels[path]: data for path, data in inputs.evaluations.items()}
    first = inputs.first[0]
    jobs: list[tuple[str, str, Path, str, Callable[[Path], Path]]] = [
        ("value_per_customer", "Value per customer", first, "value_per_customer", lambda p: value_chart(by_name, p)),
    ]
    if inputs.uplift is not None:
        result, source = inputs.uplift, inputs.uplift_path
        jobs.append(("qini_curves", "Qini curves", source, "methods", lambda p: uf.qini_curves(result, p)))
        jobs.append(("policy_value", "Policy value", source, "methods", lambda p: uf.policy_values(result, p)))
    return h.draw_all(jobs, folder, {"value_per_customer": tuple(inputs.evaluations)[1:]})


# ----------------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------------


def _summary(inputs: TargetingInputs) -> str:
    parts = []
    best = best_model(inputs)
    if best is None:
        parts.append(h.note("No full-feature model among the evaluation files (only the age/sex control).", "warning"))
    else:
        parts.append(f"<p class='headline'>{h.escape(_best_sentence(best[1], references(best[1])))}</p>")
    parts += ["<h3>Targets</h3>", _targets_table(inputs)]
    if inputs.uplift is not None:
        sentence = h.guard(inputs.uplift_path, "methods", lambda: _uplift_sentence(inputs.uplift))
        parts += ["<h3>Uplift</h3>", h.paragraph(sentence)]
    return "\n".join(parts)


def _best_sentence(data: TargetingEvaluation, refs: dict[str, float]) -> str:
    return (
        f"Best full-feature model: {data.model}, {fmt_money(data.value_per_customer)} per customer in the "
        f"simulated shop, {fmt_signed_money(data.vs_original)} vs the original age/sex rule "
        f"({fmt_money(refs['original'])}); the oracle would reach {fmt_money(refs['oracle'])}."
    )


def _targets_table(inputs: TargetingInputs) -> str:
    rows = [_gain_row(best_model(inputs)), _control_row(_control(inputs))]
    if inputs.uplift is not None:
        rows.append(h.guard(inputs.uplift_path, "best_uplift_method", lambda: _uplift_row(inputs.uplift)))
    return h.table(["target", "value", "required", "status"], rows, "targets")


def _gain_row(best: tuple[Path, TargetingEvaluation] | None) -> list[object]:
    gain = None if best is None else best[1].vs_original
    label = "Best full-feature model vs the original system, per customer"
    required = f"≥ {fmt_signed_money(TARGET_GAIN)}"
    return [label, fmt_signed_money(gain), required, h.status(gain is not None and gain >= TARGET_GAIN)]


def _control_row(control: TargetingEvaluation | None) -> list[object]:
    loss = None if control is None else control.vs_show_none
    label = f"Age/sex control ({CONTROL_MODEL}) vs show-none, per customer"
    required = f"{fmt_signed_money(CONTROL_LOSS)} ± {fmt_money(CONTROL_TOLERANCE)}"
    met = loss is not None and abs(loss - CONTROL_LOSS) <= CONTROL_TOLERANCE
    return [label, fmt_signed_money(loss) if control else "not evaluated", required, h.status(met)]


def _uplift_row(uplift: UpliftResult) -> list[object]:
    treat_none = uplift.treat_none.estimate
    best = _best_uplift(uplift)
    low = None if best is None else h.ci_bounds(best[1].policy_value.ci)[0]
    label = "Lower 95% bound of the best uplift method's policy value above treat-none"
    value = f"{fmt_money(low)} vs {fmt_money(treat_none)}"
    return [label, value, f"> {fmt_money(treat_none)}", h.status(h.num(low) is not None and low > treat_none)]


def _uplift_sentence(uplift: UpliftResult) -> str:
    best = _best_uplift(uplift)
    if best is None:
        return "No uplift method in uplift.json."
    name, method = best
    value, (low, high) = method.policy_value, h.ci_bounds(method.policy_value.ci)
    return (
        f"Best uplift method (chosen on validation): {name}, policy value {fmt_money(value.estimate)} per "
        f"customer [{fmt_money(low)}, {fmt_money(high)}] treating {fmt_pct(value.treated_share)}, against "
        f"{fmt_money(uplift.treat_none.estimate)} for treat-none and "
        f"{fmt_money(uplift.treat_all.estimate)} for treat-all (IPW on the held-out split, 95% bootstrap)."
    )


def _models(inputs: TargetingInputs, figs: dict[str, h.FigureRef]) -> str:
    labels = _labels(inputs)
    rows = [_model_row(labels[path], data) for path, data in inputs.evaluations.items()]
    headers = ["model", "threshold", "share shown", "value per customer", "vs original", "vs show-none",
               "vs show-all", "AUC", "log-loss"]  # fmt: skip
    intro = (
        "One row per evaluation file. Value per customer is the exact expected revenue in the simulated shop "
        "(ground truth on the evaluation customers); differences are against the reference policies. AUC and "
        "log-loss are on the world's held-out test split."
    )
    refs = references(inputs.first[1])
    ref_rows = [[name, fmt_money(value), fmt_signed_money(value - refs["original"])] for name, value in refs.items()]
    return "\n".join(
        [
            h.paragraph(intro),
            h.table(headers, rows, "models"),
            "<h3>Reference policies</h3>",
            h.table(["policy", "value per customer", "vs original"], ref_rows),
            h.figure(figs.get("value_per_customer"), "Bars start at the left edge of a zoomed axis."),
        ]
    )


def _model_row(label: str, data: TargetingEvaluation) -> list[object]:
    return [
        label,
        _fmt3(data.threshold) if data.threshold is not None else "none (rule)",
        fmt_pct(data.share_shown),
        fmt_money(data.value_per_customer),
        fmt_signed_money(data.vs_original),
        fmt_signed_money(data.vs_show_none),
        fmt_signed_money(data.vs_show_all),
        _fmt3(data.auc),
        _fmt3(data.log_loss),
    ]


def _uplift(inputs: TargetingInputs, figs: dict[str, h.FigureRef]) -> str:
    uplift = inputs.uplift
    dataset = uplift.dataset
    intro = (
        f"Randomized experiment: {dataset.treatment} vs {dataset.control}, outcome "
        f"{dataset.outcome}. Each method ranks the held-out customers by predicted uplift; its policy treats "
        "the top share chosen on validation. Policy values are IPW estimates per customer with 95% bootstrap "
        "intervals; the response model (not an uplift method) is the baseline that ranks by predicted outcome."
    )
    return "\n".join(
        [
            h.paragraph(intro),
            _methods_table(uplift),
            "<h3>Facts</h3>",
            _facts_table(uplift),
            h.figure(figs.get("qini_curves"), "Qini curves on the test split; dashed: the response-model baseline."),
            h.figure(
                figs.get("policy_value"),
                "Value of treating the top share by score; dots: the share chosen on "
                "validation, with its 95% interval; bands: treat-all and treat-none intervals.",
            ),
        ]
    )


def _methods_table(uplift: UpliftResult) -> str:
    rows = [_method_row(name, m) for name, m in uplift.methods.items()]
    for name, entry, treated in (("treat all", uplift.treat_all, 1.0), ("treat none", uplift.treat_none, 0.0)):
        rows.append([name, "reference", "", "", h.with_ci(entry.estimate, entry.ci, fmt_money), fmt_pct(treated), "",
                     ""])  # fmt: skip
    headers = ["method", "kind", "Qini coefficient", "AUUC", "policy value [95% CI]", "treated share",
               "vs treat-none [95% CI]", "vs treat-all [95% CI]"]  # fmt: skip
    return h.table(headers, rows, "methods")


def _method_row(name: str, method: MethodResult) -> list[object]:
    value = method.policy_value
    kind = "uplift method" if method.is_uplift_method else "response-model baseline"
    return [
        name,
        kind,
        _fmt3(method.qini_coefficient),
        _fmt3(method.auuc),
        h.with_ci(value.estimate, value.ci, fmt_money),
        fmt_pct(value.treated_share),
        _difference(method.vs_treat_none),
        _difference(method.vs_treat_all),
    ]


def _difference(block: BootstrapMean) -> h.Raw:
    return h.with_ci(block.estimate, block.ci, fmt_signed_money)


def _facts_table(uplift: UpliftResult) -> str:
    dataset, split, settings = uplift.dataset, uplift.split, uplift.settings
    ate = dataset.ate
    rows = [
        ["data", Path(dataset.source).name],
        ["arms", f"{dataset.treatment} (treated) vs {dataset.control} (control)"],
        ["rows (treated / control)", f"{fmt_count(dataset.rows)} ({fmt_count(dataset.treated)} / "
                                     f"{fmt_count(dataset.control_rows)})"],
        ["outcome", dataset.outcome],
        ["average treatment effect [95% CI]", h.with_ci(ate.estimate, ate.ci, fmt_signed_money)],
        ["fit / validation / test rows", " / ".join(fmt_count(count) for count in (split.fit_rows,
                                                    split.validation_rows, split.test_rows))],
        ["base learner", settings.base_learner],
        ["bootstrap replicates", fmt_count(settings.bootstrap)],
        ["seed", settings.seed],
        ["threshold", settings.threshold],
    ]  # fmt: skip
    return h.table(["fact", "value"], rows)


def _limitations(uplift: UpliftResult | None) -> str:
    items = [
        "Targeting values are ground truth from the simulated shop world: the exact expected revenue of each "
        "policy on the evaluation customers, with no sampling noise, so differences of a few cents are real in "
        "the simulation (but say nothing about a real shop by themselves).",
        "AUC and log-loss are measured on the world's held-out test split; each model's showing threshold was "
        "chosen on a validation part of the training split, never on test.",
        "The original system is the age/sex rule; the age/sex control re-learns it and should reproduce its "
        f"{fmt_signed_money(CONTROL_LOSS)} per customer loss vs showing no one.",
    ]
    data = "the experiment" if uplift is None else Path(uplift.dataset.source).stem
    uplift_items = [
        f"Uplift policy values are inverse-propensity-weighted (IPW) estimates on the {data} held-out split, "
        "with percentile-bootstrap 95% intervals over test rows; they carry real sampling noise.",
        "Qini coefficients and AUUC vary noticeably across seeds and splits; compare methods by their policy value "
        "intervals, not by small Qini differences.",
    ]
    money = "Money is in $, differences are signed; n/a means not available in the input."
    return h.bullets([*items, *(uplift_items if uplift is not None else []), money])


# ----------------------------------------------------------------------------------------------------------------
# page
# ----------------------------------------------------------------------------------------------------------------


def render_html(inputs: TargetingInputs, figs: dict[str, h.FigureRef]) -> str:
    """The whole report page as one string."""
    first = inputs.first[0]
    renderers: list[tuple[str, str, Path, str, Callable[[], str]]] = [
        ("summary", "Summary", first, "", lambda: _summary(inputs)),
        ("models", "Models' comparison", first, "", lambda: _models(inputs, figs)),
    ]
    if inputs.uplift is not None:
        renderers.append(("uplift", "Uplift", inputs.uplift_path, "", lambda: _uplift(inputs, figs)))
    renderers.append(("limitations", "How to read this / limitations", first, "", lambda: _limitations(inputs.uplift)))
    sections = [(anchor, title, h.guard(src, key, render)) for anchor, title, src, key, render in renderers]
    subtitle = f"{len(inputs.evaluations)} evaluation file(s)" + (
        f" · uplift {inputs.uplift_path.parent}" if inputs.uplift_path else ""
    )
    return h.page("Targeting and uplift report", subtitle, sections)


def headline(inputs: TargetingInputs) -> dict:
    """The headline numbers of the report, for its JSON file."""
    best, control = best_model(inputs), _control(inputs)
    gain = None if best is None else best[1].vs_original
    loss = None if control is None else control.vs_show_none
    summary = {
        "best_model": None if best is None else best[1].model,
        "best_value_per_customer": None if best is None else best[1].value_per_customer,
        "best_vs_original": gain,
        "target_gain": TARGET_GAIN,
        "gain_target_met": gain is not None and gain >= TARGET_GAIN,
        "control_vs_show_none": loss,
        "control_target": [CONTROL_LOSS, CONTROL_TOLERANCE],
        "control_target_met": loss is not None and abs(loss - CONTROL_LOSS) <= CONTROL_TOLERANCE,
        "references": references(inputs.first[1]),
        "models": {label: _model_numbers(inputs.evaluations[path]) for path, label in _labels(inputs).items()},
    }
    if inputs.uplift is not None:
        summary["uplift"] = h.guard(inputs.uplift_path, "methods", lambda: _uplift_headline(inputs.uplift))
    return summary


def _model_numbers(data: TargetingEvaluation) -> dict:
    return {
        "value_per_customer": data.value_per_customer,
        "vs_original": data.vs_original,
        "vs_show_none": data.vs_show_none,
        "vs_show_all": data.vs_show_all,
        "share_shown": data.share_shown,
        "auc": data.auc,
        "log_loss": data.log_loss,
    }


def _uplift_headline(uplift: UpliftResult) -> dict:
    best = _best_uplift(uplift)
    treat_none = uplift.treat_none.estimate
    value = None if best is None else best[1].policy_value
    low = None if value is None else h.ci_bounds(value.ci)[0]
    return {
        "best_method": None if best is None else best[0],
        "policy_value": None if value is None else value.estimate,
        "policy_value_ci": None if value is None else value.ci,
        "treat_none": treat_none,
        "treat_all": uplift.treat_all.estimate,
        "ci_low_above_treat_none": h.num(low) is not None and low > treat_none,
    }


def write_targeting_report(evaluations: list[Path], uplift_dir: Path | None, out: Path) -> Path:
    """Write the targeting report: `out` (self-contained HTML), `<out stem>.json` and `<out stem>_figures/`.

    Raises NextbestError naming the file (and key) when an input is missing or malformed. Returns `out`.
    """
    out = Path(out)
    if out.suffix.lower() == ".json":
        raise NextbestError(f"{out}: the report is HTML; give a .html path (its JSON summary is written next to it)")
    inputs = load_inputs(list(evaluations), uplift_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    figs = draw_figures(inputs, out.parent / f"{out.stem}_figures")
    out.write_text(render_html(inputs, figs), encoding="utf-8")
    summary = {
        "report": str(out),
        "inputs": {
            "evaluations": [str(path) for path in inputs.evaluations],
            "uplift": None if inputs.uplift_path is None else str(inputs.uplift_path),
        },
        "figures": [ref.as_json() for ref in figs.values()],
        "headline": headline(inputs),
    }
    out.with_name(f"{out.stem}.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = ["TargetingInputs", "draw_figures", "load_inputs", "render_html", "value_chart", "write_targeting_report"]

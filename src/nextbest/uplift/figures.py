"""Uplift figures drawn from the ``uplift.json`` result (`UpliftResult`: the same numbers a script reads). Each
function writes one PNG and returns its path; matplotlib's object-oriented API on the Agg canvas (no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nextbest.uplift.run import UpliftResult

DPI = 110
METHOD_COLORS: dict[str, str] = {
    "t_learner": "#1F5FA8",
    "x_learner": "#2CA02C",
    "outcome_transformation": "#8E6BB0",
    "class_transformation": "#8E6BB0",
    "response_model": "#E07B39",
}
_FALLBACK = ("#17BECF", "#BCBD22", "#7F7F7F", "#FF9DA6")


def _color(name: str, index: int) -> str:
    return METHOD_COLORS.get(name, _FALLBACK[index % len(_FALLBACK)])


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _fmt3(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def qini_curves(result: UpliftResult, path: str | Path) -> Path:
    """Qini curves of every method on the test split, with the random-targeting line."""
    figure = Figure(figsize=(7.0, 4.6))
    axes = figure.add_subplot()
    dataset = result.dataset
    last = None
    for index, (name, method) in enumerate(result.methods.items()):
        curve = method.curves.qini
        label = f"{name} (Qini {_fmt3(method.qini_coefficient)})"
        style = "--" if not method.is_uplift_method else "-"
        axes.plot(curve.share, curve.value, style, color=_color(name, index), label=label, linewidth=1.6)
        last = curve.value[-1]
    if last is not None:
        axes.plot([0, 1], [0, last], ":", color="#555555", label="random targeting")
    axes.axhline(0, color="#BBBBBB", linewidth=0.8)
    axes.set_xlabel("share of test customers targeted (ranked by predicted uplift)")
    axes.set_ylabel(f"Qini: incremental {dataset.outcome} (sum)")
    axes.set_title(f"Qini curves — {dataset.treatment} vs {dataset.control}, test split")
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path)


def policy_values(result: UpliftResult, path: str | Path) -> Path:
    """IPW value per customer of "treat the top share by score" vs share treated, with treat-all/none bands."""
    figure = Figure(figsize=(7.0, 4.6))
    axes = figure.add_subplot()
    references = (("treat none", result.treat_none, "#9A9A9A"), ("treat all", result.treat_all, "#444444"))
    for label, value, color in references:
        axes.axhline(value.estimate, color=color, linestyle=":", label=f"{label} {value.estimate:.3f}")
        axes.axhspan(value.ci[0], value.ci[1], color=color, alpha=0.08)
    for index, (name, method) in enumerate(result.methods.items()):
        curve = method.curves.policy_value
        color = _color(name, index)
        style = "--" if not method.is_uplift_method else "-"
        axes.plot(curve.share, curve.value, style, color=color, label=name, linewidth=1.4)
        chosen = method.policy_value
        axes.errorbar(
            [chosen.treated_share], [chosen.estimate],
            yerr=[[chosen.estimate - chosen.ci[0]], [chosen.ci[1] - chosen.estimate]],
            fmt="o", color=color, capsize=3,
        )  # fmt: skip
    axes.set_xlabel("share of test customers treated (top by score)")
    axes.set_ylabel(f"{result.dataset.outcome} per customer (IPW)")
    axes.set_title("Policy value on the test split (dots: share chosen on validation, 95% CI)")
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path)

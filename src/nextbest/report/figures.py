"""Figures of the reports: one function per figure, each takes the data it draws (the CRM evaluation's figures
take the typed parts of `CRMEvaluation`, the training curves the plain dict of training_metrics.json), writes a
PNG and returns its path. Tests call the very same functions.

Drawing uses matplotlib's object-oriented API on the Agg canvas (no pyplot, no global backend state),
so the functions are safe to call from a CLI, a server or a test.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FuncFormatter

from nextbest.evaluation.crm_results import (
    ActionFlow,
    Calibration,
    CalibrationStep,
    FlowLink,
    PolicyMetrics,
    SensitivityRow,
    ValuePoint,
)
from nextbest.evaluation.crm_who import RankingQuality, Reliability
from nextbest.evaluation.offpolicy import OPEReport

DPI = 110

#: Fixed colour of every CRM action and episode outcome, the same in every figure.
ACTION_COLORS: dict[str, str] = {
    "email": "#4C78A8",
    "call": "#F58518",
    "demo": "#B279A2",
    "survey": "#E4B92E",
    "manager": "#9D755D",
    "wait": "#B8C2CC",
}
OUTCOME_COLORS: dict[str, str] = {"subscribed": "#2CA02C", "dropped": "#D62728", "open": "#6B6B6B"}
POLICY_COLORS: dict[str, str] = {
    "learned": "#1F5FA8",
    "random": "#9A9A9A",
    "always_wait": "#C9C9C9",
    "logged": "#E07B39",
    "rule": "#8E6BB0",
}
_FALLBACK = ("#17BECF", "#BCBD22", "#7F7F7F", "#FF9DA6", "#72B7B2", "#8C564B")
_OUTCOMES = tuple(OUTCOME_COLORS)


# ----------------------------------------------------------------------------------------------------------------
# number formats shared with the HTML reports
# ----------------------------------------------------------------------------------------------------------------


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_pct(value: float | None) -> str:
    """A rate as a percentage ('0.11%', '12.5%'); None or non-finite as 'n/a'."""
    if _missing(value):
        return "n/a"
    pct = 100.0 * value
    return f"{pct:.2f}%" if abs(pct) < 1 else f"{pct:.1f}%"


def fmt_money(value: float | None) -> str:
    """Dollars with thousands separators ('$20,144', '-$58.12'); None or non-finite as 'n/a'."""
    if _missing(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    return f"{sign}${amount:,.0f}" if amount >= 1000 else f"{sign}${amount:,.2f}"


def fmt_factor(value: float | None) -> str:
    """A ratio as a multiplier ('0.37×'); None or non-finite as 'n/a'."""
    return "n/a" if _missing(value) else f"{value:.2f}×"


def fmt_count(value: float | None) -> str:
    """A count with thousands separators; None as 'n/a'."""
    return "n/a" if _missing(value) else f"{value:,.0f}"


#: How each business metric is labelled and formatted.
METRIC_FORMATS: dict[str, tuple[str, object]] = {
    "subscription_rate": ("Subscription rate", fmt_pct),
    "first_call_rate": ("First-call rate", fmt_pct),
    "cost_per_acquisition": ("Cost per acquisition", fmt_money),
    "roi": ("ROI", fmt_pct),
    "value_per_lead": ("Value per lead", fmt_money),
}


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=DPI, facecolor="white", metadata={"Software": None})
    return target


def _colour(name: str, table: dict[str, str], index: int) -> str:
    return table.get(name, _FALLBACK[index % len(_FALLBACK)])


def _empty_note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def _style(ax) -> None:
    ax.grid(True, color="#E5E5E5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _tick_pct(value: float, _pos: object = None) -> str:
    return f"{100 * value:.4g}%"


def _tick_money(value: float, _pos: object = None) -> str:
    sign = "-" if value < 0 else ""
    amount = abs(value)
    return f"{sign}${amount:,.0f}" if amount >= 1 or amount == 0 else f"{sign}${amount:.2g}"


def _percent_axis(ax) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_pct))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def _money_axis(ax) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_money))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def _plain_log_axis(ax, values: Sequence[float], tick=lambda v: f"{v:g}") -> None:
    """Log-scale y ticks as plain numbers; minor ticks (2, 5 × 10^k) labelled when the data spans < 2 decades."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    span = math.log10(max(positive) / min(positive)) if positive else 0.0

    def minor(value: float, _pos: object) -> str:
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
        return tick(value) if span < 2 and mantissa in (2.0, 5.0) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: tick(v)))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


# ----------------------------------------------------------------------------------------------------------------
# training curves
# ----------------------------------------------------------------------------------------------------------------

_CURVE_PANELS: tuple[tuple[str, str, str], ...] = (
    ("mean_business_value", "Mean business value per lead, training episodes ($)", "linear"),
    ("epsilon", "Exploration rate ε", "log"),
    ("states", "States visited (Q-table size)", "linear"),
    ("max_abs_delta_q", "max |ΔQ| per 1k episodes", "log"),
)


def _series(curves: dict, key: str) -> list[float] | None:
    values = curves.get(key)
    if not isinstance(values, list) or not values:
        return None
    cleaned = [float("nan") if v is None else float(v) for v in values]
    return cleaned if any(math.isfinite(v) for v in cleaned) else None


def training_curves(curves: dict, path: str | Path) -> Path:
    """Training curves of a run (RUN/training_metrics.json): business value, ε, states, max |ΔQ|.

    Only the curves present are drawn (PPO/DQN runs log episodes and mean_business_value only); a run
    without any curve gets a figure that says so.
    """
    panels = [(key, title, scale) for key, title, scale in _CURVE_PANELS if _series(curves, key) is not None]
    rows, cols = (1, 1) if len(panels) <= 1 else (1, 2) if len(panels) == 2 else (2, 2)
    fig = _new_figure(5.2 * cols, 3.4 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    if not panels:
        _empty_note(axes[0], "no training curves were recorded for this run")
    for ax, (key, title, scale) in zip(axes, panels):
        _curve_panel(ax, curves, key, title, scale)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Training curves (one point per logging window)", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def _curve_panel(ax, curves: dict, key: str, title: str, scale: str) -> None:
    if key == "epsilon" and _series(curves, "epsilon_trajectory") is not None:
        _epsilon_panel(ax, curves, title)
        return
    values = _series(curves, key) or []
    episodes = _series(curves, "episodes")
    if episodes is None or len(episodes) != len(values):
        episodes = [float(i + 1) for i in range(len(values))]
        ax.set_xlabel("logging window")
    else:
        ax.set_xlabel("episodes")
    if scale == "log":
        pairs = [(x, y) for x, y in zip(episodes, values) if math.isfinite(y) and y > 0]
        episodes, values = [p[0] for p in pairs], [p[1] for p in pairs]
        if not values:
            _empty_note(ax, f"{key}: no positive values to draw on a log scale")
            ax.set_title(title, fontsize=10)
            return
        ax.set_yscale("log")
        _plain_log_axis(ax, values)
    elif key == "states":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    label = "business value" if key == "mean_business_value" else None
    ax.plot(episodes, values, color="#1F5FA8", linewidth=1.4, label=label)
    if key == "mean_business_value":
        _overlay_training_reward(ax, curves, episodes, values)
        _money_axis(ax)
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k" if abs(v) >= 1000 else f"{v:,.0f}"))
    _style(ax)


def _epsilon_panel(ax, curves: dict, title: str) -> None:
    """ε per episode on log-log axes, so that a decay finished within the first 1k episodes is visible."""
    episodes = [e + 1 for e in _series(curves, "epsilon_trajectory_episodes") or []]
    values = _series(curves, "epsilon_trajectory") or []
    ax.plot(episodes, values, color="#1F5FA8", linewidth=1.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax, values)
    ax.set_xlabel("episode (log scale)")
    ax.set_title(title, fontsize=10)
    _style(ax)


def _overlay_training_reward(ax, curves: dict, episodes: list[float], business: list[float]) -> None:
    """Draw the training reward too when it differs from the business value (shaped reward)."""
    reward = _series(curves, "mean_training_reward")
    if reward is None or len(reward) != len(business):
        return
    if all(abs(a - b) < 1e-9 for a, b in zip(reward, business) if math.isfinite(a) and math.isfinite(b)):
        return
    ax.plot(episodes, reward, color="#E07B39", linewidth=1.0, linestyle="--", label="training (shaped) reward")
    ax.legend(fontsize=8, frameon=False)


# ----------------------------------------------------------------------------------------------------------------
# action flow (hand-drawn alluvial / Sankey diagram)
# ----------------------------------------------------------------------------------------------------------------

_NODE_W = 0.14
_GAP = 0.03
_MIN_NODE = 0.004
#: Bands thinner than this (in axis units, ~1.5 px) get an outline so that they stay visible.
_THIN = 0.003


def _ordered(names: Iterable[str], preferred: Sequence[str]) -> list[str]:
    present = set(names)
    return [n for n in preferred if n in present] + sorted(present - set(preferred))


def _flow_layout(flow: ActionFlow, min_count: float) -> dict:
    """Node positions and kept links of an action flow (see `action_flow`)."""
    links = [lk for lk in flow.links if lk.count > 0]
    horizon = flow.horizon or (max((lk.week for lk in links), default=-1) + 1)
    episodes = flow.episodes or sum(lk.count for lk in links if lk.week == 0) or 1
    node_count: dict[tuple[int, str], int] = defaultdict(int)
    for lk in links:
        node_count[(lk.week, lk.from_)] += lk.count
    outcomes = dict(flow.outcomes)
    for lk in links:
        if lk.to in _OUTCOMES and lk.to not in outcomes:
            outcomes[lk.to] = outcomes.get(lk.to, 0) + lk.count
    actions = _ordered(
        {name for _, name in node_count} | {lk.to for lk in links if lk.to not in _OUTCOMES}, [*ACTION_COLORS]
    )
    return {
        "links": links,
        "horizon": max(horizon, 1),
        "episodes": episodes,
        "nodes": node_count,
        "outcomes": outcomes,
        "actions": actions,
        "min_count": min_count,
    }


def _stack_column(items: list[tuple[str, int]], scale: float, top: float = 1.0) -> dict[str, tuple[float, float]]:
    """Top-down (top, height) of the nodes of one column, starting at `top`."""
    placed: dict[str, tuple[float, float]] = {}
    for name, count in items:
        height = max(count * scale, _MIN_NODE)
        placed[name] = (top, height)
        top -= height + _GAP
    return placed


def _band(
    ax,
    x0: float,
    y0: tuple[float, float],
    x1: float,
    y1: tuple[float, float],
    colour: str,
    alpha: float,
    turn: float | None = None,
) -> None:
    """A curved band from the interval y0=(top, bottom) at x0 to y1 at x1; with `turn`, the curve reaches y1
    at x=turn and the band runs straight on to x1 (an exit band travelling in the lane above the columns)."""
    end = x1 if turn is None else turn
    mid = (x0 + end) / 2
    top = [(x0, y0[0]), (mid, y0[0]), (mid, y1[0]), (end, y1[0])]
    bottom = [(end, y1[1]), (mid, y1[1]), (mid, y0[1]), (x0, y0[1])]
    verts = [*top, *([(x1, y1[0]), (x1, y1[1])] if turn is not None else []), *bottom, (x0, y0[0])]
    straight = [MplPath.LINETO] * (2 if turn is not None else 0)
    codes = [MplPath.MOVETO, *[MplPath.CURVE4] * 3, *straight, MplPath.LINETO, *[MplPath.CURVE4] * 3, MplPath.CLOSEPOLY]
    thin = abs(y0[0] - y0[1]) < _THIN
    edge = {"edgecolor": colour, "linewidth": 0.6} if thin else {"edgecolor": "none"}
    ax.add_patch(PathPatch(MplPath(verts, codes), facecolor=colour, alpha=alpha, zorder=1, **edge))


def action_flow(flow: ActionFlow, path: str | Path, title: str = "Action flow", min_link_share: float = 0.002) -> Path:
    """Alluvial (Sankey-style) diagram of a policy's week-to-week actions (evaluation.json action_flows.<policy>).

    Columns are weeks 0..horizon−1; each action taken that week is a node whose height is proportional to
    its count; bands between consecutive weeks are proportional to the transition count; the right-most
    column holds the outcomes (subscribed, dropped, still open). Episodes that end before the last week
    leave their node at the top and travel to their outcome in a lane above the columns. Links and nodes
    under `min_link_share` of the episodes are dropped (the caption says how many); links into
    "subscribed" are always drawn.
    """
    lay = _flow_layout(flow, min_link_share * max(flow.episodes, 1))
    horizon = lay["horizon"]
    fig = _new_figure(max(8.0, 1.15 * (horizon + 1) + 1.5), 6.4)
    ax = fig.add_axes((0.03, 0.12, 0.86, 0.74))
    if not lay["links"]:
        _empty_note(ax, "no actions were recorded for this policy")
        fig.suptitle(title, fontsize=12)
        return _save(fig, path)
    columns = max(len(lay["actions"]), len(_OUTCOMES))
    lay["scale"] = (1.0 - _GAP * (columns - 1)) / lay["episodes"]
    lay["kept"] = [lk for lk in lay["links"] if _link_big_enough(lk, lay)]
    placed = _place_nodes(lay)
    lay["kept"] = [lk for lk in lay["kept"] if _link_placed(lk, lay, placed)]
    _draw_links(ax, lay, placed)
    _draw_nodes(ax, lay, placed)
    _finish_flow(ax, fig, lay, placed)
    fig.suptitle(f"{title} — {lay['episodes']:,} simulated lead-episodes", fontsize=12, y=0.98)
    return _save(fig, path)


def _link_big_enough(lk: FlowLink, lay: dict) -> bool:
    return lk.count >= lay["min_count"] or lk.to == "subscribed"


def _target(lk: FlowLink, lay: dict) -> tuple[int, str]:
    return (lay["horizon"], lk.to) if lk.to in _OUTCOMES else (lk.week + 1, lk.to)


def _link_placed(lk: FlowLink, lay: dict, placed: dict) -> bool:
    return (lk.week, lk.from_) in placed and _target(lk, lay) in placed


def _width(lk: FlowLink, lay: dict) -> float:
    return lk.count * lay["scale"]


def _early_exit(lk: FlowLink, lay: dict) -> bool:
    return lk.to in _OUTCOMES and lk.week < lay["horizon"] - 1


def _place_nodes(lay: dict) -> dict[tuple[int, str], tuple[float, float]]:
    """Action columns top-aligned at 1; the outcome column raised so that early exits fit in the lane."""
    scale, min_count = lay["scale"], lay["min_count"]
    placed: dict[tuple[int, str], tuple[float, float]] = {}
    for week in range(lay["horizon"]):
        items = [(a, lay["nodes"].get((week, a), 0)) for a in lay["actions"]]
        column = _stack_column([(a, c) for a, c in items if c > 0 and c >= min_count], scale)
        placed.update({(week, name): box for name, box in column.items()})
    terminal = [(o, lay["outcomes"].get(o, 0)) for o in _ordered(lay["outcomes"], _OUTCOMES)]
    terminal = [(o, c) for o, c in terminal if c > 0]
    early: dict[str, float] = defaultdict(float)
    for lk in lay["kept"]:
        if _early_exit(lk, lay) and (lk.week, lk.from_) in placed:
            early[lk.to] += _width(lk, lay)
    trial = _stack_column(terminal, scale, top=0.0)
    need = max((-trial[o][0] + early[o] for o, _ in terminal if early[o] > 0), default=None)
    top = 1.0 if need is None else 1.0 + _GAP / 2 + need
    placed.update({(lay["horizon"], o): box for o, box in _stack_column(terminal, scale, top=top).items()})
    lay["lane"] = need is not None
    return placed


def _draw_links(ax, lay: dict, placed: dict) -> None:
    """Bands between consecutive weeks, and exit bands (early ones through the lane) into the outcomes."""
    order = {name: i for i, name in enumerate([*_ordered(lay["outcomes"], _OUTCOMES), *lay["actions"]])}
    out_offset: dict = defaultdict(float)
    in_offset: dict = defaultdict(float)
    links = sorted(lay["kept"], key=lambda lk: (lk.week, order.get(lk.from_, 99), order.get(lk.to, 99)))
    for lk in links:
        week, frm, to = lk.week, lk.from_, lk.to
        source, target = (week, frm), _target(lk, lay)
        width = _width(lk, lay)
        s_top = placed[source][0] - out_offset[source]
        t_top = placed[target][0] - in_offset[target]
        out_offset[source] += width
        in_offset[target] += width
        if to in _OUTCOMES:
            colour, alpha = OUTCOME_COLORS.get(to, "#333333"), 0.35
        else:
            colour, alpha = _colour(frm, ACTION_COLORS, order.get(frm, 0)), 0.42
        x0 = _column_x(week, lay["horizon"]) + _NODE_W
        turn = x0 + 0.55 if _early_exit(lk, lay) else None
        x1 = _column_x(target[0], lay["horizon"])
        _band(ax, x0, (s_top, s_top - width), x1, (t_top, t_top - width), colour, alpha, turn)


def _column_x(week: int, horizon: int) -> float:
    return week + (0.45 if week >= horizon else 0.0)


def _draw_nodes(ax, lay: dict, placed: dict) -> None:
    horizon = lay["horizon"]
    order = {name: i for i, name in enumerate(lay["actions"])}
    for (week, name), (top, height) in placed.items():
        terminal = week >= horizon
        colour = OUTCOME_COLORS.get(name, "#333333") if terminal else _colour(name, ACTION_COLORS, order.get(name, 0))
        x = _column_x(week, horizon)
        box = Rectangle((x, top - height), _NODE_W, height, facecolor=colour, edgecolor="white", lw=0.5, zorder=3)
        ax.add_patch(box)
        if terminal:
            continue
        count = lay["nodes"][(week, name)]
        big = height >= 0.045
        ax.text(
            x + _NODE_W + 0.03,
            top - height / 2,
            f"{name}\n{count:,}" if big else f"{name} {count:,}",
            va="center",
            ha="left",
            fontsize=7 if big else 6.5,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
        )
    _terminal_labels(ax, lay, placed)


def _terminal_labels(ax, lay: dict, placed: dict) -> None:
    """Outcome labels right of the outcome column, pushed apart when the nodes are thin."""
    horizon, episodes = lay["horizon"], lay["episodes"]
    previous = math.inf
    for (week, name), (top, height) in sorted(placed.items(), key=lambda item: -item[1][0]):
        if week < horizon:
            continue
        y = min(top - height / 2, previous - 0.07)
        previous = y
        count = lay["outcomes"].get(name, 0)
        x = _column_x(week, horizon) + _NODE_W + 0.06
        ax.text(x, y, f"{name}\n{count:,} ({fmt_pct(count / episodes)})", va="center", ha="left", fontsize=8.5)


def _finish_flow(ax, fig: Figure, lay: dict, placed: dict) -> None:
    horizon = lay["horizon"]
    tops = [top for top, _ in placed.values()]
    bottoms = [top - height for top, height in placed.values()]
    ax.set_xlim(-0.15, _column_x(horizon, horizon) + 1.1)
    ax.set_ylim(min(bottoms, default=0.0) - 0.02, max(tops, default=1.0) + 0.02)
    ax.set_yticks([])
    ticks = [*range(horizon), _column_x(horizon, horizon)]
    ax.set_xticks([t + _NODE_W / 2 for t in ticks], [*(f"week {w}" for w in range(horizon)), "outcome"], fontsize=8)
    ax.tick_params(axis="x", length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [Patch(color=_colour(a, ACTION_COLORS, i), label=a) for i, a in enumerate(lay["actions"])]
    handles += [Patch(color=c, label=o) for o, c in OUTCOME_COLORS.items()]
    fig.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.93), ncol=len(handles), fontsize=8, frameon=False
    )
    fig.text(0.03, 0.03, _flow_caption(lay), fontsize=8, color="#555555", ha="left")


def _flow_caption(lay: dict) -> str:
    kept = {id(lk) for lk in lay["kept"]}
    missing = [lk for lk in lay["links"] if id(lk) not in kept]
    caption = "Heights are proportional to episode counts."
    if lay.get("lane"):
        caption += " Episodes that end early rise into the lane on top and run to their outcome."
    if missing:
        caption += (
            f"\nNot drawn: {len(missing)} links (and nodes) under {fmt_count(lay['min_count'])} episodes, "
            f"{sum(lk.count for lk in missing):,} episode-weeks in all; links into 'subscribed' "
            "are always drawn."
        )
    else:
        caption += " All links are drawn."
    return caption


# ----------------------------------------------------------------------------------------------------------------
# simulator calibration
# ----------------------------------------------------------------------------------------------------------------

_LOG_FLOOR = 1e-4


def calibration_chart(calibration: Calibration, path: str | Path) -> Path:
    """Actual test-set rate of each funnel step against the simulated rate and its 95% interval
    (evaluation.json simulator_calibration); log-scale y; actual points green when inside, red outside."""
    steps = calibration.steps
    fig = _new_figure(max(7.0, 0.85 * len(steps) + 2.5), 4.8)
    ax = fig.add_subplot()
    if not steps:
        _empty_note(ax, "no calibration steps")
    for i, step in enumerate(steps):
        _calibration_point(ax, i, step)
    ax.set_yscale("log")
    ax.set_xticks(range(len(steps)), [s.step for s in steps], rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("share of test leads reaching the step")
    _plain_log_axis(ax, _calibration_values(steps), tick=_tick_pct)
    _style(ax)
    ax.legend(handles=_calibration_legend(), fontsize=8, loc="lower left", frameon=True, framealpha=0.9)
    fraction = calibration.within_ci_fraction
    inside = sum(s.within for s in steps)
    fig.suptitle(
        f"Simulator calibration: {inside} of {len(steps)} steps within the 95% interval "
        f"(within-CI fraction {fmt_pct(fraction)})",
        fontsize=11,
    )
    fig.tight_layout()
    return _save(fig, path)


def _calibration_point(ax, i: int, step: CalibrationStep) -> None:
    simulated, actual = step.simulated, step.actual
    low, high = (list(step.ci) + [None, None])[:2]
    if not _missing(simulated) and not _missing(low) and not _missing(high):
        centre = max(simulated, _LOG_FLOOR)
        err = [[max(centre - max(low, _LOG_FLOOR), 0.0)], [max(max(high, _LOG_FLOOR) - centre, 0.0)]]
        ax.errorbar([i], [centre], yerr=err, fmt="_", color="#333333", markersize=16, capsize=6, lw=1.3, zorder=2)
    if not _missing(actual):
        colour = "#2CA02C" if step.within else "#D62728"
        ax.scatter([i + 0.18], [max(actual, _LOG_FLOOR)], s=55, color=colour, edgecolor="white", zorder=3)


def _calibration_values(steps: list[CalibrationStep]) -> list[float]:
    values = [s.actual for s in steps] + [s.simulated for s in steps]
    values += [v for s in steps for v in s.ci]
    return [max(v, _LOG_FLOOR) for v in values if not _missing(v)]


def _calibration_legend() -> list:

    return [
        Line2D([], [], color="#333333", marker="_", markersize=14, lw=1.3, label="simulated rate, 95% interval"),
        Line2D([], [], color="#2CA02C", marker="o", lw=0, label="actual test rate, inside"),
        Line2D([], [], color="#D62728", marker="o", lw=0, label="actual test rate, outside"),
    ]


# ----------------------------------------------------------------------------------------------------------------
# policy comparison
# ----------------------------------------------------------------------------------------------------------------


def policy_comparison(
    policies: Mapping[str, PolicyMetrics], path: str | Path, labels: Mapping[str, str] | None = None
) -> Path:
    """Bar charts with 95% intervals of the business metrics of every policy (evaluation.json policies):
    subscription rate, first-call rate, CPA (log scale; undefined values skipped), ROI, value per lead.
    `labels` renames metrics in the panel titles (a funnel's step names; default: `METRIC_FORMATS`)."""
    names = list(policies)
    fig = _new_figure(13.0, 7.4)
    axes = fig.subplots(2, 3).ravel()
    for ax, metric in zip(axes, METRIC_FORMATS):
        _metric_bars(ax, names, policies, metric, _label(metric, labels))
    _policy_legend(axes[-1], names)
    fig.suptitle("Business metrics per policy (bars: point estimate; whiskers: 95% bootstrap interval)", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def _label(metric: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(metric, METRIC_FORMATS[metric][0])


def _metric_bars(ax, names: list[str], policies: Mapping[str, PolicyMetrics], metric: str, label: str) -> None:
    fmt = METRIC_FORMATS[metric][1]
    log = metric == "cost_per_acquisition"
    for i, name in enumerate(names):
        entry = policies[name]
        value = getattr(entry, metric)
        colour = _colour(name, POLICY_COLORS, i)
        if _missing(value) or (log and value <= 0):
            note = "n/a" if _missing(value) else fmt(value)
            ax.text(i, 0.02, note, transform=ax.get_xaxis_transform(), ha="center", fontsize=8, color="#777777")
            continue
        ax.bar(i, value, color=colour, width=0.7, zorder=2)
        low, high = _error_bar(ax, i, value, getattr(entry, f"{metric}_ci"))
        anchor = max(value, high) if value >= 0 else min(value, low)
        ax.annotate(
            fmt(value),
            (i, anchor),
            xytext=(0, 3 if value >= 0 else -11),
            textcoords="offset points",
            ha="center",
            fontsize=7.5,
            color="#222222",
            zorder=4,
        )
    if log:
        ax.set_yscale("log")
        cpa = [getattr(policies[n], metric) for n in names]
        _plain_log_axis(ax, [v for v in cpa if not _missing(v)], tick=lambda v: _tick_money(v))
    ax.axhline(0, color="#888888", lw=0.8) if not log else None
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8.5)
    ax.set_title(label + (" (log scale)" if log else ""), fontsize=10)
    if not log:
        (_money_axis if fmt is fmt_money else _percent_axis)(ax)
    ax.margins(y=0.15)
    _style(ax)


def _error_bar(ax, x: float, value: float, ci: list | None) -> tuple[float, float]:
    """Whisker of the interval around a bar; returns the interval (the value itself when there is none)."""
    low, high = (list(ci or [None, None]) + [None, None])[:2]
    if _missing(low) or _missing(high):
        return value, value
    err = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
    ax.errorbar([x], [value], yerr=err, fmt="none", ecolor="#222222", capsize=4, lw=1.1, zorder=3)
    return low, high


def _policy_legend(ax, names: list[str]) -> None:
    ax.axis("off")
    handles = [Patch(color=_colour(n, POLICY_COLORS, i), label=n) for i, n in enumerate(names)]
    ax.legend(handles=handles, loc="center", fontsize=10, frameon=False, title="policy")
    ax.text(
        0.5,
        0.08,
        "n/a: not defined (e.g. CPA without a subscription,\nROI without spend)",
        ha="center",
        fontsize=8,
        color="#666666",
        transform=ax.transAxes,
    )


# ----------------------------------------------------------------------------------------------------------------
# sensitivity to the call-offer-rate assumption
# ----------------------------------------------------------------------------------------------------------------

_SENSITIVITY_POLICIES = ("learned", "random", "logged")


def sensitivity_chart(
    sensitivity: Sequence[SensitivityRow], path: str | Path, labels: Mapping[str, str] | None = None
) -> Path:
    """Subscription rate and value per lead of learned, random and logged policies against the assumed
    call-offer rate of the logged process (evaluation.json sensitivity); `labels` as in `policy_comparison`."""
    rows = sorted(sensitivity, key=lambda r: r.call_offer_rate)
    fig = _new_figure(11.0, 4.3)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("subscription_rate", "value_per_lead")):
        _sensitivity_panel(ax, rows, metric, _label(metric, labels))
    fig.suptitle("Sensitivity to the assumed call-offer rate of the logged process (point estimates)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _sensitivity_panel(ax, rows: list[SensitivityRow], metric: str, label: str) -> None:
    fmt = METRIC_FORMATS[metric][1]
    if not rows:
        _empty_note(ax, "no sensitivity runs")
        return
    for i, name in enumerate(_SENSITIVITY_POLICIES):
        points = [(r.call_offer_rate, getattr(r, name).get(metric)) for r in rows]
        points = [(x, y) for x, y in points if not _missing(y)]
        if points:
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                color=_colour(name, POLICY_COLORS, i),
                label=name,
                lw=1.6,
            )
    rates = [r.call_offer_rate for r in rows]
    ax.set_xticks(rates, [fmt_pct(r) for r in rates], fontsize=8.5)
    ax.set_xlabel("assumed share of leads the logged process offered a call")
    ax.set_title(label, fontsize=10)
    (_money_axis if fmt is fmt_money else _percent_axis)(ax)
    ax.legend(fontsize=8, frameon=False)
    _style(ax)


def ope_intervals(report: OPEReport, path: str | Path) -> Path:
    """Each estimator's value of the target policy with its 95% interval, next to the logged policy's own value."""
    rows = [(name, e.estimate, e.ci) for name, e in report.estimators.items()]
    rows.append(("logged policy", report.on_policy.mean, report.on_policy.ci))
    fig = _new_figure(6.4, 0.5 * len(rows) + 1.4)
    ax = fig.subplots()
    for y, (name, value, (low, high)) in enumerate(reversed(rows)):
        color = "#888888" if name == "logged policy" else "#1f77b4"
        ax.errorbar([value], [y], xerr=[[value - low], [high - value]], fmt="o", color=color, capsize=4)
    ax.set_yticks(range(len(rows)), [name for name, _, _ in reversed(rows)])
    ax.set_xlabel("mean reward per decision")
    ax.set_title(f"Off-policy estimates of the target policy ({report.n:,} logged decisions)", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


__all__ = [
    "ope_intervals",
    "ACTION_COLORS",
    "OUTCOME_COLORS",
    "POLICY_COLORS",
    "action_flow",
    "calibration_chart",
    "fmt_count",
    "fmt_factor",
    "fmt_money",
    "fmt_pct",
    "policy_comparison",
    "sensitivity_chart",
    "training_curves",
]


# ----------------------------------------------------------------------------------------------------------------
# who to contact: gains, lift and reliability of the lead scores (evaluation.json who)
# ----------------------------------------------------------------------------------------------------------------

#: Colours of the lead scores in the WHO figures, in the order they are given.
_SCORE_COLORS = ("#1F5FA8", "#E07B39", "#2CA02C", "#8E6BB0")


def who_gains_chart(scores: Mapping[str, RankingQuality], path: str | Path) -> Path:
    """Cumulative gains (share of the converting rows reached against the share of rows contacted, best scores
    first) and lift (that share ÷ the share contacted) of each lead score, from its ``gains`` points
    (evaluation.json who.gains, who.alternatives.<name>.gains, who.as_of_cutoff.gains); bands: the bootstrap
    interval over leads; dashed: a random ranking (the diagonal, lift 1)."""
    fig = _new_figure(11.0, 4.4)
    gains_ax, lift_ax = fig.subplots(1, 2)
    drawn = {name: quality.gains for name, quality in scores.items() if quality.gains}
    for i, (name, points) in enumerate(drawn.items()):
        colour = _SCORE_COLORS[i % len(_SCORE_COLORS)]
        shares = [p.share_contacted for p in points]
        low, high = ([p.share_captured_ci[j] for p in points] for j in (0, 1))
        gains_ax.plot([0.0, *shares], [0.0, *(p.share_captured for p in points)], color=colour, lw=1.8, label=name)
        gains_ax.fill_between([0.0, *shares], [0.0, *low], [0.0, *high], color=colour, alpha=0.15, lw=0)
        lift_ax.plot(shares, [p.lift for p in points], color=colour, lw=1.8, marker="o", markersize=3, label=name)
        lift_ax.fill_between(shares, [p.lift_ci[0] for p in points], [p.lift_ci[1] for p in points], color=colour,
                             alpha=0.15, lw=0)  # fmt: skip
    if not drawn:
        _empty_note(gains_ax, "no gains curve in evaluation.json")
        _empty_note(lift_ax, "no gains curve in evaluation.json")
    else:
        gains_ax.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1.0, label="random")
        lift_ax.axhline(1.0, ls="--", color="#888888", lw=1.0, label="random")
        for ax in (gains_ax, lift_ax):
            ax.xaxis.set_major_formatter(FuncFormatter(_tick_pct))
            ax.set_xlabel("share of rows contacted, best scores first")
            ax.legend(fontsize=8, frameon=False)
            _style(ax)
        gains_ax.set_xlim(0, 1)
        gains_ax.set_ylim(0, 1.02)
        _percent_axis(gains_ax)
        gains_ax.set_ylabel("share of the converting rows reached")
        lift_ax.set_ylabel("lift (× a random ranking)")
        lift_ax.set_ylim(bottom=0)
    gains_ax.set_title("Cumulative gains", fontsize=10)
    lift_ax.set_title("Lift", fontsize=10)
    fig.suptitle("Who to contact: gains and lift on held-out leads (bands: bootstrap interval over leads)",
                 fontsize=11)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)


def who_reliability_chart(reliability: Reliability, path: str | Path, scorer: str = "funnel model") -> Path:
    """Reliability of a lead score: per score decile (equal-count bins, lowest first), the mean score next to the
    observed conversion rate of its rows (evaluation.json who.reliability)."""
    fig = _new_figure(8.0, 4.2)
    ax = fig.subplots()
    n = len(reliability.rows)
    if not n:
        _empty_note(ax, "no reliability deciles in evaluation.json")
    else:
        x = list(range(n))
        ax.bar([i - 0.2 for i in x], reliability.mean_score, width=0.4, color=_SCORE_COLORS[0], label="mean score")
        ax.bar([i + 0.2 for i in x], reliability.observed, width=0.4, color="#2CA02C", label="observed rate")
        ax.set_xticks(x, [f"{i + 1}\n({fmt_count(r)})" for i, r in enumerate(reliability.rows)], fontsize=8)
        ax.set_xlabel("score decile, lowest first (rows)")
        ax.set_ylabel("conversion")
        _percent_axis(ax)
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        _style(ax)
    ax.set_title(f"Reliability of the {scorer}'s score per score decile", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


__all__ += ["who_gains_chart", "who_reliability_chart"]


def value_sensitivity_chart(readings: Mapping[str, Sequence[ValuePoint]], path: str | Path, label: str = "Subscription"
                            ) -> Path:
    """The learned policy retrained at each conversion value, one line per reading (evaluation.json
    ``readings.<name>.value_sensitivity``): its conversion rate and its spend per lead against the value (log scale).
    """
    fig = _new_figure(11.0, 4.3)
    axes = fig.subplots(1, 2)
    panels = (("subscription_rate", f"{label} rate of the learned policy"), ("spend_per_lead", "Spend per lead"))
    values: list[float] = []
    for ax, (key, title) in zip(axes, panels):
        for i, (name, rows) in enumerate(readings.items()):
            points = sorted((r.subscription_value, getattr(r, key)) for r in rows)
            if not points:
                continue
            values += [x for x, _ in points]
            ax.plot(*zip(*points), marker="o", label=name, color=f"C{i}")
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} value ($, log scale)")
        ax.set_title(title + (" (log scale)" if key == "subscription_rate" else ""), fontsize=10)
        if key == "subscription_rate":  # the readings differ by orders of magnitude
            rates = [getattr(r, key) for rows in readings.values() for r in rows if getattr(r, key) > 0]
            if rates:
                ax.set_yscale("log")
                _plain_log_axis(ax, rates, _tick_pct)
        else:
            _money_axis(ax)
        _style(ax)
        if not values:
            _empty_note(ax, "no value sensitivity in evaluation.json")
    if values:
        for ax in axes:
            ax.set_xticks(sorted(set(values)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        axes[0].legend(title="reading", fontsize=8)
    fig.suptitle("How the learned policy changes with the value of a conversion (point estimates)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


__all__ += ["value_sensitivity_chart"]

"""Exploratory analysis of the page table: the five features and their hypotheses, as JSON, PNGs and one HTML page.

    summary = eda_summary(pages)          # plain dict: every number the figures show
    write_eda(pages, out_dir, source)     # out_dir/eda.json, out_dir/eda.html, out_dir/figures/*.png

Hypotheses checked (each figure names its data): purchase power (richer users churn less, spend more), hour of
day (night scrolling vs evening shopping), engagement on page t -> retention at t+1, page depth (fatigue: churn
rises with depth), page value (spending resets the churn clock).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.report import html as h
from nextbest.report.figures import _new_figure, _save, _style

FEATURES = ["hour", "purchase_power", "engagement", "page_id", "page_value", "done"]


def _rate_by(pages: pd.DataFrame, column: pd.Series) -> dict:
    grouped = pages.groupby(column).done.agg(["mean", "size"])
    return {"x": grouped.index.astype(float).tolist(), "churn_rate": grouped["mean"].tolist(),
            "pages": grouped["size"].astype(int).tolist()}  # fmt: skip


def eda_summary(pages: pd.DataFrame) -> dict:
    """Every number of the EDA (see the module docstring)."""
    sessions = pages.groupby("session_id").agg(reward=("reward", "sum"), power=("purchase_power", "first"),
                                               length=("page_id", "max"))  # fmt: skip
    ordered = pages.sort_values(["session_id", "page_id"])
    stays = ordered.groupby("session_id").done.shift(-1).notna()  # page t was followed by page t+1
    engagement_bins = ordered.engagement.clip(upper=12)
    retention = ordered.assign(stays=stays).groupby(engagement_bins).stays.mean()
    bought = pages.page_value > 0
    nonzero = pages.reward[pages.reward > 0]
    power_boxes = {int(p): group.reward.tolist() for p, group in sessions.groupby(sessions.power.clip(upper=8))}
    return {
        "pages": len(pages), "sessions": len(sessions),
        "class_balance": {"done_1": int(pages.done.sum()), "done_0": int((1 - pages.done).sum()),
                          "churn_rate": float(pages.done.mean())},
        "correlation": {"columns": FEATURES, "matrix": pages[FEATURES].astype(float).corr().round(4).values.tolist()},
        "nonzero_rewards": {"count": int(nonzero.size), "share_of_pages": float(nonzero.size / max(len(pages), 1)),
                            "quantiles": {str(q): float(nonzero.quantile(q)) for q in (0.1, 0.5, 0.9, 0.99)}
                            if nonzero.size else {},
                            "histogram": np.histogram(np.log10(nonzero), bins=30)[0].tolist() if nonzero.size else [],
                            "log10_edges": np.histogram(np.log10(nonzero), bins=30)[1].tolist()
                            if nonzero.size else []},
        "churn_by_hour": _rate_by(pages, pages.hour),
        "churn_by_depth": _rate_by(pages, pages.page_id.clip(upper=40)),
        "retention_by_engagement": {"x": retention.index.astype(float).tolist(), "next_page_rate": retention.tolist()},
        "churn_after_purchase": {"bought": float(pages[bought].done.mean()) if bought.any() else None,
                                 "not_bought": float(pages[~bought].done.mean()) if (~bought).any() else None},
        "session_reward_by_power": {"powers": list(power_boxes), "rewards": list(power_boxes.values()),
                                    "means": [float(np.mean(v)) for v in power_boxes.values()]},
        "mean_session_length": float(sessions.length.mean()),
        "mean_session_reward": float(sessions.reward.mean()),
    }  # fmt: skip


def _bars(summary: dict, path: Path) -> Path:
    fig = _new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    balance = summary["class_balance"]
    ax.bar(["continues (done=0)", "churns (done=1)"], [balance["done_0"], balance["done_1"]],
           color=["#1F5FA8", "#C62828"])  # fmt: skip
    ax.set_title(f"Churn label balance: {balance['churn_rate']:.1%} of pages end a session")
    ax.set_ylabel("pages")
    _style(ax)
    return _save(fig, path)


def _heatmap(summary: dict, path: Path) -> Path:
    fig = _new_figure(6.2, 5.2)
    ax = fig.add_subplot()
    matrix, names = np.array(summary["correlation"]["matrix"]), summary["correlation"]["columns"]
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Correlation of the page features (Pearson)")
    fig.tight_layout()
    return _save(fig, path)


def _rewards(summary: dict, path: Path) -> Path:
    fig = _new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    data = summary["nonzero_rewards"]
    if data["histogram"]:
        edges = 10 ** np.array(data["log10_edges"])
        ax.stairs(data["histogram"], edges, fill=True, color="#2C8A3B", alpha=0.8)
        ax.set_xscale("log")
    ax.set_title(f"Non-zero page rewards ({data['share_of_pages']:.1%} of pages)")
    ax.set_xlabel("reward (money spent on the page, log scale)")
    ax.set_ylabel("pages")
    _style(ax)
    return _save(fig, path)


def _line(block: dict, path: Path, title: str, xlabel: str, key: str = "churn_rate") -> Path:
    fig = _new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    ax.plot(block["x"], block[key], marker="o", color="#1F5FA8")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of pages" if key == "churn_rate" else "P(next page)")
    _style(ax)
    return _save(fig, path)


def _boxes(summary: dict, path: Path) -> Path:
    fig = _new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    block = summary["session_reward_by_power"]
    ax.boxplot(block["rewards"], showfliers=False)
    ax.set_xticks(range(1, len(block["powers"]) + 1), [f"{p}{'+' if p == 8 else ''}" for p in block["powers"]])
    ax.plot(range(1, len(block["means"]) + 1), block["means"], "D", color="#E07B39", label="mean")
    ax.set_title("Total session reward by purchase power (boxes: quartiles, whiskers 1.5 IQR)")
    ax.set_xlabel("purchase power")
    ax.set_ylabel("session reward")
    ax.legend()
    _style(ax)
    return _save(fig, path)


def write_eda(pages: pd.DataFrame, out: str | Path, source: str = "") -> Path:
    """Write ``out/eda.json``, ``out/figures/*.png`` and ``out/eda.html``; returns the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = eda_summary(pages)
    data = out / "eda.json"
    data.write_text(json.dumps(summary) + "\n")
    jobs = [
        ("class_balance", "Churn distribution", data, "class_balance", lambda p: _bars(summary, p)),
        ("correlation", "Correlation heatmap", data, "correlation", lambda p: _heatmap(summary, p)),
        ("nonzero_rewards", "Non-zero rewards", data, "nonzero_rewards", lambda p: _rewards(summary, p)),
        ("churn_by_hour", "Churn by hour", data, "churn_by_hour",
         lambda p: _line(summary["churn_by_hour"], p, "Churn rate by hour of day", "hour (local)")),
        ("session_reward_by_power", "Purchase power vs session reward", data, "session_reward_by_power",
         lambda p: _boxes(summary, p)),
        ("churn_by_depth", "Churn by page depth", data, "churn_by_depth",
         lambda p: _line(summary["churn_by_depth"], p, "Churn rate by page depth (40 = 40+)", "page depth")),
        ("retention_by_engagement", "Engagement and retention", data, "retention_by_engagement",
         lambda p: _line(summary["retention_by_engagement"], p, "P(page t+1) by engagement on page t (12 = 12+)",
                         "engagement on page t", key="next_page_rate")),
    ]  # fmt: skip
    figs = h.draw_all(jobs, out / "figures")
    after = summary["churn_after_purchase"]
    churn = summary["class_balance"]["churn_rate"]
    facts = h.table(["pages", "sessions", "churn rate", "mean pages / session", "mean session reward",
                     "churn after a purchase", "churn otherwise"],
                    [[f"{summary['pages']:,}", f"{summary['sessions']:,}", f"{churn:.1%}",
                      f"{summary['mean_session_length']:.2f}", f"{summary['mean_session_reward']:.2f}",
                      "n/a" if after["bought"] is None else f"{after['bought']:.1%}",
                      "n/a" if after["not_bought"] is None else f"{after['not_bought']:.1%}"]])  # fmt: skip
    sections = [
        ("overview", "Overview", facts + h.figure(figs["class_balance"]) + h.figure(figs["correlation"])),
        ("power", "Purchase power: richer users churn less, spend more", h.figure(figs["session_reward_by_power"])),
        ("hour", "Hour of day: night scrolling vs evening shopping", h.figure(figs["churn_by_hour"])),
        ("engagement", "Engagement on page t keeps the user for t+1", h.figure(figs["retention_by_engagement"])),
        ("depth", "Page depth: fatigue", h.figure(figs["churn_by_depth"])),
        ("value", "Page value: spending resets the churn clock", h.figure(figs["nonzero_rewards"])
         + h.paragraph("Churn after a page with a purchase vs without: see the overview table.")),
    ]  # fmt: skip
    page = out / "eda.html"
    page.write_text(h.page("Session EDA", f"{summary['pages']:,} pages from {source or 'the lake'}", sections))
    return page

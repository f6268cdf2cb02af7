"""The session retention report: one self-contained HTML file (figures embedded as base64 PNG, inline CSS, no
external resources) telling the study end to end — problem, data and method, scratch vs scikit-learn vs LightGBM,
agents vs baselines on the learned simulator, and the verdict; plus report.json next to it listing every figure
with the JSON it was drawn from, and the headline numbers.

    write_sessions_report(eda_dir, models_dir, agent_json, out)
        reads   eda_dir/eda.json + eda_dir/figures/*.png (`nextbest sessions eda`), models_dir/models.json
                (`nextbest sessions models`), agent_json (`nextbest.agents.sessions.compare_policies`)
        writes  out (HTML), out.parent/report.json, out.parent/figures/*.png

The inputs are read as their types (``EdaFacts``, ``nextbest.models.sessions.SessionModels``,
``nextbest.agents.sessions.SessionStudy``): a wrongly shaped file is one NextbestError naming the file and the key.
report.json is a ``SessionsReportSummary``. The strategies' table says for each effect whether it is assumed or
estimated from an exploration log (with its 95% interval and the log's size: ``SimulatorDescription.sources``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from nextbest.agents.sessions import DEPTH_LABELS, MeanCI, RetainedRevenue, SessionStudy, choices_table
from nextbest.errors import NextbestError
from nextbest.models.sessions import ChurnMetrics, SessionModels, ValueMetrics
from nextbest.report import figures as fg
from nextbest.report import html as h
from nextbest.report.figures import fmt_count, fmt_factor, fmt_money, fmt_pct
from nextbest.report.targeting import fmt_signed_money
from nextbest.results import Result
from nextbest.sim.session_sim import STRATEGY_PARAMETERS, SimulatorDescription

#: The strategy whose share the heatmap shows, by purchase power and depth.
HEATMAP_STRATEGY = "discount"
#: Heatmap cells with fewer evaluation pages than this are grey: a share of a handful of pages is noise.
HEATMAP_MIN_PAGES = 50
#: The EDA figures the report embeds: (name in eda_dir/figures, title, caption).
EDA_FIGURES = (
    ("churn_by_depth", "Churn by page depth", "Hypothesis (fatigue): churn rises with page depth."),
    ("churn_by_hour", "Churn by hour", "Hypothesis: night scrolling churns more than evening shopping."),
    ("session_reward_by_power", "Session reward by purchase power", "Hypothesis: richer users spend more per session."),
)
_EDA_HINT = "run `nextbest sessions eda --lake LAKE --out DIR` first"
_MODELS_HINT = "run `nextbest sessions models --lake LAKE --out DIR` first"
_AGENT_HINT = "write the JSON of `nextbest.agents.sessions.compare_policies` first"


# ----------------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------------


class ClassBalance(Result):
    done_1: int
    done_0: int
    churn_rate: float


class RateBy(Result):
    """Churn rate and pages by a page feature (``x``)."""

    x: list[float]
    churn_rate: list[float]
    pages: list[int]


class RewardByPower(Result):
    """Session rewards (``rewards``, one list per power) and their means by purchase power."""

    powers: list[int]
    rewards: list[list[float]]
    means: list[float]


class EdaFacts(Result, kw_only=True):
    """The part of ``eda.json`` (``nextbest.report.eda.eda_summary``) the report reads; the rest is ignored."""

    source: str | None = None
    pages: int
    sessions: int
    class_balance: ClassBalance | None = None
    churn_by_hour: RateBy
    churn_by_depth: RateBy
    session_reward_by_power: RewardByPower


@dataclass
class SessionsInputs:
    """The three typed inputs (with their paths) and the EDA figure files."""

    eda_path: Path
    eda: EdaFacts
    models_path: Path
    models: SessionModels
    agent_path: Path
    agent: SessionStudy

    @property
    def names(self) -> list[str]:
        """The strategies, in the simulator's action order."""
        return list(self.agent.strategies.strategies)

    def eda_png(self, name: str) -> Path:
        return self.eda_path.parent / "figures" / f"{name}.png"


def load_inputs(eda_dir: Path, models_dir: Path, agent_json: Path) -> SessionsInputs:
    """Read the report's inputs as their types; a missing or malformed file is a NextbestError naming it (and the
    key). eda.json is written by ``json.dumps`` (it may hold NaN), so it is read as JSON first, then checked."""
    eda_path, models_path, agent_path = Path(eda_dir) / "eda.json", Path(models_dir) / "models.json", Path(agent_json)
    eda = EdaFacts.from_dict(h.read_json(eda_path, _EDA_HINT), str(eda_path))
    models = SessionModels.load(models_path, _MODELS_HINT)
    for part, entries in (("churn", models.churn), ("value", models.value)):
        if not entries:
            raise NextbestError(f"{models_path}: '{part}' lists no model")
    agent = SessionStudy.load(agent_path, _AGENT_HINT)
    for key, name in (("best_fixed", agent.best_fixed), ("best_agent", agent.best_agent)):
        if name not in agent.policies:
            raise NextbestError(f"{agent_path}: '{key}' names {name!r}, which is not in 'policies'")
    inputs = SessionsInputs(eda_path, eda, models_path, models, agent_path, agent)
    for name, _, _ in EDA_FIGURES:
        if not inputs.eda_png(name).is_file():
            raise NextbestError(f"{inputs.eda_png(name)}: not found; {_EDA_HINT}")
    return inputs


# ----------------------------------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------------------------------


def _overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def rivals(agent: SessionStudy) -> list[tuple[str, str]]:
    """Baselines other than the best fixed strategy that match (overlapping intervals) or beat (higher mean) the
    best agent: (name, 'beats' | 'matches')."""
    best = agent.policies[agent.best_agent].revenue
    found = []
    for name, entry in agent.policies.items():
        if entry.kind != "baseline" or name == agent.best_fixed:
            continue
        if entry.revenue.mean >= best.mean:
            found.append((name, "beats"))
        elif _overlaps(entry.revenue.ci, best.ci):
            found.append((name, "matches"))
    return found


def _fmt(value: object, digits: int = 4) -> str:
    number = h.num(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


# ----------------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------------

_AGENT_COLOR, _BASELINE_COLOR, _FIXED_COLOR = "#1F5FA8", "#B8C2CC", "#E07B39"


def revenue_chart(agent: SessionStudy, path: str | Path) -> Path:
    """Horizontal bars of every policy's mean session revenue with its 95% interval; agents in blue, a dashed line
    at the best fixed strategy's mean."""
    policies = sorted(agent.policies.items(), key=lambda item: item[1].revenue.mean)
    fig = fg._new_figure(8.4, 0.45 * len(policies) + 2.2)
    ax = fig.add_subplot()
    for y, (_, entry) in enumerate(policies):
        mean, (low, high) = entry.revenue.mean, entry.revenue.ci
        colour = _AGENT_COLOR if entry.kind == "agent" else _BASELINE_COLOR
        ax.barh(y, mean, color=colour, height=0.62, zorder=2)
        ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="none", ecolor="#222222", capsize=3, zorder=3)
        ax.text(high, y, f"  {fmt_money(mean)}", va="center", fontsize=8.5)
    best_fixed = agent.policies[agent.best_fixed].revenue.mean
    ax.axvline(best_fixed, color=_FIXED_COLOR, linestyle="--", linewidth=1.3, zorder=4)
    ax.set_yticks(range(len(policies)), [name for name, _ in policies], fontsize=9)
    ax.set_xlim(0, max(entry.revenue.ci[1] for _, entry in policies) * 1.15)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"${v:,.0f}"))
    ax.set_xlabel("mean revenue per simulated session (95% interval)")
    ax.set_title("Session revenue by policy on the learned simulator")
    handles = [Patch(color=_AGENT_COLOR, label="agent"), Patch(color=_BASELINE_COLOR, label="baseline"),
               Patch(color=_FIXED_COLOR, label=f"best fixed ({agent.best_fixed})")]  # fmt: skip
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    fg._style(ax)
    fig.tight_layout()
    return fg._save(fig, path)


def share_heatmap(agent: SessionStudy, names: list[str], path: str | Path, strategy: str = HEATMAP_STRATEGY) -> Path:
    """The best agent's share of `strategy` pages by purchase power (rows) and depth bucket (columns); grey where
    it showed fewer than ``HEATMAP_MIN_PAGES`` pages."""
    best = agent.best_agent
    shares = choices_table(agent.policies[best].choices, names, strategy, HEATMAP_MIN_PAGES).to_numpy()
    fig = fg._new_figure(6.4, 5.6)
    ax = fig.add_subplot()
    cmap = _grey_gaps("Blues")
    image = ax.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for (row, col), value in np.ndenumerate(shares):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.0%}", ha="center", va="center", fontsize=7.5,
                    color="white" if value > 0.6 else "#222222")  # fmt: skip
    ax.set_xticks(range(len(DEPTH_LABELS)), DEPTH_LABELS)
    ax.set_yticks(range(shares.shape[0]), [str(p) for p in range(shares.shape[0])])
    ax.set_xlabel("page depth")
    ax.set_ylabel("purchase power")
    ax.set_title(f"{best}: share of '{strategy}' pages (grey: < {HEATMAP_MIN_PAGES} pages)")
    fig.colorbar(image, ax=ax, shrink=0.8, format=FuncFormatter(lambda v, _p: f"{v:.0%}"))
    fig.tight_layout()
    return fg._save(fig, path)


def _grey_gaps(name: str) -> Colormap:
    """The colour map `name` with missing (masked) cells drawn grey."""
    return colormaps[name].with_extremes(bad="#D9D9D9")


def _copy(source: Path) -> Callable[[Path], Path]:
    def copy(target: Path) -> Path:
        if not (target.exists() and target.samefile(source)):
            shutil.copyfile(source, target)
        return target

    return copy


def draw_figures(inputs: SessionsInputs, folder: Path) -> dict[str, h.FigureRef]:
    """The EDA figures (copied) and the agent figures (drawn) into `folder`, by name."""
    jobs = [(name, title, inputs.eda_path, name, _copy(inputs.eda_png(name))) for name, title, _ in EDA_FIGURES]
    jobs.append(("session_revenue", "Session revenue by policy", inputs.agent_path, "policies",
                 lambda p: revenue_chart(inputs.agent, p)))  # fmt: skip
    if HEATMAP_STRATEGY in inputs.names:
        key = f"policies.{inputs.agent.best_agent}.choices"
        jobs.append((f"{HEATMAP_STRATEGY}_share", f"Best agent's share of {HEATMAP_STRATEGY} pages", inputs.agent_path,
                     key, lambda p: share_heatmap(inputs.agent, inputs.names, p)))  # fmt: skip
    return h.draw_all(jobs, folder)


# ----------------------------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------------------------


def _problem() -> str:
    return "\n".join([
        h.paragraph(
            "Retention in the attention economy: a feed session is a micro-subscription. Every page the user sees "
            "is a renewal; churn is the user leaving the feed. What the platform earns is what the user spends "
            "before leaving, so the target is the total revenue of a session (session lifetime value), not the "
            "revenue of the next page."),
        h.paragraph(
            "The question: can a policy that chooses what each page shows (a strategy: engaging feed, mixed, "
            "discount) earn more per session than always showing the best single strategy, by trading spend now "
            "against keeping the user longer?"),
    ])  # fmt: skip


def _data_method(inputs: SessionsInputs, figs: dict[str, h.FigureRef]) -> str:
    eda = inputs.eda
    source = eda.source or "the data lake's processed page table (processed/pages.parquet)"
    churn_rate = eda.class_balance.churn_rate if eda.class_balance else None
    parts = [
        "<h3>Data</h3>",
        h.paragraph(
            f"One row per page of a feed session from {source}: {fmt_count(eda.pages)} pages in "
            f"{fmt_count(eda.sessions)} sessions, {fmt_pct(churn_rate)} of "
            "pages ending their session. Five features describe a page: hour of day, purchase power of the user, "
            "engagement on the page, page depth, and page value (money spent); done marks the last page."),
        h.paragraph(
            "EDA hypotheses: richer users churn less and spend more; night scrolling churns more than evening "
            "shopping; engagement on page t keeps the user for page t+1; churn rises with depth (fatigue); "
            "spending resets the churn clock."),
        *(h.figure(figs[name], caption) for name, _, caption in EDA_FIGURES),
        "<h3>Models</h3>",
        h.paragraph(
            "Churn (P(last page)) and value (expected spend of a page) are fitted three ways on the same split by "
            "session: from scratch — logistic and linear regression trained by hand-written (mini-batch) gradient "
            "descent in numpy; scikit-learn — LogisticRegression (lbfgs) and LinearRegression (closed-form least "
            "squares); and LightGBM gradient boosting."),
        "<h3>The learned simulator</h3>",
        h.paragraph(
            "A simulated session starts from a logged first page (hour, purchase power). On each page the policy "
            "picks a strategy; engagement and the purchase follow from the data and the strategy's effect, the "
            "value model sets the expected spend and the churn model decides whether the user leaves."),
        _strategies_note(inputs.agent.strategies),
        _strategies_table(inputs.agent.strategies),
    ]  # fmt: skip
    return "\n".join(parts)


def estimated_parameters(block: SimulatorDescription) -> list[str]:
    """The parameters (in ``Strategy``'s order) estimated for at least one strategy."""
    return [key for key in STRATEGY_PARAMETERS
            if any(block.source(name, key).status == "estimated" for name in block.strategies)]  # fmt: skip


def _strategies_note(block: SimulatorDescription) -> str:
    """Whether the strategies' effects are assumptions or estimates, and from which log."""
    log, estimated = block.strategy_log, estimated_parameters(block)
    if log is None or not estimated:
        return h.note(
            "The logged data have no strategy variation: no page was ever shown under a chosen strategy, so the "
            "strategies' effects below are assumptions of the simulator, not estimates.", "warning")  # fmt: skip
    assumed = [key.replace("_", " ") for key in STRATEGY_PARAMETERS if key not in estimated]
    still = f" {_and(assumed).capitalize()} {'is' if len(assumed) == 1 else 'are'} still assumed (marked below)."
    return h.note(
        f"The strategies' {_and(estimated)} multipliers are estimated from an exploration log of "
        f"{fmt_count(log.sessions)} sessions ({fmt_count(log.pages)} pages) in which each page's strategy was chosen "
        f"at random and its propensity logged: relative to '{log.reference}' (1 by definition), weighted by 1 / "
        f"propensity, with {log.level:.0%} intervals from {fmt_count(log.n_boot)} bootstrap replicates of whole "
        f"sessions.{still if assumed else ''}")  # fmt: skip


def _and(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def _effect(block: SimulatorDescription, name: str, key: str, text: str) -> str:
    """A table cell: the value, its interval when estimated, and where it comes from."""
    source = block.source(name, key)
    if source.status == "estimated" and source.ci:
        return f"{text} [{_fmt(source.ci[0], 2)}, {_fmt(source.ci[1], 2)}] estimated"
    return f"{text} {source.status}"


def _strategies_table(block: SimulatorDescription) -> str:
    rows = []
    for name, s in block.strategies.items():
        cells = [fmt_factor(s.engagement), fmt_factor(s.buy), fmt_factor(s.price), _fmt(s.power_sensitivity, 2),
                 _fmt(s.fatigue, 2)]  # fmt: skip
        rows.append([name, *(_effect(block, name, key, text) for key, text in zip(STRATEGY_PARAMETERS, cells))])
    settings = (
        f"Exposure decay {_fmt(block.exposure_decay, 2)} per page; sessions end at the latest after "
        f"{block.max_depth} pages."
    )
    headers = ["strategy", "engagement ×", "buy ×", "price ×", "power sensitivity", "fatigue"]
    return h.table(headers, rows, "strategies") + h.paragraph(settings)


def _models(inputs: SessionsInputs) -> str:
    churn, value = inputs.models.churn, inputs.models.value
    rows = []
    for name in dict.fromkeys([*churn, *value]):
        c, v = churn.get(name), value.get(name)
        churn_cells = [_fmt(c.f1), _fmt(c.pr_auc), _fmt(c.fit_seconds, 2)] if c else ["n/a"] * 3
        value_cells = [_fmt(v.rmse), _fmt(v.mae), _fmt(v.fit_seconds, 2)] if v else ["n/a"] * 3
        rows.append([name, *churn_cells, *value_cells])
    split = inputs.models.split
    test, train = (fmt_count(split.test_pages), fmt_count(split.train_pages)) if split else ("n/a", "n/a")
    churn_rate = fmt_pct(split.churn_rate_test) if split else "n/a"
    intro = (
        f"Held-out test split of {test} pages (train {train}, churn rate {churn_rate}). "
        "Churn: F1 at the threshold that maximizes F1 on the training split, and PR-AUC (churn is imbalanced); "
        "value: RMSE and MAE of the page's spend."
    )
    headers = ["model", "churn F1", "churn PR-AUC", "churn fit s", "value RMSE", "value MAE", "value fit s"]
    return h.paragraph(intro) + h.table(headers, rows, "models")


def _policies(inputs: SessionsInputs, figs: dict[str, h.FigureRef]) -> str:
    agent = inputs.agent
    evaluation = agent.evaluation
    intro = (
        f"Every policy runs on the same {fmt_count(evaluation.sessions)} fresh simulated sessions (seed "
        f"{evaluation.seed}); revenue is the money actually spent per session, length the pages per "
        "session, both with 95% intervals. Baselines: random, each fixed strategy, and greedy one-step (the "
        "strategy with the highest expected spend on this page, ignoring churn); agents: Q-learning and PPO."
    )
    heatmap = figs.get(f"{HEATMAP_STRATEGY}_share")
    caption = (
        f"Share of pages on which {agent.best_agent} shows '{HEATMAP_STRATEGY}', by purchase power and depth "
        f"bucket over the evaluation sessions; grey cells: fewer than {HEATMAP_MIN_PAGES} pages there."
    )
    return "\n".join([
        h.paragraph(intro),
        _policy_table(agent, inputs.names),
        h.figure(figs["session_revenue"], "Bars: mean; whiskers: 95% interval; dashed: the best fixed strategy."),
        h.figure(heatmap, caption) if heatmap else h.note(f"No '{HEATMAP_STRATEGY}' strategy: no heatmap."),
    ])  # fmt: skip


def _policy_table(agent: SessionStudy, names: list[str]) -> str:
    rows = []
    for name, entry in agent.policies.items():
        shares = entry.strategy_share
        seconds = entry.train_seconds
        revenue, length = entry.revenue, entry.length
        rows.append(
            [
                name,
                entry.kind,
                h.with_ci(revenue.mean, revenue.ci, fmt_money),
                h.with_ci(length.mean, length.ci, lambda v: _fmt(v, 2)),
                *(fmt_pct(shares.get(s)) for s in names),
                "—" if seconds is None else _fmt(seconds, 2),
            ]
        )
    headers = [
        "policy",
        "kind",
        "revenue / session [95% CI]",
        "pages / session [95% CI]",
        *(f"share {s}" for s in names),
        "training s",
    ]
    return h.table(headers, rows, "policies")


def _conclusion(inputs: SessionsInputs) -> str:
    agent = inputs.agent
    retained, met = agent.retained_revenue, agent.agent_beats_best_fixed
    low, high = h.ci_bounds(retained.ci)
    verdict = (
        f"The best agent ({agent.best_agent}) against the best fixed strategy ({agent.best_fixed}): retained "
        f"revenue {fmt_signed_money(retained.per_session)} per session [95% CI {fmt_signed_money(low)}, "
        f"{fmt_signed_money(high)}], {'+' if retained.relative > 0 else ''}{fmt_pct(retained.relative)} "
        "relative."
    )
    disjoint = (
        "Their revenue intervals are disjoint: the agent beats the best fixed strategy."
        if met
        else "The agent does not beat the best fixed strategy with disjoint intervals."
    )
    if not met and h.num(low) is not None and low > 0:
        disjoint += (
            " The 95% interval of the difference lies above zero, but the two policies' own revenue intervals "
            "overlap, so the target of disjoint intervals is not met."
        )
    rows = [["Best agent's revenue interval above the best fixed strategy's (disjoint)", h.status(met)]]
    return "\n".join([
        f"<p class='headline'>{h.escape(verdict)}</p>",
        h.table(["target", "status"], rows, "targets"),
        h.paragraph(disjoint),
        *(h.note(text, "warning") for text in _rival_sentences(agent)),
        "<h3>Limitations</h3>",
        _limitations(agent.strategies),
    ])  # fmt: skip


def _rival_sentences(agent: SessionStudy) -> list[str]:
    best = agent.policies[agent.best_agent].revenue
    sentences = []
    for name, how in rivals(agent):
        revenue = agent.policies[name].revenue
        verb = "reaches a higher mean than" if how == "beats" else "matches (overlapping 95% intervals)"
        sentences.append(
            f"The baseline '{name}' {verb} the best agent: {fmt_money(revenue.mean)} per session "
            f"[{fmt_money(revenue.ci[0])}, {fmt_money(revenue.ci[1])}] vs {fmt_money(best.mean)} "
            f"[{fmt_money(best.ci[0])}, {fmt_money(best.ci[1])}]."
        )
    return sentences


def _limitations(block: SimulatorDescription) -> str:
    estimated = estimated_parameters(block)
    effects = (
        f"The strategies' {_and(estimated)} multipliers are estimates from an exploration log: they hold for "
        "traffic like the log's, and their intervals cover sampling noise only; the other effects are still "
        "assumptions (the buy multiplier is estimated given the assumed power sensitivity and fatigue)."
        if block.strategy_log is not None and estimated
        else "The strategies' effects are assumptions: the logged data never vary the strategy, so nothing in them "
        "can confirm or refute the table above; the ranking of policies is only as good as these assumptions."
    )
    return h.bullets([
        effects,
        "The simulator is learned from the same data the models were fitted on; agents exploit its errors as "
        "readily as real effects, so simulated gains are an upper bound until tested in a live experiment.",
        "Intervals are 95% normal approximations (mean ± Φ⁻¹(0.975) standard errors) over independent simulated "
        "sessions; they cover simulation noise only, not the uncertainty of the fitted models or of the assumptions.",
    ])  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# page
# ----------------------------------------------------------------------------------------------------------------

SECTIONS = ("Problem setting", "Data and methodology", "Results A: scratch vs scikit-learn vs LightGBM",
            "Results B: agent vs baselines", "Conclusion")  # fmt: skip


def render_html(inputs: SessionsInputs, figs: dict[str, h.FigureRef]) -> str:
    """The whole report page as one string."""
    renderers: list[tuple[str, Path, Callable[[], str]]] = [
        ("problem", inputs.agent_path, _problem),
        ("data", inputs.eda_path, lambda: _data_method(inputs, figs)),
        ("models", inputs.models_path, lambda: _models(inputs)),
        ("agents", inputs.agent_path, lambda: _policies(inputs, figs)),
        ("conclusion", inputs.agent_path, lambda: _conclusion(inputs)),
    ]
    sections = [(anchor, title, h.guard(src, "", render)) for (anchor, src, render), title in zip(renderers, SECTIONS)]
    subtitle = f"EDA {inputs.eda_path.parent} · models {inputs.models_path.parent} · agents {inputs.agent_path.name}"
    return h.page("Session retention report", subtitle, sections)


class HeadlineModels(Result):
    churn: dict[str, ChurnMetrics]
    value: dict[str, ValueMetrics]


class Headline(Result):
    """The headline numbers of the report (report.json's ``headline``)."""

    best_fixed: str
    best_agent: str
    agent_beats_best_fixed: bool
    retained_revenue: RetainedRevenue
    baselines_matching_or_beating_best_agent: dict[str, str]
    revenue: dict[str, MeanCI]
    models: HeadlineModels
    strategy_effects: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)


class ReportInputs(Result):
    eda: str
    models: str
    agent: str


class FigureEntry(Result, omit_defaults=True):
    """A drawn figure (``nextbest.report.html.FigureRef.as_json``): its PNG and the JSON file and key it shows."""

    name: str
    title: str
    png: str
    source: str
    key: str
    sources: list[str] | None = None

    @classmethod
    def of(cls, ref: h.FigureRef) -> FigureEntry:
        return msgspec.convert(ref.as_json(), cls)


class SessionsReportSummary(Result):
    """report.json: the page, its inputs, every figure with the JSON it was drawn from, and the headline."""

    report: str
    inputs: ReportInputs
    figures: list[FigureEntry]
    headline: Headline


def headline(inputs: SessionsInputs) -> Headline:
    """The headline numbers of the report, for its JSON file (``strategy_effects``: strategy -> parameter ->
    "assumed", "estimated" or "reference")."""
    agent, block = inputs.agent, inputs.agent.strategies
    return Headline(
        best_fixed=agent.best_fixed,
        best_agent=agent.best_agent,
        agent_beats_best_fixed=agent.agent_beats_best_fixed,
        retained_revenue=agent.retained_revenue,
        baselines_matching_or_beating_best_agent=dict(rivals(agent)),
        revenue={name: entry.revenue for name, entry in agent.policies.items()},
        models=HeadlineModels(churn=inputs.models.churn, value=inputs.models.value),
        strategy_effects={name: {key: block.source(name, key).status for key in STRATEGY_PARAMETERS}
                          for name in block.strategies},  # fmt: skip
    )


def write_sessions_report(eda_dir: Path, models_dir: Path, agent_json: Path, out: Path) -> Path:
    """Write the session retention report: `out` (self-contained HTML), `report.json` and `figures/` next to it.

    Raises NextbestError naming the file (and key) when an input is missing or malformed. Returns `out`.
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise NextbestError(f"{out}: the report is HTML; give a .html path (report.json is written next to it)")
    inputs = load_inputs(eda_dir, models_dir, agent_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    figs = draw_figures(inputs, out.parent / "figures")
    out.write_text(render_html(inputs, figs), encoding="utf-8")
    SessionsReportSummary(
        report=str(out),
        inputs=ReportInputs(eda=str(inputs.eda_path), models=str(inputs.models_path), agent=str(inputs.agent_path)),
        figures=[FigureEntry.of(ref) for ref in figs.values()],
        headline=headline(inputs),
    ).write(out.parent / "report.json")
    return out


__all__ = ["SessionsInputs", "draw_figures", "load_inputs", "render_html", "revenue_chart", "share_heatmap",
           "write_sessions_report"]  # fmt: skip

"""A synthetic B2B SaaS CRM export that ``specs/b2b_saas.toml`` describes (``nextbest crm example``).

    frame = generate_b2b_export(n_leads=6000, seed=0)      # the export's raw columns, as strings
    written = write_b2b_example("out/", n_leads=6000)      # out/b2b_saas.csv and out/b2b_saas.toml

Ground truth. Each lead has an industry, a company size and a source, each shifting a latent propensity
``z`` (plus a personal part). Leads are created over 78 weeks from :data:`START` (the created date grows with
the lead id, up to a few days' jitter) and the export is taken :data:`EXPORT_WEEK` weeks after :data:`START`:
events after that day have not happened yet (the last leads' journeys are cut short, as in a real export).
The logged process, in weekly steps after the lead is created:

1. nurture e-mails (up to two, ``Nurture Stage`` "1 email" / "2 emails"); each may make the lead unsubscribe;
2. the lead becomes marketing-qualified (``MQL Date``), more likely after nurture;
3. an SDR calls most MQLs and a few other leads; a qualifying call is logged as ``SQL Date`` (a call that does
   not qualify is not logged, and may lose the lead);
4. most SQLs are invited to a demo: ``Demo Status`` held / no-show (which may lose the lead) / scheduled (the
   demo falls after the export day, or the rep never updated the record: the demo's outcome still counts);
5. the lead may start a trial (``Trial Start``), far more likely after a demo; sales extend some trials
   (``Trial Extended`` yes / no once the trial has run two weeks);
6. sales offer a discount to some trial and demo leads (``Discount Offered``);
7. the lead may pay (``Closed Won``), more likely after a demo, a trial, an extension and a discount;
8. leads that did not pay after a trial or a qualified call are often closed as lost.

``Lifecycle`` is "customer" for paying leads, "lost" / "unsubscribed" for those who left, "open" otherwise;
``Last Activity`` is the day of the lead's last event. Dates are written ``DD/MM/YYYY`` in event order.

Defects, about 1% of the leads each, deterministic given the seed: impossible dates (``31/02/2024``), dates
in the far future (year 2099), blank rows, blanks around categories, case variants of categories and of
``Nurture Stage`` (``2 Emails``), missing industry and missing company size.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.data.funnel_spec import SPECS
from nextbest.errors import NextbestError

SPEC_FILE = SPECS / "b2b_saas.toml"
EXPORT_FILE = "b2b_saas.csv"
DATE_FORMAT = "%d/%m/%Y"
START = np.datetime64("2024-01-01")
LEAD_WEEKS = 78
EXPORT_WEEK = 90

COLUMNS: tuple[str, ...] = ("Lead ID", "Industry", "Company Size", "Lead Source", "Created", "Last Activity",
                            "Nurture Stage", "MQL Date", "SQL Date", "Demo Status", "Trial Start", "Trial Extended",
                            "Discount Offered", "Closed Won", "Lifecycle")  # fmt: skip
DATE_COLUMNS: tuple[str, ...] = ("Created", "Last Activity", "MQL Date", "SQL Date", "Trial Start",
                                 "Discount Offered", "Closed Won")  # fmt: skip
#: Categories: value -> (share of leads, effect on the latent propensity).
INDUSTRIES = {"Software": (0.24, 0.4), "Financial Services": (0.16, 0.3), "Healthcare": (0.15, 0.0),
              "Manufacturing": (0.18, -0.2), "Retail": (0.15, -0.3), "Education": (0.12, -0.4)}  # fmt: skip
COMPANY_SIZES = {"1-10": (0.32, -0.5), "11-50": (0.3, 0.0), "51-200": (0.2, 0.3), "201-1000": (0.12, 0.4),
                 "1000+": (0.06, 0.2)}  # fmt: skip
SOURCES = {"organic": (0.3, 0.2), "paid_search": (0.25, -0.1), "referral": (0.12, 0.6), "event": (0.11, 0.3),
           "outbound": (0.22, -0.4)}  # fmt: skip
DEFECT_SHARE = 0.01


def generate_b2b_export(n_leads: int = 6000, seed: int = 0) -> pd.DataFrame:
    """The export as its CRM writes it: one row per lead (plus a few blank rows), raw columns, all strings."""
    return _generate(n_leads, seed)[0]


def write_b2b_example(out_dir: str | Path, n_leads: int = 6000, seed: int = 0) -> dict[str, object]:
    """Write ``b2b_saas.csv`` and a copy of its spec ``b2b_saas.toml`` into ``out_dir``.

    Returns ``files`` (export, spec paths), ``leads``, ``rows`` (blank rows included), ``reached`` (leads per
    funnel step, before the defects), ``dropped`` and ``defects`` (cells or rows changed, by kind).
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise NextbestError(f"{out}: exists and is not a folder")
    frame, info = _generate(n_leads, seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / EXPORT_FILE, index=False, lineterminator="\n")
        shutil.copyfile(SPEC_FILE, out / SPEC_FILE.name)
    except OSError as error:
        raise NextbestError(f"{out}: cannot write the example ({error})") from None
    return {"files": {"export": str(out / EXPORT_FILE), "spec": str(out / SPEC_FILE.name)}, **info}


# --------------------------------------------------------------------------------------------- journeys


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw_category(rng: np.random.Generator, table: dict[str, tuple[float, float]], n: int):
    names = np.array(list(table))
    shares = np.array([share for share, _ in table.values()])
    index = rng.choice(len(names), size=n, p=shares / shares.sum())
    return names[index], np.array([effect for _, effect in table.values()])[index]


class _Journeys:
    """Every lead's journey, stage by stage and vectorized: week of each event (-1: none), who is still in."""

    def __init__(self, rng: np.random.Generator, created: np.ndarray) -> None:
        self.rng, self.created = rng, created
        self.n = len(created)
        self.week = np.zeros(self.n, dtype=int)  # week of the lead's latest event
        self.last_day = created.copy()
        self.left = np.full(self.n, "", dtype=object)  # "", "lost" or "unsubscribed"
        self.export_day = 7 * EXPORT_WEEK  # days after START

    @property
    def alive(self) -> np.ndarray:
        return self.left == ""

    def step(self, chance: np.ndarray | float, among: np.ndarray, gap: tuple[int, int] = (1, 2)):
        """Who takes the step (among ``among``, with ``chance``) by the export day, its day, and who was due after it.

        The step falls 1..2 weeks (``gap``) after the lead's latest event, on a weekday of that week.
        """
        draw = self.rng.random(self.n)
        weeks = self.week + self.rng.integers(gap[0], gap[1] + 1, self.n)
        day = self.created + 7 * weeks + self.rng.integers(0, 5, self.n)
        wanted = among & self.alive & (draw < chance)
        done = wanted & (day <= self.export_day)
        self.week = np.where(done, weeks, self.week)
        self.last_day = np.where(done, day, self.last_day)
        return done, np.where(done, day, -1), wanted & ~done

    def leave(self, chance: np.ndarray | float, among: np.ndarray, how: str) -> None:
        self.left = np.where(among & self.alive & (self.rng.random(self.n) < chance), how, self.left)


def _generate(n_leads: int, seed: int) -> tuple[pd.DataFrame, dict[str, object]]:
    if n_leads < 1:
        raise NextbestError(f"n_leads must be at least 1, got {n_leads}")
    rng = np.random.default_rng(seed)
    n = n_leads
    industry, industry_effect = _draw_category(rng, INDUSTRIES, n)
    size, size_effect = _draw_category(rng, COMPANY_SIZES, n)
    source, source_effect = _draw_category(rng, SOURCES, n)
    z = industry_effect + size_effect + source_effect + rng.normal(0.0, 0.6, n)
    created = np.sort(rng.integers(0, 7 * LEAD_WEEKS, n)) + rng.integers(-3, 4, n)
    created = np.clip(created, 0, 7 * LEAD_WEEKS)
    j = _Journeys(rng, created)
    everyone = np.ones(n, dtype=bool)

    # 1. nurture e-mails, each may lose the lead to an unsubscribe
    nurture1, _, _ = j.step(np.where(source == "outbound", 0.45, 0.7), everyone, gap=(0, 0))
    j.leave(0.03, nurture1, "unsubscribed")
    nurture2, _, _ = j.step(0.6, nurture1)
    j.leave(0.03, nurture2, "unsubscribed")
    nurture = nurture1.astype(int) + nurture2
    # 2. marketing-qualified: the lead's own step, more likely after nurture
    mql, mql_day, _ = j.step(_sigmoid(-1.7 + z + 0.55 * nurture), everyone, gap=(1, 3))
    # 3. SDR calls most MQLs and a few others; only a qualifying call is logged
    called, call_day, _ = j.step(np.where(mql, 0.75, 0.08), everyone)
    qualifies = rng.random(n) < _sigmoid(np.where(mql, -0.2, -1.0) + z)
    sql, sql_day = called & qualifies, np.where(called & qualifies, call_day, -1)
    j.leave(0.15, called & ~qualifies, "lost")
    # 4. demo invites for SQLs: held, no-show (may lose the lead), or still "scheduled": after the export day, or
    #    a record the rep never updated (the outcome happened all the same)
    invited, _, _ = j.step(0.85, sql)
    demo_done, _, scheduled = j.step(1.0, invited)
    held = demo_done & (rng.random(n) < _sigmoid(0.9 + 0.5 * z))
    no_show = demo_done & ~held
    stale = demo_done & (rng.random(n) < 0.05)
    j.leave(0.25, no_show, "lost")
    # 5. trial: the lead's own step, far more likely after a demo; sales extend some trials after two weeks
    trial, trial_day, _ = j.step(_sigmoid(-3.6 + z + 2.3 * held + 1.0 * sql + 1.0 * mql), everyone)
    extended, _, extension_due = j.step(0.42, trial, gap=(2, 2))
    decided = extended | (trial & ~extension_due & (trial_day + 14 <= j.export_day))
    # 6. discount for some trial and demo leads
    discount, discount_day, _ = j.step(np.where(trial, 0.35, 0.12), trial | held)
    # 7. paid: the lead's own step
    paid_logit = -4.6 + z + 1.2 * held + 1.9 * trial + 0.7 * extended + 0.9 * discount + 0.4 * sql
    paid, paid_day, _ = j.step(_sigmoid(paid_logit), everyone, gap=(1, 3))
    # 8. sales close many of the leads that qualified or tried but did not pay
    j.leave(np.where(trial, 0.4, 0.3), (trial | sql) & ~paid, "lost")
    lifecycle = np.where(paid, "customer", np.where(j.left == "", "open", j.left))

    def dates(days: np.ndarray) -> np.ndarray:
        text = pd.Series(START + days.astype("timedelta64[D]")).dt.strftime(DATE_FORMAT).to_numpy(dtype=object)
        return np.where(days >= 0, text, "")

    frame = pd.DataFrame(
        {
            "Lead ID": (np.arange(n) + 100001).astype(str),
            "Industry": industry.astype(object),
            "Company Size": size.astype(object),
            "Lead Source": source.astype(object),
            "Created": dates(created),
            "Last Activity": dates(j.last_day),
            "Nurture Stage": np.select([nurture == 2, nurture == 1], ["2 emails", "1 email"], "").astype(object),
            "MQL Date": dates(mql_day),
            "SQL Date": dates(sql_day),
            "Demo Status": np.select([scheduled | stale, held, no_show], ["scheduled", "held", "no-show"], "").astype(
                object
            ),
            "Trial Start": dates(trial_day),
            "Trial Extended": np.where(extended, "yes", np.where(decided, "no", "")).astype(object),
            "Discount Offered": dates(discount_day),
            "Closed Won": dates(paid_day),
            "Lifecycle": lifecycle.astype(object),
        },
        columns=list(COLUMNS),
    )
    reached = {"nurture1": nurture1, "nurture2": nurture2, "mql": mql, "sql": sql, "demo": held & ~stale,
               "trial": trial, "trial_extension": extended, "discount": discount, "paid": paid}  # fmt: skip
    info: dict[str, object] = {
        "leads": n,
        "reached": {step: int(mask.sum()) for step, mask in reached.items()},
        "dropped": {how: int((lifecycle == how).sum()) for how in ("lost", "unsubscribed")},
    }
    frame, defects = _with_defects(frame, rng)
    info["rows"] = len(frame)
    info["defects"] = defects
    return frame, info


# ---------------------------------------------------------------------------------------------- defects


def _with_defects(frame: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, int]]:
    """The export with about 1% of the leads given each defect (distinct leads per defect), and their counts."""
    n = len(frame)
    k = max(1, round(DEFECT_SHARE * n))
    rows = iter(np.array_split(rng.permutation(n), np.arange(1, 7) * k))  # six chunks of k, then the rest
    frame = frame.copy()
    counts: dict[str, int] = {}

    def date_cells(chosen: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """One filled date cell per chosen lead (any date column), at random."""
        filled = frame.loc[chosen, list(DATE_COLUMNS)].to_numpy() != ""
        pick = [int(rng.choice(np.flatnonzero(row))) for row in filled]
        return chosen, [DATE_COLUMNS[i] for i in pick]

    chosen, columns = date_cells(next(rows))
    for row, column in zip(chosen, columns, strict=True):
        _, _, year = frame.at[row, column].split("/")
        frame.at[row, column] = f"{30 + int(rng.integers(0, 2))}/02/{year}"
    counts["impossible dates"] = len(chosen)
    chosen, columns = date_cells(next(rows))
    for row, column in zip(chosen, columns, strict=True):
        day, month, _ = frame.at[row, column].split("/")
        frame.at[row, column] = f"{min(int(day), 28):02d}/{month}/2099"
    counts["far-future dates"] = len(chosen)
    chosen = next(rows)
    column = np.where(rng.random(len(chosen)) < 0.5, "Industry", "Lead Source")
    for row, name in zip(chosen, column, strict=True):
        frame.at[row, name] = [" ", "", "  "][row % 3] + frame.at[row, name] + [" ", "  ", ""][row % 3]
    counts["blanks around categories"] = len(chosen)
    chosen = next(rows)
    frame.loc[chosen, "Industry"] = [_case_variant(v, i) for i, v in enumerate(frame.loc[chosen, "Industry"])]
    counts["case variants (Industry)"] = len(chosen)
    chosen = next(rows)
    frame.loc[chosen, "Industry"] = ""
    counts["missing industry"] = len(chosen)
    chosen = next(rows)
    frame.loc[chosen, "Company Size"] = ""
    counts["missing company size"] = len(chosen)
    chosen = [row for row in next(rows) if frame.at[row, "Nurture Stage"]][:k]
    frame.loc[chosen, "Nurture Stage"] = [_case_variant(v, i) for i, v in enumerate(frame.loc[chosen, "Nurture Stage"])]
    counts["case variants (Nurture Stage)"] = len(chosen)
    blanks = np.sort(rng.choice(n + 1, size=k, replace=False))
    blank = pd.DataFrame([[""] * len(COLUMNS)], columns=list(COLUMNS))
    pieces = [part for start, stop in zip([0, *blanks], [*blanks, n], strict=True)
              for part in (frame.iloc[start:stop], blank)][:-1]  # fmt: skip
    counts["blank rows"] = k
    return pd.concat(pieces, ignore_index=True), counts


def _case_variant(value: str, i: int) -> str:
    """'2 emails' -> '2 Emails' or '2 EMAILS', 'Software' -> 'SOFTWARE' or 'software' (by ``i``), never the value."""
    variants = [value.title(), value.upper(), value.lower()]
    return next((v for v in variants[i % 3 :] + variants if v != value), value)

"""Probabilities of funnel steps, learned from logged journeys (Naive-Bayes combination with smoothing).

For every *target* (a funnel step a company action can bring about, a step the lead takes on
their own, or drop-out) the model gives P(target | current step, country, education, key visited
steps). The estimate is a Naive-Bayes combination in log-odds inside the lead's current-step cell:

    logit P = logit p_s + Σ_f [ logit p_{s,f=v} − logit p_s ]

    p_s       = (k_s + m · p_0) / (n_s + m)            the cell's smoothed rate
    p_{s,f=v} = (k_{s,v} + m · p_s) / (n_{s,v} + m)    the rate of feature value v inside the cell
    p_0       = (k + 1) / (n + 2)                      the target's Laplace-smoothed overall rate

where s is the furthest key step the lead reached before the target in funnel order (0 = none),
k/n count leads that reached the target / were exposed to it, and m is the smoothing strength.
Every count is shrunk toward a rate that is itself shrunk, so a sparse cell never gives 0 or 1;
the result is also clipped to [eps, 1 − eps]. Because Naive Bayes double-counts correlated
evidence, each cell's intercept is then shifted so that the cell's mean prediction on the fitting
leads equals p_s (see `FunnelModel._recentre`).

A missing country or education ("Unknown") carries no evidence by default
(`missing_as_evidence=False`): the share of leads without an education goes from 11% (train) to
93% (validation) and 69% (test) as the CRM stopped recording it, so in the train period "unknown"
marks leads recorded through another channel, later it marks almost everybody.

Message steps are modelled only from country and education within the leads that reached the
previous message: message status is missing for most leads whose journey was recorded by another
channel, so using it as evidence for later steps would teach a policy to avoid e-mails for a
data-entry reason (see docs/crm_funnel.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nextbest.sim.journeys import KEY_STEPS, STEP_INDEX, STEPS, Journeys

#: What the model predicts: every funnel step plus drop-out.
TARGETS: tuple[str, ...] = (*STEPS, "dropped")
TARGET_INDEX = {name: i for i, name in enumerate(TARGETS)}
KEY_INDEX = np.array([STEP_INDEX[s] for s in KEY_STEPS])
N_CELLS = len(KEY_STEPS) + 1
#: Category of leads whose country or education is not recorded.
MISSING = "Unknown"


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def _key_steps_before(target: str) -> np.ndarray:
    """Indices (into KEY_STEPS) of key steps that come before `target` in funnel order."""
    if target == "dropped":
        return np.arange(len(KEY_STEPS))
    position = STEP_INDEX[target]
    return np.array([i for i, step in enumerate(KEY_STEPS) if STEP_INDEX[step] < position], dtype=int)


def current_cell(key_reached: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Cell of each lead: 1 + index of the furthest key step reached among `before`, or 0 for none."""
    if before.size == 0:
        return np.zeros(key_reached.shape[0], dtype=np.int64)
    sub = key_reached[:, before]
    last = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    return np.where(sub.any(axis=1), before[last] + 1, 0).astype(np.int64)


@dataclass
class TargetTable:
    """Fitted log-odds tables of one target."""

    base: np.ndarray  # (N_CELLS,) logit p_s
    country: np.ndarray  # (N_CELLS, n_countries + 1) log-odds shifts; the last column is "unseen" (0)
    education: np.ndarray  # (N_CELLS, n_educations + 1)
    key: np.ndarray  # (N_CELLS, n_before, 2) log-odds shifts for each earlier key step (0/1)
    before: np.ndarray  # indices into KEY_STEPS used as evidence
    uses_cells: bool  # False for message targets (single cell)
    n_exposed: int
    n_reached: int


@dataclass
class FunnelModel:
    """P(target | cell, country, education, earlier key steps) for every target, fitted on journeys.

    Use `FunnelModel(smoothing=m).fit(journeys)`; learned state ends in `_`.
    """

    smoothing: float = 10.0
    eps: float = 1e-3
    missing_as_evidence: bool = False
    countries_: list[str] = field(default_factory=list)
    educations_: list[str] = field(default_factory=list)
    tables_: dict[str, TargetTable] = field(default_factory=dict)

    def fit(
        self, journeys: Journeys, countries: list[str] | None = None, educations: list[str] | None = None
    ) -> FunnelModel:
        """Estimate every target's tables from `journeys` (train leads only).

        `countries`/`educations` fix the category vocabularies (a bootstrap refit keeps the
        original codes); by default they are the categories present in `journeys`.
        """
        if len(journeys) == 0:
            raise ValueError("cannot fit the funnel model on zero leads")
        self.countries_ = list(countries) if countries is not None else sorted(set(journeys.country.tolist()))
        self.educations_ = list(educations) if educations is not None else sorted(set(journeys.education.tolist()))
        country = self.encode(journeys.country, self.countries_)
        education = self.encode(journeys.education, self.educations_)
        key = journeys.reached[:, KEY_INDEX]
        self.tables_ = {}
        for target in TARGETS:
            if target == "dropped":
                outcome = journeys.dropped
            else:
                outcome = journeys.reached[:, STEP_INDEX[target]]
            exposed = self._exposed(journeys, target)
            self.tables_[target] = self._fit_target(target, outcome, exposed, key, country, education)
        return self

    @staticmethod
    def encode(values: np.ndarray, vocabulary: list[str]) -> np.ndarray:
        """Integer codes of `values` in `vocabulary`; values not in it get len(vocabulary) (unseen)."""
        lookup = {v: i for i, v in enumerate(vocabulary)}
        unseen = len(vocabulary)
        return np.fromiter((lookup.get(v, unseen) for v in values), dtype=np.int64, count=len(values))

    def encode_leads(self, country: np.ndarray, education: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Codes of pooled country/education names under this model's vocabularies."""
        return self.encode(country, self.countries_), self.encode(education, self.educations_)

    @staticmethod
    def _exposed(journeys: Journeys, target: str) -> np.ndarray:
        if target.startswith("msg") and target != "msg1":
            previous = f"msg{int(target[-1]) - 1}"
            return journeys.reached[:, STEP_INDEX[previous]]
        return np.ones(len(journeys), dtype=bool)

    def _fit_target(
        self,
        target: str,
        outcome: np.ndarray,
        exposed: np.ndarray,
        key: np.ndarray,
        country: np.ndarray,
        education: np.ndarray,
    ) -> TargetTable:
        m = self.smoothing
        y = outcome[exposed].astype(float)
        n_total, k_total = y.size, y.sum()
        p0 = (k_total + 1.0) / (n_total + 2.0)
        uses_cells = not target.startswith("msg")
        before = _key_steps_before(target) if uses_cells else np.array([], dtype=int)
        cells = current_cell(key[exposed], before) if uses_cells else np.zeros(y.size, dtype=np.int64)

        n_cell = np.bincount(cells, minlength=N_CELLS).astype(float)
        k_cell = np.bincount(cells, weights=y, minlength=N_CELLS)
        p_cell = (k_cell + m * p0) / (n_cell + m)
        base = _logit(p_cell)

        def shifts(codes: np.ndarray, n_levels: int) -> np.ndarray:
            flat = cells * n_levels + codes
            n = np.bincount(flat, minlength=N_CELLS * n_levels).reshape(N_CELLS, n_levels)
            k = np.bincount(flat, weights=y, minlength=N_CELLS * n_levels).reshape(N_CELLS, n_levels)
            p = (k + m * p_cell[:, None]) / (n + m)
            return _logit(p) - base[:, None]

        country_shift = np.zeros((N_CELLS, len(self.countries_) + 1))
        country_shift[:, :-1] = shifts(country[exposed], len(self.countries_))
        education_shift = np.zeros((N_CELLS, len(self.educations_) + 1))
        education_shift[:, :-1] = shifts(education[exposed], len(self.educations_))
        if not self.missing_as_evidence:
            self._ignore_missing(country_shift, self.countries_)
            self._ignore_missing(education_shift, self.educations_)
        key_shift = np.zeros((N_CELLS, before.size, 2))
        for j, step in enumerate(before):
            key_shift[:, j, :] = shifts(key[exposed][:, step].astype(np.int64), 2)
        table = TargetTable(
            base=base,
            country=country_shift,
            education=education_shift,
            key=key_shift,
            before=before,
            uses_cells=uses_cells,
            n_exposed=int(n_total),
            n_reached=int(k_total),
        )
        features = (country[exposed], education[exposed], key[exposed])
        table.base = base + self._recentre(table, cells, features, n_cell * p_cell)
        return table

    @staticmethod
    def _ignore_missing(shift: np.ndarray, vocabulary: list[str]) -> None:
        """A missing category ("Unknown") carries no evidence: its log-odds shift is 0."""
        if MISSING in vocabulary:
            shift[:, vocabulary.index(MISSING)] = 0.0

    @staticmethod
    def _recentre(
        table: TargetTable, cells: np.ndarray, features: tuple[np.ndarray, ...], expected: np.ndarray
    ) -> np.ndarray:
        """Per-cell log-odds shift δ_s making Σ_i σ(logit_i + δ_s) equal n_s · p_s on the fitting leads.

        Naive Bayes double-counts correlated evidence (country and education are both missing
        for the same leads, say); the shift keeps each cell's mean prediction at its smoothed
        rate. Solved by Newton's method, all cells at once.
        """
        country, education, key = features
        logit = table.base[cells] + table.country[cells, country] + table.education[cells, education]
        for j, step in enumerate(table.before):
            logit = logit + table.key[cells, j, key[:, step].astype(np.int64)]
        delta = np.zeros(N_CELLS)
        for _ in range(30):
            p = 1.0 / (1.0 + np.exp(-(logit + delta[cells])))
            gap = np.bincount(cells, weights=p, minlength=N_CELLS) - expected
            slope = np.bincount(cells, weights=p * (1 - p), minlength=N_CELLS)
            step = np.where(slope > 1e-12, gap / np.maximum(slope, 1e-12), 0.0)
            delta -= np.clip(step, -2.0, 2.0)
            if np.abs(step).max() < 1e-9:
                break
        return delta

    def probability(self, target: str, country: np.ndarray, education: np.ndarray, key: np.ndarray) -> np.ndarray:
        """P(target) for leads with country/education codes and key-step flags `key` (n, 5)."""
        table = self.tables_[target]
        if table.uses_cells:
            cells = current_cell(key, table.before)
        else:
            cells = np.zeros(country.shape[0], dtype=np.int64)
        logit = table.base[cells] + table.country[cells, country] + table.education[cells, education]
        for j, step in enumerate(table.before):
            logit = logit + table.key[cells, j, key[:, step].astype(np.int64)]
        p = 1.0 / (1.0 + np.exp(-logit))
        return np.clip(p, self.eps, 1.0 - self.eps)

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Counts and base rates per target, for reports and JSON."""
        out: dict[str, dict[str, float | int]] = {}
        for name, table in self.tables_.items():
            out[name] = {
                "exposed": table.n_exposed,
                "reached": table.n_reached,
                "rate": table.n_reached / table.n_exposed if table.n_exposed else 0.0,
            }
        return out

"""Probabilities of funnel steps, learned from logged journeys (Naive-Bayes combination with smoothing).

For every *target* (a funnel step a company action can bring about, a step the lead takes on
their own, or drop-out) the model gives P(target | current step, covariates, key visited steps);
the steps, key steps and covariates come from the funnel spec (SalesCRM's covariates: country and
education). The estimate is a Naive-Bayes combination in log-odds inside the lead's current-step cell:

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

A missing covariate ("Unknown") carries no evidence by default
(`missing_as_evidence=False`): the share of leads without an education goes from 11% (train) to
93% (validation) and 69% (test) as the CRM stopped recording it, so in the train period "unknown"
marks leads recorded through another channel, later it marks almost everybody.

A step with ``requires`` is modelled within the leads that reached the required step; a step with
``history = false`` from the covariates alone. SalesCRM's message steps are both: message status is
missing for most leads whose journey was recorded by another channel, so using it as evidence for
later steps would teach a policy to avoid e-mails for a data-entry reason (see docs/crm_funnel.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nextbest.data.funnel_spec import FunnelSpec
from nextbest.sim.journeys import MISSING, SPEC, STEPS, Journeys

#: What the model predicts for SalesCRM: every funnel step plus drop-out (`targets(spec)` for any funnel).
TARGETS: tuple[str, ...] = (*STEPS, "dropped")
TARGET_INDEX = {name: i for i, name in enumerate(TARGETS)}


def targets(spec: FunnelSpec) -> tuple[str, ...]:
    """Every funnel step of `spec` plus drop-out, in the order of the latent thresholds."""
    return (*spec.step_names, "dropped")


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def _key_steps_before(spec: FunnelSpec, target: str) -> np.ndarray:
    """Indices (into spec.key_steps) of key steps that come before `target` in funnel order."""
    if target == "dropped":
        return np.arange(len(spec.key_steps))
    position = spec.step_names.index(target)
    return np.array([i for i, step in enumerate(spec.key_steps) if spec.step_names.index(step) < position], dtype=int)


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

    base: np.ndarray  # (cells,) logit p_s
    covariates: list[np.ndarray]  # per covariate (cells, n_levels + 1) log-odds shifts; the last column is "unseen"
    key: np.ndarray  # (cells, n_before, 2) log-odds shifts for each earlier key step (0/1)
    before: np.ndarray  # indices into spec.key_steps used as evidence
    uses_cells: bool  # False for steps modelled from the covariates alone (history = false)
    n_exposed: int
    n_reached: int

    def logit(self, cells: np.ndarray, codes: np.ndarray, key: np.ndarray) -> np.ndarray:
        """logit P of leads in `cells` with covariate codes (n, C) and key-step flags (n, K)."""
        logit = self.base[cells]
        for c, shift in enumerate(self.covariates):
            logit = logit + shift[cells, codes[:, c]]
        for j, step in enumerate(self.before):
            logit = logit + self.key[cells, j, key[:, step].astype(np.int64)]
        return logit


@dataclass
class FunnelModel:
    """P(target | cell, covariates, earlier key steps) for every target of a funnel, fitted on journeys.

    Use `FunnelModel(spec, smoothing=m).fit(journeys)`; learned state ends in `_`.
    """

    spec: FunnelSpec = SPEC
    smoothing: float = 10.0
    eps: float = 1e-3
    missing_as_evidence: bool = False
    vocabularies_: list[list[str]] = field(default_factory=list)
    tables_: dict[str, TargetTable] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return len(self.spec.key_steps) + 1

    @property
    def key_index(self) -> np.ndarray:
        """Columns of the key steps in the reached matrix."""
        return np.array([self.spec.step_names.index(s) for s in self.spec.key_steps], dtype=np.int64)

    def fit(self, journeys: Journeys, vocabularies: list[list[str]] | None = None) -> FunnelModel:
        """Estimate every target's tables from `journeys` (train leads only).

        `vocabularies` fix the category vocabularies per covariate (a bootstrap refit keeps the original
        codes); by default they are the categories present in `journeys`.
        """
        if len(journeys) == 0:
            raise ValueError("cannot fit the funnel model on zero leads")
        if vocabularies is None:
            vocabularies = [sorted(set(column.tolist())) for column in journeys.covariates.T]
        self.vocabularies_ = [list(v) for v in vocabularies]
        codes = self.encode_leads(journeys)
        key = journeys.reached[:, self.key_index]
        self.tables_ = {}
        for target in targets(self.spec):
            if target == "dropped":
                outcome = journeys.dropped
            else:
                outcome = journeys.reached[:, self.spec.step_names.index(target)]
            exposed = self._exposed(journeys, target)
            self.tables_[target] = self._fit_target(target, outcome, exposed, key, codes)
        return self

    @staticmethod
    def encode(values: np.ndarray, vocabulary: list[str]) -> np.ndarray:
        """Integer codes of `values` in `vocabulary`; values not in it get len(vocabulary) (unseen)."""
        lookup = {v: i for i, v in enumerate(vocabulary)}
        unseen = len(vocabulary)
        return np.fromiter((lookup.get(v, unseen) for v in values), dtype=np.int64, count=len(values))

    def encode_leads(self, journeys: Journeys) -> np.ndarray:
        """Codes (n, C) of the leads' pooled covariates under this model's vocabularies."""
        columns = [self.encode(journeys.covariates[:, c], v) for c, v in enumerate(self.vocabularies_)]
        return np.column_stack(columns) if columns else np.zeros((len(journeys), 0), dtype=np.int64)

    def _exposed(self, journeys: Journeys, target: str) -> np.ndarray:
        required = None if target == "dropped" else self.spec.step(target).requires
        if required is not None:
            return journeys.reached[:, self.spec.step_names.index(required)]
        return np.ones(len(journeys), dtype=bool)

    def _fit_target(
        self, target: str, outcome: np.ndarray, exposed: np.ndarray, key: np.ndarray, codes: np.ndarray
    ) -> TargetTable:
        m, n_cells = self.smoothing, self.n_cells
        y = outcome[exposed].astype(float)
        n_total, k_total = y.size, y.sum()
        p0 = (k_total + 1.0) / (n_total + 2.0)
        uses_cells = target == "dropped" or self.spec.step(target).history
        before = _key_steps_before(self.spec, target) if uses_cells else np.array([], dtype=int)
        cells = current_cell(key[exposed], before) if uses_cells else np.zeros(y.size, dtype=np.int64)

        n_cell = np.bincount(cells, minlength=n_cells).astype(float)
        k_cell = np.bincount(cells, weights=y, minlength=n_cells)
        p_cell = (k_cell + m * p0) / (n_cell + m)
        base = _logit(p_cell)

        def shifts(values: np.ndarray, n_levels: int) -> np.ndarray:
            flat = cells * n_levels + values
            n = np.bincount(flat, minlength=n_cells * n_levels).reshape(n_cells, n_levels)
            k = np.bincount(flat, weights=y, minlength=n_cells * n_levels).reshape(n_cells, n_levels)
            p = (k + m * p_cell[:, None]) / (n + m)
            return _logit(p) - base[:, None]

        covariate_shifts = []
        for c, vocabulary in enumerate(self.vocabularies_):
            shift = np.zeros((n_cells, len(vocabulary) + 1))
            shift[:, :-1] = shifts(codes[exposed, c], len(vocabulary))
            if not self.missing_as_evidence:
                self._ignore_missing(shift, vocabulary)
            covariate_shifts.append(shift)
        key_shift = np.zeros((n_cells, before.size, 2))
        for j, step in enumerate(before):
            key_shift[:, j, :] = shifts(key[exposed][:, step].astype(np.int64), 2)
        table = TargetTable(base, covariate_shifts, key_shift, before, uses_cells, int(n_total), int(k_total))
        table.base = base + self._recentre(table, cells, codes[exposed], key[exposed], n_cell * p_cell)
        return table

    @staticmethod
    def _ignore_missing(shift: np.ndarray, vocabulary: list[str]) -> None:
        """A missing category ("Unknown") carries no evidence: its log-odds shift is 0."""
        if MISSING in vocabulary:
            shift[:, vocabulary.index(MISSING)] = 0.0

    def _recentre(
        self, table: TargetTable, cells: np.ndarray, codes: np.ndarray, key: np.ndarray, expected: np.ndarray
    ) -> np.ndarray:
        """Per-cell log-odds shift δ_s making Σ_i σ(logit_i + δ_s) equal n_s · p_s on the fitting leads.

        Naive Bayes double-counts correlated evidence (two covariates both missing for the same leads,
        say); the shift keeps each cell's mean prediction at its smoothed rate. Solved by Newton's
        method, all cells at once.
        """
        logit = table.logit(cells, codes, key)
        delta = np.zeros(self.n_cells)
        for _ in range(30):
            p = 1.0 / (1.0 + np.exp(-(logit + delta[cells])))
            gap = np.bincount(cells, weights=p, minlength=self.n_cells) - expected
            slope = np.bincount(cells, weights=p * (1 - p), minlength=self.n_cells)
            step = np.where(slope > 1e-12, gap / np.maximum(slope, 1e-12), 0.0)
            delta -= np.clip(step, -2.0, 2.0)
            if np.abs(step).max() < 1e-9:
                break
        return delta

    def probability(self, target: str, codes: np.ndarray, key: np.ndarray) -> np.ndarray:
        """P(target) for leads with covariate codes `codes` (n, C) and key-step flags `key` (n, K)."""
        table = self.tables_[target]
        if table.uses_cells:
            cells = current_cell(key, table.before)
        else:
            cells = np.zeros(codes.shape[0], dtype=np.int64)
        p = 1.0 / (1.0 + np.exp(-table.logit(cells, codes, key)))
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

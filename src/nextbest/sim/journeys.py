"""Logged journeys read as funnel steps, for any funnel a spec describes.

A lead row of a CRM export records *which* funnel events happened (and when), not which sales actions were
tried. This module turns each row into the set of funnel steps the lead reached, in the funnel order of its
spec (``nextbest.data.funnel_spec``). SalesCRM's shipped spec:

    1st message → 2nd message → 3rd message → first call → demo → survey → platform sign-up
    → account manager → subscribed            (plus drop-out: stage "not interested"/"do not contact")

See docs/crm_funnel.md for which steps are company actions and which are the lead's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.data.funnel_spec import FunnelSpec, default_funnel_spec

#: SalesCRM's funnel, as its shipped spec describes it (``nextbest/data/specs/salescrm.toml``).
SPEC = default_funnel_spec()
#: SalesCRM's funnel steps, in funnel order.
STEPS: tuple[str, ...] = SPEC.step_names
STEP_INDEX = {name: i for i, name in enumerate(STEPS)}
#: SalesCRM's steps that carry information about later steps ("key visited steps").
KEY_STEPS: tuple[str, ...] = SPEC.key_steps
#: Logged stages that mean a SalesCRM lead left the funnel of their own accord.
DROPOUT_STAGES = SPEC.dropout_values
#: Category of leads whose covariate is not recorded.
MISSING = "Unknown"


@dataclass(frozen=True)
class Journeys:
    """Reached funnel steps of n logged leads.

    Attributes:
        reached: bool array (n, len(spec.steps)); reached[i, j] is True when lead i reached step j.
        dropped: bool array (n,); the lead's recorded stage says they left.
        covariates: str array (n, len(spec.covariates)) of pooled categories, in the spec's covariate order.
        spec: the funnel the journeys follow.
    """

    reached: np.ndarray
    dropped: np.ndarray
    covariates: np.ndarray
    spec: FunnelSpec = field(default=SPEC, repr=False)

    def __len__(self) -> int:
        return int(self.reached.shape[0])

    def column(self, covariate: str) -> np.ndarray:
        """The pooled categories of one covariate."""
        return self.covariates[:, self.spec.covariates.index(covariate)]

    def rate(self, step: str) -> float:
        """Fraction of leads that reached `step` ("dropped" is accepted too)."""
        if not len(self):
            return 0.0
        if step == "dropped":
            return float(self.dropped.mean())
        return float(self.reached[:, self.spec.step_names.index(step)].mean())

    def concat(self, other: Journeys) -> Journeys:
        """These journeys followed by `other`'s."""
        return Journeys(
            np.vstack([self.reached, other.reached]),
            np.concatenate([self.dropped, other.dropped]),
            np.vstack([self.covariates, other.covariates]),
            self.spec,
        )

    def subset(self, index: np.ndarray) -> Journeys:
        """The journeys of the leads at `index` (with repetition, for bootstrap resamples)."""
        return Journeys(self.reached[index], self.dropped[index], self.covariates[index], self.spec)


def journeys_from_frame(frame: pd.DataFrame, spec: FunnelSpec = SPEC) -> Journeys:
    """Read the reached steps of each lead from a prepared frame, as the funnel ``spec`` says each is recorded.

    SalesCRM's spec: message steps come from `status` (the k-th message reached when status is k or more); event
    steps from a non-missing date; drop-out from `stage`. Each covariate's categories come from the train-pooled
    `<covariate>_cat` column when present, else from the raw column.
    """
    reached, dropped = spec.reached(frame)
    columns = [_category(frame, f"{name}_cat", name) for name in spec.covariates]
    covariates = np.column_stack(columns) if columns else np.empty((len(frame), 0), dtype=object)
    return Journeys(reached, dropped, covariates.astype(str), spec)


def _category(frame: pd.DataFrame, pooled: str, raw: str) -> np.ndarray:
    column = frame[pooled] if pooled in frame.columns else frame[raw]
    return column.astype(object).where(column.notna(), MISSING).astype(str).to_numpy()

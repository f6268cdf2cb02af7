"""Logged CRM journeys read as funnel steps.

A lead row of the SalesCRM export records *which* funnel events happened (and when), not which
sales actions were tried. This module turns each row into the set of funnel steps the lead
reached, in the canonical funnel order:

    1st message → 2nd message → 3rd message → first call → demo → survey → platform sign-up
    → account manager → subscribed            (plus drop-out: stage "not interested"/"do not contact")

See docs/crm_funnel.md for which steps are company actions and which are the lead's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.data.funnel_spec import FunnelSpec, default_funnel_spec

#: SalesCRM's funnel, as its shipped spec describes it (``nextbest/data/specs/salescrm.toml``).
SPEC = default_funnel_spec()
#: Canonical funnel steps, in funnel order.
STEPS: tuple[str, ...] = SPEC.step_names
STEP_INDEX = {name: i for i, name in enumerate(STEPS)}
#: The funnel steps that carry information about later steps ("key visited steps").
KEY_STEPS: tuple[str, ...] = SPEC.key_steps
#: Logged stages that mean the lead left the funnel of their own accord.
DROPOUT_STAGES = SPEC.dropout_values


@dataclass(frozen=True)
class Journeys:
    """Reached funnel steps of n logged leads.

    Attributes:
        reached: bool array (n, len(STEPS)); reached[i, j] is True when lead i reached step j.
        dropped: bool array (n,); the lead's recorded stage says they left.
        country: str array (n,) of pooled country categories.
        education: str array (n,) of pooled education categories.
    """

    reached: np.ndarray
    dropped: np.ndarray
    country: np.ndarray
    education: np.ndarray

    def __len__(self) -> int:
        return int(self.reached.shape[0])

    def rate(self, step: str) -> float:
        """Fraction of leads that reached `step` ("dropped" is accepted too)."""
        if step == "dropped":
            return float(self.dropped.mean()) if len(self) else 0.0
        return float(self.reached[:, STEP_INDEX[step]].mean()) if len(self) else 0.0

    def concat(self, other: Journeys) -> Journeys:
        """These journeys followed by `other`'s."""
        return Journeys(
            np.vstack([self.reached, other.reached]),
            np.concatenate([self.dropped, other.dropped]),
            np.concatenate([self.country, other.country]),
            np.concatenate([self.education, other.education]),
        )

    def subset(self, index: np.ndarray) -> Journeys:
        """The journeys of the leads at `index` (with repetition, for bootstrap resamples)."""
        return Journeys(self.reached[index], self.dropped[index], self.country[index], self.education[index])


def journeys_from_frame(frame: pd.DataFrame, spec: FunnelSpec = SPEC) -> Journeys:
    """Read the reached steps of each lead from a prepared CRM frame, as the funnel ``spec`` says each is recorded.

    SalesCRM's spec: message steps come from `status` (the k-th message reached when status is k or more); event
    steps from a non-missing date; drop-out from `stage`. Categories come from the train-pooled
    `country_cat`/`education_cat` columns when present, else from the raw columns.
    """
    reached, dropped = spec.reached(frame)
    country = _category(frame, "country_cat", "country")
    education = _category(frame, "education_cat", "education")
    return Journeys(reached, dropped, country, education)


def _category(frame: pd.DataFrame, pooled: str, raw: str) -> np.ndarray:
    column = frame[pooled] if pooled in frame.columns else frame[raw]
    return column.astype(object).where(column.notna(), "Unknown").astype(str).to_numpy()

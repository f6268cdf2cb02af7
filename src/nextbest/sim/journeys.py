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

#: Canonical funnel steps, in funnel order.
STEPS: tuple[str, ...] = (
    "msg1",
    "msg2",
    "msg3",
    "first_call",
    "demo",
    "survey",
    "signup",
    "manager",
    "subscribed",
)
STEP_INDEX = {name: i for i, name in enumerate(STEPS)}
#: The funnel steps that carry information about later steps ("key visited steps").
KEY_STEPS: tuple[str, ...] = ("first_call", "demo", "survey", "signup", "manager")
#: Logged stages that mean the lead left the funnel of their own accord.
DROPOUT_STAGES = frozenset({"not interested", "do not contact"})
#: Columns of a prepared CRM frame that hold the date of each event step.
EVENT_DATE_COLUMNS = {
    "first_call": "first_call",
    "demo": "demo",
    "survey": "survey",
    "signup": "signup",
    "manager": "manager",
    "subscribed": "subscribed",
}
STATUS_LEVEL = {"1st message": 1, "2nd message": 2, "3rd message": 3}


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


def journeys_from_frame(frame: pd.DataFrame) -> Journeys:
    """Read the reached steps of each lead from a prepared CRM frame.

    Message steps come from `status` (the k-th message reached when status is k or more); event
    steps from a non-missing date; drop-out from `stage`. Categories come from the train-pooled
    `country_cat`/`education_cat` columns when present, else from the raw columns.
    """
    n = len(frame)
    reached = np.zeros((n, len(STEPS)), dtype=bool)
    level = frame["status"].map(STATUS_LEVEL).fillna(0).to_numpy(dtype=int)
    for k in (1, 2, 3):
        reached[:, STEP_INDEX[f"msg{k}"]] = level >= k
    for step, column in EVENT_DATE_COLUMNS.items():
        reached[:, STEP_INDEX[step]] = frame[column].notna().to_numpy()
    dropped = frame["stage"].isin(DROPOUT_STAGES).to_numpy() & ~reached[:, STEP_INDEX["subscribed"]]
    country = _category(frame, "country_cat", "country")
    education = _category(frame, "education_cat", "education")
    return Journeys(reached, dropped, country, education)


def _category(frame: pd.DataFrame, pooled: str, raw: str) -> np.ndarray:
    column = frame[pooled] if pooled in frame.columns else frame[raw]
    return column.astype(object).where(column.notna(), "Unknown").astype(str).to_numpy()

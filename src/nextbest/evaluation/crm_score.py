"""`nextbest crm score`: a team's open leads ranked by their chance to convert, with an interval and the next step.

    table = score_open_leads(prepared, export_frame)      # one row per open lead, best first

* ``score`` = P(conversion within the horizon | covariates, steps reached so far) from the funnel simulator fitted
  on the prepared train leads (``crm_who.horizon_scores``): the WHO score that
  ``crm evaluate`` measures on held-out decision points.
* ``score_low`` / ``score_high``: the percentile interval of that probability over ``n_boot`` refits of the model
  on bootstrap resamples of the train leads, each scored on the same simulated futures as the score (the model's
  uncertainty about the lead's chance, not its outcome).
* ``next_action``: the action that offers the first company step after the lead's current step, in funnel order,
  whose required step it has — the funnel's next step (a playbook), not the learned policy; "none" when no company
  step is left before the conversion (the lead's own move).
* Open leads: neither converted nor dropped. ``current_step`` is the furthest step reached in funnel order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.data.prepared import PreparedCRM
from nextbest.data.split import add_features
from nextbest.errors import DataError
from nextbest.evaluation.crm_who import horizon_scores
from nextbest.sim.funnel_model import FunnelModel
from nextbest.sim.journeys import Journeys, journeys_from_frame
from nextbest.stats import percentile_interval

NONE = "none"


def score_open_leads(prepared: PreparedCRM, export: pd.DataFrame, n_boot: int = 100, seed: int = 0,
                     level: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """The open leads of ``export`` (a frame from ``load_export`` with the prepared folder's spec), ranked."""
    spec = prepared.spec
    train = journeys_from_frame(prepared.train, spec)
    model = FunnelModel(spec).fit(train)
    leads = journeys_from_frame(add_features(export, prepared.stats, spec), spec)
    conversion = spec.step_names.index(spec.conversion_step)
    open_rows = np.flatnonzero(~leads.reached[:, conversion] & ~leads.dropped)
    if open_rows.size == 0:
        raise DataError("the export has no open lead (every lead converted or dropped): nothing to rank")
    opened = leads.subset(open_rows)
    score = _scores(model, opened, seed)
    replicates = np.empty((n_boot, open_rows.size))
    rng = np.random.default_rng(seed)
    for b in range(n_boot):
        refit = FunnelModel(spec).fit(train.subset(rng.integers(0, len(train), len(train))), model.vocabularies_)
        replicates[b] = _scores(refit, opened, seed)
    low, high = np.array([percentile_interval(replicates[:, j], level) for j in range(open_rows.size)]).T
    table = pd.DataFrame({
        spec.export.id: export[spec.export.id].to_numpy()[open_rows] if spec.export.id in export.columns
        else open_rows,
        **{name: opened.column(name) for name in spec.covariates},
        "current_step": _current_steps(opened),
        "score": score, "score_low": low, "score_high": high,
        "next_action": _next_actions(opened),
    })  # fmt: skip
    table = table.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _scores(model: FunnelModel, leads: Journeys, seed: int) -> np.ndarray:
    """The lead score of each lead; every call with the same seed simulates the same futures."""
    return horizon_scores(model, model.encode_leads(leads), leads.reached, seed=seed)


def _furthest(reached: np.ndarray) -> np.ndarray:
    """Index of the furthest step reached in funnel order, −1 for none."""
    return np.where(reached.any(axis=1), reached.shape[1] - 1 - np.argmax(reached[:, ::-1], axis=1), -1)


def _current_steps(leads: Journeys) -> np.ndarray:
    """The furthest step reached in funnel order, or "none"."""
    return np.array([NONE, *leads.spec.step_names], dtype=object)[_furthest(leads.reached) + 1]


def _next_actions(leads: Journeys) -> np.ndarray:
    """The action offering each lead's first company step after its current step whose requirement it meets
    ("none" if none is left)."""
    spec = leads.spec
    offered_by = {step: action.name for action in spec.actions for step in action.offers}
    furthest = _furthest(leads.reached)
    out = np.full(len(leads), NONE, dtype=object)
    pending = np.ones(len(leads), dtype=bool)
    for index, step in enumerate(spec.steps):
        if step.taken_by != "company" or step.name not in offered_by:
            continue
        ready = index > furthest
        if step.requires is not None:
            ready &= leads.reached[:, spec.step_names.index(step.requires)]
        chosen = pending & ready
        out[chosen] = offered_by[step.name]
        pending &= ~chosen
    return out

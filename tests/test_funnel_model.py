"""The Naive-Bayes funnel model: smoothing, recentring, train-only fitting."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.sim import FunnelModel, Journeys
from nextbest.sim.funnel_model import TARGETS, current_cell
from nextbest.sim.journeys import SPEC, STEP_INDEX, STEPS

KEY_INDEX = np.array([STEP_INDEX[s] for s in SPEC.key_steps])


def _tiny_journeys() -> Journeys:
    """Six leads: the only 'Rare' lead subscribed, so a raw rate would be exactly 1."""
    reached = np.zeros((6, len(STEPS)), dtype=bool)
    reached[:, STEP_INDEX["msg1"]] = True
    reached[0, [STEP_INDEX["first_call"], STEP_INDEX["signup"], STEP_INDEX["subscribed"]]] = True
    country = np.array(["Rare", "Common", "Common", "Common", "Common", "Common"])
    education = np.array(["B1"] * 6)
    return Journeys(reached, np.zeros(6, dtype=bool), np.column_stack([country, education]))


def test_sparse_cells_never_give_certainties() -> None:
    journeys = _tiny_journeys()
    model = FunnelModel(smoothing=10.0).fit(journeys)
    codes = model.encode_leads(journeys)
    key = journeys.reached[:, KEY_INDEX]
    for target in TARGETS:
        p = model.probability(target, codes, key)
        assert np.all(p > 0.0) and np.all(p < 1.0), target
    # the lone subscribed 'Rare' lead must not make subscription certain for 'Rare' leads
    p_rare = model.probability("subscribed", codes[:1], key[:1])
    assert p_rare[0] < 0.9


def test_unseen_categories_fall_back_to_the_cell_rate() -> None:
    journeys = _tiny_journeys()
    model = FunnelModel().fit(journeys)
    unseen = Journeys(np.zeros((1, len(STEPS)), dtype=bool), np.zeros(1, dtype=bool), np.array([["Atlantis", "B99"]]))
    codes = model.encode_leads(unseen)
    assert codes[0, 0] == len(model.vocabularies_[0]) and codes[0, 1] == len(model.vocabularies_[1])
    p = model.probability("first_call", codes, np.zeros((1, 5), dtype=bool))
    assert 0 < p[0] < 1


def test_cell_means_match_smoothed_cell_rates_on_train(train_journeys: Journeys) -> None:
    """Recentring: for every target the mean prediction over the fitting leads equals the smoothed rate."""
    model = FunnelModel(smoothing=10.0).fit(train_journeys)
    codes = model.encode_leads(train_journeys)
    key = train_journeys.reached[:, KEY_INDEX]
    for target in ("first_call", "demo", "signup", "manager", "subscribed", "dropped"):
        p = model.probability(target, codes, key)
        actual = train_journeys.dropped if target == "dropped" else train_journeys.reached[:, STEP_INDEX[target]]
        assert p.mean() == pytest.approx(actual.mean(), abs=0.003), target


def test_current_cell_is_the_furthest_earlier_key_step() -> None:
    key = np.array(
        [[False, False, False, False, False], [True, False, True, False, False], [True, True, True, True, True]]
    )
    before = np.array([0, 1, 2])  # first_call, demo, survey
    assert current_cell(key, before).tolist() == [0, 3, 3]


def test_simulator_is_fitted_on_train_only(prepared) -> None:
    """Rewriting every test-period outcome leaves the run's simulator unchanged; adding the test leads
    to the fit would change it (so this test can fail)."""
    from nextbest.sim import journeys_from_frame, simulator_from_frame

    before = simulator_from_frame(prepared.train).model
    test = prepared.test.copy()
    test["subscribed"] = test["lead_date"]  # every test lead "subscribes"
    prepared_changed = type(prepared)(
        prepared.train, prepared.val, test, prepared.stats, prepared.split, prepared.directory
    )
    after = simulator_from_frame(prepared_changed.train).model
    for target in TARGETS:
        np.testing.assert_array_equal(before.tables_[target].base, after.tables_[target].base)
    leaked = FunnelModel().fit(journeys_from_frame(prepared.train).concat(journeys_from_frame(test)))
    assert not np.allclose(leaked.tables_["subscribed"].base, before.tables_["subscribed"].base)

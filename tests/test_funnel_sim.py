"""The funnel simulator: rewards and their bounds, costs, one-shot offers, horizon, reproducibility,
and the in-sample replay of the logged process."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.agents.baselines import LoggedPolicy, RandomPolicy
from nextbest.errors import NextbestError
from nextbest.sim import ACTION_COSTS, ACTIONS, OBS_DIM, FunnelConfig, RewardConfig, simulator_from_frame
from nextbest.sim.funnel import FunnelSimulator
from nextbest.sim.journeys import STEPS
from nextbest.sim.rollout import run_episodes

CALL, MANAGER, WAIT = (ACTIONS.index(name) for name in ("call", "manager", "wait"))


def _leads(sim: FunnelSimulator, journeys, n: int | None = None):
    codes = sim.model.encode_leads(journeys)
    return codes[:n] if n else codes


def test_shaped_bonuses_must_stay_below_a_quarter_of_the_terminal() -> None:
    RewardConfig(shaped=True)  # the bonuses: all < 25
    with pytest.raises(NextbestError, match="25%"):
        RewardConfig(shaped=True, shaped_bonus={"signup": 25.0})
    with pytest.raises(NextbestError, match="unknown step"):
        RewardConfig(shaped_bonus={"lunch": 1.0})


def test_business_reward_is_value_minus_costs(simulator, train_journeys) -> None:
    rng = np.random.default_rng(0)
    state = simulator.reset(_leads(simulator, train_journeys, 3000), rng)
    rollout = run_episodes(simulator, state, RandomPolicy(), rng)
    spent = np.where(rollout.actions >= 0, ACTION_COSTS[np.maximum(rollout.actions, 0)], 0.0).sum(axis=1)
    np.testing.assert_allclose(rollout.state.cost, spent)
    expected = 1000.0 * rollout.state.subscribed - spent
    np.testing.assert_allclose(rollout.value, expected)


def test_shaped_reward_is_used_for_training_only(prepared, train_journeys) -> None:
    shaped = simulator_from_frame(prepared.train, reward=RewardConfig(shaped=True))
    rng = np.random.default_rng(1)
    state = shaped.reset(_leads(shaped, train_journeys, 2000), rng)
    total_shaped, total_business = np.zeros(2000), np.zeros(2000)
    while not state.done.all():
        result = shaped.step(state, rng.integers(0, len(ACTIONS), 2000))
        total_shaped += result.reward
        total_business += result.business_reward
    assert not np.allclose(total_shaped, total_business)
    np.testing.assert_allclose(total_business, 1000.0 * state.subscribed - state.cost)
    assert total_shaped.max() <= 15 + 12 + 8 + 20 + 10 + 100


def test_always_waiting_costs_nothing_and_episodes_end_at_the_horizon(simulator, train_journeys) -> None:
    rng = np.random.default_rng(2)
    state = simulator.reset(_leads(simulator, train_journeys), rng)
    for _ in range(simulator.config.horizon):
        simulator.step(state, np.full(len(state), WAIT))
    assert state.done.all() and state.cost.sum() == 0
    assert not state.dropped.any()  # only contacts can make a lead drop out
    assert state.t.max() == simulator.config.horizon


def test_a_declined_offer_is_not_taken_by_repetition_alone(simulator, train_journeys) -> None:
    rng = np.random.default_rng(3)
    state = simulator.reset(_leads(simulator, train_journeys), rng)
    simulator.step(state, np.full(len(state), CALL))
    declined = ~state.key[:, 0] & ~state.done
    for _ in range(5):
        simulator.step(state, np.full(len(state), CALL))
    assert declined.sum() > 1000
    assert not state.key[declined, 0].any()


def test_manager_costs_twenty_dollars(simulator, train_journeys) -> None:
    rng = np.random.default_rng(4)
    state = simulator.reset(_leads(simulator, train_journeys, 10), rng)
    result = simulator.step(state, np.full(10, MANAGER))
    assert np.all(result.cost == 20.0)


def test_same_seed_same_episodes(simulator, train_journeys) -> None:
    def once(seed: int):
        rng = np.random.default_rng(seed)
        state = simulator.reset(_leads(simulator, train_journeys, 5000), rng)
        return run_episodes(simulator, state, RandomPolicy(), rng)

    a, b, c = once(7), once(7), once(8)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.value, b.value)
    assert not np.array_equal(a.actions, c.actions)


def test_observations_are_16_values_in_unit_interval(simulator, train_journeys) -> None:
    rng = np.random.default_rng(5)
    state = simulator.reset(_leads(simulator, train_journeys, 4000), rng)
    while not state.done.all():
        obs = simulator.observe(state)
        assert obs.shape == (4000, OBS_DIM) and obs.dtype == np.float32
        assert obs.min() >= 0.0 and obs.max() <= 1.0
        simulator.step(state, rng.integers(0, len(ACTIONS), 4000))


def test_logged_replay_reproduces_train_rates(simulator, train_journeys) -> None:
    """In sample, replaying the logged process must give back the train reach rates."""
    codes = _leads(simulator, train_journeys)
    rng = np.random.default_rng(6)
    state = simulator.reset(np.tile(codes, (5, 1)), rng)
    rollout = run_episodes(simulator, state, LoggedPolicy(simulator.config), rng)
    simulated = rollout.state.reached.mean(axis=0)
    for j, step in enumerate(STEPS):
        actual = train_journeys.rate(step)
        assert simulated[j] == pytest.approx(actual, rel=0.35, abs=0.004), step


def test_call_offer_rate_keeps_the_logged_replay_but_raises_acceptance(prepared, train_journeys) -> None:
    low = simulator_from_frame(prepared.train, config=FunnelConfig(call_offer_rate=0.25))
    codes = _leads(low, train_journeys)
    rng = np.random.default_rng(8)
    state = low.reset(np.tile(codes, (3, 1)), rng)
    rollout = run_episodes(low, state, LoggedPolicy(low.config), rng)
    assert rollout.state.key[:, 0].mean() == pytest.approx(train_journeys.rate("first_call"), rel=0.2)
    state = low.reset(codes, np.random.default_rng(9))
    low.step(state, np.full(len(state), CALL))
    assert state.key[:, 0].mean() > 2.5 * train_journeys.rate("first_call")
    with pytest.raises(NextbestError):
        FunnelConfig(call_offer_rate=0.0)


def test_offer_rates_set_every_steps_acceptance_and_replace_the_call_offer_rate(prepared, train_journeys) -> None:
    """offer_rates (one per step) divide each offered step's P by its rate; a length or value error is named."""
    from nextbest.sim.funnel import step_offer_rates, variant

    sim = simulator_from_frame(prepared.train)
    rates = np.ones(len(STEPS))
    rates[STEPS.index("first_call")], rates[STEPS.index("manager")] = 0.1, 0.05
    low = variant(sim, config=FunnelConfig(offer_rates=tuple(rates), call_offer_rate=0.5))
    np.testing.assert_array_equal(step_offer_rates(low.config, low.spec), rates)
    codes = _leads(sim, train_journeys)
    for action, step in ((CALL, "first_call"), (MANAGER, "manager")):
        taken = {}
        for name, model in (("base", sim), ("low", low)):
            state = model.reset(np.tile(codes, (4, 1)), np.random.default_rng(3))
            model.step(state, np.full(len(state), action))
            stayed = ~state.dropped  # a contact may make the lead drop out before the offer
            taken[name] = state.reached[stayed, STEPS.index(step)].mean()
        p = sim.model.probability(step, np.tile(codes, (4, 1))[stayed], np.zeros((stayed.sum(), 5), bool))
        expected = np.minimum(p / rates[STEPS.index(step)], 1 - sim.model.eps).mean()
        standard_error = np.sqrt(expected * (1 - expected) / stayed.sum())
        assert abs(taken["low"] - expected) < 4 * standard_error, step
        assert taken["low"] > 3 * taken["base"], step
    assert step_offer_rates(FunnelConfig(call_offer_rate=0.5), sim.spec)[STEPS.index("first_call")] == 0.5
    with pytest.raises(NextbestError, match="offer_rates needs"):
        step_offer_rates(FunnelConfig(offer_rates=(0.5, 0.5)), sim.spec)
    with pytest.raises(NextbestError, match="offer_rates must be in"):
        FunnelConfig(offer_rates=(0.0,) * len(STEPS))

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


def test_a_reading_keeps_the_logged_replay_and_changes_what_an_offer_does(prepared, train_journeys) -> None:
    """offer_dial d: the logged process offers step j with P(j|s)^d and the lead takes it with P(j|s)^(1-d), so the
    replay reproduces the logged rates under every reading, while offering a call to everyone reaches
    P(first call)^(1-d) of the leads (all of them at d = 1)."""
    from nextbest.agents.baselines import make_baseline
    from nextbest.sim.funnel import variant

    sim = simulator_from_frame(prepared.train)
    codes = _leads(sim, train_journeys)
    replays = {}
    for dial in (0.0, 0.5, 1.0):
        twin = variant(sim, config=FunnelConfig(offer_dial=dial))
        rng = np.random.default_rng(6)
        state = twin.reset(np.tile(codes, (5, 1)), rng)
        logged = make_baseline("logged", twin.config, twin.layout, twin.logged_offer_probability)
        replays[dial] = run_episodes(twin, state, logged, rng).state.reached.mean(axis=0)
        state = twin.reset(np.tile(codes, (2, 1)), np.random.default_rng(9))
        twin.step(state, np.full(len(state), CALL))
        stayed = ~state.dropped
        p_call = sim.model.probability("first_call", np.tile(codes, (2, 1))[stayed], np.zeros((stayed.sum(), 5), bool))
        expected = float(np.mean(p_call ** (1 - dial)))
        taken = state.key[stayed, 0].mean()
        assert abs(taken - expected) < 4 * np.sqrt(expected * (1 - expected) / stayed.sum()) + 1e-9, dial
    for j, step in enumerate(STEPS):
        for dial in (0.5, 1.0):
            assert replays[dial][j] == pytest.approx(replays[0.0][j], rel=0.2, abs=0.003), (step, dial)
    with pytest.raises(NextbestError, match="offer_dial"):
        FunnelConfig(offer_dial=1.5)
    with pytest.raises(NextbestError, match="needs the simulator's offer probability"):
        make_baseline("logged", FunnelConfig(offer_dial=0.5), sim.layout)
    state = sim.reset(codes[:400], np.random.default_rng(0))
    for _ in range(4):
        sim.step(state, np.random.default_rng(1).integers(0, len(ACTIONS), len(state)))
    decoded_codes, decoded_reached = sim.lead_state(sim.observe(state))
    np.testing.assert_array_equal(decoded_codes, codes[:400])
    conversion = STEPS.index("subscribed")
    np.testing.assert_array_equal(np.delete(decoded_reached, conversion, axis=1),
                                  np.delete(state.reached, conversion, axis=1))  # fmt: skip

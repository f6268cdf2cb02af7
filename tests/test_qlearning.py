"""Tabular Q-learning: the update rule, ε schedule, oversampling split, checkpoints and resume, the convergence
metrics and the constant-α / visit-count comparison."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.agents.convergence import compare_step_sizes, greedy_agreement
from nextbest.agents.qlearning import QLearningAgent, QLearningConfig, latest_checkpoint, split_counts
from nextbest.agents.runs import RunSettings
from nextbest.errors import NextbestError
from nextbest.sim.journeys import STEP_INDEX


def _agent(simulator, **overrides) -> QLearningAgent:
    config = QLearningConfig(batch_size=500, metrics_every=1000, checkpoint_every=2000, **overrides)
    return QLearningAgent(simulator, config)


def test_single_update_is_the_textbook_rule(simulator) -> None:
    agent = _agent(simulator, oversample=None)
    agent.table._grow(3)
    agent.table.q[2, 1] = 4.0
    delta = agent._update(np.array([2]), np.array([1]), np.array([10.0]), np.array([1.0]))
    assert agent.table.q[2, 1] == pytest.approx(4.0 + 0.1 * (10.0 - 4.0))
    assert delta == pytest.approx(0.6)


def test_duplicate_pairs_move_like_sequential_updates(simulator) -> None:
    """k updates toward the same target t from q: q + (1 − (1 − α)^k)(t − q)."""
    agent = _agent(simulator, oversample=None)
    agent.table._grow(1)
    agent._update(np.zeros(3, dtype=int), np.zeros(3, dtype=int), np.full(3, 10.0), np.ones(3))
    sequential = 0.0
    for _ in range(3):
        sequential += 0.1 * (10.0 - sequential)
    assert agent.table.q[0, 0] == pytest.approx(sequential)


def test_importance_weights_undo_the_oversampling(simulator, train_journeys) -> None:
    agent = _agent(simulator)
    strata = agent._strata(train_journeys)
    weights = agent._importance_weights(strata, len(train_journeys))
    subscribed = train_journeys.reached[:, STEP_INDEX["subscribed"]]
    assert weights[subscribed].mean() < 0.05 < weights[~subscribed].mean()
    drawn = np.zeros(len(train_journeys))
    for stratum, share in zip(strata, agent.config.oversample):
        drawn += share * np.bincount(stratum, minlength=len(train_journeys)) / stratum.size
    assert float(np.sum(weights * drawn)) == pytest.approx(1.0)


def test_oversampled_batches_hold_30_30_40(simulator, train_journeys) -> None:
    agent = _agent(simulator)
    picks = agent._sample_leads(agent._strata(train_journeys), len(train_journeys))
    subscribed = train_journeys.reached[picks, STEP_INDEX["subscribed"]]
    called = train_journeys.reached[picks, STEP_INDEX["first_call"]]
    assert picks.size == 500
    assert subscribed[:150].all() and called[150:300].all()
    assert subscribed.mean() >= 0.3 and subscribed.mean() < 0.35  # the random 40% adds almost none
    assert split_counts(1000, (0.3, 0.3, 0.4)) == [300, 300, 400]
    assert sum(split_counts(999, (0.3, 0.3, 0.4))) == 999


def test_epsilon_follows_the_decay_schedule(simulator, train_journeys) -> None:
    agent = _agent(simulator)
    agent.train(train_journeys, 2000)
    assert agent.log.episodes == [1000, 2000]
    assert agent.log.epsilon[0] == pytest.approx(max(0.01, 0.995**999))
    assert agent.final_metrics()["epsilon_final"] == pytest.approx(0.01)


def test_the_visit_count_step_keeps_the_weighted_average_of_every_target(simulator) -> None:
    """Q of a pair under "visit-count" is Σ w·target / Σ w over all its updates, so it settles as visits grow."""
    agent = _agent(simulator, oversample=None, step_size="visit-count")
    agent.table._grow(1)
    targets, weights = np.array([10.0, 4.0, 7.0, 1.0]), np.array([1.0, 3.0, 0.5, 2.0])
    agent._update(np.zeros(2, dtype=int), np.zeros(2, dtype=int), targets[:2], weights[:2])
    for target, weight in zip(targets[2:], weights[2:]):
        last = agent._update(np.zeros(1, dtype=int), np.zeros(1, dtype=int), np.array([target]), np.array([weight]))
    assert agent.table.q[0, 0] == pytest.approx((weights * targets).sum() / weights.sum())
    assert agent.table.visits[0, 0] == pytest.approx(weights.sum())
    assert last == pytest.approx(abs(1.0 - (weights[:3] * targets[:3]).sum() / weights[:3].sum()) * 2.0 / 6.5)


@pytest.mark.parametrize("step_size", ["constant", "visit-count"])
def test_resume_from_checkpoint_gives_identical_results(simulator, train_journeys, tmp_path, step_size) -> None:
    straight = _agent(simulator, seed=3, step_size=step_size)
    straight.train(train_journeys, 4000, checkpoint_dir=tmp_path / "a")
    first_half = _agent(simulator, seed=3, step_size=step_size)
    first_half.train(train_journeys, 2000, checkpoint_dir=tmp_path / "b")
    checkpoint = latest_checkpoint(tmp_path / "b")
    assert checkpoint is not None and checkpoint.name == "qtable_ep2000.npz"
    resumed = QLearningAgent.load(checkpoint, simulator)
    resumed.train(train_journeys, 4000, checkpoint_dir=tmp_path / "b")
    assert list(resumed.table.index) == list(straight.table.index)
    np.testing.assert_array_equal(resumed.table.values(), straight.table.values())
    n = len(straight.table)
    np.testing.assert_array_equal(resumed.table.visits[:n], straight.table.visits[:n])
    np.testing.assert_array_equal(resumed.table.updates[:n], straight.table.updates[:n])
    assert resumed.log.mean_business_value == straight.log.mean_business_value
    assert (tmp_path / "a" / "qtable_ep4000.npz").is_file()


def test_resume_inside_the_final_window_keeps_the_convergence_metrics(simulator, train_journeys, tmp_path) -> None:
    """12k episodes: the window opens at 2k; resuming from the 6k checkpoint ends with the same metrics."""
    straight = _agent(simulator, seed=5, step_size="visit-count", established_min_visits=50)
    straight.train(train_journeys, 12_000, checkpoint_dir=tmp_path)
    resumed = QLearningAgent.load(tmp_path / "qtable_ep6000.npz", simulator)
    assert resumed._established is not None and resumed._established.any()
    resumed.train(train_journeys, 12_000)
    metrics = straight.final_metrics()
    assert resumed.final_metrics() == metrics
    assert 0 < metrics["max_abs_delta_q_established_last_10k"] < metrics["max_abs_delta_q_last_10k"]
    assert 0 < metrics["established_visit_pct_last_10k"] < 100


def test_final_metrics_report_the_last_window(simulator, train_journeys) -> None:
    agent = _agent(simulator)
    agent.train(train_journeys, 4000)
    metrics = agent.final_metrics()
    assert metrics["episodes"] == 4000
    assert metrics["q_table_states"] == len(agent.table) > 100
    assert metrics["max_abs_delta_q_last_10k"] > 0
    assert 0 <= metrics["policy_change_pct_last_10k"] <= 100


def test_established_metrics_count_only_pairs_with_n_updates_at_the_window_start(simulator) -> None:
    """Hand-made updates under "visit-count" with N = 3: only (0, 1) is established (5 updates before the window)."""
    agent = _agent(simulator, oversample=None, step_size="visit-count", established_min_visits=3)
    table = agent.table
    table.index = {10: 0, 11: 1, 12: 2}
    table._grow(3)
    table.q[0, 1], table.visits[0, 1], table.updates[0, 1] = 10.0, 4.0, 5
    table.visits[1, 2], table.updates[1, 2] = 3.0, 2  # weight 3 ≥ N but 2 updates < N: not established
    agent._open_window()
    agent._window_open = True

    def update(rows, actions, targets, weights):
        return agent._update(np.array(rows), np.array(actions), np.array(targets, dtype=float),
                             np.array(weights, dtype=float))  # fmt: skip

    # (0, 1): ΔQ = 1 · (20 − 10) / (4 + 1) = 2; (1, 2) is not established: ΔQ = 998 / 4 = 249.5 does not count
    assert update([0, 1, 2], [1, 2, 0], [20, 998, 5], [1, 1, 1]) == pytest.approx(249.5)
    table.index[13] = 3  # a state first seen in the window is never established, however often it is visited
    table._grow(4)
    table.updates[3, 0] = 100
    # (0, 1): Q = 12, W = 5: ΔQ = (2 · (0 − 12) + 0.5 · (0 − 12)) / (5 + 2.5) = −4
    update([0, 0, 3], [1, 1, 0], [0, 0, 50], [2, 0.5, 1])
    update([1], [2], [0], [1])  # (1, 2) has had 3 updates since batch one, but had 2 when the window opened
    metrics = agent.final_metrics()
    assert table.q[0, 1] == pytest.approx(8.0)
    assert metrics["max_abs_delta_q_established_last_10k"] == pytest.approx(4.0)
    assert metrics["max_rel_delta_q_established_last_10k"] == pytest.approx(4.0 / simulator.reward.subscription_value)
    assert metrics["established_visit_pct_last_10k"] == pytest.approx(100.0 * 3 / 7)
    assert metrics["established_min_visits"] == 3
    assert metrics["new_states_last_10k"] == 1
    assert table.updates[0, 1] == 8 and table.updates[1, 2] == 4


def test_compare_step_sizes_trains_both_with_the_run_settings(simulator, train_journeys) -> None:
    settings = RunSettings(seed=2, decimals=1)
    result = compare_step_sizes(simulator, train_journeys, settings, 3000)
    assert list(result["step_sizes"]) == ["constant", "visit-count"]
    assert (result["episodes"], result["seed"], result["decimals"]) == (3000, 2, 1)
    alone = QLearningAgent(simulator, settings.qlearning())
    alone.train(train_journeys, 3000)
    constant = dict(result["step_sizes"]["constant"])
    assert constant.pop("wall_seconds") > 0
    assert constant == alone.final_metrics()
    visit = result["step_sizes"]["visit-count"]
    assert set(visit) == set(result["step_sizes"]["constant"])
    agreement = result["greedy_agreement"]
    assert 0 < agreement["states_in_both"] <= min(constant["q_table_states"], visit["q_table_states"])
    assert 0 < agreement["same_greedy_action_pct"] < 100
    assert 0 < agreement["same_greedy_action_pct_visit_weighted"] <= 100
    itself = greedy_agreement(alone, alone)
    assert itself["same_greedy_action_pct"] == 100.0 and itself["states_in_both"] == len(alone.table)


def test_greedy_policy_waits_in_unknown_states(simulator) -> None:
    agent = _agent(simulator)
    actions = agent(np.full((4, 16), 0.5, dtype=np.float32))
    assert actions.tolist() == [4, 4, 4, 4]


def test_bad_settings_are_refused(simulator, train_journeys, tmp_path) -> None:
    with pytest.raises(NextbestError, match="batch_size"):
        QLearningAgent(simulator, QLearningConfig(batch_size=300))
    with pytest.raises(NextbestError, match="oversample"):
        QLearningAgent(simulator, QLearningConfig(oversample=(0.5, 0.5, 0.5)))
    with pytest.raises(NextbestError, match="multiple"):
        _agent(simulator).train(train_journeys, 1234)
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(NextbestError, match="not a Q-learning checkpoint"):
        QLearningAgent.load(bad, simulator)

"""The compiled dynamics (issue 16): one kernel per simulator, the same week or page bit for bit whether one lead or
session is stepped (the Gymnasium envs) or a batch, and the same as the vectorized numpy step it replaced.

The numpy steps below are the code the kernels replaced, kept here as the oracle; `step_leads.py_func` is the
kernel run as plain Python."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest

from nextbest.agents.qlearning import QLearningAgent, QLearningConfig, StateTable
from nextbest.envs.crm import CRMFunnelEnv
from nextbest.envs.sessions import OBS_DIM, SessionRetentionEnv, default_session_simulator, observe
from nextbest.models.sessions import page_features
from nextbest.sim import funnel as funnel_module
from nextbest.sim import session_sim
from nextbest.sim.funnel import (
    NOT_INTERESTED,
    STAGES,
    FunnelConfig,
    FunnelSimulator,
    RewardConfig,
    StepResult,
    variant,
)
from nextbest.sim.funnel_model import targets
from nextbest.sim.session_sim import SessionSimulator, SessionState

FUNNEL_FIELDS = ("codes", "rates", "u", "reached", "key", "stage", "contacts", "t", "last_contact", "done", "dropped",
                 "cost")  # fmt: skip
SESSION_FIELDS = tuple(item.name for item in fields(SessionState))


# ----------------------------------------------------------------- the numpy oracle of the funnel
def numpy_step(sim: FunnelSimulator, state, actions: np.ndarray) -> tuple[np.ndarray, ...]:
    """The vectorized numpy week `FunnelSimulator.step` was before the kernel: (reward, business, done, cost)."""
    layout, config, reward_config = sim.layout, sim.config, sim.reward
    actions = np.asarray(actions, dtype=np.int64)

    def p(target: str, rows: np.ndarray) -> np.ndarray:
        return sim.model.probability(target, np.take(state.codes, rows, axis=0), np.take(state.key, rows, axis=0))

    def accept(p_reached: np.ndarray, step: int) -> np.ndarray:
        if config.offer_dial > 0 and sim.spec.steps[step].taken_by == "company":
            return p_reached ** (1.0 - config.offer_dial)
        rate = sim._offer_rates[step]
        return p_reached if rate >= 1.0 else np.minimum(p_reached / rate, 1.0 - sim.model.eps)

    def mark(rows: np.ndarray, step: int) -> None:
        state.reached[rows, step] = True
        if layout.key_position[step] is not None:
            state.key[rows, layout.key_position[step]] = True

    def reachable(step: int, rows: np.ndarray) -> np.ndarray:
        required = layout.required_steps[step]
        open_ = ~state.reached[rows, step]
        return open_ if required is None else open_ & state.reached[rows, required]

    active = ~state.done
    cost = np.where(active, sim._costs[actions], 0.0)
    key_before = state.key.copy()
    contact = active & (actions != layout.wait)
    state.contacts += contact
    state.last_contact[:] = np.where(contact, state.t, state.last_contact)
    rows = np.flatnonzero(contact)
    if rows.size:
        p_now = 1.0 - (1.0 - p("dropped", rows)) ** (state.contacts[rows] / config.logged_contacts)
        gone = rows[state.u[rows, -1] < p_now]
        state.dropped[gone] = True
        state.stage[gone] = NOT_INTERESTED
    live = active & ~state.dropped
    for action in np.flatnonzero(np.bincount(actions[live], minlength=sim.n_actions)).tolist():
        rows = np.flatnonzero(live & (actions == action))
        for step in layout.offered_steps[action]:
            if rows.size == 0:
                break
            can = reachable(step, rows)
            offered, rows = rows[can], rows[~can]
            if offered.size == 0:
                continue
            taken = state.u[offered, step] < accept(p(sim.spec.step_names[step], offered), step)
            mark(offered[taken], step)
            if layout.key_position[step] is not None and sim.spec.actions[action].signals_interest:
                stage = state.stage[offered]
                state.stage[offered] = np.where(taken & np.isin(stage, (0, 2)), 1, np.where(~taken & (stage == 0), 2,
                                                                                              stage))  # fmt: skip
    newly = np.zeros(len(state), dtype=bool)
    live_rows = np.flatnonzero(live)
    for step in layout.lead_steps:
        rows = live_rows[reachable(step, live_rows)]
        if rows.size == 0:
            continue
        taken = state.u[rows, step] < p(sim.spec.step_names[step], rows)
        mark(rows[taken], step)
        if step == layout.conversion:
            newly[rows[taken]] = True
            state.stage[newly] = STAGES.index("subscribed")
    state.cost += cost
    state.t += active
    state.done |= state.dropped | state.subscribed | (state.t >= config.horizon)
    business = np.where(newly, reward_config.subscription_value, 0.0) - cost
    reward = business
    if reward_config.shaped:
        gained = (state.key & ~key_before).astype(float) @ reward_config.bonus_vector()
        reward = gained + np.where(newly, reward_config.shaped_subscription, 0.0) - cost
    return reward, business, state.done.copy(), cost


def numpy_observe(sim: FunnelSimulator, state) -> np.ndarray:
    """The vectorized numpy observation `FunnelSimulator.observe` was before the kernel."""
    layout, horizon = sim.layout, float(sim.config.horizon)
    progress = [state.reached[:, group].sum(axis=1) / float(len(group)) for group in layout.progress_groups]
    flags = state.key if layout.flag_steps == layout.key_index.tolist() else state.reached[:, layout.flag_steps]
    obs = np.column_stack([state.codes / sim._levels, state.stage / (len(STAGES) - 1), *progress, state.t / horizon,
                           (state.t - state.last_contact) / horizon,
                           state.last_contact / np.maximum(state.contacts, 1) / horizon,
                           state.contacts / np.maximum(state.t, 1), flags, state.rates,
                           state.reached.sum(axis=1) / float(layout.n_steps)])  # fmt: skip
    return np.clip(obs, 0.0, 1.0).astype(np.float32)


def copy_state(state):
    return replace(state, **{name: getattr(state, name).copy() for name in FUNNEL_FIELDS})


def assert_same_state(a, b, rows=slice(None)) -> None:
    for name in FUNNEL_FIELDS:
        np.testing.assert_array_equal(getattr(a, name)[rows], getattr(b, name), err_msg=name)


def random_states(sim: FunnelSimulator, codes: np.ndarray, n: int, seed: int):
    """n leads in arbitrary mid-episode states (steps reached, stages, contacts, weeks, some done or dropped)."""
    rng = np.random.default_rng(seed)
    state = sim.reset(codes[rng.integers(len(codes), size=n)], rng)
    horizon = sim.config.horizon
    state.reached[:] = rng.random(state.reached.shape) < rng.uniform(0.0, 0.6, (n, 1))
    state.reached[:, sim.layout.conversion] = False
    state.key[:] = state.reached[:, sim.layout.key_index]
    state.t[:] = rng.integers(0, horizon, n)
    state.contacts[:] = rng.integers(0, state.t + 1)
    state.contacts[:10] = horizon + 2  # hand-made: more contacts than weeks (beyond the tabulated drop-out)
    state.last_contact[:] = rng.integers(0, state.t + 1)
    state.stage[:] = rng.integers(0, len(STAGES), n)
    state.dropped[:] = rng.random(n) < 0.05
    state.done[:] = state.dropped | (rng.random(n) < 0.05)
    state.cost[:] = rng.integers(0, 60, n).astype(float)
    return state


READINGS = {
    "default": (FunnelConfig(), RewardConfig()),
    "shaped": (FunnelConfig(), RewardConfig(shaped=True)),
    "dial 0.5": (FunnelConfig(offer_dial=0.5, logged_contacts=5.5), RewardConfig()),
    "dial 1": (FunnelConfig(offer_dial=1.0), RewardConfig(shaped=True)),
    "call offer rate 0.3": (FunnelConfig(call_offer_rate=0.3, horizon=6), RewardConfig()),
}


@pytest.fixture(scope="module", params=list(READINGS))
def reading(request, funnel) -> FunnelSimulator:
    config, reward = READINGS[request.param]
    return variant(funnel[0], config=config, reward=replace(reward, spec=funnel[0].spec))


@pytest.fixture(scope="module")
def untabulated(funnel) -> FunnelSimulator:
    """The default simulator forced to evaluate its model in the kernel (too many combinations to tabulate)."""
    sim = funnel[0]
    limit, funnel_module.TABULATE_LIMIT = funnel_module.TABULATE_LIMIT, 0
    try:
        twin = variant(sim, reward=RewardConfig(shaped=True, spec=sim.spec))
        assert twin.kernel_tables[0].size == 0
    finally:
        funnel_module.TABULATE_LIMIT = limit
    return twin


def run_against_numpy(sim: FunnelSimulator, codes: np.ndarray, seed: int, n: int = 4000) -> None:
    state = random_states(sim, codes, n, seed)
    reference = copy_state(state)
    rng = np.random.default_rng(seed + 1)
    np.testing.assert_array_equal(sim.observe(state), numpy_observe(sim, reference))
    while not state.done.all():
        actions = rng.integers(0, sim.n_actions, n)
        result = sim.step(state, actions)
        expected = numpy_step(sim, reference, actions)
        for got, want in zip((result.reward, result.business_reward, result.done, result.cost), expected):
            np.testing.assert_array_equal(got, want)
        assert_same_state(state, reference)
        np.testing.assert_array_equal(sim.observe(state), numpy_observe(sim, reference))


# ----------------------------------------------------------------- funnel: kernel against numpy
def test_funnel_kernel_equals_the_numpy_step(reading, funnel) -> None:
    """States, rewards, dones (and observations) of the kernel equal the numpy step's, bit for bit, under every
    reading of the data, from arbitrary mid-episode states."""
    for seed in range(2):
        run_against_numpy(reading, funnel[1], seed)


def test_untabulated_kernel_equals_the_numpy_step(untabulated, funnel) -> None:
    """A model evaluated in the kernel (libm's exp and pow) gives the same trajectories too."""
    run_against_numpy(untabulated, funnel[1], seed=5)


def test_tabulated_chances_are_the_numpy_probabilities(reading, funnel) -> None:
    sim, codes = reading, funnel[1]
    probabilities, chances, radix = sim._tabulated
    rng = np.random.default_rng(3)
    for n in (1, 7, 5000):
        lead_codes = codes[rng.integers(len(codes), size=n)]
        key = rng.random((n, len(sim.spec.key_steps))) < 0.4
        combo, mask = lead_codes @ radix, key @ (1 << np.arange(key.shape[1]))
        for j, target in enumerate(targets(sim.spec)):
            p = sim.model.probability(target, lead_codes, key)
            np.testing.assert_array_equal(probabilities[j, combo, mask], p)
            if target != "dropped" and sim.spec.steps[j].taken_by == "company":
                p = sim._accept(p, j)
            np.testing.assert_array_equal(chances[j, combo, mask], p)
        contacts = rng.integers(1, sim.config.horizon + 1, n)
        p_now = 1.0 - (1.0 - probabilities[-1, combo, mask]) ** (contacts / sim.config.logged_contacts)
        np.testing.assert_array_equal(chances[len(sim.spec.steps) + 1 + contacts, combo, mask], p_now)


@pytest.mark.parametrize("tabulated", [True, False])
def test_the_kernel_run_as_python_is_the_compiled_kernel(funnel, untabulated, tabulated) -> None:
    """`step_leads.py_func` (plain Python) and the compiled kernel agree on every field, bit for bit."""
    sim = funnel[0] if tabulated else untabulated
    state = random_states(sim, funnel[1], 300, seed=9)
    twin = copy_state(state)
    rng = np.random.default_rng(10)
    while not state.done.all():
        actions = rng.integers(0, sim.n_actions, len(state))
        compiled, python = np.empty((3, len(state))), np.empty((3, len(state)))
        funnel_module.step_leads(actions, *funnel_module._state_arrays(state), *sim.kernel_tables, compiled)
        funnel_module.step_leads.py_func(actions, *funnel_module._state_arrays(twin), *sim.kernel_tables, python)
        np.testing.assert_array_equal(compiled, python)
        assert_same_state(state, twin)


# ----------------------------------------------------------------- funnel: one lead alone or in a batch
def test_funnel_env_and_batch_give_the_same_weeks(funnel) -> None:
    """Episodes of the Gymnasium env (seeds 0..n−1) and one batch of the same leads with the same thresholds: every
    state field, reward, business reward, cost and end agree bit for bit at every week."""
    sim, codes = funnel
    env = CRMFunnelEnv(simulator=sim, codes=codes)
    n, horizon = 300, sim.config.horizon
    actions = np.random.default_rng(4).integers(0, sim.n_actions, size=(n, horizon))
    starts = []
    for seed in range(n):
        env.reset(seed=seed)
        starts.append(copy_state(env.state))
    batch = sim.reset(np.concatenate([s.codes for s in starts]), np.random.default_rng(0))
    batch.u[:] = np.concatenate([s.u for s in starts])
    weeks = []
    for week in range(horizon):
        before = copy_state(batch)
        result = sim.step(batch, actions[:, week])
        weeks.append((before, copy_state(batch), result))
    for i in range(n):
        env.reset(seed=i)
        assert_same_state(weeks[0][0], env.state, rows=[i])
        for week in range(horizon):
            obs, reward, terminated, truncated, info = env.step(int(actions[i, week]))
            _, after, result = weeks[week]
            assert_same_state(after, env.state, rows=[i])
            np.testing.assert_array_equal(obs, sim.observe(after)[i])
            assert (reward, info["business_reward"], info["cost"]) == (result.reward[i], result.business_reward[i],
                                                                       result.cost[i])  # fmt: skip
            assert (terminated or truncated) == result.done[i]
            if result.done[i]:
                break


def test_env_checks_actions_and_reset_checks_codes(funnel) -> None:
    sim, codes = funnel
    env = CRMFunnelEnv(simulator=sim, codes=codes)
    env.reset(seed=0)
    for bad in (-1, sim.n_actions, 2.0, "call"):
        with pytest.raises(Exception, match="action"):
            env.step(bad)
    env.step(np.int64(1))  # numpy integers are actions too
    with pytest.raises(Exception, match="non-negative"):
        sim.reset(-codes[:2] - 1, np.random.default_rng(0))


# ----------------------------------------------------------------- sessions: the numpy oracle
def numpy_session_step(sim: SessionSimulator, state: SessionState, actions: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The vectorized numpy page `SessionSimulator.step` was before the kernels."""
    actions = np.asarray(actions, dtype=int)
    n = state.hour.size
    engagement_factor, _, price_factor = sim._factors[actions].T
    lift = sim._factors[actions, 1] - 1
    tilt = 1 + sim._sensitivity[actions] * (5 - state.power) / 5
    buy_factor = np.maximum(0.0, 1 + lift * tilt * np.exp(-sim._fatigue[actions] * state.exposure))
    state.depth = state.depth + state.active
    engagement = rng.poisson(sim.engagement_by_power[state.power] * engagement_factor)
    depth = np.maximum(state.depth, 1)
    page = {"hour": (state.hour + (depth - 1) // 20) % 24, "purchase_power": state.power, "engagement": engagement,
            "page_id": depth, "page_value": np.zeros(n)}  # fmt: skip
    price = sim.price_by_power[state.power]
    expected = np.maximum(sim.value_model.predict(page_features(page, with_purchase=False)), 0.0)
    buy_probability = np.minimum(1.0, expected / price * buy_factor)
    bought = rng.random(n) < buy_probability
    spend = np.where(bought & state.active, price * price_factor, 0.0)
    state.last_expected_spend = np.where(state.active, buy_probability * price * price_factor, 0.0)
    page["page_value"] = spend
    churn = sim.churn_model.predict_proba(page_features(page))[:, 1]
    done = ((rng.random(n) < churn) | (state.depth >= sim.max_depth)) & state.active
    state.engagement = state.engagement + engagement * state.active
    state.spend = state.spend + spend
    state.last_engagement = engagement * state.active
    state.last_bought = bought & state.active
    fatiguing = (sim._fatigue[actions] > 0) & state.active
    state.exposure = np.where(state.active, sim.exposure_decay * state.exposure + fatiguing, state.exposure)
    state.active = state.active & ~done
    return spend, done


def numpy_session_observe(state: SessionState, max_depth: int) -> np.ndarray:
    angle = 2 * np.pi * state.hour / 24
    return np.column_stack([np.sin(angle), np.cos(angle), state.power / 10, state.depth / max_depth,
                            np.minimum(state.engagement / 100, 1.0), np.minimum(state.spend / 1000, 1.0),
                            np.minimum(state.exposure / 5, 1.0)]).astype(np.float32)  # fmt: skip


class Opaque:
    """A model the simulator cannot read as linear, so it calls its predict / predict_proba."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(features)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(features)


@pytest.fixture(scope="module")
def sessions() -> SessionSimulator:
    return default_session_simulator(sessions=5_000, seed=1)


@pytest.fixture(scope="module")
def opaque_sessions(sessions) -> SessionSimulator:
    sim = SessionSimulator(Opaque(sessions.churn_model), Opaque(sessions.value_model), sessions.engagement_by_power,
                           sessions.price_by_power, sessions.first_pages)  # fmt: skip
    assert sim._value_form is None and sim._churn_form is None
    return sim


def session_copy(state: SessionState) -> SessionState:
    return SessionState(*(getattr(state, name).copy() for name in SESSION_FIELDS))


@pytest.mark.parametrize("linear", [True, False])
def test_session_kernels_equal_the_numpy_page(sessions, opaque_sessions, linear) -> None:
    """Spend, ends, draws consumed and every state field equal the numpy page's; the expected spend (a float
    computed from the models' outputs) to rounding level only: numpy's batched model calls sum the dot products in
    BLAS's order and its exp is SIMD, the kernels sum in feature order and their exp is libm's."""
    sim = sessions if linear else opaque_sessions
    assert (sim._value_form is not None) == linear
    for n, seed in ((1, 0), (1, 1), (13, 2), (3000, 3)):
        rng, reference_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        state, reference = sim.reset(n, rng), sim.reset(n, reference_rng)
        strategies = np.random.default_rng(seed + 50)
        np.testing.assert_array_equal(observe(state, sim.max_depth), numpy_session_observe(reference, sim.max_depth))
        while reference.active.any():
            actions = strategies.integers(0, len(sim.names), n)
            spend, done = sim.step(state, actions, rng)
            want_spend, want_done = numpy_session_step(sim, reference, actions, reference_rng)
            np.testing.assert_array_equal(spend, want_spend)
            np.testing.assert_array_equal(done, want_done)
            for name in SESSION_FIELDS:
                if name == "last_expected_spend":
                    np.testing.assert_allclose(state.last_expected_spend, reference.last_expected_spend, rtol=1e-12)
                else:
                    np.testing.assert_array_equal(getattr(state, name), getattr(reference, name), err_msg=name)
            np.testing.assert_array_equal(observe(state, sim.max_depth),
                                          numpy_session_observe(reference, sim.max_depth))  # fmt: skip
        assert rng.bit_generator.state == reference_rng.bit_generator.state  # the same draws were consumed
        assert not state.active.any()


def test_linear_models_are_scikit_learns_one_row_predictions(sessions) -> None:
    """The compiled linear models give what scikit-learn gives for one row (the Gymnasium env's call), bit for bit,
    and the kernels' features are `page_features`."""
    rng = np.random.default_rng(0)
    n = 2000
    state = sessions.reset(n, rng)
    state.depth[:] = rng.integers(0, 70, n)
    state.exposure[:] = rng.uniform(0, 4, n)
    actions = rng.integers(0, len(sessions.names), n)
    engagement = rng.poisson(4.0, n)
    features, buy_factor = np.empty((n, 6)), np.empty(n)
    session_sim.session_pages(actions, engagement, state.hour, state.power, state.depth, state.exposure,
                              np.ones(n, dtype=bool), 0, sessions._strategy_table, sessions._hours, features,
                              buy_factor)  # fmt: skip
    features[:, 5] = rng.random(n) < 0.2
    page = np.maximum(state.depth, 1)
    expected = page_features({"hour": (state.hour + (page - 1) // 20) % 24, "purchase_power": state.power,
                              "engagement": engagement, "page_id": page, "page_value": features[:, 5]})  # fmt: skip
    np.testing.assert_array_equal(features, expected)
    np.testing.assert_allclose(buy_factor, sessions.buy_factor(state, actions), rtol=1e-15)
    everyone = np.ones(n, dtype=bool)
    value, churn = sessions._predict(False, features, everyone), sessions._predict(True, features, everyone)
    for i in range(0, n, 10):
        assert value[i] == sessions.value_model.predict(features[i : i + 1, :5])[0]
        assert churn[i] == sessions.churn_model.predict_proba(features[i : i + 1])[0, 1]
    np.testing.assert_allclose(value, sessions.value_model.predict(features[:, :5]), rtol=1e-12, atol=1e-12)
    for action in range(len(sessions.names)):  # the expected spend of the next page, as numpy computed it
        depth = state.depth + 1
        page = {"hour": (state.hour + (depth - 1) // 20) % 24, "purchase_power": state.power, "page_id": depth,
                "engagement": sessions.engagement_by_power[state.power] * sessions._factors[action, 0]}  # fmt: skip
        price, factors = sessions.price_by_power[state.power], sessions._factors[action]
        predicted = np.maximum(sessions.value_model.predict(page_features(page, with_purchase=False)), 0.0)
        chance = np.minimum(1.0, predicted / price * sessions.buy_factor(state, np.full(n, action)))
        np.testing.assert_allclose(sessions.expected_spend(state, action), chance * price * factors[2], rtol=1e-12)


def test_one_session_alone_or_in_a_batch(sessions) -> None:
    """Sessions of the Gymnasium env (each its own seed) and one batch of those sessions fed each session's own
    draws: the batch's rows equal the env's sessions page by page, bit for bit."""
    env = SessionRetentionEnv(sessions)
    n = 40
    plans = np.random.default_rng(1).integers(0, len(sessions.names), size=(n, sessions.max_depth))
    episodes = []
    for seed in range(n):
        env.reset(seed=seed)
        pages = [session_copy(env._state)]
        for action in plans[seed]:
            obs, reward, terminated, truncated, info = env.step(int(action))
            pages.append((session_copy(env._state), reward, terminated or truncated, obs))
            if terminated or truncated:
                break
        episodes.append(pages)
    generators = [np.random.default_rng(seed) for seed in range(n)]
    rows = [sessions.reset(1, generator) for generator in generators]  # each session's start, from its own stream
    batch = SessionState(*(np.concatenate([getattr(row, name) for row in rows]) for name in SESSION_FIELDS))
    for name in SESSION_FIELDS:
        np.testing.assert_array_equal(getattr(batch, name), [getattr(e[0], name)[0] for e in episodes])
    for page in range(sessions.max_depth):
        if not batch.active.any():
            break
        actions = np.ascontiguousarray(plans[:, page])
        mean = np.empty(n)
        session_sim.session_begin(actions, batch.power, batch.depth, batch.active, sessions.engagement_by_power,
                                  sessions._strategy_table, mean)  # fmt: skip
        draws = [(g.poisson(mean[i : i + 1]), g.random(1), g.random(1)) for i, g in enumerate(generators)]
        engagement, u_buy, u_churn = (np.concatenate(column) for column in zip(*draws))
        spend, done = np.empty(n), np.empty(n, dtype=bool)
        was_active = batch.active.copy()
        session_sim.session_page(engagement, u_buy, u_churn, actions, *sessions._state_arrays(batch),
                                 *sessions._tables, *sessions._value_form, *sessions._churn_form, spend,
                                 done)  # fmt: skip
        obs = observe(batch, sessions.max_depth)
        for i in np.flatnonzero(was_active):
            state, reward, ended, env_obs = episodes[i][page + 1]
            for name in SESSION_FIELDS:
                assert getattr(batch, name)[i] == getattr(state, name)[0], (i, page, name)
            assert (spend[i], done[i]) == (reward, ended)
            np.testing.assert_array_equal(obs[i], env_obs)
    assert not batch.active.any()
    assert obs.shape == (n, OBS_DIM)


# ----------------------------------------------------------------- Q-learning on the kernel and on the numpy oracle
class NumpySimulator(FunnelSimulator):
    """The simulator as it was: the numpy step and observation, the model evaluated for the posterior thresholds."""

    _tabulated = (None, np.zeros((0, 0, 0)), np.zeros(0, dtype=np.int64))

    def step(self, state, actions) -> StepResult:
        reward, business, done, cost = numpy_step(self, state, actions)
        return StepResult(reward=reward, business_reward=business, done=done, cost=cost)

    def observe(self, state) -> np.ndarray:
        return numpy_observe(self, state)


def numpy_rows(table: StateTable):
    """`StateTable.rows` as it was: numpy keys, then a dict lookup per distinct key."""

    def rows(obs: np.ndarray, add: bool = True) -> np.ndarray:
        codes = np.rint(obs.astype(np.float64) * table.scale).astype(np.int64).astype(np.uint64)
        keys = (codes * table._multipliers).sum(axis=1, dtype=np.uint64) ^ (codes[:, 0] << np.uint64(32))
        unique, inverse = np.unique(keys, return_inverse=True)
        found = np.empty(unique.size, dtype=np.int64)
        for i, key in enumerate(unique.tolist()):
            if key not in table.index and add:
                table.index[key] = len(table.index)
            found[i] = table.index.get(key, -1)
        table._grow(len(table.index))
        return found[inverse]

    return rows


@pytest.mark.parametrize("step_size", ["constant", "visit-count"])
def test_q_learning_learns_the_same_table(funnel, train_journeys, step_size) -> None:
    """3,000 oversampled episodes on the kernel and on the numpy oracle: the same states in the same order, the same
    Q values and visits, the same training log, bit for bit."""
    sim = funnel[0]
    oracle = NumpySimulator(sim.model, reward=sim.reward, config=sim.config)
    oracle._rate_tables = sim._rate_tables
    config = QLearningConfig(seed=4, batch_size=500, metrics_every=1000, checkpoint_every=3000, step_size=step_size)
    compiled, numpy_agent = QLearningAgent(sim, config), QLearningAgent(oracle, replace(config))
    numpy_agent.table.rows = numpy_rows(numpy_agent.table)
    compiled.train(train_journeys, 3000)
    numpy_agent.train(train_journeys, 3000)
    assert list(compiled.table.index.items()) == list(numpy_agent.table.index.items())
    np.testing.assert_array_equal(compiled.table.values(), numpy_agent.table.values())
    np.testing.assert_array_equal(compiled.table.visits, numpy_agent.table.visits)
    assert compiled.log == numpy_agent.log and compiled.final_metrics() == numpy_agent.final_metrics()


# ----------------------------------------------------------------- Q-learning's state table
def test_state_table_keys_and_rows_are_the_numpy_ones() -> None:
    """The compiled keys and hash lookups number the states as the numpy keys and the dict did: new states in the
    order of their keys, each batch after the last."""
    table = StateTable(16, 6, decimals=1)
    index: dict[int, int] = {}
    rng = np.random.default_rng(0)
    for batch in range(60):
        obs = (rng.integers(-2, 6, (int(rng.integers(1, 2000)), 16)) / 10).astype(np.float32)
        codes = np.rint(obs.astype(np.float64) * table.scale).astype(np.int64).astype(np.uint64)
        keys = (codes * table._multipliers).sum(axis=1, dtype=np.uint64) ^ (codes[:, 0] << np.uint64(32))
        np.testing.assert_array_equal(table.keys(obs), keys)
        add = batch % 5 != 4
        unique, inverse = np.unique(keys, return_inverse=True)
        found = []
        for key in unique.tolist():
            if key not in index and add:
                index[key] = len(index)
            found.append(index.get(key, -1))
        np.testing.assert_array_equal(table.rows(obs, add=add), np.array(found)[inverse])
        assert list(table.index.items()) == list(index.items())
    table.index = {7: 0}  # a table replaced from outside is mirrored again
    assert table.rows(np.zeros((2, 16)), add=False).tolist() == [-1, -1] and len(table) == 1

"""The CRM funnel simulator: vectorized dynamics of many leads at once (the only copy of them), for any
funnel a spec describes (``nextbest.data.funnel_spec``).

Each lead is stepped one week at a time. Sales picks one of the spec's actions per lead and week
(SalesCRM's: 0 email ($1), 1 call ($5), 2 demo ($10), 3 survey ($2), 4 wait ($0), 5 account manager ($20)).
Within a week, in this order:
1. the action's cost is paid; a contact (an action that offers something) may make the lead drop out:
   dropped when u_drop < 1 − (1 − P_drop)^(contacts / C), C = contacts of the logged process;
2. a company action offers the first of its steps the lead has not reached and may reach (its
   ``requires`` met; SalesCRM's e-mail: the next message); the lead takes it when u_step < P(step | state);
3. the lead's own steps, in funnel order (SalesCRM's: platform sign-up, then subscription): each taken
   when u_step < P(step | state); the conversion step ends the episode with the conversion value.

The u's are one uniform draw per lead and target, fixed for the episode: a lead's latent
willingness. An offer the lead declined succeeds later only if the lead's situation changed (more
key steps reached), never by repetition alone, because the logged data shows one attempt per lead
and no evidence about retries. Under the logged process the probability of reaching each step is
then the learned P, which is what the calibration check measures on held-out leads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from nextbest.data.funnel_spec import FunnelSpec
from nextbest.errors import NextbestError
from nextbest.sim.funnel_model import FunnelModel, targets
from nextbest.sim.journeys import SPEC, Journeys, journeys_from_frame

#: SalesCRM's company actions and their costs, from its spec (email, call, demo, survey, wait, manager).
ACTIONS: tuple[str, ...] = SPEC.action_names
ACTION_COSTS = SPEC.action_costs
#: Stage of the lead as sales records it: the lead's response so far ("subscribed": converted).
STAGES: tuple[str, ...] = ("new", "interested", "declined", "subscribed", "not interested")
NEW, INTERESTED, DECLINED, SUBSCRIBED, NOT_INTERESTED = range(5)
#: SalesCRM's observation size (`FunnelLayout(spec).obs_dim` for any funnel).
OBS_DIM = 16


@dataclass(frozen=True)
class RewardConfig:
    """Business value and the optional shaped training reward.

    Business reward of a week = conversion_value · [converted this week] − cost(action).
    Shaped reward = bonus of each key step first reached this week + shaped_subscription · [converted]
    − cost(action). Every intermediate bonus must stay below 25% of the terminal bonus. The spec gives the
    action costs, the conversion value and the bonuses (its steps' ``bonus``) unless they are set here.
    """

    subscription_value: float | None = None
    action_costs: tuple[float, ...] | None = None
    shaped: bool = False
    shaped_bonus: dict[str, float] | None = None
    shaped_subscription: float = 100.0
    spec: FunnelSpec = field(default=SPEC, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = self.spec
        if self.subscription_value is None:
            object.__setattr__(self, "subscription_value", spec.conversion_value)
        if self.action_costs is None:
            object.__setattr__(self, "action_costs", tuple(spec.action_costs.tolist()))
        if self.shaped_bonus is None:
            bonuses = {step.name: step.bonus for step in spec.steps if step.key and step.bonus > 0}
            object.__setattr__(self, "shaped_bonus", bonuses)
        if len(self.action_costs) != len(spec.actions):
            raise NextbestError(f"action_costs needs {len(spec.actions)} values ({', '.join(spec.action_names)})")
        if self.subscription_value <= 0:
            raise NextbestError("subscription_value must be positive")
        limit = 0.25 * self.shaped_subscription
        for step, bonus in self.shaped_bonus.items():
            if step not in spec.key_steps:
                raise NextbestError(f"shaped bonus for unknown step {step!r}; known: {', '.join(spec.key_steps)}")
            if not 0 <= bonus < limit:
                raise NextbestError(
                    f"shaped bonus {step}={bonus} must be in [0, {limit:g}) (25% of the terminal {limit * 4:g})"
                )

    def bonus_vector(self) -> np.ndarray:
        """Shaped bonus per key step, in spec.key_steps order."""
        return np.array([self.shaped_bonus.get(step, 0.0) for step in self.spec.key_steps])


@dataclass(frozen=True)
class FunnelLayout:
    """What the simulator derives from a spec: step indices, which action offers what, the observation layout.

    Observation columns (every entry in [0, 1]): each covariate's code / number of codes; stage; for each
    action that offers non-key steps, the share of them reached (SalesCRM: messages / 3); weeks since entry,
    weeks since the last contact, mean weeks between contacts (each / horizon); contacts per week; a flag per
    key step and per other lead step but the conversion; each covariate's train conversion rate (scaled by
    the largest); the share of the funnel's steps completed.
    """

    spec: FunnelSpec

    @cached_property
    def n_steps(self) -> int:
        return len(self.spec.steps)

    @cached_property
    def key_index(self) -> np.ndarray:
        return np.array([self.spec.step_names.index(s) for s in self.spec.key_steps], dtype=np.int64)

    @cached_property
    def conversion(self) -> int:
        return self.spec.step_names.index(self.spec.conversion_step)

    @cached_property
    def wait(self) -> int:
        """The first action that offers nothing (no contact)."""
        return next(i for i, action in enumerate(self.spec.actions) if not action.offers)

    def offers(self, action: int) -> list[int]:
        return self.offered_steps[action]

    def requires(self, step: int) -> int | None:
        return self.required_steps[step]

    @cached_property
    def offered_steps(self) -> list[list[int]]:
        """Per action, the steps it offers (indices, in order)."""
        return [[self.spec.step_names.index(name) for name in action.offers] for action in self.spec.actions]

    @cached_property
    def required_steps(self) -> list[int | None]:
        """Per step, the step it requires (index) or None."""
        names = self.spec.step_names
        return [None if step.requires is None else names.index(step.requires) for step in self.spec.steps]

    @cached_property
    def key_position(self) -> list[int | None]:
        """Per step, its column among the key steps, or None."""
        keys = self.spec.key_steps
        return [keys.index(step.name) if step.key else None for step in self.spec.steps]

    @cached_property
    def lead_steps(self) -> list[int]:
        return [i for i, step in enumerate(self.spec.steps) if step.taken_by == "lead"]

    @cached_property
    def progress_groups(self) -> list[list[int]]:
        """Per action with non-key steps: those steps (their share reached is one observation column)."""
        key = set(self.spec.key_steps)
        groups = [[s for s in self.offers(a) if self.spec.steps[s].name not in key]
                  for a in range(len(self.spec.actions))]  # fmt: skip
        return [group for group in groups if group]

    @cached_property
    def flag_steps(self) -> list[int]:
        """Steps with a 0/1 observation column: key steps and the lead's other steps but the conversion."""
        key = set(self.spec.key_steps)
        return [i for i, step in enumerate(self.spec.steps) if i != self.conversion
                and (step.name in key or step.taken_by == "lead")]  # fmt: skip

    @cached_property
    def columns(self) -> list[str]:
        """Observation column names, in order."""
        covariates = list(self.spec.covariates)
        names = self.spec.step_names
        progress = [f"{names[g[0]]}..{names[g[-1]]} reached" for g in self.progress_groups]
        return [*[f"{c} code" for c in covariates], "stage", *progress, "weeks since entry",
                "weeks since last contact", "weeks between contacts", "contacts per week",
                *[f"had {self.spec.step_names[s]}" for s in self.flag_steps],
                *[f"{c} conversion rate" for c in covariates], "steps completed"]  # fmt: skip

    @cached_property
    def obs_dim(self) -> int:
        return len(self.columns)

    def column(self, name: str) -> int:
        return self.columns.index(name)


@dataclass(frozen=True)
class FunnelConfig:
    """Episode settings and the one assumption the data cannot check.

    horizon: weeks per episode. logged_contacts: C in the drop-out formula (contacts the logged
    process made; None: one per company step of the spec, 7 for SalesCRM). call_offer_rate: share of
    leads the logged process offered the spec's ``uncertain_offer`` step (SalesCRM: a call). The data
    records which leads had a first call, never which were offered one, so this is an assumption:
    an offered call is taken with P(first call) / rate (capped). 1.0, the default, assumes every
    lead was offered a call: the most conservative reading, under which calling more cannot raise
    the first-call rate. The stage column records only 103 declined or missed calls against 441
    calls held, so the true rate may be far lower; the evaluation reports the sensitivity.

    offer_dial: the same assumption for every company step at once, as a reading of the data sets it
    (``nextbest.evaluation.crm_readings``): the logged process offered step j to a lead in state s with
    probability P(j | s)^d and the lead took it with P(j | s)^(1 − d), so every reading reproduces the logged
    rates. 0 (the default) is the conservative reading (every lead offered every step, call_offer_rate aside);
    1 the optimistic one (only the leads who took a step were offered it: an offer is always taken). Above 0 it
    replaces call_offer_rate.
    """

    horizon: int = 10
    logged_contacts: float | None = None
    days_per_step: int = 7
    call_offer_rate: float = 1.0
    offer_dial: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.call_offer_rate <= 1:
            raise NextbestError(f"call_offer_rate must be in (0, 1], got {self.call_offer_rate}")
        if not 0 <= self.offer_dial <= 1:
            raise NextbestError(f"offer_dial must be in [0, 1], got {self.offer_dial}")
        if self.horizon < 1 or (self.logged_contacts is not None and self.logged_contacts <= 0):
            raise NextbestError("horizon must be at least 1 and logged_contacts positive")


def step_offer_rates(config: FunnelConfig, spec: FunnelSpec) -> np.ndarray:
    """Per spec step (funnel order), the constant share of leads the logged process offered it: 1.0 everywhere
    but the spec's uncertain step, offered at ``config.call_offer_rate`` (a reading with ``offer_dial`` > 0 makes
    the rates depend on the lead instead: `FunnelSimulator.logged_offer_probability`)."""
    rates = np.ones(len(spec.steps))
    if spec.uncertain_offer is not None:
        rates[spec.step_names.index(spec.uncertain_offer)] = config.call_offer_rate
    return rates


@dataclass
class FunnelState:
    """State of a batch of leads (struct of arrays)."""

    codes: np.ndarray  # (n, C) covariate codes
    rates: np.ndarray  # (n, C) scaled train conversion rate of each covariate's category
    u: np.ndarray  # (n, steps + 1) latent willingness thresholds, in `targets(spec)` order
    reached: np.ndarray  # (n, steps) bool: steps reached so far, in funnel order
    key: np.ndarray  # (n, K) bool: the key steps among them, in spec.key_steps order (kept in step with reached)
    conversion: int = field(metadata={"shared": True})  # column of `reached` that is the conversion
    stage: np.ndarray
    contacts: np.ndarray
    t: np.ndarray  # weeks elapsed
    last_contact: np.ndarray  # week of the last company contact (0: the lead's entry)
    done: np.ndarray
    dropped: np.ndarray
    cost: np.ndarray  # money spent so far (fields marked "shared" hold one value for the batch)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def subscribed(self) -> np.ndarray:
        """(n,) bool: converted (reached the conversion step)."""
        return self.reached[:, self.conversion]


@dataclass
class StepResult:
    """What one week did to each lead."""

    reward: np.ndarray
    business_reward: np.ndarray
    done: np.ndarray
    cost: np.ndarray


class FunnelSimulator:
    """Vectorized funnel dynamics driven by a fitted FunnelModel (see module docstring)."""

    def __init__(
        self,
        model: FunnelModel,
        rates: list[dict[str, float]] | None = None,
        reward: RewardConfig | None = None,
        config: FunnelConfig | None = None,
    ) -> None:
        self.model = model
        self.spec = model.spec
        self.layout = FunnelLayout(model.spec)
        self.reward = reward or RewardConfig(spec=model.spec)
        config = config or FunnelConfig()
        self.config = replace(config, logged_contacts=config.logged_contacts or len(self.spec.company_steps))
        self._costs = np.asarray(self.reward.action_costs, dtype=float)
        self._bonus = self.reward.bonus_vector()
        self._offer_rates = step_offer_rates(self.config, self.spec)
        self._company = np.array([step.taken_by == "company" for step in self.spec.steps])
        self._names = self.spec.step_names
        self._levels = np.array([max(len(v), 1) for v in model.vocabularies_], dtype=float)
        self._progress = [(slice(group[0], group[-1] + 1) if group == list(range(group[0], group[-1] + 1)) else group,
                           float(len(group))) for group in self.layout.progress_groups]  # fmt: skip
        flags = self.layout.flag_steps
        self._flags_are_key = flags == self.layout.key_index.tolist()
        rates = rates or [{} for _ in model.vocabularies_]
        self._rate_tables = [self._rate_table(v, r) for v, r in zip(model.vocabularies_, rates, strict=True)]

    @property
    def n_actions(self) -> int:
        return len(self.spec.actions)

    @staticmethod
    def _rate_table(vocabulary: list[str], rates: dict[str, float]) -> np.ndarray:
        """Train conversion rate per category code, scaled to [0, 1] by the largest rate (last = unseen)."""
        values = np.array([rates.get(v, np.nan) for v in vocabulary] + [np.nan], dtype=float)
        fallback = np.nanmean(values) if np.isfinite(values).any() else 0.0
        values = np.where(np.isfinite(values), values, fallback)
        top = values.max()
        return values / top if top > 0 else values

    # ----------------------------------------------------------------- leads
    def reset(self, codes: np.ndarray, rng: np.random.Generator, logged: np.ndarray | None = None) -> FunnelState:
        """Start episodes for leads with covariate codes (n, C); draw their latent thresholds.

        With `logged` (bool (n, steps+1): reached steps + dropped, from their journeys) the
        thresholds are drawn from their posterior given the logged outcome (used for oversampled
        training batches only): u ~ U(0, p) when the lead reached the target, U(p, 1) otherwise,
        p evaluated at the lead's logged key steps.
        """
        codes = np.array(codes, dtype=np.int64).reshape(len(codes), -1)
        n = codes.shape[0]
        u = rng.random((n, self.layout.n_steps + 1))
        if logged is not None:
            u = self._posterior_thresholds(u, codes, logged)
        zeros = np.zeros(n, dtype=np.int64)
        rates = [table[codes[:, c]] for c, table in enumerate(self._rate_tables)]
        return FunnelState(
            codes=codes,
            rates=np.column_stack(rates) if rates else np.zeros((n, 0)),
            u=u,
            reached=np.zeros((n, self.layout.n_steps), dtype=bool),
            key=np.zeros((n, len(self.spec.key_steps)), dtype=bool),
            conversion=self.layout.conversion,
            stage=zeros.copy(),
            contacts=zeros.copy(),
            t=zeros.copy(),
            last_contact=zeros.copy(),
            done=np.zeros(n, dtype=bool),
            dropped=np.zeros(n, dtype=bool),
            cost=np.zeros(n),
        )

    def _posterior_thresholds(self, u: np.ndarray, codes: np.ndarray, logged: np.ndarray) -> np.ndarray:
        key = logged[:, self.layout.key_index]
        for j, target in enumerate(targets(self.spec)):
            p = self.model.probability(target, codes, key)
            hit = logged[:, j]
            required = None if target == "dropped" else self.layout.requires(j)
            observed = logged[:, required] if required is not None else np.ones_like(hit)
            drawn = np.where(hit, u[:, j] * p, p + u[:, j] * (1.0 - p))
            u[:, j] = np.where(observed, drawn, u[:, j])
        return u

    # ----------------------------------------------------------------- dynamics
    def step(self, state: FunnelState, actions: np.ndarray) -> StepResult:
        """Advance every lead that is not done by one week under `actions` (ints in the spec's action order)."""
        actions = np.asarray(actions, dtype=np.int64)
        n_actions = self.n_actions
        if actions.shape != (len(state),) or actions.min(initial=0) < 0 or actions.max(initial=0) >= n_actions:
            raise NextbestError(
                f"actions must be {len(state)} integers in 0..{n_actions - 1} ({', '.join(self.spec.action_names)})"
            )
        active = ~state.done
        cost = np.where(active, self._costs[actions], 0.0)
        key_before = state.key.copy() if self.reward.shaped else None

        contact = active & (actions != self.layout.wait)
        self._record_contact(state, contact)
        self._drop_out(state, contact)
        live = active & ~state.dropped
        chosen = np.bincount(actions[live], minlength=n_actions)
        for action in np.flatnonzero(chosen).tolist():
            if self.layout.offered_steps[action]:
                self._offer(state, np.flatnonzero(live & (actions == action)), action)
        newly_converted = self._lead_own_steps(state, live)

        state.cost += cost
        state.t += active
        state.done |= state.dropped | state.subscribed | (state.t >= self.config.horizon)
        business = np.where(newly_converted, self.reward.subscription_value, 0.0) - cost
        if self.reward.shaped:
            gained = (state.key & ~key_before).astype(float) @ self._bonus
            reward = gained + np.where(newly_converted, self.reward.shaped_subscription, 0.0) - cost
        else:
            reward = business
        return StepResult(reward=reward, business_reward=business, done=state.done.copy(), cost=cost)

    def _p(self, state: FunnelState, target: str, rows: np.ndarray) -> np.ndarray:
        # np.take gathers rows of a 2-D array several times faster than fancy indexing
        return self.model.probability(target, np.take(state.codes, rows, axis=0), np.take(state.key, rows, axis=0))

    def _mark(self, state: FunnelState, rows: np.ndarray, step: int) -> None:
        """The leads at `rows` reached `step`."""
        state.reached[rows, step] = True
        position = self.layout.key_position[step]
        if position is not None:
            state.key[rows, position] = True

    def _accept(self, p_reached: np.ndarray, step: int) -> np.ndarray:
        """P(lead takes an offered step): P(reached)^(1 − d) for a company step under a reading d > 0, else P(reached)
        divided by the step's assumed logged offer rate (capped)."""
        dial = self.config.offer_dial
        if dial > 0 and self._company[step]:
            return p_reached ** (1.0 - dial)
        rate = self._offer_rates[step]
        if rate >= 1.0:
            return p_reached
        return np.minimum(p_reached / rate, 1.0 - self.model.eps)

    @staticmethod
    def _record_contact(state: FunnelState, contact: np.ndarray) -> None:
        state.contacts += contact
        state.last_contact = np.where(contact, state.t, state.last_contact)

    def _drop_out(self, state: FunnelState, contact: np.ndarray) -> None:
        rows = np.flatnonzero(contact)
        if rows.size == 0:
            return
        p_logged = self._p(state, "dropped", rows)
        exposure = state.contacts[rows] / self.config.logged_contacts
        p_now = 1.0 - (1.0 - p_logged) ** exposure
        gone = state.u[rows, -1] < p_now
        state.dropped[rows[gone]] = True
        state.stage[rows[gone]] = NOT_INTERESTED

    def _reachable(self, state: FunnelState, step: int, rows: np.ndarray) -> np.ndarray:
        """Which of the leads at `rows` have not reached `step` and meet its requirement."""
        open_ = ~state.reached[rows, step]
        required = self.layout.required_steps[step]
        return open_ if required is None else open_ & state.reached[rows, required]

    def _offer(self, state: FunnelState, rows: np.ndarray, action: int) -> None:
        """Offer each lead at `rows` the first of the action's steps it can still reach; taken when u < P."""
        for step in self.layout.offered_steps[action]:
            if rows.size == 0:
                return
            can = self._reachable(state, step, rows)
            offered, rows = rows[can], rows[~can]
            if offered.size == 0:
                continue
            p = self._accept(self._p(state, self._names[step], offered), step)
            taken = state.u[offered, step] < p
            self._mark(state, offered[taken], step)
            if self.layout.key_position[step] is not None and self.spec.actions[action].signals_interest:
                stage = state.stage[offered]
                state.stage[offered] = np.where(
                    taken & np.isin(stage, (NEW, DECLINED)),
                    INTERESTED,
                    np.where(~taken & (stage == NEW), DECLINED, stage),
                )

    def _lead_own_steps(self, state: FunnelState, live: np.ndarray) -> np.ndarray:
        """The lead's own steps in funnel order; returns who converted this week."""
        newly = np.zeros(len(state), dtype=bool)
        live_rows = np.flatnonzero(live)
        for step in self.layout.lead_steps:
            if live_rows.size == 0:
                break
            rows = live_rows[self._reachable(state, step, live_rows)]
            if rows.size == 0:
                continue
            taken = state.u[rows, step] < self._p(state, self._names[step], rows)
            self._mark(state, rows[taken], step)
            if step == self.layout.conversion:
                newly[rows[taken]] = True
                state.stage[newly] = SUBSCRIBED
        return newly

    def logged_offer_probability(self, obs: np.ndarray, step: int) -> np.ndarray:
        """P(the logged process offered `step` to each lead of `obs`). Under a reading d > 0: P(step | state)^d for a
        lead that can still take the step (its requirement met), 0 otherwise — the logged process made each offer
        once; the state is read back from the observation. Else the step's constant rate."""
        if self.config.offer_dial <= 0 or not self._company[step]:
            return np.full(obs.shape[0], self._offer_rates[step])
        codes, reached = self.lead_state(obs)
        key = reached[:, self.layout.key_index]
        required = self.layout.requires(step)
        can = ~reached[:, step] & (True if required is None else reached[:, required])
        p = self.model.probability(self._names[step], codes, key) ** self.config.offer_dial
        return np.where(can, p, 0.0)

    def lead_state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The covariate codes (n, C) and the steps reached (n, steps) an observation encodes (`observe` inverted;
        a progress group's share counts its steps in funnel order, the conversion is never reached mid-episode)."""
        n_covariates = self._levels.size
        codes = np.rint(obs[:, :n_covariates] * self._levels).astype(np.int64)
        reached = np.zeros((obs.shape[0], self.layout.n_steps), dtype=bool)
        for step in self.layout.flag_steps:
            reached[:, step] = obs[:, self.layout.column(f"had {self._names[step]}")] > 0.5
        for group in self.layout.progress_groups:
            share = obs[:, self.layout.column(f"{self._names[group[0]]}..{self._names[group[-1]]} reached")]
            count = np.rint(share * len(group)).astype(np.int64)
            for position, step in enumerate(group):
                reached[:, step] = count > position
        return codes, reached

    # ----------------------------------------------------------------- observation
    def observe(self, state: FunnelState) -> np.ndarray:
        """The lead state as `FunnelLayout.columns` lists it, every entry in [0, 1] (float32); 16 for SalesCRM."""
        horizon = float(self.config.horizon)
        since_last = state.t - state.last_contact
        between = state.last_contact / np.maximum(state.contacts, 1)
        completed = state.reached.sum(axis=1)
        progress = [state.reached[:, columns].sum(axis=1) / size for columns, size in self._progress]
        flags = state.key if self._flags_are_key else state.reached[:, self.layout.flag_steps]
        obs = np.column_stack(
            [
                state.codes / self._levels,
                state.stage / (len(STAGES) - 1),
                *progress,
                state.t / horizon,
                since_last / horizon,
                between / horizon,
                state.contacts / np.maximum(state.t, 1),
                flags,
                state.rates,
                completed / float(self.layout.n_steps),
            ]
        )
        return np.clip(obs, 0.0, 1.0).astype(np.float32)


def fit_simulator(
    journeys: Journeys,
    rates: list[dict[str, float]] | None = None,
    smoothing: float = 10.0,
    reward: RewardConfig | None = None,
    config: FunnelConfig | None = None,
) -> FunnelSimulator:
    """Fit the funnel model on (train) journeys and wrap it in a simulator."""
    model = FunnelModel(journeys.spec, smoothing=smoothing).fit(journeys)
    return FunnelSimulator(model, rates=rates, reward=reward, config=config)


def simulator_from_frame(
    train: pd.DataFrame,
    smoothing: float = 10.0,
    reward: RewardConfig | None = None,
    config: FunnelConfig | None = None,
    spec: FunnelSpec = SPEC,
) -> FunnelSimulator:
    """Fit a simulator on a prepared train frame (journeys plus its train conversion-rate columns)."""
    journeys = journeys_from_frame(train, spec)
    rates = [_category_means(train, f"{c}_cat", f"{c}_conv_rate") for c in spec.covariates]
    return fit_simulator(journeys, rates=rates, smoothing=smoothing, reward=reward, config=config)


def _category_means(frame: pd.DataFrame, category: str, rate: str) -> dict[str, float]:
    if category not in frame.columns or rate not in frame.columns:
        return {}
    return frame.groupby(frame[category].astype(str), observed=True)[rate].mean().to_dict()


def variant(sim: FunnelSimulator, config: FunnelConfig | None = None, reward: RewardConfig | None = None
            ) -> FunnelSimulator:
    """`sim` under another reading of the data (`config`) or another business value (`reward`): the same fitted
    model and rate features, no refit."""
    twin = FunnelSimulator(sim.model, reward=reward or sim.reward, config=config or sim.config)
    twin._rate_tables = sim._rate_tables
    return twin


def under_reading(sim: FunnelSimulator, train: Journeys, dial: float) -> FunnelSimulator:
    """`sim` under the reading d = `dial` (`FunnelConfig.offer_dial`): every company step at the dial, no separate
    call-offer rate, and for d > 0 the drop-out scale C set to the contacts the logged process makes under it
    (the sum of `expected_logged_offers`), so the logged drop-out rate is reproduced too."""
    if dial <= 0:
        return variant(sim, config=replace(sim.config, offer_dial=0.0, call_offer_rate=1.0))
    contacts = sum(expected_logged_offers(sim, train, dial).values())
    return variant(sim, config=replace(sim.config, offer_dial=dial, call_offer_rate=1.0, logged_contacts=contacts))


def expected_logged_offers(sim: FunnelSimulator, train: Journeys, dial: float) -> dict[str, float]:
    """Per company step j, the offers per lead the logged process made under the reading d = `dial`: the mean over
    the train leads of [exposed to j] · P(j | s)^d (their covariates and logged key steps; exposed: the step's
    requirement reached)."""
    codes = sim.model.encode_leads(train)
    key = train.reached[:, sim.model.key_index]
    offers = {}
    for j, step in enumerate(sim.spec.steps):
        if step.taken_by == "company":
            p = sim.model.probability(step.name, codes, key) ** dial
            offers[step.name] = float(np.mean(np.where(exposed_to(sim, train, j), p, 0.0)))
    return offers


def exposed_to(sim: FunnelSimulator, train: Journeys, step: int) -> np.ndarray:
    """Which leads of `train` could take `step` (its requirement reached; every lead when it has none)."""
    required = sim.layout.requires(step)
    return np.ones(len(train), dtype=bool) if required is None else train.reached[:, required]


def refit_like(sim: FunnelSimulator, journeys: Journeys, config: FunnelConfig | None = None) -> FunnelSimulator:
    """A simulator with `sim`'s settings (or `config`), category codes and rate features, refitted on
    `journeys` (e.g. a bootstrap resample of the train leads)."""
    model = FunnelModel(
        sim.spec, smoothing=sim.model.smoothing, eps=sim.model.eps, missing_as_evidence=sim.model.missing_as_evidence
    ).fit(journeys, vocabularies=sim.model.vocabularies_)
    twin = FunnelSimulator(model, reward=sim.reward, config=config or sim.config)
    twin._rate_tables = sim._rate_tables
    return twin

"""The CRM funnel simulator: vectorized dynamics of many leads at once (the only copy of them).

Each lead is stepped one week at a time. Sales picks one action per lead and week:

    0 email ($1)   1 call ($5)   2 demo ($10)   3 survey ($2)   4 wait ($0)   5 account manager ($20)

Within a week, in this order:
1. the action's cost is paid; a contact (any action but wait) may make the lead drop out:
   dropped when u_drop < 1 − (1 − P_drop)^(contacts / C), C = contacts of the logged process;
2. a company action offers its target step (e-mail: the next message; call: first call; demo; survey;
   manager); the lead takes it when u_target < P(target | current state);
3. the lead's own steps: platform sign-up when u_signup < P(signup | state), then subscription when
   u_subscribed < P(subscribed | state) — subscription ends the episode with the subscription value.

The u's are one uniform draw per lead and target, fixed for the episode: a lead's latent
willingness. An offer the lead declined succeeds later only if the lead's situation changed (more
key steps reached), never by repetition alone, because the logged data shows one attempt per lead
and no evidence about retries. Under the logged process the probability of reaching each step is
then the learned P, which is what the calibration check measures on held-out leads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nextbest.errors import NextbestError
from nextbest.sim.funnel_model import TARGET_INDEX, TARGETS, FunnelModel
from nextbest.sim.journeys import KEY_STEPS, SPEC, STEP_INDEX, STEPS, Journeys, journeys_from_frame

#: The company actions and their costs, from the funnel spec (SalesCRM's: email, call, demo, survey, wait, manager).
ACTIONS: tuple[str, ...] = SPEC.action_names
EMAIL, CALL, DEMO, SURVEY, WAIT, MANAGER = (ACTIONS.index(name) for name in
                                            ("email", "call", "demo", "survey", "wait", "manager"))  # fmt: skip
ACTION_COSTS = SPEC.action_costs
KEY = {name: i for i, name in enumerate(KEY_STEPS)}
#: Key step each company action offers (e-mail offers the next message instead).
ACTION_TARGET_KEY = {ACTIONS.index(action.name): KEY[action.offers[0]] for action in SPEC.actions
                     if len(action.offers) == 1 and action.offers[0] in KEY}  # fmt: skip
#: Stage of the lead as sales records it: the lead's response so far.
STAGES: tuple[str, ...] = ("new", "interested", "declined", "subscribed", "not interested")
NEW, INTERESTED, DECLINED, SUBSCRIBED, NOT_INTERESTED = range(5)
OBS_DIM = 16


@dataclass(frozen=True)
class RewardConfig:
    """Business value and the optional shaped training reward.

    Business reward of a week = subscription_value · [subscribed this week] − cost(action).
    Shaped reward = bonus of each key step first reached this week + shaped_subscription · [subscribed]
    − cost(action). Every intermediate bonus must stay below 25% of the terminal bonus.
    """

    subscription_value: float = SPEC.conversion_value
    action_costs: tuple[float, ...] = tuple(ACTION_COSTS.tolist())
    shaped: bool = False
    shaped_bonus: dict[str, float] = field(
        default_factory=lambda: {"first_call": 15.0, "demo": 12.0, "survey": 8.0, "signup": 20.0, "manager": 10.0}
    )
    shaped_subscription: float = 100.0

    def __post_init__(self) -> None:
        if len(self.action_costs) != len(ACTIONS):
            raise NextbestError(f"action_costs needs {len(ACTIONS)} values ({', '.join(ACTIONS)})")
        if self.subscription_value <= 0:
            raise NextbestError("subscription_value must be positive")
        limit = 0.25 * self.shaped_subscription
        for step, bonus in self.shaped_bonus.items():
            if step not in KEY:
                raise NextbestError(f"shaped bonus for unknown step {step!r}; known: {', '.join(KEY_STEPS)}")
            if not 0 <= bonus < limit:
                raise NextbestError(
                    f"shaped bonus {step}={bonus} must be in [0, {limit:g}) (25% of the terminal {limit * 4:g})"
                )

    def bonus_vector(self) -> np.ndarray:
        """Shaped bonus per key step, in KEY_STEPS order."""
        return np.array([self.shaped_bonus.get(step, 0.0) for step in KEY_STEPS])


@dataclass(frozen=True)
class FunnelConfig:
    """Episode settings and the one assumption the data cannot check.

    horizon: weeks per episode. logged_contacts: C in the drop-out formula (contacts the logged
    process made). call_offer_rate: share of leads the logged process offered a call. The data
    records which leads had a first call, never which were offered one, so this is an assumption:
    an offered call is taken with P(first call) / rate (capped). 1.0, the default, assumes every
    lead was offered a call: the most conservative reading, under which calling more cannot raise
    the first-call rate. The stage column records only 103 declined or missed calls against 441
    calls held, so the true rate may be far lower; the evaluation reports the sensitivity.
    """

    horizon: int = 10
    logged_contacts: int = 7
    days_per_step: int = 7
    call_offer_rate: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.call_offer_rate <= 1:
            raise NextbestError(f"call_offer_rate must be in (0, 1], got {self.call_offer_rate}")
        if self.horizon < 1 or self.logged_contacts < 1:
            raise NextbestError("horizon and logged_contacts must be at least 1")


@dataclass
class FunnelState:
    """State of a batch of leads (struct of arrays)."""

    country: np.ndarray
    education: np.ndarray
    country_rate: np.ndarray
    education_rate: np.ndarray
    u: np.ndarray  # (n, len(TARGETS)) latent willingness thresholds
    status: np.ndarray  # messages reached, 0..3
    key: np.ndarray  # (n, 5) bool: first_call, demo, survey, signup, manager reached
    stage: np.ndarray
    contacts: np.ndarray
    t: np.ndarray  # weeks elapsed
    last_contact: np.ndarray  # week of the last company contact (0: the lead's entry)
    done: np.ndarray
    subscribed: np.ndarray
    dropped: np.ndarray
    cost: np.ndarray  # money spent so far

    def __len__(self) -> int:
        return int(self.country.shape[0])

    def reached(self) -> np.ndarray:
        """Bool (n, len(STEPS)) of steps reached so far, in STEPS order."""
        out = np.zeros((len(self), len(STEPS)), dtype=bool)
        for k in (1, 2, 3):
            out[:, STEP_INDEX[f"msg{k}"]] = self.status >= k
        for name, i in KEY.items():
            out[:, STEP_INDEX[name]] = self.key[:, i]
        out[:, STEP_INDEX["subscribed"]] = self.subscribed
        return out


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
        rates: tuple[dict[str, float], dict[str, float]] | None = None,
        reward: RewardConfig | None = None,
        config: FunnelConfig | None = None,
    ) -> None:
        self.model = model
        self.reward = reward or RewardConfig()
        self.config = config or FunnelConfig()
        self._costs = np.asarray(self.reward.action_costs, dtype=float)
        self._bonus = self.reward.bonus_vector()
        country_rates, education_rates = rates or ({}, {})
        self._country_rate = self._rate_table(model.countries_, country_rates)
        self._education_rate = self._rate_table(model.educations_, education_rates)

    @staticmethod
    def _rate_table(vocabulary: list[str], rates: dict[str, float]) -> np.ndarray:
        """Train conversion rate per category code, scaled to [0, 1] by the largest rate (last = unseen)."""
        values = np.array([rates.get(v, np.nan) for v in vocabulary] + [np.nan], dtype=float)
        fallback = np.nanmean(values) if np.isfinite(values).any() else 0.0
        values = np.where(np.isfinite(values), values, fallback)
        top = values.max()
        return values / top if top > 0 else values

    # ----------------------------------------------------------------- leads
    def reset(
        self,
        country: np.ndarray,
        education: np.ndarray,
        rng: np.random.Generator,
        logged: np.ndarray | None = None,
    ) -> FunnelState:
        """Start episodes for leads with category codes; draw their latent thresholds.

        With `logged` (bool (n, len(STEPS)+1): reached steps + dropped, from their journeys) the
        thresholds are drawn from their posterior given the logged outcome (used for oversampled
        training batches only): u ~ U(0, p) when the lead reached the target, U(p, 1) otherwise,
        p evaluated at the lead's logged key steps.
        """
        n = country.shape[0]
        u = rng.random((n, len(TARGETS)))
        if logged is not None:
            u = self._posterior_thresholds(u, country, education, logged)
        zeros = np.zeros(n, dtype=np.int64)
        country, education = np.array(country, dtype=np.int64), np.array(education, dtype=np.int64)
        return FunnelState(
            country=country,
            education=education,
            country_rate=self._country_rate[country],
            education_rate=self._education_rate[education],
            u=u,
            status=zeros.copy(),
            key=np.zeros((n, len(KEY_STEPS)), dtype=bool),
            stage=zeros.copy(),
            contacts=zeros.copy(),
            t=zeros.copy(),
            last_contact=zeros.copy(),
            done=np.zeros(n, dtype=bool),
            subscribed=np.zeros(n, dtype=bool),
            dropped=np.zeros(n, dtype=bool),
            cost=np.zeros(n),
        )

    def _posterior_thresholds(
        self, u: np.ndarray, country: np.ndarray, education: np.ndarray, logged: np.ndarray
    ) -> np.ndarray:
        key = logged[:, [STEP_INDEX[s] for s in KEY_STEPS]]
        for target, j in TARGET_INDEX.items():
            p = self.model.probability(target, country, education, key)
            hit = logged[:, j]
            if target.startswith("msg") and target != "msg1":
                observed = logged[:, STEP_INDEX[f"msg{int(target[-1]) - 1}"]]
            else:
                observed = np.ones_like(hit)
            drawn = np.where(hit, u[:, j] * p, p + u[:, j] * (1.0 - p))
            u[:, j] = np.where(observed, drawn, u[:, j])
        return u

    # ----------------------------------------------------------------- dynamics
    def step(self, state: FunnelState, actions: np.ndarray) -> StepResult:
        """Advance every lead that is not done by one week under `actions` (ints in ACTIONS order)."""
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (len(state),) or actions.min(initial=0) < 0 or actions.max(initial=0) >= len(ACTIONS):
            raise NextbestError(
                f"actions must be {len(state)} integers in 0..{len(ACTIONS) - 1} ({', '.join(ACTIONS)})"
            )
        active = ~state.done
        cost = np.where(active, self._costs[actions], 0.0)
        key_before = state.key.copy()

        contact = active & (actions != WAIT)
        self._record_contact(state, contact)
        self._drop_out(state, contact)
        live = active & ~state.dropped
        self._offer_message(state, live & (actions == EMAIL))
        for action, key_index in ACTION_TARGET_KEY.items():
            self._offer_key_step(state, live & (actions == action), key_index, action)
        newly_subscribed = self._lead_own_steps(state, live)

        state.cost += cost
        state.t += active
        state.done |= state.dropped | state.subscribed | (state.t >= self.config.horizon)
        business = np.where(newly_subscribed, self.reward.subscription_value, 0.0) - cost
        if self.reward.shaped:
            gained = (state.key & ~key_before).astype(float) @ self._bonus
            reward = gained + np.where(newly_subscribed, self.reward.shaped_subscription, 0.0) - cost
        else:
            reward = business
        return StepResult(reward=reward, business_reward=business, done=state.done.copy(), cost=cost)

    def _p(self, state: FunnelState, target: str, rows: np.ndarray) -> np.ndarray:
        return self.model.probability(target, state.country[rows], state.education[rows], state.key[rows])

    def _accept(self, p_reached: np.ndarray, step: str) -> np.ndarray:
        """P(lead takes an offered step): P(reached), divided by the call offer rate for calls (capped)."""
        rate = self.config.call_offer_rate if step == "first_call" else 1.0
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
        gone = state.u[rows, TARGET_INDEX["dropped"]] < p_now
        state.dropped[rows[gone]] = True
        state.stage[rows[gone]] = NOT_INTERESTED

    def _offer_message(self, state: FunnelState, offered: np.ndarray) -> None:
        rows = np.flatnonzero(offered & (state.status < 3))
        if rows.size == 0:
            return
        level = state.status[rows] + 1
        p = np.empty(rows.size)
        for k in (1, 2, 3):
            at = level == k
            if at.any():
                p[at] = self._p(state, f"msg{k}", rows[at])
        thresholds = state.u[rows, TARGET_INDEX["msg1"] + level - 1]
        state.status[rows[thresholds < p]] += 1

    def _offer_key_step(self, state: FunnelState, offered: np.ndarray, key_index: int, action: int) -> None:
        rows = np.flatnonzero(offered & ~state.key[:, key_index])
        if rows.size == 0:
            return
        target = KEY_STEPS[key_index]
        taken = state.u[rows, TARGET_INDEX[target]] < self._accept(self._p(state, target, rows), target)
        state.key[rows[taken], key_index] = True
        if action != MANAGER:
            stage = state.stage[rows]
            state.stage[rows] = np.where(
                taken & np.isin(stage, (NEW, DECLINED)),
                INTERESTED,
                np.where(~taken & (stage == NEW), DECLINED, stage),
            )

    def _lead_own_steps(self, state: FunnelState, live: np.ndarray) -> np.ndarray:
        signup = KEY["signup"]
        rows = np.flatnonzero(live & ~state.key[:, signup])
        if rows.size:
            taken = state.u[rows, TARGET_INDEX["signup"]] < self._p(state, "signup", rows)
            state.key[rows[taken], signup] = True
        rows = np.flatnonzero(live)
        newly = np.zeros(len(state), dtype=bool)
        if rows.size:
            taken = state.u[rows, TARGET_INDEX["subscribed"]] < self._p(state, "subscribed", rows)
            newly[rows[taken]] = True
            state.subscribed |= newly
            state.stage[newly] = SUBSCRIBED
        return newly

    # ----------------------------------------------------------------- observation
    def observe(self, state: FunnelState) -> np.ndarray:
        """The 16-dimensional lead state, every entry in [0, 1] (float32).

        education, country (code / number of codes), stage, status, days since first contact
        (the lead's entry into the CRM, week 0), days since the last company contact (or entry),
        mean days between contacts, contacts per week, had call, demo,
        survey, sign-up, manager, country and education train conversion rates (scaled by the
        largest), fraction of the 9 funnel steps completed.
        """
        horizon = float(self.config.horizon)
        n_country = max(len(self.model.countries_), 1)
        n_education = max(len(self.model.educations_), 1)
        since_last = state.t - state.last_contact
        between = state.last_contact / np.maximum(state.contacts, 1)
        completed = state.status + state.key.sum(axis=1) + state.subscribed
        obs = np.column_stack(
            [
                state.education / n_education,
                state.country / n_country,
                state.stage / (len(STAGES) - 1),
                state.status / 3.0,
                state.t / horizon,
                since_last / horizon,
                between / horizon,
                state.contacts / np.maximum(state.t, 1),
                state.key.astype(float),
                state.country_rate,
                state.education_rate,
                completed / float(len(STEPS)),
            ]
        )
        return np.clip(obs, 0.0, 1.0).astype(np.float32)


def fit_simulator(
    journeys: Journeys,
    rates: tuple[dict[str, float], dict[str, float]] | None = None,
    smoothing: float = 10.0,
    reward: RewardConfig | None = None,
    config: FunnelConfig | None = None,
) -> FunnelSimulator:
    """Fit the funnel model on (train) journeys and wrap it in a simulator."""
    model = FunnelModel(smoothing=smoothing).fit(journeys)
    return FunnelSimulator(model, rates=rates, reward=reward, config=config)


def simulator_from_frame(
    train: pd.DataFrame,
    smoothing: float = 10.0,
    reward: RewardConfig | None = None,
    config: FunnelConfig | None = None,
) -> FunnelSimulator:
    """Fit a simulator on a prepared train frame (journeys plus its train conversion-rate columns)."""
    journeys = journeys_from_frame(train)
    rates = (
        _category_means(train, "country_cat", "country_conv_rate"),
        _category_means(train, "education_cat", "education_conv_rate"),
    )
    return fit_simulator(journeys, rates=rates, smoothing=smoothing, reward=reward, config=config)


def _category_means(frame: pd.DataFrame, category: str, rate: str) -> dict[str, float]:
    if category not in frame.columns or rate not in frame.columns:
        return {}
    return frame.groupby(frame[category].astype(str), observed=True)[rate].mean().to_dict()


def refit_like(sim: FunnelSimulator, journeys: Journeys, config: FunnelConfig | None = None) -> FunnelSimulator:
    """A simulator with `sim`'s settings (or `config`), category codes and rate features, refitted on
    `journeys` (e.g. a bootstrap resample of the train leads)."""
    model = FunnelModel(
        smoothing=sim.model.smoothing, eps=sim.model.eps, missing_as_evidence=sim.model.missing_as_evidence
    ).fit(journeys, countries=sim.model.countries_, educations=sim.model.educations_)
    twin = FunnelSimulator(model, reward=sim.reward, config=config or sim.config)
    twin._country_rate, twin._education_rate = sim._country_rate, sim._education_rate
    return twin

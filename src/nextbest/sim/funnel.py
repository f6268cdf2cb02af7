"""The CRM funnel simulator: the dynamics of a lead, one compiled kernel (the only copy of them), stepping many
leads at once or one, for any funnel a spec describes (``nextbest.data.funnel_spec``).

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

The week is one kernel, `step_leads`, compiled with numba (cached on disk, so only the first process after a change
pays the compilation): `FunnelSimulator.step` runs it on a batch of leads, `FunnelSimulator.step_into` on the one
lead of the Gymnasium env, without the batch's checks and allocations. The observation is `observe_leads`, compiled
too. A step draws nothing (the u's are drawn by `reset` with the numpy generator), so a lead's week is the same bit
for bit alone or in a batch. The chances the u's are compared with depend only on the lead's covariate codes, the
key steps it reached and (drop-out) its contacts, so the simulator tabulates them once with the numpy formulas
(`FunnelSimulator._tabulated`): the kernel then reads the very numbers the vectorized numpy code computed, and
its weeks are those of that code bit for bit. A model with too many covariate combinations to tabulate
(`TABULATE_LIMIT`) is evaluated in the kernel instead (`lead_probability`: the model's sums in the same order, but
libm's exp and pow, which may differ from numpy's SIMD ones in the last bit of a probability; a threshold u then
falls on the other side only if it lies within that bit, about 1e-16 per draw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
from numba import njit

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
_STAGE_SCALE = float(len(STAGES) - 1)  # the stage column is stage / 4
#: SalesCRM's observation size (`FunnelLayout(spec).obs_dim` for any funnel).
OBS_DIM = 16
#: Most entries of a simulator's tabulated probabilities and chances (`FunnelSimulator._tabulated`, 8 bytes each);
#: above it the kernel evaluates the model at each step instead. SalesCRM needs 31 × 567 combinations × 32 = 562,464.
TABULATE_LIMIT = 1 << 21
_SCALARS = 9  # scalar parameters at the head of the kernel's params (`FunnelSimulator.kernel_tables`)
_DERIVED = ("_tabulated", "kernel_tables", "_observation_tables")  # a simulator's tables, rebuilt when needed


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


def _state_arrays(state: FunnelState) -> tuple[np.ndarray, ...]:
    """The state fields `step_leads` reads and writes, in its argument order."""
    return (state.codes, state.u, state.reached, state.key, state.stage, state.contacts, state.t, state.last_contact,
            state.done, state.dropped, state.cost)  # fmt: skip


def pack_model(model: FunnelModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fitted model's tables as `lead_probability` reads them: shifts (targets, cells, width) float64, evidence
    (targets, K + 1) bool and offsets (C + 1,) int64 (layout in `lead_probability`'s docstring)."""
    names = targets(model.spec)
    n_key = len(model.spec.key_steps)
    offsets = np.cumsum([1] + [len(v) + 1 for v in model.vocabularies_]).astype(np.int64)
    shifts = np.zeros((len(names), model.n_cells, int(offsets[-1]) + 2 * n_key))
    evidence = np.zeros((len(names), n_key + 1), dtype=np.bool_)
    for target, name in enumerate(names):
        table = model.tables_[name]
        shifts[target, :, 0] = table.base
        for c, shift in enumerate(table.covariates):
            shifts[target, :, offsets[c] : offsets[c] + shift.shape[1]] = shift
        if np.any(np.diff(table.before) <= 0):
            raise NextbestError(f"the model's evidence steps of {name} are not in funnel order")
        for j, k in enumerate(table.before.tolist()):
            shifts[target, :, offsets[-1] + 2 * k : offsets[-1] + 2 * k + 2] = table.key[:, j, :]
            evidence[target, k] = True
        evidence[target, n_key] = table.uses_cells
    return shifts, evidence, offsets


class FunnelSimulator:
    """The funnel dynamics (the compiled kernel, see the module docstring) driven by a fitted FunnelModel."""

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
        rates = rates or [{} for _ in model.vocabularies_]
        self._rate_tables = [self._rate_table(v, r) for v, r in zip(model.vocabularies_, rates, strict=True)]

    @property
    def n_actions(self) -> int:
        return len(self.spec.actions)

    def __getstate__(self) -> dict:
        """Pickled without the tables built from the model (`_tabulated`, `kernel_tables`, rebuilt on first use in
        milliseconds), so a simulator sent to another process stays small."""
        return {name: value for name, value in self.__dict__.items() if name not in _DERIVED}

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
        if codes.min(initial=0) < 0:
            raise NextbestError("covariate codes must be non-negative (`FunnelModel.encode_leads`)")
        n = codes.shape[0]
        u = rng.random((n, self.layout.n_steps + 1))
        if logged is not None:
            u = self._posterior_thresholds(u, codes, logged)
        rates = np.empty((n, len(self._rate_tables)))
        for c, table in enumerate(self._rate_tables):
            rates[:, c] = table[codes[:, c]]
        return FunnelState(
            codes=codes,
            rates=rates,
            u=u,
            reached=np.zeros((n, self.layout.n_steps), dtype=bool),
            key=np.zeros((n, len(self.spec.key_steps)), dtype=bool),
            conversion=self.layout.conversion,
            stage=np.zeros(n, dtype=np.int64),
            contacts=np.zeros(n, dtype=np.int64),
            t=np.zeros(n, dtype=np.int64),
            last_contact=np.zeros(n, dtype=np.int64),
            done=np.zeros(n, dtype=bool),
            dropped=np.zeros(n, dtype=bool),
            cost=np.zeros(n),
        )

    def _posterior_thresholds(self, u: np.ndarray, codes: np.ndarray, logged: np.ndarray) -> np.ndarray:
        key = logged[:, self.layout.key_index]
        probabilities, _, radix = self._tabulated
        if probabilities is not None:  # the tabulated model: the same numbers, read instead of computed
            combo, mask = codes @ radix, key.astype(np.int64) @ (1 << np.arange(key.shape[1], dtype=np.int64))
        for j, target in enumerate(targets(self.spec)):
            if probabilities is None:
                p = self.model.probability(target, codes, key)
            else:
                p = probabilities[j, combo, mask]
            hit = logged[:, j]
            required = None if target == "dropped" else self.layout.requires(j)
            observed = logged[:, required] if required is not None else np.ones_like(hit)
            drawn = np.where(hit, u[:, j] * p, p + u[:, j] * (1.0 - p))
            u[:, j] = np.where(observed, drawn, u[:, j])
        return u

    # ----------------------------------------------------------------- dynamics
    def step(self, state: FunnelState, actions: np.ndarray) -> StepResult:
        """Advance every lead that is not done by one week under `actions` (ints in the spec's action order): the
        compiled kernel `step_leads`."""
        actions = np.asarray(actions, dtype=np.int64)
        n_actions = self.n_actions
        if actions.shape != (len(state),) or actions.min(initial=0) < 0 or actions.max(initial=0) >= n_actions:
            raise NextbestError(
                f"actions must be {len(state)} integers in 0..{n_actions - 1} ({', '.join(self.spec.action_names)})"
            )
        week = np.empty((3, len(state)))
        step_leads(np.ascontiguousarray(actions), *_state_arrays(state), *self.kernel_tables, week)
        return StepResult(reward=week[0], business_reward=week[1], done=state.done.copy(), cost=week[2])

    def step_into(self, state: FunnelState, actions: np.ndarray, week: np.ndarray) -> None:
        """`step` without the batch's checks and allocations (the Gymnasium env's path): the kernel on `state` under
        `actions` (int64, checked by the caller), writing each lead's training reward, business reward and cost of
        the week into the rows of `week` (3, len(state)) float64."""
        step_leads(actions, *_state_arrays(state), *self.kernel_tables, week)

    @cached_property
    def kernel_tables(self) -> tuple[np.ndarray, ...]:
        """The simulator's constants in `step_leads`'s argument order (its docstring): the tabulated chances (empty
        when there would be more than `TABULATE_LIMIT` entries: the kernel then evaluates the model), the packed
        model, the steps, the offers and the parameters. Built once: a simulator's model, reward and config are fixed
        after construction."""
        layout, spec, reward, config = self.layout, self.spec, self.reward, self.config
        steps = np.zeros((len(spec.steps), 4), dtype=np.int64)
        for j, step in enumerate(spec.steps):
            required, position = layout.requires(j), layout.key_position[j]
            steps[j] = (-1 if required is None else required, -1 if position is None else position,
                        step.taken_by == "company", step.taken_by == "lead")  # fmt: skip
        widest = max((len(o) for o in layout.offered_steps), default=0)
        offers = np.full((self.n_actions, 1 + widest), -1, dtype=np.int64)
        for a, (action, offered) in enumerate(zip(spec.actions, layout.offered_steps, strict=True)):
            offers[a, 0] = int(action.signals_interest)
            offers[a, 1 : 1 + len(offered)] = offered
        scalars = [config.logged_contacts, self.model.eps, config.offer_dial, reward.subscription_value,
                   float(reward.shaped), reward.shaped_subscription, config.horizon, layout.wait, layout.conversion]
        params = np.concatenate([np.array(scalars, dtype=np.float64), self._costs, self._offer_rates,
                                 np.asarray(self._bonus, dtype=np.float64).reshape(-1)])  # fmt: skip
        return (*self._tabulated[1:], *pack_model(self.model), steps, offers, params)

    @cached_property
    def _tabulated(self) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(probabilities, chances, radix) for every combination of covariate codes (combo = Σ code_c · radix_c) and
        of key steps reached (mask = Σ 2^k over the key steps k reached): probabilities (steps + 1, combos, 2^K), the
        model's P(target) (`targets` order); chances (steps + 1 + horizon + 1, combos, 2^K), what u is compared with:
        first per target P(step) for the lead's steps, P(the lead takes the offer) (`_accept`) for company steps,
        P(drop-out) (unused), then per number of contacts c = 0..horizon the chance of dropping out after the c-th
        contact, 1 − (1 − P(drop-out))^(c / C). Computed by `FunnelModel.probability` and the numpy formulas, so a
        tabulated chance is the numpy value bit for bit. (None, empty (0, 0, 0), radix) when there would be more than
        `TABULATE_LIMIT` entries."""
        levels = [len(vocabulary) + 1 for vocabulary in self.model.vocabularies_]
        radix = np.array([int(np.prod(levels[c + 1 :])) for c in range(len(levels))], dtype=np.int64)
        n_targets, n_key, horizon = self.layout.n_steps + 1, len(self.spec.key_steps), self.config.horizon
        combos, masks = int(np.prod(levels)), 2**n_key
        if (2 * n_targets + horizon + 1) * combos * masks > TABULATE_LIMIT:
            return None, np.zeros((0, 0, 0)), radix
        grid = np.indices((combos, masks)).reshape(2, -1)
        codes = np.empty((grid.shape[1], len(levels)), dtype=np.int64)
        for c, size in enumerate(levels):
            codes[:, c] = grid[0] // radix[c] % size
        key = (grid[1][:, None] >> np.arange(n_key)) & 1 == 1
        probabilities = np.empty((n_targets, combos, masks))
        chances = np.zeros((n_targets + horizon + 1, combos, masks))
        for j, target in enumerate(targets(self.spec)):
            p = self.model.probability(target, codes, key)
            probabilities[j] = p.reshape(combos, masks)
            chances[j] = (self._accept(p, j) if target != "dropped" and self._company[j] else p).reshape(combos, masks)
        p_logged = probabilities[-1].reshape(-1)
        for contacts in range(1, horizon + 1):
            exposure = np.full(p_logged.size, contacts, dtype=np.int64) / self.config.logged_contacts
            chances[n_targets + contacts] = (1.0 - (1.0 - p_logged) ** exposure).reshape(combos, masks)
        return probabilities, chances, radix

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
        """The lead state as `FunnelLayout.columns` lists it, every entry in [0, 1] (float32); 16 for SalesCRM
        (the compiled `observe_leads`)."""
        out = np.empty((len(state), self.layout.obs_dim), dtype=np.float32)
        observe_leads(state.codes, state.rates, state.stage, state.reached, state.key, state.contacts, state.t,
                      state.last_contact, *self._observation_tables, out)  # fmt: skip
        return out

    @cached_property
    def _observation_tables(self) -> tuple:
        groups = self.layout.progress_groups
        progress = np.full((len(groups), 1 + max((len(g) for g in groups), default=0)), -1, dtype=np.int64)
        for g, group in enumerate(groups):
            progress[g, 0] = len(group)
            progress[g, 1 : 1 + len(group)] = group
        flags = self.layout.flag_steps
        return (np.ascontiguousarray(self._levels, dtype=np.float64), progress, np.array(flags, dtype=np.int64),
                flags == self.layout.key_index.tolist(), float(self.config.horizon))  # fmt: skip


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


# ----------------------------------------------------------------- the compiled kernel (the one copy of the dynamics)
@njit(cache=True)
def step_leads(actions, codes, u, reached, key, stage, contacts, t, last_contact, done, dropped, cost,
               chances, radix, shifts, evidence, offsets, steps, offers, params, week):  # pragma: no cover - compiled
    """One week of every lead (row) under `actions`: THE funnel dynamics (module docstring), compiled. Updates the
    state arrays in place and writes each row's training reward, business reward and cost of the week to
    week[0], week[1] and week[2].

    Contract. The state arrays are a `FunnelState`'s fields (`_state_arrays`), n rows: codes (n, C) int64,
    u (n, steps + 1) float64, reached (n, steps) and key (n, K) bool, stage, contacts, t and last_contact (n,)
    int64, done and dropped (n,) bool, cost (n,) float64; actions (n,) int64, each in 0..actions − 1 (the caller
    checks); week (3, n) float64 is written. The simulator's constants (`FunnelSimulator.kernel_tables`): chances
    and radix, the chances u is compared with, tabulated (`FunnelSimulator._tabulated`; empty: evaluated from
    the model packed in shifts, evidence and offsets, `lead_chance`); steps (steps, 4) int64: per step its required
    step (−1: none), its key position (−1: not key), 1 if the company takes it, 1 if the lead does; offers
    (actions, 1 + most offers) int64: per action 1 if it signals interest, then the steps it offers (−1 pads);
    params float64: the logged contacts C, eps, the offer dial, the conversion value, shaped (1/0), the shaped
    conversion bonus, the horizon, the wait action, the conversion step, then the actions' costs, the steps' offer
    rates and the key steps' shaped bonuses. A done row is left as it is and gets (0, 0, 0). Rows do not interact
    and nothing is drawn (a lead's uniforms are its row of u, drawn at reset), so a row's week is the same bit for
    bit whether it is stepped alone (the Gymnasium env: n = 1) or in a batch.
    """
    value, shaped, shaped_value = params[3], params[4] > 0.0, params[5]
    horizon, wait, conversion = int(params[6]), int(params[7]), int(params[8])
    n_steps, n_key = reached.shape[1], key.shape[1]
    action_costs = params[_SCALARS : _SCALARS + offers.shape[0]]
    bonus = params[params.size - n_key :]
    tabulated, dropouts = chances.shape[0] > 0, n_steps + 1
    reward, business, week_cost = week[0], week[1], week[2]
    for i in range(actions.shape[0]):
        if done[i]:
            reward[i] = business[i] = week_cost[i] = 0.0
            continue
        action = actions[i]
        paid = action_costs[action]
        combo = 0
        for c in range(codes.shape[1]):
            combo += codes[i, c] * radix[c]
        mask = 0
        for k in range(n_key):
            if key[i, k]:
                mask |= 1 << k
        mask_before = mask
        # 1. the contact, and drop-out
        if action != wait:
            contacts[i] += 1
            last_contact[i] = t[i]
            if tabulated and dropouts + contacts[i] < chances.shape[0]:
                chance = chances[dropouts + contacts[i], combo, mask]
            else:
                chance = dropout_chance(i, contacts[i], codes, key, shifts, evidence, offsets, params)
            if u[i, -1] < chance:
                dropped[i] = True
                stage[i] = NOT_INTERESTED
        newly = False
        if not dropped[i]:
            # 2. the company's offer: the first of the action's steps the lead can still reach
            for j in range(1, offers.shape[1]):
                step = offers[action, j]
                if step < 0:
                    break
                required = steps[step, 0]
                if reached[i, step] or (required >= 0 and not reached[i, required]):
                    continue
                # The chance lookup is written out here and in 3.: an inlined helper made this kernel 10× slower.
                if tabulated:
                    chance = chances[step, combo, mask]
                else:
                    chance = lead_chance(step, i, codes, key, shifts, evidence, offsets, steps, params)
                taken = u[i, step] < chance
                position = steps[step, 1]
                if taken:
                    reached[i, step] = True
                    if position >= 0:
                        key[i, position] = True
                        mask |= 1 << position
                if position >= 0 and offers[action, 0] == 1:
                    if taken and (stage[i] == NEW or stage[i] == DECLINED):
                        stage[i] = INTERESTED
                    elif not taken and stage[i] == NEW:
                        stage[i] = DECLINED
                break
            # 3. the lead's own steps, in funnel order
            for step in range(steps.shape[0]):
                if steps[step, 3] != 1:
                    continue
                required = steps[step, 0]
                if reached[i, step] or (required >= 0 and not reached[i, required]):
                    continue
                if tabulated:
                    chance = chances[step, combo, mask]
                else:
                    chance = lead_chance(step, i, codes, key, shifts, evidence, offsets, steps, params)
                if u[i, step] < chance:
                    reached[i, step] = True
                    position = steps[step, 1]
                    if position >= 0:
                        key[i, position] = True
                        mask |= 1 << position
                    if step == conversion:
                        newly = True
                        stage[i] = SUBSCRIBED
        cost[i] += paid
        t[i] += 1
        if dropped[i] or reached[i, conversion] or t[i] >= horizon:
            done[i] = True
        business[i] = (value if newly else 0.0) - paid
        week_cost[i] = paid
        if shaped:
            gained = 0.0
            for k in range(n_key):
                if mask & ~mask_before & (1 << k):
                    gained += bonus[k]
            reward[i] = gained + (shaped_value if newly else 0.0) - paid
        else:
            reward[i] = business[i]


@njit(cache=True)
def lead_chance(step, i, codes, key, shifts, evidence, offsets, steps, params):  # pragma: no cover - compiled
    """What u[i, step] is compared with when it is not tabulated: P(step) for a lead's own step; for a company step
    the chance that the lead takes the offer (`FunnelSimulator._accept`)."""
    eps = params[1]
    p = lead_probability(step, i, codes, key, shifts, evidence, offsets, eps)
    if steps[step, 2] == 1:
        dial, rate = params[2], params[params.size - key.shape[1] - steps.shape[0] + step]  # the step's offer rate
        if dial > 0.0:
            return p ** (1.0 - dial)
        if rate < 1.0:
            return min(p / rate, 1.0 - eps)
    return p


@njit(cache=True)
def dropout_chance(i, contacts, codes, key, shifts, evidence, offsets, params):  # pragma: no cover - compiled
    """P(drop-out this week) after the lead's `contacts`-th contact when it is not tabulated:
    1 − (1 − P_drop)^(contacts / C)."""
    p = lead_probability(shifts.shape[0] - 1, i, codes, key, shifts, evidence, offsets, params[1])
    return 1.0 - (1.0 - p) ** (contacts / params[0])


@njit(cache=True, inline="always")
def lead_probability(target, i, codes, key, shifts, evidence, offsets, eps):  # pragma: no cover - compiled
    """P(target) of lead `i` evaluated: `FunnelModel.probability` for one lead, from the model's packed tables
    (`pack_model`), for simulators whose covariate combinations are too many to tabulate.

    shifts[target, cell] holds [logit p_s | each covariate's log-odds shifts (one block per covariate, `offsets[c]`
    its start) | two shifts per key step (not reached, reached), from `offsets[-1]`]; evidence[target, k] says whether
    key step k is evidence for the target, evidence[target, K] whether the target uses cells. The sum runs in the
    model's order (base, covariates, earlier key steps), then σ with libm's exp, clipped to [eps, 1 − eps].
    """
    n_key = key.shape[1]
    cell = 0
    if evidence[target, n_key]:
        for k in range(n_key):
            if evidence[target, k] and key[i, k]:
                cell = k + 1
    logit = shifts[target, cell, 0]
    for c in range(codes.shape[1]):
        logit = logit + shifts[target, cell, offsets[c] + codes[i, c]]
    first = offsets[codes.shape[1]]
    for k in range(n_key):
        if evidence[target, k]:
            logit = logit + shifts[target, cell, first + 2 * k + (1 if key[i, k] else 0)]
    p = 1.0 / (1.0 + math.exp(-logit))
    return min(max(p, eps), 1.0 - eps)


@njit(cache=True)
def observe_leads(codes, rates, stage, reached, key, contacts, t, last_contact, levels, progress, flag_steps,
                  flags_from_key, horizon, out):  # pragma: no cover - compiled
    """Every row's observation (`FunnelLayout.columns`) into out (n, obs_dim) float32: each entry computed in
    float64 as numpy would, clipped to [0, 1], then rounded to float32. progress (groups, 1 + most steps) int64:
    per group its size, then its steps (−1 pads); flag_steps: the steps with a 0/1 column (read from key, in key
    order, when `flags_from_key`)."""
    n_codes, n_steps, stages = codes.shape[1], reached.shape[1], _STAGE_SCALE
    for i in range(codes.shape[0]):
        column = 0
        for c in range(n_codes):
            out[i, column] = _unit(codes[i, c] / levels[c])
            column += 1
        out[i, column] = _unit(stage[i] / stages)
        column += 1
        for g in range(progress.shape[0]):
            count = 0
            for j in range(1, progress[g, 0] + 1):
                count += reached[i, progress[g, j]]
            out[i, column] = _unit(count / float(progress[g, 0]))
            column += 1
        out[i, column] = _unit(t[i] / horizon)
        out[i, column + 1] = _unit((t[i] - last_contact[i]) / horizon)
        out[i, column + 2] = _unit(last_contact[i] / max(contacts[i], 1) / horizon)
        out[i, column + 3] = _unit(contacts[i] / max(t[i], 1))
        column += 4
        for j in range(flag_steps.shape[0]):
            flag = key[i, j] if flags_from_key else reached[i, flag_steps[j]]
            out[i, column] = 1.0 if flag else 0.0
            column += 1
        for c in range(rates.shape[1]):
            out[i, column] = _unit(rates[i, c])
            column += 1
        completed = 0
        for step in range(n_steps):
            completed += reached[i, step]
        out[i, column] = _unit(completed / float(n_steps))


@njit(cache=True)
def _unit(x):  # pragma: no cover - compiled
    return min(max(x, 0.0), 1.0)

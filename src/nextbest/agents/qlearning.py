"""Tabular Q-learning, many episodes stepped at once: the one configuration and update of the package, and the
agent of the CRM funnel simulator (the session agent, `nextbest.agents.sessions.train_q`, shares both).

Read top to bottom: config, state table, the training loop, checkpoints.

Update rule (per state-action pair s, a seen in a batch step):

    target = r + γ · max_a' Q(s', a') · (1 − done)
    Q(s, a) ← Q(s, a) + (1 − (1 − α)^k) · (mean target − Q(s, a))

where k is the number of leads of the batch step that were in (s, a). For k = 1 this is the
textbook update with learning rate α; for k > 1 it equals k sequential updates toward the same
mean target, so a popular state is not moved k·α at once.

Oversampling (30% converted, 30% first key step (SalesCRM: first call), 40% any lead by default) shows the
rare successes more often. Their latent willingness is drawn from its posterior given the logged journey, and
each lead carries the importance weight w = (1/N) / P(sampled) so that the updates still estimate
values for the real lead population: the mean target becomes Σ w·target / Σ w and the step size
1 − Π (1 − α·w). States are the observations
(16 columns for SalesCRM) rounded to `decimals` places. Exploration is ε-greedy with ε_e = max(ε_end,
ε_start · decay^e) for episode e.

Have the values settled? Metrics of the final 10k episodes (`QLearningAgent.final_metrics`):

    max_abs_delta_q_last_10k   = max |ΔQ(s, a)| over every update of the window (all pairs)
    policy_change_pct_last_10k = % of the states known at the window's start whose greedy action changed
    new_states_last_10k        = states first seen in the window
    established pairs E        = {(s, a): n(s, a) ≥ N at the window's start}, n the pair's updates so far (one per
                                 lead-step, unweighted, any step size), N = ``established_min_visits``
    max_abs_delta_q_established_last_10k = max |ΔQ(s, a)| over the window's batch updates of pairs in E
    max_rel_delta_q_established_last_10k = the same ÷ the subscription value (the largest reward)
    established_visit_pct_last_10k       = 100 · (the window's lead-steps on pairs in E) / (all its lead-steps)

The first one is dominated by first visits: while ε > 0 finds new states, a first update moves Q from 0 by its
whole target (SalesCRM: ~$998, a subscription). The established ones ask whether the values already learned
still move. n is unweighted on purpose: the importance-weighted count W is the visit-count step's own
denominator (the update is Σ w_i (target_i − Q) / (W + Σ w_i)), so a threshold on W would bound the metric by
construction, and it would leave out the pairs on the converted leads' paths, whose oversampled visits weigh
little. Read the metric with the share of updates it keeps, never alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numba import njit

from nextbest.errors import NextbestError
from nextbest.policies import Decision, Policy
from nextbest.policies.contract import deterministic
from nextbest.sim.funnel import FunnelSimulator
from nextbest.sim.journeys import Journeys

CHECKPOINT_PREFIX = "qtable_ep"


StepSize = Literal["constant", "visit-average", "visit-count"]
STEP_SIZES = ("constant", "visit-average", "visit-count")


@dataclass
class QLearningConfig:
    """One configuration for every tabular Q-learner of the package (the funnel's and the sessions').

    Defaults are the funnel's; `QLearningConfig.for_sessions()` gives the sessions'. ``epsilon_decay``: ε of
    episode e is max(ε_end, ε_start · decay^e); None: ε falls linearly from ε_start to ε_end over the batches.
    ``step_size``: "constant" (α per lead, 1 − Π(1 − α·w) for the leads of a batch, see the module doc) or
    "visit-average" (max(α, m / (N + m)), a running average of the targets floored at α; for rare, large
    rewards) or "visit-count" (m / (N + m) with importance weights: the weighted running average of every target
    the pair has seen, a step size that decays as 1/N so the values settle). ``batch_size``: episodes stepped at
    once. ``established_min_visits``: N of the convergence metrics (module doc), in updates of a pair.
    """

    alpha: float = 0.1
    gamma: float = 0.95
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    epsilon_decay: float | None = 0.995
    step_size: StepSize = "constant"
    decimals: int = 2
    batch_size: int = 1000
    episodes: int = 100_000
    checkpoint_every: int = 10_000
    metrics_every: int = 1_000
    oversample: tuple[float, float, float] | None = (0.3, 0.3, 0.4)
    importance_weights: bool = True
    seed: int = 0
    established_min_visits: int = 1000

    @classmethod
    def for_sessions(cls, **overrides: object) -> QLearningConfig:
        """The session retention use case's settings: 200k sessions 2,000 at a time, α = 0.01 visit-averaged,
        ε linear from 1 to 0.02."""
        preset: dict[str, object] = {"episodes": 200_000, "batch_size": 2_000, "alpha": 0.01, "epsilon_end": 0.02,
                                     "epsilon_decay": None, "step_size": "visit-average", "metrics_every": 2_000,
                                     "oversample": None}  # fmt: skip
        return cls(**{**preset, **overrides})

    def validate(self) -> None:
        """Raise NextbestError for inconsistent settings."""
        if not 0 < self.alpha <= 1 or not 0 <= self.gamma <= 1:
            raise NextbestError("alpha must be in (0, 1] and gamma in [0, 1]")
        if self.established_min_visits < 0:
            raise NextbestError("established_min_visits must be non-negative")
        if self.step_size not in STEP_SIZES:
            raise NextbestError(f"step_size must be one of {', '.join(STEP_SIZES)}, got {self.step_size!r}")
        if self.metrics_every % self.batch_size or self.checkpoint_every % self.metrics_every:
            raise NextbestError(
                f"batch_size ({self.batch_size}) must divide metrics_every ({self.metrics_every}), "
                f"which must divide checkpoint_every ({self.checkpoint_every})"
            )
        shares = self.oversample
        if shares is not None and (len(shares) != 3 or min(shares) < 0 or abs(sum(shares) - 1) > 1e-9):
            raise NextbestError("oversample needs three non-negative shares summing to 1 (subscribed, first call, any)")

    def epsilon(self, first_episode: int, total_episodes: int) -> np.ndarray:
        """ε of each episode of the batch starting at `first_episode` (see the class doc)."""
        if self.epsilon_decay is not None:
            decay = self.epsilon_decay ** np.arange(first_episode, first_episode + self.batch_size)
            return np.maximum(self.epsilon_end, self.epsilon_start * decay)
        batches = max(1, total_episodes // self.batch_size)
        batch = first_episode // self.batch_size
        value = self.epsilon_start + (self.epsilon_end - self.epsilon_start) * batch / max(batches - 1, 1)
        return np.full(self.batch_size, value)


def q_update(q: np.ndarray, rows: np.ndarray, actions: np.ndarray, target: np.ndarray, config: QLearningConfig,
             weight: np.ndarray | None = None, visits: np.ndarray | None = None) -> float:  # fmt: skip
    """Move Q(s, a) of the (rows, actions) pairs of one batch step toward their targets; the largest |ΔQ|.

    "constant": Q ← Q + (1 − Π_i (1 − α·w_i)) · (Σ w·target / Σ w − Q) over the batch's visits of (s, a);
    "visit-average": Q ← Q + max(α, m / (N + m)) · mean_i (target_i − Q), N the earlier visits (updated here);
    "visit-count": Q ← Q + Σ w_i (target_i − Q) / (W + Σ w_i), W the earlier visits' weight (updated here): the
    weighted running average of the pair's targets.
    """
    flat = q.reshape(-1)
    pair = rows * q.shape[1] + actions
    if config.step_size == "visit-count":
        weight = np.ones(pair.size) if weight is None else weight
        unique, inverse = np.unique(pair, return_inverse=True)
        batch_weight = np.bincount(inverse, weights=weight, minlength=unique.size)
        gap = np.bincount(inverse, weights=weight * (target - flat[pair]), minlength=unique.size)
        delta = gap / (visits.reshape(-1)[unique] + batch_weight)
        flat[unique] += delta
        visits.reshape(-1)[unique] += batch_weight
    elif config.step_size == "visit-average":
        sums = np.bincount(pair, weights=target - flat[pair], minlength=q.size)
        counts = np.bincount(pair, minlength=q.size)
        seen = counts > 0
        delta = np.maximum(config.alpha, counts[seen] / (visits[seen] + counts[seen])) * sums[seen] / counts[seen]
        flat[seen] += delta
        visits[seen] += counts[seen]
    else:
        weight = np.ones(pair.size) if weight is None else weight
        unique, inverse = np.unique(pair, return_inverse=True)
        total_weight = np.bincount(inverse, weights=weight, minlength=unique.size)
        mean_target = np.bincount(inverse, weights=weight * target, minlength=unique.size) / total_weight
        keep = np.log1p(-np.minimum(config.alpha * weight, 0.999))
        rate = 1.0 - np.exp(np.bincount(inverse, weights=keep, minlength=unique.size))
        delta = rate * (mean_target - flat[unique])
        flat[unique] += delta
    return float(np.abs(delta).max()) if delta.size else 0.0


@njit(cache=True)
def state_keys(obs: np.ndarray, scale: float, multipliers: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """`StateTable.keys`: per row of `obs` (n, d), Σ_j code_j · multipliers_j XOR (code_0 << 32) in uint64
    arithmetic (wrapping), code_j = int64(rint(float64(obs_j) · scale)) read as uint64."""
    out = np.empty(obs.shape[0], dtype=np.uint64)
    for i in range(obs.shape[0]):
        total = np.uint64(0)
        first = np.uint64(0)
        for j in range(obs.shape[1]):
            code = np.uint64(np.int64(np.rint(np.float64(obs[i, j]) * scale)))
            total += code * multipliers[j]
            if j == 0:
                first = code
        out[i] = total ^ (first << np.uint64(32))
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: bits 32 and up of key · 2^64/φ pick a slot


@njit(cache=True)
def _slot(key, slot_keys, slot_rows):  # pragma: no cover - compiled
    """The slot of `key` in the open-addressing table (slot_keys, slot_rows), or the empty slot where it goes."""
    size = slot_rows.size
    slot = np.int64((key * _GOLDEN) >> np.uint64(32)) & (size - 1)
    while slot_rows[slot] >= 0 and slot_keys[slot] != key:
        slot = (slot + 1) & (size - 1)
    return slot


@njit(cache=True)
def insert_rows(keys, rows, slot_keys, slot_rows):  # pragma: no cover - compiled
    """Put each key -> row pair into the hash table (sizes a power of two, at most half full)."""
    for i in range(keys.size):
        slot = _slot(keys[i], slot_keys, slot_rows)
        slot_keys[slot], slot_rows[slot] = keys[i], rows[i]


@njit(cache=True)
def lookup_rows(keys, slot_keys, slot_rows, next_row, add):  # pragma: no cover - compiled
    """The row of each key in the hash table, and the keys not in it, sorted; with `add` those get rows next_row,
    next_row + 1, ... in that order (else their rows are −1). The table must have room for them."""
    rows = np.empty(keys.size, dtype=np.int64)
    missing = np.zeros(keys.size, dtype=np.bool_)
    for i in range(keys.size):
        rows[i] = slot_rows[_slot(keys[i], slot_keys, slot_rows)]
        missing[i] = rows[i] < 0
    new = np.unique(keys[missing])
    if not add or new.size == 0:
        return rows, new[:0]
    insert_rows(new, np.arange(next_row, next_row + new.size), slot_keys, slot_rows)
    for i in range(keys.size):
        if missing[i]:
            rows[i] = slot_rows[_slot(keys[i], slot_keys, slot_rows)]
    return rows, new


class StateTable:
    """Maps rounded observations to row numbers of a growing Q array."""

    def __init__(self, obs_dim: int, n_actions: int, decimals: int, seed: int = 12345) -> None:
        self.scale = 10.0**decimals
        multipliers = np.random.default_rng(seed).integers(1, 2**62, size=obs_dim, dtype=np.int64)
        self._multipliers = (multipliers | 1).astype(np.uint64)
        self.index: dict[int, int] = {}
        self._mirror_of: dict[int, int] | None = None  # the dict the compiled hash table mirrors (`rows`)
        self._mirror_size = 0
        self._slot_keys, self._slot_rows = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        self.q = np.zeros((1024, n_actions))
        self.visits = np.zeros((1024, n_actions))  # (weighted) updates of each pair, for the visit-count step
        self.updates = np.zeros((1024, n_actions), dtype=np.int64)  # updates (lead-steps) of each pair, any step size

    def __len__(self) -> int:
        return len(self.index)

    def keys(self, obs: np.ndarray) -> np.ndarray:
        """64-bit hash of each rounded observation: Σ_j code_j · m_j XOR (code_0 << 32) in uint64 arithmetic, code_j
        the observation's column j rounded to `decimals` places (× 10^decimals, half to even) and m_j odd random
        multipliers (`state_keys`, compiled)."""
        return state_keys(np.ascontiguousarray(obs), self.scale, self._multipliers)

    def rows(self, obs: np.ndarray, add: bool = True) -> np.ndarray:
        """Row of each observation's state; new states get new zero rows (or -1 when add=False), numbered in the
        order of their keys. `index` (key -> row) is the table; a compiled hash table mirrors it for the lookups,
        rebuilt when `index` is replaced or changes size outside this method."""
        keys = self.keys(obs)
        if self._mirror_of is not self.index or self._mirror_size != len(self.index):
            self._mirror(len(self.index) + keys.size)
        elif 2 * (len(self.index) + keys.size) > self._slot_rows.size:
            self._mirror(2 * (len(self.index) + keys.size))
        rows, new = lookup_rows(keys, self._slot_keys, self._slot_rows, len(self.index), add)
        if new.size:
            self.index.update(zip(new.tolist(), range(len(self.index), len(self.index) + new.size)))
            self._mirror_size = len(self.index)
            self._grow(len(self.index))
        return rows

    def _mirror(self, capacity: int) -> None:
        """(Re)build the compiled mirror of `index` with room for `capacity` keys at most half full."""
        size = 1 << max(10, int(2 * capacity - 1).bit_length())
        self._slot_keys, self._slot_rows = np.zeros(size, dtype=np.uint64), np.full(size, -1, dtype=np.int64)
        keys = np.fromiter(self.index.keys(), dtype=np.uint64, count=len(self.index))
        rows = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        insert_rows(keys, rows, self._slot_keys, self._slot_rows)
        self._mirror_of, self._mirror_size = self.index, len(self.index)

    def _grow(self, needed: int) -> None:
        if needed > self.q.shape[0]:
            bigger = np.zeros((max(needed, 2 * self.q.shape[0]), self.q.shape[1]))
            bigger[: self.q.shape[0]] = self.q
            visits = np.zeros_like(bigger)
            visits[: self.visits.shape[0]] = self.visits
            updates = np.zeros(bigger.shape, dtype=np.int64)
            updates[: self.updates.shape[0]] = self.updates
            self.q, self.visits, self.updates = bigger, visits, updates

    def values(self) -> np.ndarray:
        """Q values of the known states (n_states, n_actions)."""
        return self.q[: len(self.index)]


@dataclass
class TrainingLog:
    """Metrics every `metrics_every` episodes plus the figures of the final 10k episodes."""

    episodes: list[int] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)
    #: importance-weighted means over the window's episodes (estimates for the real lead population)
    mean_business_value: list[float] = field(default_factory=list)
    mean_training_reward: list[float] = field(default_factory=list)
    subscription_rate: list[float] = field(default_factory=list)
    states: list[int] = field(default_factory=list)
    max_abs_delta_q: list[float] = field(default_factory=list)
    epsilon_trajectory_episodes: list[int] = field(default_factory=list)
    epsilon_trajectory: list[float] = field(default_factory=list)


class QLearningAgent(Policy):
    """Tabular Q-learning agent; `train` runs episodes on a simulator; as a policy (``choose``) it is greedy."""

    name = "qlearning"

    def __init__(self, sim: FunnelSimulator, config: QLearningConfig | None = None) -> None:
        self.sim = sim
        self.n_actions = sim.n_actions
        self.config = config or QLearningConfig()
        self.config.validate()
        self.table = StateTable(sim.layout.obs_dim, sim.n_actions, self.config.decimals)
        self.rng = np.random.default_rng(self.config.seed)
        self.episodes_done = 0
        self.log = TrainingLog()
        self._snapshot: tuple[np.ndarray, np.ndarray] | None = None  # greedy actions 10k before the end
        self._window_max_delta = 0.0
        self._window_open = False  # the current batch is in the final 10k episodes
        self._established: np.ndarray | None = None  # (states at the window's start, actions): n ≥ N then
        self._window_established_max_delta = 0.0
        self._window_updates = np.zeros(2, dtype=np.int64)  # the window's lead-steps: all, on established pairs

    # ----------------------------------------------------------------- policy
    def choose(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> Decision:
        """The greedy action per observation, probability 1."""
        return deterministic(self.greedy(obs), self.n_actions)

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        """Greedy action per observation; unseen states fall back to waiting (no spend)."""
        rows = self.table.rows(obs, add=False)
        q = self.table.q[np.maximum(rows, 0)]
        return np.where(rows >= 0, np.argmax(q, axis=1), self.sim.layout.wait)

    # ----------------------------------------------------------------- training
    def train(
        self,
        journeys: Journeys,
        episodes: int,
        checkpoint_dir: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> TrainingLog:
        """Run until `episodes` episodes in total are done (continues after a resume)."""
        cfg = self.config
        if episodes % cfg.batch_size:
            raise NextbestError(f"episodes ({episodes}) must be a multiple of batch_size ({cfg.batch_size})")
        codes = self.sim.model.encode_leads(journeys)
        logged = np.column_stack([journeys.reached, journeys.dropped])
        strata = self._strata(journeys)
        weights = self._importance_weights(strata, len(journeys))
        window_start = max(episodes - 10_000, 0)
        window = _Window()
        while self.episodes_done < episodes:
            if self.episodes_done == window_start and self._snapshot is None:
                self._open_window()
            picks = self._sample_leads(strata, len(journeys))
            state = self.sim.reset(codes[picks], self.rng, logged[picks] if cfg.oversample else None)
            start = self.episodes_done
            epsilon = cfg.epsilon(start, episodes)
            self._record_epsilon(start, epsilon)
            self._window_open = start >= window_start
            business, shaped, max_delta = self._run_batch(state, epsilon, weights[picks])
            if start >= window_start:
                self._window_max_delta = max(self._window_max_delta, max_delta)
            window.add(business, shaped, state.subscribed, weights[picks])
            self.episodes_done += cfg.batch_size
            if self.episodes_done % cfg.metrics_every == 0:
                window.flush(self, float(epsilon[-1]), max_delta)
            if checkpoint_dir is not None and self.episodes_done % cfg.checkpoint_every == 0:
                self.save(checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.episodes_done}.npz")
            if progress is not None:
                progress(cfg.batch_size)
        return self.log

    def _strata(self, journeys: Journeys) -> list[np.ndarray]:
        spec = journeys.spec
        subscribed = np.flatnonzero(journeys.reached[:, spec.step_names.index(spec.conversion_step)])
        called = np.flatnonzero(journeys.reached[:, spec.step_names.index(spec.key_steps[0])])
        everyone = np.arange(len(journeys))
        return [subscribed if subscribed.size else everyone, called if called.size else everyone, everyone]

    def _record_epsilon(self, start: int, epsilon: np.ndarray) -> None:
        """ε of ~20 episodes per batch while it decays, then of the batch's first episode."""
        step = max(epsilon.size // 20, 1) if epsilon[0] > self.config.epsilon_end else epsilon.size
        for offset in range(0, epsilon.size, step):
            self.log.epsilon_trajectory_episodes.append(start + offset)
            self.log.epsilon_trajectory.append(float(epsilon[offset]))

    def _importance_weights(self, strata: list[np.ndarray], n_leads: int) -> np.ndarray:
        """w_i = (1/N) / P(lead i is drawn), normalised to mean 1 over the leads; ones without oversampling."""
        if self.config.oversample is None or not self.config.importance_weights:
            return np.ones(n_leads)
        drawn = np.zeros(n_leads)
        for stratum, share in zip(strata, self.config.oversample):
            drawn += share * np.bincount(stratum, minlength=n_leads) / max(stratum.size, 1)
        weights = (1.0 / n_leads) / drawn
        return weights / np.sum(weights * drawn)

    def _sample_leads(self, strata: list[np.ndarray], n_leads: int) -> np.ndarray:
        """Lead rows of one batch: shares of subscribed / first-call / any leads, or uniform."""
        size = self.config.batch_size
        if self.config.oversample is None:
            return self.rng.integers(0, n_leads, size=size)
        counts = split_counts(size, self.config.oversample)
        parts = [stratum[self.rng.integers(0, stratum.size, size=c)] for stratum, c in zip(strata, counts)]
        return np.concatenate(parts)

    def _run_batch(self, state, epsilon: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        cfg, table, n = self.config, self.table, len(state)
        business, shaped = np.zeros(n), np.zeros(n)
        rows = table.rows(self.sim.observe(state))
        max_delta = 0.0
        while not state.done.all():
            active = ~state.done
            greedy = np.argmax(table.q[rows] + self.rng.random((n, self.n_actions)) * 1e-9, axis=1)
            explore = self.rng.random(n) < epsilon
            actions = np.where(explore, self.rng.integers(0, self.n_actions, size=n), greedy)
            result = self.sim.step(state, actions)
            next_rows = table.rows(self.sim.observe(state))
            bootstrap = np.where(result.done, 0.0, table.q[next_rows].max(axis=1))
            target = result.reward + cfg.gamma * bootstrap
            update = self._update(rows[active], actions[active], target[active], weight[active])
            max_delta = max(max_delta, update)
            business += result.business_reward
            shaped += result.reward
            rows = next_rows
        return business, shaped, max_delta

    def _update(self, rows: np.ndarray, actions: np.ndarray, target: np.ndarray, weight: np.ndarray) -> float:
        """Apply the batched, importance-weighted update; return the largest |ΔQ| it made.

        It counts the pairs' updates and, in the final window, records the largest |ΔQ| of the established pairs
        and how many lead-steps hit them (module doc)."""
        flat = self.table.q.reshape(-1)
        pair = rows * self.n_actions + actions
        tracked = self._window_open and self._established is not None
        if tracked:
            before = flat[pair]
        biggest = q_update(self.table.q, rows, actions, target, self.config, weight=weight, visits=self.table.visits)
        np.add.at(self.table.updates.reshape(-1), pair, 1)
        if tracked:
            known = rows < self._established.shape[0]
            established = np.zeros(rows.size, dtype=bool)
            established[known] = self._established[rows[known], actions[known]]
            self._window_updates += (rows.size, int(established.sum()))
            if established.any():
                moved = float(np.abs(flat[pair[established]] - before[established]).max())
                self._window_established_max_delta = max(self._window_established_max_delta, moved)
        return biggest

    def _open_window(self) -> None:
        """Start the final window: the greedy actions and the established pairs as they are now."""
        self._snapshot = self._greedy_snapshot()
        self._established = self.table.updates[: len(self.table)] >= self.config.established_min_visits
        self._window_max_delta = self._window_established_max_delta = 0.0
        self._window_updates = np.zeros(2, dtype=np.int64)

    def _greedy_snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        values = self.table.values()
        return np.arange(values.shape[0]), np.argmax(values, axis=1)

    # ----------------------------------------------------------------- metrics
    def final_metrics(self) -> dict[str, float | int | None]:
        """Technical metrics of the finished run (formulas in the module doc); the established ones are None for a
        run resumed from a checkpoint written before they existed."""
        values = self.table.values()
        changed = 0.0
        if self._snapshot is not None and self._snapshot[0].size:
            rows, before = self._snapshot
            changed = float(np.mean(np.argmax(values[rows], axis=1) != before) * 100.0)
        metrics: dict[str, float | int | None] = {
            "episodes": self.episodes_done,
            "q_table_states": len(self.table),
            "max_abs_delta_q_last_10k": float(self._window_max_delta),
            "policy_change_pct_last_10k": changed,
            "epsilon_final": float(self.log.epsilon[-1]) if self.log.epsilon else self.config.epsilon_start,
            "new_states_last_10k": None if self._snapshot is None else len(self.table) - int(self._snapshot[0].size),
            "established_min_visits": int(self.config.established_min_visits),
            "established_visit_pct_last_10k": None,
            "max_abs_delta_q_established_last_10k": None,
            "max_rel_delta_q_established_last_10k": None,
        }
        if self._established is not None:
            total, established = self._window_updates.tolist()
            biggest, value = self._window_established_max_delta, float(self.sim.reward.subscription_value)
            metrics["established_visit_pct_last_10k"] = float(100.0 * established / total) if total > 0 else 0.0
            metrics["max_abs_delta_q_established_last_10k"] = biggest
            metrics["max_rel_delta_q_established_last_10k"] = biggest / value
        return metrics

    # ----------------------------------------------------------------- checkpoints
    def save(self, path: Path) -> None:
        """Write Q table, state keys, RNG state, log and progress to one .npz file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.fromiter(self.table.index.keys(), dtype=np.uint64, count=len(self.table))
        extra = {
            "episodes_done": self.episodes_done,
            "rng": self.rng.bit_generator.state,
            "config": asdict(self.config),
            "log": asdict(self.log),
            "window_max_delta": self._window_max_delta,
            "window_established_max_delta": self._window_established_max_delta,
            "window_updates": self._window_updates,
        }
        snapshot = self._snapshot or (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle,
                q=self.table.values(),
                visits=self.table.visits[: len(self.table)],
                updates=self.table.updates[: len(self.table)],
                keys=keys,
                snapshot_rows=snapshot[0],
                snapshot_actions=snapshot[1],
                has_snapshot=np.array(self._snapshot is not None),
                established=self._established if self._established is not None else np.zeros((0, self.n_actions), bool),
                has_established=np.array(self._established is not None),
                extra=np.array(json.dumps(extra, default=_json_default)),
            )

    @classmethod
    def load(cls, path: Path, sim: FunnelSimulator) -> QLearningAgent:
        """Restore an agent saved by `save`; training continues exactly where it stopped."""
        try:
            data = np.load(path, allow_pickle=False)
            extra = json.loads(str(data["extra"]))
        except (OSError, ValueError, KeyError) as error:
            raise NextbestError(f"{path}: not a Q-learning checkpoint ({error})") from error
        config = extra["config"]
        if config.get("oversample") is not None:
            config["oversample"] = tuple(config["oversample"])
        agent = cls(sim, QLearningConfig(**config))
        agent.table.index = {int(k): i for i, k in enumerate(data["keys"].tolist())}
        agent.table._grow(len(agent.table.index))
        agent.table.q[: len(agent.table.index)] = data["q"]
        if "visits" in data:  # checkpoints written before the visit-count step size have none
            agent.table.visits[: len(agent.table.index)] = data["visits"]
        if "updates" in data:  # nor do those written before the convergence metrics (counts restart at zero)
            agent.table.updates[: len(agent.table.index)] = data["updates"]
        agent.rng.bit_generator.state = extra["rng"]
        agent.episodes_done = int(extra["episodes_done"])
        agent.log = TrainingLog(**extra["log"])
        agent._window_max_delta = float(extra["window_max_delta"])
        if bool(data["has_snapshot"]):
            agent._snapshot = (data["snapshot_rows"], data["snapshot_actions"])
        if "has_established" in data and bool(data["has_established"]):  # older checkpoints have none
            agent._established = data["established"]
            agent._window_established_max_delta = float(extra["window_established_max_delta"])
            agent._window_updates = np.asarray(extra["window_updates"], dtype=np.int64)
        return agent


def split_counts(size: int, shares: tuple[float, ...]) -> list[int]:
    """Integer counts of `size` items in the given shares (largest remainders get the rest)."""
    raw = np.asarray(shares, dtype=float) * size
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: size - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the most episodes in `directory`, if any."""
    found = sorted(directory.glob(f"{CHECKPOINT_PREFIX}*.npz"), key=lambda p: int(p.stem[len(CHECKPOINT_PREFIX) :]))
    return found[-1] if found else None


class _Window:
    """Accumulates batch outcomes between two metric points.

    Means are importance-weighted (Σ w·x / Σ w), so they estimate the lead population's values
    even when the batches are oversampled.
    """

    def __init__(self) -> None:
        self.business: list[np.ndarray] = []
        self.shaped: list[np.ndarray] = []
        self.subscribed: list[np.ndarray] = []
        self.weight: list[np.ndarray] = []

    def add(self, business: np.ndarray, shaped: np.ndarray, subscribed: np.ndarray, weight: np.ndarray) -> None:
        self.business.append(business)
        self.shaped.append(shaped)
        self.subscribed.append(subscribed.astype(float))
        self.weight.append(weight)

    def _mean(self, parts: list[np.ndarray]) -> float:
        weight = np.concatenate(self.weight)
        return float(np.sum(np.concatenate(parts) * weight) / np.sum(weight))

    def flush(self, agent: QLearningAgent, epsilon: float, max_delta: float) -> None:
        log = agent.log
        log.episodes.append(agent.episodes_done)
        log.epsilon.append(epsilon)
        log.mean_business_value.append(self._mean(self.business))
        log.mean_training_reward.append(self._mean(self.shaped))
        log.subscription_rate.append(self._mean(self.subscribed))
        log.states.append(len(agent.table))
        log.max_abs_delta_q.append(max_delta)
        self.__init__()


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value)}")

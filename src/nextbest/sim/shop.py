"""The shop world: customers, a hidden propensity for the new category, and session revenue (ground truth).

An online shop wants to show a **new product category** only to visitors predisposed to buy it. Showing it
takes the slot of a traditional category, which costs revenue from uninterested visitors. This module is
the ground truth every targeting model is measured against.

Generative model (all constants are the module-level ``ShopConfig`` defaults, fixed and documented; they were
set once from the ground truth alone, never from a model's result):

* **Demographics**: ``age`` ~ 18 + Gamma(shape 4, scale 6) clipped to [18, 80] and rounded; sex is man or
  woman with probability 1/2 each (``man + woman == 1``).
* **Purchase history** (the ``catN`` and ``uN`` flags): a latent-factor model. Every customer has ``k``
  latent tastes ``z ~ N(mu(age, sex), I)`` where the means move with age and sex (e.g. factor 0 is stronger
  for young men). Flag ``j`` is ``1`` with probability ``sigmoid(a_j + L_j . z)`` with sparse loadings
  ``L`` (each flag loads on one or two factors), so categories sharing a factor are positively correlated.
* **Hidden propensity** to buy the new category in a session:
  ``p = sigmoid(b0 + b_age (age - 40) / 10 + b_man man + sum_c w_c cat_c)`` over a few cross-selling
  categories (``CROSS_SELL``). It depends on observable features only, so the oracle is reachable with
  purchase history; it depends on age and sex only weakly, so an age/sex rule cannot reach it.
* **Session revenue**: ``R = base + show * (buy * gain_if_buy - cost_of_slot) + eps`` with
  ``base = base0 + base_per_category * (number of catN flags)``, ``buy ~ Bernoulli(p)`` and
  ``eps ~ N(0, noise_sd)``, noise_sd = 15 $ (session revenue sd about 16 $ all in). Expected uplift of
  showing: ``p * gain_if_buy - cost_of_slot``.
* The category structure (loadings, prevalences, factor shifts) comes from ``structure_seed`` (fixed), so
  every ``seed`` gives a new draw of customers from the same world and the calibration holds for all seeds.
* **The original system** (rolled back): show the new category to men younger than 35 (``original_policy``).

Calibration (``tests/test_shop_world.py`` checks it on the evaluation population): the original system
loses 0.30 $ per customer against showing nothing; the oracle (show iff ``p * gain > cost``) gains about
1.2 $ per customer over the original.

``World.expected_revenue`` scores a policy exactly: the mean over a fixed evaluation population (drawn from
the world's seed, disjoint stream from the training set) of the expected session revenue given the
decisions, with outcome noise integrated out.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.data.worlds import load_world_meta  # noqa: F401 - re-exported: the world folder's reader
from nextbest.errors import NextbestError

#: Cross-selling categories and their weights in the hidden propensity's logit.
CROSS_SELL: dict[str, float] = {"cat17": 1.6, "cat42": 1.3, "cat63": 1.1, "cat88": 0.9, "cat5": -1.0}


@dataclass(frozen=True)
class ShopConfig:
    """Every constant of the world (fixed; see the module docstring for the model)."""

    seed: int = 0  # draws the customers, purchases and splits
    structure_seed: int = 0  # draws the loadings and prevalences (fixed: the calibration relies on it)
    n_categories: int = 100
    n_u: int = 10
    n_factors: int = 6
    eval_customers: int = 200_000
    # propensity logit
    b0: float = -3.9
    b_age_per_decade: float = 0.15
    b_man: float = -0.20
    cross_sell: dict[str, float] = field(default_factory=lambda: dict(CROSS_SELL))
    # revenue model ($)
    base0: float = 55.0
    base_per_category: float = 0.5
    gain_if_buy: float = 30.0
    cost_of_slot: float = 4.69
    noise_sd: float = 15.0
    # the original age/sex system: show to men strictly younger than this age
    original_max_age: int = 35

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ShopConfig:
        known = {name for name in cls.__dataclass_fields__}
        unknown = set(payload) - known
        if unknown:
            raise NextbestError(f"unknown shop world settings: {sorted(unknown)}")
        return cls(**payload)


EXAMPLE_MESSAGE = Path(__file__).resolve().parent / "specs" / "shop_example_historic.json"


@functools.cache
def _example_keys() -> tuple[str, ...]:
    pairs = json.loads(EXAMPLE_MESSAGE.read_text(), object_pairs_hook=list)
    products = next(value for key, value in pairs if key == "products")
    return tuple(dict.fromkeys(key for key, _ in products))


def example_keys() -> list[str]:
    """The product keys of the shop architecture document's example message (100 flags, in order of appearance)."""
    return list(_example_keys())


@dataclass(frozen=True)
class FeedStyle:
    """How the feed writes a historic message (see ``World.feed_messages``); the default writes it cleanly.

    ``keys``: ``all`` (every flag of the world) or ``example`` (the example message's key set: 100 of the default
    world's 110 flags; cat1, cat4, cat5, cat9, cat39, cat92, cat95, cat99, u7 and u8 are never named).
    ``repeat_rate``: chance that a named flag is written twice; ``conflict_share``: share of those whose second
    record says the opposite; ``missing_rate``: chance that a flag of the key set is left out of one message.
    ``REALISTIC`` takes its rates from the example: 13 of its 100 keys repeated, 2 of the 13 in conflict.
    """

    keys: str = "all"
    repeat_rate: float = 0.0
    conflict_share: float = 0.0
    missing_rate: float = 0.0
    shuffle: bool = False

    KEY_SETS = ("all", "example")

    def __post_init__(self) -> None:
        if self.keys not in self.KEY_SETS:
            raise NextbestError(f"feed key set {self.keys!r}: choose one of {', '.join(self.KEY_SETS)}")
        for name in ("repeat_rate", "conflict_share", "missing_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise NextbestError(f"feed {name.replace('_', ' ')} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def named(cls, name: str, **overrides: Any) -> FeedStyle:
        """``clean`` or ``realistic``, with some rates overridden (None keeps the preset's)."""
        presets = {"clean": cls(), "realistic": REALISTIC_FEED}
        if name not in presets:
            raise NextbestError(f"feed {name!r}: choose one of {', '.join(presets)}")
        given = {key: value for key, value in overrides.items() if value is not None}
        return cls(**{**asdict(presets[name]), **given})

    def key_mask(self, names: Sequence[str]) -> np.ndarray:
        """Which of ``names`` the key set may name."""
        if self.keys == "all":
            return np.ones(len(names), dtype=bool)
        allowed = set(example_keys())
        return np.array([name in allowed for name in names])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Customers:
    """A batch of customers as arrays (the vectorized form of the message schema)."""

    uuid: np.ndarray  # int64
    age: np.ndarray  # int64
    man: np.ndarray  # int64 0/1
    cats: np.ndarray  # (n, n_categories) int8
    us: np.ndarray  # (n, n_u) int8

    def __len__(self) -> int:
        return int(self.uuid.shape[0])


class World:
    """The shop world with ground truth. ``World(seed)`` is fully determined by its seed and settings."""

    def __init__(self, seed: int = 0, n_categories: int = 100, n_u: int = 10, **settings: Any) -> None:
        self.config = ShopConfig(seed=seed, n_categories=n_categories, n_u=n_u, **settings)
        cfg = self.config
        for name in cfg.cross_sell:
            if not name.startswith("cat") or not 0 <= int(name[3:]) < n_categories:
                raise NextbestError(f"cross-selling category {name} is not one of cat0..cat{n_categories - 1}")
        rng = np.random.default_rng([cfg.structure_seed, 1])
        n_flags = n_categories + n_u
        k = cfg.n_factors
        # sparse loadings: each flag loads on a main factor, half of them on a second one
        loadings = np.zeros((n_flags, k))
        main = rng.integers(0, k, n_flags)
        loadings[np.arange(n_flags), main] = rng.uniform(0.8, 1.8, n_flags)
        second = rng.integers(0, k, n_flags)
        has_second = rng.random(n_flags) < 0.5
        loadings[np.arange(n_flags)[has_second], second[has_second]] += rng.uniform(0.3, 0.8, has_second.sum())
        self._loadings = loadings
        self._intercepts = rng.uniform(-3.5, -0.8, n_flags)  # prevalences of roughly 3 % to 35 %
        # factor means move with age (per decade from 40) and sex
        self._factor_age = rng.normal(0.0, 0.25, k)
        self._factor_man = rng.normal(0.0, 0.4, k)
        self._factor_age[0], self._factor_man[0] = -0.35, 0.6  # factor 0: young men
        self._cross_idx = np.array([int(name[3:]) for name in cfg.cross_sell], dtype=int)
        self._cross_w = np.array(list(cfg.cross_sell.values()), dtype=float)
        self._eval: Customers | None = None

    # ------------------------------------------------------------------ names and schema
    @property
    def category_names(self) -> list[str]:
        return [f"cat{j}" for j in range(self.config.n_categories)]

    @property
    def u_names(self) -> list[str]:
        return [f"u{j}" for j in range(self.config.n_u)]

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, stream: int = 2, uuid_start: int = 100_000) -> Customers:
        """Draw ``n`` customers from the world's population (``stream`` picks an independent random stream)."""
        if n <= 0:
            raise NextbestError(f"the number of customers must be positive, got {n}")
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, stream])
        age = np.clip(np.rint(18 + rng.gamma(4.0, 6.0, n)), 18, 80).astype(np.int64)
        man = (rng.random(n) < 0.5).astype(np.int64)
        decade = (age - 40) / 10.0
        shift = decade[:, None] * self._factor_age + man[:, None] * self._factor_man
        z = rng.standard_normal((n, cfg.n_factors)) + shift
        logits = self._intercepts + z @ self._loadings.T
        flags = (rng.random(logits.shape) < _sigmoid(logits)).astype(np.int8)
        uuid = uuid_start + rng.permutation(n * 4)[:n].astype(np.int64)
        return Customers(uuid, age, man, flags[:, : cfg.n_categories], flags[:, cfg.n_categories :])

    @property
    def evaluation_customers(self) -> Customers:
        """The fixed population that ``expected_revenue`` averages over (its own random stream)."""
        if self._eval is None:
            self._eval = self.sample(self.config.eval_customers, stream=3, uuid_start=50_000_000)
        return self._eval

    # ------------------------------------------------------------------ ground truth
    def propensity(self, customers: Customers) -> np.ndarray:
        """Hidden probability that each customer buys the new category in a session where it is shown."""
        cfg = self.config
        logit = (
            cfg.b0
            + cfg.b_age_per_decade * (customers.age - 40) / 10.0
            + cfg.b_man * customers.man
            + customers.cats[:, self._cross_idx] @ self._cross_w
        )
        return _sigmoid(logit)

    def base_revenue(self, customers: Customers) -> np.ndarray:
        """Expected session revenue when the new category is not shown."""
        cfg = self.config
        return cfg.base0 + cfg.base_per_category * customers.cats.sum(axis=1)

    def uplift(self, customers: Customers) -> np.ndarray:
        """Expected revenue change of showing the new category: ``p * gain_if_buy - cost_of_slot``."""
        cfg = self.config
        return self.propensity(customers) * cfg.gain_if_buy - cfg.cost_of_slot

    def original_policy(self, customers: Customers) -> np.ndarray:
        """The shop's original (rolled-back) system: show the new category to men younger than 35."""
        return ((customers.man == 1) & (customers.age < self.config.original_max_age)).astype(np.int8)

    def oracle_policy(self, customers: Customers) -> np.ndarray:
        """Show exactly when the expected uplift is positive (knows the hidden propensity)."""
        return (self.uplift(customers) > 0).astype(np.int8)

    def expected_revenue(self, policy: Callable[[Customers], Any] | Sequence[int] | np.ndarray | str) -> float:
        """Exact expected revenue per customer of a policy on the evaluation population.

        ``policy`` is a callable ``Customers -> 0/1 decisions``, an array of decisions aligned with
        ``evaluation_customers``, or one of ``"none"``, ``"all"``, ``"original"``, ``"oracle"``.
        Outcome noise and the purchase draw are integrated out: ``mean(base + d * (p * gain - cost))``.
        """
        customers = self.evaluation_customers
        n = len(customers)
        if isinstance(policy, str):
            named = {
                "none": lambda c: np.zeros(len(c), dtype=np.int8),
                "all": lambda c: np.ones(len(c), dtype=np.int8),
                "original": self.original_policy,
                "oracle": self.oracle_policy,
            }
            if policy not in named:
                raise NextbestError(f"unknown named policy {policy!r}; use one of {sorted(named)}")
            policy = named[policy]
        decisions = np.asarray(policy(customers) if callable(policy) else policy, dtype=float).ravel()
        if decisions.shape[0] != n:
            raise NextbestError(f"{decisions.shape[0]} decisions for {n} evaluation customers")
        if not np.all((decisions == 0) | (decisions == 1)):
            raise NextbestError("decisions must be 0 (don't show) or 1 (show)")
        return float(np.mean(self.base_revenue(customers) + decisions * self.uplift(customers)))

    def simulate_revenue(self, customers: Customers, decisions: np.ndarray, stream: int = 9) -> np.ndarray:
        """Sampled session revenues (purchase draw and N(0, noise_sd) noise) for given decisions."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, stream])
        decisions = np.asarray(decisions, dtype=float)
        buy = rng.random(len(customers)) < self.propensity(customers)
        noise = rng.normal(0.0, cfg.noise_sd, len(customers))
        return self.base_revenue(customers) + decisions * (buy * cfg.gain_if_buy - cfg.cost_of_slot) + noise

    # ------------------------------------------------------------------ the platform's message schema
    def messages(self, customers: Customers) -> tuple[list[dict[str, int]], list[dict[str, Any]]]:
        """Demographic and historic messages in the platform's exact schema.

        ``{"uuid": 404180, "age": 41, "man": 1, "woman": 0}`` and
        ``{"uuid": 404180, "products": {"cat0": 0, ..., "u0": 0, ...}}`` (plain Python ints).
        """
        names = self.category_names + self.u_names
        flags = np.concatenate([customers.cats, customers.us], axis=1).tolist()
        demographic = [
            {"uuid": int(u), "age": int(a), "man": int(m), "woman": int(1 - m)}
            for u, a, m in zip(customers.uuid.tolist(), customers.age.tolist(), customers.man.tolist())
        ]
        historic = [
            {"uuid": int(u), "products": dict(zip(names, row))} for u, row in zip(customers.uuid.tolist(), flags)
        ]
        return demographic, historic

    def feed_messages(
        self, customers: Customers, style: FeedStyle, rng: np.random.Generator
    ) -> tuple[list[bytes], list[bytes]]:
        """The two halves as raw JSON written the way ``style`` says the shop's feed writes them.

        Demographic halves are plain. A historic half names the flags of ``style.keys`` (all, or the example
        message's key set) in a shuffled order (shuffled as the example's are) less a random ``missing_rate`` share;
        each named flag is written a second time with probability ``repeat_rate``, the second record holding the
        opposite value for a ``conflict_share`` of them, and the two records land in random places. The customer's
        true flags stay in ``customers`` (the ground truth); the message is what a decoder must read.
        """
        names = np.array(self.category_names + self.u_names)
        allowed = style.key_mask(names.tolist())
        flags = np.concatenate([customers.cats, customers.us], axis=1)
        demographic_records, historic_records = self.messages(customers)
        demographic = [json.dumps(record).encode() for record in demographic_records]
        if style == FeedStyle():
            return demographic, [json.dumps(record).encode() for record in historic_records]
        historic = []
        for uuid, row in zip(customers.uuid.tolist(), flags):
            named = np.flatnonzero(allowed & (rng.random(len(names)) >= style.missing_rate))
            repeated = named[rng.random(len(named)) < style.repeat_rate]
            conflicting = rng.random(len(repeated)) < style.conflict_share
            keys = np.concatenate([named, repeated])
            values = np.concatenate([row[named], np.where(conflicting, 1 - row[repeated], row[repeated])])
            if style.shuffle:
                order = rng.permutation(len(keys))
                keys, values = keys[order], values[order]
            body = ", ".join(f'"{key}": {value}' for key, value in zip(names[keys].tolist(), values.tolist()))
            historic.append(f'{{"uuid": {uuid}, "products": {{{body}}}}}'.encode())
        return demographic, historic

    def frame(self, customers: Customers) -> pd.DataFrame:
        """Customers as a flat DataFrame: uuid, age, man, woman, cat0.., u0.. (the store's table layout)."""
        data: dict[str, np.ndarray] = {
            "uuid": customers.uuid,
            "age": customers.age,
            "man": customers.man,
            "woman": 1 - customers.man,
        }
        frame = pd.DataFrame(data)
        flags = pd.DataFrame(
            np.concatenate([customers.cats, customers.us], axis=1),
            columns=self.category_names + self.u_names,
        )
        return pd.concat([frame, flags], axis=1)

    # ------------------------------------------------------------------ the data scientists' training set
    def training_set(self, n: int = 500_000, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The store's data: features + ``bought`` (bought the new category, 0/1), split into train and test.

        Store customers can buy the new category in the physical store regardless of the web display, so
        ``bought ~ Bernoulli(p)``. The split is random (seeded); the evaluation population is disjoint.
        """
        if not 0 < test_fraction < 1:
            raise NextbestError(f"test fraction must be in (0, 1), got {test_fraction}")
        customers = self.sample(n, stream=2)
        rng = np.random.default_rng([self.config.seed, 4])
        frame = self.frame(customers)
        frame["bought"] = (rng.random(n) < self.propensity(customers)).astype(np.int8)
        is_test = rng.random(n) < test_fraction
        return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)

    def economics(self) -> dict[str, float]:
        """What the business tells its data scientists: margin of a buyer and revenue cost of the slot."""
        return {"gain_if_buy": self.config.gain_if_buy, "cost_of_slot": self.config.cost_of_slot}

    def summary(self) -> dict[str, float]:
        """Ground-truth figures per customer on the evaluation population."""
        none = self.expected_revenue("none")
        original = self.expected_revenue("original")
        oracle = self.expected_revenue("oracle")
        return {
            "show_none": none,
            "show_all": self.expected_revenue("all"),
            "original": original,
            "oracle": oracle,
            "original_vs_show_none": original - none,
            "oracle_vs_original": oracle - original,
        }


#: The feed as the example message shows it: its key set, 13% of keys repeated, 15% of repeats in conflict, 1% more
#: flags left out at random, keys in random order.
REALISTIC_FEED = FeedStyle(keys="example", repeat_rate=0.13, conflict_share=0.15, missing_rate=0.01, shuffle=True)


def write_world_data(world: World, directory: Path, customers: int, test_fraction: float = 0.2) -> dict[str, Any]:
    """Write ``train.parquet``, ``test.parquet`` and ``world.json`` (settings, so the world can be rebuilt)."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = world.training_set(customers, test_fraction=test_fraction)
    train.to_parquet(directory / "train.parquet", index=False)
    test.to_parquet(directory / "test.parquet", index=False)
    meta = {
        "world": world.config.to_dict(),
        "customers": customers,
        "test_fraction": test_fraction,
        "train_rows": len(train),
        "test_rows": len(test),
        "economics": world.economics(),
        "ground_truth": world.summary(),
    }
    (directory / "world.json").write_text(json.dumps(meta, indent=2))
    return meta


def world_from_config(payload: dict[str, Any]) -> World:
    """Rebuild a world from ``ShopConfig.to_dict()``."""
    cfg = ShopConfig.from_dict(payload)
    settings = cfg.to_dict()
    return World(settings.pop("seed"), settings.pop("n_categories"), settings.pop("n_u"), **settings)

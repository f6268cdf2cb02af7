"""The one policy contract: every decision-maker returns the actions it chose **and the probability of each**.

    decision = policy.choose(observations, rng)     # Decision(actions, probabilities, distribution | None)
    actions = policy(observations, rng)             # the actions alone (``choose(...).actions``)

See ``nextbest.policies.contract`` for the contract and the generic policies built on it.
"""

from nextbest.policies.contract import (
    Decision,
    DeterministicPolicy,
    EpsilonGreedy,
    FixedAction,
    Policy,
    UniformRandom,
    check_decision,
)

__all__ = ["Decision", "DeterministicPolicy", "EpsilonGreedy", "FixedAction", "Policy", "UniformRandom",
           "check_decision"]

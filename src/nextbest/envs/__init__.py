"""Gymnasium environments wrapping the simulators of `nextbest.sim`, and their registration.

`import nextbest.envs` registers "nextbest/CRMFunnel-v0" and "nextbest/SessionRetention-v0", so that
`gymnasium.make("nextbest/CRMFunnel-v0")` works afterwards; `gymnasium.make("nextbest.envs:nextbest/CRMFunnel-v0")`
imports this module itself. Gymnasium 1.x no longer reads the "gymnasium.envs" entry-point group
that pyproject.toml declares, so one of the two is needed.
"""

from __future__ import annotations

import gymnasium

from nextbest.envs.crm import ENV_ID, CRMFunnelEnv, default_simulator

#: Registered by name only: importing the session environment loads scikit-learn, which `import nextbest.envs`
#: must not need (the CRM environment works without it).
SESSION_ENV_ID = "nextbest/SessionRetention-v0"


def register_envs() -> None:
    """Register the nextbest environments with Gymnasium (idempotent).

    No `max_episode_steps`: the simulator ends every episode at its own horizon (truncated=True),
    and a fixed TimeLimit would contradict a simulator built with another horizon.
    """
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="nextbest.envs.crm:CRMFunnelEnv")
    if SESSION_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=SESSION_ENV_ID, entry_point="nextbest.envs.sessions:SessionRetentionEnv")


register_envs()


def __getattr__(name: str) -> object:
    if name == "SessionRetentionEnv":
        from nextbest.envs.sessions import SessionRetentionEnv

        return SessionRetentionEnv
    raise AttributeError(f"module 'nextbest.envs' has no attribute {name!r}")


__all__ = ["ENV_ID", "SESSION_ENV_ID", "CRMFunnelEnv", "SessionRetentionEnv", "default_simulator", "register_envs"]

"""Test helpers shared by the environment tests."""

from __future__ import annotations

from nextbest.sim import FunnelSimulator, FunnelState


class FixedWillingness(FunnelSimulator):
    """The same dynamics with every latent threshold set to `value`: 0 takes every step, 1 none."""

    def __init__(self, base: FunnelSimulator, value: float) -> None:
        super().__init__(base.model, reward=base.reward, config=base.config)
        self.value = value

    def reset(self, codes, rng, logged=None) -> FunnelState:
        state = super().reset(codes, rng, logged)
        state.u[:] = self.value
        return state

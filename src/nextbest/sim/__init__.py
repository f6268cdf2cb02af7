"""Simulators of customer behaviour learned from logged data: vectorized numpy around one compiled (numba) step
kernel per simulator, shared by the batched path and the single Gymnasium env."""

from nextbest.sim.funnel import (
    ACTION_COSTS,
    ACTIONS,
    OBS_DIM,
    STAGES,
    FunnelConfig,
    FunnelLayout,
    FunnelSimulator,
    FunnelState,
    RewardConfig,
    fit_simulator,
    simulator_from_frame,
)
from nextbest.sim.funnel_model import TARGETS, FunnelModel
from nextbest.sim.journeys import STEPS, Journeys, journeys_from_frame

__all__ = [
    "ACTIONS",
    "ACTION_COSTS",
    "OBS_DIM",
    "STAGES",
    "STEPS",
    "TARGETS",
    "FunnelConfig",
    "FunnelLayout",
    "FunnelModel",
    "FunnelSimulator",
    "FunnelState",
    "Journeys",
    "RewardConfig",
    "fit_simulator",
    "simulator_from_frame",
    "journeys_from_frame",
]

"""Agents: tabular Q-learning, Stable-Baselines3 adapters, baselines and the session agents."""

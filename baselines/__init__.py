"""Baseline autoscaling policies (HPA, static, oracle) compared against the RL agent."""

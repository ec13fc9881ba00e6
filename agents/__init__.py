"""RL agents for K8sGpu-v0: PPO training (``python -m train``) and trained policies.

* :mod:`agents.ppo_config` and ``agents/ppo.yaml``: the training configuration;
* :mod:`agents.plan`: command-line arguments to a checked plan (every user mistake);
* :mod:`agents.trainer`, :mod:`agents.vec_env`, :mod:`agents.callbacks`: the training run;
* :mod:`agents.run_dir`: the run directory, its manifest and atomic writes;
* :mod:`agents.policy`: :class:`~agents.policy.PPOPolicy`, a trained agent with SB3's
  ``predict`` for a plain K8sGpuEnv.

Importing ``agents`` stays cheap: torch and stable-baselines3 load with the modules that
need them.
"""


def __getattr__(name: str) -> object:  # lazy, as envs/__init__.py does
    if name == "PPOPolicy":
        from agents.policy import PPOPolicy

        return PPOPolicy
    raise AttributeError(name)


__all__ = ["PPOPolicy"]

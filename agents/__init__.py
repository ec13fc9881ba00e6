"""RL agents for K8sGpu-v0: PPO training (``python -m train``) and trained policies.

* :mod:`k8s_gpu_rl.agents.ppo_config` and ``agents/ppo.yaml``: the training configuration;
* :mod:`k8s_gpu_rl.agents.plan`: command-line arguments to a checked plan (every user mistake);
* :mod:`k8s_gpu_rl.agents.trainer`, :mod:`k8s_gpu_rl.agents.vec_env`, :mod:`k8s_gpu_rl.agents.callbacks`: the training run;
* :mod:`k8s_gpu_rl.agents.run_dir`: the run directory, its manifest and atomic writes;
* :mod:`k8s_gpu_rl.agents.policy`: :class:`~k8s_gpu_rl.agents.policy.PPOPolicy`, a trained agent with SB3's
  ``predict`` for a plain K8sGpuEnv.

Importing ``agents`` stays cheap: torch and stable-baselines3 load with the modules that
need them.
"""


def __getattr__(name: str) -> object:  # lazy, as envs/__init__.py does
    if name == "PPOPolicy":
        from k8s_gpu_rl.agents.policy import PPOPolicy

        return PPOPolicy
    raise AttributeError(name)


__all__ = ["PPOPolicy"]

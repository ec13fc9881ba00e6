"""k8s-gpu-rl: RL autoscaling of GPU inference on Kubernetes, against the HPA.

The project's shared, dependency-free helpers live here: the error hierarchy and the
typed-config loader. The simulator, environment, baselines and load profiles are the
top-level packages ``envs``, ``baselines``, ``agents`` and ``loadprofiles``.
"""

__version__ = "0.1.0"

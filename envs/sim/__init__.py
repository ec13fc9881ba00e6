"""The simulated cluster: Triton MobileNetV4 pods on HAMi-shared GPUs under Locust load.

Nothing here imports Gymnasium: ``k8s_gpu_rl.envs.k8s_gpu_env`` translates between this simulator
and RL. Entry points: :class:`~k8s_gpu_rl.envs.sim.cluster.SimCluster` and
:func:`~k8s_gpu_rl.envs.sim.config.load_cluster_config`.
"""

from k8s_gpu_rl.envs.sim.cluster import Interval, SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig, available_clusters, load_cluster_config

__all__ = ["ClusterConfig", "Interval", "SimCluster", "available_clusters", "load_cluster_config"]

"""The simulated cluster: Triton MobileNetV4 pods on HAMi-shared GPUs under Locust load.

Nothing here imports Gymnasium: ``envs.k8s_gpu_env`` translates between this simulator
and RL. Entry points: :class:`~envs.sim.cluster.SimCluster` and
:func:`~envs.sim.config.load_cluster_config`.
"""

from envs.sim.cluster import Interval, SimCluster
from envs.sim.config import ClusterConfig, available_clusters, load_cluster_config

__all__ = ["ClusterConfig", "Interval", "SimCluster", "available_clusters", "load_cluster_config"]

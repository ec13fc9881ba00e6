"""The multi-cluster GPU job-scheduling simulator (no Gymnasium here).

Entry points: :class:`~k8s_gpu_rl.envs.jobs.sim.world.World`,
:func:`~k8s_gpu_rl.envs.jobs.sim.config.load_world`,
:func:`~k8s_gpu_rl.envs.jobs.sim.jobs.load_queue` and
:func:`~k8s_gpu_rl.envs.jobs.sim.jobs.generate_queue`.
"""

from k8s_gpu_rl.envs.jobs.sim.config import WorldConfig, available_worlds, load_world
from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec, available_queues, generate_queue, load_queue
from k8s_gpu_rl.envs.jobs.sim.state import Phase
from k8s_gpu_rl.envs.jobs.sim.world import PlacementError, World

__all__ = [
    "JobSpec",
    "Phase",
    "PlacementError",
    "World",
    "WorldConfig",
    "available_queues",
    "available_worlds",
    "generate_queue",
    "load_queue",
    "load_world",
]

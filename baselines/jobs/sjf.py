"""``sjf-predicted``: shortest predicted job first, all workers at once (HAMi's choice of
GPUs), on the cluster where the predicted transfer plus run time is shortest; the user's
requests as written, reservations ignored."""

from __future__ import annotations

from k8s_gpu_rl.baselines.jobs.base import JobPolicy, gang
from k8s_gpu_rl.envs.jobs.sim.dynamics import transfer_gib
from k8s_gpu_rl.envs.jobs.sim.world import Placement


def predicted_finish_s(env, i: int, c: int, gpus: tuple[int, ...]) -> float:  # noqa: ANN001
    """Transfer plus predicted run time of job ``i`` on ``gpus`` of cluster ``c``."""
    w = env.world
    spec = w.jobs[i].spec
    slowest = max(float(env.pred_runtime[i, env.type_index[w.gpu_type[c][g]]]) for g in gpus)
    link = w.config.clusters[c].link
    return link.transfer_s(transfer_gib(w, c, spec.model_name, spec.data_size)) + slowest


def best_over_clusters(env, i: int, mem: float, cores: float, ok=None) -> Placement | None:  # noqa: ANN001
    """The gang placement with the earliest predicted finish, over the allowed clusters."""
    w = env.world
    j = w.jobs[i]
    best: tuple[float, Placement] | None = None
    for c in [j.cluster] if j.cluster >= 0 else range(len(w.slots)):
        gpus = gang(w, i, c, mem, cores, ok)
        if gpus is None:
            continue
        t = predicted_finish_s(env, i, c, gpus)
        if best is None or t < best[0]:
            best = (t, Placement(i, c, gpus, mem, cores))
    return None if best is None else best[1]


class SjfPredictedPolicy(JobPolicy):
    name = "sjf-predicted"

    def choose(self) -> Placement | None:
        env = self.env
        w = env.world
        order = sorted(w.waiting(), key=lambda i: (float(env.pred_runtime[i].min()), i))
        for i in order:
            mem, cores = w.request_of(i)
            p = best_over_clusters(env, i, mem, cores)
            if p is not None:
                return p
        return None

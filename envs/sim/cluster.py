"""The simulated cluster: the Deployment, HAMi placement, pod lifecycle, faults, scrapes.

:class:`SimCluster` knows nothing of Gymnasium. It is driven by two verbs, the ones a
controller has on a real cluster (``scale`` and ``set_share``), and ``advance`` moves
cluster time forward. Requests are simulated one by one by the compiled kernel
(``k8s_gpu_rl.envs.sim.kernel``); this module decides, between kernel runs, everything a pod's
lifecycle needs, at the instants it happens (a pod turning ready, a crash, a restart, a
termination, a fault, a scrape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from k8s_gpu_rl.envs.sim import hami, kernel
from k8s_gpu_rl.envs.sim import state as st
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.faults import FaultsMixin
from k8s_gpu_rl.envs.sim.pods import (
    LIVE,
    Phase,
    Pod,
    Template,
    deletion_order,
    rollout_can_start,
    rollout_plan,
)
from k8s_gpu_rl.envs.sim.prometheus import PromSim
from k8s_gpu_rl.envs.sim.rng import seed_state
from k8s_gpu_rl.envs.sim.scrape import scrape
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.loadprofiles import LoadProfile, user_events


@dataclass
class Interval:
    """What the clients saw between two ``advance`` calls."""

    start_s: float
    end_s: float
    latencies_s: np.ndarray
    """Client-side latency of every finished request (failures included)."""
    ok: np.ndarray
    """Whether each request succeeded."""
    vgpu_s: float = 0.0
    """Integral over the interval of the vGPU share held (sum of gpucores/100 of pods on a GPU)."""
    replica_s: float = 0.0
    """Integral of ready replicas."""
    gpu_work_s: float = 0.0
    """GPU compute done, in seconds of a whole GPU."""
    cpu_s: float = 0.0
    """CPU seconds the pods used (request handling and idle)."""
    cpu_request_s: float = 0.0
    """Integral of the CPU requests of running pods (core-seconds)."""
    gpu_memory_mib_s: float = 0.0
    """Integral of the GPU memory the pods use (MiB-seconds)."""
    events: list[str] = field(default_factory=list)
    """Faults and notable cluster events, human-readable."""
    users: int = 0
    """Locust users running at the end of the interval."""
    tenant_gpu_s: float = 0.0
    """Compute the co-located tenant got, in seconds of a whole GPU (0: no tenant)."""
    inference: np.ndarray | None = None
    """Per request in ``latencies_s``: True for inference, False for a cheap GET of the
    task mix (``client.request_mix``; without one every request is inference)."""


class SimCluster(FaultsMixin):
    """A request-level simulation of Triton MobileNetV4 pods on HAMi-shared GPUs."""

    def __init__(self, config: ClusterConfig, profile: LoadProfile, seed: int) -> None:
        self.config = config
        self.profile = profile
        self._np_random = np.random.default_rng(seed)
        self.ev_t, self.ev_users = user_events(profile)
        max_users = int(self.ev_users.max(initial=0)) + 1
        self.gpu_list = config.gpus
        self.s = st.allocate(
            max_users,
            config.max_pods,
            len(self.gpu_list),
            1 << 14,
            locust_processes=config.client.locust_processes or 0,
        )
        self._cs = kernel.c_state(self.s)
        self._set_params()
        self.s.rng[:] = seed_state(int(self._np_random.integers(0, 2**63)))
        self.s.g_speed[:] = [g.speed for _, g in self.gpu_list]
        self.prom = PromSim(len(self.gpu_list))
        self.now_s = 0.0
        self.pods: list[Pod] = []
        self._slot_pod: list[Pod | None] = [None] * config.max_pods
        self._next_uid = 0
        self._rec_read = 0
        self._events: list[str] = []
        self._capacity_cache: dict[tuple, int] = {}
        self._retired_cpu_s = 0.0
        self.gpu_healthy = np.ones(len(self.gpu_list), bool)
        self.node_healthy = np.ones(len(config.nodes), bool)
        self._scrape_gap_until = -math.inf
        self._faults = sorted(config.faults, key=lambda f: f.at_s)
        self._fault_pos = 0
        self._recover_at: list[tuple[float, str, int]] = []
        phase = float(self._np_random.uniform(0.0, config.metrics.scrape_interval_s))
        self._next_scrape_s = phase
        dep = config.deployment
        self.spec_replicas = dep.replicas
        self.template = Template(dep.gpucores, dep.gpumem_mib)
        self._warm_start()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_cs"]  # raw pointers: rebuilt from the arrays on unpickling
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cs = kernel.c_state(self.s)

    # --- controller verbs -------------------------------------------------
    def scale(self, replicas: int) -> None:
        """Set the Deployment's ``spec.replicas`` (the scale subresource)."""
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        self.spec_replicas = int(replicas)
        self._reconcile()

    def set_share(self, gpucores: int, gpumem_mib: int) -> None:
        """Patch the container's HAMi limits; a changed template rolls the pods."""
        template = Template(int(gpucores), int(gpumem_mib))
        if template != self.template:
            self.template = template
            self._events.append(
                f"{self.now_s:.0f}s rollout to gpucores={gpucores} gpumem={gpumem_mib}MiB"
            )
            self._reconcile()

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        """Pods of this share HAMi could place on the healthy GPUs if the Deployment owned none."""
        key = (gpucores, gpumem_mib, self.gpu_healthy.tobytes(), self.node_healthy.tobytes())
        if key not in self._capacity_cache:
            slots = self._gpu_slots(exclude_deployment=True)
            self._capacity_cache[key] = hami.capacity(slots, gpumem_mib, gpucores)
        return self._capacity_cache[key]

    def rollout_in_progress(self) -> bool:
        """Whether a live pod still has an older template."""
        return any(p.template != self.template for p in self.pods if p.phase in LIVE)

    def rollout_can_start(self, replicas: int, gpucores: int, gpumem_mib: int) -> bool:
        """Whether a rollout to this share can start now and finish (:func:`pods.rollout_can_start`)."""
        d, h = self.config.deployment, self.config.hami
        return rollout_can_start(
            self.template,
            Template(gpucores, gpumem_mib),
            self.rollout_in_progress(),
            replicas,
            d.max_surge,
            d.max_unavailable,
            lambda: (
                hami.place(
                    self._gpu_slots(),
                    gpumem_mib,
                    gpucores,
                    h.node_scheduler_policy,
                    h.gpu_scheduler_policy,
                )
                is not None
            ),
        )

    # --- time -------------------------------------------------------------
    def advance(self, duration_s: float) -> Interval:
        """Run the cluster for ``duration_s`` seconds of cluster time."""
        start, end = self.now_s, self.now_s + duration_s
        vgpu_s = replica_s = running_s = mem_s = 0.0
        work_before = float(self.s.g_work_s.sum())
        tenant_before = float(self.s.tenant[0])
        cpu_before = self._cpu_total()
        while True:
            t_next = min(self._next_control_s(), end)
            self._run_kernel(t_next)
            held, ready, running, mem = self._held_share()
            vgpu_s += held * (t_next - self.now_s)
            replica_s += ready * (t_next - self.now_s)
            running_s += running * (t_next - self.now_s)
            mem_s += mem * (t_next - self.now_s)
            self.now_s = t_next
            self._handle_instant(t_next)
            if t_next >= end:
                break
        n = int(self.s.ctr[st.K_REC_N])
        lo, self._rec_read = self._rec_read, n
        events, self._events = self._events, []
        work_s = (float(self.s.g_work_s.sum()) - work_before) / self.config.serving.util_overread
        cpu_s = self._cpu_total() - cpu_before + running_s * self.config.serving.idle_cpu_cores
        return Interval(
            start,
            end,
            self.s.rec_lat_s[lo:n].copy(),
            self.s.rec_ok[lo:n] == 1,
            vgpu_s,
            replica_s,
            work_s,
            cpu_s,
            running_s * self.config.deployment.cpu_request,
            mem_s,
            events,
            int(self.s.ctr[st.K_USERS]),
            float(self.s.tenant[0]) - tenant_before,
            self.s.rec_kind[lo:n] == st.KIND_INFER,
        )

    def _cpu_total(self) -> float:
        """CPU seconds of request handling since the start, over every pod that ever ran."""
        return self._retired_cpu_s + float(self.s.pod_counters[:, st.C_CPU_S].sum())

    def _held_share(self) -> tuple[float, int, int, float]:
        """Since the last instant: (sum of gpucores/100 of pods holding a GPU, ready pods,
        running pods, GPU memory the loaded pods use in MiB)."""
        held, ready, running, mem = 0.0, 0, 0, 0.0
        for pod in self.pods:
            if pod.gpu >= 0:
                held += pod.template.gpucores / 100.0
                running += pod.phase != Phase.BACKOFF
                if pod.phase in (Phase.READY, Phase.TERMINATING) or pod.loaded_s <= self.now_s:
                    mem += self.config.serving.model_memory_mib
            ready += pod.phase == Phase.READY
        return held, ready, running, mem

    def _run_kernel(self, t_end: float) -> None:
        while (
            status := kernel.run_until(self._cs, t_end, self.ev_t, self.ev_users)
        ) != kernel.DONE:
            if status != kernel.RECORDS_FULL:
                raise BackendError(f"serving kernel failed with status {status}")
            self.s = st.grow_records(self.s, 2 * self.s.rec_t.shape[0])
            self._cs = kernel.c_state(self.s)

    def _next_control_s(self) -> float:
        t = min(self._next_scrape_s, self._next_fault_s())
        for pod in self.pods:
            t = min(t, _pod_next_change(pod))
        for at, _, _ in self._recover_at:
            t = min(t, at)
        return t

    def _handle_instant(self, t: float) -> None:
        self._apply_faults(t)
        changed = False
        for pod in list(self.pods):
            changed |= self._advance_pod(pod, t)
        if changed:
            self._reconcile()
        if t >= self._next_scrape_s:
            if t >= self._scrape_gap_until:
                scrape(self, t)
            self._next_scrape_s += self.config.metrics.scrape_interval_s

    # --- pod lifecycle ----------------------------------------------------
    def _advance_pod(self, pod: Pod, t: float) -> bool:
        """Move ``pod`` through the transitions due at ``t``; True if the Deployment must react."""
        if pod.phase == Phase.STARTING and pod.loaded_s <= t and self._crashes(pod):
            self._crash(pod, t)
            return True
        if pod.phase == Phase.STARTING and pod.ready_s <= t:
            pod.phase = Phase.READY
            return True
        if pod.phase == Phase.BACKOFF and pod.backoff_until_s <= t:
            self._start_container(pod, t)
            return False
        if pod.phase == Phase.TERMINATING and t >= min(pod.drain_check_s, pod.gone_by_s):
            drained = self.s.p_head[pod.slot] == self.s.p_tail[pod.slot]
            if drained or t >= pod.gone_by_s:
                if not drained:
                    kernel.kill_now(self._cs, pod.slot, t)
                self._remove(pod)
                # The pod's vGPU share is free again: the scheduler retries Pending pods
                # (kube-scheduler requeues them when a pod is deleted). Without this a pod
                # left Pending for want of that share stayed Pending for good.
                return True
            else:
                pod.drain_check_s = t + 1.0
        return False

    def _crashes(self, pod: Pod) -> bool:
        return pod.template.gpumem_mib < self.config.serving.model_memory_mib

    def _crash(self, pod: Pod, t: float) -> None:
        cfg = self.config.startup
        pod.restarts += 1
        delay = min(cfg.crash_backoff_max_s, cfg.crash_backoff_initial_s * 2 ** (pod.restarts - 1))
        pod.phase = Phase.BACKOFF
        pod.backoff_until_s = t + delay
        pod.loaded_s = pod.ready_s = math.inf
        self._events.append(
            f"{t:.0f}s {pod.name} exited with reason Error at model load (CUDA out of memory: "
            f"Device 0 OOM {self.config.serving.model_memory_mib} / {pod.template.gpumem_mib} "
            f"MiB), CrashLoopBackOff {delay:.0f}s"
        )

    def _start_container(self, pod: Pod, t: float) -> None:
        cfg = self.config.startup
        load_s = cfg.median_s * math.exp(cfg.sigma * float(self._np_random.standard_normal()))
        pod.phase = Phase.STARTING
        pod.started_s = t
        pod.loaded_s = t + load_s
        probe_phase = float(self._np_random.uniform(0.0, cfg.readiness_period_s))
        pod.ready_s = math.inf if self._crashes(pod) else pod.loaded_s + probe_phase
        # A new container is a new Triton process (and a new cAdvisor container): its
        # counters start from 0, which rate() reads as a counter reset. Keeping the old
        # values while the idle-CPU term restarted from 0 made a partial drop that rate()
        # took for a full reset: a CPU-rate spike of ~15x after a quick pod_crash restart.
        self._retired_cpu_s += float(self.s.pod_counters[pod.slot, st.C_CPU_S])
        self.s.pod_counters[pod.slot, :] = 0.0
        self._open_slot(pod)

    def _open_slot(self, pod: Pod) -> None:
        s, p = self.s, pod.slot
        s.p_accept_from[p] = pod.ready_s
        s.p_accept_until[p] = math.inf
        s.p_kill_at[p] = math.inf
        # HAMi-core starts its core-limit watcher only for 0 < gpucores <= 100: a pod with
        # gpucores 0 (the default when unset) is not throttled, it competes for the whole GPU.
        # (Share 0 made every batch take work / 1e-6 s, so all its requests timed out.)
        cores = pod.template.gpucores
        s.p_share[p] = cores / 100.0 if cores > 0 else 1.0
        s.p_gpu[p] = pod.gpu
        limit = self.config.deployment.cpu_limit
        servers = max(1, math.ceil(limit))
        s.p_cpu_servers[p] = servers
        s.p_cpu_s[p] = self.config.serving.cpu_ms_per_request / 1000.0 * servers / limit
        s.cpu_free[p, :] = 0.0
        kernel.refresh_pod(self._cs, p)

    def _create_pod(self, t: float) -> Pod | None:
        slot = next((i for i, p in enumerate(self._slot_pod) if p is None), None)
        if slot is None:
            self._events.append(f"{t:.0f}s no free pod slot (max_pods={self.config.max_pods})")
            return None
        pod = Pod(uid=self._next_uid, slot=slot, template=self.template, created_s=t)
        self._next_uid += 1
        self._slot_pod[slot] = pod
        self.pods.append(pod)
        s = self.s
        self._retired_cpu_s += float(s.pod_counters[slot, st.C_CPU_S])  # the slot's last pod
        s.pod_counters[slot, :] = 0.0
        s.p_head[slot] = s.p_tail[slot] = 0
        s.p_busy_until[slot] = -1.0
        s.p_bucket_t[slot] = -1.0  # a new pod starts with a full token bucket
        s.p_accept_from[slot] = math.inf
        s.ctr[st.K_N_PODS] = max(int(s.ctr[st.K_N_PODS]), slot + 1)
        self._try_schedule(pod, t)
        return pod

    def _try_schedule(self, pod: Pod, t: float) -> None:
        h = self.config.hami
        gpu = hami.place(
            self._gpu_slots(),
            pod.template.gpumem_mib,
            pod.template.gpucores,
            h.node_scheduler_policy,
            h.gpu_scheduler_policy,
        )
        if gpu is not None:
            pod.gpu = gpu
            self._start_container(pod, t)

    def _delete(self, pod: Pod, t: float) -> None:
        if pod.phase != Phase.READY:
            self._remove(pod)
            return
        dep = self.config.deployment
        pod.phase = Phase.TERMINATING
        pod.terminating_s = t
        pod.gone_by_s = t + dep.termination_grace_s
        pod.drain_check_s = t + dep.endpoint_removal_s + 0.5
        self.s.p_accept_until[pod.slot] = t + dep.endpoint_removal_s
        self.s.p_kill_at[pod.slot] = pod.gone_by_s
        kernel.refresh_pod(self._cs, pod.slot)

    def _remove(self, pod: Pod) -> None:
        s, p = self.s, pod.slot
        s.p_accept_from[p] = math.inf
        s.p_accept_until[p] = -math.inf
        s.p_kill_at[p] = math.inf
        s.p_gpu[p] = -1
        s.p_head[p] = s.p_tail[p]
        s.p_busy_until[p] = -1.0
        kernel.refresh_pod(self._cs, p)
        pod.phase = Phase.GONE
        self.pods.remove(pod)
        self._slot_pod[p] = None

    # --- Deployment controller --------------------------------------------
    def _reconcile(self) -> None:
        t = self.now_s
        for pod in self.pods:
            if pod.phase == Phase.PENDING:
                self._try_schedule(pod, t)
        live = [p for p in self.pods if p.phase in LIVE]
        new = [p for p in live if p.template == self.template]
        old = [p for p in live if p.template != self.template]
        d = self.config.deployment
        plan = rollout_plan(
            self.spec_replicas,
            len(new),
            sum(p.is_ready(t) for p in new),
            len(old),
            sum(p.is_ready(t) for p in old),
            d.max_surge,
            d.max_unavailable,
        )
        for pod in deletion_order(old)[: plan.delete_old]:
            self._delete(pod, t)
        for pod in deletion_order(new)[: plan.delete_new]:
            self._delete(pod, t)
        for _ in range(plan.create):
            self._create_pod(t)

    def _gpu_slots(self, exclude_deployment: bool = False) -> list[hami.GpuSlot]:
        healthy = [
            self.gpu_healthy[i] and self.node_healthy[node]
            for i, (node, _) in enumerate(self.gpu_list)
        ]
        slots = hami.cluster_slots(self.config, healthy)
        tenant = self.config.tenant
        if tenant is not None:  # placed before the Deployment, and never moved
            slots[tenant.gpu] = hami.allocate(slots[tenant.gpu], tenant.gpumem_mib, tenant.gpucores)
        if not exclude_deployment:
            for pod in self.pods:
                if pod.gpu >= 0 and pod.phase != Phase.GONE:
                    slots[pod.gpu] = hami.allocate(
                        slots[pod.gpu], pod.template.gpumem_mib, pod.template.gpucores
                    )
        return slots

    def _warm_start(self) -> None:
        """The Deployment is already running when the load test starts, as on the user's cluster."""
        for _ in range(self.spec_replicas):
            pod = self._create_pod(0.0)
            if pod is not None and pod.phase == Phase.STARTING and not self._crashes(pod):
                pod.loaded_s = pod.ready_s = 0.0
                pod.phase = Phase.READY
                self.s.p_accept_from[pod.slot] = 0.0

    def _set_params(self) -> None:
        c, pr = self.config, self.s.params
        pr[st.P_THINK_MIN_S] = self.profile.wait_time.min
        pr[st.P_THINK_MAX_S] = self.profile.wait_time.max
        pr[st.P_UPLINK_S] = c.client.uplink_ms / 1000.0
        pr[st.P_TRANSPORT_MEDIAN_S] = c.client.transport_median_ms / 1000.0
        pr[st.P_TRANSPORT_SIGMA] = c.client.transport_sigma
        pr[st.P_TAIL_PROB] = c.client.tail_probability
        pr[st.P_TAIL_MEAN_S] = c.client.tail_mean_ms / 1000.0
        pr[st.P_TIMEOUT_S] = c.client.timeout_s
        pr[st.P_REFUSED_S] = c.client.refused_ms / 1000.0
        pr[st.P_MAX_QUEUE_DELAY_S] = c.serving.max_queue_delay_us / 1e6
        pr[st.P_BATCH_BASE_S] = c.serving.batch_base_ms / 1000.0
        pr[st.P_BATCH_PER_ITEM_S] = c.serving.batch_per_item_ms / 1000.0
        pr[st.P_CORE_LIMIT_STRENGTH] = c.hami.core_limit_strength
        pr[st.P_STICKY_CONNECTIONS] = 1.0 if c.client.sticky_connections else 0.0
        pr[st.P_MAX_BATCH] = c.serving.max_batch_size
        pr[st.P_UTIL_OVERREAD] = c.serving.util_overread
        pr[st.P_TOKEN_BUCKET_S] = c.hami.token_bucket_s
        pr[st.P_CORE_POLICY] = st.CORE_POLICIES.index(c.hami.core_utilization_policy)
        pr[st.P_CONTENTION_LEAK] = c.hami.contention_leak
        pr[st.P_TENANT_GPU] = -1 if c.tenant is None else c.tenant.gpu
        pr[st.P_TENANT_CAP] = (
            1.0 if c.tenant is None or not c.tenant.gpucores else c.tenant.gpucores / 100
        )
        self._set_client_params()

    def _set_client_params(self) -> None:
        """The load generator's parameters (kernel.c: P_CLIENT_MODE and after)."""
        client, pr = self.config.client, self.s.params
        cost, mix = client.client_cost_ms, client.request_mix
        pr[st.P_CLIENT_MODE] = 1.0 if client.models_load_generator else 0.0
        pr[st.P_LOCUST_PROCS] = client.locust_processes or 0
        pr[st.P_BUILD_S] = cost.build / 1000.0
        pr[st.P_SEND_S] = cost.send / 1000.0
        pr[st.P_RECEIVE_S] = cost.receive / 1000.0
        pr[st.P_CHEAP_PROB] = mix.cheap_fraction
        pr[st.P_CHEAP_COST_S] = mix.cheap_cost_ms / 1000.0
        pr[st.P_CHEAP_RTT_S] = mix.cheap_round_trip_ms / 1000.0


def _pod_next_change(pod: Pod) -> float:
    if pod.phase == Phase.STARTING:
        return pod.ready_s if math.isfinite(pod.ready_s) else pod.loaded_s
    if pod.phase == Phase.BACKOFF:
        return pod.backoff_until_s
    if pod.phase == Phase.TERMINATING:
        return min(pod.drain_check_s, pod.gone_by_s)
    return math.inf

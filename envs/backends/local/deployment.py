"""A Deployment controller for real processes: the local testbed's kubelet and ReplicaSet.

Each pod is one inference-server process (``k8s_gpu_rl.envs.backends.local.server``). The controller
runs the same decisions the simulator takes from Kubernetes (``k8s_gpu_rl.envs.sim.pods``): the
RollingUpdate arithmetic of the Deployment controller, the ReplicaSet's deletion order,
HAMi's placement rules against the machine's one "GPU" (a pod that does not fit stays
Pending), readiness from ``GET /v2/health/ready``, and graceful termination (out of the
load balancer first, then SIGTERM, and the server drains its queue). A pod whose process
dies is reported and replaced, as a ReplicaSet replaces a failed pod.

It reconciles in a background thread every ``reconcile_s`` and integrates what the
environment's KPIs need (vGPU-seconds, replica-seconds) as it goes.
"""

from __future__ import annotations

import math
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from k8s_gpu_rl.envs.backends.live import PENDING, READY, EventLog, Integrals, PodView
from k8s_gpu_rl.envs.sim import hami
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.pods import Template, rollout_can_start, rollout_plan
from k8s_gpu_rl.errors import BackendError
from k8s_gpu_rl.io import write_text
from k8s_gpu_rl.procenv import python_child_env

STARTING, TERMINATING, GONE = "Starting", "Terminating", "Gone"
HOLDS_DEVICE = (STARTING, READY, TERMINATING)


@dataclass
class LocalPod:
    """One pod: its template, phase, times (controller clock) and process."""

    name: str
    template: Template
    created_s: float
    phase: str = PENDING
    started_s: float = math.inf
    ready_s: float = math.inf
    http_port: int = 0
    metrics_port: int = 0
    proc: object | None = None
    """The ``procs.Managed`` process (None while Pending)."""
    last_cpu_s: float = 0.0
    last_busy_s: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)
    """The newest scrape of the server's own metrics (Triton names)."""

    def view(self, cpu_request: float) -> PodView:
        """The pod as the live-backend records read it (times in the controller's clock)."""
        return PodView(
            name=self.name,
            phase=self.phase,
            gpucores=self.template.gpucores,
            gpumem_mib=self.template.gpumem_mib,
            cpu_request=cpu_request,
            created_t=self.created_s,
            started_t=self.started_s,
            ready_t=self.ready_s,
        )


@dataclass(frozen=True)
class ServerCommand:
    """How to start one inference server."""

    model_repository: Path
    model: str
    host: str = "127.0.0.1"
    threads: int = 1


class LocalDeployment:
    """The Deployment ``name`` as processes on this machine."""

    def __init__(
        self,
        name: str,
        cluster: ClusterConfig,
        server: ServerCommand,
        group: object,
        on_endpoints: Callable[[list[LocalPod]], None],
        on_pods: Callable[[list[LocalPod]], None],
        free_port: Callable[[], int],
        reconcile_s: float = 0.25,
    ) -> None:
        self.name = name
        self.cluster = cluster
        self.server = server
        self.group = group
        self.on_endpoints = on_endpoints
        self.on_pods = on_pods
        self.free_port = free_port
        self.reconcile_s = reconcile_s
        d = cluster.deployment
        self.replicas = d.replicas
        self.template = Template(d.gpucores, d.gpumem_mib)
        self.pods: list[LocalPod] = []
        self.events = EventLog()
        self.t0 = time.monotonic()
        self._integrated = Integrals()
        self._last_t = 0.0
        self._endpoints: tuple[str, ...] = ()
        self._scraped: tuple[str, ...] = ()
        self._hash = secrets.token_hex(3)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._http = requests.Session()
        self._device_tasks: str | None = None  # what device0-tasks holds

    # -- the API the backend calls ---------------------------------------------------------
    def now_s(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        with self._lock:
            self._reconcile()
        self._thread = threading.Thread(target=self._loop, name="local-deployment", daemon=True)
        self._thread.start()

    def set(self, replicas: int, gpucores: int, gpumem_mib: int) -> None:
        """Scale and patch the template (a changed share rolls the pods)."""
        with self._lock:
            template = Template(int(gpucores), int(gpumem_mib))
            if template != self.template:
                self.template = template
                self.events.append(
                    f"{self.now_s():.0f}s rollout to gpucores={gpucores} gpumem={gpumem_mib}MiB"
                )
            self.replicas = int(replicas)
            self._reconcile()

    def wait_ready(self, timeout_s: float) -> None:
        """Block until ``replicas`` pods of the template are Ready and nothing else lives."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            with self._lock:
                live = [p for p in self.pods if p.phase != GONE]
                if len(live) == self.replicas and all(
                    p.phase == READY and p.template == self.template for p in live
                ):
                    return
            time.sleep(0.1)
        raise BackendError(
            f"the local Deployment did not become ready within {timeout_s:.0f}s: "
            + "; ".join(f"{p.name} {p.phase}" for p in self.pods)
            + self._log_tails()
        )

    def check(self) -> None:
        """Raise what the reconcile thread hit, if anything."""
        if self._error is not None:
            raise BackendError(f"local Deployment controller failed: {self._error}")

    def live_pods(self) -> list[LocalPod]:
        with self._lock:
            return [p for p in self.pods if p.phase != GONE]

    def rollout_in_progress(self) -> bool:
        with self._lock:
            return any(p.template != self.template for p in self.pods if p.phase != GONE)

    def slots(self, exclude_deployment: bool = False) -> list[hami.GpuSlot]:
        """The device(s) as HAMi sees them, with this Deployment's pods allocated."""
        slots = hami.cluster_slots(self.cluster)
        if exclude_deployment:
            return slots
        for p in self.pods:
            if p.phase in HOLDS_DEVICE:
                slots[0] = hami.allocate(slots[0], p.template.gpumem_mib, p.template.gpucores)
        return slots

    def capacity(self, gpucores: int, gpumem_mib: int) -> int:
        return hami.capacity(self.slots(exclude_deployment=True), gpumem_mib, gpucores)

    def rollout_can_start(self, replicas: int, gpucores: int, gpumem_mib: int) -> bool:
        """The simulator's rule (:func:`k8s_gpu_rl.envs.sim.pods.rollout_can_start`) on the real pods."""
        d = self.cluster.deployment
        with self._lock:
            return rollout_can_start(
                self.template,
                Template(gpucores, gpumem_mib),
                self.rollout_in_progress(),
                replicas,
                d.max_surge,
                d.max_unavailable,
                lambda: hami.place(self.slots(), gpumem_mib, gpucores) is not None,
            )

    def close(self, grace_s: float = 10.0) -> None:
        """Stop the thread and every pod (draining them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for p in self.pods:
                if p.proc is not None and p.phase != GONE:
                    self.group.stop(p.proc, grace_s=grace_s)
                    p.phase = GONE
        self._http.close()

    # -- the controller ---------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.reconcile_s):
            try:
                with self._lock:
                    self._reconcile()
            except BaseException as exc:  # reported to the caller by check()
                self._error = exc
                return

    def integrals(self) -> Integrals:
        """vGPU-, replica-, CPU-request- and GPU-memory-seconds since the controller began,
        integrated up to now."""
        with self._lock:
            self._integrate(self.now_s())
            return self._integrated

    def views(self) -> list[PodView]:
        """The live pods as :class:`~k8s_gpu_rl.envs.backends.live.PodView` s."""
        cpu = self.cluster.deployment.cpu_request
        return [p.view(cpu) for p in self.live_pods()]

    def _integrate(self, now: float) -> None:
        dt = now - self._last_t
        self._last_t = now
        if dt > 0:
            self._integrated = self._integrated.plus(dt, self.views())

    def _reconcile(self) -> None:
        now = self.now_s()
        self._integrate(now)
        self._track_processes(now)
        new = [p for p in self.pods if p.phase not in (TERMINATING, GONE)]
        cur = [p for p in new if p.template == self.template]
        old = [p for p in new if p.template != self.template]
        d = self.cluster.deployment
        plan = rollout_plan(
            self.replicas,
            len(cur),
            sum(p.phase == READY for p in cur),
            len(old),
            sum(p.phase == READY for p in old),
            d.max_surge,
            d.max_unavailable,
        )
        for _ in range(plan.create):
            self.pods.append(
                LocalPod(f"{self.name}-{self._hash}-{secrets.token_hex(3)}", self.template, now)
            )
        for p in _deletion_order(old)[: plan.delete_old]:
            self._terminate(p, now)
        for p in _deletion_order(cur)[: plan.delete_new]:
            self._terminate(p, now)
        for p in self.pods:
            if (
                p.phase == PENDING
                and hami.place(self.slots(), p.template.gpumem_mib, p.template.gpucores) is not None
            ):
                self._launch(p, now)
        self._publish()
        self._write_device_tasks()

    def _device_tasks_path(self) -> Path:
        """HAMi-core's shared region, as the servers read it: the tasks on the one device."""
        return Path(self.group.rundir) / "device0-tasks"

    def _write_device_tasks(self) -> None:
        """Publish how many server processes hold the device (it decides ``default``'s limit)."""
        count = str(
            sum(p.proc is not None and p.phase in (STARTING, READY, TERMINATING) for p in self.pods)
        )
        if count != self._device_tasks:
            self._device_tasks = count
            write_text(self._device_tasks_path(), count)

    def _track_processes(self, now: float) -> None:
        for p in self.pods:
            if p.phase in (STARTING, READY) and p.proc is not None and not p.proc.alive():
                self.events.append(
                    f"{now:.0f}s pod {p.name} exited with code {p.proc.returncode} "
                    f"({p.phase}); replaced"
                )
                print(f"local backend: {self.events[-1]}\n{p.proc.tail(10)}", file=sys.stderr)
                p.phase = GONE
            elif p.phase == STARTING and self._ready(p):
                p.phase, p.ready_s = READY, now
            elif p.phase == TERMINATING and p.proc is not None and not p.proc.alive():
                p.phase = GONE
        self.pods = [p for p in self.pods if p.phase != GONE]

    def _ready(self, p: LocalPod) -> bool:
        try:
            r = self._http.get(
                f"http://{self.server.host}:{p.http_port}/v2/health/ready", timeout=0.5
            )
        except requests.RequestException:
            return False
        return r.status_code == 200

    def _launch(self, p: LocalPod, now: float) -> None:
        p.http_port, p.metrics_port = self.free_port(), self.free_port()
        argv = [
            sys.executable,
            "-m",
            "k8s_gpu_rl.envs.backends.local.server",
            "--model-repository",
            str(self.server.model_repository),
            "--model",
            self.server.model,
            "--host",
            self.server.host,
            "--http-port",
            str(p.http_port),
            "--metrics-port",
            str(p.metrics_port),
            "--gpucores",
            str(p.template.gpucores),
            "--threads",
            str(self.server.threads),
            "--pod",
            p.name,
            "--device-tasks",
            str(self._device_tasks_path()),
        ]
        # the share as an MPS active-thread percentage: effective on a GPU with an MPS daemon;
        # HAMi-core's core-limit policy as the cluster config says (the manifests set it too)
        env = python_child_env(
            {
                "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(p.template.gpucores),
                "GPU_CORE_UTILIZATION_POLICY": self.cluster.hami.core_utilization_policy,
            },
            threads=self.server.threads,
        )
        p.proc = self.group.start(p.name, argv, env=env)
        p.phase, p.started_s = STARTING, now

    def _terminate(self, p: LocalPod, now: float) -> None:
        if p.phase == PENDING or p.proc is None:
            p.phase = GONE
            return
        p.phase = TERMINATING
        self._publish()  # out of the load balancer before the server stops taking requests
        threading.Thread(target=self._stop_after_removal, args=(p.proc,), daemon=True).start()

    def _stop_after_removal(self, proc: object) -> None:
        """SIGTERM once the load balancer's old workers have had ``endpoint_removal_s`` to
        finish routing to the pod (a preStop pause), then drain for the grace period."""
        time.sleep(self.cluster.deployment.endpoint_removal_s)
        self.group.stop(proc, grace_s=self.cluster.deployment.termination_grace_s)

    def _publish(self) -> None:
        endpoints = tuple(p.name for p in self.pods if p.phase == READY)
        if endpoints != self._endpoints:
            self._endpoints = endpoints
            self.on_endpoints([p for p in self.pods if p.phase == READY])
        running = [p for p in self.pods if p.phase in HOLDS_DEVICE]
        if tuple(p.name for p in running) != self._scraped:
            self._scraped = tuple(p.name for p in running)
            self.on_pods(running)

    def _log_tails(self) -> str:
        tails = [
            f"\n--- {p.name} log ---\n{p.proc.tail(15)}" for p in self.pods if p.proc is not None
        ]
        return "".join(tails)


def _deletion_order(pods: list[LocalPod]) -> list[LocalPod]:
    """The ReplicaSet's victims first: unscheduled, then starting, then the newest ready."""
    return sorted(pods, key=lambda p: (p.phase == READY, p.phase == STARTING, -p.created_s))

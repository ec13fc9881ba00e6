"""The fake API server itself: one class made of the package's parts, plus its controller loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.admission import AdmissionMixin
from k8s_gpu_rl.testing.fake_kube_api.deployment_status import DeploymentStatusMixin
from k8s_gpu_rl.testing.fake_kube_api.deployments import DeploymentMixin
from k8s_gpu_rl.testing.fake_kube_api.events import EventsMixin
from k8s_gpu_rl.testing.fake_kube_api.fate import FateMixin, PodFate
from k8s_gpu_rl.testing.fake_kube_api.faults import FaultsMixin, RecordedRequest, _Fault
from k8s_gpu_rl.testing.fake_kube_api.hpa import HpaMixin
from k8s_gpu_rl.testing.fake_kube_api.job_admission import JobAdmissionMixin
from k8s_gpu_rl.testing.fake_kube_api.jobs import JobMixin
from k8s_gpu_rl.testing.fake_kube_api.kinds import HAMI_UNSCHEDULABLE_MESSAGE, KINDS
from k8s_gpu_rl.testing.fake_kube_api.kubeconfig import KubeconfigMixin
from k8s_gpu_rl.testing.fake_kube_api.logs import LogsMixin
from k8s_gpu_rl.testing.fake_kube_api.pods import PodMixin
from k8s_gpu_rl.testing.fake_kube_api.replicasets import ReplicaSetMixin
from k8s_gpu_rl.testing.fake_kube_api.routing import RoutingMixin
from k8s_gpu_rl.testing.fake_kube_api.scale import ScaleMixin
from k8s_gpu_rl.testing.fake_kube_api.server import ServerMixin, _Server
from k8s_gpu_rl.testing.fake_kube_api.state import StateMixin
from k8s_gpu_rl.testing.fake_kube_api.store import StoreMixin
from k8s_gpu_rl.testing.fake_kube_api.watch import WatchMixin, _Change


class FakeKubeApi(
    ServerMixin,
    KubeconfigMixin,
    FaultsMixin,
    StateMixin,
    RoutingMixin,
    StoreMixin,
    AdmissionMixin,
    HpaMixin,
    ScaleMixin,
    DeploymentMixin,
    ReplicaSetMixin,
    DeploymentStatusMixin,
    PodMixin,
    FateMixin,
    LogsMixin,
    JobMixin,
    JobAdmissionMixin,
    EventsMixin,
    WatchMixin,
):
    """Fake kube-apiserver + deployment controller on ``http://127.0.0.1:<port>``.

    Use as a context manager (``with FakeKubeApi() as api:``) or call start()/stop().
    All public methods are thread-safe.
    """

    def __init__(
        self,
        pod_ready_delay_s: float = 0.3,
        pod_termination_delay_s: float = 0.0,
        token: str = "fake-token",
        require_auth: bool = False,
        tick_s: float = 0.02,
        pod_fate: Callable[[dict[str, Any]], PodFate] | None = None,
        history_limit: int = 10_000,
        job_backoff_s: float = 0.0,
    ) -> None:
        """``pod_fate`` decides what happens to bare and Job pods (default: ``PodFate()``);
        ``history_limit`` bounds the changes kept for watches (older resourceVersions get 410);
        ``job_backoff_s`` is the Job controller's first retry delay (real: 10 s, doubling)."""
        self.pod_ready_delay_s = pod_ready_delay_s
        self.pod_termination_delay_s = pod_termination_delay_s
        self.token = token
        self.require_auth = require_auth
        self.tick_s = tick_s
        #: while True, pods not yet scheduled stay Pending/Unschedulable (HAMi out of capacity)
        self.pods_pending = False
        self.pending_message = HAMI_UNSCHEDULABLE_MESSAGE
        self.node_name = "gpu-node-1"
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._rv = 1000
        self._store: dict[str, dict[str, dict[str, dict[str, Any]]]] = {r: {} for r in KINDS}
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._faults: list[_Fault] = []
        self._pod_times: dict[str, dict[str, float]] = {}  # pod uid -> scheduled/deleted
        self._progress: dict[str, tuple[Any, float]] = {}  # deployment uid -> (signature, t)
        self._ip_counter = 10
        self._pod_fate = pod_fate
        self._pod_fates: dict[str, PodFate] = {}  # pod uid -> its decided fate
        self._pod_logs: dict[str, str] = {}  # pod uid -> log text (once started)
        self.job_backoff_s = job_backoff_s
        #: exceptions raised by the ``pod_fate`` callable (the pod then stays Pending)
        self.fate_errors: list[BaseException] = []
        self._history: deque[_Change] = deque(maxlen=max(1, history_limit))
        self._history_floor = 0  # resourceVersion of the newest change dropped from history
        self._changed = threading.Condition(self._lock)
        self._extra_headers: dict[str, str] = {}
        self._server: _Server | None = None
        self._server_thread: threading.Thread | None = None
        self._controller: threading.Thread | None = None
        self._stop = threading.Event()
        self.port: int | None = None
        self.add_namespace("default")

    def start(self) -> FakeKubeApi:
        if self._controller is not None:
            return self
        self._serve(0)
        self._stop.clear()
        self._controller = threading.Thread(
            target=self._control_loop, name="fake-kube-controller", daemon=True
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._controller is not None:
            self._controller.join(timeout=5)
            self._controller = None
        self._close_server()

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _control_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            with self._lock:
                self._reconcile()

    def reconcile_now(self) -> None:
        """Run one controller pass synchronously (the background loop does this every tick)."""
        with self._lock:
            self._reconcile()

    def _reconcile(self) -> None:
        now = time.monotonic()
        for ns, pods in list(self._store["pods"].items()):
            for pod in list(pods.values()):
                self._tick_pod(ns, pod, now)
        for ns, deps in list(self._store["deployments"].items()):
            for dep in list(deps.values()):
                self._reconcile_deployment(ns, dep, now)
        for ns, jobs in list(self._store["jobs"].items()):
            for job in list(jobs.values()):
                self._reconcile_job(ns, job, now)

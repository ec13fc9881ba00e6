"""The live backends' shared bookkeeping (:mod:`k8s_gpu_rl.envs.backends.live`), against
hand-computed values. The real backends on it are tested end to end in
``test_local_backend.py`` and ``test_k8s_backend.py``."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from k8s_gpu_rl.envs.backends.live import (
    EventLog,
    Integrals,
    LiveBackend,
    PodView,
    deployment_state,
    pod_metrics,
)
from k8s_gpu_rl.envs.observation import queries
from k8s_gpu_rl.envs.sim.config import load_cluster_config
from k8s_gpu_rl.loadprofiles import LoadProfile, Stage, WaitTime


def _pod(name: str, phase: str, cores: int, mem: int, cpu: float, t: float = 0.0) -> PodView:
    return PodView(name, phase, cores, mem, cpu, created_t=t, started_t=t + 1, ready_t=t + 5)


PODS = [
    _pod("a", "Ready", 50, 4096, 1.0),
    _pod("b", "Starting", 30, 2048, 0.5),
    _pod("c", "Pending", 100, 8192, 2.0),  # not placed: holds nothing
    _pod("d", "Terminating", 20, 1024, 1.0),
]


def test_integrals_count_device_holders_and_ready_pods() -> None:
    # 10 s over PODS: vGPU (50+30+20)/100 = 1.0 -> 10; one Ready pod -> 10 replica-s;
    # CPU requests 1 + 0.5 + 1 = 2.5 -> 25; memory 4096+2048+1024 = 7168 -> 71680
    got = Integrals().plus(10.0, PODS)
    assert got == Integrals(10.0, 10.0, 25.0, 71680.0)
    later = got.plus(2.0, PODS[:1])
    assert later - got == Integrals(1.0, 2.0, 2.0, 8192.0)
    assert later.vgpu_s == 11.0 and later.gpu_memory_mib_s == 79872.0


def test_event_log_hands_each_event_out_once() -> None:
    log = EventLog()
    log.append("0s a")
    log.append("1s b")
    assert log.take_new() == ["0s a", "1s b"]
    assert log.take_new() == []
    log.append("2s c")
    assert log.take_new() == ["2s c"]
    assert list(log) == ["0s a", "1s b", "2s c"] and len(log) == 3 and log[-1] == "2s c"


def test_deployment_state_from_pods() -> None:
    two_ready = [*PODS, _pod("e", "Ready", 30, 2048, 1.0)]
    s = deployment_state(3, 30, 2048, two_ready, rollout_in_progress=True)
    assert (s.spec_replicas, s.ready_replicas, s.pending_pods) == (3, 2, 1)
    assert s.serving_gpucores == 40.0  # mean of the Ready pods' 50 and 30
    assert (s.gpucores, s.gpumem_mib, s.rollout_in_progress) == (30, 2048, True)
    assert deployment_state(1, 50, 1024, [], False).serving_gpucores == 0.0


def test_pod_metrics_are_relative_to_the_episode_start() -> None:
    pods = [_pod("a", "Ready", 50, 4096, 1.0, t=95.0), _pod("b", "Starting", 30, 2048, 0.5)]
    figures = {"a": {"cpu_cores": 0.8, "rps": 12.0, "inflight": 0.3}}
    a, b = pod_metrics(pods, figures, t0=100.0)
    assert (a.created_s, a.started_s, a.ready_s) == (-5.0, -4.0, 0.0)
    assert (a.cpu_cores, a.rps, a.inflight, a.cpu_request_cores) == (0.8, 12.0, 0.3, 1.0)
    assert b.ready_s == math.inf  # not Ready: no readiness time
    assert math.isnan(b.cpu_cores) and math.isnan(b.rps) and math.isnan(b.inflight)


class _Locust:
    """Rows as LocustRun.take_until gives them: (end_unix_s, latency_s, ok)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, bool]] = []

    def take_until(self, end_s: float, final: bool = False) -> np.ndarray:
        self.calls.append((end_s, final))
        return np.array([[1.0, 0.05, 1.0], [2.0, 0.25, 0.0]])

    def cpu_warnings(self) -> list[str]:
        """Locust's CPU-warning lines since the last call: none here."""
        return []


class _Scripted(LiveBackend):
    """Hooks that return what the test sets."""

    def __init__(self, profile: LoadProfile) -> None:
        super().__init__(load_cluster_config("local"), profile, 1.0, 10240)
        self.locust, self.log, self.acc, self.waits = _Locust(), EventLog(), Integrals(), 0

    def _locust(self):  # type: ignore[override]
        return self.locust

    def _integrals(self) -> Integrals:
        return self.acc

    def _usage(self, duration_s: float, end_s: float) -> tuple[float, float]:
        return 0.5 * duration_s, end_s

    def _events(self) -> EventLog:
        return self.log

    def _during_wait(self) -> None:
        self.waits += 1

    def _series_labels(self) -> tuple[str, str, str]:
        return "mobilenetv4", "ns", "triton"

    def _query_scalar(self, promql: str) -> float:
        return float(len(promql))


def test_advance_waits_for_the_interval_and_records_what_changed_in_it() -> None:
    profile = LoadProfile("p", "two short intervals", WaitTime(0.1, 0.2), (Stage(0.3, 4, 1e4),))
    b = _Scripted(profile)
    assert b.now_s() == 0.0  # before an episode
    b._begin_intervals(time.time())
    b.acc = Integrals(8.0, 10.0, 15.0, 61440.0)
    b._event("scaled")
    rec = b.advance(0.15)
    assert b.now_s() >= 0.15 and b.waits >= 1
    assert (rec.start_s, rec.end_s, rec.users) == (0.0, 0.15, 4)
    assert (rec.vgpu_s, rec.replica_s, rec.cpu_request_s, rec.gpu_memory_mib_s) == (
        8.0,
        10.0,
        15.0,
        61440.0,
    )
    assert (rec.gpu_work_s, rec.cpu_s) == (0.075, 0.15)
    assert rec.latencies_s.tolist() == [0.05, 0.25] and rec.ok.tolist() == [True, False]
    assert rec.events == ["0s scaled"]
    b.acc = Integrals(9.0, 12.0, 15.0, 61440.0)
    last = b.advance(0.15)
    assert (last.start_s, last.end_s) == (0.15, 0.3)
    assert (last.vgpu_s, last.replica_s, last.cpu_request_s, last.gpu_memory_mib_s) == (
        pytest.approx(1.0),
        pytest.approx(2.0),
        0.0,
        0.0,
    )
    assert last.events == [] and last.users == 0  # the profile is over
    assert b.locust.calls == [(0.15, False), (0.3, True)]  # the last one waits for the flush


def test_observe_runs_each_observation_query_once() -> None:
    b = _Scripted(LoadProfile("p", "x", WaitTime(0.1, 0.2), (Stage(1.0, 1, 1.0),)))
    expected = queries("mobilenetv4", "ns", "triton", 60.0)
    assert b.observe(60.0) == {k: float(len(v)) for k, v in expected.items()}
    assert b._queries(60.0) is b._queries(60.0)

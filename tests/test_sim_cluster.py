"""Behaviour of the simulated cluster (``k8s_gpu_rl.envs.sim.SimCluster``) on its own, with no Gymnasium.

Each test builds a cluster from ``ClusterConfig`` (varied with
``k8s_gpu_rl.config.replace``) and a small load profile written as YAML to ``tmp_path``,
drives it with the controller's verbs (``scale``, ``set_share``) and ``advance``, and
checks what a user of the real cluster would see: client latencies and failures, Triton's
counters, pod phases, Kubernetes events and the simulated Prometheus.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from k8s_gpu_rl.config import replace
from k8s_gpu_rl.envs.sim import state as st
from k8s_gpu_rl.envs.sim.cluster import Interval, SimCluster
from k8s_gpu_rl.envs.sim.config import ClusterConfig
from k8s_gpu_rl.envs.sim.pods import Phase, Pod, Template
from k8s_gpu_rl.envs.sim.prometheus import DEPLOYMENT_GAUGES, GPU_GAUGES, POD_GAUGES
from k8s_gpu_rl.loadprofiles import LoadProfile, load_profile

REPO = Path(__file__).resolve().parents[1]
PENDING_GAUGE = POD_GAUGES.index("nv_inference_pending_request_count")
GPU_UTIL = GPU_GAUGES.index("DCGM_FI_DEV_GPU_UTIL")
UNAVAILABLE = DEPLOYMENT_GAUGES.index("kube_deployment_status_replicas_unavailable")
AVAILABLE = DEPLOYMENT_GAUGES.index("kube_deployment_status_replicas_available")
STATUS_REPLICAS = DEPLOYMENT_GAUGES.index("kube_deployment_status_replicas")
THINK = (0.4, 1.0)  # Locust between(0.4, 1.0): the user's ~0.7 s think time


def constant_profile(tmp_path: Path, users: int, think: tuple[float, float] = THINK) -> LoadProfile:
    """A profile file holding ``users`` from the first instant for 20 minutes."""
    path = tmp_path / f"constant-{users}-{think[0]}-{think[1]}.yaml"
    path.write_text(
        f"name: constant{users}\n"
        f"description: {users} users, all started at once\n"
        f"wait_time: {{min: {think[0]}, max: {think[1]}}}\n"
        f"stages:\n"
        f"  - {{duration: 1200, users: {users}, spawn_rate: 10000}}\n"
    )
    return load_profile(path)


def make_cluster(
    tmp_path: Path, users: int, seed: int = 0, think: tuple[float, float] = THINK, **changes: object
) -> SimCluster:
    """A cluster of the default config (the user's RTX 3080) with nested ``changes``."""
    config = replace(ClusterConfig(), **changes) if changes else ClusterConfig()
    return SimCluster(config, constant_profile(tmp_path, users, think), seed)


def counters(cluster: SimCluster, pod: Pod) -> np.ndarray:
    """The pod's Triton/cAdvisor counters as the kernel holds them now (a copy)."""
    return cluster.s.pod_counters[pod.slot].copy()


def in_flight(cluster: SimCluster, pod: Pod) -> int:
    """Requests the pod holds: in the CPU stage, queued in the batcher or executing."""
    return int(cluster.s.p_tail[pod.slot] - cluster.s.p_head[pod.slot])


def wall_per_work(c: np.ndarray) -> float:
    """Wall-clock GPU time of the pod's batches per second of whole-GPU work (1 / share)."""
    return c[st.C_COMPUTE_US] * 1e-6 / c[st.C_GPU_BUSY_S]


def queue_ms_per_request(cluster: SimCluster) -> float:
    """rate(nv_inference_queue_duration_us) / rate(nv_inference_count) over 1 min, in ms."""
    r = cluster.prom.sum_rates(cluster.now_s, 60.0)
    return r[st.C_QUEUE_US] / r[st.C_INFERENCES] / 1000.0


def scraped_pending(cluster: SimCluster) -> np.ndarray:
    """sum(nv_inference_pending_request_count) at each scrape Prometheus holds."""
    rows = cluster.prom.rows_in(cluster.now_s, 1e9)
    return np.nansum(cluster.prom.pod_gauges[rows, :, PENDING_GAUGE], axis=1)


def live(cluster: SimCluster) -> list[Pod]:
    """Pods the Deployment owns (terminating ones no longer count)."""
    return [p for p in cluster.pods if p.phase not in (Phase.TERMINATING, Phase.GONE)]


def ready(cluster: SimCluster) -> list[Pod]:
    return [p for p in cluster.pods if p.phase == Phase.READY]


# --- serving ------------------------------------------------------------------
def test_constant_load_below_capacity_leaves_the_batcher_queue_empty(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=30)
    iv = cluster.advance(300.0)
    assert len(iv.ok) > 30 * 300 / 0.8
    assert iv.ok.all()
    pending = scraped_pending(cluster)
    assert len(pending) == 10
    assert pending.max() <= 2
    assert pending.mean() <= 0.5
    # the batcher's 0.5 ms max queue delay plus an occasional wait for the busy instance
    assert 0.5 <= queue_ms_per_request(cluster) < 3.0
    r = cluster.prom.sum_rates(cluster.now_s, 60.0)
    assert r[st.C_INFERENCES] / r[st.C_EXECUTIONS] < 1.2  # batches of about one
    assert r[st.C_FAILURE] == 0.0


@pytest.mark.parametrize(("users", "think"), [(10, (0.4, 1.0)), (40, (0.1, 0.5))])
def test_closed_loop_throughput_is_users_over_latency_plus_think(
    tmp_path: Path, users: int, think: tuple[float, float]
) -> None:
    cluster = make_cluster(tmp_path, users=users, think=think)
    cluster.advance(20.0)
    iv = cluster.advance(300.0)
    expected = users / (iv.latencies_s.mean() + sum(think) / 2)
    assert len(iv.ok) / 300.0 == pytest.approx(expected, rel=0.02)


def test_small_gpucores_share_overloads_the_pod(tmp_path: Path) -> None:
    results = {}
    for gpucores in (50, 10):
        cluster = make_cluster(tmp_path, users=100, deployment={"gpucores": gpucores})
        cluster.advance(30.0)
        iv = cluster.advance(120.0)
        results[gpucores] = (iv, queue_ms_per_request(cluster), scraped_pending(cluster).mean())
    (iv50, queue50, pending50), (iv10, queue10, pending10) = results[50], results[10]
    assert iv50.ok.all() and iv10.ok.all()
    assert iv10.latencies_s.mean() > 2.0 * iv50.latencies_s.mean()
    assert np.percentile(iv10.latencies_s, 95) > 2.0 * np.percentile(iv50.latencies_s, 95)
    assert queue10 > 10.0 * queue50
    assert queue10 > 20.0  # ms
    assert pending10 > 4.0 * pending50
    assert len(iv10.ok) < 0.95 * len(iv50.ok)  # slower answers: fewer requests from the same users


def test_pods_whose_gpucores_exceed_the_gpu_slow_each_other_down(tmp_path: Path) -> None:
    """deviceCoreScaling 2 lets HAMi place 80 + 80 cores on one GPU; they then share it."""

    def run(replicas: int, gpucores: int) -> tuple[list[float], float]:
        cluster = make_cluster(
            tmp_path,
            users=100 * replicas,
            think=(0.2, 0.4),
            hami={"device_core_scaling": 2.0},
            deployment={"replicas": replicas, "gpucores": gpucores, "gpumem_mib": 2048},
        )
        iv = cluster.advance(60.0)
        assert [p.gpu for p in cluster.pods] == [0] * replicas
        return [wall_per_work(counters(cluster, p)) for p in cluster.pods], iv.latencies_s.mean()

    alone, latency_alone = run(1, 80)
    assert alone[0] == pytest.approx(1 / 0.8, rel=1e-9)
    crowded, latency_crowded = run(2, 80)
    # busy together they get 80/160 of the GPU each: up to twice the wall time of the work
    assert all(1.8 < x <= 2.0 + 1e-9 for x in crowded)
    assert latency_crowded > latency_alone
    # 40 + 40 <= 100: each holds its share whatever the other does
    fitting, _ = run(2, 40)
    assert fitting == pytest.approx([1 / 0.4, 1 / 0.4], rel=1e-9)


def test_core_limit_strength_zero_lets_a_lone_small_pod_use_the_whole_gpu(tmp_path: Path) -> None:
    def run(strength: float, gpucores: int) -> tuple[float, np.ndarray]:
        cluster = make_cluster(
            tmp_path,
            users=50,
            seed=3,
            hami={"core_limit_strength": strength},
            deployment={"gpucores": gpucores},
        )
        iv = cluster.advance(60.0)
        return wall_per_work(counters(cluster, cluster.pods[0])), iv.latencies_s

    held, held_latency = run(1.0, 10)
    assert held == pytest.approx(10.0, rel=1e-9)
    free, free_latency = run(0.0, 10)
    assert free == pytest.approx(1.0, rel=1e-9)
    _, whole_latency = run(1.0, 100)
    # same seed, same draws: unthrottled at 10 % is exactly the exclusive pod
    assert np.array_equal(free_latency, whole_latency)
    assert held_latency.mean() > free_latency.mean() + 0.02


def test_token_bucket_costs_no_latency_at_light_load_and_holds_the_share_under_load(
    tmp_path: Path,
) -> None:
    """HAMi-core's limiter (``token_bucket_s``, as the local testbed's servers enforce it):
    at light load the pod's batches run at full speed; saturated, its busy time is held to
    its share, as with the time-sliced model."""

    def run(users: int, bucket_s: float, gpucores: int) -> tuple[SimCluster, np.ndarray]:
        cluster = make_cluster(
            tmp_path,
            users=users,
            seed=5,
            think=(0.05, 0.1),
            hami={"token_bucket_s": bucket_s},
            deployment={"gpucores": gpucores},
            serving={"batch_base_ms": 20.0},  # heavy batches: the GPU is the bottleneck
        )
        cluster.advance(10.0)
        iv = cluster.advance(60.0)
        return cluster, iv.latencies_s

    light_bucket, light_bucket_lat = run(1, 0.1, 25)
    light_whole, light_whole_lat = run(1, 0.0, 100)
    _, light_sliced_lat = run(1, 0.0, 25)
    assert wall_per_work(counters(light_bucket, light_bucket.pods[0])) == pytest.approx(
        1.0, rel=1e-9
    )
    assert np.array_equal(light_bucket_lat, light_whole_lat)  # same seed, same draws
    assert light_sliced_lat.mean() > light_bucket_lat.mean() + 0.05

    heavy, _ = run(60, 0.1, 25)
    busy = counters(heavy, heavy.pods[0])[st.C_GPU_BUSY_S]
    assert busy / heavy.now_s == pytest.approx(0.25, rel=0.05)  # held to its share


def test_gpucores_zero_is_not_throttled(tmp_path: Path) -> None:
    """HAMi-core starts no core limiter for gpucores 0 (unset): the pod runs at full speed."""
    cluster = make_cluster(tmp_path, users=10, deployment={"gpucores": 0})
    iv = cluster.advance(60.0)
    assert iv.ok.all()
    assert iv.latencies_s.mean() < 0.075
    assert wall_per_work(counters(cluster, cluster.pods[0])) == pytest.approx(1.0, rel=1e-9)


def test_interval_integrates_replicas_share_and_gpu_work(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=30, deployment={"replicas": 2})
    iv = cluster.advance(60.0)
    assert (iv.start_s, iv.end_s) == (0.0, 60.0)
    assert iv.replica_s == pytest.approx(2 * 60.0)
    assert iv.vgpu_s == pytest.approx(2 * 0.5 * 60.0)
    busy = sum(counters(cluster, p)[st.C_GPU_BUSY_S] for p in cluster.pods)
    assert iv.gpu_work_s == pytest.approx(busy, rel=1e-9)
    assert 0 < iv.gpu_work_s < 60.0


# --- the Deployment -----------------------------------------------------------
def test_scale_up_pods_turn_ready_after_startup_and_share_traffic(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path, users=50, startup={"sigma": 0.0}, deployment={"gpucores": 30, "gpumem_mib": 3072}
    )
    cluster.advance(10.0)
    cluster.scale(3)
    new = [p for p in cluster.pods if p.uid > 0]
    assert len(new) == 2 and all(p.phase == Phase.STARTING for p in new)
    cluster.advance(24.9)  # model load takes the median, 25 s, then the next readiness probe
    assert all(p.phase == Phase.STARTING for p in new)
    assert all(counters(cluster, p)[st.C_SUCCESS] == 0 for p in new)  # no traffic before ready
    cluster.advance(5.2)
    assert all(p.phase == Phase.READY for p in new)
    for p in new:
        assert p.created_s + 25.0 <= p.ready_s <= p.created_s + 30.0
    before = {p.uid: counters(cluster, p)[st.C_SUCCESS] for p in cluster.pods}
    iv = cluster.advance(60.0)
    assert iv.ok.all()
    served = np.array([counters(cluster, p)[st.C_SUCCESS] - before[p.uid] for p in cluster.pods])
    # kube-proxy picks a ready endpoint at random: each gets about a third
    assert served.sum() == len(iv.ok)
    assert np.all(np.abs(served / served.sum() - 1 / 3) < 0.05)
    assert cluster.prom.deployment_gauge(AVAILABLE, cluster.now_s) == 3


def test_more_replicas_than_hami_can_place_stay_pending(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=10)  # gpucores 50: two pods per RTX 3080
    assert cluster.capacity(50, 5120) == 2
    cluster.scale(4)
    cluster.advance(120.0)
    phases = sorted(p.phase for p in cluster.pods)
    assert phases == [Phase.PENDING, Phase.PENDING, Phase.READY, Phase.READY]
    assert all(p.gpu == -1 for p in cluster.pods if p.phase == Phase.PENDING)
    assert cluster.prom.deployment_gauge(UNAVAILABLE, cluster.now_s) == 2
    assert cluster.prom.deployment_gauge(STATUS_REPLICAS, cluster.now_s) == 4


def test_pending_pod_is_scheduled_once_a_terminating_pod_frees_its_share(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=30, deployment={"replicas": 2})
    cluster.advance(10.0)
    cluster.scale(1)
    cluster.scale(2)  # the terminating pod still holds its 50 cores
    waiting = [p for p in cluster.pods if p.phase == Phase.PENDING]
    assert len(waiting) == 1
    cluster.advance(3.0)  # it drains in about endpoint_removal_s + 0.5 s
    assert waiting[0].phase == Phase.STARTING
    cluster.advance(60.0)
    assert len(ready(cluster)) == 2


def test_rolling_update_respects_surge_and_unavailable(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path, users=50, deployment={"replicas": 4, "gpucores": 20, "gpumem_mib": 2048}
    )
    cluster.advance(10.0)
    cluster.set_share(25, 2048)  # 4 x 20 -> 4 x 25 cores: a fifth pod fits only as old ones go
    target = Template(25, 2048)
    failures = 0
    first_new_ready = None
    while cluster.now_s < 400.0:
        iv = cluster.advance(0.5)
        failures += int((~iv.ok).sum())
        owned = live(cluster)
        assert len(owned) <= 4 + 1, f"{cluster.now_s}s: {len(owned)} pods"
        if first_new_ready is None and any(p.template == target for p in ready(cluster)):
            first_new_ready = cluster.now_s
        if first_new_ready is not None:
            assert len(ready(cluster)) >= 4 - 1, f"{cluster.now_s}s: {len(ready(cluster))} ready"
        if [p.template for p in cluster.pods if p.is_ready(cluster.now_s)] == [target] * 4:
            break
    assert first_new_ready is not None
    assert [p.template for p in ready(cluster)] == [target] * 4
    assert cluster.now_s < 300.0
    assert failures == 0  # old pods drain their requests before they go


def test_single_replica_rollout_keeps_serving_until_the_new_pod_is_ready(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=10, startup={"sigma": 0.0})
    cluster.advance(10.0)
    cluster.set_share(30, 3072)  # surge 1, unavailable 0
    iv = cluster.advance(25.0)
    assert [p.template.gpucores for p in ready(cluster)] == [50]
    iv2 = cluster.advance(40.0)
    assert [p.template.gpucores for p in ready(cluster)] == [30]
    assert iv.ok.all() and iv2.ok.all()


def test_model_larger_than_gpumem_crash_loops_with_doubling_backoff(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path, users=10, startup={"sigma": 0.0}, deployment={"gpumem_mib": 1024}
    )  # model_memory_mib is 1536
    events: list[str] = []
    ever_ready = False
    ok = 0
    while cluster.now_s < 160.0:
        iv = cluster.advance(1.0)
        events += iv.events
        ok += int(iv.ok.sum())
        ever_ready |= any(p.phase == Phase.READY for p in cluster.pods)
    (pod,) = cluster.pods
    assert not ever_ready and ok == 0
    # load 25 s -> crash, back-off 10 s; restart at 35, crash at 60, 20 s; crash at 105, 40 s
    assert [e.split("s ")[0] for e in events] == ["25", "60", "105"]
    assert all("OOM" in e and "1536 / 1024 MiB" in e for e in events)
    assert [e.rsplit("CrashLoopBackOff ", 1)[1] for e in events] == ["10s", "20s", "40s"]
    # the fourth start, at 145 s, is loading again; it will crash at 170 s
    assert pod.restarts == 3 and pod.phase == Phase.STARTING
    assert (pod.started_s, pod.loaded_s) == pytest.approx((145.0, 170.0))


def test_rollout_to_a_crashing_share_leaves_the_old_pod_serving(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=10)
    cluster.advance(10.0)
    cluster.set_share(10, 1024)
    failures = 0
    for _ in range(12):
        iv = cluster.advance(10.0)
        failures += int((~iv.ok).sum())
    assert failures == 0
    assert [p.template.gpucores for p in ready(cluster)] == [50]
    (new,) = [p for p in cluster.pods if p.template.gpucores == 10]
    assert new.restarts >= 2 and new.phase in (Phase.BACKOFF, Phase.STARTING)


def test_scale_down_under_load_drains_in_flight_requests(tmp_path: Path) -> None:
    # 10 % pods under 100 users hold a queue: the deleted pod has work in hand
    cluster = make_cluster(
        tmp_path, users=100, deployment={"replicas": 2, "gpucores": 10, "gpumem_mib": 2048}
    )
    cluster.advance(30.0)
    cluster.scale(1)
    (leaving,) = [p for p in cluster.pods if p.phase == Phase.TERMINATING]
    held = in_flight(cluster, leaving)
    served_before = counters(cluster, leaving)[st.C_SUCCESS]
    assert held > 0
    iv = cluster.advance(5.0)
    assert leaving.phase == Phase.GONE and leaving not in cluster.pods
    assert cluster.s.pod_counters[leaving.slot, st.C_SUCCESS] >= served_before + held
    assert cluster.s.pod_counters[leaving.slot, st.C_FAILURE] == 0
    assert iv.ok.all()
    assert len(ready(cluster)) == 1


def test_no_ready_pod_refuses_connections_fast(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, users=10, deployment={"replicas": 0})
    iv = cluster.advance(60.0)
    refused_s = cluster.config.client.refused_ms / 1000.0
    assert not iv.ok.any()
    assert np.all(iv.latencies_s == refused_s)
    # each user tries again after its think time
    assert len(iv.ok) == pytest.approx(10 * 60.0 / (0.7 + refused_s), rel=0.05)


def test_client_timeout_fails_slow_requests_at_the_timeout(tmp_path: Path) -> None:
    timeout_s = 0.072  # about the median latency
    cluster = make_cluster(tmp_path, users=10, client={"timeout_s": timeout_s})
    iv = cluster.advance(60.0)
    assert 0.2 < iv.ok.mean() < 0.9
    assert np.all(iv.latencies_s[~iv.ok] == timeout_s)
    assert iv.latencies_s[iv.ok].max() <= timeout_s
    # Triton answered them all: the server counts successes the client gave up on
    served = counters(cluster, cluster.pods[0])[st.C_SUCCESS]
    assert served > iv.ok.sum() + 0.5 * (~iv.ok).sum()


# --- faults -------------------------------------------------------------------
def test_gpu_failure_kills_its_pods_until_the_gpu_recovers(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path,
        users=50,
        startup={"sigma": 0.0},
        deployment={"replicas": 2},
        faults=[{"kind": "gpu_failure", "at_s": 60.0, "duration_s": 60.0, "target": 0}],
    )
    before = cluster.advance(60.0)
    assert before.events == ["60s gpu_failure 0: 2 pod(s) lost"]
    # only the requests in flight at the failure instant (recorded last) failed
    lost = int((~before.ok).sum())
    assert lost <= 50 and before.ok[: len(before.ok) - lost].all()
    outage = cluster.advance(60.0)
    assert not outage.ok.any()  # in-flight requests reset, then connections refused
    assert np.sum(outage.latencies_s == 0.001) > 0.9 * len(outage.ok)
    assert outage.events == ["120s gpu 0 recovered"]
    # the 60 s outage holds exactly two scrapes of a 30 s interval, whatever its phase
    rows = cluster.prom.rows_in(cluster.now_s, 60.0)
    assert len(rows) == 2 and np.all(np.isnan(cluster.prom.gpu_gauges[rows, 0, GPU_UTIL]))
    # replacements were Pending on the dead GPU; now placed, they start (25 s + probe)
    assert sorted(p.phase for p in cluster.pods) == [Phase.STARTING, Phase.STARTING]
    cluster.advance(31.0)
    assert len(ready(cluster)) == 2
    after = cluster.advance(30.0)
    assert after.ok.all()


def test_pod_crash_restarts_one_pod_while_the_other_serves(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path,
        users=100,
        startup={"sigma": 0.0},
        deployment={"replicas": 2, "gpucores": 10, "gpumem_mib": 2048},
        faults=[{"kind": "pod_crash", "at_s": 60.0, "target": 0}],
    )
    cluster.advance(59.99)
    victim = cluster.pods[0]
    held = in_flight(cluster, victim)
    assert held > 0
    iv = cluster.advance(0.02)
    assert any("crashed, restarting" in e and victim.name in e for e in iv.events)
    assert victim.restarts == 1 and victim.phase == Phase.STARTING
    assert 0 < (~iv.ok).sum() <= held + 2  # its in-flight requests are reset
    iv = cluster.advance(20.0)
    assert iv.ok.all() and len(iv.ok) > 1000  # the other pod takes all the traffic
    cluster.advance(15.0)
    assert len(ready(cluster)) == 2


def test_restarted_container_counters_start_over_without_a_rate_spike(tmp_path: Path) -> None:
    """A quick restart leaves both lives in one rate() window; the reset must read right."""
    cluster = make_cluster(
        tmp_path,
        users=10,
        startup={"median_s": 3.0, "sigma": 0.0, "readiness_period_s": 1.0},
        faults=[{"kind": "pod_crash", "at_s": 600.0, "target": 0}],
    )
    cpu_rates = []
    while cluster.now_s < 720.0:
        cluster.advance(30.0)
        cpu_rates.append(cluster.prom.sum_rate(st.C_CPU_S, cluster.now_s, 60.0))
    steady = np.median(cpu_rates[2:])
    assert steady == pytest.approx(13 * 0.005 + 0.02, rel=0.1)  # requests x CPU each + idle
    assert np.nanmax(cpu_rates) < 1.2 * steady
    pod = cluster.pods[0]
    assert pod.restarts == 1
    served_since_restart = counters(cluster, pod)[st.C_SUCCESS]
    assert served_since_restart < 13 * (720.0 - 600.0) * 1.1


def test_scrape_gap_leaves_no_scrapes_during_the_gap(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path, users=10, faults=[{"kind": "scrape_gap", "at_s": 60.0, "duration_s": 90.0}]
    )
    iv = cluster.advance(200.0)
    assert iv.events == ["60s Prometheus misses scrapes for 90s"]
    times = np.sort(cluster.prom.t[np.isfinite(cluster.prom.t)])
    assert not np.any((times >= 60.0) & (times < 150.0))
    assert np.sum(times < 60.0) == 2 and np.sum(times >= 150.0) == 2
    assert np.allclose(np.diff(times[times < 60.0]), 30.0)
    assert math.isnan(cluster.prom.sum_rate(st.C_SUCCESS, 145.0, 60.0))
    assert cluster.prom.sum_rate(st.C_SUCCESS, 200.0, 60.0) == pytest.approx(13.0, rel=0.1)


# --- determinism and separation ---------------------------------------------
def run_scripted(
    tmp_path: Path, seed: int, step_s: float = 10.0
) -> tuple[list[Interval], SimCluster]:
    """An episode that exercises scaling, a rollout and a fault."""
    cluster = make_cluster(
        tmp_path, users=60, seed=seed, faults=[{"kind": "pod_crash", "at_s": 95.0, "target": 1}]
    )
    intervals = []
    while cluster.now_s < 180.0 - 1e-9:
        if cluster.now_s == 20.0:
            cluster.scale(2)
        if cluster.now_s == 60.0:
            cluster.set_share(30, 3072)
        intervals.append(cluster.advance(step_s))
    return intervals, cluster


def test_same_seed_replays_bit_for_bit_and_another_seed_differs(tmp_path: Path) -> None:
    a, ca = run_scripted(tmp_path, seed=7)
    b, cb = run_scripted(tmp_path, seed=7)
    c, cc = run_scripted(tmp_path, seed=8)
    lat = [np.concatenate([iv.latencies_s for iv in x]) for x in (a, b, c)]
    assert np.array_equal(lat[0], lat[1])
    assert np.array_equal(np.concatenate([iv.ok for iv in a]), np.concatenate([iv.ok for iv in b]))
    assert [iv.events for iv in a] == [iv.events for iv in b]
    for name in ("t", "pod_counters", "pod_gauges", "gpu_gauges", "deployment"):
        assert np.array_equal(getattr(ca.prom, name), getattr(cb.prom, name), equal_nan=True), name
    assert not np.array_equal(lat[0], lat[2])
    assert not np.array_equal(ca.prom.t, cc.prom.t)  # the scrape phase is drawn too


def test_advancing_in_small_steps_equals_one_big_step(tmp_path: Path) -> None:
    coarse, _ = run_scripted(tmp_path, seed=3, step_s=10.0)
    fine, _ = run_scripted(tmp_path, seed=3, step_s=0.5)
    assert np.array_equal(
        np.concatenate([iv.latencies_s for iv in coarse]),
        np.concatenate([iv.latencies_s for iv in fine]),
    )


FORBIDDEN = (
    "gymnasium",
    "gym",
    "stable_baselines3",
    "torch",
    "k8s_gpu_rl.envs.k8s_gpu_env",
    "k8s_gpu_rl.envs.backends",
)


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MAPPED = ("envs", "agents", "baselines", "evaluation", "loadprofiles")  # pyproject's package-dir
NOT_FOLLOWED = (REPO / "envs" / "__init__.py", REPO / "k8s_gpu_rl" / "__init__.py")
"""The env package's and the package root's __init__: the root registers the envs with
Gymnasium (entry-point names only), which is the env layer's business, not the simulator's."""


def project_file(module: str) -> Path | None:
    """The project source file of ``module`` (a module or package), if it is one of ours."""
    parts = module.split(".")
    if parts[0] == "k8s_gpu_rl" and len(parts) > 1 and parts[1] in MAPPED:
        parts = parts[1:]
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file() and candidate not in NOT_FOLLOWED:
            return candidate
    return None


def test_simulator_imports_no_gymnasium() -> None:
    """envs/sim and the project modules it pulls in (not the __init__s in NOT_FOLLOWED)."""
    todo = sorted((REPO / "envs" / "sim").glob("*.py"))
    assert len(todo) >= 10
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports_of(path):
            assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), (path, name)
            found = project_file(name)
            if found is not None:
                todo.append(found)
    assert REPO / "loadprofiles" / "profile.py" in seen
    assert REPO / "k8s_gpu_rl" / "config.py" in seen

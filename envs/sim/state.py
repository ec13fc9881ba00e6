"""The serving state the compiled kernel advances: users, requests, pods and counters.

Everything is a preallocated NumPy array owned by Python; the C kernel
(``envs/sim/kernel.c`` through ``k8s_gpu_rl.envs.sim.kernel``) works on them in place and resumes
exactly where it stopped. The C ``State`` struct mirrors these fields.

Index constants name the columns of the packed arrays:

* ``P_*``: ``params`` (float64), fixed for an episode.
* ``C_*``: per-pod cumulative counters ``pod_counters[pod, C_*]``, what Triton's and
  cAdvisor's Prometheus counters would read.
* ``K_*``: ``ctr`` (int64) kernel bookkeeping.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# params (float64)
P_THINK_MIN_S = 0
P_THINK_MAX_S = 1
P_UPLINK_S = 2
P_TRANSPORT_MEDIAN_S = 3
P_TRANSPORT_SIGMA = 4
P_TAIL_PROB = 5
P_TAIL_MEAN_S = 6
P_TIMEOUT_S = 7
P_REFUSED_S = 8
P_MAX_QUEUE_DELAY_S = 9
P_BATCH_BASE_S = 10
P_BATCH_PER_ITEM_S = 11
P_CORE_LIMIT_STRENGTH = 12
P_STICKY_CONNECTIONS = 13
P_MAX_BATCH = 14
P_UTIL_OVERREAD = 15
P_TOKEN_BUCKET_S = 16
P_CORE_POLICY = 17  # HAMi-core's GPU_CORE_UTILIZATION_POLICY: CORE_POLICIES index
P_CONTENTION_LEAK = 18
P_TENANT_GPU = 19  # global index of the best-effort tenant's GPU (-1: no tenant)
P_TENANT_CAP = 20  # the tenant's gpucores / 100 (1: no limit)
P_CLIENT_MODE = 21  # 1: the load generator's CPU is modelled (kernel.c); 0: it is not
P_LOCUST_PROCS = 22  # Locust processes the users share (0: one per user)
P_BUILD_S = 23  # client CPU per inference before Locust's timer starts
P_SEND_S = 24  # client CPU per inference inside the timed call, before it leaves
P_RECEIVE_S = 25  # client CPU per inference once the response is back
P_CHEAP_PROB = 26  # fraction of a user's tasks that are cheap GETs
P_CHEAP_COST_S = 27  # client CPU per cheap GET (half sending, half reading)
P_CHEAP_RTT_S = 28  # a cheap GET's round trip past the client (median)
N_PARAMS = 29

CORE_POLICIES = ("force", "default", "disable")
"""P_CORE_POLICY's values, in kernel.c's order."""

# per-pod cumulative counters
C_SUCCESS = 0  # nv_inference_request_success
C_FAILURE = 1  # nv_inference_request_failure
C_INFERENCES = 2  # nv_inference_count
C_EXECUTIONS = 3  # nv_inference_exec_count
C_REQUEST_US = 4  # nv_inference_request_duration_us
C_QUEUE_US = 5  # nv_inference_queue_duration_us
C_COMPUTE_US = 6  # nv_inference_compute_infer_duration_us
C_CPU_S = 7  # container_cpu_usage_seconds_total (request handling only)
C_GPU_BUSY_S = 8  # seconds of the pod's own kernel activity (HAMi container utilisation)
N_COUNTERS = 9

# int64 bookkeeping
K_HEAP_N = 0  # entries in the send heap
K_REC_N = 3  # client records written
K_N_PODS = 4  # pod slots in use (upper bound of the scan)
K_USERS = 5  # users currently running
K_CURRENT_SECOND = 6  # last whole second snapshotted into gpu_hist
K_EVENT_POS = 7  # next user-count event to apply
N_CTR = 8

KIND_INFER = 0  # rec_kind of an inference request
KIND_CHEAP = 1  # rec_kind of a cheap GET of the task mix

GPU_HIST_S = 128  # seconds of per-second GPU activity kept (ring)


class ServingState(NamedTuple):
    """Preallocated arrays for one simulated cluster (see module docstring for indices)."""

    params: np.ndarray  # float64[N_PARAMS]
    rng: np.ndarray  # uint64[1]
    ctr: np.ndarray  # int64[N_CTR]
    now: np.ndarray  # float64[1], simulated time in seconds
    events: np.ndarray  # int64[5], events processed by kind: send, timeout, users, tick, pod
    # users
    u_active: np.ndarray  # int8[U]
    u_gen: np.ndarray  # int64[U], bumped on every send and stop: stale events are dropped
    u_waiting: np.ndarray  # int8[U], 1 while a request is outstanding
    u_send_t: np.ndarray  # float64[U]
    u_pod: np.ndarray  # int64[U], connection's pod for sticky load balancing (-1 none)
    # user send events (binary min-heap)
    h_t: np.ndarray
    h_u: np.ndarray
    h_g: np.ndarray
    timeout_next: np.ndarray  # float64[1], no later than the earliest waiting deadline
    tenant: np.ndarray  # float64[2], the tenant's GPU-seconds so far, and when last counted
    # the load generator (P_CLIENT_MODE)
    u_stage: np.ndarray  # int8[U], client stage: 0 thinking, 1 building/sending, 2 awaiting reply
    u_kind: np.ndarray  # int8[U], kind of the user's current request (KIND_*)
    l_free: np.ndarray  # float64[L], when each Locust process's CPU is next free
    # pods
    p_accept_from: np.ndarray  # float64[P], first instant the pod is an endpoint (inf: never)
    p_accept_until: np.ndarray  # float64[P], removed from endpoints (inf: not yet)
    p_kill_at: np.ndarray  # float64[P], the container dies, in-flight requests fail
    p_share: np.ndarray  # float64[P], gpucores / 100
    p_gpu: np.ndarray  # int64[P], global GPU index (-1: none)
    p_cpu_servers: np.ndarray  # int64[P]
    p_cpu_s: np.ndarray  # float64[P], CPU seconds per request (at the pod's CPU limit)
    p_busy_until: np.ndarray  # float64[P], model instance busy until (-1: idle)
    p_bucket: np.ndarray  # float64[P], token-bucket level in busy-seconds (token_bucket_s > 0)
    p_bucket_t: np.ndarray  # float64[P], time the level was last refilled (-1: full)
    p_next: np.ndarray  # float64[P], the pod's next event (dispatch, completion or death)
    p_batch_n: np.ndarray  # int64[P], requests in the executing batch
    p_batch_t: np.ndarray  # float64[P], dispatch time of the executing batch
    p_head: np.ndarray  # int64[P]
    p_tail: np.ndarray  # int64[P]
    q_enq: np.ndarray  # float64[P, Q], time the request reaches the dynamic batcher
    q_arr: np.ndarray  # float64[P, Q], time the request reaches the pod
    q_user: np.ndarray  # int64[P, Q]
    q_gen: np.ndarray  # int64[P, Q]
    cpu_free: np.ndarray  # float64[P, KMAX]
    pod_counters: np.ndarray  # float64[P, N_COUNTERS]
    # GPUs
    g_speed: np.ndarray  # float64[G], relative compute speed (0: failed)
    g_work_s: np.ndarray  # float64[G], cumulative busy seconds as DCGM counts them
    g_hist: np.ndarray  # float64[GPU_HIST_S, G], g_work_s at each whole second
    # client-side records (what Locust sees)
    rec_t: np.ndarray  # float64[N], response (or failure) time
    rec_lat_s: np.ndarray  # float64[N]
    rec_ok: np.ndarray  # int8[N]
    rec_kind: np.ndarray  # int8[N], KIND_INFER or KIND_CHEAP


def allocate(
    max_users: int,
    max_pods: int,
    n_gpus: int,
    record_capacity: int,
    cpu_servers_max: int = 8,
    locust_processes: int = 0,
) -> ServingState:
    """Arrays sized for at most ``max_users`` users and ``max_pods`` pod slots, and for
    ``locust_processes`` load-generator processes (0: one per user)."""
    users = max(1, max_users)
    queue = 1 << int(np.ceil(np.log2(max(users, 2) + 1)))  # >= users: never overflows
    f8 = np.float64
    return ServingState(
        params=np.zeros(N_PARAMS, f8),
        rng=np.zeros(1, np.uint64),
        ctr=np.zeros(N_CTR, np.int64),
        now=np.zeros(1, f8),
        events=np.zeros(5, np.int64),
        u_active=np.zeros(users, np.int8),
        u_gen=np.zeros(users, np.int64),
        u_waiting=np.zeros(users, np.int8),
        u_send_t=np.zeros(users, f8),
        u_pod=np.full(users, -1, np.int64),
        h_t=np.zeros(4 * users + 64, f8),
        h_u=np.zeros(4 * users + 64, np.int64),
        h_g=np.zeros(4 * users + 64, np.int64),
        timeout_next=np.full(1, np.inf),
        tenant=np.zeros(2, f8),
        u_stage=np.zeros(users, np.int8),
        u_kind=np.zeros(users, np.int8),
        l_free=np.zeros(max(users, locust_processes), f8),
        p_accept_from=np.full(max_pods, np.inf),
        p_accept_until=np.full(max_pods, np.inf),
        p_kill_at=np.full(max_pods, np.inf),
        p_share=np.zeros(max_pods, f8),
        p_gpu=np.full(max_pods, -1, np.int64),
        p_cpu_servers=np.ones(max_pods, np.int64),
        p_cpu_s=np.zeros(max_pods, f8),
        p_busy_until=np.full(max_pods, -1.0),
        p_bucket=np.zeros(max_pods, f8),
        p_bucket_t=np.full(max_pods, -1.0),
        p_next=np.full(max_pods, np.inf),
        p_batch_n=np.zeros(max_pods, np.int64),
        p_batch_t=np.zeros(max_pods, f8),
        p_head=np.zeros(max_pods, np.int64),
        p_tail=np.zeros(max_pods, np.int64),
        q_enq=np.zeros((max_pods, queue), f8),
        q_arr=np.zeros((max_pods, queue), f8),
        q_user=np.zeros((max_pods, queue), np.int64),
        q_gen=np.zeros((max_pods, queue), np.int64),
        cpu_free=np.zeros((max_pods, cpu_servers_max), f8),
        pod_counters=np.zeros((max_pods, N_COUNTERS), f8),
        g_speed=np.ones(max(1, n_gpus), f8),
        g_work_s=np.zeros(max(1, n_gpus), f8),
        g_hist=np.zeros((GPU_HIST_S, max(1, n_gpus)), f8),
        rec_t=np.zeros(record_capacity, f8),
        rec_lat_s=np.zeros(record_capacity, f8),
        rec_ok=np.zeros(record_capacity, np.int8),
        rec_kind=np.zeros(record_capacity, np.int8),
    )


def grow_records(state: ServingState, capacity: int) -> ServingState:
    """A copy of ``state`` whose client-record buffers hold ``capacity`` entries."""
    n = int(state.ctr[K_REC_N])
    bigger = {}
    for name in ("rec_t", "rec_lat_s", "rec_ok", "rec_kind"):
        old = getattr(state, name)
        new = np.zeros(capacity, old.dtype)
        new[:n] = old[:n]
        bigger[name] = new
    return state._replace(**bigger)

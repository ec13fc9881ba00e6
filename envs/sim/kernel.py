"""The compiled, request-by-request serving kernel of the simulated cluster.

One call of :func:`run_until` advances closed-loop Locust users, kube-proxy load
balancing, each pod's HTTP front end (CPU), Triton's dynamic batcher and the GPU to a
given instant. Pod lifecycle (scheduling, start-up, rolling updates, faults) is decided
outside, in ``envs.sim.cluster``; it only writes the instants a pod accepts traffic, stops
accepting it, or dies.

A request's path, as on the user's cluster:

1. A user sends at ``t`` and kube-proxy picks a ready endpoint (a random one per request,
   or the user's kept-alive connection's pod). With none ready the connection is refused.
2. It reaches the pod after ``uplink``; one of the pod's CPU workers parses it
   (``cpu_s`` per request, FIFO over ``cpu_servers`` workers) and hands it to the batcher.
3. Triton's dynamic batcher dispatches when the model instance is idle and either
   ``max_batch`` requests wait or the oldest has waited ``max_queue_delay``.
4. A batch of ``n`` takes ``(base + per_item * n) / effective_share`` on the GPU, where the
   effective share is the pod's gpucores share, softened by ``core_limit_strength`` and
   scaled down when busy pods on the same GPU add up past the whole GPU.
5. The response travels back (log-normal transport with a rare slow tail); the user
   records the latency unless the client timeout fired first, thinks ``between(min, max)``
   and sends again.

Events are kept in three structures whose order is cheap: a binary heap of user sends, a
FIFO ring of client timeouts (their deadlines are monotone), and per pod a FIFO of
requests (their batcher arrival times are monotone, because uplink and CPU time per
request are constant per pod).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Every function here runs with numba's reference counting off (``_nrt=False``): the
# kernel allocates nothing, and with it on, passing the ``ServingState`` tuple to each
# helper costs an incref/decref pair per array, about 300 ns a call, ten times the work.

from envs.sim.rng import exponential, randint, standard_normal, uniform, uniform_between
from envs.sim.state import (
    C_COMPUTE_US,
    C_CPU_S,
    C_EXECUTIONS,
    C_FAILURE,
    C_GPU_BUSY_S,
    C_INFERENCES,
    C_QUEUE_US,
    C_REQUEST_US,
    C_SUCCESS,
    GPU_HIST_S,
    K_CURRENT_SECOND,
    K_EVENT_POS,
    K_HEAP_N,
    K_N_PODS,
    K_REC_N,
    K_TO_HEAD,
    K_TO_TAIL,
    K_USERS,
    P_BATCH_BASE_S,
    P_BATCH_PER_ITEM_S,
    P_CORE_LIMIT_STRENGTH,
    P_MAX_BATCH,
    P_MAX_QUEUE_DELAY_S,
    P_REFUSED_S,
    P_STICKY_CONNECTIONS,
    P_TAIL_MEAN_S,
    P_TAIL_PROB,
    P_THINK_MAX_S,
    P_THINK_MIN_S,
    P_TIMEOUT_S,
    P_TRANSPORT_MEDIAN_S,
    P_TRANSPORT_SIGMA,
    P_UPLINK_S,
    P_UTIL_OVERREAD,
)

DONE = 0
RECORDS_FULL = 1


@njit(cache=True, inline="always", _nrt=False)
def _heap_push(s, t: float, user: int, gen: int) -> None:
    i = s.ctr[K_HEAP_N]
    if i >= s.h_t.shape[0]:
        raise RuntimeError("send-event heap overflow: allocate more user slots")
    s.ctr[K_HEAP_N] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if s.h_t[parent] <= t:
            break
        s.h_t[i] = s.h_t[parent]
        s.h_u[i] = s.h_u[parent]
        s.h_g[i] = s.h_g[parent]
        i = parent
    s.h_t[i] = t
    s.h_u[i] = user
    s.h_g[i] = gen


@njit(cache=True, inline="always", _nrt=False)
def _heap_pop(s) -> None:
    n = s.ctr[K_HEAP_N] - 1
    s.ctr[K_HEAP_N] = n
    t, user, gen = s.h_t[n], s.h_u[n], s.h_g[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and s.h_t[child + 1] < s.h_t[child]:
            child += 1
        if s.h_t[child] >= t:
            break
        s.h_t[i] = s.h_t[child]
        s.h_u[i] = s.h_u[child]
        s.h_g[i] = s.h_g[child]
        i = child
    s.h_t[i] = t
    s.h_u[i] = user
    s.h_g[i] = gen


@njit(cache=True, inline="always", _nrt=False)
def _record(s, t: float, latency_s: float, ok: int) -> None:
    n = s.ctr[K_REC_N]
    s.rec_t[n] = t
    s.rec_lat_s[n] = latency_s
    s.rec_ok[n] = ok
    s.ctr[K_REC_N] = n + 1


@njit(cache=True, inline="always", _nrt=False)
def _think(s, user: int, t: float) -> None:
    """The user waits ``between(min, max)`` and sends again."""
    pr = s.params
    wake = t + uniform_between(s.rng, pr[P_THINK_MIN_S], pr[P_THINK_MAX_S])
    _heap_push(s, wake, user, s.u_gen[user])


@njit(cache=True, inline="always", _nrt=False)
def _fail(s, user: int, t: float, latency_s: float) -> None:
    _record(s, t, latency_s, 0)
    s.u_waiting[user] = 0
    _think(s, user, t)


@njit(cache=True, inline="always", _nrt=False)
def _transport_s(s) -> float:
    """Round-trip transport and (de)serialisation outside the pod, minus the uplink."""
    pr = s.params
    total = pr[P_TRANSPORT_MEDIAN_S] * math.exp(pr[P_TRANSPORT_SIGMA] * standard_normal(s.rng))
    if uniform(s.rng) < pr[P_TAIL_PROB]:
        total += exponential(s.rng, pr[P_TAIL_MEAN_S])
    return max(0.0, total - pr[P_UPLINK_S])


@njit(cache=True, inline="always", _nrt=False)
def _ready(s, p: int, t: float) -> bool:
    return s.p_accept_from[p] <= t and t < s.p_accept_until[p]


@njit(cache=True, inline="always", _nrt=False)
def _pick_pod(s, user: int, t: float) -> int:
    if s.params[P_STICKY_CONNECTIONS] > 0.5:
        p = s.u_pod[user]
        if p >= 0 and _ready(s, p, t):
            return p
    n_ready = 0
    for p in range(s.ctr[K_N_PODS]):
        if _ready(s, p, t):
            n_ready += 1
    if n_ready == 0:
        return -1
    k = randint(s.rng, n_ready)
    for p in range(s.ctr[K_N_PODS]):
        if _ready(s, p, t):
            if k == 0:
                s.u_pod[user] = p
                return p
            k -= 1
    return -1


@njit(cache=True, inline="always", _nrt=False)
def _pod_next(s, p: int, now: float) -> float:
    """When pod ``p`` next needs attention: batch completion, dispatch, or death."""
    mask = s.q_enq.shape[1] - 1
    if s.p_busy_until[p] >= 0.0:
        t = s.p_busy_until[p]
    elif s.p_head[p] < s.p_tail[p]:
        head = s.p_head[p]
        t = s.q_enq[p, head & mask] + s.params[P_MAX_QUEUE_DELAY_S]
        max_batch = int(s.params[P_MAX_BATCH])
        if s.p_tail[p] - head >= max_batch:
            t = min(t, s.q_enq[p, (head + max_batch - 1) & mask])
        t = max(t, now)
    else:
        t = np.inf
    return min(t, s.p_kill_at[p])


@njit(cache=True, inline="always", _nrt=False)
def _send(s, user: int, t: float) -> None:
    pr = s.params
    s.u_gen[user] += 1
    p = _pick_pod(s, user, t)
    if p < 0:
        _record(s, t + pr[P_REFUSED_S], pr[P_REFUSED_S], 0)
        _think(s, user, t + pr[P_REFUSED_S])
        return
    s.u_waiting[user] = 1
    s.u_send_t[user] = t
    arrive = t + pr[P_UPLINK_S]
    k_best = 0
    for k in range(1, s.p_cpu_servers[p]):
        if s.cpu_free[p, k] < s.cpu_free[p, k_best]:
            k_best = k
    finish = max(arrive, s.cpu_free[p, k_best]) + s.p_cpu_s[p]
    s.cpu_free[p, k_best] = finish
    s.pod_counters[p, C_CPU_S] += s.p_cpu_s[p]
    mask = s.q_enq.shape[1] - 1
    i = s.p_tail[p] & mask
    s.q_enq[p, i] = finish
    s.q_arr[p, i] = arrive
    s.q_user[p, i] = user
    s.q_gen[p, i] = s.u_gen[user]
    s.p_tail[p] += 1
    to_mask = s.to_t.shape[0] - 1
    if s.ctr[K_TO_TAIL] - s.ctr[K_TO_HEAD] > to_mask:
        raise RuntimeError("client-timeout ring overflow")
    j = s.ctr[K_TO_TAIL] & to_mask
    s.to_t[j] = t + pr[P_TIMEOUT_S]
    s.to_u[j] = user
    s.to_g[j] = s.u_gen[user]
    s.ctr[K_TO_TAIL] += 1
    s.p_next[p] = _pod_next(s, p, t)


@njit(cache=True, inline="always", _nrt=False)
def _effective_share(s, p: int, t: float) -> float:
    """The pod's share of its GPU while it executes a batch dispatched at ``t``."""
    strength = s.params[P_CORE_LIMIT_STRENGTH]
    own = strength * s.p_share[p] + (1.0 - strength)
    total = own
    gpu = s.p_gpu[p]
    for q in range(s.ctr[K_N_PODS]):
        if q != p and s.p_gpu[q] == gpu and s.p_busy_until[q] > t:
            total += strength * s.p_share[q] + (1.0 - strength)
    return own / max(1.0, total) * s.g_speed[gpu]


@njit(cache=True, inline="always", _nrt=False)
def _dispatch(s, p: int, t: float) -> None:
    pr = s.params
    mask = s.q_enq.shape[1] - 1
    head = s.p_head[p]
    n = 0
    queued_s = 0.0
    while n < int(pr[P_MAX_BATCH]) and head + n < s.p_tail[p]:
        enq = s.q_enq[p, (head + n) & mask]
        if enq > t:
            break
        queued_s += t - enq
        n += 1
    if n == 0:
        s.p_next[p] = _pod_next(s, p, t)
        return
    work_s = pr[P_BATCH_BASE_S] + pr[P_BATCH_PER_ITEM_S] * n
    share = _effective_share(s, p, t)
    wall_s = work_s / max(share, 1e-6)
    s.p_busy_until[p] = t + wall_s
    s.p_batch_n[p] = n
    s.p_batch_t[p] = t
    c = s.pod_counters
    c[p, C_EXECUTIONS] += 1.0
    c[p, C_INFERENCES] += n
    c[p, C_QUEUE_US] += queued_s * 1e6
    c[p, C_COMPUTE_US] += wall_s * 1e6
    c[p, C_GPU_BUSY_S] += work_s
    s.g_work_s[s.p_gpu[p]] += work_s * pr[P_UTIL_OVERREAD]
    s.p_next[p] = s.p_busy_until[p]


@njit(cache=True, inline="always", _nrt=False)
def _complete(s, p: int, t: float) -> None:
    mask = s.q_enq.shape[1] - 1
    timeout_s = s.params[P_TIMEOUT_S]
    head = s.p_head[p]
    for i in range(s.p_batch_n[p]):
        k = (head + i) & mask
        user = s.q_user[p, k]
        s.pod_counters[p, C_SUCCESS] += 1.0
        s.pod_counters[p, C_REQUEST_US] += (t - s.q_arr[p, k]) * 1e6
        if s.u_gen[user] != s.q_gen[p, k] or s.u_waiting[user] == 0:
            continue  # the user timed out or stopped: nobody reads this response
        response_t = t + _transport_s(s)
        latency_s = response_t - s.u_send_t[user]
        if latency_s <= timeout_s:
            _record(s, response_t, latency_s, 1)
            s.u_waiting[user] = 0
            _think(s, user, response_t)
    s.p_head[p] = head + s.p_batch_n[p]
    s.p_batch_n[p] = 0
    s.p_busy_until[p] = -1.0
    s.p_next[p] = _pod_next(s, p, t)


@njit(cache=True, inline="always", _nrt=False)
def _kill(s, p: int, t: float) -> None:
    """The container dies: every request it holds fails (connection reset)."""
    mask = s.q_enq.shape[1] - 1
    for i in range(s.p_head[p], s.p_tail[p]):
        k = i & mask
        user = s.q_user[p, k]
        s.pod_counters[p, C_FAILURE] += 1.0
        if s.u_gen[user] == s.q_gen[p, k] and s.u_waiting[user] == 1:
            _fail(s, user, t, t - s.u_send_t[user])
    s.p_head[p] = s.p_tail[p]
    s.p_batch_n[p] = 0
    s.p_busy_until[p] = -1.0
    s.p_accept_from[p] = np.inf
    s.p_accept_until[p] = min(s.p_accept_until[p], t)
    s.p_kill_at[p] = np.inf
    s.p_next[p] = np.inf


@njit(cache=True, inline="always", _nrt=False)
def _pod_event(s, p: int, t: float) -> None:
    if s.p_kill_at[p] <= t:
        _kill(s, p, t)
    elif s.p_busy_until[p] >= 0.0:
        _complete(s, p, t)
    else:
        _dispatch(s, p, t)


@njit(cache=True, inline="always", _nrt=False)
def _set_users(s, count: int, t: float) -> None:
    """Start or stop users so that users ``0..count-1`` run, as Locust's runner does."""
    current = s.ctr[K_USERS]
    for user in range(current, count):
        s.u_gen[user] += 1
        s.u_waiting[user] = 0
        s.u_pod[user] = -1
        _heap_push(s, t, user, s.u_gen[user])
    for user in range(count, current):
        s.u_gen[user] += 1  # stops the user: its pending send and request go stale
        s.u_waiting[user] = 0
    s.ctr[K_USERS] = count


@njit(cache=True, inline="always", _nrt=False)
def _timeout(s, t: float) -> None:
    to_mask = s.to_t.shape[0] - 1
    j = s.ctr[K_TO_HEAD] & to_mask
    s.ctr[K_TO_HEAD] += 1
    user = s.to_u[j]
    if s.u_gen[user] == s.to_g[j] and s.u_waiting[user] == 1:
        _fail(s, user, t, s.params[P_TIMEOUT_S])


@njit(cache=True, inline="always", _nrt=False)
def _tick(s, second: int) -> None:
    row = second % GPU_HIST_S
    for g in range(s.g_work_s.shape[0]):
        s.g_hist[row, g] = s.g_work_s[g]
    s.ctr[K_CURRENT_SECOND] = second


@njit(cache=True, _nrt=False)
def run_until(s, t_end: float, ev_t: np.ndarray, ev_users: np.ndarray) -> int:
    """Advance ``s`` to ``t_end``; ``ev_t``/``ev_users`` are the profile's user-count changes.

    Returns ``DONE``, or ``RECORDS_FULL`` when the client-record buffer needs to grow
    (grow it and call again: the state is consistent and resumes exactly).
    """
    record_margin = s.q_enq.shape[1] + int(s.params[P_MAX_BATCH]) + 2
    capacity = s.rec_t.shape[0]
    to_mask = s.to_t.shape[0] - 1
    while True:
        if s.ctr[K_REC_N] + record_margin > capacity:
            return RECORDS_FULL
        best = np.inf
        kind = -1
        if s.ctr[K_HEAP_N] > 0:
            best, kind = s.h_t[0], 0
        if s.ctr[K_TO_HEAD] < s.ctr[K_TO_TAIL]:
            t = s.to_t[s.ctr[K_TO_HEAD] & to_mask]
            if t < best:
                best, kind = t, 1
        pos = s.ctr[K_EVENT_POS]
        if pos < ev_t.shape[0] and ev_t[pos] < best:
            best, kind = ev_t[pos], 2
        tick_t = float(s.ctr[K_CURRENT_SECOND] + 1)
        if tick_t < best:
            best, kind = tick_t, 3
        pod = -1
        for p in range(s.ctr[K_N_PODS]):
            if s.p_next[p] < best:
                best, pod = s.p_next[p], p
        if pod >= 0:
            kind = 4
        if best >= t_end:
            s.now[0] = t_end
            return DONE
        s.now[0] = best
        s.events[kind] += 1
        if kind == 0:
            user, gen = s.h_u[0], s.h_g[0]
            _heap_pop(s)
            if gen == s.u_gen[user] and user < s.ctr[K_USERS]:
                _send(s, user, best)
        elif kind == 1:
            _timeout(s, best)
        elif kind == 2:
            _set_users(s, ev_users[pos], best)
            s.ctr[K_EVENT_POS] = pos + 1
        elif kind == 3:
            _tick(s, int(tick_t))
        else:
            _pod_event(s, pod, best)


@njit(cache=True, _nrt=False)
def refresh_pod(s, p: int) -> None:
    """Recompute pod ``p``'s next event after the cluster changed its fields."""
    s.p_next[p] = _pod_next(s, p, s.now[0])


@njit(cache=True, _nrt=False)
def kill_now(s, p: int, t: float) -> None:
    """Pod ``p``'s container dies at ``t`` (crash, GPU or node failure, grace period over)."""
    _kill(s, p, t)

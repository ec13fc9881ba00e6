/*
 * The request-by-request serving kernel of the simulated cluster (see kernel.py for the
 * model it implements and the Python side that owns every array). Compiled on first use
 * by envs/sim/ckernel.py with the system C compiler and called through ctypes.
 *
 * A request's path: a Locust user sends; kube-proxy picks a ready endpoint (random per
 * request, or the user's kept-alive connection); after the uplink one of the pod's CPU
 * workers parses it (FIFO); Triton's dynamic batcher dispatches when the model instance
 * is idle and max_batch requests wait or the oldest waited max_queue_delay; the batch
 * runs (base + per_item * n) / effective_share on the GPU (HAMi-core's core limit under
 * its GPU_CORE_UTILIZATION_POLICY, shared with a best-effort tenant where configured);
 * the response travels back
 * (log-normal transport with a rare slow tail); the user records the latency unless its
 * timeout fired first, thinks between(min, max) and sends again.
 *
 * The load generator (P_CLIENT_MODE 1; 0 keeps the path above, the default): each user
 * runs in one of P_LOCUST_PROCS single-threaded Locust processes (gevent: one greenlet at
 * a time), and its client-side work is a job on that process's CPU, served FIFO in the
 * order the jobs become ready. A user whose think time ends first waits for its process,
 * then builds the request (P_BUILD_S, before Locust's timer starts) and encodes and sends
 * it (P_SEND_S, timed); the response, once back, waits for the process again and is read
 * (P_RECEIVE_S, timed). A fraction P_CHEAP_PROB of a user's tasks are cheap GETs (health,
 * metadata: P_CHEAP_COST_S of client CPU, half each way, and a P_CHEAP_RTT_S round trip
 * that never reaches the GPU). So when the users ask more than the process can do, the
 * achieved rate stops at its capacity and the latency Locust records grows with the
 * queue, as in the user's runs with one Locust process and JSON bodies.
 *
 * Ordering structures: a binary heap of user sends (in the client model, of each user's next
 * client-side step: u_stage says which); per pod a FIFO of requests (their
 * batcher arrival times are monotone because uplink and CPU time are constant per pod);
 * and one instant, timeout_next, no later than the earliest deadline of a waiting user:
 * when it comes, a scan of the users fails those whose deadline has come and finds the
 * next. A request that is answered first only makes that instant early, never late, so
 * timeouts fire exactly on time at the cost of about one scan per timeout period.
 */
#include <math.h>
#include <stdint.h>

/* params: keep in sync with envs/sim/state.py */
enum {
    P_THINK_MIN_S, P_THINK_MAX_S, P_UPLINK_S, P_TRANSPORT_MEDIAN_S, P_TRANSPORT_SIGMA,
    P_TAIL_PROB, P_TAIL_MEAN_S, P_TIMEOUT_S, P_REFUSED_S, P_MAX_QUEUE_DELAY_S,
    P_BATCH_BASE_S, P_BATCH_PER_ITEM_S, P_CORE_LIMIT_STRENGTH, P_STICKY_CONNECTIONS,
    P_MAX_BATCH, P_UTIL_OVERREAD, P_TOKEN_BUCKET_S, P_CORE_POLICY, P_CONTENTION_LEAK,
    P_TENANT_GPU, P_TENANT_CAP, P_CLIENT_MODE, P_LOCUST_PROCS, P_BUILD_S, P_SEND_S,
    P_RECEIVE_S, P_CHEAP_PROB, P_CHEAP_COST_S, P_CHEAP_RTT_S
};
/* a user's client-side stage (u_stage), which its pending send-heap entry continues */
enum { STAGE_THINK = 0, STAGE_SENDING = 1, STAGE_FLIGHT = 2 };
enum { KIND_INFER = 0, KIND_CHEAP = 1 };  /* rec_kind, u_kind */
/* P_CORE_POLICY: HAMi-core's GPU_CORE_UTILIZATION_POLICY */
enum { POLICY_FORCE = 0, POLICY_DEFAULT = 1, POLICY_DISABLE = 2 };
enum {
    C_SUCCESS, C_FAILURE, C_INFERENCES, C_EXECUTIONS, C_REQUEST_US, C_QUEUE_US,
    C_COMPUTE_US, C_CPU_S, C_GPU_BUSY_S
};
enum {
    K_HEAP_N, K_UNUSED1, K_UNUSED2, K_REC_N, K_N_PODS, K_USERS, K_CURRENT_SECOND,
    K_EVENT_POS
};
enum { DONE = 0, RECORDS_FULL = 1, HEAP_OVERFLOW = 2 };
#define GPU_HIST_S 128

typedef struct {
    double *params; uint64_t *rng; int64_t *ctr; double *now; int64_t *events;
    int8_t *u_active; int64_t *u_gen; int8_t *u_waiting; double *u_send_t; int64_t *u_pod;
    int64_t n_users;
    double *h_t; int64_t *h_u; int64_t *h_g; int64_t heap_cap;
    double *p_accept_from, *p_accept_until, *p_kill_at, *p_share;
    int64_t *p_gpu, *p_cpu_servers;
    double *p_cpu_s, *p_busy_until, *p_bucket, *p_bucket_t, *p_next;
    int64_t *p_batch_n; double *p_batch_t; int64_t *p_head, *p_tail;
    double *q_enq, *q_arr; int64_t *q_user, *q_gen; int64_t q_cap;
    double *cpu_free; int64_t cpu_k;
    double *pod_counters; int64_t n_counters;
    double *g_speed, *g_work_s, *g_hist; int64_t n_gpus;
    double *rec_t, *rec_lat_s; int8_t *rec_ok; int64_t rec_cap;
    double *timeout_next;  /* [1]: next instant a client timeout can fire (inf: none) */
    double *tenant;        /* [2]: the best-effort tenant's GPU-seconds, and when last counted */
    int8_t *u_stage; int8_t *u_kind;  /* the client model: a user's stage, its request's kind */
    double *l_free; int64_t n_procs;  /* when each Locust process's CPU is next free */
    int8_t *rec_kind;                 /* per record: KIND_INFER or KIND_CHEAP */
} State;

/* ---- random numbers: SplitMix64, as envs/sim/rng.py ---- */
static inline uint64_t next_u64(State *s) {
    uint64_t z = (s->rng[0] += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline double uniform(State *s) { return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }
static inline double standard_normal(State *s) {
    double u1 = 1.0 - uniform(s), u2 = uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

#define Q(p, i) ((p) * s->q_cap + ((i) & (s->q_cap - 1)))
#define COUNTER(p, c) s->pod_counters[(p) * s->n_counters + (c)]

/* ---- the send heap ---- */
static int heap_push(State *s, double t, int64_t user, int64_t gen) {
    int64_t i = s->ctr[K_HEAP_N];
    if (i >= s->heap_cap) return 0;
    s->ctr[K_HEAP_N] = i + 1;
    while (i > 0) {
        int64_t parent = (i - 1) >> 1;
        if (s->h_t[parent] <= t) break;
        s->h_t[i] = s->h_t[parent]; s->h_u[i] = s->h_u[parent]; s->h_g[i] = s->h_g[parent];
        i = parent;
    }
    s->h_t[i] = t; s->h_u[i] = user; s->h_g[i] = gen;
    return 1;
}

static void heap_pop(State *s) {
    int64_t n = --s->ctr[K_HEAP_N];
    double t = s->h_t[n]; int64_t user = s->h_u[n], gen = s->h_g[n];
    int64_t i = 0;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && s->h_t[child + 1] < s->h_t[child]) child++;
        if (s->h_t[child] >= t) break;
        s->h_t[i] = s->h_t[child]; s->h_u[i] = s->h_u[child]; s->h_g[i] = s->h_g[child];
        i = child;
    }
    s->h_t[i] = t; s->h_u[i] = user; s->h_g[i] = gen;
}

static int overflow;  /* set when the heap is full: run_until reports it */

static void record(State *s, double t, double latency_s, int8_t ok, int8_t kind) {
    int64_t n = s->ctr[K_REC_N]++;
    s->rec_t[n] = t; s->rec_lat_s[n] = latency_s; s->rec_ok[n] = ok; s->rec_kind[n] = kind;
}

static void think(State *s, int64_t user, double t) {
    double lo = s->params[P_THINK_MIN_S], hi = s->params[P_THINK_MAX_S];
    s->u_stage[user] = STAGE_THINK;
    if (!heap_push(s, t + lo + (hi - lo) * uniform(s), user, s->u_gen[user])) overflow = 1;
}

static void fail(State *s, int64_t user, double t, double latency_s) {
    record(s, t, latency_s, 0, s->u_kind[user]);
    s->u_waiting[user] = 0;
    s->u_gen[user]++;  /* a response still on its way (client model) is now stale */
    think(s, user, t);
}

static inline void arm_timeout(State *s, double started) {
    double deadline = started + s->params[P_TIMEOUT_S];
    if (deadline < s->timeout_next[0]) s->timeout_next[0] = deadline;
}

static double transport_s(State *s) {
    const double *pr = s->params;
    double total = pr[P_TRANSPORT_MEDIAN_S] * exp(pr[P_TRANSPORT_SIGMA] * standard_normal(s));
    if (uniform(s) < pr[P_TAIL_PROB]) total += -pr[P_TAIL_MEAN_S] * log(1.0 - uniform(s));
    double down = total - pr[P_UPLINK_S];
    return down > 0.0 ? down : 0.0;
}

static inline int ready(State *s, int64_t p, double t) {
    return s->p_accept_from[p] <= t && t < s->p_accept_until[p];
}

static int64_t pick_pod(State *s, int64_t user, double t) {
    if (s->params[P_STICKY_CONNECTIONS] > 0.5) {
        int64_t p = s->u_pod[user];
        if (p >= 0 && ready(s, p, t)) return p;
    }
    int64_t n_ready = 0, n_pods = s->ctr[K_N_PODS];
    for (int64_t p = 0; p < n_pods; p++) n_ready += ready(s, p, t);
    if (n_ready == 0) return -1;
    int64_t k = (int64_t)(uniform(s) * (double)n_ready);
    for (int64_t p = 0; p < n_pods; p++) {
        if (ready(s, p, t)) {
            if (k == 0) { s->u_pod[user] = p; return p; }
            k--;
        }
    }
    return -1;
}

static double pod_next(State *s, int64_t p, double now) {
    double t;
    if (s->p_busy_until[p] >= 0.0) {
        t = s->p_busy_until[p];
    } else if (s->p_head[p] < s->p_tail[p]) {
        int64_t head = s->p_head[p], max_batch = (int64_t)s->params[P_MAX_BATCH];
        t = s->q_enq[Q(p, head)] + s->params[P_MAX_QUEUE_DELAY_S];
        if (s->p_tail[p] - head >= max_batch) {
            double full = s->q_enq[Q(p, head + max_batch - 1)];
            if (full < t) t = full;
        }
        if (t < now) t = now;
    } else {
        t = INFINITY;
    }
    return t < s->p_kill_at[p] ? t : s->p_kill_at[p];
}

/* The user's inference request leaves the client at t; Locust's timer started at started. */
static void send(State *s, int64_t user, double t, double started) {
    const double *pr = s->params;
    s->u_gen[user]++;
    int64_t p = pick_pod(s, user, t);
    if (p < 0) {
        record(s, t + pr[P_REFUSED_S], pr[P_REFUSED_S] + (t - started), 0, KIND_INFER);
        think(s, user, t + pr[P_REFUSED_S]);
        return;
    }
    s->u_waiting[user] = 1;
    s->u_send_t[user] = started;
    s->u_stage[user] = STAGE_FLIGHT;
    double arrive = t + pr[P_UPLINK_S];
    double *free_at = s->cpu_free + p * s->cpu_k;
    int64_t best = 0;
    for (int64_t k = 1; k < s->p_cpu_servers[p]; k++)
        if (free_at[k] < free_at[best]) best = k;
    double finish = (arrive > free_at[best] ? arrive : free_at[best]) + s->p_cpu_s[p];
    free_at[best] = finish;
    COUNTER(p, C_CPU_S) += s->p_cpu_s[p];
    int64_t i = Q(p, s->p_tail[p]);
    s->q_enq[i] = finish; s->q_arr[i] = arrive; s->q_user[i] = user; s->q_gen[i] = s->u_gen[user];
    s->p_tail[p]++;
    arm_timeout(s, started);
    s->p_next[p] = pod_next(s, p, t);
}

/* Pods holding GPU g (any phase), the tenant included: HAMi-core's "alone on the GPU". */
static int64_t holders(State *s, int64_t gpu) {
    int64_t n = (int64_t)s->params[P_TENANT_GPU] == gpu ? 1 : 0, n_pods = s->ctr[K_N_PODS];
    for (int64_t q = 0; q < n_pods; q++) n += s->p_gpu[q] == gpu;
    return n;
}

/* Whether HAMi-core throttles the pods of GPU g now: always (force), never (disable), or
 * only while another pod shares the GPU (default: a lone pod is not throttled). */
static int throttled(State *s, int64_t gpu) {
    int policy = (int)s->params[P_CORE_POLICY];
    if (policy == POLICY_DISABLE) return 0;
    return policy == POLICY_FORCE || holders(s, gpu) > 1;
}

/* The cap a share gives under the core limit (1: unthrottled). */
static inline double cap_of(State *s, double share, int limited) {
    double strength = s->params[P_CORE_LIMIT_STRENGTH];
    return limited ? strength * share + (1.0 - strength) : 1.0;
}

/* The time-sliced model. Each busy task on the GPU (pod p, the busy pods beside it, the
 * tenant) gets its cap, normalised when the caps add up past the whole GPU; under
 * contention (two or more busy) each cap drifts P_CONTENTION_LEAK of the way towards an
 * even split, the limiter's measured imperfection (HAMi issue 2863: caps 10/90 ran about
 * 1 : 7 rather than 1 : 9). Returns the compute speed of ``who`` (a pod about to run a
 * batch, or -1 for the tenant). */
static double sliced_speed(State *s, int64_t gpu, int64_t who, double t) {
    int limited = throttled(s, gpu), tenant = (int64_t)s->params[P_TENANT_GPU] == gpu;
    int64_t n_pods = s->ctr[K_N_PODS], n_busy = tenant;
    double caps = tenant ? cap_of(s, s->params[P_TENANT_CAP], limited) : 0.0;
    double mine = who < 0 ? caps : 0.0;
    for (int64_t q = 0; q < n_pods; q++) {
        if (s->p_gpu[q] != gpu || (q != who && !(s->p_busy_until[q] > t))) continue;
        double c = cap_of(s, s->p_share[q], limited);
        caps += c; n_busy++;
        if (q == who) mine = c;
    }
    if (n_busy == 0) return 0.0;
    double leak = n_busy > 1 ? s->params[P_CONTENTION_LEAK] : 0.0;
    mine = (1.0 - leak) * mine + leak * caps / (double)n_busy;  /* drift to the mean cap */
    return mine / (caps > 1.0 ? caps : 1.0) * s->g_speed[gpu];
}

static double effective_share(State *s, int64_t p, double t) {
    return sliced_speed(s, s->p_gpu[p], p, t);
}

/* The GPU's speed for pod p when only contention limits it: shared evenly with the other
 * pods on its GPU that are executing now, and the tenant (the token-bucket model). */
static double full_speed(State *s, int64_t p, double t) {
    int64_t gpu = s->p_gpu[p], n_pods = s->ctr[K_N_PODS];
    double busy = 1.0 + ((int64_t)s->params[P_TENANT_GPU] == gpu);
    for (int64_t q = 0; q < n_pods; q++)
        if (q != p && s->p_gpu[q] == gpu && s->p_busy_until[q] > t) busy += 1.0;
    return s->g_speed[gpu] / busy;
}

/* Add the tenant's progress since it was last counted (its speed is constant between the
 * dispatches and completions on its GPU, which call this first). */
static void count_tenant(State *s, double t) {
    int64_t gpu = (int64_t)s->params[P_TENANT_GPU];
    if (gpu < 0) return;
    double since = s->tenant[1];
    if (t > since) {
        double speed;
        if (s->params[P_TOKEN_BUCKET_S] > 0.0) {
            int64_t busy = 1, n_pods = s->ctr[K_N_PODS];
            for (int64_t q = 0; q < n_pods; q++) busy += s->p_gpu[q] == gpu && s->p_busy_until[q] > since;
            speed = s->g_speed[gpu] / (double)busy;
            if (throttled(s, gpu) && speed > s->params[P_TENANT_CAP]) speed = s->params[P_TENANT_CAP];
        } else {
            speed = sliced_speed(s, gpu, -1, since);
        }
        s->tenant[0] += speed * (t - since);
        s->tenant[1] = t;
    }
}

static void dispatch(State *s, int64_t p, double t) {
    const double *pr = s->params;
    int64_t head = s->p_head[p], n = 0, max_batch = (int64_t)pr[P_MAX_BATCH];
    double queued_s = 0.0;
    while (n < max_batch && head + n < s->p_tail[p]) {
        double enq = s->q_enq[Q(p, head + n)];
        if (enq > t) break;
        queued_s += t - enq;
        n++;
    }
    if (n == 0) { s->p_next[p] = pod_next(s, p, t); return; }
    if ((int64_t)pr[P_TENANT_GPU] == s->p_gpu[p]) count_tenant(s, t);
    double work_s = pr[P_BATCH_BASE_S] + pr[P_BATCH_PER_ITEM_S] * (double)n;
    double wall_s;
    if (pr[P_TOKEN_BUCKET_S] > 0.0 && !throttled(s, s->p_gpu[p])) {
        double speed = full_speed(s, p, t);  /* HAMi-core does not limit: contention only */
        wall_s = work_s / (speed > 1e-6 ? speed : 1e-6);
    } else if (pr[P_TOKEN_BUCKET_S] > 0.0) {
        /* HAMi-core's limiter: kernels run at the speed the GPU gives them while the pod
         * has tokens; tokens (busy-seconds) refill at its share, up to share x window; a
         * launch with the bucket below zero waits until it is back at zero. */
        double sh = s->p_share[p] > 1e-6 ? s->p_share[p] : 1e-6;
        double cap = sh * pr[P_TOKEN_BUCKET_S];
        double level = s->p_bucket_t[p] < 0.0
            ? cap : fmin(cap, s->p_bucket[p] + sh * (t - s->p_bucket_t[p]));
        double wait_s = level < 0.0 ? -level / sh : 0.0;
        double speed = full_speed(s, p, t);  /* time-sliced with busy neighbours only */
        double run_s = work_s / (speed > 1e-6 ? speed : 1e-6);
        s->p_bucket[p] = (level < 0.0 ? 0.0 : level) - run_s;
        s->p_bucket_t[p] = t + wait_s;
        wall_s = wait_s + run_s;
    } else {
        double share = effective_share(s, p, t);
        wall_s = work_s / (share > 1e-6 ? share : 1e-6);
    }
    s->p_busy_until[p] = t + wall_s;
    s->p_batch_n[p] = n;
    s->p_batch_t[p] = t;
    COUNTER(p, C_EXECUTIONS) += 1.0;
    COUNTER(p, C_INFERENCES) += (double)n;
    COUNTER(p, C_QUEUE_US) += queued_s * 1e6;
    COUNTER(p, C_COMPUTE_US) += wall_s * 1e6;
    COUNTER(p, C_GPU_BUSY_S) += work_s;
    s->g_work_s[s->p_gpu[p]] += work_s * pr[P_UTIL_OVERREAD];
    s->p_next[p] = s->p_busy_until[p];
}

static void complete(State *s, int64_t p, double t) {
    double timeout_s = s->params[P_TIMEOUT_S];
    if ((int64_t)s->params[P_TENANT_GPU] == s->p_gpu[p]) count_tenant(s, t);
    int64_t head = s->p_head[p], n = s->p_batch_n[p];
    for (int64_t i = 0; i < n; i++) {
        int64_t k = Q(p, head + i), user = s->q_user[k];
        COUNTER(p, C_SUCCESS) += 1.0;
        COUNTER(p, C_REQUEST_US) += (t - s->q_arr[k]) * 1e6;
        if (s->u_gen[user] != s->q_gen[k] || s->u_waiting[user] == 0) continue;
        double response_t = t + transport_s(s);
        if (s->params[P_CLIENT_MODE] > 0.5) {  /* the client reads it when its process can */
            if (!heap_push(s, response_t, user, s->u_gen[user])) overflow = 1;
            continue;
        }
        double latency_s = response_t - s->u_send_t[user];
        if (latency_s <= timeout_s) {
            record(s, response_t, latency_s, 1, KIND_INFER);
            s->u_waiting[user] = 0;
            think(s, user, response_t);
        }
    }
    s->p_head[p] = head + n;
    s->p_batch_n[p] = 0;
    s->p_busy_until[p] = -1.0;
    s->p_next[p] = pod_next(s, p, t);
}

void kill_now(State *s, int64_t p, double t) {
    if ((int64_t)s->params[P_TENANT_GPU] == s->p_gpu[p]) count_tenant(s, t);
    for (int64_t i = s->p_head[p]; i < s->p_tail[p]; i++) {
        int64_t k = Q(p, i), user = s->q_user[k];
        COUNTER(p, C_FAILURE) += 1.0;
        if (s->u_gen[user] == s->q_gen[k] && s->u_waiting[user] == 1)
            fail(s, user, t, t - s->u_send_t[user]);
    }
    s->p_head[p] = s->p_tail[p];
    s->p_batch_n[p] = 0;
    s->p_busy_until[p] = -1.0;
    s->p_accept_from[p] = INFINITY;
    if (t < s->p_accept_until[p]) s->p_accept_until[p] = t;
    s->p_kill_at[p] = INFINITY;
    s->p_next[p] = INFINITY;
}

static void pod_event(State *s, int64_t p, double t) {
    if (s->p_kill_at[p] <= t) kill_now(s, p, t);
    else if (s->p_busy_until[p] >= 0.0) complete(s, p, t);
    else dispatch(s, p, t);
}

static void set_users(State *s, int64_t count, double t) {
    int64_t current = s->ctr[K_USERS];
    for (int64_t user = current; user < count; user++) {
        s->u_gen[user]++;
        s->u_waiting[user] = 0;
        s->u_pod[user] = -1;
        s->u_stage[user] = STAGE_THINK;
        if (!heap_push(s, t, user, s->u_gen[user])) overflow = 1;
    }
    for (int64_t user = count; user < current; user++) {
        s->u_gen[user]++;  /* stops the user: its pending send and request go stale */
        s->u_waiting[user] = 0;
    }
    s->ctr[K_USERS] = count;
}

/* ---- the load generator (P_CLIENT_MODE) ---- */

/* Run ``cost_s`` of client-side work for ``user`` on its Locust process, the job ready at t
 * (FIFO: jobs reach this function in the order they become ready). Returns its start. */
static double client_cpu(State *s, int64_t user, double t, double cost_s) {
    int64_t procs = (int64_t)s->params[P_LOCUST_PROCS];
    double *free_at = s->l_free + user % (procs > 0 ? procs : s->n_procs);
    double start = t > *free_at ? t : *free_at;
    *free_at = start + cost_s;
    return start;
}

static int any_ready(State *s, double t) {
    for (int64_t p = 0; p < s->ctr[K_N_PODS]; p++)
        if (ready(s, p, t)) return 1;
    return 0;
}

/* The think time is over: the user picks its task and its process builds and sends it. */
static void client_start(State *s, int64_t user, double t) {
    const double *pr = s->params;
    int8_t kind = pr[P_CHEAP_PROB] > 0.0 && uniform(s) < pr[P_CHEAP_PROB] ? KIND_CHEAP : KIND_INFER;
    double build = kind == KIND_CHEAP ? 0.0 : pr[P_BUILD_S];
    double send_s = kind == KIND_CHEAP ? 0.5 * pr[P_CHEAP_COST_S] : pr[P_SEND_S];
    double start = client_cpu(s, user, t, build + send_s);
    s->u_kind[user] = kind;
    s->u_send_t[user] = start + build;  /* Locust's timer starts in the request call */
    s->u_stage[user] = STAGE_SENDING;
    if (!heap_push(s, start + build + send_s, user, s->u_gen[user])) overflow = 1;
}

/* The request leaves the client at t: inference goes to a pod, a cheap GET round-trips. */
static void client_transmit(State *s, int64_t user, double t) {
    const double *pr = s->params;
    double started = s->u_send_t[user];
    if (s->u_kind[user] == KIND_INFER) { send(s, user, t, started); return; }
    s->u_gen[user]++;
    if (!any_ready(s, t)) {
        record(s, t + pr[P_REFUSED_S], pr[P_REFUSED_S] + (t - started), 0, KIND_CHEAP);
        think(s, user, t + pr[P_REFUSED_S]);
        return;
    }
    s->u_waiting[user] = 1;
    s->u_stage[user] = STAGE_FLIGHT;
    arm_timeout(s, started);
    double rtt = pr[P_CHEAP_RTT_S] * exp(pr[P_TRANSPORT_SIGMA] * standard_normal(s));
    if (!heap_push(s, t + rtt, user, s->u_gen[user])) overflow = 1;
}

/* The response is back at t: the process reads it when free; Locust records the latency. */
static void client_receive(State *s, int64_t user, double t) {
    const double *pr = s->params;
    int8_t kind = s->u_kind[user];
    double cost = kind == KIND_CHEAP ? 0.5 * pr[P_CHEAP_COST_S] : pr[P_RECEIVE_S];
    double done = client_cpu(s, user, t, cost) + cost;
    double latency_s = done - s->u_send_t[user];
    if (latency_s > pr[P_TIMEOUT_S]) return;  /* its timeout fails it at the deadline */
    record(s, done, latency_s, 1, kind);
    s->u_waiting[user] = 0;
    think(s, user, done);
}

/* A valid send-heap entry of ``user`` in the client model: continue its stage. */
static void client_event(State *s, int64_t user, double t) {
    switch (s->u_stage[user]) {
    case STAGE_THINK: client_start(s, user, t); break;
    case STAGE_SENDING: client_transmit(s, user, t); break;
    default: client_receive(s, user, t);
    }
}

/* Fail the requests whose deadline has come; find the next deadline (or the next scan). */
static void timeouts(State *s, double t) {
    double timeout_s = s->params[P_TIMEOUT_S], next = INFINITY;
    for (int64_t user = 0; user < s->ctr[K_USERS]; user++) {
        if (!s->u_waiting[user]) continue;
        double deadline = s->u_send_t[user] + timeout_s;
        if (deadline <= t) fail(s, user, deadline, timeout_s);
        else if (deadline < next) next = deadline;
    }
    s->timeout_next[0] = next;
}

static void tick(State *s, int64_t second) {
    int64_t row = second % GPU_HIST_S;
    for (int64_t g = 0; g < s->n_gpus; g++) s->g_hist[row * s->n_gpus + g] = s->g_work_s[g];
    s->ctr[K_CURRENT_SECOND] = second;
}

int run_until(State *s, double t_end, const double *ev_t, const int64_t *ev_users, int64_t n_events) {
    int64_t margin = s->q_cap + (int64_t)s->params[P_MAX_BATCH] + s->n_users + 2;
    overflow = 0;
    for (;;) {
        if (overflow) return HEAP_OVERFLOW;
        if (s->ctr[K_REC_N] + margin > s->rec_cap) return RECORDS_FULL;
        double best = INFINITY;
        int kind = -1;
        if (s->ctr[K_HEAP_N] > 0) { best = s->h_t[0]; kind = 0; }
        if (s->timeout_next[0] < best) { best = s->timeout_next[0]; kind = 1; }
        int64_t pos = s->ctr[K_EVENT_POS];
        if (pos < n_events && ev_t[pos] < best) { best = ev_t[pos]; kind = 2; }
        double tick_t = (double)(s->ctr[K_CURRENT_SECOND] + 1);
        if (tick_t < best) { best = tick_t; kind = 3; }
        int64_t pod = -1, n_pods = s->ctr[K_N_PODS];
        for (int64_t p = 0; p < n_pods; p++)
            if (s->p_next[p] < best) { best = s->p_next[p]; pod = p; }
        if (pod >= 0) kind = 4;
        if (best >= t_end) { s->now[0] = t_end; count_tenant(s, t_end); return DONE; }
        s->now[0] = best;
        s->events[kind]++;
        switch (kind) {
        case 0: {
            int64_t user = s->h_u[0], gen = s->h_g[0];
            heap_pop(s);
            if (gen != s->u_gen[user] || user >= s->ctr[K_USERS]) break;
            if (s->params[P_CLIENT_MODE] > 0.5) client_event(s, user, best);
            else send(s, user, best, best);
            break;
        }
        case 1: timeouts(s, best); break;
        case 2: set_users(s, ev_users[pos], best); s->ctr[K_EVENT_POS] = pos + 1; break;
        case 3: tick(s, (int64_t)tick_t); break;
        default: pod_event(s, pod, best);
        }
    }
}

void refresh_pod(State *s, int64_t p) { s->p_next[p] = pod_next(s, p, s->now[0]); }

/* Prometheus extrapolatedRate (promql/functions.go) for one series; NaN when absent. */
static double rate_one(const double *times, const double *v, int64_t n_samples, int64_t stride,
                       double range_start, double range_end) {
    int64_t n = 0;
    double first_t = 0, last_t = 0, first_v = 0, last_v = 0, prev = 0, increase = 0;
    for (int64_t i = 0; i < n_samples; i++) {
        double x = v[i * stride];
        if (!isfinite(x)) continue;
        if (n == 0) { first_t = times[i]; first_v = x; }
        else if (x < prev) increase += prev;  /* counter reset */
        prev = x; last_t = times[i]; last_v = x; n++;
    }
    if (n < 2 || last_t <= first_t) return NAN;
    increase += last_v - first_v;
    double sampled = last_t - first_t, avg_gap = sampled / (double)(n - 1);
    double to_start = first_t - range_start, to_end = range_end - last_t;
    double threshold = avg_gap * 1.1;
    if (to_start >= threshold) to_start = avg_gap / 2;
    if (increase > 0 && first_v >= 0) {  /* a counter never extrapolates below zero */
        double to_zero = sampled * first_v / increase;
        if (to_zero < to_start) to_start = to_zero;
    }
    if (to_end >= threshold) to_end = avg_gap / 2;
    double interval = sampled + to_start + to_end;
    return increase * (interval / sampled) / (range_end - range_start);
}

/* rate() of each column of values[n_samples][n_cols] (row-major) into out[n_cols]. */
void rates(const double *times, const double *values, int64_t n_samples, int64_t n_cols,
           double range_start, double range_end, double *out) {
    for (int64_t j = 0; j < n_cols; j++)
        out[j] = rate_one(times, values + j, n_samples, n_cols, range_start, range_end);
}

/* sum over series of rate() for each counter: the samples are rows[0..n_rows) of
 * block[ring_rows][n_series][n_counters] at times[rows[i]] (a ring read in place). */
void sum_rates(const double *times, const double *block, const int64_t *rows, int64_t n_rows,
               int64_t n_series, int64_t n_counters, double range_start, double range_end,
               double *out) {
    double t[64], v[64];
    int64_t stride = n_series * n_counters;
    if (n_rows > 64) n_rows = 64;
    for (int64_t i = 0; i < n_rows; i++) t[i] = times[rows[i]];
    for (int64_t c = 0; c < n_counters; c++) out[c] = NAN;
    for (int64_t j = 0; j < n_series; j++) {
        int present = 0;
        for (int64_t i = 0; i < n_rows; i++) present += isfinite(block[rows[i] * stride + j * n_counters]);
        if (present < 2) continue;  /* rate() needs two samples */
        for (int64_t c = 0; c < n_counters; c++) {
            for (int64_t i = 0; i < n_rows; i++) v[i] = block[rows[i] * stride + j * n_counters + c];
            double r = rate_one(t, v, n_rows, 1, range_start, range_end);
            if (isfinite(r)) out[c] = isnan(out[c]) ? r : out[c] + r;
        }
    }
}

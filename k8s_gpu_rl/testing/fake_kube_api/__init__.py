"""A fake Kubernetes API server at the HTTP level, for testing code that uses the real client.

No API server can run on the CI machines, so this module serves, on a loopback port, the
REST endpoints this project's controllers need.  The *unmodified* official ``kubernetes``
Python client talks to it (through :meth:`FakeKubeApi.configuration` or a kubeconfig from
:meth:`FakeKubeApi.write_kubeconfig` / :func:`write_multi_kubeconfig`).  Responses use the
JSON shapes of the real API server (apps/v1 Deployment, autoscaling/v1 Scale, v1 Pod, apps/v1
ReplicaSet, batch/v1 Job, autoscaling/v2 HorizontalPodAutoscaler, v1 ConfigMap, v1 Event and
v1 Status for errors), including its habits that trip clients up: zero-valued status counters
are omitted (``readyReplicas`` is absent, not 0), list items carry no kind/apiVersion,
resourceVersion is an opaque string bumped on every write, PUT with a stale resourceVersion is
a 409 Conflict, extended resources (``nvidia.com/gpucores``...) must have requests equal to
limits, and deleting a Job without ``propagationPolicy`` orphans its pods (with the server's
``Warning`` header).

Served:

* Deployments (CRUD, ``/scale``, read-only ``/status``), ReplicaSets, ConfigMaps, HPAs, Events.
* Pods: create (name or generateName; 422 Invalid naming each field; 409 AlreadyExists), get,
  list, delete; ``GET .../pods/{name}/log`` (text/plain; 400 "container ... is waiting to
  start" before the container runs; ``container``, ``tailLines``, ``follow``).
* batch/v1 Jobs: create/get/list/update/patch/delete (``propagationPolicy`` Orphan (default),
  Background, Foreground).
* Watches: ``?watch=true`` (or ``1``) on every list endpoint, namespaced or across all
  namespaces (``/api/v1/pods``): a chunked stream of newline-delimited ``{"type", "object"}``
  events honouring ``resourceVersion`` (changes after it; absent or "0": synthetic ADDED for
  the current objects first), ``labelSelector`` / ``fieldSelector`` (an object entering or
  leaving the selection is seen as ADDED / DELETED), ``timeoutSeconds`` (the stream then ends
  cleanly); ``allowWatchBookmarks`` is ignored.  The last ``history_limit`` changes are kept:
  an older resourceVersion gets an ERROR event with a 410 Expired Status, as the real server
  sends.  :meth:`FakeKubeApi.down` and :meth:`FakeKubeApi.stop` end open streams.

Controllers inside:

* Deployment controller: keeps ReplicaSets and Pods in line with ``spec.replicas`` and the pod
  template (RollingUpdate with maxSurge/maxUnavailable, or Recreate), lets pods become
  Running+Ready after ``pod_ready_delay_s``, keeps them Pending and Unschedulable while
  ``pods_pending`` is set, and maintains Deployment status and conditions (including
  ProgressDeadlineExceeded).
* Job controller: per Job, pods from ``spec.template`` (labels ``job-name``,
  ``batch.kubernetes.io/job-name``, ``controller-uid``, ``batch.kubernetes.io/controller-uid``,
  an ownerReference; annotations and ``schedulerName`` kept), ``parallelism`` / ``completions``,
  a new pod per failed one until ``failed > backoffLimit`` (default 6; with ``OnFailure`` the
  container restarts in place and restarts count), then condition Failed /
  BackoffLimitExceeded; Complete when enough pods succeeded; ``status.active/ready/succeeded/
  failed/startTime/completionTime``.  Retries are immediate unless ``job_backoff_s`` is set
  (the real controller waits 10 s, doubling).  Not modelled: the job-tracking finalizer,
  ``podFailurePolicy``, Indexed completion, ``activeDeadlineSeconds``, suspension of running pods.
* Pod fate, for bare and Job pods (Deployment pods keep the behaviour above): the
  ``pod_fate`` callable (constructor or :meth:`FakeKubeApi.set_pod_fate`) maps the pod dict to
  a :class:`PodFate`: not schedulable (Pending, PodScheduled=False/Unschedulable, a
  FailedScheduling Warning event from the pod's scheduler), or scheduled to ``node_name``,
  ContainerCreating for ``start_delay_s``, Running+Ready for ``run_s``, then terminated with
  ``exit_code`` / ``reason`` (``PodFate.oom_killed()``: 137, OOMKilled) and phase Succeeded or
  Failed (restartPolicy Never), or restarted in place (OnFailure after a failure, Always).

Several servers may run in one process (one per simulated cluster), each on its own port with
its own state.  Faults: :meth:`FakeKubeApi.fail_next` answers matching requests with an error
Status; :meth:`FakeKubeApi.down` / :meth:`FakeKubeApi.up` close and reopen the listening port.
Every request is recorded in :attr:`FakeKubeApi.requests`.

The parts, one module each (:class:`FakeKubeApi` in ``api`` combines their mixins):

* HTTP: ``server`` (loopback server, handler, down/up), ``routing`` (URL -> verb),
  ``faults`` (injected errors, request log), ``kubeconfig``, ``errors`` (v1 Status).
* Storage: ``kinds`` (served resources), ``store`` (create/update/delete, resourceVersion),
  ``selectors``, ``patches`` (strategic merge, JSON merge, JSON patch), ``watch``,
  ``state`` (the test-side helpers: ``add_deployment``, ``pods``...).
* Admission: ``admission``, ``validation`` (pod specs), ``quantities``, ``hpa``,
  ``job_admission``.
* Controllers: ``deployments`` (rollout), ``replicasets``, ``deployment_status``, ``scale``,
  ``pods`` (Deployment pods), ``fate`` (:class:`PodFate` for bare and Job pods),
  ``pod_status``, ``logs``, ``jobs``, ``events``; ``util`` (timestamps, :func:`wait_until`).
"""

# The package root re-exports every name the single-module fake defined, private ones
# included (tests import them from here); each lives in the module of its concept.
# ruff: noqa: F401

from k8s_gpu_rl.testing.fake_kube_api.api import (
    FakeKubeApi,
)
from k8s_gpu_rl.testing.fake_kube_api.deployments import (
    _pct_or_int,
    _template_hash,
)
from k8s_gpu_rl.testing.fake_kube_api.errors import (
    _DEFAULT_MESSAGES,
    _REASONS,
    ApiError,
    _conflict,
    _invalid,
    _not_found,
)
from k8s_gpu_rl.testing.fake_kube_api.fate import (
    PodFate,
)
from k8s_gpu_rl.testing.fake_kube_api.faults import (
    RecordedRequest,
    _Fault,
)
from k8s_gpu_rl.testing.fake_kube_api.jobs import (
    _JOB_ORPHAN_WARNING,
)
from k8s_gpu_rl.testing.fake_kube_api.kinds import (
    _ALL,
    DEFAULT_IMAGE,
    DEFAULT_LIMITS,
    HAMI_UNSCHEDULABLE_MESSAGE,
    KINDS,
    _Kind,
    _name_key,
    _strip_type,
)
from k8s_gpu_rl.testing.fake_kube_api.kubeconfig import (
    _write_yaml,
    write_multi_kubeconfig,
)
from k8s_gpu_rl.testing.fake_kube_api.logs import (
    _tail,
)
from k8s_gpu_rl.testing.fake_kube_api.patches import (
    _MERGE_KEYS,
    _PRIMITIVE_MERGE,
    _add,
    _merge_keyed_list,
    _pointer,
    _remove,
    _resolve,
    _strip_directives,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
)
from k8s_gpu_rl.testing.fake_kube_api.pod_status import (
    _cond,
    _condition,
    _image_id,
    _owned_by_kind,
    _pod_ready,
    _pod_status_creating,
    _scheduler,
    _started_pod,
    _terminated_pod,
)
from k8s_gpu_rl.testing.fake_kube_api.quantities import (
    _QUANTITY_RE,
    _SUFFIX,
    _is_overcommit_allowed,
    _validate_resources,
    parse_quantity,
)
from k8s_gpu_rl.testing.fake_kube_api.routing import (
    _ALL_NS_RE,
    _NS_RE,
    _PATH_RE,
    _delete_policy,
    _is_watch,
)
from k8s_gpu_rl.testing.fake_kube_api.scale import (
    _selector_string,
)
from k8s_gpu_rl.testing.fake_kube_api.selectors import (
    _EQ_RE,
    _KEY_RE,
    _SET_RE,
    _matches_field_selector,
    _parse_selector,
    _selected,
    _split_selector,
    matches_label_selector,
)
from k8s_gpu_rl.testing.fake_kube_api.server import (
    _Handler,
    _Server,
    _Stream,
    _Text,
)
from k8s_gpu_rl.testing.fake_kube_api.util import (
    _SAFE_ALPHABET,
    _now,
    _rand_suffix,
    wait_until,
)
from k8s_gpu_rl.testing.fake_kube_api.validation import (
    _LABEL_RE,
    _RESTART_POLICIES,
    _SUBDOMAIN_RE,
    _default_pod_spec,
    _name_causes,
    _qos_class,
    _validate_pod_spec,
)
from k8s_gpu_rl.testing.fake_kube_api.watch import (
    _Change,
    _event_line,
)

__all__ = [
    "ApiError",
    "FakeKubeApi",
    "PodFate",
    "RecordedRequest",
    "write_multi_kubeconfig",
    "matches_label_selector",
    "parse_quantity",
    "strategic_merge_patch",
    "json_merge_patch",
    "json_patch",
    "wait_until",
]

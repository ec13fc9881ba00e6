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
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import json
import math
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

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

#: Message a HAMi-scheduled pod shows while it cannot be placed (see HAMi issues #591/#1069).
HAMI_UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 CardInsufficientCore. "
    "no available node, all node scores do not meet"
)

DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
DEFAULT_LIMITS = {"nvidia.com/gpu": "1", "nvidia.com/gpucores": "50", "nvidia.com/gpumem": "8192"}

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


# --------------------------------------------------------------------------- resources


class _Kind(NamedTuple):
    resource: str  # plural, as in the URL
    kind: str
    group: str  # "" for the core group
    version: str
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def qualified(self) -> str:  # e.g. deployments.apps, as in error messages
        return f"{self.resource}.{self.group}" if self.group else self.resource


_ALL = frozenset({"list", "get", "create", "update", "patch", "delete"})
KINDS: dict[str, _Kind] = {
    k.resource: k
    for k in (
        _Kind("deployments", "Deployment", "apps", "v1", _ALL),
        _Kind("replicasets", "ReplicaSet", "apps", "v1", frozenset({"list", "get"})),
        _Kind("pods", "Pod", "", "v1", frozenset({"list", "get", "create", "delete"})),
        _Kind("jobs", "Job", "batch", "v1", _ALL),
        _Kind("configmaps", "ConfigMap", "", "v1", _ALL),
        _Kind("events", "Event", "", "v1", frozenset({"list", "get"})),
        _Kind("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v2", _ALL),
    )
}

_PATH_RE = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<res>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)
_ALL_NS_RE = re.compile(r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)/(?P<res>[^/]+)/?$")
_NS_RE = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?/?$")

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_DEFAULT_MESSAGES = {
    409: "the server reported a conflict",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted",
}


class ApiError(Exception):
    """Raised inside the fake; turned into a v1 Status response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(kind: _Kind, name: str) -> ApiError:
    details = {"name": name, "kind": kind.resource}
    if kind.group:
        details["group"] = kind.group
    return ApiError(404, f'{kind.qualified} "{name}" not found', "NotFound", details)


def _invalid(kind: _Kind, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (field, message) pairs, as FieldValueInvalid."""
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    title = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    details: dict[str, Any] = {
        "name": name,
        "kind": kind.kind,
        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
    }
    if kind.group:
        details["group"] = kind.group
    return ApiError(422, f'{title} "{name}" is invalid: {text}', "Invalid", details)


def _conflict(kind: _Kind, name: str) -> ApiError:
    details = {"name": name, "kind": kind.resource}
    if kind.group:
        details["group"] = kind.group
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        "Conflict",
        details,
    )


# --------------------------------------------------------------------------- helpers


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rand_suffix(n: int = 5) -> str:
    return "".join(random.choice(_SAFE_ALPHABET) for _ in range(n))


def _template_hash(template: dict[str, Any]) -> str:
    """pod-template-hash: FNV-32a of the template, encoded with the k8s safe alphabet."""
    h = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    out = ""
    while True:
        h, r = divmod(h, len(_SAFE_ALPHABET))
        out += _SAFE_ALPHABET[r]
        if h == 0:
            break
    return out


def _selector_string(match_labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def _pct_or_int(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        frac = Fraction(int(value[:-1]), 100) * total
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value)


_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<exp>[eE][+-]?\d+)|(?P<suf>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)
_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(q: Any) -> Fraction:
    """Parse a Kubernetes resource quantity ("500m", "4Gi", "8192", 3) to an exact Fraction."""
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity {q!r}")
    if isinstance(q, int | float):
        return Fraction(str(q))
    m = _QUANTITY_RE.match(str(q).strip())
    if not m:
        raise ValueError(f"invalid quantity {q!r}")
    value = Fraction(m["num"])
    if m["exp"]:
        value *= Fraction(10) ** int(m["exp"][1:])
    if m["suf"]:
        value *= _SUFFIX[m["suf"]]
    return value


def _is_overcommit_allowed(resource: str) -> bool:
    """Native resources (no domain, or *.kubernetes.io) except hugepages may be overcommitted."""
    if resource.startswith("hugepages-"):
        return False
    if "/" not in resource:
        return True
    domain = resource.split("/", 1)[0]
    return domain == "kubernetes.io" or domain.endswith(".kubernetes.io")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout:.1f}s")
        time.sleep(interval)


# --------------------------------------------------------------------------- selectors


def _split_selector(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_SET_RE = re.compile(r"^(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s+\((?P<vals>[^)]*)\)$")
_EQ_RE = re.compile(r"^(?P<key>[^\s!=]+)\s*(?P<op>==|=|!=)\s*(?P<val>[^\s]*)$")
_KEY_RE = re.compile(r"^(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)$")


def _parse_selector(selector: str | None) -> list[tuple[str, str, set[str]]]:
    reqs: list[tuple[str, str, set[str]]] = []
    for part in _split_selector(selector or ""):
        if m := _SET_RE.match(part):
            vals = {v.strip() for v in m["vals"].split(",") if v.strip()}
            reqs.append((m["key"], m["op"], vals))
        elif m := _EQ_RE.match(part):
            reqs.append((m["key"], "!=" if m["op"] == "!=" else "=", {m["val"]}))
        elif m := _KEY_RE.match(part):
            reqs.append((m["key"], "!exists" if m["neg"] else "exists", set()))
        else:
            raise ApiError(400, f"unable to parse requirement: {part!r}", "BadRequest")
    return reqs


def matches_label_selector(labels: dict[str, str] | None, selector: str | None) -> bool:
    """Equality (=, ==, !=), set-based (in, notin) and existence (key, !key) requirements."""
    labels = labels or {}
    for key, op, vals in _parse_selector(selector):
        present = key in labels
        if op == "=" and labels.get(key) not in vals:
            return False
        if op == "!=" and present and labels[key] in vals:
            return False
        if op == "in" and (not present or labels[key] not in vals):
            return False
        if op == "notin" and present and labels[key] in vals:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


def _matches_field_selector(obj: dict[str, Any], selector: str | None) -> bool:
    for part in _split_selector(selector or ""):
        m = re.match(r"^([^!=]+)(==|=|!=)(.*)$", part)
        if not m:
            raise ApiError(400, f"invalid field selector: {part!r}", "BadRequest")
        path, op, want = m.group(1).strip(), m.group(2), m.group(3).strip()
        cur: Any = obj
        for seg in path.split("."):
            cur = cur.get(seg) if isinstance(cur, dict) else None
        have = "" if cur is None else str(cur)
        if (op == "!=") == (have == want):
            return False
    return True


# --------------------------------------------------------------------------- patches

#: patchMergeKey of the list fields a Deployment/Pod/HPA can hold (from the OpenAPI spec's
#: x-kubernetes-patch-merge-key); lists not listed here are replaced atomically.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
}
_PRIMITIVE_MERGE = {"finalizers"}


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes strategic merge patch for the fields this project patches.

    Maps merge recursively, ``null`` deletes a key, lists of containers/env/ports/... merge
    by their patchMergeKey (``name`` for containers), other lists are replaced.  Supported
    directives: ``$patch: replace|delete`` (maps and list items), ``$retainKeys``;
    ``$setElementOrder/...`` and ``$deleteFromPrimitiveList/...`` are accepted (the first is
    ignored: existing order is kept, new items are appended).
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and key in _MERGE_KEYS and isinstance(result.get(key), list):
            result[key] = _merge_keyed_list(result[key], value, _MERGE_KEYS[key])
        elif (
            isinstance(value, list)
            and key in _PRIMITIVE_MERGE
            and isinstance(result.get(key), list)
        ):
            result[key] = result[key] + [v for v in value if v not in result[key]]
        else:
            result[key] = _strip_directives(value)
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_keyed_list(current: list[Any], patch_items: list[Any], key: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch_items):
        return [
            _strip_directives(i)
            for i in patch_items
            if not (isinstance(i, dict) and i.get("$patch") == "replace")
        ]
    out = copy.deepcopy(current)
    for item in patch_items:
        if not isinstance(item, dict) or key not in item:
            raise ApiError(
                400, f"map: {item!r} does not contain declared merge key: {key}", "BadRequest"
            )
        idx = next(
            (i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip_directives(item))
        else:
            out[idx] = strategic_merge_patch(out[idx], item)
    return out


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc: Any, tokens: list[str]) -> Any:
    for tok in tokens:
        if isinstance(doc, list):
            doc = doc[int(tok)]
        elif isinstance(doc, dict):
            doc = doc[tok]
        else:
            raise KeyError(tok)
    return doc


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test.  Raises ValueError."""
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError(f"invalid JSON patch operation: {op!r}")
        kind, tokens = op["op"], _pointer(op["path"])
        try:
            if kind == "test":
                if _resolve(doc, tokens) != op.get("value"):
                    raise ValueError(f"testing value {op['path']} failed")
                continue
            if kind in ("move", "copy"):
                src = _pointer(op["from"])
                value = copy.deepcopy(_resolve(doc, src))
                if kind == "move":
                    doc = _remove(doc, src)
                doc = _add(doc, tokens, value)
            elif kind == "add":
                doc = _add(doc, tokens, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                doc = _remove(doc, tokens)
            elif kind == "replace":
                _resolve(doc, tokens)  # must exist
                if not tokens:
                    doc = copy.deepcopy(op.get("value"))
                else:
                    parent = _resolve(doc, tokens[:-1])
                    idx: Any = int(tokens[-1]) if isinstance(parent, list) else tokens[-1]
                    parent[idx] = copy.deepcopy(op.get("value"))
            else:
                raise ValueError(f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, TypeError) as exc:
            raise ValueError(
                f"{kind} operation does not apply: doc is missing path: {op['path']}"
            ) from exc
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if idx < 0 or idx > len(parent):
            raise IndexError(idx)
        parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError(last)
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise KeyError("")
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, list):
        parent.pop(int(tokens[-1]))
    else:
        del parent[tokens[-1]]
    return doc


# --------------------------------------------------------------------------- recording


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # Content-Type, Accept, Authorization (those present)
    body: Any  # decoded JSON, the raw text if not JSON, None if empty


class _Fault(NamedTuple):
    method: str
    path_re: re.Pattern[str]
    status: int
    retry_after: float | None
    message: str | None
    remaining: list[int]  # mutable counter


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api: FakeKubeApi) -> None:
        self.api = api
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # TCP_NODELAY as Go's net/http (kube-apiserver) sets it: http.server sends headers
        # and body separately, and with Nagle's algorithm a kept-alive connection's body
        # would wait ~40 ms for the client's delayed ACK, a cost no real API server has
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet resets
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real server
    server_version = "fake-kube-apiserver"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        code, body, extra = self.server.api._handle(self.command, self.path, self.headers, raw)
        if isinstance(body, _Stream):
            self._send_stream(code, body, extra)
            return
        if isinstance(body, _Text):
            data, ctype = body.text.encode(), "text/plain"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, code: int, body: _Stream, extra: dict[str, str]) -> None:
        """A chunked response (watch events, followed logs), ended by the zero chunk."""
        self.send_response(code)
        self.send_header("Content-Type", body.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            for chunk in body.chunks:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # client went away, or down() reset the connection
            self.close_connection = True
        finally:
            close = getattr(body.chunks, "close", None)
            if close is not None:
                close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Text(NamedTuple):
    """A text/plain response body (pod logs)."""

    text: str


class _Stream(NamedTuple):
    """A streamed (chunked) response body; ``chunks`` runs in the handler's thread."""

    content_type: str
    chunks: Iterator[bytes]


class _Change(NamedTuple):
    """One write, as a watch sees it."""

    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    resource: str
    namespace: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None  # the object before a MODIFIED


@dataclass(frozen=True)
class PodFate:
    """What happens to one bare or Job pod (see :meth:`FakeKubeApi.set_pod_fate`)."""

    #: False: the pod stays Pending, PodScheduled=False/Unschedulable, FailedScheduling event
    schedule: bool = True
    #: the scheduler's message while ``schedule`` is False
    unschedulable_message: str = "0/1 nodes are available: 1 Insufficient nvidia.com/gpumem."
    #: node the pod is bound to
    node_name: str = "node-1"
    #: seconds from scheduling to the containers running (Pending/ContainerCreating until then)
    start_delay_s: float = 0.05
    #: seconds the containers run (Running, Ready) before they terminate
    run_s: float = 0.1
    #: the containers' exit code
    exit_code: int = 0
    #: terminated reason; None: "Completed" for exit code 0, "Error" otherwise
    reason: str | None = None
    #: text the log endpoint returns once the container has started
    logs: str = ""

    @classmethod
    def oom_killed(cls, **kwargs: Any) -> PodFate:
        """The kernel's OOM killer ends the container: exit code 137, reason OOMKilled."""
        return cls(exit_code=137, reason="OOMKilled", **kwargs)

    @property
    def terminated_reason(self) -> str:
        return self.reason or ("Completed" if self.exit_code == 0 else "Error")


# --------------------------------------------------------------------------- the fake


class FakeKubeApi:
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

    # ------------------------------------------------------------------ lifecycle

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

    def down(self) -> None:
        """Stop accepting connections (listening socket closed, open connections reset)."""
        self._close_server()

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        if self._server is None:
            assert self.port is not None, "start() first"
            self._serve(self.port)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def _serve(self, port: int) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _Server(("127.0.0.1", port), self)
                break
            except OSError:
                if port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._server = server
        self.port = server.server_address[1]
        self._server_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._server_thread.start()

    def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        with self._changed:  # open watch streams see the server gone and end
            self._changed.notify_all()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
            self._server_thread = None

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"http://127.0.0.1:{self.port}"

    def configuration(self) -> Any:
        """A ``kubernetes.client.Configuration`` pointing at this server (bearer token set)."""
        from kubernetes import client

        cfg = client.Configuration(host=self.url)
        cfg.api_key = {"BearerToken": self.token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cfg

    def api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient(self.configuration())

    def kubeconfig_dict(self, namespace: str = "default", context: str = "fake") -> dict[str, Any]:
        """A kubeconfig with one context ``context`` (cluster ``context``, user
        ``<context>-user``) pointing at this server."""
        user = f"{context}-user"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": user, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": user, "namespace": namespace},
                }
            ],
            "current-context": context,
        }

    def write_kubeconfig(
        self,
        path: str | Path,
        namespace: str = "default",
        contexts: Mapping[str, FakeKubeApi] | None = None,
    ) -> Path:
        """Write a kubeconfig for this server; with ``contexts`` ({name: api}), one context
        per server instead (see :func:`write_multi_kubeconfig`)."""
        if contexts is not None:
            return write_multi_kubeconfig(path, contexts, namespace)
        return _write_yaml(path, self.kubeconfig_dict(namespace))

    # ------------------------------------------------------------------ faults & recording

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` ("*" = any) and
        ``path_regex`` (re.search on the path, no query) with a Status of code ``status``.
        A 429 always carries ``Retry-After`` (``retry_after`` or 1 s)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._faults.append(
                _Fault(
                    method.upper(), re.compile(path_regex), status, retry_after, message, [times]
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_matching(self, method: str = "*", path_regex: str = ".*") -> list[RecordedRequest]:
        rx = re.compile(path_regex)
        with self._lock:
            return [
                r
                for r in self.requests
                if (method == "*" or r.method == method.upper()) and rx.search(r.path)
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ state helpers

    def add_namespace(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self._namespaces:
                self._namespaces[name] = {
                    "kind": "Namespace",
                    "apiVersion": "v1",
                    "metadata": {
                        "name": name,
                        "uid": str(uuid.uuid4()),
                        "resourceVersion": self._next_rv(),
                        "creationTimestamp": _now(),
                        "labels": {"kubernetes.io/metadata.name": name},
                    },
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }
            return copy.deepcopy(self._namespaces[name])

    def add_deployment(
        self,
        namespace: str,
        name: str,
        replicas: int = 1,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        container_name: str = "triton",
        limits: dict[str, Any] | None = None,
        requests: dict[str, Any] | None = None,
        scheduler_name: str | None = None,
        image: str = DEFAULT_IMAGE,
        extra_containers: list[dict[str, Any]] | None = None,
        progress_deadline_s: int = 600,
        strategy: dict[str, Any] | None = None,
        pods_ready: bool = True,
    ) -> dict[str, Any]:
        """Create an apps/v1 Deployment (as if applied earlier); its pods exist and, with
        ``pods_ready``, are already Running+Ready when this returns."""
        labels = dict(labels or {"app": name})
        resources: dict[str, Any] = {}
        if limits is None:
            limits = dict(DEFAULT_LIMITS)
        if limits:
            resources["limits"] = dict(limits)
        if requests:
            resources["requests"] = dict(requests)
        container = {
            "name": container_name,
            "image": image,
            "args": ["tritonserver", "--model-repository=/models"],
            "ports": [
                {"name": "http", "containerPort": 8000, "protocol": "TCP"},
                {"name": "grpc", "containerPort": 8001, "protocol": "TCP"},
                {"name": "metrics", "containerPort": 8002, "protocol": "TCP"},
            ],
            "resources": resources,
        }
        pod_spec: dict[str, Any] = {"containers": [container, *(extra_containers or [])]}
        if scheduler_name:
            pod_spec["schedulerName"] = scheduler_name
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
                "progressDeadlineSeconds": progress_deadline_s,
            },
        }
        if annotations:
            body["metadata"]["annotations"] = dict(annotations)
        if strategy:
            body["spec"]["strategy"] = strategy
        with self._lock:
            self.add_namespace(namespace)
            self._create(KINDS["deployments"], namespace, body, dry_run=False)
            self._reconcile()
            if pods_ready:
                for pod in self._store["pods"].get(namespace, {}).values():
                    if pod["metadata"]["labels"].items() >= labels.items():
                        self._set_pod_running(pod)
                self._reconcile()
            return copy.deepcopy(self._store["deployments"][namespace][name])

    def add_object(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create any supported object (e.g. "configmaps", "horizontalpodautoscalers")."""
        with self._lock:
            self.add_namespace(namespace)
            return copy.deepcopy(self._create(KINDS[resource], namespace, body, dry_run=False))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._store[resource].get(namespace, {}).get(name)
            return copy.deepcopy(obj)

    def list(
        self, resource: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(o)
                for o in self._store[resource].get(namespace, {}).values()
                if matches_label_selector(o["metadata"].get("labels"), label_selector)
            ]

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("deployments", namespace, name)

    def pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return self.list("pods", namespace, label_selector)

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self.list("events", namespace)

    def ready_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.pods(namespace, label_selector) if _pod_ready(p)]

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    # ------------------------------------------------------------------ request handling

    def _handle(
        self, method: str, raw_path: str, headers: Any, raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        kept = {
            k: headers[k]
            for k in ("Content-Type", "Accept", "Authorization")
            if headers.get(k) is not None
        }
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, kept, copy.deepcopy(body)))
            try:
                self._check_faults(method, path)
                if self.require_auth and kept.get("Authorization") != f"Bearer {self.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                self._extra_headers = {}
                code, out = self._route(method, path, query, kept.get("Content-Type", ""), body)
                return code, out, self._extra_headers
            except ApiError as err:
                return err.code, err.status(), err.headers

    def _check_faults(self, method: str, path: str) -> None:
        for fault in self._faults:
            if fault.method not in ("*", method) or not fault.path_re.search(path):
                continue
            fault.remaining[0] -= 1
            if fault.remaining[0] <= 0:
                self._faults.remove(fault)
            headers, details = {}, None
            if fault.retry_after is not None:
                secs = max(1, math.ceil(fault.retry_after))
                headers["Retry-After"] = str(secs)
                details = {"retryAfterSeconds": secs}
            msg = fault.message or _DEFAULT_MESSAGES.get(fault.status, "injected fault")
            raise ApiError(fault.status, msg, details=details, headers=headers)

    def _route(
        self, method: str, path: str, query: dict[str, str], ctype: str, body: Any
    ) -> tuple[int, Any]:
        if path.rstrip("/") == "/version" and method == "GET":
            return 200, {
                "major": "1",
                "minor": "30",
                "gitVersion": "v1.30.0",
                "gitCommit": "7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a",
                "gitTreeState": "clean",
                "buildDate": "2024-04-17T17:27:03Z",
                "goVersion": "go1.22.2",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if m := _NS_RE.match(path):
            if method != "GET":
                raise ApiError(405, f"the server does not allow this method on {path}")
            if m["name"]:
                if m["name"] not in self._namespaces:
                    raise ApiError(
                        404,
                        f'namespaces "{m["name"]}" not found',
                        "NotFound",
                        {"name": m["name"], "kind": "namespaces"},
                    )
                return 200, copy.deepcopy(self._namespaces[m["name"]])
            items = [_strip_type(o) for o in self._namespaces.values()]
            return 200, self._list_body("NamespaceList", "v1", items)
        if (m := _ALL_NS_RE.match(path)) and method == "GET":  # e.g. list_pod_for_all_namespaces
            kind = KINDS.get(m["res"])
            if kind is None or kind.prefix != m["prefix"]:
                raise ApiError(404, "the server could not find the requested resource", details={})
            if _is_watch(query):
                return 200, self._watch(kind, None, query)
            return 200, self._list(kind, None, query)
        m = _PATH_RE.match(path)
        kind = KINDS.get(m["res"]) if m else None
        if m is None or kind is None or kind.prefix != m["prefix"]:
            raise ApiError(404, "the server could not find the requested resource", details={})
        ns, name, sub = m["ns"], m["name"], m["sub"]
        if _is_watch(query):
            if method != "GET" or name is not None:
                raise ApiError(405, "watch is only served on list endpoints (GET, no name)")
            return 200, self._watch(kind, ns, query)
        dry_run = self._dry_run(query)
        if sub == "log" and kind.resource == "pods" and name is not None:
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on pods/log")
            return self._pod_log(ns, name, query)
        if sub is not None:
            if kind.resource != "deployments" or sub not in ("scale", "status"):
                raise ApiError(404, "the server could not find the requested resource", details={})
            if sub == "status":  # read-only here: status belongs to the fake's controller
                if method != "GET":
                    raise ApiError(405, "the fake API server only serves GET on deployments/status")
                return 200, self._get(kind, ns, name)
            return self._scale(method, ns, name, ctype, body, dry_run)
        verb = {
            ("GET", False): "list",
            ("POST", False): "create",
            ("GET", True): "get",
            ("PUT", True): "update",
            ("PATCH", True): "patch",
            ("DELETE", True): "delete",
        }.get((method, name is not None))
        if verb is None or verb not in kind.verbs:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if verb == "list":
            return 200, self._list(kind, ns, query)
        if verb == "create":
            return 201, self._create(kind, ns, self._require_object(body), dry_run)
        assert name is not None
        current = self._get(kind, ns, name)
        if verb == "get":
            return 200, current
        if verb == "update":
            return 200, self._update(kind, ns, name, self._require_object(body), dry_run)
        if verb == "patch":
            patched = self._apply_patch(current, ctype, body)
            return 200, self._update(kind, ns, name, patched, dry_run)
        return 200, self._delete(kind, ns, name, dry_run, _delete_policy(query, body))

    @staticmethod
    def _dry_run(query: dict[str, str]) -> bool:
        if "dryRun" not in query:
            return False
        if query["dryRun"] != "All":
            raise ApiError(
                400, f'dryRun: Unsupported value: "{query["dryRun"]}": supported values: "All"'
            )
        return True

    @staticmethod
    def _require_object(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        return body

    @staticmethod
    def _apply_patch(current: dict[str, Any], ctype: str, body: Any) -> dict[str, Any]:
        ctype = ctype.split(";")[0].strip().lower()
        if ctype == "application/strategic-merge-patch+json":
            if not isinstance(body, dict):
                raise ApiError(400, "strategic merge patch must be a JSON object")
            return strategic_merge_patch(current, body)
        if ctype == "application/merge-patch+json":
            if not isinstance(body, dict):
                raise ApiError(400, "merge patch must be a JSON object")
            return json_merge_patch(current, body)
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "json patch must be a JSON array of operations")
            try:
                result = json_patch(current, body)
            except ValueError as exc:
                raise ApiError(422, str(exc), "Invalid") from exc
            if not isinstance(result, dict):
                raise ApiError(422, "json patch result is not an object", "Invalid")
            return result
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"application/json-patch+json, application/merge-patch+json, "
            f"application/strategic-merge-patch+json (got {ctype!r}; server-side apply is not "
            f"supported by the fake)",
        )

    # ------------------------------------------------------------------ generic storage

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _list_body(self, kind: str, api_version: str, items: list[Any]) -> dict[str, Any]:
        return {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _objects(self, kind: _Kind, ns: str | None, query: dict[str, str]) -> list[dict[str, Any]]:
        """Stored objects of ``kind`` in ``ns`` (None: all namespaces) matching the selectors."""
        spaces = [ns] if ns is not None else sorted(self._store[kind.resource])
        objs = [
            o
            for space in spaces
            for o in sorted(self._store[kind.resource].get(space, {}).values(), key=_name_key)
        ]
        return [o for o in objs if _selected(o, query)]

    def _list(self, kind: _Kind, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        items = [_strip_type(o) for o in self._objects(kind, ns, query)]
        return self._list_body(f"{kind.kind}List", kind.api_version, items)

    def _get(self, kind: _Kind, ns: str, name: str) -> dict[str, Any]:
        obj = self._store[kind.resource].get(ns, {}).get(name)
        if obj is None:
            raise _not_found(kind, name)
        return copy.deepcopy(obj)

    def _create(self, kind: _Kind, ns: str, body: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        if meta.get("namespace") not in (None, ns):
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if meta.get("resourceVersion"):
            raise ApiError(400, "resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + _rand_suffix()
            else:
                raise _invalid(kind, "", [("metadata.name", "Required value: name is required")])
        name = meta["name"]
        if ns not in self._namespaces:
            raise ApiError(
                404, f'namespaces "{ns}" not found', "NotFound", {"name": ns, "kind": "namespaces"}
            )
        if name in self._store[kind.resource].get(ns, {}):
            details = {"name": name, "kind": kind.resource}
            if kind.group:
                details["group"] = kind.group
            raise ApiError(
                409, f'{kind.qualified} "{name}" already exists', "AlreadyExists", details
            )
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta["namespace"] = ns
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta.pop("deletionTimestamp", None)
        if kind.resource in ("deployments", "horizontalpodautoscalers", "replicasets"):
            meta["generation"] = 1
        self._admit(kind, ns, None, obj)
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._store[kind.resource].setdefault(ns, {})[name] = obj
        self._emit("ADDED", kind.resource, obj)
        return copy.deepcopy(obj)

    def _update(
        self, kind: _Kind, ns: str, name: str, body: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        old = self._store[kind.resource].get(ns, {}).get(name)
        if old is None:
            raise _not_found(kind, name)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                f"({name})",
            )
        if meta.get("namespace", ns) != ns:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        rv = meta.get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise _conflict(kind, name)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        for key in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        self._admit(kind, ns, old, obj)
        if obj == old or dry_run:  # a no-op write does not bump resourceVersion
            return copy.deepcopy(obj)
        meta["resourceVersion"] = self._next_rv()
        self._store[kind.resource][ns][name] = obj
        self._emit("MODIFIED", kind.resource, obj, old)
        return copy.deepcopy(obj)

    def _delete(
        self, kind: _Kind, ns: str, name: str, dry_run: bool, policy: str | None = None
    ) -> dict[str, Any]:
        obj = self._store[kind.resource][ns][name]
        if kind.resource == "pods":
            if not dry_run:
                self._delete_pod(obj)
            return copy.deepcopy(self._store["pods"][ns].get(name, obj))
        if kind.resource == "jobs":
            if policy is None:  # batch/v1's legacy default, with the warning 1.27+ servers send
                policy = "Orphan"
                self._extra_headers["Warning"] = _JOB_ORPHAN_WARNING
            if policy in ("Orphan", "Foreground"):
                new = copy.deepcopy(obj)
                new["metadata"].setdefault("deletionTimestamp", _now())
                new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                fin = "orphan" if policy == "Orphan" else "foregroundDeletion"
                new["metadata"]["finalizers"] = [*new["metadata"].get("finalizers", []), fin]
                if not dry_run:
                    self._write("jobs", obj, new)
                    self._reconcile_job(ns, obj, time.monotonic())
                return copy.deepcopy(new)
            if not dry_run:
                for pod in self._owned_pods(ns, obj["metadata"]["uid"]):
                    self._delete_pod(pod)
        if not dry_run:
            self._remove(kind.resource, ns, name)
        details = {"name": name, "kind": kind.resource, "uid": obj["metadata"]["uid"]}
        if kind.group:
            details["group"] = kind.group
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    # ------------------------------------------------------------------ admission

    def _admit(self, kind: _Kind, ns: str, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        """Defaulting and validation, plus what the server manages (status, generation)."""
        name = obj["metadata"]["name"]
        for key in ("labels", "annotations"):
            value = obj["metadata"].get(key)
            if value is not None and (
                not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
            ):
                raise _invalid(kind, name, [(f"metadata.{key}", "values must be strings")])
        if kind.resource == "deployments":
            self._admit_deployment(kind, old, obj)
        elif kind.resource == "pods":
            self._admit_pod(kind, obj)
        elif kind.resource == "jobs":
            self._admit_job(kind, old, obj)
        elif kind.resource == "configmaps":
            for key in ("data",):
                data = obj.get(key) or {}
                if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                    raise ApiError(
                        400,
                        "json: cannot unmarshal into Go struct field ConfigMap.data of type string",
                    )
        elif kind.resource == "horizontalpodautoscalers":
            self._admit_hpa(kind, ns, old, obj)

    def _admit_deployment(
        self, kind: _Kind, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        name = obj["metadata"]["name"]
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise _invalid(kind, name, [("spec", "Required value")])
        replicas = spec.setdefault("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise ApiError(
                400,
                f"json: cannot unmarshal {type(replicas).__name__} into Go struct field "
                "DeploymentSpec.spec.replicas of type int32",
            )
        causes: list[tuple[str, str]] = []
        if replicas < 0:
            causes.append(
                ("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
            )
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template = spec.get("template") or {}
        tlabels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("spec.selector", "Required value"))
        elif not tlabels.items() >= selector.items():
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {tlabels}: `selector` does not match template `labels`",
                )
            )
        if old is not None and old["spec"].get("selector") != spec.get("selector"):
            causes.append(
                ("spec.selector", f"Invalid value: {spec.get('selector')}: field is immutable")
            )
        pod_spec = template.get("spec") or {}
        containers = pod_spec.get("containers") or []
        if not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
        pod_spec.setdefault("restartPolicy", "Always")
        pod_spec.setdefault("terminationGracePeriodSeconds", 30)
        pod_spec.setdefault("dnsPolicy", "ClusterFirst")
        pod_spec.setdefault("securityContext", {})
        pod_spec.setdefault("schedulerName", "default-scheduler")
        template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        seen: set[str] = set()
        for i, c in enumerate(containers):
            base = f"spec.template.spec.containers[{i}]"
            if not isinstance(c, dict) or not c.get("name"):
                causes.append((f"{base}.name", "Required value"))
                continue
            if c["name"] in seen:
                causes.append((f"{base}.name", f'Duplicate value: "{c["name"]}"'))
            seen.add(c["name"])
            if not c.get("image"):
                causes.append((f"{base}.image", "Required value"))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = c.get("image") or ""
            c.setdefault(
                "imagePullPolicy", "Always" if image.endswith(":latest") else "IfNotPresent"
            )
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                port.setdefault("protocol", "TCP")
            causes.extend(_validate_resources(c["resources"], f"{base}.resources"))
        if causes:
            raise _invalid(kind, name, causes)
        if old is None:
            obj["status"] = {}
        else:
            obj["status"] = copy.deepcopy(old.get("status", {}))  # status is the controller's
            if spec != old["spec"]:
                obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1

    def _admit_hpa(
        self, kind: _Kind, ns: str, old: dict[str, Any] | None, obj: dict[str, Any]
    ) -> None:
        name = obj["metadata"]["name"]
        spec = obj.get("spec") or {}
        causes: list[tuple[str, str]] = []
        ref = spec.get("scaleTargetRef") or {}
        if not ref.get("kind"):
            causes.append(("spec.scaleTargetRef.kind", "Required value"))
        if not ref.get("name"):
            causes.append(("spec.scaleTargetRef.name", "Required value"))
        max_r = spec.get("maxReplicas")
        min_r = spec.setdefault("minReplicas", 1)
        if not isinstance(max_r, int) or max_r < 1:
            causes.append(
                ("spec.maxReplicas", f"Invalid value: {max_r}: must be greater than or equal to 1")
            )
        elif isinstance(min_r, int) and min_r > max_r:
            causes.append(
                (
                    "spec.minReplicas",
                    f"Invalid value: {min_r}: must be less than or equal to maxReplicas",
                )
            )
        if causes:
            raise _invalid(kind, name, causes)
        if "metrics" not in spec:
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }
            ]
        if old is not None and spec != old.get("spec"):
            obj["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        target = self._store["deployments"].get(ns, {}).get(ref.get("name", ""))
        current = (target or {}).get("status", {}).get("replicas", 0)
        status: dict[str, Any] = {"desiredReplicas": current}
        if current:
            status["currentReplicas"] = current
        now = _now()
        status["conditions"] = [
            {
                "type": "AbleToScale",
                "status": "True" if target else "False",
                "lastTransitionTime": now,
                "reason": "SucceededGetScale" if target else "FailedGetScale",
                "message": "the HPA controller was able to get the target's current scale"
                if target
                else f'deployments/scale.apps "{ref.get("name")}" not found',
            }
        ]
        obj["status"] = status

    # ------------------------------------------------------------------ scale subresource

    def _scale_of(self, dep: dict[str, Any]) -> dict[str, Any]:
        meta = dep["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {
                "replicas": dep.get("status", {}).get("replicas", 0),
                "selector": _selector_string(dep["spec"]["selector"].get("matchLabels", {})),
            },
        }

    def _scale(
        self, method: str, ns: str, name: str, ctype: str, body: Any, dry_run: bool
    ) -> tuple[int, dict[str, Any]]:
        kind = KINDS["deployments"]
        dep = self._get(kind, ns, name)
        scale = self._scale_of(dep)
        if method == "GET":
            return 200, scale
        if method == "PUT":
            new_scale = self._require_object(body)
        elif method == "PATCH":
            new_scale = self._apply_patch(scale, ctype, body)
        else:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        rv = (new_scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != dep["metadata"]["resourceVersion"]:
            raise _conflict(kind, name)
        replicas = (new_scale.get("spec") or {}).get("replicas", 0)
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise ApiError(
                400,
                "json: cannot unmarshal into Go struct field ScaleSpec.spec.replicas of type int32",
            )
        if replicas < 0:
            raise ApiError(
                422,
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                "must be greater than or equal to 0",
                "Invalid",
                {"name": name, "group": "autoscaling", "kind": "Scale"},
            )
        dep["spec"]["replicas"] = replicas
        dep["metadata"].pop("resourceVersion", None)
        updated = self._update(kind, ns, name, dep, dry_run)
        return 200, self._scale_of(updated)

    # ------------------------------------------------------------------ controller

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

    def _write(self, resource: str, obj: dict[str, Any], new: dict[str, Any]) -> None:
        """Controller write: replace ``obj`` in place by ``new`` if different (bumps RV)."""
        if obj == new:
            return
        prev = copy.deepcopy(obj)
        new["metadata"]["resourceVersion"] = self._next_rv()
        obj.clear()
        obj.update(new)
        self._emit("MODIFIED", resource, obj, prev)

    def _tick_pod(self, ns: str, pod: dict[str, Any], now: float) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        if "deleted" in times:
            if now - times["deleted"] >= self.pod_termination_delay_s:
                self._remove_pod(pod)
            return
        if not _owned_by_kind(pod, "ReplicaSet"):  # bare and Job pods follow their PodFate
            self._tick_fate_pod(ns, pod, times, now)
            return
        if pod["status"].get("phase") != "Pending":
            return
        if "scheduled" not in times:
            if self.pods_pending:
                if _condition(pod, "PodScheduled") is None:
                    new = copy.deepcopy(pod)
                    new["status"] = {
                        "phase": "Pending",
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "lastProbeTime": None,
                                "lastTransitionTime": _now(),
                                "reason": "Unschedulable",
                                "message": self.pending_message,
                            }
                        ],
                        "qosClass": pod["status"].get("qosClass", "BestEffort"),
                    }
                    self._write("pods", pod, new)
                    self._event(
                        ns,
                        pod,
                        "Warning",
                        "FailedScheduling",
                        self.pending_message,
                        _scheduler(pod),
                    )
                return
            times["scheduled"] = now
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = self.node_name
            self._ip_counter += 1
            new["status"] = _pod_status_creating(pod, self._ip_counter)
            self._write("pods", pod, new)
            self._event(
                ns,
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {ns}/{pod['metadata']['name']} to {self.node_name}",
                _scheduler(pod),
            )
            return
        if now - times["scheduled"] >= self.pod_ready_delay_s:
            self._set_pod_running(pod)
            self._event(
                ns,
                pod,
                "Normal",
                "Started",
                f"Started container {pod['spec']['containers'][0]['name']}",
                "kubelet",
            )

    def _set_pod_running(self, pod: dict[str, Any]) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        times.setdefault("scheduled", time.monotonic())
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = self.node_name
        if not new["status"].get("podIP"):
            self._ip_counter += 1
            new["status"] = _pod_status_creating(pod, self._ip_counter)
        st, now = new["status"], _now()
        st["phase"] = "Running"
        for c in st["conditions"]:
            c["status"], c["lastTransitionTime"] = "True", now
            c.pop("reason", None)
            c.pop("message", None)
        st["containerStatuses"] = [
            {
                "name": c["name"],
                "state": {"running": {"startedAt": now}},
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": c["image"],
                "imageID": f"{c['image'].split(':')[0]}@sha256:"
                + hashlib.sha256(c["image"].encode()).hexdigest(),
                "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
                "started": True,
            }
            for c in new["spec"]["containers"]
        ]
        self._write("pods", pod, new)

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        if "deleted" in times:
            return
        times["deleted"] = time.monotonic()
        new = copy.deepcopy(pod)
        new["metadata"]["deletionTimestamp"] = _now()
        new["metadata"]["deletionGracePeriodSeconds"] = pod["spec"].get(
            "terminationGracePeriodSeconds", 30
        )
        self._write("pods", pod, new)
        self._event(
            pod["metadata"]["namespace"],
            pod,
            "Normal",
            "Killing",
            f"Stopping container {pod['spec']['containers'][0]['name']}",
            "kubelet",
        )
        if self.pod_termination_delay_s <= 0:
            self._remove_pod(pod)

    def _remove_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self._remove("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
        for table in (self._pod_times, self._pod_fates, self._pod_logs):
            table.pop(uid, None)

    def _remove(self, resource: str, ns: str, name: str) -> None:
        """Drop an object from the store; watches see DELETED at a new resourceVersion."""
        obj = self._store[resource].get(ns, {}).pop(name, None)
        if obj is not None:
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            self._emit("DELETED", resource, gone)

    def _create_pod(self, ns: str, dep: dict[str, Any], rs: dict[str, Any], pod_hash: str) -> None:
        template = copy.deepcopy(rs["spec"]["template"])
        tmeta = template.get("metadata") or {}
        prefix = f"{rs['metadata']['name']}-"
        pods = self._store["pods"].setdefault(ns, {})
        name = prefix + _rand_suffix()
        while name in pods:
            name = prefix + _rand_suffix()
        spec = template["spec"]
        for c in spec.get("containers", []):  # SetDefaults_Pod: requests default to limits
            res = c.setdefault("resources", {})
            if res.get("limits"):
                req = res.setdefault("requests", {})
                for k, v in res["limits"].items():
                    req.setdefault(k, v)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", "default")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": f"node.kubernetes.io/{t}",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
                for t in ("not-ready", "unreachable")
            ],
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": prefix,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_rv(),
                "creationTimestamp": _now(),
                "labels": {**(tmeta.get("labels") or {}), "pod-template-hash": pod_hash},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs["metadata"]["name"],
                        "uid": rs["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": _qos_class(spec)},
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        pods[name] = pod
        self._emit("ADDED", "pods", pod)
        self._pod_times[pod["metadata"]["uid"]] = {}
        self._event(
            ns, rs, "Normal", "SuccessfulCreate", f"Created pod: {name}", "replicaset-controller"
        )

    def _rs_for(self, ns: str, dep: dict[str, Any], pod_hash: str) -> tuple[dict[str, Any], bool]:
        """The ReplicaSet of the current template, created (or made newest again) if needed."""
        owned = self._owned_replicasets(ns, dep)
        revisions = [
            int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for r in owned
        ]
        top = max(revisions, default=0)
        rs = next(
            (r for r in owned if r["metadata"]["labels"]["pod-template-hash"] == pod_hash), None
        )
        spec = dep["spec"]
        if rs is None:
            name = f"{dep['metadata']['name']}-{pod_hash}"
            template = copy.deepcopy(spec["template"])
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = (
                pod_hash
            )
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self._next_rv(),
                    "generation": 1,
                    "creationTimestamp": _now(),
                    "labels": {
                        **(spec["template"].get("metadata", {}).get("labels") or {}),
                        "pod-template-hash": pod_hash,
                    },
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(spec["replicas"]),
                        "deployment.kubernetes.io/max-replicas": str(spec["replicas"]),
                        "deployment.kubernetes.io/revision": str(top + 1),
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": dep["metadata"]["name"],
                            "uid": dep["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": 0,
                    "selector": {
                        "matchLabels": {
                            **spec["selector"]["matchLabels"],
                            "pod-template-hash": pod_hash,
                        }
                    },
                    "template": template,
                },
                "status": {"replicas": 0, "observedGeneration": 1},
            }
            self._store["replicasets"].setdefault(ns, {})[name] = rs
            self._emit("ADDED", "replicasets", rs)
            return rs, True
        elif int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) < top:
            new = copy.deepcopy(rs)  # rollback to an older template: it becomes the newest
            new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = str(top + 1)
            self._write("replicasets", rs, new)
        return rs, False

    def _owned_replicasets(self, ns: str, dep: dict[str, Any]) -> list[dict[str, Any]]:
        uid = dep["metadata"]["uid"]
        return [
            r
            for r in self._store["replicasets"].get(ns, {}).values()
            if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences", []))
        ]

    def _pods_of(self, ns: str, rs: dict[str, Any]) -> list[dict[str, Any]]:
        uid = rs["metadata"]["uid"]
        return [
            p
            for p in self._store["pods"].get(ns, {}).values()
            if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))
            and "deletionTimestamp" not in p["metadata"]
        ]

    def _reconcile_deployment(self, ns: str, dep: dict[str, Any], now: float) -> None:
        spec = dep["spec"]
        desired = spec["replicas"]
        pod_hash = _template_hash(spec["template"])
        new_rs, created = self._rs_for(ns, dep, pod_hash)
        old_rss = [r for r in self._owned_replicasets(ns, dep) if r is not new_rs]
        new_pods = self._pods_of(ns, new_rs)
        old_pods = [p for r in old_rss for p in self._pods_of(ns, r)]
        strategy = spec.get("strategy", {})
        if not spec.get("paused"):
            if strategy.get("type") == "Recreate":
                to_delete = old_pods
                n_create = (
                    desired - len(new_pods)
                    if not old_pods and not self._terminating(ns, old_rss)
                    else 0
                )
            else:
                ru = strategy.get("rollingUpdate", {})
                surge = _pct_or_int(ru.get("maxSurge", "25%"), desired, round_up=True)
                unavail = _pct_or_int(ru.get("maxUnavailable", "25%"), desired, round_up=False)
                if surge == 0 and unavail == 0:
                    unavail = 1
                room = desired + surge - len(new_pods) - len(old_pods)
                n_create = min(desired - len(new_pods), max(0, room))
                to_delete = []
                if old_pods:
                    # unready old pods go first; ready ones only while availability allows it
                    unready = [p for p in old_pods if not _pod_ready(p)]
                    ready = [p for p in old_pods if _pod_ready(p)]
                    ready_total = len(ready) + sum(1 for p in new_pods if _pod_ready(p))
                    can_remove = max(0, ready_total - (desired - unavail))
                    excess = max(0, len(new_pods) + len(old_pods) - (desired + surge))
                    to_delete = unready + ready[: max(can_remove, excess)]
            for _ in range(max(0, n_create)):
                self._create_pod(ns, dep, new_rs, pod_hash)
            if len(new_pods) > desired:  # scale down: Pending/unready and youngest go first
                youngest_first = sorted(
                    new_pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True
                )
                victims = sorted(youngest_first, key=_pod_ready)  # stable: unready first
                to_delete = list(to_delete) + victims[: len(new_pods) - desired]
            for pod in to_delete:
                self._delete_pod(pod)
                self._event(
                    ns,
                    pod,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                )
        new_pods = self._pods_of(ns, new_rs)
        old_pods = [p for r in old_rss for p in self._pods_of(ns, r)]
        for rs in [new_rs, *old_rss]:
            pods = self._pods_of(ns, rs)
            old_count = rs["spec"]["replicas"]
            if len(pods) != old_count:
                verb = "up" if len(pods) > old_count else "down"
                self._event(
                    ns,
                    dep,
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled {verb} replica set {rs['metadata']['name']} from {old_count} to {len(pods)}",
                    "deployment-controller",
                )
            new = copy.deepcopy(rs)
            new["spec"]["replicas"] = len(pods)
            ready = sum(1 for p in pods if _pod_ready(p))
            st: dict[str, Any] = {
                "replicas": len(pods),
                "observedGeneration": new["metadata"]["generation"],
            }
            for key, val in (
                ("fullyLabeledReplicas", len(pods)),
                ("readyReplicas", ready),
                ("availableReplicas", ready),
            ):
                if val:
                    st[key] = val
            new["status"] = st
            if rs is new_rs:
                new["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(
                    desired
                )
            self._write("replicasets", rs, new)
        self._update_deployment_status(ns, dep, new_rs, old_rss, new_pods, old_pods, now, created)

    def _terminating(self, ns: str, rss: Iterable[dict[str, Any]]) -> bool:
        uids = {r["metadata"]["uid"] for r in rss}
        return any(
            "deletionTimestamp" in p["metadata"]
            and any(o.get("uid") in uids for o in p["metadata"].get("ownerReferences", []))
            for p in self._store["pods"].get(ns, {}).values()
        )

    def _update_deployment_status(
        self,
        ns: str,
        dep: dict[str, Any],
        new_rs: dict[str, Any],
        old_rss: list[dict[str, Any]],
        new_pods: list[dict[str, Any]],
        old_pods: list[dict[str, Any]],
        now: float,
        created: bool,
    ) -> None:
        spec = dep["spec"]
        desired = spec["replicas"]
        all_pods = new_pods + old_pods
        ready = sum(1 for p in all_pods if _pod_ready(p))
        total_spec = sum(r["spec"]["replicas"] for r in [new_rs, *old_rss])
        counts = {
            "replicas": len(all_pods),
            "updatedReplicas": len(new_pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, total_spec - ready),
        }
        ru = spec.get("strategy", {}).get("rollingUpdate", {})
        unavail = _pct_or_int(ru.get("maxUnavailable", "25%"), desired, round_up=False) if ru else 0
        rs_name = new_rs["metadata"]["name"]
        complete = len(new_pods) == desired and not old_pods and ready == desired
        uid = dep["metadata"]["uid"]
        new_ready = sum(1 for p in new_pods if _pod_ready(p))
        signature = (len(new_pods), len(old_pods), ready, new_ready, desired)
        last_sig, last_t = self._progress.get(uid, (None, now))
        progressed = signature != last_sig
        if progressed:
            self._progress[uid] = (signature, now)
            last_t = now
        old_status = dep.get("status", {})
        old_conds = {c["type"]: c for c in old_status.get("conditions", [])}
        stamp = _now()

        def cond(ctype: str, status: str, reason: str, message: str, bump: bool) -> dict[str, Any]:
            prev = old_conds.get(ctype)
            c = {
                "type": ctype,
                "status": status,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": reason,
                "message": message,
            }
            if prev is not None:
                if prev["status"] == status:
                    c["lastTransitionTime"] = prev["lastTransitionTime"]
                if prev["status"] == status and prev["reason"] == reason and not bump:
                    c["lastUpdateTime"] = prev["lastUpdateTime"]
            return c

        if ready >= desired - unavail:
            available = cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                False,
            )
        else:
            available = cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                False,
            )
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            progressing = cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                False,
            )
        elif now - last_t > deadline:
            progressing = cond(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                False,
            )
        elif created:
            progressing = cond(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{rs_name}"',
                True,
            )
        else:
            progressing = cond(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                progressed,
            )
        status: dict[str, Any] = {"observedGeneration": dep["metadata"]["generation"]}
        status.update({k: v for k, v in counts.items() if v})  # omitempty, like the real server
        status["conditions"] = [available, progressing]
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        new = copy.deepcopy(dep)
        new["status"] = status
        revision = new_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        new["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = (
            revision
        )
        self._write("deployments", dep, new)

    # ------------------------------------------------------------------ watch

    def _emit(
        self,
        etype: str,
        resource: str,
        obj: dict[str, Any],
        prev: dict[str, Any] | None = None,
    ) -> None:
        """Record one change for watches and wake the open watch streams."""
        with self._changed:
            if len(self._history) == self._history.maxlen:
                self._history_floor = self._history[0].rv
            self._history.append(
                _Change(
                    int(obj["metadata"]["resourceVersion"]),
                    etype,
                    resource,
                    obj["metadata"].get("namespace", ""),
                    copy.deepcopy(obj),
                    copy.deepcopy(prev) if prev is not None else None,
                )
            )
            self._changed.notify_all()

    def _watch(self, kind: _Kind, ns: str | None, query: dict[str, str]) -> _Stream:
        """Start a watch (called under the lock): synthetic ADDED events for the current
        objects unless a resourceVersion is given, then every change after it."""
        _selected({"metadata": {}}, query)  # a malformed selector is a 400 before streaming
        rv = query.get("resourceVersion") or "0"
        if not rv.isdigit():
            raise ApiError(400, f'resourceVersion: Invalid value: "{rv}": must be an integer')
        initial: list[tuple[str, dict[str, Any]]] = []
        cursor = int(rv)
        if cursor == 0:
            initial = [("ADDED", copy.deepcopy(o)) for o in self._objects(kind, ns, query)]
            cursor = self._rv
        timeout = query.get("timeoutSeconds")
        try:
            deadline = time.monotonic() + float(timeout) if timeout else math.inf
        except ValueError:
            raise ApiError(400, f"timeoutSeconds: invalid value {timeout!r}") from None
        chunks = self._watch_chunks(self._server, kind, ns, query, cursor, initial, deadline)
        return _Stream("application/json", chunks)

    def _watch_chunks(
        self,
        server: _Server | None,
        kind: _Kind,
        ns: str | None,
        query: dict[str, str],
        cursor: int,
        initial: list[tuple[str, dict[str, Any]]],
        deadline: float,
    ) -> Iterator[bytes]:
        for etype, obj in initial:
            yield _event_line(etype, obj)
        while True:
            with self._changed:
                while True:
                    if self._stop.is_set() or self._server is not server:
                        return
                    if cursor < self._history_floor:  # what it asks for is no longer kept
                        status = ApiError(
                            410,
                            f"too old resource version: {cursor} ({self._history_floor + 1})",
                            "Expired",
                        ).status()
                        events, cursor = [("ERROR", status)], -1
                        break
                    events, cursor = self._changes_after(cursor, kind, ns, query)
                    if events:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._changed.wait(min(remaining, 0.5))
            for etype, obj in events:  # written outside the lock
                yield _event_line(etype, obj)
            if cursor < 0:
                return

    def _changes_after(
        self, cursor: int, kind: _Kind, ns: str | None, query: dict[str, str]
    ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        newer: list[_Change] = []
        for change in reversed(self._history):
            if change.rv <= cursor:
                break
            newer.append(change)
        out = []
        for change in reversed(newer):
            if change.resource != kind.resource or ns not in (None, change.namespace):
                continue
            now_in = _selected(change.obj, query)
            was_in = _selected(change.prev, query) if change.prev is not None else now_in
            if change.type != "MODIFIED" or (now_in and was_in):
                etype = change.type if now_in else None
            else:  # a selector sees an object enter or leave it as ADDED / DELETED
                etype = "ADDED" if now_in else ("DELETED" if was_in else None)
            if etype:
                out.append((etype, change.obj))
        return out, (newer[0].rv if newer else cursor)

    # ------------------------------------------------------------------ pod logs

    def _pod_log(self, ns: str, name: str, query: dict[str, str]) -> tuple[int, Any]:
        pod = self._get(KINDS["pods"], ns, name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if not container:
            if len(names) != 1:
                raise ApiError(
                    400,
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(names)}]",
                )
            container = names[0]
        elif container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        if not pod["spec"].get("nodeName"):  # not scheduled: no kubelet to ask, empty log
            return 200, _Text("")
        cs = next(
            (c for c in pod["status"].get("containerStatuses", []) if c["name"] == container), {}
        )
        waiting = cs.get("state", {}).get("waiting")
        restarted = bool(cs.get("lastState", {}).get("terminated"))  # logs of the last run
        if not cs or (waiting is not None and not restarted):
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise ApiError(
                400, f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        text = _tail(self._pod_logs.get(pod["metadata"]["uid"], ""), query.get("tailLines"))
        if query.get("follow") not in ("true", "1", "True"):
            return 200, _Text(text)
        return 200, _Stream("text/plain", self._follow_chunks(self._server, pod, text))

    def _follow_chunks(
        self, server: _Server | None, pod: dict[str, Any], text: str
    ) -> Iterator[bytes]:
        """``follow=true``: the log so far, then the stream stays open until the pod ends."""
        if text:
            yield text.encode()
        uid, ns, name = (
            pod["metadata"]["uid"],
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
        )
        with self._changed:
            while not self._stop.is_set() and self._server is server:
                cur = self._store["pods"].get(ns, {}).get(name)
                if cur is None or cur["metadata"]["uid"] != uid:
                    return
                if cur["status"].get("phase") in ("Succeeded", "Failed"):
                    return
                self._changed.wait(0.5)

    # ------------------------------------------------------------------ pod admission

    def _admit_pod(self, kind: _Kind, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        causes = _name_causes(name)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise _invalid(kind, name, [*causes, ("spec.containers", "Required value")])
        causes += _validate_pod_spec(spec, "spec")
        if causes:
            raise _invalid(kind, name, causes)
        _default_pod_spec(spec)
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}

    # ------------------------------------------------------------------ pod fate

    def set_pod_fate(self, fate: Callable[[dict[str, Any]], PodFate] | None) -> None:
        """Decide what happens to bare and Job pods from now on: ``fate(pod_dict)`` returns a
        :class:`PodFate`.  Pods already decided keep their fate, except those still waiting
        to be scheduled: they are decided again (so an unschedulable pod can be let through)."""
        with self._lock:
            self._pod_fate = fate
            for uid in [
                u for u in self._pod_fates if "scheduled" not in self._pod_times.get(u, {})
            ]:
                del self._pod_fates[uid]

    def _decide_fate(self, pod: dict[str, Any]) -> PodFate:
        if self._pod_fate is None:
            return PodFate()
        try:
            fate = self._pod_fate(copy.deepcopy(pod))
            if not isinstance(fate, PodFate):
                raise TypeError(f"pod_fate returned {type(fate).__name__}, not PodFate")
            return fate
        except Exception as exc:  # noqa: BLE001 - reported through fate_errors
            self.fate_errors.append(exc)
            return PodFate(schedule=False, unschedulable_message=f"pod_fate raised: {exc!r}")

    def _tick_fate_pod(
        self, ns: str, pod: dict[str, Any], times: dict[str, float], now: float
    ) -> None:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            return
        uid = pod["metadata"]["uid"]
        fate = self._pod_fates.get(uid)
        if fate is None:
            fate = self._pod_fates[uid] = self._decide_fate(pod)
        if "scheduled" not in times:
            if fate.schedule or pod["spec"].get("nodeName"):
                self._schedule_fate_pod(ns, pod, times, fate, now)
            else:
                self._mark_unschedulable(ns, pod, fate.unschedulable_message)
        elif "started" not in times:
            if now - times["scheduled"] >= fate.start_delay_s:
                times["started"] = now
                self._pod_logs[uid] = fate.logs
                self._write("pods", pod, _started_pod(pod))
                name = pod["spec"]["containers"][0]["name"]
                self._event(ns, pod, "Normal", "Started", f"Started container {name}", "kubelet")
        elif now - times["started"] >= fate.run_s:
            self._finish_fate_pod(pod, times, fate, now)

    def _mark_unschedulable(self, ns: str, pod: dict[str, Any], message: str) -> None:
        cond = _condition(pod, "PodScheduled")
        if cond is not None and cond.get("message") == message:
            return
        new = copy.deepcopy(pod)
        new["status"] = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": _now(),
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
            "qosClass": pod["status"].get("qosClass", "BestEffort"),
        }
        self._write("pods", pod, new)
        self._event(ns, pod, "Warning", "FailedScheduling", message, _scheduler(pod))

    def _schedule_fate_pod(
        self, ns: str, pod: dict[str, Any], times: dict[str, float], fate: PodFate, now: float
    ) -> None:
        times["scheduled"] = now
        preset = bool(pod["spec"].get("nodeName"))  # bound by the client: no scheduler involved
        new = copy.deepcopy(pod)
        node = new["spec"].setdefault("nodeName", fate.node_name)
        self._ip_counter += 1
        new["status"] = _pod_status_creating(pod, self._ip_counter)
        self._write("pods", pod, new)
        if not preset:
            self._event(
                ns,
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {ns}/{pod['metadata']['name']} to {node}",
                _scheduler(pod),
            )

    def _finish_fate_pod(
        self, pod: dict[str, Any], times: dict[str, float], fate: PodFate, now: float
    ) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and fate.exit_code != 0)
        new = _terminated_pod(pod, fate, restart)
        if restart:  # the kubelet restarts the container in place (after a back-off)
            times.pop("started", None)
            times["scheduled"] = now
            self._write("pods", pod, new)
            self._pod_fates[pod["metadata"]["uid"]] = self._decide_fate(pod)
            return
        self._write("pods", pod, new)

    # ------------------------------------------------------------------ jobs

    def _admit_job(self, kind: _Kind, old: dict[str, Any] | None, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name, uid = meta["name"], meta["uid"]
        causes = _name_causes(name)
        if len(name) > 63:  # the job-name label must stay a valid label value
            causes.append(
                ("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters')
            )
        spec = obj.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(template, dict):
            raise _invalid(kind, name, [*causes, ("spec.template", "Required value")])
        for key, default in (("parallelism", 1), ("completions", 1), ("backoffLimit", 6)):
            value = spec.setdefault(key, default)
            if value is not None and (not isinstance(value, int) or value < 0):
                causes.append(
                    (f"spec.{key}", f"Invalid value: {value}: must be greater than or equal to 0")
                )
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        tspec = template.setdefault("spec", {})
        causes += _validate_pod_spec(tspec, "spec.template.spec")
        policy = tspec.get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
        if old is not None:
            for key in ("template", "selector"):
                if spec.get(key) != old["spec"].get(key) and key in spec:
                    causes.append(
                        (f"spec.{key}", f"Invalid value: {spec.get(key)}: field is immutable")
                    )
        if causes:
            raise _invalid(kind, name, causes)
        if old is None:
            _default_pod_spec(tspec)
            tmeta = template.setdefault("metadata", {})
            if not meta.get("labels") and tmeta.get("labels"):  # SetDefaults_Job
                meta["labels"] = dict(tmeta["labels"])
            job_labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **job_labels}
            tmeta.setdefault("creationTimestamp", None)
            spec.setdefault(
                "selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            )
            meta["generation"] = 1
            obj["status"] = {}
        else:
            obj["status"] = copy.deepcopy(old.get("status", {}))
            meta["generation"] = old["metadata"].get("generation", 1) + (spec != old["spec"])

    def _owned_pods(self, ns: str, uid: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self._store["pods"].get(ns, {}).values()
            if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))
        ]

    def _reconcile_job(self, ns: str, job: dict[str, Any], now: float) -> None:
        meta, spec = job["metadata"], job["spec"]
        pods = self._owned_pods(ns, meta["uid"])
        if "deletionTimestamp" in meta:
            self._finish_job_deletion(ns, job, pods)
            return
        status = job.get("status", {})
        if any(c["type"] in ("Complete", "Failed") for c in status.get("conditions", [])):
            return
        live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
        phases = [p["status"].get("phase") for p in live]
        succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
        active = [p for p in live if p["status"].get("phase") not in ("Succeeded", "Failed")]
        restarts = sum(
            c.get("restartCount", 0)
            for p in active
            for c in p["status"].get("containerStatuses", [])
        )
        limit = spec.get("backoffLimit", 6)
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            over = restarts + failed > 0 if limit == 0 else restarts + failed >= limit
        else:
            over = failed > limit
        new = copy.deepcopy(job)
        st = new["status"]
        st.setdefault("startTime", _now())
        completions = spec.get("completions")
        done = succeeded >= (completions if completions is not None else 1) and (
            completions is not None or not active
        )
        if over:
            for pod in active:
                self._delete_pod(pod)
            active = []
            self._job_condition(
                ns,
                job,
                st,
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif done:
            st["completionTime"] = _now()
            self._job_condition(ns, job, st, "Complete", None, None)
        elif not spec.get("suspend"):
            want = min(spec.get("parallelism", 1), (completions or 1) - succeeded) - len(active)
            seen = self._pod_times.setdefault(meta["uid"], {})  # back-off after each failure
            if failed != seen.get("failed", 0):
                seen["failed"], seen["failed_at"] = failed, now
            if failed and now - seen["failed_at"] < self.job_backoff_s * 2 ** (failed - 1):
                want = 0
            for _ in range(max(0, want)):
                active.append(self._create_job_pod(ns, job))
        for key, value in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
            if value:
                st[key] = value
            else:
                st.pop(key, None)
        st["ready"] = sum(1 for p in active if _pod_ready(p))
        st.setdefault("uncountedTerminatedPods", {})
        self._write("jobs", job, new)

    def _job_condition(
        self,
        ns: str,
        job: dict[str, Any],
        st: dict[str, Any],
        ctype: str,
        reason: str | None,
        message: str | None,
    ) -> None:
        stamp = _now()
        cond: dict[str, Any] = {
            "type": ctype,
            "status": "True",
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
        }
        if reason:
            cond["reason"], cond["message"] = reason, message
        st["conditions"] = [*st.get("conditions", []), cond]
        if ctype == "Complete":
            self._event(ns, job, "Normal", "Completed", "Job completed", "job-controller")
        else:
            self._event(ns, job, "Warning", reason or ctype, message or "", "job-controller")

    def _finish_job_deletion(
        self, ns: str, job: dict[str, Any], pods: list[dict[str, Any]]
    ) -> None:
        finalizers = job["metadata"].get("finalizers", [])
        if "orphan" in finalizers:  # the garbage collector strips the owner reference
            for pod in pods:
                new = copy.deepcopy(pod)
                new["metadata"]["ownerReferences"] = [
                    o
                    for o in pod["metadata"].get("ownerReferences", [])
                    if o.get("uid") != job["metadata"]["uid"]
                ]
                self._write("pods", pod, new)
            self._remove("jobs", ns, job["metadata"]["name"])
            return
        for pod in pods:
            self._delete_pod(pod)
        if not self._owned_pods(ns, job["metadata"]["uid"]):
            self._remove("jobs", ns, job["metadata"]["name"])

    def _create_job_pod(self, ns: str, job: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(job["spec"]["template"])
        tmeta = template.get("metadata") or {}
        prefix = f"{job['metadata']['name']}-"
        pods = self._store["pods"].setdefault(ns, {})
        name = prefix + _rand_suffix()
        while name in pods:
            name = prefix + _rand_suffix()
        spec = template["spec"]
        _default_pod_spec(spec)
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": prefix,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_rv(),
                "creationTimestamp": _now(),
                "labels": dict(tmeta.get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job["metadata"]["name"],
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": _qos_class(spec)},
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        pods[name] = pod
        self._emit("ADDED", "pods", pod)
        self._pod_times[pod["metadata"]["uid"]] = {}
        self._event(ns, job, "Normal", "SuccessfulCreate", f"Created pod: {name}", "job-controller")
        return pod

    def _event(
        self, ns: str, obj: dict[str, Any], etype: str, reason: str, message: str, component: str
    ) -> None:
        events = self._store["events"].setdefault(ns, {})
        meta = obj["metadata"]
        stamp = _now()
        for ev in events.values():
            io = ev["involvedObject"]
            if io["uid"] == meta["uid"] and ev["reason"] == reason and ev["message"] == message:
                prev = copy.deepcopy(ev)
                ev["count"] += 1
                ev["lastTimestamp"] = stamp
                ev["metadata"]["resourceVersion"] = self._next_rv()
                self._emit("MODIFIED", "events", ev, prev)
                return
        name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
        events[name] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "resourceVersion": self._next_rv(),
                "creationTimestamp": stamp,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", ""),
                "name": meta["name"],
                "namespace": ns,
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": etype,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": "",
        }
        self._emit("ADDED", "events", events[name])


# --------------------------------------------------------------------------- pod helpers


def _name_key(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


def _strip_type(obj: dict[str, Any]) -> dict[str, Any]:
    """List items carry no kind/apiVersion on the real server."""
    out = copy.deepcopy(obj)
    out.pop("kind", None)
    out.pop("apiVersion", None)
    return out


def _condition(pod: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in pod["status"].get("conditions", []) if c["type"] == ctype), None)


def _pod_ready(pod: dict[str, Any]) -> bool:
    c = _condition(pod, "Ready")
    return bool(c and c["status"] == "True") and "deletionTimestamp" not in pod["metadata"]


def _scheduler(pod: dict[str, Any]) -> str:
    return pod["spec"].get("schedulerName", "default-scheduler")


def _qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers", [])
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        if lim or req:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_status_creating(pod: dict[str, Any], ip_suffix: int) -> dict[str, Any]:
    now = _now()
    names = [c["name"] for c in pod["spec"]["containers"]]
    not_ready = f"containers with unready status: [{' '.join(names)}]"
    pod_ip = f"10.244.0.{ip_suffix % 250 + 2}"

    def c(ctype: str, status: str, reason: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        if reason:
            out["reason"], out["message"] = reason, not_ready
        return out

    return {
        "phase": "Pending",
        "conditions": [
            c("PodReadyToStartContainers", "False"),
            c("Initialized", "True"),
            c("Ready", "False", "ContainersNotReady"),
            c("ContainersReady", "False", "ContainersNotReady"),
            c("PodScheduled", "True"),
        ],
        "hostIP": "10.0.0.10",
        "hostIPs": [{"ip": "10.0.0.10"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": [
            {
                "name": ct["name"],
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": ct["image"],
                "imageID": "",
                "started": False,
            }
            for ct in pod["spec"]["containers"]
        ],
        "qosClass": pod["status"].get("qosClass", "BestEffort"),
    }


def _validate_resources(resources: Any, base: str) -> list[tuple[str, str]]:
    """ValidateResourceRequirements: parseable quantities, request <= limit, and for
    non-overcommitable (extended, e.g. nvidia.com/*) resources request == limit."""
    causes: list[tuple[str, str]] = []
    if not isinstance(resources, dict):
        return [(base, "must be an object")]
    parsed: dict[str, dict[str, Fraction]] = {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            causes.append((f"{base}.{section}", "must be a map"))
            continue
        parsed[section] = {}
        for res, q in list(values.items()):
            try:
                parsed[section][res] = parse_quantity(q)
            except ValueError:
                causes.append(
                    (
                        f"{base}.{section}[{res}]",
                        f"Invalid value: {q!r}: quantities must match the regular expression "
                        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
                continue
            if parsed[section][res] < 0:
                causes.append(
                    (
                        f"{base}.{section}[{res}]",
                        f"Invalid value: {q!r}: must be greater than or equal to 0",
                    )
                )
            if not isinstance(q, str):  # the server stores quantities as strings
                values[res] = (
                    str(q) if not isinstance(q, float) or not q.is_integer() else str(int(q))
                )
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    for res, req in requests.items():
        field = f"{base}.requests[{res}]"
        shown = resources["requests"][res]
        if res in limits:
            if req != limits[res] and not _is_overcommit_allowed(res):
                causes.append(
                    (
                        field,
                        f'Invalid value: "{shown}": must be equal to {res} limit of {resources["limits"][res]}',
                    )
                )
            elif req > limits[res]:
                causes.append(
                    (
                        field,
                        f'Invalid value: "{shown}": must be less than or equal to {res} limit of {resources["limits"][res]}',
                    )
                )
        elif not _is_overcommit_allowed(res):
            causes.append(
                (
                    f"{base}.limits[{res}]",
                    "Required value: Limit must be set for non overcommitable resources",
                )
            )
    return causes


# --------------------------------------------------------------------------- watch, pods, jobs

_JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set '
    "propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress "
    'this warning"'
)
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _is_watch(query: dict[str, str]) -> bool:
    return query.get("watch", "").lower() in ("true", "1")


def _selected(obj: dict[str, Any], query: dict[str, str]) -> bool:
    labels = obj["metadata"].get("labels")
    return matches_label_selector(labels, query.get("labelSelector")) and _matches_field_selector(
        obj, query.get("fieldSelector")
    )


def _event_line(etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": etype, "object": obj}).encode() + b"\n"


def _tail(text: str, tail_lines: str | None) -> str:
    if not tail_lines:
        return text
    n = int(tail_lines)
    lines = text.splitlines(keepends=True)
    return "".join(lines[-n:]) if n > 0 else ""


def _delete_policy(query: dict[str, str], body: Any) -> str | None:
    """propagationPolicy from the query or the DeleteOptions body (the client sends both)."""
    options = body if isinstance(body, dict) else {}
    policy = query.get("propagationPolicy") or options.get("propagationPolicy")
    if policy is None and (options.get("orphanDependents") or query.get("orphanDependents")):
        policy = "Orphan"
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise ApiError(
            400,
            f'propagationPolicy: Unsupported value: "{policy}": supported values: "Foreground", '
            '"Background", "Orphan"',
        )
    return policy


def _owned_by_kind(obj: dict[str, Any], kind: str) -> bool:
    return any(o.get("kind") == kind for o in obj["metadata"].get("ownerReferences", []))


def _name_causes(name: str, field: str = "metadata.name") -> list[tuple[str, str]]:
    if len(name) <= 253 and _SUBDOMAIN_RE.match(name):
        return []
    return [
        (
            field,
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    ]


def _validate_pod_spec(spec: dict[str, Any], base: str) -> list[tuple[str, str]]:
    """ValidatePodSpec for what the fake models: containers (name, image, resources) and
    restartPolicy (defaulted to Always first, as SetDefaults_PodSpec does)."""
    causes: list[tuple[str, str]] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append((f"{base}.containers", "Required value"))
        containers = []
    policy = spec.setdefault("restartPolicy", "Always")
    if policy not in _RESTART_POLICIES:
        causes.append(
            (
                f"{base}.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
            )
        )
    seen: set[str] = set()
    for i, c in enumerate(containers):
        field = f"{base}.containers[{i}]"
        if not isinstance(c, dict) or not c.get("name"):
            causes.append((f"{field}.name", "Required value"))
            continue
        if not _LABEL_RE.match(c["name"]) or len(c["name"]) > 63:
            causes.append(
                (
                    f"{field}.name",
                    f'Invalid value: "{c["name"]}": a lowercase RFC 1123 label must consist of '
                    "lower case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            )
        if c["name"] in seen:
            causes.append((f"{field}.name", f'Duplicate value: "{c["name"]}"'))
        seen.add(c["name"])
        if not c.get("image"):
            causes.append((f"{field}.image", "Required value"))
        causes.extend(_validate_resources(c.setdefault("resources", {}), f"{field}.resources"))
    return causes


def _default_pod_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Pod / SetDefaults_PodSpec / SetDefaults_Container for a validated spec."""
    for c in spec.get("containers", []):
        res = c.setdefault("resources", {})
        if res.get("limits"):  # requests default to limits
            req = res.setdefault("requests", {})
            for k, v in res["limits"].items():
                req.setdefault(k, v)
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image") or ""
        c.setdefault(
            "imagePullPolicy",
            "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent",
        )
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", "default")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault(
        "tolerations",
        [
            {
                "key": f"node.kubernetes.io/{t}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for t in ("not-ready", "unreachable")
        ],
    )


def _cond(
    ctype: str, status: str, stamp: str, reason: str | None = None, message: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def _image_id(image: str) -> str:
    return f"{image.split(':')[0]}@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def _started_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod once its containers run (restart count and last state kept)."""
    new, stamp = copy.deepcopy(pod), _now()
    st = new["status"]
    st["phase"] = "Running"
    st["conditions"] = [
        _cond(t, "True", stamp)
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ] + [_cond("PodScheduled", "True", stamp)]
    old = {c["name"]: c for c in st.get("containerStatuses", [])}
    st["containerStatuses"] = [
        {
            "name": c["name"],
            "state": {"running": {"startedAt": stamp}},
            "lastState": old.get(c["name"], {}).get("lastState", {}),
            "ready": True,
            "restartCount": old.get(c["name"], {}).get("restartCount", 0),
            "image": c["image"],
            "imageID": _image_id(c["image"]),
            "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
            "started": True,
        }
        for c in new["spec"]["containers"]
    ]
    return new


def _terminated_pod(pod: dict[str, Any], fate: PodFate, restart: bool) -> dict[str, Any]:
    """The pod when its containers exit: terminal (Succeeded/Failed) or, if the restart
    policy restarts them, Running with the containers in CrashLoopBackOff."""
    new, stamp = copy.deepcopy(pod), _now()
    st, meta = new["status"], new["metadata"]
    names = [c["name"] for c in new["spec"]["containers"]]
    statuses = []
    for cs in st.get("containerStatuses", []):
        term = {
            "exitCode": fate.exit_code,
            "reason": fate.terminated_reason,
            "startedAt": cs.get("state", {}).get("running", {}).get("startedAt", stamp),
            "finishedAt": stamp,
            "containerID": cs.get("containerID", ""),
        }
        cs = {**cs, "ready": False, "started": False}
        if restart:
            back_off = (
                f"back-off 10s restarting failed container={cs['name']} "
                f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"
            )
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": back_off}}
            cs["lastState"] = {"terminated": term}
            cs["restartCount"] = cs.get("restartCount", 0) + 1
        else:
            cs["state"] = {"terminated": term}
        statuses.append(cs)
    st["containerStatuses"] = statuses
    if restart:
        msg = f"containers with unready status: [{' '.join(names)}]"
        reason, sandbox = "ContainersNotReady", "True"
    else:
        st["phase"] = "Succeeded" if fate.exit_code == 0 else "Failed"
        msg, reason, sandbox = None, "PodCompleted" if fate.exit_code == 0 else "PodFailed", "False"
    st["conditions"] = [
        _cond("PodReadyToStartContainers", sandbox, stamp),
        _cond("Initialized", "True", stamp, None if restart else "PodCompleted"),
        _cond("Ready", "False", stamp, reason, msg),
        _cond("ContainersReady", "False", stamp, reason, msg),
        _cond("PodScheduled", "True", stamp),
    ]
    return new


def _write_yaml(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_multi_kubeconfig(
    path: str | Path,
    apis: Mapping[str, FakeKubeApi],
    namespace: str = "default",
    current: str | None = None,
) -> Path:
    """One kubeconfig with a context per fake server ({context name: api}); load one with
    ``kubernetes.config.new_client_from_config(str(path), context=name)``.  The current
    context is ``current`` or the first name."""
    if not apis:
        raise ValueError("write_multi_kubeconfig needs at least one {context: api}")
    merged: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for name, api in apis.items():
        one = api.kubeconfig_dict(namespace, context=name)
        for key in ("clusters", "users", "contexts"):
            merged[key].extend(one[key])
    merged["current-context"] = current or next(iter(apis))
    return _write_yaml(path, merged)

"""A fake Kubernetes API server at the HTTP level, for testing the live k8s backend.

No API server can run on the CI machines, so this module serves the few REST endpoints a
controller of one Deployment needs on a loopback port.  The *unmodified* official
``kubernetes`` Python client talks to it (through :meth:`FakeKubeApi.configuration` or a
kubeconfig written by :meth:`FakeKubeApi.write_kubeconfig`).  Responses use the JSON shapes
of the real API server (apps/v1 Deployment, autoscaling/v1 Scale, v1 Pod, apps/v1
ReplicaSet, autoscaling/v2 HorizontalPodAutoscaler, v1 ConfigMap, v1 Event and v1 Status
for errors), including its habits that trip clients up: zero-valued status counters are
omitted (``readyReplicas`` is absent, not 0), list items carry no kind/apiVersion,
resourceVersion is an opaque string bumped on every write, PUT with a stale
resourceVersion is a 409 Conflict, and extended resources (``nvidia.com/gpucores``...)
must have requests equal to limits.

A tiny deployment controller runs inside: it keeps ReplicaSets and Pods in line with
``spec.replicas`` and the pod template (RollingUpdate with maxSurge/maxUnavailable, or
Recreate), lets pods become Running+Ready after ``pod_ready_delay_s``, keeps them Pending
and Unschedulable while ``pods_pending`` is set, and maintains Deployment status and
conditions (including ProgressDeadlineExceeded).

Faults: :meth:`FakeKubeApi.fail_next` answers matching requests with an error Status;
:meth:`FakeKubeApi.down` / :meth:`FakeKubeApi.up` close and reopen the listening port.
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
from collections.abc import Callable, Iterable
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = [
    "ApiError",
    "FakeKubeApi",
    "RecordedRequest",
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
        _Kind("pods", "Pod", "", "v1", frozenset({"list", "get", "delete"})),
        _Kind("configmaps", "ConfigMap", "", "v1", _ALL),
        _Kind("events", "Event", "", "v1", frozenset({"list", "get"})),
        _Kind("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v2", _ALL),
    )
}

_PATH_RE = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<res>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)
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
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


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
    ) -> None:
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

    def kubeconfig_dict(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake-user", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig_dict(namespace), sort_keys=False))
        return path

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
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
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
                code, out = self._route(method, path, query, kept.get("Content-Type", ""), body)
                return code, out, {}
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
    ) -> tuple[int, dict[str, Any]]:
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
        m = _PATH_RE.match(path)
        kind = KINDS.get(m["res"]) if m else None
        if m is None or kind is None or kind.prefix != m["prefix"]:
            raise ApiError(404, "the server could not find the requested resource", details={})
        ns, name, sub = m["ns"], m["name"], m["sub"]
        if query.get("watch") in ("true", "1"):
            raise ApiError(405, "watch is not supported by the fake API server")
        dry_run = self._dry_run(query)
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
        return 200, self._delete(kind, ns, name, dry_run)

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

    def _list(self, kind: _Kind, ns: str, query: dict[str, str]) -> dict[str, Any]:
        objs = sorted(self._store[kind.resource].get(ns, {}).values(), key=_name_key)
        items = [
            _strip_type(o)
            for o in objs
            if matches_label_selector(o["metadata"].get("labels"), query.get("labelSelector"))
            and _matches_field_selector(o, query.get("fieldSelector"))
        ]
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
        return copy.deepcopy(obj)

    def _delete(self, kind: _Kind, ns: str, name: str, dry_run: bool) -> dict[str, Any]:
        obj = self._store[kind.resource][ns][name]
        if kind.resource == "pods":
            if not dry_run:
                self._delete_pod(obj)
            return copy.deepcopy(self._store["pods"][ns].get(name, obj))
        if not dry_run:
            del self._store[kind.resource][ns][name]
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
        for ns, pods in self._store["pods"].items():
            for pod in list(pods.values()):
                self._tick_pod(ns, pod, now)
        for ns, deps in self._store["deployments"].items():
            for dep in list(deps.values()):
                self._reconcile_deployment(ns, dep, now)

    def _write(self, resource: str, obj: dict[str, Any], new: dict[str, Any]) -> None:
        """Controller write: replace ``obj`` in place by ``new`` if different (bumps RV)."""
        if obj == new:
            return
        new["metadata"]["resourceVersion"] = self._next_rv()
        obj.clear()
        obj.update(new)

    def _tick_pod(self, ns: str, pod: dict[str, Any], now: float) -> None:
        times = self._pod_times.setdefault(pod["metadata"]["uid"], {})
        if "deleted" in times:
            if now - times["deleted"] >= self.pod_termination_delay_s:
                self._store["pods"][ns].pop(pod["metadata"]["name"], None)
                self._pod_times.pop(pod["metadata"]["uid"], None)
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
            self._store["pods"][pod["metadata"]["namespace"]].pop(pod["metadata"]["name"], None)
            self._pod_times.pop(pod["metadata"]["uid"], None)

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

    def _event(
        self, ns: str, obj: dict[str, Any], etype: str, reason: str, message: str, component: str
    ) -> None:
        events = self._store["events"].setdefault(ns, {})
        meta = obj["metadata"]
        stamp = _now()
        for ev in events.values():
            io = ev["involvedObject"]
            if io["uid"] == meta["uid"] and ev["reason"] == reason and ev["message"] == message:
                ev["count"] += 1
                ev["lastTimestamp"] = stamp
                ev["metadata"]["resourceVersion"] = self._next_rv()
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

"""Request handling: URL routing to the verbs, dry runs and patch content types."""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError, _namespace_not_found
from k8s_gpu_rl.testing.fake_kube_api.faults import RecordedRequest
from k8s_gpu_rl.testing.fake_kube_api.kinds import KINDS, _Kind, _strip_type
from k8s_gpu_rl.testing.fake_kube_api.patches import _apply_patch

_PATH_RE = re.compile(
    r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<res>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)

_ALL_NS_RE = re.compile(r"^(?P<prefix>/api/v1|/apis/[^/]+/[^/]+)/(?P<res>[^/]+)/?$")

_NS_RE = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?/?$")

#: what ``GET /version`` answers (a v1.30.0 server)
_VERSION = {
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

#: (method, a name in the URL) -> verb
_VERBS = {
    ("GET", False): "list",
    ("POST", False): "create",
    ("GET", True): "get",
    ("PUT", True): "update",
    ("PATCH", True): "patch",
    ("DELETE", True): "delete",
}


def _no_such_resource() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", details={})


def _is_watch(query: dict[str, str]) -> bool:
    return query.get("watch", "").lower() in ("true", "1")


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


class RoutingMixin:
    """Turns one HTTP request into a store operation, a watch or a log."""

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

    def _route(
        self, method: str, path: str, query: dict[str, str], ctype: str, body: Any
    ) -> tuple[int, Any]:
        if path.rstrip("/") == "/version" and method == "GET":
            return 200, dict(_VERSION)
        if m := _NS_RE.match(path):
            return self._route_namespaces(method, path, m["name"])
        if (m := _ALL_NS_RE.match(path)) and method == "GET":  # e.g. list_pod_for_all_namespaces
            kind = KINDS.get(m["res"])
            if kind is None or kind.prefix != m["prefix"]:
                raise _no_such_resource()
            if _is_watch(query):
                return 200, self._watch(kind, None, query)
            return 200, self._list(kind, None, query)
        m = _PATH_RE.match(path)
        kind = KINDS.get(m["res"]) if m else None
        if m is None or kind is None or kind.prefix != m["prefix"]:
            raise _no_such_resource()
        ns, name, sub = m["ns"], m["name"], m["sub"]
        if _is_watch(query):
            if method != "GET" or name is not None:
                raise ApiError(405, "watch is only served on list endpoints (GET, no name)")
            return 200, self._watch(kind, ns, query)
        dry_run = self._dry_run(query)
        if sub is not None:
            return self._route_subresource(method, kind, ns, name, sub, query, ctype, body, dry_run)
        return self._route_verb(method, kind, ns, name, query, ctype, body, dry_run)

    def _route_namespaces(self, method: str, path: str, name: str | None) -> tuple[int, Any]:
        """``/api/v1/namespaces[/name]``: read-only here."""
        if method != "GET":
            raise ApiError(405, f"the server does not allow this method on {path}")
        if name:
            if name not in self._namespaces:
                raise _namespace_not_found(name)
            return 200, copy.deepcopy(self._namespaces[name])
        items = [_strip_type(o) for o in self._namespaces.values()]
        return 200, self._list_body("NamespaceList", "v1", items)

    def _route_subresource(
        self,
        method: str,
        kind: _Kind,
        ns: str,
        name: str,
        sub: str,
        query: dict[str, str],
        ctype: str,
        body: Any,
        dry_run: bool,
    ) -> tuple[int, Any]:
        """``pods/{name}/log``, ``deployments/{name}/scale`` and ``deployments/{name}/status``."""
        if sub == "log" and kind.resource == "pods":
            if method != "GET":
                raise ApiError(405, "the server does not allow this method on pods/log")
            return self._pod_log(ns, name, query)
        if kind.resource != "deployments" or sub not in ("scale", "status"):
            raise _no_such_resource()
        if sub == "status":  # read-only here: status belongs to the fake's controller
            if method != "GET":
                raise ApiError(405, "the fake API server only serves GET on deployments/status")
            return 200, self._get(kind, ns, name)
        return self._scale(method, ns, name, ctype, body, dry_run)

    def _route_verb(
        self,
        method: str,
        kind: _Kind,
        ns: str,
        name: str | None,
        query: dict[str, str],
        ctype: str,
        body: Any,
        dry_run: bool,
    ) -> tuple[int, Any]:
        """list / create on a collection, get / update / patch / delete on one object."""
        verb = _VERBS.get((method, name is not None))
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

    _apply_patch = staticmethod(_apply_patch)

"""The object store: create, update, delete, list, resourceVersion."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import (
    ApiError,
    _already_exists,
    _conflict,
    _invalid,
    _namespace_not_found,
    _not_found,
)
from k8s_gpu_rl.testing.fake_kube_api.kinds import _Kind, _name_key, _strip_type
from k8s_gpu_rl.testing.fake_kube_api.selectors import _selected
from k8s_gpu_rl.testing.fake_kube_api.util import _now, _rand_suffix


def _create_metadata(kind: _Kind, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The metadata of an object to create, checked, with a name (from generateName)."""
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    if meta.get("namespace") not in (None, ns):
        raise ApiError(
            400,
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    if meta.get("resourceVersion"):
        raise ApiError(400, "resourceVersion should not be set on objects to be created")
    if not meta.get("name"):
        if meta.get("generateName"):
            meta["name"] = meta["generateName"] + _rand_suffix()
        else:
            raise _invalid(kind, "", [("metadata.name", "Required value: name is required")])
    return meta


class StoreMixin:
    """Generic storage of every kind, with the real server's resourceVersion rules."""

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
        meta = _create_metadata(kind, ns, obj)
        name = meta["name"]
        if ns not in self._namespaces:
            raise _namespace_not_found(ns)
        if name in self._store[kind.resource].get(ns, {}):
            raise _already_exists(kind, name)
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
            kept = self._delete_job(ns, obj, dry_run, policy)
            if kept is not None:
                return kept
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

    def _write(self, resource: str, obj: dict[str, Any], new: dict[str, Any]) -> None:
        """Controller write: replace ``obj`` in place by ``new`` if different (bumps RV)."""
        if obj == new:
            return
        prev = copy.deepcopy(obj)
        new["metadata"]["resourceVersion"] = self._next_rv()
        obj.clear()
        obj.update(new)
        self._emit("MODIFIED", resource, obj, prev)

    def _remove(self, resource: str, ns: str, name: str) -> None:
        """Drop an object from the store; watches see DELETED at a new resourceVersion."""
        obj = self._store[resource].get(ns, {}).pop(name, None)
        if obj is not None:
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            self._emit("DELETED", resource, gone)

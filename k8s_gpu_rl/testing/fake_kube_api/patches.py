"""PATCH bodies: strategic merge patch, RFC 7386 JSON merge patch, RFC 6902 JSON patch."""

from __future__ import annotations

import copy
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError

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


def _apply_patch(current: dict[str, Any], ctype: str, body: Any) -> dict[str, Any]:
    """The patched object, by the request's Content-Type (400/415/422 as the server)."""
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

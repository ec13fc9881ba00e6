"""Label and field selectors, as list and watch requests use them."""

from __future__ import annotations

import re
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError


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


def _selected(obj: dict[str, Any], query: dict[str, str]) -> bool:
    labels = obj["metadata"].get("labels")
    return matches_label_selector(labels, query.get("labelSelector")) and _matches_field_selector(
        obj, query.get("fieldSelector")
    )

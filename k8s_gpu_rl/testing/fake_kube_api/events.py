"""v1 Events recorded by the fake's controllers (repeats counted)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.util import _now


def _event_doc(
    ns: str,
    obj: dict[str, Any],
    etype: str,
    reason: str,
    message: str,
    component: str,
    stamp: str,
    rv: str,
) -> dict[str, Any]:
    """A new v1 Event about ``obj``, reported by ``component``."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": ns,
            "uid": str(uuid.uuid4()),
            "resourceVersion": rv,
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


class EventsMixin:
    """Records an Event, or counts a repeat of the same one."""

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
        ev = _event_doc(ns, obj, etype, reason, message, component, stamp, self._next_rv())
        events[ev["metadata"]["name"]] = ev
        self._emit("ADDED", "events", ev)

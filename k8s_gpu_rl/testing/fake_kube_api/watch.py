"""Watches: the change history and the streamed event lines."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError
from k8s_gpu_rl.testing.fake_kube_api.kinds import _Kind
from k8s_gpu_rl.testing.fake_kube_api.selectors import _selected
from k8s_gpu_rl.testing.fake_kube_api.server import _Server, _Stream


class _Change(NamedTuple):
    """One write, as a watch sees it."""

    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    resource: str
    namespace: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None  # the object before a MODIFIED


def _event_line(etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": etype, "object": obj}).encode() + b"\n"


class WatchMixin:
    """Keeps the last changes and streams them to ``?watch=true`` requests."""

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

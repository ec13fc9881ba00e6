"""Pod logs: ``GET .../pods/{name}/log`` (container, tailLines, follow)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from k8s_gpu_rl.testing.fake_kube_api.errors import ApiError
from k8s_gpu_rl.testing.fake_kube_api.kinds import KINDS
from k8s_gpu_rl.testing.fake_kube_api.server import _Server, _Stream, _Text


def _tail(text: str, tail_lines: str | None) -> str:
    if not tail_lines:
        return text
    n = int(tail_lines)
    lines = text.splitlines(keepends=True)
    return "".join(lines[-n:]) if n > 0 else ""


class LogsMixin:
    """Serves a pod's log text once its container has started."""

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

"""Kubeconfigs pointing at one or several fake servers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from k8s_gpu_rl.testing.fake_kube_api.api import FakeKubeApi


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


class KubeconfigMixin:
    """A kubeconfig for this server (one context), as a dict or a file."""

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

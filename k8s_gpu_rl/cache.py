"""The per-user cache of k8s-gpu-rl: compiled simulator kernels, exported ONNX models.

``$K8SGPURL_CACHE`` if set, else ``$XDG_CACHE_HOME/k8s-gpu-rl`` (the XDG base-directory
rule: only an absolute ``XDG_CACHE_HOME`` counts), else ``~/.cache/k8s-gpu-rl``. Never the
package directory: an installed wheel's site-packages need not be writable.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """The cache folder (not created)."""
    if os.environ.get("K8SGPURL_CACHE"):
        return Path(os.environ["K8SGPURL_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "k8s-gpu-rl"

"""Where the code in use lives: the package, the folder it is imported from, and the
source checkout (only when running from one).

Files the code needs at run time are package files and are found relative to the
package (``Path(k8s_gpu_rl.loadprofiles.__file__).parent / "locustfile.py"``), so a
wheel works as well as a checkout. Only what is a property of a checkout, such as its
git commit, asks :func:`source_checkout`, which answers ``None`` for an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

import k8s_gpu_rl

PACKAGE_DIR = Path(k8s_gpu_rl.__file__).resolve().parent
"""The ``k8s_gpu_rl`` package folder in use (a checkout's ``k8s_gpu_rl/`` or a wheel's)."""
IMPORT_ROOT = PACKAGE_DIR.parent
"""The folder that contains the ``k8s_gpu_rl`` package: what a child Python needs on
``PYTHONPATH`` to import this same copy (:func:`k8s_gpu_rl.procenv.python_child_env`)."""

_CHECKOUT_MARKERS = ("pyproject.toml", "envs/sim", "agents", "loadprofiles")


def source_checkout() -> Path | None:
    """The repository root when the package in use is a source checkout of this project
    (``pyproject.toml`` and the mapped folders ``envs/``, ``agents/``, ``loadprofiles/``
    beside ``k8s_gpu_rl/``); ``None`` for an installed wheel, whose folder is
    site-packages."""
    root = IMPORT_ROOT
    if (
        all((root / marker).exists() for marker in _CHECKOUT_MARKERS)
        and not (PACKAGE_DIR / "loadprofiles").is_dir()
    ):
        return root
    return None

"""The environment of a child Python process that runs this project's code.

Every place that starts ``sys.executable`` on our code (the inference servers, Locust with
the project's locustfile, the calibration probes, the benchmarks, the tests' server
fixture) builds its environment here, so all children import the same ``k8s_gpu_rl`` as
the parent, from a source checkout or an installed wheel, whatever the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from k8s_gpu_rl.paths import IMPORT_ROOT

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""The thread-pool sizes of OpenMP and the BLAS libraries NumPy and ONNX Runtime may use."""


def python_child_env(
    extra: Mapping[str, str] | None = None,
    threads: int | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``base`` (default: this process's environment) plus:

    * ``PYTHONPATH`` led by :data:`k8s_gpu_rl.paths.IMPORT_ROOT`, the folder that holds
      the ``k8s_gpu_rl`` package in use (any ``PYTHONPATH`` already set follows it);
    * ``PYTHONUNBUFFERED=1``, so a child's log lines arrive as they are written;
    * with ``threads``, each of :data:`THREAD_VARIABLES` set to it: a child whose work
      uses ``threads`` cores (an inference server) does not start a thread per core of
      the machine in the libraries beneath it;
    * ``extra`` last (it overrides all of the above).
    """
    env = dict(os.environ if base is None else base)
    paths = [str(IMPORT_ROOT)]
    paths += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != paths[0]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    env.update(extra or {})
    return env

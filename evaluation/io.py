"""The evaluation's result writers: :mod:`k8s_gpu_rl.io` under the names the runner uses.

Every writer is atomic (temporary file, then ``os.replace``); JSON writes NaN and the
infinities as ``null`` (the rule and its reason: :mod:`k8s_gpu_rl.io`).
"""

from __future__ import annotations

from k8s_gpu_rl.io import jsonable
from k8s_gpu_rl.io import savefig as savefig_atomic
from k8s_gpu_rl.io import write_csv as write_csv_atomic
from k8s_gpu_rl.io import write_json as write_json_atomic
from k8s_gpu_rl.io import write_text as write_text_atomic

__all__ = [
    "jsonable",
    "savefig_atomic",
    "write_csv_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

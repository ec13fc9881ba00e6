"""Atomic file writes: a crash or Ctrl-C never leaves a half-written result file.

Each writer writes a temporary file in the destination's folder and ``os.replace`` s it
over the destination (atomic on POSIX). Non-finite floats become JSON ``null``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k8s_gpu_rl.io import atomic_write

_atomic = atomic_write


def write_text_atomic(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def jsonable(value: Any) -> Any:
    """Plain JSON types; NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    text = json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"
    write_text_atomic(path, text)


def savefig_atomic(fig: Any, path: Path, **kwargs: Any) -> None:
    """``fig.savefig`` through a temporary file (format from ``path``'s suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))

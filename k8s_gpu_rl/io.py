"""Atomic file writes: a crash or Ctrl-C never leaves a half-written file behind.

Every file the project writes for someone else to read (results, manifests, models,
compiled kernels, HAProxy's and Prometheus's configuration) goes through
:func:`atomic_write`: the content is written to a temporary file in the destination's
folder, flushed to disk, and ``os.replace``-d over the destination, which POSIX makes
atomic. A reader sees the old file or the whole new one; a writer that fails (an
exception, a rejected configuration, a compiler error) leaves the old file as it was and
no temporary file behind.

The helpers below write text, bytes, JSON, YAML, CSV (a pandas DataFrame) and figures
(matplotlib) through it.

JSON and non-finite numbers
---------------------------
NaN and the infinities are not JSON (RFC 8259 has no literal for them). Python's
``json`` writes ``NaN``/``Infinity`` by default, which ``jq``, browsers'
``JSON.parse``, Go's and Rust's parsers reject, so a results file written that way
cannot be read outside Python. :func:`write_json` therefore writes every non-finite
float as ``null`` (:func:`jsonable`), JSON's "no value", and then serialises with
``allow_nan=False`` so nothing non-finite can slip through. (Refusing to write would
lose a whole results file over one figure that could not be measured, such as the p95
latency of an interval without requests.) :func:`read_json` keeps to the same rule:
``null`` reads as ``None``, and so does a ``NaN``/``Infinity`` literal in a file written
by older code, so a reader sees one representation of "no number" whatever wrote the
file; a reader that wants a float maps ``None`` to NaN itself. CSV files keep pandas'
convention: NaN is an empty field, read back as NaN by ``pandas.read_csv``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "atomic_write",
    "jsonable",
    "read_json",
    "savefig",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_text",
    "write_yaml",
]

_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
"""What ``open()`` would give a new file (``mkstemp`` makes it 0600)."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then
    ``os.replace`` it over ``path`` (atomic on POSIX): readers see the old file or the
    whole new one. If ``write`` raises, the temporary file is removed, ``path`` is left as
    it was and the exception propagates. Parent folders are created; the new file gets
    the usual permissions (``0666`` less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _FILE_MODE)
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    """Flush ``path``'s data to the disk (a crash after the rename finds whole content)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """``data`` to ``path``, atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """``text`` (UTF-8) to ``path``, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NaN and the infinities become ``None`` (see the
    module docstring), NumPy scalars and arrays Python numbers and lists, paths strings,
    mapping keys strings, tuples lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # NumPy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> None:
    """``data`` as JSON (non-finite floats as ``null``, a final newline), atomically."""
    write_text(path, json.dumps(jsonable(data), indent=indent, allow_nan=False) + "\n")


def _no_number(name: str) -> None:
    """``NaN``, ``Infinity`` and ``-Infinity`` literals (not JSON) read as ``null`` does."""
    return None


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document in ``path``: ``null``, and the non-JSON literals ``NaN``/
    ``Infinity`` older writers left, read as ``None``. ``OSError`` if the file cannot be
    read, ``ValueError`` (``json.JSONDecodeError``) if it is not JSON."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(text, parse_constant=_no_number)


def write_yaml(path: str | os.PathLike[str], data: Any) -> None:
    """``data`` as YAML (``yaml.safe_dump``, keys in insertion order), atomically."""
    write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def write_csv(path: str | os.PathLike[str], frame: Any) -> None:
    """A pandas DataFrame as CSV without its index (NaN: an empty field), atomically."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def savefig(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """A matplotlib figure, in the format ``path``'s suffix names (default PNG), atomically."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))

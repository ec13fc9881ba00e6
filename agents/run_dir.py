"""A training run's directory: its name, its manifest files, atomic writes, and finding saved models.

Layout of ``runs/ppo-<profile>-<seed>-<YYYYmmdd-HHMMSS>/``::

    model.zip            final (or interrupted) model
    vecnormalize.pkl     VecNormalize statistics that go with model.zip
    checkpoints/         ppo_<steps>_steps.zip + ppo_vecnormalize_<steps>_steps.pkl (SB3's names)
    tensorboard/         TensorBoard event files
    progress.csv         the same scalars as CSV
    config.yml           the merged configuration (reusable with --config)
    args.yml             the command-line arguments, defaults filled in
    command.txt          the command line
    manifest.json        seed, versions, git commit, times, status, timesteps done

Models, statistics and manifest files are written atomically (:mod:`k8s_gpu_rl.io`: a
temporary name first, then ``os.replace``), so a reader (or a killed run) never sees half
a file; the logs (``tensorboard/``, ``progress.csv``) are appended to as training goes.
The manifest's git commit is the source checkout's, absent (null) for an installed wheel.
"""

from __future__ import annotations

import io
import os
import pickle
import platform
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from k8s_gpu_rl import io as io_
from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.paths import source_checkout

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "ppo"
_CHECKPOINT = re.compile(r"^(?P<prefix>.+)_(?P<steps>\d+)_steps\.zip$")


@dataclass(frozen=True)
class SavedModel:
    """A saved model and the VecNormalize statistics and run directory that go with it."""

    model: Path
    vecnormalize: Path | None
    """None when no statistics file lies beside the model."""
    run_dir: Path | None
    """The run directory (with config.yml), None for a model found elsewhere."""

    def run_file(self, name: str) -> Path | None:
        """A file of the run directory, if there is one."""
        path = self.run_dir / name if self.run_dir else None
        return path if path and path.is_file() else None


def find_saved_model(path: str | Path) -> SavedModel:
    """Resolve a run directory or a model ``.zip`` to a :class:`SavedModel`.

    A run directory gives its ``model.zip`` or, failing that, its latest checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such run directory or model file")
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return _saved(path / MODEL_FILE)
        latest = latest_checkpoint(path / CHECKPOINT_DIR)
        if latest is None:
            raise ConfigError(
                f"{path}: holds neither {MODEL_FILE} nor a checkpoint in {CHECKPOINT_DIR}/"
            )
        return _saved(latest)
    if path.suffix != ".zip":
        raise ConfigError(f"{path}: expected a run directory or a model .zip file")
    return _saved(path)


def checkpoint_paths(directory: Path, steps: int) -> tuple[Path, Path]:
    """(model, VecNormalize statistics) of the checkpoint at ``steps``, named as SB3 names them."""
    return (
        directory / f"{CHECKPOINT_PREFIX}_{steps}_steps.zip",
        directory / f"{CHECKPOINT_PREFIX}_vecnormalize_{steps}_steps.pkl",
    )


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint zip with the most steps in ``directory``, if any."""
    found = [
        (int(m["steps"]), p) for p in directory.glob("*.zip") if (m := _CHECKPOINT.match(p.name))
    ]
    return max(found)[1] if found else None


def _saved(model: Path) -> SavedModel:
    match = _CHECKPOINT.match(model.name)
    if match:
        stats = model.with_name(f"{match['prefix']}_vecnormalize_{match['steps']}_steps.pkl")
    else:
        stats = model.with_name(VECNORMALIZE_FILE)
    parent = model.parent.parent if model.parent.name == CHECKPOINT_DIR else model.parent
    run_dir = parent if (parent / "config.yml").is_file() else None
    return SavedModel(model, stats if stats.is_file() else None, run_dir)


def new_run_dir(out: Path, profile: str, seed: int, now: datetime | None = None) -> Path:
    """Create ``out/ppo-<profile>-<seed>-<timestamp>[-n]/`` (a fresh name even within one second)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    label = re.sub(
        r"[^A-Za-z0-9_.]+", "_", Path(profile).stem if looks_like_path(profile) else profile
    )
    base = f"ppo-{label}-{seed}-{stamp}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            path = out / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create a run directory there ({exc})") from None
    raise ConfigError(f"{out}: cannot find a free run directory name for {base}")


def looks_like_path(profile: str) -> bool:
    """Whether a --profile value names a file rather than a shipped profile."""
    return "/" in profile or os.sep in profile or profile.endswith((".yaml", ".yml"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`k8s_gpu_rl.io.write_bytes`)."""
    io_.write_bytes(path, data)


def save_model_files(model: Any, model_path: Path, vecnormalize_path: Path) -> None:
    """An SB3 model and its VecNormalize statistics (if it has any), each written atomically."""
    buffer = io.BytesIO()
    model.save(buffer)
    write_bytes_atomic(model_path, buffer.getvalue())
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        write_bytes_atomic(vecnormalize_path, pickle.dumps(vec_normalize))


write_text_atomic = io_.write_text
write_yaml = io_.write_yaml
write_json = io_.write_json
"""JSON with non-finite numbers as ``null`` (the project's rule: :mod:`k8s_gpu_rl.io`)."""


def read_json(path: Path) -> dict[str, Any]:
    """A manifest file; :class:`ConfigError` naming the file if it cannot be read."""
    try:
        return io_.read_json(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the manifest ({exc})") from None


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    out = {"python": platform.python_version()}
    for name in ("torch", "stable_baselines3", "gymnasium", "numpy"):
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_state(root: Path | None = None) -> dict[str, Any]:
    """``git rev-parse HEAD`` and whether the work tree has changes, of the source checkout
    the package runs from (:func:`k8s_gpu_rl.paths.source_checkout`; ``root`` overrides).
    Both ``None`` (absent) when running from an installed wheel, or where git cannot tell
    (no git, or ``root`` is not the top of a work tree)."""
    root = root if root is not None else source_checkout()
    absent: dict[str, Any] = {"git_commit": None, "git_dirty": None}
    if root is None:
        return absent
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != Path(root).resolve():
        return absent  # e.g. an unpacked source tree inside some other repository
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")

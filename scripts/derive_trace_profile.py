"""Derive the held-out load profile ``azure_functions`` from the Azure Functions 2019 trace.

    python scripts/derive_trace_profile.py TRACE.csv [--curve-out CURVE.csv] [--yaml-out YAML]
    python scripts/derive_trace_profile.py --from-curve loadprofiles/heldout/azure_functions_2019_per_minute.csv

1. **Aggregate** (from ``TRACE.csv``): sum the per-minute invocation counts of every
   function in one day's file into one curve of 1,440 minutes. Two layouts are read: the
   trace's own ``invocations_per_function_md.anon.dNN.csv`` (columns ``HashOwner, HashApp,
   HashFunction, Trigger, 1 .. 1440``) and the In-Vitro loader's samples of it (columns
   ``HashFunction, HashApp, HashOwner, minute_1 .. minute_1440``). ``--curve-out`` writes
   the curve as ``minute,invocations`` (minute 0 = 00:00 of the trace day).
2. **Window**: the ``--window-min`` minutes (default 30) centred on the day's busiest
   minute (``--start-min`` picks a start instead).
3. **Scale**: users per minute = ``round(--peak-users * invocations / window peak)``, at
   least ``--min-users`` (defaults 150 and 1: the peak equals the training profile
   ``mixed``'s), one 60 s stage per minute, each change at ``--spawn-rate`` users/s
   (default 10, so every per-minute change lands within ~15 s).
4. Write the profile YAML (``--yaml-out``, default ``loadprofiles/heldout/azure_functions.yaml``)
   with the attribution in its header, and check it loads.

The shipped files were made with the second command from the curve the first one wrote
from ``data/traces/10-1000-10/1000_inv.csv`` of github.com/vhive-serverless/invitro at
commit cb0077f3a4af0142e521d47cddfd81e41a1ce170 (a 1,000-function sample of the trace);
``loadprofiles/heldout/README.md`` has the provenance and the licence (CC BY 4.0).
Nothing is downloaded: bring the trace file yourself
(https://github.com/Azure/AzurePublicDataset/blob/master/AzureFunctionsDataset2019.md).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from k8s_gpu_rl.errors import ConfigError, K8sGpuRlError  # noqa: E402
from k8s_gpu_rl.io import write_text  # noqa: E402
from k8s_gpu_rl.loadprofiles import HELDOUT_DIR, load_profile  # noqa: E402

MINUTES = 1440
CURVE = HELDOUT_DIR / "azure_functions_2019_per_minute.csv"
YAML_OUT = HELDOUT_DIR / "azure_functions.yaml"
SOURCE = (
    "github.com/vhive-serverless/invitro@cb0077f3a4af0142e521d47cddfd81e41a1ce170:"
    "data/traces/10-1000-10/1000_inv.csv (1,000 functions of the Azure Functions 2019 trace)"
)


def minute_columns(header: list[str]) -> list[int]:
    """Indices of the 1,440 per-minute columns (``1``..``1440`` or ``minute_1``..)."""
    names = [h.strip().removeprefix("minute_") for h in header]
    index = {name: i for i, name in enumerate(names)}
    missing = [str(m) for m in range(1, MINUTES + 1) if str(m) not in index]
    if missing:
        raise ConfigError(
            f"expected per-minute columns 1..{MINUTES} (or minute_1..); missing {missing[0]}"
        )
    return [index[str(m)] for m in range(1, MINUTES + 1)]


def aggregate(path: Path) -> np.ndarray:
    """Invocations per minute summed over every function (row) of a trace day's file."""
    try:
        with path.open(newline="") as f:
            rows = csv.reader(f)
            columns = minute_columns(next(rows))
            total = np.zeros(MINUTES, dtype=np.int64)
            for line, row in enumerate(rows, start=2):
                try:
                    total += np.array([int(float(row[i] or 0)) for i in columns], np.int64)
                except (ValueError, IndexError):
                    raise ConfigError(f"{path}:{line}: not a row of counts") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except StopIteration:
        raise ConfigError(f"{path}: empty file") from None
    return total


def read_curve(path: Path) -> np.ndarray:
    """A curve as ``--curve-out`` writes it."""
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a minute,invocations CSV ({exc})") from None
    if data.shape != (MINUTES, 2) or not (data[:, 0] == np.arange(MINUTES)).all():
        raise ConfigError(f"{path}: expected {MINUTES} rows minute,invocations from minute 0")
    return data[:, 1]


def window(curve: np.ndarray, length: int, start: int | None) -> int:
    """Start minute of the window: ``start``, or centred on the busiest minute."""
    if not 1 <= length <= curve.size:
        raise ConfigError(f"--window-min must be in 1..{curve.size}, got {length}")
    if start is None:
        start = int(np.argmax(curve)) - length // 2
    return min(max(start, 0), curve.size - length)


def users_per_minute(values: np.ndarray, peak_users: int, min_users: int) -> list[int]:
    """Invocations scaled so the window's peak is ``peak_users``, at least ``min_users``."""
    scaled = np.rint(peak_users * values / values.max()).astype(int)
    return np.maximum(scaled, min_users).tolist()


def profile_yaml(start: int, values: np.ndarray, users: list[int], spawn_rate: float) -> str:
    clock = f"{start // 60:02d}:{start % 60:02d}"
    header = [
        "# Held-out, DERIVED FROM A PRODUCTION TRACE: Azure Functions 2019 (Azure Public",
        "# Dataset, CC BY 4.0; Shahrad et al., 'Serverless in the Wild', USENIX ATC 2020).",
        f"# Source: {SOURCE}.",
        "# Made by scripts/derive_trace_profile.py: invocations per minute summed over the",
        f"# sample's functions (azure_functions_2019_per_minute.csv), the {len(users)} minutes",
        f"# centred on the day's busiest minute (from minute {start}, {clock} of the trace",
        f"# day), users = round({max(users)} * invocations / {int(values.max())}) per minute,",
        f"# changes at {spawn_rate:g} users/s. Changes made: aggregation, window, scaling.",
        "# Fields as in ../mixed.yaml. See README.md in this folder.",
        "",
        "name: azure_functions",
        "description: >-",
        f"  {len(users)} minutes of the Azure Functions 2019 trace (a 1,000-function sample,",
        f"  invocations per minute from {clock}) scaled to {min(users)}-{max(users)} users; one",
        "  60 s stage per trace minute.",
        "wait_time: {min: 0.4, max: 1.0}",
        "stages:",
    ]
    stages = [
        f"  - {{duration: 60, users: {u}, spawn_rate: {spawn_rate:g}}}  # minute {start + k}: "
        f"{int(v)} invocations"
        for k, (u, v) in enumerate(zip(users, values, strict=True))
    ]
    return "\n".join(header + stages) + "\n"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trace", nargs="?", type=Path, help="a day's invocations CSV of the trace")
    p.add_argument("--from-curve", type=Path, help="skip step 1: read this aggregated curve")
    p.add_argument("--curve-out", type=Path, help="write the aggregated curve here")
    p.add_argument("--yaml-out", type=Path, default=YAML_OUT)
    p.add_argument("--window-min", type=int, default=30)
    p.add_argument("--start-min", type=int, default=None)
    p.add_argument("--peak-users", type=int, default=150)
    p.add_argument("--min-users", type=int, default=1)
    p.add_argument("--spawn-rate", type=float, default=10.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        if (args.trace is None) == (args.from_curve is None):
            raise ConfigError("give either a trace CSV or --from-curve CURVE.csv")
        curve = read_curve(args.from_curve) if args.from_curve else aggregate(args.trace)
        if args.curve_out:
            rows = "".join(f"{m},{int(v)}\n" for m, v in enumerate(curve))
            write_text(args.curve_out, "minute,invocations\n" + rows)
        start = window(curve, args.window_min, args.start_min)
        values = curve[start : start + args.window_min]
        users = users_per_minute(values, args.peak_users, args.min_users)
        write_text(args.yaml_out, profile_yaml(start, values, users, args.spawn_rate))
        profile = load_profile(args.yaml_out)
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.yaml_out}: minutes {start}-{start + args.window_min - 1}, users {users}")
    print(f"{profile.name}: {len(profile.stages)} stages, {profile.duration_s:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

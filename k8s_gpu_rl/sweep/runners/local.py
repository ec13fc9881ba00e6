"""``run --backend local``: each experiment is a real child process under its limits.

- **CPU**: the child is pinned (``os.sched_setaffinity``) to ``ceil(cpu_cores)`` of this
  machine's CPUs (at most all of them) and sizes torch's thread pool to match; where the
  machine lets us write a cgroup, a CFS quota of ``cpu_cores`` cores is set as well.
- **Memory**: a cgroup memory limit (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``)
  makes the kernel OOM-kill the child, as the kubelet's cgroup does to a container
  (status ``OOM``). Without a writable cgroup, ``RLIMIT_AS`` is set in the child: then an
  allocation fails inside torch and the worker reports the OOM itself.
- **GPU share and memory**: on a machine without a GPU the worker stands in for HAMi-core
  (``--emulate-gpu``): the local testbed's token-bucket limiter holds the model's busy time
  to gpucores % of wall-clock time, and a device footprint above gpumem fails as CUDA does
  (status ``GPU-OOM``). The timings are then CPU timings.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from k8s_gpu_rl.sweep.runners import Experiment, Outcome, last_lines, parse_result
from k8s_gpu_rl.sweep.worker import EXIT_OOM

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    """A fresh cgroup for one child (v2 unified, or v1 memory + cpu hierarchies)."""

    def __init__(self, name: str, memory_bytes: int, cpu_cores: float) -> None:
        self.dirs: list[Path] = []
        self.v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
        if self.v2:
            d = self._make(CGROUP_ROOT / name)
            (d / "memory.max").write_text(str(memory_bytes))
            _try_write(d / "memory.swap.max", "0")
            _try_write(d / "cpu.max", f"{int(cpu_cores * 100_000)} 100000")
        else:
            d = self._make(CGROUP_ROOT / "memory" / name)
            (d / "memory.limit_in_bytes").write_text(str(memory_bytes))
            cpu_root = CGROUP_ROOT / "cpu"
            if cpu_root.is_dir():
                c = self._make(cpu_root / name)
                _try_write(c / "cpu.cfs_period_us", "100000")
                _try_write(c / "cpu.cfs_quota_us", str(int(cpu_cores * 100_000)))

    def _make(self, path: Path) -> Path:
        path.mkdir()
        self.dirs.append(path)
        return path

    def join(self) -> None:
        """Move the calling process (the child, before exec) into every hierarchy."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def oom_killed(self) -> bool:
        """Did the kernel's OOM killer act in this cgroup?"""
        mem = self.dirs[0]
        name = "memory.events" if self.v2 else "memory.oom_control"
        for line in _read(mem / name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        return not self.v2 and _read(mem / "memory.failcnt").strip() not in ("", "0")

    def remove(self) -> None:
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)


def remove_stale_cgroups() -> None:
    """Remove the cgroups of sweeps that were killed before they could clean up."""
    for parent in (CGROUP_ROOT, CGROUP_ROOT / "memory", CGROUP_ROOT / "cpu"):
        for d in parent.glob("k8s-gpu-rl-sweep-*-*") if parent.is_dir() else []:
            pid = d.name.split("-")[-2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(OSError):
                    d.rmdir()  # fails while a process is still inside: left alone


def cgroups_writable() -> bool:
    """Can this process create a cgroup with a memory limit?"""
    try:
        probe = Cgroup(f"k8s-gpu-rl-probe-{os.getpid()}", 1 << 30, 1.0)
    except OSError:
        return False
    probe.remove()
    return True


def _try_write(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(text)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class LocalRunner:
    """Run experiments as child processes of this one (see the module docstring)."""

    def __init__(
        self,
        batch_sizes: list[int],
        repeats: int,
        timeout_s: float = 900.0,
        use_cgroups: bool | None = None,
    ) -> None:
        self.batch_sizes, self.repeats, self.timeout_s = batch_sizes, repeats, timeout_s
        self.use_cgroups = cgroups_writable() if use_cgroups is None else use_cgroups
        if self.use_cgroups:
            remove_stale_cgroups()
        self.cpus = sorted(os.sched_getaffinity(0))
        self._n = 0

    def command(self, exp: Experiment) -> list[str]:
        c = exp.config
        return [
            sys.executable, "-m", "k8s_gpu_rl.sweep.worker", "--task", exp.task,
            "--batch-sizes", ",".join(map(str, self.batch_sizes)),
            "--repeats", str(self.repeats), "--cpu-cores", f"{c.cpu_cores:g}",
            "--memory-limit-bytes", str(c.memory_bytes), "--gpucores", str(c.gpucores),
            "--gpumem-mib", str(c.gpumem_mib), "--emulate-gpu",
        ]  # fmt: skip

    def run(self, exp: Experiment) -> Outcome:
        c = exp.config
        cpus = self.cpus[: max(1, min(len(self.cpus), math.ceil(c.cpu_cores)))]
        self._n += 1
        group = (
            Cgroup(f"k8s-gpu-rl-sweep-{os.getpid()}-{self._n}", c.memory_bytes, c.cpu_cores)
            if self.use_cgroups
            else None
        )

        def limit_child() -> None:  # runs in the child between fork and exec
            os.sched_setaffinity(0, cpus)
            if group is not None:
                group.join()
            else:
                resource.setrlimit(resource.RLIMIT_AS, (c.memory_bytes, c.memory_bytes))

        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(len(cpus))}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                self.command(exp), capture_output=True, text=True, env=env,
                preexec_fn=limit_child, timeout=self.timeout_s,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return Outcome("failed", f"timeout after {self.timeout_s:g} s", self.timeout_s)
        finally:
            oom = group.oom_killed() if group is not None else False
            if group is not None:
                group.remove()
        return _outcome(proc, time.perf_counter() - t0, oom, c.memory)


def _outcome(proc: subprocess.CompletedProcess, total: float, oom: bool, memory: str) -> Outcome:
    result = parse_result(proc.stdout)
    if proc.returncode == -9 and oom:
        msg = f"OOMKilled: the kernel killed the process at its {memory} memory limit (cgroup)"
        return Outcome("OOM", msg, total, result)
    if result.get("status") in ("OOM", "GPU-OOM", "success", "failed"):
        code_ok = proc.returncode in (0, 1, EXIT_OOM)
        if code_ok:
            return Outcome(result["status"], result.get("error_message", ""), total, result)
    tail = last_lines(proc.stderr) or last_lines(proc.stdout)
    return Outcome("failed", f"exit code {proc.returncode}: {tail}", total, result)

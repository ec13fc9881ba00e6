"""Run load profiles on the real local testbed and on the simulator, side by side.

    python scripts/sim_vs_real.py [--profile low,medium] [--time-scale 1] [--sim-seeds 5]
                                  [--replicas 1] [--gpucores 50] [--no-calibrate]
                                  [--cluster YAML] [--reuse-real JSON] [--out results/sim_vs_real]

1. Calibrate (unless ``--no-calibrate``): ONNX Runtime batch times, server start-up, and
   a 60 s probe of the whole testbed for the per-request transport and CPU overheads;
   the measured constants replace those of ``envs/sim/clusters/local.yaml`` and the
   result is written to ``<out>/local-calibrated.yaml``.
2. For each profile, one real run on ``backend="local"`` and ``--sim-seeds`` simulated
   runs of the calibrated cluster, all holding the Deployment at ``--replicas`` x
   ``--gpucores``. ``--time-scale`` shortens every stage for a quicker look.
3. Print p50, p95, throughput and CPU utilisation of both with the relative error, and
   write ``<out>/sim_vs_real.json`` (a figure that could not be measured, NaN, as
   ``null``). Exit 1 if p95 or throughput is off by more than
   ``--tolerance`` (default 15 %).

The CPU figure is the pods' CPU time over their CPU requests. On this machine inference
itself runs on the CPU, so the simulator's figure adds its "GPU" work to its CPU time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from k8s_gpu_rl.config import to_dict  # noqa: E402
from k8s_gpu_rl.envs.backends.sim import SimBackend  # noqa: E402
from k8s_gpu_rl.envs.k8s_gpu_env import K8sGpuEnv  # noqa: E402
from k8s_gpu_rl.envs.sim.config import load_cluster_config  # noqa: E402
from k8s_gpu_rl.errors import K8sGpuRlError  # noqa: E402
from k8s_gpu_rl.io import read_json, write_json, write_text  # noqa: E402
from k8s_gpu_rl.loadprofiles import load_profile, time_scaled  # noqa: E402

FIGURES = ("p50_latency_ms", "p95_latency_ms", "throughput_rps", "cpu_util")
GATED = ("p95_latency_ms", "throughput_rps")


def run(env: K8sGpuEnv, seed: int, replicas: int, gpucores: int) -> dict[str, float]:
    """One episode holding the Deployment at replicas x gpucores; the compared figures."""
    env.reset(seed=seed)
    done, info = False, {}
    while not done:
        _, _, term, trunc, info = env.step(env.action_for(replicas, gpucores))
        done = term or trunc
    k = info["episode_kpis"]
    s = env._episode.sums  # noqa: SLF001 - the episode's integrals
    work = s.get("gpu_work_s", 0.0) if isinstance(env.backend, SimBackend) else 0.0
    cpu = (s.get("cpu_s", 0.0) + work) / s["cpu_request_s"] if s.get("cpu_request_s") else math.nan
    return {
        "p50_latency_ms": k["p50_latency_ms"],
        "p95_latency_ms": k["p95_latency_ms"],
        "throughput_rps": k["throughput_rps"],
        "cpu_util": cpu,
        "success_rate": k["success_rate"],
        "requests": k["requests"],
    }


def calibrate(out: Path) -> Path:
    from k8s_gpu_rl.envs.backends.local import measure
    from k8s_gpu_rl.envs.backends.local.model import ensure_onnx, write_model_repository
    from k8s_gpu_rl.envs.backends.local.procs import ProcessGroup

    base = load_cluster_config("local")
    onnx = ensure_onnx()
    print("calibrating: ONNX Runtime batch times ...", flush=True)
    batch = measure.batch_times(onnx)
    base_ms, per_item = measure.fit_linear(list(batch), list(batch.values()))
    print("calibrating: server start-up ...", flush=True)
    with ProcessGroup() as group:
        repo = Path(group.rundir) / "models"
        write_model_repository(repo, onnx, max_batch_size=base.serving.max_batch_size)
        startup = measure.startup_times(repo, base.serving.model_name)
    print("calibrating: 60 s probe of the testbed ...", flush=True)
    p = measure.probe(base)
    cpu_ms = p["cpu_ms_per_request"]
    server_model_ms = cpu_ms + base.serving.max_queue_delay_us / 1000 + base_ms + per_item
    transport = measure.fit_transport(
        p["client_p50_ms"], p["client_p75_ms"], p["client_p99_ms"], server_model_ms
    )
    m = measure.Measured(
        batch, base_ms, per_item, float(np.median(startup)), transport,
        p["cpu_ms_per_request"], p["memory_mib"],
    )  # fmt: skip
    print(
        "  batch ms "
        + ", ".join(f"b={b}: {t:.1f}" for b, t in batch.items())
        + f" -> {base_ms:.2f} + {per_item:.2f}·n\n"
        f"  start-up {m.startup_s:.1f} s; client p50/p75/p99 {p['client_p50_ms']:.2f}/"
        f"{p['client_p75_ms']:.2f}/{p['client_p99_ms']:.2f} ms, server {p['server_ms']:.2f} ms"
        f" (model {server_model_ms:.2f})"
        f" -> transport {transport['transport_median_ms']:.2f} ms, sigma "
        f"{transport['transport_sigma']:.3f}, tail {transport['tail_mean_ms']:.2f} ms;\n  "
        f"front-end CPU {m.cpu_ms_per_request:.2f} ms/request; memory {m.model_memory_mib:.0f} MiB"
    )
    path = out / "local-calibrated.yaml"
    write_text(
        path,
        "# envs/sim/clusters/local.yaml with constants measured by scripts/sim_vs_real.py\n"
        + yaml.safe_dump(to_dict(measure.calibrated(base, m)), sort_keys=False),
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="low,medium", help="comma list of profiles")
    parser.add_argument("--time-scale", type=float, default=1.0, help="stage length factor")
    parser.add_argument("--sim-seeds", type=int, default=5, help="simulated runs per profile")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--gpucores", type=int, default=50)
    parser.add_argument("--cluster", help="cluster YAML for the simulator (skips calibration)")
    parser.add_argument("--no-calibrate", action="store_true", help="use local.yaml as shipped")
    parser.add_argument(
        "--reuse-real",
        type=Path,
        help="a previous sim_vs_real.json: compare its real runs with the simulator again "
        "(no real runs; for work on the simulator)",
    )
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--out", type=Path, default=Path("results/sim_vs_real"))
    args = parser.parse_args(argv)
    try:
        profiles = [time_scaled(load_profile(n), args.time_scale) for n in args.profile.split(",")]
        args.out.mkdir(parents=True, exist_ok=True)
        if args.cluster:
            cluster_path: str | Path = args.cluster
        elif args.no_calibrate:
            cluster_path = "local"
        else:
            cluster_path = calibrate(args.out)
        cluster = load_cluster_config(cluster_path)
        report: dict[str, dict] = {}
        worst = 0.0
        for profile in profiles:
            if args.reuse_real:
                saved = read_json(args.reuse_real)["profiles"][profile.name]["real"]
                real = {k: math.nan if v is None else v for k, v in saved.items()}  # null: NaN
                print(f"\n{profile.name}: real run from {args.reuse_real}; simulating ...")
            else:
                print(f"\n{profile.name}: real run ({profile.duration_s:.0f} s) ...", flush=True)
                t = time.monotonic()
                env = K8sGpuEnv(profile=profile, backend="local", cluster=cluster)
                try:
                    real = run(env, 0, args.replicas, args.gpucores)
                finally:
                    env.close()
                print(f"  done in {time.monotonic() - t:.0f} s; simulating ...", flush=True)
            env = K8sGpuEnv(profile=profile, backend="sim", cluster=cluster)
            sims = [run(env, s, args.replicas, args.gpucores) for s in range(args.sim_seeds)]
            sim = {k: float(np.mean([r[k] for r in sims])) for k in sims[0]}
            rows = {}
            print(f"  {'figure':<16}{'real':>10}{'sim':>10}{'error':>9}")
            for k in FIGURES:
                err = sim[k] / real[k] - 1 if real[k] else math.nan
                rows[k] = {"real": real[k], "sim": sim[k], "relative_error": err}
                if k in GATED:
                    worst = max(worst, abs(err))
                print(f"  {k:<16}{real[k]:>10.2f}{sim[k]:>10.2f}{err:>+9.1%}")
            print(f"  requests: real {real['requests']:.0f} (success {real['success_rate']:.2%})")
            report[profile.name] = {"figures": rows, "real": real, "sim_runs": sims}
        result = args.out / ("sim_again.json" if args.reuse_real else "sim_vs_real.json")
        write_json(result, {"cluster": str(cluster_path), "profiles": report})  # NaN: null
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ok = worst <= args.tolerance
    print(
        f"\nworst p95/throughput error {worst:.1%}: {'within' if ok else 'OUTSIDE'} "
        f"the {args.tolerance:.0%} target; results in {args.out}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

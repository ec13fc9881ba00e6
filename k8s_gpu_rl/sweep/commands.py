"""The four steps of ``python -m sweep``, each reading what the previous one wrote."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.io import write_text
from k8s_gpu_rl.sweep.configs import ResourceConfiguration, load_configurations, select
from k8s_gpu_rl.sweep.render import RenderOptions, read_manifest
from k8s_gpu_rl.sweep.results import ResultsWriter, read_rows
from k8s_gpu_rl.sweep.runners import Experiment, result_row
from k8s_gpu_rl.sweep.tasks import select_tasks

RESULTS_NAME = "experiment_results.csv"


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _sizes_or_none(text: str | None) -> list[int] | None:
    return [int(t) for t in text.split(",") if t.strip()] if text else None


def generate(args: argparse.Namespace, out: Path) -> int:
    from k8s_gpu_rl.sweep import render

    configs = select(load_configurations(args.configurations), _names(args.configs))
    tasks = select_tasks(_names(args.tasks))
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
    opts = RenderOptions(
        image=args.image,
        namespace=args.namespace,
        scheduler_name=args.scheduler_name,
        annotations=dict(args.annotation),
        core_policy=args.core_policy,
        batch_sizes=tuple(args.batch_sizes),
        repeats=args.repeats,
    )
    manifest = render.generate(out, tasks, configs, opts, args.template)
    print(f"{len(manifest['experiments'])} manifests in {out / 'manifests'}")
    print(f"wrote {out / render.MANIFEST_NAME}")
    return 0


def _defaults_for_generate(args: argparse.Namespace) -> argparse.Namespace:
    """``run`` on a directory without a manifest generates the shipped sweep first."""
    return argparse.Namespace(
        configurations=None, configs=None, tasks=None, template=None,
        image="k8s-gpu-rl-sweep:latest", namespace="default", scheduler_name="hami-scheduler",
        annotation=[], core_policy="force", batch_sizes=[1, 4, 8], repeats=3,
    )  # fmt: skip


def experiments(out: Path, tasks: list[str] | None, configs: list[str] | None) -> list[Experiment]:
    """The manifest's experiments, filtered by task and configuration names."""
    import yaml

    manifest = read_manifest(out)
    entries = manifest["experiments"]
    for what, wanted, key in (("task", tasks, "task"), ("configuration", configs, None)):
        known = sorted({e[key] if key else e["configuration"]["name"] for e in entries})
        for name in wanted or []:
            if name not in known:
                from k8s_gpu_rl.config import suggest

                raise ConfigError(
                    f"{what} {name!r} is not in {out}/experiment_manifest.json"
                    f"{suggest(name, known)}; there: {', '.join(known)}"
                )
    chosen = []
    for e in entries:
        if (tasks and e["task"] not in tasks) or (
            configs and e["configuration"]["name"] not in configs
        ):
            continue
        doc = yaml.safe_load((out / e["manifest"]).read_text())
        chosen.append(
            Experiment(e["pod_name"], e["task"], ResourceConfiguration(**e["configuration"]), doc)
        )
    return chosen


def _runner(args: argparse.Namespace, out: Path, batch_sizes: list[int], repeats: int) -> Any:
    if args.backend == "local":
        from k8s_gpu_rl.sweep.runners.local import LocalRunner

        return LocalRunner(batch_sizes, repeats, timeout_s=args.timeout_s)
    if args.backend == "sim":
        from k8s_gpu_rl.sweep.runners.sim import SimRunner

        return SimRunner(batch_sizes, out, cluster=args.cluster)
    from k8s_gpu_rl.sweep.runners.k8s import K8sRunner, load_api_client

    client = load_api_client(args.kubeconfig, args.context)
    return K8sRunner(
        client, timeout_s=args.timeout_s, unschedulable_timeout_s=args.unschedulable_timeout_s
    )


def run(args: argparse.Namespace, out: Path) -> int:
    if not (out / "experiment_manifest.json").exists():
        generate(_defaults_for_generate(args), out)
    manifest = read_manifest(out)
    batch_sizes = list(manifest["options"]["batch_sizes"])
    repeats = int(manifest["options"]["repeats"])
    todo = experiments(out, _names(args.tasks), _names(args.configs))
    writer = ResultsWriter(out / RESULTS_NAME, batch_sizes)
    done = writer.done()
    pending = [e for e in todo if e.pod_name not in done]
    if len(pending) < len(todo):
        print(f"resuming: {len(todo) - len(pending)} of {len(todo)} already in {writer.path}")
    runner = _runner(args, out, batch_sizes, repeats)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = tqdm(pending, desc=f"sweep ({args.backend})", unit="run", disable=not show)
    for exp in bar:
        bar.set_postfix_str(exp.pod_name)
        outcome = runner.run(exp)
        writer.append(result_row(exp, outcome, args.backend, batch_sizes, repeats))
        print(f"{exp.pod_name}: {outcome.status} ({outcome.total_time:.1f} s)"
              + (f" {outcome.error_message[:160]}" if outcome.error_message else ""),
              flush=True)  # fmt: skip
    print(f"wrote {writer.path} ({len(writer.rows)} rows)")
    return 0


def analyze(args: argparse.Namespace, out: Path) -> int:
    from k8s_gpu_rl.sweep import analysis, plots

    rows = read_rows(out / RESULTS_NAME)
    targets = analysis.Targets(
        latency_ms=args.latency_target_ms,
        throughput=args.throughput_target,
        batch_size=args.batch_size or analysis.first_batch_size(rows),
    )
    table = analysis.analyse(rows, targets)
    analysis.write_outputs(out, table, targets)
    written = plots.write_plots(out / "plots", table, targets.batch_size)
    print(f"wrote {out}/experiment_analysis.csv, experiment_summary.json, "
          f"optimal_configurations.json and {len(written)} plots in {out / 'plots'}")  # fmt: skip
    return 0


def fit(args: argparse.Namespace, out: Path) -> int:
    from k8s_gpu_rl.sweep import fit as fitting

    rows = read_rows(out / RESULTS_NAME)
    result = fitting.fit_task(
        rows, args.task, args.reference, args.max_batch_size,
        _sizes_or_none(args.fit_batch_sizes), args.base_cluster,
    )  # fmt: skip
    cluster = fitting.fitted_cluster(result, args.base_cluster)
    yaml_path = out / "fit" / f"{args.task}.yaml"
    fitting.write_cluster_yaml(yaml_path, cluster, result)
    text = json.dumps(result.to_json(cluster), indent=2) + "\n"
    write_text(out / "fit" / f"{args.task}.json", text)
    print(result.describe(cluster))
    print(f"wrote {yaml_path} (python -m evaluate --cluster {yaml_path})")
    return 0

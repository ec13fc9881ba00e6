"""``generate``: one Pod manifest per configuration x task, from a Jinja2 template.

The shipped template (``data/pod.yaml.j2``) asks HAMi for one physical GPU
(``nvidia.com/gpu: 1``), the configuration's share as ``nvidia.com/gpucores`` and its
memory as ``nvidia.com/gpumem`` (MiB); a user's own template gets the same variables.
Every rendered document must be a YAML mapping with a Pod ``metadata.name``; the caller
validates it against Kubernetes' schemas.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.io import write_text
from k8s_gpu_rl.sweep.configs import DATA_DIR, ResourceConfiguration

DEFAULT_TEMPLATE = DATA_DIR / "pod.yaml.j2"
MANIFEST_NAME = "experiment_manifest.json"


@dataclass(frozen=True)
class RenderOptions:
    """What the template needs besides a configuration and a task."""

    image: str = "k8s-gpu-rl-sweep:latest"
    """Container image with this package and transformers installed."""
    namespace: str = "default"
    """Namespace of the Pods."""
    scheduler_name: str = "hami-scheduler"
    """spec.schedulerName ('' for the default scheduler)."""
    annotations: dict[str, str] = field(default_factory=dict)
    """Pod annotations, e.g. {'hami.io/resource-pool': 'poc'}."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra Pod labels."""
    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy."""
    core_policy: str = "force"
    """GPU_CORE_UTILIZATION_POLICY: force (a lone pod is throttled too), default, disable."""
    active_deadline_s: int = 1800
    """activeDeadlineSeconds: the kubelet ends a run that takes longer."""
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    """Batch sizes each run measures."""
    repeats: int = 3
    """Timed batches per batch size (after one warm-up)."""


def pod_name(task: str, config: ResourceConfiguration) -> str:
    return f"sweep-{task}-{config.name}"[:63].rstrip("-")


def worker_args(task: str, config: ResourceConfiguration, opts: RenderOptions) -> list[str]:
    return [
        "--task", task,
        "--batch-sizes", ",".join(map(str, opts.batch_sizes)),
        "--repeats", str(opts.repeats),
        "--cpu-cores", f"{config.cpu_cores:g}",
        "--memory-limit-bytes", str(config.memory_bytes),
        "--gpucores", str(config.gpucores),
        "--gpumem-mib", str(config.gpumem_mib),
    ]  # fmt: skip


def load_template(path: str | Path | None) -> jinja2.Template:
    path = Path(path) if path else DEFAULT_TEMPLATE
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read template ({exc.strerror or exc})") from None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") from None


def render_pod(
    template: jinja2.Template, task: str, config: ResourceConfiguration, opts: RenderOptions
) -> dict[str, Any]:
    """Render one manifest and parse it (the template's errors name the experiment)."""
    name = pod_name(task, config)
    try:
        text = template.render(
            pod_name=name, namespace=opts.namespace, image=opts.image,
            image_pull_policy=opts.image_pull_policy, scheduler_name=opts.scheduler_name,
            annotations=opts.annotations, labels=opts.labels, task=task, config=config,
            worker_args=worker_args(task, config, opts), core_policy=opts.core_policy,
            active_deadline_s=opts.active_deadline_s,
        )  # fmt: skip
        doc = yaml.safe_load(text)
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template, experiment {name}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"template, experiment {name}: renders invalid YAML: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Pod":
        raise ConfigError(f"template, experiment {name}: must render one Pod mapping")
    return doc


def generate(
    out: Path,
    tasks: list[str],
    configs: list[ResourceConfiguration],
    opts: RenderOptions,
    template_path: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``out/manifests/<pod>.yaml`` and ``out/experiment_manifest.json``."""
    template = load_template(template_path)
    experiments = []
    for config in configs:
        for task in tasks:
            doc = render_pod(template, task, config, opts)
            path = out / "manifests" / f"{doc['metadata']['name']}.yaml"
            text = _header(task, config) + yaml.safe_dump(doc, sort_keys=False)
            write_text(path, text)
            experiments.append(
                {
                    "pod_name": doc["metadata"]["name"],
                    "task": task,
                    "configuration": asdict(config),
                    "manifest": str(path.relative_to(out)),
                }
            )
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "template": str(template_path or DEFAULT_TEMPLATE),
        "options": {**asdict(opts), "batch_sizes": list(opts.batch_sizes)},
        "experiments": experiments,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    write_text(out / MANIFEST_NAME, text)
    return manifest


def _header(task: str, config: ResourceConfiguration) -> str:
    return (
        f"# Sweep experiment: task {task}, configuration {config.name}.\n"
        f"# GPU share {config.gpu_ratio:g} of one GPU = nvidia.com/gpucores: {config.gpucores}.\n"
        "# HAMi's nvidia.com/gpu counts physical GPUs (a fraction such as 0.25 is rejected),\n"
        "# so it is 1 here and the share is nvidia.com/gpucores; nvidia.com/gpumem is MiB.\n"
    )


def read_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST_NAME
    if not path.exists():
        raise ConfigError(f"{path} not found: run `generate --out {out}` first")
    return json.loads(path.read_text())

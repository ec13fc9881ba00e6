"""``analyze``'s plots: batch latency against each constrained resource per task, and a
heat map of configuration x task (log latency; failed cells labelled with their status)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

RESOURCES = (
    ("cpu_cores", "CPU cores"),
    ("memory_gb", "memory limit (GiB)"),
    ("gpu_ratio", "GPU share (gpucores / 100)"),
    ("gpu_memory_mb", "GPU memory limit (MiB)"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def resource_plot(path: Path, task: str, group: pd.DataFrame, batch: int = 1) -> None:
    """Latency (mean, batch size of the targets) against each resource; failures marked."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(RESOURCES), figsize=(4 * len(RESOURCES), 3.4), sharey=True)
    ok = group[group["status"] == "success"]
    bad = group[group["status"] != "success"]
    top = float(ok["latency_mean_ms"].max()) * 1.3 if len(ok) else 1.0
    for ax, (col, label) in zip(axes, RESOURCES, strict=True):
        ax.scatter(ok[col], ok["latency_mean_ms"], color="tab:blue", label="success")
        for _, r in ok.iterrows():
            ax.annotate(r["configuration"], (r[col], r["latency_mean_ms"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        if len(bad):
            ax.scatter(bad[col], [top] * len(bad), marker="x", color="tab:red", label="failed")
            for _, r in bad.iterrows():
                ax.annotate(r["status"], (r[col], top), fontsize=6, color="tab:red",
                            xytext=(3, -8), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"latency at batch {batch}, mean (ms)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task}: latency under each resource limit")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def heatmap(path: Path, table: pd.DataFrame, batch: int = 1) -> None:
    """Configuration x task heat map of log10 mean latency."""
    plt = _plt()
    configs = list(dict.fromkeys(table["configuration"]))
    tasks = list(dict.fromkeys(table["task"]))
    grid = np.full((len(configs), len(tasks)), np.nan)
    labels = [["" for _ in tasks] for _ in configs]
    for _, r in table.iterrows():
        i, j = configs.index(r["configuration"]), tasks.index(r["task"])
        if r["status"] == "success":
            grid[i, j] = np.log10(max(r["latency_mean_ms"], 1e-3))
            labels[i][j] = f"{r['latency_mean_ms']:.0f} ms"
        else:
            labels[i][j] = r["status"]
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(tasks), 1.2 + 0.45 * len(configs)))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    for i in range(len(configs)):
        for j in range(len(tasks)):
            ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=7,
                    color="white" if not np.isnan(grid[i, j]) else "tab:red")  # fmt: skip
    ax.set_xticks(range(len(tasks)), tasks, rotation=20)
    ax.set_yticks(range(len(configs)), configs)
    fig.colorbar(im, ax=ax, label="log10 latency (ms)")
    ax.set_title(f"mean latency at batch {batch} by configuration and task")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(out: Path, table: pd.DataFrame, batch: int = 1) -> list[Path]:
    """Every plot into ``out`` (created); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for task, group in table.groupby("task", sort=False):
        path = out / f"resources_{task}.png"
        resource_plot(path, task, group, batch)
        written.append(path)
    heat = out / "heatmap.png"
    heatmap(heat, table, batch)
    return [*written, heat]

"""``notebooks/analysis.ipynb`` runs on a fresh results folder and draws its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "analysis.ipynb"


def _kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``python3``, installing this interpreter's kernelspec into a temporary prefix if missing."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" in KernelSpecManager().find_kernel_specs():
        return "python3"
    prefix = tmp_path / "jupyter"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--prefix",
            str(prefix),
            "--name",
            "python3",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "python3"


def test_analysis_notebook_runs_on_fresh_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluate",
            "--policy",
            "static,hpa",
            "--profile",
            "low",
            "--repeats",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("K8SGPURL_RESULTS", str(out))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name=_kernel_name(tmp_path, monkeypatch),
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 3  # time series, KPI bars and cost-vs-QoS for the one profile
    text = "".join(o.get("text", "") for o in outputs)
    assert str(out) in text
    # The headline table (a pandas Styler, rendered as HTML): both policies hold 1 pod at 50 %
    # for 600 s in both runs on low, 0.5 x 600 / 3600 = 0.0833 vGPU-h, no spread.
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("0.0833 ± 0.0000") == 2  # the vGPU-h cell of static and of hpa

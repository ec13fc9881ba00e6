"""scripts/benchmark.py: both trees measured in one run, side by side; clear errors.

Speed itself is not asserted (performance lives in the benchmark); these check that the
figures it prints come from the trees it names.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "benchmark.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def load_script():
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_previous_revision_is_measured_beside_this_tree():
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    done = run("--previous", "HEAD", "--episodes", "1", "--ppo-steps", "0", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("figure"))
    assert "this tree" in header and f"previous ({head})" in header and "ratio" in header
    for figure in ("env steps/s, hold policy", "env steps/s, random actions"):
        line = next(x for x in done.stdout.splitlines() if x.startswith(figure))
        new, old = (float(v.replace(",", "")) for v in re.findall(r"\s([\d,]+)\s", line)[:2])
        ratio = float(re.search(r"([\d.]+)x", line).group(1))
        assert new > 0 and old > 0
        assert ratio == pytest.approx(new / old, abs=0.006)  # printed to two decimals
    rss = next(x for x in done.stdout.splitlines() if x.startswith("one env, resident memory"))
    assert all(10 < float(v) < 150 for v in re.findall(r"\s(\d+)\s", rss)[:2])


def test_unknown_revision_is_named_without_a_traceback():
    done = run("--previous", "no-such-revision", "--episodes", "1", "--ppo-steps", "0")
    assert done.returncode == 1
    assert "'no-such-revision' is not a commit" in done.stderr and "--no-previous" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_counts_are_usage_errors():
    done = run("--rounds", "0")
    assert done.returncode == 2 and "--rounds must be at least 1, got 0" in done.stderr
    done = run("--ppo-steps", "-1")
    assert done.returncode == 2 and "--ppo-steps must be 0 or more, got -1" in done.stderr


def test_a_tree_whose_import_resolves_elsewhere_is_refused(tmp_path):
    # A tree of the packaged layout without the package: k8s_gpu_rl.envs then resolves to
    # this checkout (installed or on the path), which must not pass for the other tree.
    bench = load_script()
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "k8s_gpu_env.py").write_text("from k8s_gpu_rl.envs.config import X\n")
    tree = bench.Tree("hollow", tmp_path)
    assert tree.module == "k8s_gpu_rl.envs.k8s_gpu_env"
    with pytest.raises(bench.BenchmarkError, match="was imported from"):
        tree.probe(what="rss", profile="low")


def test_the_layout_before_packaging_imports_the_bare_envs_package(tmp_path):
    bench = load_script()
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "k8s_gpu_env.py").write_text("from envs.config import EnvConfig\n")
    assert bench.Tree("old", tmp_path).module == "envs.k8s_gpu_env"

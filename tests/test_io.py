"""The shared atomic writer (:mod:`k8s_gpu_rl.io`) and the child-process environment
(:mod:`k8s_gpu_rl.procenv`), checked against what the standard library and a real child
interpreter do, including from a wheel's layout of the package."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import k8s_gpu_rl
from k8s_gpu_rl.io import (
    atomic_write,
    read_json,
    savefig,
    write_csv,
    write_json,
    write_text,
    write_yaml,
)
from k8s_gpu_rl.procenv import THREAD_VARIABLES, python_child_env

REPO = Path(__file__).resolve().parents[1]


def _strict_json(text: str) -> object:
    """RFC 8259 JSON only: NaN/Infinity literals are an error (as in jq or JSON.parse)."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# --- the NaN rule ---------------------------------------------------------------------------


def test_json_writes_non_finite_numbers_as_null_and_stays_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json(
        path,
        {
            "nan": math.nan,
            "inf": [math.inf, -math.inf, 1.5],
            "np": np.float32(2.5),
            "array": np.array([1.0, np.nan]),
            "int": np.int64(7),
            "path": Path("/a/b"),
            3: True,
        },
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("}\n")
    assert _strict_json(text) == {
        "nan": None,
        "inf": [None, None, 1.5],
        "np": 2.5,
        "array": [1.0, None],
        "int": 7,
        "path": "/a/b",
        "3": True,
    }


def test_reader_gives_none_for_null_and_for_old_nan_literals(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text('{"p95": NaN, "rps": Infinity, "cpu": -Infinity, "ok": null, "n": 3}')
    assert read_json(old) == {"p95": None, "rps": None, "cpu": None, "ok": None, "n": 3}
    new = tmp_path / "new.json"
    write_json(new, {"p95": math.nan, "n": 3})
    assert read_json(new) == {"p95": None, "n": 3}
    bad = tmp_path / "bad.json"
    bad.write_text("{'single': 'quotes'}")
    with pytest.raises(json.JSONDecodeError, match="property name enclosed in double quotes"):
        read_json(bad)


def test_csv_keeps_pandas_nan_convention(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_csv(path, pd.DataFrame({"a": [1.0, math.nan], "b": ["x", "y"]}))
    assert path.read_text().splitlines() == ["a,b", "1.0,x", ",y"]
    back = pd.read_csv(path)
    assert back["a"].iloc[0] == 1.0 and math.isnan(back["a"].iloc[1])


def test_yaml_text_and_figure_writers(tmp_path: Path) -> None:
    data = {"name": "x", "stages": [{"duration_s": 60.0, "users": 10}], "nan": math.nan}
    write_yaml(tmp_path / "a.yaml", data)
    back = yaml.safe_load((tmp_path / "a.yaml").read_text())
    assert back["stages"] == data["stages"] and math.isnan(back["nan"])
    assert list(back) == ["name", "stages", "nan"]  # insertion order, not sorted
    write_text(tmp_path / "deep" / "er" / "t.txt", "héllo\n")
    assert (tmp_path / "deep" / "er" / "t.txt").read_bytes() == "héllo\n".encode()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    savefig(fig, tmp_path / "f.png")
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- atomicity ------------------------------------------------------------------------------


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old\n")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half of the new con")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C mid-write cleans up too
        atomic_write(path, lambda tmp: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_readers_see_the_old_or_the_whole_new_file(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    versions = ["a" * 2_000_000, "b" * 2_000_000]
    write_text(path, versions[0])
    seen: set[int] = set()
    bad: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            text = path.read_text()
            (seen.add(len(text)) if text in versions else bad.append(len(text)))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(40):
            write_text(path, versions[i % 2])
    finally:
        stop.set()
        reader.join()
    assert bad == [] and seen == {2_000_000}


def test_new_files_get_the_permissions_open_would_give(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")  # the mode open() gives under this umask
    write_text(tmp_path / "atomic", "x")
    # (mkstemp alone would give 0600 whatever the umask)
    assert (tmp_path / "atomic").stat().st_mode & 0o777 == (
        tmp_path / "plain"
    ).stat().st_mode & 0o777


# --- the child environment ------------------------------------------------------------------


def test_child_env_leads_pythonpath_with_the_package_root_and_sets_threads() -> None:
    root = str(Path(k8s_gpu_rl.__file__).resolve().parent.parent)
    env = python_child_env(
        {"EXTRA": "1", "OMP_NUM_THREADS": "7"},
        threads=2,
        base={"PATH": "/bin", "PYTHONPATH": f"/x{os.pathsep}{root}"},
    )
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/x"]  # not twice
    assert env["PYTHONUNBUFFERED"] == "1" and env["PATH"] == "/bin" and env["EXTRA"] == "1"
    assert {v: env[v] for v in THREAD_VARIABLES} == {
        "OMP_NUM_THREADS": "7",  # extra wins
        "OPENBLAS_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
    }
    assert not set(THREAD_VARIABLES) & set(python_child_env(base={}))
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        python_child_env(threads=0)


def test_a_child_imports_this_package_from_another_directory(tmp_path: Path) -> None:
    """``-S``: no site-packages, so no editable-install finder; only PYTHONPATH can help."""
    code = (
        "import k8s_gpu_rl, k8s_gpu_rl.envs.backends as b; print(k8s_gpu_rl.__file__, b.__file__)"
    )
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ours = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env=python_child_env(base=base),
        capture_output=True,
        text=True,
        timeout=60,
    )
    import k8s_gpu_rl.envs.backends as backends

    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.split() == [k8s_gpu_rl.__file__, backends.__file__]
    bare = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=tmp_path, env=base, capture_output=True, text=True
    )
    assert bare.returncode == 1 and "No module named 'k8s_gpu_rl'" in bare.stderr


WHEEL_PROBE = textwrap.dedent(
    """\
    import json, os, subprocess, sys
    import k8s_gpu_rl
    from k8s_gpu_rl.paths import IMPORT_ROOT, source_checkout
    from k8s_gpu_rl.procenv import python_child_env
    from k8s_gpu_rl.envs.backends.local.locust_run import LOCUSTFILE
    from k8s_gpu_rl.agents.run_dir import git_state

    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    child = subprocess.run(
        [sys.executable, "-c", "import k8s_gpu_rl.loadprofiles as l; print(l.__file__)"],
        cwd=sys.argv[1], env=python_child_env(base=base), capture_output=True, text=True,
    )
    print(json.dumps({
        "package": k8s_gpu_rl.__file__, "import_root": str(IMPORT_ROOT),
        "checkout": None if source_checkout() is None else str(source_checkout()),
        "locustfile": str(LOCUSTFILE), "locustfile_exists": LOCUSTFILE.is_file(),
        "git": git_state(), "grandchild": child.stdout.strip() or child.stderr,
    }))
    """
)


def _wheel_layout(site: Path) -> None:
    """The package as a wheel installs it: pyproject's package-dir mapping, folder by folder."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["setuptools"]["package-dir"]
    ignore = shutil.ignore_patterns("__pycache__", "_build", "*.so")
    for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(REPO / folder, site.joinpath(*package.split(".")), ignore=ignore)


def test_from_a_wheel_layout_files_and_children_come_from_the_package(tmp_path: Path) -> None:
    """The virtual environment lies inside some other git repository (a venv in a project
    folder): the manifest must not record that repository's commit as ours."""
    site, elsewhere = tmp_path / "site-packages", tmp_path / "elsewhere"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True)
    _wheel_layout(site)
    elsewhere.mkdir()
    (tmp_path / "probe.py").write_text(WHEEL_PROBE)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, str(tmp_path / "probe.py"), str(elsewhere)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    pkg = site / "k8s_gpu_rl"
    assert got["package"] == str(pkg / "__init__.py")
    assert got["import_root"] == str(site)
    assert got["checkout"] is None
    assert got["locustfile"] == str(pkg / "loadprofiles" / "locustfile.py")
    assert got["locustfile_exists"] is True
    assert got["git"] == {"git_commit": None, "git_dirty": None}
    assert got["grandchild"] == str(pkg / "loadprofiles" / "__init__.py")


def test_in_the_checkout_git_state_is_the_checkouts() -> None:
    from k8s_gpu_rl.agents.run_dir import git_state
    from k8s_gpu_rl.paths import source_checkout

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert source_checkout() == REPO
    if head.returncode != 0:  # e.g. an unpacked source archive: nothing to record
        assert git_state() == {"git_commit": None, "git_dirty": None}
    else:
        assert git_state()["git_commit"] == head.stdout.strip()

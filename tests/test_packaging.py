"""Packaging: one import root, a wheel that runs, entry points, the kernel cache, the lint rule.

The wheel is built here (setuptools, no build isolation, no network) and inspected as a
zip; ``.ci/run`` additionally installs it into a fresh virtual environment beside Hugging
Face's ``evaluate`` and runs an episode from outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = ("envs", "agents", "baselines", "evaluation", "loadprofiles")
GENERIC = {
    "train",
    "evaluate",
    "envs",
    "agents",
    "baselines",
    "evaluation",
    "loadprofiles",
    "tests",
}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _package_folders() -> set[str]:
    """Every folder with an ``__init__.py``, named as the wheel installs it."""
    names = set()
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if rel.parts[0] in MAPPED:
            names.add(".".join(("k8s_gpu_rl", *rel.parts)))
        elif rel.parts[0] == "k8s_gpu_rl":
            names.add(".".join(rel.parts))
    return names


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _outside_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH and the cache variables, plus ``extra``."""
    dropped = ("PYTHONPATH", "K8SGPURL_CACHE", "XDG_CACHE_HOME")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(extra)
    return env


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    assert listed == _package_folders()


def test_mapped_folders_are_the_layout_the_user_asked_for() -> None:
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    assert mapping == {"k8s_gpu_rl": "k8s_gpu_rl", **{f"k8s_gpu_rl.{m}": m for m in MAPPED}}
    assert "py-modules" not in _pyproject()["tool"]["setuptools"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built from a copy of the source without build leftovers: an editable
    install's egg-info would hand setuptools a file list that hides missing package data."""
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    leftovers = shutil.ignore_patterns(
        "*.egg-info", ".git", "build", "dist", "runs", "results", "sweeps", ".venv", "__pycache__"
    )
    shutil.copytree(REPO, src, ignore=leftovers)
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        cwd=out,
        timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("k8s_gpu_rl-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_installs_one_top_level_name(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"k8s_gpu_rl"}
    top_level = next(n for n in wheel.namelist() if n.endswith("top_level.txt"))
    assert wheel.read(top_level).decode().split() == ["k8s_gpu_rl"]
    assert not GENERIC & tops


def test_wheel_carries_what_the_code_reads_at_run_time(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    needed = {
        "k8s_gpu_rl/envs/sim/kernel.c",
        "k8s_gpu_rl/envs/sim/clusters/rtx3080.yaml",
        "k8s_gpu_rl/envs/sim/clusters/local.yaml",
        "k8s_gpu_rl/agents/ppo.yaml",
        "k8s_gpu_rl/agents/levers/combined.yaml",
        "k8s_gpu_rl/loadprofiles/mixed.yaml",
        "k8s_gpu_rl/loadprofiles/locustfile.py",
        "k8s_gpu_rl/testing/fake_kube_api/__init__.py",
        "k8s_gpu_rl/sweep/data/pod.yaml.j2",
        "k8s_gpu_rl/envs/jobs/queues/memory-heavy.yaml",
        "k8s_gpu_rl/envs/jobs/queues/normal.csv",
        "k8s_gpu_rl/envs/jobs/sim/worlds/user-sites.yaml",
        "k8s_gpu_rl/sweep/data/configurations.yaml",
        "k8s_gpu_rl/loadprofiles/heldout/azure_functions_2019_per_minute.csv",
    }
    assert needed <= names, needed - names
    assert not [n for n in names if n.endswith(".so")], "no compiled kernel in the wheel"


def test_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    ep = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    text = wheel.read(ep).decode()
    assert "[console_scripts]" in text
    assert "k8s-gpu-rl = k8s_gpu_rl.cli:main" in text


def test_gymnasium_make_with_module_prefix_from_another_directory(tmp_path: Path) -> None:
    code = (
        "import gymnasium as gym, numpy as np\n"
        "e = gym.make('k8s_gpu_rl:K8sGpu-v0', profile='low')\n"
        "o, _ = e.reset(seed=0)\n"
        "o2, r, term, trunc, info = e.step(e.action_space.sample())\n"
        "assert o.shape == e.observation_space.shape and np.isfinite(r)\n"
        "import k8s_gpu_rl; print(k8s_gpu_rl.__file__)\n"
    )
    out = _run([sys.executable, "-c", code], cwd=tmp_path, env=_outside_env())
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).parent == REPO / "k8s_gpu_rl"


def test_importing_the_env_module_registers_the_env(tmp_path: Path) -> None:
    code = (
        "import k8s_gpu_rl.envs.k8s_gpu_env\n"
        "from gymnasium.envs.registration import registry\n"
        "assert registry['K8sGpu-v0'].entry_point == 'k8s_gpu_rl.envs.k8s_gpu_env:K8sGpuEnv'\n"
    )
    out = _run([sys.executable, "-c", code], cwd=tmp_path, env=_outside_env())
    assert out.returncode == 0, out.stderr


def _console_script() -> str:
    found = shutil.which("k8s-gpu-rl", path=str(Path(sys.executable).parent))
    assert found, "the k8s-gpu-rl console script is not installed beside this Python"
    return found


@pytest.mark.parametrize(
    ("command", "option"), [("train", "--timesteps"), ("evaluate", "--repeats")]
)
def test_console_script_subcommands_from_another_directory(
    tmp_path: Path, command: str, option: str
) -> None:
    out = _run([_console_script(), command, "--help"], cwd=tmp_path, env=_outside_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: k8s-gpu-rl {command}")
    assert option in out.stdout


def test_console_script_unknown_command_names_the_allowed_ones(tmp_path: Path) -> None:
    out = _run([_console_script(), "trian"], cwd=tmp_path, env=_outside_env())
    assert out.returncode == 2
    assert "error: unknown command 'trian' (did you mean 'train'?)" in out.stderr
    assert "Traceback" not in out.stderr


def test_module_entry_points_in_the_repo_root_beside_another_evaluate(tmp_path: Path) -> None:
    """A package named ``evaluate`` earlier on the path (as Hugging Face's would be) neither
    hides ours in the repository root nor is hidden by ours elsewhere."""
    other = tmp_path / "site" / "evaluate"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("WHO = 'the other evaluate'\n")
    env = _outside_env(PYTHONPATH=str(tmp_path / "site"))
    ours = _run([sys.executable, "-m", "evaluate", "--help"], cwd=REPO, env=env)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.startswith("usage: python -m evaluate")
    theirs = _run(
        [sys.executable, "-c", "import evaluate, k8s_gpu_rl.evaluation.cli; print(evaluate.WHO)"],
        cwd=tmp_path,
        env=env,
    )
    assert theirs.returncode == 0, theirs.stderr
    assert theirs.stdout.strip() == "the other evaluate"


def _build_kernel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    code = "from k8s_gpu_rl.envs.sim import kernel; print(kernel.library()._name)"
    return _run([sys.executable, "-c", code], cwd=tmp_path, env=_outside_env(**env))


def test_kernel_is_compiled_into_the_xdg_cache(tmp_path: Path) -> None:
    out = _build_kernel(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert out.returncode == 0, out.stderr
    built = Path(out.stdout.strip())
    assert built.parent == tmp_path / "xdg" / "k8s-gpu-rl"
    assert built.name.startswith("libsimkernel-") and built.is_file()


def test_k8sgpurl_cache_wins_over_xdg(tmp_path: Path) -> None:
    out = _build_kernel(
        tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"), K8SGPURL_CACHE=str(tmp_path / "mine")
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).parent == tmp_path / "mine"
    assert not (tmp_path / "xdg").exists()


def test_missing_compiler_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = _build_kernel(
        tmp_path, K8SGPURL_CACHE=str(tmp_path / "cache"), PATH=str(empty), CC="no-such-cc"
    )
    assert out.returncode != 0
    assert "needs a C compiler and none was found (tried $CC, cc, gcc, clang)" in out.stderr


def test_lint_passes_including_the_one_import_root_rule() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a dev dependency"
    out = _run([ruff, "check", "--no-cache", "."], cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    probe = "import envs.sim\nfrom evaluate import main\n"
    banned = subprocess.run(
        [ruff, "check", "--no-cache", "--select", "TID251", "--stdin-filename", "tests/x.py", "-"],
        cwd=REPO,
        input=probe,
        capture_output=True,
        text=True,
    )
    assert banned.returncode == 1
    assert banned.stdout.count("TID251") == 2

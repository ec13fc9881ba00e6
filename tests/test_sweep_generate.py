"""``python -m sweep generate``: configurations, the Jinja2 template, schema-valid Pods."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from k8s_gpu_rl.errors import ConfigError
from k8s_gpu_rl.sweep.cli import main
from k8s_gpu_rl.sweep.configs import load_configurations, memory_bytes

K8S_VERSIONS = ("1.30.0", "1.33.0")  # as tests/test_manifests.py
# The user's nine (SEEDS.md A): cpu, memory, GPU fraction, GPU memory MiB
USER_NINE = {
    "low-resource": (1, "1Gi", 0.25, 6000),
    "medium-resource-1": (2, "2Gi", 0.5, 12000),
    "medium-resource-2": (4, "4Gi", 0.5, 12000),
    "high-resource-1": (8, "8Gi", 1.0, 24000),
    "high-resource-2": (16, "16Gi", 1.0, 24000),
    "cpu-constrained": (1, "8Gi", 1.0, 24000),
    "memory-constrained": (8, "1Gi", 1.0, 24000),
    "gpu-memory-constrained": (8, "8Gi", 1.0, 6000),
    "gpu-fraction-constrained": (8, "8Gi", 0.25, 24000),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    code = main(["generate", "--out", str(out), "--annotation", "hami.io/resource-pool=poc"])
    assert code == 0
    return out


def _pods(out: Path) -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in (out / "manifests").glob("*.yaml")}


def test_shipped_configurations_are_the_users_nine() -> None:
    configs = {c.name: c for c in load_configurations()}
    assert set(configs) == set(USER_NINE)
    for name, (cpu, mem, frac, gpumem) in USER_NINE.items():
        c = configs[name]
        assert (c.cpu_cores, c.memory, c.gpucores, c.gpumem_mib) == (cpu, mem, frac * 100, gpumem)


def test_generate_writes_36_schema_valid_pods(generated: Path) -> None:
    pods = _pods(generated)
    assert len(pods) == 36  # 9 configurations x 4 tasks
    for doc in pods.values():
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    manifest = json.loads((generated / "experiment_manifest.json").read_text())
    assert len(manifest["experiments"]) == 36
    assert {e["task"] for e in manifest["experiments"]} == {
        "mobilenetv4", "super-resolution", "captioning", "detection"
    }  # fmt: skip


def test_pods_use_hami_names_and_map_the_fraction_to_gpucores(generated: Path) -> None:
    pod = _pods(generated)["sweep-captioning-low-resource"]
    c = pod["spec"]["containers"][0]
    # nvidia.com/gpu counts physical GPUs: 1; the 0.25 share is gpucores 25
    assert c["resources"]["limits"] == {
        "cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1",
        "nvidia.com/gpucores": "25", "nvidia.com/gpumem": "6000",
    }  # fmt: skip
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert pod["spec"]["schedulerName"] == "hami-scheduler"
    assert pod["metadata"]["annotations"] == {"hami.io/resource-pool": "poc"}
    assert pod["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"HF_HUB_OFFLINE": "1", "GPU_CORE_UTILIZATION_POLICY": "force"}
    text = (generated / "manifests" / "sweep-captioning-low-resource.yaml").read_text()
    assert "nvidia.com/gpucores: 25" in text.splitlines()[1]  # the header says so


def test_the_schema_check_catches_a_bad_template(tmp_path: Path, generated: Path) -> None:
    template = (Path(__file__).parents[1] / "k8s_gpu_rl/sweep/data/pod.yaml.j2").read_text()
    bad = tmp_path / "bad.yaml.j2"
    bad.write_text(template.replace("restartPolicy: Never", "restartPolicy: Never\n  replicas: 1"))
    out = tmp_path / "out"
    assert main(["generate", "--out", str(out), "--template", str(bad), "--tasks", "mobilenetv4",
                 "--configs", "low-resource"]) == 0  # fmt: skip
    (doc,) = _pods(out).values()
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


def test_gpu_fraction_is_accepted_and_mapped(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"name": "half", "cpu_cores": 2, "memory": "512Mi",
                                 "gpu_fraction": 0.5, "gpumem_mib": 3000}]))  # fmt: skip
    (c,) = load_configurations(path)
    assert (c.gpucores, c.memory_bytes, c.gpu_ratio) == (50, 512 * 2**20, 0.5)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "bad", "cpu_cores": 1, "memory": "1Gi", "gpucores": 150, "gpumem_mib": 1},
         r"configuration 1 \('bad'\): gpucores must be in 1\.\.100, got 150"),
        ({"name": "bad", "cpu_core": 1, "memory": "1Gi", "gpucores": 10, "gpumem_mib": 1},
         r"configuration 1 \('bad'\): unknown field 'cpu_core' \(did you mean 'cpu_cores'\?\)"),
        ({"name": "bad", "cpu_cores": 1, "memory": "lots", "gpucores": 10, "gpumem_mib": 1},
         r"configuration 1 \('bad'\): not a memory quantity: 'lots'"),
        ({"name": "bad", "cpu_cores": 1, "memory": "1Gi", "gpumem_mib": 1},
         r"configuration 1 \('bad'\): give exactly one of gpucores"),
        ({"name": "bad", "cpu_cores": 1, "memory": "1Gi", "gpu_fraction": 2, "gpumem_mib": 1},
         r"configuration 1 \('bad'\)\.gpu_fraction: must be in \(0, 1\]"),
    ],
)  # fmt: skip
def test_a_malformed_entry_names_the_entry_and_field(
    tmp_path: Path, entry: dict, message: str
) -> None:
    good = {"name": "ok", "cpu_cores": 1, "memory": "1Gi", "gpucores": 10, "gpumem_mib": 100}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"configurations": [good, entry]}))
    with pytest.raises(ConfigError, match=message):
        load_configurations(path)


def test_cli_reports_a_users_mistake_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- {name: Bad_Name, cpu_cores: 1, memory: 1Gi, gpucores: 5, gpumem_mib: 9}\n")
    assert main(["generate", "--out", str(tmp_path), "--configurations", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "configuration 0 ('Bad_Name')" in err
    assert main(["generate", "--out", str(tmp_path), "--tasks", "captionng"]) == 2
    assert "did you mean 'captioning'?" in capsys.readouterr().err


def test_memory_quantities() -> None:
    assert memory_bytes("1Gi") == 2**30
    assert memory_bytes("1.5Gi") == 3 * 2**29
    assert memory_bytes("500M") == 500_000_000
    assert memory_bytes(1024) == 1024

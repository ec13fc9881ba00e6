"""Test doubles that ship with the package: :mod:`k8s_gpu_rl.testing.fake_kube_api`, an
HTTP-level fake Kubernetes API server that the unmodified ``kubernetes`` client talks to
(used by the tests, by ``scripts/benchmark_control_overhead.py`` and by anyone who wants
to try the live backend without a cluster)."""

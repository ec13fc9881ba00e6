"""The resource-constraint sweep: profile a model under CPU, memory, vGPU-core and
vGPU-memory limits, analyse it, and fit the simulator's serving model to it.

``python -m sweep generate|run|analyze|fit`` (:mod:`k8s_gpu_rl.sweep.cli`). A sweep
directory holds what each step wrote: ``manifests/``, ``experiment_manifest.json``,
``experiment_results.csv``, ``experiment_analysis.csv``, ``experiment_summary.json``,
``optimal_configurations.json``, ``plots/`` and ``fit/<task>.yaml``.
"""

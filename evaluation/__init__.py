"""Evaluation of autoscaling policies: rollouts, KPI statistics, plots and the report.

``python -m evaluate`` (the thin CLI in ``evaluate.py``) drives :mod:`k8s_gpu_rl.evaluation.runner`:

* :mod:`k8s_gpu_rl.evaluation.rollout` — one episode of a policy on a K8sGpuEnv, as a per-step
  time series and the episode's KPIs;
* :mod:`k8s_gpu_rl.evaluation.stats` — mean with a Student-t confidence interval, Welch's t-test,
  Hedges' g;
* :mod:`k8s_gpu_rl.evaluation.aggregate` — the summary and comparison tables;
* :mod:`k8s_gpu_rl.evaluation.plots`, :mod:`k8s_gpu_rl.evaluation.report` — PNG figures, ``report.md`` and the
  terminal table;
* :mod:`k8s_gpu_rl.evaluation.io` — atomic file writes.
"""

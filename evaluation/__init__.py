"""Evaluation of autoscaling policies: rollouts, KPI statistics, plots and the report.

``python -m evaluate`` (the thin CLI in ``evaluate.py``) drives :mod:`evaluation.runner`:

* :mod:`evaluation.rollout` — one episode of a policy on a K8sGpuEnv, as a per-step
  time series and the episode's KPIs;
* :mod:`evaluation.stats` — mean with a Student-t confidence interval, Welch's t-test,
  Hedges' g;
* :mod:`evaluation.aggregate` — the summary and comparison tables;
* :mod:`evaluation.plots`, :mod:`evaluation.report` — PNG figures, ``report.md`` and the
  terminal table;
* :mod:`evaluation.io` — atomic file writes.
"""

"""Multi-cluster GPU job scheduling: the simulator (``sim/``), ``GpuJobScheduling-v0``
(``env.py``), run-time predictors (``predictor.py``), the live submitter (``live/``) and the
shipped queues (``queues/``)."""

ENV_ID = "GpuJobScheduling-v0"

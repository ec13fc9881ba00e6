"""Triton's per-model metrics, rendered as Triton's ``/metrics`` endpoint renders them, plus
the process and compute-share metrics (prometheus_client)."""

from __future__ import annotations

import threading

_TRITON_COUNTERS = (
    ("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
    ("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
    ("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
    (
        "nv_inference_exec_count",
        "Number of model executions performed (does not include cached requests)",
    ),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds (includes cached requests)",
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
    ),
    (
        "nv_inference_compute_input_duration_us",
        "Cumulative compute input duration in microseconds (does not include cached requests)",
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds (does not include cached requests)",
    ),
    (
        "nv_inference_compute_output_duration_us",
        "Cumulative inference compute output duration in microseconds (does not include cached "
        "requests)",
    ),
)
FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")
"""Triton core ``MetricModelReporter::failure_reasons_map``."""


class TritonMetrics:
    """Triton's per-model metrics, rendered exactly as Triton's ``/metrics`` does (no
    ``_total`` suffix), plus the process and compute-share metrics via prometheus_client."""

    def __init__(self, model: str, version: str, share: float) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

        self.model = model
        self.version = version
        self._lock = threading.Lock()
        self._values: dict[str, float] = {name: 0.0 for name, _ in _TRITON_COUNTERS}
        self._failures: dict[str, float] = dict.fromkeys(FAILURE_REASONS, 0.0)
        self.pending = 0
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        # No pod label here: Prometheus adds the target's own (a second would turn into
        # exported_pod); the pod name is only in the server's log lines.
        self.busy = Counter(
            "k8sgpurl_compute_busy_seconds",
            "Wall-clock seconds the inference engine was executing a batch (device busy time)",
            registry=self.registry,
        )
        self.throttled = Counter(
            "k8sgpurl_compute_throttled_seconds",
            "Seconds executions were held back by the gpucores limiter",
            registry=self.registry,
        )
        Gauge(
            "k8sgpurl_compute_share",
            "Configured compute share (gpucores / 100)",
            registry=self.registry,
        ).set(share)

    def add(self, **values: float) -> None:
        """Add to Triton counters by name (``nv_inference_count=3``, ...)."""
        with self._lock:
            for key, value in values.items():
                self._values[key] += value

    def fail(self, reason: str, n: int = 1) -> None:
        """Count ``n`` failed requests under one of :data:`FAILURE_REASONS`."""
        with self._lock:
            self._failures[reason] += n

    def set_pending(self, delta: int) -> None:
        """Move ``nv_inference_pending_request_count`` by ``delta``."""
        with self._lock:
            self.pending += delta

    def value(self, name: str) -> float:
        """One Triton counter's current value."""
        with self._lock:
            return self._values[name]

    def render(self) -> bytes:
        """The ``/metrics`` body: Triton's families first, then prometheus_client's."""
        from prometheus_client import generate_latest

        with self._lock:
            lines = [*self._counter_lines(), *self._pending_lines()]
        return ("\n".join(lines) + "\n").encode() + generate_latest(self.registry)

    def _counter_lines(self) -> list[str]:
        """Triton's counters (whole numbers, as Triton's microsecond counters are)."""
        lab = f'model="{self.model}",version="{self.version}"'
        lines: list[str] = []
        for name, help_text in _TRITON_COUNTERS:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            if name == "nv_inference_request_failure":
                for reason in FAILURE_REASONS:
                    lines.append(
                        f'{name}{{model="{self.model}",reason="{reason}",'
                        f'version="{self.version}"}} {int(self._failures[reason])}'
                    )
            else:
                lines.append(f"{name}{{{lab}}} {int(self._values[name])}")
        return lines

    def _pending_lines(self) -> list[str]:
        name = "nv_inference_pending_request_count"
        return [
            f"# HELP {name} Instantaneous number of pending requests awaiting execution per-model.",
            f"# TYPE {name} gauge",
            f'{name}{{model="{self.model}",version="{self.version}"}} {self.pending}',
        ]

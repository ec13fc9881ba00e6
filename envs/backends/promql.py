"""Instant PromQL queries against a real Prometheus, for the live backends.

One client for both the ``local`` testbed's Prometheus and the cluster's
(kube-prometheus-stack): ``prometheus-api-client`` over ``/api/v1/query``, with a timeout
and no client-side retries (a failed query is an error the caller handles: the k8s
backend marks its observation stale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import requests

from k8s_gpu_rl.errors import BackendError

Sample = tuple[Mapping[str, str], float]
"""One series of an instant query's result: its labels and value."""


class PrometheusClient:
    """Instant queries against the Prometheus at ``url``."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._prom = PrometheusConnect(
            self.url,
            disable_ssl=True,
            retry=Retry(total=0),
            session=self._session,
            timeout=timeout_s,
        )

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Evaluate an instant query (at unix time ``at``, default now).

        A vector gives one ``(labels, value)`` per series; a scalar gives
        ``[({}, value)]``. Raises :class:`BackendError` on a bad query, a range vector,
        or if Prometheus does not answer within the timeout.
        """
        from prometheus_api_client import PrometheusApiClientException

        params = {"time": f"{at:.3f}"} if at is not None else None
        try:
            result = self._prom.custom_query(promql, params=params)
        except (requests.RequestException, ValueError, PrometheusApiClientException) as exc:
            raise BackendError(
                f"Prometheus at {self.url}: query {promql!r} failed: {exc}"
            ) from None
        if result and not isinstance(result[0], dict):  # a scalar: [time, "value"]
            return [({}, float(result[1]))]
        if any("value" not in s for s in result):
            raise BackendError(f"query {promql!r} gave a range vector, not an instant one")
        return [(dict(s["metric"]), float(s["value"][1])) for s in result]

    def query_scalar(self, promql: str, at: float | None = None) -> float:
        """The single value of ``promql``; NaN for an empty result. Raises
        :class:`BackendError` if it has more than one series (aggregate with ``sum``)."""
        result = self.query(promql, at)
        if not result:
            return math.nan
        if len(result) > 1:
            raise BackendError(
                f"query {promql!r} gave {len(result)} series, expected one: "
                f"{[dict(labels) for labels, _ in result[:3]]}"
            )
        return result[0][1]

    def close(self) -> None:
        self._session.close()

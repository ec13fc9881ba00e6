"""The live HPA the ``k8s`` backend can install: an autoscaling/v2 object on the Deployment."""

from __future__ import annotations

from typing import Any

from k8s_gpu_rl.envs.backends.k8s.options import K8sOptions


def hpa_body(
    options: K8sOptions,
    target_pct: float,
    min_replicas: int,
    max_replicas: int,
    behavior: dict[str, Any] | None = None,
    with_behavior: bool = True,
) -> dict[str, Any]:
    """The autoscaling/v2 HPA object :meth:`K8sBackend.install_hpa` creates (CPU utilisation
    ``target_pct``; ``behavior``: :func:`hpa_behavior` when None; ``with_behavior`` False:
    no ``spec.behavior`` at all, as ``kubectl autoscale`` creates it)."""
    o = options
    key, value = o.label
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": f"{o.deployment}-k8sgpurl",
            "namespace": o.namespace,
            "labels": {key: value},
        },
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": o.deployment,
            },
            "minReplicas": int(min_replicas),
            "maxReplicas": int(max_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": int(round(target_pct)),
                        },
                    },
                }
            ],
            **(
                {"behavior": behavior if behavior is not None else hpa_behavior()}
                if with_behavior
                else {}
            ),
        },
    }


def hpa_behavior(scale_down_window_s: int | None = None) -> dict[str, Any]:
    """autoscaling/v2 ``spec.behavior`` with the API defaults written out
    (``k8s_gpu_rl.baselines.hpa_algorithm``), the scale-down window as given (None: 300 s)."""
    from k8s_gpu_rl.baselines.hpa_algorithm import HpaSpec, ScalingRules

    down = None if scale_down_window_s is None else ScalingRules(int(scale_down_window_s))
    spec = HpaSpec(max_replicas=1, scale_down=down)

    def rules(r: Any) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": int(r.stabilization_window_s),
            "selectPolicy": r.select_policy,
            "policies": [
                {"type": p.type, "value": int(p.value), "periodSeconds": int(p.period_s)}
                for p in r.policies
            ],
        }

    return {"scaleUp": rules(spec.scale_up_rules()), "scaleDown": rules(spec.scale_down_rules())}

"""Reactive vGPU-share rules on the request rate, the simple alternative to PPO on ``mixed``.

    python scripts/share_rules.py [--profile mixed] [--repeats 5] [--seed 1000]
                                  [--rps-per-user 1.3] [--cluster NAME]

Each rule keeps the Deployment's one replica and sets its ``gpucores`` from the request
rate the pods served over the last minute (the same per-pod ``rps`` the KPA baseline
reads): the lowest share while the rate is below the first threshold, the next share
above it, and so on. Thresholds are given in users and converted with ``--rps-per-user``
(the user's baseline: 10 users, about 13 requests/s). The rules of the README:

* ``40/50 @65``: 40 % below about 65 users, 50 % above;
* ``40/50 @125``: the same, switching at about 125 users;
* ``30/40/50 @20,65``: 30 % below about 20 users, 40 % to about 65, then 50 %;
* ``50 (static)``: one share only, the ``static`` baseline, as a check of the machinery
  against the README's results table.

Every rule replays the seeds ``python -m evaluate`` uses (``--seed`` + i, i < ``--repeats``)
through the evaluation's own rollout (``k8s_gpu_rl.evaluation.rollout.run_episode``) and
prints the mean and 95 % CI of vGPU-hours and the QoS-violation rate beside the figures
the README quotes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tqdm import tqdm  # noqa: E402

from k8s_gpu_rl.baselines.base import BaselinePolicy, Desired, roll_share_first  # noqa: E402
from k8s_gpu_rl.errors import ConfigError, K8sGpuRlError  # noqa: E402
from k8s_gpu_rl.evaluation.rollout import make_env, run_episode  # noqa: E402
from k8s_gpu_rl.evaluation.stats import MeanCI, mean_ci  # noqa: E402
from k8s_gpu_rl.loadprofiles import load_profile  # noqa: E402

RPS_PER_USER = 1.3
"""Requests/s per closed-loop user: 13 requests/s from 10 users (FACTS, the user's baseline)."""


@dataclass(frozen=True)
class Rule:
    """A share for each band of the request rate."""

    name: str
    """How the README names it."""
    shares: tuple[int, ...]
    """gpucores per band, lowest rate first."""
    users: tuple[float, ...]
    """Band edges in users (one fewer than ``shares``), increasing."""
    readme_vgpu_hours: float
    """What the README quotes for this rule on ``mixed``, vGPU-hours (printed for ``mixed``)."""
    readme_violation_pct: float
    """What the README quotes, % of requests over the SLO or failed."""


RULES = (
    Rule("50 (static)", (50,), (), 0.250, 0.0033),  # the reference: README's static row
    Rule("40/50 @65", (40, 50), (65.0,), 0.269, 0.0080),
    Rule("40/50 @125", (40, 50), (125.0,), 0.213, 0.0086),
    Rule("30/40/50 @20,65", (30, 40, 50), (20.0, 65.0), 0.272, 0.019),
)


class ShareRulePolicy(BaselinePolicy):
    """One replica; ``gpucores`` from the band the pods' summed request rate falls in."""

    name = "share-rule"

    def __init__(self, shares: tuple[int, ...], thresholds_rps: tuple[float, ...]) -> None:
        super().__init__()
        if len(shares) != len(thresholds_rps) + 1:
            raise ConfigError(f"{len(shares)} shares need {len(shares) - 1} thresholds")
        if list(thresholds_rps) != sorted(thresholds_rps):
            raise ConfigError(f"thresholds must increase, got {list(thresholds_rps)}")
        self.shares = shares
        self.thresholds_rps = thresholds_rps

    def bind(self, env: object) -> ShareRulePolicy:
        super().bind(env)
        missing = [s for s in self.shares if s not in self.config.share_levels]
        if missing:
            raise ConfigError(
                f"shares {missing} are not among the env's share_levels "
                f"{list(self.config.share_levels)}"
            )
        return self

    def request_rate(self) -> float:
        """Successful requests/s over the last window, summed over the pods that have one."""
        rates = [p.rps for p in self.backend.pod_metrics() if np.isfinite(p.rps)]
        return float(sum(rates))

    def decide(self, now_s: float) -> Desired:
        rate = self.request_rate()
        band = int(np.searchsorted(self.thresholds_rps, rate, side="right"))
        self.status = {"request_rate": rate}
        return roll_share_first(self.backend, Desired(1, self.shares[band]))

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "shares": self.shares, "thresholds_rps": self.thresholds_rps}


def run_rule(
    rule: Rule, profile: str, seeds: list[int], rps_per_user: float, cluster: str | None, bar: tqdm
) -> tuple[MeanCI, MeanCI]:
    """vGPU-hours and violation rate (%) of ``rule`` over ``seeds``."""
    vgpu, violations = [], []
    for seed in seeds:
        env = make_env(profile, cluster=cluster)
        policy = ShareRulePolicy(rule.shares, tuple(u * rps_per_user for u in rule.users))
        kpis = run_episode(env, policy.bind(env), seed).kpis
        vgpu.append(kpis["vgpu_hours"])
        violations.append(100.0 * kpis["qos_violation_rate"])
        bar.update()
    return mean_ci(vgpu), mean_ci(violations)


def print_table(profile: str, seeds: list[int], rows: list[tuple[Rule, MeanCI, MeanCI]]) -> None:
    table = Table(title=f"share rules on {profile}, seeds {seeds[0]}-{seeds[-1]} (mean ± 95 % CI)")
    for col in ("rule", "vGPU-h", "README", "QoS violations %", "README %"):
        table.add_column(col, justify="right")
    quoted = profile == "mixed"  # the README quotes mixed only
    for rule, vgpu, viol in rows:
        table.add_row(
            rule.name,
            f"{vgpu.mean:.3f} ± {vgpu.half_width:.3f}",
            f"{rule.readme_vgpu_hours:.3f}" if quoted else "-",
            f"{viol.mean:.4f} ± {viol.half_width:.4f}",
            f"{rule.readme_violation_pct:.4f}" if quoted else "-",
        )
    Console().print(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="share_rules.py", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="mixed", help="load profile (name or YAML path)")
    p.add_argument("--repeats", type=int, default=5, help="runs per rule")
    p.add_argument("--seed", type=int, default=1000, help="seed of the first run")
    p.add_argument("--rps-per-user", type=float, default=RPS_PER_USER)
    p.add_argument("--cluster", default=None, help="cluster config name or YAML (default rtx3080)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.repeats < 1:
            raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
        if args.rps_per_user <= 0:
            raise ConfigError(f"--rps-per-user must be positive, got {args.rps_per_user}")
        load_profile(args.profile)
        seeds = [args.seed + i for i in range(args.repeats)]
        rows = []
        with tqdm(total=len(RULES) * len(seeds), desc="share rules", unit="run") as bar:
            for rule in RULES:
                rows.append((rule, *run_rule(rule, args.profile, seeds, args.rps_per_user,
                                             args.cluster, bar)))  # fmt: skip
    except K8sGpuRlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(args.profile, seeds, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

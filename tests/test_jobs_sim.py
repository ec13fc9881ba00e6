"""The job-scheduling simulator on its own (no Gymnasium): transfers, OOM and back-off,
sharing, deadlock, lagging samples, reservations, HAMi's fit rule, the replay format.

Expected values are computed by hand from the documented model (envs/jobs/sim/truth.py,
config.py): noise is switched off so each time is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from k8s_gpu_rl.envs.jobs.sim.config import (
    JobClusterConfig,
    JobNodeConfig,
    LinkConfig,
    WorldConfig,
    load_world,
)
from k8s_gpu_rl.envs.jobs.sim.fitmask import fits_matrix, ledger_arrays
from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec, load_queue, save_queue
from k8s_gpu_rl.envs.jobs.sim.state import Phase
from k8s_gpu_rl.envs.jobs.sim.truth import TruthConfig
from k8s_gpu_rl.envs.jobs.sim.world import Placement, PlacementError, World
from k8s_gpu_rl.envs.sim.config import HamiConfig
from k8s_gpu_rl.envs.sim.hami import GpuSlot, fits
from k8s_gpu_rl.errors import ConfigError

EXACT = TruthConfig(runtime_sigma=0.0, memory_sigma=0.0, attempt_memory_sigma=0.0)
GIB_S = 8 * 1.073741824  # seconds per GiB at 1 Gbit/s


def world(
    gpus: int = 2, gpu_type: str = "Tesla V100-SXM2-32GB", scaling: float = 1.0, **kw
) -> WorldConfig:
    node = JobNodeConfig("n1", gpu_type, gpus, 32.0)
    cluster = JobClusterConfig(
        "c", (node,), LinkConfig(1.0, 0.02), HamiConfig(device_memory_scaling=scaling)
    )
    return WorldConfig(clusters=(cluster,), truth=EXACT, **kw)


def job(
    i: int = 0,
    model: str = "resnet50",
    mem: int = 9000,
    gpus: int = 1,
    cores: int = 0,
    t: float = 0.0,
    data: float = 10.0,
    epoch: int = 10,
) -> JobSpec:
    return JobSpec(f"j{i}", t, model, data, epoch, gpus, mem, cores)


def test_a_lone_job_pays_transfer_load_and_its_run_time() -> None:
    w = World(world(), [job()], seed=0)
    w.place(Placement(0, 0, (0,)))
    # resnet50: image 6 GiB + weights 0.1 GiB + data 10 GiB over 1 Gbit/s, 20 ms latency
    transfer = 0.02 + 16.1 * GIB_S
    # 10 epochs x 10 GiB x 10,000 samples x 3 x 4.1 GFLOP / 30 TFLOPS on the V100
    run = 10 * 10 * 10_000 * 3 * 4.1 / 30_000
    w.advance_to(1e6)
    j = w.jobs[0]
    assert j.phase == Phase.DONE
    assert j.end_s == pytest.approx(transfer + 30.0 + run)
    assert j.transfer_s == pytest.approx(transfer)


def test_the_cache_spares_a_second_transfer_of_image_and_weights() -> None:
    w = World(world(), [job(0), job(1)], seed=0)
    w.place(Placement(0, 0, (0,)))
    w.place(Placement(1, 0, (1,)))
    assert w.jobs[0].transfer_s == pytest.approx(0.02 + 16.1 * GIB_S)
    assert w.jobs[1].transfer_s == pytest.approx(0.02 + 10.0 * GIB_S)  # the data only


def test_a_limit_below_the_need_is_oom_then_kubernetes_backoff() -> None:
    # resnet50 needs 7800 MiB on a V100; asking 7000 dies at load (HAMi-core enforces it)
    w = World(world(backoff_limit=1), [job(mem=7000, data=0.1)], seed=0)
    w.place(Placement(0, 0, (0,)))
    transfer = 0.02 + 6.2 * GIB_S
    w.advance_to(transfer + 30.0 + 1e-6)
    j = w.jobs[0]
    assert (j.phase, w.oom_failures, j.failures) == (Phase.BACKOFF, 1, 1)
    assert w.slots[0][0].used_tasks == 0  # released
    w.advance_to(transfer + 30.0 + 10.0 + 1e-6)  # first retry after 10 s
    assert j.phase == Phase.WAITING
    w.place(Placement(0, 0, (0,)))
    w.advance_to(1e5)
    assert (j.phase, w.oom_failures) == (
        Phase.FAILED,
        2,
    )  # backoff_limit 1: the 2nd failure ends it


def test_oversubscribed_card_overflows_for_the_job_that_allocates_last() -> None:
    # RTX 3080 10 GiB registered twice over; resnet50 needs 7800 x 1.02 = 7956 MiB each
    w = World(world(1, "NVIDIA GeForce RTX 3080", scaling=2.0), [job(0), job(1)], seed=0)
    w.place(Placement(0, 0, (0,)))
    w.place(Placement(1, 0, (0,)))  # the ledger (18000 of 20480) allows it
    # job 1 finds image and weights cached, so it loads first; job 0 allocates last
    w.advance_to(300.0)
    assert w.jobs[1].phase == Phase.RUNNING
    assert [s[-1] for s in w.jobs[0].segments] == ["oom"]
    assert w.oom_failures == 1


def test_two_jobs_at_half_the_cores_each_run_at_half_speed() -> None:
    alone = World(world(), [job(cores=50)], seed=0)
    alone.place(Placement(0, 0, (0,)))
    alone.advance_to(1e6)
    shared = World(world(), [job(0, cores=50), job(1, cores=50)], seed=0)
    shared.place(Placement(0, 0, (0,)))
    shared.place(Placement(1, 0, (0,)))
    shared.advance_to(1e6)
    run = 410.0
    assert alone.jobs[0].end_s - alone.jobs[0].start_s == pytest.approx(run)
    # job 1 (data only to move) starts first and runs alone for `ahead` seconds; then
    # both run at half speed until job 1 is done; job 0 then finishes alone at full speed
    first, second = shared.jobs[1], shared.jobs[0]
    ahead = second.start_s - first.start_s
    assert ahead > 0
    assert first.end_s == pytest.approx(second.start_s + 2 * (run - ahead))
    assert second.end_s == pytest.approx(first.end_s + ahead)


def test_jobs_holding_gpus_for_each_other_deadlock() -> None:
    w = World(world(2), [job(0, gpus=2, mem=20000), job(1, gpus=2, mem=20000)], seed=0)
    w.place(Placement(0, 0, (0,)))
    assert not w.deadlocked  # job 1 could still take GPU 1 ... and does:
    w.place(Placement(1, 0, (1,)))
    assert w.deadlocked and w.finished()
    assert w.deadlock_s == 0.0


def test_a_job_that_can_never_fit_deadlocks_an_idle_world() -> None:
    w = World(world(2), [job(0, gpus=3)], seed=0)
    assert w.deadlocked  # three workers, two GPUs, nothing running


def test_no_deadlock_while_a_waiting_job_could_complete() -> None:
    w = World(world(2), [job(0, gpus=2, mem=20000), job(1, mem=4000)], seed=0)
    w.place(Placement(0, 0, (0,)))
    w.advance_to(5.0)
    assert not w.deadlocked  # GPU 1 fits job 0's second worker


def test_prometheus_shows_memory_only_from_the_next_scrape() -> None:
    w = World(world(), [job(data=0.1, epoch=500)], seed=0)  # runs 205 s
    w.place(Placement(0, 0, (0,)))
    loaded = 0.02 + 6.2 * GIB_S + 30.0  # about 83 s: memory allocated then
    assert 60.0 < loaded < 120.0
    w.advance_to(119.0)
    assert w.true_used[0][0] == pytest.approx(7800.0)
    assert w.prom.used_mib[0][0] == 0.0  # the 60 s scrape saw an empty card
    w.advance_to(120.0)
    assert w.prom.used_mib[0][0] == pytest.approx(7800.0)


def test_a_hungry_job_gets_a_reservation_and_a_violation_is_counted() -> None:
    cfg = world(2)
    jobs = [
        job(0, mem=9000, data=50.0, epoch=50),
        job(1, gpus=2, mem=20000, t=1.0),
        job(2, mem=9000, t=2.0),
    ]
    w = World(cfg, jobs, seed=0)
    w.place(Placement(0, 0, (0,)))
    w.advance_to(cfg.reservation.after_s + 10.0)
    assert sorted(g for g, o in enumerate(w.reserved[0]) if o == 1) == [0, 1]
    w.place(Placement(2, 0, (1,)))
    assert w.reservation_violations == 1


def test_placement_errors_name_the_problem() -> None:
    w = World(world(2), [job(0, gpus=2, mem=40000)], seed=0)
    with pytest.raises(PlacementError, match="do not fit"):
        w.place(Placement(0, 0, (0,)))
    with pytest.raises(PlacementError, match="distinct GPUs"):
        w.place(Placement(0, 0, (1, 1)))


def test_vectorised_fit_agrees_with_hami_fits() -> None:
    rng = np.random.default_rng(3)
    w = World(load_world(), [], seed=0)
    for _ in range(200):
        for row in w.slots:
            for g, s in enumerate(row):
                row[g] = GpuSlot(
                    s.index,
                    s.node,
                    s.memory_mib,
                    s.cores,
                    s.split_count,
                    True,
                    int(rng.integers(0, 3)),
                    float(rng.uniform(0, s.memory_mib)),
                    float(rng.choice([0, 50, 100])),
                )
        w.changes += 1  # the ledger was written behind World's back: drop its caches
        mem = rng.choice([0.0, 4000.0, 20000.0], size=4)
        cores = rng.choice([0.0, 50.0, 100.0], size=4)
        got = fits_matrix(ledger_arrays(w), mem, cores)
        want = np.array(
            [
                [fits(s, m, c) for row in w.slots for s in row]
                for m, c in zip(mem, cores, strict=True)
            ]
        )
        assert (got == want).all()


@pytest.mark.parametrize("suffix", [".csv", ".yaml"])
def test_queue_replay_round_trips(tmp_path, suffix: str) -> None:
    jobs = load_queue("small")
    save_queue(jobs, tmp_path / f"q{suffix}")
    assert load_queue(tmp_path / f"q{suffix}") == jobs


def test_shipped_queues_have_the_sizes_the_issue_names() -> None:
    assert len(load_queue("small")) == 40
    assert len(load_queue("normal")) == 100
    assert len(load_queue("memory-heavy")) >= 40


def test_bad_queue_values_are_config_errors(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "job_id,arrival_s,model_name,data_size,epoch,gpus,gpumem_mib,gpucores,colour\nj,0,resnet50,1,1,1,1,0,red\n"
    )
    with pytest.raises(ConfigError, match="unknown column"):
        load_queue(bad)
    with pytest.raises(ConfigError, match="did you mean 'resnet50'"):
        JobSpec("j", 0.0, "resnet5O", 1.0, 1)
    with pytest.raises(ConfigError, match="did you mean 'memory-heavy'"):
        load_queue("memory-hevy")
    assert math.isfinite(load_world().max_time_s)

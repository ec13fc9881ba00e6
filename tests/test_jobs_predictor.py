"""Run-time predictors: cross-validation sanity against what the ground truth allows.

The truth's run-time noise is log-normal with sigma 0.12, so no predictor can have a MAPE
below E|exp(0.12 Z) - 1| ~= 0.12 sqrt(2/pi) = 9.6 % on average (a lower MAPE would mean
the test rows leaked into training); a good one on families it was trained on should be
within a few points of that floor, and worse on families it never saw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from k8s_gpu_rl.envs.jobs.predictor import (
    JobPredictor,
    cross_validate,
    generate_history,
    make_regressor,
)
from k8s_gpu_rl.envs.jobs.sim.truth import TruthConfig
from k8s_gpu_rl.errors import ConfigError

FLOOR = 100 * 0.12 * math.sqrt(2 / math.pi)


@pytest.fixture(scope="module")
def history():
    return generate_history(900, np.random.default_rng(0))


def test_random_forest_is_near_the_noise_floor_on_seen_families(history) -> None:
    cv = cross_validate(history, "random-forest", folds=3)
    seen = cv[cv["split"] == "seen"]
    mean_mape = float((seen["mape_pct"] * seen["runs"]).sum() / seen["runs"].sum())
    assert FLOOR * 0.8 < mean_mape < FLOOR + 12.0
    assert float(seen["r2"].median()) > 0.8
    held = cv[cv["split"] == "held-out"]
    assert float(held["mape_pct"].mean()) > mean_mape  # unseen families are harder


def test_noise_free_history_of_one_family_is_learnt_exactly_by_the_linear_model() -> None:
    exact = TruthConfig(runtime_sigma=0.0, memory_sigma=0.0)
    h = generate_history(400, np.random.default_rng(1), ["resnet50", "resnet101"], exact)
    cv = cross_validate(h, "linear", folds=3)
    # resnet's speed is the resnet50 benchmark ratio and n GPUs run n ** 0.9 times as fast,
    # so log(run time / work) = const - log(bench_resnet50) - 0.9 log(gpus): linear
    assert float(cv[cv["split"] == "seen"]["mape_pct"].max()) < 0.5


def test_saved_predictor_predicts_the_same(tmp_path, history) -> None:
    p = JobPredictor("random-forest").fit(history)
    p.save(tmp_path / "p.pkl")
    q = JobPredictor.load(tmp_path / "p.pkl")
    rows = np.array([[0.0] * 11])
    rows[0, 6] = 10.0
    assert np.array_equal(p.predict_rows(rows)[0], q.predict_rows(rows)[0])
    assert q.knows("resnet50") and not q.knows("no-such-model")


def test_unknown_kind_and_bad_file_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'linear'"):
        make_regressor("lineer", 0)
    (tmp_path / "x.pkl").write_bytes(b"not a pickle of a predictor")
    with pytest.raises(ConfigError, match="cannot read"):
        JobPredictor.load(tmp_path / "missing.pkl")
    with pytest.raises(ConfigError, match="not a saved JobPredictor"):
        JobPredictor.load(tmp_path / "x.pkl")

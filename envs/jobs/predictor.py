"""Run-time and GPU-memory predictors from job annotations and per-server benchmarks.

The user's controller estimates a job's run time on a given card with a random forest
(``../shared/SEEDS.md`` B, steps 6-7) from the job's annotations (``model_name``,
``data_size``, ``epoch``) and the servers' benchmark figures (resnet50, yolov8m, llama3).
Here the same is trained on a generated history of runs (the ground truth of
:mod:`~k8s_gpu_rl.envs.jobs.sim.truth` with its noise) and compared by cross-validation
with gradient boosting (LightGBM) and a linear model on log features:

* :func:`generate_history` - past runs: model, GPU type, annotations, observed run time
  and peak memory;
* :class:`JobPredictor` - one regressor for log run time, one for log memory;
  ``kind`` is ``random-forest``, ``gradient-boosting`` or ``linear``;
* :func:`cross_validate` - MAPE and R^2 per model family, with shuffled K-fold (families
  seen in training) and leave-one-family-out (the family held out).

A model the predictor has never seen (:meth:`JobPredictor.knows`) gets an exclusive GPU
on its first run in the ``optimal-allocation`` policy (the user's rule).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from k8s_gpu_rl.envs.jobs.sim.jobs import JobSpec
from k8s_gpu_rl.envs.jobs.sim.truth import (
    FAMILIES,
    GPU_TYPES,
    MODELS,
    TruthConfig,
    mean_memory_mib,
    mean_runtime_s,
)
from k8s_gpu_rl.errors import ConfigError

Kind = Literal["random-forest", "gradient-boosting", "linear"]
KINDS: tuple[Kind, ...] = ("random-forest", "gradient-boosting", "linear")
FEATURES = (
    "log_params_m",
    "log_gflops",
    "modality",
    "log_data_size",
    "log_epoch",
    "log_gpus",
    "log_work",
    "log_bench_resnet50",
    "log_bench_yolov8m",
    "log_bench_llama3",
    "gpu_memory_gib",
)


WORK = FEATURES.index("log_work")
"""Run time is learnt per unit of work (epochs x GiB x GFLOPs): the regressors predict
log(run time) - log_work, i.e. the server's seconds per unit for this model."""


def feature_row(
    model_name: str, data_size: float, epoch: int, gpus: int, gpu_type: str
) -> list[float]:
    """The predictor's inputs: annotations, catalogue figures, the server's benchmarks."""
    m, g = MODELS[model_name], GPU_TYPES[gpu_type]
    return [
        math.log(m.params_m),
        math.log(m.gflops),
        float(FAMILIES[m.family].modality),
        math.log(data_size),
        math.log(epoch),
        math.log(gpus),
        math.log(data_size * epoch * m.gflops),
        math.log(g.bench_resnet50),
        math.log(g.bench_yolov8m),
        math.log(g.bench_llama3),
        g.memory_mib / 1024.0,
    ]


def generate_history(
    runs: int,
    rng: np.random.Generator,
    models: Sequence[str] | None = None,
    truth: TruthConfig | None = None,
) -> pd.DataFrame:
    """``runs`` past runs on random GPU types, with observed run time and peak memory."""
    truth = truth or TruthConfig()
    names = list(models or MODELS)
    types = list(GPU_TYPES)
    rows = []
    for _ in range(runs):
        model = MODELS[names[int(rng.integers(len(names)))]]
        gpu = GPU_TYPES[types[int(rng.integers(len(types)))]]
        gpus = int(rng.choice([1, 1, 1, 2, 4]))
        epoch = int(rng.choice([1, 2, 3, 5, 10, 20, 50, 100]))
        data = float(np.exp(rng.uniform(math.log(0.1), math.log(50.0))))
        z = rng.standard_normal(2)
        runtime = mean_runtime_s(model, gpu, data, epoch, gpus, truth) * math.exp(
            truth.runtime_sigma * z[0]
        )
        memory = mean_memory_mib(model, gpu) * math.exp(truth.memory_sigma * z[1])
        rows.append(
            {
                "model_name": model.name,
                "family": model.family,
                "gpu_type": gpu.name,
                "data_size": data,
                "epoch": epoch,
                "gpus": gpus,
                "runtime_s": runtime,
                "memory_mib": memory,
            }
        )
    return pd.DataFrame(rows)


def history_features(history: pd.DataFrame) -> np.ndarray:
    return np.array(
        [
            feature_row(r.model_name, r.data_size, int(r.epoch), int(r.gpus), r.gpu_type)
            for r in history.itertuples(index=False)
        ]
    )


def make_regressor(kind: str, seed: int) -> Any:
    """A fresh scikit-learn-style regressor of ``kind``."""
    if kind == "random-forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed
        )
    if kind == "gradient-boosting":
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            n_estimators=300,
            learning_rate=0.05,
            num_leaves=31,
            random_state=seed,
            n_jobs=1,
            verbose=-1,
        )
    if kind == "linear":
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), Ridge(alpha=1e-3))
    from k8s_gpu_rl.config import suggest

    raise ConfigError(
        f"predictor kind {kind!r} is unknown{suggest(kind, KINDS)}; allowed: {', '.join(KINDS)}"
    )


class JobPredictor:
    """Predicts a job's run time (s) and per-worker GPU memory (MiB) on a GPU type."""

    def __init__(self, kind: str = "random-forest", seed: int = 0) -> None:
        self.kind = kind
        self.runtime_model = make_regressor(kind, seed)
        self.memory_model = make_regressor(kind, seed)
        self.models_seen: set[str] = set()

    def fit(self, history: pd.DataFrame) -> JobPredictor:
        x = history_features(history)
        self.runtime_model.fit(x, np.log(history["runtime_s"].to_numpy()) - x[:, WORK])
        self.memory_model.fit(x, np.log(history["memory_mib"].to_numpy()))
        self.models_seen = set(history["model_name"])
        return self

    def knows(self, model_name: str) -> bool:
        """Whether the training history had runs of this model."""
        return model_name in self.models_seen

    def predict_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(run time s, memory MiB) for feature rows."""
        seconds = np.exp(self.runtime_model.predict(rows) + rows[:, WORK])
        return seconds, np.exp(self.memory_model.predict(rows))

    def predict_jobs(
        self, jobs: Sequence[JobSpec], gpu_types: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Arrays [job, gpu type] of predicted run time (s) and memory (MiB)."""
        rows = np.array(
            [
                feature_row(j.model_name, j.data_size, j.epoch, j.gpus, t)
                for j in jobs
                for t in gpu_types
            ]
        )
        if not len(rows):
            empty = np.zeros((0, len(gpu_types)))
            return empty, empty
        rt, mem = self.predict_rows(rows)
        shape = (len(jobs), len(gpu_types))
        return rt.reshape(shape), mem.reshape(shape)

    def save(self, path: str | Path) -> None:
        from k8s_gpu_rl.io import atomic_write

        atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(self)))

    @staticmethod
    def load(path: str | Path) -> JobPredictor:
        try:
            obj = pickle.loads(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(
                f"predictor {str(path)!r}: cannot read ({exc.strerror or exc})"
            ) from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            raise ConfigError(f"predictor {str(path)!r}: not a saved JobPredictor") from None
        if not isinstance(obj, JobPredictor):
            raise ConfigError(f"predictor {str(path)!r}: not a saved JobPredictor")
        return obj


DEFAULT_HELD_OUT = ("vit",)
"""Models of these families are left out of the default predictor's history, so the
``unseen model -> exclusive GPU`` rule has something to act on."""


@lru_cache(maxsize=4)
def default_predictor(kind: str = "random-forest", runs: int = 3000, seed: int = 0) -> JobPredictor:
    """The predictor the env and policies use unless given one: trained on a generated
    history (fixed seed, so every process gets the same model) of every shipped model but
    those of :data:`DEFAULT_HELD_OUT`."""
    models = [m for m, spec in MODELS.items() if spec.family not in DEFAULT_HELD_OUT]
    history = generate_history(runs, np.random.default_rng(seed), models)
    return JobPredictor(kind, seed).fit(history)


def _mape(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(p - y) / y) * 100.0)


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y, p)) if len(y) > 1 else math.nan


def cross_validate(history: pd.DataFrame, kind: str, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """MAPE (%) and R^2 of run time per family: K-fold (``seen``) and leave-one-family-out
    (``held-out``). Columns: kind, split, family, runs, mape_pct, r2, memory_mape_pct."""
    from sklearn.model_selection import GroupKFold, KFold

    x = history_features(history)
    y_rt, y_mem = history["runtime_s"].to_numpy(), history["memory_mib"].to_numpy()
    families = history["family"].to_numpy()
    splits = {"seen": KFold(folds, shuffle=True, random_state=seed).split(x)}
    if len(set(families)) >= 2:  # one family has nothing to hold out
        splits["held-out"] = GroupKFold(len(set(families))).split(x, groups=families)
    rows = []
    for split, folds_iter in splits.items():
        p_rt, p_mem = np.zeros_like(y_rt), np.zeros_like(y_mem)
        for train, test in folds_iter:
            model = JobPredictor(kind, seed)
            model.fit(history.iloc[train])
            p_rt[test], p_mem[test] = model.predict_rows(x[test])
        for fam in sorted(set(families)):
            m = families == fam
            rows.append(
                {
                    "kind": kind,
                    "split": split,
                    "family": fam,
                    "runs": int(m.sum()),
                    "mape_pct": _mape(y_rt[m], p_rt[m]),
                    "r2": _r2(y_rt[m], p_rt[m]),
                    "memory_mape_pct": _mape(y_mem[m], p_mem[m]),
                }
            )
    return pd.DataFrame(rows)

"""Fit and scoring time of each predictor (algorithms/predictors.py), printed as a table.

Fit: 1,000 NB201 cells (CIFAR-10 validation accuracy) with the hyper-parameters of
``algorithms/configs/predictors.toml``. Score: 100,000 cells -- NB201's 15,625 repeated (every cell
scored, none deduplicated), and for the GCN also 100,000 NB101 cells sampled NASLib-style (no data
needed). Also reports Kendall tau on the NB201 cells not used for fitting.

    NASREPRO_DATA=/work/shared/data python tests/perf/bench_predictors.py [--threads N] [--seed S]

``--threads`` sets torch's intra-op threads for this script only (default: leave torch's choice).
"""
from __future__ import annotations

import argparse
import time
import tomllib

import numpy as np
import torch
from scipy import stats

import algorithms
from algorithms.predictors import GaussianProcess, GCNPredictor, GradientBoostedTrees, MLPEnsemble
from benchmarks.nb101 import NB101Space
from benchmarks.nb201 import NB201Benchmark

CLASSES = {"mlp_ensemble": MLPEnsemble, "gcn": GCNPredictor, "gp": GaussianProcess,
           "gbt": GradientBoostedTrees}
N_FIT = 1_000
N_SCORE = 100_000


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def nb101_pool(n: int, seed: int) -> list:
    space, rng = NB101Space(), np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=list(CLASSES), choices=list(CLASSES))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(algorithms.CONFIG_DIR / "predictors.toml", "rb") as fh:
        config = tomllib.load(fh)

    bench = NB201Benchmark.load()
    archs = bench.archs_with_data()
    order = np.random.default_rng(args.seed).permutation(len(archs))
    train = [archs[i] for i in order[:N_FIT]]
    held_out = [archs[i] for i in order[N_FIT:]]
    y_train = bench.query_many(train, "cifar10")
    y_held_out = bench.query_many(held_out, "cifar10")
    pool = (archs * (N_SCORE // len(archs) + 1))[:N_SCORE]
    nb101_cells, nb101_build = timed(nb101_pool, N_SCORE, args.seed)
    print(f"torch threads {torch.get_num_threads()}; fit on {N_FIT} NB201 cells; score {N_SCORE} cells "
          f"(NB101 pool sampled in {nb101_build:.1f} s)")

    rows = []
    for name in args.only:
        predictor = CLASSES[name](bench.space, np.random.default_rng(args.seed), **config[name])
        _, fit_s = timed(predictor.fit, train, y_train)
        _, score_s = timed(predictor.predict, pool)
        tau = stats.kendalltau(predictor.predict(held_out), y_held_out).statistic
        nb101_s = float("nan")
        if name == "gcn":
            nb101 = CLASSES[name](NB101Space(), np.random.default_rng(args.seed), **config[name])
            nb101.fit(nb101_cells[:N_FIT], np.array([c.n_edges for c in nb101_cells[:N_FIT]], dtype=float))
            _, nb101_s = timed(nb101.predict, nb101_cells)
        rows.append((name, fit_s, score_s, nb101_s, tau))

    print(f"{'predictor':<14}{'fit 1k (s)':>12}{'score 100k NB201 (s)':>22}{'score 100k NB101 (s)':>22}"
          f"{'tau held-out':>14}")
    for name, fit_s, score_s, nb101_s, tau in rows:
        nb101_text = f"{nb101_s:.2f}" if np.isfinite(nb101_s) else "-"
        print(f"{name:<14}{fit_s:>12.2f}{score_s:>22.2f}{nb101_text:>22}{tau:>14.3f}")


if __name__ == "__main__":
    main()

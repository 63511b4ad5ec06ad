"""Speed of the query-based baselines on NAS-Bench-201: 100 seeds x 1,000 queries of regularized evolution
(target <= 10 s on a 2-core machine), with random search as the reference. Wall and CPU time are both
printed: on a shared machine the CPU time of this (single-threaded) process is the steadier number.

Each run is what the runner does: ``ask(1)`` -> ``Oracle.evaluate`` -> ``tell``, one query at a time,
on CIFAR-10 validation accuracy under a query budget. The time of loading the benchmark (from the
canonical cache) is reported apart. Run::

    NASREPRO_DATA=/path/to/data python tests/perf/bench_regularized_evolution.py [--seeds 100] [--queries 1000]
"""
from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

import algorithms
import benchmarks
from benchmarks.base import Budget, Oracle, OracleTask


def one_run(name: str, benchmark, seed: int, queries: int) -> list:
    """One search as the runner does it; returns its history (the observations, in order)."""
    oracle = Oracle(benchmark, OracleTask("cifar10"), Budget(max_queries=queries))
    optimizer = algorithms.make_optimizer(name, benchmark.space, np.random.default_rng(seed))
    while not oracle.exhausted:
        optimizer.tell([oracle.evaluate(arch) for arch in optimizer.ask(1)])
    return optimizer.history


def bench(name: str, benchmark, seeds: int, queries: int) -> None:
    start, start_cpu = time.perf_counter(), time.process_time()
    histories = [one_run(name, benchmark, seed, queries) for seed in range(seeds)]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    # outside the timing: a digest of every trajectory, to check that an optimisation changed no result
    digest = hashlib.sha256("\n".join(o.arch.id for h in histories for o in h).encode()).hexdigest()[:16]
    incumbents = np.array([max(o.valid for o in h) for h in histories])
    print(f"{name:22s} {seeds} seeds x {queries} queries: {elapsed:6.2f} s wall, {cpu:6.2f} s CPU "
          f"({cpu / (seeds * queries) * 1e6:5.1f} us CPU/query); mean incumbent valid "
          f"{incumbents.mean():.3f}; trajectories sha256 {digest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()

    start = time.perf_counter()
    benchmark = benchmarks.create("nb201")
    print(f"load nb201 (cache): {time.perf_counter() - start:.2f} s")
    for name in ("regularized_evolution", "random_search"):
        bench(name, benchmark, args.seeds, args.queries)


if __name__ == "__main__":
    main()

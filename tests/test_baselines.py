"""Behaviour of the query-based baselines (algorithms/baselines.py): checks that a wrong algorithm fails."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import algorithms
from algorithms.baselines import LocalSearch, RegularizedEvolution
from benchmarks.base import Budget, Observation, Oracle, OracleTask
from fixtures.toy_space import ToyBenchmark, ToySpace
from nasrepro.errors import ConfigError


def search(optimizer, oracle: Oracle, batch: int = 1):
    while not oracle.exhausted:
        n = min(batch, oracle.budget.max_queries - oracle.queries)
        optimizer.tell([oracle.evaluate(a) for a in optimizer.ask(n)])
    return optimizer


def final_test_accuracy(name: str, benchmark, seed: int, queries: int) -> float:
    oracle = Oracle(benchmark, OracleTask("cifar10"), Budget(max_queries=queries))
    optimizer = algorithms.make_optimizer(name, benchmark.space, np.random.default_rng(seed))
    return oracle.test_accuracy(search(optimizer, oracle).incumbent.arch)


@pytest.mark.data
def test_regularized_evolution_beats_random_search_on_nb201_cifar10(nb201):
    seeds = range(20)  # fixed in advance, not tuned
    evolution = [final_test_accuracy("regularized_evolution", nb201, s, 300) for s in seeds]
    random_search = [final_test_accuracy("random_search", nb201, s, 300) for s in seeds]
    result = stats.ttest_ind(evolution, random_search, equal_var=False, alternative="greater")
    assert result.pvalue < 0.05, (f"RE {np.mean(evolution):.3f} vs RS {np.mean(random_search):.3f} "
                                  f"(mean test accuracy of the incumbent), Welch p = {result.pvalue:.3g}")


# --------------------------------------------------------------------------------------------------
# Regularized evolution
# --------------------------------------------------------------------------------------------------
def regularized_evolution(space, seed=0, pool=None, **overrides) -> RegularizedEvolution:
    return algorithms.make_optimizer("regularized_evolution", space, np.random.default_rng(seed), pool, overrides)


def test_aging_removes_the_oldest_even_when_it_is_the_best():
    space = ToySpace()
    optimizer = regularized_evolution(space, population_size=4)
    archs = optimizer.ask(4)
    told = [Observation(a, valid, 1.0) for a, valid in zip(archs, (99.0, 10.0, 20.0, 30.0))]
    optimizer.tell(told)
    assert optimizer.population == tuple(told)
    child = Observation(optimizer.ask(1)[0], 5.0, 1.0)
    optimizer.tell([child])
    assert optimizer.population == tuple(told[1:]) + (child,)
    assert optimizer.incumbent == told[0]  # the incumbent outlives the population


def test_first_population_is_random_then_children_are_mutations_of_the_tournament_winner():
    space, benchmark = ToySpace(), ToyBenchmark()
    # a tournament of 60 draws (with replacement) from 3 misses the best member with probability (2/3)^60
    optimizer = regularized_evolution(space, seed=1, population_size=3, sample_size=60)
    oracle = Oracle(benchmark, OracleTask("toy"), Budget(max_queries=100))
    optimizer.tell([oracle.evaluate(a) for a in optimizer.ask(3)])
    for _ in range(30):
        best = max(optimizer.population, key=lambda o: o.valid)
        child = optimizer.ask(1)[0]
        assert space.distance(child, best.arch) == 1
        optimizer.tell([oracle.evaluate(child)])


def test_evolution_with_a_sparse_pool_falls_back_inside_the_pool():
    space = ToySpace()
    pool = [space.parse("0-0-0-0"), space.parse("1-1-1-1"), space.parse("2-2-2-2")]  # no two are neighbours
    optimizer = regularized_evolution(space, seed=2, pool=pool, max_mutation_attempts=5)
    oracle = Oracle(ToyBenchmark(), OracleTask("toy"), Budget(max_queries=60))
    search(optimizer, oracle, batch=4)
    assert {o.arch for o in optimizer.history} <= set(pool)


@pytest.mark.parametrize("avoid_repeats", [False, True])
def test_avoid_repeats_stops_re_evaluating_a_sparse_pool(avoid_repeats):
    space = ToySpace()
    rng = np.random.default_rng(3)
    pool = [space.parse(s) for s in sorted({a.id for a in (space.sample(rng) for _ in range(40))})]
    optimizer = regularized_evolution(space, seed=4, pool=pool, avoid_repeats=avoid_repeats)
    oracle = Oracle(ToyBenchmark(), OracleTask("toy"), Budget(max_queries=len(pool)))
    search(optimizer, oracle)
    distinct = len({o.arch.id for o in optimizer.history})
    assert {o.arch.id for o in optimizer.history} <= {a.id for a in pool}
    # with repeats allowed, evolution in a sparse pool revisits cells; without, it covers the whole pool
    assert (distinct == len(pool)) == avoid_repeats


@pytest.mark.parametrize("bad", [{"population_size": 0}, {"sample_size": 2.5}, {"max_mutation_attempts": True},
                                 {"avoid_repeats": 1}])
def test_evolution_rejects_bad_hyperparameters(bad):
    with pytest.raises(ConfigError):
        regularized_evolution(ToySpace(), **bad)


# --------------------------------------------------------------------------------------------------
# Local search
# --------------------------------------------------------------------------------------------------
def local_search(space, seed=0, pool=None, **overrides) -> LocalSearch:
    return algorithms.make_optimizer("local_search", space, np.random.default_rng(seed), pool, overrides)


@pytest.mark.parametrize("batch", [1, 5])
def test_local_search_stops_only_at_local_optima(batch):
    benchmark = ToyBenchmark(ToySpace(length=5, n_values=3), seed=3)
    optimizer = local_search(benchmark.space, seed=4)
    search(optimizer, Oracle(benchmark, OracleTask("toy"), Budget(max_queries=200)), batch=batch)
    assert len(optimizer.local_optima) >= 2
    for optimum in optimizer.local_optima:
        neighbour_values = [benchmark.query(a, "toy") for a in benchmark.space.neighbours(optimum.arch)]
        assert optimum.valid >= max(neighbour_values), f"{optimum.arch.id} is not a local optimum"


def test_local_search_starts_from_the_best_initial_architecture_and_climbs():
    benchmark = ToyBenchmark(ToySpace(length=5, n_values=3), seed=5)
    space = benchmark.space
    optimizer = local_search(space, seed=6, num_init=7)
    oracle = Oracle(benchmark, OracleTask("toy"), Budget(max_queries=100))
    initial = [oracle.evaluate(a) for a in optimizer.ask(7)]
    optimizer.tell(initial)
    centre = max(initial, key=lambda o: o.valid)
    neighbours = {a.id for a in space.neighbours(centre.arch)}
    round_ = []
    while True:  # one ask at a time, until the walk leaves the first neighbourhood
        arch = optimizer.ask(1)[0]
        if arch.id not in neighbours:
            break
        round_.append(oracle.evaluate(arch))
        optimizer.tell(round_[-1:])
    # every neighbour not already evaluated is asked once, then the walk moves to the best or restarts
    evaluated_before = {o.arch.id for o in initial}
    assert {o.arch.id for o in round_} == neighbours - evaluated_before
    best = max(round_ + [o for o in initial if o.arch.id in neighbours], key=lambda o: o.valid)
    if best.valid > centre.valid:
        assert space.distance(arch, best.arch) == 1  # first neighbour of the new centre
    else:
        assert optimizer.local_optima == [centre]


def test_local_search_with_a_pool_walks_inside_it():
    benchmark = ToyBenchmark(ToySpace(length=5, n_values=3), seed=7)
    archs = benchmark.space.all_archs()
    pool = [archs[int(i)] for i in np.random.default_rng(8).choice(len(archs), 120, replace=False)]
    optimizer = local_search(benchmark.space, seed=9, pool=pool)
    search(optimizer, Oracle(benchmark, OracleTask("toy"), Budget(max_queries=150)), batch=3)
    pool_ids = {a.id for a in pool}
    assert {o.arch.id for o in optimizer.history} <= pool_ids
    assert optimizer.local_optima
    for optimum in optimizer.local_optima:  # optimal among its neighbours *in the pool*
        in_pool = [a for a in benchmark.space.neighbours(optimum.arch) if a.id in pool_ids]
        assert all(benchmark.query(a, "toy") <= optimum.valid for a in in_pool)


# --------------------------------------------------------------------------------------------------
# Random search
# --------------------------------------------------------------------------------------------------
def test_random_search_is_uniform_over_the_pool():
    space = ToySpace()
    pool = space.all_archs()[:6]
    optimizer = algorithms.make_optimizer("random_search", space, np.random.default_rng(10), pool)
    counts = np.unique([a.id for a in optimizer.ask(6000)], return_counts=True)[1]
    assert len(counts) == 6
    assert stats.chisquare(counts).pvalue > 1e-3


def test_empty_pool_is_a_config_error():
    with pytest.raises(ConfigError, match="empty"):
        algorithms.make_optimizer("random_search", ToySpace(), np.random.default_rng(0), [])

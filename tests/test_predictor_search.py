"""Predictor-guided search (algorithms/predictor_search.py): strategies, acquisitions, pool, repeats,
resume, determinism, hyper-parameter checks. Fast checks run on the data-free toy space with a tiny
predictor; NB201 checks (data-marked) use the registered sections of predictor_search.toml."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import algorithms
from algorithms.predictor_search import (ACQUISITIONS, CANDIDATE_STRATEGIES, PredictorGuidedSearch,
                                         acquisition_scores, pick_predictor)
from benchmarks.base import Budget, Oracle, OracleTask
from fixtures.toy_space import ToyBenchmark, ToySpace, run_steps
from nasrepro.errors import ConfigError

SECTIONS = ("bananas", "npenas", "neural_predictor")
#: a tiny MLP ensemble so that a toy run takes well under a second
TINY = {"mlp_ensemble": {"epochs": 5, "ensemble_size": 2, "n_layers": 2, "width": 8},
        "gcn": {"epochs": 5, "gcn_width": 8, "head_width": 8}}


def section(name: str = "bananas", **changes) -> dict:
    hparams = dict(algorithms.read_config_file("predictor_search")[name])
    hparams["predictor_overrides"] = TINY
    hparams.update(changes)
    return hparams


def toy_setting(length: int = 5):
    benchmark = ToyBenchmark(ToySpace(length=length))  # 243 architectures
    return benchmark, Oracle(benchmark, OracleTask("toy"), Budget(max_queries=10_000))


def make(space, seed: int, pool=None, name: str = "bananas", **changes) -> PredictorGuidedSearch:
    return PredictorGuidedSearch(space, np.random.default_rng(seed), pool, **section(name, **changes))


SMALL_STEPS = [1] * 30 + [4, 1, 3]


@pytest.mark.parametrize("candidates", CANDIDATE_STRATEGIES)
@pytest.mark.parametrize("acquisition", ACQUISITIONS)
def test_every_strategy_and_acquisition_runs_without_repeats(candidates, acquisition):
    benchmark, oracle = toy_setting()
    optimizer = make(benchmark.space, 0, candidates=candidates, acquisition=acquisition, subset_size=40,
                     queries_per_iteration=4, refit_every=4)
    trajectory = run_steps(optimizer, oracle, SMALL_STEPS)
    ids = [arch_id for arch_id, _ in trajectory]
    assert len(ids) == sum(SMALL_STEPS) and len(set(ids)) == len(ids), "an architecture was asked twice"
    assert optimizer.iterations, "no predictor-guided iteration ran"
    last_fit = None
    for told, _, refit in optimizer.iterations:  # refit exactly when refit_every new observations came
        assert refit == (last_fit is None or told - last_fit >= 4)
        last_fit = told if refit else last_fit
    assert optimizer.incumbent.valid == max(v for _, v in trajectory)


def test_candidate_sets_follow_their_definition():
    benchmark, oracle = toy_setting()
    space = benchmark.space
    for candidates in CANDIDATE_STRATEGIES:
        optimizer = make(space, 1, candidates=candidates, subset_size=30, num_candidates=50, max_edits=2,
                         num_parents=2)
        run_steps(optimizer, oracle, [1] * 10)
        chosen = optimizer.candidate_set()
        ids = [a.id for a in chosen]
        assert len(set(ids)) == len(ids) and not set(ids) & optimizer._asked_ids
        top = sorted(optimizer.history, key=lambda o: -o.valid)[:2]
        if candidates == "mutation":
            assert 0 < len(chosen) <= 50
            assert all(min(space.distance(a, p.arch) for p in top) <= 2 for a in chosen)
        elif candidates == "neighbourhood":
            expected = {n.id for p in top for n in space.neighbours(p.arch)} - optimizer._asked_ids
            assert set(ids) == expected
        elif candidates == "full":
            assert set(ids) == {a.id for a in space.all_archs()} - optimizer._asked_ids
        elif candidates == "nearest":  # the 30 unasked cells nearest the 2 best, by encoding distance
            unasked = [a for a in space.all_archs() if a.id not in optimizer._asked_ids]
            codes, tops = space.encode(unasked), space.encode([p.arch for p in top])
            distance = np.abs(codes[:, None, :] - tops[None]).sum(-1).min(1)
            assert len(chosen) == 30
            assert max(distance[[a.id for a in unasked].index(i)] for i in ids) <= np.sort(distance)[29]
        elif candidates == "random_subset":
            assert 30 - 10 <= len(chosen) <= 30
            again = optimizer.candidate_set()
            assert {a.id for a in again} != set(ids), "the random subset must be redrawn each iteration"
        else:  # evolution: children of tournament winners, up to max_edits away from some evaluated arch
            evaluated = [o.arch for o in optimizer.history]
            assert all(min(space.distance(a, e) for e in evaluated) <= 2 for a in chosen)


def test_greedy_full_pool_evaluates_the_predicted_best():
    benchmark, oracle = toy_setting()
    optimizer = make(benchmark.space, 2, candidates="full", acquisition="mean", queries_per_iteration=5)
    run_steps(optimizer, oracle, [1] * 10)
    unasked = optimizer.candidate_set()
    chosen = optimizer.ask(1)  # fits the predictor and queues the 5 best
    predicted = optimizer._predictor.predict(unasked)
    best_five = [unasked[int(i)] for i in np.argsort(-predicted, kind="stable")[:5]]
    assert [a.id for a in chosen + optimizer._queue] == [a.id for a in best_five]


def test_acquisition_scores():
    rng = np.random.default_rng(0)
    mean, std = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, 2.0])
    np.testing.assert_array_equal(acquisition_scores("mean", mean, std, 1.0, rng), mean)
    np.testing.assert_allclose(acquisition_scores("ucb", mean, std, 2.0, rng), mean + 2.0 * std)
    draws = np.array([acquisition_scores("its", mean, std, 1.0, rng) for _ in range(4000)])
    assert (draws[:, 1] == 2.0).all(), "no uncertainty: ITS is the mean"
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.1)
    np.testing.assert_allclose(draws.std(0), std, atol=0.1)
    with pytest.raises(ConfigError):
        acquisition_scores("ei", mean, std, 1.0, rng)


def test_pool_is_respected_and_not_repeated_until_exhausted():
    benchmark, oracle = toy_setting()
    archs = benchmark.space.all_archs()
    pool = [archs[int(i)] for i in np.random.default_rng(3).choice(len(archs), 25, replace=False)]
    pool_ids = {a.id for a in pool}
    for candidates in CANDIDATE_STRATEGIES:
        optimizer = make(benchmark.space, 4, pool=pool, candidates=candidates, subset_size=10,
                         queries_per_iteration=3, refit_every=3)
        ids = [arch_id for arch_id, _ in run_steps(optimizer, oracle, [1] * 30 + [3, 2])]
        assert set(ids) <= pool_ids, f"{candidates}: asked outside the pool"
        assert len(set(ids[:20])) == 20, f"{candidates}: repeated an architecture while the pool had unasked ones"


def test_resume_from_state_dict_is_bit_identical():
    benchmark, oracle = toy_setting()
    steps = [1] * 17 + [2, 3, 1] * 4
    # refit_every > queries_per_iteration: the resumed run must reuse the saved fitted predictor
    for changes in ({"acquisition": "its"}, {"candidates": "evolution", "refit_every": 9,
                                             "queries_per_iteration": 3}):
        optimizer = make(benchmark.space, 5, **changes)
        run_steps(optimizer, oracle, steps[:20])
        state = pickle.loads(pickle.dumps(optimizer.state_dict()))
        rest = run_steps(optimizer, oracle, steps[20:])
        resumed = make(benchmark.space, 999, **changes)
        resumed.load_state_dict(state)
        assert run_steps(resumed, oracle, steps[20:]) == rest
        assert resumed.incumbent == optimizer.incumbent


def test_state_dict_does_not_hold_the_space():
    benchmark, oracle = toy_setting()
    optimizer = make(benchmark.space, 6, candidates="full")
    run_steps(optimizer, oracle, [1] * 15)
    state = optimizer.state_dict()
    assert "space" not in state and "_listed" not in state
    assert isinstance(state["_predictor"], bytes) and b"ToySpace" not in state["_predictor"]


def test_same_seed_same_trajectory_other_seed_differs():
    benchmark, oracle = toy_setting()
    first = run_steps(make(benchmark.space, 7), oracle, SMALL_STEPS)
    again = run_steps(make(benchmark.space, 7), oracle, SMALL_STEPS)
    other = run_steps(make(benchmark.space, 8), oracle, SMALL_STEPS)
    assert first == again and first != other


def test_a_small_space_can_be_exhausted():
    benchmark, oracle = toy_setting(length=2)  # 9 architectures
    optimizer = make(benchmark.space, 9, num_init=3, queries_per_iteration=2, refit_every=2)
    ids = [arch_id for arch_id, _ in run_steps(optimizer, oracle, [1] * 9 + [4, 1])]
    assert len(set(ids[:9])) == 9 and len(ids) == 14


@pytest.mark.parametrize("changes, match", [
    ({"candidates": "everything"}, "candidates"),
    ({"acquisition": "ei"}, "acquisition"),
    ({"num_init": 0}, "num_init"),
    ({"queries_per_iteration": 2.5}, "queries_per_iteration"),
    ({"num_parents": True}, "num_parents"),
    ({"subset_size": -3}, "subset_size"),
    ({"ucb_beta": -1.0}, "ucb_beta"),
    ({"predictor": "not_a_predictor"}, "not_a_predictor"),
    ({"predictor": "random_search"}, "random_search"),
    ({"predictor": []}, "predictor"),
    ({"predictor": "gcn"}, "toy"),  # the GCN has no graph for the toy space, and no fallback is listed
    ({"predictor_overrides": {"mlp_ensemble": {"epochz": 3}}}, "epochz"),
    ({"predictor_overrides": {"mlp_ensemble": {"epochs": 0}}}, "epochs"),
    ({"predictor_overrides": {"gpx": {}}}, "gpx"),
    ({"predictor_overrides": {"mlp_ensemble": 3}}, "predictor_overrides"),
])
def test_bad_hyperparameters_are_config_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        make(ToySpace(), 0, **changes)


def test_full_candidates_need_a_listable_space_or_a_pool():
    class Unlisted(ToySpace):
        all_archs = None

    with pytest.raises(ConfigError, match="lists its architectures"):
        make(Unlisted(), 0, candidates="full")
    make(Unlisted(), 0, pool=ToySpace().all_archs()[:10], candidates="full")  # a pool is enough


def test_config_sections_match_the_constructor():
    config = algorithms.read_config_file("predictor_search")
    assert {"source", "known_deviations"} <= set(config["meta"])
    accepted = algorithms.constructor_keys(PredictorGuidedSearch) - {"self", "space", "rng", "pool"}
    for name in SECTIONS:
        assert set(config[name]) == accepted, name


def test_predictor_preference_list_falls_back_on_spaces_without_graphs():
    assert pick_predictor(["gcn", "mlp_ensemble"], ToySpace()) == "mlp_ensemble"
    assert pick_predictor("mlp_ensemble", ToySpace()) == "mlp_ensemble"


# --------------------------------------------------------------------------------------------------
# NAS-Bench-201, with the registered sections
# --------------------------------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize("name", SECTIONS)
def test_registered_sections_on_nb201(name, nb201, one_torch_thread):
    hparams = dict(algorithms.read_config_file("predictor_search")[name])
    optimizer = PredictorGuidedSearch(nb201.space, np.random.default_rng(0), None, **hparams)
    expected = "mlp_ensemble" if name == "bananas" else "gcn"
    assert optimizer.predictor_name == expected
    oracle = Oracle(nb201, OracleTask("cifar10"), Budget(max_queries=30))
    ids = [arch_id for arch_id, _ in run_steps(optimizer, oracle, [1] * 30)]
    assert len(set(ids)) == 30
    assert len(optimizer.iterations) == 2


@pytest.mark.data
def test_nb201_pool_is_respected(nb201, one_torch_thread):
    archs = nb201.archs_with_data()
    pool = [archs[int(i)] for i in np.random.default_rng(0).choice(len(archs), 300, replace=False)]
    pool_ids = {a.id for a in pool}
    for candidates in ("mutation", "neighbourhood", "full"):
        optimizer = PredictorGuidedSearch(nb201.space, np.random.default_rng(1), pool,
                                          **section("npenas", candidates=candidates))
        oracle = Oracle(nb201, OracleTask("cifar10"), Budget(max_queries=25))
        ids = [arch_id for arch_id, _ in run_steps(optimizer, oracle, [1] * 25)]
        assert set(ids) <= pool_ids and len(set(ids)) == 25


def test_runs_do_not_depend_on_the_order_neighbours_are_listed_in():
    """Regression: NB101 lists a cell's neighbours in an order that depends on which isomorphic matrix
    represents it (and on a cache filled by earlier runs); draws must use a canonical order."""

    class ReorderingSpace(ToySpace):
        calls = 0

        def neighbours(self, arch):
            self.calls += 1
            out = super().neighbours(arch)
            return out[::-1] if self.calls % 2 else out

    archs = ToySpace(length=5).all_archs()
    pool = [archs[int(i)] for i in np.random.default_rng(10).choice(len(archs), 120, replace=False)]
    for candidates in ("neighbourhood", "evolution"):
        trajectories = []
        for space in (ToySpace(length=5), ReorderingSpace(length=5)):
            benchmark = ToyBenchmark(space)
            oracle = Oracle(benchmark, OracleTask("toy"), Budget(max_queries=100))
            optimizer = make(space, 11, pool=pool, candidates=candidates, max_edits=2, queries_per_iteration=3,
                             refit_every=3)
            trajectories.append(run_steps(optimizer, oracle, [1] * 25))
        assert trajectories[0] == trajectories[1], candidates

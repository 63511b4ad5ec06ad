"""Delta-NAS (algorithms/deltanas.py): DoA encoding, DoA dataset, Delta-predictor, guided evolution."""
from __future__ import annotations

import pickle
import tomllib

import numpy as np
import pytest
from scipy import stats

from algorithms import CONFIG_DIR
from algorithms.baselines import RandomSearch
from algorithms.deltanas import (DeltaModelSpec, DeltaNAS, DeltaPredictor, DoADataset, delta_loss_vs_edit_distance,
                                 doa_encode, neighbour_graph, sample_pairs_at_distance)
from benchmarks.base import Budget, Oracle, OracleTask
from benchmarks.nb201 import NB201Space
from fixtures.toy_space import ToyBenchmark, run_steps
from nasrepro.errors import ConfigError, DataError


def config() -> dict:
    with open(CONFIG_DIR / "deltanas.toml", "rb") as fh:
        return tomllib.load(fh)["deltanas"]


#: a smaller Delta-model for the toy-space tests (same code paths, a fraction of the fitting time)
SMALL_MODEL = {"mlp_n_layers": 1, "mlp_width": 16, "mlp_ensemble_size": 2, "mlp_epochs": 20}


def make(space, seed: int, pool=None, **overrides) -> DeltaNAS:
    return DeltaNAS(space, np.random.default_rng(seed), pool, **{**config(), **overrides})


def toy_oracle(benchmark=None, queries: int = 10_000) -> Oracle:
    return Oracle(benchmark or ToyBenchmark(), OracleTask("toy"), Budget(max_queries=queries))


STEPS = [1] * 30 + [3, 1, 4] * 5


# --------------------------------------------------------------------------------------------------
# DoA encoding, dataset, predictor
# --------------------------------------------------------------------------------------------------
def test_doa_encoding_is_antisymmetric_and_sparse_for_similar_pairs():
    space, rng = NB201Space(), np.random.default_rng(0)
    for _ in range(20):
        a = space.sample(rng)
        neighbours = space.neighbours(a)
        forward = doa_encode(space, [a] * len(neighbours), neighbours, "onehot")
        backward = doa_encode(space, neighbours, [a] * len(neighbours), "onehot")
        np.testing.assert_array_equal(forward, -backward)
        # one edit = one edge changes op: exactly one +1 (new op) and one -1 (old op) out of 30 features
        assert ((forward != 0).sum(axis=1) == 2).all()
        assert (forward.sum(axis=1) == 0).all()
        b = space.mutate(space.mutate(space.mutate(a, rng), rng), rng)
        assert (doa_encode(space, [a], [b], "onehot") != 0).sum() == 2 * space.distance(a, b)


def test_doa_dataset_holds_exactly_the_close_pairs():
    benchmark = ToyBenchmark()
    space, archs = benchmark.space, benchmark.archs_with_data()[:30]
    dataset = DoADataset("onehot", max_pair_distance=2)
    for arch in archs + archs[:5]:  # repeats are stored once
        dataset.add(space, arch, benchmark.query(arch, "toy"))
    expected = {(i, j) for j in range(len(archs)) for i in range(j) if 1 <= space.distance(archs[i], archs[j]) <= 2}
    assert set(dataset.pairs) == expected and len(dataset.pairs) == len(expected)
    before, after, y = dataset.training_data()
    assert len(before) == len(after) == len(y) == len(dataset) == len(expected)
    i, j = dataset.pairs[0]
    np.testing.assert_array_equal(before[0], space.encode([archs[i]], "onehot")[0])
    np.testing.assert_array_equal(after[0], space.encode([archs[j]], "onehot")[0])
    assert y[0] == pytest.approx(benchmark.query(archs[j], "toy") - benchmark.query(archs[i], "toy"))


@pytest.mark.parametrize("kind", ["mlp_ensemble", "ridge"])
@pytest.mark.parametrize("with_anchor", [False, True])
def test_antisymmetric_predictor_flips_sign_and_is_deterministic(kind, with_anchor):
    spec = DeltaModelSpec.from_config({**config(), "model": kind})
    rng = np.random.default_rng(0)
    before, after = (rng.integers(0, 2, size=(200, 12)).astype(np.float32) for _ in range(2))
    y = (after - before) @ rng.normal(size=12) + before[:, 0] * after[:, 1] + 3.0  # not antisymmetric itself

    def fitted(seed: int) -> DeltaPredictor:
        return DeltaPredictor(spec, antisymmetric=True, with_anchor=with_anchor).fit(
            before, after, y, np.random.default_rng(seed))

    first = fitted(1)
    np.testing.assert_allclose(first.predict(after, before), -first.predict(before, after), atol=1e-9)
    np.testing.assert_array_equal(first.predict(before, after), fitted(1).predict(before, after))


def test_bad_model_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model"):
        make(NB201Space(), 0, model="transformer")
    with pytest.raises(ConfigError, match="no encoding"):
        make(NB201Space(), 0, encoding="zero_cost")
    with pytest.raises(ConfigError, match="refit_every"):
        make(NB201Space(), 0, refit_every=0)


@pytest.mark.data
def test_delta_predictor_beats_zero_delta_on_held_out_one_edit_pairs(nb201):
    result = delta_loss_vs_edit_distance(nb201, nb201.space, "cifar10", distances=(1,), n_train_pairs=300,
                                         n_test_pairs=300, rng=np.random.default_rng(0),
                                         model=DeltaModelSpec.from_config(config()), encoding="onehot",
                                         antisymmetric=True, with_anchor=config()["with_anchor"])
    one_edit = result[1]
    assert one_edit["n_train_pairs"] == one_edit["n_test_pairs"] == 300
    assert one_edit["delta_mse"] < one_edit["zero_mse"]


def test_loss_vs_distance_reports_every_distance_and_refuses_impossible_ones():
    benchmark = ToyBenchmark()
    spec = DeltaModelSpec.from_config({**config(), "model": "ridge"})
    result = delta_loss_vs_edit_distance(benchmark, benchmark.space, "toy", (1, 2), 20, 10,
                                         np.random.default_rng(0), model=spec, encoding="onehot",
                                         antisymmetric=True, with_anchor=True)
    assert sorted(result) == [1, 2]
    assert all(np.isfinite([r["delta_mse"], r["zero_mse"], r["absolute_mse"]]).all() for r in result.values())
    with pytest.raises(DataError, match="edit distance 5"):  # toy archs have 4 digits: at most 4 edits apart
        delta_loss_vs_edit_distance(benchmark, benchmark.space, "toy", (5,), 5, 5, np.random.default_rng(0),
                                    model=spec, encoding="onehot", antisymmetric=True, with_anchor=True)


def test_a_sparse_set_gives_every_distance_the_fewest_pairs_found_or_fails_below_the_floor():
    benchmark = ToyBenchmark()  # 81 archs: each half holds fewer one-edit pairs than the 200 asked
    spec = DeltaModelSpec.from_config({**config(), "model": "ridge"})

    def loss(min_pairs):
        return delta_loss_vs_edit_distance(benchmark, benchmark.space, "toy", (1, 2), 200, 200,
                                           np.random.default_rng(0), model=spec, encoding="onehot",
                                           antisymmetric=True, with_anchor=True, min_pairs=min_pairs)

    result = loss(20)
    n_train, n_test = result[1]["n_train_pairs"], result[1]["n_test_pairs"]
    assert 20 <= n_train < 200 and 20 <= n_test < 200
    assert (result[2]["n_train_pairs"], result[2]["n_test_pairs"]) == (n_train, n_test)
    loose = loss(1)  # the fewest found, whatever the floor: not cut down to the floor
    assert (loose[1]["n_train_pairs"], loose[1]["n_test_pairs"]) == (n_train, n_test)
    with pytest.raises(DataError, match="at least 190 needed"):
        loss(190)
    with pytest.raises(DataError, match="of 200 pairs at edit distance 1$"):
        loss(None)


def test_neighbour_graph_is_neighbours_restricted_to_the_set():
    benchmark = ToyBenchmark()
    archs = [a for a in benchmark.archs_with_data() if a.digits[0] != 2]  # a set that many edits leave
    graph = neighbour_graph(benchmark, archs)
    index = {a.id: i for i, a in enumerate(archs)}
    for i, arch in enumerate(archs):
        expected = sorted(index[n.id] for n in benchmark.space.neighbours(arch) if n.id in index)
        assert sorted(graph.indices[graph.indptr[i]:graph.indptr[i + 1]].tolist()) == expected
    assert graph.nnz < sum(len(benchmark.space.neighbours(a)) for a in archs)


@pytest.mark.parametrize("distance", [1, 2, 3])
def test_pairs_are_distinct_walks_at_exactly_the_distance_inside_the_set(distance):
    benchmark = ToyBenchmark()
    space, archs = benchmark.space, benchmark.archs_with_data()
    half = np.random.default_rng(5).permutation(len(archs))[:45]
    subset = [archs[int(i)] for i in half]
    graph = neighbour_graph(benchmark, archs)[half][:, half]

    def draw(seed: int) -> list:
        return sample_pairs_at_distance(space, subset, graph, distance, 25, np.random.default_rng(seed))

    pairs = draw(0)
    subset_ids = {a.id for a in subset}
    assert len(pairs) == 25 and len({(a.id, b.id) for a, b in pairs}) == 25
    assert all(space.distance(a, b) == distance and a.id in subset_ids and b.id in subset_ids for a, b in pairs)
    assert [(a.id, b.id) for a, b in draw(0)] == [(a.id, b.id) for a, b in pairs]
    assert [(a.id, b.id) for a, b in draw(1)] != [(a.id, b.id) for a, b in pairs]


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------
def test_same_seed_same_trajectory_and_the_predictor_takes_over():
    space = ToyBenchmark().space
    first, again, other = (make(space, seed, **SMALL_MODEL) for seed in (3, 3, 4))
    trajectory = run_steps(first, toy_oracle(), STEPS)
    assert trajectory == run_steps(again, toy_oracle(), STEPS)
    assert trajectory != run_steps(other, toy_oracle(), STEPS)
    assert first.predictor is not None and len(first.dataset) >= config()["min_train_pairs"]


def test_resume_from_state_dict_is_bit_identical():
    space = ToyBenchmark().space
    optimizer = make(space, 2, **SMALL_MODEL)
    run_steps(optimizer, toy_oracle(), STEPS[:25])
    state = pickle.loads(pickle.dumps(optimizer.state_dict()))
    rest = run_steps(optimizer, toy_oracle(), STEPS[25:])
    resumed = make(space, 999, **SMALL_MODEL)
    resumed.load_state_dict(state)
    assert run_steps(resumed, toy_oracle(), STEPS[25:]) == rest


def test_pool_is_respected_and_unasked_neighbours_come_first():
    benchmark = ToyBenchmark()
    archs = benchmark.archs_with_data()
    pool = [archs[int(i)] for i in np.random.default_rng(6).choice(len(archs), size=40, replace=False)]
    pool_ids = {a.id for a in pool}
    optimizer = make(benchmark.space, 7, pool=pool, min_train_pairs=4, **SMALL_MODEL)
    trajectory = run_steps(optimizer, toy_oracle(benchmark), [1] * 30)
    assert {arch_id for arch_id, _ in trajectory} <= pool_ids
    evolved = [arch_id for arch_id, _ in trajectory[config()["num_init"]:]]
    assert len(set(evolved)) == len(evolved), "an architecture was asked twice while unasked ones remained"


def test_rounds_evaluate_the_best_predicted_neighbours():
    benchmark = ToyBenchmark()
    optimizer = make(benchmark.space, 1, min_train_pairs=4, parents_per_round=1, queries_per_round=3, **SMALL_MODEL)
    run_steps(optimizer, toy_oracle(benchmark), [1] * 25)
    state = optimizer.rng.bit_generator.state
    chosen = optimizer._round()
    optimizer.rng.bit_generator.state = state  # replay the round's tournament to find its parent
    parent = optimizer._tournament()
    options = [c for c in benchmark.space.neighbours(parent.arch) if c.id not in optimizer._asked_ids]
    scores = optimizer.predict_delta([parent.arch] * len(options), options)
    best = {options[i].id for i in np.argsort(-scores, kind="stable")[:3]}
    assert {c.id for c in chosen} == best


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.timeout(1200)  # ten searches of 150 queries with ~15 predictor refits each
def test_search_beats_random_search_on_nb201_cifar10(nb201):
    """150 queries, seeds 0-9, incumbent test accuracy: one-sided Welch test at the 5 % level."""
    def final_test_accuracy(optimizer) -> float:
        oracle = Oracle(nb201, OracleTask("cifar10"), Budget(max_queries=150))
        while not oracle.exhausted:
            optimizer.tell([oracle.evaluate(optimizer.ask(1)[0])])
        return oracle.test_accuracy(optimizer.incumbent.arch)

    delta = [final_test_accuracy(make(nb201.space, seed)) for seed in range(10)]
    random = [final_test_accuracy(RandomSearch(nb201.space, np.random.default_rng(seed))) for seed in range(10)]
    test = stats.ttest_ind(delta, random, equal_var=False, alternative="greater")
    assert test.pvalue < 0.05, f"deltanas {np.mean(delta):.3f} vs random {np.mean(random):.3f}, p={test.pvalue:.3g}"

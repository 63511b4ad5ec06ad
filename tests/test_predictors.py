"""The predictor family (algorithms/predictors.py): contract, hyper-parameter checks, cell graphs, and
ranking quality on NAS-Bench-201 (data-marked).

The predictors are built straight from their classes with the sections of
``algorithms/configs/predictors.toml`` (the registry entries are the lead's); ``tests/test_contracts.py``
runs the shared predictor contract over them once they are registered.
"""
from __future__ import annotations

import pickle
import random
import tomllib

import numpy as np
import pytest
import torch
from scipy import stats

import algorithms
from algorithms import predictors
from algorithms.predictors import (GaussianProcess, GCNPredictor, GradientBoostedTrees, MLPEnsemble,
                                   evaluate_predictor, graph_of)
from benchmarks.nb101 import NB101Arch, NB101Space
from benchmarks.nb201 import NB201Arch, NB201Space
from fixtures.toy_space import ToyBenchmark
from nasrepro.errors import ConfigError

CLASSES = {"mlp_ensemble": MLPEnsemble, "gcn": GCNPredictor, "gp": GaussianProcess,
           "gbt": GradientBoostedTrees}
ENCODING_BASED = ["mlp_ensemble", "gp", "gbt"]
#: fewer epochs where a test checks plumbing, not quality
QUICK = {"mlp_ensemble": {"epochs": 10}, "gcn": {"epochs": 10}, "gp": {}, "gbt": {"n_trees": 30}}

with open(algorithms.CONFIG_DIR / "predictors.toml", "rb") as fh:
    CONFIG = tomllib.load(fh)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(name: str, space, seed: int = 0, quick: bool = True, **overrides):
    hparams = {**CONFIG[name], **(QUICK[name] if quick else {}), **overrides}
    return CLASSES[name](space, np.random.default_rng(seed), **hparams)


def toy_data(n: int, seed: int):
    bench = ToyBenchmark()
    archs = bench.archs_with_data()
    chosen = np.random.default_rng(seed).choice(len(archs), size=n, replace=False)
    archs = [archs[int(i)] for i in chosen]
    return bench.space, archs, np.array([bench.query(a, "toy") for a in archs])


def nb201_data(bench, n: int, seed: int):
    archs = bench.archs_with_data()
    chosen = np.random.default_rng(seed).choice(len(archs), size=n, replace=False)
    archs = [archs[int(i)] for i in chosen]
    return archs, bench.query_many(archs, "cifar10")


def nb101_cells(n: int, seed: int) -> list[NB101Arch]:
    """Distinct NB101 cells drawn without data (NASLib-style sampling needs no enumeration)."""
    space, rng, cells = NB101Space(), np.random.default_rng(seed), {}
    while len(cells) < n:
        cell = space.sample(rng)
        cells[cell.id] = cell
    return list(cells.values())


# --------------------------------------------------------------------------------------------------
# Config and hyper-parameters
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSES)
def test_config_section_is_exactly_the_constructor_arguments(name):
    assert {"source", "known_deviations"} <= set(CONFIG["meta"])
    accepted = algorithms.constructor_keys(CLASSES[name]) - {"self", "space", "rng"}
    assert set(CONFIG[name]) == accepted


BAD_HPARAMS = [
    ("mlp_ensemble", {"epochs": 0}), ("mlp_ensemble", {"ensemble_size": -1}), ("mlp_ensemble", {"lr": 0.0}),
    ("mlp_ensemble", {"width": 2.5}), ("mlp_ensemble", {"loss": "huber"}), ("mlp_ensemble", {"epochs": True}),
    ("mlp_ensemble", {"encoding": "zero_cost"}), ("mlp_ensemble", {"lr_schedule": "step"}),
    ("mlp_ensemble", {"weight_decay": -1e-4}), ("gcn", {"gcn_layers": 0}), ("gcn", {"lr": float("nan")}),
    ("gcn", {"batch_size": "32"}), ("gp", {"kernel": "linear"}), ("gp", {"matern_nu": 3.0}),
    ("gp", {"n_restarts": -1}), ("gp", {"length_scale": 0}), ("gbt", {"max_leaf_nodes": 1}),
    ("gbt", {"learning_rate": -0.1}), ("gbt", {"encoding": ["compact", "zero_cost"]}),
]


@pytest.mark.parametrize("name,override", BAD_HPARAMS, ids=[f"{n}-{next(iter(o))}" for n, o in BAD_HPARAMS])
def test_bad_hyperparameter_is_a_config_error(name, override):
    with pytest.raises(ConfigError, match=next(iter(override))):
        build(name, NB201Space(), **override)


def test_gcn_on_a_space_without_cell_graph_is_a_config_error():
    with pytest.raises(ConfigError, match="no cell graph"):
        build("gcn", ToyBenchmark().space)
    with pytest.raises(ConfigError, match="no cell graph"):
        graph_of(ToyBenchmark().space.all_archs()[0])


def test_encoding_preference_picks_the_first_the_space_offers():
    assert build("mlp_ensemble", NB201Space()).encoding == "path"
    assert build("mlp_ensemble", ToyBenchmark().space).encoding == "onehot"
    assert build("gp", NB101Space()).encoding == "adjacency_onehot"


@pytest.mark.parametrize("name", CLASSES)
def test_empty_or_inconsistent_training_data_is_a_config_error(name):
    predictor = build(name, NB201Space())
    archs = [NB201Space().sample(np.random.default_rng(i)) for i in range(5)]
    with pytest.raises(ConfigError, match="zero architectures"):
        predictor.fit([], np.array([]))
    with pytest.raises(ConfigError, match="5 architectures but 4 targets"):
        predictor.fit(archs, np.ones(4))
    with pytest.raises(ConfigError, match="finite"):
        predictor.fit(archs, np.array([1.0, 2.0, np.nan, 3.0, 4.0]))
    with pytest.raises(ConfigError, match="before fit"):
        predictor.predict(archs)


# --------------------------------------------------------------------------------------------------
# Contract: shapes, determinism, uncertainty, global random state
# --------------------------------------------------------------------------------------------------
def _global_states() -> tuple:
    torch_state = torch.random.get_rng_state().numpy().tobytes()
    return random.getstate(), pickle.dumps(np.random.get_state()), torch_state


@pytest.mark.parametrize("name", ENCODING_BASED)
def test_shapes_and_determinism_on_the_toy_space(name):
    space, archs, y = toy_data(40, seed=0)
    _, queries, _ = toy_data(15, seed=1)
    runs = []
    for global_seed in (1, 2):
        random.seed(global_seed), np.random.seed(global_seed), torch.manual_seed(global_seed)
        before = _global_states()
        predictor = build(name, space, seed=3)
        assert predictor.fit(archs, y) is predictor
        mean, std = predictor.predict_with_std(queries)
        assert _global_states() == before, "the predictor touched global random state"
        assert mean.shape == std.shape == (15,) and np.isfinite(mean).all() and (std >= 0).all()
        runs.append(mean)
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("name", ["mlp_ensemble", "gcn"])
def test_torch_models_same_generator_same_model_other_seed_differs(name):
    space = NB201Space()
    archs = [space.sample(np.random.default_rng(i)) for i in range(60)]
    y = np.array([sum(a.ops) + 0.1 * a.ops[0] for a in archs], dtype=float)
    queries = space.all_archs()[:200]
    first = build(name, space, seed=7).fit(archs, y).predict(queries)
    again = build(name, space, seed=7).fit(archs, y).predict(queries)
    other = build(name, space, seed=8).fit(archs, y).predict(queries)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_refitting_draws_fresh_weights_from_the_generator():
    space = NB201Space()
    archs = [space.sample(np.random.default_rng(i)) for i in range(30)]
    y = np.arange(30, dtype=float)
    predictor = build("mlp_ensemble", space)
    first = predictor.fit(archs, y).predict(archs)
    assert not np.array_equal(first, predictor.fit(archs, y).predict(archs))


def _near_and_far_cells(space):
    """Training cells whose first edge is 'none', held-out cells like them, and cells unlike any of them."""
    first_none = [a for a in space.all_archs() if a.ops[0] == 0]
    far = [a for a in space.all_archs() if a.ops[0] != 0 and a.ops[5] != 0][::97]
    return first_none[::40], first_none[5::97], far


@pytest.mark.parametrize("name", ["mlp_ensemble", "gp"])
def test_uncertainty_is_present(name):
    space = NB201Space()
    train, near, far = _near_and_far_cells(space)
    predictor = build(name, space).fit(train, np.array([sum(a.ops) for a in train], dtype=float))
    assert predictor.has_uncertainty
    mean, std = predictor.predict_with_std(near + far)
    assert (std > 0).all()
    np.testing.assert_allclose(mean, predictor.predict(near + far))
    if name == "gp":  # a GP's posterior spread grows away from its data (an ensemble's need not)
        assert std[len(near):].mean() > std[:len(near)].mean()


def test_trees_declare_no_uncertainty():
    space = NB201Space()
    archs = space.all_archs()[::300]
    predictor = build("gbt", space).fit(archs, np.arange(len(archs), dtype=float))
    assert not predictor.has_uncertainty
    assert not predictor.predict_with_std(archs)[1].any()


def test_targets_are_standardised_inside_fit():
    """Shifting and scaling the targets shifts and scales the predictions the same way."""
    space = NB201Space()
    archs = space.all_archs()[::100]
    y = np.array([sum(a.ops) for a in archs], dtype=float)
    base = build("gbt", space, seed=1).fit(archs, y).predict(archs)
    moved = build("gbt", space, seed=1).fit(archs, 1000.0 + 50.0 * y).predict(archs)
    np.testing.assert_allclose(moved, 1000.0 + 50.0 * base, rtol=1e-9, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Cell graphs
# --------------------------------------------------------------------------------------------------
def test_nb201_op_on_node_graph():
    arch = NB201Arch((0, 1, 2, 3, 4, 1))  # edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    adjacency, node_ops = graph_of(arch)
    assert node_ops == ["input", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3",
                        "skip_connect", "output"]
    assert not np.tril(adjacency).any(), "a DAG in topological order"
    expected = {(0, 1), (0, 2), (0, 4),  # ops leaving cell node 0 read the input
                (1, 3), (1, 5),  # 1<-0 feeds 2<-1 and 3<-1
                (2, 6), (3, 6),  # 2<-0 and 2<-1 feed 3<-2
                (4, 7), (5, 7), (6, 7)}  # ops into cell node 3 feed the output
    assert {tuple(e) for e in np.argwhere(adjacency)} == expected


def test_nb101_graph_is_the_pruned_cell():
    # vertex 2 is dangling (no path to the output), so pruning removes it
    matrix = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    arch = NB101Arch(matrix, ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    adjacency, node_ops = graph_of(arch)
    np.testing.assert_array_equal(adjacency, [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert node_ops == ["input", "conv3x3-bn-relu", "output"]


@pytest.mark.parametrize("space_name", ["nb201", "nb101"])
def test_batched_graphs_agree_with_graph_of(space_name):
    """The GCN's vectorised graph builders give what :func:`graph_of` gives, cell by cell."""
    node_ops, batched = predictors.GRAPH_SPACES[space_name]
    cells = NB201Space().all_archs()[::1999] if space_name == "nb201" else nb101_cells(10, seed=2)
    adjacency, labels, mask = batched(cells)
    for b, cell in enumerate(cells):
        expected_adjacency, expected_ops = graph_of(cell)
        n = len(expected_ops)
        assert mask[b].sum() == n
        np.testing.assert_array_equal((adjacency if adjacency.ndim == 2 else adjacency[b])[:n, :n],
                                      expected_adjacency)
        assert [node_ops[i] for i in labels[b, :n]] == expected_ops


def test_gcn_prediction_does_not_depend_on_padding_or_batch_company():
    """NB101 cells of different sizes are padded to 7 nodes: a cell's score must not change with the
    other cells scored alongside it."""
    cells = nb101_cells(40, seed=0)
    y = np.array([c.n_edges + len(c.ops) for c in cells], dtype=float)
    predictor = build("gcn", NB101Space()).fit(cells, y)
    together = predictor.predict(cells)
    alone = np.array([predictor.predict([c])[0] for c in cells[:8]])
    np.testing.assert_allclose(alone, together[:8], rtol=1e-5, atol=1e-5)
    assert len({len(c.ops) for c in cells}) > 1, "the draw should mix cell sizes"


def test_graph_table_builds_each_cell_once_and_returns_the_builders_graphs():
    """The GCN's graph table (scoring the same pool every iteration converts it once) gives, for any list
    of cells -- repeats, new ones, another order -- exactly what the batched builder gives."""
    cells = nb101_cells(30, seed=3)
    built = []

    def counting_builder(archs):
        built.extend(a.id for a in archs)
        return predictors._nb101_graphs(archs)

    table = predictors._GraphTable(counting_builder)
    first = table.tensors(cells[:20])
    again = table.tensors(cells[:20])
    mixed = cells[25:] + cells[:5] + cells[25:27]  # new cells, known ones, repeats within the call
    got = table.tensors(mixed)
    assert sorted(built) == sorted({c.id for c in cells[:20] + cells[25:]}), "each cell converted once"
    assert len(table) == 25
    assert [tuple(t.shape) for t in predictors._GraphTable(counting_builder).tensors([])] == [(0, 7, 7), (0, 7), (0, 7)]
    for tensors, archs in ((first, cells[:20]), (again, cells[:20]), (got, mixed)):
        expected = predictors._nb101_graphs(archs)
        for actual, wanted in zip(tensors, expected):
            np.testing.assert_array_equal(actual.numpy(), wanted)


def test_graph_table_shares_nb201s_one_adjacency():
    cells = NB201Space().all_archs()[::1500]
    adjacency, labels, mask = predictors._GraphTable(predictors._nb201_graphs).tensors(cells)
    assert adjacency.shape == (len(cells), 8, 8) and adjacency.stride(0) == 0, "a view, not a copy per cell"
    np.testing.assert_array_equal(labels.numpy(), predictors._nb201_graphs(cells)[1])


def test_gcn_graph_table_is_left_out_of_pickles_and_scores_do_not_depend_on_chunks(monkeypatch):
    cells = nb101_cells(60, seed=4)
    predictor = build("gcn", NB101Space()).fit(cells[:40], np.array([c.n_edges for c in cells[:40]], float))
    scores = predictor.predict(cells)
    assert len(predictor._graph_table) == 60
    restored = pickle.loads(pickle.dumps(predictor))
    assert len(restored._graph_table) == 0, "a checkpoint holds the model, not the cache"
    np.testing.assert_array_equal(restored.predict(cells), scores)
    monkeypatch.setattr(predictors, "_GCN_PREDICT_CHUNK", 7)  # chunks that split the pool unevenly
    np.testing.assert_allclose(predictor.predict(cells), scores, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CLASSES)
def test_every_predictor_runs_on_nb101_cells(name):
    cells = nb101_cells(50, seed=1)
    y = np.array([c.n_edges for c in cells], dtype=float)
    mean, std = build(name, NB101Space()).fit(cells[:40], y[:40]).predict_with_std(cells[40:])
    assert mean.shape == std.shape == (10,) and np.isfinite(mean).all()


# --------------------------------------------------------------------------------------------------
# Evaluation and ranking quality on NAS-Bench-201
# --------------------------------------------------------------------------------------------------
def test_evaluate_predictor_keeps_raw_predictions():
    space = NB201Space()
    archs = space.all_archs()
    train, test = archs[::200], archs[7::300]
    y_train = np.array([sum(a.ops) for a in train], dtype=float)
    y_test = np.array([sum(a.ops) for a in test], dtype=float)
    result = evaluate_predictor(lambda: build("gbt", space), train, y_train, test, y_test)
    assert result["n_train"] == len(train) and result["n_test"] == len(test)
    assert len(result["predictions"]) == len(result["std"]) == len(result["targets"]) == len(test)
    recomputed = stats.kendalltau(result["predictions"], result["targets"]).statistic
    assert result["kendall_tau"] == pytest.approx(recomputed)
    assert -1 <= result["spearman_rho"] <= 1
    with pytest.raises(ConfigError, match="test architectures"):
        evaluate_predictor(lambda: build("gbt", space), train, y_train, test, y_test[:-1])


@pytest.fixture(scope="module")
def nb201_split(nb201):
    """200 training and 1,000 held-out NB201 cells, CIFAR-10 validation accuracy (seed 0; predictor
    settings were chosen on other seeds)."""
    archs, y = nb201_data(nb201, 1200, seed=0)
    return nb201.space, archs[:200], y[:200], archs[200:], y[200:]


@pytest.mark.data
@pytest.mark.parametrize("name", CLASSES)
def test_ranks_nb201_cifar10_with_200_training_cells(name, nb201_split):
    space, train, y_train, test, y_test = nb201_split
    result = evaluate_predictor(lambda: build(name, space, quick=False), train, y_train, test, y_test)
    print(f"{name}: kendall tau {result['kendall_tau']:.3f}, spearman rho {result['spearman_rho']:.3f}, "
          f"fit {result['fit_seconds']:.1f} s")
    assert result["kendall_tau"] > 0.4

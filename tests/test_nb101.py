"""NB101: cell spec and official hash, the space's operations, the enumeration and the benchmark.

Tests marked ``slow`` need the enumeration of the whole space; it is built once per cache dir
(about 1-2 minutes on 2 cores) and reused from ``NASREPRO_CACHE`` afterwards.
"""
from __future__ import annotations

import csv
import gzip
import json
import pickle
from itertools import combinations

import numpy as np
import pytest

from benchmarks.nb101 import (INPUT, OPS, OUTPUT, SPACE_SIZE, VIS_CSV, NB101Arch, NB101Benchmark, NB101Space,
                              from_labels)
from nasrepro.errors import DataError, InvalidArchError, MissingEntryError, OutOfDomainError
from nasrepro.io import sha256_file

C3, C1, MP = OPS
DUMMY_PKL = "nb101/raw/naslib_tests_assets_nb101_dummy.pkl"
# a 7-vertex cell (the first of nb101_vis_30001archs_with_specs.csv)
FIRST_ADJ = "0100110001000000010010000010000001000000010000000"
FIRST_OPS = [INPUT, C3, MP, C3, C3, C1, OUTPUT]
FIRST_HASH = "00005c142e6f48ac74fdcf73e3439874"


def _matrix(bits: str) -> np.ndarray:
    n = int(round(len(bits) ** 0.5))
    return np.array([int(c) for c in bits]).reshape(n, n)


def _manifest_sha256(root, relative: str) -> str:
    with open(root / "MANIFEST.tsv", newline="") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if row and row[0] == relative:
                return row[2]
    raise AssertionError(f"{relative} not in MANIFEST.tsv")


def _trusted_pickle(root, relative: str):
    """Unpickle only after the file's sha256 matches the data root's manifest."""
    path = root / relative
    assert sha256_file(path) == _manifest_sha256(root, relative), f"{path}: checksum differs from MANIFEST"
    with open(path, "rb") as fh:
        return pickle.load(fh)


@pytest.fixture(scope="module")
def space():
    return NB101Space()


# --------------------------------------------------------------------------------------------------
# spec and hash (no data)
# --------------------------------------------------------------------------------------------------
def test_official_hash_of_a_known_cell():
    assert NB101Arch(_matrix(FIRST_ADJ), FIRST_OPS).id == FIRST_HASH


def test_isomorphic_cells_share_id_and_compare_equal():
    a = NB101Arch([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, C3, MP, OUTPUT])
    b = NB101Arch([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, MP, C3, OUTPUT])
    c = NB101Arch([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, MP, C1, OUTPUT])
    assert a.id == b.id and a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != c and a.id != c.id


def test_pruning_drops_vertices_off_every_path():
    # vertex 2 has no way to the output, vertex 3 none from the input
    full = NB101Arch([[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
                     [INPUT, C3, C1, MP, OUTPUT])
    small = NB101Arch([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    assert full.matrix == small.matrix and full.ops == small.ops and full == small


def test_edge_limit_applies_after_pruning():
    # 10 edges before pruning, 9 after (the edge 0 -> 6 into a dead-end vertex goes)
    m = np.zeros((7, 7), dtype=int)
    for x, y in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (0, 2), (0, 3), (1, 6)]:
        m[x, y] = 1
    assert NB101Arch(m, [INPUT, C3, C3, C3, C3, C3, OUTPUT]).n_edges == 9
    m[0, 6] = 1
    with pytest.raises(InvalidArchError, match="10 edges"):
        NB101Arch(m, [INPUT, C3, C3, C3, C3, C3, OUTPUT])


@pytest.mark.parametrize("matrix, ops, message", [
    ([[0, 1, 0], [0, 0, 1]], [INPUT, C3, OUTPUT], "square"),
    (np.triu(np.ones((8, 8), dtype=int), 1), [INPUT] + [C3] * 6 + [OUTPUT], "8 vertices"),
    ([[0, 1, 0], [1, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT], "upper-triangular"),
    ([[1, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT], "upper-triangular"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [C3, C3, OUTPUT], "start with"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, C1], "end with"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT], "unknown op"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], [INPUT, C3, OUTPUT], "no path"),
    ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, OUTPUT], "ops"),
    ([[0, 2, 0], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT], "0 or 1"),
    ([[0]], [INPUT], "at least"),
    (np.triu(np.ones((7, 7), dtype=int), 1), [INPUT] + [C3] * 5 + [OUTPUT], "21 edges"),
])
def test_invalid_cells_raise_one_clear_error(matrix, ops, message):
    with pytest.raises(InvalidArchError, match=message) as info:
        NB101Arch(matrix, ops)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------------
# space operations (no data)
# --------------------------------------------------------------------------------------------------
def test_format_parse_round_trip(space, rng):
    for _ in range(50):
        arch = space.sample(rng)
        text = space.format(arch)
        back = space.parse(text)
        assert back == arch and back.matrix == arch.matrix and back.ops == arch.ops
        assert "\n" not in text and json.loads(text)["ops"][0] == INPUT


@pytest.mark.parametrize("text", ["", "{}", "[1, 2]", '{"matrix": [[0]], "ops": ["input"]}', "zz" * 16,
                                  '{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"], "x": 1}'])
def test_parse_rejects_garbage(space, text):
    with pytest.raises(InvalidArchError):
        space.parse(text)


def test_sample_is_valid_and_reproducible(space):
    a = [space.sample(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    archs = [space.sample(np.random.default_rng(s)) for s in range(30)]
    assert len({x.id for x in archs}) > 20
    assert all(x.n_vertices <= 7 and x.n_edges <= 9 for x in archs)


def test_neighbours_are_valid_distinct_single_edits(space, rng):
    for _ in range(10):
        arch = space.sample(rng)
        while arch.n_vertices == 2:  # the bare input->output cell has no neighbours (tested below)
            arch = space.sample(rng)
        nbrs = space.neighbours(arch)
        ids = [n.id for n in nbrs]
        assert nbrs and len(set(ids)) == len(ids) and arch.id not in ids
        # an edit that prunes vertices also drops their other edges, so only same-size neighbours are at 1
        assert all(space.distance(arch, n) == 1 for n in nbrs if n.n_vertices == arch.n_vertices)
        assert all(space.distance(arch, n) >= 1 for n in nbrs)
        assert space.mutate(arch, rng).id in set(ids)


def test_neighbours_of_the_smallest_cell():
    space = NB101Space()
    arch = NB101Arch([[0, 1], [0, 0]], [INPUT, OUTPUT])
    # no edge can be removed and there is no op to change: a 2-vertex cell has no neighbours
    assert space.neighbours(arch) == []
    assert space.mutate(arch, np.random.default_rng(0)) != arch
    arch3 = NB101Arch([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    got = {(n.matrix, n.ops) for n in space.neighbours(arch3)}
    assert got == {(((0, 1), (0, 0)), (INPUT, OUTPUT)),               # drop 1->2 or 0->1 (prunes)
                   (((0, 1, 0), (0, 0, 1), (0, 0, 0)), (INPUT, C3, OUTPUT)),  # drop 0->2
                   (((0, 1, 1), (0, 0, 1), (0, 0, 0)), (INPUT, C1, OUTPUT)),
                   (((0, 1, 1), (0, 0, 1), (0, 0, 0)), (INPUT, MP, OUTPUT))}


def test_encodings_by_hand(space):
    direct = NB101Arch([[0, 1], [0, 0]], [INPUT, OUTPUT])
    chain = NB101Arch([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, MP, OUTPUT])
    both = NB101Arch([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, C1, OUTPUT])
    paths = space.encode([direct, chain, both], "path")
    assert paths.shape == (3, 364) and paths.dtype == np.float32
    assert np.flatnonzero(paths[0]).tolist() == [0]
    assert np.flatnonzero(paths[1]).tolist() == [3]  # one path through maxpool: 3^0 * (2 + 1)
    assert np.flatnonzero(paths[2]).tolist() == [0, 2]
    adj = space.encode([direct, chain], "adjacency_onehot")
    assert adj.shape == (2, 36)
    # padded to 7 vertices, output last: the edge 0 -> output is upper-triangle entry (0, 6), index 5
    assert np.flatnonzero(adj[0]).tolist() == [5]
    # chain: edges 0->1 (index 0) and 1->6 (index 6 + 4 = 10); vertex 1 is maxpool: NASLib column 0
    assert np.flatnonzero(adj[1]).tolist() == [0, 10, 21]
    # conv3x3 is NASLib column 1, conv1x1 column 2
    conv_cell = NB101Arch([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0] * 4], [INPUT, C3, C1, OUTPUT])
    conv = space.encode([conv_cell], "adjacency_onehot")[0]
    assert np.flatnonzero(conv[21:]).tolist() == [1, 5]
    with pytest.raises(OutOfDomainError):
        space.encode([direct], "onehot")


def test_encoding_rows_are_consistent(space, rng):
    archs = [space.sample(rng) for _ in range(40)]
    adj = space.encode(archs, "adjacency_onehot")
    for arch, row in zip(archs, adj):
        assert row[:21].sum() == arch.n_edges
        assert row[21:].reshape(5, 3).sum() == arch.n_vertices - 2
    paths = space.encode(archs, "path")
    assert (paths.sum(1) >= 1).all()


def test_distance_is_a_metric_on_cells(space, rng):
    archs = [space.sample(rng) for _ in range(12)]
    a = NB101Arch([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, C3, MP, OUTPUT])
    b = NB101Arch([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, MP, C3, OUTPUT])
    assert space.distance(a, b) == 0
    for x, y in combinations(archs, 2):
        assert space.distance(x, y) == space.distance(y, x)
        assert (space.distance(x, y) == 0) == (x == y)
    for x, y, z in combinations(archs[:8], 3):
        assert space.distance(x, z) <= space.distance(x, y) + space.distance(y, z)


def test_space_size():
    assert NB101Space().size == SPACE_SIZE == 423_624


# --------------------------------------------------------------------------------------------------
# official hash against the reference records (data)
# --------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_hash_matches_1k_reference_records(data_root):
    with open(data_root / "nb101/raw/nasbench_vis_data-1k_with_adjacency.json") as fh:
        d = json.load(fh)
    assert len(d["key"]) == 1000
    ours = [from_labels(np.array(m, dtype=int), ops).id for m, ops in zip(d["adjacency"], d["operations"])]
    assert sum(a == b for a, b in zip(ours, d["key"])) == 1000


@pytest.mark.data
def test_hash_matches_naslib_dummy_records(data_root):
    records = _trusted_pickle(data_root, DUMMY_PKL)
    assert len(records) == 30
    for key, (fixed, _) in records.items():
        arch = NB101Arch(fixed["module_adjacency"], fixed["module_operations"])
        assert arch.id == key
        # the stored specs are already pruned
        assert np.array_equal(np.array(arch.matrix), fixed["module_adjacency"])


# --------------------------------------------------------------------------------------------------
# enumeration and benchmark (slow: they need the enumeration)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def enumeration(data_root):
    return NB101Space().enumeration


@pytest.fixture(scope="module")
def nb101(data_root, enumeration):
    return NB101Benchmark.load(data_root)


def _adjacency_string(arch: NB101Arch) -> str:
    return "".join(str(x) for row in arch.matrix for x in row)


@pytest.mark.slow
@pytest.mark.data
def test_enumeration_matches_reference_specs(data_root, enumeration):
    assert len(enumeration) == SPACE_SIZE
    with gzip.open(data_root / "nb101/nb101_all_423624_specs.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == SPACE_SIZE
    assert [r["hash"] for r in rows] == [h.decode() for h in enumeration.hashes]
    # the spec of every cell is the one nasbench's generator meets first
    for i in range(SPACE_SIZE):
        arch, row = enumeration.arch(i), rows[i]
        assert (arch.n_vertices, _adjacency_string(arch), "|".join(arch.ops)) == \
            (int(row["n_vertices"]), row["adjacency"], row["ops"])
    # and re-hashing a sample of rows reproduces their stored hash
    for i in range(0, SPACE_SIZE, 4001):
        arch = enumeration.arch(i)
        assert NB101Arch(arch.matrix, arch.ops).id == arch.id


@pytest.mark.slow
@pytest.mark.data
def test_every_table_hash_gets_its_spec(data_root, nb101):
    with open(data_root / "nb101/nb101_vis_30001archs_with_specs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    archs = {a.id: a for a in nb101.archs_with_data()}
    assert len(rows) == len(archs) == 30_001
    for row in rows:
        arch = archs[row["hash"]]
        assert (arch.n_vertices, _adjacency_string(arch), "|".join(arch.ops)) == \
            (int(row["n_vertices"]), row["adjacency"], row["ops"])
    sample = rows[::1000]
    got = nb101.query_many([r["hash"] for r in sample], "cifar10", epoch=36)
    np.testing.assert_allclose(got, [100 * float(r["val_acc_36ep"]) for r in sample], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.data
def test_vis_benchmark_queries(data_root, nb101):
    arch = NB101Arch(_matrix(FIRST_ADJ), FIRST_OPS)
    with open(data_root / VIS_CSV, newline="") as fh:
        first = next(csv.DictReader(fh))
    assert first["hash"] == FIRST_HASH
    # percent, single run: seed None and seed 0 are the same number
    assert nb101.query(arch, "cifar10") == pytest.approx(100 * float(first["val_acc_108ep"]))
    assert nb101.query(arch, "cifar10", seed=0) == nb101.query(arch, "cifar10", epoch=108)
    assert nb101.query(FIRST_HASH, "CIFAR10", epoch=4) == pytest.approx(100 * float(first["val_acc_4ep"]))
    assert nb101.query(arch, "cifar10", "train_time", None) == pytest.approx(
        float(first["final_training_time_108ep_s"]))
    assert nb101.query(arch, "cifar10", "params", None) == int(first["trainable_parameters"])
    assert nb101.query(nb101.space.format(arch), "cifar10") == nb101.query(arch, "cifar10")
    with pytest.raises(MissingEntryError, match="test accuracy"):
        nb101.query(arch, "cifar10", split="test")
    with pytest.raises(MissingEntryError, match="single run"):
        nb101.query(arch, "cifar10", seed=1)
    with pytest.raises(MissingEntryError):
        nb101.query(arch, "cifar10", "train_time", None, epoch=36)
    with pytest.raises(OutOfDomainError):
        nb101.query(arch, "cifar10", epoch=200)
    with pytest.raises(OutOfDomainError):
        nb101.query(arch, "cifar100")
    with pytest.raises(OutOfDomainError):
        nb101.query(arch, "cifar10", seed=3)
    with pytest.raises(OutOfDomainError, match="not the module hash"):
        nb101.query("f" * 32, "cifar10")
    with pytest.raises(InvalidArchError):
        nb101.query("not-an-arch", "cifar10")
    with pytest.raises(InvalidArchError):
        nb101.query(12, "cifar10")


@pytest.mark.slow
@pytest.mark.data
def test_vis_benchmark_coverage_and_batch(data_root, nb101, rng):
    archs = nb101.archs_with_data()
    assert len(archs) == 30_001 and all(nb101.has_data(a) for a in archs[:200])
    # a cell outside the 30,001: in the space, no data
    missing = next(a for a in (nb101.space.sample_uniform(rng) for _ in range(1000)) if not nb101.has_data(a))
    with pytest.raises(MissingEntryError, match="30,001 of the 423,624"):
        nb101.query(missing, "cifar10")
    pick = [archs[i] for i in rng.choice(len(archs), 300, replace=False)]
    batch = nb101.query_many(pick, "cifar10", epoch=12)
    assert batch.shape == (300,) and np.all((batch > 0) & (batch <= 100))
    np.testing.assert_array_equal(batch, [nb101.query(a, "cifar10", epoch=12) for a in pick])
    np.testing.assert_array_equal(batch, nb101.query_many(nb101.rows(pick), "cifar10", epoch=12))
    with pytest.raises(MissingEntryError):
        nb101.query_many(pick + [missing], "cifar10")
    assert nb101.data_sha256() == {"table": _manifest_sha256(data_root, VIS_CSV)}
    # everything describe() lists is answerable
    for spec in nb101.describe():
        for epoch in spec.epochs or (None,):
            assert np.isfinite(nb101.query_many(pick[:5], spec.dataset, spec.metric, spec.split, epoch)).all()


@pytest.mark.slow
@pytest.mark.data
def test_oracle_on_the_vis_table(nb101, rng):
    from benchmarks.base import Budget, Oracle, OracleTask

    arch = nb101.archs_with_data()[7]
    oracle = Oracle(nb101, OracleTask("cifar10", valid_seed="sample"), Budget(max_queries=2))
    obs = oracle.evaluate(arch, rng)
    assert obs.valid == nb101.query(arch, "cifar10")  # the single run is the only one to draw
    assert obs.seconds == nb101.query(arch, "cifar10", "train_time", None)
    assert np.isnan(oracle.test_accuracy(arch))  # not in this copy: NaN for reports, never a guess


@pytest.mark.slow
@pytest.mark.data
def test_space_parses_module_hashes(enumeration):
    space = NB101Space()
    arch = space.parse(FIRST_HASH)
    assert arch.id == FIRST_HASH and _adjacency_string(arch) == FIRST_ADJ
    with pytest.raises(OutOfDomainError):
        space.parse("0" * 32)
    uniform = [space.sample_uniform(np.random.default_rng(s)) for s in range(5)]
    assert all(NB101Arch(a.matrix, a.ops).id == a.id for a in uniform)


@pytest.mark.slow
@pytest.mark.data
def test_official_tfrecord_is_preferred_and_read(data_root, enumeration, tmp_path, monkeypatch):
    """A tiny ``nasbench_only108.tfrecord`` written from the 30 official NASLib records (3 runs each)."""
    from benchmarks.formats.nb101_tfrecord import EvaluationData, ModelMetrics, Record, write_records

    dummy = _trusted_pickle(data_root, DUMMY_PKL)
    records = []
    for key, (fixed, computed) in dummy.items():
        for run in computed[108]:
            evals = (EvaluationData(),
                     EvaluationData(54.0, run["halfway_training_time"], run["halfway_train_accuracy"],
                                    run["halfway_validation_accuracy"], run["halfway_test_accuracy"]),
                     EvaluationData(108.0, run["final_training_time"], run["final_train_accuracy"],
                                    run["final_validation_accuracy"], run["final_test_accuracy"]))
            records.append(Record(key, 108, fixed["module_adjacency"], tuple(fixed["module_operations"]),
                                  ModelMetrics(evals, fixed["trainable_parameters"], 0.0)))
    root = tmp_path / "root"
    write_records(root / "nb101" / "nasbench_only108.tfrecord", records)
    bench = NB101Benchmark.load(root)
    assert bench.kind == "tfrecord" and len(bench.archs_with_data()) == 30
    for key, (fixed, computed) in list(dummy.items())[:10]:
        runs = computed[108]
        test = [100 * r["final_test_accuracy"] for r in runs]
        valid = [100 * r["final_validation_accuracy"] for r in runs]
        assert [bench.query(key, "cifar10", split="test", seed=s) for s in range(3)] == pytest.approx(test)
        assert bench.query(key, "cifar10", split="test") == pytest.approx(np.mean(test))
        assert bench.query(key, "cifar10") == pytest.approx(np.mean(valid))
        assert bench.query(key, "cifar10", "train_time", None, seed=2) == pytest.approx(
            runs[2]["final_training_time"])
        assert bench.query(key, "cifar10", "params", None) == fixed["trainable_parameters"]
    with pytest.raises(MissingEntryError, match="epoch 4"):
        bench.query(next(iter(dummy)), "cifar10", epoch=4)
    assert not bench.has_data(FIRST_HASH)
    # a record for a hash outside the space is a data error, not a silent skip
    bad = root / "bad"
    first = records[0]
    write_records(bad / "nb101" / "nasbench_only108.tfrecord",
                  [Record("0" * 32, 108, first.matrix, first.ops, first.metrics)])
    with pytest.raises(DataError, match="record 0"):
        NB101Benchmark.load(bad)


def test_neighbour_order_does_not_depend_on_what_was_cached_before():
    """Regression: a cache keyed by id returned the neighbour order of whichever isomorphic matrix came
    first, so a mutation drawn with the same generator depended on earlier calls in the process."""
    from benchmarks.nb101 import NB101Arch, NB101Space

    # the same cell (one id) written with its two inner vertices swapped
    a = NB101Arch(((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0)),
                  ("input", "conv3x3-bn-relu", "maxpool3x3", "output"))
    b = NB101Arch(((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0)),
                  ("input", "maxpool3x3", "conv3x3-bn-relu", "output"))
    assert a.id == b.id
    fresh = [NB101Space().neighbours(b) for _ in range(2)]
    warmed = NB101Space()
    warmed.neighbours(a)
    assert [n.id for n in warmed.neighbours(b)] == [n.id for n in fresh[0]] == [n.id for n in fresh[1]]

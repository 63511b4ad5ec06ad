"""NB201 space and benchmark on the master CSV: published numbers, contracts, typed errors, cache."""
from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest

from benchmarks.nb201 import (OPS, PATH_ENCODING_LENGTH, SPACE_SIZE, NB201Arch, NB201Benchmark, NB201Space,
                              parse, to_string)
from nasrepro.errors import InvalidArchError, MissingEntryError, OutOfDomainError

DRNAS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MASTER = "nb201/nb201_master_15625.csv"

space = NB201Space()


# -- space (no data) -----------------------------------------------------------------------------------
def test_parse_print_round_trip_over_whole_space():
    archs = space.all_archs()
    assert len(archs) == SPACE_SIZE == len({a.id for a in archs})
    for arch in archs:
        assert parse(arch.id) == arch
        assert to_string(arch.ops) == arch.id


@pytest.mark.parametrize("text", [
    "", "|nor_conv_3x3~0|", 42,
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|",  # node 3 short
    "|conv~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",  # bad op
    "|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",  # ~1
    "nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3-0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
])
def test_malformed_strings_raise_invalid_arch(text):
    with pytest.raises(InvalidArchError):
        parse(text)


def test_arch_rejects_bad_op_indices():
    with pytest.raises(InvalidArchError):
        NB201Arch((0, 1, 2, 3, 4))
    with pytest.raises(InvalidArchError):
        NB201Arch((0, 1, 2, 3, 4, 5))


def test_neighbours_are_24_distinct_at_distance_one(rng):
    for arch in [space.sample(rng) for _ in range(20)]:
        nbrs = space.neighbours(arch)
        assert len(nbrs) == 6 * (len(OPS) - 1) == 24
        assert len({n.id for n in nbrs}) == 24
        assert all(space.distance(arch, n) == 1 for n in nbrs)


def test_mutate_never_returns_parent_and_is_seeded():
    arch = parse(DRNAS_CELL)
    children = [space.mutate(arch, np.random.default_rng(s)) for s in range(300)]
    assert all(c != arch and space.distance(arch, c) == 1 for c in children)
    assert len({c.id for c in children}) == 24  # every neighbour is reachable
    again = [space.mutate(arch, np.random.default_rng(s)) for s in range(300)]
    assert again == children


def test_encodings():
    archs = [parse(DRNAS_CELL), NB201Arch((0,) * 6), NB201Arch((4,) * 6)]
    onehot = space.encode(archs, "onehot")
    assert onehot.shape == (3, 30) and (onehot.sum(axis=1) == 6).all()
    np.testing.assert_array_equal(space.encode(archs, "adjacency_onehot"), onehot)
    np.testing.assert_array_equal(space.encode(archs, "ops"), np.array([a.ops for a in archs]))
    path = space.encode(archs, "path")
    assert path.shape == (3, PATH_ENCODING_LENGTH) == (3, 155)
    # DrNAS cell: 0->3 skip; 0->1->3 and 0->2->3 are both conv3x3,conv3x3 (one feature); 0->1->2->3 conv x3
    assert path[0].sum() == 3
    # all-none: the four paths are none, (none,none) twice, (none,none,none): features 0, 5, 30
    assert np.flatnonzero(path[1]).tolist() == [0, 5, 30]
    assert np.flatnonzero(path[2]).tolist() == [4, 5 + 4 + 4 * 5, 30 + 4 + 4 * 5 + 4 * 25]
    with pytest.raises(OutOfDomainError):
        space.encode(archs, "graph")


def test_path_encoding_ignores_edges_off_the_path_it_encodes():
    # edge 2 (1->2) lies only on the 3-edge path: changing it changes exactly one feature pair
    a, b = NB201Arch((3, 3, 1, 2, 2, 2)), NB201Arch((3, 3, 2, 2, 2, 2))
    pa, pb = space.encode([a, b], "path")
    assert (pa != pb).sum() == 2


# -- benchmark on the master CSV -------------------------------------------------------------------------
@pytest.mark.data
def test_drnas_cell_published_numbers(nb201):
    q = nb201.query
    assert q(DRNAS_CELL, "cifar10", split="test") == pytest.approx(94.363, abs=5e-4)
    assert q(DRNAS_CELL, "cifar10", split="valid") == pytest.approx(91.553, abs=5e-4)
    assert q(DRNAS_CELL, "cifar100", split="valid") == pytest.approx(73.49, abs=5e-3)
    assert q(DRNAS_CELL, "cifar100", split="test") == pytest.approx(73.51, abs=5e-3)
    assert q(DRNAS_CELL, "imagenet16-120", split="valid") == pytest.approx(46.37, abs=5e-3)
    assert q(DRNAS_CELL, "imagenet16-120", split="test") == pytest.approx(46.34, abs=5e-3)


@pytest.mark.data
def test_maxima_and_best_validation_architecture(nb201):
    everything = np.arange(SPACE_SIZE)
    tests = {ds: nb201.query_many(everything, ds, split="test") for ds in nb201.datasets}
    assert tests["cifar10"].max() == pytest.approx(94.373, abs=5e-4)
    assert tests["cifar100"].max() == pytest.approx(73.513, abs=5e-4)
    assert tests["imagenet16-120"].max() == pytest.approx(47.311, abs=5e-4)
    best_valid = int(np.argmax(nb201.query_many(everything, "cifar10", split="valid")))
    assert tests["cifar10"][best_valid] == pytest.approx(94.373, abs=5e-4)


@pytest.mark.data
def test_valid_and_test_are_different_measurements_everywhere(nb201):
    everything = np.arange(SPACE_SIZE)
    for ds in nb201.datasets:
        valid = nb201.query_many(everything, ds, split="valid")
        test = nb201.query_many(everything, ds, split="test")
        assert np.isfinite(valid).all() and np.isfinite(test).all()
        ties = np.flatnonzero(valid == test)
        if ds == "cifar10":  # two different training runs: never equal
            assert ties.size == 0
        else:
            # x-valid and x-test are disjoint halves; the data has 10 (CIFAR-100) and 1 (ImageNet16-120)
            # genuine exact ties, mostly collapsed cells at chance level (1.0 %) on both halves
            assert ties.size <= 0.001 * SPACE_SIZE, (ds, ties.size)
        assert np.median(np.abs(valid - test)) > 0.1


@pytest.mark.data
def test_api_index_order_equals_csv(nb201, data_root):
    with open(data_root / MASTER, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows[:: 97] + rows[-3:]:
        index = int(row["api_index"])
        assert nb201.index_of(row["arch_str"]) == index
        assert nb201.arch_at(index).id == row["arch_str"]
        assert nb201.query(index_arch := nb201.arch_at(index), "cifar10", split="test") == \
            pytest.approx(float(row["cifar10_test_200ep"]))
        assert nb201.index_of(index_arch) == index
    assert [a.id for a in nb201.archs_with_data()][:50] == [r["arch_str"] for r in sorted(
        rows, key=lambda r: int(r["api_index"]))][:50]


@pytest.mark.data
def test_query_many_equals_query(nb201, rng):
    archs = [space.sample(rng) for _ in range(40)]
    for ds in nb201.datasets:
        for kwargs in ({"split": "valid"}, {"split": "test"}, {"split": "valid", "epoch": 12},
                       {"metric": "params", "split": None}, {"metric": "train_time", "split": None}):
            many = nb201.query_many(archs, ds, **kwargs)
            one = [nb201.query(a, ds, **kwargs) for a in archs]
            np.testing.assert_array_equal(many, one)
            by_index = nb201.query_many(nb201.indices(archs), ds, **kwargs)
            np.testing.assert_array_equal(by_index, one)
            np.testing.assert_array_equal(nb201.query_many([a.id for a in archs], ds, **kwargs), one)


@pytest.mark.data
def test_per_seed_values_and_their_mean(nb201):
    index = nb201.index_of(DRNAS_CELL)
    seeds = [nb201.query(DRNAS_CELL, "cifar10", split="valid", seed=s) for s in range(3)
             if not np.isnan(nb201.table["cifar10.valid.200.seeds"][index, s])]
    assert len(seeds) >= 2
    assert np.mean(seeds) == pytest.approx(nb201.query(DRNAS_CELL, "cifar10", split="valid"), abs=1e-4)


@pytest.mark.data
def test_typed_errors(nb201):
    q = nb201.query
    with pytest.raises(OutOfDomainError, match="dataset"):
        q(DRNAS_CELL, "mnist")
    with pytest.raises(OutOfDomainError, match="metric"):
        q(DRNAS_CELL, "cifar10", metric="flops")
    with pytest.raises(OutOfDomainError, match="split"):
        q(DRNAS_CELL, "cifar10", split="valtest")  # no pool split for CIFAR-10
    with pytest.raises(OutOfDomainError, match="split"):
        q(DRNAS_CELL, "cifar100", split="train")
    with pytest.raises(OutOfDomainError, match="epoch"):
        q(DRNAS_CELL, "cifar10", epoch=50)
    with pytest.raises(OutOfDomainError, match="seed"):
        q(DRNAS_CELL, "cifar10", seed=3)
    with pytest.raises(OutOfDomainError, match="seed"):
        q(DRNAS_CELL, "cifar10", seed=True)
    with pytest.raises(OutOfDomainError, match="device"):
        q(DRNAS_CELL, "cifar10", metric="latency", split=None, device="abacus")
    with pytest.raises(OutOfDomainError, match="device"):
        q(DRNAS_CELL, "cifar10", metric="latency", split=None)
    with pytest.raises(OutOfDomainError, match="device"):
        q(DRNAS_CELL, "cifar10", device=nb201.devices[0])
    with pytest.raises(MissingEntryError):
        q(DRNAS_CELL, "cifar10", split="test", seed=0)  # only the mean over runs is recorded
    with pytest.raises(MissingEntryError):
        q(DRNAS_CELL, "cifar100", split="valtest", epoch=12)
    with pytest.raises(MissingEntryError):
        q(DRNAS_CELL, "cifar10", metric="train_time", split=None, epoch=12)
    two_run = int(np.flatnonzero(np.isnan(nb201.table["cifar10.valid.200.seeds"][:, 2]))[0])
    with pytest.raises(MissingEntryError):
        q(nb201.arch_at(two_run), "cifar10", seed=2)
    with pytest.raises(MissingEntryError):
        nb201.query_many(np.array([0, two_run]), "cifar10", seed=2)
    with pytest.raises(InvalidArchError):
        q("|bogus~0|", "cifar10")
    with pytest.raises(InvalidArchError):
        q(12, "cifar10")
    with pytest.raises(OutOfDomainError):
        nb201.arch_at(SPACE_SIZE)
    with pytest.raises(OutOfDomainError):
        nb201.query_many(np.array([0, SPACE_SIZE]), "cifar10")


@pytest.mark.data
def test_latency_and_describe(nb201):
    assert nb201.devices, "the shared data root has the HELP latency table"
    value = nb201.query(DRNAS_CELL, "cifar10", metric="latency", split=None, device=nb201.devices[0])
    assert value > 0
    specs = nb201.describe()
    assert {(s.dataset, s.split) for s in specs if s.metric == "accuracy"} >= {
        ("cifar10", "valid"), ("cifar10", "test"), ("cifar100", "valtest")}
    assert nb201.source == "master" and nb201.has_data(DRNAS_CELL)


# -- cache ------------------------------------------------------------------------------------------------
def _built_at(cache) -> float:
    pointer = json.loads((cache / "nb201" / "current.json").read_text())
    return json.loads((cache / "nb201" / pointer["key"] / "meta.json").read_text())["built_at"]


@pytest.mark.data
def test_cache_built_once_reused_and_rebuilt_on_change(data_root, tmp_path, monkeypatch):
    root, cache = tmp_path / "data", tmp_path / "cache"
    (root / "nb201").mkdir(parents=True)
    shutil.copy(data_root / MASTER, root / MASTER)
    monkeypatch.setenv("NASREPRO_CACHE", str(cache))

    first = NB201Benchmark.load(root)
    built = _built_at(cache)
    entry = first.table.folder
    meta_mtime = (entry / "meta.json").stat().st_mtime_ns
    second = NB201Benchmark.load(root)
    assert second.table.folder == entry and _built_at(cache) == built
    assert (entry / "meta.json").stat().st_mtime_ns == meta_mtime

    # touched but identical: content hash unchanged, so no rebuild
    os.utime(root / MASTER, ns=(1, 1))
    assert NB201Benchmark.load(root).table.folder == entry and _built_at(cache) == built

    # altered: one accuracy changes, the cache is rebuilt and serves the new value
    text = (root / MASTER).read_text()
    lines = text.splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    col = header.index("cifar10_test_200ep")
    fields = next(csv.reader([lines[1]]))
    old_value = fields[col]
    fields[col] = "12.5"
    lines[1] = ",".join(f'"{f}"' if "," in f else f for f in fields) + "\n"
    (root / MASTER).write_text("".join(lines))
    third = NB201Benchmark.load(root)
    assert third.table.folder != entry and _built_at(cache) > built
    index = int(fields[0])
    assert third.query(third.arch_at(index), "cifar10", split="test") == 12.5
    assert float(old_value) != 12.5


@pytest.mark.data
def test_remembered_queries_still_reject_lookalike_arguments(nb201):
    """Regression: resolved queries are memoised; True == 1 and 12.0 == 12 must not share an entry."""
    nb201.query(DRNAS_CELL, "cifar10", seed=1)
    nb201.query(DRNAS_CELL, "cifar10", epoch=12)
    with pytest.raises(OutOfDomainError, match="seed"):
        nb201.query(DRNAS_CELL, "cifar10", seed=True)
    with pytest.raises(OutOfDomainError, match="epoch"):
        nb201.query(DRNAS_CELL, "cifar10", epoch=12.0)
    with pytest.raises(OutOfDomainError):
        nb201.query(DRNAS_CELL, "cifar10", seed=[1])  # unhashable: rejected, not a TypeError
    assert nb201.query(DRNAS_CELL, "cifar10", seed=np.int64(1)) == nb201.query(DRNAS_CELL, "cifar10", seed=1)


@pytest.mark.parametrize("content", [bytes(range(256)) * 64, b"api_index,arch_str\n0,x\n", b""])
def test_unreadable_master_csv_is_a_data_error(tmp_path, monkeypatch, content):
    from nasrepro.errors import DataError

    root = tmp_path / "data"
    (root / "nb201").mkdir(parents=True)
    (root / MASTER).write_bytes(content)
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError):
        NB201Benchmark.load(root)

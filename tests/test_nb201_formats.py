"""Official NB201 / NATS-Bench formats: tiny files in the real nested layout, written here."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmarks.formats import nb201_official as official
from benchmarks.nb201 import SPACE_SIZE, NB201Benchmark, NB201Space
from nasrepro.errors import DataError, MissingEntryError, UnsafeFileError

DRNAS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
EVALUATED = (0, 7, 1234, 9999, 15624)


@pytest.fixture(scope="module")
def meta_archs() -> list[str]:
    # a shuffled order: the readers must take API indices from meta_archs, not from the strings
    archs = [a.id for a in NB201Space().all_archs()]
    order = np.random.default_rng(7).permutation(len(archs))
    return [archs[i] for i in order]


def _runs(index: int, epochs: int, v1_0: bool = False) -> dict:
    """Distinct, recognisable numbers per (index, run, seed, split): value = base + small offsets."""
    base = 50.0 + index / 1000.0 + (0.5 if epochs == 12 else 0.0)
    seconds = None if v1_0 else 1000.0 + index
    n_seeds = 2 if index % 2 else 3
    seeds = [777, 888, 999][:n_seeds]
    runs = {
        "cifar10-valid": {s: ({"x-valid": base + k, "ori-test": base + 10 + k}, seconds, 0.5)
                          for k, s in enumerate(seeds)},
        "cifar10": {s: ({"ori-test": base + 20 + k}, None if seconds is None else 2 * seconds, 0.5)
                    for k, s in enumerate(seeds)},
        "cifar100": {s: ({"x-valid": base + 30 + k, "x-test": base + 31 + k, "ori-test": base + 30.5 + k},
                         seconds, 0.6) for k, s in enumerate(seeds)},
        "ImageNet16-120": {s: ({"x-valid": base - 20 + k, "x-test": base - 19 + k, "ori-test": base - 19.5 + k},
                               None if seconds is None else 3 * seconds, 0.7) for k, s in enumerate(seeds)},
    }
    if v1_0 and epochs == 12:  # v1.0: the 12-epoch schedule only on cifar10-valid
        runs = {"cifar10-valid": runs["cifar10-valid"]}
    return runs


def _infos(meta_archs, v1_0: bool = False, hp_names=("less", "full")) -> dict:
    out = {}
    for index in EVALUATED:
        arch = meta_archs[index]
        out[index] = {hp_names[0]: official.arch_results_state(arch, index, 12, _runs(index, 12, v1_0)),
                      hp_names[1]: official.arch_results_state(arch, index, 200, _runs(index, 200, v1_0))}
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _root_with(tmp_path, meta_archs, kind: str):
    root = tmp_path / f"root-{kind}"
    (root / "nb201").mkdir(parents=True)
    if kind == "v1_1":
        official.write_nb201_pth(root / "nb201" / official.NB201_V1_1, meta_archs, _infos(meta_archs))
    elif kind == "v1_0":
        official.write_nb201_pth(root / "nb201" / official.NB201_V1_0, meta_archs, _infos(meta_archs, True))
    elif kind == "nats":
        official.write_nats_simple(root / "nb201" / official.NATS_TSS_SIMPLE, meta_archs,
                                   _infos(meta_archs, hp_names=("12", "200")).items())
    return root


# -- safety ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["v1_1", "v1_0", "nats"])
def test_untrusted_pickles_are_refused(tmp_path, cache, meta_archs, kind):
    root = _root_with(tmp_path, meta_archs, kind)
    with pytest.raises(UnsafeFileError, match="trust"):
        NB201Benchmark.load(root)
    assert not list(cache.glob("nb201-*/*/meta.json"))  # nothing converted


def test_registered_digest_loads_without_trust_and_a_wrong_one_is_refused(tmp_path, cache, meta_archs,
                                                                           monkeypatch):
    root = _root_with(tmp_path, meta_archs, "v1_1")
    path = root / "nb201" / official.NB201_V1_1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(official.KNOWN_DIGESTS, official.NB201_V1_1, ("sha256", "0" * 64))
    with pytest.raises(UnsafeFileError, match="differs"):
        NB201Benchmark.load(root)
    monkeypatch.setitem(official.KNOWN_DIGESTS, official.NB201_V1_1, ("sha256", sha))
    bench = NB201Benchmark.load(root)
    assert bench.source == official.NB201_V1_1


def test_cached_conversion_is_reused_without_unpickling(tmp_path, cache, meta_archs, monkeypatch):
    root = _root_with(tmp_path, meta_archs, "v1_1")
    first = NB201Benchmark.load(root, trust=True)
    # a second load must not unpickle: make unpickling impossible and load without trust
    monkeypatch.setattr(official, "read_nb201_pth", lambda *a, **k: pytest.fail("unpickled again"))
    second = NB201Benchmark.load(root)
    assert second.table.folder == first.table.folder


# -- contents ---------------------------------------------------------------------------------------------
def _check_v1_1_values(bench, meta_archs):
    for index in EVALUATED:
        arch = meta_archs[index]
        assert bench.index_of(arch) == index and bench.arch_at(index).id == arch
        base = 50.0 + index / 1000.0
        n = 2 if index % 2 else 3
        mean_offset = (n - 1) / 2
        q = bench.query
        assert q(arch, "cifar10", split="valid") == pytest.approx(base + mean_offset)
        assert q(arch, "cifar10", split="test") == pytest.approx(base + 20 + mean_offset)
        assert q(arch, "cifar100", split="valid") == pytest.approx(base + 30 + mean_offset)  # x-valid itself
        assert q(arch, "cifar100", split="test") == pytest.approx(base + 31 + mean_offset)
        assert q(arch, "cifar100", split="valtest") == pytest.approx(base + 30.5 + mean_offset)
        assert q(arch, "imagenet16-120", split="valid") == pytest.approx(base - 20 + mean_offset)
        assert q(arch, "cifar10", split="valid", epoch=12) == pytest.approx(base + 0.5 + mean_offset)
        assert q(arch, "imagenet16-120", split="test", epoch=12) == pytest.approx(base + 0.5 - 19 + mean_offset)
        for k in range(n):  # per-seed, packed in seed order, for every split
            assert q(arch, "cifar10", split="valid", seed=k) == pytest.approx(base + k)
            assert q(arch, "cifar100", split="valid", seed=k) == pytest.approx(base + 30 + k)
            assert q(arch, "cifar10", split="test", seed=k) == pytest.approx(base + 20 + k)
        if n == 2:
            with pytest.raises(MissingEntryError):
                q(arch, "cifar10", split="valid", seed=2)
        # train time of cifar10 is the cifar10-valid run's (what a search pays for its valid signal)
        assert q(arch, "cifar10", metric="train_time", split=None) == pytest.approx(1000.0 + index)
        assert q(arch, "imagenet16-120", metric="train_time", split=None) == pytest.approx(3 * (1000.0 + index))
        assert q(arch, "cifar100", metric="params", split=None) == pytest.approx(0.6)
        assert bench.has_data(arch)


@pytest.mark.parametrize("kind", ["v1_1", "nats"])
def test_values_and_splits_map_exactly(tmp_path, cache, meta_archs, kind):
    bench = NB201Benchmark.load(_root_with(tmp_path, meta_archs, kind), trust=True)
    assert bench.source == {"v1_1": official.NB201_V1_1, "nats": official.NATS_TSS_SIMPLE}[kind]
    _check_v1_1_values(bench, meta_archs)


def test_pth_and_nats_folder_give_identical_columns(tmp_path, cache, meta_archs):
    a = NB201Benchmark.load(_root_with(tmp_path, meta_archs, "v1_1"), trust=True).table
    b = NB201Benchmark.load(_root_with(tmp_path, meta_archs, "nats"), trust=True).table
    assert sorted(a.columns) == sorted(b.columns)
    for col in a.columns:
        np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]), err_msg=col)


def test_partial_table_raises_missing_entry(tmp_path, cache, meta_archs):
    bench = NB201Benchmark.load(_root_with(tmp_path, meta_archs, "v1_1"), trust=True)
    assert sorted(bench.index_of(a) for a in bench.archs_with_data()) == list(EVALUATED)
    absent = meta_archs[1]
    assert not bench.has_data(absent)
    with pytest.raises(MissingEntryError):
        bench.query(absent, "cifar10")
    with pytest.raises(MissingEntryError):
        bench.query(absent, "cifar100", metric="params", split=None)
    with pytest.raises(MissingEntryError):
        bench.query_many(np.array([EVALUATED[0], 1]), "cifar10", split="test")
    np.testing.assert_array_equal(bench.query_many(np.array(EVALUATED), "cifar10"),
                                  [bench.query(meta_archs[i], "cifar10") for i in EVALUATED])


def test_v1_0_quirks(tmp_path, cache, meta_archs):
    bench = NB201Benchmark.load(_root_with(tmp_path, meta_archs, "v1_0"), trust=True)
    arch = meta_archs[EVALUATED[2]]
    assert bench.query(arch, "cifar10", split="valid", epoch=12) > 0  # the 12-epoch cifar10-valid runs
    with pytest.raises(MissingEntryError):  # no 12-epoch CIFAR-100 runs in v1.0
        bench.query(arch, "cifar100", split="valid", epoch=12)
    with pytest.raises(MissingEntryError):  # no training times in v1.0
        bench.query(arch, "cifar10", metric="train_time", split=None)
    specs = {(s.dataset, s.split): s.epochs for s in bench.describe() if s.metric == "accuracy"}
    assert specs[("cifar10", "valid")] == (12, 200) and specs[("cifar100", "valid")] == (200,)


def test_load_order_and_explicit_source(tmp_path, cache, meta_archs):
    root = _root_with(tmp_path, meta_archs, "v1_1")
    official.write_nb201_pth(root / "nb201" / official.NB201_V1_0, meta_archs, _infos(meta_archs, True))
    assert NB201Benchmark.load(root, trust=True).source == official.NB201_V1_1
    official.write_nats_simple(root / "nb201" / official.NATS_TSS_SIMPLE, meta_archs,
                               _infos(meta_archs, hp_names=("12", "200")).items())
    assert NB201Benchmark.load(root, trust=True).source == official.NATS_TSS_SIMPLE
    assert NB201Benchmark.load(root, trust=True, source=official.NB201_V1_0).source == official.NB201_V1_0
    with pytest.raises(DataError):
        NB201Benchmark.load(root, source="nb201.json")
    with pytest.raises(DataError):  # no master CSV in this root
        NB201Benchmark.load(root, source="master")


def test_nats_folder_change_rebuilds(tmp_path, cache, meta_archs):
    root = _root_with(tmp_path, meta_archs, "nats")
    folder = root / "nb201" / official.NATS_TSS_SIMPLE
    first = NB201Benchmark.load(root, trust=True)
    assert NB201Benchmark.load(root).table.folder == first.table.folder  # unchanged: reused, no trust needed
    index = 4242
    official.write_nats_simple(folder, meta_archs, [(index, _infos(meta_archs, hp_names=("12", "200"))[7])])
    second = NB201Benchmark.load(root, trust=True)
    assert second.table.folder != first.table.folder and second.has_data(meta_archs[index])


# -- malformed files ------------------------------------------------------------------------------------------
def test_malformed_files_raise_data_error(tmp_path, cache, meta_archs):
    import torch

    root = tmp_path / "bad"
    (root / "nb201").mkdir(parents=True)
    pth = root / "nb201" / official.NB201_V1_1
    torch.save({"something": 1}, pth)
    with pytest.raises(DataError, match="not a NAS-Bench-201 file"):
        NB201Benchmark.load(root, trust=True)
    official.write_nb201_pth(pth, meta_archs[:100], {})
    with pytest.raises(DataError, match="meta_archs"):
        NB201Benchmark.load(root, trust=True)
    pth.write_bytes(b"not a pickle at all")
    with pytest.raises(DataError):
        NB201Benchmark.load(root, trust=True)
    infos = _infos(meta_archs)
    del infos[7]["full"]["all_results"][("cifar100", 777)]
    official.write_nb201_pth(pth, meta_archs, infos)
    with pytest.raises(DataError, match="malformed results for index 7"):
        NB201Benchmark.load(root, trust=True)

    pth.unlink()
    folder = root / "nb201" / official.NATS_TSS_SIMPLE
    official.write_nats_simple(folder, meta_archs, [])
    (folder / "000003.pickle.pbz2").write_bytes(b"BZh9 truncated")
    with pytest.raises(DataError, match="000003"):
        NB201Benchmark.load(root, trust=True)
    (folder / "000003.pickle.pbz2").unlink()
    (folder / "meta.pickle.pbz2").unlink()
    with pytest.raises(DataError):
        NB201Benchmark.load(root, trust=True)


# -- against the master table -------------------------------------------------------------------------------
@pytest.mark.data
def test_master_rows_written_officially_read_back_identically(nb201, tmp_path, cache):
    """Master CSV -> official layout -> reader: every column the master table has agrees."""
    rng = np.random.default_rng(3)
    indices = sorted({int(i) for i in rng.integers(SPACE_SIZE, size=25)} | {nb201.index_of(DRNAS_CELL)})
    meta_archs = [nb201.arch_at(i).id for i in range(SPACE_SIZE)]
    infos = {i: {str(ep): state for ep, state in official.states_from_benchmark(nb201, i).items()}
             for i in indices}
    root = tmp_path / "from-master"
    official.write_nats_simple(root / "nb201" / official.NATS_TSS_SIMPLE, meta_archs, infos.items())
    bench = NB201Benchmark.load(root, trust=True)
    idx = np.array(indices)
    for col in nb201.table.columns:
        if col.startswith("latency.") or col.endswith(".seeds") or col == "evaluated":
            continue
        assert col in bench.table, col
        np.testing.assert_allclose(np.asarray(bench.table[col])[idx], np.asarray(nb201.table[col])[idx],
                                   rtol=0, atol=1e-5, err_msg=col)  # master means are rounded to 1e-6
    np.testing.assert_array_equal(np.asarray(bench.table["cifar10.valid.200.seeds"])[idx],
                                  np.asarray(nb201.table["cifar10.valid.200.seeds"])[idx])
    assert bench.query(DRNAS_CELL, "cifar10", split="test") == pytest.approx(94.363, abs=5e-4)
    assert bench.query(DRNAS_CELL, "cifar100", split="valid") == pytest.approx(73.49, abs=5e-3)

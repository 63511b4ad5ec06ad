"""NB301 stand-in (YAHPO surrogate), not NAS-Bench-301: input mapping, outputs, typed errors."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

import benchmarks
from benchmarks.base import Budget, Oracle, OracleTask
from benchmarks.darts_space import DARTS_V2, DRNAS_CIFAR10, DartsSpace
from benchmarks.nb301_standin import CAT_NAMES, FILES, LABEL, TARGETS, NB301StandIn
from nasrepro.errors import DataError, InvalidArchError, MissingEntryError, OutOfDomainError

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def standin(data_root) -> NB301StandIn:
    return NB301StandIn.load(data_root)


@pytest.fixture(scope="module")
def random_archs() -> list:
    space, rng = DartsSpace(), np.random.default_rng(2024)
    return [space.sample(rng) for _ in range(200)]


def test_loading_is_cheap_and_labelled_as_a_stand_in(data_root):
    bench = benchmarks.create("nb301-standin", data_root)
    assert isinstance(bench, NB301StandIn)
    assert bench._session is None  # the onnx session is opened by the first query only
    assert bench.label == LABEL and "stand-in" in LABEL and "not NAS-Bench-301" in LABEL
    assert "not NAS-Bench-301" in (NB301StandIn.__doc__ or "")
    assert all(LABEL in spec.note for spec in bench.describe())
    assert bench.archs_with_data() is None
    assert set(bench.data_sha256()) == set(FILES)


def test_darts_v2_maps_to_the_hand_derived_yahpo_row(standin):
    # Worked out by hand from encoding_v2.json (ops: #na# 0, avg 1, dil3 2, dil5 3, max 4, sep3 5,
    # sep5 6, skip 7; pairs coded in listed order) and the NB301 edge numbering (node k+2 owns edges
    # offset(k) + input, offsets 0, 2, 5, 9).
    normal = [5, 5, 5, 5, 0, 7, 5, 0, 0, 7, 0, 2, 0, 0]
    reduce = [4, 4, 0, 4, 7, 4, 0, 7, 0, 0, 4, 7, 0, 0]
    pairs = [1, 1, 2, 3, 2, 5]  # normal: 0_1, 0_1, 0_2; reduce: 1_2, 0_2, 1_2
    assert standin.categorical_inputs([DARTS_V2]).tolist() == [normal + reduce + pairs]
    assert standin.categorical_inputs([str(DARTS_V2)]).dtype == np.int32


def test_every_active_edge_is_coded_and_inactive_edges_are_na(standin, random_archs):
    x_cat = standin.categorical_inputs(random_archs)
    assert x_cat.shape == (200, len(CAT_NAMES))
    edges = x_cat[:, :28].reshape(200, 2, 14)
    assert ((edges != 0).sum(-1) == 8).all()  # 8 used edges per cell, the 6 others '#na#'
    assert (x_cat[:, 28:] != 0).all()  # input pairs are always active


def test_outputs_are_deterministic_and_plausible(data_root, standin, random_archs):
    first = standin.query_many(random_archs, "cifar10")
    again = NB301StandIn.load(data_root).query_many(random_archs, "cifar10")
    assert np.array_equal(first, again)
    assert ((first > 50) & (first < 100)).all()  # percent, CIFAR-10 DARTS networks
    seconds = standin.query_many(random_archs, "cifar10", "train_time", None)
    assert (seconds > 0).all()
    early = standin.query_many(random_archs[:20], "cifar10", "train_time", None, epoch=10)
    assert (early < seconds[:20]).all()  # the runtime target is cumulative
    assert np.median(standin.query_many(random_archs, "cifar10", epoch=5)) < np.median(first)
    raw = standin.predict(random_archs[:3])
    assert raw.shape == (3, len(TARGETS))
    assert np.allclose(raw[:, TARGETS.index("val_accuracy")] * 100, first[:3])


def test_batched_equals_single_queries(standin, random_archs):
    batch = standin.query_many(random_archs[:25], "cifar10", epoch=40)
    single = [standin.query(a, "cifar10", epoch=40) for a in random_archs[:25]]
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    assert standin.query_many([], "cifar10").shape == (0,)


def test_published_genotypes_beat_the_median_random_genotype(standin, random_archs):
    median = float(np.median(standin.query_many(random_archs, "cifar10")))
    for arch in (DRNAS_CIFAR10, DARTS_V2):
        assert standin.query(arch, "cifar10") > median


@pytest.mark.parametrize("kwargs, error", [
    (dict(split="test"), MissingEntryError),
    (dict(metric="cross_entropy", split="test"), MissingEntryError),
    (dict(seed=0), MissingEntryError),
    (dict(dataset="cifar100"), OutOfDomainError),
    (dict(metric="latency"), OutOfDomainError),
    (dict(split="train"), OutOfDomainError),
    (dict(metric="train_time", split="valid"), OutOfDomainError),
    (dict(epoch=0), OutOfDomainError),
    (dict(epoch=99), OutOfDomainError),
    (dict(epoch=True), OutOfDomainError),
    (dict(epoch=2.5), OutOfDomainError),
    (dict(device="gpu"), OutOfDomainError),
])
def test_bad_queries_raise_typed_errors(standin, kwargs, error):
    query = dict(dataset="cifar10", metric="accuracy", split="valid") | kwargs
    with pytest.raises(error):
        standin.query(DARTS_V2, **query)


@pytest.mark.parametrize("arch", ["Genotype(normal=[])", 42, None])
def test_bad_architectures_raise_invalid_arch_error(standin, arch):
    with pytest.raises(InvalidArchError):
        standin.query(arch, "cifar10")


def test_a_queried_stand_in_pickles_for_worker_processes(data_root):
    bench = NB301StandIn.load(data_root)
    value = bench.query(DARTS_V2, "cifar10")
    clone = pickle.loads(pickle.dumps(bench))
    assert clone._session is None and bench._session is not None
    assert clone.query(DARTS_V2, "cifar10") == value


def test_oracle_runs_on_the_stand_in(standin):
    oracle = Oracle(standin, OracleTask("CIFAR10"), Budget(max_queries=2))
    obs = oracle.evaluate(DRNAS_CIFAR10)
    assert obs.valid == pytest.approx(standin.query(DRNAS_CIFAR10, "cifar10"))
    assert obs.seconds == pytest.approx(standin.query(DRNAS_CIFAR10, "cifar10", "train_time", None))
    assert np.isnan(oracle.test_accuracy(DRNAS_CIFAR10))


def _copy_root(data_root, tmp_path):
    (tmp_path / "nb301").mkdir(parents=True)
    for rel in FILES.values():
        shutil.copyfile(data_root / rel, tmp_path / rel)
    return tmp_path


def test_config_space_with_another_edge_numbering_is_rejected(data_root, tmp_path):
    root = _copy_root(data_root, tmp_path)
    path = root / FILES["config_space"]
    space = json.loads(path.read_text())
    for condition in space["conditions"]:  # pretend edge 2 hangs off input 1 instead of input 0
        if condition["child"].endswith("edge_normal_2"):
            condition["values"] = ["0_1", "1_2"]
    path.write_text(json.dumps(space))
    with pytest.raises(DataError, match="edge numbering"):
        NB301StandIn.load(root)


def test_missing_or_corrupt_files_raise_data_error(data_root, tmp_path):
    with pytest.raises(DataError):
        NB301StandIn.load(tmp_path)
    root = _copy_root(data_root, tmp_path)
    (root / FILES["encoding"]).write_text("{not json")
    with pytest.raises(DataError):
        NB301StandIn.load(root)
    encoding = json.loads((data_root / FILES["encoding"]).read_text())
    del encoding[CAT_NAMES[3]]["sep_conv_5x5"]
    (root / FILES["encoding"]).write_text(json.dumps(encoding))
    with pytest.raises(DataError, match="sep_conv_5x5"):
        NB301StandIn.load(root)
    root = _copy_root(data_root, tmp_path / "second")
    (root / FILES["model"]).write_bytes(b"not an onnx model")
    bench = NB301StandIn.load(root)  # loading stays cheap; the model is read at the first query
    with pytest.raises(DataError):
        bench.query(DARTS_V2, "cifar10")

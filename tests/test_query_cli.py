"""``nasrepro query``: values equal the benchmark API's, in table / csv / json."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from nasrepro.cli import main

pytestmark = pytest.mark.data

DRNAS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_documented_example_prints_the_table_value(nb201, capsys):
    code, out, err = run(["query", "nb201", DRNAS_CELL, "--dataset", "cifar10", "--metric", "accuracy",
                          "--split", "test"], capsys)
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split() == ["index", "arch", "value"]
    index, arch, value = row.split()
    expected = nb201.query(DRNAS_CELL, "cifar10", "accuracy", "test")
    assert float(value) == expected
    assert value.startswith("94.363")  # the value NB201 publishes for this cell (README check)
    assert int(index) == nb201.index_of(DRNAS_CELL) and arch == DRNAS_CELL


def test_csv_rows_follow_the_arguments_and_accept_api_indices(nb201, capsys):
    args = ["query", "nb201", "17", DRNAS_CELL, "0", "--dataset", "cifar100", "--format", "csv"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["index", "arch", "value"]
    assert [int(r[0]) for r in rows[1:]] == [17, nb201.index_of(DRNAS_CELL), 0]
    for index, arch, value in rows[1:]:
        assert arch == nb201.arch_at(int(index)).id
        assert float(value) == nb201.query(arch, "cifar100", "accuracy", "valid")  # default split: valid


def test_all_matches_vectorised_query(nb201, capsys):
    code, out, err = run(["query", "nb201", "--all", "--dataset", "imagenet16-120", "--split", "test",
                          "--epoch", "12", "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))[1:]
    assert len(rows) == nb201.space.size
    indices = np.array([int(r[0]) for r in rows])
    values = np.array([float(r[2]) for r in rows])
    assert np.array_equal(indices, np.arange(len(rows)))
    np.testing.assert_array_equal(values, nb201.query_many(indices, "imagenet16-120", "accuracy", "test", 12))


def test_json_carries_the_query_and_non_accuracy_metrics(nb201, capsys):
    device = nb201.devices[0]
    code, out, err = run(["query", "nb201", DRNAS_CELL, "--dataset", "cifar10", "--metric", "latency",
                          "--device", device, "--format", "json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["query"]["metric"] == "latency" and doc["query"]["split"] is None
    assert doc["results"][0]["value"] == nb201.query(DRNAS_CELL, "cifar10", "latency", None, device=device)
    code, out, err = run(["query", "nb201", DRNAS_CELL, "--dataset", "cifar10", "--seed", "1",
                          "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["results"][0]["value"] == nb201.query(DRNAS_CELL, "cifar10", seed=1)


# nb101 builds its 423,624-cell enumeration on first use (minutes on 2 cores, once per cache dir)
@pytest.mark.parametrize("name", [pytest.param("nb101", marks=pytest.mark.slow), "nb301-standin"])
def test_other_benchmarks_answer_like_their_api(name, data_root, capsys):
    """Contract for the other benchmarks, run where they are importable and load."""
    import benchmarks

    pytest.importorskip(benchmarks.BENCHMARKS[name].split(":")[0])
    bench = benchmarks.create(name)
    archs = bench.archs_with_data()
    archs = archs[:3] if archs is not None else [bench.space.sample(np.random.default_rng(0)) for _ in range(3)]
    spec = bench.describe()[0]
    texts = [bench.space.format(a) for a in archs]
    argv = ["query", name, *texts, "--dataset", spec.dataset, "--metric", spec.metric, "--format", "json"]
    if spec.split is not None:
        argv += ["--split", spec.split]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    got = [r["value"] for r in json.loads(out)["results"]]
    np.testing.assert_array_equal(got, bench.query_many(archs, spec.dataset, spec.metric, spec.split))
    assert [r["arch"] for r in json.loads(out)["results"]] == texts

"""``reproduce.compare``: statistics at budgets, regret, the valid-only fallback, formats and plots.

Most tests use hand-written run directories (known numbers, no data needed); one uses real NB201 runs.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from nasrepro.errors import ConfigError, DataError
from reproduce import compare as cmp
from reproduce.runner import trajectory_csv


def write_run(root: Path, algo: str, seed: int, incumbent_test: list[float], seconds: float = 10.0,
              benchmark: str = "fake", dataset: str = "d", overrides: dict | None = None) -> Path:
    run_dir = root / algo / f"{benchmark}-{dataset}" / f"seed-{seed}"
    run_dir.mkdir(parents=True)
    config = {"algorithm": algo, "benchmark": benchmark, "dataset": dataset, "seed": seed, "split": "valid",
              "epoch": None, "overrides": overrides or {}}
    (run_dir / "config.json").write_text(json.dumps(config))
    rows = [{"query": i + 1, "arch_id": f"a{i}", "valid": v - 1.0, "test": v, "seconds": seconds,
             "cumulative_seconds": seconds * (i + 1), "incumbent_valid": v - 1.0, "incumbent_test": v}
            for i, v in enumerate(incumbent_test)]
    (run_dir / "trajectory.csv").write_text(trajectory_csv(rows))
    return run_dir


def fake_best(benchmark, dataset, split, epoch):
    return (95.0 if split == "test" else 94.0), f"fake reference for {split}"


@pytest.fixture
def runs(tmp_path) -> Path:
    write_run(tmp_path, "alpha", 0, [90.0, 91.0, 92.0, 93.0])
    write_run(tmp_path, "alpha", 1, [89.0, 92.0, 92.0, 94.0])
    write_run(tmp_path, "alpha", 2, [88.0, 88.0, 93.0, 93.5])
    write_run(tmp_path, "beta", 0, [80.0, 85.0])  # shorter: absent at budget 4
    write_run(tmp_path, "beta", 1, [81.0, 86.0, 87.0, 90.0])
    return tmp_path


def test_mean_ci_is_the_student_t_interval():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    mean, low, high = cmp.mean_ci(x)
    expected = stats.t.interval(0.95, 3, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(3.5) and (low, high) == pytest.approx(expected)
    assert math.isnan(cmp.mean_ci(np.array([2.0]))[1])
    assert cmp.mean_ci(np.array([2.0, 2.0])) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in cmp.mean_ci(np.array([])))


def test_summary_at_budgets(runs):
    groups = cmp.group_runs(cmp.find_runs([runs]), fake_best)
    assert len(groups) == 1 and groups[0].metric == "test" and groups[0].best_in_table == 95.0
    records = {(r["algorithm"], r["budget"]): r for r in cmp.summarise(groups, [2, 4])}
    alpha4 = records[("alpha", 4)]
    assert alpha4["n"] == 3 and alpha4["accuracy_mean"] == pytest.approx(np.mean([93.0, 94.0, 93.5]))
    assert alpha4["regret_mean"] == pytest.approx(95.0 - alpha4["accuracy_mean"])
    assert alpha4["regret_high"] - alpha4["regret_mean"] == pytest.approx(
        alpha4["accuracy_high"] - alpha4["accuracy_mean"])
    assert records[("beta", 2)]["n"] == 2 and records[("beta", 4)]["n"] == 1
    assert records[("beta", 2)]["accuracy_mean"] == pytest.approx(85.5)


def test_summary_at_simulated_time_budgets(runs):
    """10 simulated seconds per query: at 25 s a run has made 2 queries. A run that stopped before the budget
    counts with its final incumbent (what it returns), as in the plot; one with no result yet is left out."""
    groups = cmp.group_runs(cmp.find_runs([runs]), fake_best)
    records = {(r["algorithm"], r["budget"]): r for r in cmp.summarise(groups, [5.0, 25.0, 40.0], "seconds")}
    assert records[("alpha", 25.0)]["n"] == 3 and records[("alpha", 25.0)]["budget_unit"] == "seconds"
    assert records[("alpha", 25.0)]["accuracy_mean"] == pytest.approx(np.mean([91.0, 92.0, 88.0]))
    assert records[("alpha", 40.0)]["accuracy_mean"] == pytest.approx(np.mean([93.0, 94.0, 93.5]))
    beta = records[("beta", 40.0)]  # beta seed 0 stopped at 20 s with 85
    assert (beta["n"], beta["stopped_before"]) == (2, 1) and beta["accuracy_mean"] == pytest.approx(87.5)
    _, regret = cmp.curves_by_time(groups[0], groups[0].runs["beta"], points=50)  # the plot agrees
    assert beta["regret_mean"] == pytest.approx(regret[:, -1].mean())
    assert records[("alpha", 5.0)]["n"] == 0  # nothing had finished training yet
    table, _ = cmp.compare([runs], [25.0, 40.0], "table", best_in_table=fake_best, unit="seconds")
    assert "budget (sim. s)" in table and "count with their final incumbent" in table
    with pytest.raises(ConfigError, match="time budgets must be given"):
        cmp.compare([runs], None, "table", best_in_table=fake_best, unit="seconds")


def test_time_budgets_need_runs_with_training_time(tmp_path):
    write_run(tmp_path, "alpha", 0, [90.0, 91.0])
    write_run(tmp_path, "beta", 0, [90.0, 91.0], seconds=0.0)
    groups = cmp.group_runs(cmp.find_runs([tmp_path]), fake_best)
    with pytest.raises(DataError, match="beta runs carry no simulated training time"):
        cmp.summarise(groups, [10.0], "seconds")


def test_default_budgets_end_at_longest_run(runs):
    groups = cmp.group_runs(cmp.find_runs([runs]), fake_best)
    assert cmp.default_budgets(groups) == [4]


def test_valid_fallback_when_benchmark_has_no_test(tmp_path):
    run_dir = write_run(tmp_path, "alpha", 0, [90.0, 91.0])
    rows = list(csv.DictReader(io.StringIO((run_dir / "trajectory.csv").read_text())))
    for r in rows:
        r.update(test=float("nan"), incumbent_test=float("nan"), valid=float(r["valid"]),
                 incumbent_valid=float(r["incumbent_valid"]), seconds=float(r["seconds"]),
                 cumulative_seconds=float(r["cumulative_seconds"]), query=int(r["query"]))
    (run_dir / "trajectory.csv").write_text(trajectory_csv(rows))
    text, _ = cmp.compare([tmp_path], [2], "table", best_in_table=fake_best)
    assert "validation accuracy is compared" in text and "incumbent valid accuracy" in text
    data = json.loads(cmp.compare([tmp_path], [2], "json", best_in_table=fake_best)[0])
    assert data["rows"][0]["metric"] == "valid"
    assert data["rows"][0]["regret_mean"] == pytest.approx(94.0 - 90.0)


def test_surrogate_regret_is_against_best_run(runs):
    def surrogate(*args):
        raise cmp.NotATableError("no table")

    group = cmp.group_runs(cmp.find_runs([runs]), surrogate)[0]
    assert group.best_in_table == 94.0 and "no table optimum" in group.reference_note


def test_formats(runs):
    table, _ = cmp.compare([runs], [1, 4], "table", best_in_table=fake_best)
    assert "alpha acc" in table and "beta regret" in table and "fake reference" in table
    rows = list(csv.DictReader(io.StringIO(cmp.compare([runs], [1, 4], "csv", best_in_table=fake_best)[0])))
    assert len(rows) == 4 and set(rows[0]) >= {"algorithm", "budget", "n", "regret_mean", "regret_low"}
    data = json.loads(cmp.compare([runs], [1, 4], "json", best_in_table=fake_best)[0])  # strict JSON
    beta4 = next(r for r in data["rows"] if r["algorithm"] == "beta" and r["budget"] == 4)
    assert beta4["n"] == 1 and beta4["accuracy_low"] is None  # one run: no interval, not NaN
    with pytest.raises(ConfigError):
        cmp.compare([runs], [1], "xml", best_in_table=fake_best)


def test_variants_with_overrides_stay_apart(tmp_path):
    write_run(tmp_path / "a", "alpha", 0, [90.0])
    write_run(tmp_path / "b", "alpha", 0, [91.0], overrides={"population": 3})
    groups = cmp.group_runs(cmp.find_runs([tmp_path / "a", tmp_path / "b"]), fake_best)
    assert sorted(groups[0].runs) == ["alpha", "alpha[population=3]"]


def test_plot_writes_png_and_pdf(runs, tmp_path):
    _, figures = cmp.compare([runs], [4], "table", plot_path=tmp_path / "plots" / "cmp.png",
                             best_in_table=fake_best)
    assert sorted(p.name for p in figures) == ["cmp.pdf", "cmp.png"]
    assert figures[0].read_bytes()[:4] == b"\x89PNG" and figures[1].read_bytes()[:4] == b"%PDF"


def test_curves_hold_final_incumbent_over_time(runs):
    group = cmp.group_runs(cmp.find_runs([runs]), fake_best)[0]
    x, regret = cmp.curves_by_time(group, group.runs["beta"], points=50)
    assert x[0] == pytest.approx(10.0) and x[-1] == pytest.approx(40.0)
    assert regret[0, -1] == pytest.approx(95.0 - 85.0)  # stopped after 2 queries, keeps its incumbent
    assert regret[1, -1] == pytest.approx(95.0 - 90.0)


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="no finished runs"):
        cmp.find_runs([tmp_path])
    with pytest.raises(DataError, match="does not exist"):
        cmp.find_runs([tmp_path / "nope"])
    for text in ("0,10", "-5", "a", "10,x"):
        with pytest.raises(ConfigError):
            cmp.parse_budgets(text)
    assert cmp.parse_budgets("300, 50,100,50") == [50, 100, 300]
    for text in ("0", "-1e4", "x", "inf", "nan"):
        with pytest.raises(ConfigError, match="--time-budgets"):
            cmp.parse_budgets(text, "seconds")
    assert cmp.parse_budgets("1e4, 2500.5", "seconds") == [2500.5, 10000.0]


@pytest.mark.data
def test_regret_reference_is_nb201_table_maximum(nb201):
    best, note = cmp.table_maximum("nb201", "cifar10", "test", None)
    assert best == pytest.approx(94.373, abs=1e-3)  # the data README's documented maximum
    assert "94.373" in note
    assert cmp.table_maximum("nb201", "cifar100", "test", None)[0] == pytest.approx(73.513, abs=1e-3)

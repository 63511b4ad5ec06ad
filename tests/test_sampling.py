"""The sample-efficiency measurement (algorithms/sampling.py) and the Efficient-Sampling paper module
(reproduce/papers/sampling.py) end to end on a tiny setting."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

import algorithms
from algorithms.sampling import (gain_upper_bound, logrank_p, queries_summary, queries_to_reach,
                                 random_search_quantile, sample_efficiency_gain, top_fraction_target)
from nasrepro.errors import ConfigError
from reproduce.report import Headline


def test_top_fraction_target_counts_ties_and_ignores_nan():
    values = np.array([1.0, 5.0, 5.0, 3.0, np.nan, 2.0, 4.0, 0.0, 1.5, 2.5, 3.5])
    target = top_fraction_target(values, 0.1)  # ceil(0.1 * 10) = 1 -> the best value, tied twice
    assert target.threshold == 5.0 and target.hits == 2 and target.total == 10
    assert top_fraction_target(values, 0.3).threshold == 4.0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError):
            top_fraction_target(values, bad)


def test_queries_to_reach():
    incumbent = np.maximum.accumulate(np.array([1.0, 3.0, 2.0, 6.0, 5.0]))
    assert queries_to_reach(incumbent, 3.0) == 2
    assert queries_to_reach(incumbent, 6.0) == 4
    assert queries_to_reach(incumbent, 7.0) is None


def test_random_search_median_matches_simulation():
    values = np.arange(2000.0)
    target = top_fraction_target(values, 0.01)  # 20 hits out of 2000
    rng = np.random.default_rng(0)
    simulated = rng.geometric(target.hits / target.total, size=20000)
    assert abs(random_search_quantile(target) - np.median(simulated)) <= 2
    assert random_search_quantile(target, 0.25) < random_search_quantile(target) < random_search_quantile(target, 0.75)


def test_censored_summary_is_kaplan_meier():
    # no censoring: the plain empirical median and quartiles (lower ones, as the ECDF inverse)
    summary = queries_summary([4, 8, 2, 6], [50] * 4)
    assert (summary.median, summary.q25, summary.q75, summary.n_censored) == (4.0, 2.0, 6.0, 0)
    # censored runs still count in the risk set: 2 of 4 reach by query 10, so the median is 10
    summary = queries_summary([5, 10, None, None], [50] * 4)
    assert summary.median == 10.0 and math.isinf(summary.q75) and summary.n_censored == 2
    # more than half censored: the median is undetermined
    assert math.isinf(queries_summary([5, None, None], [50] * 3).median)
    assert math.isinf(queries_summary([None, None], [50, 50]).median)
    with pytest.raises(ConfigError):
        queries_summary([1, 2], [50])


def test_gain_definition():
    target = top_fraction_target(np.arange(1000.0), 0.01)
    rs = random_search_quantile(target)
    summary = queries_summary([10, 20, 30], [100] * 3)
    assert sample_efficiency_gain(target, summary) == pytest.approx(rs / 20)
    assert gain_upper_bound(target, 100) == pytest.approx(rs / 100)
    assert sample_efficiency_gain(target, queries_summary([None], [100])) == 0.0


def test_logrank_separates_fast_from_slow_methods():
    fast = [3, 4, 5, 6, 4, 5, 3, 6, 5, 4]
    slow = [40, None, 60, None, 55, None, 70, None, 80, None]
    assert logrank_p(fast, [100] * 10, slow, [100] * 10) < 0.01
    assert logrank_p(fast, [100] * 10, fast, [100] * 10) > 0.5
    assert logrank_p([None] * 3, [100] * 3, [None] * 3, [100] * 3) == 1.0


def test_config_documents_the_experiment():
    config = algorithms.read_config_file("sampling")
    assert {"source", "known_deviations"} <= set(config["meta"])
    for scale in ("quick", "full"):
        settings = config[f"scale_{scale}"]
        assert settings["seeds"] >= (20 if scale == "quick" else 100)
        assert {"nb201", "nb101"} <= {task[0] for task in settings["tasks"]}
    # every variant is a valid override set of the search it runs
    for overrides in config["variants"].values():
        algorithms.resolve_hparams("neural_predictor", {**config["search"], **overrides})


@pytest.mark.data
@pytest.mark.slow
def test_paper_module_end_to_end(nb201, tmp_path, monkeypatch):
    """Two seeds, 24 queries, NB201 only: headline, tables, figures and resumable raw runs."""
    from reproduce.papers import sampling

    real = algorithms.read_config_file

    def tiny(stem: str) -> dict:
        config = real(stem)
        if stem == "sampling":
            config["scale_quick"].update(seeds=2, tasks=[["nb201", "cifar10", 24]], subset_sizes=[50], workers=1)
            config["search"] = {"queries_per_iteration": 7, "refit_every": 7,
                                "predictor_overrides": {"gcn": {"epochs": 3}}}
        return config

    monkeypatch.setattr(algorithms, "read_config_file", tiny)
    path = sampling.run("quick", tmp_path)
    headline = Headline.read(path)
    assert headline.paper == "sampling" and len(headline.rows) == 4  # 2 claims x 2 targets
    for figure in headline.figures:
        assert (tmp_path / figure).is_file()
    summary = json.loads((tmp_path / "summary.json").read_text())
    task = summary["tasks"][0]
    assert {v["name"] for v in task["variants"]} == {"random_search", "full", "neighbourhood", "evolution",
                                                     "random_subset_50"}
    assert all(v["n_runs"] == 2 for v in task["variants"])
    assert task["neighbours_near_the_top"] == 24
    assert "censored" in (tmp_path / "results.md").read_text()
    # a second run finds every raw run finished and reproduces the same numbers
    before = (tmp_path / "summary.json").read_text()
    sampling.run("quick", tmp_path)
    after = json.loads((tmp_path / "summary.json").read_text())
    assert json.dumps(after["tasks"]) == json.dumps(json.loads(before)["tasks"])


def test_unknown_scale_is_a_config_error(tmp_path):
    from reproduce.papers import sampling

    with pytest.raises(ConfigError):
        sampling.run("medium", tmp_path)


def test_geometric_median_is_scipys():
    target = top_fraction_target(np.arange(100.0), 0.05)
    assert random_search_quantile(target) == stats.geom.ppf(0.5, 0.05)

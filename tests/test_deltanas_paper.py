"""`nasrepro reproduce deltanas` (reproduce/papers/deltanas.py): settings, verdict logic, a tiny end-to-end run."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from nasrepro.errors import ConfigError
from reproduce import compare
from reproduce.papers import deltanas as paper
from reproduce.report import VERDICTS, Headline


def test_both_scales_of_the_config_load_and_check():
    for scale in ("quick", "full"):
        settings = paper.Settings.load(scale)
        assert settings.budgets[-1] >= 100 and settings.seeds >= 20
    assert paper.Settings.load("full").seeds >= 100


def tiny(**changes) -> paper.Settings:
    settings = paper.Settings(
        methods=("deltanas", "regularized_evolution", "random_search"),
        method_overrides={"regularized_evolution.avoid_repeats": True},
        strong_baselines=("regularized_evolution",),
        convergence_tasks=("nb201/cifar10",), size_tasks=("nb201/cifar10", "nb301-standin/cifar10"),
        budgets=(10, 15), seeds=3, significance=0.05, fig3_tasks=("nb201/cifar10",), fig3_distances=(1, 2, 3),
        fig3_seeds=1, fig3_train_pairs=40, fig3_test_pairs=40, fig3_min_pairs=20, fig3_sharp_rise=1.5, fig3_plateau=1.5,
        table_tasks=("nb201/cifar10",), table_predictors=("gbt", "delta_predictor"), table_sizes=(20,),
        table_test_size=100, table_few_samples=20, table_seeds=1)
    return dataclasses.replace(settings, **changes)


@pytest.mark.parametrize("change, message", [
    ({"methods": ("deltanas", "regularized_evolution", "gcn")}, "not a query-based optimizer"),
    ({"methods": ("deltanas", "no_such_method")}, "unknown algorithm"),
    ({"methods": ("random_search", "regularized_evolution")}, "must include deltanas"),
    ({"table_predictors": ("gbt", "delta_predictor", "random_search")}, "not a predictor"),
    ({"convergence_tasks": ("nb999/cifar10",)}, "is not '<benchmark>/<dataset>'"),
    ({"fig3_tasks": ("cifar10",)}, "is not '<benchmark>/<dataset>'"),
    ({"budgets": (50, 20)}, "increasing"),
    ({"fig3_distances": (2, 3)}, "start at 1"),
    ({"table_predictors": ("gbt",)}, "delta_predictor"),
    ({"significance": 1.5}, "significance"),
    ({"seeds": 1}, "seeds"),
    ({"fig3_min_pairs": 50}, "fig3_min_pairs"),
    ({"strong_baselines": ("deltanas",)}, "strong_baselines"),
    ({"method_overrides": {"bananas.num_init": 5}}, "must be '<method>.<key>'"),
    ({"method_overrides": {"regularized_evolution.no_such_key": 5}}, "unknown hyper-parameter"),
])
def test_bad_settings_are_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**change).check()


def test_unknown_or_missing_experiment_keys_are_config_errors(monkeypatch):
    real = paper.algorithms.read_config_file

    def with_typo(stem):
        config = real(stem)
        config["experiment"]["quick"]["seedz"] = 3
        return config

    monkeypatch.setattr(paper.algorithms, "read_config_file", with_typo)
    with pytest.raises(ConfigError, match="unknown keys \\['seedz'\\]"):
        paper.Settings.load("quick")
    with pytest.raises(ConfigError, match=r"no \[experiment.huge\]"):
        paper.Settings.load("huge")


# --------------------------------------------------------------------------------------------------
# Verdict logic on synthetic inputs (each must be able to come out either way)
# --------------------------------------------------------------------------------------------------
def fake_group(curves: dict[str, list[list[float]]]) -> compare.Group:
    runs = {}
    for label, per_seed in curves.items():
        runs[label] = [compare.LoadedRun(Path(f"/x/{label}/{i}"), {"algorithm": label, "seed": i},
                                         np.arange(1, len(c) + 1), np.zeros(len(c)), np.array(c, float),
                                         np.array(c, float)) for i, c in enumerate(per_seed)]
    return compare.Group("nb201", "cifar10", runs, "test", 100.0, "")


def test_queries_to_best_counts_first_hit_and_censors_misses():
    group = fake_group({"deltanas": [[1, 5, 9], [9, 9, 9], [1, 2, 3]],
                        "random_search": [[1, 2, 3], [1, 2, 3], [1, 2, 9]]})
    result = paper.queries_to_best(group, best=9.0)
    assert result["deltanas"]["reached"] == 2 and result["deltanas"]["median"] == 3
    assert result["deltanas"]["q1"] == 1 and math.isinf(result["deltanas"]["q3"])
    assert result["random_search"]["reached"] == 1 and math.isinf(result["random_search"]["median"])
    assert ">3" in paper._to_best_row("nb201/cifar10", result, tiny())["ours"]


def test_queries_to_best_verdict_needs_a_significant_difference():
    fast, slow = [[1, 9, 9]] * 10, [[1, 1, 9]] * 5 + [[1, 1, 1]] * 5
    ahead = paper.queries_to_best(fake_group({"deltanas": fast, "random_search": slow}), 9.0)
    assert paper._to_best_row("nb201/cifar10", ahead, tiny())["verdict"] == "reproduced"
    behind = paper.queries_to_best(fake_group({"deltanas": slow, "random_search": fast}), 9.0)
    assert paper._to_best_row("nb201/cifar10", behind, tiny())["verdict"] == "not reached"
    few = paper.queries_to_best(fake_group({"deltanas": fast[:2], "random_search": slow[:2]}), 9.0)
    assert paper._to_best_row("nb201/cifar10", few, tiny())["verdict"] == "not reached"  # 2 vs 2: no evidence


def fig3_piece(mse: dict[int, float], zero: dict[int, float], pairs: tuple[int, int] = (40, 40)) -> dict:
    return {"identity": {"task": "nb201/cifar10"},
            "by_distance": {str(d): {"delta_mse": v, "absolute_mse": v, "zero_mse": zero[d], "n_train_pairs": pairs[0],
                                     "n_test_pairs": pairs[1]} for d, v in mse.items()}}


SPREADING = {1: 100.0, 2: 160.0, 3: 200.0}  # true differences spread more with distance (as on NB201)


@pytest.mark.parametrize("mse, verdict", [
    ({1: 10.0, 2: 32.0, 3: 40.0}, "reproduced"),  # relative loss 0.1 -> 0.2 -> 0.2: sharp rise, then flat
    ({1: 10.0, 2: 16.0, 3: 20.0}, "partial"),  # relative loss flat throughout: no rise
    ({1: 10.0, 2: 16.0, 3: 80.0}, "not reached"),  # no rise at 2, no plateau after
    (SPREADING, "partial"),  # predicting 0 itself: no rise relative to itself
])
def test_fig3_verdict_is_judged_relative_to_predicting_zero(mse, verdict):
    rows = paper._fig3_rows([fig3_piece(mse, SPREADING)], tiny())
    assert [r["verdict"] for r in rows] == [verdict]


def test_fig3_row_says_when_the_pool_held_fewer_pairs_than_asked():
    full, = paper._fig3_rows([fig3_piece(SPREADING, SPREADING)], tiny())
    short, = paper._fig3_rows([fig3_piece(SPREADING, SPREADING, (40, 40)), fig3_piece(SPREADING, SPREADING, (31, 27))],
                              tiny())
    assert "fewer pairs" not in full["note"]
    assert "every distance used 31 / 27, 40 / 40 train / test pairs" in short["note"]


def test_table_counts_seeds_with_constant_predictions_instead_of_printing_nan():
    def piece(predictor, seed, tau):
        return {"identity": {"task": "nb201/cifar10", "predictor": predictor, "size": 10, "seed": seed},
                "kendall_tau": tau, "spearman_rho": tau, "fit_seconds": 0.1}

    nan = float("nan")
    summary = paper._table_summary([piece("gp", 0, nan), piece("gp", 1, nan), piece("gbt", 0, nan),
                                    piece("gbt", 1, 0.4), piece("gcn", 0, 0.2), piece("gcn", 1, 0.4)])
    cells = {s["predictor"]: paper._table_cell(s) for s in summary}
    assert cells == {"gp": "constant (no ranking)", "gbt": "0.400±0.000 / 0.400 (1 of 2 seeds constant)",
                     "gcn": "0.300±0.100 / 0.300"}
    gbt = next(s for s in summary if s["predictor"] == "gbt")
    assert math.isnan(gbt["kendall_tau"])  # what the verdicts read: a constant seed is not averaged away


def test_the_table_delta_predictor_uses_the_searchs_model():
    from algorithms.deltanas import DeltaModelSpec

    config = paper.algorithms.read_config_file("deltanas")
    assert DeltaModelSpec.from_config(config["delta_predictor"]) == DeltaModelSpec.from_config(config["deltanas"])


def test_fig4_verdict_needs_every_baseline_beaten():
    settings = tiny(budgets=(3,))
    rng = np.random.default_rng(0)
    ahead = fake_group({"deltanas": (95 + rng.normal(0, 0.1, (20, 3))).tolist(),
                        "regularized_evolution": (94 + rng.normal(0, 0.1, (20, 3))).tolist()})
    tests = paper._welch_tests(ahead, settings)
    assert paper._fig4_row("nb201/cifar10", ahead, tests, settings)["verdict"] == "reproduced"
    behind = fake_group({"deltanas": (94 + rng.normal(0, 0.1, (20, 3))).tolist(),
                         "regularized_evolution": (95 + rng.normal(0, 0.1, (20, 3))).tolist()})
    tests = paper._welch_tests(behind, settings)
    assert paper._fig4_row("nb201/cifar10", behind, tests, settings)["verdict"] == "not reached"


# --------------------------------------------------------------------------------------------------
# End to end, tiny
# --------------------------------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.slow
def test_tiny_reproduction_writes_a_valid_headline_and_resumes(data_root, tmp_path):
    out = tmp_path / "deltanas"
    headline_path = paper.run("quick", out, tiny())
    headline = Headline.read(headline_path)
    assert headline.paper == "deltanas" and all(r.verdict in VERDICTS for r in headline.rows)
    claims = " ".join(r.claim for r in headline.rows)
    for part in ("Fig. 3", "Fig. 4", "Fig. 5", "Predictor quality", "queries until"):
        assert part in claims
    for figure in headline.figures:
        assert (out / figure).is_file()
    details = json.loads((out / "details.json").read_text())
    assert {g["task"] for g in details["size_gains"]} == {"nb201/cifar10", "nb301-standin/cifar10"}
    # a second run finds every piece done: nothing raw is rewritten
    raw = sorted(p for p in (out / "runs").rglob("*") if p.is_file() and p.suffix in (".json", ".csv"))
    stamps = {p: p.stat().st_mtime_ns for p in raw}
    paper.run("quick", out, tiny())
    assert {p: p.stat().st_mtime_ns for p in raw} == stamps

"""The budgeted oracle: counting, budgets, validation/test separation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.base import Budget, Oracle, OracleTask
from benchmarks.nb201 import parse
from nasrepro.errors import BudgetExhaustedError, ConfigError, MissingEntryError, OutOfDomainError

DRNAS_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("kwargs", [dict(), dict(max_queries=0), dict(max_queries=-3), dict(max_queries=2.5),
                                    dict(max_seconds=0.0), dict(max_seconds=float("inf")),
                                    dict(max_seconds=float("nan"))])
def test_bad_budgets_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        Budget(**kwargs)


@pytest.mark.data
def test_oracle_counts_queries_and_simulated_seconds(nb201):
    oracle = Oracle(nb201, OracleTask("cifar10"), Budget(max_queries=3))
    arch = parse(DRNAS_CELL)
    obs = oracle.evaluate(arch)
    assert obs.valid == pytest.approx(91.553333)
    assert obs.seconds == pytest.approx(nb201.query(arch, "cifar10", "train_time", None))
    oracle.evaluate(arch)  # repeats are charged again
    oracle.evaluate(arch)
    assert oracle.queries == 3 and oracle.seconds == pytest.approx(3 * obs.seconds)
    assert oracle.exhausted
    with pytest.raises(BudgetExhaustedError):
        oracle.evaluate(arch)


@pytest.mark.data
def test_time_budget_stops_after_crossing(nb201):
    arch = parse(DRNAS_CELL)
    cost = nb201.query(arch, "cifar10", "train_time", None)
    oracle = Oracle(nb201, OracleTask("cifar10"), Budget(max_seconds=2.5 * cost))
    for _ in range(3):
        oracle.evaluate(arch)
    assert oracle.exhausted


@pytest.mark.data
def test_observation_carries_no_test_accuracy(nb201):
    oracle = Oracle(nb201, OracleTask("cifar10"), Budget(max_queries=5))
    obs = oracle.evaluate(parse(DRNAS_CELL))
    assert not any("test" in name for name in vars(obs))
    assert oracle.test_accuracy(obs.arch) == pytest.approx(94.363333)
    assert obs.valid != oracle.test_accuracy(obs.arch)


@pytest.mark.data
def test_sampled_seed_mode_draws_recorded_runs(nb201):
    arch = parse(DRNAS_CELL)
    runs = {nb201.query(arch, "cifar10", "accuracy", "valid", seed=s) for s in range(3)}
    oracle = Oracle(nb201, OracleTask("cifar10", valid_seed="sample"), Budget(max_queries=50))
    rng = np.random.default_rng(1)
    seen = {oracle.evaluate(arch, rng).valid for _ in range(30)}
    assert seen <= runs and len(seen) > 1


@pytest.mark.data
def test_oracle_rejects_unknown_dataset_and_mode(nb201):
    with pytest.raises(OutOfDomainError):
        Oracle(nb201, OracleTask("cifar11"), Budget(max_queries=1))
    with pytest.raises(OutOfDomainError):
        Oracle(nb201, OracleTask("cifar10", valid_seed="median"), Budget(max_queries=1))


@pytest.mark.data
def test_missing_train_time_under_time_budget_is_an_error_not_zero(nb201):
    arch = parse(DRNAS_CELL)
    with_queries = Oracle(nb201, OracleTask("cifar10", epoch=12), Budget(max_queries=2))
    assert with_queries.evaluate(arch).seconds == 0.0  # no time budget: cost not recorded, not needed
    timed = Oracle(nb201, OracleTask("cifar10", epoch=12), Budget(max_seconds=100.0))
    with pytest.raises(MissingEntryError) as info:
        timed.evaluate(arch)
    assert not math.isnan(with_queries.test_accuracy(arch))
    assert "training time" in str(info.value)

"""The contract every registered query optimizer and predictor keeps (so interfaces cannot drift).

Parametrised over ``algorithms.names("optimizer")`` and ``algorithms.names("predictor")``: a newly
registered algorithm is checked without editing this file. Each check runs on a tiny data-free space
(``tests/fixtures/toy_space.py``) and on NAS-Bench-201 (data-marked).
"""
from __future__ import annotations

import pickle
import random
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pytest

import algorithms
from benchmarks.base import Benchmark, Budget, Oracle, OracleTask
from fixtures.toy_space import ToyBenchmark
from nasrepro.errors import ConfigError

OPTIMIZERS = algorithms.names("optimizer")
PREDICTORS = algorithms.names("predictor") or [
    pytest.param(None, marks=pytest.mark.skip(reason="no predictor registered yet"))]

#: batch sizes of one test run: single asks first (past every initial phase), then mixed batches
STEPS = [1] * 12 + [3, 8, 1, 5] * 6
RESUME_AT = 20  # index into STEPS where a run is checkpointed


@dataclass
class Setting:
    benchmark: Benchmark
    task: OracleTask

    @property
    def space(self):
        return self.benchmark.space

    def oracle(self) -> Oracle:
        return Oracle(self.benchmark, self.task, Budget(max_queries=10_000))

    def pool(self, size: int, seed: int) -> list:
        archs = self.benchmark.archs_with_data()
        chosen = np.random.default_rng(seed).choice(len(archs), size=size, replace=False)
        return [archs[int(i)] for i in chosen]


@pytest.fixture(params=["toy", pytest.param("nb201", marks=pytest.mark.data)])
def setting(request) -> Setting:
    if request.param == "toy":
        return Setting(ToyBenchmark(), OracleTask("toy"))
    return Setting(request.getfixturevalue("nb201"), OracleTask("cifar10"))


def make(name: str, setting: Setting, seed: int, pool: Sequence[Any] | None = None):
    return algorithms.make_optimizer(name, setting.space, np.random.default_rng(seed), pool)


def run(optimizer, oracle: Oracle, steps: Sequence[int]) -> list[tuple[str, float]]:
    """Ask/evaluate/tell with the given batch sizes; the trajectory as (arch id, validation accuracy)."""
    trajectory = []
    for n in steps:
        archs = optimizer.ask(n)
        observations = [oracle.evaluate(a) for a in archs]
        optimizer.tell(observations)
        trajectory += [(o.arch.id, o.valid) for o in observations]
    return trajectory


def global_random_states() -> tuple:
    import torch

    return random.getstate(), pickle.dumps(np.random.get_state()), torch.random.get_rng_state().numpy().tobytes()


def reseed_globals(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Query optimizers
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_ask_returns_n_specs_of_the_space(name, setting):
    optimizer, oracle = make(name, setting, 0), setting.oracle()
    space = setting.space
    for n in STEPS:
        archs = optimizer.ask(n)
        assert len(archs) == n
        for arch in archs:
            assert space.parse(space.format(arch)) == arch
        optimizer.tell([oracle.evaluate(a) for a in archs])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_incumbent_is_the_best_validation_observation(name, setting):
    optimizer, oracle = make(name, setting, 1), setting.oracle()
    trajectory = run(optimizer, oracle, STEPS)
    assert len(optimizer.history) == len(trajectory) == oracle.queries
    best_valid = max(v for _, v in trajectory)
    first_best = next(arch_id for arch_id, v in trajectory if v == best_valid)
    assert optimizer.incumbent.valid == best_valid
    assert optimizer.incumbent.arch.id == first_best


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_resume_from_state_dict_is_bit_identical(name, setting):
    optimizer, oracle = make(name, setting, 2), setting.oracle()
    run(optimizer, oracle, STEPS[:RESUME_AT])
    state = pickle.loads(pickle.dumps(optimizer.state_dict()))  # a checkpoint goes through a file
    rest = run(optimizer, oracle, STEPS[RESUME_AT:])

    resumed = make(name, setting, 12345)  # a different generator: the state must overwrite it
    resumed.load_state_dict(state)
    assert run(resumed, setting.oracle(), STEPS[RESUME_AT:]) == rest
    assert resumed.incumbent == optimizer.incumbent
    assert len(resumed.history) == len(optimizer.history)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_seed_same_trajectory_other_seed_differs(name, setting):
    first = run(make(name, setting, 3), setting.oracle(), STEPS)
    again = run(make(name, setting, 3), setting.oracle(), STEPS)
    other = run(make(name, setting, 4), setting.oracle(), STEPS)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_global_random_state_is_neither_used_nor_changed(name, setting):
    trajectories = []
    for global_seed in (10, 20):
        reseed_globals(global_seed)
        before = global_random_states()
        trajectories.append(run(make(name, setting, 5), setting.oracle(), STEPS))
        assert global_random_states() == before, "the optimizer touched global random state"
    assert trajectories[0] == trajectories[1]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_pool_is_respected(name, setting):
    pool = setting.pool(size=20 if setting.space.name == "toy" else 500, seed=6)
    pool_ids = {a.id for a in pool}
    optimizer = make(name, setting, 7, pool=pool)
    trajectory = run(optimizer, setting.oracle(), STEPS)
    outside = [arch_id for arch_id, _ in trajectory if arch_id not in pool_ids]
    assert not outside, f"{name} asked {len(outside)} architectures outside the pool, e.g. {outside[0]}"


# --------------------------------------------------------------------------------------------------
# Hyper-parameters come from the config, for every registered algorithm
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", algorithms.names())
def test_hyperparameters_all_come_from_the_config(name):
    entry = algorithms.entry(name)
    config = algorithms.load_config(name)
    assert {"source", "known_deviations"} <= set(config.get("meta", {})), f"{entry.config}.toml [meta]"
    assert isinstance(config["meta"]["known_deviations"], list)
    accepted = algorithms.constructor_keys(algorithms.algorithm_class(name)) - {"self", "space", "rng", "pool"}
    if entry.kind == "oneshot":  # 'space' names the search space; some keys are derived (DrNAS: reg_scale)
        assert set(config[entry.section]) - {"space"} <= accepted, "config keys the constructor ignores"
    else:
        assert set(config[entry.section]) == accepted, "config section and constructor disagree"
    assert algorithms.resolve_hparams(name) == config[entry.section]
    with pytest.raises(ConfigError, match="not_a_hyperparameter"):
        algorithms.resolve_hparams(name, {"not_a_hyperparameter": 1})


# --------------------------------------------------------------------------------------------------
# Predictors
# --------------------------------------------------------------------------------------------------
def training_data(setting: Setting, n: int, seed: int) -> tuple[list, np.ndarray]:
    archs = setting.pool(size=n, seed=seed)
    y = np.array([setting.benchmark.query(a, setting.task.dataset) for a in archs])
    return archs, y


def make_predictor(name: str, setting: Setting, seed: int):
    spaces = algorithms.algorithm_class(name).spaces
    if spaces is not None and setting.space.name not in spaces:
        pytest.skip(f"{name} models only {', '.join(spaces)}")
    return algorithms.make_predictor(name, setting.space, np.random.default_rng(seed))


@pytest.mark.parametrize("name", PREDICTORS)
def test_predictor_shapes(name, setting, one_torch_thread):
    archs, y = training_data(setting, 40, seed=0)
    queries, _ = training_data(setting, 15, seed=1)
    predictor = make_predictor(name, setting, 0)
    assert predictor.fit(archs, y) is predictor
    prediction = np.asarray(predictor.predict(queries))
    assert prediction.shape == (len(queries),) and np.isfinite(prediction).all()
    mean, std = predictor.predict_with_std(queries)
    assert np.shape(mean) == np.shape(std) == (len(queries),)
    assert (np.asarray(std) >= 0).all()


@pytest.mark.parametrize("name", PREDICTORS)
def test_predictor_is_deterministic_given_the_generator(name, setting, one_torch_thread):
    archs, y = training_data(setting, 40, seed=2)
    queries, _ = training_data(setting, 15, seed=3)
    predictions = []
    for global_seed in (10, 20):
        reseed_globals(global_seed)
        before = global_random_states()
        predictor = make_predictor(name, setting, 4)
        predictions.append(np.asarray(predictor.fit(archs, y).predict(queries)))
        assert global_random_states() == before, "the predictor touched global random state"
    np.testing.assert_array_equal(predictions[0], predictions[1])

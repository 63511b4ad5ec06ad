"""The Ray executor against a real local Ray instance: same bytes as the local executor, user errors
surface as themselves, and a missing Ray is a clear error."""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from nasrepro.errors import CheckpointError, ConfigError
from reproduce.executors import LocalExecutor, RayExecutor, make_executor
from reproduce.runner import Experiment, run_experiment

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.data,
              pytest.mark.skipif(importlib.util.find_spec("algorithms.baselines") is None,
                                 reason="needs the baselines (Ray workers import the registry afresh)")]

EXPERIMENT = Experiment(("random_search", "regularized_evolution"), "nb201", "cifar10", (0, 1), 25)


@pytest.mark.slow
def test_cli_starts_and_stops_its_own_ray_instance(data_root, tmp_path):
    from nasrepro.cli import main

    assert not ray.is_initialized()
    argv = ["run", "random_search", "--benchmark", "nb201", "--dataset", "cifar10", "--queries", "10",
            "--seeds", "0-1", "--quiet", "--out"]
    assert main([*argv, str(tmp_path / "ray"), "--executor", "ray", "--workers", "2"]) == 0
    assert not ray.is_initialized()  # started here, so shut down here
    assert main([*argv, str(tmp_path / "local"), "--workers", "1"]) == 0
    assert trajectories(tmp_path / "ray") == trajectories(tmp_path / "local")


@pytest.fixture(scope="module")
def local_ray(data_root):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def trajectories(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("trajectory.csv"))}


def test_ray_gives_the_same_bytes_as_local(local_ray, tmp_path):
    run_experiment(EXPERIMENT, tmp_path / "local", executor="local", workers=1, progress=False)
    outcomes = run_experiment(EXPERIMENT, tmp_path / "ray", executor="ray", progress=False)
    assert [o.status for o in outcomes] == ["done"] * 4
    assert trajectories(tmp_path / "ray") == trajectories(tmp_path / "local")
    assert len(trajectories(tmp_path / "ray")) == 4
    assert ray.is_initialized()  # joined the running instance and left it running
    again = run_experiment(EXPERIMENT, tmp_path / "ray", executor="ray", progress=False)
    assert [o.status for o in again] == ["skipped"] * 4


def test_user_error_in_a_ray_task_is_raised_as_itself(local_ray, tmp_path):
    run_experiment(EXPERIMENT, tmp_path, executor="local", workers=1, progress=False)
    run_dir = tmp_path / "random_search" / "nb201-cifar10" / "seed-1"
    (run_dir / "summary.json").unlink()
    (run_dir / "checkpoint.pkl").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="--restart-corrupt"):
        run_experiment(EXPERIMENT, tmp_path, executor="ray", progress=False)
    outcomes = run_experiment(EXPERIMENT, tmp_path, executor="ray", restart_corrupt=True, progress=False)
    assert sorted(o.status for o in outcomes) == ["done"] + ["skipped"] * 3


def test_executor_choice_errors(monkeypatch):
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ConfigError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="positive"):
        make_executor("local", workers=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r'pip install "\.\[ray\]"'):
        RayExecutor()


def test_ray_tasks_get_the_drivers_data_root_and_cache(local_ray, monkeypatch):
    # os.getenv pickles by reference, so it reads the worker's environment; set after Ray started: its workers' own environment still holds the old values (or none)
    monkeypatch.setenv("NASREPRO_CACHE", "/nonexistent/cache-set-after-ray-init")
    with RayExecutor() as pool:
        assert list(pool.map(os.getenv, ["NASREPRO_CACHE"])) == ["/nonexistent/cache-set-after-ray-init"]


def test_local_workers_run_one_thread_each():
    with LocalExecutor(workers=2) as pool:
        assert list(pool.map(os.getenv, ["OMP_NUM_THREADS", "OMP_NUM_THREADS"])) == ["1", "1"]

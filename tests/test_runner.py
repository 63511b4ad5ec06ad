"""The experiment runner: layout, determinism, resume, conflicts, checkpoints, locking.

A tiny optimizer defined here (an evolution-like searcher with state beyond its generator) stands in for
the baselines, so these tests pin the runner alone. Other runner test files import it from here.
"""
from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import algorithms
from algorithms.base import QueryOptimizer
from nasrepro.errors import CheckpointError, ConfigError, ResultsConflictError
from reproduce import runner
from reproduce.runner import Experiment, RunSpec, run_experiment, run_one

TINY = "tiny_evolution"
TINY_CONFIG = {"meta": {"source": "test fixture", "known_deviations": "none"},
               TINY: {"population": 5, "mutate_probability": 0.7}}

pytestmark = pytest.mark.data


class TinyEvolution(QueryOptimizer):
    """Samples ``population`` archs, then mutates a random member of the last ``population`` ones."""

    name = TINY

    def __init__(self, space, rng, pool=None, population: int = 5, mutate_probability: float = 0.7):
        super().__init__(space, rng, pool)
        self.population = population
        self.mutate_probability = mutate_probability
        self.recent: list = []

    def _ask(self, n: int) -> list:
        out = []
        for _ in range(n):
            if len(self.recent) < self.population or self.rng.random() > self.mutate_probability:
                out.append(self.random_arch())
            else:
                parent = self.recent[int(self.rng.integers(len(self.recent)))]
                out.append(self.space.mutate(parent, self.rng))
        return out

    def _tell(self, observations) -> None:
        self.recent = (self.recent + [o.arch for o in observations])[-self.population:]


def register_tiny(monkeypatch=None) -> None:
    """Register :class:`TinyEvolution` (with ``monkeypatch``: undone after the test)."""
    entry = algorithms.Entry(f"{__name__}:TinyEvolution", "optimizer", "tiny", TINY)
    original = algorithms.load_config

    def load_config(name: str) -> dict:
        return TINY_CONFIG if name == TINY else original(name)

    if monkeypatch is None:
        algorithms.REGISTRY[TINY] = entry
        algorithms.load_config = load_config
    else:
        monkeypatch.setitem(algorithms.REGISTRY, TINY, entry)
        monkeypatch.setattr(algorithms, "load_config", load_config)


@pytest.fixture
def tiny(monkeypatch, data_root):
    register_tiny(monkeypatch)
    return TINY


def spec(seed: int = 0, queries: int = 30, **kw) -> RunSpec:
    return RunSpec(TINY, "nb201", "cifar10", seed, max_queries=queries, **kw)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_writes_layout_and_trajectory(tiny, tmp_path, nb201):
    outcome = run_one(spec(), tmp_path, progress=False)
    run_dir = tmp_path / TINY / "nb201-cifar10" / "seed-0"
    assert outcome.run_dir == run_dir and outcome.status == "done"
    for name in ("config.json", "meta.json", "trajectory.csv", "summary.json", "checkpoint.pkl"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hyperparameters"] == TINY_CONFIG[TINY]
    assert config["budget"] == {"max_queries": 30, "max_seconds": None}
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["data_sha256"] == nb201.data_sha256() and meta["python"]

    rows = read_rows(run_dir / "trajectory.csv")
    assert [int(r["query"]) for r in rows] == list(range(1, 31))
    valid = np.array([float(r["valid"]) for r in rows])
    seconds = np.array([float(r["seconds"]) for r in rows])
    # the incumbent is the running best by validation; its test accuracy is the table's for that arch
    np.testing.assert_array_equal([float(r["incumbent_valid"]) for r in rows], np.maximum.accumulate(valid))
    np.testing.assert_allclose([float(r["cumulative_seconds"]) for r in rows], np.cumsum(seconds))
    for r in rows:
        assert float(r["valid"]) == nb201.query(r["arch_id"], "cifar10", split="valid")
        assert float(r["test"]) == nb201.query(r["arch_id"], "cifar10", split="test")
    best = int(np.argmax(valid))
    assert float(rows[-1]["incumbent_test"]) == float(rows[best]["test"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["queries"] == 30 and summary["incumbent"]["arch_id"] == rows[best]["arch_id"]
    assert summary["best_test_seen"] == max(float(r["test"]) for r in rows)


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    a = run_one(spec(seed=1), tmp_path / "a", progress=False).run_dir / "trajectory.csv"
    b = run_one(spec(seed=1), tmp_path / "b", progress=False).run_dir / "trajectory.csv"
    c = run_one(spec(seed=2), tmp_path / "a", progress=False).run_dir / "trajectory.csv"
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_finished_run_is_skipped(tiny, tmp_path):
    first = run_one(spec(), tmp_path, progress=False)
    before = (first.run_dir / "trajectory.csv").stat().st_mtime_ns
    second = run_one(spec(), tmp_path, progress=False)
    assert second.status == "skipped" and second.summary == first.summary
    assert (first.run_dir / "trajectory.csv").stat().st_mtime_ns == before


def test_resume_from_partial_checkpoint_is_identical(tiny, tmp_path):
    full = run_one(spec(queries=40, checkpoint_every=7), tmp_path / "full", progress=False)
    # simulate a crash after the checkpoint at query 14: keep that checkpoint, drop the finished files
    partial = tmp_path / "partial"
    run_one(spec(queries=14, checkpoint_every=7), tmp_path / "scratch", progress=False)
    run_dir = spec(queries=40).run_dir(partial)
    run_dir.mkdir(parents=True)
    scratch = spec(queries=14).run_dir(tmp_path / "scratch")
    checkpoint = pickle.loads((scratch / "checkpoint.pkl").read_bytes())
    checkpoint["config"] = json.loads(json.dumps(spec(queries=40).resolved_config()))
    (run_dir / "checkpoint.pkl").write_bytes(pickle.dumps(checkpoint))
    (run_dir / "config.json").write_text(json.dumps(checkpoint["config"]))
    resumed = run_one(spec(queries=40, checkpoint_every=7), partial, progress=False)
    assert resumed.status == "resumed"
    assert (resumed.run_dir / "trajectory.csv").read_bytes() == (full.run_dir / "trajectory.csv").read_bytes()


def test_other_experiment_in_out_dir_is_a_conflict(tiny, tmp_path):
    done = run_one(spec(queries=20), tmp_path, progress=False)
    before = {p.name: p.read_bytes() for p in done.run_dir.iterdir() if p.is_file()}
    with pytest.raises(ResultsConflictError, match="budget"):
        run_one(spec(queries=25), tmp_path, progress=False)
    with pytest.raises(ResultsConflictError, match="hyperparameters"):
        run_experiment(Experiment((TINY,), "nb201", "cifar10", (0,), 20, overrides={"population": 3}),
                       tmp_path, progress=False)
    assert {p.name: p.read_bytes() for p in done.run_dir.iterdir() if p.is_file()} == before


def test_corrupt_checkpoint_is_reported_then_moved_aside(tiny, tmp_path):
    reference = run_one(spec(queries=20), tmp_path / "ref", progress=False)
    run_dir = spec(queries=20).run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(spec(queries=20).resolved_config()))
    (run_dir / "checkpoint.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="--restart-corrupt"):
        run_one(spec(queries=20), tmp_path, progress=False)
    assert (run_dir / "checkpoint.pkl").read_bytes() == b"\x80\x04garbage"  # kept, not deleted
    outcome = run_one(spec(queries=20), tmp_path, restart_corrupt=True, progress=False)
    assert outcome.status == "done"
    assert [p.name for p in run_dir.glob("checkpoint.pkl.corrupt-*")]
    assert (run_dir / "trajectory.csv").read_bytes() == (reference.run_dir / "trajectory.csv").read_bytes()


def test_time_budget_stops_when_simulated_seconds_are_spent(tiny, tmp_path):
    outcome = run_one(RunSpec(TINY, "nb201", "cifar10", 0, max_seconds=50_000.0), tmp_path, progress=False)
    rows = read_rows(outcome.run_dir / "trajectory.csv")
    cumulative = [float(r["cumulative_seconds"]) for r in rows]
    assert cumulative[-1] >= 50_000.0 and cumulative[-2] < 50_000.0
    assert outcome.summary["simulated_seconds"] == pytest.approx(cumulative[-1])


def test_generators_depend_on_seed_and_identity():
    def draw(s: RunSpec) -> list[float]:
        opt, orc = s.generators()
        return [opt.random(), orc.random()]

    base = RunSpec("random_search", "nb201", "cifar10", 3, max_queries=5)
    assert draw(base) == draw(RunSpec("random_search", "nb201", "cifar10", 3, max_queries=9))
    assert draw(base) != draw(RunSpec("random_search", "nb201", "cifar100", 3, max_queries=5))
    assert draw(base) != draw(RunSpec("random_search", "nb201", "cifar10", 4, max_queries=5))
    assert draw(base)[0] != draw(base)[1]


def test_experiment_expands_and_routes_overrides(tiny):
    exp = Experiment((TINY,), "nb201", "cifar10", (0, 1, 2), 10,
                     overrides={"population": 3, f"{TINY}.mutate_probability": 0.1})
    specs = exp.runs()
    assert [s.seed for s in specs] == [0, 1, 2]
    assert dict(specs[0].overrides) == {"population": 3, "mutate_probability": 0.1}
    with pytest.raises(ConfigError):
        Experiment(("no_such_algo",), "nb201", "cifar10", (0,), 10).runs()
    with pytest.raises(ConfigError, match="unknown hyper-parameter"):
        Experiment((TINY,), "nb201", "cifar10", (0,), 10, overrides={"popsize": 3}).runs()[0].resolved_config()
    with pytest.raises(ConfigError):
        RunSpec(TINY, "nb201", "cifar10", -1, max_queries=3)
    with pytest.raises(ConfigError):
        RunSpec(TINY, "nb201", "cifar10", 0, max_queries=0)


def test_locked_run_waits_or_refuses(tiny, tmp_path):
    s = spec(queries=5)
    run_dir = s.run_dir(tmp_path)
    run_dir.mkdir(parents=True)
    with runner._run_lock(run_dir, wait=True):
        with pytest.raises(BlockingIOError):
            run_one(s, tmp_path, progress=False, wait_for_lock=False)
    assert run_one(s, tmp_path, progress=False, wait_for_lock=False).status == "done"

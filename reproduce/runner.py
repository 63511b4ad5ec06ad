"""The experiment runner: algorithms x benchmark x dataset x seeds x budget, one directory per run.

A run writes ``<out>/<algo>/<bench>-<dataset>/seed-<k>/``:

* ``config.json``  -- the fully resolved configuration (it is the run's identity: a directory holding
  another config is a :class:`ResultsConflictError`, never overwritten);
* ``meta.json``    -- provenance (git commit, package versions, data sha256, host, python);
* ``trajectory.csv`` -- one row per query, incumbent chosen by validation accuracy;
* ``summary.json`` -- written last: its presence (with a matching config) marks the run finished;
* ``checkpoint.pkl`` -- written atomically every ``checkpoint_every`` queries and at the end.

Determinism: every generator derives from ``SeedSequence(seed, spawn_key=<hash of algo/bench/dataset>)``,
and a checkpoint holds the optimizer state (its generator included), the oracle's counters and generator,
and the trajectory so far. A run killed at any moment (``kill -9``) and started again therefore ends with
a trajectory byte-identical to an uninterrupted one: queries after the last checkpoint are simply redone.

Concurrency: each run dir is guarded by an ``fcntl.flock`` on ``<run>/.lock``; a second process running
the same command waits for the lock, then finds the run finished and skips it.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import math
import os
import pickle
import platform
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

import algorithms
import benchmarks
from benchmarks.base import Budget, Oracle, OracleTask
from nasrepro.errors import CheckpointError, ConfigError, ResultsConflictError
from nasrepro.io import atomic_write_bytes, atomic_write_json, atomic_write_text

#: bump when the checkpoint layout changes (an old checkpoint is then a CheckpointError, not a crash)
CHECKPOINT_FORMAT = 1
TRAJECTORY_COLUMNS = ("query", "arch_id", "valid", "test", "seconds", "cumulative_seconds",
                      "incumbent_valid", "incumbent_test")
#: packages whose versions go into meta.json
PROVENANCE_PACKAGES = ("nasrepro", "numpy", "scipy", "scikit-learn", "torch", "ray")


@dataclass(frozen=True)
class RunSpec:
    """One run: an algorithm on one benchmark/dataset with one seed and budget."""

    algorithm: str
    benchmark: str
    dataset: str
    seed: int
    max_queries: int | None = None
    max_seconds: float | None = None
    #: hyper-parameter overrides on top of the algorithm's config file, as sorted (key, value) pairs
    overrides: tuple[tuple[str, Any], ...] = ()
    split: str = "valid"
    epoch: int | None = None
    valid_seed: str = "mean"
    #: how often to checkpoint (does not change results, so it is not part of the config)
    checkpoint_every: int = 25

    def __post_init__(self) -> None:
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        Budget(self.max_queries, self.max_seconds)  # validates
        if self.checkpoint_every <= 0:
            raise ConfigError(f"checkpoint_every must be positive, got {self.checkpoint_every}")

    def run_dir(self, out: Path) -> Path:
        return Path(out) / self.algorithm / f"{self.benchmark}-{self.dataset}" / f"seed-{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.algorithm}/{self.benchmark}-{self.dataset}/seed-{self.seed}"

    def resolved_config(self) -> dict:
        """Everything that determines the run's results (the run's identity)."""
        return {
            "algorithm": self.algorithm,
            "hyperparameters": algorithms.resolve_hparams(self.algorithm, dict(self.overrides)),
            "overrides": dict(self.overrides),
            "benchmark": self.benchmark,
            "dataset": self.dataset,
            "split": self.split,
            "epoch": self.epoch,
            "valid_seed": self.valid_seed,
            "budget": {"max_queries": self.max_queries, "max_seconds": self.max_seconds},
            "seed": int(self.seed),
        }

    def generators(self) -> tuple[np.random.Generator, np.random.Generator]:
        """(optimizer generator, oracle generator), independent streams derived from seed and identity."""
        identity = f"{self.algorithm}/{self.benchmark}/{self.dataset}".encode()
        key = int.from_bytes(hashlib.sha256(identity).digest()[:8], "little")
        root = np.random.SeedSequence(int(self.seed), spawn_key=(key,))
        optimizer_seq, oracle_seq = root.spawn(2)
        return np.random.default_rng(optimizer_seq), np.random.default_rng(oracle_seq)


@dataclass(frozen=True)
class Experiment:
    """The cross product of algorithms and seeds on one benchmark/dataset with one budget."""

    algorithms: tuple[str, ...]
    benchmark: str
    dataset: str
    seeds: tuple[int, ...]
    max_queries: int | None = None
    max_seconds: float | None = None
    #: overrides for every algorithm ("key") or one algorithm ("algo.key")
    overrides: dict[str, Any] = field(default_factory=dict)
    split: str = "valid"
    epoch: int | None = None
    valid_seed: str = "mean"
    checkpoint_every: int = 25

    def runs(self) -> list[RunSpec]:
        if not self.algorithms:
            raise ConfigError("no algorithm given")
        if not self.seeds:
            raise ConfigError("no seed given")
        for name in self.overrides:
            prefix = name.split(".", 1)[0] if "." in name else None
            if prefix is not None and prefix not in self.algorithms:
                raise ConfigError(f"override {name!r} names algorithm {prefix!r}, which is not in this run")
        specs = []
        for algo in self.algorithms:
            algorithms.entry(algo)  # unknown name -> ConfigError
            if algorithms.entry(algo).kind != "optimizer":
                raise ConfigError(f"{algo} is a {algorithms.entry(algo).kind}, not a query-based optimizer")
            mine = {k: v for k, v in self.overrides.items() if "." not in k}
            mine.update({k.split(".", 1)[1]: v for k, v in self.overrides.items()
                         if k.startswith(f"{algo}.")})
            for seed in self.seeds:
                specs.append(RunSpec(algo, self.benchmark, self.dataset, seed, self.max_queries,
                                     self.max_seconds, tuple(sorted(mine.items())), self.split,
                                     self.epoch, self.valid_seed, self.checkpoint_every))
        return specs


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_one` reports back to the executor."""

    run_dir: Path
    status: str  # "done" (ran now), "resumed", "skipped" (already finished)
    summary: dict


# --------------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def load_benchmark(name: str) -> Any:
    """One loaded benchmark per process (workers run many seeds)."""
    return benchmarks.create(name)


def check_run_dir(spec: RunSpec, out: Path) -> str:
    """'new', 'partial' or 'finished'; raises :class:`ResultsConflictError` if the dir holds another
    experiment. Reads only: safe to call on every run before any is started."""
    run_dir = spec.run_dir(out)
    config_path = run_dir / "config.json"
    wanted = _jsonable(spec.resolved_config())  # a bad hyper-parameter fails here, before any write
    if not config_path.is_file():
        return "new"
    try:
        existing = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsConflictError(f"{config_path} is unreadable ({exc}); move it away or use another --out")
    if existing != wanted:
        diff = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
        raise ResultsConflictError(f"{run_dir} holds results of another experiment (differs in "
                                   f"{', '.join(diff)}); use another --out or move it away")
    return "finished" if (run_dir / "summary.json").is_file() else "partial"


def run_one(spec: RunSpec, out: Path, restart_corrupt: bool = False, progress: bool = True,
            wait_for_lock: bool = True) -> RunOutcome:
    """Run (or resume, or skip) one run and return its summary."""
    run_dir = spec.run_dir(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir, wait_for_lock):
        state = check_run_dir(spec, out)
        if state == "finished":
            return RunOutcome(run_dir, "skipped", json.loads((run_dir / "summary.json").read_text()))
        for stale in run_dir.glob(".*.tmp"):  # left by a killed writer; we hold the lock, so none is live
            stale.unlink()
        config = _jsonable(spec.resolved_config())
        if state == "new":
            atomic_write_json(run_dir / "config.json", config)
        benchmark = load_benchmark(spec.benchmark)
        if not (run_dir / "meta.json").is_file():
            atomic_write_json(run_dir / "meta.json", provenance(benchmark))
        return _search(spec, config, benchmark, run_dir, restart_corrupt, progress)


def _search(spec: RunSpec, config: dict, benchmark: Any, run_dir: Path, restart_corrupt: bool,
            progress: bool) -> RunOutcome:
    optimizer_rng, oracle_rng = spec.generators()
    pool = benchmark.archs_with_data()
    space = benchmark.space
    # the pool is passed only where the data does not cover the space (NB101); elsewhere sampling the
    # space directly is the algorithm as published
    if pool is not None and space.size is not None and len(pool) >= space.size:
        pool = None
    optimizer = algorithms.make_optimizer(spec.algorithm, space, optimizer_rng, pool, dict(spec.overrides))
    oracle = Oracle(benchmark, OracleTask(spec.dataset, spec.split, spec.epoch, spec.valid_seed),
                    Budget(spec.max_queries, spec.max_seconds))
    rows: list[dict] = []
    wall_before = 0.0
    status = "done"

    checkpoint = read_checkpoint(run_dir / "checkpoint.pkl", config, restart_corrupt)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        oracle.queries, oracle.seconds = checkpoint["oracle_queries"], checkpoint["oracle_seconds"]
        oracle_rng.bit_generator.state = checkpoint["oracle_rng"]
        rows = checkpoint["rows"]
        wall_before = checkpoint["wall_seconds"]
        status = "resumed"

    def save_checkpoint() -> None:
        payload = {"format": CHECKPOINT_FORMAT, "config": config, "optimizer": optimizer.state_dict(),
                   "oracle_queries": oracle.queries, "oracle_seconds": oracle.seconds,
                   "oracle_rng": oracle_rng.bit_generator.state, "rows": rows,
                   "wall_seconds": wall_before + time.perf_counter() - start}
        atomic_write_bytes(run_dir / "checkpoint.pkl", pickle.dumps(payload, protocol=4))

    start = time.perf_counter()
    bar = tqdm(total=spec.max_queries, initial=len(rows), desc=spec.label, unit="q", leave=False,
               disable=not progress)
    with bar:
        while not oracle.exhausted:
            arch = optimizer.ask(1)[0]
            obs = oracle.evaluate(arch, oracle_rng)
            optimizer.tell([obs])
            rows.append(_trajectory_row(rows, obs, oracle.test_accuracy(arch), oracle.seconds))
            bar.update(1)
            if len(rows) % spec.checkpoint_every == 0:
                save_checkpoint()
    save_checkpoint()
    wall = wall_before + time.perf_counter() - start

    atomic_write_text(run_dir / "trajectory.csv", trajectory_csv(rows))
    summary = _summary(rows, oracle, wall)
    atomic_write_json(run_dir / "summary.json", summary)  # last: marks the run finished
    return RunOutcome(run_dir, status, summary)


def _trajectory_row(rows: list[dict], obs: Any, test: float, cumulative_seconds: float) -> dict:
    # incumbent by validation accuracy, first one on ties (as QueryOptimizer.incumbent)
    previous = rows[-1] if rows else None
    if previous is None or obs.valid > previous["incumbent_valid"]:
        incumbent_valid, incumbent_test = obs.valid, test
    else:
        incumbent_valid, incumbent_test = previous["incumbent_valid"], previous["incumbent_test"]
    return {"query": len(rows) + 1, "arch_id": obs.arch.id, "valid": float(obs.valid), "test": float(test),
            "seconds": float(obs.seconds), "cumulative_seconds": float(cumulative_seconds),
            "incumbent_valid": float(incumbent_valid), "incumbent_test": float(incumbent_test)}


def trajectory_csv(rows: list[dict]) -> str:
    """CSV text; floats as ``repr`` (shortest round-trip form), so equal runs give equal bytes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRAJECTORY_COLUMNS)
    for row in rows:
        writer.writerow([repr(row[c]) if isinstance(row[c], float) else row[c] for c in TRAJECTORY_COLUMNS])
    return buffer.getvalue()


def _summary(rows: list[dict], oracle: Oracle, wall_seconds: float) -> dict:
    final = rows[-1]
    incumbent_query = next(r["query"] for r in rows if r["valid"] == final["incumbent_valid"])
    incumbent = rows[incumbent_query - 1]
    tests = [r["test"] for r in rows if not math.isnan(r["test"])]
    return {
        "incumbent": {"arch_id": incumbent["arch_id"], "query": incumbent_query, "valid": incumbent["valid"],
                      "test": _nan_to_none(incumbent["test"])},
        "best_valid": max(r["valid"] for r in rows),
        # best test accuracy among the evaluated architectures (an oracle number, for reporting only)
        "best_test_seen": max(tests) if tests else None,
        "queries": oracle.queries,
        "simulated_seconds": oracle.seconds,
        "wall_seconds": wall_seconds,
    }


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def read_checkpoint(path: Path, config: dict, restart_corrupt: bool) -> dict | None:
    """A run's ``checkpoint.pkl`` if it exists and belongs to ``config``; None if absent. A corrupt or
    foreign one is a :class:`CheckpointError`, or with ``restart_corrupt`` is moved aside (None)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            checkpoint = pickle.load(fh)  # our own file, written atomically by this module
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("unknown checkpoint layout")
        if checkpoint["config"] != config:
            raise ValueError("it belongs to another configuration")
        return checkpoint
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, AttributeError,
            ImportError, IndexError) as exc:
        if not restart_corrupt:
            raise CheckpointError(f"checkpoint {path} is corrupt ({exc}); rerun with --restart-corrupt to "
                                  f"move it aside and restart this run") from None
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        tqdm.write(f"nasrepro: moved corrupt checkpoint to {aside}; restarting {path.parent}")
        return None


@contextmanager
def _run_lock(run_dir: Path, wait: bool) -> Iterator[None]:
    with open(run_dir / ".lock", "a") as fh:
        flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
        fcntl.flock(fh.fileno(), flags)  # BlockingIOError (an OSError) if not waiting and locked
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _jsonable(obj: Any) -> Any:
    """The object as it reads back from JSON (so configs compare equal with what is on disk)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------------
def provenance(benchmark: Any) -> dict:
    return {
        "git_commit": _git_commit(),
        "packages": {name: _version(name) for name in PROVENANCE_PACKAGES},
        "data_sha256": benchmark.data_sha256(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": "cpu",
        "python": sys.version.split()[0],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[1]
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                           capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------------
# An experiment
# --------------------------------------------------------------------------------------------------
def run_experiment(experiment: Experiment, out: Path, executor: str = "local", workers: int | None = None,
                   address: str | None = None, restart_corrupt: bool = False,
                   progress: bool = True) -> list[RunOutcome]:
    """Run every run of ``experiment`` into ``out``; finished runs are skipped, interrupted ones resumed.

    All run dirs are checked before anything is written, so a conflicting ``out`` loses nothing.
    """
    from reproduce.executors import make_executor

    specs = experiment.runs()
    benchmark = load_benchmark(experiment.benchmark)  # unknown name -> ConfigError
    benchmark.check_dataset(experiment.dataset)  # unknown dataset -> OutOfDomainError
    for spec in specs:
        check_run_dir(spec, out)  # also resolves hyper-parameters: a bad --set fails here
    with make_executor(executor, workers=workers, address=address) as pool:
        outcomes = []
        inner_progress = progress and pool.in_process(len(specs))
        jobs = [(spec, Path(out), restart_corrupt, inner_progress) for spec in specs]
        for outcome in tqdm(pool.map(run_one_job, jobs), total=len(jobs), desc="runs", unit="run",
                            disable=not progress):
            outcomes.append(outcome)
    return sorted(outcomes, key=lambda o: str(o.run_dir))


def run_one_job(job: tuple) -> RunOutcome:
    """Picklable entry point for executors."""
    spec, out, restart_corrupt, progress = job
    return run_one(spec, out, restart_corrupt=restart_corrupt, progress=progress)

"""The contracts every search space and benchmark implements.

Data flows one way: an architecture spec (validated, with a canonical id) -> a benchmark (typed query)
-> an oracle (the budgeted view an optimizer run sees) -> the runner.

* :class:`SearchSpace` knows the architectures: parse/print, sample, mutate, neighbours, encodings.
  Every random method takes an explicit ``numpy.random.Generator``; nothing touches global random state.
* :class:`Benchmark` knows the measurements: ``query(arch, dataset, metric, split, epoch, seed)``.
  Unknown names raise :class:`OutOfDomainError`; a well-formed query the data cannot answer raises
  :class:`MissingEntryError`. Nothing is imputed.
* :class:`Oracle` is what a search run uses: it returns validation accuracy and simulated training
  seconds, counts queries and seconds against a :class:`Budget`, and keeps test accuracy for reporting
  only (the runner reads it; optimizers never do).
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import numpy as np

from nasrepro.errors import BudgetExhaustedError, ConfigError, MissingEntryError, OutOfDomainError

ACCURACY = "accuracy"


class SearchSpace(abc.ABC):
    """A set of architectures. Specs are small frozen objects with ``.id`` (canonical, hashable str)."""

    name: str
    #: names accepted by :meth:`encode`
    encodings: tuple[str, ...] = ()

    @abc.abstractmethod
    def parse(self, text: str) -> Any:
        """Parse the space's canonical text form; raises :class:`InvalidArchError`."""

    def format(self, arch: Any) -> str:
        """The canonical text form (inverse of :meth:`parse`)."""
        return arch.id

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """One architecture drawn uniformly (or as documented) from the space."""

    @abc.abstractmethod
    def neighbours(self, arch: Any) -> list:
        """All architectures one edit away (distinct from ``arch``, deduplicated by id)."""

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any:
        """One random single-edit neighbour (the default draws uniformly among :meth:`neighbours`)."""
        options = self.neighbours(arch)
        return options[int(rng.integers(len(options)))]

    @abc.abstractmethod
    def encode(self, archs: Sequence[Any], encoding: str) -> np.ndarray:
        """A float32 matrix, one row per architecture."""

    def distance(self, a: Any, b: Any) -> int:
        """Edit distance: the least number of single edits that turn ``a`` into ``b``."""
        raise NotImplementedError(f"{self.name} defines no edit distance")

    @property
    def size(self) -> int | None:
        """Number of distinct architectures, if known."""
        return None


@dataclass(frozen=True)
class MetricSpec:
    """One answerable kind of query, as listed by :meth:`Benchmark.describe`."""

    dataset: str
    metric: str
    split: str | None
    epochs: tuple[int, ...]
    seeds: str  # "mean", "mean+per-seed"
    note: str = ""


class Benchmark(abc.ABC):
    """A tabular (or surrogate) benchmark over one search space."""

    name: str
    space: SearchSpace
    datasets: tuple[str, ...]
    #: human label where the benchmark is not the official one (e.g. the NB301 stand-in)
    label: str = ""

    @abc.abstractmethod
    def query(self, arch: Any, dataset: str, metric: str = ACCURACY, split: str | None = "valid",
              epoch: int | None = None, seed: int | None = None, device: str | None = None) -> float:
        """One value. ``epoch=None`` is the final epoch; ``seed=None`` the mean over recorded runs."""

    def query_many(self, archs: Sequence[Any], dataset: str, metric: str = ACCURACY,
                   split: str | None = "valid", epoch: int | None = None, seed: int | None = None,
                   device: str | None = None) -> np.ndarray:
        """Batched :meth:`query` (implementations vectorise this)."""
        return np.array([self.query(a, dataset, metric, split, epoch, seed, device) for a in archs],
                        dtype=np.float64)

    @abc.abstractmethod
    def describe(self) -> list[MetricSpec]:
        """Everything this benchmark can answer."""

    def has_data(self, arch: Any) -> bool:
        """Whether the benchmark holds measurements for ``arch`` (False for NB101 cells we lack)."""
        return True

    def archs_with_data(self) -> list | None:
        """Every architecture with data, when the benchmark is a finite table; None for surrogates."""
        return None

    def data_sha256(self) -> dict[str, str]:
        """sha256 of each source file behind this benchmark (for run metadata)."""
        return {}

    # -- shared validation helpers ------------------------------------------------------------------
    def check_dataset(self, dataset: str) -> str:
        canonical = {d.lower(): d for d in self.datasets}
        if not isinstance(dataset, str) or dataset.lower() not in canonical:
            raise OutOfDomainError(f"{self.name}: unknown dataset {dataset!r}; "
                                   f"choose from {', '.join(self.datasets)}")
        return canonical[dataset.lower()]


def check_choice(kind: str, value: Hashable, allowed: Iterable[Hashable], where: str) -> None:
    allowed = list(allowed)
    if value not in allowed:
        shown = ", ".join("None" if a is None else str(a) for a in allowed)
        raise OutOfDomainError(f"{where}: unknown {kind} {value!r}; choose from {shown}")


# --------------------------------------------------------------------------------------------------
# Budgeted view for search runs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """Query and simulated-time limits of one run (``None`` = unlimited)."""

    max_queries: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_queries is None and self.max_seconds is None:
            raise ConfigError("a budget needs a query limit, a time limit, or both")
        if self.max_queries is not None and (not isinstance(self.max_queries, (int, np.integer))
                                             or self.max_queries <= 0):
            raise ConfigError(f"query budget must be a positive integer, got {self.max_queries!r}")
        if self.max_seconds is not None and not (self.max_seconds > 0 and math.isfinite(self.max_seconds)):
            raise ConfigError(f"time budget must be positive seconds, got {self.max_seconds!r}")


@dataclass(frozen=True)
class Observation:
    """What an optimizer is told about one evaluated architecture. No test accuracy, by design."""

    arch: Any
    valid: float
    seconds: float


@dataclass(frozen=True)
class OracleTask:
    """Which measurements stand for 'validation accuracy' and 'training cost' in a run."""

    dataset: str
    split: str = "valid"
    epoch: int | None = None
    #: "mean" (deterministic) or "sample" (one recorded run drawn per query, as a noisy evaluation)
    valid_seed: str = "mean"


@dataclass
class Oracle:
    """A benchmark seen through a budget. Counts every evaluation; repeats are charged again."""

    benchmark: Benchmark
    task: OracleTask
    budget: Budget
    queries: int = 0
    seconds: float = 0.0
    _n_seeds: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.task = OracleTask(self.benchmark.check_dataset(self.task.dataset), self.task.split,
                               self.task.epoch, self.task.valid_seed)
        check_choice("valid_seed mode", self.task.valid_seed, ("mean", "sample"), self.benchmark.name)

    @property
    def exhausted(self) -> bool:
        b = self.budget
        return ((b.max_queries is not None and self.queries >= b.max_queries)
                or (b.max_seconds is not None and self.seconds >= b.max_seconds))

    def evaluate(self, arch: Any, rng: np.random.Generator | None = None) -> Observation:
        if self.exhausted:
            raise BudgetExhaustedError(f"budget exhausted after {self.queries} queries / "
                                       f"{self.seconds:.0f} simulated seconds")
        seed = None
        if self.task.valid_seed == "sample":
            if rng is None:
                raise ConfigError("valid_seed='sample' needs a generator")
            seed = self._draw_seed(arch, rng)
        valid = self.benchmark.query(arch, self.task.dataset, ACCURACY, self.task.split,
                                     self.task.epoch, seed)
        seconds = self.cost(arch)
        self.queries += 1
        self.seconds += seconds
        return Observation(arch, float(valid), float(seconds))

    def _draw_seed(self, arch: Any, rng: np.random.Generator) -> int:
        # recorded runs differ per architecture (NB201 has 2 or 3): draw among those present
        present = []
        for s in range(8):
            try:
                self.benchmark.query(arch, self.task.dataset, ACCURACY, self.task.split, self.task.epoch, s)
            except (MissingEntryError, OutOfDomainError):
                break
            present.append(s)
        if not present:
            raise MissingEntryError(f"{self.benchmark.name}: no per-seed {self.task.split} values "
                                    f"for {arch.id}")
        return present[int(rng.integers(len(present)))]

    def cost(self, arch: Any) -> float:
        """Simulated seconds to train ``arch`` to the task's epoch; 0 where the benchmark has no training
        time and the run has no time budget."""
        try:
            return float(self.benchmark.query(arch, self.task.dataset, "train_time", None, self.task.epoch))
        except MissingEntryError:
            if self.budget.max_seconds is not None:
                raise  # a time budget cannot be honoured without training times
            return 0.0

    def test_accuracy(self, arch: Any) -> float:
        """For reporting only (the runner calls this; optimizers never get the oracle). NaN if absent."""
        try:
            return float(self.benchmark.query(arch, self.task.dataset, ACCURACY, "test", self.task.epoch))
        except (MissingEntryError, OutOfDomainError):
            return float("nan")

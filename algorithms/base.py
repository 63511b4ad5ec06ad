"""The three contracts every algorithm implements (after NASLib's metaclasses, minus their drift).

* :class:`QueryOptimizer` -- ask/tell over a search space. It is given the space, a generator, its
  hyper-parameters and (optionally) the pool of architectures that have data; it is never given the
  benchmark, so it cannot see test accuracy. The incumbent is the best *validation* observation.
* :class:`OneShotOptimizer` -- NASLib's hooks for supernet methods: ``adapt_search_space``,
  ``new_epoch``, ``step``, ``get_final_architecture``, plus ``state_dict``/``load_state_dict``.
* :class:`Predictor` -- ``fit(archs, y)`` / ``predict(archs)`` (and ``predict_with_std`` where the model
  has an uncertainty).

Every hyper-parameter arrives as a keyword argument resolved from the algorithm's config file
(``algorithms/configs/<name>.toml``); an unknown key is a :class:`ConfigError`, never silently ignored.
"""
from __future__ import annotations

import abc
import copy
import pickle
from typing import Any, Sequence

import numpy as np

from benchmarks.base import Observation, SearchSpace


class QueryOptimizer(abc.ABC):
    """Ask for architectures, be told their validation accuracy; subclasses implement ``_ask``/``_tell``."""

    #: registry name (set by subclasses)
    name: str = ""
    #: attributes rebuilt by the constructor (space, pool, what derives from them): not checkpointed
    _not_in_state: tuple[str, ...] = ("space", "pool")

    def __init__(self, space: SearchSpace, rng: np.random.Generator, pool: Sequence[Any] | None = None):
        self.space = space
        self.rng = rng
        #: architectures that have data (None = the whole space is queryable)
        self.pool = pool
        self.history: list[Observation] = []
        self._best: Observation | None = None

    # -- public API (fixed: runners rely on it) -----------------------------------------------------
    def ask(self, n: int = 1) -> list:
        """``n`` architectures to evaluate next."""
        archs = self._ask(n)
        if len(archs) != n:
            raise RuntimeError(f"{type(self).__name__}._ask returned {len(archs)} archs for n={n}")
        return archs

    def tell(self, observations: Sequence[Observation]) -> None:
        """Report evaluated architectures (validation accuracy and simulated cost only)."""
        for obs in observations:
            self.history.append(obs)
            if self._best is None or obs.valid > self._best.valid:
                self._best = obs
        self._tell(list(observations))

    @property
    def incumbent(self) -> Observation | None:
        """The best observation by validation accuracy (first one on ties)."""
        return self._best

    def state_dict(self) -> dict:
        """Everything needed to continue the run bit-identically (generator state included)."""
        state = {k: v for k, v in vars(self).items() if k not in self._not_in_state}
        return pickle.loads(pickle.dumps(state))  # a snapshot; ~2x faster than deepcopy on long histories

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(copy.deepcopy(state))

    # -- to implement -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _ask(self, n: int) -> list: ...

    def _tell(self, observations: list[Observation]) -> None:
        """Update internal state; the base class already recorded history and incumbent."""

    # -- helpers for subclasses ---------------------------------------------------------------------
    def random_arch(self) -> Any:
        """Uniform over the pool if there is one (NB101 cells with data), else over the space."""
        if self.pool is not None:
            return self.pool[int(self.rng.integers(len(self.pool)))]
        return self.space.sample(self.rng)


class OneShotOptimizer(abc.ABC):
    """Supernet-based search, NASLib hook order: adapt_search_space -> (new_epoch -> step*)* -> final."""

    name: str = ""

    @abc.abstractmethod
    def adapt_search_space(self, space: SearchSpace, dataset: str, **kwargs: Any) -> None:
        """Build the supernet (and its architecture parameters) for ``space``."""

    @abc.abstractmethod
    def new_epoch(self, epoch: int) -> None:
        """Called before each epoch (schedules, progressive stages)."""

    @abc.abstractmethod
    def step(self, train_batch: Any, valid_batch: Any) -> dict[str, float]:
        """One search step (architecture update on ``valid_batch``, weight update on ``train_batch``)."""

    @abc.abstractmethod
    def get_final_architecture(self) -> Any:
        """The derived discrete architecture (a spec of the search space)."""

    @abc.abstractmethod
    def state_dict(self) -> dict: ...

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None: ...


class Predictor(abc.ABC):
    """Maps architectures to a performance estimate."""

    name: str = ""
    #: whether :meth:`predict_with_std` gives a real uncertainty
    has_uncertainty: bool = False
    #: search spaces the predictor can model (None = any space offering one of its encodings)
    spaces: tuple[str, ...] | None = None

    def __init__(self, space: SearchSpace, rng: np.random.Generator):
        self.space = space
        self.rng = rng

    @abc.abstractmethod
    def fit(self, archs: Sequence[Any], y: np.ndarray) -> "Predictor": ...

    @abc.abstractmethod
    def predict(self, archs: Sequence[Any]) -> np.ndarray: ...

    def predict_with_std(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std); the default has no uncertainty and returns std = 0."""
        mean = self.predict(archs)
        return mean, np.zeros_like(mean)

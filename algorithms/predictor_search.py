"""Predictor-guided search: BANANAS, NPENAS and the neural predictor of Wen et al. as one loop.

Every method here is the same loop with different parts (White et al. 2021 make this point for BANANAS):

1. ask ``num_init`` uniform random architectures (from the pool, if one is given);
2. fit a performance predictor (``algorithms/predictors.py``, built by :func:`algorithms.make_predictor`)
   on every observation told so far (validation accuracy; an architecture counted once);
3. build a **candidate set** by a strategy (:data:`CANDIDATE_STRATEGIES`);
4. score it by an **acquisition** (:data:`ACQUISITIONS`) and queue the ``queries_per_iteration`` best
   candidates not asked before; go back to 2 once the queue is empty.

Candidate strategies (hyper-parameter ``candidates``):

* ``"mutation"`` (BANANAS) -- children of the ``num_parents`` best architectures observed. A child is
  ``e`` successive random single edits (``space.mutate``) of its parent, ``e`` uniform in
  ``1..max_edits`` (BANANAS' original code draws a variable number of edits; NASLib applies exactly
  ``max_mutations``; with ``max_edits = 1`` the two agree). ``num_candidates`` draws are split evenly
  over the parents. With a pool each edit is drawn among the in-pool neighbours (see :meth:`_children`).
* ``"evolution"`` (NPENAS) -- the same children, but the ``num_parents`` parents are drawn by tournament
  (``tournament_size`` members of the population of all evaluated architectures, with replacement, best
  validation wins; :func:`algorithms.baselines.tournament`) rather than taken as the best.
* ``"full"`` -- every architecture of the pool, or of the space when it can list them
  (``space.all_archs()``: NB201's 15,625); scored in one vectorised predictor call.
* ``"random_subset"`` -- ``subset_size`` architectures drawn uniformly without replacement from the
  pool (or the space's list), redrawn every iteration.
* ``"neighbourhood"`` -- the single-edit neighbourhoods (in the pool) of the ``num_parents`` best.
* ``"nearest"`` -- the ``subset_size`` architectures of the pool (or the space's list) nearest any of the
  ``num_parents`` best, by L1 distance between encodings (the space's first encoding); ties in pool order.
  A neighbourhood that still works when the pool is sparse (NB101 cells with data: a top cell has about
  two single-edit neighbours there).

Acquisitions (hyper-parameter ``acquisition``): ``"mean"`` (greedy: the predicted accuracy), ``"its"``
(independent Thompson sampling as BANANAS: ``mean + std * N(0, 1)``, one draw per candidate) and
``"ucb"`` (``mean + ucb_beta * std``). A predictor without an uncertainty (GCN, trees) gives ``std = 0``
(:meth:`algorithms.base.Predictor.predict_with_std`), so ITS and UCB reduce to greedy with it.

Candidates are deduplicated by id, restricted to the pool and to architectures not asked before; ties
in the acquisition keep the candidates' generation order. When a candidate set is empty (everything
near the parents was asked) the iteration asks one random architecture not asked before (up to
``max_random_draws`` draws; after that, repeats are allowed: a small space can run out).

The predictor is refitted from scratch once ``refit_every`` observations have been told since the last
fit (``refit_every = queries_per_iteration`` refits every iteration, as the papers do); in between, a
new candidate set is scored by the last fitted predictor.

Batches: ``ask(n)`` takes queued candidates first and runs new iterations on what was told so far;
while nothing has been told there is nothing to fit and the batch is topped up with random
architectures. The runner asks one at a time, for which this is the published loop.

The predictor's name may be a list: the first one that models the space is used (the GCN needs a cell
graph, which NB201 and NB101 have and a toy test space has not). ``predictor_overrides`` maps a
predictor's name to overrides of its section in ``predictors.toml`` (e.g. fewer epochs).
"""
from __future__ import annotations

import contextlib
import io
import pickle
from typing import Any, Iterator, Sequence

import numpy as np
import torch

import algorithms
from algorithms.base import QueryOptimizer
from algorithms.baselines import PoolMixin, tournament
from benchmarks.base import Observation, SearchSpace
from nasrepro.errors import ConfigError

CANDIDATE_STRATEGIES = ("mutation", "evolution", "full", "random_subset", "neighbourhood", "nearest")
ACQUISITIONS = ("mean", "its", "ucb")


def _positive_int(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"predictor_search: {key} must be a positive integer, got {value!r}")
    return value


def pick_predictor(names: str | Sequence[str], space: SearchSpace) -> str:
    """The first registered predictor of ``names`` that models ``space`` (its class's ``spaces``)."""
    preferred = [names] if isinstance(names, str) else list(names)
    if not preferred:
        raise ConfigError("predictor_search: predictor must name at least one predictor")
    for name in preferred:
        if not isinstance(name, str) or algorithms.entry(name).kind != "predictor":
            raise ConfigError(f"predictor_search: {name!r} is not a registered predictor; choose from "
                              f"{', '.join(algorithms.names('predictor'))}")
    for name in preferred:
        spaces = algorithms.algorithm_class(name).spaces
        if spaces is None or space.name in spaces:
            return name
    raise ConfigError(f"predictor_search: none of the predictors {preferred!r} models space {space.name!r}")


def acquisition_scores(acquisition: str, mean: np.ndarray, std: np.ndarray, ucb_beta: float,
                       rng: np.random.Generator) -> np.ndarray:
    """The acquisition value of each candidate from the predictor's mean and std (higher is better)."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if acquisition == "mean":
        return mean
    if acquisition == "its":
        # one posterior draw per candidate, independently (BANANAS' independent Thompson sampling)
        return mean + std * rng.standard_normal(len(mean))
    if acquisition == "ucb":
        return mean + ucb_beta * std
    raise ConfigError(f"predictor_search: unknown acquisition {acquisition!r}; choose from {', '.join(ACQUISITIONS)}")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Fit and score on one torch thread, then restore the caller's setting. The models are tiny: on a
    busy 2-core machine two intra-op threads made a BANANAS run 2-15x slower (spin-waiting), and one
    thread makes the floating-point results independent of the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class PredictorGuidedSearch(PoolMixin, QueryOptimizer):
    """Fit a predictor, score a candidate set, evaluate the best few; repeat (see the module docstring)."""

    name = "predictor_search"
    #: rebuilt by the constructor from the space, pool and config; the fitted predictor is saved by
    #: :meth:`state_dict` without its space
    _not_in_state = ("space", "pool", "_pool_ids", "_predictor", "_listed", "_listed_codes")

    def __init__(self, space: SearchSpace, rng: np.random.Generator, pool: Sequence[Any] | None = None, *,
                 predictor: str | Sequence[str], predictor_overrides: dict, candidates: str, acquisition: str,
                 num_init: int, queries_per_iteration: int, refit_every: int, num_candidates: int,
                 num_parents: int, max_edits: int, tournament_size: int, subset_size: int, ucb_beta: float,
                 max_random_draws: int):
        super().__init__(space, rng, pool)
        self._init_pool(pool)
        if candidates not in CANDIDATE_STRATEGIES:
            raise ConfigError(f"predictor_search: unknown candidates {candidates!r}; choose from "
                              f"{', '.join(CANDIDATE_STRATEGIES)}")
        if acquisition not in ACQUISITIONS:
            raise ConfigError(f"predictor_search: unknown acquisition {acquisition!r}; choose from "
                              f"{', '.join(ACQUISITIONS)}")
        for key, value in (("num_init", num_init), ("queries_per_iteration", queries_per_iteration),
                           ("refit_every", refit_every), ("num_candidates", num_candidates),
                           ("num_parents", num_parents), ("max_edits", max_edits),
                           ("tournament_size", tournament_size), ("subset_size", subset_size),
                           ("max_random_draws", max_random_draws)):
            _positive_int(key, value)
        if isinstance(ucb_beta, bool) or not isinstance(ucb_beta, (int, float)) or not ucb_beta >= 0:
            raise ConfigError(f"predictor_search: ucb_beta must be a number >= 0, got {ucb_beta!r}")
        if not isinstance(predictor_overrides, dict) or not all(
                isinstance(v, dict) for v in predictor_overrides.values()):
            raise ConfigError("predictor_search: predictor_overrides must map predictor names to tables of "
                              f"hyper-parameters, got {predictor_overrides!r}")
        self.predictor_name = pick_predictor(predictor, space)
        unknown = sorted(set(predictor_overrides) - set(algorithms.names("predictor")))
        if unknown:
            raise ConfigError(f"predictor_search: predictor_overrides names unknown predictor(s) {', '.join(unknown)}")
        self.predictor_overrides = dict(predictor_overrides.get(self.predictor_name, {}))
        # built once (bad overrides fail here, not after num_init queries); every fit starts afresh
        self._predictor = algorithms.make_predictor(self.predictor_name, space, rng, self.predictor_overrides)
        self.candidates = candidates
        self.acquisition = acquisition
        self.num_init = num_init
        self.queries_per_iteration = queries_per_iteration
        self.refit_every = refit_every
        self.num_candidates = num_candidates
        self.num_parents = num_parents
        self.max_edits = max_edits
        self.tournament_size = tournament_size
        self.subset_size = subset_size
        self.ucb_beta = float(ucb_beta)
        self.max_random_draws = max_random_draws
        self._listed: list | None = None  # every architecture of the pool/space ("full", "random_subset", "nearest")
        if candidates in ("full", "random_subset", "nearest"):
            self._listed = self._list_architectures()
        self._listed_codes: np.ndarray | None = None  # their encodings ("nearest"), computed on first use
        self._queue: list = []  # chosen by the last iteration, best first
        self._asked_ids: set[str] = set()
        self._first_obs: dict[str, Observation] = {}  # training data: each architecture's first answer
        self._n_random_asked = 0
        self._fitted = False
        self._told_since_fit = 0
        #: per iteration: (observations told before it, candidate-set size, whether the predictor was refitted)
        self.iterations: list[tuple[int, int, bool]] = []

    # -- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["_predictor"] = self._dump_predictor()
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        predictor = state.pop("_predictor")
        super().load_state_dict(state)
        self._predictor = _SharedUnpickler(io.BytesIO(predictor), self._shared_objects()).load()

    def _shared_objects(self) -> dict[str, Any]:
        """Objects the predictor refers to that belong to the optimizer: saved as a name, not a copy (the
        space can be large: NB101's holds its enumeration; the generator must stay the optimizer's)."""
        return {"space": self.space, "rng": self.rng}

    def _dump_predictor(self) -> bytes:
        buffer = io.BytesIO()
        _SharedPickler(buffer, self._shared_objects()).dump(self._predictor)
        return buffer.getvalue()

    # -- ask/tell -----------------------------------------------------------------------------------
    def _ask(self, n: int) -> list:
        out = []
        while len(out) < n:
            if self._n_random_asked < self.num_init or not self._first_obs:
                self._n_random_asked += 1
                arch = self._random_unasked()
            else:
                if not self._queue:
                    self._queue = self._iteration()
                arch = self._queue.pop(0)
            self._asked_ids.add(arch.id)
            out.append(arch)
        return out

    def _tell(self, observations: list[Observation]) -> None:
        for obs in observations:
            self._first_obs.setdefault(obs.arch.id, obs)
        self._told_since_fit += len(observations)

    # -- one iteration ------------------------------------------------------------------------------
    def _iteration(self) -> list:
        with one_torch_thread():
            return self._scored_iteration()

    def _scored_iteration(self) -> list:
        refit = not self._fitted or self._told_since_fit >= self.refit_every
        if refit:
            told = list(self._first_obs.values())
            self._predictor.fit([o.arch for o in told], np.array([o.valid for o in told]))
            self._fitted = True
            self._told_since_fit = 0
        candidates = self.candidate_set()
        self.iterations.append((len(self.history), len(candidates), refit))
        if not candidates:
            return [self._random_unasked()]
        if self.acquisition == "mean":
            mean, std = self._predictor.predict(candidates), np.zeros(len(candidates))
        else:
            mean, std = self._predictor.predict_with_std(candidates)
        scores = acquisition_scores(self.acquisition, mean, std, self.ucb_beta, self.rng)
        best = np.argsort(-scores, kind="stable")[:self.queries_per_iteration]
        return [candidates[int(i)] for i in best]

    def candidate_set(self) -> list:
        """This iteration's candidates: in the pool, not asked before, deduplicated, in generation order."""
        if self.candidates in ("mutation", "evolution"):
            proposed = self._children(self._parents())
        elif self.candidates == "neighbourhood":
            proposed = [c for parent in self._top(self.num_parents) for c in self._neighbours(parent.arch)]
        elif self.candidates == "nearest":
            proposed = self._nearest([o.arch for o in self._top(self.num_parents)])
        elif self.candidates == "full":
            proposed = self._listed
        else:  # random_subset
            size = min(self.subset_size, len(self._listed))
            proposed = [self._listed[int(i)] for i in self.rng.choice(len(self._listed), size, replace=False)]
        out, seen = [], set(self._asked_ids)
        for arch in proposed:
            if arch.id not in seen and self.in_pool(arch):
                seen.add(arch.id)
                out.append(arch)
        return out

    def _nearest(self, parents: list) -> list:
        """The ``subset_size`` listed architectures not asked yet that are nearest any parent (L1 distance
        between encodings; stable, so ties keep the list's order)."""
        encoding = self.space.encodings[0]
        if self._listed_codes is None:
            self._listed_codes = np.asarray(self.space.encode(self._listed, encoding), dtype=np.float32)
        parent_codes = np.asarray(self.space.encode(parents, encoding), dtype=np.float32)
        distance = np.min([np.abs(self._listed_codes - code).sum(axis=1) for code in parent_codes], axis=0)
        order = np.argsort(distance, kind="stable")
        out = []
        for i in order:
            arch = self._listed[int(i)]
            if arch.id not in self._asked_ids:
                out.append(arch)
                if len(out) == self.subset_size:
                    break
        return out

    def _top(self, k: int) -> list[Observation]:
        """The ``k`` best distinct architectures observed (first observed first on ties)."""
        return sorted(self._first_obs.values(), key=lambda o: -o.valid)[:k]

    def _parents(self) -> list[Observation]:
        if self.candidates == "mutation":
            return self._top(self.num_parents)
        population = list(self._first_obs.values())
        return [tournament(population, self.tournament_size, self.rng) for _ in range(self.num_parents)]

    def _children(self, parents: list[Observation]) -> list:
        """``num_candidates`` mutants split evenly over ``parents`` (the first ones get the remainder).

        Without a pool a child is ``e`` successive ``space.mutate`` edits. With a pool every edit is drawn
        uniformly among the current architecture's in-pool neighbours (for one edit that is the same
        distribution as redrawing ``space.mutate`` until the child is in the pool, whose single edits are
        uniform over the neighbours, at a fraction of the cost on NB101 where ~7 % of the cells have data);
        a walk that reaches a cell without in-pool neighbours stops there."""
        shares = np.full(len(parents), self.num_candidates // len(parents))
        shares[:self.num_candidates % len(parents)] += 1
        in_pool_neighbours: dict[str, list] = {}  # this call's cache: parents share neighbourhoods
        children = []
        for parent, share in zip(parents, shares):
            for _ in range(int(share)):
                child = parent.arch
                for _ in range(int(self.rng.integers(1, self.max_edits + 1))):
                    if self._pool_ids is None:
                        child = self.space.mutate(child, self.rng)
                        continue
                    if child.id not in in_pool_neighbours:
                        in_pool_neighbours[child.id] = self._neighbours(child)
                    options = in_pool_neighbours[child.id]
                    if not options:
                        break
                    child = options[int(self.rng.integers(len(options)))]
                if child.id != parent.arch.id:
                    children.append(child)
        return children

    def _neighbours(self, arch: Any) -> list:
        """The in-pool neighbours in a canonical order (by id): ``space.neighbours`` lists them in an order
        that depends on which of several isomorphic matrices represents an NB101 cell, so drawing by position
        from it would make runs depend on where their architectures came from."""
        return sorted(self.pool_neighbours(arch), key=lambda a: a.id)

    def _list_architectures(self) -> list:
        if self.pool is not None:
            return list(self.pool)
        all_archs = getattr(self.space, "all_archs", None)
        if all_archs is None:
            raise ConfigError(f"predictor_search: candidates {self.candidates!r} needs a pool or a space that "
                              f"lists its architectures; {self.space.name} does neither")
        return list(all_archs())

    def _random_unasked(self) -> Any:
        return self.random_unasked(self._asked_ids, self.max_random_draws)


class _SharedPickler(pickle.Pickler):
    """Pickles an object graph with some objects replaced by names (``persistent_id``)."""

    def __init__(self, file: io.BytesIO, shared: dict[str, Any]):
        super().__init__(file, protocol=4)
        self._names = {id(obj): name for name, obj in shared.items()}

    def persistent_id(self, obj: Any) -> str | None:
        return self._names.get(id(obj))


class _SharedUnpickler(pickle.Unpickler):
    """The inverse of :class:`_SharedPickler`: names become the given objects again."""

    def __init__(self, file: io.BytesIO, shared: dict[str, Any]):
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, name: str) -> Any:
        return self._shared[name]

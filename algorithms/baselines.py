"""Query-based baselines: random search, regularized (aging) evolution, local search.

All three follow the ask/tell contract of :class:`algorithms.base.QueryOptimizer`: they see the search
space, a ``numpy.random.Generator`` and optionally a *pool* (the architectures that have data, e.g. the
NB101 cells we hold); they never see the benchmark. Hyper-parameters come from
``algorithms/configs/baselines.toml``.

* :class:`RandomSearch` -- uniform draws, with replacement (a repeat is evaluated and charged again,
  as in NB201's and NASLib's random search).
* :class:`RegularizedEvolution` -- Real et al. 2019 (arXiv:1802.01548), Algorithm 1, in the setting of
  NAS-Bench-201's ``R_EA.py`` (population 10, tournament of 3 drawn *with* replacement, a first
  population of uniform random architectures, mutation = one random single edit).
* :class:`LocalSearch` -- White, Nolen, Savani 2020 (arXiv:2005.02960), the best-improvement variant
  of the paper's Algorithm 1, as NASLib's ``ls`` runs it: start at the best of ``num_init`` random architectures, evaluate the whole neighbourhood (in
  random order), move to its best member if it beats the centre, otherwise restart from one random
  architecture.

Batches (``ask(n)`` with ``n > 1`` before the answers are told) are supported by all three; how each one
fills a batch is documented on the class. With ``n = 1`` every method is exactly the published one.
"""
from __future__ import annotations

import collections
from typing import Any, Sequence

import numpy as np

from algorithms.base import QueryOptimizer
from benchmarks.base import Observation, SearchSpace
from nasrepro.errors import ConfigError


def tournament(population: Sequence[Observation], sample_size: int, rng: np.random.Generator) -> Observation:
    """Real et al.'s tournament: ``sample_size`` members drawn uniformly with replacement, the best by
    validation wins; strict '>' so ties go to the earlier draw, as max() does in NB201's R_EA.py."""
    picks = rng.integers(len(population), size=sample_size).tolist()
    winner = population[picks[0]]
    for i in picks[1:]:
        if population[i].valid > winner.valid:
            winner = population[i]
    return winner


class PoolMixin:
    """Pool membership by id, kept out of checkpoints (it is derived from the pool, not run state)."""

    #: pool membership is rebuilt by the constructor, never saved in :meth:`state_dict`
    _not_in_state = ("space", "pool", "_pool_ids")

    def _init_pool(self, pool: Sequence[Any] | None) -> None:
        if pool is not None and len(pool) == 0:
            raise ConfigError(f"{type(self).__name__}: the pool of architectures with data is empty")
        self._pool_ids = None if pool is None else frozenset(a.id for a in pool)

    def in_pool(self, arch: Any) -> bool:
        return self._pool_ids is None or arch.id in self._pool_ids

    def pool_neighbours(self, arch: Any) -> list:
        """The space's neighbours of ``arch`` that are in the pool (all of them without a pool)."""
        return [a for a in self.space.neighbours(arch) if self.in_pool(a)]

    def random_unasked(self, asked_ids: set[str], max_draws: int) -> Any:
        """A random architecture (of the pool, if any) whose id is not in ``asked_ids``; if ``max_draws``
        draws all hit asked ones (a small space or pool can run out), the last draw."""
        arch = self.random_arch()
        for _ in range(max_draws - 1):
            if arch.id not in asked_ids:
                break
            arch = self.random_arch()
        return arch


class RandomSearch(PoolMixin, QueryOptimizer):
    """Uniform random search over the space, or over ``pool`` when given. No hyper-parameters."""

    name = "random_search"

    def __init__(self, space: SearchSpace, rng: np.random.Generator, pool: Sequence[Any] | None = None):
        super().__init__(space, rng, pool)
        self._init_pool(pool)

    def _ask(self, n: int) -> list:
        return [self.random_arch() for _ in range(n)]


class RegularizedEvolution(PoolMixin, QueryOptimizer):
    """Aging evolution: tournament selection on a population from which the *oldest* member dies.

    The first ``population_size`` architectures asked are uniform random ones. After that every
    architecture asked is a child: ``sample_size`` members are drawn uniformly *with replacement* from
    the population (as ``R_EA.py`` does), the one with the best validation accuracy is the parent, and
    ``space.mutate`` makes the child. Every observation told joins the population and, once the
    population is full, pushes out its oldest member -- whatever its accuracy.

    Batches: the children of one ``ask(n)`` come from ``n`` independent tournaments on the population
    as told so far. While nothing has been told yet there is no one to select, so the batch is topped
    up with more random architectures.

    With a pool: the mutation is redrawn until the child is in the pool, at most
    ``max_mutation_attempts`` times; then the child is drawn uniformly among the parent's neighbours
    that are in the pool, and if there are none, uniformly from the pool. Children may repeat earlier
    architectures (the method re-evaluates them, as Real et al.'s does) unless ``avoid_repeats``: then
    each of those draws must also be an architecture not asked before (a random unasked one last).
    """

    name = "regularized_evolution"

    def __init__(self, space: SearchSpace, rng: np.random.Generator, pool: Sequence[Any] | None = None, *,
                 population_size: int, sample_size: int, max_mutation_attempts: int, avoid_repeats: bool):
        super().__init__(space, rng, pool)
        if not isinstance(avoid_repeats, bool):
            raise ConfigError(f"regularized_evolution: avoid_repeats must be true or false, got {avoid_repeats!r}")
        for key, value in (("population_size", population_size), ("sample_size", sample_size),
                           ("max_mutation_attempts", max_mutation_attempts)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"regularized_evolution: {key} must be a positive integer, got {value!r}")
        self._init_pool(pool)
        self.population_size = population_size
        self.sample_size = sample_size
        self.max_mutation_attempts = max_mutation_attempts
        self.avoid_repeats = avoid_repeats
        self._asked_ids: set[str] = set()
        #: the living population, oldest first (a full deque drops its left end on append: aging)
        self._population: collections.deque[Observation] = collections.deque(maxlen=population_size)
        self._n_random_asked = 0

    @property
    def population(self) -> tuple[Observation, ...]:
        """The living population, oldest first."""
        return tuple(self._population)

    def _ask(self, n: int) -> list:
        out = []
        for _ in range(n):
            if self._n_random_asked < self.population_size or not self._population:
                self._n_random_asked += 1
                arch = self._random_new() if self.avoid_repeats else self.random_arch()
            else:
                arch = self._child(self._tournament())
            if self.avoid_repeats:
                self._asked_ids.add(arch.id)
            out.append(arch)
        return out

    def _tell(self, observations: list[Observation]) -> None:
        self._population.extend(observations)

    def _tournament(self) -> Observation:
        return tournament(self._population, self.sample_size, self.rng)

    def _acceptable(self, arch: Any) -> bool:
        return self.in_pool(arch) and not (self.avoid_repeats and arch.id in self._asked_ids)

    def _child(self, parent: Observation) -> Any:
        if self._pool_ids is None and not self.avoid_repeats:
            return self.space.mutate(parent.arch, self.rng)  # Real et al.'s mutation, nothing to redraw
        for _ in range(self.max_mutation_attempts):
            child = self.space.mutate(parent.arch, self.rng)
            if self._acceptable(child):
                return child
        options = [a for a in self.pool_neighbours(parent.arch) if self._acceptable(a)]
        if options:
            return options[int(self.rng.integers(len(options)))]
        return self._random_new() if self.avoid_repeats else self.random_arch()

    def _random_new(self) -> Any:
        return self.random_unasked(self._asked_ids, self.max_mutation_attempts)


class LocalSearch(PoolMixin, QueryOptimizer):
    """Best-improvement local search with random restarts (White, Nolen, Savani 2020; NASLib's ``ls``).

    The search runs in *rounds*. The first round evaluates ``num_init`` random architectures. Every
    later round evaluates, in random order, the neighbours (in the pool, if given) of the *centre*.
    When a round is over the walk moves to the round's best architecture if it is strictly better than
    the centre (a round without centre -- the first one, or a restart -- always moves); otherwise the
    centre is a local optimum: it is recorded in :attr:`local_optima` and the next round is a restart,
    one uniform random architecture that becomes the next centre.

    Repeats: with ``skip_evaluated`` a neighbour already evaluated (or already asked) in this run is not
    asked again; its recorded validation accuracy takes part in the round as if it had been re-queried
    (NASLib re-queries it, which costs budget and changes nothing on a deterministic benchmark). The
    random draws of the first round and of restarts are never skipped, so they may repeat architectures.

    Batches: when the neighbourhood of a round runs out before all of its evaluations are told, the
    move is decided on the evaluations told so far; answers told later are recorded (history,
    incumbent, repeats) but can no longer move the walk, and a centre left with answers outstanding is
    not recorded as a local optimum. With ``n = 1`` this never happens.
    """

    name = "local_search"

    def __init__(self, space: SearchSpace, rng: np.random.Generator, pool: Sequence[Any] | None = None, *,
                 num_init: int, skip_evaluated: bool):
        super().__init__(space, rng, pool)
        if not isinstance(num_init, int) or isinstance(num_init, bool) or num_init < 1:
            raise ConfigError(f"local_search: num_init must be a positive integer, got {num_init!r}")
        if not isinstance(skip_evaluated, bool):
            raise ConfigError(f"local_search: skip_evaluated must be true or false, got {skip_evaluated!r}")
        self._init_pool(pool)
        self.num_init = num_init
        self.skip_evaluated = skip_evaluated
        #: centres at which a round brought no improvement, in the order they were found
        self.local_optima: list[Observation] = []
        self._centre: Observation | None = None
        self._queue: list = []  # archs still to ask in this round (popped from the end)
        self._round_ids: set[str] = set()  # ids whose answers count for this round
        self._round_told: list[Observation] = []
        self._round_pending: set[str] = set()  # ids of this round asked but not told yet
        self._started = False
        self._asked_ids: set[str] = set()
        self._told: dict[str, Observation] = {}  # first observation of every id told

    def _ask(self, n: int) -> list:
        out: list = []
        while len(out) < n:
            if not self._queue:
                self._next_round()
                continue
            arch, may_skip = self._queue.pop()
            if may_skip and self.skip_evaluated and arch.id in self._asked_ids:
                if arch.id in self._told:
                    self._round_told.append(self._told[arch.id])
                else:  # asked earlier, answer still outstanding: let it count here when it comes
                    self._round_ids.add(arch.id)
                    self._round_pending.add(arch.id)
                continue
            self._asked_ids.add(arch.id)
            self._round_ids.add(arch.id)
            self._round_pending.add(arch.id)
            out.append(arch)
        return out

    def _tell(self, observations: list[Observation]) -> None:
        for obs in observations:
            self._told.setdefault(obs.arch.id, obs)
            if obs.arch.id in self._round_ids:
                self._round_told.append(obs)
                self._round_pending.discard(obs.arch.id)

    def _next_round(self) -> None:
        """Close the current round (move or restart) and queue the next one."""
        if not self._started:
            self._started = True
            self._start_round(None, [(self.random_arch(), False) for _ in range(self.num_init)])
            return
        best = max(self._round_told, key=lambda obs: obs.valid, default=None)
        if best is not None and (self._centre is None or best.valid > self._centre.valid):
            neighbours = self.pool_neighbours(best.arch)
            order = self.rng.permutation(len(neighbours))
            self._start_round(best, [(neighbours[int(i)], True) for i in order])
            return
        if self._centre is not None and not self._round_pending:
            # proven: every in-pool neighbour was told and none is better (with answers outstanding in
            # a batch the centre is abandoned unproven and not recorded)
            self.local_optima.append(self._centre)
        self._start_round(None, [(self.random_arch(), False)])

    def _start_round(self, centre: Observation | None, queue: list) -> None:
        self._centre = centre
        self._queue = queue[::-1]  # popped from the end: keep the drawn order
        self._round_ids = set()
        self._round_told = []
        self._round_pending = set()

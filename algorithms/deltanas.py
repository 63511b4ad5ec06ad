"""Delta-NAS: a difference-of-architecture (DoA) predictor guiding evolution.

Sridhar & Chen, "Delta-NAS: Difference of Architecture Encoding for Predictor-based Evolutionary Neural
Architecture Search", WACV 2025, arXiv:2411.14498. Only the abstract is available to us; every detail
below that it does not state is a decision, switchable in ``algorithms/configs/deltanas.toml`` and
listed there under ``known_deviations``.

The idea: rather than predicting the accuracy of an architecture, predict the *difference* in accuracy
of two similar architectures from the difference of their encodings. For a pair a few edits apart the
difference vector is sparse, so the regression lives in a much smaller space than the space of
architectures.

Three pieces, each usable on its own:

* :func:`doa_encode` and :class:`DoADataset` -- the DoA encoding ``encode(b) - encode(a)`` and a growing
  set of evaluated architectures whose pairs within ``max_pair_distance`` edits are the training data
  (both encodings and the target ``valid(b) - valid(a)``).
* :class:`DeltaModelSpec` / :class:`DeltaPredictor` -- the regressor (the BANANAS MLP ensemble of :mod:`algorithms.predictors`,
  or ridge regression) on the DoA vector, optionally with the anchor's encoding beside it, optionally
  trained on both directions and made exactly antisymmetric; it scores all mutants of a parent in one
  call.
* :class:`DeltaNAS` -- regularized (aging) evolution whose mutation step is guided by the predictor:
  tournament parents, all their single-edit neighbours scored as ``valid(parent) + predicted delta``,
  only the best few not yet asked are evaluated.

:class:`AnchoredDeltaPredictor` wraps the Delta-predictor as an absolute predictor (fit/predict), so that it
sits in the same predictor-quality table as the absolute predictors.

:func:`delta_loss_vs_edit_distance` is the analogue of the paper's Fig. 3: held-out error of the
Delta-predictor trained and tested on pairs at a given edit distance.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats
from scipy.sparse import csr_array
from scipy.spatial.distance import cdist
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from algorithms.base import Predictor, QueryOptimizer
from algorithms.baselines import PoolMixin, tournament
from algorithms.predictors import EnsembleRegressor
from benchmarks.base import ACCURACY, Benchmark, Observation, SearchSpace
from nasrepro.errors import ConfigError, DataError

MODEL_KINDS = ("mlp_ensemble", "ridge")


# --------------------------------------------------------------------------------------------------
# DoA encoding and dataset
# --------------------------------------------------------------------------------------------------
def doa_encode(space: SearchSpace, before: Sequence[Any], after: Sequence[Any], encoding: str) -> np.ndarray:
    """One row per pair: ``encode(after) - encode(before)`` (zero except where the two differ)."""
    return space.encode(list(after), encoding) - space.encode(list(before), encoding)


class DoADataset:
    """Evaluated architectures and the pairs among them within ``max_pair_distance`` edits.

    Each architecture is stored once (by id, with its first validation accuracy: repeats of a
    deterministic benchmark add nothing, and pairs at distance 0 carry no signal). Both encodings and
    both accuracies of a pair are kept; a pair ``(i, j)``, ``i`` evaluated first, has the target
    ``valid[j] - valid[i]``.
    """

    def __init__(self, encoding: str, max_pair_distance: int):
        self.encoding = encoding
        self.max_pair_distance = max_pair_distance
        self.archs: list = []
        self.valid: list[float] = []
        self.pairs: list[tuple[int, int]] = []
        self._index: dict[str, int] = {}
        self._encodings: list[np.ndarray] = []

    def __len__(self) -> int:
        """Number of pairs."""
        return len(self.pairs)

    def __contains__(self, arch: Any) -> bool:
        return arch.id in self._index

    def add(self, space: SearchSpace, arch: Any, valid: float) -> None:
        """Record one evaluation and its pairs with every earlier architecture close enough."""
        if arch.id in self._index:
            return
        new = len(self.archs)
        for i, other in enumerate(self.archs):
            if 1 <= space.distance(other, arch) <= self.max_pair_distance:
                self.pairs.append((i, new))
        self._index[arch.id] = new
        self.archs.append(arch)
        self.valid.append(float(valid))
        self._encodings.append(space.encode([arch], self.encoding)[0])

    def training_data(self, newest: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(encodings of the first members, encodings of the second members, accuracy differences) of all
        pairs, or of the ``newest`` pairs (those of the most recently added architectures)."""
        if not self.pairs:
            raise ConfigError("the DoA dataset holds no pairs yet")
        pairs = self.pairs if newest is None else self.pairs[-newest:]
        first, second = np.array(pairs).T
        enc, valid = np.stack(self._encodings), np.asarray(self.valid)
        return enc[first], enc[second], valid[second] - valid[first]


# --------------------------------------------------------------------------------------------------
# Delta-predictor
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeltaModelSpec:
    """Which regressor maps DoA vectors to accuracy differences, and its settings."""

    kind: str
    mlp_n_layers: int
    mlp_width: int
    mlp_ensemble_size: int
    mlp_epochs: int
    mlp_batch_size: int
    mlp_learning_rate: float
    mlp_weight_decay: float
    mlp_loss: str
    ridge_alpha: float

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"deltanas: unknown model {self.kind!r}; choose from {', '.join(MODEL_KINDS)}")
        if not self.ridge_alpha >= 0:
            raise ConfigError(f"deltanas: ridge_alpha must be >= 0, got {self.ridge_alpha!r}")
        self.build(np.random.default_rng(0))  # checks the MLP settings (a ConfigError names the bad key)

    @classmethod
    def from_config(cls, section: dict) -> "DeltaModelSpec":
        """The model settings of a ``[deltanas]`` config section (the ``model`` and ``mlp_*``/``ridge_*`` keys)."""
        return cls(kind=section["model"], ridge_alpha=section["ridge_alpha"],
                   **{f"mlp_{key}": section[f"mlp_{key}"] for key in _MLP_KEYS})

    def build(self, rng: np.random.Generator) -> Any:
        """A fresh regressor with ``fit(x, y)`` / ``predict(x)``; its seeds come from ``rng`` (never from
        global state). The MLP ensemble is the BANANAS one of :mod:`algorithms.predictors` on DoA vectors."""
        if self.kind == "ridge":
            # accuracy differences span tens of percent points: standardise the target as the MLPs do
            return TransformedTargetRegressor(regressor=Ridge(alpha=self.ridge_alpha), transformer=StandardScaler())
        return EnsembleRegressor(
            "deltanas", rng, ensemble_size=self.mlp_ensemble_size, n_layers=self.mlp_n_layers, width=self.mlp_width,
            epochs=self.mlp_epochs, batch_size=self.mlp_batch_size, lr=self.mlp_learning_rate,
            weight_decay=self.mlp_weight_decay, loss=self.mlp_loss, lr_schedule="constant")


#: the ``mlp_<key>`` settings of the Delta-predictor
_MLP_KEYS = ("n_layers", "width", "ensemble_size", "epochs", "batch_size", "learning_rate", "weight_decay", "loss")


def fit_quietly(model: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """``model.fit`` on one BLAS thread: the matrices are tiny, and BLAS threads made a search several
    times slower on a busy 2-core machine."""
    with threadpool_limits(limits=1):
        return model.fit(np.asarray(x, np.float64), np.asarray(y, np.float64))


class DeltaPredictor:
    """A regressor of ``valid(after) - valid(before)`` from the DoA vector ``enc(after) - enc(before)``.

    ``with_anchor`` also feeds ``enc(before)``: the effect of an edit depends on the rest of the cell
    (changing an op on an edge that a ``none`` cuts off changes nothing), which the difference alone
    cannot see. ``antisymmetric`` trains on both directions of every pair and predicts
    ``(f(before, after) - f(after, before)) / 2``, so swapping a pair exactly flips the sign.
    """

    def __init__(self, spec: DeltaModelSpec, antisymmetric: bool, with_anchor: bool):
        self.spec = spec
        self.antisymmetric = antisymmetric
        self.with_anchor = with_anchor
        self.model: Any = None

    def features(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        difference = np.asarray(after, np.float64) - np.asarray(before, np.float64)
        return np.hstack([np.asarray(before, np.float64), difference]) if self.with_anchor else difference

    def fit(self, before: np.ndarray, after: np.ndarray, y: np.ndarray,
            rng: np.random.Generator) -> "DeltaPredictor":
        x, y = self.features(before, after), np.asarray(y, np.float64)
        if self.antisymmetric:
            x, y = np.concatenate([x, self.features(after, before)]), np.concatenate([y, -y])
        self.model = fit_quietly(self.spec.build(rng), x, y)
        return self

    def predict(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        if not self.antisymmetric:
            return self.model.predict(self.features(before, after))
        # both directions in one model call (one forward pass of the ensemble, not two)
        both = self.model.predict(np.vstack([self.features(before, after), self.features(after, before)]))
        forward, backward = np.split(both, 2)
        return 0.5 * (forward - backward)


class AnchoredDeltaPredictor(Predictor):
    """The Delta-predictor behind the absolute :class:`~algorithms.base.Predictor` contract, so it can be
    compared with absolute predictors on the same held-out architectures (the predictor-quality table).

    ``fit(archs, y)`` pairs every training architecture with its ``pair_neighbours`` nearest other training
    architectures and fits the Delta-predictor on those pairs. ``predict(x)`` takes the ``anchors``
    nearest training architectures ``a`` of ``x`` and returns the mean of ``y(a) + delta(a -> x)``.
    "Nearest" is the L1 distance of the encodings (one edit of an NB201 edge op = 2; cheap for 1,000 x
    100,000 distances, where ``space.distance`` would be a Python loop).
    """

    name = "delta_predictor"
    has_uncertainty = False

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, encoding: str, pair_neighbours: int,
                 anchors: int, antisymmetric: bool, with_anchor: bool, model: str, mlp_n_layers: int,
                 mlp_width: int, mlp_ensemble_size: int, mlp_epochs: int, mlp_batch_size: int,
                 mlp_learning_rate: float, mlp_weight_decay: float, mlp_loss: str, ridge_alpha: float):
        super().__init__(space, rng)
        self.encoding = _pick_encoding(space, encoding)
        for key, value in (("pair_neighbours", pair_neighbours), ("anchors", anchors)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"delta_predictor: {key} must be a positive integer, got {value!r}")
        self.pair_neighbours, self.anchors = pair_neighbours, anchors
        spec = DeltaModelSpec(kind=model, mlp_n_layers=mlp_n_layers, mlp_width=mlp_width,
                              mlp_ensemble_size=mlp_ensemble_size, mlp_epochs=mlp_epochs, mlp_batch_size=mlp_batch_size,
                              mlp_learning_rate=mlp_learning_rate, mlp_weight_decay=mlp_weight_decay,
                              mlp_loss=mlp_loss, ridge_alpha=ridge_alpha)
        self.delta = DeltaPredictor(spec, antisymmetric, with_anchor)
        self._train_x: np.ndarray | None = None
        self._train_y: np.ndarray | None = None

    def fit(self, archs: Sequence[Any], y: np.ndarray) -> "AnchoredDeltaPredictor":
        y = np.asarray(y, np.float64).reshape(-1)
        if len(archs) < 2 or len(archs) != len(y) or not np.isfinite(y).all():
            raise ConfigError(f"delta_predictor: needs >= 2 architectures with one finite target each, got "
                              f"{len(archs)} architectures and {len(y)} targets")
        x = self.space.encode(list(archs), self.encoding).astype(np.float64)
        nearest = self._nearest(x, x, min(self.pair_neighbours, len(x) - 1), exclude_self=True)
        first = np.repeat(np.arange(len(x)), nearest.shape[1])
        second = nearest.reshape(-1)
        self.delta.fit(x[first], x[second], y[second] - y[first], self.rng)
        self._train_x, self._train_y = x, y
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        if self._train_x is None:
            raise ConfigError("delta_predictor: predict called before fit")
        x = self.space.encode(list(archs), self.encoding).astype(np.float64)
        nearest = self._nearest(x, self._train_x, min(self.anchors, len(self._train_x)), exclude_self=False)
        anchors = nearest.reshape(-1)
        targets = np.repeat(x, nearest.shape[1], axis=0)
        estimates = self._train_y[anchors] + self.delta.predict(self._train_x[anchors], targets)
        return estimates.reshape(nearest.shape).mean(axis=1)

    @staticmethod
    def _nearest(queries: np.ndarray, reference: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
        """Indices ``[len(queries), k]`` of the ``k`` nearest reference rows (L1), ties broken by index."""
        out = []
        for start in range(0, len(queries), 4096):  # bounds the distance matrix's memory
            distances = cdist(queries[start:start + 4096], reference, metric="cityblock")
            if exclude_self:
                distances[np.arange(len(distances)), np.arange(start, start + len(distances))] = np.inf
            out.append(np.argsort(distances, axis=1, kind="stable")[:, :k])
        return np.concatenate(out)


def _pick_encoding(space: SearchSpace, encoding: str) -> str:
    """``"auto"`` is the space's first (one-hot) encoding: NB201 "onehot", NB101/DARTS "adjacency_onehot"."""
    encoding = space.encodings[0] if encoding == "auto" else encoding
    if encoding not in space.encodings:
        raise ConfigError(f"deltanas: {space.name} has no encoding {encoding!r}; "
                          f"choose from auto, {', '.join(space.encodings)}")
    return encoding


# --------------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------------
class DeltaNAS(PoolMixin, QueryOptimizer):
    """Regularized evolution whose children are chosen by the Delta-predictor.

    1. The first ``num_init`` architectures asked are uniform random ones (from the pool, if any).
    2. A *round* then draws ``parents_per_round`` parents by tournament (``sample_size`` members of the
       aging population, with replacement, best validation accuracy wins, as in regularized evolution),
       takes all their single-edit neighbours (in the pool) not asked before, scores every one as
       ``valid(parent) + predicted delta(parent -> child)`` (one predictor call per parent), and queues
       the ``queries_per_round`` best. A child proposed by two parents keeps its best score.
    3. Every observation told joins the population (the oldest dies once ``population_size`` are alive)
       and the DoA dataset; the predictor is refitted on the newest ``max_train_pairs`` pairs (those
       around the current population; the cap bounds the cost of a refit) every ``refit_every``
       observations once the dataset holds ``min_train_pairs`` pairs.

    Until the predictor exists, a round is one regularized-evolution step: one tournament parent and
    one random single edit (redrawn until in the pool / not asked, up to ``max_random_draws`` times).
    When every neighbour of the round's parents was asked already, the round asks one random
    architecture not asked before (again up to ``max_random_draws`` draws, then any random one).

    Batches: ``ask(n)`` empties the queue and starts rounds on the population told so far; before
    anything is told, rounds fall back to random architectures.
    """

    name = "deltanas"
    _not_in_state = ("space", "pool", "_pool_ids")

    def __init__(self, space: SearchSpace, rng: np.random.Generator, pool: Sequence[Any] | None = None, *,
                 encoding: str, max_pair_distance: int, antisymmetric: bool, with_anchor: bool, num_init: int,
                 population_size: int, sample_size: int, parents_per_round: int, queries_per_round: int,
                 refit_every: int, min_train_pairs: int, max_train_pairs: int, max_random_draws: int, model: str,
                 mlp_n_layers: int, mlp_width: int, mlp_ensemble_size: int, mlp_epochs: int, mlp_batch_size: int,
                 mlp_learning_rate: float, mlp_weight_decay: float, mlp_loss: str, ridge_alpha: float):
        super().__init__(space, rng, pool)
        for key, value in (("max_pair_distance", max_pair_distance), ("num_init", num_init),
                           ("population_size", population_size), ("sample_size", sample_size),
                           ("parents_per_round", parents_per_round), ("queries_per_round", queries_per_round),
                           ("refit_every", refit_every), ("min_train_pairs", min_train_pairs),
                           ("max_train_pairs", max_train_pairs),
                           ("max_random_draws", max_random_draws)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"deltanas: {key} must be a positive integer, got {value!r}")
        for key, flag in (("antisymmetric", antisymmetric), ("with_anchor", with_anchor)):
            if not isinstance(flag, bool):
                raise ConfigError(f"deltanas: {key} must be true or false, got {flag!r}")
        encoding = _pick_encoding(space, encoding)
        self._init_pool(pool)
        self.model_spec = DeltaModelSpec(
            kind=model, mlp_n_layers=mlp_n_layers, mlp_width=mlp_width, mlp_ensemble_size=mlp_ensemble_size,
            mlp_epochs=mlp_epochs, mlp_batch_size=mlp_batch_size, mlp_learning_rate=mlp_learning_rate,
            mlp_weight_decay=mlp_weight_decay, mlp_loss=mlp_loss, ridge_alpha=ridge_alpha)
        self.encoding = encoding
        self.num_init = num_init
        self.sample_size = sample_size
        self.parents_per_round = parents_per_round
        self.queries_per_round = queries_per_round
        self.refit_every = refit_every
        self.min_train_pairs = min_train_pairs
        self.max_train_pairs = max_train_pairs
        self.max_random_draws = max_random_draws
        self.antisymmetric = antisymmetric
        self.with_anchor = with_anchor
        self.dataset = DoADataset(encoding, max_pair_distance)
        self.predictor: DeltaPredictor | None = None
        #: the living population, oldest first (aging: a full deque drops its left end)
        self._population: collections.deque[Observation] = collections.deque(maxlen=population_size)
        self._queue: list = []  # archs chosen by the last round, best first
        self._asked_ids: set[str] = set()
        self._n_random_asked = 0
        self._told_since_fit = 0

    @property
    def population(self) -> tuple[Observation, ...]:
        """The living population, oldest first."""
        return tuple(self._population)

    # -- ask/tell -----------------------------------------------------------------------------------
    def _ask(self, n: int) -> list:
        out = []
        while len(out) < n:
            if self._n_random_asked < self.num_init or not self._population:
                self._n_random_asked += 1
                arch = self.random_arch()
            else:
                if not self._queue:
                    self._queue = self._round()
                arch = self._queue.pop(0)
            self._asked_ids.add(arch.id)
            out.append(arch)
        return out

    def _tell(self, observations: list[Observation]) -> None:
        self._population.extend(observations)
        for obs in observations:
            self.dataset.add(self.space, obs.arch, obs.valid)
        self._told_since_fit += len(observations)
        enough_data = len(self.dataset) >= self.min_train_pairs
        if enough_data and (self.predictor is None or self._told_since_fit >= self.refit_every):
            before, after, y = self.dataset.training_data(newest=self.max_train_pairs)
            self.predictor = DeltaPredictor(self.model_spec, self.antisymmetric, self.with_anchor).fit(
                before, after, y, self.rng)
            self._told_since_fit = 0

    # -- one round ----------------------------------------------------------------------------------
    def _round(self) -> list:
        if self.predictor is None:
            return [self._random_child(self._tournament())]
        # every parent's unasked neighbours, scored in one predictor call
        parents = [self._tournament() for _ in range(self.parents_per_round)]
        parent_of, children = [], []
        for i, parent in enumerate(parents):
            for child in self.pool_neighbours(parent.arch):
                if child.id not in self._asked_ids:
                    parent_of.append(i)
                    children.append(child)
        if not children:
            return [self._random_unasked()]
        parent_encodings = self.space.encode([p.arch for p in parents], self.encoding)
        delta = self.predictor.predict(parent_encodings[parent_of], self.space.encode(children, self.encoding))
        scores: dict[str, tuple[float, Any]] = {}
        for i, child, d in zip(parent_of, children, delta):
            score = parents[i].valid + float(d)
            if child.id not in scores or score > scores[child.id][0]:
                scores[child.id] = (score, child)
        ranked = sorted(scores.values(), key=lambda item: -item[0])  # stable: ties keep proposal order
        return [child for _, child in ranked[:self.queries_per_round]]

    def predict_delta(self, before: Sequence[Any], after: Sequence[Any]) -> np.ndarray:
        """Predicted ``valid(after) - valid(before)`` for each pair, in one predictor call."""
        if self.predictor is None:
            raise ConfigError("deltanas: the Delta-predictor has not been fitted yet")
        return self.predictor.predict(self.space.encode(list(before), self.encoding),
                                      self.space.encode(list(after), self.encoding))

    def _tournament(self) -> Observation:
        return tournament(self._population, self.sample_size, self.rng)

    def _random_child(self, parent: Observation) -> Any:
        for _ in range(self.max_random_draws):
            child = self.space.mutate(parent.arch, self.rng)
            if self.in_pool(child) and child.id not in self._asked_ids:
                return child
        options = [c for c in self.pool_neighbours(parent.arch) if c.id not in self._asked_ids]
        return options[int(self.rng.integers(len(options)))] if options else self._random_unasked()

    def _random_unasked(self) -> Any:
        return self.random_unasked(self._asked_ids, self.max_random_draws)


# --------------------------------------------------------------------------------------------------
# Fig. 3 analogue: Delta-predictor error against the edit distance of the pairs
# --------------------------------------------------------------------------------------------------
def neighbour_graph(benchmark: Benchmark, archs: Sequence[Any]) -> csr_array:
    """The single-edit graph among ``archs`` (the benchmark's architectures with data, in that order):
    row ``i`` holds the neighbours of ``archs[i]`` (``space.neighbours``) that are in ``archs``.

    A benchmark whose cells with data are a sparse subset may offer the graph precomputed and cached on
    disk (NB101: ``neighbour_graph()``; its ``neighbours()`` prunes and hashes ~30 cells per call);
    otherwise it is built here, one ``neighbours()`` call per architecture."""
    precomputed = getattr(benchmark, "neighbour_graph", None)
    if precomputed is not None:
        graph = precomputed()
        if graph.shape != (len(archs), len(archs)):
            raise DataError(f"{benchmark.name}: its neighbour graph has {graph.shape[0]} nodes for {len(archs)} "
                            "architectures with data")
        return graph
    index = {arch.id: i for i, arch in enumerate(archs)}
    rows, cols = [], []
    for i, arch in enumerate(archs):
        targets = sorted({index[n.id] for n in benchmark.space.neighbours(arch) if n.id in index})
        rows += [i] * len(targets)
        cols += targets
    return csr_array((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(len(archs), len(archs)))


#: walks drawn at once by :func:`sample_pairs_at_distance`
_WALK_BATCH = 4096


def sample_pairs_at_distance(space: SearchSpace, archs: Sequence[Any], graph: csr_array, distance: int,
                             n_pairs: int, rng: np.random.Generator, max_attempts_per_pair: int = 2000,
                             at_least: int | None = None) -> list[tuple[Any, Any]]:
    """``n_pairs`` distinct pairs ``(a, b)`` with ``space.distance(a, b) == distance``: ``a`` uniform over
    ``archs``, ``b`` reached by a walk of ``distance`` steps along ``graph`` (the single-edit graph among
    ``archs``, node ``i`` = ``archs[i]``), each step uniform among the current node's neighbours; a walk
    that dead-ends or folds back (ends closer than ``distance``) is dropped. When the walks run out of
    attempts first, the pairs found are returned if there are ``at_least`` of them (default: ``n_pairs``,
    so a shortfall is a :class:`DataError`).

    Walking inside the set (rather than editing freely and keeping the walks that end in it) keeps the
    cost bounded when the set is sparse: on our NB101 pool (~7 % of the cells) a free 6-edit walk ends
    in it a few times in a hundred. Walks are drawn in batches as integer arrays; only the walks that
    survive are checked with ``space.distance``."""
    indptr, indices = np.asarray(graph.indptr), np.asarray(graph.indices)
    degree = np.diff(indptr)
    pairs: list[tuple[Any, Any]] = []
    accepted, rejected = set(), set()
    attempts, max_attempts = 0, n_pairs * max_attempts_per_pair
    while len(pairs) < n_pairs and attempts < max_attempts and len(indices):
        size = min(_WALK_BATCH, max_attempts - attempts)
        attempts += size
        start = rng.integers(len(archs), size=size)
        end, alive = start.copy(), np.ones(size, dtype=bool)
        for _ in range(distance):
            alive &= degree[end] > 0
            step = rng.integers(np.maximum(degree[end], 1))  # uniform neighbour (ignored for dead walks)
            end = np.where(alive, indices[np.minimum(indptr[end] + step, len(indices) - 1)], end)
        for a, b in zip(start[alive].tolist(), end[alive].tolist()):
            if a == b or (a, b) in accepted or (a, b) in rejected:
                continue
            if space.distance(archs[a], archs[b]) != distance:
                rejected.add((a, b))
                continue
            accepted.add((a, b))
            pairs.append((archs[a], archs[b]))
            if len(pairs) == n_pairs:
                return pairs
    if len(pairs) >= (n_pairs if at_least is None else at_least):
        return pairs
    raise DataError(f"{space.name}: found only {len(pairs)} of {n_pairs} pairs at edit distance {distance}"
                    + (f" (at least {at_least} needed)" if at_least is not None else ""))


def delta_loss_vs_edit_distance(benchmark: Benchmark, space: SearchSpace, dataset: str,
                                distances: Sequence[int], n_train_pairs: int, n_test_pairs: int,
                                rng: np.random.Generator, *,
                                model: DeltaModelSpec, encoding: str, antisymmetric: bool,
                                with_anchor: bool, min_pairs: int | None = None) -> dict:
    """Held-out mean squared error of the Delta-predictor trained and tested on pairs at each distance.

    The architectures with data are split in two halves; training pairs have both members in one, test
    pairs in the other, so no test architecture is seen in training. Reference errors on the same test
    pairs: ``zero_mse`` (predict no difference) and ``absolute_mse`` (the same model class fitted on the
    absolute encodings of the training architectures, its prediction for ``b`` minus that for ``a``).
    Kendall's tau between true and predicted differences is reported too: the search only ranks.
    Accuracies are the benchmark's validation accuracy (%), so errors are in squared percent points.

    ``min_pairs``: a set too sparse to hold the requested pairs at some distance (our 7 % of NB101 at 5-6
    edits) then uses the fewest found at any distance, at every distance, so no distance is judged with a
    smaller training set than another; fewer than ``min_pairs`` is a :class:`DataError`. Default: exactly
    the requested numbers or an error.
    """
    archs = benchmark.archs_with_data()
    if archs is None:
        raise ConfigError(f"{benchmark.name}: needs a tabular benchmark (archs_with_data)")
    # separate streams: the pairs drawn do not depend on how many draws the model makes
    pairs_rng, model_rng = rng.spawn(2)
    graph = neighbour_graph(benchmark, archs)
    order = pairs_rng.permutation(len(archs))
    parts = np.array_split(order, 2)
    halves = [[archs[int(i)] for i in part] for part in parts]
    # each half's own graph: walks stay inside the half
    half_graphs = [csr_array(graph[part][:, part]) for part in parts]
    drawn = {distance: tuple(sample_pairs_at_distance(space, halves[part], half_graphs[part], distance, n,
                                                      pairs_rng, at_least=min_pairs)
                             for part, n in ((0, n_train_pairs), (1, n_test_pairs)))
             for distance in distances}
    # the first n of a distance's pairs are what the sampler would return if asked for n (same distribution)
    n_train, n_test = (min(len(pairs[part]) for pairs in drawn.values()) for part in (0, 1))
    results: dict = {}
    for distance in distances:
        train, test = drawn[distance][0][:n_train], drawn[distance][1][:n_test]

        def split(pairs: list) -> tuple[list, list, np.ndarray, np.ndarray]:
            before, after = [p[0] for p in pairs], [p[1] for p in pairs]
            return (before, after, benchmark.query_many(before, dataset, ACCURACY, "valid"),
                    benchmark.query_many(after, dataset, ACCURACY, "valid"))

        tr_a, tr_b, tr_va, tr_vb = split(train)
        te_a, te_b, te_va, te_vb = split(test)
        delta = DeltaPredictor(model, antisymmetric, with_anchor).fit(
            space.encode(tr_a, encoding), space.encode(tr_b, encoding), tr_vb - tr_va, model_rng)
        truth = te_vb - te_va
        predicted = delta.predict(space.encode(te_a, encoding), space.encode(te_b, encoding))

        # the same model class on absolute encodings, fitted on the training pairs' architectures
        absolute = fit_quietly(model.build(model_rng), space.encode(tr_a + tr_b, encoding),
                               np.concatenate([tr_va, tr_vb]))
        absolute_delta = (absolute.predict(space.encode(te_b, encoding))
                          - absolute.predict(space.encode(te_a, encoding)))
        results[int(distance)] = {
            "delta_mse": float(mean_squared_error(truth, predicted)),
            "delta_kendall_tau": float(stats.kendalltau(truth, predicted).statistic),
            "zero_mse": float(mean_squared_error(truth, np.zeros_like(truth))),
            "absolute_mse": float(mean_squared_error(truth, absolute_delta)),
            "absolute_kendall_tau": float(stats.kendalltau(truth, absolute_delta).statistic),
            "n_train_pairs": len(train), "n_test_pairs": len(test),
        }
    return results

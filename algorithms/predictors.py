"""Performance predictors behind the :class:`algorithms.base.Predictor` contract.

Four model families, as compared in NASLib's predictor study (White et al. 2021, arXiv:2104.01177):

* :class:`MLPEnsemble` -- BANANAS (White et al., arXiv:1910.11858): an ensemble of small MLPs on an
  architecture encoding (the path encoding by default); the spread of the members is the uncertainty.
* :class:`GCNPredictor` -- the neural predictor of Wen et al. (arXiv:1912.00848): a graph convolutional
  network over the cell's op-on-node graph (:func:`graph_of`), batched with dense adjacency tensors.
* :class:`GaussianProcess` -- scikit-learn's ``GaussianProcessRegressor`` on an encoding (has uncertainty).
* :class:`GradientBoostedTrees` -- scikit-learn's ``HistGradientBoostingRegressor`` (no uncertainty).

Every predictor takes ``(space, rng, **hparams)`` with the hyper-parameters of
``algorithms/configs/predictors.toml``; a bad value is a :class:`ConfigError` at construction. Targets
are standardised inside ``fit`` and mapped back by ``predict``. All randomness comes from the given numpy
generator: torch models draw their initial weights and batch orders from a ``torch.Generator`` seeded by
it, so the global random state of ``random``/numpy/torch is never read or changed.

:func:`evaluate_predictor` fits one predictor and returns Kendall tau and Spearman rho together with the
raw predictions, so correlations can be recomputed later (as NASLib's predictor evaluator stores them).
"""
from __future__ import annotations

import math
import time
from itertools import chain
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel

from algorithms.base import Predictor
from benchmarks import nb101, nb201
from benchmarks.base import SearchSpace
from nasrepro.errors import ConfigError

#: rows scored per forward pass: bounds memory when a pool of 100k cells is scored at once
_PREDICT_CHUNK = 8192
#: cells per GCN forward pass when scoring: a chunk's ``[cells, 7, 64]`` activations then stay in the CPU
#: cache; 8,192 cells spilled to memory and scored 100k cells ~1.5x slower (tests/perf/bench_predictors.py)
_GCN_PREDICT_CHUNK = 256


# --------------------------------------------------------------------------------------------------
# Hyper-parameter checks (shared)
# --------------------------------------------------------------------------------------------------
def _positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(owner: str, name: str, value: Any, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"{owner}: {name} must be a {kind} finite number, got {value!r}")
    return float(value)


def _non_negative_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{owner}: {name} must be a non-negative integer, got {value!r}")
    return int(value)


def _choice(owner: str, name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"{owner}: unknown {name} {value!r}; choose from {', '.join(map(str, allowed))}")
    return value


def _training_targets(owner: str, archs: Sequence[Any], y: Any) -> np.ndarray:
    """The targets as float64, after the checks every ``fit`` needs."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(archs) == 0:
        raise ConfigError(f"{owner}: cannot fit on zero architectures")
    if len(archs) != len(y):
        raise ConfigError(f"{owner}: {len(archs)} architectures but {len(y)} targets")
    if not np.isfinite(y).all():
        raise ConfigError(f"{owner}: targets must be finite (got NaN or inf)")
    return y


class _Standardiser:
    """z-scores the targets of ``fit``; a constant target gets scale 1 so nothing divides by zero."""

    def __init__(self, y: np.ndarray):
        self.mean = float(y.mean())
        std = float(y.std())
        self.scale = std if std > 0 else 1.0

    def forward(self, y: np.ndarray) -> np.ndarray:
        return (y - self.mean) / self.scale

    def backward(self, z: np.ndarray) -> np.ndarray:
        return z * self.scale + self.mean


class _FittedPredictor(Predictor):
    """What all four share: target scaling, the choice of encoding, a torch seed per fit, the 'fit first'
    check."""

    def __init__(self, space: SearchSpace, rng: np.random.Generator):
        super().__init__(space, rng)
        self._targets: _Standardiser | None = None

    def _check_fitted(self) -> _Standardiser:
        if self._targets is None:
            raise ConfigError(f"{self.name}: predict called before fit")
        return self._targets

    def _pick_encoding(self, encoding: str | Sequence[str]) -> str:
        """The first of the preferred encodings (one name or a list) that the space offers: one config
        serves NB201 ("path"), NB101 and DARTS ("adjacency_onehot") and toy spaces ("onehot")."""
        preferred = [encoding] if isinstance(encoding, str) else list(encoding)
        offered = [e for e in preferred if e in self.space.encodings]
        if not offered:
            raise ConfigError(f"{self.name}: space {self.space.name} offers none of the encodings "
                              f"{preferred!r}; it has {', '.join(self.space.encodings)}")
        return offered[0]

    def _torch_generator(self) -> torch.Generator:
        """A fresh torch generator seeded from the numpy one: each fit draws a new seed."""
        return torch.Generator().manual_seed(int(self.rng.integers(2**63 - 1)))


# --------------------------------------------------------------------------------------------------
# Torch plumbing: layers initialised from a generator, one training loop
# --------------------------------------------------------------------------------------------------
def _linear(n_in: int, n_out: int, generator: torch.Generator) -> torch.nn.Linear:
    """``nn.Linear`` with PyTorch's default init U(-1/sqrt(n_in), 1/sqrt(n_in)) drawn from ``generator``
    (built on the meta device first, so the global torch generator is never used)."""
    layer = torch.nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


_LOSSES = {"mae": torch.nn.functional.l1_loss, "mse": torch.nn.functional.mse_loss}
_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class TrainSettings:
    """How a torch predictor is fitted; :meth:`checked` validates the config values once, at construction."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    loss: str
    lr_schedule: str

    @classmethod
    def checked(cls, owner: str, *, epochs: Any, batch_size: Any, lr: Any, weight_decay: Any, loss: Any,
                lr_schedule: Any) -> "TrainSettings":
        return cls(_positive_int(owner, "epochs", epochs), _positive_int(owner, "batch_size", batch_size),
                   _positive_float(owner, "lr", lr),
                   _positive_float(owner, "weight_decay", weight_decay, allow_zero=True),
                   _choice(owner, "loss", loss, tuple(_LOSSES)), _choice(owner, "lr_schedule", lr_schedule, _SCHEDULES))


def _train(model: torch.nn.Module, inputs: Sequence[torch.Tensor], z: torch.Tensor, settings: TrainSettings,
           generator: torch.Generator | Sequence[torch.Generator]) -> None:
    """Adam (cosine-annealed to 0 or constant learning rate) on mini-batches shuffled by ``generator``.

    With a list of generators the model is a stack of members (:class:`_StackedMLPs`): each member gets
    its own batch order, and the loss is the sum of the members' losses (so gradients stay separate)."""
    epochs, batch_size = settings.epochs, settings.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(z)
    steps_per_epoch = math.ceil(n / batch_size)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
                if settings.lr_schedule == "cosine" else None)
    loss_fn = _LOSSES[settings.loss]
    stacked = not isinstance(generator, torch.Generator)
    model.train()
    for _ in range(epochs):
        if stacked:
            order = torch.stack([torch.randperm(n, generator=g) for g in generator])  # [E, n]
        else:
            order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            batch = order[..., start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            error = loss_fn(model(*(x[batch] for x in inputs)), z[batch], reduction="none")
            (error.mean(-1).sum() if stacked else error.mean()).backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
    model.eval()


def _predict_in_chunks(model: torch.nn.Module, inputs: Sequence[torch.Tensor],
                       chunk: int = _PREDICT_CHUNK) -> np.ndarray:
    with torch.inference_mode():
        parts = [model(*(x[s:s + chunk] for x in inputs)) for s in range(0, len(inputs[0]), chunk)]
    return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0)


# --------------------------------------------------------------------------------------------------
# MLP ensemble (BANANAS)
# --------------------------------------------------------------------------------------------------
class _StackedMLPs(torch.nn.Module):
    """``n_members`` independent MLPs evaluated as one batched matmul per layer (weights ``[E, in, out]``),
    so one optimiser step trains every member. Adam and weight decay act element-wise, so this is exactly
    ``n_members`` separate trainings; member ``e`` is initialised from ``generators[e]`` alone."""

    def __init__(self, n_in: int, width: int, n_layers: int, generators: Sequence[torch.Generator]):
        super().__init__()
        sizes = [n_in] + [width] * n_layers + [1]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for a, b in zip(sizes, sizes[1:]):
            members = [_linear(a, b, g) for g in generators]
            self.weights.append(torch.nn.Parameter(torch.stack([m.weight.detach().T for m in members])))
            self.biases.append(torch.nn.Parameter(torch.stack([m.bias.detach()[None] for m in members])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[E, B, in]`` (a batch per member) or ``[B, in]`` (same rows for all) -> ``[E, B]``."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w) if x.dim() == 3 else torch.matmul(x, w) + b
            if i < len(self.weights) - 1:
                x = torch.relu(x)
        return x.squeeze(-1)


class EnsembleRegressor:
    """BANANAS' ensemble of MLPs on a plain feature matrix: ``fit(x, y)``, ``predict(x)``,
    ``member_predictions(x)``. :class:`MLPEnsemble` runs it on an architecture encoding; Delta-NAS runs it
    on difference-of-architecture vectors. Targets are standardised inside ``fit``; each fit draws one
    torch seed per member from ``rng`` (never the global generators)."""

    def __init__(self, owner: str, rng: np.random.Generator, *, ensemble_size: int, n_layers: int, width: int,
                 epochs: int, batch_size: int, lr: float, weight_decay: float, loss: str, lr_schedule: str):
        self.rng = rng
        self.ensemble_size = _positive_int(owner, "ensemble_size", ensemble_size)
        self.n_layers = _positive_int(owner, "n_layers", n_layers)
        self.width = _positive_int(owner, "width", width)
        self.training = TrainSettings.checked(owner, epochs=epochs, batch_size=batch_size, lr=lr,
                                              weight_decay=weight_decay, loss=loss, lr_schedule=lr_schedule)
        self.owner = owner
        self._targets: _Standardiser | None = None
        self._model: _StackedMLPs | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> "EnsembleRegressor":
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        self._targets = _Standardiser(y)
        features = torch.from_numpy(np.asarray(x, dtype=np.float32))
        z = torch.from_numpy(self._targets.forward(y).astype(np.float32))
        generators = [torch.Generator().manual_seed(int(self.rng.integers(2**63 - 1)))
                      for _ in range(self.ensemble_size)]
        self._model = _StackedMLPs(features.shape[1], self.width, self.n_layers, generators)
        _train(self._model, [features], z, self.training, generator=generators)
        return self

    def member_predictions(self, x: np.ndarray) -> np.ndarray:
        """``[ensemble_size, rows]`` predictions in target units."""
        if self._targets is None:
            raise ConfigError(f"{self.owner}: predict called before fit")
        features = torch.from_numpy(np.asarray(x, dtype=np.float32))
        with torch.inference_mode():
            parts = [self._model(features[s:s + _PREDICT_CHUNK]) for s in range(0, len(features), _PREDICT_CHUNK)]
        z = torch.cat(parts, dim=1) if parts else torch.zeros(self.ensemble_size, 0)
        return self._targets.backward(z.numpy().astype(np.float64))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.member_predictions(x).mean(axis=0)


class MLPEnsemble(_FittedPredictor):
    """BANANAS' meta neural network: ``ensemble_size`` MLPs, each with its own initial weights and batch
    order; the prediction is the members' mean and the uncertainty their standard deviation."""

    name = "mlp_ensemble"
    has_uncertainty = True

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, encoding: str | Sequence[str],
                 ensemble_size: int, n_layers: int, width: int, epochs: int, batch_size: int, lr: float,
                 weight_decay: float, loss: str, lr_schedule: str):
        super().__init__(space, rng)
        self.encoding = self._pick_encoding(encoding)
        self.regressor = EnsembleRegressor(
            self.name, rng, ensemble_size=ensemble_size, n_layers=n_layers, width=width, epochs=epochs,
            batch_size=batch_size, lr=lr, weight_decay=weight_decay, loss=loss, lr_schedule=lr_schedule)

    def fit(self, archs: Sequence[Any], y: np.ndarray) -> "MLPEnsemble":
        y = _training_targets(self.name, archs, y)
        self.regressor.fit(self.space.encode(archs, self.encoding), y)
        self._targets = self.regressor._targets
        return self

    def _member_predictions(self, archs: Sequence[Any]) -> np.ndarray:
        self._check_fitted()
        return self.regressor.member_predictions(self.space.encode(archs, self.encoding))

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        return self._member_predictions(archs).mean(axis=0)

    def predict_with_std(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        members = self._member_predictions(archs)
        return members.mean(axis=0), members.std(axis=0)


# --------------------------------------------------------------------------------------------------
# Cell graphs for the GCN
# --------------------------------------------------------------------------------------------------
#: node labels of the op-on-node graphs, per space: input and output first, then the ops
NB201_NODE_OPS = ("input", "output") + nb201.OPS
NB101_NODE_OPS = (nb101.INPUT, nb101.OUTPUT) + nb101.OPS
_NB101_LABEL_OF = {op: i for i, op in enumerate(NB101_NODE_OPS)}


def _nb201_node_adjacency() -> np.ndarray:
    """The op-on-node DAG of every NB201 cell (NASLib / Wen et al.): node 0 is the input, nodes 1..6
    the six edge ops in official order, node 7 the output. Op (i <- j) feeds op (k <- i), and ops out
    of node 0 read the input, ops into node 3 feed the output. The graph is the same for every cell;
    only the node labels differ (a ``none`` op stays a node, as in NASLib)."""
    n = nb201.N_EDGES + 2
    adjacency = np.zeros((n, n), dtype=np.float32)
    for a, (to_a, from_a) in enumerate(nb201.EDGES, start=1):
        if from_a == 0:
            adjacency[0, a] = 1
        if to_a == nb201.N_NODES - 1:
            adjacency[a, n - 1] = 1
        for b, (_, from_b) in enumerate(nb201.EDGES, start=1):
            if from_b == to_a:
                adjacency[a, b] = 1
    return adjacency


_NB201_ADJACENCY = _nb201_node_adjacency()


def graph_of(arch: Any) -> tuple[np.ndarray, list[str]]:
    """``(adjacency, node_ops)`` of a cell as an op-on-node DAG (``adjacency[u, v] = 1`` for u -> v, nodes
    in topological order, input first and output last). NB201 cells (ops on edges) are converted as in
    :func:`_nb201_node_adjacency`; NB101 cells are already op-on-node (the pruned matrix)."""
    if isinstance(arch, nb201.NB201Arch):
        return _NB201_ADJACENCY.copy(), ["input"] + [nb201.OPS[o] for o in arch.ops] + ["output"]
    if isinstance(arch, nb101.NB101Arch):
        return np.array(arch.matrix, dtype=np.float32), list(arch.ops)
    raise ConfigError(f"no cell graph for {type(arch).__name__}; the GCN predictor supports "
                      f"{', '.join(GRAPH_SPACES)}")


def _nb201_graphs(archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`graph_of` for NB201: the one shared ``[8, 8]`` adjacency, labels from the ops."""
    ops = np.array([a.ops for a in archs], dtype=np.int64).reshape(-1, nb201.N_EDGES)
    labels = np.concatenate([np.zeros((len(ops), 1), np.int64), ops + 2, np.ones((len(ops), 1), np.int64)],
                            axis=1)
    return _NB201_ADJACENCY.copy(), labels, np.ones(labels.shape, dtype=np.float32)


def _nb101_graphs(archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NB101 cells padded to 7 nodes; padding nodes are masked out (no edges, no label, not pooled).

    Cells are grouped by size and each group's matrices and ops are read as one flat stream
    (``np.fromiter``): converting 100k nested tuples one ``np.array`` at a time is what cost the time."""
    n_max = nb101.MAX_VERTICES
    sizes = np.fromiter((len(a.ops) for a in archs), np.int64, len(archs))
    adjacency = np.zeros((len(archs), n_max, n_max), dtype=np.float32)
    labels = np.zeros((len(archs), n_max), dtype=np.int64)
    for n in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == n)
        group = [archs[i] for i in rows]
        entries = chain.from_iterable(chain.from_iterable(a.matrix for a in group))
        adjacency[rows, :n, :n] = np.fromiter(entries, np.float32, len(group) * n * n).reshape(-1, n, n)
        ops = chain.from_iterable(a.ops for a in group)
        labels[rows, :n] = np.fromiter(map(_NB101_LABEL_OF.__getitem__, ops), np.int64,
                                       len(group) * n).reshape(-1, n)
    mask = (np.arange(n_max) < sizes[:, None]).astype(np.float32)
    return adjacency, labels, mask


class _GraphTable:
    """The graph arrays of every cell scored so far, one row per cell id, so that a pool scored again
    and again (the search scores the same candidates every iteration, minus the few asked) is converted
    once: afterwards a call costs one dict lookup per cell plus array indexing, and the GCN's forward
    pass dominates. Rows are stored compactly (``uint8`` adjacency, ``int8`` labels, ``bool`` mask);
    memory is bounded by the space (all 423,624 NB101 cells: ~27 MB). A shared adjacency (NB201: one
    graph for every cell) is stored once. Not pickled: a checkpoint keeps the model, not this cache."""

    def __init__(self, build: Callable[[Sequence[Any]], tuple[np.ndarray, np.ndarray, np.ndarray]]):
        self.build = build
        self._clear()

    def _clear(self) -> None:
        self.row_of: dict[str, int] = {}
        self.shared_adjacency: np.ndarray | None = None
        self.adjacency: np.ndarray | None = None  # [rows, n, n] unless shared
        self.labels: np.ndarray | None = None
        self.mask: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {"build": self.build}

    def __setstate__(self, state: dict) -> None:
        self.build = state["build"]
        self._clear()

    def __len__(self) -> int:
        return len(self.row_of)

    def tensors(self, archs: Sequence[Any]) -> list[torch.Tensor]:
        """``[adjacency, labels, mask]`` of ``archs`` as the GCN takes them (a shared adjacency as an
        expanded view, not one copy per cell)."""
        ids = [a.id for a in archs]
        new = {}  # id -> first position in archs, for cells not in the table yet
        for i, arch_id in enumerate(ids):
            if arch_id not in self.row_of and arch_id not in new:
                new[arch_id] = i
        if new or self.labels is None:  # (an empty first call still sets the arrays' shapes)
            self._add([archs[i] for i in new.values()], list(new))
        rows = np.fromiter(map(self.row_of.__getitem__, ids), np.int64, len(ids))
        labels = torch.from_numpy(self.labels[rows].astype(np.int64))
        mask = torch.from_numpy(self.mask[rows].astype(np.float32))
        if self.shared_adjacency is not None:
            adjacency = torch.from_numpy(self.shared_adjacency).expand(len(rows), -1, -1)
        else:
            adjacency = torch.from_numpy(self.adjacency[rows].astype(np.float32))
        return [adjacency, labels, mask]

    def _add(self, archs: list, ids: list[str]) -> None:
        adjacency, labels, mask = self.build(archs)
        start = len(self.row_of)
        self.row_of.update((arch_id, start + i) for i, arch_id in enumerate(ids))
        if adjacency.ndim == 2:
            self.shared_adjacency = adjacency.astype(np.float32)
        else:
            self.adjacency = _appended(self.adjacency, adjacency.astype(np.uint8))
        self.labels = _appended(self.labels, labels.astype(np.int8))
        self.mask = _appended(self.mask, mask.astype(bool))


def _appended(stored: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    return rows if stored is None else np.concatenate([stored, rows])


#: space name -> (node labels, batched graph builder)
GRAPH_SPACES: dict[str, tuple[tuple[str, ...], Callable]] = {
    "nb201": (NB201_NODE_OPS, _nb201_graphs),
    "nb101": (NB101_NODE_OPS, _nb101_graphs),
}


# --------------------------------------------------------------------------------------------------
# GCN (Wen et al.)
# --------------------------------------------------------------------------------------------------
class _DirectedGCN(torch.nn.Module):
    """Wen et al.'s network: graph convolutions that average a message from each node's successors and
    one from its predecessors (each direction with its own weights; row-normalised adjacency with
    self-loops), mean pooling over the real nodes, then a hidden linear layer and the regression output."""

    def __init__(self, n_labels: int, gcn_width: int, gcn_layers: int, head_width: int,
                 generator: torch.Generator):
        super().__init__()
        self.n_labels = n_labels
        sizes = [n_labels] + [gcn_width] * gcn_layers
        layer_sizes = list(zip(sizes, sizes[1:]))
        self.successor_weights = torch.nn.ModuleList(_linear(a, b, generator) for a, b in layer_sizes)
        self.predecessor_weights = torch.nn.ModuleList(_linear(a, b, generator) for a, b in layer_sizes)
        self.head = _linear(gcn_width, head_width, generator)
        self.out = _linear(head_width, 1, generator)

    @staticmethod
    def _normalise(adjacency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with_self = adjacency + torch.diag_embed(mask)
        return with_self / with_self.sum(-1, keepdim=True).clamp_min(1.0)

    def forward(self, adjacency: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        successors = self._normalise(adjacency, mask)  # row u: u's successors (adjacency[u, v] = u -> v)
        predecessors = self._normalise(adjacency.transpose(1, 2), mask)
        h = torch.nn.functional.one_hot(labels, self.n_labels).to(torch.float32) * mask.unsqueeze(-1)
        for w_successors, w_predecessors in zip(self.successor_weights, self.predecessor_weights):
            h = torch.relu(0.5 * (successors @ w_successors(h) + predecessors @ w_predecessors(h)))
        pooled = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return self.out(torch.relu(self.head(pooled))).squeeze(-1)


class GCNPredictor(_FittedPredictor):
    """The neural predictor of Wen et al. on the op-on-node cell graph (:func:`graph_of`)."""

    name = "gcn"
    #: spaces with a cell graph (:data:`GRAPH_SPACES`); construction on any other is a ConfigError
    spaces = tuple(GRAPH_SPACES)

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, gcn_width: int, gcn_layers: int,
                 head_width: int, epochs: int, batch_size: int, lr: float, weight_decay: float, loss: str,
                 lr_schedule: str):
        super().__init__(space, rng)
        owner = self.name
        if space.name not in GRAPH_SPACES:
            raise ConfigError(f"{owner}: no cell graph for space {space.name!r}; "
                              f"supported: {', '.join(GRAPH_SPACES)}")
        self.node_ops, build_graphs = GRAPH_SPACES[space.name]
        self._graph_table = _GraphTable(build_graphs)  # kept across fits: the pool's cells stay the same
        self.gcn_width = _positive_int(owner, "gcn_width", gcn_width)
        self.gcn_layers = _positive_int(owner, "gcn_layers", gcn_layers)
        self.head_width = _positive_int(owner, "head_width", head_width)
        self.training = TrainSettings.checked(owner, epochs=epochs, batch_size=batch_size, lr=lr,
                                              weight_decay=weight_decay, loss=loss, lr_schedule=lr_schedule)
        self._model: _DirectedGCN | None = None

    def _tensors(self, archs: Sequence[Any]) -> list[torch.Tensor]:
        return self._graph_table.tensors(archs)

    def fit(self, archs: Sequence[Any], y: np.ndarray) -> "GCNPredictor":
        y = _training_targets(self.name, archs, y)
        self._targets = _Standardiser(y)
        generator = self._torch_generator()
        self._model = _DirectedGCN(len(self.node_ops), self.gcn_width, self.gcn_layers, self.head_width,
                                   generator)
        z = torch.from_numpy(self._targets.forward(y).astype(np.float32))
        _train(self._model, self._tensors(archs), z, self.training, generator=generator)
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        targets = self._check_fitted()
        return targets.backward(_predict_in_chunks(self._model, self._tensors(archs), _GCN_PREDICT_CHUNK))


# --------------------------------------------------------------------------------------------------
# scikit-learn models
# --------------------------------------------------------------------------------------------------
class GaussianProcess(_FittedPredictor):
    """A GP on an encoding: constant x (Matern or RBF) kernel plus white noise, kernel hyper-parameters
    fitted by marginal likelihood with ``n_restarts`` random restarts drawn from the generator."""

    name = "gp"
    has_uncertainty = True

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, encoding: str | Sequence[str],
                 kernel: str, matern_nu: float, length_scale: float, noise_level: float, n_restarts: int):
        super().__init__(space, rng)
        owner = self.name
        self.encoding = self._pick_encoding(encoding)
        self.kernel = _choice(owner, "kernel", kernel, ("matern", "rbf"))
        self.matern_nu = _choice(owner, "matern_nu", matern_nu, (0.5, 1.5, 2.5))
        self.length_scale = _positive_float(owner, "length_scale", length_scale)
        self.noise_level = _positive_float(owner, "noise_level", noise_level)
        self.n_restarts = _non_negative_int(owner, "n_restarts", n_restarts)
        self._model: GaussianProcessRegressor | None = None

    def fit(self, archs: Sequence[Any], y: np.ndarray) -> "GaussianProcess":
        y = _training_targets(self.name, archs, y)
        self._targets = _Standardiser(y)
        shape = (Matern(self.length_scale, nu=self.matern_nu) if self.kernel == "matern"
                 else RBF(self.length_scale))
        kernel = ConstantKernel(1.0) * shape + WhiteKernel(self.noise_level)
        self._model = GaussianProcessRegressor(kernel, n_restarts_optimizer=self.n_restarts,
                                               random_state=int(self.rng.integers(2**31 - 1)))
        self._model.fit(self.space.encode(archs, self.encoding), self._targets.forward(y))
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        return self.predict_with_std(archs)[0]

    def predict_with_std(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        targets = self._check_fitted()
        mean, std = self._model.predict(self.space.encode(archs, self.encoding), return_std=True)
        return targets.backward(mean), std * targets.scale


class GradientBoostedTrees(_FittedPredictor):
    """Histogram gradient boosting on an encoding (NASLib's XGBoost/LightGBM predictors play this role)."""

    name = "gbt"

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, encoding: str | Sequence[str],
                 n_trees: int, learning_rate: float, max_leaf_nodes: int, min_samples_leaf: int,
                 l2_regularization: float):
        super().__init__(space, rng)
        owner = self.name
        self.encoding = self._pick_encoding(encoding)
        self.n_trees = _positive_int(owner, "n_trees", n_trees)
        self.learning_rate = _positive_float(owner, "learning_rate", learning_rate)
        self.max_leaf_nodes = _positive_int(owner, "max_leaf_nodes", max_leaf_nodes)
        self.min_samples_leaf = _positive_int(owner, "min_samples_leaf", min_samples_leaf)
        self.l2_regularization = _positive_float(owner, "l2_regularization", l2_regularization,
                                                 allow_zero=True)
        if self.max_leaf_nodes < 2:
            raise ConfigError(f"{owner}: max_leaf_nodes must be at least 2, got {max_leaf_nodes!r}")
        self._model: HistGradientBoostingRegressor | None = None

    def fit(self, archs: Sequence[Any], y: np.ndarray) -> "GradientBoostedTrees":
        y = _training_targets(self.name, archs, y)
        self._targets = _Standardiser(y)
        self._model = HistGradientBoostingRegressor(
            max_iter=self.n_trees, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization,
            early_stopping=False, random_state=int(self.rng.integers(2**31 - 1)))
        self._model.fit(self.space.encode(archs, self.encoding), self._targets.forward(y))
        return self

    def predict(self, archs: Sequence[Any]) -> np.ndarray:
        targets = self._check_fitted()
        return targets.backward(self._model.predict(self.space.encode(archs, self.encoding)))


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------
def evaluate_predictor(predictor_factory: Callable[[], Predictor], train_archs: Sequence[Any],
                       y_train: np.ndarray, test_archs: Sequence[Any], y_test: np.ndarray) -> dict:
    """Fit a fresh predictor from ``predictor_factory()`` and score it on held-out architectures.

    Returns Kendall tau and Spearman rho (scipy), the fit and predict wall-clock seconds, and the raw
    ``predictions``, ``std`` and ``targets`` (lists), so correlations can be recomputed later."""
    y_test = np.asarray(y_test, dtype=np.float64).reshape(-1)
    if len(test_archs) != len(y_test) or len(test_archs) < 2:
        raise ConfigError(f"evaluate_predictor: need >= 2 test architectures with one target each, got "
                          f"{len(test_archs)} architectures and {len(y_test)} targets")
    predictor = predictor_factory()
    start = time.perf_counter()
    predictor.fit(train_archs, y_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    mean, std = predictor.predict_with_std(test_archs)
    predict_seconds = time.perf_counter() - start
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return {
        "predictor": predictor.name,
        "n_train": len(train_archs),
        "n_test": len(test_archs),
        "kendall_tau": float(stats.kendalltau(mean, y_test).statistic),
        "spearman_rho": float(stats.spearmanr(mean, y_test).statistic),
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "predictions": mean.tolist(),
        "std": std.tolist(),
        "targets": y_test.tolist(),
    }

"""NB301 stand-in (YAHPO surrogate), not NAS-Bench-301.

The official NAS-Bench-301 surrogate ensemble is not obtainable here. This benchmark answers queries on
the DARTS space with YAHPO Gym's ``nb301`` surrogate (Pfisterer et al., 2022; files
``nb301/yahpo_v2_final_*`` of slds-lmu/yahpo_data, branch ``v2_final``): a neural network fitted to the
NB301 *training data* (Siems et al., 2020; figshare 13286105), run with onnxruntime. Its numbers are
those of a different surrogate than the official NB301 ensemble and must never be reported as
NAS-Bench-301 results; every name, label and description here says "stand-in".

Model contract (from yahpo_gym ``benchmarks/nb301.py`` and ``benchmark_set.py``):

* ``x_cat`` int32 ``[N, 34]``: the categorical hyper-parameters in :data:`CAT_NAMES` order, each
  integer-coded by ``encoding_v2.json``. ``edge_<cell>_<e>`` is the op on candidate edge ``e`` (NB301
  numbering: node 2 owns edges 0-1, node 3 edges 2-4, node 4 edges 5-8, node 5 edges 9-13, edge
  ``offset + input``); ``inputs_node_<cell>_<k>`` (k = 3, 4, 5) is node k's input pair ``"i_j"``
  (i < j). Node 2 always reads inputs 0 and 1, so it has no such parameter. An edge whose node does not
  read its source is inactive and coded ``"#na#"`` (0), as yahpo_gym imputes missing categoricals.
  :meth:`NB301StandIn.load` checks this numbering against the conditions of ``config_space_v2.json``.
* ``x_cont`` float32 ``[N, 1]``: the training epoch, 1..98 (the final fidelity is the default).
* ``output`` float32 ``[N, 4]``: :data:`TARGETS` = validation accuracy (a fraction), validation
  cross-entropy, runtime (cumulative training seconds up to that epoch), runtime increase (seconds of
  that epoch).

Queries (dataset ``cifar10`` only): ``accuracy``/``valid`` in percent, ``cross_entropy``/``valid``,
``train_time`` (the runtime target, seconds). There is no test split: the surrogate predicts none, so
``split="test"`` raises :class:`MissingEntryError`. The surrogate is deterministic and has no per-seed
values.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.base import ACCURACY, Benchmark, MetricSpec, check_choice
from benchmarks.darts_space import (CELL_OPS, CELL_TYPES, EDGE_OFFSET, EDGES_PER_NODE, N_CANDIDATE_EDGES,
                                    N_INPUTS, N_NODES, DartsArch, DartsSpace, parse)
from nasrepro.errors import DataError, InvalidArchError, MissingEntryError, OutOfDomainError
from nasrepro.io import sha256_file
from nasrepro.paths import data_root

LABEL = "NB301 stand-in (YAHPO surrogate), not NAS-Bench-301"
FILES = {
    "model": "nb301/yahpo_v2_final_model_v2.onnx",
    "encoding": "nb301/yahpo_v2_final_encoding_v2.json",
    "config_space": "nb301/yahpo_v2_final_config_space_v2.json",
}
_PREFIX = "NetworkSelectorDatasetInfo_COLON_darts_COLON_"
#: the model's categorical inputs, in x_cat column order (yahpo_gym nb301 ``cat_names``)
CAT_NAMES = tuple([f"{_PREFIX}edge_{cell}_{e}" for cell in CELL_TYPES for e in range(N_CANDIDATE_EDGES)]
                  + [f"{_PREFIX}inputs_node_{cell}_{node + N_INPUTS}" for cell in CELL_TYPES
                     for node in range(1, N_NODES)])
#: the model's outputs, in column order (yahpo_gym nb301 ``y_names``)
TARGETS = ("val_accuracy", "val_cross_entropy", "runtime", "runtime_increase")
INACTIVE = "#na#"
EPOCH_NAME = "epoch"
DATASETS = ("cifar10",)
#: (metric, split) -> (target column, scale)
_METRICS = {
    (ACCURACY, "valid"): (TARGETS.index("val_accuracy"), 100.0),
    ("cross_entropy", "valid"): (TARGETS.index("val_cross_entropy"), 1.0),
    ("train_time", None): (TARGETS.index("runtime"), 1.0),
}
_SPLITS = {ACCURACY: ("valid", "test"), "cross_entropy": ("valid", "test"), "train_time": (None,)}


def _pair_name(pair: tuple[int, int]) -> str:
    return f"{pair[0]}_{pair[1]}"


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{LABEL}: data file {path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{LABEL}: {path} is not valid JSON ({exc})") from exc


def _check_encoding(encoding: Any, path: Path) -> None:
    """The encoding must code every op on every edge, every input pair of every node, and '#na#'."""
    if not isinstance(encoding, dict) or set(encoding) != set(CAT_NAMES):
        raise DataError(f"{path}: not the YAHPO nb301 encoding (expected the {len(CAT_NAMES)} DARTS "
                        f"hyper-parameters)")
    for name in CAT_NAMES:
        node = int(name.rsplit("_", 1)[1]) - N_INPUTS if "inputs_node" in name else None
        wanted = set(CELL_OPS) if node is None else {_pair_name(p) for p in DartsSpace.input_pairs(node)}
        codes = encoding[name]
        if not isinstance(codes, dict) or not all(type(v) is int for v in codes.values()):
            raise DataError(f"{path}: {name} is not a mapping of values to integer codes")
        missing = (wanted | {INACTIVE}) - set(codes)
        if missing:
            raise DataError(f"{path}: {name} lacks codes for {sorted(missing)}")


def _check_conditions(config_space: Any, path: Path) -> tuple[int, int]:
    """Check our edge numbering against the config space's conditions; return the epoch bounds.

    Edge ``offset(k) + i`` of node k must be active exactly when node k's input pair contains ``i``
    (edges of node 2 are always active). A mismatch means the mapping would be silently wrong.
    """
    try:
        conditions = {c["child"]: (c["parent"], c["type"], c.get("values", [c.get("value")]))
                      for c in config_space["conditions"]}
        epoch = next(h for h in config_space["hyperparameters"] if h["name"] == EPOCH_NAME)
        bounds = int(epoch["lower"]), int(epoch["upper"])
    except (KeyError, TypeError, StopIteration, ValueError) as exc:
        raise DataError(f"{path}: not a ConfigSpace JSON with conditions and an epoch range") from exc
    for cell in CELL_TYPES:
        for node in range(N_NODES):
            for src in range(node + N_INPUTS):
                child = f"{_PREFIX}edge_{cell}_{EDGE_OFFSET[node] + src}"
                if node == 0:
                    expected = None
                else:
                    values = sorted(_pair_name(p) for p in DartsSpace.input_pairs(node) if src in p)
                    expected = (f"{_PREFIX}inputs_node_{cell}_{node + N_INPUTS}", values)
                found = conditions.get(child)
                found = None if found is None else (found[0], sorted(found[2]))
                if found != expected:
                    raise DataError(f"{path}: condition of {child} is {found}, expected {expected}: the "
                                    f"config space does not use the NB301 edge numbering")
    return bounds


class NB301StandIn(Benchmark):
    """NB301 stand-in (YAHPO surrogate), not NAS-Bench-301: see the module docstring.

    The onnxruntime session is created on the first query (loading is cheap) and runs single-threaded
    unless ``threads`` says otherwise, so many of these can run side by side in worker processes.
    """

    name = "nb301-standin"
    label = LABEL
    datasets = DATASETS

    def __init__(self, files: dict[str, Path], encoding: dict, epochs: tuple[int, int], threads: int = 1):
        self.space = DartsSpace()
        self.files = files
        self.epochs = epochs
        self.threads = int(threads)
        self._session = None
        self._sha256: dict[str, str] | None = None
        # per-cell lookup tables: op code of each (edge, op), code of each node's input pair
        self._op_code = {(cell, e, op): encoding[f"{_PREFIX}edge_{cell}_{e}"][op]
                         for cell in CELL_TYPES for e in range(N_CANDIDATE_EDGES) for op in CELL_OPS}
        self._inactive_code = {(cell, e): encoding[f"{_PREFIX}edge_{cell}_{e}"][INACTIVE]
                               for cell in CELL_TYPES for e in range(N_CANDIDATE_EDGES)}
        self._pair_code = {(cell, node, pair): encoding[f"{_PREFIX}inputs_node_{cell}_{node + N_INPUTS}"][
            _pair_name(pair)] for cell in CELL_TYPES for node in range(1, N_NODES)
            for pair in DartsSpace.input_pairs(node)}

    @classmethod
    def load(cls, root: Path | None = None, threads: int = 1) -> "NB301StandIn":
        """Read and check the encoding and config space; the ONNX model is only opened when queried."""
        root = Path(root) if root is not None else data_root()
        files = {key: root / rel for key, rel in FILES.items()}
        if not files["model"].is_file():
            raise DataError(f"{LABEL}: model file {files['model']} not found")
        encoding = _load_json(files["encoding"])
        _check_encoding(encoding, files["encoding"])
        epochs = _check_conditions(_load_json(files["config_space"]), files["config_space"])
        return cls(files, encoding, epochs, threads)

    def __getstate__(self) -> dict:
        # an onnxruntime session cannot be pickled (process executors ship benchmarks to workers):
        # drop it and let the worker open its own on its first query
        return {**self.__dict__, "_session": None}

    # -- model ----------------------------------------------------------------------------------------
    @property
    def session(self):
        if self._session is None:
            import onnxruntime
            from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = self.threads
            try:
                session = onnxruntime.InferenceSession(str(self.files["model"]), sess_options=options,
                                                       providers=["CPUExecutionProvider"])
            except (ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.NoSuchFile,
                    ort_errors.InvalidArgument, ort_errors.RuntimeException) as exc:
                raise DataError(f"{LABEL}: cannot load {self.files['model']}: {exc}") from exc
            shapes = {i.name: i.shape[1:] for i in session.get_inputs()}
            if shapes != {"x_cat": [len(CAT_NAMES)], "x_cont": [1]} \
                    or session.get_outputs()[0].shape[1:] != [len(TARGETS)]:
                raise DataError(f"{self.files['model']}: not the YAHPO nb301 model (inputs {shapes})")
            self._session = session
        return self._session

    def categorical_inputs(self, archs: Sequence[Any]) -> np.ndarray:
        """The ``x_cat`` matrix (int32, one row of 34 codes per architecture)."""
        rows = []
        for arch in archs:
            arch = self._as_arch(arch)
            edges, pairs = [], []
            for cell in CELL_TYPES:
                ops = {}
                for node in range(N_NODES):
                    node_edges = arch.cell(cell)[EDGES_PER_NODE * node: EDGES_PER_NODE * (node + 1)]
                    for op, src in node_edges:
                        ops[EDGE_OFFSET[node] + src] = op
                    if node > 0:
                        pair = tuple(sorted(src for _, src in node_edges))
                        pairs.append(self._pair_code[(cell, node, pair)])
                edges.extend(self._op_code[(cell, e, ops[e])] if e in ops else self._inactive_code[(cell, e)]
                             for e in range(N_CANDIDATE_EDGES))
            rows.append(edges + pairs)
        return np.asarray(rows, dtype=np.int32).reshape(len(rows), len(CAT_NAMES))

    def predict(self, archs: Sequence[Any], epoch: int | None = None) -> np.ndarray:
        """Raw surrogate outputs, ``[len(archs), 4]`` in :data:`TARGETS` order, in one onnx call."""
        epoch = self._check_epoch(epoch)
        x_cat = self.categorical_inputs(archs)
        if len(x_cat) == 0:
            return np.zeros((0, len(TARGETS)), dtype=np.float64)
        x_cont = np.full((len(x_cat), 1), epoch, dtype=np.float32)
        (out,) = self.session.run(None, {"x_cat": x_cat, "x_cont": x_cont})
        return np.asarray(out, dtype=np.float64)

    # -- queries --------------------------------------------------------------------------------------
    def _check_epoch(self, epoch: int | None) -> int:
        lo, hi = self.epochs
        if epoch is None:
            return hi
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not lo <= epoch <= hi:
            raise OutOfDomainError(f"{self.name}: epoch must be None (final, {hi}) or an integer "
                                   f"{lo}..{hi}, got {epoch!r}")
        return int(epoch)

    def _target(self, dataset: str, metric: str, split: str | None, epoch: int | None, seed: int | None,
                device: str | None) -> tuple[int, float]:
        """Map a query onto (target column, scale); all split/seed quirks live here."""
        ds = self.check_dataset(dataset)
        where = f"{self.name}/{ds}"
        check_choice("metric", metric, _SPLITS, where)
        check_choice("split", split, _SPLITS[metric], f"{where}/{metric}")
        if device is not None:
            raise OutOfDomainError(f"{where}/{metric}: takes no device (got {device!r})")
        self._check_epoch(epoch)
        if split == "test":
            raise MissingEntryError(f"{where}/{metric}: the {LABEL} predicts no test split")
        if seed is not None:
            raise MissingEntryError(f"{where}/{metric}: the {LABEL} is deterministic and has no per-seed "
                                    f"values (got seed {seed!r})")
        return _METRICS[(metric, split)]

    def query(self, arch: Any, dataset: str, metric: str = ACCURACY, split: str | None = "valid",
              epoch: int | None = None, seed: int | None = None, device: str | None = None) -> float:
        return float(self.query_many([arch], dataset, metric, split, epoch, seed, device)[0])

    def query_many(self, archs: Sequence[Any], dataset: str, metric: str = ACCURACY,
                   split: str | None = "valid", epoch: int | None = None, seed: int | None = None,
                   device: str | None = None) -> np.ndarray:
        column, scale = self._target(dataset, metric, split, epoch, seed, device)
        return self.predict(archs, epoch)[:, column] * scale

    def _as_arch(self, arch: Any) -> DartsArch:
        if isinstance(arch, DartsArch):
            return arch
        if isinstance(arch, str):
            return parse(arch)
        raise InvalidArchError(f"{self.name}: not a DARTS genotype: {arch!r}")

    def describe(self) -> list[MetricSpec]:
        lo, hi = self.epochs
        epochs = tuple(range(lo, hi + 1))
        return [
            MetricSpec("cifar10", ACCURACY, "valid", epochs, "mean", f"{LABEL}; percent; no test split"),
            MetricSpec("cifar10", "cross_entropy", "valid", epochs, "mean", LABEL),
            MetricSpec("cifar10", "train_time", None, epochs, "mean",
                       f"{LABEL}; cumulative training seconds up to the epoch"),
        ]

    def archs_with_data(self) -> None:
        return None  # a surrogate: every genotype of the space can be queried

    def data_sha256(self) -> dict[str, str]:
        if self._sha256 is None:
            self._sha256 = {key: sha256_file(path) for key, path in self.files.items()}
        return dict(self._sha256)

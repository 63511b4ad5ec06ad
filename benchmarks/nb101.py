"""NAS-Bench-101: the cell space (official module hash, full enumeration) and the tabular benchmark.

**Cells.** A cell is a DAG of at most 7 vertices and 9 edges given as an upper-triangular 0/1 adjacency
matrix plus one op per vertex: ``input``, then ``conv3x3-bn-relu`` / ``conv1x1-bn-relu`` / ``maxpool3x3``,
then ``output``. As in nasbench's ``ModelSpec``, vertices that lie on no input->output path are pruned
on construction; the edge limit applies to the pruned cell. :attr:`NB101Arch.id` is the official module
hash (nasbench ``graph_util.hash_module``: iterated md5 over in/out-degree and op label), so two
isomorphic cells have the same id and compare equal.

**Text form** (:meth:`NB101Space.format` / :meth:`NB101Space.parse`): one line of JSON,
``{"matrix":[[0,1,...],...],"ops":["input",...,"output"]}``, of the *pruned* spec. ``parse`` also takes
a 32-hex module hash, looked up in the enumeration.

**Enumeration.** :func:`enumerate_space` lists every cell of the space once: 423,624 cells, each kept
in the form nasbench's ``generate_graphs.py`` sees first (fewest vertices, then smallest edge bitmask,
then first op labelling in ``itertools.product`` order). It is built once per cache dir
(``benchmarks.cache``); :func:`enumerate_space` says how it hashes only the 423,624 cells instead of
the 1.29 M (matrix, labelling) pairs the official generator hashes.

**Neighbour graph.** :func:`in_set_neighbours` gives the single-edit graph among a set of cells
(:meth:`NB101Space.neighbours` restricted to the set) without hashing: every edit is pruned and keyed by
its canonical form with numpy. :meth:`NB101Benchmark.neighbour_graph` caches it for the cells with data,
so walks inside a sparse table are integer lookups.

**Benchmark data.** With the official ``nasbench_only108.tfrecord`` / ``nasbench_full.tfrecord`` in
``<data root>/nb101/`` all 423,624 cells are queryable: 3 runs, valid and test, epochs 108 (or
4/12/36/108); ``seed`` 0..2 picks a run, ``seed=None`` is the mean of the 3 runs. Otherwise the
30,001-cell table ``nb101_vis_30001archs_val_4-12-36-108.csv`` is used: validation accuracy only, at
4/12/36/108 epochs, from **a single run, not a mean** (``seed=None`` and ``seed=0`` both return it);
test accuracy raises :class:`MissingEntryError`. Accuracies are exposed in percent (the files store
fractions), like NB201.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import permutations, product
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from benchmarks.base import ACCURACY, Benchmark, MetricSpec, SearchSpace, check_choice
from benchmarks.cache import ColumnTable, load_or_build
from nasrepro.errors import DataError, InvalidArchError, MissingEntryError, OutOfDomainError
from nasrepro.paths import data_root

if TYPE_CHECKING:
    from scipy.sparse import csr_array

INPUT, OUTPUT = "input", "output"
#: inner ops in nasbench's canonical order: their index is the label used by the module hash
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT_LABEL, OUTPUT_LABEL = -1, -2
MAX_VERTICES = 7
MAX_EDGES = 9
INNER_SPOTS = MAX_VERTICES - 2
SPACE_SIZE = 423_624
#: BANANAS path encoding: one slot per op sequence of length 0..5 (1 + 3 + ... + 3^5)
N_PATHS = sum(len(OPS) ** k for k in range(INNER_SPOTS + 1))  # 364
#: one-hot column of each op index (conv3x3, conv1x1, maxpool) in NASLib's adjacency encoding
_NASLIB_ONEHOT_COLUMN = np.array([1, 2, 0])
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
#: vertex pairs (x, y), x < y, in nasbench's edge-bitmask order: bit x + y(y-1)/2 (column-major)
_BIT_PAIRS = tuple((x, y) for y in range(MAX_VERTICES) for x in range(y))


# --------------------------------------------------------------------------------------------------
# The official module hash
# --------------------------------------------------------------------------------------------------
def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def module_hash(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """nasbench's ``hash_module``: a Weisfeiler-Lehman-style md5 fingerprint, invariant to relabelling.

    ``labels`` are -1 (input), -2 (output) or the index of the op in :data:`OPS`.
    """
    return _hasher(matrix)(labels)


def _hasher(matrix: Sequence[Sequence[int]]):
    """:func:`module_hash` for one matrix and any labelling (the enumeration hashes many per matrix)."""
    n = len(matrix)
    ins = [tuple(w for w in range(n) if matrix[w][v]) for v in range(n)]
    outs = [tuple(w for w in range(n) if matrix[v][w]) for v in range(n)]
    vertices = range(n)

    def hash_labels(labels: Sequence[int]) -> str:
        # str() of an (out-degree, in-degree, label) tuple of Python ints, exactly as the official code
        hashes = [_md5(str((len(outs[v]), len(ins[v]), int(labels[v])))) for v in vertices]
        for _ in vertices:
            hashes = [_md5("".join(sorted([hashes[w] for w in ins[v]])) + "|"
                           + "".join(sorted([hashes[w] for w in outs[v]])) + "|" + hashes[v])
                      for v in vertices]
        return _md5(str(sorted(hashes)))

    return hash_labels


# --------------------------------------------------------------------------------------------------
# Cell spec
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class NB101Arch:
    """One NB101 cell, validated and pruned on construction. Equality and ``hash()`` follow :attr:`id`."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    _id: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        matrix, ops = _validate_and_prune(self.matrix, self.ops)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "_id", module_hash(matrix, _labels(ops)))

    @classmethod
    def _trusted(cls, matrix: tuple[tuple[int, ...], ...], ops: tuple[str, ...], id_: str) -> "NB101Arch":
        """Build from an enumeration row (already valid, pruned and hashed) without re-hashing."""
        arch = object.__new__(cls)
        object.__setattr__(arch, "matrix", matrix)
        object.__setattr__(arch, "ops", ops)
        object.__setattr__(arch, "_id", id_)
        return arch

    @property
    def id(self) -> str:
        """The official 32-hex module hash."""
        return self._id

    @property
    def n_vertices(self) -> int:
        return len(self.ops)

    @property
    def n_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NB101Arch) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __str__(self) -> str:
        return self._id


def _labels(ops: Sequence[str]) -> list[int]:
    return [INPUT_LABEL] + [OPS.index(op) for op in ops[1:-1]] + [OUTPUT_LABEL]


def _validate_and_prune(matrix: Any, ops: Any) -> tuple[tuple[tuple[int, ...], ...], tuple[str, ...]]:
    """One clear :class:`InvalidArchError` per defect; returns the pruned (matrix, ops)."""
    try:
        m = np.asarray(matrix)
    except (TypeError, ValueError) as exc:
        raise InvalidArchError(f"NB101 matrix is not a numeric array: {exc}") from exc
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise InvalidArchError(f"NB101 matrix must be square, got shape {m.shape}")
    n = m.shape[0]
    if n > MAX_VERTICES:
        raise InvalidArchError(f"NB101 cell has {n} vertices; at most {MAX_VERTICES} allowed")
    if n < 2:
        raise InvalidArchError(f"NB101 cell needs at least input and output vertices, got {n}")
    if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
        raise InvalidArchError("NB101 matrix entries must be 0 or 1")
    m = m.astype(np.int8)
    if np.tril(m).any():
        raise InvalidArchError("NB101 matrix must be strictly upper-triangular (a DAG in topological "
                               "order); it has an entry on or below the diagonal (cycle or self-loop)")
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise InvalidArchError(f"NB101 ops must be a list of op names, got {ops!r}")
    ops = tuple(ops)
    if len(ops) != n:
        raise InvalidArchError(f"NB101 cell has {n} vertices but {len(ops)} ops")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise InvalidArchError(f"NB101 ops must start with {INPUT!r} and end with {OUTPUT!r}, "
                               f"got {list(ops)}")
    for op in ops[1:-1]:
        if op not in OPS:
            raise InvalidArchError(f"NB101: unknown op {op!r}; inner ops are {', '.join(OPS)}")
    # keep only vertices on some input -> output path (order is topological, so one sweep each way);
    # plain lists: this runs for every neighbour a local search looks at, numpy per-vertex ops cost more
    rows = m.tolist()
    from_input = [True] + [False] * (n - 1)
    for v in range(1, n):
        from_input[v] = any(rows[u][v] and from_input[u] for u in range(v))
    to_output = [False] * (n - 1) + [True]
    for v in range(n - 2, -1, -1):
        to_output[v] = any(rows[v][w] and to_output[w] for w in range(v + 1, n))
    if not from_input[n - 1]:
        raise InvalidArchError("NB101 cell has no path from input to output")
    keep = [v for v in range(n) if from_input[v] and to_output[v]]
    pruned = tuple(tuple(rows[u][v] for v in keep) for u in keep)
    n_edges = sum(map(sum, pruned))
    if n_edges > MAX_EDGES:
        raise InvalidArchError(f"NB101 cell has {n_edges} edges after pruning; at most {MAX_EDGES} allowed")
    return pruned, tuple(ops[i] for i in keep)


def from_labels(matrix: Any, labels: Sequence[int]) -> NB101Arch:
    """Build from nasbench-style integer labels (-1 input, -2 output, 0..2 ops; -3 padding is dropped)."""
    labels = [int(x) for x in labels]
    keep = [i for i, x in enumerate(labels) if x != -3]
    m = np.asarray(matrix)
    if m.ndim == 2 and m.shape[0] == m.shape[1] == len(labels):
        m = m[np.ix_(keep, keep)]
    names = {INPUT_LABEL: INPUT, OUTPUT_LABEL: OUTPUT, **dict(enumerate(OPS))}
    try:
        ops = [names[labels[i]] for i in keep]
    except KeyError as exc:
        raise InvalidArchError(f"NB101: unknown op label {exc.args[0]!r}") from exc
    return NB101Arch(m, ops)


def _padded(arch: NB101Arch) -> tuple[np.ndarray, np.ndarray]:
    """7x7 matrix and 7 labels, isolated padding vertices (label -3) inserted just before the output."""
    n = arch.n_vertices
    slots = list(range(n - 1)) + [MAX_VERTICES - 1]
    m = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
    m[np.ix_(slots, slots)] = arch.matrix
    labels = np.full(MAX_VERTICES, -3, dtype=np.int8)
    labels[slots] = _labels(arch.ops)
    return m, labels


# --------------------------------------------------------------------------------------------------
# Enumeration of the whole space
# --------------------------------------------------------------------------------------------------
ENUMERATION_VERSION = 1


def _bits_to_matrix(n: int, bits: int) -> tuple[tuple[int, ...], ...]:
    m = [[0] * n for _ in range(n)]
    for k, (x, y) in enumerate(_BIT_PAIRS[: n * (n - 1) // 2]):
        if bits >> k & 1:
            m[x][y] = 1
    return tuple(tuple(r) for r in m)


def _pruned_matrices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every edge bitmask of an n-vertex DAG that needs no pruning and has <= 9 edges, ascending.

    Returns (bits, edge indicator matrix (K, n(n-1)/2)). Needing no pruning = every vertex but the
    output has an out-edge and every vertex but the input has an in-edge (nasbench's ``is_full_dag``).
    """
    n_slots = n * (n - 1) // 2
    bits = np.arange(1 << n_slots, dtype=np.int64)
    edges = ((bits[:, None] >> np.arange(n_slots)) & 1).astype(np.int8)
    ok = edges.sum(1) <= MAX_EDGES
    bits, edges = bits[ok], edges[ok]
    m = np.zeros((len(bits), n, n), dtype=np.int8)
    for k, (x, y) in enumerate(_BIT_PAIRS[:n_slots]):
        m[:, x, y] = edges[:, k]
    full = (m[:, :n - 1, :].any(2).all(1)) & (m[:, :, 1:].any(1).all(1))
    return bits[full], edges[full]


def _inner_permutations(n: int) -> np.ndarray:
    """All vertex permutations of an n-vertex cell that fix input (0) and output (n-1); identity first."""
    inner = [list(p) for p in permutations(range(1, n - 1))]
    return np.array([[0] + p + [n - 1] for p in inner], dtype=np.int64)


def _classes(n: int) -> list[tuple[int, np.ndarray]]:
    """Unlabelled isomorphism classes of n-vertex cells: (smallest bitmask, automorphisms) per class.

    Each candidate's code under a permutation p is the bitmask of its relabelled matrix over all
    n*n entries; codes are sums of distinct powers of two below 2^49, so a float64 matrix product
    computes every (candidate, permutation) code exactly and fast.
    """
    bits, edges = _pruned_matrices(n)
    perms = _inner_permutations(n)
    n_slots = n * (n - 1) // 2
    weights = np.zeros((n_slots, len(perms)), dtype=np.float64)
    for k, (x, y) in enumerate(_BIT_PAIRS[:n_slots]):
        weights[k] = 2.0 ** (perms[:, x] * n + perms[:, y])
    codes = edges.astype(np.float64) @ weights
    canonical = codes.min(1)
    # bits ascend, so the first member of each class is its smallest bitmask (the generator's first)
    _, first = np.unique(canonical, return_index=True)
    out = []
    for i in np.sort(first):
        automorphisms = perms[codes[i] == codes[i, 0]]
        out.append((int(bits[i]), automorphisms))
    return out


def _labelled_representatives(n: int, automorphisms: np.ndarray) -> np.ndarray:
    """Op labellings of one matrix, one per orbit under its automorphisms: the first in product order."""
    inner = n - 2
    combos = list(product(range(len(OPS)), repeat=inner))
    labellings = np.array(combos, dtype=np.int64).reshape(len(combos), inner)
    place = len(OPS) ** np.arange(inner - 1, -1, -1)  # product order = base-3, first op most significant
    own = labellings @ place
    # the labelling carried by vertex v after relabelling by p is the one of p^-1(v); over a group
    # the set of images is the same either way, so p[1:-1] - 1 indexes inner vertices directly
    images = np.stack([labellings[:, p[1:-1] - 1] @ place for p in automorphisms], axis=1)
    return labellings[own == images.min(1)]


def _hash_batch(job: tuple[int, int, np.ndarray]) -> list[str]:
    n, bits, labellings = job
    hash_labels = _hasher(_bits_to_matrix(n, bits))
    return [hash_labels([INPUT_LABEL, *row, OUTPUT_LABEL]) for row in labellings.tolist()]


def enumerate_space(workers: int | None = None) -> dict[str, np.ndarray]:
    """Every NB101 cell once, sorted by hash: columns ``hash`` (S32), ``n_vertices``, ``bits`` (nasbench
    edge bitmask, bit x + y(y-1)/2 for edge x->y) and ``ops`` (op index per inner vertex, -1 = none).

    Only matrices that need no pruning are considered, grouped into isomorphism classes with numpy;
    per class only one labelling per automorphism orbit is hashed, so exactly the 423,624 cells go
    through the (slow, pure-Python) official hash, spread over ``workers`` processes (default: all
    usable cores).
    """
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = []
    for n in range(2, MAX_VERTICES + 1):
        for bits, automorphisms in _classes(n):
            jobs.append((n, bits, _labelled_representatives(n, automorphisms)))
    # fork, not spawn: spawn re-imports the caller's __main__ (breaks scripts without a main guard,
    # stdin and notebooks); the forked workers only run hashlib, so inherited thread locks are harmless
    if workers > 1 and "fork" in get_all_start_methods():
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            hashes = list(pool.map(_hash_batch, jobs, chunksize=64))
    else:
        hashes = [_hash_batch(job) for job in jobs]
    total = sum(len(j[2]) for j in jobs)
    out = {"hash": np.empty(total, dtype="S32"), "n_vertices": np.empty(total, dtype=np.uint8),
           "bits": np.empty(total, dtype=np.uint32),
           "ops": np.full((total, INNER_SPOTS), -1, dtype=np.int8)}
    row = 0
    for (n, bits, labellings), batch in zip(jobs, hashes):
        k = len(labellings)
        out["hash"][row:row + k] = batch
        out["n_vertices"][row:row + k] = n
        out["bits"][row:row + k] = bits
        out["ops"][row:row + k, :n - 2] = labellings
        row += k
    # jobs are in generator order, so a stable sort plus "first of each hash" keeps the generator's
    # choice even if two non-isomorphic cells ever shared a hash (none do in this space)
    order = np.argsort(out["hash"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    first = np.ones(total, dtype=bool)
    first[1:] = out["hash"][1:] != out["hash"][:-1]
    return {k: np.ascontiguousarray(v[first]) for k, v in out.items()}


def _build_enumeration(sources: Mapping[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
    columns = enumerate_space()
    if len(columns["hash"]) != SPACE_SIZE:
        raise DataError(f"nb101: enumeration found {len(columns['hash'])} cells, expected {SPACE_SIZE}")
    return columns, {}


class Enumeration:
    """The cached list of all cells: hash <-> row lookups (rows sorted by hash)."""

    def __init__(self, table: ColumnTable):
        self.table = table
        self.hashes = np.asarray(table["hash"])
        self.n_vertices = np.asarray(table["n_vertices"])
        self.bits = np.asarray(table["bits"])
        self.ops = np.asarray(table["ops"])

    @classmethod
    def load(cls) -> "Enumeration":
        return cls(load_or_build("nb101-space", {}, _build_enumeration, version=ENUMERATION_VERSION))

    def __len__(self) -> int:
        return len(self.hashes)

    def rows(self, hashes: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row of each hash; -1 where the hash is not a cell of the space (or not a 32-hex string)."""
        wellformed = np.array([isinstance(h, str) and bool(_HEX32.match(h)) for h in hashes], dtype=bool)
        keys = np.array([h if ok else "" for h, ok in zip(hashes, wellformed)], dtype="S32")
        pos = np.searchsorted(self.hashes, keys)
        pos_clipped = np.minimum(pos, len(self.hashes) - 1)
        return np.where(wellformed & (self.hashes[pos_clipped] == keys), pos_clipped, -1)

    def arch(self, row: int) -> NB101Arch:
        n = int(self.n_vertices[row])
        ops = (INPUT, *(OPS[o] for o in self.ops[row, :n - 2]), OUTPUT)
        return NB101Arch._trusted(_bits_to_matrix(n, int(self.bits[row])), ops, self.hashes[row].decode())

    def from_hash(self, text: str) -> NB101Arch:
        row = int(self.rows([text])[0])
        if row < 0:
            raise OutOfDomainError(f"nb101: {text} is not the module hash of any cell of the space")
        return self.arch(row)


# --------------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------------
#: neighbourhoods kept by an NB101Space (about 30 cells each)
NEIGHBOUR_CACHE_SIZE = 20_000


class NB101Space(SearchSpace):
    """The NB101 cell space. ``sample`` follows nasbench/NASLib: each of the 21 upper-triangular edges is
    on with probability 1/2 and each of the 5 inner ops uniform, redrawn until the pruned cell is valid.
    That is *not* uniform over the 423,624 cells (large cells are favoured); use
    :meth:`sample_uniform` for a uniform draw (needs the cached enumeration)."""

    name = "nb101"
    encodings = ("adjacency_onehot", "path")

    def __init__(self) -> None:
        self._enumeration: Enumeration | None = None
        # relabellings of the inner vertices of a padded cell, for :meth:`distance`
        self._perms = _inner_permutations(MAX_VERTICES)
        # cell -> neighbours: building them prunes and hashes ~30 cells, and evolution in a sparse pool asks
        # for the same parents' neighbourhoods again and again (cleared when full; never pickled)
        self._neighbour_cache: dict[tuple, tuple[NB101Arch, ...]] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_neighbour_cache": {}}

    @property
    def enumeration(self) -> Enumeration:
        if self._enumeration is None:
            self._enumeration = Enumeration.load()
        return self._enumeration

    def parse(self, text: str) -> NB101Arch:
        if not isinstance(text, str):
            raise InvalidArchError(f"NB101 arch must be a string, got {type(text).__name__}")
        text = text.strip()
        if _HEX32.match(text):
            return self.enumeration.from_hash(text)
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InvalidArchError(f"NB101 arch {text[:80]!r}: neither a module hash nor JSON "
                                   f"({exc})") from exc
        if not isinstance(obj, dict) or set(obj) != {"matrix", "ops"}:
            raise InvalidArchError(f"NB101 arch {text[:80]!r}: want {{\"matrix\": [[...]], \"ops\": [...]}}")
        return NB101Arch(obj["matrix"], obj["ops"])

    def format(self, arch: NB101Arch) -> str:
        return json.dumps({"matrix": [list(r) for r in arch.matrix], "ops": list(arch.ops)},
                          separators=(",", ":"))

    def sample(self, rng: np.random.Generator) -> NB101Arch:
        while True:
            matrix = np.triu(rng.integers(0, 2, size=(MAX_VERTICES, MAX_VERTICES)), k=1)
            inner = rng.integers(len(OPS), size=INNER_SPOTS)
            try:
                return NB101Arch(matrix, [INPUT, *(OPS[i] for i in inner), OUTPUT])
            except InvalidArchError:
                continue

    def sample_uniform(self, rng: np.random.Generator) -> NB101Arch:
        """One cell drawn uniformly from the 423,624."""
        return self.enumeration.arch(int(rng.integers(len(self.enumeration))))

    def neighbours(self, arch: NB101Arch) -> list[NB101Arch]:
        """Every valid cell one edit away: flip one edge of the (pruned) matrix or change one inner op.

        Padding a smaller cell with isolated vertices adds no neighbours: one edge to or from an isolated
        vertex never puts it on an input->output path, so that edit prunes back to ``arch``.
        """
        # keyed by the representation, not the id: isomorphic matrices (one id) list their neighbours in
        # different orders, and the order decides which mutation a generator draw picks
        key = (arch.matrix, arch.ops)
        cached = self._neighbour_cache.get(key)
        if cached is None:
            if len(self._neighbour_cache) >= NEIGHBOUR_CACHE_SIZE:
                self._neighbour_cache.clear()
            cached = self._neighbour_cache[key] = tuple(self._build_neighbours(arch))
        return list(cached)

    def _build_neighbours(self, arch: NB101Arch) -> list[NB101Arch]:
        n = arch.n_vertices
        seen = {arch.id}
        out = []

        def consider(matrix: Any, ops: Sequence[str]) -> None:
            try:
                cand = NB101Arch(matrix, ops)
            except InvalidArchError:
                return
            if cand.id not in seen:
                seen.add(cand.id)
                out.append(cand)

        base = np.array(arch.matrix, dtype=np.int8)
        for x, y in _BIT_PAIRS[: n * (n - 1) // 2]:
            flipped = base.copy()
            flipped[x, y] ^= 1
            consider(flipped, arch.ops)
        for v in range(1, n - 1):
            for op in OPS:
                if op != arch.ops[v]:
                    consider(base, arch.ops[:v] + (op,) + arch.ops[v + 1:])
        return out

    def mutate(self, arch: NB101Arch, rng: np.random.Generator) -> NB101Arch:
        """A uniform draw among :meth:`neighbours`. The bare input->output cell has none (every single
        edit is invalid or prunes back to it), so it mutates into a fresh :meth:`sample` instead."""
        options = self.neighbours(arch)
        if options:
            return options[int(rng.integers(len(options)))]
        while (other := self.sample(rng)) == arch:
            continue
        return other

    def encode(self, archs: Sequence[NB101Arch], encoding: str = "adjacency_onehot") -> np.ndarray:
        """``adjacency_onehot`` (NASLib's ``encode_adj``): the 21 upper-triangle entries of the 7x7 matrix
        (row-major), then per inner vertex a one-hot in NASLib's column order (maxpool3x3, conv3x3,
        conv1x1), 36 columns. Smaller cells are padded with isolated vertices inserted just before the
        output, with an all-zero one-hot (NASLib's "MISSING_OP"; NASLib puts them at random places).
        ``path``: BANANAS' path encoding, 364 columns, one per op sequence a path input->output can
        carry; column = sum_i 3^i (op_i + 1) over the path's ops (0 = the direct input->output edge)."""
        check_choice("encoding", encoding, self.encodings, self.name)
        row_of = self._adjacency_onehot if encoding == "adjacency_onehot" else self._paths
        rows = [row_of(a) for a in archs]
        width = 21 + INNER_SPOTS * len(OPS) if encoding == "adjacency_onehot" else N_PATHS
        return np.array(rows, dtype=np.float32).reshape(len(rows), width)

    @staticmethod
    def _adjacency_onehot(arch: NB101Arch) -> np.ndarray:
        m, labels = _padded(arch)
        upper = m[np.triu_indices(MAX_VERTICES, k=1)]
        onehot = np.zeros((INNER_SPOTS, len(OPS)), dtype=np.float32)
        inner = labels[1:-1]
        real = inner >= 0
        onehot[np.flatnonzero(real), _NASLIB_ONEHOT_COLUMN[inner[real]]] = 1.0
        return np.concatenate([upper.astype(np.float32), onehot.ravel()])

    @staticmethod
    def _paths(arch: NB101Arch) -> np.ndarray:
        n = arch.n_vertices
        labels = _labels(arch.ops)
        # index of every path from the input to vertex v, and its length, built in topological order
        paths: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        paths[0] = [(0, 0)]
        for v in range(1, n):
            for u in range(v):
                if arch.matrix[u][v]:
                    if u == 0:
                        paths[v].extend(paths[0])
                    else:
                        paths[v].extend((idx + 3 ** depth * (labels[u] + 1), depth + 1)
                                        for idx, depth in paths[u])
        enc = np.zeros(N_PATHS, dtype=np.float32)
        enc[[idx for idx, _ in paths[n - 1]]] = 1.0
        return enc

    def distance(self, a: NB101Arch, b: NB101Arch) -> int:
        """Least number of edge flips plus op changes between the two cells padded to 7 vertices, over all
        matchings of their inner vertices (padding counts as a label of its own). 0 iff a == b; a
        metric on cells; a lower bound on the :meth:`neighbours` path length (which forbids invalid
        intermediate cells)."""
        ma, la = _padded(a)
        mb, lb = _padded(b)
        p = self._perms
        permuted = mb[p[:, :, None], p[:, None, :]]  # (120, 7, 7): b relabelled by each permutation
        edge_diff = (permuted != ma).sum(axis=(1, 2))
        op_diff = (lb[p] != la).sum(axis=1)
        return int((edge_diff + op_diff).min())

    @property
    def size(self) -> int:
        return SPACE_SIZE


# --------------------------------------------------------------------------------------------------
# Neighbour graph of a set of cells (e.g. the cells with data), vectorised
# --------------------------------------------------------------------------------------------------
#: bump when the graph's meaning or layout changes, so cached graphs are rebuilt
NEIGHBOUR_GRAPH_VERSION = 1
#: candidate edits per chunk of the canonical-key computation (bounds memory: chunk x 120 float64)
_KEY_CHUNK = 20_000
#: label code of a padding vertex (ops are 0..2)
_PAD_LABEL = 3


def cell_columns(archs: Sequence[NB101Arch]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n_vertices, bits, ops)`` of each cell in the enumeration's column layout (bit x + y(y-1)/2 for
    edge x->y; op index per inner vertex, -1 = none)."""
    n_vertices = np.array([a.n_vertices for a in archs], dtype=np.uint8)
    bits = np.zeros(len(archs), dtype=np.uint32)
    ops = np.full((len(archs), INNER_SPOTS), -1, dtype=np.int8)
    for i, arch in enumerate(archs):
        n = arch.n_vertices
        bits[i] = sum(arch.matrix[x][y] << k for k, (x, y) in enumerate(_BIT_PAIRS[: n * (n - 1) // 2]))
        ops[i, :n - 2] = [OPS.index(op) for op in arch.ops[1:-1]]
    return n_vertices, bits, ops


def _padded_columns(n_vertices: np.ndarray, bits: np.ndarray,
                    ops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells as 7x7 matrices ``[N, 7, 7]`` and inner labels ``[N, 5]`` (op index, 3 = padding), as
    :func:`_padded` lays them out (padding just before the output), plus the slot of every real vertex
    ``[N, 7]`` (-1 where the cell has fewer vertices)."""
    count = len(n_vertices)
    matrices = np.zeros((count, MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
    labels = np.full((count, INNER_SPOTS), _PAD_LABEL, dtype=np.int8)
    slots = np.full((count, MAX_VERTICES), -1, dtype=np.int8)
    for n in np.unique(n_vertices):
        n = int(n)
        group = np.flatnonzero(n_vertices == n)
        slot = np.array(list(range(n - 1)) + [MAX_VERTICES - 1])
        slots[group, :n] = slot
        for k, (x, y) in enumerate(_BIT_PAIRS[: n * (n - 1) // 2]):
            matrices[group, slot[x], slot[y]] = (bits[group] >> k) & 1
        labels[group, :n - 2] = ops[group, :n - 2]
    return matrices, labels, slots


def _single_edits(matrices: np.ndarray, labels: np.ndarray,
                  slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every single edit :meth:`NB101Space.neighbours` tries (flip one edge between the cell's vertices,
    or change one inner op), unpruned: ``(source cell, matrices, labels)``."""
    sources, out_m, out_l = [], [], []
    cells = np.arange(len(matrices))
    for x, y in _BIT_PAIRS:  # both ends must be real vertices of the cell (padding adds no neighbours)
        has = (slots[:, x] >= 0) & (slots[:, y] >= 0)
        m = matrices[has].copy()
        rows = np.arange(len(m))
        m[rows, slots[has, x], slots[has, y]] ^= 1
        sources.append(cells[has]), out_m.append(m), out_l.append(labels[has])
    for v in range(INNER_SPOTS):
        real = labels[:, v] != _PAD_LABEL
        for shift in (1, 2):
            lab = labels[real].copy()
            lab[:, v] = (lab[:, v] + shift) % len(OPS)
            sources.append(cells[real]), out_m.append(matrices[real]), out_l.append(lab)
    return np.concatenate(sources), np.concatenate(out_m), np.concatenate(out_l)


def _prune(matrices: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`_validate_and_prune` on padded cells: vertices on no input->output path become
    padding (no edges, label 3). Returns (matrices, labels, valid): valid = the output is reachable and
    the pruned cell has at most 9 edges. Slots are in topological order, so one sweep each way."""
    count = len(matrices)
    from_input = np.zeros((count, MAX_VERTICES), dtype=bool)
    from_input[:, 0] = True
    for v in range(1, MAX_VERTICES):
        from_input[:, v] = (matrices[:, :v, v].astype(bool) & from_input[:, :v]).any(1)
    to_output = np.zeros((count, MAX_VERTICES), dtype=bool)
    to_output[:, -1] = True
    for v in range(MAX_VERTICES - 2, -1, -1):
        to_output[:, v] = (matrices[:, v, v + 1:].astype(bool) & to_output[:, v + 1:]).any(1)
    keep = from_input & to_output
    matrices = matrices * (keep[:, :, None] & keep[:, None, :])
    labels = np.where(keep[:, 1:-1], labels, _PAD_LABEL).astype(np.int8)
    valid = from_input[:, -1] & (matrices.sum(axis=(1, 2)) <= MAX_EDGES)
    return matrices, labels, valid


def canonical_keys(matrices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One int64 per padded cell, equal iff the cells are isomorphic (the same module hash in this space):
    the smallest code of the cell over all 120 relabellings of its inner slots, code = 49-bit edge mask
    of the relabelled 7x7 matrix, then 2 bits per inner label (10 bits). Edge codes are sums of distinct
    powers of two below 2^49, so the float64 matrix product is exact (as in :func:`_classes`)."""
    perms = _inner_permutations(MAX_VERTICES)
    upper = np.triu_indices(MAX_VERTICES, k=1)
    edge_weights = 2.0 ** (perms[:, upper[0]] * MAX_VERTICES + perms[:, upper[1]]).T  # [21, 120]
    label_weights = 4.0 ** (perms[:, 1:-1] - 1).T  # [5, 120]: label of slot v lands on slot p[v]
    edges = matrices[:, upper[0], upper[1]].astype(np.float64)
    labels = labels.astype(np.float64)
    keys = np.empty(len(matrices), dtype=np.int64)
    for start in range(0, len(matrices), _KEY_CHUNK):
        part = slice(start, start + _KEY_CHUNK)
        codes = ((edges[part] @ edge_weights).astype(np.int64) << 10) + (labels[part] @ label_weights).astype(np.int64)
        keys[part] = codes.min(axis=1)
    return keys


def in_set_neighbours(n_vertices: np.ndarray, bits: np.ndarray, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The single-edit graph among a set of cells (given in the enumeration's columns), as CSR arrays
    ``(indptr, indices)``: the neighbours of cell ``i`` that are in the set are the cells
    ``indices[indptr[i]:indptr[i + 1]]`` (ascending). Exactly :meth:`NB101Space.neighbours` restricted
    to the set, but without hashing: every edit is pruned and given a canonical key with numpy, and
    looked up among the set's keys (30,001 cells: seconds instead of minutes)."""
    matrices, labels, slots = _padded_columns(n_vertices, bits, ops)
    set_keys = canonical_keys(matrices, labels)
    order = np.argsort(set_keys, kind="stable")
    sorted_keys = set_keys[order]
    if (sorted_keys[1:] == sorted_keys[:-1]).any():
        raise DataError("nb101: two cells of the set are the same cell (isomorphic)")
    sources, edit_m, edit_l = _single_edits(matrices, labels, slots)
    edit_m, edit_l, valid = _prune(edit_m, edit_l)
    sources, edit_m, edit_l = sources[valid], edit_m[valid], edit_l[valid]
    keys = canonical_keys(edit_m, edit_l)
    where = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    found = sorted_keys[where] == keys
    targets = order[where[found]]
    sources = sources[found]
    not_self = targets != sources  # an edit that prunes back to the cell itself is no neighbour
    pairs = np.unique(sources[not_self].astype(np.int64) * len(n_vertices) + targets[not_self])
    sources, targets = np.divmod(pairs, len(n_vertices))
    indptr = np.zeros(len(n_vertices) + 1, dtype=np.int64)
    np.cumsum(np.bincount(sources, minlength=len(n_vertices)), out=indptr[1:])
    return indptr, targets.astype(np.int32)


def _build_neighbour_graph(sources: Mapping[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
    rows = np.load(sources["rows_with_data"], allow_pickle=False)
    enum = Enumeration.load()
    indptr, indices = in_set_neighbours(enum.n_vertices[rows], enum.bits[rows], enum.ops[rows])
    return {"indptr": indptr, "indices": indices}, {}


# --------------------------------------------------------------------------------------------------
# Tabular benchmark
# --------------------------------------------------------------------------------------------------
VIS_CSV = "nb101/nb101_vis_30001archs_val_4-12-36-108.csv"
TFRECORDS = ("nb101/nasbench_full.tfrecord", "nb101/nasbench_only108.tfrecord")
EPOCHS = (4, 12, 36, 108)
N_RUNS = 3
TABLE_VERSION = 1


def _build_vis(sources: Mapping[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
    """The 30,001-row validation table, spread onto enumeration rows (NaN where a cell has no data)."""
    enum = Enumeration.load()
    path = sources["table"]
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        hashes = [r["hash"] for r in rows]
        malformed = [h for h in hashes if not _HEX32.match(h)]
        if malformed:
            raise DataError(f"{path}: {malformed[0]!r} is not a 32-hex module hash")
        where = enum.rows(hashes)
        if (where < 0).any():
            bad = hashes[int(np.flatnonzero(where < 0)[0])]
            raise DataError(f"{path}: hash {bad} is not a cell of the NB101 space")
        if len(np.unique(where)) != len(where):
            raise DataError(f"{path}: duplicate hashes")
        cols: dict[str, np.ndarray] = {}

        def spread(values: list[float], scale: float = 1.0) -> np.ndarray:
            out = np.full(len(enum), np.nan)
            out[where] = np.array(values, dtype=np.float64) * scale
            return out

        for ep in EPOCHS:
            cols[f"valid.{ep}"] = spread([float(r[f"val_acc_{ep}ep"]) for r in rows], 100.0)
        cols["train_time.108"] = spread([float(r["final_training_time_108ep_s"]) for r in rows])
        cols["params"] = spread([float(r["trainable_parameters"]) for r in rows])
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: malformed NB101 table ({type(exc).__name__}: {exc})") from exc
    cols["rows_with_data"] = np.sort(where).astype(np.int32)
    return cols, {"strings": {"kind": "vis", "epochs": list(EPOCHS), "runs": 1, "test": False}}


def _build_tfrecord(sources: Mapping[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
    """All records of an official tfrecord: per run, valid/test accuracy and training time per epoch."""
    from benchmarks.formats.nb101_tfrecord import read_records

    enum = Enumeration.load()
    path = sources["tfrecord"]
    n = len(enum)
    runs: dict[tuple[int, str], np.ndarray] = {}
    filled: dict[tuple[int, int], int] = {}  # (row, epochs) -> runs seen so far
    params = np.full(n, np.nan)
    for record in read_records(path):
        row = int(enum.rows([record.module_hash])[0])
        if row < 0:
            raise DataError(f"{path}: record {record.index}: hash {record.module_hash} is not a cell "
                            f"of the NB101 space")
        ep = record.epochs
        if ep not in EPOCHS:
            raise DataError(f"{path}: record {record.index}: unexpected epoch budget {ep}")
        slot = filled.get((row, ep), 0)
        if slot >= N_RUNS:
            raise DataError(f"{path}: record {record.index}: more than {N_RUNS} runs of {record.module_hash}")
        filled[(row, ep)] = slot + 1
        final = record.metrics.final
        for metric, value in (("valid", final.validation_accuracy * 100.0),
                              ("test", final.test_accuracy * 100.0),
                              ("train_time", final.training_time)):
            col = runs.setdefault((ep, metric), np.full((n, N_RUNS), np.nan))
            col[row, slot] = value
        params[row] = record.metrics.trainable_parameters
    if not runs:
        raise DataError(f"{path}: no records")
    cols: dict[str, np.ndarray] = {"params": params}
    epochs = sorted({ep for ep, _ in runs})
    for (ep, metric), col in runs.items():
        cols[f"{metric}.{ep}.seeds"] = col
        cols[f"{metric}.{ep}"] = _mean_where_present(col)
    cols["rows_with_data"] = np.flatnonzero(~np.isnan(params)).astype(np.int32)
    return cols, {"strings": {"kind": "tfrecord", "epochs": epochs, "runs": N_RUNS, "test": True}}


def _mean_where_present(col: np.ndarray) -> np.ndarray:
    out = np.full(len(col), np.nan)
    present = ~np.isnan(col).all(1)
    out[present] = np.nanmean(col[present], axis=1)
    return out


class NB101Benchmark(Benchmark):
    """NAS-Bench-101 on CIFAR-10, from the official tfrecord if present, else the 30,001-cell table."""

    name = "nb101"
    datasets = ("cifar10",)

    def __init__(self, table: ColumnTable, space: NB101Space | None = None):
        self.space = space or NB101Space()
        self.table = table
        info = table.strings
        self.kind = info["kind"]
        self.epochs = tuple(info["epochs"])
        self.n_runs = int(info["runs"])
        self.has_test = bool(info["test"])
        self._rows_with_data = np.asarray(table["rows_with_data"])
        self._archs: list[NB101Arch] | None = None
        if self.kind == "vis":
            self.label = "NB101 30,001-cell validation table (single run, no test accuracy)"

    @classmethod
    def load(cls, root: Path | None = None) -> "NB101Benchmark":
        root = root or data_root()
        for name in TFRECORDS:
            if (root / name).is_file():
                return cls(load_or_build("nb101-tfrecord", {"tfrecord": root / name}, _build_tfrecord,
                                         version=TABLE_VERSION))
        return cls(load_or_build("nb101-vis", {"table": root / VIS_CSV}, _build_vis, version=TABLE_VERSION))

    # -- architecture -> row --------------------------------------------------------------------------
    def _hash_of(self, arch: Any) -> str:
        if isinstance(arch, NB101Arch):
            return arch.id
        if isinstance(arch, str):
            text = arch.strip()
            return text if _HEX32.match(text) else self.space.parse(text).id
        raise InvalidArchError(f"nb101: not an NB101 architecture: {arch!r}")

    def rows(self, archs: Sequence[Any]) -> np.ndarray:
        """Enumeration row of each architecture (spec, module hash, or JSON text)."""
        hashes = [self._hash_of(a) for a in archs]
        rows = self.space.enumeration.rows(hashes)
        if (rows < 0).any():
            bad = hashes[int(np.flatnonzero(rows < 0)[0])]
            raise OutOfDomainError(f"nb101: {bad} is not the module hash of any cell of the space")
        return rows

    def has_data(self, arch: Any) -> bool:
        row = int(self.rows([arch])[0])
        i = np.searchsorted(self._rows_with_data, row)
        return bool(i < len(self._rows_with_data) and self._rows_with_data[i] == row)

    def archs_with_data(self) -> list[NB101Arch]:
        if self._archs is None:
            enum = self.space.enumeration
            self._archs = [enum.arch(int(r)) for r in self._rows_with_data]
        return list(self._archs)

    def neighbour_graph(self) -> csr_array:
        """The single-edit graph among the cells with data: node ``i`` is ``archs_with_data()[i]``; row
        ``i``'s columns are its neighbours (:meth:`NB101Space.neighbours`) that have data. Built once per
        table (keyed by the sha256 of its list of cells with data), so walks within the cells with data
        are integer lookups instead of ~5 ms of pruning and hashing per step."""
        from scipy.sparse import csr_array

        cells = self.table.folder / "rows_with_data.npy"
        graph = load_or_build("nb101-neighbours", {"rows_with_data": cells}, _build_neighbour_graph,
                              version=NEIGHBOUR_GRAPH_VERSION)
        n = len(self._rows_with_data)
        indices = np.asarray(graph["indices"])
        return csr_array((np.ones(len(indices), dtype=bool), indices, np.asarray(graph["indptr"])), shape=(n, n))

    def data_sha256(self) -> dict[str, str]:
        return {k: v["sha256"] for k, v in self.table.meta["sources"].items()}

    # -- queries --------------------------------------------------------------------------------------
    def _column(self, dataset: str, metric: str, split: str | None, epoch: int | None, seed: int | None,
                device: str | None) -> tuple[np.ndarray, int | None]:
        """Map a query onto (column, run slot). Every quirk of the two data sources lives here."""
        ds = self.check_dataset(dataset)
        check_choice("metric", metric, ("accuracy", "train_time", "params"), self.name)
        where = f"{self.name}/{ds}/{metric}"
        if device is not None:
            raise OutOfDomainError(f"{where}: takes no device (got {device!r})")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)
                                 or not 0 <= seed < N_RUNS):
            raise OutOfDomainError(f"{where}: seed must be None or a run 0..{N_RUNS - 1}, got {seed!r}")
        if metric != ACCURACY and split is not None:
            raise OutOfDomainError(f"{where}: takes no split (got {split!r})")
        if metric == "params":
            if epoch is not None:
                raise OutOfDomainError(f"{where}: takes no epoch")
            if seed is not None:
                raise OutOfDomainError(f"{where}: has no per-run values (got seed {seed!r})")
            return self.table["params"], None
        check_choice("epoch", epoch, (None, *EPOCHS), where)
        ep = max(self.epochs) if epoch is None else int(epoch)
        if ep not in self.epochs:
            raise MissingEntryError(f"{where}: epoch {ep} is not in this copy (it has {self.epochs})")
        if metric == ACCURACY:
            check_choice("split", split, ("valid", "test"), where)
            if split == "test" and not self.has_test:
                raise MissingEntryError(f"{where}: test accuracy is not in this copy of NB101 (only the "
                                        f"30,001-cell validation table; add nasbench_only108.tfrecord)")
            name = f"{split}.{ep}"
        else:
            name = f"train_time.{ep}"
            if name not in self.table:
                raise MissingEntryError(f"{where}: training time is only recorded for 108 epochs here")
        if seed is None:
            return self.table[name], None
        if self.n_runs == 1:
            if seed != 0:
                raise MissingEntryError(f"{where}: this copy holds a single run (seed 0), not run {seed}")
            return self.table[name], None
        return self.table[f"{name}.seeds"], int(seed)

    def query(self, arch: Any, dataset: str, metric: str = ACCURACY, split: str | None = "valid",
              epoch: int | None = None, seed: int | None = None, device: str | None = None) -> float:
        return float(self.query_many([arch], dataset, metric, split, epoch, seed, device)[0])

    def query_many(self, archs: Sequence[Any] | np.ndarray, dataset: str, metric: str = ACCURACY,
                   split: str | None = "valid", epoch: int | None = None, seed: int | None = None,
                   device: str | None = None) -> np.ndarray:
        """Vectorised; ``archs`` may be specs, module hashes, JSON texts, or an int array of
        enumeration rows (:meth:`rows`)."""
        column, slot = self._column(dataset, metric, split, epoch, seed, device)
        if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu":
            if archs.size and (archs.min() < 0 or archs.max() >= SPACE_SIZE):
                raise OutOfDomainError(f"nb101: enumeration row outside 0..{SPACE_SIZE - 1}")
            rows = archs.astype(np.int64)
        else:
            rows = self.rows(archs)
        values = np.asarray(column[rows] if slot is None else column[rows, slot], dtype=np.float64)
        if np.isnan(values).any():
            missing = int(rows[np.isnan(values)][0])
            raise MissingEntryError(
                f"nb101: no {metric} data for cell {self.space.enumeration.hashes[missing].decode()} "
                f"(and {int(np.isnan(values).sum()) - 1} more): this copy holds "
                f"{len(self._rows_with_data):,} of the {SPACE_SIZE:,} cells")
        return values

    def describe(self) -> list[MetricSpec]:
        runs = "single run (seed None = seed 0), not a mean" if self.n_runs == 1 else \
            f"mean of {self.n_runs} runs (seed None) or one run 0..{self.n_runs - 1}"
        seeds = "mean" if self.n_runs == 1 else "mean+per-seed"
        out = [MetricSpec("cifar10", "accuracy", "valid", self.epochs, seeds, f"percent; {runs}")]
        if self.has_test:
            out.append(MetricSpec("cifar10", "accuracy", "test", self.epochs, seeds, f"percent; {runs}"))
        time_epochs = tuple(ep for ep in self.epochs if f"train_time.{ep}" in self.table)
        out.append(MetricSpec("cifar10", "train_time", None, time_epochs, seeds, "seconds"))
        out.append(MetricSpec("cifar10", "params", None, (), "mean", "trainable parameters (count)"))
        return out

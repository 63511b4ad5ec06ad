"""The DARTS cell search space (Liu et al., 2019), as used by DARTS, DrNAS and NAS-Bench-301.

An architecture is a pair of cells, *normal* and *reduction*. Each cell has two input nodes (0 and 1:
the outputs of the two previous cells) and four intermediate nodes (2..5); intermediate node ``k``
(``k = 0..3``, graph node ``k + 2``) sums two ops applied to two *distinct* earlier nodes (input index
``< k + 2``). The cell output concatenates nodes 2..5. Every edge carries one of the 7 ops of
:data:`CELL_OPS` (the DARTS ``PRIMITIVES`` without ``none``: a derived genotype never uses ``none``).

Text form: the ``Genotype`` namedtuple repr of the DARTS / DrNAS code::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=range(2, 6),
             reduce=[...], reduce_concat=range(2, 6))

``normal_concat=[2, 3, 4, 5]`` is accepted too. Parsing walks the Python syntax tree and reads only
literals (``ast.literal_eval`` on the parts): nothing is ever evaluated.

Canonical form: the two (op, input) pairs of each node are sorted (the node sums them, so the order
carries no meaning); a :class:`DartsArch` stores that form, so equivalent genotypes compare equal and
share one :attr:`DartsArch.id`. Cells that are isomorphic under a renumbering of intermediate nodes are
*not* merged: the concat order (and so the channel order) differs, and NB301 does not merge them either.

Size: node ``k`` chooses an unordered pair of distinct inputs among ``k + 2`` (``C(k+2, 2)`` ways) and an
op for each of the two edges (7 * 7), so a cell has ``1 * 3 * 6 * 10 * 49**4 = 1,037,664,180`` canonical
forms and the pair of cells ``1,037,664,180**2 ~= 1.08e18``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from itertools import combinations
from math import comb, prod
from typing import Any, Sequence

import numpy as np

from benchmarks.base import SearchSpace, check_choice
from nasrepro.errors import InvalidArchError

#: DARTS ``PRIMITIVES`` in the order of the DARTS / DrNAS code (index 0 is the zero op)
PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
              "dil_conv_3x3", "dil_conv_5x5")
#: ops a derived genotype may use
CELL_OPS = PRIMITIVES[1:]
CELL_TYPES = ("normal", "reduce")
N_NODES = 4  # intermediate nodes per cell
N_INPUTS = 2  # the two cell inputs (outputs of the two previous cells)
EDGES_PER_NODE = 2
#: first candidate-edge index of each intermediate node: node k owns edges OFFSET[k] + input, input < k + 2
#: (the NB301 / NASLib edge numbering: 2 + 3 + 4 + 5 = 14 candidate edges per cell)
EDGE_OFFSET = tuple(sum(N_INPUTS + j for j in range(k)) for k in range(N_NODES))  # (0, 2, 5, 9)
N_CANDIDATE_EDGES = EDGE_OFFSET[-1] + N_INPUTS + N_NODES - 1  # 14
CONCAT = tuple(range(N_INPUTS, N_INPUTS + N_NODES))  # (2, 3, 4, 5)
CELL_SIZE = prod(comb(N_INPUTS + k, 2) * len(CELL_OPS) ** 2 for k in range(N_NODES))
SPACE_SIZE = CELL_SIZE ** 2
#: longest text :func:`parse` accepts (a genotype is ~400 characters; this keeps the parser cheap)
MAX_TEXT = 10_000

Cell = tuple[tuple[str, int], ...]  # 8 (op, input) pairs, pairs 2k and 2k+1 belong to node k


def _check_cell(cell: Any, kind: str) -> Cell:
    """Validate one cell and return it in canonical form (each node's two pairs sorted)."""
    if not isinstance(cell, (list, tuple)) or len(cell) != N_NODES * EDGES_PER_NODE:
        n = len(cell) if isinstance(cell, (list, tuple)) else type(cell).__name__
        raise InvalidArchError(f"DARTS {kind} cell needs {N_NODES * EDGES_PER_NODE} (op, input) pairs, "
                               f"got {n}")
    pairs = []
    for position, entry in enumerate(cell):
        node = position // EDGES_PER_NODE
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise InvalidArchError(f"DARTS {kind} cell entry {position}: expected (op, input), got {entry!r}")
        op, src = entry
        if op == "none":
            raise InvalidArchError(f"DARTS {kind} cell entry {position}: 'none' is never part of a derived "
                                   f"genotype; ops are {', '.join(CELL_OPS)}")
        if op not in CELL_OPS:
            raise InvalidArchError(f"DARTS {kind} cell entry {position}: unknown op {op!r}; "
                                   f"ops are {', '.join(CELL_OPS)}")
        if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < node + N_INPUTS:
            raise InvalidArchError(f"DARTS {kind} cell entry {position}: node {node + N_INPUTS} may read "
                                   f"inputs 0..{node + N_INPUTS - 1}, got {src!r}")
        pairs.append((str(op), int(src)))
    canonical: list[tuple[str, int]] = []
    for node in range(N_NODES):
        a, b = pairs[EDGES_PER_NODE * node: EDGES_PER_NODE * (node + 1)]
        if a[1] == b[1]:
            raise InvalidArchError(f"DARTS {kind} cell: node {node + N_INPUTS} reads input {a[1]} twice "
                                   f"(its two inputs must be distinct)")
        canonical.extend(sorted((a, b)))
    return tuple(canonical)


def _format_cell(cell: Cell) -> str:
    return "[" + ", ".join(f"({op!r}, {src})" for op, src in cell) + "]"


@dataclass(frozen=True)
class DartsArch:
    """A DARTS genotype (normal + reduction cell), validated and stored in canonical form."""

    normal: Cell
    reduce: Cell

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal", _check_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", _check_cell(self.reduce, "reduce"))

    @property
    def id(self) -> str:
        """The canonical genotype string (equal for equivalent genotypes; parseable)."""
        return (f"Genotype(normal={_format_cell(self.normal)}, normal_concat=range(2, 6), "
                f"reduce={_format_cell(self.reduce)}, reduce_concat=range(2, 6))")

    def cell(self, kind: str) -> Cell:
        check_choice("cell type", kind, CELL_TYPES, "darts")
        return self.normal if kind == "normal" else self.reduce

    def replace_cell(self, kind: str, cell: Sequence[tuple[str, int]]) -> "DartsArch":
        cell = tuple(cell)
        return DartsArch(cell, self.reduce) if kind == "normal" else DartsArch(self.normal, cell)

    def __str__(self) -> str:
        return self.id


# --------------------------------------------------------------------------------------------------
# Text form
# --------------------------------------------------------------------------------------------------
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _literal(node: ast.AST, text: str, field: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise InvalidArchError(f"DARTS genotype {text[:80]!r}...: {field} is not a literal") from exc


def _concat(node: ast.AST, text: str, field: str) -> None:
    """Accept ``range(2, 6)`` or a literal ``[2, 3, 4, 5]``; the space has no other concat."""
    values = None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        bounds = [_literal(a, text, field) for a in node.args]
        if not node.keywords and 1 <= len(bounds) <= 3 and all(type(b) is int for b in bounds):
            values = tuple(range(*bounds))
    else:
        value = _literal(node, text, field)
        if isinstance(value, (list, tuple)):
            values = tuple(value)
    if values != CONCAT:
        raise InvalidArchError(f"DARTS genotype: {field} must be range(2, 6) (all four intermediate "
                               f"nodes), got {ast.unparse(node)!r}")


def parse(text: str) -> DartsArch:
    """Parse a ``Genotype(...)`` string without evaluating code; :class:`InvalidArchError` if malformed."""
    if not isinstance(text, str):
        raise InvalidArchError(f"DARTS genotype must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise InvalidArchError(f"DARTS genotype text too long ({len(text)} > {MAX_TEXT} characters)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise InvalidArchError(f"DARTS genotype {text[:80]!r}: not Genotype(...) syntax") from exc
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, (ast.Name, ast.Attribute))
            and (call.func.id if isinstance(call.func, ast.Name) else call.func.attr) == "Genotype"):
        raise InvalidArchError(f"DARTS genotype {text[:80]!r}: expected Genotype(normal=..., ...)")
    if len(call.args) > len(_FIELDS) or any(isinstance(a, ast.Starred) for a in call.args):
        raise InvalidArchError(f"DARTS genotype: too many positional fields (want {', '.join(_FIELDS)})")
    fields: dict[str, ast.AST] = dict(zip(_FIELDS, call.args))
    for kw in call.keywords:
        if kw.arg not in _FIELDS:
            raise InvalidArchError(f"DARTS genotype: unknown field {kw.arg!r}; "
                                   f"fields are {', '.join(_FIELDS)}")
        if kw.arg in fields:
            raise InvalidArchError(f"DARTS genotype: field {kw.arg!r} given twice")
        fields[kw.arg] = kw.value
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise InvalidArchError(f"DARTS genotype: missing field(s) {', '.join(missing)}")
    for kind in CELL_TYPES:
        _concat(fields[f"{kind}_concat"], text, f"{kind}_concat")
    return DartsArch(_literal(fields["normal"], text, "normal"), _literal(fields["reduce"], text, "reduce"))


# Published genotypes (text copied from the authors' genotypes.py files, parsed like user input)
#: DrNAS on CIFAR-10, xiangning-chen/DrNAS ``DARTS-space/genotypes.py`` (``DrNAS_cifar10``, commit 68bbcbf)
DRNAS_CIFAR10 = parse(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('dil_conv_5x5', 3)], "
    "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('dil_conv_5x5', 2), "
    "('sep_conv_5x5', 1), ('sep_conv_5x5', 1), ('dil_conv_5x5', 3), ('skip_connect', 4), "
    "('sep_conv_5x5', 1)], reduce_concat=range(2, 6))")
#: DARTS (second order), quark0/darts ``cnn/genotypes.py`` (``DARTS_V2``; the same in the DrNAS repo)
DARTS_V2 = parse(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
PUBLISHED = {"drnas_cifar10": DRNAS_CIFAR10, "darts_v2": DARTS_V2}


# --------------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------------
def _node_pairs(cell: Cell, node: int) -> tuple[tuple[str, int], tuple[str, int]]:
    return cell[EDGES_PER_NODE * node], cell[EDGES_PER_NODE * node + 1]


def _node_distance(a: tuple, b: tuple) -> int:
    """Fewest single edits (op change or input change of one edge) between two nodes' pair sets.

    Each edge of ``a`` is matched to an edge of ``b`` (two matchings) and costs one edit per differing
    field. The only matching whose edit order would pass through a node reading one input twice is an
    input swap, and then the crossed matching costs no more, so the minimum is always realisable.
    """
    def cost(x, y):
        return int(x[0] != y[0]) + int(x[1] != y[1])
    return min(cost(a[0], b[0]) + cost(a[1], b[1]), cost(a[0], b[1]) + cost(a[1], b[0]))


class DartsSpace(SearchSpace):
    """The DARTS space: parse/print, uniform sampling, single-edit neighbours, encodings, distance.

    Encodings (float32, one row per architecture):

    * ``"adjacency_onehot"``: for each cell (normal, then reduce) and each of the 14 candidate edges
      (NB301 numbering, :data:`EDGE_OFFSET`), a one-hot over :data:`CELL_OPS`; unused edges are all
      zero (NASLib-style op-on-edge encoding). Length ``2 * 14 * 7 = 196``.
    * ``"compact"``: for each cell, the 8 (input, op index into :data:`CELL_OPS`) pairs of the canonical
      form (NASLib's ``compact``), flattened. Length ``2 * 8 * 2 = 32``.
    """

    name = "darts"
    encodings = ("adjacency_onehot", "compact")

    def parse(self, text: str) -> DartsArch:
        return parse(text)

    def sample(self, rng: np.random.Generator) -> DartsArch:
        """Uniform over canonical genotypes: per node, an unordered pair of distinct inputs drawn
        uniformly, and an op drawn uniformly for each of its two edges (as DARTS' random search and
        NB301's random sampler do)."""
        cells = []
        for _ in CELL_TYPES:
            cell = []
            for node in range(N_NODES):
                inputs = rng.choice(node + N_INPUTS, size=EDGES_PER_NODE, replace=False)
                ops = rng.integers(len(CELL_OPS), size=EDGES_PER_NODE)
                cell.extend((CELL_OPS[int(o)], int(i)) for o, i in zip(ops, inputs))
            cells.append(tuple(cell))
        return DartsArch(*cells)

    def neighbours(self, arch: DartsArch) -> list[DartsArch]:
        """Every genotype one edit away: change the op of one edge, or move one edge to another input
        (not the node's other input), in either cell. 2 * (8 * 6 + 2 * (0 + 1 + 2 + 3)) = 120 of them."""
        out: dict[str, DartsArch] = {}
        for kind in CELL_TYPES:
            cell = arch.cell(kind)
            for position, (op, src) in enumerate(cell):
                node = position // EDGES_PER_NODE
                other_src = cell[position ^ 1][1]  # the node's other edge
                edits = [(new_op, src) for new_op in CELL_OPS if new_op != op]
                edits += [(op, new_src) for new_src in range(node + N_INPUTS)
                          if new_src not in (src, other_src)]
                for edit in edits:
                    candidate = arch.replace_cell(kind, cell[:position] + (edit,) + cell[position + 1:])
                    out.setdefault(candidate.id, candidate)
        out.pop(arch.id, None)
        return list(out.values())

    def encode(self, archs: Sequence[DartsArch], encoding: str = "adjacency_onehot") -> np.ndarray:
        check_choice("encoding", encoding, self.encodings, self.name)
        op_index = {op: i for i, op in enumerate(CELL_OPS)}
        if encoding == "compact":
            rows = [[v for kind in CELL_TYPES for op, src in a.cell(kind) for v in (src, op_index[op])]
                    for a in archs]
            return np.asarray(rows, dtype=np.float32).reshape(len(archs), 2 * N_NODES * EDGES_PER_NODE * 2)
        out = np.zeros((len(archs), len(CELL_TYPES), N_CANDIDATE_EDGES, len(CELL_OPS)), dtype=np.float32)
        for row, arch in enumerate(archs):
            for c, kind in enumerate(CELL_TYPES):
                for position, (op, src) in enumerate(arch.cell(kind)):
                    out[row, c, EDGE_OFFSET[position // EDGES_PER_NODE] + src, op_index[op]] = 1.0
        return out.reshape(len(archs), -1)

    def distance(self, a: DartsArch, b: DartsArch) -> int:
        """Fewest single edits (as in :meth:`neighbours`) that turn ``a`` into ``b``: nodes are
        independent, so it is the sum over the 8 nodes of the best matching of their two edges."""
        return sum(_node_distance(_node_pairs(a.cell(kind), node), _node_pairs(b.cell(kind), node))
                   for kind in CELL_TYPES for node in range(N_NODES))

    @property
    def size(self) -> int:
        return SPACE_SIZE

    @staticmethod
    def candidate_edges() -> list[tuple[int, int]]:
        """(input, graph node) of each of the 14 candidate edges, in NB301 order."""
        return [(src, node + N_INPUTS) for node in range(N_NODES) for src in range(node + N_INPUTS)]

    @staticmethod
    def input_pairs(node: int) -> list[tuple[int, int]]:
        """The unordered input pairs intermediate node ``node`` (0..3) may read, in lexicographic order."""
        return list(combinations(range(node + N_INPUTS), EDGES_PER_NODE))

"""NB101: the vectorised single-edit graph among a set of cells (``in_set_neighbours``) and the benchmark's
cached graph among its cells with data. The reference is always :meth:`NB101Space.neighbours`, which
prunes and hashes every edit with the official module hash.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.nb101 import (INPUT, OPS, OUTPUT, NB101Arch, NB101Benchmark, NB101Space, _padded_columns,
                              canonical_keys, cell_columns, in_set_neighbours)
from nasrepro.errors import DataError

C3, C1, MP = OPS


@pytest.fixture(scope="module")
def space():
    return NB101Space()


def _cell_set(space: NB101Space, rng: np.random.Generator) -> list[NB101Arch]:
    """Random cells, all their neighbours and some of their neighbours' neighbours: a set dense enough
    that most cells have several neighbours in it, and sparse enough that many edits leave it."""
    cells: dict[str, NB101Arch] = {}
    for _ in range(3):
        seed = space.sample(rng)
        cells[seed.id] = seed
        for n in space.neighbours(seed):
            cells.setdefault(n.id, n)
            for m in space.neighbours(n):
                if rng.random() < 0.15:
                    cells.setdefault(m.id, m)
    # the smallest cell (no neighbours at all) and a small one (padding must add no neighbours)
    for cell in (NB101Arch([[0, 1], [0, 0]], [INPUT, OUTPUT]),
                 NB101Arch([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, MP, OUTPUT])):
        cells.setdefault(cell.id, cell)
    return list(cells.values())


def _reference_rows(space: NB101Space, cells: list[NB101Arch]) -> list[list[int]]:
    index = {c.id: i for i, c in enumerate(cells)}
    return [sorted(index[n.id] for n in space.neighbours(c) if n.id in index) for c in cells]


def test_in_set_neighbours_equal_neighbours_restricted_to_the_set(space):
    cells = _cell_set(space, np.random.default_rng(0))
    order = np.random.default_rng(1).permutation(len(cells))  # the set's order must not matter
    cells = [cells[i] for i in order]
    indptr, indices = in_set_neighbours(*cell_columns(cells))
    assert indptr[0] == 0 and indptr[-1] == len(indices) and (np.diff(indptr) >= 0).all()
    expected = _reference_rows(space, cells)
    got = [indices[indptr[i]:indptr[i + 1]].tolist() for i in range(len(cells))]
    assert got == expected
    assert sum(map(len, expected)) > 2 * len(cells)  # a test of something: most cells have neighbours in the set
    assert any(len(row) < len(space.neighbours(c)) for c, row in zip(cells, expected))  # and many edits leave it


def test_canonical_keys_follow_the_module_hash(space):
    rng = np.random.default_rng(2)
    cells = [space.sample(rng) for _ in range(300)]
    # isomorphic copies: the same cell with its inner vertices relabelled (a different matrix, one id)
    for cell in cells[:30]:
        n = cell.n_vertices
        perm = np.concatenate([[0], 1 + rng.permutation(n - 2), [n - 1]])
        matrix = np.zeros((n, n), dtype=int)
        for x in range(n):
            for y in range(n):
                if cell.matrix[x][y]:
                    matrix[perm[x], perm[y]] = 1
        if np.tril(matrix).any():  # the relabelling broke topological order: not a valid spec
            continue
        ops = [None] * n
        for v in range(n):
            ops[perm[v]] = cell.ops[v]
        copy = NB101Arch(matrix, ops)
        assert copy.id == cell.id
        cells.append(copy)
    keys = canonical_keys(*_padded_columns(*cell_columns(cells))[:2])
    ids = np.array([c.id for c in cells])
    same_key = keys[:, None] == keys[None, :]
    same_id = ids[:, None] == ids[None, :]
    np.testing.assert_array_equal(same_key, same_id)
    assert same_id.sum() > len(cells)  # some isomorphic copies were made


def test_a_set_holding_one_cell_twice_is_refused(space):
    cell = NB101Arch([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    with pytest.raises(DataError, match="same cell"):
        in_set_neighbours(*cell_columns([cell, space.neighbours(cell)[0], cell]))


# --------------------------------------------------------------------------------------------------
# the benchmark's cached graph (needs the enumeration: slow the first time in a cache dir)
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.data
def test_benchmark_graph_agrees_with_neighbours_on_sampled_cells_and_is_cached(data_root):
    benchmark = NB101Benchmark.load(data_root)
    graph = benchmark.neighbour_graph()
    archs = benchmark.archs_with_data()
    assert graph.shape == (len(archs), len(archs))
    # not symmetric: an edge removal can prune a vertex away, and no single edit brings it back
    rng = np.random.default_rng(3)
    sample = rng.choice(len(archs), size=150, replace=False)
    # and cells known to have neighbours with data, so the test cannot pass on an empty graph
    sample = np.concatenate([sample, rng.choice(np.flatnonzero(np.diff(graph.indptr) > 0), size=50)])
    index = {a.id: i for i, a in enumerate(archs)}
    for i in sample:
        expected = sorted(index[n.id] for n in benchmark.space.neighbours(archs[i]) if n.id in index)
        assert graph.indices[graph.indptr[i]:graph.indptr[i + 1]].tolist() == expected
    again = NB101Benchmark.load(data_root).neighbour_graph()  # from the disk cache
    np.testing.assert_array_equal(again.indptr, graph.indptr)
    np.testing.assert_array_equal(again.indices, graph.indices)

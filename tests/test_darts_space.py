"""The DARTS search space: genotype text form, canonical ids, validation, edits, encodings, size."""
from __future__ import annotations

from collections import Counter
from itertools import combinations, product

import numpy as np
import pytest
from scipy.stats import chisquare

import benchmarks
from benchmarks.darts_space import (CELL_OPS, CELL_SIZE, DARTS_V2, DRNAS_CIFAR10, N_CANDIDATE_EDGES,
                                    DartsArch, DartsSpace, parse)
from nasrepro.errors import InvalidArchError, OutOfDomainError

# the published strings exactly as written in the authors' genotypes.py files
DRNAS_TEXT = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), "
              "('sep_conv_3x3', 2), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), "
              "('dil_conv_5x5', 3)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
              "('sep_conv_5x5', 1), ('dil_conv_5x5', 2), ('sep_conv_5x5', 1), ('sep_conv_5x5', 1), "
              "('dil_conv_5x5', 3), ('skip_connect', 4), ('sep_conv_5x5', 1)], reduce_concat=range(2, 6))")
DARTS_V2_TEXT = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
                 "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
                 "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
                 "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                 "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
                 "reduce_concat=[2, 3, 4, 5])")
CELL = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
        ("max_pool_3x3", 1), ("avg_pool_3x3", 3), ("sep_conv_5x5", 4), ("dil_conv_5x5", 0)]


def genotype(normal, reduce=None, concat="range(2, 6)") -> str:
    return (f"Genotype(normal={normal!r}, normal_concat={concat}, reduce={(reduce or CELL)!r}, "
            f"reduce_concat={concat})")


@pytest.fixture
def space() -> DartsSpace:
    return DartsSpace()


def test_registry_gives_the_darts_space():
    assert isinstance(benchmarks.space("darts"), DartsSpace)


def test_published_genotypes_parse_from_their_original_text():
    drnas, darts_v2 = parse(DRNAS_TEXT), parse(DARTS_V2_TEXT)
    assert drnas == DRNAS_CIFAR10 and darts_v2 == DARTS_V2
    # DARTS_V2 node 5 reads skip_connect from 0 and dil_conv_3x3 from 2 (order-free)
    assert set(darts_v2.normal[6:8]) == {("skip_connect", 0), ("dil_conv_3x3", 2)}
    assert ("skip_connect", 4) in drnas.reduce
    assert drnas != darts_v2


def test_round_trip_of_printed_genotypes(space, rng):
    for _ in range(50):
        arch = space.sample(rng)
        text = space.format(arch)
        assert parse(text) == arch
        assert space.format(parse(text)) == text  # printing is canonical, so it is a fixed point
    assert parse(str(DRNAS_CIFAR10)) == DRNAS_CIFAR10


def test_parse_accepts_list_concat_whitespace_and_positional_fields():
    a = parse(genotype(CELL))
    assert parse(genotype(CELL, concat="[2, 3, 4, 5]")) == a
    assert parse(genotype(CELL, concat="(2, 3, 4, 5)")) == a
    assert parse("\n  " + genotype(CELL).replace(", ", ",\n   ") + "  \n") == a
    assert parse(f"Genotype({CELL!r}, range(2, 6), {CELL!r}, range(2, 6))") == a
    assert parse("genotypes." + genotype(CELL)) == a


def test_equivalent_genotypes_share_one_canonical_id():
    swapped = list(CELL)
    swapped[2], swapped[3] = swapped[3], swapped[2]  # node 3 lists its two edges the other way round
    swapped[6], swapped[7] = swapped[7], swapped[6]
    a, b = parse(genotype(CELL)), parse(genotype(swapped))
    assert a == b and a.id == b.id and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert DartsArch(CELL, CELL) == DartsArch(tuple(map(tuple, swapped)), CELL)
    # a real change is a different architecture
    other = list(CELL)
    other[0] = ("sep_conv_5x5", 0)
    assert parse(genotype(other)) != a


@pytest.mark.parametrize("text", [
    "",
    "Genotype(",
    "DARTS_V2",
    "[('sep_conv_3x3', 0)]",
    "Foo(normal=[], normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, 6))",
    genotype(CELL[:7]),  # 7 entries
    genotype(CELL + [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]),  # 10 entries (NASNet-style)
    genotype([("sep_conv_3x3", 0), ("sep_conv_3x3", 2)] + CELL[2:]),  # node 2 reads node 2
    genotype(CELL[:2] + [("sep_conv_3x3", 0), ("sep_conv_3x3", 3)] + CELL[4:]),  # node 3 reads node 3
    genotype(CELL[:6] + [("sep_conv_3x3", 5), ("sep_conv_3x3", 0)]),  # node 5 reads itself
    genotype([("sep_conv_3x3", 0), ("sep_conv_3x3", 0)] + CELL[2:]),  # same input twice
    genotype([("sep_conv_3x3", -1), ("sep_conv_3x3", 0)] + CELL[2:]),
    genotype([("sep_conv_3x3", True), ("sep_conv_3x3", 0)] + CELL[2:]),
    genotype([("sep_conv_3x3", 1.0), ("sep_conv_3x3", 0)] + CELL[2:]),
    genotype([("sep_conv_7x7", 0), ("sep_conv_3x3", 1)] + CELL[2:]),  # unknown op
    genotype([("none", 0), ("sep_conv_3x3", 1)] + CELL[2:]),  # none is never derived
    genotype([("sep_conv_3x3", 0, 1), ("sep_conv_3x3", 1)] + CELL[2:]),
    genotype(CELL, concat="range(2, 5)"),
    genotype(CELL, concat="[2, 3, 4]"),
    genotype(CELL, concat="range(2, x)"),
    "Genotype(normal=[], normal_concat=range(2, 6), reduce=[])",
    genotype(CELL).replace("reduce_concat", "extra"),
    genotype(CELL)[:-1] + ", normal=[])",
    "Genotype(normal=__import__('os').getcwd(), normal_concat=range(2, 6), reduce=[], reduce_concat=[])",
    "x" * 20_000,
])
def test_malformed_genotypes_raise_invalid_arch_error(text):
    with pytest.raises(InvalidArchError):
        parse(text)


def test_parse_evaluates_no_code(tmp_path):
    marker = tmp_path / "ran"
    injected = f"[open({str(marker)!r}, 'w') and ('sep_conv_3x3', 0)"
    text = genotype(CELL).replace("[('sep_conv_3x3', 0)", injected, 1)
    with pytest.raises(InvalidArchError):
        parse(text)
    assert not marker.exists()


@pytest.mark.parametrize("bad", [None, 3, b"Genotype()"])
def test_non_string_input_raises_invalid_arch_error(bad):
    with pytest.raises(InvalidArchError):
        parse(bad)


def test_direct_construction_validates():
    with pytest.raises(InvalidArchError):
        DartsArch(CELL[:6], CELL)
    with pytest.raises(InvalidArchError):
        DartsArch(CELL, "not a cell")


def test_sample_is_valid_deterministic_and_uniform_over_input_pairs(space):
    a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(3)
    archs = [space.sample(rng) for _ in range(3000)]
    assert len({x.id for x in archs}) == len(archs)  # a space of 1e18: repeats would mean a bug
    # node 5 (4th intermediate node) picks one of C(5, 2) = 10 input pairs, uniformly
    pairs = Counter(tuple(sorted(src for _, src in x.normal[6:8])) for x in archs)
    assert set(pairs) == set(combinations(range(5), 2))
    assert chisquare(list(pairs.values())).pvalue > 1e-3
    ops = Counter(op for x in archs for op, _ in x.reduce)
    assert set(ops) == set(CELL_OPS) and chisquare(list(ops.values())).pvalue > 1e-3


def test_neighbours_are_distinct_valid_and_one_edit_away(space, rng):
    for arch in [DARTS_V2, DRNAS_CIFAR10] + [space.sample(rng) for _ in range(5)]:
        nbrs = space.neighbours(arch)
        # 2 cells x (8 edges x 6 other ops + 2 edges x (0+1+2+3) other inputs)
        assert len(nbrs) == 120
        assert len({n.id for n in nbrs}) == len(nbrs)
        assert arch not in nbrs
        assert all(isinstance(n, DartsArch) and parse(n.id) == n for n in nbrs)
        assert all(space.distance(arch, n) == 1 for n in nbrs)


def test_mutate_is_deterministic_given_the_generator(space):
    first = [space.mutate(DARTS_V2, np.random.default_rng(11)) for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(12)
    walk = [space.mutate(DARTS_V2, rng) for _ in range(20)]
    assert all(space.distance(DARTS_V2, m) == 1 for m in walk)
    assert len({m.id for m in walk}) > 1


def test_distance_is_a_metric_and_counts_edits(space, rng):
    archs = [space.sample(rng) for _ in range(12)]
    for a in archs:
        assert space.distance(a, a) == 0
        for b in archs:
            assert space.distance(a, b) == space.distance(b, a)
            assert (space.distance(a, b) == 0) == (a == b)
            for c in archs[:4]:
                assert space.distance(a, c) <= space.distance(a, b) + space.distance(b, c)
    two_steps = space.mutate(space.mutate(DARTS_V2, rng), rng)
    assert space.distance(DARTS_V2, two_steps) <= 2
    # node 3 of CELL reads skip_connect from 0 and dil_conv_3x3 from 2; swapping their inputs is two
    # op changes (moving the inputs one by one would pass through a node reading input 0 twice)
    a = DartsArch(CELL, CELL)
    swapped = DartsArch(CELL, CELL[:2] + [("skip_connect", 2), ("dil_conv_3x3", 0)] + CELL[4:])
    assert space.distance(a, swapped) == 2
    # a node differs in at most 2 fields per edge; node 2's inputs are fixed: (2 + 3 * 4) per cell
    assert max(space.distance(a, b) for a in archs for b in archs) <= 28


def test_distance_is_exact_along_neighbour_paths(space, rng):
    """Every neighbour is at most one closer, and one always is: the distance is the shortest path."""
    for _ in range(3):
        a, b = space.sample(rng), space.sample(rng)
        start, steps = space.distance(a, b), 0
        while a != b:
            d = space.distance(a, b)
            closer = [n for n in space.neighbours(a) if space.distance(n, b) < d]
            assert closer and all(space.distance(n, b) == d - 1 for n in closer)
            a = closer[int(rng.integers(len(closer)))]
            steps += 1
        assert steps == start


def test_encodings_have_documented_shapes_and_content(space, rng):
    archs = [DARTS_V2] + [space.sample(rng) for _ in range(9)]
    onehot = space.encode(archs, "adjacency_onehot")
    assert onehot.shape == (10, 2 * N_CANDIDATE_EDGES * len(CELL_OPS)) and onehot.dtype == np.float32
    per_edge = onehot.reshape(10, 2, N_CANDIDATE_EDGES, len(CELL_OPS))
    assert set(np.unique(per_edge.sum(-1))) <= {0.0, 1.0}
    assert (per_edge.sum(axis=(2, 3)) == 8).all()  # 8 used edges per cell
    # DARTS_V2 normal node 2: sep_conv_3x3 on edges 0 (from input 0) and 1 (from input 1)
    sep3 = CELL_OPS.index("sep_conv_3x3")
    assert per_edge[0, 0, 0, sep3] == 1 and per_edge[0, 0, 1, sep3] == 1
    compact = space.encode(archs, "compact")
    assert compact.shape == (10, 32) and compact.dtype == np.float32
    pairs = compact.reshape(10, 2, 8, 2)
    assert pairs[0, 1, 0].tolist() == [0, CELL_OPS.index("max_pool_3x3")]
    assert len({row.tobytes() for row in onehot}) == len({a.id for a in archs})
    with pytest.raises(OutOfDomainError):
        space.encode(archs, "path")


def test_size_matches_an_enumeration_of_canonical_cells(space):
    per_node = []
    for node in range(4):
        ops, inputs = product(CELL_OPS, repeat=2), product(range(node + 2), repeat=2)
        states = {tuple(sorted(((o1, i1), (o2, i2)))) for (o1, o2), (i1, i2) in product(ops, inputs)
                  if i1 != i2}
        per_node.append(len(states))
    assert per_node == [49, 147, 294, 490]
    assert CELL_SIZE == int(np.prod(per_node))
    assert space.size == CELL_SIZE ** 2
    assert 1e18 < space.size < 1.1e18


def test_candidate_edges_follow_nb301_numbering():
    edges = DartsSpace.candidate_edges()
    assert len(edges) == 14
    assert edges[:2] == [(0, 2), (1, 2)] and edges[2:5] == [(0, 3), (1, 3), (2, 3)] and edges[-1] == (4, 5)

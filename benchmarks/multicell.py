"""A hierarchical multi-cell space: S stages, each with its own NAS-Bench-201 cell.

An architecture is a tuple of S NB201 cells (:class:`~benchmarks.nb201.NB201Arch`), one per *stage*; its
canonical id joins the official NB201 strings of the cells with ``::``. A **slot** is one (stage, edge)
pair: there are ``6 S`` slots, each carrying one of the 5 NB201 ops. With S = 1 the space *is* NB201 (same
specs, same ids), so its architectures can be looked up in the NB201 table (:meth:`MultiCellArch.to_nb201`).

The network of an architecture (used by the FaDE region supernet and by brief training) follows the NB201
skeleton: ``R = max(3, S)`` resolution stages separated by ResNet reduction blocks, each holding ``N``
cells. Resolution stage ``r`` uses the cell of stage ``r * S // R`` (:func:`cell_of_resolution_stage`), so
S = 1 is exactly the NB201 network (one cell shared by all three resolution stages), S = 3 gives every
resolution stage its own cell, and S > 3 adds resolution stages (deeper networks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from benchmarks.base import SearchSpace, check_choice
from benchmarks.nb201 import N_EDGES, OPS, NB201Arch, parse as parse_nb201
from nasrepro.errors import ConfigError, InvalidArchError

SEPARATOR = "::"
#: the NB201 skeleton has three resolution stages; more cells than that add resolution stages
MIN_RESOLUTION_STAGES = 3


def check_n_stages(n_stages: object) -> int:
    if isinstance(n_stages, bool) or not isinstance(n_stages, (int, np.integer)) or n_stages < 1:
        raise ConfigError(f"multicell: the number of stages must be a positive integer, got {n_stages!r}")
    return int(n_stages)


def resolution_stages(n_stages: int) -> int:
    """How many resolution stages the network of an S-stage architecture has."""
    return max(MIN_RESOLUTION_STAGES, check_n_stages(n_stages))


def cell_of_resolution_stage(resolution_stage: int, n_stages: int) -> int:
    """Which stage's cell resolution stage ``resolution_stage`` uses (contiguous, in order)."""
    return resolution_stage * n_stages // resolution_stages(n_stages)


@dataclass(frozen=True)
class MultiCellArch:
    """One cell per stage; validated on construction (every cell a valid NB201 cell)."""

    cells: tuple[NB201Arch, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.cells, (tuple, list)) or not self.cells:
            raise InvalidArchError(f"multicell arch needs a non-empty tuple of NB201 cells, got {self.cells!r}")
        cells = tuple(c if isinstance(c, NB201Arch) else NB201Arch(tuple(c)) for c in self.cells)
        object.__setattr__(self, "cells", cells)

    @classmethod
    def from_ops(cls, ops: Sequence[int], n_stages: int) -> "MultiCellArch":
        """From the flat op index of every slot (stage-major: stage 0's six edges first)."""
        ops = tuple(int(o) for o in ops)
        if len(ops) != n_stages * N_EDGES:
            raise InvalidArchError(f"multicell: {n_stages} stages need {n_stages * N_EDGES} op indices, "
                                   f"got {len(ops)}")
        return cls(tuple(NB201Arch(ops[s * N_EDGES:(s + 1) * N_EDGES]) for s in range(n_stages)))

    @property
    def n_stages(self) -> int:
        return len(self.cells)

    @property
    def ops(self) -> tuple[int, ...]:
        """The op index of every slot, stage-major."""
        return tuple(op for cell in self.cells for op in cell.ops)

    @property
    def id(self) -> str:
        return SEPARATOR.join(cell.id for cell in self.cells)

    def to_nb201(self) -> NB201Arch:
        """The NB201 cell of a one-stage architecture (the spaces coincide at S = 1)."""
        if self.n_stages != 1:
            raise InvalidArchError(f"multicell: only a one-stage architecture is an NB201 cell "
                                   f"(this one has {self.n_stages} stages)")
        return self.cells[0]

    def __str__(self) -> str:
        return self.id


class MultiCellSpace(SearchSpace):
    """All S-stage architectures: ``5 ** (6 S)`` of them."""

    #: "onehot": one-hot op per slot (30 S); "ops": the 6 S op indices
    encodings = ("onehot", "ops")

    def __init__(self, n_stages: int = 3):
        self.n_stages = check_n_stages(n_stages)
        self.name = f"multicell{self.n_stages}"

    @property
    def n_slots(self) -> int:
        return self.n_stages * N_EDGES

    def parse(self, text: str) -> MultiCellArch:
        if not isinstance(text, str):
            raise InvalidArchError(f"multicell arch must be a string, got {type(text).__name__}")
        parts = text.strip().split(SEPARATOR)
        if len(parts) != self.n_stages:
            raise InvalidArchError(f"{self.name}: expected {self.n_stages} '{SEPARATOR}'-separated NB201 cells, "
                                   f"got {len(parts)} in {text!r}")
        return MultiCellArch(tuple(parse_nb201(p) for p in parts))

    def check(self, arch: object) -> MultiCellArch:
        """``arch`` itself if it belongs to this space (right type, right number of stages)."""
        if not isinstance(arch, MultiCellArch) or arch.n_stages != self.n_stages:
            raise InvalidArchError(f"{self.name}: not a {self.n_stages}-stage architecture: {arch!r}")
        return arch

    def sample(self, rng: np.random.Generator) -> MultiCellArch:
        return MultiCellArch.from_ops(rng.integers(len(OPS), size=self.n_slots), self.n_stages)

    def neighbours(self, arch: MultiCellArch) -> list[MultiCellArch]:
        ops = list(self.check(arch).ops)
        out = []
        for slot in range(self.n_slots):
            for op in range(len(OPS)):
                if op != ops[slot]:
                    out.append(MultiCellArch.from_ops(ops[:slot] + [op] + ops[slot + 1:], self.n_stages))
        return out

    def mutate(self, arch: MultiCellArch, rng: np.random.Generator) -> MultiCellArch:
        # as NB201's mutation: one slot, a different op (no list of all neighbours needed)
        ops = list(self.check(arch).ops)
        slot = int(rng.integers(self.n_slots))
        op = int(rng.integers(len(OPS) - 1))
        ops[slot] = op if op < ops[slot] else op + 1
        return MultiCellArch.from_ops(ops, self.n_stages)

    def encode(self, archs: Sequence[MultiCellArch], encoding: str = "onehot") -> np.ndarray:
        check_choice("encoding", encoding, self.encodings, self.name)
        ops = np.array([self.check(a).ops for a in archs], dtype=np.int64).reshape(-1, self.n_slots)
        if encoding == "ops":
            return ops.astype(np.float32)
        return np.eye(len(OPS), dtype=np.float32)[ops].reshape(len(ops), -1)

    def distance(self, a: MultiCellArch, b: MultiCellArch) -> int:
        return int(sum(x != y for x, y in zip(self.check(a).ops, self.check(b).ops)))

    @property
    def size(self) -> int:
        return len(OPS) ** self.n_slots

"""The DARTS search network (CIFAR): stacked normal/reduction cells of 4 intermediate nodes.

Each cell reads the two previous cells' outputs (1x1 ReLUConvBN preprocessing, FactorizedReduce after a
reduction), node i sums mixed-op edges from all 2 + i earlier states, and the cell output concatenates
the 4 intermediate nodes. Reduction cells sit at 1/3 and 2/3 of the depth and double the channels.
All normal cells share one architecture-weight matrix (14 edges x ops), all reduction cells another.
Mixed ops use partial channels (``partial_k``) as in DrNAS's progressive DARTS-space search.

The derived genotype follows the DARTS rule (top-2 incoming edges per node by their strongest non-``none``
op, then that op) as a :class:`benchmarks.darts_space.DartsArch` (whose ``id`` is the DARTS code's
``Genotype(normal=[(op, input), ...], normal_concat=range(2, 6), reduce=..., reduce_concat=...)`` string).
"""
from __future__ import annotations

import torch
from torch import nn

from algorithms.nn.ops import OPS, FactorizedReduce, MixedOp, ReLUConvBN
from benchmarks.darts_space import DartsArch
#: DrNAS's DARTS-space candidates: the DARTS primitives without ``none``
DRNAS_PRIMITIVES = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                    "dil_conv_3x3", "dil_conv_5x5")
STEPS = 4
N_EDGES = sum(2 + i for i in range(STEPS))  # 14


class DartsSearchCell(nn.Module):
    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 primitives: tuple[str, ...], partial_k: int):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        c = C // partial_k
        self.edges = nn.ModuleList()
        for i in range(STEPS):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp([OPS[p](c, stride, False) for p in primitives], partial_k))

    def forward(self, s0, s1, weights, hard_index=None):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(STEPS):
            node = 0
            for j, h in enumerate(states):
                e = offset + j
                node = node + self.edges[e](h, weights[e], None if hard_index is None else hard_index[e])
            offset += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class DartsSupernet(nn.Module):
    cell_types = ("normal", "reduce")
    n_edges = N_EDGES

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, partial_k: int = 1,
                 primitives: tuple[str, ...] = DRNAS_PRIMITIVES, stem_multiplier: int = 3):
        super().__init__()
        self.config = {"C": C, "layers": layers, "num_classes": num_classes, "partial_k": partial_k,
                       "primitives": tuple(primitives), "stem_multiplier": stem_multiplier}
        self.primitives = tuple(primitives)
        self.n_ops = len(self.primitives)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(DartsSearchCell(c_pp, c_p, c_curr, reduction, reduction_prev, self.primitives,
                                              partial_k))
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c_curr
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x, weights: dict[str, torch.Tensor], hard_index=None):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], None if hard_index is None else hard_index[kind])
        return self.classifier(s1.mean(dim=(2, 3)))

    def prune(self, masks: dict[str, torch.Tensor]) -> None:
        for cell in self.cells:
            mask = masks["reduce" if cell.reduction else "normal"]
            for e, mixed in enumerate(cell.edges):
                mixed.set_active(mask[e])

    def derive(self, alphas: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> DartsArch:
        """The DARTS genotype: per node the 2 strongest incoming edges, each with its best op."""
        genes = {}
        for kind in self.cell_types:
            strength = torch.softmax(_masked(alphas[kind], None if masks is None else masks[kind]), dim=-1)
            if "none" in self.primitives:
                strength[:, self.primitives.index("none")] = -1.0
            gene, start = [], 0
            for i in range(STEPS):
                w = strength[start:start + 2 + i]
                best_per_edge, op_per_edge = w.max(dim=-1)
                for j in best_per_edge.argsort(descending=True, stable=True)[:2].tolist():
                    gene.append((self.primitives[int(op_per_edge[j])], j))
                start += 2 + i
            genes[kind] = gene
        return DartsArch(tuple(genes["normal"]), tuple(genes["reduce"]))


def _masked(alpha: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    alpha = alpha.detach().float().cpu()
    return alpha if mask is None else alpha.masked_fill(~mask.cpu(), float("-inf"))

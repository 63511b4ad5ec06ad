"""The NAS-Bench-201 search network: the NB201 macro skeleton with mixed-op cells.

Stem (3x3 conv + BN) -> N search cells at C channels -> ResNet basic block (stride 2) -> N cells at 2C
-> basic block -> N cells at 4C -> BN-ReLU -> global pool -> linear. Every search cell shares one
architecture-weight matrix (6 edges x 5 ops, edges in the order of the official NB201 string), so one
forward pass takes one ``weights`` tensor. Cells use non-affine BN, as NB201 and DrNAS search with.
"""
from __future__ import annotations

import torch
from torch import nn

from algorithms.nn.ops import NB201_OPS, MixedOp, ResNetBasicBlock
from benchmarks.nb201 import EDGES, N_EDGES, OPS, NB201Arch


class NB201SearchCell(nn.Module):
    """A 4-node DAG; node i sums the mixed-op outputs of its edges from every earlier node."""

    def __init__(self, C: int, partial_k: int = 1, affine: bool = False):
        super().__init__()
        if C % partial_k:
            raise ValueError(f"channels {C} not divisible by partial_k {partial_k}")
        c = C // partial_k
        self.edges = nn.ModuleList(
            MixedOp([NB201_OPS[name](c, c, 1, affine) for name in OPS], partial_k) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, hard_index: list[int] | None = None) -> torch.Tensor:
        nodes = [x]
        for to_node in range(1, 4):
            total = 0
            for e, (i, j) in enumerate(EDGES):
                if i == to_node:
                    h = None if hard_index is None else hard_index[e]
                    total = total + self.edges[e](nodes[j], weights[e], h)
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(nn.Module):
    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, partial_k: int = 1, affine: bool = False):
        super().__init__()
        self.config = {"C": C, "N": N, "num_classes": num_classes, "partial_k": partial_k, "affine": affine}
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage:
                layers.append(ResNetBasicBlock(width // 2, width, 2))
            layers.extend(NB201SearchCell(width, partial_k, affine) for _ in range(N))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU())
        self.classifier = nn.Linear(4 * C, num_classes)

    #: one weight matrix per cell type; NB201 has a single cell type
    cell_types = ("cell",)
    n_ops = len(OPS)
    n_edges = N_EDGES

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor],
                hard_index: dict[str, list[int]] | None = None) -> torch.Tensor:
        h = self.stem(x)
        hard = None if hard_index is None else hard_index["cell"]
        for cell in self.cells:
            h = cell(h, weights["cell"], hard) if isinstance(cell, NB201SearchCell) else cell(h)
        h = self.lastact(h).mean(dim=(2, 3))
        return self.classifier(h)

    def prune(self, masks: dict[str, torch.Tensor]) -> None:
        """Keep only the ops where ``masks['cell']`` (edges x ops, bool) is True."""
        for cell in self.cells:
            if isinstance(cell, NB201SearchCell):
                for e, mixed in enumerate(cell.edges):
                    mixed.set_active(masks["cell"][e])

    @staticmethod
    def derive(alphas: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> NB201Arch:
        """The argmax op of every edge (among the ops not pruned away)."""
        alpha = alphas["cell"].detach().float().cpu()
        if masks is not None:
            alpha = alpha.masked_fill(~masks["cell"].cpu(), float("-inf"))
        return NB201Arch(tuple(int(i) for i in alpha.argmax(dim=-1).tolist()))

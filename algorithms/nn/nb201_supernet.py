"""The NAS-Bench-201 search network: the NB201 macro skeleton with mixed-op cells.

Stem (3x3 conv + BN) -> N search cells at C channels -> ResNet basic block (stride 2) -> N cells at 2C
-> basic block -> N cells at 4C -> BN-ReLU -> global pool -> linear. Every search cell shares one
architecture-weight matrix (6 edges x 5 ops, edges in the order of the official NB201 string), so one
forward pass takes one ``weights`` tensor. Cells use non-affine BN, as NB201 and DrNAS search with.

Two implementations of the same cell: :class:`NB201SearchCell` (one :class:`MixedOp` per edge; supports
partial channels, progressive pruning and GDAS's hard forward) and :class:`FusedNB201SearchCell`, which
computes the same function source-node-wise with about half the GPU kernels (the plain search's default;
``fused_cells`` in the config). ``tests/test_supernet.py`` checks that the two agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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


#: ops of the fused cell's weighted sum, in term order per edge ('none' adds exactly zero and is left out)
_SUMMED_OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class FusedNB201SearchCell(nn.Module):
    """:class:`NB201SearchCell` with all ops active and full channels, computed per source node.

    On a GPU the plain NB201 search is bound by the number of kernels, not by arithmetic (15 cells x 6 edges
    x 5 ops at batch 64). All edges leaving a node see the same input, so one ReLU, one 1x1 and one 3x3
    convolution with ``C x (out-edges)`` output channels, their BNs and one average pool serve every
    out-edge (per-channel BN over concatenated channels is the per-edge BN); a node's weighted sum over
    its incoming terms is one matrix-vector product. Same function, same parameter count and
    initialisation distribution as the per-edge cell.
    """

    def __init__(self, C: int, affine: bool = False):
        super().__init__()
        self.C = C
        #: per source node, the edges leaving it (index into EDGES, whose pairs are (to, from))
        self.out_edges = [[e for e, (_, src) in enumerate(EDGES) if src == node] for node in range(3)]
        self.conv1x1 = nn.ModuleList(nn.Conv2d(C, C * len(es), 1, bias=False) for es in self.out_edges)
        self.conv3x3 = nn.ModuleList(nn.Conv2d(C, C * len(es), 3, padding=1, bias=False) for es in self.out_edges)
        self.bn1x1 = nn.ModuleList(nn.BatchNorm2d(C * len(es), affine=affine) for es in self.out_edges)
        self.bn3x3 = nn.ModuleList(nn.BatchNorm2d(C * len(es), affine=affine) for es in self.out_edges)
        # a device-side index: indexing with a Python list would copy from the host inside a CUDA graph
        self.register_buffer("summed", torch.tensor([OPS.index(name) for name in _SUMMED_OPS]), persistent=False)
        #: per target node, its incoming edges as a range of EDGES (edges are ordered by target node)
        self.incoming = [(min(es), max(es) + 1) for es in
                         ([e for e, (to, _) in enumerate(EDGES) if to == node] for node in range(1, 4))]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, hard_index: list[int] | None = None) -> torch.Tensor:
        if hard_index is not None:
            raise ValueError("the fused NB201 cell has no hard forward (GDAS): set fused_cells = false")
        # stack the terms in the input's memory layout (NHWC for channels_last), so the sum keeps it
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        as_layout = (lambda t: t.permute(0, 2, 3, 1)) if nhwc else (lambda t: t)
        terms: dict[int, list[torch.Tensor]] = {}  # per edge, the outputs of its summed ops
        nodes = [x]
        for to_node, (lo, hi) in enumerate(self.incoming, start=1):
            src = to_node - 1  # the node finished last: its out-edges can now be computed
            h = nodes[src]
            r = F.relu(h)
            conv1 = self.bn1x1[src](self.conv1x1[src](r)).split(self.C, dim=1)
            conv3 = self.bn3x3[src](self.conv3x3[src](r)).split(self.C, dim=1)
            pool = F.avg_pool2d(h, 3, stride=1, padding=1, count_include_pad=False)
            for k, e in enumerate(self.out_edges[src]):
                by_op = {"skip_connect": h, "nor_conv_1x1": conv1[k], "nor_conv_3x3": conv3[k], "avg_pool_3x3": pool}
                terms[e] = [as_layout(by_op[name]) for name in _SUMMED_OPS]
            stacked = torch.stack([t for e in range(lo, hi) for t in terms[e]])
            w = weights[lo:hi].index_select(1, self.summed).reshape(-1).to(stacked.dtype)
            total = torch.matmul(w, stacked.flatten(1)).view(stacked.shape[1:])
            nodes.append(total.permute(0, 3, 1, 2) if nhwc else total)
        return nodes[-1]

    @torch.no_grad()
    def load_from_cell(self, cell: NB201SearchCell) -> None:
        """Copy the weights and BN statistics of a per-edge cell (with full channels) into this one."""
        for src, edges in enumerate(self.out_edges):
            for fused_conv, fused_bn, op_name in ((self.conv1x1[src], self.bn1x1[src], "nor_conv_1x1"),
                                                  (self.conv3x3[src], self.bn3x3[src], "nor_conv_3x3")):
                op = OPS.index(op_name)
                parts = [cell.edges[e].ops[op] for e in edges]  # each ReLU -> Conv -> BN
                fused_conv.weight.copy_(torch.cat([p[1].weight for p in parts]))
                for name in ("running_mean", "running_var", "weight", "bias"):
                    target = getattr(fused_bn, name)
                    if target is not None:
                        target.copy_(torch.cat([getattr(p[2], name) for p in parts]))


_CELLS = (NB201SearchCell, FusedNB201SearchCell)


class NB201Supernet(nn.Module):
    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, partial_k: int = 1, affine: bool = False,
                 fused: bool = False):
        super().__init__()
        if fused and partial_k != 1:
            raise ValueError("the fused NB201 cell needs full channels (partial_k 1)")
        self.config = {"C": C, "N": N, "num_classes": num_classes, "partial_k": partial_k, "affine": affine,
                       "fused": fused}
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage:
                layers.append(ResNetBasicBlock(width // 2, width, 2))
            layers.extend(FusedNB201SearchCell(width, affine) if fused else NB201SearchCell(width, partial_k, affine)
                          for _ in range(N))
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
            h = cell(h, weights["cell"], hard) if isinstance(cell, _CELLS) else cell(h)
        h = self.lastact(h).mean(dim=(2, 3))
        return self.classifier(h)

    def prune(self, masks: dict[str, torch.Tensor]) -> None:
        """Keep only the ops where ``masks['cell']`` (edges x ops, bool) is True."""
        for cell in self.cells:
            if isinstance(cell, FusedNB201SearchCell) and not bool(masks["cell"].all()):
                raise ValueError("the fused NB201 cell runs every op: pruning needs fused_cells = false")
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

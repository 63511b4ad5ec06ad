"""The NAS-Bench-201 search network: the NB201 macro skeleton with mixed-op cells.

Stem (3x3 conv + BN) -> N search cells at C channels -> ResNet basic block (stride 2) -> N cells at 2C
-> basic block -> N cells at 4C -> BN-ReLU -> global pool -> linear. Every search cell shares one
architecture-weight matrix (6 edges x 5 ops, edges in the order of the official NB201 string), so one
forward pass takes one ``weights`` tensor. Cells use non-affine BN, as NB201 and DrNAS search with.

Two implementations of the same cell: :class:`NB201SearchCell` (one :class:`MixedOp` per edge; also
runs GDAS's hard forward) and :class:`FusedNB201SearchCell`, which computes the same soft-mixing function
source-node-wise with about half the GPU kernels (``fused_cells`` in the config); both support partial
channels and progressive pruning. ``tests/test_supernet.py`` checks that the two agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.nn.ops import NB201_OPS, MixedOp, ResNetBasicBlock, avg_pool_3x3, channel_shuffle
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
#: the fused cell's conv/BN modules -> (op name, layer index inside the per-edge ReLU -> Conv -> BN)
_FUSED_LAYERS = {"conv1x1": ("nor_conv_1x1", 1), "bn1x1": ("nor_conv_1x1", 2),
                 "conv3x3": ("nor_conv_3x3", 1), "bn3x3": ("nor_conv_3x3", 2)}


class FusedNB201SearchCell(nn.Module):
    """:class:`NB201SearchCell` computed per source node; the same function for soft mixing.

    On a GPU the NB201 search is bound by the number of kernels, not by arithmetic (15 cells x 6 edges
    x 5 ops at batch 64). All edges leaving a node see the same input, so one ReLU, one 1x1 and one 3x3
    convolution with ``c x (out-edges)`` output channels, their BNs and one average pool serve every
    out-edge (per-channel BN over concatenated channels is the per-edge BN); a node's weighted sum over
    its incoming terms is one matrix-vector product. Partial channels (``partial_k`` > 1): every edge
    into a node passes the last channels of its input through unweighted and shuffles the same way, so
    the node's sum is one shuffle of [sum of the mixed parts, sum of the bypasses]. Pruned ops (``active``) still
    run but get weight 0, which is what skipping them computes (their unused weights then see only SGD's
    weight decay, and their BN statistics still move). Same parameters as the per-edge cell,
    under other names: :meth:`per_edge_state` / :meth:`fused_state` translate.
    """

    def __init__(self, C: int, partial_k: int = 1, affine: bool = False):
        super().__init__()
        if C % partial_k:
            raise ValueError(f"channels {C} not divisible by partial_k {partial_k}")
        self.partial_k, self.c = partial_k, C // partial_k
        c = self.c
        #: per source node, the edges leaving it (index into EDGES, whose pairs are (to, from))
        self.out_edges = [[e for e, (_, src) in enumerate(EDGES) if src == node] for node in range(3)]
        self.conv1x1 = nn.ModuleList(nn.Conv2d(c, c * len(es), 1, bias=False) for es in self.out_edges)
        self.conv3x3 = nn.ModuleList(nn.Conv2d(c, c * len(es), 3, padding=1, bias=False) for es in self.out_edges)
        self.bn1x1 = nn.ModuleList(nn.BatchNorm2d(c * len(es), affine=affine) for es in self.out_edges)
        self.bn3x3 = nn.ModuleList(nn.BatchNorm2d(c * len(es), affine=affine) for es in self.out_edges)
        # a device-side index: indexing with a Python list would copy from the host inside a CUDA graph
        self.register_buffer("summed", torch.tensor([OPS.index(name) for name in _SUMMED_OPS]), persistent=False)
        self.register_buffer("active", torch.ones(N_EDGES, len(OPS), dtype=torch.bool))  # edges x ops not pruned
        #: per target node, its incoming edges as a range of EDGES (edges are ordered by target node)
        self.incoming = [(min(es), max(es) + 1) for es in
                         ([e for e, (to, _) in enumerate(EDGES) if to == node] for node in range(1, 4))]

    def set_active(self, mask: torch.Tensor) -> None:
        self.active.copy_(mask.to(self.active.device))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "active" in missing_keys:  # a checkpoint from before pruning support: nothing was pruned
            missing_keys.remove(prefix + "active")
            self.active.fill_(True)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, hard_index: list[int] | None = None) -> torch.Tensor:
        if hard_index is not None:
            raise ValueError("the fused NB201 cell has no hard forward (GDAS): set fused_cells = false")
        # stack the terms in the input's memory layout (NHWC for channels_last), so the sum keeps it
        nhwc = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        as_layout = (lambda t: t.permute(0, 2, 3, 1)) if nhwc else (lambda t: t)
        c, k = self.c, self.partial_k
        terms: dict[int, list[torch.Tensor]] = {}  # per edge, the outputs of its summed ops
        nodes = [x]
        for to_node, (lo, hi) in enumerate(self.incoming, start=1):
            src = to_node - 1  # the node finished last: its out-edges can now be computed
            h = nodes[src] if k == 1 else nodes[src][:, :c]
            r = F.relu(h)
            conv1 = self.bn1x1[src](self.conv1x1[src](r)).split(c, dim=1)
            conv3 = self.bn3x3[src](self.conv3x3[src](r)).split(c, dim=1)
            pool = avg_pool_3x3(h)
            for j, e in enumerate(self.out_edges[src]):
                by_op = {"skip_connect": h, "nor_conv_1x1": conv1[j], "nor_conv_3x3": conv3[j], "avg_pool_3x3": pool}
                terms[e] = [as_layout(by_op[name]) for name in _SUMMED_OPS]
            stacked = torch.stack([t for e in range(lo, hi) for t in terms[e]])
            w = (weights[lo:hi] * self.active[lo:hi]).index_select(1, self.summed).reshape(-1).to(stacked.dtype)
            mixed = torch.matmul(w, stacked.flatten(1)).view(stacked.shape[1:])
            mixed = mixed.permute(0, 3, 1, 2) if nhwc else mixed
            if k > 1:  # every earlier node feeds this one through exactly one edge
                bypass = sum(node[:, c:] for node in nodes)
                mixed = channel_shuffle(torch.cat([mixed, bypass], dim=1), k)
            nodes.append(mixed)
        return nodes[-1]

    # -- translation to and from the per-edge cell's tensors (names relative to the cell) ------------------
    def per_edge_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This cell's tensors (a state dict, or any subset such as SGD momentum by parameter name) under
        the names and shapes of :class:`NB201SearchCell`."""
        out = {}
        for name, tensor in tensors.items():
            if name == "active":
                out.update({f"edges.{e}.active": tensor[e].clone() for e in range(N_EDGES)})
                continue
            module, src, field = name.split(".", 2)
            op_name, layer = _FUSED_LAYERS[module]
            edges = self.out_edges[int(src)]
            parts = [tensor] * len(edges) if field == "num_batches_tracked" else tensor.chunk(len(edges))
            for e, part in zip(edges, parts):
                out[f"edges.{e}.ops.{OPS.index(op_name)}.{layer}.{field}"] = part.clone()
        return out

    def fused_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The inverse of :meth:`per_edge_state`: per-edge tensors joined under this cell's names (a fused
        tensor is made when all its edges are given; some but not all is an error)."""
        out = {}
        rows = [tensors.get(f"edges.{e}.active") for e in range(N_EDGES)]
        if any(r is None for r in rows) and any(r is not None for r in rows):
            raise ValueError("per-edge tensors for active are incomplete")
        if rows[0] is not None:
            out["active"] = torch.stack(rows)
        for module, (op_name, layer) in _FUSED_LAYERS.items():
            for src, edges in enumerate(self.out_edges):
                for field in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    parts = [tensors.get(f"edges.{e}.ops.{OPS.index(op_name)}.{layer}.{field}") for e in edges]
                    if all(p is None for p in parts):
                        continue
                    if any(p is None for p in parts):
                        raise ValueError(f"per-edge tensors for {module}.{src}.{field} are incomplete")
                    out[f"{module}.{src}.{field}"] = parts[0].clone() if field == "num_batches_tracked" \
                        else torch.cat(parts)
        return out


_CELLS = (NB201SearchCell, FusedNB201SearchCell)


class NB201Supernet(nn.Module):
    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, partial_k: int = 1, affine: bool = False,
                 fused: bool = False):
        super().__init__()
        self.config = {"C": C, "N": N, "num_classes": num_classes, "partial_k": partial_k, "affine": affine,
                       "fused": fused}
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage:
                layers.append(ResNetBasicBlock(width // 2, width, 2))
            cell = FusedNB201SearchCell if fused else NB201SearchCell
            layers.extend(cell(width, partial_k, affine) for _ in range(N))
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
            if isinstance(cell, FusedNB201SearchCell):
                cell.set_active(masks["cell"])
            elif isinstance(cell, NB201SearchCell):
                for e, mixed in enumerate(cell.edges):
                    mixed.set_active(masks["cell"][e])

    def per_edge_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tensors of this network by name (a state dict or a subset) under the names the same network with
        per-edge cells uses; the identity without fused cells."""
        return self._translate(tensors, FusedNB201SearchCell.per_edge_state)

    def fused_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The inverse of :meth:`per_edge_state`."""
        return self._translate(tensors, FusedNB201SearchCell.fused_state)

    def _translate(self, tensors: dict[str, torch.Tensor], translate) -> dict[str, torch.Tensor]:
        out = dict(tensors)
        for i, cell in enumerate(self.cells):
            if isinstance(cell, FusedNB201SearchCell):
                prefix = f"cells.{i}."
                mine = {name[len(prefix):]: out.pop(name) for name in list(out) if name.startswith(prefix)}
                out.update({prefix + name: t for name, t in translate(cell, mine).items()})
        return out

    @staticmethod
    def derive(alphas: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> NB201Arch:
        """The argmax op of every edge (among the ops not pruned away)."""
        alpha = alphas["cell"].detach().float().cpu()
        if masks is not None:
            alpha = alpha.masked_fill(~masks["cell"].cpu(), float("-inf"))
        return NB201Arch(tuple(int(i) for i in alpha.argmax(dim=-1).tolist()))

"""Candidate operations of the DARTS and NAS-Bench-201 cell spaces, as plain ``nn.Module`` builders.

``OPS[name](C, stride, affine)`` builds a DARTS op with ``C`` input and output channels;
``NB201_OPS[name](C_in, C_out, stride, affine)`` builds an NB201 op. Layer order (ReLU -> conv -> BN)
and shapes follow the DARTS and NB201 papers' code, so derived cells match their evaluation networks.
``Zero`` keeps the output shape of the edge (strided when the edge reduces) and is a real zero, so it
contributes nothing to a mixed sum.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def avg_pool_3x3(x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """The 3x3 average pool of NB201 and DARTS: padding 1, the padding not counted.

    torch's CUDA backward for a channels_last input with padding > 0 returns wrong input gradients without any
    error: its NHWC kernel leaves the padding out of the pixel coordinates, so the gradient lands about a pixel off
    (pytorch/pytorch#188344, 2026; the same gap was reported as #107201 in 2023). Forward results are right, so
    only training shows it: our H100 searches ran channels_last and learned slower than the same code on the CPU;
    the bug emulated on the CPU (algorithms/nn/pool_bug.py) slows the CPU searches to the H100 runs' pace
    (results/drnas/GPU.md, session 13).
    A CUDA input that torch would pool with that kernel (channels innermost: channels_last, or a channel slice of
    it, as partial channels make) is therefore pooled in NCHW layout (one copy each way); elsewhere the kernel is
    right and runs as it is."""
    if x.is_cuda and _channels_innermost(x):
        return _avg_pool_3x3_nchw(x, stride)
    return F.avg_pool2d(x, 3, stride=stride, padding=1, count_include_pad=False)


def _channels_innermost(x: torch.Tensor) -> bool:
    """Whether torch takes ``x`` (N, C, H, W) for channels_last, as its pooling kernels choose their layout: the
    channels are the innermost dimension. True for a channel slice of a channels_last tensor too, which
    ``is_contiguous(memory_format=torch.channels_last)`` is not, one channel wide included (partial channels with
    as many groups as channels). A one-pixel map is left out: its layouts cannot be told apart by strides."""
    return x.dim() == 4 and x.shape[2] * x.shape[3] > 1 and x.stride(1) == 1


def _avg_pool_3x3_nchw(x: torch.Tensor, stride: int) -> torch.Tensor:
    """:func:`avg_pool_3x3` computed on an NCHW copy, the result back in channels_last layout."""
    out = F.avg_pool2d(x.contiguous(), 3, stride=stride, padding=1, count_include_pad=False)
    return out.contiguous(memory_format=torch.channels_last)


class AvgPool3x3(nn.Module):
    """:func:`avg_pool_3x3` as a module (no parameters, like the ``nn.AvgPool2d`` it stands in for)."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool_3x3(x, self.stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class ReLUConvBN(nn.Sequential):
    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True, dilation: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise dilated conv -> pointwise conv -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv(dilation 1); only the first one strides (as in DARTS)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op: zeros of the edge's output shape (spatially strided, ``C_out`` channels)."""

    def __init__(self, stride: int, C_out: int | None = None):
        super().__init__()
        self.stride = stride
        self.C_out = C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.C_out is not None and self.C_out != x.shape[1]:
            shape = (out.shape[0], self.C_out, out.shape[2], out.shape[3])
            return out.new_zeros(shape)
        return out.mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two 1x1 stride-2 convs on offset grids, concatenated."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # pad right/bottom so odd sizes work; the second conv sees the grid shifted by one pixel
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine)


#: DARTS ops: ``OPS[name](C, stride, affine)``; channels in == channels out.
OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "none": lambda C, stride, affine: Zero(stride),
    "avg_pool_3x3": lambda C, stride, affine: AvgPool3x3(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}
DARTS_PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                    "dil_conv_3x3", "dil_conv_5x5")


# --------------------------------------------------------------------------------------------------
# NAS-Bench-201
# --------------------------------------------------------------------------------------------------
class NB201Pool(nn.Module):
    """``avg_pool_3x3`` of NB201: a 1x1 ReLUConvBN first when the channel count changes."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool):
        super().__init__()
        self.preprocess = None if C_in == C_out else ReLUConvBN(C_in, C_out, 1, 1, 0, affine)
        self.pool = AvgPool3x3(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x if self.preprocess is None else self.preprocess(x))


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: two ReLUConvBN 3x3 (the first strided) plus an avg-pool + 1x1 shortcut."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ResNetBasicBlock stride must be 1 or 2, got {stride}")
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, affine)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine)
        if stride == 2:
            self.downsample: nn.Module | None = nn.Sequential(
                nn.AvgPool2d(2, stride=2, padding=0), nn.Conv2d(C_in, C_out, 1, bias=False))
        elif C_in != C_out:
            self.downsample = ReLUConvBN(C_in, C_out, 1, 1, 0, affine)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


def _nb201_skip(C_in: int, C_out: int, stride: int, affine: bool) -> nn.Module:
    if stride == 1 and C_in == C_out:
        return Identity()
    return FactorizedReduce(C_in, C_out, affine)


#: NB201 ops: ``NB201_OPS[name](C_in, C_out, stride, affine)``, keyed in :data:`benchmarks.nb201.OPS` order.
NB201_OPS: dict[str, Callable[[int, int, int, bool], nn.Module]] = {
    "none": lambda C_in, C_out, stride, affine: Zero(stride, C_out),
    "skip_connect": _nb201_skip,
    "nor_conv_1x1": lambda C_in, C_out, stride, affine: ReLUConvBN(C_in, C_out, 1, stride, 0, affine),
    "nor_conv_3x3": lambda C_in, C_out, stride, affine: ReLUConvBN(C_in, C_out, 3, stride, 1, affine),
    "avg_pool_3x3": lambda C_in, C_out, stride, affine: NB201Pool(C_in, C_out, stride, affine),
}


# --------------------------------------------------------------------------------------------------
# Mixing: the one place that says how an edge combines its candidate ops given architecture weights
# --------------------------------------------------------------------------------------------------
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups, so that the channels bypassing an op move on (PC-DARTS)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedOp(nn.Module):
    """One edge of a search cell: a weighted sum of its candidate ops.

    Partial channels (PC-DARTS, used by DrNAS's progressive scheme): only the first ``1/partial_k`` of the
    channels go through the candidates (each built for ``C // partial_k`` channels); the rest bypass the
    edge and a channel shuffle mixes the two parts. ``active`` lists the candidates still in play after
    progressive pruning; pruned ones are skipped (their weight is 0 anyway).
    """

    def __init__(self, candidates: list[nn.Module], partial_k: int = 1):
        super().__init__()
        self.ops = nn.ModuleList(candidates)
        self.partial_k = partial_k
        self.register_buffer("active", torch.ones(len(candidates), dtype=torch.bool), persistent=True)
        self._sync_active()

    def set_active(self, mask: torch.Tensor) -> None:
        self.active.copy_(mask.to(self.active.device))
        self._sync_active()

    def _load_from_state_dict(self, *args, **kwargs):  # keep the python-side lists in sync with the buffer
        super()._load_from_state_dict(*args, **kwargs)
        self._sync_active()

    def _sync_active(self) -> None:
        self._active_list = [i for i, keep in enumerate(self.active.tolist()) if keep]
        # 'none' adds exactly zero to the sum and passes zero gradient to its weight, so it is skipped
        # (unless it is all that is left); a third fewer kernels per edge
        nonzero = [i for i in self._active_list if not isinstance(self.ops[i], Zero)]
        self._summed = nonzero or self._active_list

    def forward(self, x: torch.Tensor, weights: torch.Tensor, hard_index: int | None = None) -> torch.Tensor:
        """``weights``: one weight per candidate. With ``hard_index`` (GDAS) only that op runs; the other
        weights (zero-valued, straight-through) are still added so that their gradient flows."""
        k = self.partial_k
        part = x if k == 1 else x[:, : x.shape[1] // k]
        if hard_index is None:
            out = sum(weights[i] * self.ops[i](part) for i in self._summed)
        else:
            out = weights[hard_index] * self.ops[hard_index](part)
            out = out + sum(weights[i] for i in self._active_list if i != hard_index)
        if k == 1:
            return out
        bypass = x[:, x.shape[1] // k:]
        if out.shape[2] != bypass.shape[2]:  # a reducing edge: the bypass is downsampled too (PC-DARTS)
            bypass = nn.functional.max_pool2d(bypass, 2, 2)
        return channel_shuffle(torch.cat([out, bypass], dim=1), k)


def widen_mixed_ops(old: nn.Module, new: nn.Module, momentum: dict[str, torch.Tensor],
                    generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Copy ``old``'s weights into ``new``, whose mixed ops have more channels (a smaller ``partial_k``).

    DrNAS's net2wider scheme: every widened dimension keeps the old channels first and fills the new
    ones with copies of randomly chosen old channels. One channel map per mixed op, shared by all its
    tensors, so a BN copies the statistics of the conv channel it follows. ``momentum`` (parameter name
    -> SGD momentum buffer) is widened with the same maps and returned, so the optimiser carries on.
    With the new input channels set to zero the old output channels are unchanged.
    """
    old_state, new_state = old.state_dict(), new.state_dict()
    maps: dict[str, torch.Tensor] = {}
    widened_momentum: dict[str, torch.Tensor] = {}
    prefixes = [f"{name}." if name else "" for name, m in old.named_modules() if isinstance(m, MixedOp)]

    def widen(name: str, tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        if tensor.shape == shape:
            return tensor.clone()
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is None or tensor.dim() != len(shape):
            raise ValueError(f"cannot widen {name}: {tuple(tensor.shape)} -> {tuple(shape)}")
        out = tensor
        for dim, (n_old, n_new) in enumerate(zip(tensor.shape, shape)):
            if n_old == n_new:
                continue
            key = f"{prefix}{n_old}->{n_new}"
            if key not in maps:
                maps[key] = torch.randint(0, n_old, (n_new - n_old,), generator=generator)
            index = maps[key].to(out.device)
            out = torch.cat([out, out.index_select(dim, index)], dim=dim)
        return out

    for name, target in new_state.items():
        target.copy_(widen(name, old_state[name], target.shape))
    params = dict(new.named_parameters())
    for name, buf in momentum.items():
        widened_momentum[name] = widen(name, buf, params[name].shape)
    return widened_momentum

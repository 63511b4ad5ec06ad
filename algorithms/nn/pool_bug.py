"""torch's CUDA channels_last average-pool backward bug, emulated on any device, so what it did to our GPU searches
can be measured on a CPU.

pytorch/pytorch#188344 (fixed by #188345): the NHWC kernel of ``avg_pool2d``'s CUDA backward reads each input
pixel's coordinates without adding the padding, while its window formulas expect padded coordinates. Input pixel
(h, w) therefore receives the gradient that the padded-grid position (h, w) would receive, that is the right
gradient of pixel (h - pad, w - pad): the gradient map is shifted by the padding towards the bottom right, the
first ``pad`` rows and columns get what would have reached the padding, and the last ``pad`` rows and columns
lose theirs. The forward pass is right. Our H100 searches ran every padded 3x3 pool (NB201's and DARTS's
``avg_pool_3x3``) channels_last with a torch that had this kernel.

Used through ``emulate_cuda_pool_bug = true`` (algorithms/nn/search.py): every ``avg_pool2d`` with padding
computes its forward as torch does and its backward as that kernel did. The real pools (algorithms/nn/ops.py
``avg_pool_3x3``) route around the bug; this module exists only to measure it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def window_divisors(height: int, width: int, kernel, stride, padding, count_include_pad: bool,
                    device: torch.device) -> torch.Tensor:
    """(out_h, out_w): the number each output window's sum is divided by (no ceil mode, no divisor override):
    the window's size, or its pixels inside the image when the padding is not counted."""
    ones = torch.ones(1, 1, height, width, device=device)
    inside = F.avg_pool2d(ones, kernel, stride, padding, divisor_override=1)[0, 0]  # image pixels per window
    # without ceil mode no window reaches past the padding, so counting the padding gives the kernel's size
    return torch.full_like(inside, _pair(kernel)[0] * _pair(kernel)[1]) if count_include_pad else inside


def avg_pool2d_input_grad(grad_out: torch.Tensor, input_shape: torch.Size, kernel, stride, padding,
                          count_include_pad: bool, nhwc_bug: bool) -> torch.Tensor:
    """The input gradient of ``avg_pool2d``: each output window spreads its gradient, divided by its divisor,
    over the padded grid (a transposed convolution with a ones kernel); the right gradient is the image part of
    that grid, torch's NHWC CUDA kernel before the fix took the grid's top-left corner instead."""
    channels, height, width = input_shape[1], input_shape[2], input_shape[3]
    (kh, kw), (pad_h, pad_w) = _pair(kernel), _pair(padding)
    divisors = window_divisors(height, width, kernel, stride, padding, count_include_pad, grad_out.device)
    ones = grad_out.new_ones(channels, 1, kh, kw)
    padded_grid = F.conv_transpose2d(grad_out / divisors.to(grad_out.dtype), ones, stride=_pair(stride),
                                     groups=channels)
    top, left = (0, 0) if nhwc_bug else (pad_h, pad_w)
    # the grid can be a row or column short of the image's bottom right (strided windows): those pixels get 0
    grid = F.pad(padded_grid, (0, max(0, left + width - padded_grid.shape[3]),
                               0, max(0, top + height - padded_grid.shape[2])))
    return grid[:, :, top:top + height, left:left + width].contiguous(memory_format=_layout(grad_out))


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class _BuggyAvgPool2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, count_include_pad):
        ctx.pool = (x.shape, kernel, stride, padding, count_include_pad)
        return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad)

    @staticmethod
    def backward(ctx, grad_out):
        shape, kernel, stride, padding, count_include_pad = ctx.pool
        grad_x = avg_pool2d_input_grad(grad_out, shape, kernel, stride, padding, count_include_pad, nhwc_bug=True)
        return grad_x, None, None, None, None


class EmulateCudaPoolBug(TorchFunctionMode):
    """Inside this context every ``F.avg_pool2d`` with padding (4-d input, no ceil mode, no divisor override)
    has the backward of torch's NHWC CUDA kernel before its fix; padding 0 is unaffected, as on the GPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.avg_pool2d:
            names = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                     "divisor_override")
            call = {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True,
                    "divisor_override": None, **dict(zip(names, args)), **kwargs}
            if _pair(call["padding"]) != (0, 0):
                if call["ceil_mode"] or call["divisor_override"] is not None or call["input"].dim() != 4:
                    raise NotImplementedError("pool bug emulation: 4-d input, no ceil_mode, no divisor_override")
                stride = call["stride"] if call["stride"] not in (None, []) else call["kernel_size"]
                return _BuggyAvgPool2d.apply(call["input"], call["kernel_size"], stride, call["padding"],
                                             call["count_include_pad"])
        return func(*args, **kwargs)

"""TF32 convolutions emulated in IEEE fp32, so their effect on a search can be measured on any machine.

On Ampere and later GPUs cuDNN runs fp32 convolutions on tensor cores in TF32 by default: each operand keeps 10
of its 23 mantissa bits, products are accumulated in fp32. Here every ``conv2d`` (forward, and both halves of
its backward) first rounds its operands to 10 mantissa bits (to nearest, ties to even) and then computes in
fp32, which is that arithmetic up to the order of accumulation. Matrix products are left alone, as torch
leaves them (``torch.backends.cuda.matmul.allow_tf32`` is False by default).

Used through ``precision = "tf32_emulated"`` (algorithms/nn/search.py): a diagnostic, far slower than cuDNN.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_DROPPED_BITS = 13  # fp32 has 23 mantissa bits, TF32 10


def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """``x`` (fp32) with its mantissa rounded to TF32's 10 bits, to nearest with ties to even. Values near the
    largest float may round to inf, as on the hardware; NaN stays NaN."""
    bits = x.view(torch.int32)  # same item size: a view for any strides (channels_last stays)
    keep_lsb = (bits >> _DROPPED_BITS) & 1  # ties go to the even neighbour
    half = (1 << (_DROPPED_BITS - 1)) - 1
    rounded = (bits + half + keep_lsb) & ~((1 << _DROPPED_BITS) - 1)
    rounded = torch.where(torch.isnan(x), bits, rounded)  # a carry must not turn NaN into inf
    return rounded.view(torch.float32)


class _TF32Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        x32, w32 = round_to_tf32(x), round_to_tf32(weight)
        ctx.save_for_backward(x32, w32)
        ctx.conv = (stride, padding, dilation, groups, bias is not None)
        return F.conv2d(x32, w32, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x32, w32 = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conv
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            round_to_tf32(grad_out), x32, w32, None, _pair(stride), _pair(padding), _pair(dilation), False, [0, 0],
            groups, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        # the bias gradient is a plain fp32 reduction, not a tensor-core product
        grad_b = grad_out.sum((0, 2, 3)) if has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None, None


def _pair(value) -> list[int]:
    return [value, value] if isinstance(value, int) else list(value)


class EmulateTF32Convolutions(TorchFunctionMode):
    """Inside this context every fp32 ``F.conv2d`` (``nn.Conv2d`` included) computes as a TF32 convolution."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d and args[0].dtype == torch.float32:
            names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
            defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
            call = {**defaults, **dict(zip(names, args)), **kwargs}
            if isinstance(call["padding"], str):
                raise NotImplementedError("tf32 emulation: string padding ('same'/'valid') is not supported")
            return _TF32Conv2d.apply(*(call[name] for name in names))
        return func(*args, **kwargs)

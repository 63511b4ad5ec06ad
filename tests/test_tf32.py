"""TF32 convolutions emulated in IEEE fp32 (algorithms/nn/tf32.py), and ``precision = "tf32_emulated"``."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from algorithms.nn.tf32 import EmulateTF32Convolutions, round_to_tf32
from test_drnas import alpha_after_steps


def test_rounding_keeps_ten_mantissa_bits_to_nearest_with_ties_to_even():
    ulp = 2.0 ** -10  # TF32's spacing in [1, 2)
    cases = {1.0 + ulp / 2: 1.0,  # a tie, to the even neighbour (down)
             1.0 + 3 * ulp / 2: 1.0 + 2 * ulp,  # a tie, to the even neighbour (up)
             1.0 + ulp / 2 + 2.0 ** -20: 1.0 + ulp,  # above the tie
             2.0 - ulp / 4: 2.0,  # the carry reaches the exponent
             -3.14159: -3.140625, 0.0: 0.0, float("inf"): float("inf")}
    x = torch.tensor(list(cases))
    assert round_to_tf32(x).tolist() == list(cases.values())
    assert torch.isnan(round_to_tf32(torch.tensor([float("nan")]))).all()
    y = torch.randn(10_000, generator=torch.Generator().manual_seed(0)) * 1e3
    rounded = round_to_tf32(y)
    assert (rounded.view(torch.int32) & 0x1FFF == 0).all()
    assert ((rounded - y).abs() <= y.abs() * 2.0 ** -11).all()
    assert not torch.equal(rounded, y)


@pytest.mark.parametrize("channels_last", [False, True])
def test_emulated_convolution_is_the_exact_convolution_of_rounded_operands(channels_last):
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2, bias=True)
    x = torch.randn(2, 4, 9, 9, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    with EmulateTF32Convolutions():
        y = conv(x)
    grad_out = torch.randn(y.shape, generator=g)
    y.backward(grad_out)

    # the reference: fp64 arithmetic on the TF32-rounded operands (the bias gradient stays unrounded)
    xr, wr, gr = (round_to_tf32(t.detach()).double() for t in (x, conv.weight, grad_out))
    ref_y = F.conv2d(xr, wr, conv.bias.detach().double(), stride=2, padding=1)
    ref_gx, ref_gw, _ = torch.ops.aten.convolution_backward(gr, xr, wr, None, [2, 2], [1, 1], [1, 1], False, [0, 0],
                                                            1, [True, True, False])
    torch.testing.assert_close(y.detach().double(), ref_y, rtol=0, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), ref_gx, rtol=0, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad.double(), ref_gw, rtol=0, atol=1e-5)
    torch.testing.assert_close(conv.bias.grad, grad_out.sum((0, 2, 3)))
    # and it is not plain fp32: the rounding is visible
    assert (y.detach() - conv(x).detach()).abs().max() > 1e-5


def test_tf32_emulated_search_steps_part_from_fp32_ones():
    """Paired (same seeds and batches): the emulation reaches the search's convolutions."""
    assert not torch.equal(alpha_after_steps(precision="fp32"), alpha_after_steps(precision="tf32_emulated"))

"""torch's CUDA channels_last average-pool backward bug emulated on any device (algorithms/nn/pool_bug.py), and
``emulate_cuda_pool_bug = true`` in a search."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from algorithms.nn.pool_bug import EmulateCudaPoolBug, avg_pool2d_input_grad
from test_drnas import alpha_after_steps

# (height, width, kernel, stride, padding, count_include_pad): NB201 / DARTS pools, odd sizes, the repro
GEOMETRIES = [(8, 8, 3, 1, 1, False), (8, 8, 3, 2, 1, False), (7, 9, 3, 2, 1, False), (5, 6, 3, 1, 1, True),
              (4, 4, 2, 1, 1, True), (9, 7, 5, 2, 2, False)]


def cuda_kernel_backward(grad_out: torch.Tensor, height: int, width: int, kernel: int, stride: int, padding: int,
                         count_include_pad: bool, nhwc_bug: bool) -> torch.Tensor:
    """torch's CUDA avg_pool2d backward kernel, transcribed loop for loop (AveragePool2d.cu,
    avg_pool2d_backward_out_cuda_frame): the NCHW kernel adds the padding to the pixel's coordinates, the NHWC one
    did not before pytorch/pytorch#188345."""
    out_h, out_w = grad_out.shape[2:]
    grad_in = torch.zeros(grad_out.shape[0], grad_out.shape[1], height, width, dtype=torch.float64)
    offset = 0 if nhwc_bug else padding
    for y in range(height):
        for x in range(width):
            h, w = y + offset, x + offset
            ph_start = 0 if h < kernel else (h - kernel) // stride + 1
            ph_end = min(h // stride + 1, out_h)
            pw_start = 0 if w < kernel else (w - kernel) // stride + 1
            pw_end = min(w // stride + 1, out_w)
            total = torch.zeros(grad_out.shape[:2], dtype=torch.float64)
            for ph in range(ph_start, ph_end):
                for pw in range(pw_start, pw_end):
                    h0, w0 = ph * stride - padding, pw * stride - padding
                    h1, w1 = min(h0 + kernel, height + padding), min(w0 + kernel, width + padding)
                    pool_size = (h1 - h0) * (w1 - w0)
                    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, height), min(w1, width)
                    if h0 >= h1 or w0 >= w1:
                        continue
                    divisor = pool_size if count_include_pad else (h1 - h0) * (w1 - w0)
                    total += grad_out[:, :, ph, pw].double() / divisor
            grad_in[:, :, y, x] = total
    return grad_in


def _grad_out(height, width, kernel, stride, padding, count_include_pad):
    x = torch.zeros(2, 3, height, width, dtype=torch.float64)
    shape = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad).shape
    return x, torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(height * width))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_the_emulated_kernels_are_the_cuda_kernels_and_the_right_one_is_torchs_gradient(geometry):
    height, width, kernel, stride, padding, count_include_pad = geometry
    x, grad_out = _grad_out(*geometry)
    x.requires_grad_()
    F.avg_pool2d(x, kernel, stride, padding, count_include_pad=count_include_pad).backward(grad_out)
    for nhwc_bug in (False, True):
        ours = avg_pool2d_input_grad(grad_out, x.shape, kernel, stride, padding, count_include_pad, nhwc_bug)
        kernel_loops = cuda_kernel_backward(grad_out, height, width, kernel, stride, padding, count_include_pad,
                                            nhwc_bug)
        torch.testing.assert_close(ours, kernel_loops, rtol=0, atol=1e-12)
        if not nhwc_bug:
            torch.testing.assert_close(ours, x.grad, rtol=0, atol=1e-12)
    # the bug is visible in every padded geometry
    assert not torch.allclose(kernel_loops, x.grad)


def test_the_mode_changes_the_backward_of_padded_pools_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=g).contiguous(memory_format=torch.channels_last)
    for args, kwargs, bugged in [((3, 1, 1), {"count_include_pad": False}, True),
                                 ((3,), {"stride": 2, "padding": 1}, True),
                                 ((2, 2), {}, False)]:  # NB201's reduction-block pool: no padding, no bug
        plain, emulated = x.clone().requires_grad_(), x.clone().requires_grad_()
        out = F.avg_pool2d(plain, *args, **kwargs)
        with EmulateCudaPoolBug():
            out_emulated = F.avg_pool2d(emulated, *args, **kwargs)
        torch.testing.assert_close(out_emulated, out, rtol=0, atol=0)
        grad = torch.randn(out.shape, dtype=torch.float64, generator=g)
        out.backward(grad)
        out_emulated.backward(grad)
        assert torch.equal(plain.grad, emulated.grad) != bugged
        assert emulated.grad.is_contiguous(memory_format=torch.channels_last)


def test_the_mode_refuses_what_it_does_not_emulate():
    with EmulateCudaPoolBug(), pytest.raises(NotImplementedError):
        F.avg_pool2d(torch.randn(1, 2, 5, 5), 3, 2, 1, ceil_mode=True)


def test_emulate_cuda_pool_bug_reaches_the_search():
    """Paired (same seeds and batches): the flag changes the search's steps."""
    assert not torch.equal(alpha_after_steps(), alpha_after_steps(emulate_cuda_pool_bug=True))

"""The supernet stack: ops, mixing, NB201 / DARTS search networks, derivation, progressive widening."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from algorithms.nn.darts_supernet import DartsSupernet
from algorithms.nn.nb201_supernet import FusedNB201SearchCell, NB201SearchCell, NB201Supernet
from algorithms.nn.ops import (DARTS_PRIMITIVES, NB201_OPS, OPS, MixedOp, ResNetBasicBlock, channel_shuffle,
                               widen_mixed_ops)
from algorithms.nn.search import load_hparams, make_search
from algorithms.oneshot_baselines import GDAS
from benchmarks.nb201 import OPS as NB201_NAMES, parse
from nasrepro.errors import ConfigError


@pytest.mark.parametrize("name", DARTS_PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_darts_ops_keep_channels_and_stride(name, stride):
    x = torch.randn(2, 8, 16, 16)
    assert OPS[name](8, stride, False)(x).shape == (2, 8, 16 // stride, 16 // stride)


@pytest.mark.parametrize("name", NB201_NAMES)
def test_nb201_ops_shapes(name):
    x = torch.randn(2, 8, 8, 8)
    assert NB201_OPS[name](8, 8, 1, False)(x).shape == x.shape
    assert NB201_OPS[name](8, 16, 2, False)(x).shape == (2, 16, 4, 4)
    assert ResNetBasicBlock(8, 16, 2)(x).shape == (2, 16, 4, 4)


def test_none_is_zero():
    x = torch.randn(2, 4, 8, 8)
    assert not OPS["none"](4, 1, False)(x).any()
    assert not NB201_OPS["none"](4, 8, 2, False)(x).any()


def test_mixed_op_is_the_weighted_sum_of_active_candidates():
    torch.manual_seed(0)
    ops = [OPS[n](4, 1, False) for n in ("skip_connect", "avg_pool_3x3", "sep_conv_3x3")]
    mixed = MixedOp(ops, partial_k=1).eval()
    x, w = torch.randn(2, 4, 6, 6), torch.tensor([0.2, 0.3, 0.5])
    expected = sum(wi * op(x) for wi, op in zip(w, ops))
    assert torch.allclose(mixed(x, w), expected, atol=1e-6)
    mixed.set_active(torch.tensor([True, False, True]))
    assert torch.allclose(mixed(x, w), w[0] * ops[0](x) + w[2] * ops[2](x), atol=1e-6)


def test_skipping_none_changes_neither_output_nor_weight_gradient():
    torch.manual_seed(0)
    ops = [NB201_OPS[n](4, 4, 1, False) for n in NB201_NAMES]
    mixed = MixedOp(ops)
    x = torch.randn(2, 4, 6, 6)
    w1 = torch.softmax(torch.randn(5), 0).requires_grad_()
    w2 = w1.detach().clone().requires_grad_()
    out = mixed(x, w1)
    explicit = sum(w * op(x) for w, op in zip(w2, ops))
    assert torch.allclose(out, explicit, atol=1e-6)
    out.sum().backward()
    explicit.sum().backward()
    assert torch.allclose(w1.grad, w2.grad, atol=1e-5)


def test_partial_channels_pass_the_rest_through_and_shuffle():
    mixed = MixedOp([OPS["none"](2, 1, False)], partial_k=4)
    x = torch.randn(1, 8, 4, 4)
    out = mixed(x, torch.tensor([1.0]))
    # first quarter zeroed by 'none', the rest bypasses; the shuffle interleaves the 4 groups
    assert torch.equal(out, channel_shuffle(torch.cat([torch.zeros(1, 2, 4, 4), x[:, 2:]], 1), 4))
    reducing = MixedOp([OPS["max_pool_3x3"](2, 2, False)], partial_k=4)
    assert reducing(x, torch.tensor([1.0])).shape == (1, 8, 2, 2)


def test_nb201_supernet_forward_and_argmax_derivation():
    net = NB201Supernet(C=4, N=1, num_classes=10)
    weights = {"cell": torch.full((6, 5), 0.2)}
    assert net(torch.randn(2, 3, 8, 8), weights).shape == (2, 10)
    arch = parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    alpha = torch.zeros(6, 5)
    alpha[torch.arange(6), torch.tensor(arch.ops)] = 1.0
    assert NB201Supernet.derive({"cell": alpha}) == arch
    # a pruned op cannot be derived even when its alpha is the largest
    mask = torch.ones(6, 5, dtype=torch.bool)
    mask[0, arch.ops[0]] = False
    assert NB201Supernet.derive({"cell": alpha}, {"cell": mask}).ops[0] != arch.ops[0]


def test_darts_derivation_takes_top2_edges_and_never_none():
    net = DartsSupernet(C=4, layers=3, primitives=DARTS_PRIMITIVES)
    assert net(torch.randn(2, 3, 8, 8), {k: torch.full((14, 8), 1 / 8) for k in net.cell_types}).shape == (2, 10)
    alpha = torch.zeros(14, 8)
    none, sep3, dil5 = (DARTS_PRIMITIVES.index(n) for n in ("none", "sep_conv_3x3", "dil_conv_5x5"))
    alpha[:, none] = 10.0  # 'none' dominates every edge, and must still never be chosen
    # node 0 (edges 0, 1): both inputs; node 1 (edges 2-4): edges from states 2 and 0
    alpha[0, sep3], alpha[1, dil5] = 2.0, 1.0
    alpha[2, sep3], alpha[4, dil5], alpha[3, sep3] = 3.0, 2.5, 0.5
    genotype = net.derive({"normal": alpha, "reduce": alpha})
    assert all(op != "none" for op, _ in genotype.normal)
    assert set(genotype.normal[:2]) == {("sep_conv_3x3", 0), ("dil_conv_5x5", 1)}
    assert set(genotype.normal[2:4]) == {("sep_conv_3x3", 0), ("dil_conv_5x5", 2)}
    assert all(src < 2 + node for node in range(4) for _, src in genotype.normal[2 * node:2 * node + 2])


def test_widening_keeps_old_channels_and_carries_momentum():
    torch.manual_seed(0)
    old = MixedOp([NB201_OPS[n](2, 2, 1, False) for n in NB201_NAMES], partial_k=4).eval()
    new = MixedOp([NB201_OPS[n](4, 4, 1, False) for n in NB201_NAMES], partial_k=2).eval()
    for m in old.modules():  # non-trivial BN statistics, so that copying them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    momentum = {n: torch.randn_like(p) for n, p in old.named_parameters()}
    widened = widen_mixed_ops(old, new, momentum, torch.Generator().manual_seed(0))
    for name, p in new.named_parameters():
        assert widened[name].shape == p.shape
        old_p = dict(old.named_parameters())[name]
        assert torch.equal(p[tuple(slice(0, s) for s in old_p.shape)], old_p)  # old weights are a sub-block
    # with the new input channels zero, every candidate's old output channels are unchanged
    x_old = torch.randn(3, 2, 5, 5)
    x_new = torch.cat([x_old, torch.zeros(3, 2, 5, 5)], dim=1)
    for op_old, op_new in zip(old.ops, new.ops):
        assert torch.allclose(op_new(x_new)[:, :2], op_old(x_old), atol=1e-6)


def test_progressive_stage_keeps_topk_ops_and_widens():
    hparams = load_hparams("drnas", "drnas_nb201_progressive",
                           dict(channels=8, cells=1, image_size=8, precision="fp32", channels_last=False,
                                stage_epochs=[1, 1], arch_warmup_epochs=[1, 0],
                                fused_cells=False))  # it inspects the per-edge cell's modules
    from algorithms.drnas import DrNAS
    search = make_search(DrNAS, hparams, 0)
    search.adapt_search_space("nb201", "cifar10")
    search.new_epoch(0)
    assert not search.arch_active  # warm-up epoch of stage 0: no architecture steps
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    search.step((x, y), (x, y))
    with torch.no_grad():
        search.alphas["cell"].copy_(torch.arange(30, dtype=torch.float32).view(6, 5).flip(1))  # ops 0,1,2 best
    first_cell = search.model.cells[0]
    assert first_cell.edges[0].ops[3][1].in_channels == 2  # nor_conv_3x3 at C/K = 8/4
    search.new_epoch(1)
    assert search.stage == 1 and search.arch_active
    assert torch.equal(search.masks["cell"], torch.tensor([[True] * 3 + [False] * 2] * 6))
    first_cell = search.model.cells[0]
    assert first_cell.edges[0].ops[3][1].in_channels == 4  # widened to C/K = 8/2
    assert first_cell.edges[0]._active_list == [0, 1, 2]
    buffers = [s["momentum_buffer"] for s in search.weight_optimizer.state.values()]
    assert buffers and all(b.abs().sum() > 0 for b in buffers if b.numel() > 1)
    assert search.weight_optimizer.param_groups[0]["lr"] < hparams["lr"]  # the cosine schedule carried on
    search.step((x, y), (x, y))
    assert str(search.get_final_architecture()).count("nor_conv_3x3") == 0


@pytest.mark.parametrize("stage_lr", ["continue", "restart"])
def test_stage_lr_continues_the_cosine_or_restarts_it_as_the_official_code(stage_lr):
    lr, lr_min, epochs, start = 0.025, 0.001, [3, 3], 3
    hparams = load_hparams("drnas", "drnas_nb201_progressive",
                           dict(channels=4, cells=1, image_size=8, precision="fp32", channels_last=False,
                                stage_epochs=epochs, arch_warmup_epochs=[0, 0], fused_cells=False, lr=lr,
                                lr_min=lr_min, cuda_graphs=False, stage_lr=stage_lr))
    from algorithms.drnas import DrNAS
    search = make_search(DrNAS, hparams, 0)
    search.adapt_search_space("nb201", "cifar10")
    seen = []
    for epoch in range(sum(epochs)):
        search.new_epoch(epoch)
        seen.append(search.weight_optimizer.param_groups[0]["lr"])
    total = sum(epochs)
    cosine = [lr_min + (lr - lr_min) * (1 + math.cos(math.pi * e / total)) / 2 for e in range(total)]
    if stage_lr == "continue":
        expected = cosine
    else:  # torch's recursive CosineAnnealingLR applied to the restarted lr, as configure_scheduler leaves it
        expected = cosine[:start] + [lr_min + (lr - lr_min) * (1 + math.cos(math.pi * e / total))
                                     / (1 + math.cos(math.pi * start / total)) for e in range(start, total)]
    assert seen == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ConfigError, match="stage_lr"):
        make_search(DrNAS, {**hparams, "stage_lr": "warm"}, 0)


def test_gdas_hard_forward_runs_one_op_per_edge():
    hparams = load_hparams("drnas", "gdas_nb201", dict(channels=4, cells=1, precision="fp32",
                                                       channels_last=False))
    search = make_search(GDAS, hparams, 0)
    search.adapt_search_space("nb201", "cifar10")
    search.new_epoch(0)
    calls = []
    for mixed in (m for m in search.model.modules() if isinstance(m, MixedOp)):
        for i, op in enumerate(mixed.ops):
            op.register_forward_hook(lambda mod, inp, out, i=i, mixed=mixed: calls.append((id(mixed), i)))
    weights, hard = search.mixing_weights("cell")
    assert torch.equal(weights.detach(), F.one_hot(torch.tensor(hard), 5).float())
    search.model(torch.randn(2, 3, 8, 8), {"cell": weights}, {"cell": hard})
    per_edge = {}
    for edge, op in calls:
        per_edge.setdefault(edge, set()).add(op)
    assert len(per_edge) == 3 * 6 and all(len(ops) == 1 for ops in per_edge.values())
    weights.sum().backward()  # straight-through: the soft sample's gradient reaches alpha
    assert search.alphas["cell"].grad is not None


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("partial_k,pruned", [(1, False), (4, False), (2, True)])
def test_fused_cell_computes_the_per_edge_cell(channels_last, partial_k, pruned):
    torch.manual_seed(0)
    cell, fused = NB201SearchCell(8, partial_k), FusedNB201SearchCell(8, partial_k)
    mask = torch.rand(6, 5).argsort(dim=1) < 3 if pruned else torch.ones(6, 5, dtype=torch.bool)
    for e, mixed in enumerate(cell.edges):  # pruned: other ops on every edge, as after a progressive stage
        mixed.set_active(mask[e])
    for m in cell.modules():  # non-trivial BN statistics, so that translating them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    fused.load_state_dict(fused.fused_state(cell.state_dict()))
    assert sum(p.numel() for p in fused.parameters()) == sum(p.numel() for p in cell.parameters())
    x = torch.randn(4, 8, 6, 6)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weights = torch.rand(6, 5)
    w_cell, w_fused = weights.clone().requires_grad_(), weights.clone().requires_grad_()
    x_cell, x_fused = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_cell, out_fused = cell(x_cell, w_cell), fused(x_fused, w_fused)
    assert torch.allclose(out_cell, out_fused, atol=1e-5)
    if partial_k == 1:  # (the channel shuffle of partial channels returns NCHW, in both cells)
        assert out_fused.is_contiguous(memory_format=torch.channels_last) == channels_last
    grad = torch.randn_like(out_cell)
    (out_cell * grad).sum().backward()
    (out_fused * grad).sum().backward()
    # a pruned op is skipped (no gradient to its weight) by one cell and weighted 0 by the other
    assert torch.allclose(w_cell.grad.where(mask, 0.0), w_fused.grad.where(mask, 0.0), atol=1e-4)
    assert torch.allclose(x_cell.grad, x_fused.grad, atol=1e-5)
    # weight gradients and BN statistics, edge by edge, through the name translation (a pruned op's BN
    # statistics move in the fused cell only, where it still runs; nothing uses them)
    translated = fused.per_edge_state({**fused.state_dict(), **{n: p.grad for n, p in fused.named_parameters()}})
    for name, value in cell.state_dict().items():
        if name.endswith(("running_mean", "running_var", "active")) and _in_use(name, mask):
            assert torch.allclose(translated[name].to(value.dtype), value, atol=1e-6), name
    for name, p in cell.named_parameters():
        assert torch.allclose(translated[name], p.grad if p.grad is not None else torch.zeros_like(p), atol=1e-4), name


def _in_use(name: str, mask: torch.Tensor) -> bool:
    """Whether a per-edge tensor name (``[cells.i.]edges.e.ops.o....``) belongs to an op not pruned by ``mask``;
    every tensor outside the ops is in use."""
    parts = name.split(".")
    if "ops" not in parts:
        return True
    at = parts.index("ops")
    return bool(mask[int(parts[at - 1]), int(parts[at + 1])])


@pytest.mark.parametrize("affine", [False, True])
def test_fused_state_translation_round_trips_and_refuses_partial_input(affine):
    fused = FusedNB201SearchCell(8, 2, affine=affine)
    state = {n: torch.randn(t.shape) if t.is_floating_point() else t for n, t in fused.state_dict().items()}
    back = fused.fused_state(fused.per_edge_state(state))
    assert back.keys() == state.keys() and all(torch.equal(back[n], state[n]) for n in state)
    assert set(fused.per_edge_state(state)) == set(NB201SearchCell(8, 2, affine=affine).state_dict())
    for dropped in ("edges.0.ops.3.1.weight", "edges.4.active"):
        per_edge = fused.per_edge_state(state)
        del per_edge[dropped]
        with pytest.raises(ValueError, match="incomplete"):
            fused.fused_state(per_edge)


def test_fused_cell_loads_a_state_saved_before_pruning_support():
    """Checkpoints of the plain fused search written before the cell had an ``active`` buffer still load."""
    fused = FusedNB201SearchCell(8)
    fused.set_active(torch.zeros(6, 5, dtype=torch.bool))
    old = {n: t for n, t in FusedNB201SearchCell(8).state_dict().items() if n != "active"}
    fused.load_state_dict(old)
    assert bool(fused.active.all())


def test_fused_cells_need_soft_mixing_on_nb201():
    from algorithms.drnas import DrNAS
    base = dict(channels=4, cells=1, precision="fp32", channels_last=False)
    for section in ("drnas_nb201", "drnas_nb201_progressive"):
        search = make_search(DrNAS, load_hparams("drnas", section, {**base, "fused_cells": True}), 0)
        search.adapt_search_space("nb201", "cifar10")
        assert isinstance(search.model.cells[0], FusedNB201SearchCell)
    with pytest.raises(ConfigError, match="fused_cells"):
        make_search(GDAS, load_hparams("drnas", "gdas_nb201", {**base, "fused_cells": True}), 0)
    for wrong in ([True], [True, False, True], ["yes", "no"]):  # one flag per stage of the two-stage search
        with pytest.raises(ConfigError, match="one of them per stage"):
            make_search(DrNAS, load_hparams("drnas", "drnas_nb201_progressive", {**base, "fused_cells": wrong}), 0)


@pytest.mark.parametrize("fused_cells", [True, [True, False], [False, True]])
def test_fused_progressive_search_follows_the_per_edge_one_across_the_stage_change(fused_cells):
    """Pruning and widening the fused network (through per-edge twins) gives the per-edge search's network:
    same seed, same start, the same weights and momentum after the stage change and after one more step.
    Also when only one of the two stages runs fused cells."""
    from algorithms.drnas import DrNAS
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    preference = torch.rand(6, 5, generator=torch.Generator().manual_seed(0))  # other kept ops on every edge
    searches = []
    for fused in (False, fused_cells):
        hparams = load_hparams("drnas", "drnas_nb201_progressive",
                               dict(channels=8, cells=1, image_size=8, precision="fp32", channels_last=False,
                                    stage_epochs=[1, 1], arch_warmup_epochs=[1, 0], fused_cells=fused))
        search = make_search(DrNAS, hparams, 0)
        search.adapt_search_space("nb201", "cifar10")
        if fused is not False:  # the same initial weights (the networks draw their initialisations differently)
            search.model.load_state_dict(search.model.fused_state(searches[0][1]))
        start = {name: t.clone() for name, t in search.model.state_dict().items()}
        search.new_epoch(0)
        search.step((x, y), (x, y))
        with torch.no_grad():
            search.alphas["cell"].copy_(preference)
        search.new_epoch(1)  # prune to 3 ops per edge and widen K 4 -> 2
        widened = _state_with_momentum(search)
        search.step((x, y), (x, y))
        searches.append((search, start, widened, _state_with_momentum(search)))
    (per_edge, _, *per_edge_states), (fused, _, *fused_states) = searches
    assert torch.equal(per_edge.masks["cell"], fused.masks["cell"]) and not bool(fused.masks["cell"].all())
    assert torch.allclose(per_edge.alphas["cell"], fused.alphas["cell"], atol=1e-6)
    for expected, got in zip(per_edge_states, fused_states):
        got = {kind: fused.model.per_edge_state(tensors) for kind, tensors in got.items()}
        for kind, name, value in ((kind, n, v) for kind, tensors in expected.items() for n, v in tensors.items()):
            # a pruned op's tensors are unused: the fused cell still runs it (BN statistics move) and SGD's
            # weight decay still moves its weights, where the per-edge cell skips it
            if _in_use(name, fused.masks["cell"]):
                assert torch.allclose(got[kind][name].to(value.dtype), value, atol=1e-5), (kind, name)


def _state_with_momentum(search) -> dict:
    names = {id(p): n for n, p in search.model.named_parameters()}
    momentum = {names[id(p)]: s["momentum_buffer"] for p, s in search.weight_optimizer.state.items()}
    return {"state": search.model.state_dict(), "momentum": momentum}


# -- the 3x3 average pool: torch's CUDA NHWC backward with padding is wrong (pytorch/pytorch#188344) ---------------
def _pool_input(device="cpu", stride=1):
    x = torch.randn(4, 16, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(stride))
    return x.contiguous(memory_format=torch.channels_last).to(device).requires_grad_()


def _pool_grad(pool, x, stride):
    out = pool(x, stride)
    grad = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(7)).to(out.device)
    (out * grad).sum().backward()
    return out.detach().cpu(), x.grad.detach().cpu()


def _torch_pool(x, stride):
    return F.avg_pool2d(x, 3, stride=stride, padding=1, count_include_pad=False)


@pytest.mark.parametrize("stride", [1, 2])
def test_the_nchw_route_of_the_pool_is_the_pool_forward_and_backward(stride):
    from algorithms.nn.ops import _avg_pool_3x3_nchw

    out, grad = _pool_grad(_avg_pool_3x3_nchw, _pool_input(stride=stride), stride)
    reference_out, reference_grad = _pool_grad(_torch_pool, _pool_input(stride=stride), stride)
    torch.testing.assert_close(out, reference_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, reference_grad, rtol=0, atol=1e-12)
    assert _avg_pool_3x3_nchw(_pool_input(stride=stride), stride).is_contiguous(memory_format=torch.channels_last)


def test_the_guard_knows_what_torch_pools_as_channels_last():
    """torch picks its NHWC pooling kernel for every tensor whose channels are innermost, a channel slice of a
    channels_last tensor (partial channels) included; the guard must route exactly those."""
    from algorithms.nn.ops import _channels_innermost

    nchw = torch.randn(2, 16, 8, 8)
    nhwc = nchw.contiguous(memory_format=torch.channels_last)
    assert _channels_innermost(nhwc) and _channels_innermost(nhwc[:, :4]) and _channels_innermost(nhwc[:, :1])
    assert not _channels_innermost(nchw) and not _channels_innermost(nchw[:, :4])
    assert not _channels_innermost(nchw[:, :1]) and not _channels_innermost(torch.randn(2, 1, 8, 8))
    # what torch itself does with the slices: its pooled output comes back channels innermost, a one-channel
    # slice's too (which is_contiguous cannot tell from NCHW), and NCHW for a one-channel NCHW tensor
    for sliced in (nhwc[:, :4], nhwc[:, :1]):
        assert _torch_pool(sliced, 1).stride(1) == 1
    assert _torch_pool(torch.randn(2, 1, 8, 8), 1).stride(1) == 64


def test_every_3x3_average_pool_goes_through_the_guarded_pool(monkeypatch):
    """No network builds a padded nn.AvgPool2d (whose CUDA channels_last backward is wrong); the fused NB201 cell
    calls the guarded function for each of its three source nodes."""
    from algorithms.nn import nb201_supernet
    from algorithms.nn.darts_net import NetworkCIFAR, parse_genotype
    from algorithms.nn.ops import AvgPool3x3

    edges = ", ".join(["('avg_pool_3x3', 0), ('avg_pool_3x3', 1)"] * 4)
    pool_everywhere = parse_genotype(f"Genotype(normal=[{edges}], normal_concat=range(2, 6), "
                                     f"reduce=[{edges}], reduce_concat=range(2, 6))")
    networks = [NB201Supernet(8, 1), NB201Supernet(8, 1, fused=True), DartsSupernet(8, 3),
                NetworkCIFAR(pool_everywhere, 8, 10, 3, auxiliary=True)]
    for network in networks:
        padded = [m for m in network.modules() if isinstance(m, torch.nn.AvgPool2d) and m.padding != 0]
        assert not padded, type(network).__name__
    assert any(isinstance(m, AvgPool3x3) for m in networks[0].modules())
    calls = []
    monkeypatch.setattr(nb201_supernet, "avg_pool_3x3", lambda h: calls.append(1) or _torch_pool(h, 1))
    FusedNB201SearchCell(8)(torch.randn(2, 8, 6, 6), torch.rand(6, 5))
    assert len(calls) == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channel_slice", [False, True])
def test_the_guarded_pool_on_cuda_channels_last_is_the_cpus(stride, channel_slice):
    from algorithms.nn.ops import avg_pool_3x3

    def sliced(pool):  # the first 4 channels, as a partial-channel op pools them
        return (lambda x, s: pool(x[:, :4], s)) if channel_slice else pool

    out, grad = _pool_grad(sliced(avg_pool_3x3), _pool_input("cuda", stride), stride)
    reference_out, reference_grad = _pool_grad(sliced(_torch_pool), _pool_input("cpu", stride), stride)
    torch.testing.assert_close(out, reference_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, reference_grad, rtol=0, atol=1e-10)


def _relative_error(gradient, reference):
    return ((gradient - reference).norm() / reference.norm()).item()


#: padded max pools (DARTS's max_pool_3x3), the NB201 residual block's 2x2 pool, the auxiliary head's 5x5 pool, the
#: global pool: their CUDA channels_last kernels are checked exactly, in float64, as the average pool above
OTHER_POOLS = {"max3x3_s1": lambda: torch.nn.MaxPool2d(3, 1, padding=1),
               "max3x3_s2": lambda: torch.nn.MaxPool2d(3, 2, padding=1),
               "avg2x2_s2": lambda: torch.nn.AvgPool2d(2, 2),
               "aux5x5_s3": lambda: torch.nn.AvgPool2d(5, 3, count_include_pad=False),
               "global": lambda: torch.nn.AdaptiveAvgPool2d(1)}
#: convolutions of the NB201 and DARTS ops (stem, 1x1, 3x3, strided, separable's depthwise 3x3 / 5x5, dilated)
CONVOLUTIONS = {"stem": dict(in_channels=3, out_channels=16, kernel_size=3, padding=1),
                "1x1": dict(in_channels=16, out_channels=16, kernel_size=1),
                "3x3_s2": dict(in_channels=16, out_channels=32, kernel_size=3, stride=2, padding=1),
                "depthwise3x3": dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, groups=16),
                "depthwise5x5_s2": dict(in_channels=16, out_channels=16, kernel_size=5, stride=2, padding=2, groups=16),
                "dilated3x3": dict(in_channels=16, out_channels=16, kernel_size=3, padding=2, dilation=2, groups=16),
                "dilated5x5": dict(in_channels=16, out_channels=16, kernel_size=5, padding=4, dilation=2, groups=16)}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(OTHER_POOLS))
@pytest.mark.parametrize("channel_slice", [False, True])
def test_the_other_pools_on_cuda_channels_last_are_the_cpus(name, channel_slice):
    def pooled(x, stride):  # stride is _pool_grad's; the pool has its own
        return OTHER_POOLS[name]()(x[:, :4] if channel_slice else x)

    out, grad = _pool_grad(pooled, _pool_input("cuda"), 1)
    reference_out, reference_grad = _pool_grad(pooled, _pool_input("cpu"), 1)
    torch.testing.assert_close(out, reference_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, reference_grad, rtol=0, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(CONVOLUTIONS))
def test_convolutions_and_batch_norm_on_cuda_channels_last_are_the_cpus(name, no_tf32):
    """fp32 without TF32 on CUDA channels_last (cuDNN keeps channels_last only below float64) against float64 on
    the CPU: output, input gradient and weight gradients of a convolution followed by a training-mode batch norm
    agree to fp32 rounding (relative L2 error 1e-6 on this CPU; an indexing fault is of order 1)."""
    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Conv2d(**CONVOLUTIONS[name], bias=False),
                                torch.nn.BatchNorm2d(CONVOLUTIONS[name]["out_channels"]))
    x = torch.randn(8, CONVOLUTIONS[name]["in_channels"], 32, 32, generator=torch.Generator().manual_seed(1))

    def run(device, dtype):
        model = copy.deepcopy(layer).to(device, dtype)
        inputs = x.to(device, dtype)
        if device == "cuda":
            model = model.to(memory_format=torch.channels_last)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        inputs.requires_grad_()
        out = model(inputs)
        assert device == "cpu" or out.is_contiguous(memory_format=torch.channels_last), (
            "not a kernel fault: torch ran this convolution in NCHW, so the check does not see its NHWC kernel")
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(device, dtype)
        (out * grad).sum().backward()
        return [t.detach().cpu().double() for t in (out, inputs.grad, *(p.grad for p in model.parameters()))]

    for got, want in zip(run("cuda", torch.float32), run("cpu", torch.float64)):
        assert _relative_error(got, want) < 1e-4


def _small_network(kind):
    """A small network of ``kind`` and its loss on a batch, ``(model, x, y) -> loss``."""
    from algorithms.nn.darts_net import NetworkCIFAR
    from algorithms.nn.train import resolve_genotype

    torch.manual_seed(0)
    if kind.startswith("nb201"):  # "nb201_fused": the plain search's network; "_partial": the progressive one's
        network = NB201Supernet(8, 2, partial_k=4 if "partial" in kind else 1, fused="fused" in kind)
        weights = {"cell": torch.softmax(torch.randn(6, 5), -1)}
    elif kind.startswith("darts_supernet"):
        network = DartsSupernet(8, 5, partial_k=4 if kind.endswith("partial") else 1)
        weights = {k: torch.softmax(torch.randn(14, network.n_ops), -1) for k in ("normal", "reduce")}
    else:  # an evaluation network: DrNAS_cifar10 (sep/dil convs, a max pool) or DARTS_V2 (max pools)
        network = NetworkCIFAR(resolve_genotype(kind), 8, 10, 5, auxiliary=True)

        def loss(model, x, y):
            logits, logits_aux = model(x)
            return F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(logits_aux, y)
        return network, loss
    return network, lambda model, x, y: F.cross_entropy(
        model(x, {k: w.to(x.device, x.dtype) for k, w in weights.items()}), y)


def _weight_gradient(network, loss, device, channels_last=False, dtype=torch.float32, batch_seed=1):
    """The flat weight gradient of ``network`` (moved to ``device`` and ``dtype`` in place) on one fixed batch
    (``batch_seed`` picks it)."""
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(batch_seed)).to(dtype)
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(batch_seed + 1000))
    model = network.to(device, dtype)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    model.zero_grad()
    loss(model, x.to(device), y.to(device)).backward()
    return torch.cat([p.grad.flatten().cpu().double() for p in model.parameters()])


#: relative L2 error allowed between a small network's fp32 channels_last weight gradient and its float64 NCHW
#: one. Coarse, as fp32 rounding flips the odd ReLU: on this CPU channels_last gave up to 1e-2 (one flipped unit in
#: the plain NB201 supernet), NCHW 1e-6; pytorch#188344, emulated (algorithms/nn/pool_bug.py), gives 0.07-0.58 in
#: the supernets. The kernel tests above are the exact ones.
GRADIENT_TOLERANCE = 3e-2


@pytest.fixture
def no_tf32(monkeypatch):
    """fp32 on CUDA without TF32, in cuDNN's convolutions and in matmuls (torch's default for the latter), with
    cuDNN's algorithm choice fixed (earlier searches in the same process may have turned benchmarking on).
    TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 (set in NVIDIA's containers) forces TF32 matmuls whatever torch is told:
    there the comparisons would measure TF32, so they skip."""
    import os

    if os.environ.get("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "0") not in ("", "0"):
        pytest.skip("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE is set: matmuls run TF32 whatever torch is told")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    matmul_precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(matmul_precision)


@pytest.fixture
def cuda_nhwc_pools(monkeypatch, no_tf32):
    """One bool per pool call on CUDA: whether a channels-innermost (NHWC) tensor reached it. A max pool then
    runs torch's NHWC kernel; the guarded 3x3 average pool reroutes it to NCHW (the record test's unguarded
    run gives it to torch's NHWC kernel). The CUDA side runs fp32 without TF32: in float64 cuDNN returns NCHW
    outputs whatever the input, so no later kernel would run channels_last and an NHWC-only fault would go
    unseen."""
    from algorithms.nn import ops

    seen, innermost = [], ops._channels_innermost
    monkeypatch.setattr(ops, "_channels_innermost", lambda x: seen.append(innermost(x)) or seen[-1])
    max_pool = torch.nn.MaxPool2d.forward
    monkeypatch.setattr(torch.nn.MaxPool2d, "forward",
                        lambda self, x: (x.is_cuda and seen.append(innermost(x))) or max_pool(self, x))
    return seen


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["nb201_partial", "nb201_partial_fused", "darts_supernet", "darts_supernet_partial",
                                  "DrNAS_cifar10", "DARTS_V2"])
def test_networks_on_cuda_channels_last_have_the_cpus_weight_gradients(kind, cuda_nhwc_pools):
    """The GPU path of the progressive NB201 supernet and the DARTS-space search and evaluation networks
    (channels_last, as the searches and ``nasrepro train-eval`` run on CUDA; fp32 without TF32) against the
    CPU's float64 NCHW path, one batch: every kernel they use (separable and dilated convs, padded max and
    average pools, partial channels and their shuffle, the auxiliary head) must give the CPU's weight gradient
    up to fp32 rounding. pytorch#188344 hid in one such kernel."""
    network, loss = _small_network(kind)
    errors = []
    for batch_seed in (1, 2):  # a wrong kernel is off on every batch; a ReLU that fp32 flips, rarely on two
        reference = _weight_gradient(network, loss, "cpu", dtype=torch.float64, batch_seed=batch_seed)
        errors.append(_relative_error(_weight_gradient(network, loss, "cuda", channels_last=True,
                                                       batch_seed=batch_seed), reference))
        if errors[-1] < GRADIENT_TOLERANCE:
            break
    assert any(cuda_nhwc_pools), "not a kernel fault: no NHWC tensor reached a pool, so the check sees none"
    assert min(errors) < GRADIENT_TOLERANCE, f"relative weight-gradient error per batch: {errors}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_whether_this_torch_has_the_nhwc_pool_bug_and_what_it_does_to_the_supernet(monkeypatch, cuda_nhwc_pools):
    """A record, not a requirement on torch: the gradient of torch's own pool on CUDA channels_last against the
    CPU's, and the plain NB201 supernet's weight gradient (fused cells, channels_last, fp32 without TF32, one
    batch) on CUDA with torch's pool and with the guarded one, each against the CPU's (float64). The guarded one
    must match; an xfail names the size of torch's error on this machine."""
    from algorithms.nn import nb201_supernet

    from algorithms.nn.pool_bug import EmulateCudaPoolBug

    # every number first, printed at once (pytest -s shows it even if the run is cut), then the verdicts
    _, raw = _pool_grad(_torch_pool, _pool_input("cuda"), 1)
    _, reference = _pool_grad(_torch_pool, _pool_input("cpu"), 1)
    pool_error = (raw - reference).abs().max().item()
    with EmulateCudaPoolBug():  # the CPU emulation of the bug, with which the session-13/14 measurements ran
        _, emulated = _pool_grad(_torch_pool, _pool_input("cpu"), 1)
    emulation_error = (raw - emulated).abs().max().item()
    network, loss = _small_network("nb201_fused")
    reference = _weight_gradient(network, loss, "cpu", dtype=torch.float64)
    guarded = _relative_error(_weight_gradient(network, loss, "cuda", channels_last=True), reference)
    monkeypatch.setattr(nb201_supernet, "avg_pool_3x3", lambda h: _torch_pool(h, 1))
    unguarded = _relative_error(_weight_gradient(network, loss, "cuda", channels_last=True), reference)
    record = (f"torch {torch.__version__}: NHWC pool gradient off the CPU's by up to {pool_error:.3g} (off the CPU "
              f"emulation of pytorch#188344 by {emulation_error:.3g}); supernet weight gradient, relative L2 error "
              f"against float64: {unguarded:.3g} with torch's pool, {guarded:.3g} guarded")
    print(f"\nPOOL RECORD: {record}")
    if pool_error > 1e-10:  # torch's pool is off: it must be off as the emulation is, or those measurements lapse
        assert emulation_error < 1e-10, record
    assert any(cuda_nhwc_pools), f"no NHWC tensor reached a pool, so the record shows nothing; {record}"
    assert guarded < GRADIENT_TOLERANCE, record
    if pool_error > 1e-10:
        pytest.xfail(f"pytorch#188344 here; {record}")

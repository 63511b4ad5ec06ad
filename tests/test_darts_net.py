"""The DARTS-space evaluation network: genotype parsing, shapes, parameter counts of published cells,
drop-path and seeded construction."""
from __future__ import annotations

from collections import namedtuple

import pytest
import torch

from algorithms.nn.darts_net import (Genotype, NetworkCIFAR, as_genotype, build_network, count_parameters_mb,
                                     parse_genotype)
from algorithms.nn.train import resolve_genotype
from nasrepro.errors import ConfigError, InvalidArchError

DartsGenotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")  # the DARTS repo's type

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_string_and_object_genotypes_agree():
    drnas = resolve_genotype("DrNAS_cifar10")
    from_object = as_genotype(DartsGenotype(list(drnas.normal), range(2, 6), list(drnas.reduce), range(2, 6)))
    assert from_object == drnas and isinstance(drnas, Genotype)
    assert drnas.normal[1] == ("sep_conv_5x5", 1) and drnas.reduce_concat == (2, 3, 4, 5)
    assert parse_genotype(repr(drnas)) == drnas  # our own repr parses back


def test_darts_space_arch_builds_the_same_network():
    darts_space = pytest.importorskip("benchmarks.darts_space")
    drnas = resolve_genotype("DrNAS_cifar10")
    arch = darts_space.parse(repr(drnas))  # a DartsArch: no concat lists, each node's two edges sorted
    converted = as_genotype(arch)
    assert converted.normal_concat == converted.reduce_concat == (2, 3, 4, 5)
    for cell in ("normal", "reduce"):
        ours, theirs = getattr(drnas, cell), getattr(converted, cell)
        assert [sorted(ours[k:k + 2]) for k in (0, 2, 4, 6)] == [sorted(theirs[k:k + 2]) for k in (0, 2, 4, 6)]
    a = build_network(arch, init_channels=4, layers=3, num_classes=10, auxiliary=False, seed=0)
    b = build_network(arch.id, init_channels=4, layers=3, num_classes=10, auxiliary=False, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = build_network(drnas, init_channels=4, layers=3, num_classes=10, auxiliary=False, seed=0)
    assert count_parameters_mb(a) == count_parameters_mb(c)


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')",
    "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[('max_pool_3x3', 0)], reduce_concat=[2])",
    "Genotype(normal=[('conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], "
    "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2], "
    "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[3], "
    "reduce=[('max_pool_3x3', 0), ('skip_connect', 1)], reduce_concat=[2])",
    "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2])",
])
def test_bad_genotypes_are_invalid_arch_errors(text):
    with pytest.raises(InvalidArchError):
        parse_genotype(text)


def test_published_parameter_counts():
    # DrNAS README / paper: 4.1 M (the progressive-search cell); DARTS (2nd order): 3.3 M
    drnas = build_network(resolve_genotype("DrNAS_cifar10"), init_channels=36, layers=20, num_classes=10,
                          auxiliary=True, seed=0)
    darts = build_network(resolve_genotype("DARTS_V2"), init_channels=36, layers=20, num_classes=10,
                          auxiliary=True, seed=0)
    assert 4.0 <= count_parameters_mb(drnas) <= 4.15
    assert 3.25 <= count_parameters_mb(darts) <= 3.4
    total = sum(p.numel() for p in drnas.parameters()) / 1e6
    assert total > count_parameters_mb(drnas) + 0.3  # the auxiliary head is left out of the count


@pytest.mark.parametrize("size", [32, 16])
def test_forward_shapes_and_reduction_positions(size):
    net = build_network(resolve_genotype("DrNAS_cifar10"), init_channels=4, layers=5, num_classes=7,
                        auxiliary=True, seed=0, image_size=size)
    assert [cell.reduction for cell in net.cells] == [False, True, False, True, False]
    sizes = []
    hooks = [cell.register_forward_hook(lambda m, i, o: sizes.append(o.shape)) for cell in net.cells]
    logits, aux = net(torch.randn(3, 3, size, size))
    for h in hooks:
        h.remove()
    assert logits.shape == (3, 7) and aux.shape == (3, 7)
    assert [s[-1] for s in sizes] == [size, size // 2, size // 2, size // 4, size // 4]
    assert sizes[-1][1] == 4 * 4 * 4  # 4 concatenated states of 4 * C channels after two doublings
    net.eval()
    logits, aux = net(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 7) and aux is None


def test_build_is_seeded_and_leaves_the_global_rng_alone():
    genotype = resolve_genotype("DARTS_V2")
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a = build_network(genotype, init_channels=4, layers=3, num_classes=10, auxiliary=False, seed=1)
    assert torch.equal(before, torch.get_rng_state())
    b = build_network(genotype, init_channels=4, layers=3, num_classes=10, auxiliary=False, seed=1)
    c = build_network(genotype, init_channels=4, layers=3, num_classes=10, auxiliary=False, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)


def test_drop_path_is_seeded_and_off_in_eval():
    net = build_network(resolve_genotype("DrNAS_cifar10"), init_channels=4, layers=3, num_classes=10,
                        auxiliary=False, seed=0)
    x = torch.randn(8, 3, 16, 16)
    net.train()
    net.drop_path_prob = 0.5
    with pytest.raises(ConfigError, match="drop_path_generator"):
        net(x)
    outs = []
    for seed in (0, 0, 1):
        net.drop_path_generator = torch.Generator().manual_seed(seed)
        outs.append(net(x)[0])
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    net.eval()
    first = net(x)[0]
    net.drop_path_prob = 0.0
    assert torch.equal(first, net(x)[0])


def test_too_shallow_network_is_a_config_error():
    with pytest.raises(ConfigError):
        NetworkCIFAR(resolve_genotype("DARTS_V2"), 4, 10, layers=2, auxiliary=False)

"""The one-shot contract, run over every registered one-shot optimizer (NASLib's hook order).

adapt_search_space -> new_epoch -> step* -> get_final_architecture, and state_dict/load_state_dict in the
middle continues bit-identically. Tiny sizes on random images: this pins the interface, not accuracy.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import algorithms
from algorithms.base import OneShotOptimizer
from algorithms.nn.search import make_search, search_data
from benchmarks.nb201 import NB201Arch

TINY = dict(channels=4, cells=1, image_size=8, train_subset=0, batch_size=8, precision="fp32",
            channels_last=False, sample_archs=4, stage_epochs=[2])
ONESHOT = algorithms.names("oneshot")


def _images(n: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(x_train=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                           y_train=rng.integers(0, 10, n).astype(np.int64),
                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _build(name: str, seed: int = 0):
    hparams = algorithms.resolve_hparams(name, TINY)  # the registry's config section, checked keys
    search = make_search(algorithms.algorithm_class(name), hparams, seed)
    search.adapt_search_space(hparams["space"], "cifar10", num_classes=10)
    train, valid = search_data(search, _images(), seed)
    return search, train, valid


def _steps(search, train, valid, n: int) -> list[float]:
    return [float(search.step(train.next_batch(), valid.next_batch())["train_loss"]) for _ in range(n)]


def test_registry_has_the_paper_methods():
    assert {"drnas", "darts", "gdas"} <= set(ONESHOT)


@pytest.mark.parametrize("name", ONESHOT)
def test_hooks_in_naslib_order_give_a_valid_architecture(name):
    search, train, valid = _build(name)
    assert isinstance(search, OneShotOptimizer)
    search.new_epoch(0)
    out = search.step(train.next_batch(), valid.next_batch())
    assert np.isfinite(float(out["train_loss"]))
    arch = search.get_final_architecture()
    assert isinstance(arch, NB201Arch)
    assert search_space_contains(arch)


def search_space_contains(arch: NB201Arch) -> bool:
    from benchmarks.nb201 import parse

    return parse(arch.id) == arch


@pytest.mark.parametrize("name", ONESHOT)
def test_state_dict_mid_epoch_continues_bit_identically(name):
    torch.set_num_threads(1)
    reference, train, valid = _build(name)
    reference.new_epoch(0)
    _steps(reference, train, valid, 2)
    # like a checkpoint on disk: torch state dicts hold live references to the tensors
    state = copy.deepcopy(reference.state_dict())
    train_state, valid_state = copy.deepcopy(train.state_dict()), copy.deepcopy(valid.state_dict())
    expected = _steps(reference, train, valid, 2)

    fresh, train2, valid2 = _build(name, seed=0)
    fresh.load_state_dict(state)
    train2.load_state_dict(train_state)
    valid2.load_state_dict(valid_state)
    assert _steps(fresh, train2, valid2, 2) == expected
    for kind in reference.alphas:
        assert torch.equal(reference.alphas[kind], fresh.alphas[kind])


@pytest.mark.parametrize("name", ONESHOT)
def test_same_seed_same_search_different_seed_differs(name):
    torch.set_num_threads(1)
    runs = []
    for seed in (0, 0, 1):
        search, train, valid = _build(name, seed)
        search.new_epoch(0)
        runs.append(_steps(search, train, valid, 2))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]

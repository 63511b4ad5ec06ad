"""DrNAS (Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021).

The mixing weights of each edge are a sample from a Dirichlet whose concentration is ``ELU(alpha) + 1``;
a fresh sample is drawn every forward pass, shared by all cells of a type, and the pathwise
(reparameterised) gradient flows back to ``alpha``. The architecture is regularised either by an L2 on
``alpha`` (Adam weight decay, the official default) or by the KL divergence of each edge's Dirichlet to
the uniform Dirichlet(1, ..., 1). Everything else (first-order alternating updates, progressive
pruning and widening) is :class:`algorithms.nn.search.SupernetSearch`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Dirichlet, kl_divergence

from algorithms.nn.search import SupernetSearch
from nasrepro.errors import ConfigError


class _DirichletSample(torch.autograd.Function):
    """``Dirichlet(concentration).rsample()`` drawn from an explicit generator (torch's own rsample only
    uses the global one); the backward is torch's pathwise gradient (implicit reparameterisation). A
    generator on another device draws there and the sample moves (a CPU generator gives the same draws to
    searches on different devices: reproduce.drnas_gradient_check pairs a GPU with a CPU that way)."""

    @staticmethod
    def forward(ctx, concentration: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if generator.device.type == concentration.device.type:
            sample = torch._sample_dirichlet(concentration, generator=generator)
        else:
            sample = torch._sample_dirichlet(concentration.to(generator.device), generator=generator
                                             ).to(concentration.device)
        ctx.save_for_backward(sample, concentration)
        return sample

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        sample, concentration = ctx.saved_tensors
        total = concentration.sum(-1, keepdim=True).expand_as(concentration)
        grad = torch._dirichlet_grad(sample, concentration, total)
        return grad * (grad_output - (sample * grad_output).sum(-1, keepdim=True)), None


def dirichlet_rsample(concentration: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One reparameterised Dirichlet sample per row of ``concentration``."""
    return _DirichletSample.apply(concentration, generator)


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    return F.elu(alpha) + 1.0


class DrNAS(SupernetSearch):
    name = "drnas"

    def __init__(self, rng: np.random.Generator, *, reg_type: str, reg_scale: float, **common):
        if reg_type not in ("l2", "kl"):
            raise ConfigError(f"drnas: reg_type must be 'l2' or 'kl', got {reg_type!r}")
        if "arch_weight_decay" in common:
            raise ConfigError("drnas: set reg_type/reg_scale, not arch_weight_decay (the L2 is reg_scale)")
        # official Architect: the L2 regulariser is Adam's weight decay; with KL there is none
        super().__init__(rng, arch_weight_decay=reg_scale if reg_type == "l2" else 0.0, **common)
        self.reg_type, self.reg_scale = reg_type, reg_scale

    def mixing_weights(self, kind: str) -> tuple[torch.Tensor, None]:
        weights = dirichlet_rsample(concentration(self.alphas[kind]), self.sample_generator)
        if self.stage > 0:  # pruned ops get weight 0, the rest renormalised (official process_step_vector);
            # testing the stage, not the mask, keeps the step free of host syncs
            weights = weights * self.masks[kind]
            weights = weights / weights.sum(-1, keepdim=True)
        return weights, None

    def sample_weight_matrices(self, kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
        conc = concentration(self.alphas[kind].detach().to(generator.device))
        return torch._sample_dirichlet(conc.expand(n, *conc.shape).contiguous(), generator=generator)

    def arch_regulariser(self) -> torch.Tensor | float:
        if self.reg_type != "kl":
            return 0.0
        total = 0.0
        for alpha in self.alphas.values():
            q = Dirichlet(concentration(alpha))
            p = Dirichlet(torch.ones_like(alpha))
            total = total + kl_divergence(q, p).sum()
        return self.reg_scale * total

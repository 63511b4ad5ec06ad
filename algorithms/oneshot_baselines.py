"""DARTS and GDAS on the same supernet code as DrNAS, for the NB201 comparison.

* DARTS (Liu et al., ICLR 2019), first order: the mixing weights are ``softmax(alpha)``; arch weight
  decay 1e-3 (as in NB201's and DrNAS's DARTS runs). On NB201 it is known to collapse to skip connections.
* GDAS (Dong & Yang, CVPR 2019): per edge a Gumbel-softmax sample at temperature ``tau``; the forward pass
  runs only the op of the hard (argmax) sample, with a straight-through gradient. ``tau`` decays
  linearly from ``tau_max`` to ``tau_min`` over the search (GDAS: 10 -> 0.1).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.nn.search import SupernetSearch


def _masked_logits(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return alpha.masked_fill(~mask, float("-inf"))


def _categorical_draws(alpha: torch.Tensor, mask: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` one-hot draws per edge from softmax(alpha) (Gumbel-max), as ``n x edges x ops``."""
    logits = F.log_softmax(_masked_logits(alpha, mask), dim=-1).expand(n, *alpha.shape)
    gumbel = -torch.empty_like(logits).exponential_(generator=generator).clamp_min(1e-20).log()
    index = (logits + gumbel).argmax(-1, keepdim=True)
    return torch.zeros_like(logits).scatter_(-1, index, 1.0)


class DARTS(SupernetSearch):
    name = "darts"

    def mixing_weights(self, kind: str) -> tuple[torch.Tensor, None]:
        return F.softmax(_masked_logits(self.alphas[kind], self.masks[kind]), dim=-1), None

    def sample_weight_matrices(self, kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
        alpha = self.alphas[kind].detach().to(generator.device)
        return _categorical_draws(alpha, self.masks[kind].to(generator.device), n, generator)


class GDAS(SupernetSearch):
    name = "gdas"
    hard_forward = True

    def __init__(self, rng: np.random.Generator, *, tau_max: float, tau_min: float, **common):
        super().__init__(rng, **common)
        self.tau_max, self.tau_min = tau_max, tau_min
        self.tau = tau_max

    def on_epoch(self, epoch: int) -> None:
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * epoch / max(self.epochs - 1, 1)

    def mixing_weights(self, kind: str) -> tuple[torch.Tensor, list[int]]:
        logits = F.log_softmax(_masked_logits(self.alphas[kind], self.masks[kind]), dim=-1)
        gumbel = -torch.empty_like(logits).exponential_(generator=self.sample_generator).clamp_min(1e-20).log()
        probs = F.softmax((logits + gumbel) / self.tau, dim=-1)
        index = probs.argmax(-1, keepdim=True)
        hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
        # straight-through: the forward value is one-hot, the gradient that of the soft sample
        weights = hard - probs.detach() + probs
        return weights, index.squeeze(-1).tolist()  # the op to run per edge (one host sync per step)

    def sample_weight_matrices(self, kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
        alpha = self.alphas[kind].detach().to(generator.device)
        return _categorical_draws(alpha, self.masks[kind].to(generator.device), n, generator)

    def extra_state(self) -> dict:
        return {"tau": self.tau}

    def load_extra_state(self, state: dict) -> None:
        self.tau = float(state["tau"])

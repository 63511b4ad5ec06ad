"""The official DrNAS NB201 search, epoch by epoch: the reference trajectory our searches are held against.

The only public per-epoch record of the official plain search (``201-space/train_search.py``, k=1) we found is
the log of the fork ``Mars-204/DrNAS`` (``201-space-pc-1/log.txt``; results/drnas/REVIEW_official_code.md).
``drnas_official_log.json`` beside this module holds its three complete 100-epoch runs of the official setting,
as logged (provenance and the extraction check in the file's ``source``):

- ``drnas-A``: the unmodified script, seed 2; final cell NB201 CIFAR-10 test 94.36 % (from epoch 54);
- ``drnas-B``: the fork's script with its added ``augmix`` option off, seed 2; 94.36 % from epoch 36;
- ``darts``: the same script with ``method darts``; all-``skip_connect`` from epoch 14 (54.30 %).

The two DrNAS runs start from the same alpha (same seed) and part by GPU nondeterminism and whatever differs
between the two scripts, so their spread is a yardstick for "on the official trajectory". The log gives each epoch's Dirichlet concentration
``beta = ELU(alpha) + 1`` at the *start* of the epoch; :meth:`OfficialRun.alpha_after` inverts the ELU, so
its ``alpha`` after epoch ``N`` is comparable with the ``alphas`` our runs record after epoch ``N``.

The DARTS run logs no concentration but prints ``softmax(alpha)`` over each edge's ops at the start of every epoch
(4 decimals). Softmax forgets a constant added to an edge's alphas, so from it alpha is only known up to one constant
per edge: :meth:`OfficialRun.alpha_after` gives ``log p`` centred per edge (each edge's mean over the ops is 0). Our
DARTS runs record raw alpha, whose per-edge mean drifts (Adam scales each coordinate's step on its own, so an edge's
steps need not sum to 0), so compare differences between ops, or centre ours per edge the same way first.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasrepro.errors import ConfigError

LOG_FILE = Path(__file__).with_name("drnas_official_log.json")


@dataclass(frozen=True)
class OfficialRun:
    name: str
    method: str
    description: str
    train_acc: tuple[float, ...]  # per epoch, %, over the weight-step batches (the metric of our train_acc)
    valid_acc: tuple[float, ...]
    cell_after: tuple[str, ...]  # the argmax cell printed after each epoch
    cifar10_test_of_cell_after: tuple[float, ...]  # its NB201 CIFAR-10 test accuracy, %
    concentration_at_start: np.ndarray | None  # (epochs, edges, ops); None for DARTS (it logs none)
    ops: tuple[str, ...]
    softmax_at_start: np.ndarray | None = None  # (epochs, edges, ops), DARTS only: softmax(alpha) as logged

    @property
    def epochs(self) -> int:
        return len(self.train_acc)

    def alpha_after(self, epoch: int) -> np.ndarray | None:
        """``edges x ops`` alpha at the end of ``epoch``, from what the log printed when the next epoch began: for
        DrNAS the concentration, for DARTS softmax(alpha), which gives alpha only up to a constant per edge, so
        there it is ``log p`` centred per edge. None for the last epoch (nothing is logged after it)."""
        if not 0 <= epoch < self.epochs:
            raise ConfigError(f"official run {self.name}: epoch {epoch} outside 0..{self.epochs - 1}")
        if epoch + 1 >= self.epochs:
            return None
        if self.concentration_at_start is not None:
            beta = self.concentration_at_start[epoch + 1]
            # beta = ELU(alpha) + 1: alpha = beta - 1 where alpha >= 0, log(beta) where alpha < 0
            return np.where(beta >= 1.0, beta - 1.0, np.log(np.maximum(beta, 1e-12)))
        if self.softmax_at_start is not None:
            log_p = np.log(self.softmax_at_start[epoch + 1])  # no logged p is 0 (the smallest is 0.0211)
            return log_p - log_p.mean(axis=1, keepdims=True)
        return None

    def mean_alpha_after(self, epoch: int) -> dict[str, float] | None:
        """Each op's alpha averaged over the edges after ``epoch`` (what our image check tabulates), or None."""
        alpha = self.alpha_after(epoch)
        return None if alpha is None else dict(zip(self.ops, alpha.mean(axis=0).round(4).tolist()))


@lru_cache(maxsize=1)
def official_runs() -> dict[str, OfficialRun]:
    """The runs of ``drnas_official_log.json`` by name (``drnas-A``, ``drnas-B``, ``darts``)."""
    table = json.loads(LOG_FILE.read_text())
    ops = tuple(table["ops"])
    runs = {}
    for name, run in table["runs"].items():
        concentration = run.get("concentration_at_start")
        softmax = run.get("arch_parameters_at_start")  # the log's name for softmax(alpha)
        runs[name] = OfficialRun(
            name=name, method=run["method"], description=run["description"], train_acc=tuple(run["train_acc"]),
            valid_acc=tuple(run["valid_acc"]), cell_after=tuple(run["cell_after"]),
            cifar10_test_of_cell_after=tuple(run["cifar10_test_of_cell_after"]),
            concentration_at_start=None if concentration is None else np.asarray(concentration, dtype=np.float64),
            ops=ops, softmax_at_start=None if softmax is None else np.asarray(softmax, dtype=np.float64))
    return runs


def drnas_runs() -> list[OfficialRun]:
    """The official DrNAS runs (those with concentrations), in file order."""
    return [run for run in official_runs().values() if run.method == "drnas"]

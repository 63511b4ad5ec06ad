"""Differentiable supernet search: the shared optimiser (:class:`SupernetSearch`) and the driver.

:class:`SupernetSearch` is a :class:`~algorithms.base.OneShotOptimizer` that owns the supernet, its
architecture parameters (one ``edges x ops`` matrix ``alpha`` per cell type), the two optimisers and the
progressive schedule. A concrete method (DrNAS, DARTS, GDAS) only says how ``alpha`` becomes the mixing
weights of one forward pass (:meth:`SupernetSearch.mixing_weights`), which architectures its current
distribution puts mass on (:meth:`SupernetSearch.sample_weight_matrices`) and its regulariser; how a mixed
op combines candidates given those weights lives in :class:`algorithms.nn.ops.MixedOp`.

One search step (first order, as in the DrNAS code): an architecture step on a validation batch (Adam),
then a weight step on a training batch (SGD with momentum, cosine lr, gradient clipping). Progressive
learning (DrNAS section 3.3) runs the epochs in stages; each stage has a partial-channel factor ``K``, a
number of ops kept per edge and a number of warm-up epochs without architecture steps. Between stages the
weakest ops are pruned and the network widened by copying channels (optimiser momentum carried). The
learning rate either continues the one cosine schedule (``stage_lr = "continue"``) or, as the official code
does, restarts at ``lr`` when a stage begins and follows the recursive cosine rule from there
(``stage_lr = "restart"``: about twice the continued rate for the rest of the search).

:func:`run_search` drives a search over epochs with tqdm, checkpoints after every epoch (model, both
optimisers, scheduler, all generator states, data iterators, stage) and resumes exactly; a checkpoint of
another configuration raises :class:`CheckpointError`. For NB201 it records, per epoch, the argmax
architecture and 100 architectures drawn from the current distribution with their benchmark accuracy.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from algorithms.base import OneShotOptimizer
from algorithms import constructor_keys, read_config_file
from algorithms.nn.ops import widen_mixed_ops
from algorithms.nn.pool_bug import EmulateCudaPoolBug
from algorithms.nn.tf32 import EmulateTF32Convolutions
from nasrepro.errors import CheckpointError, ConfigError, first_line
from nasrepro.io import atomic_path, atomic_write_json

SPACES = ("nb201", "darts")


#: "fp32": fp32 tensors, and on Ampere or later GPUs cuDNN's TF32 convolutions (torch's default); "fp32_strict":
#: TF32 off, the IEEE fp32 the official code had on its 2020 GPUs; "bf16": autocast (GPU only);
#: "tf32_emulated": IEEE fp32 with every convolution's operands rounded to TF32's 10 mantissa bits
#: (algorithms/nn/tf32.py), so the effect of TF32 can be measured on a CPU (a diagnostic: slow)
PRECISIONS = ("fp32", "fp32_strict", "bf16", "tf32_emulated")


@dataclass(frozen=True)
class Stage:
    epochs: int
    partial_k: int
    num_keep: int
    arch_warmup_epochs: int
    fused: bool = False  # NB201: fused cells (FusedNB201SearchCell) in this stage


class SupernetSearch(OneShotOptimizer):
    """Shared machinery of DrNAS / DARTS / GDAS on the NB201 and DARTS supernets."""

    name = ""
    #: True when the forward pass runs one op per edge (GDAS): ``mixing_weights`` returns indices too
    hard_forward = False

    def __init__(self, rng: np.random.Generator, *, space: str, channels: int, cells: int,
                 stage_epochs: list[int], partial_k: list[int], num_keep: list[int],
                 arch_warmup_epochs: list[int], batch_size: int, lr: float, lr_min: float, momentum: float,
                 weight_decay: float, grad_clip: float, arch_lr: float, arch_betas: list[float],
                 arch_weight_decay: float, alpha_init_std: float, train_portion: float, image_size: int,
                 train_subset: int, sample_archs: int, precision: str, channels_last: bool,
                 cudnn_benchmark: bool, compile: bool, cuda_graphs: bool = False,
                 fused_cells: bool | list[bool] = False, stage_lr: str = "continue",
                 emulate_cuda_pool_bug: bool = False):
        if space not in SPACES:
            raise ConfigError(f"{self.name}: space must be one of {', '.join(SPACES)}, got {space!r}")
        lengths = {len(stage_epochs), len(partial_k), len(num_keep), len(arch_warmup_epochs)}
        if len(lengths) != 1:
            raise ConfigError(f"{self.name}: stage_epochs, partial_k, num_keep and arch_warmup_epochs must have "
                              f"one entry per stage")
        if stage_lr not in ("continue", "restart"):
            raise ConfigError(f"{self.name}: stage_lr must be 'continue' or 'restart', got {stage_lr!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"{self.name}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size <= 0 or any(e <= 0 for e in stage_epochs) or any(k <= 0 for k in partial_k):
            raise ConfigError(f"{self.name}: batch_size, stage_epochs and partial_k must be positive")
        for k in partial_k:  # partial channels split each cell's width (channels, then 2x and 4x) into k parts
            if channels % k:
                raise ConfigError(f"{self.name}: channels {channels} do not split into partial_k {k} equal parts")
        self.space_name = space
        self.channels, self.cells = channels, cells
        self.epochs = sum(stage_epochs)
        self.batch_size, self.train_portion = batch_size, train_portion
        self.image_size, self.train_subset, self.sample_archs = image_size, train_subset, sample_archs
        self.lr, self.lr_min, self.momentum, self.weight_decay, self.grad_clip = (
            lr, lr_min, momentum, weight_decay, grad_clip)
        self.arch_lr, self.arch_betas, self.arch_weight_decay = arch_lr, tuple(arch_betas), arch_weight_decay
        self.alpha_init_std, self.stage_lr = alpha_init_std, stage_lr
        self.precision, self.channels_last = precision, channels_last
        if not isinstance(emulate_cuda_pool_bug, bool):
            raise ConfigError(f"{self.name}: emulate_cuda_pool_bug must be true or false")
        # a diagnostic (algorithms/nn/pool_bug.py): the padded pools' backward as torch's buggy NHWC CUDA kernel
        self.emulate_cuda_pool_bug = emulate_cuda_pool_bug
        self.cudnn_benchmark, self.compile = cudnn_benchmark, compile
        if cuda_graphs and self.hard_forward:
            raise ConfigError(f"{self.name}: cuda_graphs needs the same ops every step (not a hard forward)")
        self.cuda_graphs = cuda_graphs
        # one flag for every stage, or one per stage (a stage's speed with either cell can differ)
        fused = [fused_cells] * len(stage_epochs) if isinstance(fused_cells, bool) else list(fused_cells)
        if len(fused) != len(stage_epochs) or not all(isinstance(f, bool) for f in fused):
            raise ConfigError(f"{self.name}: fused_cells must be true, false, or one of them per stage")
        if any(fused) and (space != "nb201" or self.hard_forward):
            # a hard forward runs one op per edge, which the per-node fusion cannot
            raise ConfigError(f"{self.name}: fused_cells is for soft-mixing NB201 searches; set fused_cells = false")
        self.stages = [Stage(*s) for s in zip(stage_epochs, partial_k, num_keep, arch_warmup_epochs, fused)]
        # every random stream of the search is a generator seeded here, never the global state
        self._seeds = [int(s) for s in rng.integers(0, 2**62, size=4)]

    # -- hooks -----------------------------------------------------------------------------------------
    def adapt_search_space(self, space: Any, dataset: str, num_classes: int = 10, device: str = "cpu",
                           **kwargs: Any) -> None:
        if getattr(space, "name", space) != self.space_name:
            raise ConfigError(f"{self.name} is configured for space {self.space_name!r}, "
                              f"got {getattr(space, 'name', space)!r}")
        self.dataset, self.num_classes = dataset, num_classes
        self.device = torch.device(device)
        self.apply_device_switches()
        init_seed, sample_seed, self.data_seed, self.record_seed = self._seeds
        self.init_generator = torch.Generator().manual_seed(init_seed)
        # the sampling generator lives on the device: drawing on it never syncs the host
        self.sample_generator = torch.Generator(device=self.device).manual_seed(sample_seed)
        self.stage, self.epoch, self.arch_active = 0, -1, False
        with self._seeded_init():
            self.model = self._build_model(self.stages[0])
            self.alphas = nn.ParameterDict({
                kind: nn.Parameter(self.alpha_init_std * torch.randn(
                    self.model.n_edges, self.model.n_ops, generator=self.init_generator, device="cpu").to(self.device))
                for kind in self.model.cell_types})
        self.masks = {kind: torch.ones(self.model.n_edges, self.model.n_ops, dtype=torch.bool, device=self.device)
                      for kind in self.model.cell_types}
        self.weight_optimizer = self._make_weight_optimizer()
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.weight_optimizer, float(self.epochs),
                                                                    eta_min=self.lr_min)
        self.arch_optimizer = torch.optim.Adam(self.alphas.parameters(), lr=self.arch_lr, betas=self.arch_betas,
                                               weight_decay=self.arch_weight_decay,
                                               capturable=self._arch_capturable())
        self._graph: Any = None
        self._steps_done = 0

    def apply_device_switches(self) -> None:
        """Set cuDNN's process-wide switches to this search's (autotuning, TF32 convolutions): they hold until
        another search sets its own, so code that alternates searches calls this before each one's work."""
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
            # True is torch's default; the emulation rounds exactly once, in IEEE fp32 convolutions
            torch.backends.cudnn.allow_tf32 = self.precision not in ("fp32_strict", "tf32_emulated")

    def new_epoch(self, epoch: int) -> None:
        if epoch < self.epoch:
            raise ConfigError(f"{self.name}: epochs must not go backwards ({epoch} after {self.epoch})")
        stage, stage_start = self._stage_of(epoch)
        while self.stage < stage:
            self._next_stage()
        while self.scheduler.last_epoch < epoch:
            with _quiet_scheduler_warning():
                self.scheduler.step()
        self.epoch = epoch
        self.arch_active = epoch - stage_start >= self.stages[stage].arch_warmup_epochs
        self.on_epoch(epoch)

    def step(self, train_batch: Any, valid_batch: Any) -> dict[str, torch.Tensor | int]:
        """One search step. Losses and correct counts are 0-dim device tensors (not floats), so the GPU is
        never synced here; :func:`run_search` reads them once per epoch."""
        try:
            if self._graphed():
                return self._graph_step(train_batch, valid_batch)
            return self._step(train_batch, valid_batch)
        except torch.cuda.OutOfMemoryError as exc:
            if self._steps_done == 0:
                raise ConfigError(f"batch size {self.batch_size} does not fit in the memory of {self.device}; "
                                  f"set a smaller batch_size") from exc
            raise

    def get_final_architecture(self) -> Any:
        return self.model.derive(dict(self.alphas), self.masks)

    # -- method-specific ----------------------------------------------------------------------------------
    def mixing_weights(self, kind: str) -> tuple[torch.Tensor, list[int] | None]:
        """The ``edges x ops`` weights of one forward pass for cell type ``kind`` (and, for a hard forward,
        the op index of every edge)."""
        raise NotImplementedError

    def sample_weight_matrices(self, kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws (``n x edges x ops``) from the current architecture distribution; their argmax per edge
        are architectures the search currently considers."""
        raise NotImplementedError

    def arch_regulariser(self) -> torch.Tensor | float:
        return 0.0

    def on_epoch(self, epoch: int) -> None:
        """Per-epoch schedules of a method (GDAS's temperature)."""

    # -- the step ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, detach_arch: bool) -> torch.Tensor:
        """The supernet's logits on ``x`` with a fresh draw of mixing weights (without their gradient when
        ``detach_arch``), in the search's precision and memory format."""
        weights, hard = {}, {}
        context = torch.no_grad() if detach_arch else contextlib.nullcontext()
        with context:
            for kind in self.model.cell_types:
                weights[kind], hard[kind] = self.mixing_weights(kind)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._precision_context():
            return self.forward_fn(x, weights, hard if self.hard_forward else None)

    def _arch_capturable(self) -> bool:
        """Adam capturable on CUDA also without graphs: eager and graphed steps then share its arithmetic (step
        count and bias corrections as fp32 device tensors; eager Adam takes them in float64 on the host, which
        moves alpha by about 2e-9 more in the first step), so a paired eager run differs from a graphed one only
        by what the graph changes."""
        return self.device.type == "cuda"

    def _graphed(self) -> bool:
        return self.cuda_graphs and getattr(self, "device", torch.device("cpu")).type == "cuda"

    def _graph_step(self, train_batch: Any, valid_batch: Any) -> dict[str, torch.Tensor | int]:
        """The step replayed from a CUDA graph: the NB201 supernet at batch 64 is bound by kernel launches
        (thousands of small kernels per step), which a graph replays without the host. The graph is
        captured afresh each epoch (the lr and the arch-step switch are constants inside it); the first
        steps of an epoch run eagerly on a side stream, as capture requires."""
        key = (self.epoch, self.stage, self.arch_active)
        batches = (*train_batch, *valid_batch)
        if self._graph is not None and self._graph[0] == key:
            _, graph, static_in, static_out = self._graph
            if any(dst.shape != src.shape for dst, src in zip(static_in, batches)):
                # a short last batch: run it eagerly, keeping the grad tensors the graph writes into
                return self._step(train_batch, valid_batch, set_to_none=False)
            for dst, src in zip(static_in, batches):
                dst.copy_(src, non_blocking=True)
            graph.replay()
            return {k: v.clone() if torch.is_tensor(v) else v for k, v in static_out.items()}
        self._graph = None
        static_in = [t.clone() for t in batches]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: real steps on real batches, creating grads and states
            out = self._step(train_batch, valid_batch, set_to_none=False)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(self.sample_generator)
        with torch.cuda.graph(graph):
            static_out = self._step((static_in[0], static_in[1]), (static_in[2], static_in[3]), set_to_none=False)
        self._steps_done -= 1  # capture does not run the step
        self._graph = (key, graph, static_in, static_out)
        return out

    def _step(self, train_batch: Any, valid_batch: Any, set_to_none: bool = True) -> dict[str, torch.Tensor | int]:
        self.model.train()
        x_train, y_train = train_batch
        x_valid, y_valid = valid_batch
        out: dict[str, torch.Tensor | int] = {}
        if self.arch_active:
            self.arch_optimizer.zero_grad(set_to_none=set_to_none)
            logits = self.forward(x_valid, detach_arch=False)
            loss = F.cross_entropy(logits.float(), y_valid)
            # gradients for alpha only: the weights' gradients would be zeroed before the weight step anyway,
            # and skipping them saves a third of the backward kernels
            (loss + self.arch_regulariser()).backward(inputs=list(self.alphas.values()))
            self.arch_optimizer.step()
            out["valid_loss"] = loss.detach()
            out["valid_correct"] = (logits.argmax(1) == y_valid).sum()
            out["valid_count"] = len(y_valid)  # a host int: a device scalar would cost a copy per step
        self.weight_optimizer.zero_grad(set_to_none=set_to_none)
        logits = self.forward(x_train, detach_arch=True)
        loss = F.cross_entropy(logits.float(), y_train)
        loss.backward()
        if self.grad_clip > 0:  # 0: no clipping
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.weight_optimizer.step()
        self._steps_done += 1
        out["train_loss"] = loss.detach()
        out["train_correct"] = (logits.argmax(1) == y_train).sum()
        out["train_count"] = len(y_train)
        return out

    def _precision_context(self):
        """bf16 autocast, the TF32 emulation, or nothing (fp32); inside the pool-bug emulation if it is on."""
        if self.emulate_cuda_pool_bug:
            stack = contextlib.ExitStack()
            stack.enter_context(EmulateCudaPoolBug())
            stack.enter_context(self._numeric_context())
            return stack
        return self._numeric_context()

    def _numeric_context(self):
        if self.precision == "bf16" and self.device.type == "cuda":
            # no weight-cast cache: a cached cast would go stale inside a replayed CUDA graph
            return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not self._graphed())
        if self.precision == "tf32_emulated":
            return EmulateTF32Convolutions()
        return contextlib.nullcontext()

    # -- building -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _seeded_init(self):
        """nn.Module initialisers draw from torch's global generator; fork it, seed it from our generator,
        and restore it afterwards, so building a model neither reads nor changes the caller's state."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.init_generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    def _build_model(self, stage: Stage) -> nn.Module:
        if self.space_name == "nb201":
            from algorithms.nn.nb201_supernet import NB201Supernet
            model = NB201Supernet(self.channels, self.cells, self.num_classes, stage.partial_k, fused=stage.fused)
        else:
            from algorithms.nn.darts_supernet import DartsSupernet
            model = DartsSupernet(self.channels, self.cells, self.num_classes, stage.partial_k)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.forward_fn = torch.compile(model) if self.compile and self.device.type == "cuda" else model
        return model

    def _make_weight_optimizer(self) -> torch.optim.SGD:
        return torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay)

    def _stage_of(self, epoch: int) -> tuple[int, int]:
        start = 0
        for i, stage in enumerate(self.stages):
            if epoch < start + stage.epochs:
                return i, start
            start += stage.epochs
        raise ConfigError(f"{self.name}: epoch {epoch} beyond the schedule's {self.epochs} epochs")

    def _next_stage(self) -> None:
        """Prune to the next stage's top-k ops per edge, then widen the mixed ops (smaller K)."""
        new = self.stages[self.stage + 1]
        with torch.no_grad():
            for kind, alpha in self.alphas.items():
                masked = alpha.detach().masked_fill(~self.masks[kind], float("-inf"))
                keep = masked.topk(new.num_keep, dim=-1).indices
                self.masks[kind] = torch.zeros_like(self.masks[kind]).scatter_(1, keep, True)
        names = [n for n, _ in self.model.named_parameters()]
        momentum = {names[i]: s["momentum_buffer"] for i, s in self.weight_optimizer.state_dict()["state"].items()
                    if s.get("momentum_buffer") is not None}
        through_twins = self.stages[self.stage].fused or new.fused
        with self._seeded_init():
            new_model = self._build_model(new)
            if through_twins:  # widening is defined per edge: widen per-edge twins, then fuse again
                old_twin, new_twin = (type(m)(**{**m.config, "fused": False}).to(self.device)
                                      for m in (self.model, new_model))
        if through_twins:  # (per_edge_state / fused_state leave a network without fused cells as it is)
            old_twin.load_state_dict(self.model.per_edge_state(self.model.state_dict()))
            momentum = widen_mixed_ops(old_twin, new_twin, self.model.per_edge_state(momentum), self.init_generator)
            new_model.load_state_dict(new_model.fused_state(new_twin.state_dict()))
            momentum = new_model.fused_state(momentum)
        else:
            momentum = widen_mixed_ops(self.model, new_model, momentum, self.init_generator)
        self.model = new_model
        self.model.prune(self.masks)
        scheduler_state = self.scheduler.state_dict()
        self.weight_optimizer = self._make_weight_optimizer()
        params = dict(self.model.named_parameters())
        for name, buf in momentum.items():  # in the parameter's memory format (channels_last), as SGD makes them
            self.weight_optimizer.state[params[name]]["momentum_buffer"] = torch.empty_like(params[name]).copy_(buf)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.weight_optimizer, float(self.epochs),
                                                                    eta_min=self.lr_min)
        self.scheduler.load_state_dict(scheduler_state)
        if self.stage_lr == "restart":
            # official configure_scheduler: the new stage's first epoch runs at lr; each later scheduler step
            # applies the recursive cosine factor to the group's lr, so the rest of the search runs higher
            stage_start = sum(stage.epochs for stage in self.stages[:self.stage + 1])
            while self.scheduler.last_epoch < stage_start:
                with _quiet_scheduler_warning():
                    self.scheduler.step()
            lr = self.lr
        else:
            lr = self.scheduler.get_last_lr()[0]
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        self.stage += 1

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"stage": self.stage, "epoch": self.epoch, "arch_active": self.arch_active,
                "steps_done": self._steps_done, "model": self.model.state_dict(),
                "alphas": {k: v.detach().cpu() for k, v in self.alphas.items()},
                "masks": {k: v.cpu() for k, v in self.masks.items()},
                "weight_optimizer": self.weight_optimizer.state_dict(),
                "arch_optimizer": self.arch_optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "init_generator": self.init_generator.get_state(),
                "sample_generator": self.sample_generator.get_state(), "extra": self.extra_state()}

    def load_state_dict(self, state: dict) -> None:
        self.stage = int(state["stage"])
        with torch.random.fork_rng(devices=[]):  # the weights are overwritten; keep the global state untouched
            self.model = self._build_model(self.stages[self.stage])
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for kind, value in state["alphas"].items():
                self.alphas[kind].copy_(value.to(self.device))
        self.masks = {k: v.to(self.device) for k, v in state["masks"].items()}
        self.weight_optimizer = self._make_weight_optimizer()
        # the scheduler's constructor resets the lr, so it comes before the optimiser state that restores it
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.weight_optimizer, float(self.epochs),
                                                                    eta_min=self.lr_min)
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        # load_state_dict restores the saved capturable flag (an eager CUDA search before session 22 saved False)
        capturable = self._arch_capturable()
        for group in self.arch_optimizer.param_groups:
            group["capturable"] = capturable
        for arch_state in self.arch_optimizer.state.values():
            if "step" in arch_state:  # capturable Adam counts on the device, the other on the host
                arch_state["step"] = arch_state["step"].to(self.device if capturable else "cpu", torch.float32)
        self._graph = None
        self.init_generator.set_state(state["init_generator"])
        self.sample_generator.set_state(state["sample_generator"])
        self.epoch, self.arch_active = int(state["epoch"]), bool(state["arch_active"])
        self._steps_done = int(state["steps_done"])
        self.load_extra_state(state["extra"])

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` saved."""


@contextlib.contextmanager
def _quiet_scheduler_warning():
    import warnings
    with warnings.catch_warnings():
        # stepping the scheduler to an epoch before any optimiser step (a fresh or resumed search) is intended
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        yield


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
def load_hparams(config: str, section: str, overrides: dict | None = None) -> dict:
    """The ``[section]`` table of ``algorithms/configs/<config>.toml`` updated with ``overrides``."""
    table = read_config_file(config)
    if section not in table:
        raise ConfigError(f"{config}.toml has no [{section}] section; sections: "
                          f"{', '.join(k for k in table if k != 'meta')}")
    hparams = dict(table[section])
    hparams.update(overrides or {})
    return hparams


def make_search(cls: type, hparams: dict, seed: int) -> SupernetSearch:
    """``cls(rng, **hparams)`` with ``rng`` seeded by ``seed``; a key no constructor in the class chain
    takes is a :class:`ConfigError` (never silently ignored)."""
    accepted = constructor_keys(cls) - {"self", "rng"}
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown hyper-parameter(s) {', '.join(unknown)}")
    return cls(np.random.default_rng(seed), **hparams)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def search_data(search: SupernetSearch, arrays: Any, seed: int) -> tuple[Any, Any]:
    """The weight-training and architecture halves of the training images (DrNAS: ``train_portion``
    0.5 of CIFAR's training set each), both with crop+flip augmentation as in the official code."""
    from algorithms.nn.data import ImageBatches

    generator = torch.Generator(device=search.device).manual_seed(seed)
    batches = ImageBatches(arrays.x_train, arrays.y_train, batch_size=search.batch_size, mean=arrays.mean,
                           std=arrays.std, generator=generator, augment=True, resize_to=search.image_size,
                           channels_last=search.channels_last,
                           crop_padding=4 * search.image_size // 32)
    if search.train_subset:
        batches = batches.subset(search.train_subset, torch.Generator().manual_seed(seed + 1))
    return batches.split(search.train_portion, torch.Generator().manual_seed(seed + 2))


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------
def fingerprint(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_search(search: SupernetSearch, train: Any, valid: Any, out_dir: Path, identity: dict,
               benchmark: Any = None, stop_after_epochs: int | None = None, until_epoch: int | None = None,
               progress: bool = True, on_epoch: Callable[[list[dict]], None] | None = None,
               epoch_info: dict | None = None) -> dict:
    """Run (or resume) ``search`` over its schedule; write ``checkpoint.pt`` every epoch and ``result.json``
    at the end. ``identity`` (algorithm, resolved hyper-parameters, seed, dataset, ...) must match the
    checkpoint's. ``on_epoch`` gets the history after every epoch (a resumed search's earlier epochs
    included). ``epoch_info`` (e.g. which image files) joins every epoch's record, as does the device:
    a search resumed elsewhere shows it. ``stop_after_epochs`` ends the call early (to test resuming);
    ``until_epoch`` ends it once that many epochs of the schedule are done (a diagnostic of the first epochs).
    Returns the result."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    key = fingerprint(identity)
    history: list[dict] = []
    start = 0
    if checkpoint.is_file():
        state = load_search_checkpoint(checkpoint)
        if state.get("fingerprint") != key:
            differs = sorted(k for k in set(identity) | set(state.get("identity", {}))
                             if json.dumps(identity.get(k), sort_keys=True, default=str)
                             != json.dumps(state.get("identity", {}).get(k), sort_keys=True, default=str))
            raise CheckpointError(f"{checkpoint} belongs to another configuration (differs in: "
                                  f"{', '.join(differs) or 'fingerprint'}); use another output folder")
        _check_resume_device(checkpoint, state, search.device)
        search.load_state_dict(state["search"])
        train.load_state_dict(state["train_data"])
        valid.load_state_dict(state["valid_data"])
        history, start = state["history"], int(state["next_epoch"])
    record_rng = torch.Generator().manual_seed(search.record_seed)
    steps = len(train)
    end = search.epochs if stop_after_epochs is None else min(search.epochs, start + stop_after_epochs)
    if until_epoch is not None:
        end = min(end, max(start, until_epoch))
    for epoch in range(start, end):
        t0 = time.perf_counter()
        search.new_epoch(epoch)
        totals: dict[str, Any] = {}
        bar = tqdm(range(steps), desc=f"{search.name} epoch {epoch + 1}/{search.epochs}", leave=False,
                   disable=not progress)
        for _ in bar:
            for k, v in search.step(train.next_batch(), valid.next_batch()).items():
                totals[k] = totals[k] + v if k in totals else v
        if search.device.type == "cuda":
            torch.cuda.synchronize(search.device)
        record = _epoch_record(search, epoch, steps, {k: float(v) for k, v in totals.items()},
                               time.perf_counter() - t0)
        record.update(epoch_info or {})
        if benchmark is not None and search.space_name == "nb201":
            record_rng.manual_seed(search.record_seed + epoch)  # per-epoch stream: resuming reproduces it
            record.update(_nb201_trajectory(search, benchmark, record_rng))
        history.append(record)
        if on_epoch is not None:
            on_epoch(history)
        with atomic_path(checkpoint) as tmp:
            torch.save({"fingerprint": key, "identity": identity, "next_epoch": epoch + 1, "history": history,
                        "search": search.state_dict(), "train_data": train.state_dict(),
                        "valid_data": valid.state_dict()}, tmp)
    result = {"identity": identity, "finished": end == search.epochs, "epochs_done": end, "history": history,
              "final_architecture": str(search.get_final_architecture())}
    if benchmark is not None and search.space_name == "nb201":
        arch = search.get_final_architecture()
        result["final_valid"] = benchmark.query(arch, search.dataset, split="valid")
        result["final_test"] = benchmark.query(arch, search.dataset, split="test")
    if result["finished"]:
        atomic_write_json(out_dir / "result.json", result)
    return result


def load_search_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {first_line(exc)})") from exc
    if not isinstance(state, dict) or "fingerprint" not in state:
        raise CheckpointError(f"{path}: not a supernet search checkpoint")
    return state


def _epoch_record(search: SupernetSearch, epoch: int, steps: int, totals: dict, seconds: float) -> dict:
    record = {"epoch": epoch, "stage": search.stage, "lr": search.weight_optimizer.param_groups[0]["lr"],
              "seconds": seconds, "steps": steps, "device": device_name(search.device),
              "train_loss": totals["train_loss"] / steps,
              "train_acc": 100.0 * totals["train_correct"] / totals["train_count"],
              "arch": str(search.get_final_architecture()),
              # alpha per edge and op (pruned ops included): to compare with the official per-epoch logs
              "alphas": {kind: [[round(v, 4) for v in edge] for edge in alpha.detach().cpu().tolist()]
                         for kind, alpha in search.alphas.items()}}
    if "valid_count" in totals:  # validation metrics come from the architecture steps' batches
        record["valid_loss"] = totals["valid_loss"] / steps
        record["valid_acc"] = 100.0 * totals["valid_correct"] / totals["valid_count"]
    return record


def _check_resume_device(checkpoint: Path, state: dict, device: torch.device) -> None:
    """A search resumes on the device type it was written on: its random streams (the Dirichlet draws, and on a
    GPU the data order) live in that device's generators, which another device type cannot take."""
    written_on = str(state["history"][-1].get("device", "")) if state.get("history") else ""
    if written_on and written_on.startswith("cpu") != (device.type == "cpu"):
        raise CheckpointError(f"{checkpoint} was written by a search on {written_on}; resume it on that device "
                              f"type, not {device.type} (its random streams live in that device's generators)")


def device_name(device: torch.device | str) -> str:
    """The GPU's name (``NVIDIA H100 80GB HBM3``), else the device type and, on the CPU, torch's thread count
    (``cpu (1 thread)``): recorded beside measurements, since a CPU search rounds differently on another count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device.type


def _nb201_trajectory(search: SupernetSearch, benchmark: Any, generator: torch.Generator) -> dict:
    """Accuracy (NB201 test, this dataset) of the argmax architecture and of ``sample_archs`` architectures
    drawn from the current distribution: the data of DrNAS's search-trajectory figure."""
    from benchmarks.nb201 import NB201Arch

    with torch.no_grad():
        draws = search.sample_weight_matrices("cell", search.sample_archs, generator).cpu()
    mask = search.masks["cell"].cpu()
    ops = draws.masked_fill(~mask, -1.0).argmax(dim=-1).tolist()
    accs = benchmark.query_many([NB201Arch(tuple(o)) for o in ops], search.dataset, split="test")
    arch = search.get_final_architecture()
    return {"argmax_test": benchmark.query(arch, search.dataset, split="test"),
            "argmax_valid": benchmark.query(arch, search.dataset, split="valid"),
            "sampled_test_min": float(accs.min()), "sampled_test_max": float(accs.max()),
            "sampled_test_mean": float(accs.mean()), "sampled_test": [round(float(a), 3) for a in accs]}

"""FaDE (Neumeyer, Stier, Granitzer, IDA 2024, arXiv:2404.16218): DARTS ranks on finite regions of a
hierarchical space, driving a memory-less, batch-wise pseudo-gradient evolution.

Only the paper's abstract is available; every detail below is a documented decision of
``algorithms/configs/fade.toml`` (``[meta] known_deviations``).

* **Region** (:class:`Region`): per slot (stage x edge of a :class:`~benchmarks.multicell.MultiCellArch`) a
  small set of candidate ops. Its members are the product of those sets: a finite set of architectures.
  :func:`region_around` builds one around a centre: ``open_slots`` slots get ``ops_per_slot`` candidates
  (the centre's op and others), every other slot keeps the centre's op.
* **Ranks** (:func:`region_scores`): a DARTS (softmax, first-order) supernet over the region -- the shared
  stack of :mod:`algorithms.nn.search` with a multi-cell network (:class:`MultiCellSupernet`) whose mixed
  ops are pruned to the region's candidates -- is trained; each member is scored by its architecture
  weights. The scores are only comparable *within* a region.
* **Search** (:class:`PseudoGradientEvolution`): a logit matrix ``theta`` (slots x ops) and a centre
  architecture are the whole state. Each generation draws a batch of regions around the centre (open
  ops drawn from ``softmax(theta)``), gets their ranks, and turns them into a step on ``theta`` (a
  rank-weighted search-gradient, as in natural evolution strategies); the centre follows ``argmax theta``.
  Nothing is remembered across generations but ``theta`` and the centre: ranks of different regions are
  never compared.
* **Baselines** at equal training budget: :func:`random_search` and :func:`bayesian_optimisation` (GP
  + expected improvement on the one-hot encoding).
* **Ground truth** for multi-cell architectures (no table exists for S > 1): :class:`TrainedGroundTruth`
  trains the discrete network (:class:`MultiCellNetwork`) briefly with the shared training loop
  (:func:`algorithms.nn.train.fit_classifier`) and keeps the result in one JSON file per (architecture,
  training settings, images), so no architecture is trained twice.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, fields
from itertools import product
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import norm, rankdata
from torch import nn

from algorithms.nn.nb201_supernet import NB201SearchCell
from algorithms.nn.search import Stage
from algorithms.nn.ops import NB201_OPS, ResNetBasicBlock
from algorithms.nn.train import BriefTraining
from algorithms.oneshot_baselines import DARTS
from benchmarks.multicell import (MultiCellArch, MultiCellSpace, cell_of_resolution_stage, check_n_stages,
                                  resolution_stages)
from benchmarks.nb201 import EDGES, N_EDGES, OPS, NB201Arch
from nasrepro.errors import CheckpointError, ConfigError, InvalidArchError
from nasrepro.io import atomic_write_json

SCORING_RULES = ("sum_log_softmax", "sum_softmax")
STEP_RULES = ("rank_weighted", "best_member")
UTILITIES = ("centred_rank", "nes")


# --------------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """A finite region: for every slot (stage-major, 6 per stage) the sorted candidate op indices."""

    n_stages: int
    candidates: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        n_stages = check_n_stages(self.n_stages)
        try:
            candidates = tuple(tuple(sorted({int(op) for op in slot})) for slot in self.candidates)
        except (TypeError, ValueError) as exc:
            raise InvalidArchError(f"region: candidates must be op indices per slot ({exc})") from None
        if len(candidates) != n_stages * N_EDGES:
            raise InvalidArchError(f"region: {n_stages} stages need {n_stages * N_EDGES} candidate sets, "
                                   f"got {len(candidates)}")
        for slot, ops in enumerate(candidates):
            if not ops or any(not 0 <= op < len(OPS) for op in ops):
                raise InvalidArchError(f"region: slot {slot} needs 1..{len(OPS)} op indices in "
                                       f"0..{len(OPS) - 1}, got {ops!r}")
        object.__setattr__(self, "n_stages", n_stages)
        object.__setattr__(self, "candidates", candidates)

    @property
    def id(self) -> str:
        """Canonical: per slot the candidate ops as digits, slots '.'-joined, stages '/'-joined."""
        slots = [''.join(str(op) for op in ops) for ops in self.candidates]
        return "/".join(".".join(slots[s * N_EDGES:(s + 1) * N_EDGES]) for s in range(self.n_stages))

    @property
    def open_slots(self) -> tuple[int, ...]:
        """Slots with more than one candidate (the only ones the ranks say anything about)."""
        return tuple(i for i, ops in enumerate(self.candidates) if len(ops) > 1)

    @property
    def size(self) -> int:
        return int(np.prod([len(ops) for ops in self.candidates]))

    def members(self) -> list[MultiCellArch]:
        """Every architecture of the region, in lexicographic order of the slots' candidates."""
        return [MultiCellArch.from_ops(ops, self.n_stages) for ops in product(*self.candidates)]

    def contains(self, arch: MultiCellArch) -> bool:
        return arch.n_stages == self.n_stages and all(op in c for op, c in zip(arch.ops, self.candidates))

    def masks(self) -> dict[str, torch.Tensor]:
        """One ``edges x ops`` bool mask per stage (the supernet's cell types)."""
        mask = torch.zeros(self.n_stages * N_EDGES, len(OPS), dtype=torch.bool)
        for slot, ops in enumerate(self.candidates):
            mask[slot, list(ops)] = True
        return {stage_key(s): mask[s * N_EDGES:(s + 1) * N_EDGES].clone() for s in range(self.n_stages)}


def stage_key(stage: int) -> str:
    return f"stage{stage}"


def _check_region_shape(n_slots: int, open_slots: int, ops_per_slot: int) -> None:
    if isinstance(open_slots, bool) or not isinstance(open_slots, (int, np.integer)) or not 1 <= open_slots <= n_slots:
        raise ConfigError(f"fade: open_slots must be an integer in 1..{n_slots}, got {open_slots!r}")
    if (isinstance(ops_per_slot, bool) or not isinstance(ops_per_slot, (int, np.integer))
            or not 2 <= ops_per_slot <= len(OPS)):
        raise ConfigError(f"fade: ops_per_slot must be an integer in 2..{len(OPS)}, got {ops_per_slot!r}")


def region_around(centre: MultiCellArch, open_slots: int, ops_per_slot: int, rng: np.random.Generator,
                  probabilities: np.ndarray | None = None) -> Region:
    """A region around ``centre``: ``open_slots`` slots drawn uniformly get the centre's op plus
    ``ops_per_slot - 1`` other ops drawn without replacement (uniformly, or with ``probabilities``, a
    slots x ops matrix); every other slot holds the centre's op."""
    ops = centre.ops
    _check_region_shape(len(ops), open_slots, ops_per_slot)
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.shape != (len(ops), len(OPS)) or (probabilities < 0).any():
            raise ConfigError(f"fade: probabilities must be a non-negative {len(ops)} x {len(OPS)} matrix")
    candidates = [(op,) for op in ops]
    for slot in rng.choice(len(ops), size=open_slots, replace=False):
        others = [op for op in range(len(OPS)) if op != ops[slot]]
        p = None
        if probabilities is not None:
            # floor: an op the distribution has (nearly) ruled out can still be drawn, so the search
            # never loses the ability to reconsider it
            p = np.maximum(probabilities[slot, others], 1e-6)
            p = p / p.sum()
        extra = rng.choice(others, size=ops_per_slot - 1, replace=False, p=p)
        candidates[slot] = (ops[slot], *(int(o) for o in extra))
    return Region(centre.n_stages, tuple(candidates))


# --------------------------------------------------------------------------------------------------
# Ranking rule
# --------------------------------------------------------------------------------------------------
def region_scores(alphas: dict[str, torch.Tensor] | dict[str, np.ndarray], region: Region,
                  rule: str = "sum_log_softmax") -> np.ndarray:
    """A score per member of ``region`` (order of :meth:`Region.members`) from the supernet's
    architecture weights: per slot the softmax of ``alpha`` restricted to the slot's candidates, then

    * ``sum_log_softmax``: the sum over slots of the log-weight of the member's op (the member's
      log-probability under the DARTS distribution; closed slots add 0), or
    * ``sum_softmax``: the sum of the weights (ranks slots by weight mass, not by likelihood).

    Higher is better. Only comparable within one region."""
    if rule not in SCORING_RULES:
        raise ConfigError(f"fade: scoring rule must be one of {', '.join(SCORING_RULES)}, got {rule!r}")
    log_weights = []
    for stage in range(region.n_stages):
        key = stage_key(stage)
        if key not in alphas:
            raise ConfigError(f"fade: architecture weights lack {key!r} (have {', '.join(alphas)})")
        alpha = torch.as_tensor(np.asarray(alphas[key], dtype=np.float64))
        if alpha.shape != (N_EDGES, len(OPS)):
            raise ConfigError(f"fade: {key} weights must be {N_EDGES} x {len(OPS)}, got {tuple(alpha.shape)}")
        log_weights.append(alpha)
    alpha = torch.cat(log_weights)
    mask = torch.cat([region.masks()[stage_key(s)] for s in range(region.n_stages)])
    log_w = F.log_softmax(alpha.masked_fill(~mask, float("-inf")), dim=-1).numpy()
    table = log_w if rule == "sum_log_softmax" else np.exp(log_w)
    members = np.array([m.ops for m in region.members()], dtype=np.int64)
    return table[np.arange(members.shape[1]), members].sum(axis=1)


# --------------------------------------------------------------------------------------------------
# The region supernet
# --------------------------------------------------------------------------------------------------
class MultiCellSupernet(nn.Module):
    """The NB201 search network with one architecture-weight matrix per stage (see
    :mod:`benchmarks.multicell` for which resolution stage uses which stage's cell)."""

    n_ops = len(OPS)
    n_edges = N_EDGES

    def __init__(self, C: int, N: int, n_stages: int, num_classes: int = 10, partial_k: int = 1,
                 affine: bool = False):
        super().__init__()
        self.n_stages = check_n_stages(n_stages)
        self.cell_types = tuple(stage_key(s) for s in range(self.n_stages))
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        self.layer_stage: list[int | None] = []  # which stage's weights each layer takes (None: reduction)
        width = C
        for r in range(resolution_stages(self.n_stages)):
            if r:
                layers.append(ResNetBasicBlock(width, 2 * width, 2))
                self.layer_stage.append(None)
                width *= 2
            for _ in range(N):
                layers.append(NB201SearchCell(width, partial_k, affine))
                self.layer_stage.append(cell_of_resolution_stage(r, self.n_stages))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor],
                hard_index: dict[str, list[int]] | None = None) -> torch.Tensor:
        h = self.stem(x)
        for layer, stage in zip(self.cells, self.layer_stage):
            if stage is None:
                h = layer(h)
            else:
                key = stage_key(stage)
                h = layer(h, weights[key], None if hard_index is None else hard_index[key])
        return self.classifier(self.lastact(h).mean(dim=(2, 3)))

    def prune(self, masks: dict[str, torch.Tensor]) -> None:
        """Run only the candidate ops of each slot (the region's)."""
        for layer, stage in zip(self.cells, self.layer_stage):
            if stage is not None:
                for e, mixed in enumerate(layer.edges):
                    mixed.set_active(masks[stage_key(stage)][e])

    def derive(self, alphas: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None) -> MultiCellArch:
        ops = []
        for key in self.cell_types:
            alpha = alphas[key].detach().float().cpu()
            if masks is not None:
                alpha = alpha.masked_fill(~masks[key].cpu(), float("-inf"))
            ops.extend(int(i) for i in alpha.argmax(dim=-1).tolist())
        return MultiCellArch.from_ops(ops, self.n_stages)


class RegionDARTS(DARTS):
    """First-order DARTS over one region: the multi-cell supernet, its mixed ops pruned to the region's
    candidates (the mechanism DrNAS's progressive pruning uses), softmax restricted to them."""

    name = "fade_region_darts"

    def __init__(self, rng: np.random.Generator, **common: Any):
        if "space" in common:
            raise ConfigError("fade: the region supernet's space is set by its region, not by 'space'")
        # the cells are NB201 cells; the multi-cell macro is built by _build_model below
        super().__init__(rng, space="nb201", **common)
        if any(stage.fused for stage in self.stages):
            raise ConfigError("fade: the region supernet has per-edge cells only; set fused_cells = false")

    def adapt_search_space(self, space: Any, dataset: str, num_classes: int = 10, device: str = "cpu",
                           region: Region | None = None, **kwargs: Any) -> None:
        if not isinstance(region, Region):
            raise ConfigError("fade: the region supernet needs a Region")
        if isinstance(space, MultiCellSpace) and space.n_stages != region.n_stages:
            raise ConfigError(f"fade: region has {region.n_stages} stages, space {space.n_stages}")
        self.region = region
        super().adapt_search_space("nb201", dataset, num_classes, device, **kwargs)
        self.masks = {k: v.to(self.device) for k, v in region.masks().items()}
        self.model.prune(self.masks)

    def _build_model(self, stage: Stage) -> nn.Module:  # (fused cells are refused in __init__)
        model = MultiCellSupernet(self.channels, self.cells, self.region.n_stages, self.num_classes,
                                  stage.partial_k).to(self.device)
        self.forward_fn = model
        return model


@dataclass(frozen=True)
class RegionResult:
    region: Region
    alphas: dict[str, np.ndarray]
    scores: np.ndarray
    seconds: float  # training time of the whole schedule
    epochs: int
    epoch_seconds: tuple[float, ...] = ()
    reused: bool = False  # found finished in its folder (same identity), not trained by this call


def train_region(region: Region, hparams: dict, seed: int, arrays: Any, out_dir: Path, scoring: str,
                 device: str = "cpu", progress: bool = False,
                 stop_after_epochs: int | None = None) -> RegionResult | None:
    """Train the region's supernet (resuming from ``out_dir`` if interrupted; skipped if finished with
    the same identity) and score its members. ``stop_after_epochs`` ends the call early (to test resuming):
    then nothing is scored and None is returned."""
    from algorithms.nn.search import make_search, run_search, search_data

    out_dir = Path(out_dir)
    identity = {"algorithm": "fade_region_darts", "region": region.id, "hparams": hparams, "seed": seed,
                "images": arrays.name, "n_train": int(len(arrays.y_train))}
    done = out_dir / "region.json"
    if done.is_file():
        previous = json.loads(done.read_text())
        if json.dumps(previous.get("identity"), sort_keys=True) == json.dumps(identity, sort_keys=True):
            alphas = {k: np.asarray(v) for k, v in previous["alphas"].items()}
            return RegionResult(region, alphas, region_scores(alphas, region, scoring),
                                float(previous["seconds"]), int(previous["epochs"]),
                                tuple(previous.get("epoch_seconds", ())), reused=True)
    search = make_search(RegionDARTS, hparams, seed)
    search.adapt_search_space("nb201", "cifar10", num_classes=arrays.num_classes, device=device, region=region)
    train, valid = search_data(search, arrays, seed)
    t0 = time.perf_counter()
    result = run_search(search, train, valid, out_dir, identity, progress=progress,
                        stop_after_epochs=stop_after_epochs)
    if not result["finished"]:
        return None
    epoch_seconds = tuple(float(h["seconds"]) for h in result["history"])
    seconds = sum(epoch_seconds) if epoch_seconds else time.perf_counter() - t0
    alphas = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in search.alphas.items()}
    atomic_write_json(done, {"identity": identity, "alphas": {k: v.tolist() for k, v in alphas.items()},
                             "seconds": seconds, "epochs": result["epochs_done"], "epoch_seconds": epoch_seconds})
    (out_dir / "checkpoint.pt").unlink(missing_ok=True)  # finished: region.json holds what is needed
    return RegionResult(region, alphas, region_scores(alphas, region, scoring), seconds, result["epochs_done"],
                        epoch_seconds)


# --------------------------------------------------------------------------------------------------
# Ground truth for multi-cell architectures: brief training, cached
# --------------------------------------------------------------------------------------------------
class NB201Cell(nn.Module):
    """One discrete NB201 cell: node ``i`` sums ``op(node j)`` over its edges ``(i, j)`` (NB201's InferCell);
    affine BN, as NB201 evaluates architectures."""

    def __init__(self, C: int, cell: NB201Arch):
        super().__init__()
        self.edges = nn.ModuleList(NB201_OPS[OPS[op]](C, C, 1, True) for op in cell.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to_node in range(1, 4):
            nodes.append(sum(self.edges[e](nodes[j]) for e, (i, j) in enumerate(EDGES) if i == to_node))
        return nodes[-1]


class MultiCellNetwork(nn.Module):
    """The discrete network of a :class:`MultiCellArch`: the skeleton of :class:`MultiCellSupernet` (stem,
    ``max(3, S)`` resolution stages of ``N`` cells split by ResNet reduction blocks, BN-ReLU, global pool,
    linear), each cell the discrete cell of its stage. ``forward`` returns ``(logits, None)`` (no auxiliary
    head), the output the shared training loop expects."""

    def __init__(self, arch: MultiCellArch, C: int, N: int, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        width = C
        for r in range(resolution_stages(arch.n_stages)):
            if r:
                layers.append(ResNetBasicBlock(width, 2 * width, 2))
                width *= 2
            cell = arch.cells[cell_of_resolution_stage(r, arch.n_stages)]
            layers.extend(NB201Cell(width, cell) for _ in range(N))
        self.layers = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.classifier(self.lastact(self.layers(self.stem(x))).mean(dim=(2, 3))), None


@dataclass(frozen=True)
class GroundTruthSettings(BriefTraining):
    """How an architecture is trained to get its ground truth (``fade.toml`` ``[ground_truth]``): the
    network and data below, plus the optimiser schedule of :class:`~algorithms.nn.train.BriefTraining`.

    The first ``valid_images`` images of a fixed permutation (``split_seed``) of the training split are
    held out for validation accuracy; the next ``train_images`` train the network; the test split gives
    test accuracy. Every architecture is trained with the same ``seed`` (same weight-init stream, data
    order and augmentation): common random numbers make differences between architectures less noisy."""

    channels: int
    cells: int
    image_size: int
    batch_size: int
    train_images: int
    valid_images: int
    split_seed: int
    seed: int

    @classmethod
    def from_config(cls, values: dict) -> "GroundTruthSettings":
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(values) - names), sorted(names - set(values))
        if unknown or missing:
            raise ConfigError(f"fade.toml [ground_truth]: unknown key(s) {unknown}, missing key(s) {missing}")
        return cls(**values)

    def __post_init__(self) -> None:
        super().__post_init__()  # the optimiser settings
        for f in fields(self):
            value = getattr(self, f.name)
            kind = int if f.type == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ConfigError(f"fade [ground_truth]: {f.name} must be a {f.type}, got {value!r}")
        for name in ("channels", "cells", "image_size", "batch_size", "train_images", "valid_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"fade [ground_truth]: {name} must be >= 1, got {getattr(self, name)}")

    def schedule(self) -> BriefTraining:
        return BriefTraining(**{f.name: getattr(self, f.name) for f in fields(BriefTraining)})


def images_identity(arrays: Any) -> dict:
    """What identifies a set of images in a cache key: name, sizes and a digest of the arrays' bytes."""
    digest = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        digest.update(np.ascontiguousarray(getattr(arrays, name)).tobytes())
    return {"name": arrays.name, "n_train": int(len(arrays.y_train)), "n_test": int(len(arrays.y_test)),
            "sha256": digest.hexdigest()}


class TrainedGroundTruth:
    """Validation and test accuracy of multi-cell architectures by brief training, cached on disk.

    One JSON file per key in ``folder``; the key is the sha256 of (architecture id, settings, images
    identity, device type), and the file repeats that identity, so a foreign or stale file is never
    mistaken for a result. Files are written atomically: an interrupted training leaves no file and is
    simply trained again; a finished one is never trained twice."""

    def __init__(self, settings: GroundTruthSettings, arrays: Any, folder: str | Path, device: str = "cpu"):
        self.settings, self.arrays, self.folder = settings, arrays, Path(folder)
        self.device = torch.device(device)
        self.images = images_identity(arrays)
        needed = settings.train_images + settings.valid_images
        if needed > len(arrays.y_train):
            raise ConfigError(f"fade [ground_truth]: train_images + valid_images = {needed} exceeds the "
                              f"{len(arrays.y_train)} training images of {arrays.name}")
        self.trainings = 0  # trained by this object (not found in the cache)

    def identity(self, arch: MultiCellArch) -> dict:
        return {"arch": arch.id, "settings": asdict(self.settings), "images": self.images,
                "device": self.device.type}

    def path(self, arch: MultiCellArch) -> Path:
        key = hashlib.sha256(json.dumps(self.identity(arch), sort_keys=True).encode()).hexdigest()
        return self.folder / f"{key[:24]}.json"

    def cached(self, arch: MultiCellArch) -> dict | None:
        """The stored result of ``arch`` under these settings, or None if it was never trained."""
        path = self.path(arch)
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: unreadable ground-truth cache entry ({exc}); delete it to retrain") from None
        if not isinstance(stored, dict) or stored.get("identity") != self.identity(arch):
            raise CheckpointError(f"{path}: holds another architecture or settings than its name says; "
                                  f"delete it to retrain")
        return stored["result"]

    def query(self, arch: MultiCellArch) -> dict:
        """``{"valid_acc", "test_acc", "seconds", ...}`` of ``arch``: from the cache, else trained now."""
        found = self.cached(arch)
        if found is not None:
            return found
        result = self._train(arch)
        atomic_write_json(self.path(arch), {"identity": self.identity(arch), "result": result})
        self.trainings += 1
        return result

    def _train(self, arch: MultiCellArch) -> dict:
        from algorithms.nn.data import ImageBatches
        from algorithms.nn.train import fit_classifier

        s, arrays = self.settings, self.arrays
        order = torch.randperm(len(arrays.y_train), generator=torch.Generator().manual_seed(s.split_seed)).numpy()
        held_out = np.sort(order[:s.valid_images])
        training = np.sort(order[s.valid_images:s.valid_images + s.train_images])
        init_seed, data_seed = (int(x) for x in np.random.SeedSequence(s.seed).generate_state(2))
        common = dict(batch_size=s.batch_size, mean=arrays.mean, std=arrays.std, resize_to=s.image_size)
        train = ImageBatches(arrays.x_train[training], arrays.y_train[training], augment=True,
                             crop_padding=4 * s.image_size // 32,
                             generator=torch.Generator(device=self.device).manual_seed(data_seed), **common)
        # evaluation draws nothing random; the generators only fix the device
        valid = ImageBatches(arrays.x_train[held_out], arrays.y_train[held_out], shuffle=False,
                             generator=torch.Generator(device=self.device), **common)
        test = ImageBatches(arrays.x_test, arrays.y_test, shuffle=False,
                            generator=torch.Generator(device=self.device), **common)
        with torch.random.fork_rng(devices=[]):  # module initialisers draw from the global generator
            torch.manual_seed(init_seed)
            model = MultiCellNetwork(arch, s.channels, s.cells, arrays.num_classes).to(self.device)
        t0 = time.perf_counter()
        out = fit_classifier(model, train, {"valid": valid, "test": test}, s.schedule())
        return {"valid_acc": out["valid_acc"], "test_acc": out["test_acc"], "valid_loss": out["valid_loss"],
                "test_loss": out["test_loss"], "final_train_acc": out["history"][-1]["train_acc"],
                "seconds": time.perf_counter() - t0,
                "parameters": int(sum(p.numel() for p in model.parameters()))}


# --------------------------------------------------------------------------------------------------
# Pseudo-gradient evolution
# --------------------------------------------------------------------------------------------------
def rank_utilities(scores: np.ndarray, utility: str = "centred_rank") -> np.ndarray:
    """Zero-sum utilities from scores (higher score, higher utility); ties share their rank.

    ``centred_rank``: ranks scaled to [-0.5, 0.5] (Salimans et al. 2017); ``nes``: the log-rank
    fitness shaping of natural evolution strategies (Wierstra et al. 2014), centred."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if n < 2:
        return np.zeros(n)
    ranks = rankdata(scores)  # 1 = worst
    if utility == "centred_rank":
        return (ranks - 1) / (n - 1) - 0.5
    if utility == "nes":
        best_first = n + 1 - ranks
        raw = np.maximum(0.0, np.log(n / 2 + 1) - np.log(best_first))
        return raw / raw.sum() - 1.0 / n
    raise ConfigError(f"fade: utility must be one of {', '.join(UTILITIES)}, got {utility!r}")


class PseudoGradientEvolution:
    """Memory-less, batch-wise evolution over a :class:`MultiCellSpace` driven by within-region ranks.

    State: ``theta`` (slots x ops logits; ``softmax`` per slot is the search distribution) and the
    ``centre``. :meth:`ask` draws ``regions_per_generation`` regions around the centre; :meth:`tell`
    takes one score vector per region and steps ``theta``:

    * ``rank_weighted``: ``theta += lr * mean_regions sum_members u_m (onehot(m) - P)`` with zero-sum
      rank utilities ``u`` -- the search-gradient of the expected utility; slots a region holds fixed
      get exactly zero (their one-hot is the same for every member).
    * ``best_member``: on every open slot, ``theta += lr * (onehot(best member) - P)`` (PBIL-like).

    The centre then moves, slot by slot, to ``argmax theta`` where that op is strictly more likely than
    the centre's current op (ties keep the centre, so a uniform start stays at the random first centre).
    """

    def __init__(self, space: MultiCellSpace, rng: np.random.Generator, *, regions_per_generation: int,
                 open_slots: int, ops_per_slot: int, step_rule: str, utility: str, learning_rate: float):
        if step_rule not in STEP_RULES:
            raise ConfigError(f"fade: step_rule must be one of {', '.join(STEP_RULES)}, got {step_rule!r}")
        if utility not in UTILITIES:
            raise ConfigError(f"fade: utility must be one of {', '.join(UTILITIES)}, got {utility!r}")
        if isinstance(regions_per_generation, bool) or not isinstance(regions_per_generation, int) \
                or regions_per_generation < 1:
            raise ConfigError(f"fade: regions_per_generation must be a positive integer, got "
                              f"{regions_per_generation!r}")
        if not (isinstance(learning_rate, (int, float)) and np.isfinite(learning_rate) and learning_rate > 0):
            raise ConfigError(f"fade: learning_rate must be a positive number, got {learning_rate!r}")
        _check_region_shape(space.n_slots, open_slots, ops_per_slot)
        self.space, self.rng = space, rng
        self.regions_per_generation, self.open_slots, self.ops_per_slot = (
            regions_per_generation, open_slots, ops_per_slot)
        self.step_rule, self.utility, self.learning_rate = step_rule, utility, float(learning_rate)
        self.theta = np.zeros((space.n_slots, len(OPS)))
        self.centre = space.sample(rng)
        self.generation = 0

    @property
    def probabilities(self) -> np.ndarray:
        z = self.theta - self.theta.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def ask(self) -> list[Region]:
        p = self.probabilities
        return [region_around(self.centre, self.open_slots, self.ops_per_slot, self.rng, p)
                for _ in range(self.regions_per_generation)]

    def pseudo_gradient(self, regions: Sequence[Region], scores: Sequence[np.ndarray]) -> np.ndarray:
        if len(regions) != len(scores) or not regions:
            raise ConfigError(f"fade: need one score vector per region ({len(regions)} regions, "
                              f"{len(scores)} score vectors)")
        p = self.probabilities
        step = np.zeros_like(self.theta)
        for region, s in zip(regions, scores):
            members = np.array([m.ops for m in region.members()], dtype=np.int64)
            s = np.asarray(s, dtype=np.float64)
            if s.shape != (len(members),) or not np.isfinite(s).all():
                raise ConfigError(f"fade: region {region.id} has {len(members)} members; got scores of shape "
                                  f"{s.shape} (all finite required)")
            onehot = np.eye(len(OPS))[members]  # members x slots x ops
            if self.step_rule == "rank_weighted":
                u = rank_utilities(s, self.utility)
                step += np.einsum("m,mso->so", u, onehot - p[None]) / max(np.abs(u).sum(), 1e-12)
            else:
                best = onehot[int(np.argmax(s))]
                open_ = list(region.open_slots)
                step[open_] += best[open_] - p[open_]
        return step / len(regions)

    def tell(self, regions: Sequence[Region], scores: Sequence[np.ndarray]) -> None:
        self.theta = self.theta + self.learning_rate * self.pseudo_gradient(regions, scores)
        ops = list(self.centre.ops)
        for slot, row in enumerate(self.theta):
            best = int(np.argmax(row))
            if row[best] > row[ops[slot]]:
                ops[slot] = best
        self.centre = MultiCellArch.from_ops(ops, self.space.n_stages)
        self.generation += 1

    def mode(self) -> MultiCellArch:
        """The search's current answer: the centre."""
        return self.centre

    def state_dict(self) -> dict:
        return {"theta": self.theta.tolist(), "centre": self.centre.id, "generation": self.generation,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        theta = np.asarray(state["theta"], dtype=np.float64)
        if theta.shape != self.theta.shape:
            raise ConfigError(f"fade: saved theta has shape {theta.shape}, expected {self.theta.shape}")
        self.theta, self.centre = theta, self.space.parse(state["centre"])
        self.generation = int(state["generation"])
        self.rng.bit_generator.state = state["rng"]


# --------------------------------------------------------------------------------------------------
# Baselines at equal training budget
# --------------------------------------------------------------------------------------------------
def random_search(space: MultiCellSpace, evaluate: Callable[[MultiCellArch], float], n_evaluations: int,
                  rng: np.random.Generator) -> list[tuple[MultiCellArch, float]]:
    """Uniform draws; returns (architecture, validation accuracy) in evaluation order."""
    return [(arch, float(evaluate(arch))) for arch in (space.sample(rng) for _ in range(n_evaluations))]


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float) -> np.ndarray:
    std = np.maximum(std, 1e-12)
    z = (mean - best - xi) / std
    return (mean - best - xi) * norm.cdf(z) + std * norm.pdf(z)


def bayesian_optimisation(space: MultiCellSpace, evaluate: Callable[[MultiCellArch], float], n_evaluations: int,
                          rng: np.random.Generator, *, n_init: int, n_candidates: int, xi: float,
                          gp_hparams: dict) -> list[tuple[MultiCellArch, float]]:
    """GP-EI: ``n_init`` uniform draws, then each evaluation maximises expected improvement over
    ``n_candidates`` fresh uniform draws and the neighbours of the incumbent. The GP is the project's
    :class:`algorithms.predictors.GaussianProcess` (one-hot encoding, Matern kernel, fitted by marginal
    likelihood; its settings are ``gp_hparams``)."""
    from algorithms.predictors import GaussianProcess

    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ConfigError(f"fade: bo n_init must be a positive integer, got {n_init!r}")
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 1:
        raise ConfigError(f"fade: bo n_candidates must be a positive integer, got {n_candidates!r}")
    history: list[tuple[MultiCellArch, float]] = []
    seen: set[str] = set()
    for i in range(n_evaluations):
        if i < n_init:
            arch = space.sample(rng)
        else:
            archs, y = [a for a, _ in history], np.array([v for _, v in history])
            gp = GaussianProcess(space, rng, **gp_hparams).fit(archs, y)
            incumbent = archs[int(np.argmax(y))]
            pool = {a.id: a for a in [space.sample(rng) for _ in range(n_candidates)] + space.neighbours(incumbent)}
            pool = [a for key, a in pool.items() if key not in seen] or [space.sample(rng)]
            mean, std = gp.predict_with_std(pool)
            arch = pool[int(np.argmax(expected_improvement(mean, std, float(y.max()), xi)))]
        seen.add(arch.id)
        history.append((arch, float(evaluate(arch))))
    return history

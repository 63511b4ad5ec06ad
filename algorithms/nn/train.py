"""Train a discrete DARTS-space network from scratch: the architecture-evaluation protocol of DARTS/DrNAS.

SGD with momentum and weight decay, cosine learning rate, gradient-norm clipping, auxiliary-head loss,
drop-path rising linearly over the epochs, cutout. On CUDA the forward pass runs in bf16 autocast with
channels_last tensors; on CPU in fp32. Every hyper-parameter comes from ``algorithms/configs/darts_eval.toml``
(``[full]`` is the paper protocol, ``[reduced]`` a CPU-sized one, ``[quick]`` a CPU smoke test).

After every epoch the run writes ``checkpoint.pt`` (model, optimizer, scheduler, data-iterator and
generator states, history) and ``history.csv`` / ``history.json`` into its folder. Calling
:func:`train_network` again on the same folder resumes exactly where it stopped — the losses are the same
as if it had never stopped. A checkpoint written for another configuration raises :class:`CheckpointError`.
"""
from __future__ import annotations

import argparse
import csv
import io
import pickle
import time
import tomllib
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from algorithms.nn.darts_net import as_genotype, build_network, count_parameters_mb
from algorithms.nn.data import ImageArrays, ImageBatches, load_dataset
from nasrepro.errors import CheckpointError, ConfigError, first_line
from nasrepro.io import atomic_path, atomic_write_json, atomic_write_text

CONFIG_PATH = Path(__file__).resolve().parents[1] / "configs" / "darts_eval.toml"
CHECKPOINT = "checkpoint.pt"
HISTORY_COLUMNS = ("epoch", "lr", "drop_path_prob", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """One section of ``darts_eval.toml``; every field is required there."""

    dataset: str
    genotype: str  # a name from the file's [genotypes] table, or a DARTS genotype string
    epochs: int
    batch_size: int
    eval_batch_size: int
    learning_rate: float
    lr_min: float
    momentum: float
    weight_decay: float
    grad_clip: float  # 0: no clipping
    init_channels: int
    layers: int
    auxiliary_weight: float  # 0 disables the auxiliary head
    cutout: int  # 0 disables cutout
    crop_padding: int
    drop_path_prob: float
    resize_to: int  # 0 keeps the native resolution
    train_subset: int  # 0 uses every training image
    test_subset: int  # 0 uses every test image


def load_train_config(section: str = "full", overrides: dict | None = None,
                      path: str | Path = CONFIG_PATH) -> TrainConfig:
    """The ``[section]`` of the config file with ``overrides`` applied; unknown or missing keys are errors."""
    config = _read_toml(path)
    if section not in config or section in ("meta", "genotypes"):
        raise ConfigError(f"{Path(path).name} has no training section [{section}]")
    values = {**config[section], **(overrides or {})}
    names = {f.name for f in fields(TrainConfig)}
    unknown, missing = sorted(set(values) - names), sorted(names - set(values))
    if unknown or missing:
        raise ConfigError(f"{Path(path).name} [{section}]: unknown key(s) {unknown}, missing key(s) {missing}")
    for f in fields(TrainConfig):
        kind = {"int": int, "float": float, "str": str}[f.type]
        value = values[f.name]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
            raise ConfigError(f"[{section}] {f.name} must be a {f.type}, got {value!r}")
        values[f.name] = kind(value)
    cfg = TrainConfig(**values)
    if cfg.epochs <= 0 or cfg.batch_size <= 0 or cfg.eval_batch_size <= 0:
        raise ConfigError(f"[{section}] epochs and batch sizes must be positive")
    if not 0 <= cfg.drop_path_prob < 1:
        raise ConfigError(f"[{section}] drop_path_prob must be in [0, 1), got {cfg.drop_path_prob}")
    return cfg


def resolve_genotype(name_or_string: str, path: str | Path = CONFIG_PATH):
    """A genotype by name from the config's ``[genotypes]`` table, or parsed from a DARTS genotype string."""
    published = _read_toml(path).get("genotypes", {})
    if name_or_string in published:
        return as_genotype(published[name_or_string])
    if not name_or_string.lstrip().startswith("Genotype("):
        raise ConfigError(f"unknown genotype {name_or_string!r}; published ones: {', '.join(published)} "
                          f"(or pass a 'Genotype(normal=..., ...)' string)")
    return as_genotype(name_or_string)


def evaluation_params_mb(genotype: str, section: str = "full", num_classes: int = 10) -> float:
    """Parameters (millions, auxiliary head excluded) of ``genotype`` (a published name or a genotype string) built
    at the size of ``darts_eval.toml [section]``: the number the DARTS-family papers print beside a cell's error."""
    config = load_train_config(section)
    model = build_network(resolve_genotype(genotype), init_channels=config.init_channels, layers=config.layers,
                          num_classes=num_classes, auxiliary=False, seed=0)
    return count_parameters_mb(model)


def _read_toml(path: str | Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"bad TOML in {path}: {exc}") from exc


@dataclass
class TrainResult:
    out_dir: Path
    params_mb: float
    history: list[dict]  # one row per epoch, columns HISTORY_COLUMNS

    @property
    def final_test_acc(self) -> float | None:
        return self.history[-1]["test_acc"] if self.history else None


def train_network(config: TrainConfig, out_dir: str | Path, *, seed: int = 0,
                  device: str | torch.device | None = None, data: ImageArrays | None = None,
                  max_epochs: int | None = None, progress: bool = True) -> TrainResult:
    """Train (or resume training) ``config.genotype`` in ``out_dir``; return its per-epoch history.

    ``data`` replaces loading ``config.dataset`` from the data root (tests pass small arrays).
    ``max_epochs`` stops this call after that many further epochs (a resumable partial run).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = Path(out_dir)
    genotype = resolve_genotype(config.genotype)
    arrays = data if data is not None else load_dataset(config.dataset)
    identity = {"config": asdict(config), "genotype": repr(genotype), "seed": seed, "device": device.type,
                "data": [arrays.name, len(arrays.y_train), len(arrays.y_test), arrays.num_classes]}
    # independent streams for weights, data order/augmentation and drop-path, all from one seed
    init_seed, data_seed, drop_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(3))

    train_batches, test_batches = _make_batches(config, arrays, device, data_seed)
    model = build_network(genotype, init_channels=config.init_channels, layers=config.layers,
                          num_classes=arrays.num_classes, auxiliary=config.auxiliary_weight > 0, seed=init_seed,
                          image_size=train_batches.image_size).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    model.drop_path_generator = torch.Generator(device=device).manual_seed(drop_seed)
    optimizer = torch.optim.SGD(model.parameters(), config.learning_rate, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(config.epochs), eta_min=config.lr_min)
    params_mb = count_parameters_mb(model)

    history: list[dict] = []
    checkpoint_path = out_dir / CHECKPOINT
    if checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, identity)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        train_batches.load_state_dict(state["train_batches"])
        model.drop_path_generator.set_state(state["drop_path_generator"])
        history = list(state["history"])
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", {**identity, "params_mb": params_mb})

    criterion = nn.CrossEntropyLoss()
    last = config.epochs if max_epochs is None else min(config.epochs, len(history) + max_epochs)
    for epoch in range(len(history), last):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        model.drop_path_prob = config.drop_path_prob * epoch / config.epochs  # DARTS: linear from 0
        train_loss, train_acc = _train_epoch(model, train_batches, optimizer, criterion, config, use_cuda,
                                             desc=f"epoch {epoch + 1}/{config.epochs}", progress=progress)
        test_loss, test_acc = evaluate(model, test_batches, use_cuda)
        scheduler.step()
        history.append({"epoch": epoch + 1, "lr": lr, "drop_path_prob": model.drop_path_prob,
                        "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
                        "test_acc": test_acc, "seconds": time.perf_counter() - started})
        _save_checkpoint(checkpoint_path, {
            "identity": identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "train_batches": train_batches.state_dict(),
            "drop_path_generator": model.drop_path_generator.get_state(), "history": history})
        _write_history(out_dir, history)
    return TrainResult(out_dir, params_mb, history)


def _make_batches(config: TrainConfig, arrays: ImageArrays, device: torch.device, seed: int
                  ) -> tuple[ImageBatches, ImageBatches]:
    pick = torch.Generator().manual_seed(seed)  # chooses the subsets (CPU, once)
    x_train, y_train = _subset(arrays.x_train, arrays.y_train, config.train_subset, pick)
    x_test, y_test = _subset(arrays.x_test, arrays.y_test, config.test_subset, pick)
    common = dict(mean=arrays.mean, std=arrays.std, resize_to=config.resize_to or None,
                  channels_last=device.type == "cuda")
    train = ImageBatches(x_train, y_train, batch_size=config.batch_size, augment=True, cutout=config.cutout,
                         crop_padding=config.crop_padding,
                         generator=torch.Generator(device=device).manual_seed(seed), **common)
    # the test pass draws nothing random; its generator only fixes the device
    test = ImageBatches(x_test, y_test, batch_size=config.eval_batch_size, augment=False, shuffle=False,
                        generator=torch.Generator(device=device), **common)
    return train, test


def _subset(x: np.ndarray, y: np.ndarray, count: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    if count <= 0 or count >= len(y):
        return x, y
    rows = np.sort(torch.randperm(len(y), generator=generator)[:count].numpy())
    return x[rows], y[rows]


def _train_epoch(model: nn.Module, batches: ImageBatches, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                 config: TrainConfig, use_cuda: bool, desc: str, progress: bool) -> tuple[float, float]:
    model.train()
    device = batches.device
    loss_sum = torch.zeros((), device=device)  # summed on the device: no host sync per step
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    for x, y in tqdm(batches.epoch(), total=len(batches), desc=desc, disable=not progress, leave=False):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            logits, logits_aux = model(x)
            loss = criterion(logits.float(), y)
            if logits_aux is not None:
                loss = loss + config.auxiliary_weight * criterion(logits_aux.float(), y)
        loss.backward()
        if config.grad_clip > 0:  # 0: no clipping
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return loss_sum.item() / seen, 100.0 * correct.item() / seen


@torch.no_grad()
def evaluate(model: nn.Module, batches: ImageBatches, use_cuda: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in %) over one full pass of ``batches``."""
    model.eval()
    device = batches.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    for x, y in batches.epoch():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_cuda):
            logits, _ = model(x)
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return loss_sum.item() / seen, 100.0 * correct.item() / seen


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, identity: dict) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({first_line(exc)}); "
                              f"move it away to start over") from exc
    if not isinstance(state, dict) or "identity" not in state:
        raise CheckpointError(f"{path}: not a nasrepro training checkpoint")
    if state["identity"] != identity:
        changed = sorted(k for k in set(identity["config"]) | set(state["identity"].get("config", {}))
                         if identity["config"].get(k) != state["identity"].get("config", {}).get(k))
        changed += [k for k in ("genotype", "seed", "device", "data") if identity[k] != state["identity"].get(k)]
        changed = list(dict.fromkeys(changed))  # the genotype is both a config key and the parsed cell
        raise CheckpointError(f"{path} belongs to another run (differs in: {', '.join(changed)}); "
                              f"use another output folder")
    return state


def _write_history(out_dir: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(out_dir / "history.csv", buffer.getvalue())
    atomic_write_json(out_dir / "history.json", history)


# --------------------------------------------------------------------------------------------------
# Command line: ``nasrepro train-eval`` (register(subparsers) like every command module)
# --------------------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train-eval", help="train a DARTS-space genotype from scratch (architecture evaluation)")
    p.add_argument("out", type=Path, help="run folder (resumed if it holds a checkpoint of the same run)")
    p.add_argument("--scale", default="full",
                   help="config section of darts_eval.toml: full (the paper protocol), reduced or quick")
    p.add_argument("--genotype", help="published genotype name or a 'Genotype(...)' string (default: config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-epochs", type=int, help="stop after this many more epochs (resumable)")
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    overrides = {"genotype": args.genotype} if args.genotype else None
    config = load_train_config(args.scale, overrides)
    result = train_network(config, args.out, seed=args.seed, device=args.device, max_epochs=args.max_epochs)
    last = result.history[-1] if result.history else None
    print(f"{args.out}: {len(result.history)}/{config.epochs} epochs, {result.params_mb:.3f} M params"
          + (f", test acc {last['test_acc']:.2f} %" if last else ""))
    return 0


# --------------------------------------------------------------------------------------------------
# Any classifier, short schedule, no checkpoint (brief trainings used as ground truth, e.g. by FaDE)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BriefTraining:
    """The optimiser and schedule of :func:`fit_classifier` (SGD with momentum, cosine to ``lr_min``;
    ``grad_clip`` 0: no clipping)."""

    epochs: int
    learning_rate: float
    lr_min: float
    momentum: float
    weight_decay: float
    grad_clip: float

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"brief training: epochs must be a positive integer, got {self.epochs!r}")
        for name in ("learning_rate", "lr_min", "momentum", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ConfigError(f"brief training: {name} must be a non-negative number, got {value!r}")


def fit_classifier(model: nn.Module, train: ImageBatches, evaluations: dict[str, ImageBatches],
                   schedule: BriefTraining, progress: bool = False, nesterov: bool = False,
                   bf16: bool = True) -> dict:
    """Train ``model`` (its forward returns ``(logits, auxiliary logits or None)``, as the DARTS networks')
    on ``train`` for ``schedule.epochs`` epochs with the optimiser of :func:`train_network` (no auxiliary
    head, no drop-path), then return ``{"history": [...], "<name>_acc": %, "<name>_loss": ...}`` for every
    batch set of ``evaluations``. Runs start to end in one call: for trainings of seconds to minutes, where
    a checkpoint would cost more than it saves."""
    use_cuda = train.device.type == "cuda"
    autocast = use_cuda and bf16  # bf16 autocast on a GPU
    optimizer = torch.optim.SGD(model.parameters(), schedule.learning_rate, momentum=schedule.momentum,
                                weight_decay=schedule.weight_decay, nesterov=nesterov)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(schedule.epochs), eta_min=schedule.lr_min)
    # _train_epoch reads the auxiliary weight and the clipping norm from its config
    epoch_config = argparse.Namespace(auxiliary_weight=0.0, grad_clip=schedule.grad_clip)
    criterion = nn.CrossEntropyLoss()
    history = []
    for epoch in range(schedule.epochs):
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        loss, acc = _train_epoch(model, train, optimizer, criterion, epoch_config, autocast,
                                 desc=f"epoch {epoch + 1}/{schedule.epochs}", progress=progress)
        scheduler.step()
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": loss, "train_acc": acc,
                        "seconds": time.perf_counter() - started})
    result: dict = {"history": history}
    for name, batches in evaluations.items():
        result[f"{name}_loss"], result[f"{name}_acc"] = evaluate(model, batches, autocast)
    return result

"""Does our training stack, on our images, reach NAS-Bench-201's accuracies? Train NB201 cells with NB201's own
recipe and set the test accuracy beside the benchmark's value for the same cell and epoch count.

Why: our DrNAS supernet trained slower than the official one from its first epoch in the one pair of runs
compared (results/drnas/GPU.md), and our only CIFAR-10 is a lossy JPEG copy. A stand-alone cell trained here
that falls short of the table points at the images (train and test are both the JPEG copy) or the stack; one
that matches it clears them.

Recipe (NB201 / NATS-Bench topology, hp=12 and hp=200): SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4,
cosine to 0, batch 256, random crop (pad 4) + flip, fp32, no gradient clipping, trained on the 50,000 training
images and tested on the 10,000 test images; cells with C=16, N=5, affine BN. The 200-epoch column is NB201's
``cifar10`` run exactly. The 12-epoch column (``hp12_cifar10_test`` in ../shared/data) is most likely the 12-epoch
``cifar10`` run too (50,000 training images): it is above the 12-epoch ``cifar10-valid`` accuracy
(``hp12_cifar10_val``, 25,000 training images) in 99.9 % of the 15,625 cells, by a median 6.9 pp, which held-out
sets of one distribution would not show unless the training sets differed. One recipe difference: our cosine
learning rate steps once per epoch, NB201's every iteration (the same mean rate; it matters most at 12 epochs).

``--jpeg-quality Q`` re-encodes every image (train and test) as JPEG at quality Q (4:2:0) before training: a
dose-response test of the image hypothesis (if accuracy falls steeply as Q drops below our copy's 75, the
compression of our copy plausibly costs accuracy too). On our JPEG copy that is a second compression (quality 75,
then Q), not one pass at Q.

    python -m reproduce.nb201_training_check --epochs 12 [--cells ARCH,...] [--seed S] [--jpeg-quality Q]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from nasrepro.errors import ConfigError, NasReproError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce.cli import check_device

#: cells checked by default: the space's best (CIFAR-10 test, 200 epochs), the cell our paper-scale progressive
#: DrNAS search derived (seed 0), and an all-average-pool cell (the direction our searches drift)
DEFAULT_CELLS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
)
BENCHMARK_EPOCHS = (12, 200)
CIFAR10_TEST_IMAGES = 10_000
#: NB201's training recipe (grad_clip 0: none; fp32)
RECIPE = {"learning_rate": 0.1, "lr_min": 0.0, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
          "grad_clip": 0.0, "batch_size": 256, "bf16": False}
#: the image sets this check accepts: the benchmark's numbers are CIFAR-10's
CIFAR10_IMAGES = ("cifar10", "cifar10-jpeg", "cifar10-subset")


class NB201CellNetwork(nn.Module):
    """One NB201 cell in NB201's macro network: the search network with every edge pruned to its one op and
    weight 1, so it computes exactly ``sum over edges of op(x)`` (a ``none`` edge adds zero)."""

    def __init__(self, arch, C: int = 16, N: int = 5, num_classes: int = 10):
        super().__init__()
        from algorithms.nn.nb201_supernet import NB201Supernet
        from benchmarks.nb201 import OPS

        self.net = NB201Supernet(C, N, num_classes, affine=True)
        one_hot = torch.zeros(len(arch.ops), len(OPS))
        one_hot[torch.arange(len(arch.ops)), torch.tensor(arch.ops)] = 1.0
        self.net.prune({"cell": one_hot.bool()})
        self.register_buffer("weights", one_hot)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.net(x, {"cell": self.weights}), None  # (logits, no auxiliary head), as fit_classifier expects


def reencode_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """uint8 NHWC images saved as JPEG at ``quality`` (4:2:0 chroma, Pillow's default) and decoded again."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=2)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def check(cells: list[str], epochs: int, device: str, seed: int = 0, images: str = "cifar10",
          train_images: int = 0, progress: bool = True, jpeg_quality: int | None = None) -> dict:
    """``train_images`` > 0 trains on that many (a smoke test; the benchmark's numbers use all);
    ``jpeg_quality`` re-encodes every image first (:func:`reencode_jpeg`)."""
    from algorithms.nn.data import ImageBatches, image_source, load_dataset
    from algorithms.nn.search import device_name
    from algorithms.nn.train import BriefTraining, fit_classifier
    from benchmarks.nb201 import NB201Benchmark, NB201Space

    space = NB201Space()
    archs = [space.parse(cell) for cell in cells]  # bad strings fail here, before any data is read
    benchmark, arrays = NB201Benchmark.load(), load_dataset(images)
    if jpeg_quality is not None:
        arrays = dataclasses.replace(arrays, x_train=reencode_jpeg(arrays.x_train, jpeg_quality),
                                     x_test=reencode_jpeg(arrays.x_test, jpeg_quality))
    schedule = BriefTraining(epochs=epochs, **{k: RECIPE[k] for k in ("learning_rate", "lr_min", "momentum",
                                                                      "weight_decay", "grad_clip")})
    rows = []
    for index, arch in enumerate(archs):
        generator = torch.Generator(device=device).manual_seed(seed + index)
        train = ImageBatches(arrays.x_train, arrays.y_train, batch_size=RECIPE["batch_size"], mean=arrays.mean,
                             std=arrays.std,
                             generator=generator, augment=True)
        if train_images:
            train = train.subset(train_images, torch.Generator().manual_seed(seed))
        test = ImageBatches(arrays.x_test, arrays.y_test, batch_size=1000, mean=arrays.mean, std=arrays.std,
                            generator=generator)
        with torch.random.fork_rng(devices=[]):  # layer initialisation draws from the global generator
            torch.manual_seed(seed + index)
            model = NB201CellNetwork(arch, num_classes=arrays.num_classes).to(device)
        outcome = fit_classifier(model, train, {"test": test}, schedule, progress=progress,
                                 nesterov=RECIPE["nesterov"], bf16=RECIPE["bf16"])
        table = {e: benchmark.query(arch, "cifar10", split="test", epoch=e) for e in BENCHMARK_EPOCHS}
        row = {"cell": space.format(arch), "epochs": epochs, "ours_test": round(outcome["test_acc"], 2),
               "train_images": train.num_samples, "test_images": test.num_samples,
               "nb201_test": {str(e): round(v, 2) for e, v in table.items()},
               "history": outcome["history"]}
        gap = gap_to_table(outcome["test_acc"], table, epochs, test.num_samples)
        if gap is not None:
            row["gap_pp"] = gap
        rows.append(row)
        print(f"{row['cell']}: ours {row['ours_test']:.2f} % ({test.num_samples:,} test images) after {epochs} "
              "epochs; NB201 "
              + ", ".join(f"{e} epochs {v:.2f} %" for e, v in table.items()), file=sys.stderr)
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "device": device_name(device),
            "images": image_source(images) + (f", re-encoded as JPEG at quality {jpeg_quality}"
                                              if jpeg_quality is not None else ""),
            "jpeg_quality": jpeg_quality, "train_images": train_images or len(arrays.y_train), "seed": seed,
            "recipe": {**RECIPE, "epochs": epochs}, "cells": rows}


def gap_to_table(ours: float, table: dict[int, float], epochs: int, test_images: int) -> float | None:
    """Ours minus the benchmark, in pp; None unless the epoch count has a benchmark value and the test set
    is CIFAR-10's whole test split (a trimmed copy would compare different images)."""
    if epochs not in table or test_images != CIFAR10_TEST_IMAGES:
        return None
    return round(ours - table[epochs], 2)


def markdown(result: dict) -> str:
    lines = ["# NB201 cells trained here vs NAS-Bench-201", "",
             f"{result['date']} on {result['device']}; images: {result['images']} ({result['train_images']:,} "
             f"for training); seed {result['seed']}; "
             "recipe: NB201's (SGD 0.1 Nesterov, wd 5e-4, cosine, batch 256, fp32).", "",
             "| cell | epochs | ours, test % (images) | NB201 12 ep. | NB201 200 ep. | gap (pp) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["cells"]:
        cell = r["cell"].replace("|", "\\|")
        gap = f"{r['gap_pp']:+.2f}" if "gap_pp" in r else "—"
        lines.append(f"| `{cell}` | {r['epochs']} | {r['ours_test']:.2f} ({r['test_images']:,}) | {r['nb201_test']['12']:.2f} | "
                     f"{r['nb201_test']['200']:.2f} | {gap} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduce.nb201_training_check", description=__doc__.split("\n")[0])
    parser.add_argument("--cells", help="comma-separated NB201 cell strings (default: best, DrNAS seed 0, all-pool)")
    parser.add_argument("--epochs", type=int, default=12, help="12 or 200 have benchmark values (default 12)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", default="cifar10", choices=CIFAR10_IMAGES,
                        help="CIFAR-10 images: pickles if present, else JPEG (default); or a named copy")
    parser.add_argument("--train-images", type=int, default=0, help="train on this many (smoke test; default all)")
    parser.add_argument("--jpeg-quality", type=int, help="re-encode every image as JPEG at this quality (1-95) first")
    parser.add_argument("--out", type=Path, default=Path("results/drnas/nb201_training_check"))
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
        if args.epochs < 1 or args.train_images < 0:
            raise ConfigError(f"--epochs must be >= 1 and --train-images >= 0, got {args.epochs}, {args.train_images}")
        if args.jpeg_quality is not None and not 1 <= args.jpeg_quality <= 95:
            raise ConfigError(f"--jpeg-quality must lie in 1..95, got {args.jpeg_quality}")
        cells = args.cells.split(",") if args.cells else list(DEFAULT_CELLS)
        result = check(cells, args.epochs, args.device, args.seed, args.images, args.train_images,
                       progress=sys.stderr.isatty(), jpeg_quality=args.jpeg_quality)
    except NasReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # one file per setting (no silent overwrite): the default cells by epoch count, other cells by their hash;
    # another image set, a seed, a re-encoding or a training subset than the defaults adds to the name
    stem = args.out / ((f"epochs{args.epochs}" if not args.cells else
                        f"epochs{args.epochs}-cells-{hashlib.sha256(args.cells.encode()).hexdigest()[:8]}")
                       + (f"-{args.images}" if args.images != "cifar10" else "")
                       + (f"-seed{args.seed}" if args.seed else "")
                       + (f"-jpeg{args.jpeg_quality}" if args.jpeg_quality is not None else "")
                       + (f"-train{args.train_images}" if args.train_images else ""))
    try:
        atomic_write_json(stem.with_suffix(".json"), result)
        atomic_write_text(stem.with_suffix(".md"), markdown(result))
    except OSError as exc:
        print(f"error: cannot write {stem}.json / .md: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the NB201 DrNAS search step: optimised settings vs an eager fp32 run of the same code.

    python tests/perf/bench_supernet.py                 # paper scale (C=16, N=5, batch 64, 32 px) on the GPU
    python tests/perf/bench_supernet.py --quick         # the CPU quick scale (C=8, N=1, 16 px)
    python tests/perf/bench_supernet.py --section drnas_nb201_progressive --stage 1   # a progressive stage

One step = an architecture step on a validation batch + a weight step on a training batch (2 x batch
images), with batches drawn from device-resident synthetic uint8 images through the real augmentation
(``ImageBatches``). Reports images/s, the epoch time (25,000 training images = 391 steps at paper scale)
and the projected 100-epoch search time; ``--out FILE`` writes the numbers as JSON.

Measured on one H100 (torch 2.11, paper scale, 60 steps, same run): eager fp32 233.7 ms/step; CUDA graphs +
bf16 + channels_last 43.9 ms (x5.3); the same with the fused cell (``fused_cells``) 23.5 ms (x9.9, 15.3 min per
100-epoch search). Two concurrent fused searches each kept their speed (22.2 / 24.0 ms), which is why
``reproduce/papers/drnas.py`` runs several searches per GPU. See ``results/drnas/GPU.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from algorithms.drnas import DrNAS  # noqa: E402
from algorithms.nn.data import ImageBatches  # noqa: E402
from algorithms.nn.search import load_hparams, make_search  # noqa: E402

VARIANTS = {
    "eager_fp32": dict(precision="fp32", channels_last=False, cudnn_benchmark=False, compile=False,
                       cuda_graphs=False, fused_cells=False),
    "bf16_channels_last": dict(precision="bf16", channels_last=True, cudnn_benchmark=True, compile=False,
                               cuda_graphs=False, fused_cells=False),
    # opt-in only (--variants): on an H100 compiling the 15-cell supernet did not finish within 8 minutes
    "bf16_channels_last_compile": dict(precision="bf16", channels_last=True, cudnn_benchmark=True, compile=True,
                                       cuda_graphs=False, fused_cells=False),
    "fp32_cuda_graphs": dict(precision="fp32", channels_last=False, cudnn_benchmark=True, compile=False,
                             cuda_graphs=True, fused_cells=False),
    "bf16_channels_last_cuda_graphs": dict(precision="bf16", channels_last=True, cudnn_benchmark=True,
                                           compile=False, cuda_graphs=True, fused_cells=False),
    "fused_eager_fp32": dict(precision="fp32", channels_last=False, cudnn_benchmark=False, compile=False,
                             cuda_graphs=False, fused_cells=True),
    "fused_bf16_channels_last_cuda_graphs": dict(precision="bf16", channels_last=True, cudnn_benchmark=True,
                                                 compile=False, cuda_graphs=True, fused_cells=True),
    "fp32_channels_last_cuda_graphs": dict(precision="fp32", channels_last=True, cudnn_benchmark=True,
                                           compile=False, cuda_graphs=True, fused_cells=False),
    # the configured NB201 setting (algorithms/configs/drnas.toml [drnas_nb201], [drnas_nb201_progressive])
    "fused_fp32_channels_last_cuda_graphs": dict(precision="fp32", channels_last=True, cudnn_benchmark=True,
                                                 compile=False, cuda_graphs=True, fused_cells=True),
}
#: --section: the plain search, or a stage of the progressive one (K 4 with 5 ops, K 2 with 3 ops per edge)
SECTIONS = ("drnas_nb201", "drnas_nb201_progressive")


def bench(variant: str, args: argparse.Namespace) -> dict:
    overrides = dict(channels=args.channels, cells=args.cells, image_size=args.image_size,
                     batch_size=args.batch_size, **VARIANTS[variant])
    hparams = load_hparams("drnas", args.section, overrides)
    search = make_search(DrNAS, hparams, 0)
    search.adapt_search_space("nb201", "cifar10", num_classes=10, device=args.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.train_images, args.image_size, args.image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.train_images)
    gen = torch.Generator(device=search.device).manual_seed(0)
    data = ImageBatches(images, labels, batch_size=args.batch_size, mean=(0.5,) * 3, std=(0.25,) * 3, generator=gen,
                        augment=True, channels_last=search.channels_last, crop_padding=4 * args.image_size // 32)
    train, valid = data.split(0.5, torch.Generator().manual_seed(1))
    # the first epoch of the chosen stage that takes architecture steps (a later stage is pruned and widened)
    search.new_epoch(sum(hparams["stage_epochs"][:args.stage]) + hparams["arch_warmup_epochs"][args.stage])

    losses = []

    def run(steps: int) -> None:
        for _ in range(steps):
            losses.append(search.step(train.next_batch(), valid.next_batch())["train_loss"])
        if search.device.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    run(args.warmup)
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(args.steps)
    seconds = time.perf_counter() - t0
    step_s = seconds / args.steps
    steps_per_epoch = -(-(args.train_images // 2) // args.batch_size)
    return {"variant": variant, "step_ms": 1000 * step_s, "images_per_s": 2 * args.batch_size / step_s,
            "epoch_s": step_s * steps_per_epoch, "search_100_epochs_min": step_s * steps_per_epoch * 100 / 60,
            "warmup_s": warmup_s, "steps_per_epoch": steps_per_epoch,
            # a sanity check that an optimised variant still learns like the eager one (same seed)
            "mean_train_loss_last_10": float(torch.stack(losses[-10:]).mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="CPU quick scale: C=8, N=1, 16 px, 5,000 images")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=5)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-images", type=int, default=50000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS))
    p.add_argument("--section", default="drnas_nb201", choices=SECTIONS, help="the drnas.toml search setting")
    p.add_argument("--stage", type=int, default=0, help="progressive stage to time (0 or 1)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    stages = len(load_hparams("drnas", args.section)["stage_epochs"])
    if not 0 <= args.stage < stages:
        p.error(f"--stage must be below {stages} for {args.section}")
    if args.quick:
        args.channels, args.cells, args.image_size, args.train_images = 8, 1, 16, 5000
        args.steps, args.warmup = min(args.steps, 20), min(args.warmup, 3)
    default = [v for v in VARIANTS if "compile" not in v] if args.device.startswith("cuda") else ["eager_fp32"]
    variants = args.variants or default
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu x{torch.get_num_threads()}"
    results = []
    for variant in variants:  # printed as each finishes: a compile that runs long still leaves the others
        r = bench(variant, args)
        results.append(r)
        r["speedup_vs_first"] = results[0]["step_ms"] / r["step_ms"]
        print(f"{r['variant']:>28}: {r['step_ms']:8.1f} ms/step  {r['images_per_s']:9.0f} img/s  "
              f"epoch {r['epoch_s']:7.1f} s  100 epochs {r['search_100_epochs_min']:6.1f} min  "
              f"x{r['speedup_vs_first']:.2f}  loss {r['mean_train_loss_last_10']:.3f}  (warm-up {r['warmup_s']:.1f} s)",
              flush=True)
    report = {"device": device_name, "torch": torch.__version__, "section": args.section, "stage": args.stage,
              "config": {k: v for k, v in vars(args).items() if k != "out"}, "results": results}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

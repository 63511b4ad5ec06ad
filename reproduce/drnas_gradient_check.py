"""Does a precision or device bias DrNAS's architecture gradient? Paired gradients from one search checkpoint.

Why (results/drnas/GPU.md, sessions 7-10): our plain NB201 search collapsed to all-``skip_connect`` on an H100
(fp32 with cuDNN's TF32 convolutions), while on the CPU (IEEE fp32) its first epochs followed the official log.
Training runs under two settings part after a few steps for any reason (chaos), so they cannot isolate the
setting. This check can: it loads one checkpoint of a plain DrNAS search, and for each of ``--batches``
architecture-half batches computes the architecture gradient (the loss on the batch with a Dirichlet draw of the
mixing weights, as the architecture step does) under each setting, with the same batch, the same draw and the
same weights. A setting is a precision, optionally on a device (``fp32@cpu``, ``fp32@cuda``): the draws come
from a CPU generator, so a GPU's gradient pairs with the CPU's and the whole GPU arithmetic (cuDNN's kernels,
TF32, the fused cell on CUDA) is measured against IEEE fp32. It reports, per op, the mean gradient and the mean
paired difference with its standard error, and the cosine between paired gradients (alpha and the network
weights) beside the cosine between two Dirichlet draws under the first setting: the noise the search already
lives with.

    python -m reproduce.drnas_gradient_check results/drnas/image_check_cpu/runs/stored-seed0/checkpoint.pt
    python -m reproduce.drnas_gradient_check CKPT --settings fp32@cpu,fp32@cuda,fp32_strict@cuda  # a GPU vs a CPU
    python -m reproduce.drnas_gradient_check CKPT --settings fp32,fp32+pool_bug  # torch's CUDA pool bug, emulated

A ``+pool_bug`` setting computes the padded 3x3 pools' backward as torch's channels_last CUDA kernel did before
its fix (pytorch/pytorch#188344; algorithms/nn/pool_bug.py); without it the pools are exact, whatever the
checkpoint's search used.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from tqdm import tqdm

from nasrepro.errors import ConfigError, NasReproError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce.cli import check_device

RESAMPLED = "first row, another draw"  # the first setting with a second Dirichlet draw: the noise reference
POOL_BUG = "+pool_bug"  # a setting suffix: torch's CUDA channels_last pool backward bug, emulated


def parse_setting(setting: str, default_device: str) -> tuple[str, str, bool]:
    """``fp32@cuda`` -> ("fp32", "cuda", False); ``fp32+pool_bug`` -> ("fp32", default_device, True): the
    precision, the device, and whether torch's CUDA pool bug is emulated."""
    from algorithms.nn.search import PRECISIONS

    numerics, _, device = setting.partition("@")
    precision, pool_bug = numerics.removesuffix(POOL_BUG), numerics.endswith(POOL_BUG)
    device = device or default_device
    if precision not in PRECISIONS or not device:
        raise ConfigError(f"--settings: each is a precision ({', '.join(PRECISIONS)}), optionally {POOL_BUG} "
                          f"and @device, got {setting!r}")
    check_device(device, f"--settings {setting}")
    return precision, device, pool_bug


def gradient_check(checkpoint: Path, settings: list[str], batches: int, device: str, progress: bool = True) -> dict:
    """``settings``: precisions, each optionally ``@device`` (else ``device``); the first is the reference."""
    from algorithms.drnas import DrNAS
    from algorithms.nn.data import image_source, load_dataset
    from algorithms.nn.search import device_name, load_search_checkpoint, make_search, search_data
    from benchmarks.nb201 import OPS
    from reproduce.nb201_training_check import reencode_jpeg

    if len(settings) < 2 or len(set(settings)) < len(settings):
        raise ConfigError(f"--settings: two or more different ones, got {','.join(settings)}")
    parsed = {setting: parse_setting(setting, device) for setting in settings}
    state = load_search_checkpoint(checkpoint)
    identity = state["identity"]
    if identity.get("method") != "drnas" or identity["hparams"].get("space") != "nb201":
        raise ConfigError(f"{checkpoint}: not a DrNAS search on NB201 (method {identity.get('method')!r})")
    arrays = load_dataset(identity["images"])
    if identity.get("jpeg_quality"):  # a drnas_image_check run on re-encoded images
        arrays = dataclasses.replace(arrays, x_train=reencode_jpeg(arrays.x_train, identity["jpeg_quality"]))

    searches = {}
    for setting, (precision, setting_device, pool_bug) in parsed.items():
        search = make_search(DrNAS, {**identity["hparams"], "precision": precision,
                                     "emulate_cuda_pool_bug": pool_bug}, identity["seed"])
        search.adapt_search_space("nb201", identity["dataset"], num_classes=arrays.num_classes,
                                  device=setting_device)
        # the checkpoint's Dirichlet generator may be another device's (a GPU run checked on the CPU); every
        # draw here comes from a fresh CPU generator anyway, so each search keeps its own generator's state
        search.load_state_dict({**state["search"], "sample_generator": search.sample_generator.get_state()})
        search.model.train()  # batch statistics, as in the architecture step
        searches[setting] = search
    base = settings[0]
    # a fresh pass over the architecture half from the seed; each batch is given to every setting
    valid = search_data(searches[base], arrays, identity["seed"])[1]

    def gradient(search, x, y, draw: int) -> tuple[torch.Tensor, torch.Tensor]:
        search.apply_device_switches()  # cuDNN's TF32 switch is process-wide: this search's, for this pass
        search.sample_generator = torch.Generator().manual_seed(draw)  # on the CPU: one draw for every device
        x, y = x.to(search.device), y.to(search.device)
        loss = F.cross_entropy(search.forward(x, detach_arch=False).float(), y)
        alpha = search.alphas["cell"]
        grads = torch.autograd.grad(loss, [alpha, *search.model.parameters()], allow_unused=True)
        weights = torch.cat([g.flatten() for g in grads[1:] if g is not None])
        return grads[0].detach().cpu().double(), weights.detach().cpu().double()

    alpha_grads = {name: [] for name in [*settings, RESAMPLED]}
    cosines = {name: {"alpha": [], "weights": []} for name in [*settings[1:], RESAMPLED]}
    for i in tqdm(range(batches), desc="batches", disable=not progress):
        x, y = valid.next_batch()
        grads = {setting: gradient(searches[setting], x, y, draw=2 * i) for setting in settings}
        grads[RESAMPLED] = gradient(searches[base], x, y, draw=2 * i + 1)
        for name, (alpha, weights) in grads.items():
            alpha_grads[name].append(alpha)
            if name != base:
                cosines[name]["alpha"].append(float(F.cosine_similarity(alpha.flatten(), grads[base][0].flatten(), 0)))
                cosines[name]["weights"].append(float(F.cosine_similarity(weights, grads[base][1], 0)))

    # per op: the gradient averaged over the 6 edges, per batch
    per_op = {name: torch.stack(g).mean(1).numpy() for name, g in alpha_grads.items()}  # batches x ops
    rows = []
    for name in [*settings, RESAMPLED]:
        row = {"setting": name, "mean_grad": dict(zip(OPS, _mean_se(per_op[name])))}
        if name != base:
            row["paired_difference"] = dict(zip(OPS, _mean_se(per_op[name] - per_op[base])))
            row["cosine_alpha"] = _summary(cosines[name]["alpha"])
            row["cosine_weights"] = _summary(cosines[name]["weights"])
        rows.append(row)
    devices = dict.fromkeys(device_name(search.device) for search in searches.values())
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "device": " and ".join(devices),
            "settings": {setting: {"precision": p, "device": device_name(d), "cuda_pool_bug_emulated": bug}
                         for setting, (p, d, bug) in parsed.items()},
            "checkpoint": str(checkpoint), "epochs_done": int(state["next_epoch"]), "seed": identity["seed"],
            "images": image_source(identity["images"]), "jpeg_quality": identity.get("jpeg_quality"),
            "batches": batches, "batch_size": identity["hparams"]["batch_size"], "rows": rows}


def _mean_se(values: np.ndarray) -> list[list[float]]:
    """[mean, standard error] per column."""
    return [[float(m), float(s)] for m, s in zip(values.mean(0), stats.sem(values, axis=0))]


def _summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values))}


def markdown(result: dict) -> str:
    ops = list(result["rows"][0]["mean_grad"])
    lines = ["# DrNAS architecture gradient by setting (precision, device), paired", "",
             f"{result['date']} on {result['device']}; checkpoint `{result['checkpoint']}` after "
             f"{result['epochs_done']} epoch(s), seed {result['seed']}; images: {result['images']}"
             + (f", re-encoded at JPEG {result['jpeg_quality']}" if result["jpeg_quality"] else "")
             + f"; {result['batches']} architecture-half batches of {result['batch_size']}, each with the same"
             " Dirichlet draw (from a CPU generator) and weights under every setting. Gradient of the batch loss with respect to α,"
             " averaged over the 6 edges, mean ± standard error over batches (×1e-3). Paired difference: this row"
             " minus the first, batch by batch. Cosines: this row's gradient against the first row's, per batch"
             f" (mean / min). The row *{RESAMPLED}* is the first setting with a second Dirichlet draw: the"
             " sampling noise of one architecture step.", "",
             "| setting | " + " | ".join(f"∂L/∂α {op}" for op in ops) + " | paired difference "
             + " / ".join(ops) + " | cosine α | cosine weights |",
             "|---|" + "---:|" * len(ops) + "---|---:|---:|"]
    for row in result["rows"]:
        grad = " | ".join(f"{1e3 * m:+.3f} ± {1e3 * s:.3f}" for m, s in row["mean_grad"].values())
        if "paired_difference" in row:
            diff = " / ".join(f"{1e3 * m:+.4f} ± {1e3 * s:.4f}" for m, s in row["paired_difference"].values())
            cos = (f"{row['cosine_alpha']['mean']:.6f} / {row['cosine_alpha']['min']:.6f} | "
                   f"{row['cosine_weights']['mean']:.6f} / {row['cosine_weights']['min']:.6f}")
        else:
            diff, cos = "(reference)", "1 | 1"
        lines.append(f"| {row['setting']} | {grad} | {diff} | {cos} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduce.drnas_gradient_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint.pt of a plain DrNAS NB201 search")
    parser.add_argument("--settings", "--precisions", dest="settings", default="fp32,tf32_emulated",
                        help=f"comma-separated precisions, each optionally {POOL_BUG} (torch's CUDA pool bug "
                             "emulated) and @cpu or @cuda (else --device); the first is the reference "
                             "(default fp32,tf32_emulated)")
    parser.add_argument("--batches", type=int, default=40, help="architecture-half batches (default 40)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("results/drnas/gradient_check"))
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
        if args.batches < 2:
            raise ConfigError(f"--batches must be >= 2, got {args.batches}")
        if not args.checkpoint.is_file():
            raise ConfigError(f"{args.checkpoint}: no such checkpoint")
        settings = [p.strip() for p in args.settings.split(",")]
        result = gradient_check(args.checkpoint, settings, args.batches, args.device, progress=sys.stderr.isatty())
    except NasReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = args.checkpoint.parent.name
    # file names take letters, digits, '.', '_' and '-' (what a device run can send back)
    names = "-".join(re.sub(r"[^A-Za-z0-9_.]", "_", s.replace("@", "_on_").replace("+", "_")) for s in settings)
    default_device = "" if all("@" in s for s in settings) else f"-{args.device.split(':')[0]}"
    stem = args.out / f"{run}-epochs{result['epochs_done']}-{names}{default_device}"
    try:
        atomic_write_json(Path(f"{stem}.json"), result)
        atomic_write_text(Path(f"{stem}.md"), markdown(result))
    except OSError as exc:
        print(f"error: cannot write {stem}.*: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

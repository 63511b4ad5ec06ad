"""How far does a DARTS-space DrNAS search get at a size a CPU finishes?

Run the progressive search of ``drnas.toml [drnas_darts]`` with its size overridden (``--set``), and after every
epoch score its derived genotype with the NB301 stand-in (YAHPO's surrogate fitted to NAS-Bench-301's training
data; not NAS-Bench-301, and a surrogate's guess, not a trained result) beside the paper's published DrNAS cell,
DARTS (second order) and 1,000 random cells.

Why: the paper's DARTS-space number (2.46 % CIFAR-10 test error) needs the paper-scale search on a GPU and a
600-epoch evaluation of its genotype (``nasrepro train-eval``); neither fits a CPU session. The stand-in is the
only measure of a DARTS-space cell here: it asks whether the search moves from random-like cells toward cells like
the published one. Its spread is narrow (random cells: 5th-95th percentile about 91.6-93.0 %), so read the
percentile among random cells as much as the accuracy. The run in results/drnas/cpu_reduced_darts (63 min per
seed; the two seeds ran side by side as ``--seeds 0`` and ``--seeds 1`` with ``OMP_NUM_THREADS=1``, then
``--seeds 0,1`` reloaded both into one table):

    python -m reproduce.drnas_darts_space_check --seeds 0,1 --set channels=24 --set cells=5 --set image_size=16 \\
        --set train_subset=10000 --set 'stage_epochs=[15,15]' --set 'arch_warmup_epochs=[6,6]' \\
        --set precision=fp32 --set channels_last=false --out results/drnas/cpu_reduced_darts

Each seed's search checkpoints every epoch under ``--out/runs`` (git-ignored) and a rerun resumes it (a finished
one only reloads); ``--out/<settings>.json/.md/.png`` are rewritten after every epoch. Epochs count from 0 in the
tables and the figure.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from nasrepro.errors import ConfigError, NasReproError
from reproduce.cli import check_device, parse_overrides
from reproduce.drnas_image_check import override_label, parse_seeds, write
from reproduce.nb201_training_check import CIFAR10_IMAGES
from reproduce.papers.drnas import PAPER_DARTS_SPACE, evaluation_params_note, standin_scores

SECTION = "drnas_darts"
#: the published cells the stand-in scores as yardsticks (benchmarks/darts_space.py PUBLISHED), as labelled here
YARDSTICKS = {"drnas_cifar10": "DrNAS, published (paper's search)", "darts_v2": "DARTS V2, published"}


def check(seeds: list[int], device: str, out: Path, overrides: dict | None = None, images: str = "cifar10",
          progress: bool = True, on_progress=None) -> dict:
    """Run (or resume) the search of every seed to its end; return the summary (also handed to ``on_progress``
    after every epoch, so a search cut by a time limit still leaves its table)."""
    from algorithms.drnas import DrNAS
    from algorithms.nn.data import image_source, load_dataset
    from algorithms.nn.search import load_hparams, make_search, run_search, search_data
    from benchmarks.nb301_standin import NB301StandIn

    hparams = load_hparams("drnas", SECTION, overrides)
    if hparams.get("space") != "darts":
        raise ConfigError(f"[{SECTION}] with {overrides}: searches the {hparams.get('space')!r} space, not 'darts'")
    NB301StandIn.load().session  # its files missing or unreadable: one line now, not after the first epoch
    make_search(DrNAS, hparams, 0)  # a setting the search refuses: one line before the images load
    arrays = load_dataset(images)
    histories: dict[str, tuple[int, list[dict]]] = {}

    def summary() -> dict:
        return summarise(histories, hparams["stage_epochs"], image_source(images), overrides or {})

    for seed in seeds:
        name = f"seed{seed}" + (f"-{images}" if images != "cifar10" else "") + override_label(overrides)
        identity = {"paper": "drnas", "method": "drnas", "section": SECTION, "hparams": hparams, "seed": seed,
                    "dataset": "cifar10", "images": images}
        search = make_search(DrNAS, hparams, seed)
        search.adapt_search_space("darts", "cifar10", num_classes=arrays.num_classes, device=device)
        train, valid = search_data(search, arrays, seed)

        def on_epoch(history: list[dict], name: str = name, seed: int = seed, epochs: int = search.epochs) -> None:
            histories[name] = (seed, list(history))
            last = history[-1]
            print(f"{name}: epoch {last['epoch'] + 1}/{epochs} in {last['seconds']:.0f} s, train acc. "
                  f"{last['train_acc']:.2f} %", file=sys.stderr, flush=True)
            if on_progress is not None:
                on_progress(summary())

        result = run_search(search, train, valid, out / "runs" / name, identity, progress=progress,
                            on_epoch=on_epoch, epoch_info={"images": image_source(images)})
        histories[name] = (seed, result["history"])  # a finished search reloads without running an epoch
        if on_progress is not None:
            on_progress(summary())
    return summary()


def summarise(histories: dict[str, tuple[int, list[dict]]], stage_epochs: list[int], images: str,
              overrides: dict) -> dict:
    """Every epoch's derived genotype of every run, scored by the stand-in in one call; the device is each epoch's
    own record (a search reloaded elsewhere keeps where it ran)."""
    genotypes = [h["arch"] for _, history in histories.values() for h in history]
    scores = standin_scores(genotypes)
    if "unavailable" in scores:
        raise ConfigError(scores["unavailable"])
    epochs_total = sum(stage_epochs)
    runs, i = [], 0
    for name, (seed, history) in histories.items():
        rows = []
        for h in history:
            rows.append({"epoch": h["epoch"], "stage": h["stage"], "train_acc": round(h["train_acc"], 2),
                         "valid_acc": None if h.get("valid_acc") is None else round(h["valid_acc"], 2),
                         "seconds": round(h["seconds"], 1), "arch": h["arch"],
                         "standin_valid": scores["valid"][i], "standin_percentile": scores["percentile"][i]})
            i += 1
        finished = len(history) == epochs_total
        runs.append({"name": name, "seed": seed, "finished": finished, "epochs": rows,
                     "final_params": evaluation_params_note(rows[-1]["arch"]) if finished else None})
    devices = sorted({h.get("device", "not recorded") for _, history in histories.values() for h in history})
    return {"written": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "device": ", ".join(devices),
            "images": images,
            "section": SECTION, "overrides": overrides, "epochs": epochs_total,
            "standin": {k: v for k, v in scores.items() if k not in ("valid", "percentile")}, "runs": runs}


def markdown(summary: dict) -> str:
    standin, finished = summary["standin"], [r for r in summary["runs"] if r["finished"]]
    published = standin["published"]
    lines = [f"# DrNAS in the DARTS space (progressive), scored by the {standin['label']}", "",
             f"Written {summary['written']}; searched on {summary['device']}; images: {summary['images']}; `drnas.toml [{summary['section']}]`"
             + (f" with {summary['overrides']}" if summary["overrides"] else "")
             + f" ({summary['epochs']} epochs). Paper: {PAPER_DARTS_SPACE} after the 600-epoch evaluation, which "
               "this check does not run. Stand-in: predicted CIFAR-10 validation accuracy after 98 epochs of "
               "NB301's training protocol, and the percentile among "
               f"{standin['random']['cells']} random cells (seed {standin['random']['seed']}; 5th / 50th / 95th "
               f"percentile {standin['random']['p5']:.2f} / {standin['random']['p50']:.2f} / "
               f"{standin['random']['p95']:.2f} %). Yardsticks: "
             + ", ".join(f"{label} {published[key]:.2f} % (above {standin['published_percentile'][key]:.0f} % of "
                         "the random cells)" for key, label in YARDSTICKS.items()) + ".", ""]
    if finished:
        scores = np.array([r["epochs"][-1]["standin_valid"] for r in finished])
        spread = f"{scores.mean():.2f} ± {scores.std():.2f} %" if len(scores) > 1 else f"{scores[0]:.2f} % (1 seed)"
        lines += [f"**Derived genotypes of the finished searches: {spread}** (population std)", "",
                  "| seed | stand-in valid. % | percentile among random cells | params at evaluation size | genotype |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['epochs'][-1]['standin_valid']:.2f} | {r['epochs'][-1]['standin_percentile']:.0f} "
                  f"| {r['final_params']} | `{r['epochs'][-1]['arch']}` |" for r in finished]
        lines.append("")
    for run in summary["runs"]:
        state = "finished" if run["finished"] else f"{len(run['epochs'])} of {summary['epochs']} epochs so far"
        lines += [f"## {run['name']} ({state})", "",
                  "| epoch | stage | train acc. % | arch-step acc. % | seconds | stand-in valid. % | percentile |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['epoch']} | {r['stage']} | {r['train_acc']:.2f} | {_maybe(r['valid_acc'])} | "
                  f"{r['seconds']:.0f} | {r['standin_valid']:.2f} | {r['standin_percentile']:.0f} |"
                  for r in run["epochs"]]
        lines.append("")
    return "\n".join(lines)


def _maybe(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def figure(summary: dict, path: Path) -> None:
    """The stand-in's score of each epoch's derived genotype per seed, over the random cells' 5-95 % band and the
    published cells' scores."""
    from matplotlib.ticker import MaxNLocator

    from reproduce import figures

    plt = figures.pyplot()
    standin = summary["standin"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.axhspan(standin["random"]["p5"], standin["random"]["p95"], color="0.85",
               label=f"{standin['random']['cells']} random cells (5-95 %)")
    ax.axhline(standin["random"]["p50"], color="0.5", lw=1, ls=":", label="random cells (median)")
    for (key, label), colour in zip(YARDSTICKS.items(), ("C3", "C2")):
        ax.axhline(standin["published"][key], color=colour, lw=1.5, ls="--", label=label)
    for run in summary["runs"]:
        ax.plot([r["epoch"] for r in run["epochs"]], [r["standin_valid"] for r in run["epochs"]], "-o", ms=3,
                label=f"ours, seed {run['seed']}")
    first = max(summary["runs"], key=lambda run: len(run["epochs"]))["epochs"]
    for before, after in zip(first, first[1:]):  # the progressive schedule's stage changes (prune, widen)
        if after["stage"] != before["stage"]:
            ax.axvline(after["epoch"] - 0.5, color="k", lw=0.8, alpha=0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="search epoch (from 0)", ylabel="stand-in CIFAR-10 valid. acc. (%)",
           title="derived genotype after each epoch (NB301 stand-in, a surrogate)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    figures.save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduce.drnas_darts_space_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change a hyper-parameter of drnas.toml [{SECTION}] (e.g. channels=24, cells=5, "
                             "image_size=16, 'stage_epochs=[15,15]'); named in the run and file names")
    parser.add_argument("--images", default="cifar10", choices=CIFAR10_IMAGES,
                        help="CIFAR-10 images: pickles if present, else JPEG (default); or a named copy")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("results/drnas/darts_space_check"))
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
        seeds, overrides = parse_seeds(args.seeds), parse_overrides(args.overrides)
        stem = args.out / (f"seeds{'-'.join(map(str, seeds))}" + (f"-{args.images}" if args.images != "cifar10" else "")
                           + override_label(overrides))
        save = lambda summary: write(summary, stem, render=markdown, draw=figure)  # noqa: E731
        check(seeds, args.device, args.out, overrides=overrides or None, images=args.images,
              progress=sys.stderr.isatty(), on_progress=save)
    except NasReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {stem}.json, .md and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

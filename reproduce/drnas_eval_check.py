"""Do the DARTS-space cells train as well as their search said? A reduced architecture evaluation on the CPU.

Train each cell from scratch with the DARTS / DrNAS evaluation protocol (``algorithms/configs/darts_eval.toml``,
``nasrepro train-eval``) at the size of a section of that file, and report its CIFAR-10 test accuracy beside the
published DrNAS and DARTS V2 cells trained the same way, and beside the NB301 stand-in's score of each cell.

Why: the paper's DARTS-space number (2.46 % CIFAR-10 test error) comes from a 600-epoch training at 36 channels /
20 cells, about 15 h on a GPU. ``[reduced]`` (16 channels, 8 cells, 16-px images, 10,000 training images, 20
epochs, the whole test set) takes 22-42 min per cell on one CPU thread (session 21): a trained measure of the
cells where the stand-in is only a surrogate's guess, but at a size where cells may rank otherwise than at 600
epochs.

Cells (``--cells``, comma-separated): a published name of ``darts_eval.toml [genotypes]`` (``DrNAS_cifar10``,
``DARTS_V2``), ``search:N`` (the derived genotype of seed N in a ``reproduce.drnas_darts_space_check`` summary,
``--search``) or ``random:N`` (a uniformly random cell drawn with seed N). Each (cell, training seed) runs as one
job of a process pool (one thread each, one worker per core), checkpoints every epoch under ``--out/runs`` (a rerun
resumes, a finished training only reloads), and the summary ``--out/<stem>.json/.md/.png`` is rewritten whenever
one training ends. ``--set KEY=VALUE`` changes a setting of the section (e.g. ``epochs=40``). The run in
results/drnas/cpu_reduced_eval (two workers, 2 cores):

    python -m reproduce.drnas_eval_check --cells search:0,DrNAS_cifar10,DARTS_V2,random:0 --seeds 0,1 \\
        --search results/drnas/cpu_reduced_darts/seeds0-1-2-3-<settings>.json --out results/drnas/cpu_reduced_eval
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nasrepro.errors import ConfigError, NasReproError
from reproduce.cli import check_device, parse_overrides
from reproduce.drnas_image_check import override_label, parse_seeds, write
from reproduce.executors import LocalExecutor, default_workers, map_with_progress

if TYPE_CHECKING:
    from algorithms.nn.train import TrainConfig


def resolve_cells(names: list[str], search_summary: Path | None = None) -> dict[str, str]:
    """``{label: genotype string}`` for each cell name (see the module's docstring); bad names are one line."""
    from algorithms.nn.train import resolve_genotype
    from benchmarks.darts_space import DartsSpace

    cells: dict[str, str] = {}
    for name in names:
        kind, _, number = name.partition(":")
        if kind in ("search", "random"):
            if not number.isdigit():
                raise ConfigError(f"--cells {name!r}: expected {kind}:N with N a seed")
            if kind == "random":
                cells[f"random cell {number}"] = str(DartsSpace().sample(np.random.default_rng(int(number))))
            else:
                cells[f"ours, search seed {number}"] = _searched_genotype(search_summary, int(number))
        else:
            cells[name] = str(resolve_genotype(name))  # an unknown name: ConfigError listing the published ones
    return cells


def _searched_genotype(path: Path | None, seed: int) -> str:
    if path is None:
        raise ConfigError("--cells search:N needs --search, a reproduce.drnas_darts_space_check summary (.json)")
    try:
        summary = json.loads(path.read_text())
        runs = summary["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--search {path}: not a readable DARTS-space search summary ({exc})") from None
    finished = {run["seed"]: run["epochs"][-1]["arch"] for run in runs if run.get("finished")}
    if seed not in finished:
        raise ConfigError(f"--search {path}: no finished search of seed {seed} (finished: {sorted(finished)})")
    return finished[seed]


def run_name(label: str, seed: int, scale: str, overrides: dict | None = None) -> str:
    """``ours, search seed 0`` at seed 1 on ``reduced`` -> ``reduced-ours_search_seed_0-seed1``; changed settings
    (``--set``) end the name, so they never meet another setting's checkpoint."""
    return f"{scale}-{re.sub(r'[^A-Za-z0-9_]+', '_', label).strip('_')}-seed{seed}{override_label(overrides)}"


def _train(job: tuple[str, str, int, str, dict, str, str]) -> str:
    """One training to its end (or a finished one reloaded); a pool job, so module-level and picklable."""
    from algorithms.nn.train import load_train_config, train_network

    label, genotype, seed, scale, overrides, run_dir, device = job
    config = load_train_config(scale, {**overrides, "genotype": genotype})
    result = train_network(config, run_dir, seed=seed, device=device, progress=False)
    print(f"{label}, seed {seed}: {result.final_test_acc:.2f} % test after {len(result.history)} epochs",
          file=sys.stderr, flush=True)
    return label


def check(cells: dict[str, str], seeds: list[int], scale: str, out: Path, device: str = "cpu",
          workers: int | None = None, overrides: dict | None = None, on_progress=None) -> dict:
    """Train every (cell, seed) of ``scale`` (resuming what ran before); return the summary, also handed to
    ``on_progress`` after each training ends, so a run cut by a time limit leaves its table."""
    from algorithms.nn.data import image_source
    from algorithms.nn.train import load_train_config

    overrides = overrides or {}
    if "genotype" in overrides:
        raise ConfigError("the cells come from --cells, not from --set genotype=...")
    config = load_train_config(scale, overrides)  # an unknown section or key: one line before any training starts
    jobs = [(label, genotype, seed, scale, overrides, str(out / "runs" / run_name(label, seed, scale, overrides)),
             device)
            for seed in seeds for label, genotype in cells.items()]  # every cell's first seed first
    images = image_source(config.dataset)
    described = describe_cells(cells)  # the cells' fixed facts, computed once, not after every training

    def summary() -> dict:
        return summarise(described, seeds, scale, config, out, images, overrides)

    # a GPU trains one network at a time; on the CPU one single-threaded worker per core
    with LocalExecutor(1 if device.startswith("cuda") else (workers or default_workers())) as pool:
        for _ in map_with_progress(pool, _train, jobs, desc="trainings", unit="training"):
            if on_progress is not None:
                on_progress(summary())
    return summary()


def describe_cells(cells: dict[str, str]) -> dict:
    """What does not change while the cells train: each genotype, its parameters at the evaluation size and the
    NB301 stand-in's score (``None`` where the stand-in is unavailable, which the summary then says)."""
    from reproduce.papers.drnas import evaluation_params_note, standin_scores

    scores = standin_scores(list(cells.values()))
    unavailable = scores.get("unavailable")
    return {"standin_label": scores["label"], "standin_unavailable": unavailable, "cells": {
        label: {"genotype": genotype, "params_at_evaluation_size": evaluation_params_note(genotype),
                "standin_valid": None if unavailable else scores["valid"][i],
                "standin_percentile": None if unavailable else scores["percentile"][i]}
        for i, (label, genotype) in enumerate(cells.items())}}


def summarise(described: dict, seeds: list[int], scale: str, config: TrainConfig, out: Path, images: str,
              overrides: dict | None = None) -> dict:
    """Every run's history (read from its folder, so unfinished ones show how far they got), per cell the final
    test accuracy per seed and its mean and population std over the finished seeds, beside the cell's fixed facts
    (:func:`describe_cells`)."""
    rows = []
    for label, facts in described["cells"].items():
        runs = []
        for seed in seeds:
            run_dir = out / "runs" / run_name(label, seed, scale, overrides)
            history = _read_json(run_dir / "history.json", default=[])
            params = _read_json(run_dir / "config.json", default={}).get("params_mb")
            runs.append({"seed": seed, "history": history, "params_mb": params,
                         "finished": len(history) == config.epochs,
                         "minutes": round(sum(h["seconds"] for h in history) / 60, 1)})
        finals = [run["history"][-1]["test_acc"] for run in runs if run["finished"]]
        rows.append({"cell": label, "genotype": facts["genotype"], "runs": runs,
                     "test_acc_mean": round(float(np.mean(finals)), 2) if finals else None,
                     "test_acc_std": round(float(np.std(finals)), 2) if finals else None,
                     "finished_seeds": len(finals), "params_at_evaluation_size": facts["params_at_evaluation_size"],
                     "standin_valid": facts["standin_valid"], "standin_percentile": facts["standin_percentile"]})
    return {"written": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "scale": scale,
            "overrides": overrides or {}, "config": {k: v for k, v in asdict(config).items() if k != "genotype"},
            "images": images, "seeds": seeds, "standin_label": described["standin_label"],
            "standin_unavailable": described["standin_unavailable"], "cells": rows}


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); move it away to retrain that run") from None


def markdown(summary: dict) -> str:
    from reproduce.papers.drnas import PAPER_DARTS_SPACE, STANDIN_RANDOM_CELLS

    config = summary["config"]
    changed = f" with {summary['overrides']}" if summary["overrides"] else ""
    lines = [f"# DARTS-space cells trained from scratch at the `darts_eval.toml [{summary['scale']}]` size{changed}",
             "",
             f"Written {summary['written']}; images: {summary['images']}. Protocol of DARTS / DrNAS (SGD momentum "
             f"{config['momentum']}, lr {config['learning_rate']} cosine to {config['lr_min']}, weight decay "
             f"{config['weight_decay']}, batch {config['batch_size']}, auxiliary head {config['auxiliary_weight']}, "
             f"cutout {config['cutout']}, drop-path to {config['drop_path_prob']}) at {config['init_channels']} "
             f"channels / {config['layers']} cells, "
             + (f"{config['resize_to']}-px images, " if config["resize_to"] else "")
             + (f"{config['train_subset']:,} training images" if config["train_subset"] else "all training images")
             + f", {config['epochs']} epochs; test accuracy on "
             + (f"{config['test_subset']:,} test images" if config["test_subset"] else "the whole test set")
             + f". Paper (36 channels / 20 cells, 32 px, 600 epochs): DrNAS {PAPER_DARTS_SPACE}. Not the paper's "
               "measure: cells may rank otherwise after 600 epochs at the full size.", "",
             "| cell | test acc. % (final epoch), per training seed | mean ± std | params here | params at "
             "evaluation size | stand-in valid. % (percentile) |", "|---|---|---|---|---|---|"]
    for row in summary["cells"]:
        per_seed = ", ".join(
            (f"{run['history'][-1]['test_acc']:.2f}" if run["finished"] else
             f"{len(run['history'])} of {config['epochs']} epochs so far" if run["history"] else "not run yet")
            + f" (seed {run['seed']})"
            for run in row["runs"])
        spread = ("—" if row["test_acc_mean"] is None else f"{row['test_acc_mean']:.2f}" if row["finished_seeds"] == 1
                  else f"{row['test_acc_mean']:.2f} ± {row['test_acc_std']:.2f}")
        params = next((f"{run['params_mb']:.2f} M" for run in row["runs"] if run["params_mb"] is not None), "—")
        standin = ("—" if row["standin_valid"] is None
                   else f"{row['standin_valid']:.2f} ({row['standin_percentile']:.0f})")
        lines.append(f"| {row['cell']} | {per_seed} | {spread} | {params} | {row['params_at_evaluation_size']} "
                     f"| {standin} |")
    single = all(row["finished_seeds"] <= 1 for row in summary["cells"])
    lines += ["", "Std over training seeds is the population std; "
              + ("with one training seed per cell the training noise is not measured, so small gaps do not rank "
                 "the cells." if single else "a gap smaller than the seeds' spread does not rank two cells."),
              f"Stand-in: predicted CIFAR-10 validation accuracy by the {summary['standin_label']} (a surrogate's "
              f"guess, not a trained result) and its percentile among {STANDIN_RANDOM_CELLS:,} random cells"
              + (f" — unavailable here: {summary['standin_unavailable']}" if summary["standin_unavailable"] else "")
              + ".", "", "## Runs", "",
              "| cell | seed | epochs | minutes | final train acc. % | final test acc. % |", "|---|---|---|---|---|---|"]
    for row in summary["cells"]:
        for run in row["runs"]:
            last = run["history"][-1] if run["history"] else None
            lines.append(f"| {row['cell']} | {run['seed']} | {len(run['history'])} | {run['minutes']:.1f} | "
                         + (f"{last['train_acc']:.2f} | {last['test_acc']:.2f} |" if last else "— | — |"))
    lines += ["", "## Genotypes", ""] + [f"- {row['cell']}: `{row['genotype']}`" for row in summary["cells"]]
    return "\n".join(lines) + "\n"


def figure(summary: dict, path: Path) -> None:
    """Test accuracy after each epoch, one colour per cell, one line style per training seed."""
    from matplotlib.ticker import MaxNLocator

    from reproduce import figures

    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    styles = ["-", "--", ":", "-."]
    for colour, row in zip((f"C{i}" for i in range(10)), summary["cells"]):
        for k, run in enumerate(run for run in row["runs"] if run["history"]):
            ax.plot([h["epoch"] for h in run["history"]], [h["test_acc"] for h in run["history"]],
                    styles[k % len(styles)], color=colour, label=f"{row['cell']} (seed {run['seed']})")
    ax.set(xlabel="epoch", ylabel="CIFAR-10 test acc. (%)",
           title=f"cells trained from scratch, darts_eval.toml [{summary['scale']}]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    figures.save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reproduce.drnas_eval_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="DrNAS_cifar10,DARTS_V2",
                        help="comma-separated: published names, search:N (needs --search), random:N")
    parser.add_argument("--search", type=Path, help="a reproduce.drnas_darts_space_check summary .json")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    parser.add_argument("--scale", default="reduced", help="section of darts_eval.toml (default reduced)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change a setting of the darts_eval.toml section (e.g. epochs=40, drop_path_prob=0); "
                             "named in the run and file names")
    parser.add_argument("--workers", type=int, help="parallel trainings on the CPU (default: one per core)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda (one training at a time)")
    parser.add_argument("--out", type=Path, default=Path("results/drnas/eval_check"))
    args = parser.parse_args(argv)
    try:
        check_device(args.device)
        if args.workers is not None and args.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {args.workers}")
        seeds, overrides = parse_seeds(args.seeds), parse_overrides(args.overrides)
        cells = resolve_cells([c.strip() for c in args.cells.split(",") if c.strip()], args.search)
        if not cells:
            raise ConfigError("--cells names no cell")
        stem = args.out / (f"{args.scale}-" + "-".join(re.sub(r"[^A-Za-z0-9]+", "", c) for c in cells)
                           + f"-seeds{'-'.join(map(str, seeds))}" + override_label(overrides))
        save = lambda summary: write(summary, stem, render=markdown, draw=figure)  # noqa: E731
        save(check(cells, seeds, args.scale, args.out, device=args.device, workers=args.workers,
                   overrides=overrides, on_progress=save))
    except NasReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {stem}.json, .md and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

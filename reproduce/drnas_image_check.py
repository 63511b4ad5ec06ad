"""Do lossier images push DrNAS toward pooling and skips? Run the first epochs of the paper-scale plain NB201
search (``drnas.toml [drnas_nb201]``) on our JPEG copy of CIFAR-10 and on re-encodings at lower quality, and set
the supernet's training accuracy and the mean architecture parameter per op beside the official run's log.

Why (results/drnas/GPU.md, session 7): our plain search collapsed to all-``skip_connect`` (NB201 test 54.30 %)
where the official one found 94.36 %. Our supernet trails the official log from epoch 0 (train accuracy 20.2 %
vs 22.4 %), and α moves toward ``skip_connect``/``avg_pool_3x3`` in epoch 0 where the official run's
``nor_conv_3x3`` leads by epoch 1-2. The only systematic input difference found is the images (JPEG quality 75,
4:2:0; the official runs used the lossless ones, which are not obtainable here), and the training check shows a
clear dose-response for stand-alone cells. We cannot train on better images, but we can train on worse ones: if
the search's train accuracy falls and α drifts to the parameter-free ops faster as quality drops, JPEG loss is a
credible cause of the collapse; if quality does not change the drift, look elsewhere.

Every (quality, seed) search is the real one (same hyper-parameters, the 100-epoch cosine schedule), stopped
after ``--epochs`` epochs; it checkpoints every epoch under ``--out/runs`` and a rerun resumes it.

    python -m reproduce.drnas_image_check --epochs 5 --qualities stored,50,25 --seeds 0,1
    python -m reproduce.drnas_image_check --epochs 1 --qualities stored --set precision=fp32_strict  # TF32 off
    python -m reproduce.drnas_image_check --epochs 2 --qualities stored --set precision=tf32_emulated  # TF32 on a CPU
    python -m reproduce.drnas_image_check --epochs 2 --qualities stored --method darts  # DARTS ([darts_nb201])
    python -m reproduce.drnas_image_check --epochs 2 --qualities stored --method gdas  # GDAS ([gdas_nb201])
    python -m reproduce.drnas_image_check --epochs 2 --qualities stored --section drnas_nb201_progressive
    python -m reproduce.drnas_image_check --final --out DIR  # the derived cells of the finished searches in DIR
    python -m reproduce.drnas_image_check --from-checkpoint RUN/checkpoint.pt --out DIR  # tabulate a search so far

Every table and figure sets the runs beside the official ones of the same method, epoch by epoch (train
accuracy and each op's mean α, centred per edge for DARTS and GDAS): the complete seed-2 runs of the only public
per-epoch log of the official search (reproduce/papers/drnas_official_log.py; two DrNAS runs, whose spread is the
yardstick, and one DARTS run; none of GDAS or of the progressive search).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nasrepro.errors import ConfigError, NasReproError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce.cli import check_device, parse_overrides
from reproduce.nb201_training_check import CIFAR10_IMAGES, reencode_jpeg
from reproduce.papers.drnas_official_log import official_runs

SECTION = "drnas_nb201"
#: the methods this check runs (their registry entry gives the class and the drnas.toml section) and the official
#: runs of the same method in the Mars-204/DrNAS log (reproduce/papers/drnas_official_log.py; it has none of GDAS)
METHODS = ("drnas", "darts", "gdas")
METHOD_NAMES = {"drnas": "DrNAS", "darts": "DARTS (first order)", "gdas": "GDAS"}
STORED = "stored"  # the images as they are in the data root (our copy: JPEG quality 75)
#: methods whose alpha is tabulated centred per edge: softmax mixing ignores a constant added to an edge's alpha, so
#: only differences between ops mean anything, and the official DARTS log gives softmax(alpha), i.e. alpha up to
#: that constant (reproduce/papers/drnas_official_log.py centres it the same way); GDAS's Gumbel-softmax likewise
CENTRED_ALPHA = ("darts", "gdas")
# hyper-parameters that change the search's size: with any overridden, the official runs (the paper's scale)
# are a guide to the curve's shape, not to its values
SCALE_KEYS = frozenset({"channels", "cells", "stage_epochs", "batch_size", "train_portion", "image_size",
                        "train_subset"})


def parse_qualities(text: str) -> list[int | None]:
    """``stored,50,25`` -> [None, 50, 25] (None: no re-encoding)."""
    qualities: list[int | None] = []
    for item in text.split(","):
        item = item.strip()
        if item == STORED:
            qualities.append(None)
        elif item.isdigit() and 1 <= int(item) <= 95:
            qualities.append(int(item))
        else:
            raise ConfigError(f"--qualities: {item!r} is neither '{STORED}' nor a JPEG quality in 1..95")
    return qualities


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {text!r}") from None


def override_label(overrides: dict | None) -> str:
    """``{"precision": "fp32_strict"}`` -> ``-precision-fp32_strict``: in run and file names, so runs with other
    settings neither meet each other's checkpoints nor overwrite each other's tables."""
    return "".join(f"-{key}-{re.sub(r'[^A-Za-z0-9_.]', '_', str(value))}"
                   for key, value in sorted((overrides or {}).items()))


def check(qualities: list[int | None], seeds: list[int], epochs: int, device: str, out: Path,
          images: str = "cifar10", overrides: dict | None = None, tag: str = "", progress: bool = True,
          on_progress: Callable[[dict], None] | None = None, method: str = "drnas",
          section: str | None = None) -> dict:
    """Run (or resume) each (quality, seed) search of ``method`` for its first ``epochs`` epochs; return the
    summary. ``section``: the drnas.toml section searched (default: the method's own, e.g. ``drnas_nb201``; another,
    e.g. ``drnas_nb201_progressive``, is named in the runs). ``overrides`` change the section's hyper-parameters
    (tests use a tiny network); ``tag`` ends the run names; ``on_progress`` gets the summary so far after every
    epoch (a time limit that cuts a run loses nothing)."""
    from algorithms import algorithm_class, entry
    from algorithms.nn.data import image_source, load_dataset
    from algorithms.nn.search import device_name, load_hparams, make_search, run_search, search_data
    from benchmarks.nb201 import NB201Benchmark

    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    section = section or entry(method).section
    hparams = load_hparams("drnas", section, overrides)
    if hparams.get("space") != "nb201":
        raise ConfigError(f"--section {section}: searches the {hparams.get('space')!r} space; this check needs an "
                          "NB201 section")
    if epochs > sum(hparams["stage_epochs"]):
        raise ConfigError(f"--epochs {epochs}: the search has only {sum(hparams['stage_epochs'])} epochs")
    benchmark, stored = NB201Benchmark.load(), load_dataset(images)
    runs: list[dict] = []
    centre_alpha = method in CENTRED_ALPHA
    summary = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "device": device_name(device),
               "method": method, "images": image_source(images), "section": section, "overrides": overrides or {},
               "epochs": epochs, "alpha_centred_per_edge": centre_alpha,
               "official": official_reference(epochs, method, section), "runs": runs}
    for quality in qualities:
        # the search reads the training images only (its test accuracies are the benchmark's)
        arrays = stored if quality is None else dataclasses.replace(stored, x_train=reencode_jpeg(stored.x_train, quality))
        for seed in seeds:
            name = run_prefix(method, section) + (
                f"{STORED if quality is None else f'jpeg{quality}'}-seed{seed}"
                + (f"-{images}" if images != "cifar10" else "") + tag)
            identity = {"paper": "drnas", "method": method, "section": section, "hparams": hparams, "seed": seed,
                        "dataset": "cifar10", "images": images, "jpeg_quality": quality}
            run = {"name": name, "jpeg_quality": quality, "seed": seed, "epochs": []}
            runs.append(run)

            def on_epoch(history: list[dict], run: dict = run) -> None:  # a resumed run's epochs included
                run["epochs"] = [_epoch_row(h, centre_alpha) for h in history[:epochs]]
                if on_progress is not None:
                    on_progress(summary)

            search = make_search(algorithm_class(method), hparams, seed)
            search.adapt_search_space("nb201", "cifar10", num_classes=arrays.num_classes, device=device)
            train, valid = search_data(search, arrays, seed)
            result = run_search(search, train, valid, out / "runs" / name, identity, benchmark=benchmark,
                                until_epoch=epochs, progress=progress, on_epoch=on_epoch)
            run["epochs"] = [_epoch_row(h, centre_alpha) for h in result["history"][:epochs]]
            print(f"{name}: " + "; ".join(f"epoch {r['epoch']} train {r['train_acc']:.1f} % argmax {r['argmax_test']:.2f}"
                                          for r in run["epochs"]), file=sys.stderr)
            if on_progress is not None:
                on_progress(summary)
    return summary


def tabulate_checkpoint(checkpoint: Path) -> dict:
    """The summary of the epochs an NB201 search checkpoint holds (any run of ``run_search``: this check's or
    ``reproduce drnas``'s, finished or cut), beside the official runs: to follow a search spread over sessions
    without running it."""
    from algorithms.nn.search import load_search_checkpoint

    state = load_search_checkpoint(checkpoint)
    identity, history = state["identity"], state["history"]
    method = identity.get("method")
    if method not in METHODS or not history or "argmax_test" not in history[0]:
        raise ConfigError(f"{checkpoint}: not an NB201 search of {' or '.join(METHODS)} with recorded epochs "
                          f"(method {method!r}, {len(history)} epochs)")
    centre_alpha = method in CENTRED_ALPHA
    devices = sorted({h.get("device", "not recorded") for h in history})
    images = sorted({h["images"] for h in history if "images" in h}) or [identity.get("images", "not recorded")]
    return {"date": datetime.fromtimestamp(checkpoint.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "device": ", ".join(devices), "method": method, "images": "; ".join(images),
            "section": identity["section"], "overrides": {}, "epochs": len(history),
            "alpha_centred_per_edge": centre_alpha,
            "official": official_reference(len(history), method, identity["section"]),
            "checkpoint": str(checkpoint),
            "runs": [{"name": checkpoint_run_name(checkpoint), "jpeg_quality": identity.get("jpeg_quality"),
                      "seed": identity["seed"], "epochs": [_epoch_row(h, centre_alpha) for h in history]}]}


def checkpoint_run_name(checkpoint: Path) -> str:
    """A run folder's name for its ``checkpoint.pt``; a hand-off file's own name (``handoff/<run>.pt``)."""
    return checkpoint.parent.name if checkpoint.name == "checkpoint.pt" else checkpoint.stem


def run_prefix(method: str, section: str) -> str:
    """What starts the run and file names: nothing for DrNAS's own section, else the method and any other section,
    so searches of different settings never meet each other's checkpoints or tables."""
    from algorithms import entry

    return ("" if method == "drnas" else f"{method}-") + ("" if section == entry(method).section else f"{section}-")


def official_reference(epochs: int, method: str = "drnas", section: str | None = None) -> dict:
    """The official runs of ``method``, their first ``epochs`` epochs (reproduce/papers/drnas_official_log.py):
    train accuracy, the argmax cell's NB201 test accuracy and each op's mean alpha after every epoch (None after a
    run's last epoch, where the log has none; for DARTS centred per edge, from the logged softmax(alpha)). The log
    is of the plain searches: a search of another ``section`` (e.g. progressive) has none."""
    from algorithms import entry

    if section is not None and section != entry(method).section:
        return {}
    return {run.name: {"description": run.description, "train_acc": list(run.train_acc[:epochs]),
                       "mean_alpha": [run.mean_alpha_after(e) for e in range(min(epochs, run.epochs))],
                       "argmax_test": list(run.cifar10_test_of_cell_after[:epochs])}
            for run in official_runs().values() if run.method == method}


def _epoch_row(record: dict, centre_alpha: bool = False) -> dict:
    """What the summary keeps of one epoch record of the search; ``centre_alpha``: each edge's alpha minus its
    mean over the ops, before the mean over the edges is taken (see :data:`CENTRED_ALPHA`)."""
    from benchmarks.nb201 import OPS

    alpha = np.asarray(record["alphas"]["cell"], dtype=np.float64)
    if centre_alpha:
        alpha = alpha - alpha.mean(axis=1, keepdims=True)
    return {"epoch": record["epoch"], "train_acc": round(record["train_acc"], 2),
            "argmax_test": round(record["argmax_test"], 2),
            "argmax_valid": None if record.get("argmax_valid") is None else round(record["argmax_valid"], 2),
            "sampled_test_mean": round(record["sampled_test_mean"], 2),
            "arch": record["arch"], "seconds": round(record["seconds"], 1),
            "mean_alpha": dict(zip(OPS, np.round(alpha.mean(axis=0), 4).tolist()))}


def _ops(result: dict) -> list[str]:
    """The ops of the runs' α, in NB201 order (a summary read back from JSON has them sorted by name)."""
    from benchmarks.nb201 import OPS

    first = next((run["epochs"][0]["mean_alpha"] for run in result["runs"] if run["epochs"]), {})
    return [op for op in OPS if op in first]


def _official(result: dict) -> dict:
    """The summary's official runs; a summary written before they were added gets them from the log now."""
    if "official" in result:
        return result["official"]
    return official_reference(result["epochs"], result.get("method", "drnas"), result.get("section"))


def markdown(result: dict) -> str:
    ops = _ops(result)
    official = _official(result)
    names = list(official)
    short = "/".join(name.split("-")[-1] for name in names)  # "A/B"
    method = METHOD_NAMES[result.get("method", "drnas")]
    resized = sorted(SCALE_KEYS & set(result["overrides"] or {}))  # size keys this run changed
    title = (f"epochs 0-{result['epochs'] - 1}, read from `{result['checkpoint']}`" if "checkpoint" in result
             else "first epochs, by image quality")
    lines = [f"# {method} plain NB201 search, {title}", "",
             f"{result['date']} on {result['device']}; images: {result['images']}, re-encoded (training images) "
             f"as JPEG at the quality in the first column; `drnas.toml [{result['section']}]`"
             + (f" with {result['overrides']}" if result["overrides"] else "")
             + ". α: the mean over the 6 edges of each op's architecture parameter at the end of the epoch"
             + (", each edge's α centred first (minus its mean over the ops: softmax mixing, and the official log's "
                "softmax(α), fix α only up to a constant per edge)" if result.get("alpha_centred_per_edge") else "")
             + ". "
             + ((f"In brackets: the official run{'s' if len(names) > 1 else ''} {short} "
                 "(reproduce/papers/drnas_official_log.py)"
                 + (f", at the paper's scale: with {', '.join(resized)} changed here they show the curve's shape, "
                    "not values to match" if resized else "") + ".") if names else
                f"No official per-epoch log of `[{result['section']}]` exists (the Mars-204/DrNAS log has the plain "
                "DrNAS and DARTS searches only)."),
             "",
             "| images | seed | epoch | train acc. %" + (f" (official {short})" if names else "") + " | "
             + " | ".join(f"α {op}" for op in ops)
             + " | argmax cell, NB201 test % |",
             "|---|---:|---:|---:|" + "---:|" * len(ops) + "---:|"]
    for run in result["runs"]:
        label = STORED if run["jpeg_quality"] is None else f"JPEG {run['jpeg_quality']}"
        for r in run["epochs"]:
            reference = _official_values(official, r["epoch"], lambda o, e: o["train_acc"][e], "{:.1f}")
            lines.append(f"| {label} | {run['seed']} | {r['epoch']} | {r['train_acc']:.1f}{reference} | "
                         + " | ".join(f"{r['mean_alpha'][op]:+.3f}" for op in ops) + f" | {r['argmax_test']:.2f} |")
    epochs = max((len(run["epochs"]) for run in result["runs"]), default=0)
    if official and ops and epochs:
        lines += ["", f"The official run{'s' if len(names) > 1 else ''} ({short}; seed 2, the Mars-204/DrNAS log) after "
                  "the same epochs (α where the log has it):", "",
                  "| epoch | train acc. % | " + " | ".join(f"α {op}" for op in ops) + " | argmax cell, NB201 test % |",
                  "|---:|---:|" + "---:|" * len(ops) + "---:|"]
        for epoch in range(epochs):
            cells = [_official_values(official, epoch, lambda o, e: o["train_acc"][e], "{:.1f}", bare=True)]
            cells += [_official_values(official, epoch, lambda o, e, op=op: o["mean_alpha"][e][op], "{:+.3f}", bare=True)
                      for op in ops]
            cells.append(_official_values(official, epoch, lambda o, e: o["argmax_test"][e], "{:.2f}", bare=True))
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _official_values(official: dict, epoch: int, value: Callable, form: str, bare: bool = False) -> str:
    """``" (22.6 / 21.9)"``: one value per official run at ``epoch`` ("–" where a run has none); "" without runs."""
    if not official:
        return ""
    values = []
    for run in official.values():
        try:
            v = value(run, epoch)
        except (IndexError, TypeError):  # past the run's logged epochs, or no alpha after its last epoch
            v = None
        values.append("–" if v is None else form.format(v))
    text = " / ".join(values)
    return text if bare else f" ({text})"


def figure(result: dict, path: Path) -> None:
    """Train accuracy and the mean α of each op against the epoch, one line style per image quality."""
    from reproduce import figures

    plt = figures.pyplot()

    runs = [r for r in result["runs"] if r["epochs"]]
    if not runs:
        return
    ops = _ops(result)
    qualities = list(dict.fromkeys(r["jpeg_quality"] for r in runs))
    styles = dict(zip(qualities, ["-", "--", ":", "-."] * 4))
    fig, axes = plt.subplots(1, 1 + len(ops), figsize=(3.0 * (1 + len(ops)), 3.0), squeeze=False)
    axes = axes[0]
    for (name, run), style in zip(_official(result).items(), ["-", "--", ":"]):
        # the official runs as thin grey lines: their spread is the yardstick for "on the official trajectory"
        official = dict(color="grey", lw=0.8, ls=style, label=f"official {name}")
        axes[0].plot(range(len(run["train_acc"])), run["train_acc"], **official)
        done = [(e, a) for e, a in enumerate(run["mean_alpha"]) if a is not None]
        for ax, op in zip(axes[1:], ops):
            ax.plot([e for e, _ in done], [a[op] for _, a in done], color="grey", lw=0.8, ls=style)
    for run in runs:
        epochs = [r["epoch"] for r in run["epochs"]]
        label = f"{STORED if run['jpeg_quality'] is None else 'JPEG ' + str(run['jpeg_quality'])}, seed {run['seed']}"
        axes[0].plot(epochs, [r["train_acc"] for r in run["epochs"]], styles[run["jpeg_quality"]], label=label)
        for ax, op in zip(axes[1:], ops):
            ax.plot(epochs, [r["mean_alpha"][op] for r in run["epochs"]], styles[run["jpeg_quality"]])
    axes[0].set(title="supernet train acc. (%)", xlabel="epoch")
    axes[0].legend(fontsize=6)
    for ax, op in zip(axes[1:], ops):
        ax.set(title=f"mean α: {op}", xlabel="epoch")
        ax.axhline(0, color="grey", lw=0.5)
    figures.save_png(fig, path)


FINAL = "final"  # the stem of --final's outputs in --out


def final_summary(folder: Path) -> dict:
    """The derived cell of every search that ran its whole schedule, from the summaries (``*.json``) in ``folder``:
    per method and setting, each seed's last-epoch argmax cell with its NB201 CIFAR-10 valid / test accuracy, their
    mean and std over seeds (population std, as every table here) and the paper's row. A seed found in several
    summaries counts once (the newest); searches stopped before their schedule's end are listed apart, not averaged."""
    from algorithms.nn.search import load_hparams
    from reproduce.papers.drnas import PAPER_NB201, ROWS

    table_rows = {section: row for row, section in load_hparams("drnas", "nb201_table").items()}

    groups: dict[tuple, dict] = {}
    stopped: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if path.stem == FINAL:
            continue
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        if not isinstance(summary, dict) or "runs" not in summary or "section" not in summary:
            continue  # not a summary of this check
        method, overrides = summary.get("method", "drnas"), summary.get("overrides") or {}
        schedule = sum(load_hparams("drnas", summary["section"], overrides)["stage_epochs"])
        for run in summary["runs"]:
            if len(run["epochs"]) < schedule:
                stopped.append(f"{run['name']} ({len(run['epochs'])} of {schedule} epochs, {path.name})")
                continue
            last = run["epochs"][schedule - 1]
            if last.get("argmax_valid") is None:
                raise ConfigError(f"{path}: written before the summaries kept the validation accuracy; rerun its "
                                  "command (a finished search only reloads) to rewrite it")
            key = (method, summary["section"], override_label(overrides), run["jpeg_quality"], summary["images"])
            group = groups.setdefault(key, {"method": method, "section": summary["section"], "overrides": overrides,
                                            "jpeg_quality": run["jpeg_quality"], "images": summary["images"],
                                            "epochs": schedule, "seeds": {}})
            seen = group["seeds"].get(run["seed"])
            if seen is None or summary["date"] >= seen["date"]:
                group["seeds"][run["seed"]] = {"seed": run["seed"], "date": summary["date"], "arch": last["arch"],
                                               "valid": last["argmax_valid"], "test": last["argmax_test"],
                                               "summary": path.name}
    rows = []
    for _, group in sorted(groups.items(), key=lambda item: (METHODS.index(item[0][0]), str(item[0][1:]))):
        seeds = [group["seeds"][s] for s in sorted(group["seeds"])]
        valid, test = np.array([s["valid"] for s in seeds]), np.array([s["test"] for s in seeds])
        row = table_rows.get(group["section"])  # the NB201 table's row searched with this section, if any
        label = ROWS[row][0] if row else f"{METHOD_NAMES[group['method']]} [{group['section']}]"
        (paper_valid, _), (paper_test, _) = PAPER_NB201[row or group["method"]]["cifar10"]
        rows.append({**group, "label": label, "seeds": seeds,
                     "valid_mean": float(valid.mean()), "valid_std": float(valid.std()),
                     "test_mean": float(test.mean()), "test_std": float(test.std()),
                     "paper_valid": paper_valid, "paper_test": paper_test, "test_gap": float(test.mean() - paper_test)})
    return {"folder": str(folder), "rows": rows, "stopped": stopped}


def final_markdown(final: dict) -> str:
    lines = ["# NB201 CIFAR-10: the derived cells of the finished searches", "",
             f"Every search summarised in `{final['folder']}` that ran its whole schedule: the argmax cell after "
             "its last epoch, looked up in NAS-Bench-201 (CIFAR-10 valid / test, %), mean ± std over seeds "
             "(population std). The paper's row is at the paper's scale; a setting that changes the search's size "
             "(any of " + ", ".join(sorted(SCALE_KEYS)) + ") is not the paper's setting.", "",
             "| method | setting | seeds | valid % | test % | paper valid / test % | test gap (pp) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in final["rows"]:
        spread = len(row["seeds"]) > 1  # one seed has no spread to show
        valid, test = (f"{row[f'{split}_mean']:.2f}" + (f" ± {row[f'{split}_std']:.2f}" if spread else "")
                       for split in ("valid", "test"))
        lines.append(f"| {row['label']} | {_setting(row)} | {len(row['seeds'])} | {valid} | {test} | "
                     f"{row['paper_valid']:.2f} / {row['paper_test']:.2f} | {row['test_gap']:+.2f} |")
    lines += ["", "| method | setting | seed | derived cell | valid % | test % |", "|---|---|---:|---|---:|---:|"]
    for row in final["rows"]:
        for seed in row["seeds"]:
            lines.append(f"| {row['label']} | {_setting(row)} | {seed['seed']} | `{seed['arch']}` | "
                         f"{seed['valid']:.2f} | {seed['test']:.2f} |")
    if final["stopped"]:
        lines += ["", "Stopped before the end of their schedule (not in the table): "
                  + "; ".join(final["stopped"]) + "."]
    return "\n".join(lines) + "\n"


def _setting(row: dict) -> str:
    """``[darts_nb201]`` + its overrides, the images and their re-encoding: what makes two rows different."""
    changed = ", ".join(f"{k}={v}" for k, v in sorted(row["overrides"].items()))
    quality = "" if row["jpeg_quality"] is None else f", JPEG {row['jpeg_quality']}"
    return f"`[{row['section']}]`" + (f" with {changed}" if changed else "") + f"{quality}, {row['epochs']} epochs"


def final_figure(final: dict, path: Path) -> None:
    """Each finished search's test accuracy (a dot per seed) per method and setting, the paper's value as a bar."""
    from reproduce import figures

    plt = figures.pyplot()

    rows = final["rows"]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(rows), 3.6))
    for x, row in enumerate(rows):
        tests = [s["test"] for s in row["seeds"]]
        ax.scatter([x] * len(tests), tests, color="C0", zorder=3, label="ours, one seed" if x == 0 else None)
        ax.errorbar(x + 0.15, row["test_mean"], yerr=row["test_std"], fmt="s", color="C0", capsize=3,
                    label="ours, mean ± std" if x == 0 else None)
        ax.hlines(row["paper_test"], x - 0.3, x + 0.3, color="C3", lw=2, label="paper" if x == 0 else None)
    # the epochs (and a re-encoding) tell apart rows of one method, e.g. GDAS for 50 and for 250 epochs
    ticks = [f"{r['label']}\n{r['epochs']} epochs, {len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''}"
             + ("" if r["jpeg_quality"] is None else f"\nJPEG {r['jpeg_quality']}") for r in rows]
    ax.set_xticks(range(len(rows)), ticks, fontsize=8)
    ax.set(ylabel="NB201 CIFAR-10 test acc. of the derived cell (%)",
           title=f"finished searches in {Path(final['folder']).name} (settings: {FINAL}.md)")
    ax.legend(fontsize=7, loc="lower right")
    figures.save_png(fig, path)


def main(argv: list[str] | None = None) -> int:
    from algorithms import entry

    parser = argparse.ArgumentParser(prog="python -m reproduce.drnas_image_check", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="first epochs of the 100-epoch search (default 5)")
    parser.add_argument("--qualities", default=f"{STORED},50,25",
                        help=f"comma-separated: '{STORED}' (no re-encoding) or JPEG qualities (default {STORED},50,25)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--method", default="drnas", choices=METHODS,
                        help="drnas (drnas.toml [drnas_nb201], default), darts ([darts_nb201]) or gdas "
                             "([gdas_nb201]); each is set beside the official runs of the same method (none for gdas)")
    parser.add_argument("--section", help="another NB201 section of drnas.toml for the method, e.g. "
                                          "drnas_nb201_progressive (no official per-epoch log to set beside it)")
    parser.add_argument("--images", default="cifar10", choices=CIFAR10_IMAGES,
                        help="CIFAR-10 images: pickles if present, else JPEG (default); or a named copy")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change a hyper-parameter of the method's drnas.toml section ([{SECTION}] for drnas), "
                             "e.g. precision=fp32_strict (TF32 off) or precision=tf32_emulated (TF32 convolutions on "
                             "any device); named in the run and file names")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("results/drnas/image_check"))
    parser.add_argument("--from-checkpoint", type=Path, metavar="CHECKPOINT",
                        help="run nothing: tabulate the epochs an NB201 search checkpoint holds (e.g. of a "
                             "'reproduce drnas --full' search cut short) beside the official runs, into "
                             "--out/<run folder>-epochs<n>.json/.md/.png")
    parser.add_argument("--final", action="store_true",
                        help="run nothing: the derived cell of every finished search summarised in --out, per "
                             "method its NB201 valid/test mean ± std over seeds beside the paper's row, into "
                             f"--out/{FINAL}.json/.md/.png")
    args = parser.parse_args(argv)
    try:
        if args.final:
            final = final_summary(args.out)
            if not final["rows"]:
                raise ConfigError(f"{args.out}: no summary of a finished search")
            stem = args.out / FINAL
            write(final, stem, render=final_markdown, draw=final_figure)
            print(f"wrote {stem}.json, .md and .png", file=sys.stderr)
            return 0
        if args.from_checkpoint is not None:
            summary = tabulate_checkpoint(args.from_checkpoint)
            stem = args.out / f"{summary['runs'][0]['name']}-epochs{summary['epochs']}"
            write(summary, stem)
            print(f"wrote {stem}.json, .md and .png", file=sys.stderr)
            return 0
        check_device(args.device)
        if args.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
        qualities, seeds = parse_qualities(args.qualities), parse_seeds(args.seeds)
        overrides = parse_overrides(args.overrides)
        # one file per setting (no silent overwrite), rewritten after every run
        labels = [STORED if q is None else f"jpeg{q}" for q in qualities]
        stem = args.out / (run_prefix(args.method, args.section or entry(args.method).section)
                           + f"epochs{args.epochs}-{'-'.join(labels)}-seeds{'-'.join(map(str, seeds))}"
                           + (f"-{args.images}" if args.images != "cifar10" else "") + override_label(overrides))
        check(qualities, seeds, args.epochs, args.device, args.out, images=args.images, overrides=overrides or None,
              tag=override_label(overrides), progress=sys.stderr.isatty(), method=args.method, section=args.section,
              on_progress=lambda summary: write(summary, stem))
    except NasReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {stem}.json, .md and .png", file=sys.stderr)
    return 0


def write(summary: dict, stem: Path, render: Callable[[dict], str] | None = None,
          draw: Callable[[dict, Path], None] | None = None) -> None:
    """``stem``.json / .md (``render``, default :func:`markdown`) / .png (``draw``, default :func:`figure`); a
    failure to write is a :class:`ConfigError` (one line)."""
    render, draw = render or markdown, draw or figure  # looked up at call time: tests replace the module's figure
    try:
        # appended, not with_suffix: a value like 0.0006 in the name would be taken for a suffix
        atomic_write_json(Path(f"{stem}.json"), summary)
        atomic_write_text(Path(f"{stem}.md"), render(summary))
        draw(summary, Path(f"{stem}.png"))
    except OSError as exc:
        raise ConfigError(f"cannot write {stem}.json / .md / .png: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())

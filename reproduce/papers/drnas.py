"""DrNAS (Chen et al., ICLR 2021): the NAS-Bench-201 table, the search-trajectory figure, a DARTS-space search.

``run(scale, out)``: for every dataset whose images are present (CIFAR-10 here), DrNAS, DARTS (first
order) and GDAS search the NB201 space over the configured seeds, each with the section named in
``[nb201_table]`` (all plain, as the paper's table; DrNAS also progressive, the official README's command); the
derived cell is looked up in NAS-Bench-201 (valid/test, mean +- std over seeds) and set beside the
paper's row. Each search records, per epoch, the argmax cell and 100 cells drawn from the current
architecture distribution with their NB201 accuracy: the search-trajectory figure. A DrNAS search of the
DARTS space (progressive) produces a genotype. Settings: ``algorithms/configs/drnas.toml`` (sections per
method, ``[nb201_table]``, ``scale_*`` overrides).

Scales: ``quick`` runs on CPU in minutes (tiny network, 16-px images, the 5,000-image subset): it checks
the pipeline end to end and is *not* a reproduction of the paper's numbers; ``full`` is the paper's
setting and needs a GPU. Raw outputs go to ``out/runs/<run>/`` (checkpoint every epoch; a finished
search is skipped, an interrupted one resumes). The ``result.json`` of finished full-scale runs is tracked in
git, so any clone rebuilds the table; a result marked ``recovered`` holds only the final cell and totals of a
run whose raw folder was lost (its per-epoch history is not there, so it joins the table, not the figure).
A search spread over GPU sessions leaves a hand-off checkpoint in ``out/handoff/<run>.pt`` between them
(``reproduce/device/drnas_gpu_search_leg.sh``); an unfinished search is reported "not run" with its progress
(from the newer of its run folder's checkpoint and its hand-off), and drawn in the figure when its row has no
finished search. ``report_only`` runs nothing: the report of what has finished and what is in progress, on
any machine.
"""
from __future__ import annotations

import fnmatch
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from algorithms.nn.search import load_hparams
from nasrepro.errors import ConfigError, DataError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce import figures
from reproduce.executors import cpu_threads, set_cpu_threads
from reproduce.report import Headline, HeadlineRow, headline_table

TITLE = "DrNAS: Dirichlet Neural Architecture Search (ICLR 2021)"
#: the NB201 table's rows: row key -> (label, algorithm); each row's config section is in drnas.toml [nb201_table]
ROWS = {"drnas": ("DrNAS", "drnas"), "drnas_progressive": ("DrNAS (progressive)", "drnas"),
        "darts": ("DARTS (1st order)", "darts"), "gdas": ("GDAS", "gdas")}
#: the paper's NB201 table (valid, test), %; DARTS/GDAS rows as printed there (taken from NB201's runs)
PAPER_NB201 = {
    "drnas": {"cifar10": ((91.55, 0.0), (94.36, 0.0)), "cifar100": ((73.49, 0.0), (73.51, 0.0)),
              "imagenet16-120": ((46.37, 0.0), (46.34, 0.0))},
    "darts": {"cifar10": ((39.77, 0.0), (54.30, 0.0)), "cifar100": ((15.03, 0.0), (15.61, 0.0)),
              "imagenet16-120": ((16.43, 0.0), (16.32, 0.0))},
    "gdas": {"cifar10": ((89.89, 0.08), (93.61, 0.09)), "cifar100": ((71.34, 0.04), (70.70, 0.30)),
             "imagenet16-120": ((41.59, 1.33), (41.71, 0.98))},
}
# The paper's NB201 row comes from the plain search (the author, xiangning-chen/DrNAS issue #8); the progressive
# search (the official README's NB201 command) is set beside the same numbers.
PAPER_NB201["drnas_progressive"] = PAPER_NB201["drnas"]
#: the paper's DARTS-space CIFAR-10 row (progressive search): test error after the 600-epoch evaluation, params
PAPER_DARTS_SPACE = "2.46±0.03 % error, 4.1 M params"
#: how to train a derived genotype (darts_eval.toml [full]: the DARTS / DrNAS evaluation protocol)
EVALUATION_HOWTO = ("train a genotype with `nasrepro train-eval DIR --genotype \"Genotype(...)\"` "
                    "(darts_eval.toml [full]: 600 epochs, a GPU; resumable); without --genotype it trains the "
                    "paper's published cell, DrNAS_cifar10")
#: random DARTS-space cells the NB301 stand-in scores as the yardstick of a derived genotype, drawn with a fixed seed
#: so every report measures against the same cells
STANDIN_RANDOM_CELLS = 1000
STANDIN_RANDOM_SEED = 0
#: an absolute gap (percentage points) within which a full-scale mean counts as reproducing the paper
TOLERANCE_PP = 0.5
#: image data each NB201 dataset is searched on, per scale
IMAGES = {"quick": {"cifar10": "cifar10-subset"},
          "full": {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16-120"}}
#: the folder (inside ``out``) of the checkpoints committed between the GPU sessions a search spans
HANDOFF_DIR = "handoff"


def run(scale: str, out: Path, only: str | None = None, device: str | None = None,
        threads: int | None = None, report_only: bool = False) -> Path:
    """``only``: a glob over run names, ``<dataset>-<section>-seed<n>`` (``cifar10-drnas_nb201_progressive-seed0``,
    ``cifar10-drnas_darts-seed0``, ...; the section is in the name, so switching sections never meets the other
    one's checkpoint). Only those run; runs finished earlier in ``out`` are still reported, the rest "not run".
    ``device``: where the searches train; by default the CPU at the quick scale and a CUDA GPU at the full one.
    ``"cpu"`` at the full scale is allowed when asked for (a paper-scale NB201 search takes about a day on two
    cores; each epoch checkpoints, so it can be spread over sessions).
    ``threads``: CPU threads per search (default 1, as each pool worker has, one worker per ``threads`` cores).
    A CPU search rounds differently on another thread count and can end on another cell, so a search repeats
    the full run's numbers only on the same count; more threads make a single long search faster (paper scale
    on 2 cores: 1.72 s per step on 2 threads, 2.73 s on 1, session 20).
    ``report_only``: run no search (needs no GPU; missing images only make their datasets' empty rows "not
    measurable here"): report the finished searches and the progress of the rest."""
    if scale not in ("quick", "full"):
        raise ConfigError(f"drnas: scale must be 'quick' or 'full', got {scale!r}")
    if device not in (None, "cpu", "cuda"):
        raise ConfigError(f"drnas: device must be 'cpu' or 'cuda', got {device!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"drnas: threads must be a positive whole number, got {threads!r}")
    if report_only and scale != "full":
        raise ConfigError("drnas: --report-only is for the full scale (its searches span GPU sessions); "
                          "the quick scale runs in minutes")
    if report_only and (device is not None or threads is not None or only is not None):
        raise ConfigError("drnas: --report-only runs no search and reports every run; drop --device / --threads "
                          "/ --only")
    out = Path(out)
    started = datetime.now(timezone.utc)
    explicit_device = device is not None
    if device is None:  # checked below, only if a selected search still has to run
        device = "cpu" if scale == "quick" else "cuda"
    seeds = [int(s) for s in load_hparams("drnas", f"scale_{scale}_nb201")["seeds"]]  # recorded in run_info.json
    rows, unavailable, jobs = [], {}, search_jobs(scale, out, device)
    for dataset, images in IMAGES[scale].items():
        try:
            _check_images(images)
        except DataError as exc:  # its searches cannot run here; those that finished elsewhere are reported
            unavailable[dataset] = str(exc)
    selected = [job for job in jobs if only is None or fnmatch.fnmatchcase(Path(job["out"]).name, only)]
    if only is not None and not selected:
        raise ConfigError(f"drnas: --only {only!r} matches no run; runs: "
                          f"{', '.join(Path(job['out']).name for job in jobs)}")
    earlier = {job["out"]: _finished_result(job) for job in jobs}  # each result.json read once
    finished = [r for r in earlier.values() if r is not None]  # reported, never rerun
    pending = [job for job in selected if earlier[job["out"]] is None and job["dataset"] not in unavailable]
    if report_only:
        pending, device = [], "none (--report-only: no search ran)"
    elif pending:
        _check_device(device, pending)
        if threads is not None and device != "cpu":
            raise ConfigError(f"drnas: --threads sets CPU threads per search; these searches run on {device} "
                              f"(add --device cpu)")
    else:
        device = "cpu (report only: every selected search had finished)"
    results = (_run_jobs(pending, device, threads or 1) if pending else []) + finished
    results = [r for r in results if r["finished"]]  # a run cut short (another session resumes it) is not reported
    done = {r["job"]["out"] for r in results}
    progress = {job["out"]: p for job in jobs if job["out"] not in done and (p := _progress(job, out)) is not None}

    see_only = "" if report_only else " (see --only)"
    nb201_results = [r for r in results if r["job"]["kind"] == "nb201"]
    for dataset in IMAGES["full"]:
        for row, (label, _) in ROWS.items():
            (pv, pv_std), (pt, pt_std) = PAPER_NB201[row][dataset]
            claim = f"NB201 {dataset}: {label} derived cell, valid / test accuracy (%)"
            paper = f"{pv:.2f}±{pv_std:.2f} / {pt:.2f}±{pt_std:.2f}"
            mine = [r for r in nb201_results if r["job"]["row"] == row and r["job"]["dataset"] == dataset]
            unfinished = _progress_note([p for p in progress.values()
                                         if p["job"].get("row") == row and p["job"]["dataset"] == dataset])
            if not mine and not unfinished and (dataset not in IMAGES[scale] or dataset in unavailable):
                reason = unavailable.get(dataset) or _why_not_searched(dataset, scale)
                rows.append({"claim": claim, "paper": paper, "ours": "—", "seeds": 0, "verdict": "not measurable here",
                             "note": f"needs the {dataset} training images: {reason}"})
                continue
            if not mine:
                rows.append({"claim": claim, "paper": paper, "ours": "—", "seeds": 0, "verdict": "not run",
                             "note": f"no finished {scale}-scale search in {out / 'runs'} yet{see_only}"
                                     + unfinished})
                continue
            row_summary = _nb201_row(claim, paper, pt, mine, scale)
            if row == "drnas_progressive":
                row_summary["note"] += ("; the paper publishes no progressive NB201 number: compared with its "
                                        "DrNAS row (the plain search)")
            row_summary["note"] += f"; trained on {_trained_on(mine, IMAGES[scale][dataset])}"
            recovered = sorted(r["job"]["seed"] for r in mine if "recovered" in r)
            if recovered:
                row_summary["note"] += (f"; seed(s) {', '.join(map(str, recovered))}: final cell only, recovered from "
                                        f"an earlier report (the per-epoch history is lost)")
            row_summary["note"] += unfinished
            rows.append(row_summary)
    darts_results = [r for r in results if r["job"]["kind"] == "darts"]
    darts_claim = ("DARTS space (CIFAR-10), progressive DrNAS search: derived genotype and its parameters at the "
                   "evaluation size (paper: 2.46±0.03 % test error after training it)")
    standin = standin_scores([r["final_architecture"] for r in darts_results]) if darts_results else {}
    darts_unfinished = _progress_note([p for p in progress.values() if p["job"]["kind"] == "darts"])
    for i, r in enumerate(darts_results):
        rows.append({"claim": darts_claim, "paper": PAPER_DARTS_SPACE,
                     "ours": f"{r['final_architecture']}, {evaluation_params_note(r['final_architecture'])}",
                     "seeds": 1, "verdict": "not measurable here",
                     "note": f"search only ({r['epochs_done']} epochs at the {scale} scale)"
                             f"{darts_unfinished if i == 0 else ''}; {EVALUATION_HOWTO}; {standin_note(standin, i)}"})
    if not darts_results:
        rows.append({"claim": darts_claim, "paper": PAPER_DARTS_SPACE, "ours": "—", "seeds": 0, "verdict": "not run",
                     "note": f"no finished {scale}-scale search yet{see_only}{darts_unfinished}; {EVALUATION_HOWTO}"})

    with_history = [r for r in nb201_results if r["history"]]  # a recovered result has none
    drawn_rows = {r["job"]["row"] for r in with_history}  # an unfinished search stands in for a row with none
    with_history += [p for p in progress.values()
                     if p["job"]["kind"] == "nb201" and p["job"]["row"] not in drawn_rows and p["history"]]
    figures = _trajectory_figure(with_history, out / "figures") if with_history else []
    command = (f"python -m reproduce drnas --{scale}" + (f" --only '{only}'" if only else "")
               + (f" --device {device}" if explicit_device else "") + (f" --threads {threads}" if threads else "")
               + (" --report-only" if report_only else ""))
    headline = Headline("drnas", TITLE, scale, command, started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        tuple(HeadlineRow(**row) for row in rows),
                        tuple(str(Path(f).relative_to(out)) for f in figures))
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    run_info = {"device": device, "seconds": round(seconds, 1), "seeds": seeds, "report_only": report_only,
                # numbers depend on it: a CPU search rounds differently on another thread count
                **({"cpu_threads_per_search": threads or 1} if device == "cpu" else {}),
                "runs": {Path(r["job"]["out"]).name: {"final_architecture": r["final_architecture"],
                                                      "final_valid": r.get("final_valid"),
                                                      "final_test": r.get("final_test"),
                                                      "epochs_done": r["epochs_done"],
                                                      **_timing(r)}
                         for r in results}}
    if progress:
        run_info["in_progress"] = {Path(p["job"]["out"]).name: _progress_info(p) for p in progress.values()}
    if standin:  # the DARTS-space searches' genotypes, in darts_results order, on the NB301 stand-in
        run_info["darts_space_standin"] = {**standin, "runs": [Path(r["job"]["out"]).name for r in darts_results]}
    atomic_write_json(out / "run_info.json", run_info)
    atomic_write_text(out / "results.md", _markdown(headline.to_dict(), run_info))
    return headline.write(out / "headline.json")


# --------------------------------------------------------------------------------------------------
# Searches
# --------------------------------------------------------------------------------------------------
def nb201_overrides(scale: str, section: str) -> dict:
    """The scale's overrides of an NB201 section: the shared ones plus those for its kind (one stage:
    ``_plain``; several: ``_progressive``), which set the schedule."""
    stages = len(load_hparams("drnas", section)["stage_epochs"])
    kind = "plain" if stages == 1 else "progressive"
    shared = {k: v for k, v in load_hparams("drnas", f"scale_{scale}_nb201").items() if k != "seeds"}
    return {**shared, **load_hparams("drnas", f"scale_{scale}_nb201_{kind}")}


def search_jobs(scale: str, out: Path, device: str) -> list[dict]:
    """Every search of the scale, NB201 table rows then the DARTS space, each with its run folder
    ``out/runs/<dataset>-<section>-seed<n>``."""
    sections = load_hparams("drnas", "nb201_table")
    if len(set(sections.values())) < len(sections):  # runs are named by section: two rows would share one folder
        raise ConfigError(f"drnas.toml [nb201_table]: each row needs its own section, got {sections}")
    seeds = [int(s) for s in load_hparams("drnas", f"scale_{scale}_nb201")["seeds"]]
    jobs = []
    for dataset, images in IMAGES[scale].items():
        for row, (_, method) in ROWS.items():
            for seed in seeds:
                section = sections[row]
                jobs.append({"kind": "nb201", "row": row, "method": method, "section": section,
                             "overrides": nb201_overrides(scale, section), "seed": seed, "dataset": dataset,
                             "images": images, "device": device,
                             "out": str(Path(out) / "runs" / f"{dataset}-{section}-seed{seed}")})
    scale_darts = load_hparams("drnas", f"scale_{scale}_darts")
    for seed in [int(s) for s in scale_darts.pop("seeds")]:
        jobs.append({"kind": "darts", "method": "drnas", "section": "drnas_darts", "overrides": scale_darts,
                     "seed": seed, "dataset": "cifar10", "images": IMAGES[scale]["cifar10"], "device": device,
                     "out": str(Path(out) / "runs" / f"cifar10-drnas_darts-seed{seed}")})
    return jobs


def _check_device(device: str, pending: list[dict]) -> None:
    """Searches bound for CUDA need a GPU; reporting searches that finished (on a GPU, elsewhere) needs none."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"drnas: {len(pending)} selected search(es) have not finished (e.g. "
                          f"{Path(pending[0]['out']).name}) and need a CUDA GPU; use --quick on CPU, "
                          f"--report-only to report what has finished and what is in progress, or --device cpu "
                          f"(a paper-scale search takes about a day on two cores)")


def _progress(job: dict, out: Path) -> dict | None:
    """An unfinished search's progress: the newer of its run folder's checkpoint and its hand-off
    (``out/handoff/<run>.pt``) of this job's configuration, with its per-epoch history; None if neither exists.
    A checkpoint that cannot be read or belongs to another configuration is named in ``skipped``, not used."""
    from algorithms.nn.search import fingerprint, load_search_checkpoint
    from nasrepro.errors import CheckpointError

    found, skipped, key = None, [], fingerprint(_identity(job))
    for path in (Path(job["out"]) / "checkpoint.pt", handoff_path(out, job)):
        if not path.is_file():
            continue
        try:
            state = load_search_checkpoint(path)
        except CheckpointError as exc:
            skipped.append(str(exc))
            continue
        epochs_done = int(state.get("next_epoch", 0))
        if state["fingerprint"] != key:
            skipped.append(f"{path}: a checkpoint of another configuration")
        elif found is None or epochs_done > found["epochs_done"]:
            found = {"epochs_done": epochs_done, "checkpoint": str(path), "history": state.get("history", [])}
    if found is None and not skipped:
        return None
    epochs = sum(load_hparams("drnas", job["section"], job["overrides"])["stage_epochs"])
    return {"job": job, "unfinished": True, "epochs_done": 0, "checkpoint": None, "history": [], **(found or {}),
            "epochs": epochs, "skipped": skipped}


def handoff_path(out: Path, job: dict) -> Path:
    """Where the checkpoint of ``job`` is committed between the GPU sessions its search spans
    (``reproduce/device/drnas_gpu_search_leg.sh`` writes and reads the same place)."""
    return Path(out) / HANDOFF_DIR / f"{Path(job['out']).name}.pt"


def _progress_note(unfinished: list[dict]) -> str:
    """``; in progress: ...`` for a row's unfinished searches (empty if there are none)."""
    parts = []
    for p in sorted(unfinished, key=lambda p: p["job"]["seed"]):
        if p["checkpoint"] is None:
            parts.append(f"seed {p['job']['seed']}: no usable checkpoint ({'; '.join(p['skipped'])})")
            continue
        last = p["history"][-1] if p["history"] else {}
        argmax = f", argmax cell after it {last['argmax_test']:.2f} % NB201 test" if "argmax_test" in last else ""
        parts.append(f"seed {p['job']['seed']} at {p['epochs_done']} of {p['epochs']} epochs{argmax} "
                     f"({p['checkpoint']})")
    return f"; in progress: {'; '.join(parts)}" if parts else ""


def _progress_info(progress: dict) -> dict:
    """run_info.json's record of an unfinished search."""
    last = progress["history"][-1] if progress["history"] else {}
    return {"epochs_done": progress["epochs_done"], "epochs": progress["epochs"], "checkpoint": progress["checkpoint"],
            **({"skipped": progress["skipped"]} if progress["skipped"] else {}),
            **({k: last[k] for k in ("arch", "train_acc", "argmax_test", "argmax_valid") if k in last}),
            **(_timing(progress) if progress["history"] else {})}


def _why_not_searched(dataset: str, scale: str) -> str:
    try:
        _check_images(IMAGES["full"][dataset])
    except DataError as exc:
        return str(exc)
    return f"the {scale} scale searches CIFAR-10 only"


def _timing(result: dict) -> dict:
    """Wall time of the search epochs, summed over sessions, and the devices they ran on (a recovered result
    carries the totals its earlier report recorded)."""
    if "recovered" in result:
        return {k: result["recovered"][k] for k in ("search_seconds", "devices")}
    return {"search_seconds": round(sum(h["seconds"] for h in result["history"]), 1),
            "devices": sorted({h.get("device", "not recorded") for h in result["history"]})}


def _trained_on(results: list[dict], images: str) -> str:
    """The image files the searches recorded, epoch by epoch; epochs run before the record existed count as
    what is here now, and say so."""
    sources = {h.get("images") for r in results for h in r["history"]}
    sources |= {r["recovered"]["images"] for r in results if "recovered" in r}
    named = sorted(s for s in sources if s is not None)
    if None in sources:
        named.append(f"{_image_source(images)} (as found here: some epochs did not record their images)")
    return "; ".join(named)


def evaluation_params_note(genotype: str) -> str:
    """The genotype's parameter count at the paper's evaluation size (36 channels, 20 cells, CIFAR-10)."""
    from algorithms.nn.train import evaluation_params_mb, load_train_config

    config = load_train_config("full")
    return (f"{evaluation_params_mb(genotype):.2f} M params at {config.init_channels} channels / "
            f"{config.layers} cells")


def standin_scores(genotypes: list[str]) -> dict:
    """The NB301 stand-in's predicted CIFAR-10 validation accuracy (%) of each genotype, with its yardsticks: the
    paper's published DrNAS cell, DARTS (second order), and :data:`STANDIN_RANDOM_CELLS` random cells (each
    genotype's percentile among them). A surrogate's guess, not a trained result: the paper's own DARTS-space
    number needs a 600-epoch evaluation. Without the stand-in's files: ``{"unavailable": reason}``."""
    from scipy.stats import percentileofscore

    from benchmarks.darts_space import PUBLISHED, DartsSpace
    from benchmarks.nb301_standin import LABEL, NB301StandIn

    rng = np.random.default_rng(STANDIN_RANDOM_SEED)
    random_cells = [DartsSpace().sample(rng) for _ in range(STANDIN_RANDOM_CELLS)]
    try:  # files missing, or a model onnxruntime cannot open: the report says so and goes on
        scores = NB301StandIn.load().query_many([*genotypes, *PUBLISHED.values(), *random_cells], "cifar10")
    except DataError as exc:
        return {"label": LABEL, "unavailable": str(exc)}
    ours, published, random_scores = np.split(scores, [len(genotypes), len(genotypes) + len(PUBLISHED)])

    def percentile(value: float) -> float:  # the share of random cells scored strictly below
        return round(float(percentileofscore(random_scores, value, kind="strict")), 1)

    return {"label": LABEL,
            "valid": [round(float(v), 3) for v in ours],
            "percentile": [percentile(v) for v in ours],
            "published": {name: round(float(v), 3) for name, v in zip(PUBLISHED, published)},
            "published_percentile": {name: percentile(v) for name, v in zip(PUBLISHED, published)},
            "random": {"cells": STANDIN_RANDOM_CELLS, "seed": STANDIN_RANDOM_SEED,
                       **{f"p{q}": round(float(v), 3) for q, v in zip((5, 50, 95),
                                                                     np.percentile(random_scores, (5, 50, 95)))}}}


def standin_note(scores: dict, index: int = 0) -> str:
    """One sentence on genotype ``index`` of :func:`standin_scores`."""
    if "unavailable" in scores:
        return f"{scores['label']}: not available here ({scores['unavailable']})"
    random = scores["random"]
    published, ranks = scores["published"], scores["published_percentile"]
    return (f"{scores['label']}: predicted CIFAR-10 validation accuracy {scores['valid'][index]:.2f} %, above "
            f"{scores['percentile'][index]:.0f} % of {random['cells']} random cells (median {random['p50']:.2f}, "
            f"95th percentile {random['p95']:.2f}); the paper's published DrNAS cell {published['drnas_cifar10']:.2f} "
            f"(above {ranks['drnas_cifar10']:.0f} %), DARTS V2 {published['darts_v2']:.2f} (above "
            f"{ranks['darts_v2']:.0f} %): a surrogate's guess, not a trained result")


def _check_images(name: str) -> None:
    from algorithms.nn.data import check_dataset_files

    check_dataset_files(name)


def _image_source(name: str) -> str:
    from algorithms.nn.data import image_source

    try:
        return image_source(name)
    except DataError:  # no data root here (reporting runs finished elsewhere)
        return f"{name} images, source not recorded"


def _load_images(name: str):
    from algorithms.nn.data import load_dataset

    return load_dataset(name)


def _run_jobs(jobs: list[dict], device: str, threads: int = 1) -> list[dict]:
    """Run the searches in parallel processes with ``threads`` CPU threads each on CPU, one per ``threads``
    cores (the quick scale is compute-bound; two single-threaded searches beat one two-threaded one on 2
    cores). On a GPU (results/drnas/GPU.md): fp32 searches one at a time (the fp32 NB201 step with CUDA
    graphs nearly fills an H100: three sharing it gained about 1.05x); bf16 searches one per two CPU cores
    (two bf16 NB201 searches sharing an H100 each kept nearly their solo speed)."""
    cores = os.cpu_count() or 1
    if device == "cpu":
        workers = max(1, cores // threads)
    else:
        fp32 = any(load_hparams("drnas", job["section"], job["overrides"])["precision"] != "bf16" for job in jobs)
        workers = 1 if fp32 else max(1, cores // 2)
    workers = min(len(jobs), workers)
    if workers <= 1:
        if device != "cpu":  # CPU threads do not touch a GPU search's numbers
            return [_search_job(job) for job in jobs]
        # as many threads as a pool worker: a CPU search computed with another thread count rounds differently
        # and can end on another cell, so `--only` on one job must give what the full run gave
        with cpu_threads(threads):
            return [_search_job(job) for job in jobs]
    # spawn, not fork: a forked child of a process that has used torch's thread pool can deadlock
    with ProcessPoolExecutor(max_workers=workers, initializer=set_cpu_threads, initargs=(threads,),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_search_job, jobs))


def _identity(job: dict) -> dict:
    hparams = load_hparams("drnas", job["section"], job["overrides"])
    return {"paper": "drnas", "method": job["method"], "section": job["section"], "hparams": hparams,
            "seed": job["seed"], "dataset": job["dataset"], "images": job["images"]}


def _finished_result(job: dict) -> dict | None:
    """The result of ``job`` if an earlier call finished it with the same identity, else None."""
    done = Path(job["out"]) / "result.json"
    if not done.is_file():
        return None
    previous = json.loads(done.read_text())
    if json.dumps(previous.get("identity"), sort_keys=True) != json.dumps(_identity(job), sort_keys=True):
        return None
    return {**previous, "job": job}


def _search_job(job: dict) -> dict:
    from algorithms.drnas import DrNAS
    from algorithms.nn.search import make_search, run_search, search_data
    from algorithms.oneshot_baselines import DARTS, GDAS

    classes = {"drnas": DrNAS, "darts": DARTS, "gdas": GDAS}
    out = Path(job["out"])
    identity = _identity(job)
    hparams = identity["hparams"]
    previous = _finished_result(job)
    if previous is not None:
        return previous
    arrays = _load_images(job["images"])
    search = make_search(classes[job["method"]], hparams, job["seed"])
    search.adapt_search_space(hparams["space"], job["dataset"], num_classes=arrays.num_classes, device=job["device"])
    train, valid = search_data(search, arrays, job["seed"])
    benchmark = None
    if job["kind"] == "nb201":
        from benchmarks.nb201 import NB201Benchmark
        benchmark = NB201Benchmark.load()
    progress = sys.stderr.isatty()
    result = run_search(search, train, valid, out, identity, benchmark=benchmark, progress=progress,
                        epoch_info={"images": _image_source(job["images"])},
                        on_epoch=None if progress else lambda history: _log_epoch(out.name, search.epochs, history[-1]))
    return {**result, "job": job}


def _log_epoch(name: str, epochs: int, record: dict) -> None:
    """One line per finished epoch where no progress bar shows (a log file of a search that runs for hours)."""
    argmax = f", argmax cell NB201 test {record['argmax_test']:.2f} %" if "argmax_test" in record else ""
    print(f"{name}: epoch {record['epoch'] + 1}/{epochs} done in {record['seconds']:.0f} s, train acc. "
          f"{record['train_acc']:.2f} %{argmax}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Table, figure, markdown
# --------------------------------------------------------------------------------------------------
def _nb201_row(claim: str, paper: str, paper_test: float, results: list[dict], scale: str) -> dict:
    valid = np.array([r["final_valid"] for r in results])
    test = np.array([r["final_test"] for r in results])
    if len(results) == 1:  # one seed: no spread to show
        ours = f"{valid[0]:.2f} / {test[0]:.2f} (1 seed)"
    else:
        ours = f"{valid.mean():.2f}±{valid.std():.2f} / {test.mean():.2f}±{test.std():.2f}"
    gap = test.mean() - paper_test
    archs = sorted({r["final_architecture"] for r in results})
    if scale == "full":
        verdict = "reproduced" if abs(gap) <= max(TOLERANCE_PP, 2 * test.std()) else "not reached"
        note = f"test gap {gap:+.2f} pp over {len(results)} seed(s); cells: {'; '.join(archs)}"
    else:
        verdict = "not reached" if abs(gap) > TOLERANCE_PP else "partial"
        epochs = results[0]["epochs_done"] if results else 0
        note = (f"quick CPU scale (tiny supernet, 16-px images, 5k-image subset, {epochs} epochs), not the "
                f"paper's setting; test gap {gap:+.2f} pp; cells: {'; '.join(archs)}")
    return {"claim": claim, "paper": paper, "ours": ours, "seeds": len(results),
            "verdict": verdict, "note": note}


def _trajectory_figure(results: list[dict], folder: Path) -> list[Path]:
    """Per table row (first seed): the range and mean of the sampled cells' NB201 test accuracy per epoch,
    and the accuracy of the argmax cell (DrNAS Figure: search trajectory). An unfinished search (from
    :func:`_progress`) says how far it got in its panel's title."""
    plt = figures.pyplot()

    rows = [row for row in ROWS if any(r["job"]["row"] == row for r in results)]
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.4), sharey=True, squeeze=False)
    for ax, row in zip(axes[0], rows):
        first = min((r for r in results if r["job"]["row"] == row), key=lambda r: r["job"]["seed"])
        hist = first["history"]
        epochs = [h["epoch"] + 1 for h in hist]
        ax.fill_between(epochs, [h["sampled_test_min"] for h in hist], [h["sampled_test_max"] for h in hist],
                        alpha=0.2, label=f"{len(hist[0]['sampled_test'])} sampled cells (range)")
        quartiles = np.array([np.percentile(h["sampled_test"], [25, 75]) for h in hist])
        ax.fill_between(epochs, quartiles[:, 0], quartiles[:, 1], alpha=0.35, label="sampled cells (25-75 %)")
        ax.plot(epochs, [h["sampled_test_mean"] for h in hist], "--", label="sampled cells (mean)")
        ax.plot(epochs, [h["argmax_test"] for h in hist], "-o", ms=3, label="argmax cell")
        title = f"{ROWS[row][0]} (seed {first['job']['seed']}, {first['job']['dataset']})"
        if first.get("unfinished"):  # the axis spans the whole schedule, so the gap shows
            title += f"\nunfinished: {first['epochs_done']} of {first['epochs']} epochs"
            ax.set_xlim(0, first["epochs"] + 1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("search epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("NB201 test accuracy (%)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return figures.save(fig, folder / "drnas_nb201_trajectory")


def _markdown(headline: dict, run_info: dict) -> str:
    threads = run_info.get("cpu_threads_per_search")
    if run_info.get("report_only"):
        where = "report only (no search ran)"
    else:
        where = f"on {run_info['device']}" + (f" ({threads} thread{'s' if threads > 1 else ''} per search)"
                                              if threads else "")
    lines = [f"# {headline['title']}", "",
             f"Scale: **{headline['scale']}**, {where} — `{headline['command']}` — {headline['date']} "
             f"({run_info['seconds']:.0f} s; seeds {', '.join(map(str, run_info['seeds']))})", "",
             *headline_table(headline["rows"])]
    lines.append("")
    for f in headline["figures"]:
        if f.endswith(".png"):
            lines.append(f"![search trajectory]({f})")
    if run_info.get("in_progress"):
        lines += ["", "Unfinished searches (no result in the table yet; from the newest checkpoint of each):", ""]
        for name, p in sorted(run_info["in_progress"].items()):
            if p["checkpoint"] is None:
                lines.append(f"- `{name}`: no usable checkpoint ({'; '.join(p['skipped'])})")
                continue
            minutes = f", {p['search_seconds'] / 60:.1f} min on {', '.join(p['devices'])}" if "devices" in p else ""
            last = (f"; after epoch {p['epochs_done']}: train acc. {p['train_acc']:.2f} %" if "train_acc" in p
                    else "") + (f", argmax cell {p['argmax_test']:.2f} % NB201 test" if "argmax_test" in p else "")
            lines.append(f"- `{name}`: {p['epochs_done']} of {p['epochs']} epochs{minutes} (`{p['checkpoint']}`){last}")
    if headline["scale"] == "quick":
        lines += ["", "The quick scale checks the pipeline on a CPU; its numbers are not the paper's setting and "
                      "cannot reproduce (or refute) the paper's table."]
    return "\n".join(lines) + "\n"

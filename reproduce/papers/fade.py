"""FaDE (Neumeyer, Stier, Granitzer, IDA 2024): ranks on finite regions and a pseudo-gradient evolution.

``run(scale, out)`` measures, with the settings of ``algorithms/configs/fade.toml`` (``scale_<scale>``
overriding the method sections):

1. **Ranks on finite regions** (claim 1): random regions around random NB201 centres (S = 1); each
   region's DARTS supernet is trained and its members scored; Spearman and Kendall (scipy) of the scores
   against the members' NB201 CIFAR-10 validation accuracy, per region. Paper (third-party summary): ~0.8.
   The same at S = ``multicell_stages`` against trained ground truth (every member trained briefly).
2. **Pseudo-gradient evolution** (claim 2) on S = 1 with the NB201 table as ground truth: the centre's
   test accuracy per generation over seeds, beside random search and GP-BO given the same number of
   trainings, judged by one-sided tests across seeds. The same at S = ``multicell_stages`` with trained
   ground truth (the centres and the baselines' proposals are trained).
3. **Cost vs depth**: seconds per search step of one region supernet for S = 1, 2, 3, ..., the same cell
   pattern repeated in every stage.

Raw outputs go to ``out/runs/`` (one folder per region supernet, with a checkpoint every epoch: a
finished region is skipped when its identity matches, an interrupted one resumes; the evolution's state
is saved after every generation; one file per trained architecture in ``runs/ground_truth/``, never
trained twice). The quick scale runs on a CPU in minutes and is *not* the paper's setting.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.stats import kendalltau, spearmanr, ttest_1samp
from sklearn.exceptions import ConvergenceWarning

from algorithms import constructor_keys, read_config_file
from algorithms.fade import (SCORING_RULES, GroundTruthSettings, MultiCellSupernet, PseudoGradientEvolution, Region,
                             RegionDARTS, TrainedGroundTruth, bayesian_optimisation, random_search, region_around,
                             train_region)
from benchmarks.multicell import MultiCellArch, MultiCellSpace, resolution_stages
from nasrepro.errors import ConfigError, DataError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce import figures
from reproduce.executors import LocalExecutor, map_with_progress, set_cpu_threads
from reproduce.report import Headline, HeadlineRow, headline_table

TITLE = "FaDE: DARTS ranks on finite regions of hierarchical spaces + pseudo-gradient evolution (IDA 2024)"
PAPER_RANK_CORRELATION = 0.8  # third-party summary of the paper, CIFAR-10
IMAGES = {"quick": "cifar10-subset", "full": "cifar10"}


def run(scale: str, out: Path) -> Path:
    if scale not in ("quick", "full"):
        raise ConfigError(f"fade: scale must be 'quick' or 'full', got {scale!r}")
    out = Path(out)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    settings = Settings.load(scale)
    device = _device(scale)
    rows: list[dict] = []
    figures: list[Path] = []
    info: dict = {"device": device, "scale": scale}
    try:
        from benchmarks.nb201 import NB201Benchmark

        benchmark = NB201Benchmark.load()
        _load_images(IMAGES[scale])
    except DataError as exc:
        reason = str(exc)
        for claim, paper in _CLAIMS:
            rows.append({"claim": claim, "paper": paper, "ours": "—", "seeds": 0,
                         "verdict": "not measurable here", "note": f"needs NB201 and CIFAR-10 images: {reason}"})
        benchmark = None
    if benchmark is not None:
        with _pool(device) as pool:
            correlation = _correlation_experiment(settings, benchmark, out, pool, device)
            evolution = _evolution_experiment(settings, benchmark, out, pool, device)
            multi_correlation = _multicell_correlation_experiment(settings, out, pool, device)
            multi_evolution = _multicell_evolution_experiment(settings, out, pool, device)
        cost = _cost_experiment(settings, device)
        info.update({"correlation": correlation, "evolution": evolution, "multicell_correlation": multi_correlation,
                     "multicell_evolution": multi_evolution, "cost": cost})
        rows += [_correlation_row(correlation, settings, _CLAIMS[0]),
                 _correlation_row(multi_correlation, settings, _CLAIMS[1]),
                 _evolution_row(evolution, settings, _CLAIMS[2]),
                 _evolution_row(multi_evolution, settings, _CLAIMS[3]), _cost_row(cost)]
        figures += _correlation_figure(correlation, out / "figures" / "fade_region_correlation",
                                       "NB201 CIFAR-10 valid accuracy (%)")
        figures += _correlation_figure(multi_correlation, out / "figures" / "fade_region_correlation_multicell",
                                       f"trained valid accuracy, S = {settings.multicell_stages} (%)")
        figures += _evolution_figure(evolution, out / "figures" / "fade_search_curves",
                                     "NB201 CIFAR-10 test accuracy (%)")
        figures += _evolution_figure(multi_evolution, out / "figures" / "fade_search_curves_multicell",
                                     f"trained test accuracy, S = {settings.multicell_stages} (%)")
        figures += _cost_figure(cost, out / "figures")
    info["seconds"] = round(time.perf_counter() - t0, 1)
    if benchmark is not None:
        correlations, evolutions = (correlation, multi_correlation), (evolution, multi_evolution)
        info["regions_reused"] = sum(c["reused"] for c in correlations)
        info["regions_trained"] = (sum(c["n_regions"] - c["reused"] for c in correlations)
                                   + sum(r["regions_trained_now"] for e in evolutions for r in e["runs"]))
        info["generations_restored"] = sum(r["generations_restored"] for e in evolutions for r in e["runs"])
        info["architectures_trained"] = multi_correlation["trained_now"] + multi_evolution["trained_now"]
    info["cpu_count"] = os.cpu_count()
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    headline = Headline("fade", TITLE, scale, f"python -m reproduce fade --{scale}",
                        started.strftime("%Y-%m-%dT%H:%M:%SZ"), tuple(HeadlineRow(**r) for r in rows),
                        tuple(str(Path(f).relative_to(out)) for f in figures))
    atomic_write_json(out / "run_info.json", info)  # beside the headline: committed, unlike runs/
    atomic_write_text(out / "results.md", _markdown(headline.to_dict(), info))
    return headline.write(out / "headline.json")


_CLAIMS = [
    ("Claim 1: FaDE ranks on finite regions correlate with true performance (CIFAR-10, NB201 regions)",
     f"rank correlation ≈{PAPER_RANK_CORRELATION} (third-party summary)"),
    ("Claim 1 on multi-cell regions (S > 1, trained ground truth)",
     f"rank correlation ≈{PAPER_RANK_CORRELATION} (third-party summary)"),
    ("Claim 2: pseudo-gradient evolution improves over generations, ahead of random search and BO (S = 1, NB201)",
     "improves; ahead of RS and BO (abstract)"),
    ("Claim 2 on the multi-cell space (S > 1, trained ground truth)", "improves; ahead of RS and BO (abstract)"),
    ("Region supernet cost vs depth S (ms per search step)", "— (no number in the abstract)"),
]


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------
class Settings:
    """The resolved settings of one scale (every key of the scale section is used or rejected)."""

    SCALE_KEYS = {"supernet", "correlation_regions", "correlation_seed", "generations", "regions_per_generation",
                  "evolution_seeds", "baseline_seeds", "ground_truth", "multicell_stages",
                  "multicell_correlation_regions", "multicell_region", "multicell_generations",
                  "multicell_evolution_seeds", "multicell_baseline_seeds", "cost_stages", "cost_seed", "cost_repeats",
                  "cost_steps"}

    def __init__(self, config: dict, scale: str):
        try:
            self._parse(config, scale)
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"fade.toml: malformed settings for scale {scale!r} "
                              f"({type(exc).__name__}: {exc})") from None

    def _parse(self, config: dict, scale: str) -> None:
        section = f"scale_{scale}"
        for name in ("region_supernet", "regions", "evolution", "bayesian_optimisation", "ground_truth", "verdicts",
                     section):
            if name not in config:
                raise ConfigError(f"fade.toml has no [{name}] section")
        scale_cfg = dict(config[section])
        unknown = sorted(set(scale_cfg) - self.SCALE_KEYS)
        missing = sorted(self.SCALE_KEYS - set(scale_cfg))
        if unknown or missing:
            raise ConfigError(f"fade.toml [{section}]: unknown keys {unknown}, missing keys {missing}")
        self.scale = scale
        self.supernet = {**config["region_supernet"], **scale_cfg["supernet"]}
        accepted = constructor_keys(RegionDARTS) - {"self", "rng"}
        if set(self.supernet) - accepted:
            raise ConfigError(f"fade.toml: unknown region supernet setting(s) {sorted(set(self.supernet) - accepted)}")
        regions = dict(config["regions"])
        self.open_slots, self.ops_per_slot = regions.pop("open_slots"), regions.pop("ops_per_slot")
        self.scoring = regions.pop("scoring")
        if regions:
            raise ConfigError(f"fade.toml [regions]: unknown keys {sorted(regions)}")
        evolution = dict(config["evolution"])
        self.n_stages = evolution.pop("n_stages")
        self.dataset = evolution.pop("dataset")
        if set(evolution) != {"step_rule", "utility", "learning_rate"}:
            raise ConfigError(f"fade.toml [evolution]: expected n_stages, dataset, step_rule, utility, learning_rate; "
                              f"got {sorted(config['evolution'])}")
        if self.n_stages != 1:
            raise ConfigError("fade: the evolution's ground truth is the NB201 table, so n_stages must be 1 here")
        if self.dataset != "cifar10":  # the region supernets train on CIFAR-10 images and are ranked against it
            raise ConfigError(f"fade: [evolution] dataset must be 'cifar10' (the images the region supernets train "
                              f"on), got {self.dataset!r}")
        if self.scoring not in SCORING_RULES:
            raise ConfigError(f"fade: unknown scoring {self.scoring!r}; choose from {', '.join(SCORING_RULES)}")
        for key in ("channels_last", "compile"):
            if self.supernet.get(key):
                raise ConfigError(f"fade: region supernets do not support {key} = true (it would be ignored)")
        self.evolution = {**evolution, "regions_per_generation": int(scale_cfg["regions_per_generation"]),
                          "open_slots": self.open_slots, "ops_per_slot": self.ops_per_slot}
        self.generations = int(scale_cfg["generations"])
        self.bo = dict(config["bayesian_optimisation"])
        if set(self.bo) != {"n_init", "n_candidates", "xi"}:
            raise ConfigError(f"fade.toml [bayesian_optimisation]: expected n_init, n_candidates, xi; "
                              f"got {sorted(self.bo)}")
        verdicts = dict(config["verdicts"])
        if set(verdicts) != {"reproduced_rho", "significance", "search_significance"}:
            raise ConfigError(f"fade.toml [verdicts]: expected reproduced_rho, significance, search_significance; "
                              f"got {sorted(verdicts)}")
        self.reproduced_rho, self.significance = float(verdicts["reproduced_rho"]), float(verdicts["significance"])
        self.search_significance = float(verdicts["search_significance"])
        for name in ("significance", "search_significance"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"fade.toml [verdicts]: {name} must lie in (0, 1), got {getattr(self, name)}")
        self.ground_truth = GroundTruthSettings.from_config({**config["ground_truth"], **scale_cfg["ground_truth"]})
        self.multicell_stages = int(scale_cfg["multicell_stages"])
        if self.multicell_stages < 2:
            raise ConfigError(f"fade.toml [{section}]: multicell_stages must be >= 2 (S = 1 is the NB201 experiment), "
                              f"got {self.multicell_stages}")
        region = dict(scale_cfg["multicell_region"])
        if set(region) != {"open_slots", "ops_per_slot"}:
            raise ConfigError(f"fade.toml [{section}] multicell_region: expected open_slots, ops_per_slot; "
                              f"got {sorted(region)}")
        self.multicell_region = {k: int(v) for k, v in region.items()}
        self.multicell_correlation_regions = int(scale_cfg["multicell_correlation_regions"])
        self.multicell_generations = int(scale_cfg["multicell_generations"])
        self.multicell_evolution_seeds = [int(s) for s in scale_cfg["multicell_evolution_seeds"]]
        self.multicell_baseline_seeds = [int(s) for s in scale_cfg["multicell_baseline_seeds"]]
        self.cost_seed = int(scale_cfg["cost_seed"])
        if self.multicell_generations < 1 or self.multicell_correlation_regions < 2:
            raise ConfigError("fade: multicell_generations must be >= 1, multicell_correlation_regions >= 2")
        self.correlation_regions = int(scale_cfg["correlation_regions"])
        self.correlation_seed = int(scale_cfg["correlation_seed"])
        self.evolution_seeds = [int(s) for s in scale_cfg["evolution_seeds"]]
        self.baseline_seeds = [int(s) for s in scale_cfg["baseline_seeds"]]
        self.cost_stages = [int(s) for s in scale_cfg["cost_stages"]]
        self.cost_repeats, self.cost_steps = int(scale_cfg["cost_repeats"]), int(scale_cfg["cost_steps"])
        if min(self.generations, self.cost_repeats, self.cost_steps) < 1 or self.correlation_regions < 2:
            raise ConfigError("fade: generations, cost_repeats and cost_steps must be >= 1, correlation_regions >= 2")

    @classmethod
    def load(cls, scale: str) -> "Settings":
        return cls(read_config_file("fade"), scale)


# --------------------------------------------------------------------------------------------------
# Region jobs (run in worker processes, one CPU thread each)
# --------------------------------------------------------------------------------------------------
def _device(scale: str) -> str:
    import torch

    if scale == "quick":
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError("fade --full trains many region supernets at the NB201 setting and needs a CUDA GPU; "
                          "use --quick on CPU")
    return "cuda"


@lru_cache(maxsize=2)
def _load_images(name: str):
    from algorithms.nn.data import load_dataset

    return load_dataset(name)


def _pool(device: str) -> Executor | LocalExecutor:
    """One worker per core on CPU (two single-threaded supernets beat one two-threaded one on 2 cores);
    spawn, not fork (a forked child of a process that used torch's thread pool can deadlock). One worker runs
    the jobs in this process, in order, each on one thread as a pool worker would."""
    cores = os.cpu_count() or 1
    workers = cores if device == "cpu" else max(1, cores // 2)
    if workers <= 1:
        return LocalExecutor(workers=1)
    return ProcessPoolExecutor(max_workers=workers, initializer=set_cpu_threads,
                               mp_context=multiprocessing.get_context("spawn"))


def _region_job(job: dict) -> dict:
    region = Region(job["n_stages"], tuple(tuple(c) for c in job["candidates"]))
    arrays = _load_images(job["images"])
    result = train_region(region, job["hparams"], job["seed"], arrays, Path(job["out"]), job["scoring"],
                          device=job["device"], progress=False)
    return {"region": region.id, "scores": result.scores.tolist(), "seconds": result.seconds,
            "epochs": result.epochs, "epoch_seconds": list(result.epoch_seconds), "reused": result.reused,
            "alphas": {k: v.tolist() for k, v in result.alphas.items()}}


def _jobs(regions: list[Region], seeds: list[int], settings: Settings, out: Path, device: str,
          hparams: dict | None = None) -> list[dict]:
    return [{"n_stages": r.n_stages, "candidates": [list(c) for c in r.candidates], "seed": s,
             "hparams": hparams or settings.supernet, "images": IMAGES[settings.scale], "scoring": settings.scoring,
             "device": device, "out": str(out / "runs" / "regions" / f"{r.id.replace('/', '_')}-seed{s}")}
            for r, s in zip(regions, seeds)]


def _train_regions(regions: list[Region], seeds: list[int], settings: Settings, out: Path, pool: Executor,
                   device: str) -> list[dict]:
    """Each region's supernet search (one worker each), in the order of ``regions``."""
    return list(map_with_progress(pool, _region_job, _jobs(regions, seeds, settings, out, device), "regions",
                                  unit="region"))


def _nb201_accuracy(benchmark, archs: list[MultiCellArch], split: str, dataset: str = "cifar10") -> np.ndarray:
    return benchmark.query_many([a.to_nb201() for a in archs], dataset, split=split)


# --------------------------------------------------------------------------------------------------
# Trained ground truth (multi-cell architectures), in worker processes, cached under runs/ground_truth/
# --------------------------------------------------------------------------------------------------
def _truth_context(settings: Settings, out: Path, device: str) -> dict:
    """What a worker needs to build the same :class:`TrainedGroundTruth` as every other worker."""
    return {"settings": json.dumps(asdict(settings.ground_truth), sort_keys=True), "images": IMAGES[settings.scale],
            "folder": str(out / "runs" / "ground_truth"), "device": device}


@lru_cache(maxsize=2)
def _ground_truth(settings_json: str, images: str, folder: str, device: str) -> TrainedGroundTruth:
    return TrainedGroundTruth(GroundTruthSettings(**json.loads(settings_json)), _load_images(images), folder, device)


def _truth_of(context: dict) -> TrainedGroundTruth:
    return _ground_truth(context["settings"], context["images"], context["folder"], context["device"])


def _ground_truth_job(job: dict) -> dict:
    truth = _truth_of(job["context"])
    before = truth.trainings
    result = truth.query(MultiCellSpace(job["n_stages"]).parse(job["arch"]))
    return {**result, "trained_now": truth.trainings > before}


def _train_all(archs: list[MultiCellArch], context: dict, pool: Executor) -> tuple[dict[str, dict], int]:
    """Ground truth of every architecture (each trained at most once: duplicates are dropped and the cache
    is consulted first); returns ({arch id: result}, how many were trained now)."""
    unique = list({a.id: a for a in archs}.values())
    jobs = [{"context": context, "n_stages": a.n_stages, "arch": a.id} for a in unique]
    results = list(map_with_progress(pool, _ground_truth_job, jobs, "ground truth", unit="arch"))
    return {a.id: r for a, r in zip(unique, results)}, sum(r["trained_now"] for r in results)


# --------------------------------------------------------------------------------------------------
# Claim 1: correlation of region ranks with the ground truth
# --------------------------------------------------------------------------------------------------
def _correlation_experiment(settings: Settings, benchmark, out: Path, pool: Executor, device: str) -> dict:
    """S = 1: regions of NB201 cells, ground truth from the table."""
    space = MultiCellSpace(1)
    rng = np.random.default_rng(settings.correlation_seed)
    regions = [region_around(space.sample(rng), settings.open_slots, settings.ops_per_slot, rng)
               for _ in range(settings.correlation_regions)]
    seeds = [settings.correlation_seed] * len(regions)
    results = _train_regions(regions, seeds, settings, out, pool, device)
    per_region = []
    for region, res in zip(regions, results):
        members = region.members()
        valid = _nb201_accuracy(benchmark, members, "valid")
        params = benchmark.query_many([m.to_nb201() for m in members], "cifar10", metric="params", split=None)
        per_region.append(_region_correlation(region, res, valid, params))
    summary = _summarise_correlation(per_region, results, regions)
    summary.update({"n_stages": 1, "ground_truth": "NB201 CIFAR-10 valid (table)", "trained_now": 0})
    return summary


def _multicell_correlation_experiment(settings: Settings, out: Path, pool: Executor, device: str) -> dict:
    """S = multicell_stages: every member of every region is trained (cached) for its ground truth."""
    space = MultiCellSpace(settings.multicell_stages)
    rng = np.random.default_rng(settings.correlation_seed)
    regions = [region_around(space.sample(rng), rng=rng, **settings.multicell_region)
               for _ in range(settings.multicell_correlation_regions)]
    seeds = [settings.correlation_seed] * len(regions)
    results = _train_regions(regions, seeds, settings, out, pool, device)
    truth, trained_now = _train_all([m for r in regions for m in r.members()], _truth_context(settings, out, device),
                                    pool)
    per_region = []
    for region, res in zip(regions, results):
        members = region.members()
        valid = np.array([truth[m.id]["valid_acc"] for m in members])
        params = np.array([truth[m.id]["parameters"] for m in members], dtype=np.float64)
        per_region.append({**_region_correlation(region, res, valid, params),
                           "test": [truth[m.id]["test_acc"] for m in members]})
    summary = _summarise_correlation(per_region, results, regions)
    # the same trained networks measured on two disjoint image sets: how far noise alone limits any ranking
    valid_all = np.array([r["valid_acc"] for r in truth.values()])
    test_all = np.array([r["test_acc"] for r in truth.values()])
    summary.update({"n_stages": settings.multicell_stages, "trained_now": trained_now,
                    "ground_truth": f"trained valid accuracy ({settings.scale} [ground_truth] settings)",
                    "truth_valid_test_spearman": _finite(spearmanr(valid_all, test_all)[0]),
                    "truth_valid_spread": float(valid_all.max() - valid_all.min()),
                    "architectures": len(truth),
                    "seconds_per_architecture": float(np.mean([r["seconds"] for r in truth.values()]))})
    return summary


def _region_correlation(region: Region, res: dict, valid: np.ndarray, params: np.ndarray) -> dict:
    members = region.members()
    scores = np.asarray(res["scores"])
    with warnings.catch_warnings():
        # members of equal parameter count (or equal scores) give an undefined correlation: recorded as None
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho, tau = spearmanr(scores, valid)[0], kendalltau(scores, valid)[0]
        # context for rho: how well a free proxy (parameter count) ranks the same members
        params_rho = spearmanr(params, valid)[0]
    return {"region": region.id, "seconds": res["seconds"], "scores": scores.tolist(), "valid": valid.tolist(),
            "spearman": _finite(rho), "kendall": _finite(tau), "params_spearman": _finite(params_rho),
            "top_member_valid_percentile": float((valid < valid[int(np.argmax(scores))]).mean()),
            "argmax_member": members[int(np.argmax(scores))].id}


def _summarise_correlation(per_region: list[dict], results: list[dict], regions: list[Region]) -> dict:
    rhos = np.array([r["spearman"] for r in per_region if r["spearman"] is not None])
    params_rhos = np.array([r["params_spearman"] for r in per_region if r["params_spearman"] is not None])
    taus = np.array([r["kendall"] for r in per_region if r["kendall"] is not None])
    p_value = float(ttest_1samp(rhos, 0.0, alternative="greater").pvalue) if len(rhos) > 1 else float("nan")
    return {"regions": per_region, "reused": sum(r["reused"] for r in results),
            "spearman_mean": _mean(rhos), "spearman_std": float(rhos.std()) if len(rhos) else float("nan"),
            "params_spearman_mean": _mean(params_rhos),
            "top_member_valid_percentile_mean": float(np.mean([r["top_member_valid_percentile"] for r in per_region])),
            "kendall_mean": _mean(taus), "kendall_std": float(taus.std()) if len(taus) else float("nan"),
            "p_value_rho_gt_0": p_value, "n_regions": len(per_region), "region_size": regions[0].size,
            "seconds_per_region": float(np.mean([r["seconds"] for r in per_region]))}


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def _finite(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _correlation_row(c: dict, settings: "Settings", claim: tuple[str, str]) -> dict:
    rho, p = c["spearman_mean"], c["p_value_rho_gt_0"]
    significance, reproduced_rho, scale = settings.significance, settings.reproduced_rho, settings.scale
    significant = bool(p < significance)  # False for nan (fewer than 2 finite correlations)
    verdict = "reproduced" if rho >= reproduced_rho and significant else "partial" if significant and rho > 0 \
        else "not reached"
    note = (f"mean±std over {c['n_regions']} regions of {c['region_size']} S = {c['n_stages']} architectures each, "
            f"scores vs {c['ground_truth']}; one-sided t-test of rho > 0: p = {p:.3g}; for context, parameter count "
            f"ranks the same members at Spearman {c['params_spearman_mean']:.2f}; the top-scored member beats "
            f"{100 * c['top_member_valid_percentile_mean']:.0f} % of its region on average; {scale} scale "
            f"({c['seconds_per_region']:.0f} s per region supernet")
    if "truth_valid_test_spearman" in c:
        note += (f", {c['seconds_per_architecture']:.0f} s per trained architecture, {c['architectures']} trained; "
                 f"ground-truth reliability: valid-vs-test Spearman of the same trained networks "
                 f"{_fmt(c['truth_valid_test_spearman'])}, valid spread {c['truth_valid_spread']:.1f} points")
    note += (f"); verdict rule: reproduced = mean rho >= {reproduced_rho} and p < {significance}, partial = "
             f"p < {significance} only")
    return {"claim": claim[0], "paper": claim[1],
            "ours": f"Spearman {rho:.2f}±{c['spearman_std']:.2f}, Kendall {c['kendall_mean']:.2f}±{c['kendall_std']:.2f}",
            "seeds": 1, "verdict": verdict, "note": note}


def _fmt(x: float | None) -> str:
    return "nan" if x is None else f"{x:.2f}"


def _correlation_figure(c: dict, stem: Path, ylabel: str) -> list[Path]:
    plt = figures.pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
    cmap = plt.get_cmap("tab20")
    for i, r in enumerate(c["regions"]):
        s = np.asarray(r["scores"])
        z = (s - s.mean()) / (s.std() if s.std() > 0 else 1.0)  # scores only compare within a region
        ax1.scatter(z, r["valid"], s=8, color=cmap(i % 20), alpha=0.7)
    ax1.set_xlabel("FaDE score (standardised within region)")
    ax1.set_ylabel(ylabel)
    ax1.set_title("members of each region (one colour per region)")
    ax1.grid(alpha=0.3)
    columns = {"FaDE\nSpearman": [r["spearman"] for r in c["regions"]],
               "FaDE\nKendall": [r["kendall"] for r in c["regions"]],
               "params proxy\nSpearman": [r.get("params_spearman") for r in c["regions"]]}
    columns = {k: [x for x in v if x is not None] for k, v in columns.items()}
    columns = {k: v for k, v in columns.items() if v}
    ax2.boxplot(list(columns.values()))
    ax2.set_xticks(range(1, len(columns) + 1), list(columns))
    for k, values in enumerate(columns.values(), start=1):
        ax2.scatter(np.full(len(values), k) + np.linspace(-0.1, 0.1, len(values)), values, s=10, alpha=0.6)
    ax2.axhline(PAPER_RANK_CORRELATION, ls="--", color="grey", label="paper ≈0.8")
    ax2.axhline(0.0, color="black", lw=0.8)
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_title(f"per-region rank correlation ({len(c['regions'])} regions)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return figures.save(fig, stem)


# --------------------------------------------------------------------------------------------------
# Claim 2: pseudo-gradient evolution vs random search and BO
# --------------------------------------------------------------------------------------------------
def _evolve(space: MultiCellSpace, settings: Settings, generations: int, seed: int, out: Path, pool: Executor,
            device: str) -> dict:
    """One FaDE search (resumed from its state file when the identity matches). The record keeps, per
    generation, the centre, theta and the regions' scores: the ground truth is looked up afterwards."""
    state_file = out / "runs" / f"evolution-S{space.n_stages}-seed{seed}.json"
    search = PseudoGradientEvolution(space, np.random.default_rng(seed), **settings.evolution)
    identity = {"evolution": settings.evolution, "supernet": settings.supernet, "scoring": settings.scoring,
                "seed": seed, "n_stages": space.n_stages}
    record: dict = {"seed": seed, "generations": []}
    if state_file.is_file():
        saved = json.loads(state_file.read_text())
        if json.dumps(saved.get("identity"), sort_keys=True) == json.dumps(identity, sort_keys=True):
            search.load_state_dict(saved["state"])
            record = saved["record"]
            if search.generation > generations:  # the baselines' budget would not match
                raise ConfigError(f"{state_file}: holds {search.generation} generations, the config asks for "
                                  f"{generations}; use a fresh --out")
    if not record["generations"]:
        record["generations"].append(_generation_entry(search, [], [], 0.0))
    trained_now, restored = 0, search.generation
    while search.generation < generations:
        regions = search.ask()
        g = search.generation
        seeds = [seed * 100_000 + g * 100 + i for i in range(len(regions))]
        results = _train_regions(regions, seeds, settings, out, pool, device)
        search.tell(regions, [np.asarray(r["scores"]) for r in results])
        trained_now += sum(not r["reused"] for r in results)
        record["generations"].append(_generation_entry(search, regions, [r["scores"] for r in results],
                                                       sum(r["seconds"] for r in results)))
        atomic_write_json(state_file, {"identity": identity, "state": search.state_dict(), "record": record})
    record["regions_trained_now"], record["generations_restored"] = trained_now, restored
    return record


def _generation_entry(search: PseudoGradientEvolution, regions: list[Region], scores: list, seconds: float) -> dict:
    per_generation = search.regions_per_generation
    return {"generation": search.generation, "trainings": search.generation * per_generation,
            "centre": search.mode().id, "theta": search.theta.tolist(), "regions": [r.id for r in regions],
            "region_candidates": [[list(c) for c in r.candidates] for r in regions], "scores": scores,
            "seconds": seconds}


def _evolution_experiment(settings: Settings, benchmark, out: Path, pool: Executor, device: str) -> dict:
    """S = 1 with the NB201 table: centre accuracy, expected accuracy under the search distribution and the
    regions' rank correlations per generation."""
    space = MultiCellSpace(1)
    all_archs = np.array([a.ops for a in benchmark.space.all_archs()], dtype=np.int64)
    all_test = benchmark.query_many([a for a in benchmark.space.all_archs()], settings.dataset, split="test")
    runs = []
    for seed in settings.evolution_seeds:
        record = _evolve(space, settings, settings.generations, seed, out, pool, device)
        for g in record["generations"]:
            centre = space.parse(g["centre"])
            theta = np.asarray(g["theta"])
            p = np.exp(theta - theta.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            # exact expectation over all 15,625 cells: P(cell) = prod over slots of p[slot, op]
            prob = np.prod(p[np.arange(all_archs.shape[1]), all_archs], axis=1)
            regions = [Region(1, tuple(tuple(c) for c in cands)) for cands in g["region_candidates"]]
            g.update({"centre_valid": float(_nb201_accuracy(benchmark, [centre], "valid", settings.dataset)[0]),
                      "centre_test": float(_nb201_accuracy(benchmark, [centre], "test", settings.dataset)[0]),
                      "expected_test": float(prob @ all_test),
                      "region_spearman": [_finite(spearmanr(s, _nb201_accuracy(benchmark, r.members(), "valid"))[0])
                                          for r, s in zip(regions, g["scores"])]})
        runs.append(_compact(record))
    budget = settings.generations * settings.evolution["regions_per_generation"]
    baselines = _baselines(settings, benchmark, space, budget)
    return {"runs": runs, "baselines": baselines, "trainings": budget, "n_stages": 1,
            "ground_truth": "NB201 CIFAR-10 (table)", "best_possible_test": float(all_test.max()), "trained_now": 0,
            "seconds_per_region": _seconds_per_region(runs)}


def _multicell_evolution_experiment(settings: Settings, out: Path, pool: Executor, device: str) -> dict:
    """S = multicell_stages: the search needs no ground truth (ranks only); the centres of every generation
    and the baselines' proposals are trained afterwards (cached, so shared architectures train once)."""
    space = MultiCellSpace(settings.multicell_stages)
    context = _truth_context(settings, out, device)
    runs = [_evolve(space, settings, settings.multicell_generations, seed, out, pool, device)
            for seed in settings.multicell_evolution_seeds]
    truth, trained_now = _train_all([space.parse(g["centre"]) for r in runs for g in r["generations"]], context, pool)
    for record in runs:
        for g in record["generations"]:
            g.update({"centre_valid": truth[g["centre"]]["valid_acc"], "centre_test": truth[g["centre"]]["test_acc"]})
        _compact(record)
    budget = settings.multicell_generations * settings.evolution["regions_per_generation"]
    jobs = [{"context": context, "n_stages": space.n_stages, "budget": budget, "seed": seed,
             "bo": settings.bo, "gp": dict(read_config_file("predictors")["gp"])}
            for seed in settings.multicell_baseline_seeds]
    baselines = {"random": [], "bo": []}
    for result in map_with_progress(pool, _multicell_baseline_job, jobs, "baselines", unit="run"):
        trained_now += result.pop("trained_now")
        for name, curve in result.items():
            baselines[name].append(curve)
    return {"runs": runs, "baselines": baselines, "trainings": budget, "n_stages": space.n_stages,
            "ground_truth": f"trained ({settings.scale} [ground_truth] settings)", "best_possible_test": None,
            "trained_now": trained_now, "seconds_per_region": _seconds_per_region(runs)}


def _compact(record: dict) -> dict:
    """Drop the search state from a record bound for run_info.json (it stays in runs/evolution-*.json)."""
    for g in record["generations"]:
        for key in ("theta", "region_candidates", "scores"):
            g.pop(key, None)
    return record


def _seconds_per_region(runs: list[dict]) -> float:
    return _mean(np.array([g["seconds"] / len(g["regions"]) for r in runs for g in r["generations"] if g["regions"]]))


def _multicell_baseline_job(job: dict) -> dict:
    """Random search then BO of one seed, in one worker: BO's first uniform draws are random search's, so
    they come from the cache instead of being trained twice."""
    truth = _truth_of(job["context"])
    before = truth.trainings
    space = MultiCellSpace(job["n_stages"])
    curves = _baseline_curves_with(space, job["budget"], job["seed"], lambda a: truth.query(a)["valid_acc"],
                                   lambda a: truth.query(a)["test_acc"], job["bo"], job["gp"])
    return {**curves, "trained_now": truth.trainings - before}


def _baseline_curves(settings: Settings, space: MultiCellSpace, budget: int, seed: int, evaluate, test_of) -> dict:
    return _baseline_curves_with(space, budget, seed, evaluate, test_of, settings.bo,
                                 dict(read_config_file("predictors")["gp"]))


def _baseline_curves_with(space: MultiCellSpace, budget: int, seed: int, evaluate, test_of, bo: dict,
                          gp_hparams: dict) -> dict[str, list[float]]:
    """Incumbent (best validation so far) test accuracy after each of ``budget`` evaluations, per baseline."""
    curves = {}
    for name in ("random", "bo"):
        rng = np.random.default_rng(seed)
        if name == "random":
            history = random_search(space, evaluate, budget, rng)
        else:
            with warnings.catch_warnings():
                # a handful of points often puts the fitted noise at its bound: expected, not a fault
                warnings.simplefilter("ignore", ConvergenceWarning)
                history = bayesian_optimisation(space, evaluate, budget, rng, gp_hparams=gp_hparams, **bo)
        curve, best = [], (-np.inf, None)
        for arch, valid in history:
            if valid > best[0]:
                best = (valid, arch)
            curve.append(float(test_of(best[1])))
        curves[name] = curve
    return curves


def _baselines(settings: Settings, benchmark, space: MultiCellSpace, budget: int) -> dict:
    """NB201 (S = 1) baselines over ``settings.baseline_seeds``: {"random": [curve per seed], "bo": [...]}."""
    def evaluate(arch: MultiCellArch) -> float:
        return float(_nb201_accuracy(benchmark, [arch], "valid", settings.dataset)[0])

    def test_of(arch: MultiCellArch) -> float:
        return float(_nb201_accuracy(benchmark, [arch], "test", settings.dataset)[0])

    out: dict[str, list[list[float]]] = {"random": [], "bo": []}
    for seed in settings.baseline_seeds:
        for name, curve in _baseline_curves(settings, space, budget, seed, evaluate, test_of).items():
            out[name].append(curve)
    return out


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (nan with fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return (float(x.mean()) if len(x) else float("nan")), float("nan")
    return float(x.mean()), float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * stats.sem(x))


def search_verdict(first, last, random_final, bo_final, alpha: float) -> dict:
    """Claim 2's verdict from one-sided tests across seeds (``alpha``: fade.toml [verdicts] search_significance).

    * improves: paired t-test, final centre > first centre (FaDE seeds);
    * ahead of RS / BO: Mann-Whitney U, FaDE final centres > the baseline's final incumbents.

    reproduced = all three significant; partial = at least one; not reached = none. A test that cannot be
    run (too few seeds, or no variation at all) counts as not significant, and its p-value is nan."""
    first, last = np.asarray(first, dtype=np.float64), np.asarray(last, dtype=np.float64)
    p_improves = float("nan")
    if len(last) >= 2 and np.ptp(last - first) > 0:
        p_improves = float(stats.ttest_rel(last, first, alternative="greater").pvalue)
    elif len(last) >= 2 and np.all(last - first > 0):  # identical gains: no spread, yet every seed improves
        p_improves = 0.0
    p_ahead = {}
    for name, baseline in (("random", random_final), ("bo", bo_final)):
        baseline = np.asarray(baseline, dtype=np.float64)
        p_ahead[name] = (float(stats.mannwhitneyu(last, baseline, alternative="greater").pvalue)
                         if len(last) and len(baseline) else float("nan"))
    significant = [bool(p < alpha) for p in (p_improves, p_ahead["random"], p_ahead["bo"])]
    verdict = "reproduced" if all(significant) else "partial" if any(significant) else "not reached"
    return {"verdict": verdict, "p_improves": p_improves, "p_ahead_random": p_ahead["random"],
            "p_ahead_bo": p_ahead["bo"]}


def _evolution_row(e: dict, settings: Settings, claim: tuple[str, str]) -> dict:
    first = np.array([r["generations"][0]["centre_test"] for r in e["runs"]])
    last = np.array([r["generations"][-1]["centre_test"] for r in e["runs"]])
    random_final = np.array([c[-1] for c in e["baselines"]["random"]])
    bo_final = np.array([c[-1] for c in e["baselines"]["bo"]])
    alpha = settings.search_significance
    tests = search_verdict(first, last, random_final, bo_final, alpha)
    e["tests"] = tests

    def ci(x: np.ndarray) -> str:
        m, h = mean_ci(x)
        return f"{m:.2f}" + ("" if not np.isfinite(h) else f" ± {h:.2f}")

    generations = len(e["runs"][0]["generations"]) - 1
    note = (f"S = {e['n_stages']}, ground truth {e['ground_truth']}; test accuracy of the centre after {generations} "
            f"generations = {e['trainings']} region trainings, mean ± 95 % CI over {len(last)} FaDE seed(s); RS / BO "
            f"incumbents after {e['trainings']} evaluations over {len(random_final)} seeds; one-sided p-values: "
            f"improves (paired t) {tests['p_improves']:.3g}, ahead of RS (Mann-Whitney) {tests['p_ahead_random']:.3g}, "
            f"ahead of BO {tests['p_ahead_bo']:.3g}")
    if e["runs"] and "expected_test" in e["runs"][0]["generations"][0]:
        expected = [np.mean([r["generations"][i]["expected_test"] for r in e["runs"]]) for i in (0, -1)]
        note += f"; expected test under the search distribution {expected[0]:.2f} -> {expected[1]:.2f}"
    if e["best_possible_test"] is not None:
        note += f"; best cell in the table: {e['best_possible_test']:.2f}"
    note += (f"; verdict rule: reproduced = all three tests p < {alpha}, partial = at least one, not reached = none "
             f"({settings.scale} scale)")
    return {"claim": claim[0], "paper": claim[1],
            "ours": f"FaDE centre {ci(first)} -> {ci(last)}; RS {ci(random_final)}; BO {ci(bo_final)} (test %)",
            "seeds": len(e["runs"]), "verdict": tests["verdict"], "note": note}


def _evolution_figure(e: dict, stem: Path, ylabel: str) -> list[Path]:
    plt = figures.pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, label in (("random", "random search"), ("bo", "GP-BO (EI)")):
        curves = np.array(e["baselines"][name])
        x = np.arange(1, curves.shape[1] + 1)
        ax.plot(x, curves.mean(0), label=f"{label} (mean of {len(curves)})")
        ax.fill_between(x, curves.mean(0) - curves.std(0), curves.mean(0) + curves.std(0), alpha=0.15)
    for r in e["runs"]:
        gens = r["generations"]
        line, = ax.plot([g["trainings"] for g in gens], [g["centre_test"] for g in gens], "-o", ms=3,
                        label=f"FaDE centre (seed {r['seed']})")
        if "expected_test" in gens[0]:
            ax.plot([g["trainings"] for g in gens], [g["expected_test"] for g in gens], ":", color=line.get_color(),
                    label=f"FaDE E[test] under P (seed {r['seed']})")
    ax.set_xlabel("trainings (region supernets / architectures)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return figures.save(fig, stem)


# --------------------------------------------------------------------------------------------------
# Cost vs depth
# --------------------------------------------------------------------------------------------------
def _cost_experiment(settings: Settings, device: str) -> dict:
    """Seconds per search step (one architecture step and one weight step on a batch) of a region supernet
    of the same region shape, per depth S, in this process with one thread. Depths are timed round-robin,
    ``cost_repeats`` rounds of ``cost_steps`` steps, and the fastest round is kept: on a shared machine the
    minimum is the timing least disturbed by other jobs. A region's training cost is this times its steps."""
    import torch
    from algorithms.nn.search import make_search

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hp = settings.supernet
        searches, rows = {}, {}
        rng = np.random.default_rng(settings.cost_seed)
        cell_pattern = region_around(MultiCellSpace(1).sample(rng), settings.open_slots, settings.ops_per_slot,
                                     rng).candidates
        for n_stages in settings.cost_stages:
            # the same candidate sets in every stage: each depth runs the same ops per cell
            region = Region(n_stages, cell_pattern * n_stages)
            search = make_search(RegionDARTS, hp, 0)
            search.adapt_search_space("nb201", "cifar10", num_classes=10, device=device, region=region)
            search.new_epoch(0)
            searches[n_stages] = search
            supernet = MultiCellSupernet(hp["channels"], hp["cells"], n_stages)
            rows[n_stages] = {"n_stages": n_stages, "region_size": region.size, "step_seconds": [],
                              "cells": hp["cells"] * resolution_stages(n_stages), "region": region.id,
                              "supernet_parameters": int(sum(p.numel() for p in supernet.parameters()))}
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(hp["batch_size"], 3, hp["image_size"], hp["image_size"], generator=generator).to(device)
        y = torch.randint(0, 10, (hp["batch_size"],), generator=generator).to(device)
        for _ in range(settings.cost_repeats):
            for n_stages, search in searches.items():
                search.step((x, y), (x, y))  # untimed: the first step of a round pays for cold caches
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(settings.cost_steps):
                    search.step((x, y), (x, y))
                _sync(device)
                rows[n_stages]["step_seconds"].append((time.perf_counter() - t0) / settings.cost_steps)
        for row in rows.values():
            row["seconds_per_step"] = min(row["step_seconds"])
        return {"rows": list(rows.values()), "batch_size": hp["batch_size"], "image_size": hp["image_size"]}
    finally:
        torch.set_num_threads(before)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _cost_row(c: dict) -> dict:
    rows = c["rows"]
    ours = "; ".join(f"S={r['n_stages']}: {1000 * r['seconds_per_step']:.0f} ms" for r in rows)
    note = ("a measurement with no paper number to compare; one CPU thread, fastest of round-robin rounds on a machine "
            "shared with other jobs; the same region cell pattern (candidate ops per edge) in every stage, so what "
            "grows with S is the number of searched cells (N x max(3, S): constant up to S = 3, where one more stage "
            "only means another cell type, then one more resolution stage per stage) while the region's size grows "
            "as " + ", ".join(f"{r['region_size']:,}" for r in rows) + " members")
    if len({r["cells"] for r in rows}) > 1:
        fit = stats.linregress([r["cells"] for r in rows], [1000 * r["seconds_per_step"] for r in rows])
        note += (f"; ms per step vs searched cells: linear fit slope {fit.slope:.1f} ms per cell, R² = "
                 f"{fit.rvalue ** 2:.2f} (linear in depth, not in the region's size)")
    return {"claim": _CLAIMS[4][0], "paper": _CLAIMS[4][1], "ours": ours, "seeds": 1,
            "verdict": "not measurable here", "note": note}


def _cost_figure(c: dict, folder: Path) -> list[Path]:
    plt = figures.pyplot()

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    s = [r["n_stages"] for r in c["rows"]]
    ax.plot(s, [1000 * r["seconds_per_step"] for r in c["rows"]], "-o")
    ax.set_xlabel("stages S")
    ax.set_ylabel("ms per search step (arch + weight)")
    ax.set_xticks(s)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figures.save(fig, folder / "fade_cost_vs_depth")


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------
def _markdown(headline: dict, info: dict) -> str:
    lines = [f"# {headline['title']}", "",
             f"Scale: **{headline['scale']}** on {info['device']} — `{headline['command']}` — {headline['date']} "
             f"({info['seconds']:.0f} s wall on {info['cpu_count']} cores; load average at the end "
             f"{info['load_average_at_end']}: the machine was shared; region supernets trained by this run: "
             f"{info.get('regions_trained', 0)}, reused finished from runs/: {info.get('regions_reused', 0)}, "
             f"evolution generations restored: {info.get('generations_restored', 0)}; architectures trained for "
             f"ground truth: {info.get('architectures_trained', 0)})", "",
             *headline_table(headline["rows"])]
    lines.append("")
    for key, title in (("evolution", "Evolution, S = 1 (per generation)"),
                       ("multicell_evolution", "Evolution, multi-cell (per generation)")):
        if key not in info:
            continue
        lines += [f"## {title}", "", "| seed | generation | trainings | centre | centre valid | centre test | "
                  "E[test] under P | region Spearman |", "|---|---|---|---|---|---|---|---|"]
        for r in info[key]["runs"]:
            for g in r["generations"]:
                rhos = ", ".join(_fmt(x) for x in g.get("region_spearman", []))
                expected = f"{g['expected_test']:.2f}" if "expected_test" in g else "—"
                lines.append(f"| {r['seed']} | {g['generation']} | {g['trainings']} | `{g['centre']}` | "
                             f"{g['centre_valid']:.2f} | {g['centre_test']:.2f} | {expected} | {rhos or '—'} |")
        lines.append("")
    if "multicell_correlation" in info:
        c = info["multicell_correlation"]
        lines += ["## Multi-cell regions (claim 1, trained ground truth)", "",
                  "| region | Spearman | Kendall | params Spearman | valid range (%) |", "|---|---|---|---|---|"]
        lines += [f"| `{r['region']}` | {_fmt(r['spearman'])} | {_fmt(r['kendall'])} | {_fmt(r['params_spearman'])} | "
                  f"{min(r['valid']):.1f}–{max(r['valid']):.1f} |" for r in c["regions"]]
        lines.append("")
    if "cost" in info:
        lines += ["## Cost vs depth", "", f"Batch {info['cost']['batch_size']} at {info['cost']['image_size']} px, "
                  "one CPU thread, fastest of the round-robin rounds.", "",
                  "| S | searched cells | ms / step (min) | all rounds (ms) | supernet parameters | region size |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['n_stages']} | {r['cells']} | {1000 * r['seconds_per_step']:.1f} | "
                  f"{', '.join(f'{1000 * t:.0f}' for t in r['step_seconds'])} | {r['supernet_parameters']} | "
                  f"{r['region_size']:,} |"
                  for r in info["cost"]["rows"]]
        lines.append("")
    for f in headline["figures"]:
        if f.endswith(".png"):
            lines.append(f"![{Path(f).stem}]({f})")
    lines += ["", "Settings and every decision the paper's abstract leaves open: `algorithms/configs/fade.toml` "
                  "([meta] known_deviations)."]
    if headline["scale"] == "quick":
        lines += ["", "The quick scale checks the pipeline on a CPU (tiny supernet, 16-px images, a CIFAR-10 subset, "
                      "a few epochs per region); its numbers are not the paper's setting."]
    return "\n".join(lines) + "\n"

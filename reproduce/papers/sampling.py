"""Efficient Sampling for Predictor-Based NAS (Mauch et al. 2020, arXiv:2011.12043; abstract only).

The claim: predictor-based NAS loses sample efficiency dramatically when its proxy is computed on a
(random) subset of the space instead of all of it, and a smartly chosen subset regains it. We test it by
running one predictor-based search (the registered ``neural_predictor``: GCN, greedy) with different
candidate sets -- the full space, uniform random subsets of several sizes, and two smart subsets (the
neighbourhoods of the best architectures, an evolutionary pool) -- on NAS-Bench-201 CIFAR-10 and on our
NAS-Bench-101 cells (~7 % of the space with data), plus random search as the baseline.

``run(scale, out)`` writes:

* ``out/runs/<benchmark>-<dataset>/<variant>/...`` -- raw runs through :mod:`reproduce.runner` (resumable:
  finished runs are skipped, interrupted ones resume from their checkpoint);
* ``out/headline.json`` (:class:`reproduce.report.Headline`) and ``out/results.md``;
* ``out/summary.json`` -- every number in the tables (targets, medians, quartiles, censoring, gains, tests);
* ``out/figures/sampling_gain_vs_subset.{png,pdf}`` -- sample efficiency gain vs candidate-set size (log x);
  ``out/figures/sampling_regret.{png,pdf}`` -- regret vs queries, mean with 95 % t-interval.

The gain and its censoring rules are defined in :mod:`algorithms.sampling`; the settings (variants, subset
sizes, seeds, budgets, verdict thresholds) in ``algorithms/configs/sampling.toml``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import algorithms
from algorithms.sampling import (QueriesToTarget, Target, gain_upper_bound, logrank_p, queries_summary,
                                 queries_to_reach, random_search_quantile, top_fraction_target)
from nasrepro.errors import ConfigError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce import compare, figures
from reproduce.executors import make_executor
from reproduce.report import Headline, HeadlineRow
from reproduce.runner import RunSpec, check_run_dir, load_benchmark, run_one_job

TITLE = "Efficient Sampling for Predictor-Based Neural Architecture Search (Mauch et al. 2020)"
SEARCH = "neural_predictor"
BASELINE = "random_search"
TASK_LABELS = {"nb201": "NB201", "nb101": "NB101, ~7 % of cells with data"}


@dataclass(frozen=True)
class Variant:
    """One candidate-set strategy of the predictor-based search (or the random-search baseline)."""

    name: str
    algorithm: str
    overrides: dict
    kind: str  # "full", "random", "smart", "baseline"
    subset_size: int | None = None  # random subsets only

    def label(self) -> str:
        if self.kind == "random":
            return f"random subset {self.subset_size:,}"
        return {"full": "full space", "baseline": "random search"}.get(self.kind, f"smart: {self.name}")


def variants(config: dict, settings: dict) -> list[Variant]:
    """The variants of one scale: full, random subsets per size, the smart ones (each with the shared
    ``[search]`` overrides), and random search."""
    shared = dict(config["search"])
    out = [Variant(BASELINE, BASELINE, {}, "baseline")]
    for name, overrides in config["variants"].items():
        kind = "full" if overrides.get("candidates") == "full" else "smart"
        out.append(Variant(name, SEARCH, {**shared, **overrides}, kind))
    for size in settings["subset_sizes"]:
        out.append(Variant(f"random_subset_{size}", SEARCH,
                           {**shared, "candidates": "random_subset", "subset_size": int(size)}, "random", int(size)))
    return out


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------
def run(scale: str, out: Path) -> Path:
    if scale not in ("quick", "full"):
        raise ConfigError(f"sampling: scale must be 'quick' or 'full', got {scale!r}")
    out = Path(out)
    started = datetime.now(timezone.utc)
    config = algorithms.read_config_file("sampling")
    settings = config[f"scale_{scale}"]
    seeds = list(range(int(settings["seeds"])))
    tasks = [(str(b), str(d), int(q)) for b, d, q in settings["tasks"]]
    all_variants = variants(config, settings)

    jobs = []
    for benchmark, dataset, budget in tasks:
        for variant in all_variants:
            folder = runs_folder(out, benchmark, dataset, variant)
            for seed in seeds:
                spec = RunSpec(variant.algorithm, benchmark, dataset, seed, max_queries=budget,
                               overrides=tuple(sorted(variant.overrides.items())))
                check_run_dir(spec, folder)  # a conflicting results folder fails before anything runs
                jobs.append((spec, folder, False, False))
    clock = time.perf_counter()
    with make_executor("local", workers=int(settings["workers"])) as pool:
        for _ in pool.map(run_one_job, jobs):
            pass
    run_seconds = time.perf_counter() - clock

    analyses = [analyse_task(out, benchmark, dataset, budget, all_variants, settings["targets"])
                for benchmark, dataset, budget in tasks]
    figures = gain_figure(analyses, out / "figures" / "sampling_gain_vs_subset")
    figures += regret_figure(out, tasks, all_variants, out / "figures" / "sampling_regret")
    rows = headline_rows(analyses, config["verdict"], scale, len(seeds))
    headline = Headline("sampling", TITLE, scale, f"python -m reproduce sampling --{scale}",
                        started.strftime("%Y-%m-%dT%H:%M:%SZ"), tuple(HeadlineRow(**r) for r in rows),
                        tuple(str(Path(f).relative_to(out)) for f in figures))
    summary = {"scale": scale, "seeds": seeds, "run_seconds": round(run_seconds, 1),
               "workers": int(settings["workers"]), "tasks": analyses}
    atomic_write_json(out / "summary.json", _finite(summary))
    atomic_write_text(out / "results.md", markdown(headline.to_dict(), analyses, summary))
    return headline.write(out / "headline.json")


def runs_folder(out: Path, benchmark: str, dataset: str, variant: Variant) -> Path:
    """The runner's ``out`` for one variant (runs of the same algorithm with other overrides must not share
    one: the run directory is named by algorithm and seed only)."""
    return out / "runs" / f"{benchmark}-{dataset}" / variant.name


# --------------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------------
def analyse_task(out: Path, benchmark: str, dataset: str, budget: int, all_variants: list[Variant],
                 fractions: list[float]) -> dict:
    """Targets, queries to reach them per variant (with censoring), gains and log-rank tests."""
    bench = load_benchmark(benchmark)
    archs = bench.archs_with_data()
    valid = bench.query_many(archs, dataset, "accuracy", "valid")
    targets = [top_fraction_target(valid, float(f)) for f in fractions]
    result: dict[str, Any] = {"benchmark": benchmark, "dataset": dataset, "label": TASK_LABELS.get(benchmark, benchmark),
                              "budget": budget, "n_archs": len(archs), "targets": [], "variants": [],
                              "neighbours_near_the_top": neighbours_near_the_top(bench.space, archs, valid)}
    reached: dict[tuple[str, float], tuple[list, list]] = {}
    for variant in all_variants:
        runs = [compare.load_run(p.parent) for p in sorted(runs_folder(out, benchmark, dataset, variant).rglob(
            "trajectory.csv"))]
        entry: dict[str, Any] = {"name": variant.name, "label": variant.label(), "kind": variant.kind,
                                 "subset_size": variant.subset_size, "n_runs": len(runs), "targets": {}}
        for target in targets:
            hits = [queries_to_reach(r.incumbent_valid, target.threshold) for r in runs]
            budgets = [len(r.queries) for r in runs]
            reached[(variant.name, target.fraction)] = (hits, budgets)
            summary = queries_summary(hits, budgets)
            entry["targets"][target.label] = _target_entry(target, summary, budget)
        result["variants"].append(entry)
    for target in targets:
        result["targets"].append({"label": target.label, "fraction": target.fraction, "threshold": target.threshold,
                                  "hits": target.hits, "random_search_median": random_search_quantile(target)})
        # log-rank tests: full vs each random subset; each smart subset vs the random subset nearest in size
        tests = {}
        full = next(v for v in all_variants if v.kind == "full")
        for variant in all_variants:
            if variant.kind in ("random", "smart", "baseline"):
                tests[f"{full.name} vs {variant.name}"] = logrank_p(*reached[(full.name, target.fraction)],
                                                                    *reached[(variant.name, target.fraction)])
        smallest_random = min((v for v in all_variants if v.kind == "random"), key=lambda v: v.subset_size)
        for variant in (v for v in all_variants if v.kind == "smart"):
            tests[f"{variant.name} vs {smallest_random.name}"] = logrank_p(
                *reached[(variant.name, target.fraction)], *reached[(smallest_random.name, target.fraction)])
        result["targets"][-1]["logrank_p"] = tests
    return result


def neighbours_near_the_top(space: Any, archs: list, valid: np.ndarray, top: int = 50) -> float:
    """Mean number of single-edit neighbours with data of the ``top`` best architectures: the size of one
    parent's neighbourhood as the search sees it near the optimum (NB201: 24; NB101: only our ~7 %)."""
    ids = {a.id for a in archs}
    best = np.argsort(-valid, kind="stable")[:top]
    return float(np.mean([sum(n.id in ids for n in space.neighbours(archs[int(i)])) for i in best]))


def _target_entry(target: Target, summary: QueriesToTarget, budget: int) -> dict:
    gain = random_search_quantile(target) / summary.median
    return {"median": summary.median, "q25": summary.q25, "q75": summary.q75, "n_runs": summary.n_runs,
            "n_censored": summary.n_censored, "gain": gain,
            # a censored median: the gain is at most this
            "gain_at_most": gain_upper_bound(target, budget) if math.isinf(summary.median) else None}


def headline_rows(analyses: list[dict], verdict: dict, scale: str, n_seeds: int) -> list[dict]:
    rows = []
    for task in analyses:
        by_name = {v["name"]: v for v in task["variants"]}
        full = next(v for v in task["variants"] if v["kind"] == "full")
        randoms = sorted((v for v in task["variants"] if v["kind"] == "random"), key=lambda v: v["subset_size"])
        smarts = [v for v in task["variants"] if v["kind"] == "smart"]
        for target in task["targets"]:
            label = target["label"]
            g_full = full["targets"][label]["gain"]
            small = randoms[0]
            g_small = small["targets"][label]["gain"]
            p_drop = target["logrank_p"][f"{full['name']} vs {small['name']}"]
            dropped = g_full >= verdict["drop_factor"] * g_small
            claim = f"{task['label']} {task['dataset']}, {label}: a random subset loses sample efficiency"
            ours = (f"gain full {_gain_text(full, label)} vs random subset {small['subset_size']:,} "
                    f"{_gain_text(small, label)} (log-rank p = {p_drop:.3g})")
            rows.append({"claim": claim, "paper": "drops dramatically (NB101; no number in the abstract)",
                         "ours": ours, "seeds": n_seeds,
                         "verdict": _verdict(dropped, p_drop < verdict["alpha"], g_full > g_small),
                         "note": _note(scale, full, small, label)})
            best = max(smarts, key=lambda v: v["targets"][label]["gain"])
            g_best = best["targets"][label]["gain"]
            p_smart = target["logrank_p"][f"{best['name']} vs {small['name']}"]
            regained = g_best >= verdict["regain_fraction"] * g_full and g_best > g_small
            rows.append({"claim": f"{task['label']} {task['dataset']}, {label}: a smart subset regains it",
                         "paper": "regained by choosing the subset smartly (no number in the abstract)",
                         "ours": f"gain {best['label']} {_gain_text(best, label)} vs full {_gain_text(full, label)}, "
                                 f"vs random subset {small['subset_size']:,} (log-rank p = {p_smart:.3g})",
                         "seeds": n_seeds,
                         "verdict": _verdict(regained, p_smart < verdict["alpha"], g_best > g_small),
                         "note": _note(scale, best, by_name[small["name"]], label)})
    return rows


def _verdict(effect: bool, significant: bool, right_direction: bool) -> str:
    if effect and significant:
        return "reproduced"
    return "partial" if right_direction else "not reached"


def _gain_text(variant: dict, label: str) -> str:
    entry = variant["targets"][label]
    if entry["gain_at_most"] is not None:
        return f"<= {entry['gain_at_most']:.2g}x (median censored)"
    return f"{entry['gain']:.2g}x"


def _note(scale: str, a: dict, b: dict, label: str) -> str:
    censored = ", ".join(f"{v['label']}: {v['targets'][label]['n_censored']}/{v['targets'][label]['n_runs']} runs "
                         f"never reached it" for v in (a, b))
    prefix = "quick scale (fewer seeds, short budgets); " if scale == "quick" else ""
    return prefix + censored


# --------------------------------------------------------------------------------------------------
# Figures and Markdown
# --------------------------------------------------------------------------------------------------
def gain_figure(analyses: list[dict], path: Path) -> list[Path]:
    """Gain vs candidate-set size (log x), one panel per task; random subsets as a line per target, the full
    space at its size, smart subsets as markers at their nominal size; censored medians drawn at their bound
    with an open marker."""
    plt = figures.pyplot()

    fig, axes = plt.subplots(1, len(analyses), figsize=(5.5 * len(analyses), 4.2), squeeze=False)
    for ax, task in zip(axes[0], analyses):
        for i, target in enumerate(task["targets"]):
            color = f"C{i}"
            label = target["label"]
            randoms = sorted((v for v in task["variants"] if v["kind"] == "random"), key=lambda v: v["subset_size"])
            points = [(v["subset_size"], *_gain_point(v, label)) for v in randoms]
            full = next(v for v in task["variants"] if v["kind"] == "full")
            points.append((task["n_archs"], *_gain_point(full, label)))
            xs, ys, censored = zip(*points)
            ax.plot(xs, ys, "-", color=color, label=f"{label}: random subsets -> full space")
            for x, y, c in points:
                ax.plot(x, y, "o", color=color, mfc="none" if c else color)
            for j, smart in enumerate(v for v in task["variants"] if v["kind"] == "smart"):
                y, c = _gain_point(smart, label)
                ax.plot(_nominal_size(smart, task), y, "s^D"[j % 3], color=color, mfc="none" if c else color,
                        ms=8, label=f"{label}: {smart['label']}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("candidates scored per iteration")
        ax.set_ylabel("sample efficiency gain over random search")
        ax.set_title(f"{task['label']} {task['dataset']} ({task['budget']} queries)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("gain = RS median queries / method median queries to reach the target (open: censored bound)")
    fig.tight_layout()
    return figures.save(fig, path)


def _gain_point(variant: dict, label: str) -> tuple[float, bool]:
    entry = variant["targets"][label]
    if entry["gain_at_most"] is not None:
        return entry["gain_at_most"], True
    return entry["gain"], False


def _nominal_size(variant: dict, task: dict) -> float:
    """Where a smart subset sits on the size axis: its configured candidates per iteration (neighbourhoods:
    parents x the mean in-pool neighbourhood near the top, :func:`neighbours_near_the_top`)."""
    config = algorithms.read_config_file("sampling")["variants"][variant["name"]]
    if config["candidates"] == "neighbourhood":
        return config["num_parents"] * task["neighbours_near_the_top"]
    return config["num_candidates"]


def regret_figure(out: Path, tasks: list, all_variants: list[Variant], path: Path) -> list[Path]:
    """Regret vs queries, mean and 95 % t-interval (reproduce.compare's plot, variants labelled by name)."""
    groups = []
    for benchmark, dataset, _ in tasks:
        runs = {}
        for variant in all_variants:
            found = sorted(runs_folder(out, benchmark, dataset, variant).rglob("trajectory.csv"))
            runs[variant.label()] = [compare.load_run(p.parent) for p in found]
        metric = "test" if all(r.has_test for rs in runs.values() for r in rs) else "valid"
        split = "test" if metric == "test" else "valid"
        best, note = compare.table_maximum(benchmark, dataset, split, None)
        groups.append(compare.Group(benchmark, dataset, runs, metric, best, note))
    return compare.plot(groups, path)


def markdown(headline: dict, analyses: list[dict], summary: dict) -> str:
    lines = [f"# {headline['title']}", "",
             f"Scale **{headline['scale']}** — `{headline['command']}` — {headline['date']} — "
             f"{len(summary['seeds'])} seeds, runs took {summary['run_seconds']:.0f} s on {summary['workers']} "
             "worker processes (shared machine: other jobs may have competed for the CPU).", "",
             "Only the abstract of the paper is available; the gain's definition, the subsets and the verdict "
             "thresholds are ours (`algorithms/configs/sampling.toml`).", "",
             "| claim | paper | ours | seeds | verdict | note |", "|---|---|---|---|---|---|"]
    for r in headline["rows"]:
        cells = [r["claim"], r["paper"], r["ours"], r["seeds"], r["verdict"], r["note"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    for task in analyses:
        lines += ["", f"## Queries to reach the target: {task['label']} {task['dataset']} "
                      f"({task['n_archs']:,} architectures with data, budget {task['budget']} queries)", "",
                  "Median and interquartile range (Kaplan-Meier: runs that never reach the target are censored at "
                  "the budget and counted in the 'censored' column; '>' = not reached by that quantile). "
                  "Random search: exact geometric median.", ""]
        header = ["method"] + [f"{t['label']}: median [IQR] (censored)" for t in task["targets"]] + \
                 [f"gain {t['label']}" for t in task["targets"]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines.append("| random search (exact) | " + " | ".join(
            f"{t['random_search_median']:.0f}" for t in task["targets"]) + " | " +
            " | ".join("1x" for _ in task["targets"]) + " |")
        for v in task["variants"]:
            cells = [f"{v['label']} (n={v['n_runs']})"]
            cells += [_median_text(v["targets"][t["label"]], task["budget"]) for t in task["targets"]]
            cells += [_gain_text(v, t["label"]) for t in task["targets"]]
            lines.append("| " + " | ".join(cells) + " |")
        for t in task["targets"]:
            lines.append("")
            lines.append(f"{t['label']} (valid >= {t['threshold']:.3f}, {t['hits']} architectures): log-rank p: " +
                         "; ".join(f"{k} {p:.3g}" for k, p in t["logrank_p"].items()))
    lines.append("")
    for f in headline["figures"]:
        if f.endswith(".png"):
            lines.append(f"![{Path(f).stem}]({f})")
    return "\n".join(lines) + "\n"


def _median_text(entry: dict, budget: int) -> str:
    def q(x: float) -> str:
        return f">{budget}" if math.isinf(x) else f"{x:.0f}"

    return f"{q(entry['median'])} [{q(entry['q25'])}, {q(entry['q75'])}] ({entry['n_censored']}/{entry['n_runs']})"


def _finite(obj: Any) -> Any:
    """JSON has no infinity: censored medians become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj

"""Efficient Sampling for Predictor-Based NAS (Mauch et al. 2020, arXiv:2011.12043; abstract only).

The claim: predictor-based NAS loses sample efficiency dramatically when its proxy is computed on a
(random) subset of the space instead of all of it, and a smartly chosen subset regains it. We test it by
running one predictor-based search (the registered ``neural_predictor``: GCN, greedy) with different
candidate sets -- the full space, uniform random subsets of several sizes, and three smart subsets (the
neighbourhoods of the best architectures, an evolutionary pool, the pool cells nearest the best by
encoding distance) -- on NAS-Bench-201 CIFAR-10 and on our
NAS-Bench-101 cells (~7 % of the space with data), plus random search as the baseline.

``run(scale, out)`` writes:

* ``out/runs/<benchmark>-<dataset>/<variant>/...`` -- raw runs through :mod:`reproduce.runner` (resumable:
  finished runs are skipped, interrupted ones resume from their checkpoint);
* ``out/headline.json`` (:class:`reproduce.report.Headline`) and ``out/results.md``;
* ``out/summary.json`` -- every number in the tables (targets, medians, quartiles, censoring, gain bounds,
  measured candidate-set sizes, tests);
* ``out/figures/sampling_gain_vs_subset.{png,pdf}`` -- sample efficiency gain vs candidate-set size (log x);
  ``out/figures/sampling_regret.{png,pdf}`` -- regret vs queries, mean with 95 % t-interval.

Judging: targets are the top x % by validation accuracy (what the searches optimise); the regret figure
uses the test accuracy of the validation-chosen incumbent where the table has one (NB201). The candidate
set each iteration actually scored is read from the runs' final checkpoints: a smart subset is compared
with the random subset nearest to that size, and one that left the predictor no choice (fewer candidates
than ``min_candidates_per_query`` x the queries it asks) is "not measurable here" rather than a failure.
Verdict p-values are Benjamini-Hochberg adjusted over the headline rows.

The gain and its censoring rules are defined in :mod:`algorithms.sampling`; the settings (variants, subset
sizes, seeds, budgets, verdict thresholds) in ``algorithms/configs/sampling.toml``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

import algorithms
from algorithms.sampling import (GainBounds, QueriesToTarget, Target, gain_bounds, gain_interval, logrank_p,
                                 queries_summary, queries_to_reach, random_search_quantile, top_fraction_target)
from nasrepro.errors import ConfigError, DataError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce import compare, figures
from reproduce.executors import make_executor, map_with_progress
from reproduce.report import Headline, HeadlineRow, headline_table
from reproduce.runner import RunSpec, check_run_dir, load_benchmark, run_one_job
from reproduce.runner import read_checkpoint  # the one reader of the runner's format

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
        for _ in map_with_progress(pool, run_one_job, jobs, "sampling runs", unit="run"):
            pass
    run_seconds = time.perf_counter() - clock

    analyses = [analyse_task(out, benchmark, dataset, budget, all_variants, settings["targets"], config["analysis"])
                for benchmark, dataset, budget in tasks]
    figure_paths = gain_figure(analyses, config["verdict"], out / "figures" / "sampling_gain_vs_subset")
    figure_paths += regret_figure(out, tasks, all_variants, out / "figures" / "sampling_regret")
    rows = headline_rows(analyses, config["verdict"], scale, len(seeds))
    headline = Headline("sampling", TITLE, scale, f"python -m reproduce sampling --{scale}",
                        started.strftime("%Y-%m-%dT%H:%M:%SZ"), tuple(HeadlineRow(**r) for r in rows),
                        tuple(str(Path(f).relative_to(out)) for f in figure_paths))
    summary = {"scale": scale, "seeds": seeds, "run_seconds": round(run_seconds, 1),
               "runs_wall_seconds": round(sum(v["wall_seconds"] for t in analyses for v in t["variants"]), 1),
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
                 fractions: list[float], analysis: dict) -> dict:
    """Targets, queries to reach them per variant (with censoring), gains, candidate-set sizes and log-rank
    tests. Targets are by *validation* accuracy: the quantity the searches optimise and see."""
    bench = load_benchmark(benchmark)
    archs = bench.archs_with_data()
    valid = bench.query_many(archs, dataset, "accuracy", "valid")
    targets = [top_fraction_target(valid, float(f)) for f in fractions]
    top = int(analysis["neighbour_diagnostic_top"])
    result: dict[str, Any] = {
        "benchmark": benchmark, "dataset": dataset, "label": TASK_LABELS.get(benchmark, benchmark),
        "budget": budget, "n_archs": len(archs), "targets": [], "variants": [], "neighbour_diagnostic_top": top,
        "neighbours_near_the_top": neighbours_near_the_top(bench.space, archs, valid, top)}
    reached: dict[tuple[str, float], tuple[list, list]] = {}
    for variant in all_variants:
        run_dirs = [p.parent for p in sorted(runs_folder(out, benchmark, dataset, variant).rglob("trajectory.csv"))]
        runs = [compare.load_run(d) for d in run_dirs]
        entry: dict[str, Any] = {"name": variant.name, "label": variant.label(), "kind": variant.kind,
                                 "subset_size": variant.subset_size, "n_runs": len(runs), "targets": {},
                                 "wall_seconds": sum(json.loads((d / "summary.json").read_text())["wall_seconds"]
                                                     for d in run_dirs),
                                 **candidate_set_statistics(run_dirs, variant)}
        for target in targets:
            hits = [queries_to_reach(r.incumbent_valid, target.threshold) for r in runs]
            budgets = [len(r.queries) for r in runs]
            reached[(variant.name, target.fraction)] = (hits, budgets)
            summary = queries_summary(hits, budgets, float(analysis["confidence"]))
            entry["targets"][target.label] = _target_entry(target, summary, budget)
        result["variants"].append(entry)
    full = next(v for v in all_variants if v.kind == "full")
    for target in targets:
        # log-rank tests: full vs every other variant; each smart subset vs the random subset nearest to
        # the candidate-set size it actually had
        tests = {f"{full.name} vs {v.name}": logrank_p(*reached[(full.name, target.fraction)],
                                                      *reached[(v.name, target.fraction)])
                 for v in all_variants if v.kind in ("random", "smart", "baseline")}
        for smart in (v for v in result["variants"] if v["kind"] == "smart"):
            peer = nearest_random_subset(smart, result["variants"])
            tests[f"{smart['name']} vs {peer['name']}"] = logrank_p(*reached[(smart["name"], target.fraction)],
                                                                    *reached[(peer["name"], target.fraction)])
        result["targets"].append({"label": target.label, "fraction": target.fraction, "threshold": target.threshold,
                                  "hits": target.hits, "random_search_median": random_search_quantile(target),
                                  "logrank_p": tests})
    return result


def candidate_set_statistics(run_dirs: list[Path], variant: Variant) -> dict:
    """How many candidates the predictor actually scored per iteration (mean over the iterations of all
    runs) and the share of iterations whose candidate set was empty, so that the search asked a random
    architecture instead (read from each finished run's final checkpoint). Random search: none."""
    unmeasured = {"mean_candidates": None, "empty_fraction": None, "iterations": 0, "queries_per_iteration": None}
    if variant.kind == "baseline" or not run_dirs:
        return unmeasured
    sizes, per_iteration = [], set()
    for run_dir in run_dirs:
        config = json.loads((run_dir / "config.json").read_text())
        per_iteration.add(config["hyperparameters"]["queries_per_iteration"])
        checkpoint = read_checkpoint(run_dir / "checkpoint.pkl", config, False)
        if checkpoint is None:
            raise DataError(f"run {run_dir} has a trajectory but no checkpoint to read its candidate sets from")
        sizes += [size for _, size, _ in checkpoint["optimizer"]["iterations"]]
    if not sizes:
        return unmeasured
    sizes_array = np.asarray(sizes, dtype=np.float64)
    return {"mean_candidates": float(sizes_array.mean()), "empty_fraction": float((sizes_array == 0).mean()),
            "iterations": len(sizes), "queries_per_iteration": max(per_iteration)}


def nearest_random_subset(smart: dict, variants: list[dict]) -> dict:
    """The random subset whose size is nearest (on a log scale) to the smart subset's measured mean
    candidate-set size (at least 1)."""
    size = max(smart["mean_candidates"] or 1.0, 1.0)
    randoms = [v for v in variants if v["kind"] == "random"]
    return min(randoms, key=lambda v: (abs(math.log(v["subset_size"] / size)), v["subset_size"]))


def neighbours_near_the_top(space: Any, archs: list, valid: np.ndarray, top: int) -> float:
    """Mean number of single-edit neighbours with data of the ``top`` best architectures: the size of one
    parent's neighbourhood as the search sees it near the optimum (NB201: 24; NB101: only our ~7 %)."""
    ids = {a.id for a in archs}
    best = np.argsort(-valid, kind="stable")[:top]
    return float(np.mean([sum(n.id in ids for n in space.neighbours(archs[int(i)])) for i in best]))


def _target_entry(target: Target, summary: QueriesToTarget, budget: int) -> dict:
    bounds = gain_bounds(target, summary, budget)
    ci_low, ci_high = gain_interval(target, summary, budget)
    return {"median": summary.median, "q25": summary.q25, "q75": summary.q75, "n_runs": summary.n_runs,
            "n_censored": summary.n_censored, "median_ci": [summary.median_low, summary.median_high],
            "gain_low": bounds.low, "gain_high": bounds.high, "gain_censored": bounds.censored,
            "gain_ci": [ci_low, ci_high]}


def _bounds(variant: dict, label: str) -> GainBounds:
    entry = variant["targets"][label]
    return GainBounds(entry["gain_low"], entry["gain_high"])


def _faster(a: dict, b: dict, label: str) -> bool:
    """``a``'s median queries to the target are below ``b``'s (a censored median is beyond the budget)."""
    return a["targets"][label]["median"] < b["targets"][label]["median"]


def headline_rows(analyses: list[dict], verdict: dict, scale: str, n_seeds: int) -> list[dict]:
    """Two claims per task and target. The p-values the verdicts use are Benjamini-Hochberg adjusted over
    all rows (``scipy.stats.false_discovery_control``); both raw and adjusted are shown."""
    rows, tests = [], []  # tests: (row index, raw p) of the rows judged by a test
    for task in analyses:
        full = next(v for v in task["variants"] if v["kind"] == "full")
        randoms = sorted((v for v in task["variants"] if v["kind"] == "random"), key=lambda v: v["subset_size"])
        smarts = [v for v in task["variants"] if v["kind"] == "smart"]
        small = randoms[0]
        for target in task["targets"]:
            label = target["label"]
            where = f"{task['label']} {task['dataset']}, {label}"
            p_drop = target["logrank_p"][f"{full['name']} vs {small['name']}"]
            tests.append((len(rows), p_drop))
            rows.append({"claim": f"{where}: a random subset loses sample efficiency",
                         "paper": "drops dramatically (NB101; no number in the abstract)",
                         "ours": f"gain full {_gain_text(full, label)} vs random subset {small['subset_size']:,} "
                                 f"{_gain_text(small, label)}",
                         "seeds": n_seeds,
                         "effect": _bounds(full, label).at_least(verdict["drop_factor"], _bounds(small, label)),
                         "direction": _faster(full, small, label),
                         "note": _note(scale, (full, small), label)})
            measurable = [v for v in smarts if _predictor_chooses(v, verdict)]
            claim = f"{where}: a smart subset regains it"
            paper = "regained by choosing the subset smartly (no number in the abstract)"
            if not measurable:
                rows.append({"claim": claim, "paper": paper, "seeds": n_seeds, "verdict": "not measurable here",
                             "ours": "no smart subset left the predictor a choice: " + ", ".join(
                                 f"{v['label']} {v['mean_candidates']:.1f} candidates per iteration for "
                                 f"{v['queries_per_iteration']} queries ({_empty_text(v)})" for v in smarts),
                             "note": f"mean {task['neighbours_near_the_top']:.1f} single-edit neighbours with "
                                     "data per top cell: edits from the best cells rarely land on a cell we "
                                     "have data for, so the search fell back to random architectures"})
                continue
            best = min(measurable, key=lambda v: (v["targets"][label]["median"], v["targets"][label]["q75"]))
            peer = nearest_random_subset(best, task["variants"])
            # the best of k smart subsets is picked after seeing the runs: Bonferroni x k keeps its test honest
            p_raw = target["logrank_p"][f"{best['name']} vs {peer['name']}"]
            p_smart = min(1.0, len(measurable) * p_raw)
            tests.append((len(rows), p_smart))
            rows.append({"claim": claim, "paper": paper, "seeds": n_seeds,
                         "ours": f"gain {best['label']} {_gain_text(best, label)} (mean "
                                 f"{best['mean_candidates']:,.0f} candidates per iteration) vs full "
                                 f"{_gain_text(full, label)}, vs random subset {peer['subset_size']:,} "
                                 f"{_gain_text(peer, label)}",
                         "effect": (_bounds(best, label).at_least(verdict["regain_fraction"], _bounds(full, label))
                                    and _bounds(best, label).exceeds(_bounds(peer, label))),
                         "direction": _faster(best, peer, label),
                         "picked": f"{p_raw:.3g}, x {len(measurable)} for picking the best of {len(measurable)} "
                                   f"smart subsets = " if len(measurable) > 1 else "",
                         "note": _note(scale, (best, peer), label)})
    adjusted = stats.false_discovery_control([p for _, p in tests]) if tests else []
    for (i, p), q in zip(tests, adjusted):
        row = rows[i]
        picked = row.pop("picked", "")
        row["ours"] += f" (log-rank p = {picked}{p:.3g}, BH-adjusted {q:.3g})"
        row["verdict"] = _verdict(row.pop("effect"), q < verdict["alpha"], row.pop("direction"))
    return rows


def _predictor_chooses(smart: dict, verdict: dict) -> bool:
    """Whether a smart subset offered the predictor a choice: on average at least ``min_candidates_per_query``
    candidates per query an iteration asks. Below that the subset, not the predictor, picks what is
    evaluated (with fewer candidates than queries every candidate is asked), and empty sets make the
    search ask random architectures: the variant no longer measures a predictor on a subset."""
    if smart["mean_candidates"] is None:
        return False
    return smart["mean_candidates"] >= verdict["min_candidates_per_query"] * smart["queries_per_iteration"]


def _verdict(effect: bool, significant: bool, right_direction: bool) -> str:
    if effect and significant:
        return "reproduced"
    return "partial" if right_direction else "not reached"


def _gain_text(variant: dict, label: str) -> str:
    """The gain (or its bound) and its confidence interval, e.g. ``17x [11, 24]``."""
    entry = variant["targets"][label]
    low, high = entry["gain_ci"]
    interval = f" [{low:.2g}, {high:.2g}]"
    if entry["gain_censored"]:
        return f"<= {entry['gain_high']:.2g}x (median censored){interval}"
    return f"{entry['gain_low']:.2g}x{interval}"


def _empty_text(variant: dict) -> str:
    return f"{100 * variant['empty_fraction']:.0f} % of {variant['iterations']} iterations empty"


def _note(scale: str, variants: tuple[dict, ...], label: str) -> str:
    parts = [f"{v['label']}: {v['targets'][label]['n_censored']}/{v['targets'][label]['n_runs']} runs never "
             f"reached it" for v in variants]
    parts += [f"{v['label']}: {_empty_text(v)}" for v in variants if v["kind"] == "smart"]
    prefix = "quick scale (fewer seeds, short budgets); " if scale == "quick" else ""
    return prefix + ", ".join(parts)


# --------------------------------------------------------------------------------------------------
# Figures and Markdown
# --------------------------------------------------------------------------------------------------
def gain_figure(analyses: list[dict], verdict: dict, path: Path) -> list[Path]:
    """Gain vs candidates scored per iteration (log x: the measured mean), one panel per task; random
    subsets and the full space as a line per target, smart subsets as markers. A censored median is drawn
    at its upper bound with an open marker; a smart subset that left the predictor no choice
    (:func:`_predictor_chooses`) is drawn grey."""
    plt = figures.pyplot()
    from matplotlib import ticker  # after figures.pyplot(), which picks the headless backend

    fig, axes = plt.subplots(1, len(analyses), figsize=(5.5 * len(analyses), 4.4), squeeze=False)
    for ax, task in zip(axes[0], analyses):
        randoms = sorted((v for v in task["variants"] if v["kind"] == "random"), key=lambda v: v["subset_size"])
        full = next(v for v in task["variants"] if v["kind"] == "full")
        smarts = [v for v in task["variants"] if v["kind"] == "smart"]
        for i, target in enumerate(task["targets"]):
            color, label = f"C{i}", target["label"]
            points = [(_size(v), *_gain_point(v, label)) for v in randoms + [full]]
            xs, ys, _ = zip(*points)
            ax.plot(xs, ys, "-", color=color, label=f"{label}: random subsets -> full space")
            for variant, (x, y, censored) in zip(randoms + [full], points):
                ax.plot(x, y, "o", color=color, mfc="none" if censored else color)
                _interval_bar(ax, x, variant, label, color)
            for j, smart in enumerate(smarts):
                y, censored = _gain_point(smart, label)
                no_choice = not _predictor_chooses(smart, verdict)
                shown = "grey" if no_choice else color
                note = f" ({smart['mean_candidates']:.1f} candidates/iteration: no choice)" if no_choice else ""
                ax.plot(_size(smart), y, "s^D"[j % 3], color=shown, mfc="none" if censored else shown, ms=8,
                        label=f"{label}: {smart['label']}{note}")
                _interval_bar(ax, _size(smart), smart, label, shown)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))  # 2, 5, 10, not 2 x 10^0
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("candidates scored per iteration (measured mean; at least 1)")
        ax.set_ylabel("sample efficiency gain over random search")
        ax.set_title(f"{task['label']} {task['dataset']} ({task['budget']} queries)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6.5)
    fig.suptitle("gain = random search's median queries / the method's, to reach the top x % by validation "
                 "accuracy\n(bars: confidence interval; open marker: median beyond the budget, drawn at the gain's "
                 "upper bound)", fontsize=10)
    fig.tight_layout()
    return figures.save(fig, path)


def _interval_bar(ax: Any, x: float, variant: dict, label: str, color: str) -> None:
    """The gain's confidence interval as a thin vertical bar; an interval reaching down to 0 (the median's
    upper bound is beyond the budget) is drawn from the marker up only."""
    low, high = variant["targets"][label]["gain_ci"]
    bottom = low if low > 0 else _gain_point(variant, label)[0]
    ax.plot([x, x], [bottom, high], "-", color=color, lw=1.2, alpha=0.6)


def _gain_point(variant: dict, label: str) -> tuple[float, bool]:
    entry = variant["targets"][label]
    return entry["gain_high"], entry["gain_censored"]


def _size(variant: dict) -> float:
    """Where a variant sits on the size axis: its measured mean candidate-set size (a log axis has no 0)."""
    return max(variant["mean_candidates"] or 1.0, 1.0)


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
             f"{len(summary['seeds'])} seeds; this invocation ran {summary['run_seconds']:.0f} s on "
             f"{summary['workers']} worker processes (finished runs are skipped), the runs' own wall times sum to "
             f"{summary['runs_wall_seconds']:.0f} s (shared machine: other jobs may have competed for the CPU).", "",
             "Only the abstract of the paper is available; the gain's definition, the subsets and the verdict "
             "thresholds are ours (`algorithms/configs/sampling.toml`).", "",
             "**Splits.** The searches fit and select on validation accuracy only. Targets (top x % of the "
             "architectures with data) and the queries to reach them are judged by validation accuracy too: the "
             "sample efficiency measured is that of finding what the search optimises. The regret figure uses "
             "the test accuracy of the validation-chosen incumbent on NB201 and validation accuracy on NB101 "
             "(our NB101 copy has no test accuracies).", "",
             "**Gain.** Random search's median queries (exact, geometric: uniform with replacement) over the "
             "method's Kaplan-Meier median. A median beyond the budget leaves the gain only bounded above "
             "('<= ...'); verdicts compare such bounds conservatively. Verdict p-values are log-rank tests, "
             "Benjamini-Hochberg adjusted over the rows below; a smart subset is tested against the random "
             "subset nearest to its measured candidate-set size, and when the fastest of k smart subsets is "
             "the one reported, its p-value is multiplied by k first (Bonferroni for the pick).", "",
             *headline_table(headline["rows"])]
    for task in analyses:
        lines += ["", f"## Queries to reach the target: {task['label']} {task['dataset']} "
                      f"({task['n_archs']:,} architectures with data, budget {task['budget']} queries)", "",
                  "Median and interquartile range (Kaplan-Meier: runs that never reach the target are censored at "
                  "the budget and counted in the 'censored' column; '>' = not reached by that quantile). "
                  "Random search: exact geometric median.", ""]
        header = (["method", "candidates per iteration (mean)", "iterations with none"]
                  + [f"{t['label']}: median [IQR] (censored)" for t in task["targets"]]
                  + [f"gain {t['label']}" for t in task["targets"]])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines.append("| random search (exact) | - | - | " + " | ".join(
            f"{t['random_search_median']:.0f}" for t in task["targets"]) + " | " +
            " | ".join("1x" for _ in task["targets"]) + " |")
        for v in task["variants"]:
            measured = v["mean_candidates"] is not None
            cells = [f"{v['label']} (n={v['n_runs']})", f"{v['mean_candidates']:,.1f}" if measured else "-",
                     f"{100 * v['empty_fraction']:.0f} % of {v['iterations']}" if measured else "-"]
            cells += [_median_text(v["targets"][t["label"]], task["budget"]) for t in task["targets"]]
            cells += [_gain_text(v, t["label"]) for t in task["targets"]]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"The {task['neighbour_diagnostic_top']} best cells have {task['neighbours_near_the_top']:.1f} "
                      "single-edit neighbours with data on average (the raw material of the smart subsets; an "
                      "iteration with no candidate asks a random architecture instead)."]
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

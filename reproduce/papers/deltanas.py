"""Delta-NAS (Sridhar & Chen, WACV 2025): the Fig. 3, 4 and 5 analogues, a predictor-quality table and
queries-to-best, all from ``nasrepro reproduce deltanas``.

Only the paper's abstract is available, so its claims are checked qualitatively and our numbers are set
beside them, never tuned to them:

* **Fig. 3** -- the Delta-predictor's held-out loss rises sharply once the pairs differ by more than one
  edit, then plateaus: :func:`algorithms.deltanas.delta_loss_vs_edit_distance` per task and seed.
* **Fig. 4** -- Delta-NAS converges much faster than predictors on existing encodings and than
  evolution: every method of the config through the experiment runner (resumable, one run per seed),
  incumbent (chosen by validation) test accuracy vs queries, mean and 95 % t-interval; a one-sided Welch
  test of Delta-NAS against each baseline at each checkpoint budget.
* **Fig. 5** -- the advantage grows with the size of the space: Delta-NAS minus regularized evolution
  (incumbent validation accuracy, the one metric every space has) at the last budget, against log10 of
  the space size: NB201 (15,625), NB101 (423,624; we search only the ~7 % of cells that have data) and the
  DARTS space (~10^18) through the NB301 stand-in surrogate.
* **Predictor quality** -- Kendall tau and Spearman rho on held-out architectures vs training-set size for
  every absolute predictor and for the Delta formulation (:class:`algorithms.deltanas.AnchoredDeltaPredictor`).
* **Queries to the best** -- queries until the incumbent is the space's best architecture by validation
  accuracy (median and IQR; runs that never get there are censored and counted).

Every setting (tasks, methods, budgets, seeds per scale, verdict thresholds) is in the ``[experiment]``
sections of ``algorithms/configs/deltanas.toml``. Raw outputs go to ``out/runs/``: searches in the
runner's layout (a finished run is skipped, an interrupted one resumes from its checkpoint), Fig. 3 and
table pieces as one JSON file each (skipped when present with the same identity).
"""
from __future__ import annotations

import functools
import json
import math
import os
import resource
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import stats

import algorithms
import benchmarks
from nasrepro.errors import ConfigError
from nasrepro.io import atomic_write_json, atomic_write_text
from reproduce import compare, figures
from reproduce.executors import default_workers, make_executor, map_with_progress
from reproduce.papers import runs_dir
from reproduce.report import Headline, HeadlineRow, SCALES, headline_table
from reproduce.runner import Experiment, load_benchmark, run_experiment

TITLE = "Delta-NAS: Difference of Architecture Encoding for Predictor-based Evolutionary NAS (WACV 2025)"
PAPER = "deltanas"
#: the method whose claims are checked; every other method of the config is a baseline
CHAMPION = "deltanas"
REFERENCE = "regularized_evolution"  # the Fig. 5 gain is measured against it
#: bump when algorithms.deltanas.sample_pairs_at_distance changes (cached Fig. 3 pieces are then redone)
PAIR_SAMPLER = "walk-on-neighbour-graph/3"
LABELS = {"deltanas": "Delta-NAS", "regularized_evolution": "RE", "random_search": "RS", "local_search": "LS",
          "bananas": "BANANAS", "npenas": "NPENAS", "neural_predictor": "Neural predictor"}


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The ``[experiment]`` section of deltanas.toml with the ``[experiment.<scale>]`` values on top."""

    methods: tuple[str, ...]
    strong_baselines: tuple[str, ...]  # beating one of these (significantly) makes Fig. 4 "partial"
    method_overrides: dict  # "method.key" -> value, on top of each method's own config
    convergence_tasks: tuple[str, ...]  # "benchmark/dataset" (Fig. 4)
    size_tasks: tuple[str, ...]  # Fig. 5, in order of space size
    budgets: tuple[int, ...]  # checkpoints for tables and tests; the last is the query budget
    seeds: int
    significance: float
    fig3_tasks: tuple[str, ...]
    fig3_distances: tuple[int, ...]
    fig3_seeds: int
    fig3_train_pairs: int
    fig3_test_pairs: int
    fig3_min_pairs: int  # a sparse pool may hold fewer pairs at a distance: the floor below which that is an error
    fig3_sharp_rise: float
    fig3_plateau: float
    table_tasks: tuple[str, ...]
    table_predictors: tuple[str, ...]
    table_sizes: tuple[int, ...]
    table_test_size: int
    table_few_samples: int  # "few samples": the training sizes the sample-efficiency verdict looks at
    table_seeds: int

    @classmethod
    def load(cls, scale: str) -> "Settings":
        config = algorithms.read_config_file(PAPER)
        if "experiment" not in config or scale not in config["experiment"]:
            raise ConfigError(f"deltanas.toml has no [experiment.{scale}] section")
        merged = {k: v for k, v in config["experiment"].items() if k not in SCALES}
        merged.update(config["experiment"][scale])
        names = set(cls.__dataclass_fields__)
        unknown, missing = sorted(set(merged) - names), sorted(names - set(merged))
        if unknown or missing:
            raise ConfigError(f"deltanas.toml [experiment]: unknown keys {unknown}, missing keys {missing}")
        settings = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in merged.items()})
        settings.check()
        return settings

    def check(self) -> None:
        for name in self.methods:
            if algorithms.entry(name).kind != "optimizer":  # unknown name -> ConfigError
                raise ConfigError(f"deltanas experiment: {name} is not a query-based optimizer")
        if CHAMPION not in self.methods or REFERENCE not in self.methods:
            raise ConfigError(f"deltanas experiment: methods must include {CHAMPION} and {REFERENCE}")
        if not set(self.strong_baselines) <= set(self.methods) - {CHAMPION}:
            raise ConfigError("deltanas experiment: strong_baselines must be methods other than deltanas")
        if "delta_predictor" not in self.table_predictors or len(self.table_predictors) < 2:
            raise ConfigError("deltanas experiment: table_predictors must hold delta_predictor and at least one "
                              "absolute predictor")
        if len(self.fig3_distances) < 2 or self.fig3_distances[0] != 1:
            raise ConfigError("deltanas experiment: fig3_distances must start at 1 and hold at least two distances")
        if not 0 < self.significance < 1:
            raise ConfigError(f"deltanas experiment: significance must lie in (0, 1), got {self.significance}")
        for key in ("seeds", "fig3_seeds", "table_seeds", "fig3_train_pairs", "fig3_test_pairs", "fig3_min_pairs",
                    "table_test_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < (2 if key == "seeds" else 1):
                raise ConfigError(f"deltanas experiment: {key} must be a positive integer (seeds >= 2), got {value!r}")
        if self.fig3_min_pairs > min(self.fig3_train_pairs, self.fig3_test_pairs):
            raise ConfigError(f"deltanas experiment: fig3_min_pairs ({self.fig3_min_pairs}) must not exceed "
                              "fig3_train_pairs or fig3_test_pairs")
        if not self.size_tasks or not self.convergence_tasks or not self.table_sizes:
            raise ConfigError("deltanas experiment: size_tasks, convergence_tasks and table_sizes must not be empty")
        for name in self.table_predictors:
            if algorithms.entry(name).kind != "predictor":
                raise ConfigError(f"deltanas experiment: {name} is not a predictor")
        for task in self.convergence_tasks + self.size_tasks + self.fig3_tasks + self.table_tasks:
            split_task(task)
        for key, value in self.method_overrides.items():
            method, _, name = key.partition(".")
            if method not in self.methods or not name:
                raise ConfigError(f"deltanas experiment: override {key!r} must be '<method>.<key>' for one of "
                                  f"the methods")
            algorithms.resolve_hparams(method, {name: value})  # an unknown key -> ConfigError
        if list(self.budgets) != sorted(set(self.budgets)) or self.budgets[0] < 1:
            raise ConfigError(f"deltanas experiment: budgets must be increasing positive integers, got {self.budgets}")

    @property
    def search_tasks(self) -> list[str]:
        return list(dict.fromkeys(self.convergence_tasks + self.size_tasks))


def split_task(task: str) -> tuple[str, str]:
    bench, sep, dataset = task.partition("/")
    if not sep or bench not in benchmarks.BENCHMARKS:
        raise ConfigError(f"deltanas experiment: task {task!r} is not '<benchmark>/<dataset>' with a benchmark "
                          f"of {', '.join(benchmarks.BENCHMARKS)}")
    return bench, dataset


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def run(scale: str, out: Path, settings: Settings | None = None) -> Path:
    """Reproduce at ``scale`` into ``out``; ``settings`` replaces the config's (tests run a tiny one)."""
    settings = settings or Settings.load(scale)
    settings.check()
    for task in settings.fig3_tasks + settings.table_tasks:  # before any search runs
        if load_benchmark(split_task(task)[0]).archs_with_data() is None:
            raise ConfigError(f"deltanas experiment: {task} is not a table (Fig. 3 and the predictor table need "
                              "architectures with data)")
    out = Path(out)
    raw = runs_dir(out)
    started = datetime.now(timezone.utc)
    figures = out / "figures"

    # wall and CPU seconds of each part (CPU: this process and its finished workers, so it does not
    # grow when other jobs load the machine; cached pieces and finished runs cost ~0)
    phases: dict[str, dict[str, float]] = {}
    mark = _clock()

    def lap(name: str) -> None:
        nonlocal mark
        now = _clock()
        phases[name] = {"wall": round(now[0] - mark[0], 1), "cpu": round(now[1] - mark[1], 1)}
        mark = now

    searches = {}
    for task in settings.search_tasks:
        searches[task] = _search(task, settings, raw / "search")  # run dirs
        lap(f"search {task}")
    # one pool of workers for both (each worker imports torch once); the longer Fig. 3 pieces go first
    fig3_jobs, table_jobs = _fig3_jobs(settings, raw / "fig3"), _table_jobs(settings, raw / "table")
    pieces = _pieces(fig3_jobs + table_jobs)
    fig3, table = pieces[:len(fig3_jobs)], pieces[len(fig3_jobs):]
    lap("fig3 and predictor table")
    print("deltanas: " + ", ".join(f"{k} {v['wall']:.0f} s ({v['cpu']:.0f} s CPU)" for k, v in phases.items()),
          flush=True)

    rows, figure_paths, sections = [], [], []
    rows += _fig3_rows(fig3, settings)
    figure_paths += _fig3_figure(fig3, settings, figures / "fig3_delta_loss_vs_edit_distance")
    for task in settings.convergence_tasks:
        text, paths = compare.compare(searches[task], settings.budgets, "table",
                                      figures / f"fig4_{task.replace('/', '-')}")
        sections.append(f"### {task}\n\n```\n{text}\n```\n")
        figure_paths += paths
    groups = {task: _group_by_method(searches[task]) for task in settings.search_tasks}
    tests = {task: _welch_tests(groups[task], settings) for task in settings.convergence_tasks}
    rows += [_fig4_row(task, groups[task], tests[task], settings) for task in settings.convergence_tasks]
    figure_paths += _fig4_figure({t: groups[t] for t in settings.convergence_tasks}, settings,
                                 figures / "fig4_incumbent_vs_queries")
    gains = _size_gains(groups, settings)
    rows.append(_fig5_row(gains, settings))
    figure_paths += _fig5_figure(gains, figures / "fig5_gain_vs_space_size")
    rows += _table_rows(table, settings)
    figure_paths += _table_figure(table, settings, figures / "predictor_quality")
    to_best = {task: queries_to_best(groups[task], _best_valid(task)) for task in settings.convergence_tasks}
    rows += [_to_best_row(task, to_best[task], settings) for task in settings.convergence_tasks]

    command = f"nasrepro reproduce deltanas --{scale}"
    headline = Headline(PAPER, TITLE, scale, command, started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        tuple(HeadlineRow(**r) for r in rows),
                        tuple(str(p.relative_to(out)) for p in figure_paths))
    seconds = (datetime.now(timezone.utc) - started).total_seconds()
    lap("report and figures")
    # the searches' own wall time, whichever invocation ran them (a rerun reuses finished searches)
    search_seconds = {task: round(sum(json.loads((Path(d) / "summary.json").read_text())["wall_seconds"]
                                      for d in dirs), 1) for task, dirs in searches.items()}
    details = {"seconds": round(seconds, 1), "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
               "phases": phases, "search_worker_seconds": search_seconds, "settings": settings.__dict__,
               "fig3": fig3, "predictor_table": _table_summary(table), "welch_tests": tests,
               "size_gains": gains, "queries_to_best": _finite_or_none(to_best)}
    atomic_write_json(out / "details.json", details)
    atomic_write_text(out / "results.md", _markdown(headline, details, sections, settings))
    return headline.write(out / "headline.json")


def _clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and of its finished child processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --------------------------------------------------------------------------------------------------
# Searches (Fig. 4 and 5)
# --------------------------------------------------------------------------------------------------
def _finite_or_none(obj: Any) -> Any:
    """JSON has no infinity: censored counts become null."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return None if isinstance(obj, float) and math.isinf(obj) else obj


def _search(task: str, settings: Settings, root: Path) -> list[Path]:
    """Run (or resume) the task's searches; return their run dirs (only this experiment's: a folder may
    hold runs of methods or seeds dropped from the config since)."""
    bench, dataset = split_task(task)
    folder = root / task.replace("/", "-")
    experiment = Experiment(tuple(settings.methods), bench, dataset, tuple(range(settings.seeds)),
                            max_queries=settings.budgets[-1], overrides=dict(settings.method_overrides))
    print(f"deltanas: searches on {task} ({len(settings.methods)} methods x {settings.seeds} seeds)", flush=True)
    run_experiment(experiment, folder)
    return [spec.run_dir(folder) for spec in experiment.runs()]


def _group_by_method(run_dirs: list[Path]) -> compare.Group:
    """The task's runs keyed by method name (compare's labels also carry overrides, e.g. RE's avoid_repeats)."""
    group = compare.group_runs([compare.load_run(d) for d in run_dirs])[0]
    group.runs = {runs[0].config["algorithm"]: runs for runs in group.runs.values()}
    return group


def _values_at(group: compare.Group, label: str, budget: int) -> np.ndarray:
    return np.array([group.values(r)[budget - 1] for r in group.runs[label] if len(r.queries) >= budget])


def _welch_tests(group: compare.Group, settings: Settings) -> dict:
    """Per budget and baseline: means and the one-sided Welch p-value of 'Delta-NAS is better'."""
    result = {}
    for budget in settings.budgets:
        champion = _values_at(group, CHAMPION, budget)
        per_baseline = {}
        for label in group.runs:
            if label == CHAMPION:
                continue
            other = _values_at(group, label, budget)
            test = stats.ttest_ind(champion, other, equal_var=False, alternative="greater")
            per_baseline[label] = {"mean": float(other.mean()), "p_value": float(test.pvalue)}
        result[str(budget)] = {"deltanas_mean": float(champion.mean()), "metric": group.metric,
                               "baselines": per_baseline}
    _adjust_p_values([t for entry in result.values() for t in entry["baselines"].values()])
    return result


def _adjust_p_values(tests: list[dict]) -> None:
    """Add ``p_adjusted`` (Benjamini-Hochberg over every test of one task: many baselines x budgets)."""
    if tests:
        adjusted = stats.false_discovery_control([t["p_value"] for t in tests], method="bh")
        for t, p in zip(tests, adjusted):
            t["p_adjusted"] = float(p)


def _fig4_row(task: str, group: compare.Group, tests: dict, settings: Settings) -> dict:
    parts, all_beaten, strong_beaten = [], False, False
    for budget in settings.budgets:
        entry = tests[str(budget)]
        beaten = {b for b, t in entry["baselines"].items() if t["p_adjusted"] < settings.significance}
        best_other = max(entry["baselines"], key=lambda b: entry["baselines"][b]["mean"])
        parts.append(f"@{budget}: {entry['deltanas_mean']:.2f} vs best baseline {LABELS.get(best_other, best_other)} "
                     f"{entry['baselines'][best_other]['mean']:.2f}; beats {len(beaten)}/{len(entry['baselines'])}")
        all_beaten |= beaten == set(entry["baselines"])
        strong_beaten |= bool(beaten & set(settings.strong_baselines))
    # "converges faster": at some budget better than every baseline; partial: better than a strong one
    verdict = "reproduced" if all_beaten else "partial" if strong_beaten else "not reached"
    pool = " (searched within the cells that have data)" if group.benchmark == "nb101" else ""
    return {"claim": f"Fig. 4, {task}{pool}: Delta-NAS converges faster than the baselines (incumbent "
                     f"{group.metric} accuracy, %)",
            "paper": "much faster convergence (qualitative; Fig. 4)", "ours": "; ".join(parts),
            "seeds": len(group.runs[CHAMPION]), "verdict": verdict,
            "note": f"'beats' = one-sided Welch t-test, Benjamini-Hochberg-adjusted over all baselines x budgets "
                    f"of the task, p < {settings.significance}; reproduced = every baseline beaten at one budget, "
                    f"partial = one of {', '.join(settings.strong_baselines)} beaten; "
                    f"baselines: {', '.join(LABELS.get(b, b) for b in group.runs if b != CHAMPION)}"}


def _size_gains(groups: dict, settings: Settings) -> list[dict]:
    """Delta-NAS minus RE (incumbent validation accuracy at the last budget), per space, with a Welch CI."""
    budget = settings.budgets[-1]
    gains = []
    for task in settings.size_tasks:
        bench, _ = split_task(task)
        group = groups[task]
        champion = np.array([r.incumbent_valid[budget - 1] for r in group.runs[CHAMPION]])
        reference = np.array([r.incumbent_valid[budget - 1] for r in group.runs[REFERENCE]])
        test = stats.ttest_ind(champion, reference, equal_var=False)
        low, high = test.confidence_interval(0.95)
        benchmark = load_benchmark(bench)
        with_data = benchmark.archs_with_data()
        # the size searched: a pool-restricted search (our NB101) covers only the cells with data
        size = float(benchmark.space.size if with_data is None else len(with_data))
        gains.append({"task": task, "space": benchmark.space.name, "space_size": size,
                      "full_space_size": float(benchmark.space.size),
                      "gain_mean": float(champion.mean() - reference.mean()), "gain_low": float(low),
                      "gain_high": float(high), "p_value": float(test.pvalue), "budget": budget,
                      "n": int(min(len(champion), len(reference)))})
    return sorted(gains, key=lambda g: g["space_size"])


def _fig5_row(gains: list[dict], settings: Settings) -> dict:
    means = [g["gain_mean"] for g in gains]
    growing = all(b > a for a, b in zip(means, means[1:]))
    largest_significant = gains[-1]["gain_low"] > 0
    verdict = ("reproduced" if growing and largest_significant else
               "partial" if growing or largest_significant else "not reached")
    ours = "; ".join(f"{g['task']} (10^{math.log10(g['space_size']):.1f}): {g['gain_mean']:+.2f} "
                     f"[{g['gain_low']:+.2f}, {g['gain_high']:+.2f}]" for g in gains)
    return {"claim": f"Fig. 5: Delta-NAS's advantage over RE grows with the size of the space (incumbent "
                     f"validation accuracy gain, pp, at {settings.budgets[-1]} queries, 95 % Welch CI)",
            "paper": "advantage grows with space size (qualitative; Fig. 5)", "ours": ours,
            "seeds": min(g["n"] for g in gains), "verdict": verdict,
            "note": "sizes are those searched (NB101: only its cells with data, of 423,624); the DARTS space is "
                    "scored by the NB301 stand-in surrogate (YAHPO ONNX), not NAS-Bench-301; accuracy gains in "
                    "points are not on a common scale across spaces"}


def _best_valid(task: str) -> float:
    """The best validation accuracy of the space (of the cells with data, for NB101)."""
    bench, dataset = split_task(task)
    return compare.table_maximum(bench, dataset, "valid", None)[0]


def queries_to_best(group: compare.Group, best: float) -> dict:
    """Per method: queries until the incumbent's validation accuracy reaches ``best`` (censored runs count
    as infinite: median and quartiles are order statistics, so they stay defined)."""
    result = {}
    for label, runs in group.runs.items():
        hits = []
        for run in runs:
            reached = np.flatnonzero(run.incumbent_valid >= best - 1e-9)
            hits.append(float(run.queries[reached[0]]) if len(reached) else math.inf)
        q1, median, q3 = np.quantile(hits, [0.25, 0.5, 0.75], method="inverted_cdf")
        result[label] = {"median": float(median), "q1": float(q1), "q3": float(q3), "hits": hits,
                         "reached": int(np.isfinite(hits).sum()), "runs": len(hits),
                         "budget": int(max(len(r.queries) for r in runs))}
    return result


def _fmt_queries(value: float, budget: int) -> str:
    return f">{budget}" if math.isinf(value) else f"{value:.0f}"


def _to_best_row(task: str, result: dict, settings: Settings) -> dict:
    def cell(label: str) -> str:
        r = result[label]
        return (f"{LABELS.get(label, label)} {_fmt_queries(r['median'], r['budget'])} "
                f"[{_fmt_queries(r['q1'], r['budget'])}, {_fmt_queries(r['q3'], r['budget'])}] "
                f"({r['reached']}/{r['runs']})")

    champion = result[CHAMPION]
    others = {label: r for label, r in result.items() if label != CHAMPION}
    # fewer queries: one-sided Mann-Whitney U on the hit counts (censored runs = inf rank last), BH-adjusted
    tests = [{"p_value": float(stats.mannwhitneyu(champion["hits"], r["hits"], alternative="less").pvalue)}
             if champion["reached"] else {"p_value": 1.0} for r in others.values()]
    _adjust_p_values(tests)
    beaten = [t["p_adjusted"] < settings.significance for t in tests]
    verdict = "reproduced" if all(beaten) else "partial" if any(beaten) else "not reached"
    return {"claim": f"{task}: queries until the incumbent is the space's best architecture (by validation), "
                     "median [IQR] (runs that got there)",
            "paper": "not reported (the paper's convergence claim, measured as queries)",
            "ours": "; ".join(cell(label) for label in result), "seeds": champion["runs"], "verdict": verdict,
            "note": f"budget {settings.budgets[-1]} queries; '>budget' = censored (not reached within the budget); "
                    f"reproduced = fewer queries than every baseline (one-sided Mann-Whitney U, BH-adjusted, "
                    f"p < {settings.significance}), partial = than some"}


# --------------------------------------------------------------------------------------------------
# Pieces computed outside the runner (Fig. 3, predictor table): one JSON each, run in parallel
# --------------------------------------------------------------------------------------------------
def _pieces(jobs: list[dict]) -> list[dict]:
    """Run each job not already on disk (same identity), in worker processes; return every result."""
    todo = [job for job in jobs if _cached(job) is None]
    if todo:
        with make_executor("local", workers=min(default_workers(), len(todo))) as pool:
            for _ in map_with_progress(pool, _run_piece, todo, "Fig. 3 / table pieces", unit="piece"):
                pass
    return [_cached(job) for job in jobs]


def _cached(job: dict) -> dict | None:
    path = Path(job["path"])
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored if stored.get("identity") == job["identity"] else None


def _run_piece(job: dict) -> None:
    result = PIECES[job["kind"]](**job["identity"])
    atomic_write_json(Path(job["path"]), {"identity": job["identity"], **result})


@functools.lru_cache(maxsize=None)
def _data_identity(task: str) -> dict:
    """What a piece's result depends on in the data: a new table (e.g. the full NB101) reruns it."""
    benchmark = load_benchmark(split_task(task)[0])
    return {"data_sha256": benchmark.data_sha256(), "archs_with_data": len(benchmark.archs_with_data())}


def _fig3_jobs(settings: Settings, root: Path) -> list[dict]:
    overrides = {k.partition(".")[2]: v for k, v in settings.method_overrides.items() if k.startswith(f"{CHAMPION}.")}
    config = algorithms.resolve_hparams(CHAMPION, overrides)
    return [{"kind": "fig3", "path": str(root / f"{task.replace('/', '-')}-seed{seed}.json"),
             "identity": {"task": task, "seed": seed, "distances": list(settings.fig3_distances),
                          "n_train_pairs": settings.fig3_train_pairs, "n_test_pairs": settings.fig3_test_pairs,
                          "min_pairs": settings.fig3_min_pairs, "config": config, "data": _data_identity(task),
                          "pair_sampler": PAIR_SAMPLER}}
            for task in settings.fig3_tasks for seed in range(settings.fig3_seeds)]


def _fig3_piece(task: str, seed: int, distances: list, n_train_pairs: int, n_test_pairs: int, min_pairs: int,
                config: dict, data: dict, pair_sampler: str) -> dict:
    from algorithms.deltanas import DeltaModelSpec, _pick_encoding, delta_loss_vs_edit_distance

    bench, dataset = split_task(task)
    benchmark = load_benchmark(bench)
    encoding = _pick_encoding(benchmark.space, config["encoding"])
    by_distance = delta_loss_vs_edit_distance(
        benchmark, benchmark.space, dataset, distances, n_train_pairs, n_test_pairs, np.random.default_rng(seed),
        model=DeltaModelSpec.from_config(config), encoding=encoding, antisymmetric=config["antisymmetric"],
        with_anchor=config["with_anchor"], min_pairs=min_pairs)
    return {"by_distance": {str(d): v for d, v in by_distance.items()}}


def _fig3_rows(pieces: list[dict], settings: Settings) -> list[dict]:
    rows = []
    for task in settings.fig3_tasks:
        mine = [p for p in pieces if p["identity"]["task"] == task]
        def mean_of(key: str) -> dict:
            return {d: float(np.mean([p["by_distance"][str(d)][key] for p in mine])) for d in settings.fig3_distances}

        mse, absolute, zero = mean_of("delta_mse"), mean_of("absolute_mse"), mean_of("zero_mse")
        # the true differences themselves spread more with distance: judge the loss relative to
        # predicting 0 (a predictor that always says 0 has ratio 1 everywhere and fails both tests)
        ratio = {d: mse[d] / zero[d] for d in settings.fig3_distances}
        d0, d1 = settings.fig3_distances[0], settings.fig3_distances[1]
        rise = ratio[d1] / ratio[d0]
        later = [ratio[d] for d in settings.fig3_distances[1:]]
        plateau = max(later) / min(later)
        sharp, flat = rise >= settings.fig3_sharp_rise, plateau <= settings.fig3_plateau
        verdict = "reproduced" if sharp and flat else "partial" if sharp or flat else "not reached"
        used = {(p["by_distance"][str(d0)]["n_train_pairs"], p["by_distance"][str(d0)]["n_test_pairs"]) for p in mine}
        short = ("" if used == {(settings.fig3_train_pairs, settings.fig3_test_pairs)} else
                 f"; the pool holds fewer pairs at some distance than the {settings.fig3_train_pairs} / "
                 f"{settings.fig3_test_pairs} asked: every distance used "
                 + ", ".join(f"{a} / {b}" for a, b in sorted(used)) + " train / test pairs (per seed)")
        rows.append({
            "claim": f"Fig. 3, {task}: Delta-predictor loss rises sharply beyond 1 edit, then plateaus "
                     "(held-out MSE, %^2)",
            "paper": "sharp rise after 1 edit, then a plateau (qualitative; Fig. 3)",
            "ours": (" / ".join(f"d{d} {mse[d]:.1f}" for d in settings.fig3_distances)
                     + "; relative to predicting 0: " + " / ".join(f"{ratio[d]:.2f}" for d in settings.fig3_distances)
                     + f"; rise d{d1}/d{d0} = {rise:.2f}x, spread beyond = {plateau:.2f}x"),
            "seeds": len(mine), "verdict": verdict,
            "note": (f"judged on MSE / MSE of predicting 0: rise >= {settings.fig3_sharp_rise}x, spread <= "
                     f"{settings.fig3_plateau}x; predicting 0: "
                     + " / ".join(f"d{d} {zero[d]:.1f}" for d in settings.fig3_distances)
                     + "; an absolute predictor on the same pairs: "
                     + " / ".join(f"d{d} {absolute[d]:.1f}" for d in settings.fig3_distances) + short)})
    return rows


def _table_jobs(settings: Settings, root: Path) -> list[dict]:
    return [{"kind": "table", "path": str(root / f"{task.replace('/', '-')}-{name}-n{size}-seed{seed}.json"),
             "identity": {"task": task, "predictor": name, "size": size, "seed": seed,
                          "test_size": settings.table_test_size, "config": algorithms.resolve_hparams(name),
                          "data": _data_identity(task)}}
            for task in settings.table_tasks for name in settings.table_predictors
            for size in settings.table_sizes for seed in range(settings.table_seeds)]


def _table_piece(task: str, predictor: str, size: int, seed: int, test_size: int, config: dict, data: dict) -> dict:
    """One predictor, one training size, one seed: a disjoint random train / test split of the
    architectures with data; the split depends on (task, size, seed) only, so every predictor sees the
    same one."""
    from algorithms.predictors import evaluate_predictor

    bench, dataset = split_task(task)
    benchmark = load_benchmark(bench)
    archs = benchmark.archs_with_data()
    split_rng = np.random.default_rng([seed, size])
    order = split_rng.permutation(len(archs))
    train = [archs[i] for i in order[:size]]
    test = [archs[i] for i in order[size:size + test_size]]
    y_train = benchmark.query_many(train, dataset, "accuracy", "valid")
    y_test = benchmark.query_many(test, dataset, "accuracy", "valid")
    model_rng = np.random.default_rng([seed, size, 1])
    result = evaluate_predictor(lambda: algorithms.make_predictor(predictor, benchmark.space, model_rng, config),
                                train, y_train, test, y_test)
    return {k: result[k] for k in ("kendall_tau", "spearman_rho", "fit_seconds", "predict_seconds")}


PIECES: dict[str, Callable[..., dict]] = {"fig3": _fig3_piece, "table": _table_piece}


def _table_summary(pieces: list[dict]) -> list[dict]:
    cells: dict[tuple, list[dict]] = {}
    for p in pieces:
        key = (p["identity"]["task"], p["identity"]["predictor"], p["identity"]["size"])
        cells.setdefault(key, []).append(p)

    def entry(t: str, name: str, size: int, ps: list[dict]) -> dict:
        # kendall_tau is NaN if any seed's predictions were constant; the ranked_* fields summarise the other
        # seeds (tables, figure), scored_kendall_tau counts a constant seed as -1 (verdicts)
        taus = [p["kendall_tau"] for p in ps]
        ranked = [p for p in ps if not math.isnan(p["kendall_tau"])]  # seeds whose predictions were not all equal
        return {"task": t, "predictor": name, "size": size, "seeds": len(ps),
                "kendall_tau": float(np.mean(taus)), "kendall_tau_std": float(np.std(taus)),
                "spearman_rho": float(np.mean([p["spearman_rho"] for p in ps])),
                "constant_seeds": len(ps) - len(ranked),
                "scored_kendall_tau": float(np.mean([_tau_or_worst(tau) for tau in taus])),
                "ranked_kendall_tau": float(np.mean([p["kendall_tau"] for p in ranked])) if ranked else None,
                "ranked_kendall_tau_std": float(np.std([p["kendall_tau"] for p in ranked])) if ranked else None,
                "ranked_spearman_rho": float(np.mean([p["spearman_rho"] for p in ranked])) if ranked else None,
                "fit_seconds": float(np.mean([p["fit_seconds"] for p in ps]))}

    return [entry(t, name, size, ps) for (t, name, size), ps in sorted(cells.items())]


def _tau_text(s: dict) -> str:
    """The mean tau of the seeds that ranked, and how many did not."""
    if s["constant_seeds"] == s["seeds"]:
        return "constant"
    return f"{s['ranked_kendall_tau']:.2f}" + (f" ({s['constant_seeds']}/{s['seeds']} seeds constant)"
                                               if s["constant_seeds"] else "")


def _table_cell(s: dict) -> str:
    """``tau ± std / rho`` over seeds; seeds whose predictions were all equal have no rank correlation and
    are counted, not averaged in."""
    if s["constant_seeds"] == s["seeds"]:
        return "constant (no ranking)"
    cell = f"{s['ranked_kendall_tau']:.3f}±{s['ranked_kendall_tau_std']:.3f} / {s['ranked_spearman_rho']:.3f}"
    return cell + (f" ({s['constant_seeds']} of {s['seeds']} seeds constant)" if s["constant_seeds"] else "")


def _tau_or_worst(tau: float) -> float:
    return -1.0 if math.isnan(tau) else tau


def _table_rows(pieces: list[dict], settings: Settings) -> list[dict]:
    """Per task: at each training size, does the Delta formulation out-rank the best absolute predictor on
    every seed (same split, so a paired comparison)? Reproduced = yes at every size up to
    ``table_few_samples``; partial = yes at some size."""
    summary = _table_summary(pieces)
    rows = []
    for task in settings.table_tasks:
        parts, wins = [], {}
        for size in settings.table_sizes:
            at = {s["predictor"]: s for s in summary if s["task"] == task and s["size"] == size}
            # a constant prediction (e.g. trees on 10 cells) has no tau (NaN): it ranks nothing, so it counts as -1
            best_name = max((n for n in at if n != "delta_predictor"), key=lambda n: at[n]["scored_kendall_tau"])
            tau = {(p["identity"]["predictor"], p["identity"]["seed"]): _tau_or_worst(p["kendall_tau"]) for p in pieces
                   if p["identity"]["task"] == task and p["identity"]["size"] == size}
            seeds = sorted({seed for _, seed in tau})
            wins[size] = all(tau[("delta_predictor", seed)] > max(t for (n, sd), t in tau.items()
                                                                  if sd == seed and n != "delta_predictor")
                             for seed in seeds)
            parts.append(f"n={size}: Δ {_tau_text(at['delta_predictor'])} vs {best_name} "
                         f"{_tau_text(at[best_name])}{' (wins every seed)' if wins[size] else ''}")
        few = [size for size in settings.table_sizes if size <= settings.table_few_samples]
        verdict = ("reproduced" if few and all(wins[n] for n in few) else
                   "partial" if any(wins.values()) else "not reached")
        absolute = ", ".join(p for p in settings.table_predictors if p != "delta_predictor")
        rows.append({"claim": f"Predictor quality, {task}: the Delta formulation ranks held-out architectures "
                              "better than absolute predictors with few samples (Kendall tau)",
                     "paper": "far more sample-efficient than absolute predictors (abstract)",
                     "ours": "; ".join(parts), "seeds": settings.table_seeds, "verdict": verdict,
                     "note": f"mean tau over seeds vs the best absolute predictor ({absolute}); reproduced = Δ beats "
                             f"every absolute predictor on every seed at every size <= {settings.table_few_samples}, "
                             f"partial = at some size; {settings.table_test_size} held-out architectures; full "
                             "table in results.md"})
    return rows


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def _fig3_figure(pieces: list[dict], settings: Settings, stem: Path) -> list[Path]:
    plt = figures.pyplot()
    tasks = settings.fig3_tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [p for p in pieces if p["identity"]["task"] == task]
        d = np.array(settings.fig3_distances)
        for key, label in (("delta_mse", "Δ-predictor"), ("absolute_mse", "absolute predictor, b - a"),
                           ("zero_mse", "predict 0")):
            values = np.array([[p["by_distance"][str(x)][key] for x in d] for p in mine])
            mean, low, high = compare.mean_band(values)
            (line,) = ax.plot(d, mean, "-o", ms=3, label=label)
            if len(mine) > 1:
                ax.fill_between(d, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(f"{task} ({len(mine)} seeds)")
        ax.set_xlabel("edit distance of the pairs")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out MSE of Δ valid acc. (%²)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return figures.save(fig, stem)


def _fig4_figure(groups: dict, settings: Settings, stem: Path) -> list[Path]:
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.8), squeeze=False)
    for ax, (task, group) in zip(axes[0], groups.items()):
        for label, runs in group.runs.items():
            matrix = np.array([group.values(r) for r in runs])
            mean, low, high = compare.mean_band(matrix)
            x = np.arange(1, matrix.shape[1] + 1)
            (line,) = ax.plot(x, mean, lw=2 if label == CHAMPION else 1, label=LABELS.get(label, label))
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        final = [np.nanmean([group.values(r)[-1] for r in runs]) for runs in group.runs.values()]
        early = [np.nanmean([group.values(r)[min(9, len(r.queries) - 1)] for r in runs]) for runs in group.runs.values()]
        ax.set_ylim(min(early) - 0.5, max(final) + 0.3)
        ax.set_title(f"{task} ({len(group.runs[CHAMPION])} seeds)")
        ax.set_xlabel("queries")
        ax.set_ylabel(f"incumbent {group.metric} accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    fig.suptitle("incumbent chosen by validation; mean and 95 % t-interval over seeds", fontsize=9)
    fig.tight_layout()
    return figures.save(fig, stem)


def _fig5_figure(gains: list[dict], stem: Path) -> list[Path]:
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    x = [math.log10(g["space_size"]) for g in gains]
    y = [g["gain_mean"] for g in gains]
    err = [[g["gain_mean"] - g["gain_low"] for g in gains], [g["gain_high"] - g["gain_mean"] for g in gains]]
    ax.errorbar(x, y, yerr=err, fmt="-o", capsize=4)
    for xi, yi, g in zip(x, y, gains):
        ax.annotate(g["task"].split("/")[0], (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("log10 size of the search space")
    ax.set_ylabel(f"Delta-NAS - RE, valid acc. @{gains[0]['budget']} (pp)")
    ax.set_title("gain over regularized evolution (95 % Welch CI)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figures.save(fig, stem)


def _table_figure(pieces: list[dict], settings: Settings, stem: Path) -> list[Path]:
    plt = figures.pyplot()
    summary = _table_summary(pieces)
    fig, axes = plt.subplots(1, len(settings.table_tasks), figsize=(4.5 * len(settings.table_tasks), 3.6),
                             squeeze=False)
    for ax, task in zip(axes[0], settings.table_tasks):
        for name in settings.table_predictors:
            # the seeds that ranked, as in the table (a size where every seed was constant has no point)
            rows = sorted((s for s in summary if s["task"] == task and s["predictor"] == name
                           and s["ranked_kendall_tau"] is not None), key=lambda s: s["size"])
            ax.errorbar([s["size"] for s in rows], [s["ranked_kendall_tau"] for s in rows],
                        yerr=[s["ranked_kendall_tau_std"] for s in rows], fmt="-o", ms=3, capsize=2,
                        lw=2 if name == "delta_predictor" else 1, label=name)
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("training architectures")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Kendall tau on held-out architectures\n(seeds with constant predictions left out)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return figures.save(fig, stem)


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------
def _markdown(headline: Headline, details: dict, sections: list[str], settings: Settings) -> str:
    lines = [f"# {headline.title}", "",
             f"Scale **{headline.scale}** — `{headline.command}` — {headline.date} — {details['seconds']:.0f} s on "
             f"{details['cpus']} CPUs for this invocation (reusing any finished searches and pieces); the searches "
             f"took about {sum(details['search_worker_seconds'].values()) / 3600:.1f} h of worker time in all; "
             f"{settings.seeds} seeds, {settings.budgets[-1]} queries per search.", "",
             "Only the paper's abstract is available: its claims are qualitative, and every design decision is a "
             "documented, switchable setting in `algorithms/configs/deltanas.toml` (see `known_deviations`).", "",
             *headline_table(headline.rows)]
    lines += ["", "## Predictor quality (mean Kendall tau ± std / Spearman rho over seeds; held-out "
                  f"{settings.table_test_size} architectures)", "",
              "A seed whose predictions are all equal (too few training cells for the model) has no rank "
              "correlation: it is counted, not averaged in; the verdicts count it as the worst ranking.", ""]
    summary = details["predictor_table"]
    for task in settings.table_tasks:
        lines += [f"### {task}", "", "| predictor | " + " | ".join(f"n={n}" for n in settings.table_sizes) + " |",
                  "|---|" + "---|" * len(settings.table_sizes)]
        for name in settings.table_predictors:
            cells = []
            for size in settings.table_sizes:
                s = next(s for s in summary if (s["task"], s["predictor"], s["size"]) == (task, name, size))
                cells.append(_table_cell(s))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Fig. 4 tables (from `nasrepro compare`)", ""] + sections
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in headline.figures if f.endswith(".png")]
    return "\n".join(lines) + "\n"

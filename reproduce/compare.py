"""Compare finished runs: incumbent accuracy and regret at query budgets or at simulated-time budgets,
mean and 95 % t-interval. At a time budget a run that stopped earlier counts with its final incumbent.

Regret is the best accuracy in the benchmark's table (for the run's dataset, split and epoch) minus the
incumbent's accuracy. The metric is the incumbent's *test* accuracy (incumbent chosen by validation);
where a benchmark has no test accuracy (our NB101 copy) the validation accuracy is used instead and the
output says so. Runs are found by their ``trajectory.csv`` (written when a run finishes) anywhere under
the given directories.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

from nasrepro.errors import ConfigError, DataError
from reproduce import figures

DEFAULT_BUDGET_GRID = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
CONFIDENCE = 0.95
#: regret floor on log-scale plots (a regret of exactly 0 has no logarithm)
REGRET_FLOOR = 1e-3
FORMATS = ("table", "csv", "json")
BUDGET_UNITS = ("queries", "seconds")


class NotATableError(DataError):
    """The benchmark is a surrogate: it has no known optimum to measure regret against."""


@dataclass(frozen=True)
class LoadedRun:
    run_dir: Path
    config: dict
    queries: np.ndarray  # 1..n
    cumulative_seconds: np.ndarray
    incumbent_valid: np.ndarray
    incumbent_test: np.ndarray

    @property
    def label(self) -> str:
        """Algorithm name, plus its overrides when it has any (so variants stay apart)."""
        overrides = self.config.get("overrides") or {}
        if not overrides:
            return self.config["algorithm"]
        shown = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        return f"{self.config['algorithm']}[{shown}]"

    @property
    def task(self) -> tuple[str, str]:
        return self.config["benchmark"], self.config["dataset"]

    @property
    def has_test(self) -> bool:
        return not bool(np.all(np.isnan(self.incumbent_test)))


@dataclass
class Group:
    """All runs on one benchmark/dataset, with the accuracy they are measured by."""

    benchmark: str
    dataset: str
    runs: dict[str, list[LoadedRun]]  # label -> runs (one per seed)
    metric: str  # "test" or "valid"
    best_in_table: float
    reference_note: str

    def values(self, run: LoadedRun) -> np.ndarray:
        return run.incumbent_test if self.metric == "test" else run.incumbent_valid


def find_runs(paths: Iterable[Path]) -> list[LoadedRun]:
    runs = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path} does not exist")
        found = sorted(path.rglob("trajectory.csv")) if path.is_dir() else []
        if not found:
            raise DataError(f"no finished runs (trajectory.csv) under {path}")
        runs.extend(load_run(p.parent) for p in found)
    return runs


def load_run(run_dir: Path) -> LoadedRun:
    try:
        config = json.loads((run_dir / "config.json").read_text())
        with open(run_dir / "trajectory.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        columns = {c: np.array([float(r[c]) for r in rows], dtype=np.float64)
                   for c in ("query", "cumulative_seconds", "incumbent_valid", "incumbent_test")}
    except (OSError, json.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"run {run_dir} is unreadable: {exc}") from None
    if not rows:
        raise DataError(f"run {run_dir} has an empty trajectory")
    return LoadedRun(run_dir, config, columns["query"].astype(int), columns["cumulative_seconds"],
                     columns["incumbent_valid"], columns["incumbent_test"])


def group_runs(runs: Sequence[LoadedRun], best_in_table: Any = None) -> list[Group]:
    """Group by benchmark/dataset; ``best_in_table(benchmark, dataset, split, epoch)`` gives the regret
    reference (default: the benchmark's table maximum)."""
    best_in_table = best_in_table or table_maximum
    by_task: dict[tuple[str, str], list[LoadedRun]] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    groups = []
    for (bench, dataset), task_runs in sorted(by_task.items()):
        metric = "test" if all(r.has_test for r in task_runs) else "valid"
        config = task_runs[0].config
        split = "test" if metric == "test" else config.get("split", "valid")
        try:
            best, note = best_in_table(bench, dataset, split, config.get("epoch"))
        except NotATableError:
            column = "incumbent_test" if metric == "test" else "incumbent_valid"
            best = max(float(np.nanmax(getattr(r, column))) for r in task_runs)
            note = (f"regret = best incumbent {metric} accuracy of any run here ({best:.3f}) - incumbent's "
                    f"({bench} has no table optimum)")
        if metric == "valid":
            note += "; this benchmark has no test accuracy here, so validation accuracy is compared"
        labels: dict[str, list[LoadedRun]] = {}
        for run in sorted(task_runs, key=lambda r: (r.label, r.config["seed"])):
            labels.setdefault(run.label, []).append(run)
        groups.append(Group(bench, dataset, labels, metric, best, note))
    return groups


def table_maximum(benchmark: str, dataset: str, split: str, epoch: int | None) -> tuple[float, str]:
    """The best accuracy over every architecture with data (loads the benchmark)."""
    from reproduce.runner import load_benchmark

    bench = load_benchmark(benchmark)
    archs = bench.archs_with_data()
    if archs is None:
        raise NotATableError(f"{benchmark} is not a finite table")
    values = bench.query_many(archs, dataset, "accuracy", split, epoch)
    best = float(np.nanmax(values))
    return best, f"regret = best {split} accuracy in the {benchmark} table ({best:.3f}) - incumbent's"


def default_budgets(groups: Sequence[Group]) -> list[int]:
    longest = max(len(r.queries) for g in groups for runs in g.runs.values() for r in runs)
    grid = [b for b in DEFAULT_BUDGET_GRID if b < longest]
    return grid + [longest]


def parse_budgets(text: str, unit: str = "queries") -> list[int] | list[float]:
    """Comma-separated budgets: whole queries, or simulated seconds (``unit = "seconds"``)."""
    option, kind = ("--budgets", int) if unit == "queries" else ("--time-budgets", float)
    budgets = []
    for part in text.split(","):
        try:
            value = kind(part.strip())
        except ValueError:
            raise ConfigError(f"{option}: {part.strip()!r} is not {'an integer' if kind is int else 'a number'}") \
                from None
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{option}: budgets must be positive, got {value}")
        budgets.append(value)
    return sorted(set(budgets))


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of a 95 % Student-t interval; NaN bounds with fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    sem = float(stats.sem(values))
    if sem == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def value_at(group: Group, run: LoadedRun, budget: float, unit: str = "queries") -> float | None:
    """The run's incumbent accuracy after ``budget`` queries (None if the run is shorter), or at ``budget``
    simulated seconds: the last incumbent whose cumulative training time fits, None when the run had no
    result yet by then. A run that stopped before a time budget keeps its final incumbent -- what it returns,
    as in the plots (:func:`curves_by_time`); dropping it would keep only runs that happened to pick slow
    architectures."""
    if unit == "queries":
        return float(group.values(run)[budget - 1]) if len(run.queries) >= budget else None
    last = int(last_result_at(run, budget))
    return float(group.values(run)[last]) if last >= 0 else None


def last_result_at(run: LoadedRun, seconds: float | np.ndarray) -> np.ndarray:
    """Index of the run's last query whose cumulative simulated training time is <= ``seconds`` (-1 before
    the first); past the run's end, its last query."""
    return np.searchsorted(run.cumulative_seconds, seconds, side="right") - 1


def summarise(groups: Sequence[Group], budgets: Sequence[float], unit: str = "queries") -> list[dict]:
    """One record per (group, algorithm, budget). ``unit``: budgets in queries (runs shorter than a budget are
    left out: ``n``) or in simulated training seconds (``"seconds"``; runs with no result yet are left out,
    runs that stopped earlier count with their final incumbent: ``stopped_before``)."""
    if unit not in BUDGET_UNITS:
        raise ConfigError(f"unknown budget unit {unit!r}; choose from {', '.join(BUDGET_UNITS)}")
    if unit == "seconds":
        for g in groups:
            for label, runs in g.runs.items():
                if not any(r.cumulative_seconds[-1] > 0 for r in runs):
                    raise DataError(f"{g.benchmark}-{g.dataset}: the {label} runs carry no simulated training "
                                    f"time; compare them at query budgets")
    records = []
    for g in groups:
        for label, runs in g.runs.items():
            for budget in budgets:
                values = [value_at(g, r, budget, unit) for r in runs]
                acc = np.array([v for v in values if v is not None], dtype=np.float64)
                a_mean, a_low, a_high = mean_ci(acc)
                r_mean, r_low, r_high = mean_ci(g.best_in_table - acc)
                stopped = sum(v is not None and r.cumulative_seconds[-1] < budget for r, v in zip(runs, values)) \
                    if unit == "seconds" else 0
                records.append({"benchmark": g.benchmark, "dataset": g.dataset, "metric": g.metric,
                                "algorithm": label, "budget": int(budget) if unit == "queries" else float(budget),
                                "budget_unit": unit, "n": int(len(acc)), "stopped_before": int(stopped),
                                "accuracy_mean": a_mean, "accuracy_low": a_low, "accuracy_high": a_high,
                                "regret_mean": r_mean, "regret_low": r_low, "regret_high": r_high,
                                "best_in_table": g.best_in_table})
    return records


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------
def render(groups: Sequence[Group], records: list[dict], fmt: str) -> str:
    if fmt == "json":
        notes = {f"{g.benchmark}-{g.dataset}": g.reference_note for g in groups}
        rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                for r in records]  # strict JSON has no NaN
        return json.dumps({"confidence": CONFIDENCE, "notes": notes, "rows": rows}, indent=2,
                          allow_nan=False) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    if fmt == "table":
        return "\n".join(_table(g, [r for r in records if (r["benchmark"], r["dataset"]) ==
                                    (g.benchmark, g.dataset)]) for g in groups)
    raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def _table(group: Group, records: list[dict]) -> str:
    labels = list(group.runs)
    seeds = ", ".join(f"{label}: {len(runs)}" for label, runs in group.runs.items())
    lines = [f"{group.benchmark} / {group.dataset}: incumbent {group.metric} accuracy (%) and regret, "
             f"mean ± 95% CI half-width [n runs]",
             f"  {group.reference_note}", f"  seeds: {seeds}"]
    stopped = sum(r["stopped_before"] for r in records)
    if stopped:
        lines.append(f"  at time budgets, runs that stopped earlier count with their final incumbent "
                     f"({stopped} run x budget cells; 'stopped_before' in csv/json)")
    unit = records[0]["budget_unit"] if records else "queries"
    header = [f"budget ({'queries' if unit == 'queries' else 'sim. s'})"] + [
        f"{label} {what}" for label in labels for what in ("acc", "regret")]
    body = []
    for budget in sorted({r["budget"] for r in records}):
        row = [str(budget) if unit == "queries" else f"{budget:g}"]
        for label in labels:
            rec = next(r for r in records if r["algorithm"] == label and r["budget"] == budget)
            row.append(_cell(rec["accuracy_mean"], rec["accuracy_high"], rec["n"]))
            row.append(_cell(rec["regret_mean"], rec["regret_high"], rec["n"]))
        body.append(row)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    for row in [header] + body:
        lines.append("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    return "\n".join(lines) + "\n"


def _cell(mean: float, high: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "-"
    half = "" if math.isnan(high) else f" ±{high - mean:.2f}"
    return f"{mean:.2f}{half} [{n}]"


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def curves_by_queries(group: Group, runs: list[LoadedRun]) -> tuple[np.ndarray, np.ndarray]:
    """(x, regret matrix runs x queries), NaN after a run's last query."""
    length = max(len(r.queries) for r in runs)
    regret = np.full((len(runs), length), np.nan)
    for i, run in enumerate(runs):
        regret[i, :len(run.queries)] = group.best_in_table - group.values(run)
    return np.arange(1, length + 1), regret


def curves_by_time(group: Group, runs: list[LoadedRun], points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(log-spaced simulated seconds, regret matrix). The grid starts once every run has its first
    result; a run that has stopped keeps its final incumbent (it is what that run returns)."""
    start = max(r.cumulative_seconds[0] for r in runs)
    end = max(r.cumulative_seconds[-1] for r in runs)
    if not (start > 0 and end > start):
        raise DataError(f"{group.benchmark}-{group.dataset}: runs carry no simulated training time")
    grid = np.geomspace(start, end, points)
    regret = np.empty((len(runs), points))
    for i, run in enumerate(runs):
        regret[i] = group.best_in_table - group.values(run)[last_result_at(run, grid)]
    return grid, regret


def mean_band(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    summary = np.array([mean_ci(column) for column in matrix.T])
    return summary[:, 0], summary[:, 1], summary[:, 2]


def plot(groups: Sequence[Group], path: Path) -> list[Path]:
    """Regret vs queries and vs simulated time, one row per benchmark/dataset; writes PNG and PDF."""
    plt = figures.pyplot()

    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 4 * len(groups)), squeeze=False)
    for (ax_q, ax_t), group in zip(axes, groups):
        lowest = math.inf
        for label, runs in group.runs.items():
            for ax, (x, regret) in ((ax_q, curves_by_queries(group, runs)),
                                    (ax_t, _time_curves_or_none(group, runs))):
                if x is None:
                    continue
                mean, low, high = mean_band(np.maximum(regret, REGRET_FLOOR))
                (line,) = ax.plot(x, mean, label=f"{label} (n={len(runs)})")
                # a t-interval can reach below zero; on a log axis it is cut at the floor
                ax.fill_between(x, np.maximum(low, REGRET_FLOOR), high, color=line.get_color(), alpha=0.2,
                                linewidth=0)
                lowest = min(lowest, float(np.nanmin(mean)))
        for ax, xlabel in ((ax_q, "queries"), (ax_t, "simulated training time (s)")):
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(REGRET_FLOOR, lowest / 3))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{group.metric} regret (%), floored at {REGRET_FLOOR:g}")
            ax.set_title(f"{group.benchmark} / {group.dataset}")
            ax.grid(True, which="both", alpha=0.3)
        ax_t.set_xscale("log")
        ax_q.legend(fontsize="small")
    fig.suptitle(f"mean regret with {CONFIDENCE:.0%} t-interval over seeds")
    fig.tight_layout()
    return figures.save(fig, path)


def _time_curves_or_none(group: Group, runs: list[LoadedRun]) -> tuple[Any, Any]:
    try:
        return curves_by_time(group, runs)
    except DataError:
        return None, None


def compare(paths: Sequence[Path], budgets: Sequence[float] | None = None, fmt: str = "table",
            plot_path: Path | None = None, best_in_table: Any = None,
            unit: str = "queries") -> tuple[str, list[Path]]:
    """The text output (and plot files) for ``nasrepro compare``; ``unit = "seconds"`` reads ``budgets`` as
    simulated training seconds (then they must be given)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if unit == "seconds" and not budgets:
        raise ConfigError("time budgets must be given (--time-budgets)")
    groups = group_runs(find_runs(paths), best_in_table)
    budgets = list(budgets) if budgets else default_budgets(groups)
    text = render(groups, summarise(groups, budgets, unit), fmt)
    figures = plot(groups, plot_path) if plot_path is not None else []
    return text, figures

"""Commands ``nasrepro run``, ``compare``, ``reproduce`` and ``report``.

Every bad input is a typed error (one line, exit 2) raised before anything is written.
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from nasrepro.errors import ConfigError
from reproduce.executors import EXECUTORS
from reproduce.report import PAPERS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run algorithms x seeds on a benchmark (resumable)",
                              description="Run every algorithm with every seed; finished runs are skipped, "
                                          "interrupted ones resume from their last checkpoint.")
    p.add_argument("algorithms", metavar="ALGO[,ALGO...]", help="registered optimizer names")
    p.add_argument("--benchmark", required=True, help="nb201, nb101, nb301-standin")
    p.add_argument("--dataset", required=True)
    p.add_argument("--queries", type=int, help="query budget per run")
    p.add_argument("--time-budget", type=float, metavar="S", help="simulated-seconds budget per run")
    p.add_argument("--seeds", default="0", help="e.g. 0-9, 0,3,5 or 0-3,7 (default 0)")
    p.add_argument("--out", required=True, type=Path, help="results directory")
    p.add_argument("--executor", default="local", choices=EXECUTORS)
    p.add_argument("--address", help="Ray cluster address (with --executor ray)")
    p.add_argument("--workers", type=int, help="parallel runs (default: CPUs available)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="[ALGO.]KEY=VALUE",
                   help="override a hyper-parameter (TOML value); repeatable")
    p.add_argument("--split", default="valid", help="split that stands for validation accuracy")
    p.add_argument("--epoch", type=int, help="training epoch of the queried values (default: final)")
    p.add_argument("--valid-seed", default="mean", choices=("mean", "sample"),
                   help="'sample' draws one recorded training run per query (noisy evaluations)")
    p.add_argument("--checkpoint-every", type=int, default=25, metavar="K",
                   help="checkpoint every K queries (default 25; a checkpoint's cost grows with the "
                        "history, so raise K for runs of thousands of queries)")
    p.add_argument("--restart-corrupt", action="store_true",
                   help="move corrupt checkpoints aside and restart those runs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("compare", help="compare finished runs (accuracy and regret at budgets)")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--budgets", help="comma-separated query budgets, e.g. 50,100,300")
    which.add_argument("--time-budgets", metavar="SECONDS",
                       help="comma-separated simulated training-time budgets in seconds, e.g. 1e4,3e4,1e5")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"))
    p.add_argument("--plot", type=Path, metavar="FILE", help="write regret plots (FILE .png and .pdf)")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("reproduce", help="reproduce a paper's headline numbers",
                              description="Reproduce a paper: writes <out>/headline.json and figures.")
    add_reproduce_arguments(p)

    p = subparsers.add_parser("report", help="write results/REPORT.md from the papers' headline.json")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.set_defaults(func=cmd_report)


def add_reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paper", metavar="PAPER", help=f"{', '.join(PAPERS)} or all")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick",
                       help="small budgets, minutes on a laptop (default)")
    scale.add_argument("--full", dest="scale", action="store_const", const="full",
                       help="the paper's budgets and seeds")
    p.add_argument("--out", type=Path, help="default results/<paper>/<scale> (with 'all': the results root)")
    p.add_argument("--only", metavar="GLOB",
                   help="run only the runs whose name matches (drnas: e.g. 'cifar10-drnas_*-seed0'); finished "
                        "runs are still reported, the rest are 'not run'. For spreading a full run over sessions")
    p.add_argument("--device", choices=("cpu", "cuda"),
                   help="where supernets train (drnas; default: cpu for --quick, cuda for --full). --full "
                        "--device cpu is allowed but slow: a paper-scale NB201 search takes about a day on 2 cores")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads per search (drnas, searches on the CPU; default 1, as each of the parallel "
                        "workers has). Another count rounds differently, so a search may end on another cell; "
                        "2 threads run one paper-scale search about 1.6x faster on 2 cores")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: rebuild the report from the finished runs, with the progress of unfinished "
                        "ones (drnas --full: searches spread over GPU sessions); needs no GPU")
    p.set_defaults(func=cmd_reproduce, scale="quick")


# --------------------------------------------------------------------------------------------------
# Argument parsing (types raise ConfigError so that the message is ours, on one line)
# --------------------------------------------------------------------------------------------------
def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0-9"``, ``"0,3,5"``, ``"0-3,7"`` -> sorted distinct non-negative seeds."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        if not low:
            raise ConfigError(f"--seeds: {part!r}: seeds are non-negative integers, e.g. 0-9 or 0,3,5")
        try:
            first, last = int(low), int(high if sep else low)
        except ValueError:
            raise ConfigError(f"--seeds: {part!r} is not a seed or a range like 0-9") from None
        if first < 0 or last < 0:
            raise ConfigError(f"--seeds: {part!r}: seeds must be non-negative")
        if last < first:
            raise ConfigError(f"--seeds: empty range {part!r} (write it low-high)")
        seeds.update(range(first, last + 1))
    return tuple(sorted(seeds))


def check_device(device: str, where: str | None = None) -> None:
    """A device other than cpu / cuda / cuda:N, or a CUDA device where there is none: one line (``where`` names
    the flag, default ``--device <device>``), before any data is read or any run started."""
    import torch

    where = where or f"--device {device}"
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ConfigError(f"{where}: the device must be cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{where}: no CUDA GPU here")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as TOML (``20``, ``0.5``, ``true``, ``[1, 2]``), else text."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (or ALGO.KEY=VALUE)")
        try:
            overrides[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key] = value.strip()
    return overrides


def _positive(value: Any, flag: str) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{flag} must be positive, got {value}")


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from reproduce.runner import Experiment, run_experiment

    _positive(args.queries, "--queries")
    _positive(args.time_budget, "--time-budget")
    _positive(args.workers, "--workers")
    _positive(args.checkpoint_every, "--checkpoint-every")
    if args.queries is None and args.time_budget is None:
        raise ConfigError("give a budget: --queries N and/or --time-budget S")
    names = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"algorithm listed twice in {args.algorithms!r}")
    experiment = Experiment(tuple(names), args.benchmark, args.dataset, parse_seeds(args.seeds), args.queries,
                            args.time_budget, parse_overrides(args.overrides), args.split, args.epoch,
                            args.valid_seed, args.checkpoint_every)
    outcomes = run_experiment(experiment, args.out, executor=args.executor, workers=args.workers,
                              address=args.address, restart_corrupt=args.restart_corrupt,
                              progress=not args.quiet)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "resumed", "skipped")}
    print(f"{len(outcomes)} runs in {args.out}: {counts['done']} run, {counts['resumed']} resumed, "
          f"{counts['skipped']} already finished")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reproduce.compare import compare, parse_budgets

    if args.time_budgets is not None:
        text, figures = compare(args.dirs, parse_budgets(args.time_budgets, "seconds"), args.format, args.plot,
                                unit="seconds")
    else:
        budgets = parse_budgets(args.budgets) if args.budgets is not None else None
        text, figures = compare(args.dirs, budgets, args.format, args.plot)
    sys.stdout.write(text)
    for path in figures:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from reproduce import papers

    _positive(args.threads, "--threads")
    if args.paper == "all":
        if args.only or args.device or args.threads or args.report_only:
            raise ConfigError("--only, --device, --threads and --report-only apply to one paper; name the paper")
        present = papers.available()
        missing = [p for p in PAPERS if p not in present]
        if not present:
            raise ConfigError(f"no paper is implemented yet ({', '.join(missing)})")
        root = args.out or Path("results")
        for paper in present:
            headline = papers.run(paper, args.scale, root / paper / args.scale)
            print(f"{paper}: wrote {headline}")
        if missing:
            print(f"not implemented yet: {', '.join(missing)}", file=sys.stderr)
        return 0
    papers.load(args.paper)  # unknown / missing -> one line before anything runs
    out = args.out or Path("results") / args.paper / args.scale
    headline = papers.run(args.paper, args.scale, out, only=args.only, device=args.device, threads=args.threads,
                          report_only=args.report_only)
    print(f"{args.paper}: wrote {headline}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from reproduce.report import write_report

    if not args.results.is_dir():
        raise ConfigError(f"results folder {args.results} does not exist (run 'nasrepro reproduce PAPER')")
    print(f"wrote {write_report(args.results)}")
    return 0

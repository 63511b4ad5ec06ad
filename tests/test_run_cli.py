"""The commands through ``nasrepro.cli.main``: every bad input is one line, exit 2, nothing written."""
from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from nasrepro.cli import main
from reproduce import papers
from reproduce.report import PAPERS, Headline, HeadlineRow
from test_runner import TINY, register_tiny


@pytest.fixture
def tiny(monkeypatch, data_root):
    register_tiny(monkeypatch)
    return TINY


def run_args(out: Path, *extra: str, algo: str = TINY, queries: str = "12", seeds: str = "0-1") -> list[str]:
    return ["run", algo, "--benchmark", "nb201", "--dataset", "cifar10", "--queries", queries,
            "--seeds", seeds, "--out", str(out), "--workers", "1", "--quiet", *extra]


def one_line_error(capsys, argv: list[str], contains: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err
    assert contains in err, err


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.data
def test_run_then_rerun_skips(tiny, tmp_path, capsys):
    assert main(run_args(tmp_path)) == 0
    assert "2 run, 0 resumed, 0 already finished" in capsys.readouterr().out
    before = snapshot(tmp_path)
    assert main(run_args(tmp_path)) == 0
    assert "0 run, 0 resumed, 2 already finished" in capsys.readouterr().out
    assert snapshot(tmp_path) == before


@pytest.mark.data
@pytest.mark.parametrize("argv_change, contains", [
    ({"algo": "no_such_algo"}, "unknown algorithm"),
    ({"seeds": "3-1"}, "empty range"),
    ({"seeds": "a"}, "not a seed"),
    ({"seeds": "-1"}, "non-negative"),
    ({"seeds": "0--2"}, "non-negative"),
    ({"queries": "0"}, "--queries must be positive"),
    ({"queries": "-5"}, "--queries must be positive"),
])
def test_bad_run_arguments(tiny, tmp_path, capsys, argv_change, contains):
    one_line_error(capsys, run_args(tmp_path / "out", **argv_change), contains)
    assert not (tmp_path / "out").exists()


@pytest.mark.data
@pytest.mark.parametrize("extra, contains", [
    (["--time-budget", "0"], "--time-budget must be positive"),
    (["--workers", "0"], "--workers must be positive"),
    (["--set", "popsize=3"], "unknown hyper-parameter"),
    (["--set", "noequals"], "KEY=VALUE"),
    (["--set", "other_algo.population=3"], "not in this run"),
    (["--executor", "local", "--address", "x:1"], "--address"),
])
def test_bad_run_options(tiny, tmp_path, capsys, extra, contains):
    one_line_error(capsys, run_args(tmp_path / "out", *extra), contains)
    assert not (tmp_path / "out").exists()


@pytest.mark.data
def test_unknown_benchmark_dataset_and_missing_budget(tiny, tmp_path, capsys):
    argv = run_args(tmp_path / "out")
    one_line_error(capsys, [a if a != "nb201" else "nb999" for a in argv], "unknown benchmark")
    one_line_error(capsys, [a if a != "cifar10" else "mnist" for a in argv], "unknown dataset")
    no_budget = [a for i, a in enumerate(argv) if a != "--queries" and argv[i - 1] != "--queries"]
    one_line_error(capsys, no_budget, "give a budget")
    assert not (tmp_path / "out").exists()


@pytest.mark.data
def test_out_dir_with_another_experiment_is_refused(tiny, tmp_path, capsys):
    assert main(run_args(tmp_path)) == 0
    before = snapshot(tmp_path)
    one_line_error(capsys, run_args(tmp_path, queries="20"), "another experiment")
    one_line_error(capsys, run_args(tmp_path, "--set", "population=2"), "another experiment")
    # seed 2 is new, but seeds 0-1 conflict: nothing at all is started
    one_line_error(capsys, run_args(tmp_path, queries="20", seeds="0-2"), "another experiment")
    assert snapshot(tmp_path) == before


@pytest.mark.data
def test_corrupt_checkpoint(tiny, tmp_path, capsys):
    assert main(run_args(tmp_path / "ref", queries="25", seeds="0")) == 0
    out = tmp_path / "out"
    assert main(run_args(out, queries="25", seeds="0")) == 0
    run_dir = out / TINY / "nb201-cifar10" / "seed-0"
    (run_dir / "summary.json").unlink()
    (run_dir / "trajectory.csv").unlink()
    (run_dir / "checkpoint.pkl").write_bytes((run_dir / "checkpoint.pkl").read_bytes()[:100])  # truncated
    one_line_error(capsys, run_args(out, queries="25", seeds="0"), "--restart-corrupt")
    assert len((run_dir / "checkpoint.pkl").read_bytes()) == 100  # kept as it was
    assert main(run_args(out, "--restart-corrupt", queries="25", seeds="0")) == 0
    assert (run_dir / "trajectory.csv").read_bytes() == \
        (tmp_path / "ref" / TINY / "nb201-cifar10" / "seed-0" / "trajectory.csv").read_bytes()


@pytest.mark.data
@pytest.mark.skipif(importlib.util.find_spec("algorithms.baselines") is None, reason="baselines not written")
def test_process_pool_gives_the_same_bytes_as_one_process(data_root, tmp_path):
    serial, pool = tmp_path / "serial", tmp_path / "pool"
    assert main(run_args(serial, algo="random_search,local_search", queries="30")) == 0
    assert main(run_args(pool, "--workers", "2", algo="random_search,local_search", queries="30")) == 0
    a, b = snapshot(serial), snapshot(pool)
    trajectories = [k for k in a if k.endswith("trajectory.csv")]
    assert len(trajectories) == 4 and all(a[k] == b[k] for k in trajectories)


@pytest.mark.data
def test_compare_command(tiny, tmp_path, capsys):
    assert main(run_args(tmp_path / "runs", seeds="0-2", queries="15")) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs"), "--budgets", "5,15", "--format", "json",
                 "--plot", str(tmp_path / "cmp.png")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["budget"] for r in data["rows"]] == [5, 15] and data["rows"][0]["n"] == 3
    assert (tmp_path / "cmp.png").is_file() and (tmp_path / "cmp.pdf").is_file()
    one_line_error(capsys, ["compare", str(tmp_path / "runs"), "--budgets", "0,5"], "positive")
    # NB201 runs carry simulated training time: compare at time budgets too
    trajectories = [list(csv.DictReader(f.read_text().splitlines()))
                    for f in (tmp_path / "runs").rglob("trajectory.csv")]
    first = min(float(t[0]["cumulative_seconds"]) for t in trajectories)
    end = min(float(t[-1]["cumulative_seconds"]) for t in trajectories)
    budgets = f"{first / 2},{end},1e9"
    assert main(["compare", str(tmp_path / "runs"), "--time-budgets", budgets, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    # before any result: none; at the shortest run's end: all; at 1e9 s all stopped before, with their final incumbent
    assert [(r["n"], r["stopped_before"]) for r in rows] == [(0, 0), (3, 0), (3, 3)]
    one_line_error(capsys, ["compare", str(tmp_path / "runs"), "--time-budgets", "soon"], "--time-budgets")
    one_line_error(capsys, ["compare", str(tmp_path / "empty-or-absent")], "does not exist")


# -- reproduce ---------------------------------------------------------------------------------------
@pytest.fixture
def fake_paper(monkeypatch):
    """A paper module 'fakepaper' that writes a valid headline; 'ghostpaper' is known but not written."""
    monkeypatch.setitem(PAPERS, "fakepaper", "A fake paper")
    monkeypatch.setitem(PAPERS, "ghostpaper", "A paper whose module does not exist")
    module = types.ModuleType("reproduce.papers.fakepaper")

    def run(scale: str, out: Path) -> Path:
        row = HeadlineRow("claim", "1.0", "1.1", 2, "reproduced")
        return Headline("fakepaper", "A fake paper", scale, f"fake {scale}", "today", (row,)).write(
            out / "headline.json")

    module.run = run
    monkeypatch.setitem(sys.modules, "reproduce.papers.fakepaper", module)
    monkeypatch.setattr(papers, "available", lambda: ["fakepaper"])
    return module


def test_reproduce_dispatch(fake_paper, tmp_path, capsys, monkeypatch):
    assert main(["reproduce", "fakepaper", "--full", "--out", str(tmp_path / "x")]) == 0
    assert Headline.read(tmp_path / "x" / "headline.json").scale == "full"
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "fakepaper"]) == 0  # default: --quick into results/<paper>/quick
    assert (tmp_path / "results" / "fakepaper" / "quick" / "headline.json").is_file()
    one_line_error(capsys, ["reproduce", "ghostpaper"], "not implemented yet")
    one_line_error(capsys, ["reproduce", "nopaper"], "unknown paper")
    capsys.readouterr()
    assert main(["reproduce", "all", "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "fakepaper" / "quick" / "headline.json").is_file()
    assert "not implemented yet: " in capsys.readouterr().err
    # --only selects runs of one paper; a paper that runs as one piece refuses it
    one_line_error(capsys, ["reproduce", "all", "--only", "x*"], "name the paper")
    one_line_error(capsys, ["reproduce", "fakepaper", "--only", "x*", "--out", str(tmp_path / "y")],
                   "does not support --only")
    # --device likewise: only a paper that trains networks takes it
    one_line_error(capsys, ["reproduce", "all", "--device", "cpu"], "name the paper")
    one_line_error(capsys, ["reproduce", "fakepaper", "--device", "cpu", "--out", str(tmp_path / "y")],
                   "does not support --device")
    assert not (tmp_path / "y").exists()


def test_python_dash_m_reproduce_is_the_same_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reproduce", "nopaper"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == (
        "nasrepro: error: unknown paper 'nopaper'; choose from " + ", ".join(PAPERS) + ", all")

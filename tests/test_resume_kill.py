"""Crash safety of ``nasrepro run``, with real processes: SIGKILL at random moments, then the same
command again, must end byte-identical to an uninterrupted run; two processes sharing one output
directory must not corrupt it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.data

TESTS = Path(__file__).resolve().parent
SEEDS = "0-1"
QUERIES = 200
#: seconds each ask sleeps, so that a run lasts long enough to be killed in the middle
DELAY = 0.004

DRIVER = textwrap.dedent(f"""
    import os, sys, time
    sys.path.insert(0, {str(TESTS)!r})
    import test_runner
    test_runner.register_tiny()
    delay = float(os.environ.get("TINY_DELAY", "0"))
    plain_ask = test_runner.TinyEvolution._ask
    def slow_ask(self, n):
        time.sleep(delay)
        return plain_ask(self, n)
    test_runner.TinyEvolution._ask = slow_ask
    from nasrepro.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def command(driver: Path, out: Path) -> list[str]:
    return [sys.executable, str(driver), "run", "tiny_evolution", "--benchmark", "nb201", "--dataset",
            "cifar10", "--queries", str(QUERIES), "--seeds", SEEDS, "--out", str(out), "--workers", "1",
            "--checkpoint-every", "7", "--quiet"]


@pytest.fixture
def driver(tmp_path, data_root) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


def env() -> dict:
    return {**os.environ, "TINY_DELAY": str(DELAY)}


def trajectories(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("trajectory.csv"))}


def checkpoint_times(out: Path) -> dict[str, int]:
    times = {}
    for path in out.rglob("checkpoint.pkl"):
        try:
            times[str(path)] = path.stat().st_mtime_ns
        except FileNotFoundError:  # being replaced right now
            pass
    return times


def test_sigkill_at_random_moments_then_resume_is_byte_identical(driver, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(command(driver, reference), env=env(), check=True, capture_output=True, timeout=120)
    assert len(trajectories(reference)) == 2

    out = tmp_path / "killed"
    rng = np.random.default_rng(20261122)
    kills = 0
    for attempt in range(8):
        proc = subprocess.Popen(command(driver, out), env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        # kill at a random moment after the process has made progress (a new checkpoint), so that the
        # test does not depend on how long start-up takes on a loaded machine
        before = checkpoint_times(out)
        deadline = time.monotonic() + 60
        while proc.poll() is None and checkpoint_times(out) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.0, 0.25)))
        if proc.poll() is not None:  # finished before the kill
            assert proc.returncode == 0, proc.stderr.read().decode()
            proc.stderr.close()
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        kills += 1
    assert kills >= 3, f"only {kills} kills landed mid-run; lengthen the run"
    final = subprocess.run(command(driver, out), env=env(), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert "already finished" in final.stdout
    assert trajectories(out) == trajectories(reference)
    assert not list(out.rglob("*.tmp"))  # half-written files of killed processes are cleaned up


def test_two_processes_into_one_directory(driver, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(command(driver, reference), env=env(), check=True, capture_output=True, timeout=120)
    out = tmp_path / "shared"
    procs = [subprocess.Popen(command(driver, out), env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    # every run was computed once, by one of the two; the other waited and skipped it
    finished = sum(int(out_.split("runs in")[1].split(":")[1].split()[0]) for out_, _ in results)
    assert finished == 2
    assert trajectories(out) == trajectories(reference)

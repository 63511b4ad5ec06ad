"""reproduce/device/drnas_gpu_search_leg.sh: one leg of searches spread over GPU sessions by hand-off checkpoints.

The search itself is replaced by a stub "python" that behaves as ``reproduce drnas --only RUN`` does to the run
folder (one more epoch in the checkpoint per call, ``result.json`` at the end), so every branch of the script's
hand-off logic runs in milliseconds; a real leg was smoke-tested at the quick scale (results/drnas/GPU.md, step 2).
"""
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "reproduce" / "device" / "drnas_gpu_search_leg.sh"
RUN = "cifar10-drnas_nb201-seed0"

# a stand-in for `python -m reproduce drnas --quick --device cpu --out RESULTS --only RUN`: appends an epoch to the
# run's checkpoint; at EPOCHS epochs writes result.json; with STUB_FAIL set, exits without finishing an epoch. As
# `python -c CODE FILE` (the script asking how many epochs a checkpoint holds) it prints the file's line count, or
# nothing for a file that is not all "epoch" lines (an unreadable checkpoint)
STUB = """#!/usr/bin/env bash
[ "$1" = "-c" ] && { grep -qvx epoch "$3" || wc -l < "$3"; exit 0; }
while [ $# -gt 0 ]; do case "$1" in --out) out="$2"; shift ;; --only) run="$2"; shift ;; esac; shift; done
[ -n "${STUB_FAIL:-}" ] && { echo "error: stub failed" >&2; exit 1; }
dir="$out/runs/$run"; mkdir -p "$dir"
echo epoch >> "$dir/checkpoint.pt"
echo "$run: epoch $(wc -l < "$dir/checkpoint.pt") done"
[ "$(wc -l < "$dir/checkpoint.pt")" -ge "${EPOCHS:-3}" ] && echo '{"finished": true}' > "$dir/result.json"
exit 0
"""


def leg(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    environment = {"PATH": "/usr/bin:/bin", "SCALE": "quick", "DEVICE": "cpu", "PYTHON": str(stub),
                   "RESULTS": str(tmp_path / "results"), "OUT": str(tmp_path / "out"), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=60)


def hand_off(tmp_path: Path) -> None:
    """What the runbook does here between sessions: commit the returned checkpoint as the hand-off, and the next
    session's device machine starts without the run folder."""
    handoff = tmp_path / "results" / "handoff"
    handoff.mkdir(parents=True, exist_ok=True)
    (tmp_path / "out" / f"{RUN}.pt").replace(handoff / f"{RUN}.pt")
    for path in (tmp_path / "results" / "runs" / RUN).iterdir():
        path.unlink()


def test_legs_hand_the_checkpoint_on_until_the_search_finishes(tmp_path):
    first = leg(tmp_path, RUN, "60")
    assert first.returncode == 0, first.stderr
    assert "starts at epoch 0" in first.stdout and "not finished" in first.stdout
    assert (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n"
    assert "epoch 1 done" in (tmp_path / "out" / f"{RUN}.log").read_text()
    hand_off(tmp_path)
    second = leg(tmp_path, RUN)
    assert "resuming from" in second.stdout and (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n" * 2
    hand_off(tmp_path)
    last = leg(tmp_path, RUN)
    assert last.returncode == 0 and "finished" in last.stdout
    assert (tmp_path / "out" / f"{RUN}.result.json").read_text() == '{"finished": true}\n'
    # a finished search is not run again, and nothing of it is touched
    again = leg(tmp_path, RUN)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "has finished" in again.stderr
    assert (tmp_path / "results" / "runs" / RUN / "result.json").is_file()


def test_a_second_leg_on_the_warm_machine_resumes_from_whichever_holds_more_epochs(tmp_path):
    """The device machine keeps a call's git-ignored run folder for the next call while it is warm: a leg resumes
    from it when it is ahead of the hand-off (copying the older hand-off over it would lose the first leg's epochs),
    and from the hand-off when that is ahead."""
    leg(tmp_path, RUN, EPOCHS="9")  # 1 epoch, the run folder stays
    second = leg(tmp_path, RUN, EPOCHS="9")  # no hand-off yet: the run folder
    assert "resuming from" in second.stdout and "1 epochs done; no hand-off" in second.stdout
    assert (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n" * 2
    handoff = tmp_path / "results" / "handoff" / f"{RUN}.pt"
    handoff.parent.mkdir(parents=True)
    handoff.write_text("epoch\n")  # an older hand-off (1 epoch) than the run folder (2)
    third = leg(tmp_path, RUN, EPOCHS="9")
    assert "2 epochs done; the hand-off has 1" in third.stdout
    assert (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n" * 3
    handoff.write_text("epoch\n" * 5)  # a newer hand-off (5) than the run folder (3)
    fourth = leg(tmp_path, RUN, EPOCHS="9")
    assert f"resuming from {handoff} (5 epochs done)" in fourth.stdout
    assert (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n" * 6


def test_an_unreadable_checkpoint_never_replaces_a_readable_one(tmp_path):
    """An unreadable hand-off does not overwrite the run folder's good checkpoint; an unreadable run-folder
    checkpoint gives way to the hand-off."""
    leg(tmp_path, RUN, EPOCHS="9")  # the run folder holds 1 epoch
    handoff = tmp_path / "results" / "handoff" / f"{RUN}.pt"
    handoff.parent.mkdir(parents=True)
    handoff.write_text("garbage\n")
    second = leg(tmp_path, RUN, EPOCHS="9")
    assert "1 epochs done; the hand-off cannot be read" in second.stdout
    assert (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n" * 2
    (tmp_path / "results" / "runs" / RUN / "checkpoint.pt").write_text("garbage\n")
    handoff.write_text("epoch\n" * 4)
    third = leg(tmp_path, RUN, EPOCHS="9")
    assert f"resuming from {handoff} (4 epochs done)" in third.stdout
    assert (tmp_path / "out" / f"{RUN}.pt").read_text() == "epoch\n" * 5


def test_the_epoch_count_reads_a_real_checkpoint(tmp_path):
    """The script's own epochs_of (the stub above stands in for it elsewhere) on a real search checkpoint, and
    empty on an unreadable file, with the interpreter the tests run on."""
    import sys

    import torch

    from algorithms.nn.search import run_search, search_data
    from tests.test_drnas import tiny_arrays, tiny_search

    search, hparams = tiny_search()
    train, valid = search_data(search, tiny_arrays(), 0)
    run_search(search, train, valid, tmp_path / "run", {"hparams": hparams}, stop_after_epochs=1, progress=False)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    lines = SCRIPT.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("epochs_of()"))
    last = next(i for i in range(first, len(lines)) if lines[i].rstrip().endswith("; }"))
    function = "\n".join(lines[first:last + 1])
    for path, expected in ((tmp_path / "run" / "checkpoint.pt", "1"), (tmp_path / "bad.pt", "")):
        out = subprocess.run(["bash", "-c", f'{function}\nepochs_of "$1"', "bash", str(path)], capture_output=True,
                             text=True, timeout=120, cwd=SCRIPT.parents[2],
                             env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "PYTHONPATH": str(SCRIPT.parents[2])})
        assert out.stdout.strip() == expected, out.stderr
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["next_epoch"] == 1


def test_a_queue_hands_the_rest_of_the_leg_to_the_next_run_and_stops_at_the_first_unfinished_one(tmp_path):
    """``RUN1,RUN2,...``: finished runs are passed over, a run that finishes passes the time on, and the leg ends
    at the first run it cannot finish (one hand-off outstanding at most) or when too little time is left."""
    other, third = "cifar10-drnas_nb201-seed1", "cifar10-drnas_nb201-seed2"
    queue = f"{RUN},{other},{third}"
    both = leg(tmp_path, f"{RUN},{other}", EPOCHS="1")  # each finishes in one call of the stub
    assert both.returncode == 0, both.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"{RUN}.log", f"{RUN}.result.json", f"{other}.log", f"{other}.result.json"]
    waits = leg(tmp_path, queue, EPOCHS="1", MIN_LEG_SECONDS="100000")  # the first two passed over; the third runs
    assert waits.returncode == 0 and waits.stdout.count("passed over") == 2
    assert (tmp_path / "out" / f"{third}.result.json").is_file()
    done = leg(tmp_path, queue)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "every run" in done.stderr

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    first = leg(fresh, queue, EPOCHS="2")  # the first run is handed off after one epoch: the others wait
    assert first.returncode == 0 and "not finished" in first.stdout
    assert sorted(p.name for p in (fresh / "out").iterdir()) == [f"{RUN}.log", f"{RUN}.pt"]
    second = leg(fresh, queue, EPOCHS="2", MIN_LEG_SECONDS="100000")  # the first finishes; no time for the next
    assert second.returncode == 0 and f"{other} waits for the next leg" in second.stdout
    assert (fresh / "out" / f"{RUN}.result.json").is_file() and not (fresh / "out" / f"{other}.log").exists()


def test_a_leg_that_finishes_no_epoch_sends_nothing_back(tmp_path):
    result = leg(tmp_path, RUN, STUB_FAIL="1")
    assert result.returncode == 1 and "nothing to hand off" in result.stderr
    assert not (tmp_path / "out" / f"{RUN}.pt").exists()


@pytest.mark.parametrize("args, message", [((), "usage:"), ((RUN, "9 min"), "whole number of seconds"),
                                           ((RUN, "60", "extra"), "usage:"), ((f"{RUN},,{RUN}",), "empty run name"),
                                           ((f"{RUN},",), "empty run name")])
def test_bad_arguments_are_one_clear_line(tmp_path, args, message):
    result = leg(tmp_path, *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "results").exists()  # nothing created


def test_a_bad_minimum_leg_is_one_clear_line(tmp_path):
    result = leg(tmp_path, RUN, MIN_LEG_SECONDS="2 min")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "MIN_LEG_SECONDS must be" in result.stderr
    assert not (tmp_path / "results").exists()  # nothing created

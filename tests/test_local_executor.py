"""The local executor runs a job in this process on one thread, as a pool worker does: float kernels round
differently with another thread count, so ``--only`` on one job must compute what the full run computed."""
from __future__ import annotations

import os

import pytest
import torch

from reproduce.executors import LocalExecutor


def thread_settings(_item) -> tuple:
    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_a_job_in_this_process_runs_on_one_thread_and_the_settings_come_back(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with LocalExecutor(workers=4) as executor:
            assert executor.in_process(1)
            assert list(executor.map(thread_settings, ["one job"])) == [("1", 1)]
        assert "OMP_NUM_THREADS" not in os.environ
        assert os.environ["MKL_NUM_THREADS"] == "7"
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads_before)


def test_the_thread_settings_come_back_when_the_job_fails(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")

    def failing_job(_item):
        raise ValueError("the job's own error")

    with pytest.raises(ValueError, match="the job's own error"), LocalExecutor(workers=1) as executor:
        list(executor.map(failing_job, ["one job"]))
    assert os.environ["OMP_NUM_THREADS"] == "3"


@pytest.mark.slow
def test_pool_workers_run_on_one_thread():
    with LocalExecutor(workers=2) as executor:
        assert not executor.in_process(2)
        assert list(executor.map(os.getenv, ["OMP_NUM_THREADS"] * 2)) == ["1", "1"]

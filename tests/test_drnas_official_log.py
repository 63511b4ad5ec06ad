"""reproduce.papers.drnas_official_log: the official DrNAS NB201 runs, epoch by epoch, as logged."""
import numpy as np
import pytest

from benchmarks.nb201 import OPS, NB201Arch
from nasrepro.errors import ConfigError
from reproduce.papers.drnas_official_log import drnas_runs, official_runs


def test_the_three_complete_runs_are_there():
    runs = official_runs()
    assert set(runs) == {"drnas-A", "drnas-B", "darts"}
    for run in runs.values():
        assert run.epochs == 100 and run.ops == OPS
        assert len(run.valid_acc) == len(run.cell_after) == len(run.cifar10_test_of_cell_after) == 100
    assert [run.name for run in drnas_runs()] == ["drnas-A", "drnas-B"]
    assert runs["darts"].concentration_at_start is None and runs["darts"].softmax_at_start.shape == (100, 6, 5)
    assert all(run.softmax_at_start is None for run in drnas_runs())
    # what the log says the runs found: DrNAS the paper's cell, DARTS the all-skip collapse
    assert runs["drnas-A"].cifar10_test_of_cell_after[-1] == runs["drnas-B"].cifar10_test_of_cell_after[-1] == 94.36
    assert runs["darts"].cifar10_test_of_cell_after[-1] == 54.3


def test_alpha_after_an_epoch_is_the_argmax_cell_printed_after_it():
    """The ELU inverse and the one-epoch shift: the per-edge argmax of alpha after epoch N is the cell the log
    printed after epoch N (every epoch but the last, of both DrNAS runs), and ELU(alpha) + 1 gives back the
    logged concentration."""
    for run in drnas_runs():
        for epoch in range(run.epochs - 1):
            alpha = run.alpha_after(epoch)
            assert str(NB201Arch(tuple(int(o) for o in alpha.argmax(axis=1)))) == run.cell_after[epoch]
            beta = np.where(alpha >= 0, alpha, np.expm1(alpha)) + 1.0
            np.testing.assert_allclose(beta, run.concentration_at_start[epoch + 1], rtol=0, atol=1e-12)
        assert run.alpha_after(run.epochs - 1) is None  # nothing is logged after the last epoch
        mean = run.mean_alpha_after(20)
        assert list(mean) == list(OPS) and max(mean, key=mean.get) == "nor_conv_3x3" and mean["avg_pool_3x3"] < 0


def test_darts_alpha_after_an_epoch_is_the_argmax_cell_printed_after_it():
    """The DARTS matrices (softmax(alpha), printed at the start of each epoch) belong to the darts run: the per-edge
    argmax of the one printed when epoch N + 1 began is the cell the run printed after epoch N, for every epoch but
    the last; alpha is log p centred per edge (softmax gives it only up to a constant per edge)."""
    run = official_runs()["darts"]
    np.testing.assert_allclose(run.softmax_at_start.sum(axis=2), 1.0, rtol=0, atol=5e-4)  # 4 logged decimals
    for epoch in range(run.epochs - 1):
        alpha = run.alpha_after(epoch)
        assert alpha.shape == (6, 5)
        assert str(NB201Arch(tuple(int(o) for o in alpha.argmax(axis=1)))) == run.cell_after[epoch]
        np.testing.assert_allclose(alpha.sum(axis=1), 0.0, rtol=0, atol=1e-12)
        # softmax of the centred log p is the logged p again, renormalised
        p = run.softmax_at_start[epoch + 1]
        np.testing.assert_allclose(np.exp(alpha) / np.exp(alpha).sum(axis=1, keepdims=True),
                                   p / p.sum(axis=1, keepdims=True), rtol=1e-12)
    assert run.alpha_after(run.epochs - 1) is None  # nothing is logged after the last epoch
    # the collapse: skip_connect leads every edge from epoch 14 on, and leads the mean alpha
    mean = run.mean_alpha_after(20)
    assert list(mean) == list(OPS) and max(mean, key=mean.get) == "skip_connect"


def test_an_epoch_outside_the_run_is_a_clear_error():
    with pytest.raises(ConfigError, match="epoch 100 outside 0..99"):
        drnas_runs()[0].alpha_after(100)
    with pytest.raises(ConfigError, match="epoch -1 outside 0..99"):
        official_runs()["darts"].alpha_after(-1)

"""Shared fixtures. Data tests skip with a reason when the data root is absent (CI has it)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _data_root() -> Path | None:
    env = os.environ.get("NASREPRO_DATA")
    root = Path(env) if env else SHARED_DATA
    return root if root.is_dir() else None


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Caches go to a per-session folder unless NASREPRO_CACHE is set (CI sets it to reuse builds)."""
    if "NASREPRO_CACHE" not in os.environ:
        os.environ["NASREPRO_CACHE"] = str(tmp_path_factory.mktemp("nasrepro-cache"))
    yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("benchmark data root absent (set NASREPRO_DATA or put ../shared/data beside the repo)")
    os.environ["NASREPRO_DATA"] = str(root)
    return root


@pytest.fixture(scope="session")
def nb201(data_root):
    from benchmarks.nb201 import NB201Benchmark

    return NB201Benchmark.load(data_root)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """Tiny torch models on a shared 2-core machine: two intra-op threads make each step many times slower
    (spin-waiting). The library leaves the thread count alone; tests that train pick 1 and restore it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

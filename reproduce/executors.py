"""Where runs execute: ``local`` (a process pool on this machine) or ``ray`` (a Ray cluster).

Both call the same picklable function on the same arguments, and every run derives its randomness from
its own spec, so the executor never changes results -- only where and how fast they are computed.
An executor is a context manager with ``map(fn, items)`` yielding results as they complete.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator

from threadpoolctl import threadpool_limits
from tqdm import tqdm

from nasrepro.errors import ConfigError, NasReproError

EXECUTORS = ("local", "ray")
#: environment variables a Ray task gets from the driver (where the data and caches live)
FORWARDED_ENV = ("NASREPRO_DATA", "NASREPRO_CACHE")


def default_workers() -> int:
    """CPUs this process may use (respects affinity / cgroup-limited sets where the OS reports them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def map_with_progress(pool: Any, fn: Callable, items: Iterable, desc: str, unit: str = "job") -> Iterator:
    """``pool.map(fn, items)`` (any executor with ``map``) behind a progress bar: long reproductions show
    how far they are, also when their output goes to a log file."""
    items = list(items)
    return iter(tqdm(pool.map(fn, items), total=len(items), desc=desc, unit=unit, leave=False))


def make_executor(kind: str, workers: int | None = None, address: str | None = None) -> "Executor":
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor {kind!r}; choose from {', '.join(EXECUTORS)}")
    if workers is not None and workers <= 0:
        raise ConfigError(f"--workers must be positive, got {workers}")
    if kind == "local":
        if address is not None:
            raise ConfigError("--address is only meaningful with --executor ray")
        return LocalExecutor(workers)
    return RayExecutor(workers, address)


class Executor:
    def in_process(self, n_items: int) -> bool:
        """Whether ``n_items`` jobs would run in this process (then per-run progress bars are shown)."""
        return False

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        raise NotImplementedError


class LocalExecutor(Executor):
    """A process pool sized to the machine; one worker (or one job) runs in this process, on one thread
    like a pool worker: float kernels round differently with another thread count, and a tiny supernet
    search amplifies that into another cell, so ``--only`` must compute what the full run computed."""

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def in_process(self, n_items: int) -> bool:
        return min(self.workers, n_items) <= 1

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        items = list(items)
        workers = min(self.workers, len(items))
        if workers <= 1:
            for item in items:
                with cpu_threads():
                    result = fn(item)
                yield result
            return
        # spawn: workers start clean (no inherited threads/locks from tqdm, torch or a Ray client)
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                         initializer=set_cpu_threads)
        futures = {self._pool.submit(fn, item) for item in items}
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextmanager
def cpu_threads(count: int = 1) -> Iterator[None]:
    """Run the block on ``count`` CPU threads (default one, as in a pool worker): BLAS/OpenMP pools, torch's
    intra-op threads (also for a torch first imported inside the block, which reads the variables), restored
    afterwards, also on error."""
    saved_variables = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")
    saved_torch_threads = torch.get_num_threads() if torch is not None else None
    set_cpu_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        for name, value in saved_variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(saved_torch_threads or default_workers())


def set_cpu_threads(count: int = 1) -> None:
    """From now on use ``count`` CPU threads: BLAS/OpenMP (torch included, which reads the variables at import)
    and torch's intra-op pool if torch is already imported. A pool worker's initializer: with one thread each,
    ``workers`` processes never oversubscribe the machine (Ray does the same for its 1-CPU tasks)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


class RayExecutor(Executor):
    """Ray tasks, one CPU each; joins ``address`` if given, else an already initialised Ray, else starts a
    local instance (shut down again on exit)."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install \".[ray]\"") from None
        self.ray = ray
        self.workers = workers
        self.address = address
        self._started_here = False

    def __enter__(self) -> "RayExecutor":
        if not self.ray.is_initialized():
            if self.address is not None:
                self.ray.init(address=self.address, log_to_driver=False)
            else:
                self.ray.init(num_cpus=self.workers or default_workers(), include_dashboard=False,
                              log_to_driver=False)
            self._started_here = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started_here:
            self.ray.shutdown()

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        # tasks may run on other nodes: they need this process's data root and cache settings
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        options = {"runtime_env": {"env_vars": env}} if env else {}
        remote = self.ray.remote(num_cpus=1, **options)(fn)
        pending = [remote.remote(item) for item in items]
        try:
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                yield self._get(done[0])
        finally:
            for ref in pending:
                self.ray.cancel(ref)

    def _get(self, ref: Any) -> Any:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            # show a user error (bad checkpoint, conflict) as itself, not wrapped in a Ray traceback
            if isinstance(exc.cause, NasReproError):
                raise exc.cause from None
            raise

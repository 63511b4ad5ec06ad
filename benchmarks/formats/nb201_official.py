"""Readers of the official NAS-Bench-201 and NATS-Bench (topology) downloads.

They convert an official file into the very columns :func:`benchmarks.nb201._build` makes from the
master CSV, so :class:`~benchmarks.nb201.NB201Benchmark` answers the same queries whatever the source.

Layouts (read from the official APIs: ``nas_201_api/api_201.py`` and ``nats_bench/api_utils.py``)
------------------------------------------------------------------------------------------------
``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``: a ``torch.save``'d dict
``{"meta_archs": [arch string by API index], "arch2infos": {index: {"less": A, "full": A}},
"evaluated_indexes": [...]}``; ``less`` is the 12-epoch schedule, ``full`` the 200-epoch one.
``NATS-tss-v1_0-3ffb9-simple/``: ``meta.pickle.pbz2`` (bz2 pickle holding ``meta_archs``) and one
``{index:06d}.pickle.pbz2`` per architecture holding ``{"12": A, "200": A}``.

``A`` is an ``ArchResults`` state dict: ``dataset_seed`` (training run -> seeds) and ``all_results``
(``(run, seed)`` -> a ``ResultsCount`` state dict with ``epochs``, ``params``, ``train_times``
(epoch -> seconds, or None) and ``eval_acc1es`` (``"<eval set>@<epoch>"`` -> accuracy in %)). The
training runs are ``cifar10-valid`` (train half of CIFAR-10), ``cifar10`` (train+valid), ``cifar100``
and ``ImageNet16-120``; their evaluation sets are mapped onto our (dataset, split) in :data:`SPLITS`.

Version quirks: v1.0 trained the 12-epoch schedule on ``cifar10-valid`` only and recorded no training
times (its ``train_times`` are None), so those columns are absent or NaN and such queries raise
:class:`MissingEntryError`; v1.1 and NATS-Bench have both. Training time of dataset ``cifar10`` is that
of the ``cifar10-valid`` run, the run whose validation accuracy a search observes (as in the master CSV
and in NATS-Bench's ``simulate_train_eval``).

Safety: these files are pickles, and unpickling runs whatever code the file names. A file is
unpickled only if its digest matches :data:`KNOWN_DIGESTS` or the caller passes ``trust=True``
(CLI ``--trust``); otherwise :class:`UnsafeFileError`. The conversion is cached as plain ``.npy``
columns, so later loads unpickle nothing.
"""
from __future__ import annotations

import bz2
import hashlib
import pickle
import re
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from benchmarks import nb201
from benchmarks.cache import ColumnTable, load_or_build
from nasrepro.errors import DataError, InvalidArchError, UnsafeFileError
from nasrepro.io import atomic_write_text
from nasrepro.paths import cache_dir

#: official names under ``<data root>/nb201/``, in the order :func:`find_official` prefers them
NATS_TSS_SIMPLE = "NATS-tss-v1_0-3ffb9-simple"
NB201_V1_1 = "NAS-Bench-201-v1_1-096897.pth"
NB201_V1_0 = "NAS-Bench-201-v1_0-e61699.pth"
OFFICIAL_NAMES = (NATS_TSS_SIMPLE, NB201_V1_1, NB201_V1_0)

#: digests of the official releases, checked before unpickling without ``trust``. The names carry
#: the last six hex digits of the MD5; only the full MD5 of v1.1 is published (5,003,180,601 bytes).
#: MD5 is fine here: forging a file to a *given* digest (a second preimage) is not feasible.
KNOWN_DIGESTS: dict[str, tuple[str, str]] = {
    NB201_V1_1: ("md5", "55e847143ce1f7c2d89b676f6b096897"),
}

#: (our dataset, our split) -> (official training run, official evaluation set)
SPLITS: dict[tuple[str, str], tuple[str, str]] = {
    ("cifar10", "valid"): ("cifar10-valid", "x-valid"),
    ("cifar10", "test"): ("cifar10", "ori-test"),
    ("cifar100", "valid"): ("cifar100", "x-valid"),
    ("cifar100", "test"): ("cifar100", "x-test"),
    ("cifar100", "valtest"): ("cifar100", "ori-test"),
    ("imagenet16-120", "valid"): ("ImageNet16-120", "x-valid"),
    ("imagenet16-120", "test"): ("ImageNet16-120", "x-test"),
    ("imagenet16-120", "valtest"): ("ImageNet16-120", "ori-test"),
}
#: the run whose training time and parameter count stand for each dataset
TRAIN_RUN = {"cifar10": "cifar10-valid", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}
#: hyper-parameter keys of the two training schedules (NB201 names, NATS-Bench names) -> epochs
HP_EPOCHS = {"less": 12, "full": 200, "12": 12, "200": 200}
_ARCH_FILE = re.compile(r"^(\d+)\.pickle\.pbz2$")


def find_official(folder: Path, name: str | None = None) -> Path | None:
    """The preferred official file or folder in ``folder`` (``<data root>/nb201``), or None.

    ``name`` picks one explicitly and must then exist.
    """
    if name is not None:
        if name not in OFFICIAL_NAMES:
            raise DataError(f"unknown NB201 source {name!r}; choose from master, {', '.join(OFFICIAL_NAMES)}")
        path = folder / name
        if not path.exists():
            raise DataError(f"NB201 source {path} not found")
        return path
    for candidate in OFFICIAL_NAMES:
        if (folder / candidate).exists():
            return folder / candidate
    return None


def load_table(path: Path, trust: bool = False, latency: Path | None = None) -> ColumnTable:
    """Convert (once) and open the official file or folder ``path``; see the module docstring."""
    path = Path(path)
    if path.is_dir():
        # the cache tracks files: a listing of the folder stands for it; the build reads the folder
        sources = {"official": _folder_manifest(path)}
        read = partial(read_nats_simple, path, trust)
    elif path.is_file():
        sources = {"official": path}
        read = partial(read_nb201_pth, path, trust)
    else:
        raise DataError(f"NB201 source {path} not found")
    if latency is not None:
        sources["latency"] = latency

    def build(srcs: Mapping[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
        meta_archs, archs = read()
        cols = to_columns(meta_archs, archs, where=str(path))
        devices = nb201.latency_columns(srcs["latency"], cols) if "latency" in srcs else []
        return cols, {"strings": {"devices": devices, "source": path.name}}

    return load_or_build(f"nb201-{_slug(path.name)}", sources, build, version=nb201.CACHE_VERSION)


# --------------------------------------------------------------------------------------------------
# Safety and unpickling
# --------------------------------------------------------------------------------------------------
def check_trusted(path: Path, trust: bool) -> None:
    """Raise :class:`UnsafeFileError` unless ``trust`` or ``path`` has its registered official digest."""
    if trust:
        return
    known = KNOWN_DIGESTS.get(path.name)
    if known is not None:
        algorithm, expected = known
        digest = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
        if digest.hexdigest() == expected:
            return
        why = f"its {algorithm} {digest.hexdigest()} differs from the official {expected}"
    else:
        why = "no official checksum is registered for it"
    raise UnsafeFileError(f"{path}: loading this pickle would run code it contains and {why}; "
                          f"pass trust=True (CLI --trust) only if you trust where it came from")


_UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError,
                    ImportError, IndexError, KeyError)


def _load_bz2_pickle(path: Path) -> Any:
    try:
        with bz2.open(path, "rb") as fh:
            return pickle.load(fh)
    except _UNPICKLE_ERRORS as exc:
        raise DataError(f"{path}: not a readable bz2 pickle ({type(exc).__name__}: {exc})") from exc


def read_nb201_pth(path: Path, trust: bool = False) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """``meta_archs`` and (index, {hp key: ArchResults state}) pairs of an NB201 ``.pth`` file."""
    check_trusted(path, trust)
    import torch  # only here: the .pth format is torch's (zip or legacy), and torch is heavy to import

    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, *_UNPICKLE_ERRORS) as exc:
        raise DataError(f"{path}: not a readable NAS-Bench-201 file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or "meta_archs" not in data or "arch2infos" not in data:
        raise DataError(f"{path}: not a NAS-Bench-201 file (want a dict with meta_archs and arch2infos)")
    infos = data["arch2infos"]
    if not isinstance(infos, dict):
        raise DataError(f"{path}: arch2infos is a {type(infos).__name__}, not a dict")
    return list(data["meta_archs"]), ((int(i), infos[i]) for i in sorted(infos))


def read_nats_simple(folder: Path, trust: bool = False) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """``meta_archs`` and (index, {hp key: ArchResults state}) pairs of a NATS-tss ``-simple`` folder."""
    if not trust:  # a folder of 15,626 pickles has no single official digest to check
        raise UnsafeFileError(f"{folder}: loading these pickles would run code they contain and no "
                              f"official checksum exists for the folder; pass trust=True (CLI --trust) "
                              f"only if you trust where it came from")
    meta_path = folder / "meta.pickle.pbz2"
    if not meta_path.is_file():
        raise DataError(f"{folder}: no meta.pickle.pbz2 (not a NATS-Bench -simple folder)")
    meta = _load_bz2_pickle(meta_path)
    if not isinstance(meta, dict) or "meta_archs" not in meta:
        raise DataError(f"{meta_path}: want a dict with meta_archs")
    files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _ARCH_FILE.match(p.name)))

    def archs() -> Iterator[tuple[int, dict]]:
        from tqdm import tqdm

        for index, p in tqdm(files, desc=f"reading {folder.name}", unit="arch", disable=None):
            yield index, _load_bz2_pickle(p)

    return list(meta["meta_archs"]), archs()


# --------------------------------------------------------------------------------------------------
# Conversion into nb201's columns
# --------------------------------------------------------------------------------------------------
def to_columns(meta_archs: list[str], archs: Iterable[tuple[int, Mapping]], where: str) -> dict[str, np.ndarray]:
    """Columns of :func:`benchmarks.nb201._build` from official per-architecture results.

    Architectures missing from ``archs`` (a partial table) get NaN everywhere and ``evaluated`` False.
    Mean columns average every recorded run; ``.seeds`` columns keep up to ``MAX_SEEDS`` runs, packed
    in seed order.
    """
    n = nb201.SPACE_SIZE
    if len(meta_archs) != n:
        raise DataError(f"{where}: meta_archs lists {len(meta_archs)} architectures, expected {n}")
    try:
        ops = np.array([nb201.parse(a).ops for a in meta_archs], dtype=np.int8)
    except InvalidArchError as exc:
        raise DataError(f"{where}: {exc}") from exc
    code_to_index = np.full(n, -1, dtype=np.int32)
    code_to_index[ops.astype(np.int64) @ nb201._PLACE] = np.arange(n, dtype=np.int32)
    if (code_to_index < 0).any():
        raise DataError(f"{where}: meta_archs are not all distinct")
    cols: dict[str, np.ndarray] = {"ops": ops, "code_to_index": code_to_index,
                                   "evaluated": np.zeros(n, dtype=bool)}
    acc_mean = {(ds, split, ep): np.full(n, np.nan) for (ds, split) in SPLITS for ep in (12, 200)}
    acc_seeds = {key: np.full((n, nb201.MAX_SEEDS), np.nan) for key in acc_mean}
    train_time = {(ds, ep): np.full(n, np.nan) for ds in nb201.DATASETS for ep in (12, 200)}
    params = {ds: np.full(n, np.nan) for ds in nb201.DATASETS}

    for index, per_hp in archs:
        if not 0 <= index < n:
            raise DataError(f"{where}: architecture index {index} outside 0..{n - 1}")
        if not isinstance(per_hp, Mapping):
            raise DataError(f"{where}: results of index {index} are a {type(per_hp).__name__}, not a dict")
        cols["evaluated"][index] = True
        for hp_key, state in per_hp.items():
            ep = HP_EPOCHS.get(str(hp_key))
            if ep is None:  # e.g. NATS-Bench's 01/90-epoch schedules of the size space: not NB201's
                continue
            try:
                runs = _Runs(state)
                for (ds, split), (run, eval_set) in SPLITS.items():
                    values = runs.accuracies(run, eval_set)
                    if values:
                        acc_mean[ds, split, ep][index] = np.mean(values)
                        kept = values[:nb201.MAX_SEEDS]
                        acc_seeds[ds, split, ep][index, :len(kept)] = kept
                for ds, run in TRAIN_RUN.items():
                    train_time[ds, ep][index] = runs.mean_train_time(run)
                    if ep == 200 or np.isnan(params[ds][index]):
                        params[ds][index] = runs.params(run)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"{where}: malformed results for index {index}, hp {hp_key!r} "
                                f"({type(exc).__name__}: {exc})") from exc

    # absent columns read as "not recorded in this copy" (e.g. v1.0 has no 12-epoch CIFAR-100 runs)
    for (ds, split, ep), mean in acc_mean.items():
        if not np.isnan(mean).all():
            cols[f"{ds}.{split}.{ep}"] = mean
            cols[f"{ds}.{split}.{ep}.seeds"] = acc_seeds[ds, split, ep]
    for (ds, ep), seconds in train_time.items():
        if not np.isnan(seconds).all():
            cols[f"{ds}.train_time.{ep}"] = seconds
    for ds, values in params.items():
        cols[f"{ds}.params"] = values
    return cols


class _Runs:
    """Accessors over one ``ArchResults`` state dict (all runs of one architecture, one schedule)."""

    def __init__(self, state: Mapping):
        self.seeds: Mapping = state["dataset_seed"]
        self.results: Mapping = state["all_results"]

    def _runs(self, run: str) -> list[Mapping]:
        return [self.results[(run, seed)] for seed in sorted(self.seeds.get(run, ()))]

    def accuracies(self, run: str, eval_set: str) -> list[float]:
        """Final-epoch accuracy on ``eval_set`` of each recorded seed that evaluated it."""
        out = []
        for r in self._runs(run):
            acc = r["eval_acc1es"].get(f"{eval_set}@{int(r['epochs']) - 1}")
            if acc is not None:
                out.append(float(acc))
        return out

    def mean_train_time(self, run: str) -> float:
        totals = [sum(float(t) for t in r["train_times"].values())
                  for r in self._runs(run) if isinstance(r.get("train_times"), Mapping) and r["train_times"]]
        return float(np.mean(totals)) if totals else float("nan")

    def params(self, run: str) -> float:
        seeds = sorted(self.seeds.get(run, ()))
        values = [float(self.results[(run, s)]["params"]) for s in seeds]
        if not values:
            return float("nan")
        # NATS-Bench's own legacy fix: some runs recorded a wrong count; seed 888's is the right one
        if len({f"{v:.5f}" for v in values}) > 1 and 888 in seeds:
            return values[seeds.index(888)]
        return float(np.mean(values))


# --------------------------------------------------------------------------------------------------
# A folder as a cache source
# --------------------------------------------------------------------------------------------------
def _folder_manifest(folder: Path) -> Path:
    """A listing (name, size, mtime) of ``folder``'s pickles, kept in the cache dir.

    The cache tracks files, not folders: the listing changes whenever a file in the folder does, so
    it stands for the folder as a cache source. It is rewritten only when its content changes.
    """
    lines = []
    for p in sorted(folder.iterdir()):
        if p.name == "meta.pickle.pbz2" or _ARCH_FILE.match(p.name):
            st = p.stat()
            lines.append(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}")
    if not lines:
        raise DataError(f"{folder}: no NATS-Bench pickles in this folder")
    text = "\n".join(lines) + "\n"
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    manifest = cache_dir() / "manifests" / f"{_slug(folder.name)}-{key}.tsv"
    if not manifest.is_file() or manifest.read_text() != text:
        atomic_write_text(manifest, text)
    return manifest


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# --------------------------------------------------------------------------------------------------
# Writers of the official layouts (test fixtures, the perf benchmark's NATS-Bench peer, exporting)
# --------------------------------------------------------------------------------------------------
def results_count_state(arch_str: str, index: int, run: str, seed: int, epochs: int,
                        final_accuracy: Mapping[str, float], train_seconds: float | None,
                        params: float) -> dict:
    """A ``ResultsCount`` state dict: final-epoch accuracies per evaluation set, evenly spread
    per-epoch training times (or None, as in NB201 v1.0). Earlier epochs are not recorded."""
    last = epochs - 1
    return {
        "name": run, "net_state_dict": None, "seed": seed, "epochs": epochs, "params": params,
        "flop": float("nan"), "latency": None,
        "arch_config": {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch_str,
                        "class_num": {"cifar100": 100, "ImageNet16-120": 120}.get(run, 10),
                        "arch_index": index},
        "train_acc1es": {last: float("nan")}, "train_acc5es": None, "train_losses": {last: float("nan")},
        "train_times": None if train_seconds is None else {e: train_seconds / epochs for e in range(epochs)},
        "eval_names": list(final_accuracy),
        "eval_acc1es": {f"{name}@{last}": float(acc) for name, acc in final_accuracy.items()},
        "eval_losses": {f"{name}@{last}": float("nan") for name in final_accuracy},
        "eval_times": {},
    }


def arch_results_state(arch_str: str, index: int, epochs: int,
                       runs: Mapping[str, Mapping[int, tuple[Mapping[str, float], float | None, float]]]) -> dict:
    """An ``ArchResults`` state dict; ``runs[run][seed] = (final accuracies, train seconds, params)``."""
    all_results, dataset_seed = {}, {}
    for run, seeds in runs.items():
        dataset_seed[run] = sorted(seeds)
        for seed, (accs, seconds, params) in seeds.items():
            all_results[(run, seed)] = results_count_state(arch_str, index, run, seed, epochs, accs,
                                                           seconds, params)
    return {"arch_index": index, "arch_str": arch_str, "all_results": all_results,
            "dataset_seed": dataset_seed, "clear_net_done": True}


def write_nb201_pth(path: Path, meta_archs: list[str], arch2infos: Mapping[int, Mapping[str, dict]]) -> None:
    """An NB201 ``.pth`` (``arch2infos[index] = {"less": A, "full": A}``), written with torch.save."""
    import torch

    torch.save({"meta_archs": list(meta_archs), "arch2infos": dict(arch2infos),
                "evaluated_indexes": sorted(arch2infos)}, path)


def write_nats_simple(folder: Path, meta_archs: list[str], arch2infos: Iterable[tuple[int, Mapping[str, dict]]]) -> None:
    """A NATS-tss ``-simple`` folder (``{index:06d}.pickle.pbz2`` = ``{"12": A, "200": A}``)."""
    folder.mkdir(parents=True, exist_ok=True)
    with bz2.open(folder / "meta.pickle.pbz2", "wb") as fh:
        pickle.dump({"meta_archs": list(meta_archs), "evaluated_indexes": []}, fh, protocol=4)
    for index, per_hp in arch2infos:
        write_nats_simple_arch(folder, index, per_hp)


def write_nats_simple_arch(folder: Path, index: int, per_hp: Mapping[str, dict]) -> None:
    with bz2.open(folder / f"{index:06d}.pickle.pbz2", "wb") as fh:
        pickle.dump(dict(per_hp), fh, protocol=4)


def states_from_benchmark(bench: "nb201.NB201Benchmark", index: int) -> dict[int, dict]:
    """{epochs: ArchResults state} of one architecture of a loaded benchmark, in the official layout.

    Used to convert the master CSV into NATS-Bench's format. The master table lacks some per-seed
    values (CIFAR-10 test, x-valid/x-test of CIFAR-100 and ImageNet16-120, all 12-epoch results); those
    runs are written so that their *means* equal the table's: one run for mean-only values, and for
    the x-valid/x-test halves each seed's pool value split around the table's means.
    """
    arch_str = bench.arch_at(index).id
    t = bench.table
    runs200: dict[str, dict[int, tuple[dict, float | None, float]]] = {}
    c10_seeds = [v for v in t["cifar10.valid.200.seeds"][index] if v == v]
    c10_time, c10_params = float(t["cifar10.train_time.200"][index]), float(t["cifar10.params"][index])
    runs200["cifar10-valid"] = {777 + 111 * k: ({"x-valid": v}, c10_time, c10_params)
                                for k, v in enumerate(c10_seeds)}
    # the cifar10 (train+valid) run's training time is not in the table: recorded as None
    runs200["cifar10"] = {777: ({"ori-test": float(t["cifar10.test.200"][index])}, None, c10_params)}
    runs12: dict[str, dict[int, tuple[dict, float | None, float]]] = {
        "cifar10-valid": {777: ({"x-valid": float(t["cifar10.valid.12"][index])}, None, c10_params)},
        "cifar10": {777: ({"ori-test": float(t["cifar10.test.12"][index])}, None, c10_params)}}
    for ds in ("cifar100", "imagenet16-120"):
        run = TRAIN_RUN[ds]
        pool_seeds = [v for v in t[f"{ds}.valtest.200.seeds"][index] if v == v]
        pool, test = float(t[f"{ds}.valtest.200"][index]), float(t[f"{ds}.test.200"][index])
        seconds, params = float(t[f"{ds}.train_time.200"][index]), float(t[f"{ds}.params"][index])
        runs200[run] = {}
        for k, p in enumerate(pool_seeds):
            x_test = test + (p - pool)
            runs200[run][777 + 111 * k] = ({"x-valid": 2 * p - x_test, "x-test": x_test, "ori-test": p},
                                           seconds, params)
        runs12[run] = {777: ({"x-valid": float(t[f"{ds}.valid.12"][index]),
                              "x-test": float(t[f"{ds}.test.12"][index])}, None, params)}
    return {200: arch_results_state(arch_str, index, 200, runs200),
            12: arch_results_state(arch_str, index, 12, runs12)}

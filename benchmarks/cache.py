"""The canonical columnar cache: one folder of ``.npy`` columns plus ``meta.json`` per converted source.

Converted once, memory-mapped on every load, rebuilt only when a source changes. Staleness is checked
cheaply by (size, mtime_ns) of each source; if those moved, the sha256 is recomputed and the cache is
rebuilt only when the content really differs. Builds write into a temporary folder and rename it into
place, so a crash never leaves a half-built cache and concurrent builders do not corrupt each other.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from nasrepro.errors import DataError
from nasrepro.io import atomic_write_json, sha256_file
from nasrepro.paths import cache_dir

#: bump when a converter's output changes meaning, so old caches are rebuilt
SCHEMA_VERSION = 1


class ColumnTable:
    """Memory-mapped columns (name -> ndarray) and metadata of one cache entry."""

    def __init__(self, folder: Path, meta: dict):
        self.folder = folder
        self.meta = meta
        self._columns: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._columns.get(name)
        if col is None:
            if name not in self.meta["columns"]:
                raise KeyError(name)
            col = np.load(self.folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            self._columns[name] = col
        return col

    def __contains__(self, name: str) -> bool:
        return name in self.meta["columns"]

    @property
    def columns(self) -> list[str]:
        return list(self.meta["columns"])

    @property
    def strings(self) -> dict:
        """Small string tables stored in the metadata (e.g. architecture strings are not; names are)."""
        return self.meta.get("strings", {})


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_or_build(name: str, sources: Mapping[str, Path],
                  build: Callable[[Mapping[str, Path]], tuple[dict[str, np.ndarray], dict]],
                  version: int = 1, progress: Callable[[str], None] | None = None) -> ColumnTable:
    """Return the cache entry ``name`` for ``sources``, building it with ``build`` if needed.

    ``build(sources)`` returns (columns, extra_meta). The entry's folder name carries the combined
    source sha256, so a changed source never reads a stale cache.
    """
    for label, path in sources.items():
        if not Path(path).is_file():
            raise DataError(f"{name}: source file {path} ({label}) not found")
    root = cache_dir() / name
    pointer = root / "current.json"
    fingerprints = {k: _fingerprint(Path(p)) for k, p in sources.items()}
    if pointer.is_file():
        try:
            current = json.loads(pointer.read_text())
        except (OSError, ValueError):
            current = None
        if current and current.get("fingerprints") == fingerprints and current.get("key"):
            table = _open(root / current["key"], version)
            if table is not None:
                return table
    # fingerprints moved (or first use): hash the content
    if progress:
        progress(f"{name}: checking sources")
    digests = {k: sha256_file(p) for k, p in sources.items()}
    key = f"v{SCHEMA_VERSION}.{version}-" + _combine(digests)
    table = _open(root / key, version)
    if table is None:
        if progress:
            progress(f"{name}: converting sources into the cache (once)")
        columns, extra = build(sources)
        meta = {"name": name, "schema": SCHEMA_VERSION, "version": version, "built_at": time.time(),
                "sources": {k: {"file": str(Path(p).name), "sha256": digests[k]} for k, p in sources.items()},
                "columns": {c: {"dtype": str(a.dtype), "shape": list(a.shape)} for c, a in columns.items()},
                **extra}
        _write_entry(root / key, columns, meta)
        table = _open(root / key, version)
        if table is None:  # pragma: no cover - would be a bug in _write_entry
            raise DataError(f"{name}: cache entry {root / key} unreadable right after building")
    atomic_write_json(pointer, {"key": key, "fingerprints": fingerprints})
    return table


def _combine(digests: Mapping[str, str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for k in sorted(digests):
        h.update(f"{k}={digests[k]};".encode())
    return h.hexdigest()[:16]


def _open(folder: Path, version: int) -> ColumnTable | None:
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("schema") != SCHEMA_VERSION or meta.get("version") != version:
        return None
    for col in meta["columns"]:
        if not (folder / f"{col}.npy").is_file():
            return None
    return ColumnTable(folder, meta)


def _write_entry(folder: Path, columns: dict[str, np.ndarray], meta: dict) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for col, arr in columns.items():
            np.save(tmp / f"{col}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        try:
            os.replace(tmp, folder)  # atomic when ``folder`` does not exist yet
        except OSError:
            if _open(folder, meta["version"]) is None:  # another builder won only if its entry is whole
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

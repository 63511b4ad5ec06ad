"""Search spaces and tabular/surrogate benchmarks behind one query interface.

``benchmarks.create(name)`` returns a loaded :class:`~benchmarks.base.Benchmark`; ``benchmarks.space(name)``
a :class:`~benchmarks.base.SearchSpace` (no data needed).
"""
from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path

from nasrepro.errors import ConfigError

#: benchmark name -> "module:Class" (loaded lazily so importing one never loads the others)
BENCHMARKS = {
    "nb201": "benchmarks.nb201:NB201Benchmark",
    "nb101": "benchmarks.nb101:NB101Benchmark",
    "nb301-standin": "benchmarks.nb301_standin:NB301StandIn",
}
SPACES = {
    "nb201": "benchmarks.nb201:NB201Space",
    "nb101": "benchmarks.nb101:NB101Space",
    "darts": "benchmarks.darts_space:DartsSpace",
    "multicell": "benchmarks.multicell:MultiCellSpace",
}


def _load(table: dict, name: str, kind: str):
    if name not in table:
        raise ConfigError(f"unknown {kind} {name!r}; choose from {', '.join(table)}")
    module, cls = table[name].split(":")
    return getattr(import_module(module), cls)


def create(name: str, root: Path | None = None, **options):
    """Load benchmark ``name`` from the data root (``NASREPRO_DATA``); ``options`` go to its loader
    (e.g. ``trust=True`` to unpickle an official NB201 file that has no registered checksum)."""
    loader = _load(BENCHMARKS, name, "benchmark").load
    unknown = sorted(set(options) - set(inspect.signature(loader).parameters))
    if unknown:
        raise ConfigError(f"benchmark {name} takes no option {', '.join(unknown)}")
    return loader(root, **options)


def space(name: str):
    return _load(SPACES, name, "search space")()

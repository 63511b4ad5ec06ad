"""Where data comes from and where derived caches go.

* Data root (source files, read-only is fine): ``$NASREPRO_DATA``, else ``<user data dir>/nasrepro``
  (``$XDG_DATA_HOME/nasrepro`` on Linux). Layout as in ``../shared/data``: ``nb201/``, ``nb101/``,
  ``nb301/``, ``cifar10/``.
* Cache dir (derived, rebuildable): ``$NASREPRO_CACHE``, else ``<user cache dir>/nasrepro``
  (``$XDG_CACHE_HOME/nasrepro``). Caches are keyed by the sha256 of their source, so several data roots
  can share one cache dir.
"""
from __future__ import annotations

import os
from pathlib import Path

from nasrepro.errors import DataError


def data_root(must_exist: bool = True) -> Path:
    """The data root; raises :class:`DataError` if it does not exist (and ``must_exist``)."""
    env = os.environ.get("NASREPRO_DATA")
    root = Path(env).expanduser() if env else _user_dir("data")
    if must_exist and not root.is_dir():
        origin = "NASREPRO_DATA" if env else "the default data root"
        raise DataError(f"data root {root} ({origin}) does not exist; set NASREPRO_DATA or run "
                        f"'nasrepro data fetch NAME'")
    return root


def data_file(relative: str) -> Path:
    """A file under the data root; raises :class:`DataError` naming the file if it is absent."""
    path = data_root() / relative
    if not path.is_file():
        raise DataError(f"data file {path} not found (see 'nasrepro data list' for what is expected)")
    return path


def cache_dir() -> Path:
    """The (created) cache dir for derived data."""
    env = os.environ.get("NASREPRO_CACHE")
    root = Path(env).expanduser() if env else _user_dir("cache")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cache dir {root} cannot be created: {exc.strerror}") from exc
    return root


def _user_dir(kind: str) -> Path:
    # imported only here: with both variables set, a source checkout runs without platformdirs installed
    # (as on a lent GPU machine whose image lacks it; results/drnas/GPU.md)
    import platformdirs

    return Path(platformdirs.user_data_dir("nasrepro") if kind == "data" else platformdirs.user_cache_dir("nasrepro"))

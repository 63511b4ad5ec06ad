"""Download a data file over HTTP(S): resumable, checksummed, never clobbering what is already there.

The download goes to ``<dest>.part``. An interrupted transfer (truncated response, server gone, timeout)
raises :class:`DataError` and keeps the ``.part``; the next call asks the server for the remaining bytes
with a ``Range`` header (and starts over if the server ignores it). A finished file is verified against
its sha256 and only then moved into place, by a hard link that fails rather than overwrite (so a file
already at ``dest`` is never replaced or deleted). A checksum mismatch discards the ``.part`` (its bytes
are wrong, resuming from them cannot help) and raises :class:`ChecksumError`.

Every network wait is bounded by ``timeout`` seconds and a call makes at most ``attempts`` tries.

:func:`unpack_archive` turns a downloaded ``.tar`` / ``.tar.gz`` into the folder the loaders read, with the
same care: members are checked (no absolute paths, no links out, nothing outside the expected top
folder), extraction goes to a temporary folder that is renamed into place, an existing folder is kept.
"""
from __future__ import annotations

import http.client
import math
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: downloads are not locked
    fcntl = None

from benchmarks import registry
from nasrepro.errors import ChecksumError, ConfigError, DataError
from nasrepro.io import sha256_file
from nasrepro.paths import data_root

CHUNK_BYTES = 1 << 16
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def fetch(name_or_url: str, dest: str | os.PathLike | None = None, sha256: str | None = None,
          progress: bool = True, *, verify: bool = True, timeout: float = 30.0, attempts: int = 3,
          retry_wait: float = 2.0) -> Path:
    """Download a registry item (by name) or a URL to ``dest`` and return ``dest``.

    ``name_or_url``: a :mod:`benchmarks.registry` name (URL, destination and sha256 then come from the
    registry unless given) or an ``http(s)://`` URL (then ``dest`` is required).
    ``sha256``: expected digest; required unless ``verify=False`` (an explicit opt-out).
    ``attempts``: tries in this call, each resuming the previous one; then the ``.part`` is kept and a
    :class:`DataError` raised, so running the same command again resumes.
    """
    url, dest_path, expected = resolve(name_or_url, dest, sha256)
    if verify and expected is None:
        raise ConfigError(f"no known sha256 for {name_or_url}; pass --sha256 HASH (or --no-verify to "
                          f"accept the download unchecked)")
    if attempts < 1 or not 0 < timeout < math.inf:
        raise ConfigError(f"attempts must be >= 1 and timeout finite > 0 (got {attempts}, {timeout})")

    if dest_path.exists():
        return _check_existing(dest_path, expected if verify else None)
    created = _make_parents(dest_path.parent)
    part = dest_path.with_name(dest_path.name + ".part")
    lock = _lock(part)
    try:
        for attempt in range(1, attempts + 1):
            try:
                _download(url, part, timeout, progress)
                break
            except DataError as exc:
                if attempt == attempts or not _retryable(exc):
                    raise
                time.sleep(retry_wait * attempt)
        if verify:
            actual = sha256_file(part)
            if actual != expected:
                part.unlink(missing_ok=True)
                raise ChecksumError(f"{url}: sha256 {actual} does not match the expected {expected}; "
                                    f"download discarded, nothing at {dest_path} was touched")
        publish_no_clobber(part, dest_path)
    except DataError:
        _tidy(part, created)
        raise
    finally:
        lock.close()
    return dest_path


def _lock(part: Path):
    """Hold an exclusive lock on ``part`` for the whole download: two concurrent fetches of one file
    would otherwise append to the same ``.part``."""
    handle = open(part, "ab")  # creates it empty if absent; never truncates
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DataError(f"another download into {part} is running; wait for it to finish") from None
    return handle


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` (and missing parents); return those created, innermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {folder}: {exc.strerror}") from None
    return missing


def _tidy(part: Path, created: list[Path]) -> None:
    """After a failure, leave nothing behind that holds no data: an empty ``.part``, folders we made."""
    if part.is_file() and part.stat().st_size == 0:
        part.unlink()
    for folder in created:
        try:
            folder.rmdir()  # only succeeds while empty
        except OSError:
            break


# --------------------------------------------------------------------------------------------------
def resolve(name_or_url: str, dest, sha256: str | None) -> tuple[str, Path, str | None]:
    """(url, destination, expected sha256) of a download; :class:`ConfigError` if there is none."""
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256.match(sha256):
            raise ConfigError(f"not a sha256 digest (64 hex digits): {sha256!r}")
    if "://" in name_or_url:
        scheme = urlsplit(name_or_url).scheme.lower()
        if scheme not in ("http", "https"):
            raise ConfigError(f"only http(s) downloads are supported, got {name_or_url!r}")
        if dest is None:
            raise ConfigError(f"downloading {name_or_url} needs a destination path")
        return name_or_url, Path(dest), sha256
    item = registry.get(name_or_url)
    if item.is_dir:
        raise ConfigError(f"{item.name} is a folder of files; copy it by hand to <data root>/{item.path} "
                          f"(source: {item.landing_page or 'see nasrepro data info'})")
    if not item.urls:
        where = f" from {item.landing_page}" if item.landing_page else ""
        raise ConfigError(f"{item.name} has no direct download URL; download {item.filename}{where} and "
                          f"run 'nasrepro data import PATH', or pass a direct URL with --url")
    dest_path = Path(dest) if dest is not None else data_root(must_exist=False) / item.path
    return item.urls[0], dest_path, sha256 or item.sha256


def _check_existing(dest: Path, expected: str | None) -> Path:
    if not dest.is_file():
        raise DataError(f"{dest} exists and is not a file; not touching it")
    if expected is not None:
        actual = sha256_file(dest)
        if actual != expected:
            raise ChecksumError(f"{dest} already exists with sha256 {actual}, not the expected {expected}; "
                                f"it was not replaced (move it away to download again)")
    return dest


class HTTPStatusError(DataError):
    """The server answered with an error status (kept, so retries can skip client errors)."""

    def __init__(self, url: str, status: int, reason: str):
        super().__init__(f"{url}: HTTP {status} {reason}")
        self.status = status


def _retryable(exc: DataError) -> bool:
    # client errors (404, 403, ...) will not change on a second try
    return not isinstance(exc, HTTPStatusError) or exc.status >= 500 or exc.status == 429


def _download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the missing bytes to ``part``; raise :class:`DataError` (``part`` kept) if cut short."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "nasrepro-fetch",
                                                   "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the .part is already whole
            exc.close()
            return
        exc.close()
        raise HTTPStatusError(url, exc.code, str(exc.reason)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: cannot connect ({reason}); {_kept(part)}") from exc

    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""), url)
            if start != offset:
                raise DataError(f"{url}: server resumed at byte {start}, asked for {offset}; {_kept(part)}")
            mode = "ab"
        else:  # 200: the server ignored Range (or none was sent) and sends the whole file
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        received = offset
        try:
            with open(part, mode) as fh, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                               unit_divisor=1024, desc=part.name[:-len(".part")],
                                               disable=not progress, leave=False) as bar:
                while block := response.read1(CHUNK_BYTES):  # whatever has arrived: keeps more on a cut
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
                fh.flush()
                os.fsync(fh.fileno())
        except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
            raise DataError(f"{url}: transfer interrupted after {received} bytes "
                            f"({type(exc).__name__}); {_kept(part)}") from exc
    if total is not None and received != total:
        raise DataError(f"{url}: response ended after {received} of {total} bytes; {_kept(part)}")


def _content_range(header: str, url: str) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.match(header.strip())
    if not match:
        raise DataError(f"{url}: partial response with unreadable Content-Range {header!r}")
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _kept(part: Path) -> str:
    size = part.stat().st_size if part.is_file() else 0
    if not size:
        return "nothing downloaded yet"
    return f"{size} bytes kept in {part}; run the same command again to resume"


def publish_no_clobber(tmp: Path, dest: Path) -> None:
    """Rename the finished file ``tmp`` to ``dest`` atomically, refusing to overwrite: if ``dest`` exists
    (or appears meanwhile) a :class:`DataError` is raised and ``tmp`` is left where it is."""
    try:
        os.link(tmp, dest)  # fails with FileExistsError instead of replacing
    except FileExistsError:
        raise DataError(f"{dest} appeared meanwhile; it was not overwritten") from None
    except OSError:  # file systems without hard links: check, then rename (a small race remains)
        if dest.exists():
            raise DataError(f"{dest} appeared meanwhile; it was not overwritten") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def unpack_archive(archive: Path, folder: Path) -> bool:
    """Extract ``archive`` so that its single top-level folder becomes ``folder``.

    Returns False (and touches nothing) when ``folder`` already exists. Raises :class:`DataError` for
    a corrupt archive or one laid out otherwise; the archive itself is always kept.
    """
    if folder.exists():
        return False
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".unpack", dir=folder.parent))
    except OSError as exc:
        raise DataError(f"cannot unpack {archive} into {folder.parent}: {exc.strerror or exc}") from None
    try:
        with tarfile.open(archive) as tar:
            tops = {Path(m.name).parts[0] for m in tar.getmembers() if Path(m.name).parts}
            if tops != {folder.name}:
                raise DataError(f"{archive}: expected one top-level folder {folder.name!r}, found "
                                f"{sorted(tops)[:5]}; unpack it by hand to {folder}")
            tar.extractall(work, filter="data")  # refuses absolute paths, links out, device files
        os.rename(work / folder.name, folder)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: cannot unpack ({type(exc).__name__}: {exc}); archive kept") from None
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cannot unpack {archive} to {folder}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return True

"""``nasrepro data`` (list / info / verify / import / fetch / pack) and ``nasrepro query``.

Every user mistake raises a typed :class:`NasReproError`; ``nasrepro.cli.main`` prints it as one line
and exits 2. Nothing here writes into the data root except ``data import`` and ``data fetch``, and both
only ever add a file that was absent (an existing file is never replaced); ``data pack`` writes only a new
folder of its own.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import registry
from benchmarks.fetch import fetch, publish_no_clobber, resolve, unpack_archive
from benchmarks.registry import DataItem
from nasrepro.errors import ChecksumError, ConfigError, DataError, UnsafeFileError
from nasrepro.io import sha256_file
from nasrepro.paths import cache_dir, data_root

PICKLE_WARNING = ("warning: {name} is pickle-based: loading it runs code stored in the file. "
                  "Only use copies whose sha256 you trust.")


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="list, inspect, verify, import and download data files")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(data))
    data.set_defaults(func=lambda args: _help(data))

    p = data_sub.add_parser("list", help="every registered data item: present in the data root? cached?")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)

    p = data_sub.add_parser("info", help="everything the registry knows about one item")
    p.add_argument("name")
    p.set_defaults(func=cmd_info)

    p = data_sub.add_parser("verify", help="check sha256 of present files against the registry")
    p.add_argument("names", nargs="*", metavar="NAME", help="items to verify (default: every present one)")
    p.set_defaults(func=cmd_verify)

    p = data_sub.add_parser("import", help="copy a downloaded official file into the data root, verified")
    p.add_argument("path", type=Path)
    p.add_argument("--name", help="registry item (default: identified by file name or sha256)")
    p.add_argument("--trust", action="store_true",
                   help="accept a pickle-based file that has no registry checksum")
    p.set_defaults(func=cmd_import)

    p = data_sub.add_parser("fetch", help="download an item into the data root (resumable, verified)")
    p.add_argument("name")
    p.add_argument("--url", help="download from this http(s) URL instead of the registry's")
    p.add_argument("--sha256", help="expected sha256 (needed where the registry has none)")
    p.add_argument("--no-verify", action="store_true", help="accept the download without a checksum")
    p.add_argument("--trust", action="store_true",
                   help="accept a pickle-based file that has no registry checksum")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per network wait (default 30)")
    p.add_argument("--attempts", type=int, default=3, help="tries, each resuming the last (default 3)")
    p.set_defaults(func=cmd_fetch)

    p = data_sub.add_parser("pack", help="write a small data root for NB201 supernet searches on another machine")
    p.add_argument("dest", type=Path, help="a new folder (an existing one is never written into)")
    p.set_defaults(func=cmd_pack)

    q = subparsers.add_parser("query", help="look up benchmark values for architectures")
    q.add_argument("bench", metavar="BENCH", help="benchmark name, e.g. nb201")
    q.add_argument("archs", nargs="*", metavar="ARCH",
                   help="architecture in the space's text form (nb201: the official string or an API index)")
    q.add_argument("--all", action="store_true", help="every architecture the benchmark holds data for")
    q.add_argument("--dataset", required=True)
    q.add_argument("--metric", default="accuracy")
    q.add_argument("--split", help="valid / test / ... (default: valid for accuracy, none otherwise)")
    q.add_argument("--epoch", help="training epochs (default: the final epoch)")
    q.add_argument("--seed", help="run slot (default: mean over runs)")
    q.add_argument("--device", help="device, for latency")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--trust", action="store_true",
                   help="allow unpickling an official NB201/NATS file that has no registered checksum")
    q.set_defaults(func=cmd_query)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# --------------------------------------------------------------------------------------------------
# nasrepro data
# --------------------------------------------------------------------------------------------------
def _status(item: DataItem, root: Path) -> tuple[str, int | None]:
    """("present" | "unpacked" (archive gone, its folder there) | "packed" (not unpacked yet) | "absent",
    size in bytes where known)."""
    path = root / item.path
    if item.is_dir:
        return ("present" if path.is_dir() else "absent"), None
    unpacked = item.unpacks_to is not None and (root / item.unpacks_to).is_dir()
    if path.is_file():
        packed = item.unpacks_to is not None and not unpacked
        return ("packed" if packed else "present"), path.stat().st_size
    return ("unpacked" if unpacked else "absent"), item.size


def _unpack(item: DataItem, archive: Path) -> None:
    if item.unpacks_to is None:
        return
    folder = data_root(must_exist=False) / item.unpacks_to
    if unpack_archive(archive, folder):
        print(f"{item.name}: unpacked to {folder}")


def cmd_list(args) -> int:
    root = data_root(must_exist=False)
    try:
        sources = registry.cached_sources(cache_dir())
    except DataError:  # no usable cache dir: nothing is cached, the listing still works
        sources = set()
    rows = []
    for item in registry.ITEMS:
        status, size = _status(item, root)
        rows.append({"name": item.name, "status": status, "size": size,
                     "cached": registry.is_cached(item, sources), "kind": item.kind,
                     "used_by": ", ".join(item.used_by), "path": item.path})
    if args.format == "json":
        print(json.dumps({"data_root": str(root), "exists": root.is_dir(), "items": rows}, indent=1))
        return 0
    print(f"data root: {root}" + ("" if root.is_dir() else "  (does not exist)"))
    table = [[r["name"], r["status"], _human(r["size"]), "yes" if r["cached"] else "-", r["kind"],
              r["used_by"], r["path"]] for r in rows]
    _print_table(["name", "status", "size", "cached", "kind", "used by", "path"], table)
    return 0


def cmd_info(args) -> int:
    item = registry.get(args.name)
    root = data_root(must_exist=False)
    status, size = _status(item, root)
    fields = item.to_dict()
    fields["status"] = f"{status} ({root / item.path})"
    for key, value in fields.items():
        if isinstance(value, tuple):
            value = ", ".join(value) or "-"
        print(f"{key:>13}: {'-' if value is None or value == '' else value}")
    _warn_if_pickle(item)
    return 0


def cmd_verify(args) -> int:
    root = data_root()
    items = [registry.get(n) for n in args.names] if args.names else \
        [i for i in registry.ITEMS if _status(i, root)[0] != "absent"]
    if not items:
        print(f"no registered data files under {root}")
        return 0
    mismatched, missing = [], []
    for item in items:
        path = root / item.path
        if item.is_dir:
            print(f"{item.name}: folder, not checksummed" if path.is_dir() else f"{item.name}: MISSING")
            if not path.is_dir():
                missing.append(item.name)
            continue
        if not path.is_file():
            if _status(item, root)[0] == "unpacked":
                print(f"{item.name}: only the unpacked folder {item.unpacks_to} is kept, not checksummed")
                continue
            print(f"{item.name}: MISSING ({path})")
            missing.append(item.name)
            continue
        actual = sha256_file(path)
        if item.sha256 is None:
            print(f"{item.name}: no registry checksum; sha256 {actual}")
        elif actual == item.sha256:
            print(f"{item.name}: ok")
        else:
            print(f"{item.name}: MISMATCH (sha256 {actual}, registry {item.sha256})")
            mismatched.append(item.name)
    if mismatched:
        raise ChecksumError(f"{len(mismatched)} of {len(items)} files differ from the registry: "
                            f"{', '.join(mismatched)}" + (f"; missing: {', '.join(missing)}" if missing else ""))
    if missing:
        raise DataError(f"missing from {root}: {', '.join(missing)}")
    return 0


def _identify(path: Path, name: str | None, digest: str) -> DataItem:
    if name is not None:
        return registry.get(name)
    item = registry.by_filename(path.name) or registry.by_sha256(digest)
    if item is None:
        raise ConfigError(f"cannot tell which data item {path.name} is (unknown name and sha256); "
                          f"pass --name NAME (see 'nasrepro data list')")
    return item


def _require_trust(item: DataItem, trusted: bool, verified: bool = True) -> None:
    """Pickle-based files need a registry checksum that is checked, or an explicit --trust."""
    if item.pickle and not trusted and (item.sha256 is None or not verified):
        why = "the registry has no checksum for it" if item.sha256 is None else "it is not being verified"
        raise UnsafeFileError(f"{item.name} is pickle-based (loading it runs code stored in the file) and "
                              f"{why}; pass --trust if you trust its source")


def _warn_if_pickle(item: DataItem) -> None:
    if item.pickle:
        print(PICKLE_WARNING.format(name=item.name), file=sys.stderr)


def cmd_import(args) -> int:
    src = Path(args.path).expanduser()
    if not src.is_file():
        raise DataError(f"{src}: no such file")
    digest = sha256_file(src)
    item = _identify(src, args.name, digest)
    if item.is_dir:
        raise ConfigError(f"{item.name} is a folder; copy it by hand to <data root>/{item.path}")
    if item.sha256 is not None and digest != item.sha256:
        raise ChecksumError(f"{src}: sha256 {digest} does not match {item.name}'s registry sha256 "
                            f"{item.sha256}; not imported")
    _require_trust(item, args.trust)
    dest = data_root(must_exist=False) / item.path
    if dest.exists():
        if dest.is_file() and sha256_file(dest) == digest:
            print(f"{item.name}: already in place ({dest})")
            _unpack(item, dest)
            _warn_if_pickle(item)
            return 0
        raise DataError(f"{dest} already exists with different content; not overwritten "
                        f"(move it away first to replace it)")
    try:
        _copy_no_clobber(src, dest, digest)
    except DataError:
        raise
    except OSError as exc:  # read-only data root, disk full, ...
        raise DataError(f"cannot write {dest}: {exc.strerror or exc}") from None
    note = "" if item.sha256 is not None else " (the registry has no checksum to compare it with)"
    print(f"{item.name}: imported to {dest}, sha256 {digest}{note}")
    _unpack(item, dest)
    _warn_if_pickle(item)
    return 0


def _copy_no_clobber(src: Path, dest: Path, digest: str) -> None:
    """Copy to a temporary file beside ``dest``, check it, then publish it without overwriting; a crash
    leaves at most a stray temporary file, never a torn ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".import", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fsync(out.fileno())
        if sha256_file(tmp) != digest:
            raise DataError(f"{src} changed while being copied; not imported")
        publish_no_clobber(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def cmd_pack(args) -> int:
    """The NB201 table and CIFAR-10's JPEG files packed into a folder (25 MB against 69 MB for the table and
    the zip): what a remote GPU machine with a transfer limit needs for the paper-scale NB201 searches and the
    training check, with room left for a search checkpoint (results/drnas/GPU.md). The pack holds the zip's
    files byte for byte, so both decode to the same images. Written beside ``dest`` first, then renamed."""
    from algorithms.nn.data import DATA_LAYOUT, pack_image_zip
    from benchmarks.nb201 import MASTER_CSV

    root, dest = data_root(), Path(args.dest).expanduser().absolute()
    if dest.exists():
        raise DataError(f"{dest} already exists; pack into a new folder (nothing was written)")
    table, images = root / MASTER_CSV, root / DATA_LAYOUT["cifar10-jpeg"][0]
    for needed in (table, images):
        if not needed.is_file():
            raise DataError(f"{needed} not found; 'data pack' copies it from the data root")
    if (root / DATA_LAYOUT["cifar10-pickles"][0]).is_dir():
        print("warning: this data root also has the CIFAR-10 pickles, which searches here prefer; the pack "
              "holds the JPEG copy only (too big otherwise), so searches there train on other images",
              file=sys.stderr)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".pack", dir=dest.parent))
    except OSError as exc:
        raise DataError(f"cannot write beside {dest}: {exc.strerror or exc}") from None
    try:
        (tmp / MASTER_CSV).parent.mkdir(parents=True)
        shutil.copyfile(table, tmp / MASTER_CSV)
        (tmp / DATA_LAYOUT["cifar10-jpeg-pack"][0]).parent.mkdir(parents=True, exist_ok=True)
        files, size = pack_image_zip(images, tmp / DATA_LAYOUT["cifar10-jpeg-pack"][0])
        if dest.exists():
            raise DataError(f"{dest} appeared while packing; nothing was written there")
        tmp.rename(dest)
    except OSError as exc:  # disk full, read-only, ...
        raise DataError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after the rename
    total = table.stat().st_size + size
    print(f"packed {dest}: the NB201 table ({table.stat().st_size / 1e6:.1f} MB) and {files} CIFAR-10 JPEG files "
          f"({size / 1e6:.1f} MB), {total / 1e6:.1f} MB ({total / 2**20:.1f} MiB); point NASREPRO_DATA at it")
    return 0


def cmd_fetch(args) -> int:
    item = registry.get(args.name)
    verify = not args.no_verify
    if args.no_verify and args.sha256:
        raise ConfigError("--sha256 and --no-verify contradict each other")
    if args.sha256 and item.sha256 and args.sha256.strip().lower() != item.sha256:
        raise ConfigError(f"--sha256 differs from the registry's sha256 of {item.name} ({item.sha256})")
    dest = data_root(must_exist=False) / item.path
    # where from, and against which checksum (raises with advice when there is no direct download)
    url, dest, expected = resolve(args.url, dest, args.sha256 or item.sha256) if args.url else \
        resolve(item.name, dest, args.sha256)
    _require_trust(item, args.trust, verified=verify)
    path = fetch(url, dest, expected, progress=sys.stderr.isatty(), verify=verify, timeout=args.timeout,
                 attempts=args.attempts)
    print(f"{item.name}: {path}" + ("" if verify else " (not verified)"))
    _unpack(item, path)
    _warn_if_pickle(item)
    return 0


# --------------------------------------------------------------------------------------------------
# nasrepro query
# --------------------------------------------------------------------------------------------------
def _int_option(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--{what} must be an integer, got {value!r}") from None


def _parse_early(bench_name: str, texts: Sequence[str]) -> list[Any]:
    """Parse what the benchmark's search space can parse without data; None where it needs the benchmark
    (plain numbers are API indices, resolved once the benchmark is loaded)."""
    import benchmarks

    if bench_name not in benchmarks.SPACES:
        return [None] * len(texts)
    space = benchmarks.space(bench_name)
    return [None if text.isdigit() else space.parse(text) for text in texts]


def _parse_arch(bench, text: str) -> Any:
    # a plain number is an API index where the benchmark has one (NB201)
    if text.isdigit() and hasattr(bench, "arch_at"):
        return bench.arch_at(int(text))
    return bench.space.parse(text)


def cmd_query(args) -> int:
    import benchmarks

    if args.all and args.archs:
        raise ConfigError("give architectures or --all, not both")
    if not args.all and not args.archs:
        raise ConfigError("give at least one architecture (or --all)")
    epoch = _int_option(args.epoch, "epoch")
    seed = _int_option(args.seed, "seed")
    split = args.split if args.split is not None else ("valid" if args.metric == "accuracy" else None)
    # malformed architectures fail before any data is loaded (the space alone can parse them)
    parsed = _parse_early(args.bench, args.archs)
    bench = benchmarks.create(args.bench, **({"trust": True} if args.trust else {}))
    if args.all:
        archs = bench.archs_with_data()
        if archs is None:
            raise ConfigError(f"{args.bench} is a surrogate with no finite table; name the architectures")
    else:
        archs = [arch if arch is not None else _parse_arch(bench, text)
                 for arch, text in zip(parsed, args.archs)]
    values = np.asarray(bench.query_many(archs, args.dataset, args.metric, split, epoch, seed,
                                         args.device), dtype=np.float64)
    if getattr(bench, "label", ""):
        print(f"note: {bench.name}: {bench.label}", file=sys.stderr)
    has_index = hasattr(bench, "indices")
    header = (["index"] if has_index else []) + ["arch", "value"]
    index = bench.indices(archs) if has_index else None
    rows = []
    for i, (arch, value) in enumerate(zip(archs, values)):
        row = ([int(index[i])] if has_index else []) + [bench.space.format(arch), float(value)]
        rows.append(row)
    _emit(rows, header, args, split, epoch, seed)
    return 0


def _emit(rows: list[list], header: list[str], args, split, epoch, seed) -> None:
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[*r[:-1], repr(r[-1])] for r in rows])
    elif args.format == "json":
        query = {"benchmark": args.bench, "dataset": args.dataset, "metric": args.metric, "split": split,
                 "epoch": epoch, "seed": seed, "device": args.device}
        print(json.dumps({"query": query, "results": [dict(zip(header, r)) for r in rows]}, indent=1))
    else:
        _print_table(header, [[*r[:-1], repr(r[-1])] for r in rows])


# --------------------------------------------------------------------------------------------------
def _print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover

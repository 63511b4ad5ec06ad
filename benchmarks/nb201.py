"""NAS-Bench-201: the cell space and the tabular benchmark.

The cell is a DAG on 4 nodes; each of its 6 edges (j -> i, j < i) carries one of 5 ops. The official
string lists, for nodes 1..3, the op of every incoming edge: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
An :class:`NB201Arch` is the tuple of the 6 op indices in that order; its canonical id is the official
string. Equal strings are equal architectures (NB201 itself does not merge isomorphic cells, and
neither do we: the table has one row per string).

Dataset/split mapping (done in one place, :meth:`NB201Benchmark._column`):

=================  ===========================================  ==========================================
dataset            split ``valid``                              split ``test``
=================  ===========================================  ==========================================
``cifar10``        ``cifar10-valid`` run, x-valid (25k images   ``cifar10`` run (train+valid), ori-test
                   held out of training) -- the "CIFAR-10
                   valid" column of published NB201 tables
``cifar100``       x-valid (5k of the 10k test images)          x-test (the other 5k)
``imagenet16-120`` x-valid (3k of the 6k test images)           x-test (the other 3k)
=================  ===========================================  ==========================================

Our copy stores CIFAR-100 / ImageNet16-120 as x-test and the *pool* x-valid + x-test (split
``valtest``, per seed). The two halves are the same size, so x-valid = 2 * pool - x-test exactly (mean
over runs); that is how split ``valid`` is computed for those two datasets (it reproduces the published
NB201/DrNAS valid numbers, e.g. 73.49 for the DrNAS cell on CIFAR-100). It is a measurement on images
disjoint from x-test, not an imputation, but per-seed x-valid values are not available.

Sources, in the order :meth:`NB201Benchmark.load` picks them from ``<data root>/nb201/`` (first present
wins; see :mod:`benchmarks.formats.nb201_official` for the official formats):

1. ``NATS-tss-v1_0-3ffb9-simple/`` (NATS-Bench topology, the newest and most complete release),
2. ``NAS-Bench-201-v1_1-096897.pth``, 3. ``NAS-Bench-201-v1_0-e61699.pth``,
4. ``nb201_master_15625.csv`` (this project's table, always present in CI).

Official files give x-valid (and every split) per seed directly, so with them split ``valid`` of
CIFAR-100 / ImageNet16-120 is the measured x-valid, with per-seed values. Run slots are packed: slot
``k`` is the ``k``-th recorded run in seed order (777, 888, 999), so an architecture with two runs
has slots 0 and 1. Rows an official file does not cover are NaN, and querying them raises
:class:`MissingEntryError`.
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks.base import ACCURACY, Benchmark, MetricSpec, SearchSpace, check_choice
from benchmarks.cache import ColumnTable, load_or_build
from nasrepro.errors import DataError, InvalidArchError, MissingEntryError, OutOfDomainError
from nasrepro.paths import data_root

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
N_NODES = 4
#: (to_node, from_node) of each edge, in the order of the official string
EDGES = tuple((i, j) for i in range(1, N_NODES) for j in range(i))
N_EDGES = len(EDGES)  # 6
SPACE_SIZE = len(OPS) ** N_EDGES  # 15,625
_PLACE = len(OPS) ** np.arange(N_EDGES - 1, -1, -1)  # edge 0 is the most significant digit
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


@dataclass(frozen=True)
class NB201Arch:
    """One NB201 cell: the op index (into :data:`OPS`) of each of the 6 edges, in official order."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = tuple(int(o) for o in self.ops)
        if len(ops) != N_EDGES or any(not 0 <= o < len(OPS) for o in ops):
            raise InvalidArchError(f"NB201 cell needs {N_EDGES} op indices in 0..{len(OPS) - 1}, "
                                   f"got {self.ops!r}")
        object.__setattr__(self, "ops", ops)

    @property
    def id(self) -> str:
        return to_string(self.ops)

    @property
    def code(self) -> int:
        """Base-5 number of the ops; a dense 0..15,624 key (not the official API index)."""
        code = 0
        for op in self.ops:  # plain Python: a numpy call would cost more than the whole query
            code = code * len(OPS) + op
        return code

    def __str__(self) -> str:
        return self.id


def to_string(ops: Sequence[int]) -> str:
    nodes = []
    k = 0
    for i in range(1, N_NODES):
        nodes.append("|" + "|".join(f"{OPS[ops[k + j]]}~{j}" for j in range(i)) + "|")
        k += i
    return "+".join(nodes)


def parse(text: str) -> NB201Arch:
    """Parse the official string; one clear :class:`InvalidArchError` for anything malformed."""
    if not isinstance(text, str):
        raise InvalidArchError(f"NB201 arch must be a string, got {type(text).__name__}")
    return _parse_string(text)


@lru_cache(maxsize=2 * SPACE_SIZE)  # arch strings repeat a lot (queries by string); failures are not cached
def _parse_string(text: str) -> NB201Arch:
    nodes = text.strip().split("+")
    if len(nodes) != N_NODES - 1:
        raise InvalidArchError(f"NB201 arch {text!r}: expected {N_NODES - 1} '+'-separated nodes, "
                               f"got {len(nodes)}")
    ops: list[int] = []
    for i, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise InvalidArchError(f"NB201 arch {text!r}: node {i} {node!r} must look like |op~0|...|")
        tokens = node[1:-1].split("|")
        if len(tokens) != i:
            raise InvalidArchError(f"NB201 arch {text!r}: node {i} needs {i} inputs, got {len(tokens)}")
        for j, token in enumerate(tokens):
            m = _TOKEN.match(token)
            if not m:
                raise InvalidArchError(f"NB201 arch {text!r}: malformed edge {token!r} (want op~k)")
            op, src = m.group(1), int(m.group(2))
            if op not in OPS:
                raise InvalidArchError(f"NB201 arch {text!r}: unknown op {op!r}; ops are {', '.join(OPS)}")
            if src != j:
                raise InvalidArchError(f"NB201 arch {text!r}: node {i} edge {j} reads node {src}, "
                                       f"expected ~{j}")
            ops.append(OPS.index(op))
    return NB201Arch(tuple(ops))


def from_code(code: int) -> NB201Arch:
    if not 0 <= int(code) < SPACE_SIZE:
        raise InvalidArchError(f"NB201 code {code} outside 0..{SPACE_SIZE - 1}")
    return NB201Arch(tuple(int(d) for d in np.unravel_index(int(code), (len(OPS),) * N_EDGES)))


#: BANANAS path encoding: the 4 input->output paths of the cell, as edge positions in official order
#: (0->3; 0->1->3; 0->2->3; 0->1->2->3). A path is a sequence of 1-3 ops, so the encoding has one
#: feature per possible op sequence: 5 + 5**2 + 5**3 = 155. Paths through ``none`` are kept, as in
#: NASLib's ``encode_paths`` (White et al.), so encodings match theirs feature for feature.
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
PATH_ENCODING_LENGTH = sum(len(OPS) ** k for k in range(1, 4))  # 155


def _path_offset(length: int) -> int:
    """First feature of the op sequences of ``length``: they come after all shorter sequences."""
    return sum(len(OPS) ** k for k in range(1, length))


class NB201Space(SearchSpace):
    name = "nb201"
    #: "onehot": one-hot op per edge (6 x 5 = 30), also known as "adjacency_onehot" (NASLib's name);
    #: "ops": the 6 op indices; "path": BANANAS path encoding (155, see :data:`PATHS`)
    encodings = ("onehot", "adjacency_onehot", "ops", "path")

    def parse(self, text: str) -> NB201Arch:
        return parse(text)

    def sample(self, rng: np.random.Generator) -> NB201Arch:
        return NB201Arch(tuple(int(o) for o in rng.integers(len(OPS), size=N_EDGES)))

    def neighbours(self, arch: NB201Arch) -> list[NB201Arch]:
        out = []
        for e in range(N_EDGES):
            for op in range(len(OPS)):
                if op != arch.ops[e]:
                    out.append(NB201Arch(arch.ops[:e] + (op,) + arch.ops[e + 1:]))
        return out

    def mutate(self, arch: NB201Arch, rng: np.random.Generator) -> NB201Arch:
        # Real et al. / NB201's regularized evolution: pick an edge, change its op to a different one
        e = int(rng.integers(N_EDGES))
        op = int(rng.integers(len(OPS) - 1))
        op = op if op < arch.ops[e] else op + 1
        return NB201Arch(arch.ops[:e] + (op,) + arch.ops[e + 1:])

    def encode(self, archs: Sequence[NB201Arch], encoding: str = "onehot") -> np.ndarray:
        check_choice("encoding", encoding, self.encodings, self.name)
        ops = np.array([a.ops for a in archs], dtype=np.int64).reshape(-1, N_EDGES)
        if encoding == "ops":
            return ops.astype(np.float32)
        if encoding == "path":
            out = np.zeros((len(ops), PATH_ENCODING_LENGTH), dtype=np.float32)
            for path in PATHS:
                feature = _path_offset(len(path)) + ops[:, list(path)] @ (len(OPS) ** np.arange(len(path)))
                out[np.arange(len(ops)), feature] = 1.0
            return out
        return np.eye(len(OPS), dtype=np.float32)[ops].reshape(len(ops), -1)

    def distance(self, a: NB201Arch, b: NB201Arch) -> int:
        return int(sum(x != y for x, y in zip(a.ops, b.ops)))

    @property
    def size(self) -> int:
        return SPACE_SIZE

    def all_archs(self) -> list[NB201Arch]:
        return [NB201Arch(ops) for ops in product(range(len(OPS)), repeat=N_EDGES)]


# --------------------------------------------------------------------------------------------------
# Tabular benchmark
# --------------------------------------------------------------------------------------------------
DATASETS = ("cifar10", "cifar100", "imagenet16-120")
_CSV_DS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet16_120"}
_SHORT_DS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}
MASTER_CSV = "nb201/nb201_master_15625.csv"
LATENCY_CSV = "nb201/nb201_latency_help_27devices.csv"
MAX_SEEDS = 3
#: bump when :func:`_build` (or an official reader) changes its columns, so old caches are rebuilt
CACHE_VERSION = 2


def _build(sources: Mapping[str, Path]) -> tuple[dict[str, np.ndarray], dict]:
    """Convert the master (and latency) CSV into columns indexed by the official API index."""
    rows, _ = _read_csv(sources["master"])
    if len(rows) != SPACE_SIZE:
        raise DataError(f"{sources['master']}: expected {SPACE_SIZE} rows, found {len(rows)} "
                        f"(truncated or not the NB201 master table)")
    cols: dict[str, np.ndarray] = {}
    try:
        index = np.array([int(r["api_index"]) for r in rows])
        if not np.array_equal(np.sort(index), np.arange(SPACE_SIZE)):
            raise DataError(f"{sources['master']}: api_index is not a permutation of 0..{SPACE_SIZE - 1}")
        order = np.argsort(index)
        rows = [rows[i] for i in order]
        ops = np.array([parse(r["arch_str"]).ops for r in rows], dtype=np.int8)
        cols["ops"] = ops
        code_to_index = np.full(SPACE_SIZE, -1, dtype=np.int32)
        code_to_index[ops.astype(np.int64) @ _PLACE] = np.arange(SPACE_SIZE, dtype=np.int32)
        if (code_to_index < 0).any():
            raise DataError(f"{sources['master']}: architecture strings are not all distinct")
        cols["code_to_index"] = code_to_index
        cols["evaluated"] = np.ones(SPACE_SIZE, dtype=bool)  # the master table is complete

        def f(name: str) -> np.ndarray:
            return np.array([float(r[name]) for r in rows], dtype=np.float64)

        def seeds(name: str) -> np.ndarray:
            out = np.full((SPACE_SIZE, MAX_SEEDS), np.nan)
            for i, r in enumerate(rows):
                vals = [float(v) for v in r[name].split(";") if v]
                out[i, :len(vals)] = vals
            return out

        for ds in DATASETS:
            c, s = _CSV_DS[ds], _SHORT_DS[ds]
            cols[f"{ds}.test.200"] = f(f"{c}_test_200ep")
            cols[f"{ds}.params"] = f(f"params_mb_{s}")
            cols[f"{ds}.train_time.200"] = f(f"train_time_s_{s}")
            if ds == "cifar10":
                cols[f"{ds}.valid.200"] = f("cifar10valid_valid_200ep_mean")
                cols[f"{ds}.valid.200.seeds"] = seeds("cifar10valid_valid_200ep_seeds")
            else:
                pool = f(f"{c}_valtest_200ep_mean")
                cols[f"{ds}.valtest.200"] = pool
                cols[f"{ds}.valtest.200.seeds"] = seeds(f"{c}_valtest_200ep_seeds")
                cols[f"{ds}.valid.200"] = 2.0 * pool - cols[f"{ds}.test.200"]
            hp12 = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}[ds]
            cols[f"{ds}.valid.12"] = f(f"hp12_{hp12}_val")
            cols[f"{ds}.test.12"] = f(f"hp12_{hp12}_test")
    except (KeyError, ValueError) as exc:
        raise DataError(f"{sources['master']}: malformed NB201 table ({type(exc).__name__}: {exc})") from exc

    devices: list[str] = []
    if "latency" in sources:
        devices = latency_columns(sources["latency"], cols)
    return cols, {"strings": {"devices": devices, "source": "master"}}


def _read_csv(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Rows and header of a CSV; undecodable or malformed bytes become a :class:`DataError`."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            return list(reader), list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV table ({type(exc).__name__}: {exc})") from exc


def latency_columns(path: Path, cols: dict[str, np.ndarray]) -> list[str]:
    """Add one ``latency.<device>`` column per device of the HELP latency CSV; return the devices."""
    lat_rows, fields = _read_csv(path)
    devices = [c[len("latency_ms_"):] for c in fields if c.startswith("latency_ms_")]
    if len(lat_rows) != SPACE_SIZE:
        raise DataError(f"{path}: expected {SPACE_SIZE} rows, found {len(lat_rows)}")
    try:
        lat_rows.sort(key=lambda r: int(r["api_index"]))
        for d in devices:
            cols[f"latency.{d}"] = np.array([float(r[f"latency_ms_{d}"]) for r in lat_rows])
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: malformed latency table ({type(exc).__name__}: {exc})") from exc
    return devices


class NB201Benchmark(Benchmark):
    """NAS-Bench-201 from the canonical cache (built from ``nb201/nb201_master_15625.csv``)."""

    name = "nb201"
    datasets = DATASETS

    def __init__(self, table: ColumnTable):
        self.space = NB201Space()
        self.table = table
        self.devices = tuple(table.strings.get("devices", ()))
        self._code_to_index = np.asarray(table["code_to_index"])
        self._resolved: dict[tuple, tuple[np.ndarray, int | None]] = {}

    @classmethod
    def load(cls, root: Path | None = None, trust: bool = False,
             source: str | None = None) -> "NB201Benchmark":
        """Load from the first source present (order in the module docstring), or from ``source``
        (``"master"`` or an official file/folder name under ``nb201/``).

        ``trust=True`` allows unpickling an official file whose checksum is not registered (pickles
        run code when loaded); a cached conversion is reused without unpickling anything.
        """
        root = Path(root) if root is not None else data_root()
        latency = root / LATENCY_CSV
        official = None
        if source != "master":
            # imported here: the CSV path (the common case) must not pay for the official readers
            from benchmarks.formats import nb201_official

            official = nb201_official.find_official(root / "nb201", source)
        if official is not None:
            table = nb201_official.load_table(official, trust=trust,
                                              latency=latency if latency.is_file() else None)
            return cls(table)
        sources = {"master": root / MASTER_CSV}
        if latency.is_file():
            sources["latency"] = latency
        return cls(load_or_build("nb201", sources, _build, version=CACHE_VERSION))

    # -- index mapping --------------------------------------------------------------------------------
    def index_of(self, arch: Any) -> int:
        """The official API index of ``arch`` (an :class:`NB201Arch` or an official string)."""
        arch = self._as_arch(arch)
        return int(self._code_to_index[arch.code])

    def arch_at(self, index: int) -> NB201Arch:
        if not 0 <= int(index) < SPACE_SIZE:
            raise OutOfDomainError(f"nb201: API index {index} outside 0..{SPACE_SIZE - 1}")
        return NB201Arch(tuple(int(o) for o in self.table["ops"][int(index)]))

    def indices(self, archs: Sequence[Any] | np.ndarray) -> np.ndarray:
        """API indices of many architectures; an int array is taken as API indices already."""
        if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu":
            if archs.size and (archs.min() < 0 or archs.max() >= SPACE_SIZE):
                raise OutOfDomainError(f"nb201: API index outside 0..{SPACE_SIZE - 1}")
            return archs.astype(np.int64, copy=False)
        codes = np.fromiter((self._as_arch(a).code for a in archs), dtype=np.int64, count=len(archs))
        return self._code_to_index[codes].astype(np.int64)

    def _as_arch(self, arch: Any) -> NB201Arch:
        if isinstance(arch, NB201Arch):
            return arch
        if isinstance(arch, str):
            return parse(arch)
        raise InvalidArchError(f"nb201: not an NB201 architecture: {arch!r}")

    def has_data(self, arch: Any) -> bool:
        return bool(self.table["evaluated"][self.index_of(arch)])

    def archs_with_data(self) -> list[NB201Arch]:
        ops = np.asarray(self.table["ops"])[np.asarray(self.table["evaluated"])]
        return [NB201Arch(tuple(int(o) for o in row)) for row in ops]

    @property
    def source(self) -> str:
        """Which file the table was converted from (``master`` or an official file name)."""
        return str(self.table.meta.get("strings", {}).get("source", "master"))

    def data_sha256(self) -> dict[str, str]:
        return {k: v["sha256"] for k, v in self.table.meta["sources"].items()}

    # -- queries --------------------------------------------------------------------------------------
    def _column(self, dataset: str, metric: str, split: str | None, epoch: int | None,
                seed: int | None, device: str | None) -> tuple[np.ndarray, int | None]:
        """:meth:`_resolve`, remembered per distinct valid query (a query costs ~1 us, resolving ~10)."""
        # types are part of the key: seed=True must not hit the entry of seed=1
        key = (dataset, metric, split, epoch, type(epoch), seed, type(seed), device)
        try:
            return self._resolved[key]
        except KeyError:
            resolved = self._resolved[key] = self._resolve(dataset, metric, split, epoch, seed, device)
            return resolved
        except TypeError:  # an unhashable argument: let _resolve reject it
            return self._resolve(dataset, metric, split, epoch, seed, device)

    def _resolve(self, dataset: str, metric: str, split: str | None, epoch: int | None,
                 seed: int | None, device: str | None) -> tuple[np.ndarray, int | None]:
        """Map a query onto (column, seed slot). All dataset/split quirks live here."""
        ds = self.check_dataset(dataset)
        check_choice("metric", metric, ("accuracy", "params", "train_time", "latency"), self.name)
        where = f"{self.name}/{ds}/{metric}"
        if metric != ACCURACY:
            if split is not None:
                raise OutOfDomainError(f"{where}: takes no split (got {split!r})")
            if seed is not None:
                raise OutOfDomainError(f"{where}: has no per-seed values (got seed {seed!r})")
        if metric == "latency":
            if device is None:
                raise OutOfDomainError(f"{where}: needs a device; choose from {', '.join(self.devices)}")
            check_choice("device", device, self.devices, where)
            if epoch is not None:
                raise OutOfDomainError(f"{where}: takes no epoch")
            return self.table[f"latency.{device}"], None
        if device is not None:
            raise OutOfDomainError(f"{where}: takes no device (got {device!r})")
        if metric == "params":
            if epoch is not None:
                raise OutOfDomainError(f"{where}: takes no epoch")
            return self.table[f"{ds}.params"], None
        check_choice("epoch", epoch, (None, 12, 200), where)
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer))):
            raise OutOfDomainError(f"{where}: epoch must be an integer (12 or 200), got {epoch!r}")
        ep = 200 if epoch is None else int(epoch)
        if metric == "train_time":
            if f"{ds}.train_time.{ep}" not in self.table:
                raise MissingEntryError(f"{where}: training time for {ep} epochs is not recorded in "
                                        f"this copy ({self.source})")
            return self.table[f"{ds}.train_time.{ep}"], None
        splits = ("valid", "test") if ds == "cifar10" else ("valid", "test", "valtest")
        check_choice("split", split, splits, where)
        name = f"{ds}.{split}.{ep}"
        if name not in self.table:
            raise MissingEntryError(f"{where}/{split}: not recorded for {ep} epochs in this copy "
                                    f"({self.source})")
        if seed is None:
            return self.table[name], None
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < MAX_SEEDS:
            raise OutOfDomainError(f"{where}: seed must be None (mean) or a run slot 0..{MAX_SEEDS - 1}, "
                                   f"got {seed!r}")
        if f"{name}.seeds" not in self.table:
            raise MissingEntryError(f"{where}/{split}@{ep}: only the mean over runs is recorded here")
        return self.table[f"{name}.seeds"], int(seed)

    def query(self, arch: Any, dataset: str, metric: str = ACCURACY, split: str | None = "valid",
              epoch: int | None = None, seed: int | None = None, device: str | None = None) -> float:
        column, slot = self._column(dataset, metric, split, epoch, seed, device)
        index = int(self._code_to_index[self._as_arch(arch).code])
        value = float(column[index] if slot is None else column[index, slot])
        if value != value:  # NaN: not recorded for this architecture (absent run, partial table)
            raise MissingEntryError(f"nb201: no {_what(dataset, metric, split, epoch, seed)} recorded "
                                    f"for index {index}")
        return value

    def query_many(self, archs: Sequence[Any] | np.ndarray, dataset: str, metric: str = ACCURACY,
                   split: str | None = "valid", epoch: int | None = None, seed: int | None = None,
                   device: str | None = None) -> np.ndarray:
        """Vectorised; ``archs`` may be specs, strings, or an int array of API indices."""
        column, slot = self._column(dataset, metric, split, epoch, seed, device)
        idx = self.indices(archs)
        values = np.asarray(column[idx] if slot is None else column[idx, slot], dtype=np.float64)
        if np.isnan(values).any():
            missing = int(idx[np.isnan(values)][0])
            raise MissingEntryError(f"nb201: no {_what(dataset, metric, split, epoch, seed)} recorded "
                                    f"for index {missing} (and {int(np.isnan(values).sum()) - 1} more)")
        return values

    def describe(self) -> list[MetricSpec]:
        """What this copy holds (the master table and the official files differ, e.g. per-seed x-valid)."""
        master = self.source == "master"
        notes = {("cifar10", "valid"): "cifar10-valid run, x-valid", ("cifar10", "test"): "cifar10 run, ori-test",
                 "valid": "x-valid = 2*valtest - test" if master else "x-valid", "test": "x-test",
                 "valtest": "x-valid + x-test pool (ori-test)"}
        out = []
        for ds in DATASETS:
            for split in ("valid", "test") if ds == "cifar10" else ("valid", "test", "valtest"):
                epochs = tuple(ep for ep in (12, 200) if f"{ds}.{split}.{ep}" in self.table)
                if not epochs:
                    continue
                per_seed = any(f"{ds}.{split}.{ep}.seeds" in self.table for ep in epochs)
                out.append(MetricSpec(ds, "accuracy", split, epochs, "mean+per-seed" if per_seed else "mean",
                                      notes.get((ds, split), notes[split])))
            out.append(MetricSpec(ds, "params", None, (), "mean", "MB"))
            epochs = tuple(ep for ep in (12, 200) if f"{ds}.train_time.{ep}" in self.table)
            if epochs:
                out.append(MetricSpec(ds, "train_time", None, epochs, "mean", "seconds"))
            if self.devices:
                out.append(MetricSpec(ds, "latency", None, (), "mean",
                                      f"ms, HELP measurements, devices: {', '.join(self.devices)}"))
        return out


def _what(dataset: str, metric: str, split: str | None, epoch: int | None, seed: int | None) -> str:
    parts = [dataset, metric] + ([split] if split else []) + ([f"{epoch} epochs"] if epoch else [])
    return "/".join(parts) + (f" of run slot {seed}" if seed is not None else "")

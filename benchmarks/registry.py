"""The data registry: every named data file nasrepro knows, where it lives, and how to trust it.

One :class:`DataItem` per file (or folder), with its path relative to the data root
(:func:`nasrepro.paths.data_root`), where to get it, its sha256 where known, its licence, whether
loading it unpickles (and therefore runs code), and which benchmark reads it.

Two kinds of items:

* ``shared``: the development/CI files of ``../shared/data`` (see its ``MANIFEST.tsv``; the sha256 and
  sizes below are copied from it, and a test checks they still agree).
* ``official``: the files a user with internet downloads from the benchmark authors. Only the
  NAS-Bench-101 records (sha256 from google-research/nasbench's README) and the CIFAR archives (sha256
  as pinned by ``keras.datasets``) are plain HTTPS downloads with a known sha256. The NAS-Bench-201 /
  NATS-Bench files and ImageNet16-120 sit on Google Drive (an interactive page, not a direct download)
  and have no published sha256: their ``sha256`` is ``None``. ``nasrepro data fetch`` then needs
  ``--url`` plus ``--sha256 HASH`` (or an explicit ``--no-verify``), and ``nasrepro data import``
  accepts a manually downloaded copy; pickle-based files without a checked registry sha256 need
  ``--trust``. Archives (``unpacks_to``) are unpacked into the folder the loaders read.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from nasrepro.errors import ConfigError


@dataclass(frozen=True)
class DataItem:
    """One named data file (or folder) of the data root."""

    name: str
    #: path relative to the data root
    path: str
    description: str
    #: "shared" (development/CI data, see MANIFEST.tsv) or "official" (the authors' release)
    kind: str
    #: benchmark(s) or loader(s) that read it
    used_by: tuple[str, ...]
    licence: str
    #: loading it unpickles (runs code): needs a registry checksum or an explicit opt-in (--trust)
    pickle: bool = False
    sha256: str | None = None
    size: int | None = None
    #: direct HTTP(S) downloads (tried in order); empty when there is none
    urls: tuple[str, ...] = ()
    #: where a human downloads it when there is no direct URL (e.g. a Google Drive page)
    landing_page: str | None = None
    #: a folder rather than one file (not checksummed as a whole)
    is_dir: bool = False
    #: for an archive: the folder (relative to the data root) it unpacks to, which the loaders read
    unpacks_to: str | None = None
    note: str = ""

    @property
    def filename(self) -> str:
        return Path(self.path).name

    def to_dict(self) -> dict:
        return asdict(self)


_SHARED_ORIGIN = "see MANIFEST.tsv of the shared data root"

ITEMS: tuple[DataItem, ...] = (
    # -- shared development / CI data ---------------------------------------------------------------
    DataItem("nb201", "nb201/nb201_master_15625.csv",
             "NAS-Bench-201 master table: one row per API index (15,625), 200-epoch test/valid accuracy, "
             "params, train time, 12-epoch results", "shared", ("nb201",), "mixed (MIT / Apache-2.0)",
             sha256="3099fc885ccce058a8d2c7fcf574cfda07363f710ca6d0544f42957873f0e3e1", size=7160046,
             note=_SHARED_ORIGIN),
    DataItem("nb201-latency", "nb201/nb201_latency_help_27devices.csv",
             "latency (ms) of every NB201 architecture on 27 device settings (HELP measurements)",
             "shared", ("nb201",), "MIT",
             sha256="b381843b875655cb558a200e60b695ee1faece5bc24cfafed27303dc1dc8683d", size=7918364,
             note=_SHARED_ORIGIN),
    DataItem("nb201-vtao", "nb201/nats_tss_test_acc_200ep_vtao.csv",
             "second copy of the NB201 200-epoch test accuracies with an isomorphism-aware UniqueString",
             "shared", ("tests",), "no licence file (NATS-Bench: MIT)",
             sha256="cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e", size=3024008,
             note=_SHARED_ORIGIN),
    DataItem("nb101-vis", "nb101/nb101_vis_30001archs_val_4-12-36-108.csv",
             "30,001 NB101 cells: single-run validation accuracy at 4/12/36/108 epochs, train time, params "
             "(no test accuracy, no adjacency)", "shared", ("nb101",), "ISC / NB101 data Apache-2.0",
             sha256="7e6da9ac007be6295d356943ba4a8bbf53a9c7ba9182839d79c1fac445bad3cf", size=4863280,
             note=_SHARED_ORIGIN),
    DataItem("nb101-specs", "nb101/nb101_vis_30001archs_with_specs.csv",
             "the 30,001-row NB101 table with n_vertices, adjacency and ops appended", "shared",
             ("nb101",), "derived (NB101 data Apache-2.0)",
             sha256="a872b5fe46f6da4dd7c1c3818fb997d360fd7734fe264092478dc6d44cc6358d", size=8801433,
             note=_SHARED_ORIGIN),
    DataItem("nb101-all-specs", "nb101/nb101_all_423624_specs.csv.gz",
             "every unique NB101 cell (423,624) with its spec, sorted by hash; no metrics", "shared",
             ("nb101", "tests"), "derived (NB101 data Apache-2.0)",
             sha256="76a96092117f362da2611d08639ce960dc65667957a28ad3b3b7c2e3a7c88f84", size=11408034,
             note=_SHARED_ORIGIN),
    DataItem("nb101-vis-1k", "nb101/raw/nasbench_vis_data-1k_with_adjacency.json",
             "1,000 NB101 cells with adjacency, ops and official hash (reference for the hash)", "shared",
             ("tests",), "ISC",
             sha256="97508235d7b6e1e4cee998629e87ec661d9a27ca882cc31f1503126340d6f1f2", size=1073227,
             note=_SHARED_ORIGIN),
    DataItem("nb101-naslib-dummy", "nb101/raw/naslib_tests_assets_nb101_dummy.pkl",
             "30 NB101 cells in the full official record layout (format reference)", "shared", ("tests",),
             "Apache-2.0", pickle=True,
             sha256="da5c65e005b96780f657e0eef79559ae44cef91ff99916433c9880bf76fa0947", size=23451,
             note=_SHARED_ORIGIN),
    DataItem("nb301-standin", "nb301/yahpo_v2_final_model_v2.onnx",
             "YAHPO Gym v2 ONNX surrogate fitted to NB301 training data: a STAND-IN, not the official "
             "NB301 ensemble", "shared", ("nb301-standin",), "Apache-2.0",
             sha256="e7168d495cf7fe6419b69234a052571536c2a5f6d7a8a2aead4e9d04dffac1d6", size=2781646,
             note=_SHARED_ORIGIN),
    DataItem("nb301-standin-encoding", "nb301/yahpo_v2_final_encoding_v2.json",
             "categorical encoding of the YAHPO NB301 surrogate's 34 inputs", "shared", ("nb301-standin",),
             "Apache-2.0", sha256="b16bb8db9aa5a9b688cd97e782643abe96bd166baa445675f57cbcf5e6128a98",
             size=6706, note=_SHARED_ORIGIN),
    DataItem("nb301-standin-configspace", "nb301/yahpo_v2_final_config_space_v2.json",
             "config space of the YAHPO NB301 surrogate", "shared", ("nb301-standin",), "Apache-2.0",
             sha256="3135c6f8347f491fd31e8fa7a5e9607ea926c9a8558a6a21a1419d55a01884f2", size=18982,
             note=_SHARED_ORIGIN),
    DataItem("cifar10-jpeg", "cifar10/cifar10_jpeg_YoongiKim.zip",
             "all 60,000 CIFAR-10 images as (lossy) JPEG, train/<class>/, test/<class>/", "shared",
             ("supernet training",), "CIFAR-10: no formal licence",
             sha256="3054c506d6b9c55863eb76490483f9f2d56b5a8850a262d6cfb7d6d71537273c", size=62190935,
             note=_SHARED_ORIGIN),
    DataItem("cifar10-subset", "cifar10/cifar10_subset_5000train_1000test_from_jpeg.npz",
             "500 train / 100 test CIFAR-10 images per class decoded from the JPEG zip (uint8 NHWC)",
             "shared", ("supernet training",), "CIFAR-10: no formal licence",
             sha256="9175571789d664a552faf255481e6664fc46c0399d34f98fa43582e3d5ac3263", size=17099024,
             note=_SHARED_ORIGIN),
    # -- official releases (downloaded by users with internet) -------------------------------------
    DataItem("nb201-v1_0", "nb201/NAS-Bench-201-v1_0-e61699.pth",
             "official NAS-Bench-201 v1.0 benchmark file (all results except trained weights)", "official",
             ("nb201 (official reader)",), "MIT", pickle=True,
             landing_page="https://drive.google.com/open?id=1SKW0Cu0u8-gb18zDpaAGi0f74UdXeGKs",
             note="torch pickle: loading runs code. Google Drive only (no direct URL); no published sha256 "
                  "(the authors only say 'e61699' is the file's last six digits). Source: "
                  "D-X-Y/AutoDL-Projects docs/NAS-Bench-201.md"),
    DataItem("nb201-v1_1", "nb201/NAS-Bench-201-v1_1-096897.pth",
             "official NAS-Bench-201 v1.1 benchmark file", "official", ("nb201 (official reader)",), "MIT",
             pickle=True,
             landing_page="https://drive.google.com/open?id=16Y0UwGisiouVRxW-W5hEtbxmcHw_0hF_",
             note="torch pickle: loading runs code. Google Drive only; no published sha256"),
    DataItem("nats-tss", "nb201/NATS-tss-v1_0-3ffb9-simple.tar",
             "official NATS-Bench topology search space archive (15,625 bz2 pickles)", "official",
             ("nb201 (official reader)",), "MIT", pickle=True, unpacks_to="nb201/NATS-tss-v1_0-3ffb9-simple",
             landing_page="https://drive.google.com/file/d/17_saCsj_krKjlCBLOJEpNtzPXArMCqxU/view",
             note="holds pickles: loading runs code. Google Drive only; no published sha256. Source: "
                  "D-X-Y/NATS-Bench README.md (2020.08.31 release)"),
    DataItem("nb101-only108", "nb101/nasbench_only108.tfrecord",
             "official NAS-Bench-101 records, 108-epoch runs only (~499 MB)", "official", ("nb101",),
             "Apache-2.0",
             sha256="4c39c3936e36a85269881d659e44e61a245babcb72cb374eacacf75d0e5f4fd1",
             urls=("https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord",),
             note="TFRecord of JSON records (no pickle). sha256 from google-research/nasbench README.md"),
    DataItem("nb101-full", "nb101/nasbench_full.tfrecord",
             "official NAS-Bench-101 records, 4/12/36/108 epochs (~1.95 GB)", "official", ("nb101",),
             "Apache-2.0",
             sha256="3d64db8180fb1b0207212f9032205064312b6907a3bbc81eabea10db2f5c7e9c",
             urls=("https://storage.googleapis.com/nasbench/nasbench_full.tfrecord",),
             note="TFRecord of JSON records (no pickle). sha256 from google-research/nasbench README.md"),
    DataItem("cifar10-python", "cifar10/cifar-10-python.tar.gz",
             "official CIFAR-10 python archive (pickled batches)", "official", ("supernet training",),
             "CIFAR-10: no formal licence", pickle=True, unpacks_to="cifar10/cifar-10-batches-py",
             sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", size=170498071,
             urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
             note="batches are pickles; sha256 as pinned by keras.datasets.cifar10"),
    DataItem("cifar100-python", "cifar100/cifar-100-python.tar.gz",
             "official CIFAR-100 python archive (pickled train/test)", "official", ("supernet training",),
             "CIFAR-100: no formal licence", pickle=True, unpacks_to="cifar100/cifar-100-python",
             sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7", size=169001437,
             urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
             note="pickles inside; sha256 as pinned by keras.datasets.cifar100"),
    DataItem("imagenet16-120", "imagenet16",
             "downsampled 16x16 ImageNet (folder with train_data_batch_1..10 and val_data pickles); "
             "NB201 uses the first 120 classes", "official", ("supernet training",),
             "ImageNet terms of access", pickle=True, is_dir=True,
             landing_page="https://drive.google.com/open?id=1L0Lzq8rWpZLPfiQGd6QR8q5xLV88emU7",
             note="a folder of pickles, copied by hand (no single file to fetch or checksum); the NB201 "
                  "authors' training-data folder on Google Drive (D-X-Y/AutoDL-Projects "
                  "docs/NAS-Bench-201.md)"),
)

REGISTRY: dict[str, DataItem] = {item.name: item for item in ITEMS}


def get(name: str) -> DataItem:
    """The item called ``name``; a :class:`ConfigError` suggesting close names otherwise."""
    item = REGISTRY.get(name)
    if item is None:
        close = difflib.get_close_matches(str(name), REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown data item {name!r}{hint}; 'nasrepro data list' shows them all")
    return item


def by_filename(filename: str) -> DataItem | None:
    """The item whose file is called ``filename`` (official downloads keep their names)."""
    for item in ITEMS:
        if item.filename == filename:
            return item
    return None


def by_sha256(digest: str) -> DataItem | None:
    for item in ITEMS:
        if item.sha256 is not None and item.sha256 == digest.lower():
            return item
    return None


def cached_sources(cache_root: Path) -> set[tuple[str, str]]:
    """(file name, sha256) of every source behind an entry of the columnar cache under ``cache_root``.

    Reads the ``meta.json`` files written by :mod:`benchmarks.cache`; unreadable ones are skipped (the
    cache is rebuildable, so a torn entry just counts as not cached).
    """
    found: set[tuple[str, str]] = set()
    if not cache_root.is_dir():
        return found
    for meta_path in cache_root.glob("*/*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
            for source in meta.get("sources", {}).values():
                found.add((str(source["file"]), str(source["sha256"])))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def is_cached(item: DataItem, sources: set[tuple[str, str]]) -> bool:
    """Whether a cache entry was built from ``item`` (from this exact content when its sha256 is known)."""
    if item.sha256 is not None:
        return (item.filename, item.sha256) in sources
    return any(name == item.filename for name, _ in sources)

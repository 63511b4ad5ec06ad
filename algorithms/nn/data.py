"""Image datasets without torchvision: loaders for the official files, and a device-resident batcher.

Loaders return :class:`ImageArrays` (uint8 NHWC images, int64 labels, the dataset's channel mean/std):

* CIFAR-10 as the official python pickles (``cifar-10-batches-py/data_batch_1..5``, ``test_batch``),
  as an image folder or zip (``train/<class>/*.jpg``, ``test/<class>/*.jpg``; decoded once and cached as
  ``.npy`` in :func:`nasrepro.paths.cache_dir`), as a JPEG pack (the same files' bytes in one deflated
  ``.npz``, a third of the zip's size: :func:`pack_image_zip`), or as the quick 5k/1k ``.npz`` subset;
* CIFAR-100 python pickles (``cifar-100-python/train``, ``test``; fine labels);
* ImageNet16-120 in NAS-Bench-201's format (``train_data_batch_1..10``, ``val_data``; labels are 1-based
  and only classes 1..120 are kept, as AutoDL-Projects' ``ImageNet16(..., 120)`` does).

Pickles are read with a restricted unpickler that only resolves the numpy names an array needs, so a
malicious file raises :class:`UnsafeFileError` instead of running code.

:class:`ImageBatches` keeps the whole uint8 dataset on the device and does augmentation on the batch in
torch (random crop with zero padding, horizontal flip, normalisation, optional cutout), drawing every
random number from one explicit ``torch.Generator``. Its iteration state (epoch, position, order,
generator state) can be saved and restored, so a resumed search or training sees the same batches.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nasrepro.errors import CheckpointError, ConfigError, DataError, UnsafeFileError
from nasrepro.paths import data_root

# Per-channel mean/std (fraction of 255) used to normalise each dataset, as in the reference code:
# CIFAR-10 from DARTS/DrNAS ``utils.py``; CIFAR-100 and ImageNet16 from NAS-Bench-201 (AutoDL-Projects).
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "cifar100": ((129.3 / 255, 124.1 / 255, 112.4 / 255), (68.2 / 255, 65.4 / 255, 70.4 / 255)),
    "imagenet16-120": ((122.68 / 255, 116.66 / 255, 104.01 / 255), (63.22 / 255, 61.26 / 255, 65.09 / 255)),
}

#: Where each dataset lives under the data root, and the ``nasrepro data fetch`` item (benchmarks/registry.py)
#: that provides it.
DATA_LAYOUT: dict[str, tuple[str, str]] = {
    "cifar10-pickles": ("cifar10/cifar-10-batches-py", "cifar10-python"),
    "cifar10-jpeg": ("cifar10/cifar10_jpeg_YoongiKim.zip", "cifar10-jpeg"),
    # the zip's JPEG files packed (nasrepro data pack): read where the zip is absent, same images
    "cifar10-jpeg-pack": ("cifar10/cifar10_jpeg_pack.npz", "cifar10-jpeg"),
    "cifar10-subset": ("cifar10/cifar10_subset_5000train_1000test_from_jpeg.npz", "cifar10-subset"),
    "cifar100": ("cifar100/cifar-100-python", "cifar100-python"),
    "imagenet16-120": ("imagenet16", "imagenet16-120"),
}
DATASETS = ("cifar10", "cifar10-jpeg", "cifar10-subset", "cifar100", "imagenet16-120")

_CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_IMAGENET16_TRAIN_BATCHES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ImageArrays:
    """A labelled image dataset in memory: uint8 NHWC images and int64 labels for train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


# --------------------------------------------------------------------------------------------------
# Safe pickle reading
# --------------------------------------------------------------------------------------------------
# Exactly the globals a pickled numpy array (protocol 0-5, Python 2 or 3, numpy 1 or 2) refers to.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return super().find_class(module, name)


def read_data_pickle(path: Path) -> dict:
    """A dict of arrays/lists from an official dataset pickle, keys as ``str``; nothing else is allowed."""
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    try:
        with open(path, "rb") as fh:
            # latin1: the official CIFAR/ImageNet16 pickles were written by Python 2
            obj = _ArrayUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        if "refusing global" in str(exc):
            raise UnsafeFileError(f"{path}: not a plain data pickle ({exc}); not loaded") from exc
        raise DataError(f"{path}: corrupt pickle ({exc})") from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{path}: corrupt pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _rows_to_nhwc(data: np.ndarray, side: int, path: Path) -> np.ndarray:
    """Rows of ``3*side*side`` bytes (all R, then G, then B) -> uint8 NHWC."""
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3 * side * side:
        raise DataError(f"{path}: 'data' has shape {data.shape}, expected (N, {3 * side * side})")
    return np.ascontiguousarray(data.astype(np.uint8, copy=False).reshape(-1, 3, side, side).transpose(0, 2, 3, 1))


def _read_batches(folder: Path, files: tuple[str, ...], label_key: str, side: int, fetch: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise DataError(f"data file {path} not found; run 'nasrepro data fetch {fetch}'")
        entry = read_data_pickle(path)
        if "data" not in entry or label_key not in entry:
            raise DataError(f"{path}: missing key 'data' or {label_key!r} (found {sorted(entry)})")
        x = _rows_to_nhwc(entry["data"], side, path)
        y = np.asarray(entry[label_key], dtype=np.int64)
        if len(x) != len(y):
            raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


# --------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------
def load_cifar10_pickles(folder: str | os.PathLike) -> ImageArrays:
    """The official ``cifar-10-batches-py`` folder."""
    folder = Path(folder)
    x_train, y_train = _read_batches(folder, _CIFAR10_TRAIN_BATCHES, "labels", 32, "cifar10-python")
    x_test, y_test = _read_batches(folder, ("test_batch",), "labels", 32, "cifar10-python")
    return _arrays("cifar10", x_train, y_train, x_test, y_test, 10)


def load_cifar100_pickles(folder: str | os.PathLike) -> ImageArrays:
    """The official ``cifar-100-python`` folder (fine labels, 100 classes)."""
    folder = Path(folder)
    x_train, y_train = _read_batches(folder, ("train",), "fine_labels", 32, "cifar100-python")
    x_test, y_test = _read_batches(folder, ("test",), "fine_labels", 32, "cifar100-python")
    return _arrays("cifar100", x_train, y_train, x_test, y_test, 100)


def load_imagenet16(folder: str | os.PathLike, num_classes: int = 120) -> ImageArrays:
    """NAS-Bench-201's ImageNet16 folder, restricted to the first ``num_classes`` classes (labels 0-based)."""
    if not 0 < num_classes <= 1000:
        raise ConfigError(f"ImageNet16: num_classes must be in 1..1000, got {num_classes}")
    folder = Path(folder)
    x_train, y_train = _read_batches(folder, _IMAGENET16_TRAIN_BATCHES, "labels", 16, "imagenet16-120")
    x_test, y_test = _read_batches(folder, ("val_data",), "labels", 16, "imagenet16-120")
    keep_train = (y_train >= 1) & (y_train <= num_classes)
    keep_test = (y_test >= 1) & (y_test <= num_classes)
    name = f"imagenet16-{num_classes}"
    return _arrays(name, x_train[keep_train], y_train[keep_train] - 1, x_test[keep_test], y_test[keep_test] - 1,
                   num_classes, stats="imagenet16-120")


def load_cifar10_subset(path: str | os.PathLike) -> ImageArrays:
    """The quick ``.npz`` subset (``x_train``, ``y_train``, ``x_test``, ``y_test``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found; run 'nasrepro data fetch cifar10-subset'")
    try:
        with np.load(path, allow_pickle=False) as npz:
            parts = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 subset ({exc})") from exc
    return _arrays("cifar10", *parts, 10)


def load_image_folder(source: str | os.PathLike, name: str = "cifar10") -> ImageArrays:
    """Images stored as ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` in a folder or a zip.

    Classes are the sorted folder names (they must agree between train and test). Decoding 60k JPEGs
    takes a while, so the decoded arrays are cached (keyed by the zip's sha256, or by a folder's file
    listing with sizes and mtimes).
    """
    from benchmarks.cache import load_or_build  # the project's columnar .npy cache

    source = Path(source)
    if source.is_file():
        table = load_or_build(f"images_{name}", {"images": source}, lambda s: _decode_zip(s["images"]))
    elif source.is_dir():
        listing = sorted(p for p in source.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        digest = hashlib.sha256()
        for p in listing:
            st = p.stat()
            digest.update(f"{p.relative_to(source)}:{st.st_size}:{st.st_mtime_ns};".encode())
        table = load_or_build(f"images_{name}_folder_{digest.hexdigest()[:16]}", {},
                              lambda _: _decode_folder(source, listing))
    else:
        raise DataError(f"image folder or zip {source} not found; run 'nasrepro data fetch {name}-jpeg'")
    return _arrays_from_table(table, name)


def load_jpeg_pack(path: str | os.PathLike, name: str = "cifar10") -> ImageArrays:
    """A JPEG pack written by :func:`pack_image_zip`: the same images as the zip it was made from, decoded
    from the same bytes (and cached like the zip)."""
    from benchmarks.cache import load_or_build

    path = Path(path)
    if not path.is_file():
        raise DataError(f"JPEG pack {path} not found; run 'nasrepro data pack' where the zip is")
    return _arrays_from_table(load_or_build(f"images_{name}_pack", {"pack": path},
                                            lambda s: _decode_pack(s["pack"])), name)


def _arrays_from_table(table, name: str) -> ImageArrays:
    # copies out of the read-only memory maps (torch refuses to wrap read-only arrays silently)
    return _arrays(name, np.array(table["x_train"]), np.array(table["y_train"]),
                   np.array(table["x_test"]), np.array(table["y_test"]), len(table.meta["classes"]))


def load_dataset(name: str, root: str | os.PathLike | None = None) -> ImageArrays:
    """Load dataset ``name`` (one of :data:`DATASETS`) from the data root in its :data:`DATA_LAYOUT`.

    ``cifar10`` reads the official pickles when they are there, else the JPEG zip.
    """
    base = Path(root) if root is not None else data_root()
    if name == "cifar10":
        name = _cifar10_copy(base)
        if name == "cifar10-pickles":
            return load_cifar10_pickles(base / DATA_LAYOUT[name][0])
    if name == "cifar10-jpeg":
        path = _existing(base, "cifar10-jpeg")
        if path == base / DATA_LAYOUT["cifar10-jpeg-pack"][0]:
            return load_jpeg_pack(path)
        return load_image_folder(path, "cifar10")
    if name == "cifar10-subset":
        return load_cifar10_subset(_existing(base, "cifar10-subset"))
    if name == "cifar100":
        return load_cifar100_pickles(_existing(base, "cifar100"))
    if name == "imagenet16-120":
        return load_imagenet16(_existing(base, "imagenet16-120"), 120)
    raise ConfigError(f"unknown image dataset {name!r}; choose from {', '.join(DATASETS)}")


def check_dataset_files(name: str, root: str | os.PathLike | None = None) -> None:
    """Raise the :class:`DataError` :func:`load_dataset` would raise for missing files, without reading
    (decoding 60,000 JPEGs only to learn that they exist takes a minute)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown image dataset {name!r}; choose from {', '.join(DATASETS)}")
    base = Path(root) if root is not None else data_root()
    _existing(base, _cifar10_copy(base) if name == "cifar10" else name)


def image_source(name: str, root: str | os.PathLike | None = None) -> str:
    """Which files :func:`load_dataset` reads for ``name``, in words (reported beside results trained on them:
    the CIFAR-10 fallback is a lossy JPEG copy)."""
    if name == "cifar10":
        name = _cifar10_copy(Path(root) if root is not None else data_root())
    described = {"cifar10-pickles": "the official CIFAR-10 python pickles",
                 "cifar10-jpeg": "a lossy JPEG copy of CIFAR-10 (quality 75, 4:2:0), not the original images",
                 "cifar10-subset": "5,000 training images decoded from the JPEG copy of CIFAR-10"}
    return described.get(name, f"the official {name} pickles")


def _cifar10_copy(base: Path) -> str:
    """Which copy ``cifar10`` means under ``base``: the official pickles when present, else the JPEG set."""
    return "cifar10-pickles" if (base / DATA_LAYOUT["cifar10-pickles"][0]).is_dir() else "cifar10-jpeg"


def _existing(base: Path, key: str) -> Path:
    relative, fetch = DATA_LAYOUT[key]
    path = base / relative
    if not path.exists() and key == "cifar10-jpeg" and (base / DATA_LAYOUT["cifar10-jpeg-pack"][0]).is_file():
        return base / DATA_LAYOUT["cifar10-jpeg-pack"][0]  # the same JPEG files, packed
    if not path.exists():
        raise DataError(f"{path} not found; run 'nasrepro data fetch {fetch}'")
    return path


def _arrays(name: str, x_train, y_train, x_test, y_test, num_classes: int, stats: str | None = None
            ) -> ImageArrays:
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3 or len(x) != len(y):
            raise DataError(f"{name}: expected uint8 NxHxWx3 images with one label each, got "
                            f"{x.dtype} {x.shape} and {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{name}: labels outside 0..{num_classes - 1}")
    mean, std = DATASET_STATS[stats or name]
    return ImageArrays(name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), num_classes,
                       mean, std)


def _decode(named_blobs: list[tuple[str, bytes]]) -> np.ndarray:
    def one(named_blob: tuple[str, bytes]) -> np.ndarray:
        name, blob = named_blob
        try:
            with Image.open(io.BytesIO(blob)) as img:
                return np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # OSError covers undecodable files
            raise DataError(f"image {name} cannot be decoded ({exc})") from exc

    # Pillow releases the GIL while decoding, so threads give a real speed-up
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(one, named_blobs))
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"images of different sizes: {sorted(shapes)[:3]}")
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)


def _split_class_file(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(split, class) of a path ending in ``<split>/<class>/<file>`` with split train/test, else None."""
    if len(parts) >= 3 and parts[-3] in ("train", "test") and parts[-1].lower().endswith(_IMAGE_SUFFIXES):
        return parts[-3], parts[-2]
    return None


def _labelled(entries: list[tuple[str, str, str, bytes]], where: str
              ) -> tuple[list[str], dict[str, list[tuple[str, bytes, int]]]]:
    """The class list (sorted folder names) and, per split, the (file name, bytes, label) of each image in
    the order given."""
    classes = sorted({c for s, c, _, _ in entries if s == "train"})
    if not classes or classes != sorted({c for s, c, _, _ in entries if s == "test"}):
        raise DataError(f"{where}: expected train/<class>/ and test/<class>/ image folders with the same classes")
    index = {c: i for i, c in enumerate(classes)}
    return classes, {split: [(name, blob, index[c]) for s, c, name, blob in entries if s == split]
                     for split in ("train", "test")}


def _columns(entries: list[tuple[str, str, str, bytes]], where: str) -> tuple[dict, dict]:
    """Decode (split, class, file name, bytes) entries into the cache's columns plus the class list."""
    classes, splits = _labelled(entries, where)
    columns = {}
    for split, images in splits.items():
        columns[f"x_{split}"] = _decode([(f"{where}:{name}", blob) for name, blob, _ in images])
        columns[f"y_{split}"] = np.array([label for _, _, label in images], dtype=np.int64)
    return columns, {"classes": classes}


def _zip_entries(path: Path) -> list[tuple[str, str, str, bytes]]:
    """(split, class, member, bytes) of every ``<split>/<class>/<image>`` member, in sorted member order."""
    try:
        with zipfile.ZipFile(path) as zf:
            entries = []
            for member in sorted(zf.namelist()):
                key = _split_class_file(tuple(member.split("/")))
                if key is not None:
                    entries.append((*key, member, zf.read(member)))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable zip ({exc})") from exc
    return entries


def _decode_zip(path: Path) -> tuple[dict, dict]:
    return _columns(_zip_entries(path), str(path))


#: the JPEG pack's arrays: per split the files' bytes concatenated, each file's end offset and its label
_PACK_KEYS = ("classes", "train_bytes", "train_ends", "y_train", "test_bytes", "test_ends", "y_test")


def pack_image_zip(source: Path, dest: Path) -> tuple[int, int]:
    """Write every image of the zip ``source`` (the members :func:`load_image_folder` reads, in its order
    and with its labels) as one ``.npz`` at ``dest``, which :func:`load_jpeg_pack` decodes to the same
    arrays. Returns (files, bytes written). For shipping the images to another machine: per split the
    files' bytes are concatenated and deflated as one stream, so a header that every file repeats (623 of
    CIFAR-10's 921 bytes per JPEG) costs a back-reference instead: 18 MB for the 62 MB zip."""
    classes, splits = _labelled(_zip_entries(source), str(source))
    arrays: dict[str, np.ndarray] = {"classes": np.array(classes)}
    for split, images in splits.items():
        arrays[f"{split}_bytes"] = np.frombuffer(b"".join(blob for _, blob, _ in images), dtype=np.uint8)
        arrays[f"{split}_ends"] = np.cumsum([len(blob) for _, blob, _ in images], dtype=np.int64)
        arrays[f"y_{split}"] = np.array([label for _, _, label in images], dtype=np.int64)
    with open(dest, "xb") as fh:  # never over an existing file
        np.savez_compressed(fh, **arrays)
    return sum(len(images) for images in splits.values()), dest.stat().st_size


def _decode_pack(path: Path) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in _PACK_KEYS if k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{path}: not a readable JPEG pack ({exc})") from exc
    missing = [k for k in _PACK_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: not a JPEG pack (no {', '.join(missing)}); write one with 'nasrepro data pack'")
    columns = {}
    for split in ("train", "test"):
        data, ends, labels = arrays[f"{split}_bytes"], arrays[f"{split}_ends"], arrays[f"y_{split}"]
        if len(ends) != len(labels) or (len(ends) and (ends[-1] != len(data) or np.any(np.diff(ends) < 0))):
            raise DataError(f"{path}: {split} offsets do not match its bytes and labels")
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        blob = data.tobytes()
        columns[f"x_{split}"] = _decode([(f"{path}:{split} image {i}", blob[a:b])
                                         for i, (a, b) in enumerate(zip(starts, ends))])
        columns[f"y_{split}"] = labels.astype(np.int64)
    return columns, {"classes": [str(c) for c in arrays["classes"]]}


def _decode_folder(root: Path, listing: list[Path]) -> tuple[dict, dict]:
    entries = []
    for p in listing:
        key = _split_class_file(p.relative_to(root).parts)
        if key is not None:
            entries.append((*key, str(p.relative_to(root)), p.read_bytes()))
    return _columns(entries, str(root))


# --------------------------------------------------------------------------------------------------
# Device-resident batches with on-batch augmentation
# --------------------------------------------------------------------------------------------------
class ImageBatches:
    """Batches of one image set, kept whole on the device, augmented on the batch.

    Every random draw (shuffle order, crop offsets, flips, cutout centres) comes from ``generator``,
    whose device is the data's device. ``next_batch()`` runs forever, starting a new epoch when one is
    exhausted; ``epoch()`` yields the batches left in the current epoch. ``state_dict()`` /
    ``load_state_dict()`` capture the position, the epoch's order and the generator.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *,
                 batch_size: int, mean: tuple[float, ...], std: tuple[float, ...], generator: torch.Generator,
                 augment: bool = False, shuffle: bool | None = None, drop_last: bool = False, cutout: int = 0,
                 crop_padding: int = 4, resize_to: int | None = None, channels_last: bool = False,
                 indices: torch.Tensor | None = None):
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if cutout < 0 or crop_padding < 0:
            raise ConfigError(f"cutout and crop_padding must be >= 0, got {cutout}, {crop_padding}")
        self.device = torch.device(generator.device)
        self.generator = generator
        self.batch_size = batch_size
        self.augment = augment
        self.shuffle = augment if shuffle is None else shuffle
        self.drop_last = drop_last
        self.cutout = cutout
        self.crop_padding = crop_padding
        self.channels_last = channels_last
        self._images = torch.as_tensor(images).to(self.device)  # N, H, W, C uint8 (shared by split halves)
        self._labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        if self._images.dtype != torch.uint8 or self._images.ndim != 4:
            raise DataError(f"ImageBatches needs uint8 NHWC images, got {self._images.dtype} "
                            f"{tuple(self._images.shape)}")
        if resize_to is not None and resize_to != self._images.shape[1]:
            self._images = _resize_nhwc(self._images, resize_to)
        self._indices = (torch.arange(len(self._labels), device=self.device) if indices is None
                         else indices.to(self.device))
        if len(self._indices) == 0:
            raise ConfigError("ImageBatches over an empty set")
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) * 255
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1) * 255
        self._options = dict(batch_size=batch_size, mean=tuple(mean), std=tuple(std), augment=augment,
                             shuffle=self.shuffle, drop_last=drop_last, cutout=cutout, crop_padding=crop_padding,
                             channels_last=channels_last)
        self.epochs_completed = 0
        self._order: torch.Tensor | None = None  # this epoch's dataset rows, None between epochs
        self._position = 0

    @classmethod
    def from_arrays(cls, arrays: ImageArrays, split: str, *, batch_size: int, generator: torch.Generator,
                    **options) -> "ImageBatches":
        """Batches of ``arrays``' ``"train"`` or ``"test"`` split, normalised with the dataset's mean/std."""
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
        x, y = (arrays.x_train, arrays.y_train) if split == "train" else (arrays.x_test, arrays.y_test)
        return cls(x, y, batch_size=batch_size, mean=arrays.mean, std=arrays.std, generator=generator, **options)

    # -- sizes --------------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return len(self._indices)

    @property
    def image_size(self) -> int:
        return int(self._images.shape[1])

    @property
    def indices(self) -> torch.Tensor:
        """Rows of the underlying image tensor this set covers (for checking splits)."""
        return self._indices

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    # -- derived sets -------------------------------------------------------------------------------
    def split(self, fraction: float, generator: torch.Generator) -> tuple["ImageBatches", "ImageBatches"]:
        """Two disjoint random parts (``fraction`` and the rest) sharing the image tensor, each with its own
        generator seeded from ``generator`` (e.g. the weight/architecture halves of a DARTS-style search)."""
        if not 0 < fraction < 1:
            raise ConfigError(f"split fraction must be in (0, 1), got {fraction}")
        n = self.num_samples
        first = int(round(n * fraction))
        if not 0 < first < n:
            raise ConfigError(f"split of {n} samples at {fraction} leaves an empty part")
        perm = torch.randperm(n, generator=generator).to(self.device)
        seeds = torch.randint(0, 2**62, (2,), generator=generator).tolist()
        parts = (self._indices[perm[:first]].sort().values, self._indices[perm[first:]].sort().values)
        return tuple(self._derive(rows, seed) for rows, seed in zip(parts, seeds))  # type: ignore[return-value]

    def subset(self, count: int, generator: torch.Generator) -> "ImageBatches":
        """A random subset of ``count`` samples, with a generator seeded from ``generator``."""
        if not 0 < count <= self.num_samples:
            raise ConfigError(f"subset size must be in 1..{self.num_samples}, got {count}")
        perm = torch.randperm(self.num_samples, generator=generator)[:count].to(self.device)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return self._derive(self._indices[perm].sort().values, seed)

    def _derive(self, indices: torch.Tensor, seed: int) -> "ImageBatches":
        generator = torch.Generator(device=self.device).manual_seed(seed)
        options = {k: v for k, v in self._options.items() if k not in ("batch_size", "mean", "std")}
        return ImageBatches(self._images, self._labels, batch_size=self.batch_size, mean=self._options["mean"],
                            std=self._options["std"], generator=generator, indices=indices, **options)

    # -- iteration ----------------------------------------------------------------------------------
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (images float NCHW normalised, labels int64) batch; starts a new epoch when needed."""
        if self._order is None:
            self._order = self._indices[torch.randperm(self.num_samples, generator=self.generator,
                                                        device=self.device)] if self.shuffle else self._indices
            self._position = 0
        end = self._epoch_end()
        rows = self._order[self._position:min(self._position + self.batch_size, end)]
        self._position += len(rows)
        if self._position >= end:
            self._order = None
            self.epochs_completed += 1
        return self._make_batch(rows), self._labels[rows]

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches left in the current epoch (all of them at an epoch boundary)."""
        current = self.epochs_completed
        while self.epochs_completed == current:
            yield self.next_batch()

    def _epoch_end(self) -> int:
        n = self.num_samples
        return (n // self.batch_size) * self.batch_size if self.drop_last and n >= self.batch_size else n

    def _make_batch(self, rows: torch.Tensor) -> torch.Tensor:
        x = self._images[rows]  # B, H, W, C uint8
        if self.augment:
            x = self._crop_and_flip(x)
        # NHWC -> NCHW as a view: the memory is already channels_last
        x = x.permute(0, 3, 1, 2).float().sub_(self._mean).div_(self._std)
        if self.augment and self.cutout > 0:
            x = self._apply_cutout(x)
        # no copy when the layout is already right (masked_fill, for one, may return NCHW)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def _crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop from the zero-padded image plus horizontal flip, as one gather over the batch."""
        b, h, w, _ = x.shape
        p, g, dev = self.crop_padding, self.generator, self.device
        if p:
            x = F.pad(x, (0, 0, p, p, p, p))  # zero pixels, like torchvision's RandomCrop(padding=p)
        dy = torch.randint(0, 2 * p + 1, (b, 1), generator=g, device=dev)
        dx = torch.randint(0, 2 * p + 1, (b, 1), generator=g, device=dev)
        flip = torch.rand((b, 1), generator=g, device=dev) < 0.5
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        rows = dy + ar_h  # b, h
        cols = dx + torch.where(flip, w - 1 - ar_w, ar_w)  # b, w
        batch = torch.arange(b, device=dev).view(b, 1, 1)
        return x[batch, rows.unsqueeze(2), cols.unsqueeze(1)]

    def _apply_cutout(self, x: torch.Tensor) -> torch.Tensor:
        """DARTS' cutout: a ``cutout``-px square (clipped at the border) around a uniform centre is zeroed
        after normalisation."""
        b, _, h, w = x.shape
        g, dev, half = self.generator, self.device, self.cutout // 2
        cy = torch.randint(0, h, (b, 1), generator=g, device=dev)
        cx = torch.randint(0, w, (b, 1), generator=g, device=dev)
        ys = torch.arange(h, device=dev)
        xs = torch.arange(w, device=dev)
        in_y = (ys >= cy - half) & (ys < cy + half)  # b, h
        in_x = (xs >= cx - half) & (xs < cx + half)  # b, w
        hole = (in_y.unsqueeze(2) & in_x.unsqueeze(1)).unsqueeze(1)  # b, 1, h, w
        return x.masked_fill(hole, 0.0)

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"num_samples": self.num_samples, "batch_size": self.batch_size,
                "epochs_completed": self.epochs_completed, "position": self._position,
                "order": None if self._order is None else self._order.cpu(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        if (state.get("num_samples"), state.get("batch_size")) != (self.num_samples, self.batch_size):
            raise CheckpointError(f"data iterator state is for {state.get('num_samples')} samples in batches of "
                                  f"{state.get('batch_size')}, not {self.num_samples} in {self.batch_size}")
        self.epochs_completed = int(state["epochs_completed"])
        self._position = int(state["position"])
        self._order = None if state["order"] is None else state["order"].to(self.device)
        self.generator.set_state(state["generator"])


def _resize_nhwc(images: torch.Tensor, side: int, chunk: int = 4096) -> torch.Tensor:
    """Area-resample uint8 NHWC images to ``side`` x ``side`` (done once, so batches stay cheap)."""
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(side, side), mode="area")
        out.append(x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous())
    return torch.cat(out)

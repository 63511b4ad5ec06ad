"""Image loaders (on fixtures written in the official layouts, and on the shared CIFAR-10 files) and the
device-resident ImageBatches (augmentation, determinism, splits, resumable iteration)."""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from algorithms.nn import data as D
from nasrepro.errors import CheckpointError, ConfigError, DataError, UnsafeFileError

CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465])


def _rows(rng, n, side):
    return rng.integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)


def _nhwc(rows, side):
    return rows.reshape(-1, 3, side, side).transpose(0, 2, 3, 1)


def _dump(path, obj, bytes_keys=False):
    if bytes_keys:  # what Python 2's cPickle files look like to a bytes-decoding reader
        obj = {k.encode(): v for k, v in obj.items()}
    path.write_bytes(pickle.dumps(obj, protocol=2))


# -- pickled formats --------------------------------------------------------------------------------
def test_cifar10_pickles_roundtrip(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    expected_x, expected_y = [], []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        rows, labels = _rows(rng, 4, 32), rng.integers(0, 10, 4).tolist()
        _dump(folder / name, {"batch_label": name, "data": rows, "labels": labels,
                              "filenames": [f"{name}_{j}.png" for j in range(4)]}, bytes_keys=i % 2 == 0)
        expected_x.append(_nhwc(rows, 32))
        expected_y.append(labels)
    arrays = D.load_cifar10_pickles(folder)
    np.testing.assert_array_equal(arrays.x_train, np.concatenate(expected_x[:5]))
    np.testing.assert_array_equal(arrays.y_train, np.concatenate(expected_y[:5]))
    np.testing.assert_array_equal(arrays.x_test, expected_x[5])
    assert arrays.x_train.shape == (20, 32, 32, 3) and arrays.y_train.dtype == np.int64
    assert arrays.num_classes == 10 and arrays.mean == D.DATASET_STATS["cifar10"][0]
    # the data-root layout: "cifar10" prefers the official pickles when they are there
    root = tmp_path / "root"
    (root / "cifar10").mkdir(parents=True)
    folder.rename(root / "cifar10" / "cifar-10-batches-py")
    np.testing.assert_array_equal(D.load_dataset("cifar10", root).x_test, expected_x[5])


def test_cifar100_uses_fine_labels(tmp_path, rng):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        _dump(folder / name, {"data": _rows(rng, 6, 32), "fine_labels": [99, 0, 5, 50, 7, 3],
                              "coarse_labels": [19, 0, 1, 2, 3, 4]})
    arrays = D.load_cifar100_pickles(folder)
    assert arrays.num_classes == 100
    np.testing.assert_array_equal(arrays.y_test, [99, 0, 5, 50, 7, 3])


def test_imagenet16_keeps_first_120_classes_zero_based(tmp_path, rng):
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    all_labels = []
    for name in [f"train_data_batch_{k}" for k in range(1, 11)] + ["val_data"]:
        labels = [1, 120, 121, 1000, int(rng.integers(1, 1001))]
        rows = _rows(rng, 5, 16)
        _dump(folder / name, {"data": rows, "labels": labels, "mean": rows.mean(0)})
        all_labels.append((rows, labels))
    arrays = D.load_imagenet16(folder, 120)
    train_labels = np.concatenate([lab for _, lab in all_labels[:10]])
    keep = (train_labels >= 1) & (train_labels <= 120)
    np.testing.assert_array_equal(arrays.y_train, train_labels[keep] - 1)
    train_rows = np.concatenate([r for r, _ in all_labels[:10]])
    np.testing.assert_array_equal(arrays.x_train, _nhwc(train_rows[keep], 16))
    assert arrays.x_test.shape[1:] == (16, 16, 3) and arrays.y_test.max() <= 119 and arrays.num_classes == 120


def test_missing_batch_names_file_and_fetch_command(tmp_path, rng):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    _dump(folder / "data_batch_1", {"data": _rows(rng, 2, 32), "labels": [0, 1]})
    with pytest.raises(DataError, match=r"data_batch_2.*nasrepro data fetch cifar10-python"):
        D.load_cifar10_pickles(folder)
    with pytest.raises(DataError, match="nasrepro data fetch imagenet16-120"):
        D.load_dataset("imagenet16-120", root=tmp_path)
    with pytest.raises(ConfigError):
        D.load_dataset("mnist", root=tmp_path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _Exploit(marker), "labels": [0]}, protocol=2))
    with pytest.raises(UnsafeFileError, match="posix.mkdir|os.mkdir|nt.mkdir"):
        D.read_data_pickle(path)
    assert not os.path.exists(marker)
    # builtins are not a free pass either
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafeFileError):
        D.read_data_pickle(path)


def test_truncated_pickle_is_a_data_error(tmp_path, rng):
    path = tmp_path / "test_batch"
    blob = pickle.dumps({"data": _rows(rng, 2, 32), "labels": [0, 1]}, protocol=2)
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt"):
        D.read_data_pickle(path)


# -- image folders and zips -------------------------------------------------------------------------
def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")  # lossless, so pixels can be compared exactly
    return buffer.getvalue()


def _image_tree(rng, classes=("dog", "airplane", "cat"), per_class=(3, 2)):
    """{relative path: pixels} in the train/<class>/ test/<class>/ layout."""
    tree = {}
    for split, count in zip(("train", "test"), per_class):
        for c in classes:
            for j in range(count):
                tree[f"{split}/{c}/{j:04d}.png"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return tree


def _check_tree(arrays, tree):
    classes = sorted({p.split("/")[1] for p in tree})
    for split in ("train", "test"):
        paths = sorted(p for p in tree if p.startswith(split + "/"))
        x, y = (arrays.x_train, arrays.y_train) if split == "train" else (arrays.x_test, arrays.y_test)
        np.testing.assert_array_equal(x, np.stack([tree[p] for p in paths]))
        np.testing.assert_array_equal(y, [classes.index(p.split("/")[1]) for p in paths])


def test_image_zip_decoded_once_then_cached(tmp_path, rng, monkeypatch):
    tree = _image_tree(rng)
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for rel, pixels in tree.items():
            zf.writestr(f"CIFAR-10-images/{rel}", _png(pixels))  # a top folder, as many archives have
        zf.writestr("CIFAR-10-images/README.txt", "not an image")
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    arrays = D.load_image_folder(path, "cifar10")
    _check_tree(arrays, tree)
    assert arrays.num_classes == 3

    def no_decoding(_):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(D, "_decode", no_decoding)
    _check_tree(D.load_image_folder(path, "cifar10"), tree)


def test_image_folder_and_jpeg_decoding(tmp_path, rng, monkeypatch):
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    tree = _image_tree(rng, classes=("b", "a"), per_class=(2, 1))
    for rel, pixels in tree.items():
        (tmp_path / "imgs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / rel).write_bytes(_png(pixels))
    _check_tree(D.load_image_folder(tmp_path / "imgs"), tree)
    # a JPEG of a flat colour decodes to (nearly) that colour
    flat = np.full((32, 32, 3), (200, 30, 90), np.uint8)
    jpeg = tmp_path / "jpg" / "train" / "a" / "0.jpg"
    jpeg.parent.mkdir(parents=True)
    Image.fromarray(flat).save(jpeg, quality=95)
    (tmp_path / "jpg" / "test" / "a").mkdir(parents=True)
    Image.fromarray(flat).save(tmp_path / "jpg" / "test" / "a" / "0.jpg", quality=95)
    arrays = D.load_image_folder(tmp_path / "jpg")
    assert np.abs(arrays.x_train.astype(int) - flat).max() <= 3


def test_undecodable_image_is_a_data_error_naming_it(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train/a/0.jpg", _png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)))
        zf.writestr("test/a/0.jpg", b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match="test/a/0.jpg"):
        D.load_image_folder(path)
    assert not list((tmp_path / "cache").rglob("*.npy"))  # nothing half-built left in the cache


def test_image_folder_with_mismatched_classes_is_a_data_error(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    tree = _image_tree(rng, classes=("a",), per_class=(1, 1))
    tree["train/b/0000.png"] = tree["train/a/0000.png"]
    for rel, pixels in tree.items():
        (tmp_path / "imgs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / rel).write_bytes(_png(pixels))
    with pytest.raises(DataError, match="same classes"):
        D.load_image_folder(tmp_path / "imgs")


# -- the shared CIFAR-10 files ----------------------------------------------------------------------
def _check_cifar10(arrays, n_train, n_test):
    assert arrays.x_train.shape == (n_train, 32, 32, 3) and arrays.x_test.shape == (n_test, 32, 32, 3)
    assert np.all(np.bincount(arrays.y_train, minlength=10) == n_train // 10)
    assert np.all(np.bincount(arrays.y_test, minlength=10) == n_test // 10)
    means = arrays.x_train.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(means, CIFAR10_MEAN, atol=0.01)


@pytest.mark.data
def test_shared_cifar10_subset(data_root):
    _check_cifar10(D.load_dataset("cifar10-subset", data_root), 5000, 1000)


@pytest.mark.data
@pytest.mark.slow
def test_shared_cifar10_jpeg_zip(data_root):
    arrays = D.load_dataset("cifar10", data_root)  # no pickles on the CI root: falls back to the zip
    _check_cifar10(arrays, 50000, 10000)


# -- ImageBatches -----------------------------------------------------------------------------------
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _batches(n=40, side=8, seed=0, **options):
    images = np.random.default_rng(123).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    labels = np.arange(n)  # labels double as sample ids
    options.setdefault("batch_size", 16)
    return images, D.ImageBatches(images, labels, mean=MEAN, std=STD,
                                  generator=torch.Generator().manual_seed(seed), **options)


def _normalise(uint8_nhwc):
    x = torch.as_tensor(uint8_nhwc).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_plain_batches_are_normalised_in_order():
    images, b = _batches(n=10, batch_size=4)
    out = [b.next_batch() for _ in range(3)]
    assert [len(y) for _, y in out] == [4, 4, 2] and b.epochs_completed == 1
    x = torch.cat([x for x, _ in out])
    torch.testing.assert_close(x, _normalise(images), rtol=0, atol=1e-5)
    assert x.shape == (10, 3, 8, 8) and x.dtype == torch.float32 and x.is_contiguous()


def test_augmented_images_are_padded_crops_or_their_mirror():
    images, b = _batches(n=12, side=6, batch_size=12, augment=True, crop_padding=2)
    x, ids = b.next_batch()
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))  # zero pixels, before normalisation
    for img, sample in zip(x, ids.tolist()):
        candidates = [padded[sample, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        candidates += [c[:, ::-1] for c in candidates]
        normalised = _normalise(np.stack(candidates))
        assert min((normalised - img).abs().max().item() for normalised in normalised) < 1e-5


def test_augmentation_is_deterministic_given_the_seed_and_varies_with_it():
    kwargs = dict(n=32, augment=True, cutout=4)
    _, a = _batches(seed=1, **kwargs)
    _, b = _batches(seed=1, **kwargs)
    _, c = _batches(seed=2, **kwargs)
    xa, ya = zip(*[a.next_batch() for _ in range(3)])
    xb, yb = zip(*[b.next_batch() for _ in range(3)])
    xc, _ = zip(*[c.next_batch() for _ in range(3)])
    for u, v in zip(xa + ya, xb + yb):
        assert torch.equal(u, v)
    assert not torch.equal(xa[0], xc[0])


# The search's data stream runs on the device (shuffle, crops and flips from a generator there); the training set
# is stored class by class, so a shuffle or a crop that is less random on one device than on another changes what
# the supernet learns. These tests measure the stream on the CPU and, in the GPU pieces, on CUDA.
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                                    reason="needs a CUDA GPU")])]


def _coordinate_batches(device, shuffle=True, epochs=2, seed=123):
    """Batches of 6,400 class-sorted 32-px images whose pixels hold their own row and column (channels 0 and 1,
    1-based), augmented as the search does (pad 4, crop, flip), normalised to the raw values; from the centre
    pixels of every image the draws are read back: dy, dx in 0..8 and the flip."""
    side, per_class, batch = 32, 640, 64
    grid = np.zeros((side, side, 3), dtype=np.uint8)
    grid[..., 0], grid[..., 1] = np.mgrid[1:side + 1, 1:side + 1]
    labels = np.repeat(np.arange(10), per_class)
    b = D.ImageBatches(np.broadcast_to(grid, (len(labels), side, side, 3)).copy(), labels, batch_size=batch,
                       mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3, augment=True, shuffle=shuffle,
                       generator=torch.Generator(device=device).manual_seed(seed))
    draws, orders = {"dy": [], "dx": [], "flip": [], "labels": []}, []
    for _ in range(epochs):
        for i, (x, y) in enumerate(b.epoch()):
            if i == 0:
                orders.append(b.state_dict()["order"])
            x = x.cpu()
            # the centre pixel is inside the original image whatever the shift: row dy + 12, column dx + 12
            # (dx + 11 when mirrored, read where the column index falls to the right)
            flip = x[:, 1, 16, 17] < x[:, 1, 16, 16]
            draws["dy"].append(x[:, 0, 16, 16].round().long() - 13)
            draws["dx"].append(x[:, 1, 16, 16].round().long() - 13 + flip.long())
            draws["flip"].append(flip.long())
            draws["labels"].append(y.cpu())
    return {k: torch.stack(v).numpy() for k, v in draws.items()}, orders  # k: batches x 64


def _stream_pvalues(draws, orders):
    """p-values of the tests a sound stream passes: crops uniform, flips fair, all three independent of each other
    and of the previous batch's, every batch a random mix of the classes, consecutive epochs' orders unrelated."""
    from scipy import stats

    def table(a, b, n_a, n_b):
        return np.histogram2d(a.ravel(), b.ravel(), bins=(n_a, n_b), range=((0, n_a), (0, n_b)))[0]

    dy, dx, flip, labels = draws["dy"], draws["dx"], draws["flip"], draws["labels"]
    batch_ids = np.repeat(np.arange(len(labels)), labels.shape[1])
    return {
        "dy uniform": stats.chisquare(np.bincount(dy.ravel(), minlength=9)).pvalue,
        "dx uniform": stats.chisquare(np.bincount(dx.ravel(), minlength=9)).pvalue,
        "flip fair": stats.binomtest(int(flip.sum()), flip.size).pvalue,
        "dy, dx independent": stats.chi2_contingency(table(dy, dx, 9, 9)).pvalue,
        "dy, flip independent": stats.chi2_contingency(table(dy, flip, 9, 2)).pvalue,
        "dx, flip independent": stats.chi2_contingency(table(dx, flip, 9, 2)).pvalue,
        "dy, next batch's dy independent": stats.chi2_contingency(table(dy[:-1], dy[1:], 9, 9)).pvalue,
        "classes mixed in every batch": stats.chi2_contingency(table(batch_ids, labels, len(labels), 10)).pvalue,
        "epoch orders unrelated": stats.spearmanr(orders[0].numpy(), orders[1].numpy()).pvalue,
    }


@pytest.mark.parametrize("device", DEVICES)
def test_the_shuffle_crops_and_flips_are_uniform_and_independent(device):
    draws, orders = _coordinate_batches(device)
    assert draws["dy"].min() >= 0 and draws["dy"].max() <= 8 and draws["dx"].min() >= 0 and draws["dx"].max() <= 8
    for order in orders:  # every epoch a permutation of the set
        assert sorted(order.tolist()) == list(range(6400))
    pvalues = _stream_pvalues(draws, orders)
    # fixed seeds, so not flaky (the smallest of the p-values over 30 seeds was 4e-4); a gross fault gives 1e-30
    assert min(pvalues.values()) > 1e-6, {k: f"{v:.1e}" for k, v in pvalues.items() if v <= 1e-6}


def test_the_stream_tests_fail_on_an_unshuffled_or_repeating_stream(monkeypatch):
    """The tests above can fail: no shuffle leaves the class-sorted batches; a generator that repeats its draw
    (dx the same numbers as dy) makes the crops dependent."""
    draws, orders = _coordinate_batches("cpu", shuffle=False)
    assert _stream_pvalues(draws, orders)["classes mixed in every batch"] < 1e-30
    real_randint, saved = torch.randint, {}

    def stuck_randint(*args, generator, **kwargs):  # a generator whose state does not advance between two draws
        if "state" in saved:
            generator.set_state(saved.pop("state"))
        else:
            saved["state"] = generator.get_state()
        return real_randint(*args, generator=generator, **kwargs)

    monkeypatch.setattr(torch, "randint", stuck_randint)
    draws, orders = _coordinate_batches("cpu", epochs=2)
    pvalues = _stream_pvalues(draws, orders)
    assert pvalues["dy, dx independent"] < 1e-30 and (draws["dy"] == draws["dx"]).all()


def test_cutout_zeroes_at_most_a_square_per_image():
    _, b = _batches(n=64, side=8, batch_size=64, augment=True, cutout=4, crop_padding=0)
    x, _ = b.next_batch()
    zeros = (x == 0).all(dim=1)  # b, h, w: pixels zeroed in all channels
    counts = zeros.flatten(1).sum(1)
    assert counts.max() <= 16 and counts.float().mean() > 4  # clipped at borders, never larger than 4x4
    for hole in zeros[counts > 0]:
        rows, cols = hole.nonzero(as_tuple=True)
        assert hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle


def test_an_epoch_visits_every_sample_once_and_drop_last():
    _, b = _batches(n=40, batch_size=16, augment=True)
    ids = torch.cat([y for _, y in b.epoch()])
    assert sorted(ids.tolist()) == list(range(40)) and b.epochs_completed == 1 and len(b) == 3
    second = torch.cat([y for _, y in b.epoch()])
    assert sorted(second.tolist()) == list(range(40)) and not torch.equal(ids, second)
    _, d = _batches(n=40, batch_size=16, drop_last=True, shuffle=True)
    assert [len(y) for _, y in d.epoch()] == [16, 16] and len(d) == 2


def test_resize_to_16_is_a_2x2_area_average_and_channels_last():
    images, b = _batches(n=4, side=32, batch_size=4, resize_to=16, channels_last=True)
    x, _ = b.next_batch()
    assert x.shape == (4, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
    pooled = images.reshape(4, 16, 2, 16, 2, 3).astype(np.float64).mean((2, 4))
    torch.testing.assert_close(x, _normalise(np.round(pooled).astype(np.uint8)), rtol=0, atol=1e-5)
    _, augmented = _batches(n=8, side=8, batch_size=8, augment=True, cutout=4, channels_last=True)
    assert augmented.next_batch()[0].is_contiguous(memory_format=torch.channels_last)


def test_split_halves_are_disjoint_cover_everything_and_are_reproducible():
    _, b = _batches(n=41)
    w1, a1 = b.split(0.5, torch.Generator().manual_seed(7))
    w2, a2 = b.split(0.5, torch.Generator().manual_seed(7))
    left, right = set(w1.indices.tolist()), set(a1.indices.tolist())
    assert not left & right and left | right == set(range(41)) and abs(len(left) - len(right)) <= 1
    assert torch.equal(w1.indices, w2.indices)
    x1, y1 = w1.next_batch()
    x2, y2 = w2.next_batch()
    assert torch.equal(x1, x2) and set(y1.tolist()) <= left
    assert set(torch.cat([y for _, y in a1.epoch()]).tolist()) == right
    sub = b.subset(10, torch.Generator().manual_seed(0))
    assert sub.num_samples == 10 and set(sub.indices.tolist()) <= set(range(41))
    with pytest.raises(ConfigError):
        b.split(1.0, torch.Generator())


def test_iteration_state_restores_the_exact_next_batches(tmp_path):
    _, b = _batches(n=40, batch_size=16, augment=True, cutout=4, seed=3)
    for _ in range(4):  # into the second epoch
        b.next_batch()
    torch.save(b.state_dict(), tmp_path / "state.pt")
    expected = [b.next_batch() for _ in range(5)]  # crosses the next epoch boundary
    _, resumed = _batches(n=40, batch_size=16, augment=True, cutout=4, seed=99)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for (x, y), (u, v) in zip(expected, [resumed.next_batch() for _ in range(5)]):
        assert torch.equal(x, u) and torch.equal(y, v)
    assert resumed.epochs_completed == b.epochs_completed
    _, other = _batches(n=40, batch_size=8)
    with pytest.raises(CheckpointError):
        other.load_state_dict(b.state_dict())


def test_check_dataset_files_reads_nothing_and_names_the_fetch(tmp_path):
    from algorithms.nn.data import DATA_LAYOUT, check_dataset_files

    with pytest.raises(DataError, match="nasrepro data fetch cifar10-jpeg"):
        check_dataset_files("cifar10", tmp_path)
    zip_path = tmp_path / DATA_LAYOUT["cifar10-jpeg"][0]
    zip_path.parent.mkdir(parents=True)
    zip_path.write_bytes(b"")  # present but empty: existence is all this checks (load_dataset would fail)
    check_dataset_files("cifar10", tmp_path)
    with pytest.raises(DataError, match="cifar100"):
        check_dataset_files("cifar100", tmp_path)


def test_data_pack_writes_a_small_root_that_loads_like_the_original(tmp_path, rng, monkeypatch, capsys):
    from algorithms.nn.data import DATA_LAYOUT
    from benchmarks.nb201 import MASTER_CSV
    from nasrepro.cli import main

    root = tmp_path / "root"
    tree = _image_tree(rng, classes=("b", "a"), per_class=(3, 4))
    zip_path = root / DATA_LAYOUT["cifar10-jpeg"][0]
    zip_path.parent.mkdir(parents=True)
    header = b"\x00" * 600  # what every file repeats (a JPEG's tables): packed together, it nearly vanishes
    with zipfile.ZipFile(zip_path, "w") as zf:
        for rel, pixels in tree.items():
            zf.writestr(f"CIFAR-10-images/{rel}", _png(pixels) + header)  # bytes after IEND: still a PNG
        zf.writestr("CIFAR-10-images/README.txt", "not an image")
    (root / MASTER_CSV).parent.mkdir(parents=True)
    (root / MASTER_CSV).write_text("the NB201 table\n")
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))

    dest = tmp_path / "out" / "pack"
    assert main(["data", "pack", str(dest)]) == 0
    assert "packed" in capsys.readouterr().out
    assert (dest / MASTER_CSV).read_text() == "the NB201 table\n"
    assert not (dest / DATA_LAYOUT["cifar10-jpeg"][0]).exists()
    pack = dest / DATA_LAYOUT["cifar10-jpeg-pack"][0]
    assert pack.stat().st_size < zip_path.stat().st_size - 600 * len(tree) // 2
    packed, original = D.load_dataset("cifar10", dest), D.load_dataset("cifar10", root)
    _check_tree(packed, tree)  # every image, in the zip's order, with the zip's labels
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(packed, field), getattr(original, field))
    D.check_dataset_files("cifar10", dest)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pack"]  # no stray temporary folder

    # an existing folder is never written into
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    assert main(["data", "pack", str(dest)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before


@pytest.mark.parametrize("damage", ["truncated", "missing key", "offsets"])
def test_a_damaged_jpeg_pack_is_one_data_error(tmp_path, rng, damage):
    from algorithms.nn.data import load_jpeg_pack, pack_image_zip

    zip_path = tmp_path / "images.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for rel, pixels in _image_tree(rng).items():
            zf.writestr(rel, _png(pixels))
    pack = tmp_path / "pack.npz"
    assert pack_image_zip(zip_path, pack)[0] == 15
    with pytest.raises(FileExistsError):  # never over an existing file
        pack_image_zip(zip_path, pack)
    with np.load(pack) as npz:
        arrays = dict(npz)
    if damage == "truncated":
        pack.write_bytes(pack.read_bytes()[:200])
    else:
        if damage == "missing key":
            del arrays["train_ends"]
        else:
            arrays["train_ends"] = arrays["train_ends"][::-1].copy()
        pack.unlink()
        np.savez_compressed(pack, **arrays)
    with pytest.raises(DataError, match={"truncated": "not a readable JPEG pack", "missing key": "no train_ends",
                                         "offsets": "offsets do not match"}[damage]):
        load_jpeg_pack(pack)


@pytest.mark.data
@pytest.mark.slow
def test_shared_cifar10_jpeg_pack_decodes_to_the_zips_images(data_root, tmp_path, monkeypatch):
    """The pack a GPU machine gets holds the shared zip's 60,000 images byte for byte (a third of the size)."""
    from algorithms.nn.data import DATA_LAYOUT, load_jpeg_pack, pack_image_zip

    zip_path = data_root / DATA_LAYOUT["cifar10-jpeg"][0]
    pack = tmp_path / "pack.npz"
    assert pack_image_zip(zip_path, pack)[0] == 60000
    assert pack.stat().st_size < 0.35 * zip_path.stat().st_size
    packed, original = load_jpeg_pack(pack), D.load_dataset("cifar10-jpeg", data_root)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(packed, field), getattr(original, field))

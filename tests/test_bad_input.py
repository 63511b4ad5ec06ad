"""Bad input through the CLI: exit 2, one line ``nasrepro: error: ...``, no traceback, data root untouched.

Each case runs ``nasrepro.cli.main`` in-process (a few also as a subprocess, to see the real stderr).
Cases needing a broken data root get a tmp copy of the NB201 files, damaged in one way, and a fresh
cache dir (so the damage is really read, not a cache built earlier from good data).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from benchmarks import registry
from nasrepro.cli import main

DRNAS = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MASTER = "nb201/nb201_master_15625.csv"
LATENCY = "nb201/nb201_latency_help_27devices.csv"


def q(*extra: str, arch: str = DRNAS, dataset: str = "cifar10") -> list[str]:
    return ["query", "nb201", arch, "--dataset", dataset, *extra]


# -- helpers ------------------------------------------------------------------------------------------
def tree_digest(root: Path) -> str:
    """sha256 over every path and file content under ``root`` (or a marker if it does not exist)."""
    if not root.exists():
        return "absent"
    if root.is_file():
        return "file:" + hashlib.sha256(root.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_file():
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def tree_stat(root: Path) -> list[tuple[str, int, int]]:
    """Cheap fingerprint (names, sizes, mtimes) for the large shared root, checked around every case."""
    return [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))]


def assert_one_line_error(code: int, out: str, err: str) -> None:
    assert code == 2, (out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nasrepro: error: "), err
    assert len(lines[0]) > len("nasrepro: error: ") + 10  # says something


@pytest.fixture(scope="module")
def shared_root_unchanged(data_root):
    """Full content hash of the shared data root before and after this module's cases."""
    before = tree_digest(data_root)
    yield data_root
    assert tree_digest(data_root) == before, "the shared data root changed during the bad-input suite"


def _copy_nb201(src_root: Path, dst_root: Path) -> None:
    for rel in (MASTER, LATENCY):
        (dst_root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_root / rel, dst_root / rel)


def _truncate_half_lines(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) // 2]))


def _corrupt_a_value(path: Path) -> None:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows[101][rows[0].index("cifar10_test_200ep")] = "not-a-number"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _header_only(path: Path) -> None:
    path.write_text(path.read_text().splitlines(keepends=True)[0])


def _cut_mid_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5000])  # ends inside a row, as an interrupted copy would


# -- query cases on the good shared root ----------------------------------------------------------------
SHARED_ROOT_CASES = {
    "arch-not-a-cell": q(arch="not-an-arch"),
    "arch-empty": q(arch=""),
    "arch-two-nodes": q(arch="|none~0|+|none~0|none~1|"),
    "arch-unknown-op": q(arch="|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
    "arch-wrong-source": q(arch="|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"),
    "arch-missing-bars": q(arch="none~0+|none~0|none~1|+|none~0|none~1|none~2|"),
    "arch-too-many-inputs": q(arch="|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"),
    "arch-index-out-of-range": q(arch="15625"),
    "arch-one-bad-among-good": ["query", "nb201", DRNAS, "|x~0|", "--dataset", "cifar10"],
    "unknown-dataset": q(dataset="cifar11"),
    "unknown-metric": q("--metric", "flops"),
    "unknown-split": q("--split", "train"),
    "valtest-not-for-cifar10": q("--split", "valtest"),
    "unknown-epoch": q("--epoch", "13"),
    "epoch-not-a-number": q("--epoch", "two-hundred"),
    "seed-out-of-range": q("--seed", "7"),
    "seed-negative": q("--seed", "-1"),
    "seed-not-a-number": q("--seed", "x"),
    "seed-not-recorded": q("--split", "test", "--seed", "0"),
    "latency-unknown-device": q("--metric", "latency", "--device", "toaster"),
    "latency-without-device": q("--metric", "latency"),
    "device-for-accuracy": q("--device", "pixel3"),
    "split-for-params": q("--metric", "params", "--split", "test"),
    "epoch-for-params": q("--metric", "params", "--epoch", "200"),
    "unknown-benchmark": ["query", "nb999", DRNAS, "--dataset", "cifar10"],
    "space-without-benchmark": ["query", "darts", "x", "--dataset", "cifar10"],
    "all-and-archs": q("--all"),
    "no-archs": ["query", "nb201", "--dataset", "cifar10"],
    "data-info-unknown": ["data", "info", "nb201-v9"],
    "data-verify-unknown": ["data", "verify", "nb201", "no-such-item"],
    "data-fetch-unknown": ["data", "fetch", "no-such-item"],
    "data-fetch-drive-only": ["data", "fetch", "nb201-v1_1", "--trust"],
    "data-fetch-folder": ["data", "fetch", "imagenet16-120", "--trust"],
    "data-import-missing-file": ["data", "import", "/nonexistent/NAS-Bench-201-v1_0-e61699.pth"],
}


#: a fragment each error message must contain, so a case cannot pass by failing for another reason
EXPECTED = {
    "arch-not-a-cell": "'+'-separated nodes", "arch-empty": "'+'-separated nodes",
    "arch-two-nodes": "got 2", "arch-unknown-op": "unknown op 'conv_7x7'",
    "arch-wrong-source": "expected ~0", "arch-missing-bars": "must look like",
    "arch-too-many-inputs": "needs 1 inputs", "arch-index-out-of-range": "15625",
    "arch-one-bad-among-good": "'|x~0|'", "unknown-dataset": "unknown dataset 'cifar11'",
    "unknown-metric": "unknown metric 'flops'", "unknown-split": "unknown split 'train'",
    "valtest-not-for-cifar10": "unknown split 'valtest'", "unknown-epoch": "unknown epoch 13",
    "epoch-not-a-number": "--epoch", "seed-out-of-range": "got 7", "seed-negative": "got -1",
    "seed-not-a-number": "--seed", "seed-not-recorded": "only the mean",
    "latency-unknown-device": "unknown device 'toaster'", "latency-without-device": "needs a device",
    "device-for-accuracy": "takes no device", "split-for-params": "takes no split",
    "epoch-for-params": "takes no epoch", "unknown-benchmark": "unknown benchmark 'nb999'",
    "space-without-benchmark": "DARTS", "all-and-archs": "not both", "no-archs": "at least one",
    "data-info-unknown": "unknown data item 'nb201-v9'", "data-verify-unknown": "'no-such-item'",
    "data-fetch-unknown": "'no-such-item'", "data-fetch-drive-only": "data import",
    "data-fetch-folder": "folder", "data-import-missing-file": "no such file",
    "master-truncated-lines": "found 7812", "master-cut-mid-row": "expected 15625 rows",
    "master-non-numeric-value": "not-a-number", "master-header-only": "found 0", "master-empty": "found 0",
    "master-binary-garbage": "not a readable CSV", "latency-truncated": "nb201_latency_help_27devices.csv",
    "master-missing": "not found", "verify-checksum-mismatch": "nb301-standin-encoding",
    "import-wrong-checksum": "does not match nb101-only108", "import-pickle-untrusted": "--trust",
    "import-over-existing-file": "not overwritten", "import-unidentified": "--name",
    "import-wrong-name": "nb301-standin-configspace", "fetch-server-refuses": "cannot connect",
    "fetch-ftp-url": "only http(s)", "fetch-bad-sha256": "not a sha256", "fetch-no-sha256-known": "--no-verify",
    "fetch-sha-and-no-verify": "contradict", "fetch-sha-differs-from-registry": "differs from the registry",
    "fetch-pickle-unverified-untrusted": "not being verified", "fetch-existing-different": "not replaced",
    "cyclic": "upper-triangular", "self-loop": "upper-triangular", "oversized-8-vertices": "8 vertices",
    "too-many-edges": "edges", "unknown-op": "conv5x5", "ops-length-mismatch": "2 ops", "not-square": "square",
    "not-json": "JSON", "no-input-output": "'input'",
}


@pytest.mark.data
@pytest.mark.parametrize("case", sorted(SHARED_ROOT_CASES))
def test_bad_input_on_shared_root(case, shared_root_unchanged, capsys):
    root = shared_root_unchanged
    before = tree_stat(root)
    code = main(SHARED_ROOT_CASES[case])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err)
    assert EXPECTED[case] in err
    assert tree_stat(root) == before


# -- cases that need their own (tmp) data root -----------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: connecting is refused


def _fake_download(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / "downloads" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


#: prepare(shared data root, empty tmp data root, tmp dir) -> argv; it damages or fills the tmp root
TmpCase = Callable[[Path, Path, Path], list[str]]


def _damaged(damage: Callable[[Path], None], rel: str = MASTER) -> TmpCase:
    def prepare(shared: Path, root: Path, tmp: Path) -> list[str]:
        _copy_nb201(shared, root)
        damage(root / rel)
        return q("--split", "test")
    return prepare


def _binary_garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _master_missing(shared: Path, root: Path, tmp: Path) -> list[str]:
    (root / "nb201").mkdir(parents=True)
    return q()


def _verify_corrupt(shared: Path, root: Path, tmp: Path) -> list[str]:
    rel = registry.get("nb301-standin-encoding").path
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_bytes((shared / rel).read_bytes()[:-1] + b"!")
    return ["data", "verify"]


def _import_wrong_checksum(shared: Path, root: Path, tmp: Path) -> list[str]:
    return ["data", "import", str(_fake_download(tmp, "nasbench_only108.tfrecord", b"junk"))]


def _import_pickle_untrusted(shared: Path, root: Path, tmp: Path) -> list[str]:
    return ["data", "import", str(_fake_download(tmp, "NAS-Bench-201-v1_0-e61699.pth", b"pickle"))]


def _import_over_existing(shared: Path, root: Path, tmp: Path) -> list[str]:
    dest = root / registry.get("nats-tss").path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"existing")
    return ["data", "import", str(_fake_download(tmp, dest.name, b"different")), "--trust"]


def _import_unknown(shared: Path, root: Path, tmp: Path) -> list[str]:
    return ["data", "import", str(_fake_download(tmp, "notes.txt", b"hello"))]


def _import_wrong_name(shared: Path, root: Path, tmp: Path) -> list[str]:
    src = _fake_download(tmp, "enc.json", (shared / registry.get("nb301-standin-encoding").path).read_bytes())
    return ["data", "import", str(src), "--name", "nb301-standin-configspace"]


def _fetch(name: str, *extra: str) -> TmpCase:
    """``data fetch NAME ...``; ``{url}`` stands for a loopback port where nobody listens."""
    def prepare(shared: Path, root: Path, tmp: Path) -> list[str]:
        url = f"http://127.0.0.1:{_closed_port()}/{registry.get(name).filename}"
        return ["data", "fetch", name, "--attempts", "1", "--timeout", "2",
                *[e.replace("{url}", url) for e in extra]]
    return prepare


def _fetch_existing_different(shared: Path, root: Path, tmp: Path) -> list[str]:
    dest = root / registry.get("nb101-only108").path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"a partial copy the user made")
    return ["data", "fetch", "nb101-only108", "--attempts", "1"]


TMP_ROOT_CASES: dict[str, TmpCase] = {
    "master-truncated-lines": _damaged(_truncate_half_lines),
    "master-cut-mid-row": _damaged(_cut_mid_line),
    "master-non-numeric-value": _damaged(_corrupt_a_value),
    "master-header-only": _damaged(_header_only),
    "master-empty": _damaged(lambda p: p.write_bytes(b"")),
    "master-binary-garbage": _damaged(_binary_garbage),
    "latency-truncated": _damaged(_truncate_half_lines, LATENCY),
    "master-missing": _master_missing,
    "verify-checksum-mismatch": _verify_corrupt,
    "import-wrong-checksum": _import_wrong_checksum,
    "import-pickle-untrusted": _import_pickle_untrusted,
    "import-over-existing-file": _import_over_existing,
    "import-unidentified": _import_unknown,
    "import-wrong-name": _import_wrong_name,
    "fetch-server-refuses": _fetch("nb101-only108", "--url", "{url}"),
    "fetch-ftp-url": _fetch("nb101-only108", "--url", "ftp://example.org/nasbench_only108.tfrecord"),
    "fetch-bad-sha256": _fetch("nb201-v1_0", "--trust", "--url", "{url}", "--sha256", "xyz"),
    "fetch-no-sha256-known": _fetch("nb201-v1_0", "--trust", "--url", "{url}"),
    "fetch-sha-and-no-verify": _fetch("nb101-only108", "--url", "{url}", "--sha256", "0" * 64, "--no-verify"),
    "fetch-sha-differs-from-registry": _fetch("nb101-only108", "--sha256", "1" * 64),
    "fetch-pickle-unverified-untrusted": _fetch("cifar10-python", "--no-verify", "--url", "{url}"),
    "fetch-existing-different": _fetch_existing_different,
}


@pytest.mark.data
@pytest.mark.parametrize("case", sorted(TMP_ROOT_CASES))
def test_bad_input_on_tmp_root(case, data_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    root.mkdir()
    argv = TMP_ROOT_CASES[case](data_root, root, tmp_path)
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    before = tree_digest(root)
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err)
    assert EXPECTED[case] in err
    assert tree_digest(root) == before


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_data_root_that_is_not_a_folder(kind, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    if kind == "file":
        root.write_text("not a folder")
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    before = tree_digest(root)
    for argv in (q(), ["data", "verify"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert_one_line_error(code, out, err)
    assert tree_digest(root) == before


# -- NAS-Bench-101 cells (the space alone rejects them; no data needed) ----------------------------------
def _nb101(matrix, ops) -> list[str]:
    return ["query", "nb101", json.dumps({"matrix": matrix, "ops": ops}), "--dataset", "cifar10"]


_IO = ["input", "conv3x3-bn-relu", "output"]
NB101_CASES = {
    "cyclic": _nb101([[0, 1, 0], [0, 0, 1], [1, 0, 0]], _IO),
    "self-loop": _nb101([[0, 1, 0], [0, 1, 1], [0, 0, 0]], _IO),
    "oversized-8-vertices": _nb101([[int(j == i + 1) for j in range(8)] for i in range(8)],
                                   ["input"] + ["conv3x3-bn-relu"] * 6 + ["output"]),
    "too-many-edges": _nb101([[int(j > i) for j in range(7)] for i in range(7)],
                             ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"]),
    "unknown-op": _nb101([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5", "output"]),
    "ops-length-mismatch": _nb101([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "output"]),
    "not-square": _nb101([[0, 1, 0], [0, 0, 1]], _IO),
    "not-json": ["query", "nb101", "{matrix: oops", "--dataset", "cifar10"],
    "no-input-output": _nb101([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["conv3x3-bn-relu"] * 3),
}


@pytest.mark.parametrize("case", sorted(NB101_CASES))
def test_bad_nb101_cells(case, tmp_path, monkeypatch, capsys):
    pytest.importorskip("benchmarks.nb101")
    # no data root at all: the cell must be rejected before any data is needed
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path / "no-data"))
    code = main(NB101_CASES[case])
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err)
    assert EXPECTED[case] in err


# -- argparse-level mistakes: one line and exit 2 as well (the prefix names the sub-command) -------------
@pytest.mark.parametrize("argv", [q("--format", "xml"), ["query"], ["data", "fetch"], ["data", "list", "--bogus"]])
def test_argparse_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("nasrepro") and ": error: " in err


# -- the real process: stderr as a user sees it ---------------------------------------------------------
@pytest.mark.data
@pytest.mark.parametrize("argv", [q(arch="|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
                                  q(dataset="cifar11"),
                                  ["data", "import", "/nonexistent/file.pth"]])
def test_subprocess_shows_no_traceback(argv, shared_root_unchanged, tmp_path):
    env = dict(os.environ, NASREPRO_DATA=str(shared_root_unchanged))
    proc = subprocess.run([sys.executable, "-m", "nasrepro", *argv], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("nasrepro: error: ")


@pytest.mark.data
def test_subprocess_truncated_master_csv(data_root, tmp_path):
    root = tmp_path / "root"
    _copy_nb201(data_root, root)
    _truncate_half_lines(root / MASTER)
    before = tree_digest(root)
    env = dict(os.environ, NASREPRO_DATA=str(root), NASREPRO_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "nasrepro", *q()], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("nasrepro: error: ") and "rows" in proc.stderr
    assert tree_digest(root) == before


def test_every_case_has_an_expected_message_and_there_are_at_least_thirty():
    cases = [*SHARED_ROOT_CASES, *TMP_ROOT_CASES, *NB101_CASES]
    assert sorted(cases) == sorted(EXPECTED)
    assert len(cases) >= 30


@pytest.mark.parametrize("module", ["drnas_image_check", "drnas_darts_space_check", "drnas_gradient_check",
                                    "nb201_training_check"])
def test_a_gpu_asked_for_where_there_is_none_is_one_line(module, monkeypatch, capsys):
    """Every diagnostic script refuses ``--device cuda`` on a machine without a GPU before reading any data."""
    import importlib

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    script = importlib.import_module(f"reproduce.{module}")
    args = ["CHECKPOINT"] if module == "drnas_gradient_check" else []
    assert script.main([*args, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --device cuda: no CUDA GPU here"]
    assert script.main([*args, "--device", "gpu"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --device gpu: the device must be cpu, cuda or cuda:N"]


def test_a_gradient_check_setting_on_a_missing_gpu_is_one_line(tmp_path, monkeypatch, capsys):
    import torch

    from reproduce import drnas_gradient_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"settings are checked before the checkpoint is read")
    assert drnas_gradient_check.main([str(checkpoint), "--device", "cpu", "--settings", "fp32,fp32@cuda"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --settings fp32@cuda: no CUDA GPU here"]

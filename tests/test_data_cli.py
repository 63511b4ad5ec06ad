"""The data registry and ``nasrepro data list/info/verify/import``."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

import pytest

from benchmarks import registry
from nasrepro.cli import main

SMALL_SHARED = ("nb301-standin-encoding", "nb301-standin-configspace", "nb101-naslib-dummy")


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the registry itself ------------------------------------------------------------------------------
def test_registry_entries_are_well_formed():
    names = [i.name for i in registry.ITEMS]
    assert len(names) == len(set(names))
    paths = [i.path for i in registry.ITEMS]
    assert len(paths) == len(set(paths))
    for item in registry.ITEMS:
        assert not Path(item.path).is_absolute() and ".." not in Path(item.path).parts, item.name
        assert item.kind in ("shared", "official"), item.name
        assert item.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", item.sha256), item.name
        assert all(u.startswith("https://") for u in item.urls), item.name
        if item.kind == "official":  # a user must be told where to get it
            assert item.urls or item.landing_page, item.name
        if item.kind == "shared":
            assert item.sha256 and item.size, item.name
        if Path(item.path).suffix in (".pkl", ".pth", ".pickle") or item.path.endswith(".tar.gz"):
            assert item.pickle, f"{item.name} holds pickles but is not flagged"
    for required in ("nb201", "nb201-latency", "nb101-vis", "nb101-specs", "nb301-standin", "cifar10-jpeg",
                     "cifar10-subset", "nb201-v1_0", "nb201-v1_1", "nats-tss", "nb101-only108", "nb101-full",
                     "cifar10-python", "cifar100-python", "imagenet16-120"):
        assert required in registry.REGISTRY


def test_official_file_names_are_the_released_ones():
    assert registry.get("nb201-v1_0").filename == "NAS-Bench-201-v1_0-e61699.pth"
    assert registry.get("nb201-v1_1").filename == "NAS-Bench-201-v1_1-096897.pth"
    assert registry.get("nats-tss").filename == "NATS-tss-v1_0-3ffb9-simple.tar"
    assert registry.get("nb101-only108").filename == "nasbench_only108.tfrecord"
    assert registry.get("nb101-full").filename == "nasbench_full.tfrecord"


@pytest.mark.data
def test_registry_agrees_with_the_shared_manifest(data_root):
    with open(data_root / "MANIFEST.tsv", newline="") as fh:
        manifest = {row["path"]: row for row in csv.DictReader(fh, delimiter="\t")}
    shared = [i for i in registry.ITEMS if i.kind == "shared"]
    assert shared
    for item in shared:
        row = manifest[item.path]
        assert row["sha256"] == item.sha256, item.name
        assert int(row["bytes"]) == item.size, item.name


def test_unknown_name_suggests_close_ones(capsys):
    code, out, err = run(["data", "info", "nb210"], capsys)
    assert code == 2
    assert err.startswith("nasrepro: error:") and "nb201" in err


# -- list / info --------------------------------------------------------------------------------------
def test_list_on_absent_root_reports_everything_absent(tmp_path, monkeypatch, capsys):
    root = tmp_path / "nowhere"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    code, out, _ = run(["data", "list", "--format", "json"], capsys)
    assert code == 0
    listing = json.loads(out)
    assert listing["exists"] is False
    assert {r["name"] for r in listing["items"]} == set(registry.REGISTRY)
    assert all(r["status"] == "absent" for r in listing["items"])
    assert not root.exists()  # listing never creates the data root
    code, out, _ = run(["data", "list"], capsys)
    assert code == 0 and "does not exist" in out


@pytest.mark.data
def test_list_shows_presence_and_cache_state(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    code, out, _ = run(["data", "list", "--format", "json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)["items"]}
    assert code == 0
    assert rows["nb201"]["status"] == "present" and rows["nb201"]["size"] == registry.get("nb201").size
    assert rows["nb201-v1_0"]["status"] == (
        "present" if (data_root / registry.get("nb201-v1_0").path).is_file() else "absent")
    assert rows["nb201"]["cached"] is False

    from benchmarks.nb201 import NB201Benchmark

    NB201Benchmark.load(data_root)  # builds the cache in the fresh cache dir
    code, out, _ = run(["data", "list", "--format", "json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)["items"]}
    assert rows["nb201"]["cached"] is True
    assert rows["nb101-vis"]["cached"] is False


def test_info_prints_fields_and_warns_for_pickles(capsys):
    code, out, err = run(["data", "info", "nb101-only108"], capsys)
    assert code == 0
    assert "storage.googleapis.com/nasbench/nasbench_only108.tfrecord" in out
    assert registry.get("nb101-only108").sha256 in out
    assert err == ""
    code, out, err = run(["data", "info", "nb201-v1_1"], capsys)
    assert code == 0 and "runs code" in err


# -- verify -------------------------------------------------------------------------------------------
@pytest.fixture
def small_root(data_root, tmp_path, monkeypatch) -> Path:
    """A tmp data root holding copies of a few small shared files."""
    root = tmp_path / "root"
    for name in SMALL_SHARED:
        rel = registry.get(name).path
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / rel, root / rel)
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    return root


@pytest.mark.data
def test_verify_ok_then_mismatch(small_root, capsys):
    code, out, _ = run(["data", "verify"], capsys)
    assert code == 0
    assert all(f"{n}: ok" in out for n in SMALL_SHARED)
    target = small_root / registry.get("nb301-standin-encoding").path
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    code, out, err = run(["data", "verify"], capsys)
    assert code == 2
    assert "nb301-standin-encoding: MISMATCH" in out and "nb101-naslib-dummy: ok" in out
    assert err.count("\n") == 1 and err.startswith("nasrepro: error:")
    code, _, _ = run(["data", "verify", "nb101-naslib-dummy"], capsys)
    assert code == 0


@pytest.mark.data
def test_verify_named_missing_item_fails(small_root, capsys):
    code, out, err = run(["data", "verify", "nb201"], capsys)
    assert code == 2 and "MISSING" in out and "nb201" in err


@pytest.mark.data
def test_verify_shared_root_small_items(data_root, capsys):
    code, out, _ = run(["data", "verify", *SMALL_SHARED], capsys)
    assert code == 0, out


# -- import -------------------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _sha(p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_pickle_without_checksum_needs_trust(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    download = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    download.write_bytes(b"pretend torch pickle")
    code, _, err = run(["data", "import", str(download)], capsys)
    assert code == 2 and "--trust" in err and "runs code" in err
    assert not root.exists()
    code, out, err = run(["data", "import", str(download), "--trust"], capsys)
    assert code == 0, err
    dest = root / registry.get("nb201-v1_1").path
    assert dest.read_bytes() == download.read_bytes()
    assert _sha(download.read_bytes()) in out
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary left behind
    code, out, _ = run(["data", "import", str(download), "--trust"], capsys)
    assert code == 0 and "already in place" in out


def test_import_never_overwrites_a_different_file(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    dest = root / registry.get("nats-tss").path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"the user's existing archive")
    download = tmp_path / "NATS-tss-v1_0-3ffb9-simple.tar"
    download.write_bytes(b"another archive")
    before = _tree(root)
    code, _, err = run(["data", "import", str(download), "--trust"], capsys)
    assert code == 2 and "not overwritten" in err
    assert _tree(root) == before


def test_import_rejects_wrong_checksum(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    fake = tmp_path / "nasbench_only108.tfrecord"
    fake.write_bytes(b"not the NAS-Bench-101 records")
    code, _, err = run(["data", "import", str(fake)], capsys)
    assert code == 2 and "sha256" in err
    assert not root.exists()


@pytest.mark.data
def test_import_identifies_a_renamed_file_by_sha256(data_root, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    item = registry.get("nb301-standin-encoding")
    renamed = tmp_path / "downloaded (1).json"
    shutil.copyfile(data_root / item.path, renamed)
    code, out, err = run(["data", "import", str(renamed)], capsys)
    assert code == 0, err
    assert (root / item.path).read_bytes() == renamed.read_bytes()
    assert item.name in out


def test_import_of_unknown_file_asks_for_a_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path / "root"))
    stray = tmp_path / "holiday.jpg"
    stray.write_bytes(b"\xff\xd8 not data")
    code, _, err = run(["data", "import", str(stray)], capsys)
    assert code == 2 and "--name" in err
    assert not (tmp_path / "root").exists()


# -- archives are unpacked into the folder the loaders read -------------------------------------------
def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def test_import_unpacks_archive_and_list_tracks_it(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    top = "NATS-tss-v1_0-3ffb9-simple"
    archive = _tar(tmp_path / f"{top}.tar", {f"{top}/meta.pickle.pbz2": b"m", f"{top}/000000.pickle.pbz2": b"a"})
    code, out, err = run(["data", "import", str(archive), "--trust"], capsys)
    assert code == 0, err
    assert (root / "nb201" / top / "000000.pickle.pbz2").read_bytes() == b"a"
    assert sorted(p.name for p in (root / "nb201").iterdir()) == [top, f"{top}.tar"]  # no temporaries

    def status() -> str:
        listing = json.loads(run(["data", "list", "--format", "json"], capsys)[1])
        return {r["name"]: r["status"] for r in listing["items"]}["nats-tss"]

    assert status() == "present"
    (root / "nb201" / f"{top}.tar").unlink()
    assert status() == "unpacked"
    shutil.rmtree(root / "nb201" / top)
    assert status() == "absent"


@pytest.mark.parametrize("members,links,reason", [
    ({"somewhere-else/000000.pickle.pbz2": b"a"}, None, "top-level folder"),
    ({"NATS-tss-v1_0-3ffb9-simple/../../evil": b"x"}, None, "outside the destination"),
    ({"NATS-tss-v1_0-3ffb9-simple/a": b"a"}, {"NATS-tss-v1_0-3ffb9-simple/link": "/etc/passwd"}, "link"),
])
def test_unsafe_or_unexpected_archives_are_not_unpacked(members, links, reason, tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    monkeypatch.setenv("NASREPRO_DATA", str(root))
    archive = _tar(tmp_path / "NATS-tss-v1_0-3ffb9-simple.tar", members, links)
    code, _, err = run(["data", "import", str(archive), "--trust"], capsys)
    assert code == 2 and err.startswith("nasrepro: error:") and err.count("\n") == 1 and reason in err
    assert sorted(p.name for p in (root / "nb201").iterdir()) == ["NATS-tss-v1_0-3ffb9-simple.tar"]
    assert not (tmp_path / "evil").exists()


def test_paths_need_platformdirs_only_for_the_default_dirs(tmp_path, monkeypatch):
    # a source checkout on a machine without platformdirs (the lent GPU image) runs with both variables set
    import sys

    from nasrepro.paths import cache_dir, data_root

    monkeypatch.setitem(sys.modules, "platformdirs", None)  # import platformdirs now fails
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path))
    monkeypatch.setenv("NASREPRO_CACHE", str(tmp_path / "cache"))
    assert data_root() == tmp_path and cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("NASREPRO_CACHE")
    with pytest.raises(ImportError):
        cache_dir()

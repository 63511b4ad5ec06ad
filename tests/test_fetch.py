"""benchmarks.fetch against a real HTTP server on loopback: resume, checksum, truncation, 404, no Range."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import struct
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from benchmarks import registry
from benchmarks.fetch import fetch
from nasrepro.cli import main
from nasrepro.errors import ChecksumError, ConfigError, DataError

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


#: a stand-in for cifar-10-python.tar.gz, served at /cifar.tar.gz
CIFAR_TAR = _tar_bytes({"cifar-10-batches-py/data_batch_1": b"batch", "cifar-10-batches-py/test_batch": b"t"})
WRONG = "0" * 64


class _Handler(BaseHTTPRequestHandler):
    """Paths pick a behaviour: /ok, /truncate-once, /no-range, /reset, /stall, /missing (404)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state = self.server.state
        state["requests"].append((self.path, self.headers.get("Range")))
        if self.path == "/missing":
            self.send_error(404, "Not Found")
            return
        if self.path == "/cifar.tar.gz":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CIFAR_TAR)))
            self.end_headers()
            self.wfile.write(CIFAR_TAR)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.path != "/no-range":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/stall":  # sends a little, then goes silent for longer than the client waits
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(1.5)
            self.close_connection = True
            return
        cut = self.path in ("/truncate-once", "/reset") and not state["cut_done"].get(self.path)
        if cut:
            state["cut_done"][self.path] = True
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            if self.path == "/reset":  # abort with RST: the server process "goes away" mid-transfer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {"requests": [], "cut_done": {}}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, httpd
    httpd.shutdown()
    httpd.server_close()


def _get(url: str, dest: Path, sha256: str | None = DIGEST, **kw) -> Path:
    kw.setdefault("attempts", 1)
    kw.setdefault("timeout", 5.0)
    return fetch(url, dest, sha256, progress=False, retry_wait=0.0, **kw)


def test_full_download_verifies_and_leaves_no_part(server, tmp_path):
    base, _ = server
    dest = tmp_path / "sub" / "file.bin"
    assert _get(base + "/ok", dest) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "file.bin.part").exists()


def test_truncated_response_keeps_part_and_resumes_with_range(server, tmp_path):
    base, httpd = server
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    with pytest.raises(DataError, match="resume"):
        _get(base + "/truncate-once", dest)
    assert not dest.exists()
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD)
    _get(base + "/truncate-once", dest)
    assert dest.read_bytes() == PAYLOAD
    assert httpd.state["requests"][-1] == ("/truncate-once", f"bytes={kept}-")
    assert not part.exists()


def test_retries_within_one_call_resume_after_a_cut(server, tmp_path):
    base, httpd = server
    dest = tmp_path / "file.bin"
    _get(base + "/truncate-once", dest, attempts=2)
    assert dest.read_bytes() == PAYLOAD
    assert len(httpd.state["requests"]) == 2


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    base, httpd = server
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    part.write_bytes(b"garbage that is not the start of the payload")
    _get(base + "/no-range", dest)
    assert httpd.state["requests"][-1][1] is not None  # we asked for a range...
    assert dest.read_bytes() == PAYLOAD  # ...got a 200, and did not append to the stale bytes


def test_wrong_checksum_discards_part_and_creates_nothing(server, tmp_path):
    base, _ = server
    dest = tmp_path / "file.bin"
    with pytest.raises(ChecksumError):
        _get(base + "/ok", dest, sha256=WRONG)
    assert not dest.exists()
    assert not (tmp_path / "file.bin.part").exists()


def test_existing_file_is_never_replaced(server, tmp_path):
    base, httpd = server
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"somebody else's file")
    with pytest.raises(ChecksumError, match="not replaced"):
        _get(base + "/ok", dest)
    assert dest.read_bytes() == b"somebody else's file"
    assert httpd.state["requests"] == []  # no network for a file already there


def test_existing_correct_file_is_kept_without_download(server, tmp_path):
    base, httpd = server
    dest = tmp_path / "file.bin"
    dest.write_bytes(PAYLOAD)
    assert _get(base + "/ok", dest) == dest
    assert httpd.state["requests"] == []


def test_server_reset_mid_transfer_keeps_part(server, tmp_path):
    base, _ = server
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError):
        _get(base + "/reset", dest)
    assert (tmp_path / "file.bin.part").is_file()
    assert not dest.exists()
    _get(base + "/reset", dest)
    assert dest.read_bytes() == PAYLOAD


def test_server_gone_keeps_part_for_later(server, tmp_path):
    base, httpd = server
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError):
        _get(base + "/truncate-once", dest)
    kept = (tmp_path / "file.bin.part").read_bytes()
    httpd.shutdown()
    httpd.server_close()  # nobody listens on the port any more
    with pytest.raises(DataError, match="cannot connect"):
        _get(base + "/truncate-once", dest, attempts=2, timeout=2.0)
    assert (tmp_path / "file.bin.part").read_bytes() == kept
    assert not dest.exists()


def test_silent_server_hits_the_timeout(server, tmp_path):
    base, _ = server
    started = time.monotonic()
    with pytest.raises(DataError, match="interrupted"):
        _get(base + "/stall", tmp_path / "file.bin", timeout=0.3)
    assert time.monotonic() - started < 1.4  # gave up on the timeout, not when the server hung up
    assert (tmp_path / "file.bin.part").stat().st_size == 1000


def test_concurrent_fetch_of_the_same_file_is_refused(server, tmp_path):
    import fcntl

    base, httpd = server
    dest = tmp_path / "file.bin"
    with open(tmp_path / "file.bin.part", "ab") as other:  # another process downloading the same file
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DataError, match="another download"):
            _get(base + "/ok", dest)
    assert httpd.state["requests"] == []
    _get(base + "/ok", dest)
    assert dest.read_bytes() == PAYLOAD


def test_404_is_a_data_error_and_not_retried(server, tmp_path):
    base, httpd = server
    with pytest.raises(DataError, match="404"):
        _get(base + "/missing", tmp_path / "file.bin", attempts=3)
    assert len(httpd.state["requests"]) == 1
    assert not (tmp_path / "file.bin").exists()


def test_complete_part_answered_416_is_verified_and_moved(server, tmp_path):
    base, _ = server
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    _get(base + "/ok", dest)
    assert dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("kwargs", [dict(sha256=None), dict(sha256="abc"), dict(sha256=DIGEST, attempts=0)])
def test_bad_arguments_are_config_errors(server, tmp_path, kwargs):
    base, httpd = server
    with pytest.raises(ConfigError):
        _get(base + "/ok", tmp_path / "f", **kwargs)
    assert httpd.state["requests"] == []


def test_no_verify_is_explicit(server, tmp_path):
    base, _ = server
    dest = tmp_path / "f"
    _get(base + "/ok", dest, sha256=None, verify=False)
    assert dest.read_bytes() == PAYLOAD


def test_cli_fetch_uses_registry_url_and_checksum(server, tmp_path, monkeypatch, capsys):
    base, _ = server
    item = registry.get("nb101-only108")  # pointed at the loopback server, with this payload's digest
    monkeypatch.setitem(registry.REGISTRY, item.name,
                        dataclasses.replace(item, urls=(base + "/ok",), sha256=DIGEST))
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path))
    assert main(["data", "fetch", "nb101-only108", "--attempts", "1"]) == 0, capsys.readouterr().err
    assert (tmp_path / item.path).read_bytes() == PAYLOAD
    # a user-given checksum may not contradict the registry's
    assert main(["data", "fetch", "nb101-only108", "--sha256", WRONG]) == 2
    assert "differs from the registry" in capsys.readouterr().err


def test_cli_fetch_pickle_without_checksum_needs_trust(server, tmp_path, monkeypatch, capsys):
    base, httpd = server
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path))
    argv = ["data", "fetch", "nb201-v1_0", "--url", base + "/ok", "--sha256", DIGEST, "--attempts", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "runs code" in err and "--trust" in err
    assert httpd.state["requests"] == []
    assert main(argv + ["--trust"]) == 0
    assert (tmp_path / "nb201" / "NAS-Bench-201-v1_0-e61699.pth").read_bytes() == PAYLOAD


def test_cli_fetch_unpacks_archives_for_the_loaders(server, tmp_path, monkeypatch, capsys):
    base, _ = server
    item = registry.get("cifar10-python")
    monkeypatch.setitem(registry.REGISTRY, item.name, dataclasses.replace(
        item, urls=(base + "/cifar.tar.gz",), sha256=hashlib.sha256(CIFAR_TAR).hexdigest()))
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path))
    assert main(["data", "fetch", "cifar10-python", "--attempts", "1"]) == 0
    out, err = capsys.readouterr()
    assert "runs code" in err  # pickle warning, even when checksummed
    assert (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1").read_bytes() == b"batch"
    assert (tmp_path / item.path).read_bytes() == CIFAR_TAR

"""NAS-Bench-101's official ``.tfrecord`` files, read and written without TensorFlow.

Framing (TFRecord): per record, ``uint64`` payload length (little-endian), the masked CRC-32C of those 8
bytes (``uint32``), the payload, the masked CRC-32C of the payload. Both CRCs are verified; truncation,
corruption or a malformed payload raise :class:`DataError` naming the record number (0-based).

Payload: UTF-8 JSON ``[module_hash, epochs, adjacency, ops, metrics]`` where ``adjacency`` is the
row-major 0/1 string of the (pruned) matrix, ``ops`` the comma-joined op names and ``metrics`` the
base64 of a ``nasbench.ModelMetrics`` protobuf (``nasbench/lib/model_metrics.proto``)::

    message ModelMetrics   { repeated EvaluationData evaluation_data = 1;
                             optional int32 trainable_parameters = 2; optional double total_time = 3; }
    message EvaluationData { optional double current_epoch = 1; optional double training_time = 2;
                             optional double train_accuracy = 3; optional double validation_accuracy = 4;
                             optional double test_accuracy = 5; optional string checkpoint_path = 6; }

``evaluation_data`` holds the evaluations at step 0, half-way and at the end of training; the official
API reads index 1 as "halfway" and index 2 as "final". Each (hash, epochs) appears once per run (3 runs).
The protobuf is decoded by the small wire-format reader below (unknown fields are skipped, as protobuf
does). CRC-32C is computed in pure Python (about 10-20 MB/s on one core), so converting the 0.5 GB
``only108`` file takes a few minutes, once; the result is cached by :mod:`benchmarks.cache`.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from nasrepro.errors import DataError
from nasrepro.io import atomic_path


# --------------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), masked as TFRecord does
# --------------------------------------------------------------------------------------------------
def _crc_tables() -> tuple[tuple[int, ...], ...]:
    """Tables for "slicing-by-8": table k advances a byte's CRC through k more zero bytes."""
    poly = 0x82F63B78  # reversed Castagnoli polynomial
    first = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        first.append(crc)
    tables = [tuple(first)]
    for _ in range(7):
        tables.append(tuple(first[c & 0xFF] ^ (c >> 8) for c in tables[-1]))
    return tuple(tables)


_CRC_TABLES = _crc_tables()


def crc32c(data: bytes) -> int:
    """CRC-32C in pure Python, 8 bytes per step (about 2x a byte-wise loop)."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _CRC_TABLES
    crc = 0xFFFFFFFF
    whole = len(data) // 8 * 8
    for lo, hi in struct.iter_unpack("<II", memoryview(data)[:whole]):
        lo ^= crc
        crc = (t7[lo & 0xFF] ^ t6[(lo >> 8) & 0xFF] ^ t5[(lo >> 16) & 0xFF] ^ t4[lo >> 24]
               ^ t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24])
    for byte in data[whole:]:
        crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------------------------------
# TFRecord framing
# --------------------------------------------------------------------------------------------------
def iter_frames(path: str | os.PathLike, verify_crc: bool = True) -> Iterator[bytes]:
    """Every payload of a TFRecord file, in order."""
    path = Path(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from exc
    with fh:
        yield from _frames(fh, path, verify_crc)


def _frames(fh: BinaryIO, path: Path, verify_crc: bool) -> Iterator[bytes]:
    index = 0
    while True:
        header = fh.read(12)
        if not header:
            return
        if len(header) < 12:
            raise DataError(f"{path}: record {index}: truncated header ({len(header)} of 12 bytes)")
        length_bytes = header[:8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", header[8:])
        if verify_crc and masked_crc32c(length_bytes) != length_crc:
            raise DataError(f"{path}: record {index}: length CRC mismatch (corrupt file)")
        payload = fh.read(length)
        footer = fh.read(4)
        if len(payload) < length or len(footer) < 4:
            raise DataError(f"{path}: record {index}: truncated (file ends inside the record)")
        if verify_crc and masked_crc32c(payload) != struct.unpack("<I", footer)[0]:
            raise DataError(f"{path}: record {index}: payload CRC mismatch (corrupt file)")
        yield payload
        index += 1


def write_frames(path: str | os.PathLike, payloads: Iterable[bytes]) -> None:
    """Write payloads as a TFRecord file (atomically)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for payload in payloads:
            length = struct.pack("<Q", len(payload))
            fh.write(length + struct.pack("<I", masked_crc32c(length)))
            fh.write(payload + struct.pack("<I", masked_crc32c(payload)))


# --------------------------------------------------------------------------------------------------
# ModelMetrics protobuf (wire format)
# --------------------------------------------------------------------------------------------------
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class EvaluationData:
    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""


_EVAL_DOUBLES = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy",
                 5: "test_accuracy"}


@dataclass(frozen=True)
class ModelMetrics:
    evaluation_data: tuple[EvaluationData, ...] = ()
    trainable_parameters: int = 0
    total_time: float = 0.0

    @property
    def halfway(self) -> EvaluationData:
        return self.evaluation_data[1]

    @property
    def final(self) -> EvaluationData:
        return self.evaluation_data[2]


class _WireError(ValueError):
    pass


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of one message; bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _FIXED64:
            if pos + 8 > len(buf):
                raise _WireError("truncated 64-bit field")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == _LENGTH:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise _WireError("truncated length-delimited field")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == _FIXED32:
            if pos + 4 > len(buf):
                raise _WireError("truncated 32-bit field")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _double(wire: int, value: int | bytes, name: str) -> float:
    if wire != _FIXED64:
        raise _WireError(f"{name}: expected a double, got wire type {wire}")
    return struct.unpack("<d", value)[0]


def decode_metrics(buf: bytes) -> ModelMetrics:
    """Decode a serialised ``ModelMetrics``; raises ValueError (``_WireError``) if malformed."""
    evaluations = []
    params, total = 0, 0.0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _LENGTH:
            evaluations.append(_decode_evaluation(value))
        elif number == 2 and wire == _VARINT:
            params = value - (1 << 64) if value >= 1 << 63 else value  # int32 negatives are sign-extended
        elif number == 3:
            total = _double(wire, value, "total_time")
    return ModelMetrics(tuple(evaluations), params, total)


def _decode_evaluation(buf: bytes) -> EvaluationData:
    values: dict[str, float | str] = {}
    for number, wire, value in _fields(buf):
        if number in _EVAL_DOUBLES:
            values[_EVAL_DOUBLES[number]] = _double(wire, value, _EVAL_DOUBLES[number])
        elif number == 6 and wire == _LENGTH:
            values["checkpoint_path"] = value.decode("utf-8")
    return EvaluationData(**values)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def encode_metrics(metrics: ModelMetrics) -> bytes:
    """Serialise a ``ModelMetrics`` (what nasbench's generator wrote; used by tests to make fixtures)."""
    out = bytearray()
    for ev in metrics.evaluation_data:
        body = bytearray()
        for number, name in _EVAL_DOUBLES.items():
            body += _key(number, _FIXED64) + struct.pack("<d", getattr(ev, name))
        if ev.checkpoint_path:
            path = ev.checkpoint_path.encode("utf-8")
            body += _key(6, _LENGTH) + _varint(len(path)) + path
        out += _key(1, _LENGTH) + _varint(len(body)) + body
    out += _key(2, _VARINT) + _varint(metrics.trainable_parameters)
    out += _key(3, _FIXED64) + struct.pack("<d", metrics.total_time)
    return bytes(out)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One training run of one cell, as stored in the official file."""

    module_hash: str
    epochs: int
    matrix: np.ndarray = field(compare=False)
    ops: tuple[str, ...]
    metrics: ModelMetrics
    #: position in the file (0-based)
    index: int = -1


def decode_record(payload: bytes, index: int = -1, where: str = "") -> Record:
    """Parse one payload; raises :class:`DataError` naming the record if anything is malformed."""
    try:
        module_hash, epochs, adjacency, ops, raw_metrics = json.loads(payload.decode("utf-8"))
        dim = int(round(len(adjacency) ** 0.5))
        if dim * dim != len(adjacency) or set(adjacency) - {"0", "1"}:
            raise ValueError(f"adjacency {adjacency!r} is not a square 0/1 string")
        matrix = np.frombuffer(adjacency.encode("ascii"), dtype=np.uint8).reshape(dim, dim) - ord("0")
        metrics = decode_metrics(base64.b64decode(raw_metrics, validate=True))
        if len(metrics.evaluation_data) < 3:
            raise ValueError(f"{len(metrics.evaluation_data)} evaluations, expected 3 (start, half, final)")
        return Record(str(module_hash), int(epochs), matrix.astype(np.int8), tuple(ops.split(",")), metrics,
                      index)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError, binascii.Error) as exc:
        raise DataError(f"{where}record {index}: malformed NB101 record ({exc})") from exc


def encode_record(record: Record) -> bytes:
    adjacency = "".join(str(int(x)) for x in np.asarray(record.matrix).ravel())
    metrics = base64.b64encode(encode_metrics(record.metrics)).decode("ascii")
    return json.dumps([record.module_hash, record.epochs, adjacency, ",".join(record.ops), metrics]).encode()


def read_records(path: str | os.PathLike, verify_crc: bool = True) -> Iterator[Record]:
    """Every record of an official NB101 tfrecord file."""
    for index, payload in enumerate(iter_frames(path, verify_crc)):
        yield decode_record(payload, index, f"{path}: ")


def write_records(path: str | os.PathLike, records: Iterable[Record]) -> None:
    """Write records in the official format (atomically)."""
    write_frames(path, (encode_record(r) for r in records))

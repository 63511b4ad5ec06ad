"""The NB101 TFRecord reader/writer: framing, CRCs, the ModelMetrics wire format, typed errors."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from benchmarks.formats.nb101_tfrecord import (EvaluationData, ModelMetrics, Record, crc32c, decode_metrics,
                                               encode_metrics, iter_frames, masked_crc32c, read_records,
                                               write_frames, write_records)
from nasrepro.errors import DataError


def _record(i: int, epochs: int = 108) -> Record:
    evals = tuple(EvaluationData(current_epoch=e, training_time=10.0 * e + i, train_accuracy=0.5 + 0.1 * k,
                                 validation_accuracy=0.4 + 0.1 * k + i / 1000, test_accuracy=0.3 + 0.1 * k,
                                 checkpoint_path=f"/tmp/model.ckpt-{k}" if k == 2 else "")
                  for k, e in enumerate((0.0, epochs / 2, float(epochs))))
    matrix = np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=np.int8)
    return Record(f"{i:032x}", epochs, matrix, ("input", "maxpool3x3", "output"),
                  ModelMetrics(evals, 1000 + i, 123.5 + i), index=i)


def test_crc32c_known_vectors():
    # RFC 3720 check value and the empty string
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert masked_crc32c(b"") == 0xA282EAD8


def test_crc32c_matches_a_bitwise_reference(rng):
    def bitwise(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        return crc ^ 0xFFFFFFFF

    for length in range(0, 40):  # every tail length of the 8-byte steps
        data = rng.integers(0, 256, size=length, dtype=np.uint8).tobytes()
        assert crc32c(data) == bitwise(data)


def test_metrics_decode_hand_encoded_bytes():
    # written by hand from model_metrics.proto, independent of encode_metrics:
    # evaluation_data(1) { training_time(2): 2.0 }, trainable_parameters(2): 300, unknown field 9: 1
    evaluation = b"\x11" + struct.pack("<d", 2.0)
    buf = b"\x0a" + bytes([len(evaluation)]) + evaluation + b"\x10\xac\x02" + b"\x48\x01"
    metrics = decode_metrics(buf)
    assert metrics.trainable_parameters == 300
    assert len(metrics.evaluation_data) == 1
    assert metrics.evaluation_data[0].training_time == 2.0
    assert metrics.evaluation_data[0].test_accuracy == 0.0


def test_metrics_round_trip():
    metrics = _record(7).metrics
    assert decode_metrics(encode_metrics(metrics)) == metrics
    assert decode_metrics(encode_metrics(ModelMetrics((), -5, 0.0))).trainable_parameters == -5


def test_records_round_trip(tmp_path):
    path = tmp_path / "tiny.tfrecord"
    records = [_record(i, ep) for i, ep in enumerate((108, 108, 4, 36))]
    write_records(path, records)
    back = list(read_records(path))
    assert back == records  # matrices are compared below (excluded from dataclass equality)
    for a, b in zip(records, back):
        np.testing.assert_array_equal(a.matrix, b.matrix)
    assert back[2].metrics.final.validation_accuracy == records[2].metrics.final.validation_accuracy
    assert back[0].metrics.halfway.current_epoch == 54.0


def test_empty_file_has_no_records(tmp_path):
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(read_records(path)) == []


@pytest.mark.parametrize("cut", [3, 14, 30])
def test_truncated_file_names_the_record(tmp_path, cut):
    path = tmp_path / "t.tfrecord"
    write_records(path, [_record(0), _record(1)])
    data = path.read_bytes()
    first_len = 12 + struct.unpack("<Q", data[:8])[0] + 4
    path.write_bytes(data[:first_len + cut])  # record 0 whole, record 1 cut short
    with pytest.raises(DataError, match="record 1: truncated"):
        list(read_records(path))


@pytest.mark.parametrize("where", ["length", "payload", "footer"])
def test_flipped_byte_is_a_crc_error(tmp_path, where):
    path = tmp_path / "c.tfrecord"
    write_records(path, [_record(0), _record(1)])
    data = bytearray(path.read_bytes())
    first_len = 12 + struct.unpack("<Q", bytes(data[:8]))[0] + 4
    offset = {"length": first_len + 1, "payload": first_len + 40, "footer": len(data) - 2}[where]
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="record 1: .*CRC"):
        list(read_records(path))


def test_malformed_payload_is_a_data_error(tmp_path):
    path = tmp_path / "m.tfrecord"
    write_frames(path, [b'["abc", 108, "0110", "input,output", "AAAA"]', b"not json"])
    with pytest.raises(DataError, match="record 0: malformed"):
        list(read_records(path))
    write_frames(path, [b"not json"])
    with pytest.raises(DataError, match="record 0: malformed"):
        list(read_records(path))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot open"):
        list(iter_frames(tmp_path / "absent.tfrecord"))

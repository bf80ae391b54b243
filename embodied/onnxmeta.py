"""An ONNX file's ``metadata_props``, read and rewritten at the byte level (no ``onnx`` package).

An ONNX file is one serialized ``ModelProto``. Its top-level fields are records of the
protobuf wire format (a key varint, then the value), and ``metadata_props`` is field 14, a
repeated ``StringStringEntryProto {string key = 1; string value = 2;}``. So the metadata can
be read, replaced or left out without parsing the graph:

* :func:`without_metadata` is the file's bytes with every field-14 record left out, the
  other records (graph, initializers, opsets, producer, ...) byte for byte in file order;
  a file without metadata comes back unchanged. ``embodied.modelfiles.onnx_model_id``
  hashes it, so a model's id does not change when its metadata does;
* :func:`with_metadata` writes new field-14 records where the old ones were (or, in a file
  without any, where a protobuf serializer puts field 14: before the first field numbered
  above 14), so everything else stays byte-identical and a file stamped here is what
  ``onnx.save`` writes for the same model;
* :func:`read_metadata` / :func:`write_metadata` do the same on paths.

ONNX Runtime reads the result as any exporter's (``InferenceSession(path).get_modelmeta()
.custom_metadata_map``). Standard library only: the robot side has no ``onnx`` package.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

#: ``ModelProto.metadata_props``
METADATA_FIELD = 14
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class NotOnnx(ValueError):
    """Bytes that are not a serialized protobuf message (so not an ONNX model)."""


def _varint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise NotOnnx("truncated or overlong varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _records(data: bytes | memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """Top-level records: (field number, wire type, start, value start, end)."""
    i, n = 0, len(data)
    while i < n:
        start = i
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise NotOnnx(f"field number 0 at byte {start}")
        value = i
        if wire == _VARINT:
            _, i = _varint(data, i)
        elif wire == _I64:
            i += 8
        elif wire == _LEN:
            length, value = _varint(data, i)
            i = value + length
        elif wire == _I32:
            i += 4
        else:  # groups (3, 4) are not used by ONNX
            raise NotOnnx(f"wire type {wire} at byte {start}")
        if i > n:
            raise NotOnnx(f"record at byte {start} runs past the end")
        yield field, wire, start, value, i


def without_metadata(data: bytes) -> bytes:
    """``data`` with every top-level ``metadata_props`` record left out (unchanged if none)."""
    view = memoryview(data)
    parts = [view[s:e] for f, _, s, _, e in _records(view) if f != METADATA_FIELD]
    return b"".join(parts)


def metadata_entries(data: bytes) -> list[tuple[str, str]]:
    """The ``metadata_props`` of a serialized model, in file order (keys may repeat)."""
    view = memoryview(data)
    out: list[tuple[str, str]] = []
    for f, wire, _, value, end in _records(view):
        if f != METADATA_FIELD:
            continue
        if wire != _LEN:
            raise NotOnnx("metadata_props record is not length-delimited")
        kv = {1: "", 2: ""}
        for sub, sub_wire, _, v, e in _records(view[value:end]):
            if sub in kv and sub_wire == _LEN:
                kv[sub] = bytes(view[value + v : value + e]).decode("utf-8")
        out.append((kv[1], kv[2]))
    return out


def _entry(key: str, value: str) -> bytes:
    k, v = key.encode("utf-8"), value.encode("utf-8")
    body = b"\x0a" + _encode_varint(len(k)) + k + b"\x12" + _encode_varint(len(v)) + v
    return _encode_varint(METADATA_FIELD << 3 | _LEN) + _encode_varint(len(body)) + body


def with_metadata(data: bytes, metadata: Mapping[str, str]) -> bytes:
    """``data`` with its ``metadata_props`` set to the existing entries updated by
    ``metadata`` (existing keys keep their place, new ones follow in the given order).

    Only field-14 records change; the rest of the file is copied byte for byte.
    """
    view = memoryview(data)
    records = list(_records(view))
    merged = dict(metadata_entries(data))
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"metadata keys and values are strings, got {k!r}: {v!r}")
        merged[k] = v
    block = b"".join(_entry(k, v) for k, v in merged.items())
    at = next((i for i, r in enumerate(records) if r[0] == METADATA_FIELD), None)
    if at is None:
        at = next((i for i, r in enumerate(records) if r[0] > METADATA_FIELD), len(records))
    kept = [r for r in records if r[0] != METADATA_FIELD]
    before = sum(1 for r in records[:at] if r[0] != METADATA_FIELD)
    parts = [view[s:e] for _, _, s, _, e in kept[:before]]
    parts.append(memoryview(block))
    parts += [view[s:e] for _, _, s, _, e in kept[before:]]
    out = b"".join(parts)
    if without_metadata(out) != without_metadata(data):  # pragma: no cover - by construction
        raise AssertionError("rewriting the metadata changed the model")
    return out


def read_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` as a dict (a repeated key: its last value)."""
    return dict(metadata_entries(Path(path).read_bytes()))


def write_metadata(path: str | Path, metadata: Mapping[str, str]) -> bool:
    """Update ``path``'s ``metadata_props`` in place (see :func:`with_metadata`); returns
    whether the file changed (False: it already carried exactly this metadata)."""
    path = Path(path)
    data = path.read_bytes()
    new = with_metadata(data, metadata)
    if new == data:
        return False
    tmp = path.with_name(path.name + ".stamping")
    tmp.write_bytes(new)
    tmp.replace(path)
    return True


__all__ = [
    "METADATA_FIELD",
    "NotOnnx",
    "metadata_entries",
    "read_metadata",
    "with_metadata",
    "without_metadata",
    "write_metadata",
]

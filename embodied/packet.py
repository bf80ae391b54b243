"""The compact wire packet: everything that crosses the link is one of these.

Why compact: the learned token codec sends a few dozen bits per frame, so a
30-byte header would be most of the rate (DESIGN.md, "the header is the
rate"). Everything that is not payload costs **8 bytes for payloads below 128
bytes**, 9 bytes below 16 KiB and 10 bytes up to the 2 MiB payload limit.

Byte layout (version 1; multi-byte integers big-endian, "network order")::

    offset  size  field
    0       1     bits 7-6 version (1)        bits 5-2 codec id (CodecId)
                  bit  1   reserved (0)       bit  0   keyframe
    1       1     frame id mod 256                  (receiver unwraps: SeqUnwrapper)
    2       1     budget 0..255, codec-defined      (token count k, or ladder rung)
    3       2     capture stamp, ms mod 65536       (receiver unwraps: unwrap_stamp_ms)
    5       L     payload length n, unsigned LEB128, minimal form, L = 1..3
    5+L     n     payload
    5+L+n   2     CRC-16/CCITT-FALSE over  model_id (4 bytes) ‖ bytes[0 : 5+L+n]

Design choices, and why:

* **No magic.** The version bits and the CRC already reject stray bytes; a
  2-byte magic would be a quarter of the header.
* **Stamp as ms mod 2**16, not a delta.** A delta from the previous frame
  breaks when a packet is lost; an offset from ``frame_id × period`` needs an
  agreed start time and drifts with the camera clock. ms mod 65536 is
  self-contained per packet and unwraps without ambiguity against any
  reference within ±32.7 s (the receiver's clock, or the last stamp).
* **Frame id mod 256**: unambiguous while fewer than 128 frames are lost or
  reordered in a row.
* **Model identity is never sent.** Both ends agree on a 32-bit ``model_id``
  when the stream starts (``model_hash`` of the model or codec configuration);
  it is fed to the CRC before the packet bytes, so a packet made by another
  model fails the check like a garbled one.
* **Payload length** lets packets be concatenated on a byte stream (files,
  TCP) and turns a truncated datagram into a precise ``TruncatedPacket``.

Error semantics (all subclasses of ``PacketError``, itself a ``ValueError``):

* ``TruncatedPacket``: fewer bytes than the header and length field declare.
* ``VersionMismatch``: version bits are not 1 (checked first: another version
  may lay out the rest differently), or the reserved bit is set under a
  valid CRC (a newer writer).
* ``CorruptPacket``: CRC failure, non-minimal length varint, trailing bytes.
* ``ForeignModel``: the CRC fails for the expected ``model_id`` but succeeds
  for one of the caller's ``known_models``. Without such a list a foreign
  packet is indistinguishable from a garbled one and raises ``CorruptPacket``.
  A 16-bit CRC is not proof: a garbled packet matches a given foreign id with
  probability 2**-16.
* ``UnknownCodec``: the CRC is valid but the codec id is not in ``CodecId``.

Limits of a 16-bit CRC, stated honestly: all 1- and 2-bit errors and all
bursts up to 16 bits are detected (packets under 4 KiB); other corruption
passes with probability about 2**-16. Because the CRC is linear, two model
ids whose XOR is a multiple of the CRC polynomial can never be told apart
(probability 2**-16 for two random 32-bit hashes); ``models_distinguishable``
checks a pair, and stream set-up should refuse such a pair.
"""

from __future__ import annotations

import binascii
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

VERSION = 1
MAX_PAYLOAD = (1 << 21) - 1  # three LEB128 bytes
_FIXED = 5  # flags byte, frame id, budget, 2-byte stamp
_CRC_BYTES = 2
_CRC_INIT = 0xFFFF


class CodecId(IntEnum):
    """Codec ids on the wire (4 bits). Stable forever: add, never renumber."""

    RAW = 0
    JPEG = 1
    WEBP = 2
    H264_INTRA = 3
    H264 = 4
    TOKENS = 5


# ----------------------------------------------------------------------------- errors


class PacketError(ValueError):
    """A packet was refused; nodes catch this one class, drop and count."""


class TruncatedPacket(PacketError):
    """Fewer bytes than the header and length field declare."""


class CorruptPacket(PacketError):
    """CRC mismatch or a malformed field: the bytes were damaged."""


class VersionMismatch(PacketError):
    """Written by another version of this format."""


class ForeignModel(PacketError):
    """Valid for another known model id, not for the one this receiver runs."""

    def __init__(self, message: str, model_id: int) -> None:
        super().__init__(message)
        self.model_id = model_id


class UnknownCodec(PacketError):
    """CRC valid but the codec id is not one this build knows."""


# ----------------------------------------------------------------------------- header


@dataclass(frozen=True)
class PacketHeader:
    """The header fields as they are on the wire (already wrapped).

    Build one from full-range values with ``PacketHeader.for_frame``; the
    receiver recovers full frame ids and stamps with ``SeqUnwrapper`` and
    ``unwrap_stamp_ms``.
    """

    codec: CodecId
    frame_id: int  # 0..255 (frame id mod 256)
    budget: int  # 0..255, codec-defined
    stamp_ms: int  # 0..65535 (capture time in ms mod 65536)
    keyframe: bool = True
    version: int = VERSION

    def __post_init__(self) -> None:
        for name, value, hi in (
            ("frame_id", self.frame_id, 255),
            ("budget", self.budget, 255),
            ("stamp_ms", self.stamp_ms, 0xFFFF),
        ):
            if not isinstance(value, int) or not 0 <= value <= hi:
                raise ValueError(f"PacketHeader.{name}={value!r} must be an int in 0..{hi}")
        if self.version != VERSION:
            raise ValueError(f"PacketHeader.version={self.version!r}: this build writes {VERSION}")
        object.__setattr__(self, "codec", CodecId(self.codec))

    @classmethod
    def for_frame(
        cls,
        codec: CodecId | int,
        *,
        frame_id: int,
        stamp_ms: int,
        budget: int,
        keyframe: bool = True,
    ) -> PacketHeader:
        """Wrap full-range frame id and capture time (ms) into wire fields."""
        return cls(
            codec=CodecId(codec),
            frame_id=frame_id % 256,
            budget=budget,
            stamp_ms=stamp_ms % 65536,
            keyframe=keyframe,
        )


@dataclass(frozen=True)
class BitCount:
    """Bits of one packet: header (everything not payload, CRC included) and payload."""

    header_bits: int
    payload_bits: int

    @property
    def total_bits(self) -> int:
        return self.header_bits + self.payload_bits

    @property
    def total(self) -> int:
        return self.total_bits

    @classmethod
    def for_payload(cls, payload_len: int) -> BitCount:
        return cls(8 * overhead_bytes(payload_len), 8 * payload_len)


def overhead_bytes(payload_len: int) -> int:
    """Bytes that are not payload for a payload of ``payload_len`` bytes (8, 9 or 10)."""
    return _FIXED + len(_leb128(payload_len)) + _CRC_BYTES


def max_payload_for(packet_bytes: int) -> int:
    """The largest payload whose whole packet fits in ``packet_bytes`` (−1 if none)."""
    best = -1
    for n_len, limit in ((1, 127), (2, (1 << 14) - 1), (3, MAX_PAYLOAD)):
        n = min(limit, packet_bytes - _FIXED - n_len - _CRC_BYTES)
        best = max(best, n if n >= 0 else -1)
    return best


def bits(packet: bytes) -> BitCount:
    """Header and payload bits of an encoded packet (parses only the length field, or a
    compact packet's flags)."""
    if packet and packet[0] >> 6 == COMPACT_VERSION:
        head = COMPACT_FIXED + (1 if packet[0] & _BUDGET_FLAG else 0)
        if len(packet) < head:
            raise TruncatedPacket(f"{len(packet)} bytes is shorter than the compact header")
        return BitCount(8 * head, 8 * (len(packet) - head))
    n, n_len = _read_leb128(packet, _FIXED)
    if len(packet) != _FIXED + n_len + n + _CRC_BYTES:
        raise CorruptPacket(f"length field says {n} payload bytes, packet has {len(packet)} bytes")
    return BitCount(8 * (len(packet) - n), 8 * n)


# ----------------------------------------------------------------------------- model identity


def model_hash(identity: str | bytes) -> int:
    """A 32-bit model/stream id: the first 4 bytes of SHA-256 of ``identity``.

    Hash what the decoder must share with the encoder (model weights, or a
    codec's name, frame shape and ladder), so mismatched ends refuse each
    other's packets instead of decoding garbage.
    """
    data = identity.encode() if isinstance(identity, str) else bytes(identity)
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


def models_distinguishable(a: int, b: int) -> bool:
    """False when the CRC can never tell packets of ``a`` and ``b`` apart.

    The CRC is linear, so the check values of one packet under ``a`` and
    ``b`` differ by the CRC (zero init) of ``a XOR b`` shifted past the
    packet; that is zero for every packet exactly when it is zero here.
    """
    if a == b:
        return False
    return binascii.crc_hqx(_model_bytes(a ^ b), 0) != 0


def _model_bytes(model_id: int) -> bytes:
    if not isinstance(model_id, int) or not 0 <= model_id <= 0xFFFFFFFF:
        raise ValueError(f"model_id={model_id!r} must be a 32-bit unsigned int")
    return model_id.to_bytes(4, "big")


def _crc(model_id: int, body: bytes | memoryview) -> int:
    return binascii.crc_hqx(body, binascii.crc_hqx(_model_bytes(model_id), _CRC_INIT))


# ----------------------------------------------------------------------------- varint


def _leb128(n: int) -> bytes:
    if not 0 <= n <= MAX_PAYLOAD:
        raise ValueError(f"payload length {n} outside 0..{MAX_PAYLOAD}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_leb128(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, bytes used); strict: at most 3 bytes, minimal form."""
    value = 0
    for i in range(3):
        if pos + i >= len(data):
            raise TruncatedPacket(f"packet ends inside the length field ({len(data)} bytes)")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and byte == 0:
                raise CorruptPacket("length field is not in minimal LEB128 form")
            return value, i + 1
    raise CorruptPacket("length field longer than 3 bytes")


# ----------------------------------------------------------------------------- encode / decode


def encode_packet(header: PacketHeader, payload: bytes, model_id: int) -> bytes:
    """Serialize one packet; ``len(result) == len(payload) + overhead_bytes(len(payload))``."""
    payload = bytes(payload)
    first = (VERSION << 6) | (int(header.codec) << 2) | int(bool(header.keyframe))
    body = (
        bytes((first, header.frame_id, header.budget))
        + header.stamp_ms.to_bytes(2, "big")
        + _leb128(len(payload))
        + payload
    )
    return body + _crc(model_id, body).to_bytes(2, "big")


def decode_packet(
    data: bytes | bytearray | memoryview,
    model_id: int,
    *,
    known_models: Iterable[int] = (),
) -> tuple[PacketHeader, bytes]:
    """Parse and verify one packet; raises a ``PacketError`` subclass, nothing else.

    ``known_models``: other model ids this receiver has heard of; a packet
    whose CRC fails for ``model_id`` but checks for one of these raises
    ``ForeignModel`` (with its ``model_id``) instead of ``CorruptPacket``.
    """
    header, payload, end = read_packet(data, model_id, known_models=known_models)
    if end != len(data):
        raise CorruptPacket(f"{len(data) - end} bytes after the end of the packet")
    return header, payload


def read_packet(
    data: bytes | bytearray | memoryview,
    model_id: int,
    offset: int = 0,
    *,
    known_models: Iterable[int] = (),
) -> tuple[PacketHeader, bytes, int]:
    """Parse the packet starting at ``offset`` of a byte stream; returns (header, payload, end)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CorruptPacket(f"packet must be bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")[offset:]
    if len(view) < 1:
        raise TruncatedPacket("empty packet")
    first = view[0]
    version = first >> 6
    if version != VERSION:
        raise VersionMismatch(f"packet version {version}, this build reads {VERSION}")
    if len(view) < _FIXED + 1:
        raise TruncatedPacket(f"{len(view)} bytes is shorter than the fixed header")
    n, n_len = _read_leb128(view, _FIXED)
    end = _FIXED + n_len + n
    if len(view) < end + _CRC_BYTES:
        raise TruncatedPacket(
            f"header declares {n} payload bytes ({end + _CRC_BYTES} in all), got {len(view)}"
        )
    body = view[:end]
    got = int.from_bytes(view[end : end + _CRC_BYTES], "big")
    if _crc(model_id, body) != got:
        for other in known_models:
            if other != model_id and _crc(other, body) == got:
                raise ForeignModel(
                    f"packet made by model {other:#010x}, this receiver runs {model_id:#010x}",
                    other,
                )
        raise CorruptPacket("CRC mismatch (garbled, or made by another model)")
    if first & 0b10:
        raise VersionMismatch("reserved flag bit set: written by a newer format revision")
    codec_bits = (first >> 2) & 0x0F
    try:
        codec = CodecId(codec_bits)
    except ValueError:
        raise UnknownCodec(
            f"codec id {codec_bits} is not one of {[c.value for c in CodecId]}"
        ) from None
    header = PacketHeader(
        codec=codec,
        frame_id=view[1],
        budget=view[2],
        stamp_ms=int.from_bytes(view[3:5], "big"),
        keyframe=bool(first & 1),
    )
    return header, bytes(view[_FIXED + n_len : end]), offset + end + _CRC_BYTES


# ----------------------------------------------------------------------------- compact form

#: Inside an established stream (``embodied.interframe``), a packet may carry only what the
#: receiver cannot infer. Byte layout (version 2)::
#:
#:     0   bits 7-6 version (2)   bit 5 keyframe   bit 4 budget follows   bits 3-0 frame id mod 16
#:     1   bits 7-4 reference delta (0: none; 1..15: frame id - reference id)   bits 3-0 CRC 11..8
#:     2   CRC 7..0
#:     3   budget (only with bit 4 of byte 0)
#:     ..  payload (to the end of the datagram: the transport delimits it)
#:
#: The receiver infers the full frame id (mod 256) as the first after the last one it decoded
#: with these low bits, and the budget as the last one's. The 12-bit CRC (the CRC-16 of the
#: full header keyed by the model id, low 12 bits) covers the inferred fields, so a wrong
#: inference (more than 15 frames lost, reordering) fails the check instead of decoding: it
#: passes by chance with probability 2**-12, where a reference lookup still guards.
COMPACT_VERSION = 2
COMPACT_FIXED = 3
_KEY_FLAG, _BUDGET_FLAG = 0x20, 0x10


@dataclass(frozen=True)
class CompactFields:
    frame_id: int  # 0..255, full (the receiver infers the high bits)
    budget: int  # 0..255
    keyframe: bool
    ref_delta: int  # 0 (none) or 1..15
    send_budget: bool


def _compact_crc(model_id: int, f: CompactFields, payload: bytes | memoryview) -> int:
    body = bytes((f.frame_id, f.budget, int(f.keyframe), f.ref_delta)) + bytes(payload)
    return _crc(model_id, body) & 0xFFF


def encode_compact(fields: CompactFields, payload: bytes, model_id: int) -> bytes:
    if not 0 <= fields.ref_delta <= 15:
        raise ValueError(f"ref_delta={fields.ref_delta} must be in 0..15 in a compact packet")
    if not (0 <= fields.frame_id <= 255 and 0 <= fields.budget <= 255):
        raise ValueError(f"frame_id {fields.frame_id} / budget {fields.budget} outside 0..255")
    crc = _compact_crc(model_id, fields, payload)
    first = (COMPACT_VERSION << 6) | (fields.frame_id & 0x0F)
    first |= _KEY_FLAG if fields.keyframe else 0
    first |= _BUDGET_FLAG if fields.send_budget else 0
    out = bytes((first, (fields.ref_delta << 4) | (crc >> 8), crc & 0xFF))
    if fields.send_budget:
        out += bytes((fields.budget,))
    return out + bytes(payload)


def read_compact(
    data: bytes | bytearray | memoryview, model_id: int, last_frame_id: int, last_budget: int
) -> tuple[CompactFields, bytes]:
    """Parse and verify a compact packet against the receiver's last decoded frame id and
    budget; raises ``TruncatedPacket``, ``VersionMismatch`` or ``CorruptPacket``."""
    view = memoryview(bytes(data))
    if len(view) < 1:
        raise TruncatedPacket("empty packet")
    first = view[0]
    if first >> 6 != COMPACT_VERSION:
        raise VersionMismatch(f"packet version {first >> 6} is not the compact form")
    with_budget = bool(first & _BUDGET_FLAG)
    head = COMPACT_FIXED + int(with_budget)
    if len(view) < head:
        raise TruncatedPacket(f"{len(view)} bytes is shorter than the compact header ({head})")
    low = first & 0x0F
    step = (low - (last_frame_id + 1)) % 16  # the first id after the last with these bits
    fields = CompactFields(
        frame_id=(last_frame_id + 1 + step) % 256,
        budget=view[3] if with_budget else int(last_budget),
        keyframe=bool(first & _KEY_FLAG),
        ref_delta=view[1] >> 4,
        send_budget=with_budget,
    )
    payload = bytes(view[head:])
    got = ((view[1] & 0x0F) << 8) | view[2]
    if _compact_crc(model_id, fields, payload) != got:
        raise CorruptPacket(
            "compact packet CRC mismatch (garbled, another model, or fields the receiver "
            "could not infer: frames lost or reordered)"
        )
    return fields, payload


# ----------------------------------------------------------------------------- unwrapping


def unwrap(value: int, reference: int, modulus: int) -> int:
    """The integer ≡ ``value`` (mod ``modulus``) closest to ``reference``."""
    delta = (value - reference) % modulus
    if delta >= modulus // 2:
        delta -= modulus
    return reference + delta


def unwrap_stamp_ms(wire_stamp: int, reference_ms: int) -> int:
    """Full capture time from a wire stamp, given any time within ±32.7 s of it.

    ``reference_ms``: the receiver's clock (in the sender's time base) or the
    previous unwrapped stamp of the stream.
    """
    return unwrap(wire_stamp, reference_ms, 1 << 16)


@dataclass
class SeqUnwrapper:
    """Turns wire frame ids (mod 256) back into a monotone count, per stream.

    The first id is taken as is; each later one is placed nearest the last
    seen id, which is right while fewer than 128 frames go missing in a row.
    """

    modulus: int = 256
    last: int | None = None

    def __call__(self, wire_id: int) -> int:
        full = wire_id if self.last is None else unwrap(wire_id, self.last, self.modulus)
        self.last = full if self.last is None else max(self.last, full)
        return full


# ----------------------------------------------------------------------------- receive-side counting


@dataclass
class PacketStats:
    """Counts what a receiving node accepted and dropped (by error class).

    Malformed packets are dropped and counted, never raised into the loop::

        stats = PacketStats()
        got = stats.decode(data, model_id)
        if got is not None:
            header, payload = got
    """

    received: int = 0
    accepted: int = 0
    header_bytes: int = 0
    payload_bytes: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    last_error: str = ""  # the latest refusal, for a log line

    def decode(
        self,
        data: bytes | bytearray | memoryview,
        model_id: int,
        *,
        known_models: Iterable[int] = (),
    ) -> tuple[PacketHeader, bytes] | None:
        try:
            header, payload = decode_packet(data, model_id, known_models=known_models)
        except PacketError as err:
            self.drop(err)
            return None
        self.accept(len(data), len(payload))
        return header, payload

    def accept(self, packet_bytes: int, payload_bytes: int) -> None:
        """Count one packet that passed every check (also codec-level ones)."""
        self.received += 1
        self.accepted += 1
        self.header_bytes += packet_bytes - payload_bytes
        self.payload_bytes += payload_bytes

    def drop(self, err: PacketError) -> None:
        """Count one refused packet under its error class name."""
        self.received += 1
        self.dropped[type(err).__name__] += 1
        self.last_error = f"{type(err).__name__}: {err}"

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, int]:
        out = {
            "received": self.received,
            "accepted": self.accepted,
            "dropped": self.dropped_total,
            "header_bytes": self.header_bytes,
            "payload_bytes": self.payload_bytes,
        }
        out.update({f"dropped_{k}": v for k, v in sorted(self.dropped.items())})
        return out

"""The wire packet: exact bit accounting, compactness, and a strict decoder."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embodied.packet import (
    BitCount,
    CodecId,
    CorruptPacket,
    ForeignModel,
    PacketError,
    PacketHeader,
    PacketStats,
    SeqUnwrapper,
    TruncatedPacket,
    UnknownCodec,
    VersionMismatch,
    bits,
    decode_packet,
    encode_packet,
    max_payload_for,
    model_hash,
    models_distinguishable,
    overhead_bytes,
    read_packet,
    unwrap_stamp_ms,
)

MODEL = model_hash("test-model")
OTHER = model_hash("other-model")
HEADER = PacketHeader.for_frame(CodecId.TOKENS, frame_id=1234, stamp_ms=987_654, budget=7)


def _resign(body: bytes, model_id: int = MODEL) -> bytes:
    """Append a valid CRC to hand-made bytes, to reach the checks behind the CRC."""
    crc = binascii.crc_hqx(body, binascii.crc_hqx(model_id.to_bytes(4, "big"), 0xFFFF))
    return body + crc.to_bytes(2, "big")


@pytest.mark.parametrize("n", [0, 1, 2, 10, 50, 100, 127, 128, 1000, 16383, 16384, 70000])
def test_round_trip_and_bit_accounting(n: int) -> None:
    payload = bytes((i * 37 + 11) % 256 for i in range(n))
    packet = encode_packet(HEADER, payload, MODEL)
    header, got = decode_packet(packet, MODEL)
    assert header == HEADER and got == payload
    count = bits(packet)
    assert count.total_bits == count.total == 8 * len(packet)
    assert count.payload_bits == 8 * n
    assert count.header_bits == 8 * overhead_bytes(n) == 8 * (len(packet) - n)
    assert count == BitCount.for_payload(n)
    assert overhead_bytes(n) == (8 if n < 128 else 9 if n < 16384 else 10)


def test_header_at_most_8_bytes_below_128() -> None:
    for n in range(128):
        assert len(encode_packet(HEADER, bytes(n), MODEL)) - n <= 8


def test_max_payload_for() -> None:
    for size in range(8, 20000, 7):
        n = max_payload_for(size)
        assert n + overhead_bytes(n) <= size < (n + 1) + overhead_bytes(n + 1)
    assert max_payload_for(7) == -1


def test_header_fields_wrap_and_unwrap() -> None:
    h = PacketHeader.for_frame(
        CodecId.JPEG, frame_id=256 * 3 + 5, stamp_ms=65536 * 9 + 17, budget=255, keyframe=False
    )
    assert (h.frame_id, h.stamp_ms, h.keyframe) == (5, 17, False)
    got, _ = decode_packet(encode_packet(h, b"x", MODEL), MODEL)
    assert got == h
    assert unwrap_stamp_ms(got.stamp_ms, reference_ms=65536 * 9 + 500) == 65536 * 9 + 17
    assert unwrap_stamp_ms(65530, reference_ms=65536 * 4 + 20) == 65536 * 3 + 65530
    seq = SeqUnwrapper()
    assert [seq(i % 256) for i in range(250, 520, 3)] == list(range(250, 520, 3))
    assert seq(1) == 513  # 517 seen last; an older id maps just behind it
    with pytest.raises(ValueError):
        PacketHeader(codec=CodecId.RAW, frame_id=256, budget=0, stamp_ms=0)
    with pytest.raises(ValueError):
        PacketHeader(codec=CodecId.RAW, frame_id=0, budget=-1, stamp_ms=0)


def test_every_single_bit_flip_is_refused() -> None:
    packet = encode_packet(HEADER, bytes(range(40)), MODEL)
    for i in range(8 * len(packet)):
        bad = bytearray(packet)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(PacketError):
            decode_packet(bytes(bad), MODEL)


def test_every_truncation_is_typed() -> None:
    packet = encode_packet(HEADER, bytes(range(200)), MODEL)
    for n in range(len(packet)):
        with pytest.raises(TruncatedPacket):
            decode_packet(packet[:n], MODEL)
    with pytest.raises(CorruptPacket):
        decode_packet(packet + b"\x00", MODEL)


def test_concatenated_packets_read_in_order() -> None:
    packets = [encode_packet(HEADER, bytes([i]) * i, MODEL) for i in range(5)]
    stream, offset, got = b"".join(packets), 0, []
    while offset < len(stream):
        _, payload, offset = read_packet(stream, MODEL, offset)
        got.append(payload)
    assert got == [bytes([i]) * i for i in range(5)]


def test_wrong_version() -> None:
    packet = bytearray(encode_packet(HEADER, b"abc", MODEL))
    for version in (0, 2, 3):
        bad = bytearray(packet)
        bad[0] = (bad[0] & 0x3F) | (version << 6)
        with pytest.raises(VersionMismatch):
            decode_packet(_resign(bytes(bad[:-2])), MODEL)
    reserved = bytearray(packet[:-2])
    reserved[0] |= 0b10
    with pytest.raises(VersionMismatch):
        decode_packet(_resign(bytes(reserved)), MODEL)


def test_foreign_model() -> None:
    packet = encode_packet(HEADER, b"tokens", OTHER)
    with pytest.raises(CorruptPacket):
        decode_packet(packet, MODEL)
    with pytest.raises(ForeignModel) as info:
        decode_packet(packet, MODEL, known_models=[MODEL, OTHER])
    assert info.value.model_id == OTHER
    garbled = bytearray(packet)
    garbled[6] ^= 0x40
    with pytest.raises(CorruptPacket):
        decode_packet(bytes(garbled), MODEL, known_models=[OTHER])


def test_model_ids_the_crc_cannot_separate_are_detectable() -> None:
    # XOR by the CRC polynomial itself: a pair the 16-bit CRC can never tell apart.
    twin = MODEL ^ 0x11021
    assert not models_distinguishable(MODEL, twin)
    assert decode_packet(encode_packet(HEADER, b"x", twin), MODEL)[1] == b"x"
    assert models_distinguishable(MODEL, OTHER)


def test_unknown_codec_and_malformed_length() -> None:
    body = bytearray(encode_packet(HEADER, b"abc", MODEL)[:-2])
    body[0] = (body[0] & ~0b111100) | (15 << 2)
    with pytest.raises(UnknownCodec):
        decode_packet(_resign(bytes(body)), MODEL)
    non_minimal = bytes([0x40 | (5 << 2), 0, 0, 0, 0, 0x81, 0x00]) + b"x"
    with pytest.raises(CorruptPacket):
        decode_packet(_resign(non_minimal), MODEL)
    with pytest.raises(CorruptPacket):
        decode_packet(bytes([0x40, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x01]), MODEL)
    with pytest.raises(CorruptPacket):
        decode_packet("not bytes", MODEL)  # type: ignore[arg-type]


def test_packet_stats_counts_drops_by_reason() -> None:
    stats = PacketStats()
    good = encode_packet(HEADER, b"abcd", MODEL)
    assert stats.decode(good, MODEL) is not None
    assert stats.decode(good[:-1], MODEL) is None
    assert stats.decode(encode_packet(HEADER, b"abcd", OTHER), MODEL, known_models=[OTHER]) is None
    assert stats.decode(b"\xff", MODEL) is None
    assert (stats.received, stats.accepted, stats.dropped_total) == (4, 1, 3)
    assert stats.dropped == {"TruncatedPacket": 1, "ForeignModel": 1, "VersionMismatch": 1}
    assert stats.header_bytes == 8 and stats.payload_bytes == 4
    assert stats.as_dict()["dropped_ForeignModel"] == 1


# --------------------------------------------------------------------- fuzz (10,000 examples)

FUZZ = settings(
    max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _check(data: bytes) -> None:
    try:
        header, payload = decode_packet(data, MODEL, known_models=[OTHER])
    except PacketError:
        return
    # Accepted: then it is exactly the canonical encoding of what it decoded to.
    assert encode_packet(header, payload, MODEL) == data


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(data)


_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("del"), st.integers(0, 10_000), st.integers(1, 4)),
    st.tuples(st.just("ins"), st.integers(0, 10_000), st.integers(0, 255)),
)


@FUZZ
@given(
    codec=st.sampled_from(list(CodecId)),
    frame_id=st.integers(0, 255),
    budget=st.integers(0, 255),
    stamp=st.integers(0, 65535),
    keyframe=st.booleans(),
    payload=st.binary(max_size=200),
    foreign=st.booleans(),
    mutations=st.lists(_mutation, max_size=4),
)
def test_fuzz_mutated_packets(
    codec, frame_id, budget, stamp, keyframe, payload, foreign, mutations
) -> None:
    header = PacketHeader(codec, frame_id, budget, stamp, keyframe)
    data = bytearray(encode_packet(header, payload, OTHER if foreign else MODEL))
    for kind, pos, arg in mutations:
        if not data:
            break
        i = pos % len(data)
        if kind == "flip":
            data[i] ^= 1 << arg
        elif kind == "set":
            data[i] = arg
        elif kind == "cut":
            del data[i:]
        elif kind == "del":
            del data[i : i + arg]
        else:
            data.insert(i, arg)
    _check(bytes(data))
    if not mutations and not foreign:
        assert decode_packet(bytes(data), MODEL) == (header, payload)

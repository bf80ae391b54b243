"""The learned token codec against a tiny model directory built to docs/models.md.

The trained tokenizer is not needed: the committed fixture ``tests/fixtures/models/tok-tiny``
is a small random-init conv → linear → FSQ module exported to ONNX exactly as the contract says
(inputs, outputs, dtypes, dynamic batch, opset 17, model_id = encoder hash), with a peaked prior
estimated from its own codes, as training would; so these tests need no torch and run in the
core environment too. When the shipped ``embodied/models/tok-task`` exists, every test runs on it
too.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from embodied.codecs.base import CodecUnavailable
from embodied.codecs.tokens import (
    DEFAULT_MODEL_DIR,
    TokenCodec,
    TokenizerMissing,
    TokenizerModelError,
)
from embodied.modelfiles import ENCODER_ONNX, TOKENIZER_JSON, TokenizerSpec, encoder_model_id
from embodied.packet import (
    CorruptPacket,
    ForeignModel,
    PacketError,
    TruncatedPacket,
    bits,
    overhead_bytes,
)
from tests.fixtures.tiny_models import TOKENIZER, make_frames


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return TOKENIZER  # tests copy it before changing anything


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory) -> Path:
    """Another export of the tiny tokenizer: the same weights, but the encoder file carries a
    doc string (ModelProto field 6, appended as one more protobuf field), so its hash, the
    contract's model_id, differs. Built without torch or onnx."""
    out = tmp_path_factory.mktemp("tok2") / "tok-other"
    shutil.copytree(TOKENIZER, out)
    doc = b"another export"
    with open(out / ENCODER_ONNX, "ab") as f:
        f.write(bytes([6 << 3 | 2, len(doc)]) + doc)
    spec = TokenizerSpec.load(TOKENIZER)
    replace(spec, name="tok-other", model_id=encoder_model_id(out / ENCODER_ONNX)).write(out)
    assert json.loads((out / TOKENIZER_JSON).read_text())["model_id"] != spec.model_id_hex
    return out


SHIPPED = DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "tokenizer.json").is_file() else None


@pytest.fixture(scope="module", params=["tiny", "shipped"])
def codec(request, tiny_dir) -> TokenCodec:
    if request.param == "shipped":
        if SHIPPED is None:
            pytest.skip(f"no shipped tokenizer at {DEFAULT_MODEL_DIR} (trained models land there)")
        return TokenCodec(SHIPPED)
    return TokenCodec(tiny_dir)


@pytest.fixture(scope="module")
def frames(codec) -> np.ndarray:
    return make_frames(3, seed=7, res=codec.spec.resolution)


# ----------------------------------------------------------------------------- round trip


def test_round_trip_every_budget(codec, frames):
    codes, ids = codec.tokenize(frames)
    assert codes.shape == (len(frames), codec.k_max, len(codec.spec.levels))
    assert np.array_equal(codec.codes_to_ids(codes), ids)
    for i, frame in enumerate(frames):
        for k in codec.budgets():
            enc = codec.encode(frame, budget=k, frame_id=i, stamp_ms=33 * i)
            dec = codec.decode(enc.packet)
            assert dec.header.budget == k and dec.header.frame_id == i
            assert np.array_equal(dec.tokens, ids[i, :k])
            assert np.array_equal(enc.tokens, ids[i, :k])
            assert dec.padded.shape == (codec.k_max,)
            assert np.array_equal(dec.padded[:k], ids[i, :k]) and not dec.padded[k:].any()


def test_bits_are_the_packet_length(codec, frames):
    for k in codec.budgets():
        enc = codec.encode(frames[0], budget=k)
        assert enc.bits == 8 * len(enc.packet)
        count = bits(enc.packet)
        assert count.total_bits == enc.bits
        assert (
            count.header_bits == enc.bit_count.header_bits == 8 * overhead_bytes(enc.payload_bytes)
        )
        assert count.payload_bits == 8 * enc.payload_bytes
        assert enc.header_bytes + enc.payload_bytes == len(enc.packet)


def test_payload_is_near_the_information_content(codec, frames):
    codes, _ = codec.tokenize(frames[0])
    for k in (1, codec.k_max):
        info = codec.tables.information_bits(codes[:k].reshape(-1).tolist())
        enc = codec.encode(frames[0], budget=k)
        assert enc.payload_bytes <= math.ceil(info / 8)


def test_one_token_fits_twelve_bytes(codec, frames):
    for frame in frames:
        assert len(codec.encode(frame, budget=1).packet) <= 12


def test_packet_size_never_shrinks_with_budget(codec, frames):
    sizes = [len(codec.encode(frames[1], budget=k).packet) for k in codec.budgets()]
    assert sizes == sorted(sizes)


def test_target_bytes_picks_the_most_tokens_that_fit(codec, frames):
    sizes = {k: len(codec.encode(frames[0], budget=k).packet) for k in codec.budgets()}
    for target in (9, sizes[1], sizes[min(4, codec.k_max)] + 1, 10_000):
        enc = codec.encode(frames[0], target_bytes=target)
        fitting = [k for k, n in sizes.items() if n <= target]
        if fitting:
            assert enc.target_met and len(enc.packet) <= target
            assert enc.header.budget == max(fitting)
        else:
            assert not enc.target_met and enc.header.budget == 1


def test_encode_ids_and_decode_ids(codec, frames):
    _, ids = codec.tokenize(frames[0])
    for k in (1, 3, codec.k_max):
        enc = codec.encode_ids(ids, k, frame_id=5)
        assert enc.packet == codec.encode(frames[0], budget=k, frame_id=5).packet
        assert np.array_equal(codec.decode_ids(enc.packet), ids[:k])
    with pytest.raises(ValueError, match=r"0\.\."):
        codec.encode_ids([codec.spec.vocab], 1)


def test_image_decoding_is_optional(codec, frames):
    enc = codec.encode(frames[0], budget=2)
    assert codec.decode(enc.packet).image is None
    dec = codec.decode(enc.packet, image=True)
    res = codec.spec.resolution
    assert dec.image.shape == (res, res, 3) and dec.image.dtype == np.uint8
    assert np.array_equal(dec.image, codec.reconstruct(dec.padded, 2))


def test_size_table_is_json_and_monotone(codec, frames):
    table = codec.size_table(frames, [1, 2, codec.k_max])
    assert json.loads(json.dumps(table)) == table
    assert table["budgets"] == [1, 2, codec.k_max]
    assert table["mean_packet_bytes"] == sorted(table["mean_packet_bytes"])
    assert table["mean_packet_bytes"][0] == table["mean_payload_bytes"][0] + 8


# ----------------------------------------------------------------------------- refusals


def test_budget_outside_range_names_it(codec, frames):
    for bad in (0, codec.k_max + 1, -1):
        with pytest.raises(ValueError, match=rf"1\.\.{codec.k_max}"):
            codec.encode(frames[0], budget=bad)
    with pytest.raises(ValueError, match="not both"):
        codec.encode(frames[0], budget=1, target_bytes=20)


def test_damaged_packets_raise_typed_errors(codec, frames):
    packet = codec.encode(frames[0], budget=4).packet
    for cut in range(len(packet)):
        with pytest.raises(PacketError):
            codec.decode(packet[:cut])
    with pytest.raises(TruncatedPacket):
        codec.decode(packet[:-1])
    for i in range(len(packet)):
        bad = bytearray(packet)
        bad[i] ^= 0x10
        with pytest.raises(PacketError):
            codec.decode(bytes(bad))


def test_foreign_model_packets_are_refused(tiny_dir, other_dir):
    frames = make_frames(1, res=TokenizerSpec.load(tiny_dir).resolution)
    mine, theirs = TokenCodec(tiny_dir), TokenCodec(other_dir)
    assert mine.model_id != theirs.model_id
    packet = theirs.encode(frames[0], budget=3).packet
    with pytest.raises(CorruptPacket):
        mine.decode(packet)
    knowing = TokenCodec(tiny_dir, known_models=[theirs.model_id])
    with pytest.raises(ForeignModel) as err:
        knowing.decode(packet)
    assert err.value.model_id == theirs.model_id


def test_constriction_coder_round_trips(tiny_dir):
    frames = make_frames(1, res=TokenizerSpec.load(tiny_dir).resolution)
    codec = TokenCodec(tiny_dir, coder="constriction")
    _, ids = codec.tokenize(frames[0])
    for k in (1, 5, codec.k_max):
        enc = codec.encode(frames[0], budget=k)
        assert enc.payload_bytes % 4 == 0
        assert np.array_equal(codec.decode_ids(enc.packet), ids[:k])


# ----------------------------------------------------------------------------- model files


def test_model_directory_errors_name_what_was_expected(tiny_dir, tmp_path):
    with pytest.raises(TokenizerMissing, match=r"tokenizer\.json"):
        TokenCodec(tmp_path / "nowhere")
    assert issubclass(TokenizerMissing, CodecUnavailable)  # registry-wide tests skip it
    partial = tmp_path / "partial"
    shutil.copytree(tiny_dir, partial)
    (partial / "tokenizer_prior.npy").unlink()
    with pytest.raises(TokenizerModelError, match=r"missing tokenizer_prior\.npy"):
        TokenCodec(partial)

    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_dir, foreign)
    spec = json.loads((foreign / "tokenizer.json").read_text())
    (foreign / "tokenizer.json").write_text(json.dumps({**spec, "kind": "policy"}))
    with pytest.raises(TokenizerModelError, match="expected 'tokenizer'"):
        TokenCodec(foreign)
    (foreign / "tokenizer.json").write_text(json.dumps({**spec, "model_id": "00000000"}))
    with pytest.raises(TokenizerModelError, match="different exports"):
        TokenCodec(foreign)
    (foreign / "tokenizer.json").write_text(json.dumps(spec))
    np.save(foreign / "tokenizer_prior.npy", np.ones((2, 2)))
    with pytest.raises(TokenizerModelError, match="expected float"):
        TokenCodec(foreign)


def test_other_camera_sizes_are_resized(tiny_dir):
    wide = TokenCodec(tiny_dir, frame_shape=(48, 80))
    native = TokenCodec(tiny_dir)
    frame = make_frames(1, res=96)[0][:48, :80].copy()
    enc = wide.encode(frame, budget=3)
    dec = native.decode(enc.packet, image=True)  # tokens do not depend on the camera size
    assert np.array_equal(dec.tokens, enc.tokens)
    assert dec.image.shape == (native.spec.resolution, native.spec.resolution, 3)
    assert wide.decode(enc.packet, image=True).image.shape == (48, 80, 3)
    with pytest.raises(ValueError):
        wide.encode(np.zeros((32, 32, 3), np.uint8), budget=1)


def test_registered_as_tokens(tiny_dir):
    from embodied.codecs import codec_spec, make_codec
    from embodied.packet import CodecId

    spec = codec_spec("tokens")
    assert spec.codec_id == CodecId.TOKENS and spec.kind == "tokens"
    codec = make_codec("tokens", model_dir=tiny_dir, frame_shape=(64, 64))
    assert isinstance(codec, TokenCodec) and not codec.stateful


@pytest.mark.skipif(SHIPPED is None, reason=f"no shipped tokenizer at {DEFAULT_MODEL_DIR}")
def test_shipped_sixteen_tokens_beat_the_smallest_jpeg_tenfold():
    from embodied.codecs.jpeg import JpegCodec

    codec = TokenCodec(SHIPPED)
    frame = make_frames(1, seed=3, res=codec.spec.resolution)[0]
    jpeg = JpegCodec((codec.spec.resolution,) * 2).smallest_packet_bytes(frame)
    assert len(codec.encode(frame, budget=min(16, codec.k_max)).packet) * 10 <= jpeg


# ----------------------------------------------------------------------------- rd report


def test_rd_report_smoke(tiny_dir, tmp_path):
    pytest.importorskip("matplotlib")  # the report's plots: the `tools` extra
    from embodied_tools.rd import main as rd_main

    np.save(tmp_path / "f.npy", make_frames(6, seed=11))
    out = tmp_path / "rd"
    argv = ["--frames", str(tmp_path / "f.npy"), "--tokenizers", str(tiny_dir)]
    argv += ["--codecs", "raw", "h264", "--qps", "30", "--budgets", "1", "4", "--clip-len", "3"]
    assert rd_main([*argv, "--out", str(out), "--no-progress"]) == 0
    for name in ("rd.json", "rd.csv", "rd.png", "rd_grid.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "rd.json").read_text())
    assert report["n_frames"] == 6
    toks = report["curves"][f"tokens:{TokenizerSpec.load(tiny_dir).name}"]["points"]
    assert [p["setting"]["k"] for p in toks] == [1, 4]
    for curve in report["curves"].values():
        for p in curve["points"]:
            assert p["bits"] == pytest.approx(p["header_bits"] + p["payload_bits"])
            assert p["header_bits"] >= 64  # the packet header is counted, never left out
    assert any(p["on_envelope"] for p in report["curves"]["raw"]["points"])

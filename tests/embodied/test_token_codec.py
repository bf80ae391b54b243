"""The learned token codec against a tiny model directory built to docs/models.md.

The trained tokenizer is not needed: ``tiny_model_dir`` exports a small
random-init conv → linear → FSQ module to ONNX exactly as the contract says
(inputs, outputs, dtypes, dynamic batch, opset 17, model_id = encoder hash),
with a peaked prior estimated from its own codes, as training would. When the
shipped ``embodied/models/tok-task`` exists, every test runs on it too.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
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
from embodied.packet import (
    CorruptPacket,
    ForeignModel,
    PacketError,
    TruncatedPacket,
    bits,
    overhead_bytes,
)

LEVELS = (8, 5, 5, 5)
K_MAX = 16
RES = 64


def make_frames(n: int, seed: int = 0, res: int = RES) -> np.ndarray:
    """Camera-like frames: a gradient plus a few rectangles at seed-driven places."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32)
    base = np.stack([xx * 3 + 20, yy * 2.5 + 30, (xx + yy) + 60], -1)
    out = []
    for _ in range(n):
        img = base.copy()
        for color in ((220, 40, 40), (40, 180, 60), (30, 30, 200)):
            y, x = rng.integers(0, res - 16, 2)
            h, w = rng.integers(6, 16, 2)
            img[y : y + h, x : x + w] = color
        img += rng.normal(0, 3, img.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def build_model_dir(
    path: Path,
    *,
    seed: int = 0,
    k_max: int = K_MAX,
    levels: tuple[int, ...] = LEVELS,
    res: int = RES,
    name: str = "tok-test",
) -> Path:
    """Write tokenizer.json + encoder/decoder ONNX + prior honouring docs/models.md."""
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    dims = len(levels)
    L = torch.tensor(levels, dtype=torch.float32)
    radix = torch.tensor([math.prod(levels[d + 1 :]) for d in range(dims)], dtype=torch.int64)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 8, stride=8)
            self.proj = nn.Linear(8 * (res // 8) ** 2, k_max * dims)

        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float() / 127.5 - 1
            z = self.proj(torch.relu(self.conv(x)).flatten(1)).view(-1, k_max, dims)
            codes = torch.round(torch.sigmoid(2 * z) * (L - 1)).long()  # FSQ round
            return codes, (codes * radix).sum(-1)

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(k_max * dims, 3 * (res // 4) ** 2)

        def forward(self, token_ids, budget):
            codes = torch.div(token_ids.unsqueeze(-1), radix, rounding_mode="floor") % L.long()
            values = codes.float() / (L - 1) * 2 - 1
            keep = torch.arange(k_max).unsqueeze(0) < budget.unsqueeze(1)
            values = values * keep.unsqueeze(-1).float()
            small = torch.sigmoid(self.proj(values.flatten(1))).view(-1, 3, res // 4, res // 4)
            img = nn.functional.interpolate(small, scale_factor=4.0, mode="nearest")
            return torch.round(img * 255).to(torch.uint8).permute(0, 2, 3, 1)

    path.mkdir(parents=True, exist_ok=True)
    enc, dec = Encoder().eval(), Decoder().eval()
    frames = torch.from_numpy(make_frames(64, seed=seed + 100, res=res))
    with warnings.catch_warnings():  # the legacy exporter warns it is legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            enc,
            (frames[:2],),
            str(path / "tokenizer_encoder.onnx"),
            input_names=["image"],
            output_names=["codes", "token_ids"],
            dynamic_axes={"image": {0: "B"}, "codes": {0: "B"}, "token_ids": {0: "B"}},
            opset_version=17,
            dynamo=False,
        )
        ids = torch.zeros(2, k_max, dtype=torch.int64)
        torch.onnx.export(
            dec,
            (ids, torch.tensor([1, k_max])),
            str(path / "tokenizer_decoder.onnx"),
            input_names=["token_ids", "budget"],
            output_names=["image"],
            dynamic_axes={"token_ids": {0: "B"}, "budget": {0: "B"}, "image": {0: "B"}},
            opset_version=17,
            dynamo=False,
        )
    # A peaked prior, as training learns it: the codes' own histogram, lightly smoothed.
    with torch.no_grad():
        codes = enc(frames)[0].numpy()
    prior = np.zeros((k_max, dims, max(levels)))
    for d, n in enumerate(levels):
        counts = np.stack([np.bincount(codes[:, k, d], minlength=n) for k in range(k_max)])
        p = counts + 0.05
        prior[:, d, :n] = p / p.sum(-1, keepdims=True)
    np.save(path / "tokenizer_prior.npy", prior)
    model_id = hashlib.sha256((path / "tokenizer_encoder.onnx").read_bytes()).hexdigest()[:8]
    spec = {
        "kind": "tokenizer",
        "name": name,
        "model_id": model_id,
        "k_max": k_max,
        "levels": list(levels),
        "resolution": res,
        "objective": "reconstruction",
        "format_version": 1,
    }
    (path / "tokenizer.json").write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("tok") / "tok-test")


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("tok2") / "tok-other", seed=1, name="tok-other")


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
    frames = make_frames(1)
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
    frames = make_frames(1)
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
    assert dec.image.shape == (64, 64, 3)
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
    from embodied.rd import main as rd_main

    np.save(tmp_path / "f.npy", make_frames(6, seed=11))
    out = tmp_path / "rd"
    argv = ["--frames", str(tmp_path / "f.npy"), "--tokenizers", str(tiny_dir)]
    argv += ["--codecs", "raw", "h264", "--qps", "30", "--budgets", "1", "4", "--clip-len", "3"]
    assert rd_main([*argv, "--out", str(out), "--no-progress"]) == 0
    for name in ("rd.json", "rd.csv", "rd.png", "rd_grid.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "rd.json").read_text())
    assert report["n_frames"] == 6
    toks = report["curves"]["tokens:tok-test"]["points"]
    assert [p["setting"]["k"] for p in toks] == [1, 4]
    for curve in report["curves"].values():
        for p in curve["points"]:
            assert p["bits"] == pytest.approx(p["header_bits"] + p["payload_bits"])
            assert p["header_bits"] >= 64  # the packet header is counted, never left out
    assert any(p["on_envelope"] for p in report["curves"]["raw"]["points"])

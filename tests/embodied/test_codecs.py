"""Every registered codec: round trip, exact bits, target sizes, strict decoding.

Parametrized over the registry, so a codec is tested the moment it is
registered (the learned ``tokens`` codec included).
"""

from __future__ import annotations

import numpy as np
import pytest

from embodied.codecs import (
    Codec,
    CodecUnavailable,
    MissingReference,
    UnknownCodecName,
    codec_names,
    codec_spec,
    make_codec,
    register_codec,
)
from embodied.codecs.ladder import LadderCodec
from embodied.metrics import psnr
from embodied.packet import CodecId, PacketError, bits, decode_packet, overhead_bytes
from embodied_tools.bench_codecs import main as bench_main
from embodied_tools.bench_codecs import synthetic_frames

NAMES = codec_names()
FRAMES = synthetic_frames(10)
TARGETS = [60, 150, 400, 1000, 3000]


def _make(name: str, **kwargs) -> Codec:
    """Build a registered codec; skip (with the reason) one whose model files are absent."""
    try:
        return make_codec(name, **kwargs)
    except CodecUnavailable as err:
        pytest.skip(f"{name}: {err}")


def _available(name: str) -> bool:
    try:
        make_codec(name)
    except CodecUnavailable:
        return False
    return True


@pytest.fixture(params=NAMES)
def codec(request) -> Codec:
    return _make(request.param)


def test_builtins_registered() -> None:
    assert {"raw", "jpeg", "webp", "h264-intra", "h264"} <= set(NAMES)


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(UnknownCodecName) as info:
        make_codec("jepg")
    msg = str(info.value)
    assert "Did you mean 'jpeg'" in msg and all(n in msg for n in NAMES)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_duplicate_registration_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_codec(
            "jpeg", "embodied.codecs.jpeg:JpegCodec", codec_id=CodecId.JPEG, kind="image"
        )
    assert codec_spec("jpeg").codec_id == CodecId.JPEG


def test_round_trip(codec: Codec) -> None:
    assert isinstance(codec, Codec)
    assert codec.kind in ("image", "tokens") and 0 <= codec.model_id < 2**32
    budgets = list(codec.budgets())
    assert budgets == sorted(budgets) and budgets[0] >= 0 and budgets[-1] <= 255
    for i, budget in enumerate([None, budgets[0], budgets[-1]]):
        codec.reset()
        enc = codec.encode(FRAMES[i], budget=budget, frame_id=300 + i, stamp_ms=70_000 + i)
        assert enc.bits == 8 * len(enc.packet)
        assert bits(enc.packet) == enc.bit_count
        assert enc.header_bytes == overhead_bytes(enc.payload_bytes)
        assert enc.header_bytes + enc.payload_bytes == len(enc.packet)
        assert 0 <= enc.format_overhead_bytes <= enc.payload_bytes
        dec = codec.decode(enc.packet)
        assert dec.header == enc.header
        assert (dec.header.frame_id, dec.header.stamp_ms) == ((300 + i) % 256, (70_000 + i) % 65536)
        if codec.kind == "image":
            assert dec.image is not None
            assert dec.image.shape == (64, 64, 3) and dec.image.dtype == np.uint8
        else:
            assert dec.tokens is not None and np.issubdtype(dec.tokens.dtype, np.integer)


def test_top_rung_is_faithful(codec: Codec) -> None:
    if codec.kind != "image":
        pytest.skip("image codecs only")
    if codec.stateful:  # a rate-controlled stream needs a few frames to build up quality
        for i, frame in enumerate(FRAMES):
            dec = codec.decode(codec.encode(frame, target_bytes=3000, frame_id=i).packet)
    else:
        dec = codec.decode(codec.encode(FRAMES[-1], budget=list(codec.budgets())[-1]).packet)
    assert psnr(dec.image, FRAMES[-1]) > 28


@pytest.mark.parametrize("target", TARGETS)
def test_target_size(codec: Codec, target: int) -> None:
    """Stateless: every packet fits, or is the smallest the codec can make.
    Stateful (CBR video): the stream's mean fits (VBV allows single frames over)."""
    codec.reset()
    sizes = []
    for i, frame in enumerate(FRAMES):
        enc = codec.encode(frame, target_bytes=target, frame_id=i)
        sizes.append(len(enc.packet))
        assert enc.target_met == (len(enc.packet) <= target)
        codec.decode(enc.packet)
        if codec.stateful:
            continue
        if not enc.target_met:
            smallest = min(len(codec.encode(frame, budget=b).packet) for b in codec.budgets())
            assert len(enc.packet) == smallest
    if codec.stateful:
        assert np.mean(sizes[1:]) <= 1.1 * target


@pytest.mark.parametrize("name", ["jpeg", "webp", "h264-intra"])
def test_quality_search_fills_target(name: str) -> None:
    """Binary search over quality gets close to the target, not just under it."""
    codec = make_codec(name, select="bytes")
    assert isinstance(codec, LadderCodec)
    for frame in FRAMES[:3]:
        lo = codec.smallest_packet_bytes(frame)
        hi = len(codec.encode(frame).packet)
        for target in TARGETS:
            if lo <= target <= hi:
                n = len(codec.encode(frame, target_bytes=target).packet)
                assert 0.6 * target <= n <= target, (name, target, n)


def test_ladder_is_the_envelope_grid() -> None:
    jpeg = make_codec("jpeg")
    rungs = jpeg.ladder()
    assert len(rungs) == len(list(jpeg.budgets())) <= 256
    assert {(r.height, r.width) for r in rungs} >= {(64, 64), (32, 32), (8, 8)}
    assert [r.index for r in rungs] == list(range(len(rungs)))


def test_jpeg_header_cost_reported_and_headerless_identical() -> None:
    stock, lite = make_codec("jpeg"), make_codec("jpeg", headerless=True)
    assert stock.model_id != lite.model_id
    for budget in (0, 50, len(stock.budgets()) - 1):
        a, b = stock.encode(FRAMES[0], budget=budget), lite.encode(FRAMES[0], budget=budget)
        assert 550 <= a.format_overhead_bytes <= 700 and b.format_overhead_bytes == 0
        assert a.payload_bytes - b.payload_bytes == a.format_overhead_bytes
        assert np.array_equal(stock.decode(a.packet).image, lite.decode(b.packet).image)
    smallest = min(len(lite.encode(FRAMES[0], budget=b).packet) for b in lite.budgets())
    assert smallest < 100


def test_decoder_is_strict(codec: Codec) -> None:
    enc = codec.encode(FRAMES[0], frame_id=0)
    for bad in (b"", enc.packet[:-1], enc.packet[:5], b"\x40" * 12, bytes(reversed(enc.packet))):
        with pytest.raises(PacketError):
            codec.decode(bad)
    if codec.kind == "image":  # token packets carry no pixels: any camera size decodes them
        other_shape = _make(codec.name, frame_shape=(32, 48))
        with pytest.raises(PacketError):
            other_shape.decode(enc.packet)
    for other in NAMES:
        if other != codec.name and _available(other):
            with pytest.raises(PacketError):
                codec.decode(make_codec(other).encode(FRAMES[0]).packet)


def test_frame_validation(codec: Codec) -> None:
    with pytest.raises(ValueError):
        codec.encode(FRAMES[0].astype(np.float32))
    with pytest.raises(ValueError):
        codec.encode(FRAMES[0][:32])
    with pytest.raises(ValueError):
        codec.encode(FRAMES[0], budget=0, target_bytes=100)


def test_other_frame_sizes() -> None:
    frames = synthetic_frames(2, (48, 80))
    for name in filter(_available, NAMES):
        codec = make_codec(name, frame_shape=(48, 80))
        dec = codec.decode(codec.encode(frames[0], target_bytes=400).packet)
        if dec.image is not None:
            assert dec.image.shape == (48, 80, 3)


# --------------------------------------------------------------------- H.264 inter


def test_h264_inter_stream_in_order_and_smaller_than_intra() -> None:
    inter = make_codec("h264", qp=30)
    encs = [inter.encode(f, frame_id=i, stamp_ms=100 * i) for i, f in enumerate(FRAMES)]
    assert encs[0].header.keyframe and not any(e.header.keyframe for e in encs[1:])
    assert encs[0].format_overhead_bytes > 0  # SPS + PPS ride with the IDR
    decs = [inter.decode(e.packet) for e in encs]
    assert [d.header.frame_id for d in decs] == list(range(10))
    assert all(d.intact for d in decs)
    assert np.mean([psnr(d.image, f) for d, f in zip(decs, FRAMES, strict=True)]) > 27
    intra = np.mean([len(e.packet) for e in encs[:1]])
    inter_mean = np.mean([len(e.packet) for e in encs[1:]])
    assert inter_mean < 0.5 * intra, (inter_mean, intra)


def test_h264_inter_loss_and_late_join() -> None:
    sender = make_codec("h264", qp=30)
    packets = [sender.encode(f, frame_id=i).packet for i, f in enumerate(FRAMES)]
    receiver = make_codec("h264", qp=30)
    with pytest.raises(MissingReference):  # joined mid-stream: no IDR yet
        receiver.decode(packets[3])
    receiver.reset()
    intact = [receiver.decode(p).intact for i, p in enumerate(packets) if i != 4]
    assert intact[:4] == [True] * 4 and not any(intact[4:])  # concealed until refresh
    sender.reset()
    assert decode_packet(sender.encode(FRAMES[0]).packet, sender.model_id)[0].keyframe


def test_h264_inter_rate_follows_target() -> None:
    codec = make_codec("h264")
    frames = synthetic_frames(40)
    low = [len(codec.encode(f, target_bytes=80, frame_id=i).packet) for i, f in enumerate(frames)]
    high = [len(codec.encode(f, target_bytes=600, frame_id=i).packet) for i, f in enumerate(frames)]
    assert np.mean(low[5:]) <= 80 and np.mean(high[5:]) > 2 * np.mean(low[5:])


def test_bench_cli_runs(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert (
        bench_main(["--codecs", "raw", "webp", "--n", "3", "--targets", "200", "--json", str(out)])
        == 0
    )
    assert "smallest packet" in capsys.readouterr().out and out.exists()
    np.save(tmp_path / "f.npy", np.stack(synthetic_frames(2, (32, 32))))
    assert (
        bench_main(["--codecs", "jpeg", "--frames", str(tmp_path / "f.npy"), "--targets", "900"])
        == 0
    )


def test_codecs_import_no_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from embodied.codecs import make_codec, codec_names; "
        "from embodied.codecs import CodecUnavailable; assert 'av' not in sys.modules\n"
        "for n in codec_names():\n"
        "    try: make_codec(n)\n"
        "    except CodecUnavailable: pass\n"
        "bad = {'torch', 'mujoco', 'rclpy'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

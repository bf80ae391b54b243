"""``embodied view``: what a stream's view holds, read back from the rerun recording it wrote."""

from __future__ import annotations

import numpy as np
import pytest

rr = pytest.importorskip("rerun")

from embodied.modelfiles import MODELS_DIR  # noqa: E402
from embodied_tools.view.readback import read_recording  # noqa: E402
from embodied_tools.view.stream import StreamView  # noqa: E402

TOK = MODELS_DIR / "tok-task"


def _view(path, **kw) -> tuple[rr.RecordingStream, StreamView]:
    rec = rr.RecordingStream("embodied-view-test")
    rec.save(str(path))
    return rec, StreamView(rec, tokenizer_dir=TOK, picture_hz=0, camera_hz=0, **kw)


def _frames(n: int) -> list[np.ndarray]:
    """Camera frames of a benchmark scene (the arm moving), as the tokenizer was trained on."""
    pytest.importorskip("mujoco")
    from sim.env import MetaWorldTaskEnv

    env = MetaWorldTaskEnv("drawer-open")
    obs, _ = env.reset(seed=1_000_000)
    out = [obs["image"]]
    for _ in range(n - 1):
        obs, *_ = env.step(np.array([0.5, 0.0, -0.3, 0.0], np.float32))
        out.append(obs["image"])
    env.close()
    return out


def test_eval_episode_view_holds_every_panel(tmp_path):
    pytest.importorskip("mujoco")
    from embodied_tools.view.eval import EvalTap
    from sim.evaluate import Point, run_episode

    path = tmp_path / "eval.rrd"
    rec, view = _view(path)
    point = Point(codec="tokens", tokenizer="tok-task", trace="cellular", controller="deadline")
    r = run_episode(point, "drawer-open", 1_000_000, max_steps=45, observer=EvalTap(view))
    rec.flush()
    rec.disconnect()
    got = read_recording(path)
    for p in ("camera/front", "received/front", "bits/payload", "bits/header", "bits/transport",
              "rate/payload_kbps", "rate/wire_kbps", "rate/capacity_kbps", "budget/sent",
              "latency/arrival_ms", "latency/deadline_ms", "misses/deadline_pct",
              "task/instruction", "task/belief", "events"):  # fmt: skip
        assert p in got.paths(), (p, got.paths())
    # every frame sent is a point of the bits series; the budget is the packets' own
    _, _, payload = got.scalars("bits/payload")
    assert len(payload) == r.frames_sent
    _, _, header = got.scalars("bits/header")
    assert np.mean(payload + header) == pytest.approx(r.bits_mean)
    _, _, misses = got.scalars("misses/deadline_pct")
    assert misses[-1] == pytest.approx(100.0 * r.deadline_misses / r.frames_captured)
    # the received picture is the decoder's, not the camera frame passed through
    _, cams = got.images("camera/front")
    _, recs = got.images("received/front")
    assert recs[0].shape == cams[0].shape == (64, 64, 3)
    assert np.abs(recs[-1].astype(int) - cams[-1].astype(int)).mean() > 1.0
    events = got.texts("events")
    assert events[0].startswith("start") and events[-1].startswith("end"), events


def test_lower_budget_blurs_the_received_picture_and_lowers_the_bits(tmp_path):
    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.wire import PacketFormat

    codec = TokenCodec(TOK)
    fmt = str(PacketFormat("tokens", codec.model_id, codec.frame_shape))
    path = tmp_path / "k.rrd"
    rec, view = _view(path)
    frames = _frames(8)
    for i, f in enumerate(frames):
        k = 64 if i < 4 else 2
        view.camera(i / 30, f)
        view.packet(i / 30, codec.encode(f, budget=k, frame_id=i).packet, fmt, 40)
    rec.flush()
    rec.disconnect()
    got = read_recording(path)
    _, _, budget = got.scalars("budget/sent")
    assert list(budget) == [64] * 4 + [2] * 4
    _, _, payload = got.scalars("bits/payload")
    assert payload[:4].min() > 4 * payload[4:].max()
    _, _, transport = got.scalars("bits/transport")
    assert set(transport) == {320}
    # the picture moves with the bits: the decoder at 2 tokens is further from the camera
    _, _, quality = got.scalars("quality/psnr_db")
    assert len(quality) == 8 and quality[:4].min() > quality[4:].max() + 1.0, quality


def test_bad_packets_are_counted_never_raised_and_a_foreign_stream_still_shows_its_bits(tmp_path):
    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.wire import PacketFormat

    codec = TokenCodec(TOK)
    good = codec.encode(_frames(1)[0], budget=8, frame_id=0).packet
    fmt = str(PacketFormat("tokens", codec.model_id, codec.frame_shape))
    foreign = str(PacketFormat("tokens", codec.model_id ^ 0x5A5A, codec.frame_shape))
    path = tmp_path / "bad.rrd"
    rec, view = _view(path)
    view.packet(0.0, good[:-3], fmt)  # truncated
    view.packet(0.1, bytes([good[0] ^ 0x40]) + good[1:], fmt)  # another version
    view.packet(0.2, good, "not-a-format")
    flipped = bytearray(good)
    flipped[-5] ^= 0xFF
    view.packet(0.3, bytes(flipped), fmt)  # CRC
    assert view.malformed == 4
    view.packet(0.4, good, fmt)
    rec.flush()
    rec.disconnect()
    got = read_recording(path)
    _, _, bad = got.scalars("packets/malformed")
    assert list(bad) == [1, 2, 3, 4]
    assert len(got.scalars("bits/payload")[2]) == 1  # the good one
    assert len(got.images("received/front")[1]) == 1
    # a packet whose CRC is not its stream's model: refused
    _, view2 = _view(tmp_path / "mismatch.rrd")
    view2.packet(0.0, good, foreign)
    assert view2.malformed == 1
    # a stream of another tokenizer (its own CRC key): bits shown, no picture, said once
    from embodied.packet import decode_packet, encode_packet

    header, payload = decode_packet(good, codec.model_id)
    other = encode_packet(header, payload, codec.model_id ^ 0x5A5A)
    path3 = tmp_path / "foreign.rrd"
    rec3, view3 = _view(path3)
    view3.packet(0.0, other, foreign)
    view3.packet(0.1, other, foreign)
    rec3.flush()
    rec3.disconnect()
    got3 = read_recording(path3)
    assert view3.malformed == 0 and len(got3.scalars("bits/payload")[2]) == 2
    assert "received/front" not in got3.paths()
    said = [t for t in got3.texts("events") if t.startswith("no reconstruction")]
    assert len(said) == 1 and "--tokenizer-dir" in said[0], said


def test_pixel_codec_stream_shows_its_decoded_frame(tmp_path):
    from embodied.codecs import make_codec
    from ros_nodes.wire import PacketFormat

    jpeg = make_codec("jpeg", frame_shape=(64, 64))
    fmt = str(PacketFormat("jpeg", jpeg.model_id, (64, 64)))
    path = tmp_path / "jpeg.rrd"
    rec, view = _view(path)
    f = _frames(1)[0]
    view.packet(0.0, jpeg.encode(f, target_bytes=900).packet, fmt)
    rec.flush()
    rec.disconnect()
    _, pics = read_recording(path).images("received/front")
    assert pics[0].shape == (64, 64, 3)
    assert 0 < np.abs(pics[0].astype(int) - f.astype(int)).mean() < 20

"""H.264 baselines through PyAV's libx264: intra-only (``h264-intra``) and inter (``h264``).

Both use the settings of a low-latency link: ``tune=zerolatency`` (no
lookahead, no B-frames: one packet out per frame in, decodable at once),
``profile=baseline``, ``preset`` ultrafast by default, one thread.

* ``h264-intra``: every frame an IDR picture with its own SPS/PPS, so any
  packet decodes alone (a lost packet costs one frame). A ladder of
  (QP, downscale) rungs, searched per frame like JPEG and WebP (``ladder.py``).
  libx264 cannot change QP on an open encoder through PyAV, so one encoder
  is kept per (size, QP) and reused (``cache_size`` of them, about 1 MB
  each at 64×64): with a GOP of 1 each output is independent of the
  previous ones.
* ``h264``: one stateful encoder across calls, CBR through bit rate + VBV
  (``maxrate`` = bit rate, ``bufsize`` = ``vbv_frames`` frame periods, 2 by
  default, at least 1 kbit, libx264's unit), periodic intra refresh instead of IDR frames (so a lost
  packet heals within ``keyint`` frames and there are no keyframe spikes),
  and a stateful decoder on the receiving side; ``reset()`` restarts both.
  The rate is a property of the stream: x264 reconfigured through PyAV does
  not follow a higher bit rate, so ``target_bytes`` that moves the per-frame
  rate by more than ``reopen_ratio`` restarts the stream with a new IDR
  frame; smaller changes keep it. ``qp=`` switches to constant QP (no rate
  control; for sweeps and for comparing inter with intra sizes). Its ladder is the downscale alone (budget
  = rung index; changing it also restarts the stream). The target is met on
  average over frames, not per frame: that is what CBR with VBV promises.
  Measured on 64×64 synthetic frames, x264's rate control undershoots at
  these rates (a long-run mean of about 55-95% of the target; with
  ``nal-hrd=cbr`` it pads the rest with filler NAL units, which carry
  nothing and which we would strip anyway); the bits reported are the ones
  actually sent. At the lowest rates the VBV squeezes the first IDR frame to
  a nearly flat picture; quality builds up over the refresh period. Measured:
  inter frames of ~46 B at 5 kbit/s and ~60 B at 8 kbit/s (10 fps).

Payload: the Annex B NAL units without SEI, filler and access-unit delimiters (x264's
first packet carries a ~540-byte SEI with its option string, useless to a
decoder), joined by 3-byte start codes, the leading one dropped (the receiver
puts it back). libx264 needs even sizes, so rung sizes are rounded up to even
numbers; the minimum side is one macroblock (16).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction

import av
import cv2
import numpy as np
from av.error import FFmpegError
from av.video.codeccontext import VideoCodecContext

from embodied.codecs.base import (
    DecodedFrame,
    EncodedFrame,
    MissingReference,
    PacketCodec,
    UndecodablePayload,
    check_frame,
)
from embodied.codecs.ladder import DEFAULT_DOWNSCALES, LadderCodec, Rung, build_ladder
from embodied.packet import CodecId, max_payload_for

QPS: tuple[int, ...] = (51, 48, 45, 42, 39, 36, 33, 30, 27, 24, 21, 18, 15, 12)
H264_DOWNSCALES: tuple[float, ...] = (1, 2, 3, 4)
_START = b"\x00\x00\x01"
_SPLIT = re.compile(b"\x00\x00\x01")
NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD, NAL_FILLER = 5, 6, 7, 8, 9, 12
_DROPPED = (NAL_SEI, NAL_AUD, NAL_FILLER)


def split_nals(annexb: bytes) -> list[bytes]:
    """NAL units of an Annex B byte stream (start codes and trailing zeros removed)."""
    parts = _SPLIT.split(annexb)
    return [p.rstrip(b"\x00") for p in parts[1:] if p.rstrip(b"\x00")]


def pack_nals(annexb: bytes) -> tuple[bytes, int, bool]:
    """(payload, parameter-set bytes, has IDR): SEI/AUD/filler dropped, compact start codes."""
    nals = [n for n in split_nals(annexb) if n[0] & 0x1F not in _DROPPED]
    overhead = sum(len(n) + len(_START) for n in nals if n[0] & 0x1F in (NAL_SPS, NAL_PPS))
    has_idr = any(n[0] & 0x1F == NAL_IDR for n in nals)
    return _START.join(nals), overhead, has_idr


def _rgb_to_video_frame(image: np.ndarray, pts: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    frame.pts = pts
    return frame


def _open_encoder(
    width: int, height: int, fps: float, options: dict[str, str], bit_rate: int = 0
) -> VideoCodecContext:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    ctx.time_base = 1 / rate
    ctx.framerate = rate
    if bit_rate:
        ctx.bit_rate = bit_rate
    ctx.thread_count = 1
    ctx.options = options
    ctx.open()
    return ctx


def _new_decoder() -> VideoCodecContext:
    ctx = av.CodecContext.create("h264", "r")
    ctx.thread_count = 1
    return ctx


def _decode_rgb(decoder: VideoCodecContext, payload: bytes) -> np.ndarray | None:
    frames = decoder.decode(av.Packet(_START + payload))
    if not frames:
        return None
    return frames[-1].to_ndarray(format="rgb24")


class H264IntraCodec(LadderCodec):
    name = "h264-intra"
    codec_id = CodecId.H264_INTRA
    default_qualities = QPS  # QP, descending = quality ascending
    min_side = 16
    even = True

    def __init__(
        self,
        frame_shape: Sequence[int] = (64, 64),
        *,
        downscales: Sequence[float] = H264_DOWNSCALES,
        qualities: Sequence[int] | None = None,
        select: str = "psnr",
        preset: str = "ultrafast",
        cache_size: int = 64,
        known_models: Sequence[int] = (),
    ) -> None:
        if qualities is not None and not all(1 <= q <= 51 for q in qualities):
            raise ValueError(f"QPs {qualities!r} must be in 1..51 (0 is lossless, not in baseline)")
        self.preset = preset
        self.cache_size = int(cache_size)
        self._encoders: OrderedDict[tuple[int, int, int], list] = OrderedDict()
        self._decoder: VideoCodecContext | None = None
        super().__init__(
            frame_shape,
            downscales=downscales,
            qualities=qualities,
            select=select,
            known_models=known_models,
        )

    def _encoder(self, rung: Rung) -> list:
        key = (rung.width, rung.height, int(rung.quality or 0))
        if key in self._encoders:
            self._encoders.move_to_end(key)
        else:
            opts = {
                "preset": self.preset,
                "tune": "zerolatency",
                "profile": "baseline",
                "qp": str(key[2]),
                "g": "1",
            }
            self._encoders[key] = [_open_encoder(rung.width, rung.height, 10.0, opts), 0]
            while len(self._encoders) > self.cache_size:
                self._encoders.popitem(last=False)
        return self._encoders[key]

    def _encode_image(self, image: np.ndarray, rung: Rung) -> bytes:
        if image.shape[:2] != (rung.height, rung.width):  # odd frame sizes: pad to even
            image = cv2.resize(image, (rung.width, rung.height), interpolation=cv2.INTER_AREA)
        slot = self._encoder(rung)
        ctx, pts = slot
        slot[1] += 1
        data = b"".join(bytes(p) for p in ctx.encode(_rgb_to_video_frame(image, pts)))
        payload, _, has_idr = pack_nals(data)
        if not has_idr:
            raise RuntimeError("libx264 with gop=1 returned a non-IDR frame")
        return payload

    def _decode_image(self, payload: bytes, rung: Rung) -> np.ndarray | None:
        if self._decoder is None:
            self._decoder = _new_decoder()
        try:
            return _decode_rgb(self._decoder, payload)
        except FFmpegError:
            self._decoder = None  # start clean for the next packet
            raise

    def _format_overhead(self, payload: bytes) -> int:
        return pack_nals(_START + payload)[1]

    def reset(self) -> None:
        # Intra frames carry no stream state; the encoder cache is only a cache.
        self._decoder = None


class H264Codec(PacketCodec):
    """Inter-frame H.264: stateful on both ends, CBR with VBV, intra refresh."""

    name = "h264"
    kind = "image"
    codec_id = CodecId.H264
    stateful = True

    def __init__(
        self,
        frame_shape: Sequence[int] = (64, 64),
        *,
        fps: float = 10.0,
        bitrate_bps: int = 8000,
        downscales: Sequence[float] = H264_DOWNSCALES,
        preset: str = "ultrafast",
        keyint: int = 30,
        intra_refresh: bool = True,
        reopen_ratio: float = 1.5,
        vbv_frames: float = 2.0,
        qp: int | None = None,
        known_models: Sequence[int] = (),
    ) -> None:
        super().__init__(frame_shape, known_models)
        if not fps > 0:
            raise ValueError(f"fps={fps!r} must be > 0")
        if bitrate_bps < 1000:
            raise ValueError(f"bitrate_bps={bitrate_bps!r}: libx264 counts in kbit/s, need >= 1000")
        if keyint < 1:
            raise ValueError(f"keyint={keyint!r} must be >= 1")
        if reopen_ratio < 1:
            raise ValueError(f"reopen_ratio={reopen_ratio!r} must be >= 1")
        self.fps = float(fps)
        self.bitrate_bps = int(bitrate_bps)
        self.downscales = tuple(float(d) for d in (downscales or DEFAULT_DOWNSCALES))
        self.preset = preset
        self.keyint = int(keyint)
        self.intra_refresh = bool(intra_refresh)
        self.reopen_ratio = float(reopen_ratio)
        if vbv_frames <= 0:
            raise ValueError(f"vbv_frames={vbv_frames!r} must be > 0")
        self.vbv_frames = float(vbv_frames)
        if qp is not None and not 1 <= qp <= 51:
            raise ValueError(f"qp={qp!r} must be in 1..51 (or None for CBR)")
        self.qp = qp
        self._rungs = build_ladder(
            self._frame_shape, self.downscales, (None,), min_side=16, even=True
        )
        self.reset()

    def identity(self) -> str:
        return f"{super().identity()}/d{self.downscales}"

    def ladder(self) -> list[Rung]:
        return list(self._rungs)

    def budgets(self) -> range:
        return range(len(self._rungs))

    def reset(self) -> None:
        self._enc: VideoCodecContext | None = None
        self._enc_rung = len(self._rungs) - 1
        self._enc_bps = self.bitrate_bps
        self._pts = 0
        self._dec: VideoCodecContext | None = None
        self._dec_last: int | None = None
        self._dec_damaged = 0  # frames left until an intra refresh has swept the picture

    # ------------------------------------------------------------------ encode

    def _open(self, rung: int, bps: int) -> None:
        r = self._rungs[rung]
        opts = {
            "preset": self.preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "g": str(self.keyint),
        }
        if self.intra_refresh:
            opts["intra-refresh"] = "1"
        if self.qp is not None:
            opts["qp"] = str(self.qp)
        else:
            opts["maxrate"] = str(bps)
            opts["bufsize"] = str(max(1000, round(self.vbv_frames * bps / self.fps)))
        self._enc = _open_encoder(
            r.width, r.height, self.fps, opts, bit_rate=0 if self.qp is not None else bps
        )
        self._enc_rung, self._enc_bps, self._pts = rung, bps, 0

    def _bps_for(self, target_bytes: int) -> int:
        payload = max(1, max_payload_for(target_bytes))
        return max(1000, round(payload * 8 * self.fps / 1000) * 1000)

    def encode(
        self,
        frame: np.ndarray,
        *,
        budget: int | None = None,
        target_bytes: int | None = None,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedFrame:
        frame = check_frame(frame, self._frame_shape)
        self._check_knobs(budget, target_bytes)
        if target_bytes is not None and self.qp is not None:
            raise ValueError("h264 with a constant qp takes no target_bytes")
        rung = self._enc_rung if budget is None else budget
        bps = self._enc_bps if target_bytes is None else self._bps_for(target_bytes)
        ratio = max(bps, self._enc_bps) / min(bps, self._enc_bps)
        if self._enc is None or rung != self._enc_rung or ratio > self.reopen_ratio:
            self._open(rung, bps)
        elif bps != self._enc_bps:
            assert self._enc is not None
            self._enc.bit_rate = bps  # x264 follows lower rates within its VBV; keep the stream
        assert self._enc is not None
        r = self._rungs[rung]
        image = frame
        if (r.height, r.width) != frame.shape[:2]:
            image = cv2.resize(frame, (r.width, r.height), interpolation=cv2.INTER_AREA)
        data = b"".join(bytes(p) for p in self._enc.encode(_rgb_to_video_frame(image, self._pts)))
        self._pts += 1
        if not data:
            raise RuntimeError("libx264 (zerolatency) returned no packet for a frame")
        payload, overhead, idr = pack_nals(data)
        packet, header = self._pack(
            payload, budget=rung, frame_id=frame_id, stamp_ms=stamp_ms, keyframe=idr
        )
        return EncodedFrame(
            packet=packet,
            header=header,
            payload_bytes=len(payload),
            setting={**r.as_setting(), "bitrate_bps": self._enc_bps, "fps": self.fps},
            target_bytes=target_bytes,
            target_met=target_bytes is None or len(packet) <= target_bytes,
            format_overhead_bytes=overhead,
        )

    # ------------------------------------------------------------------ decode

    def decode(self, packet: bytes) -> DecodedFrame:
        header, payload = self._unpack(packet)
        if header.budget >= len(self._rungs):
            raise UndecodablePayload(f"rung {header.budget} not in this ladder")
        if not header.keyframe:
            if self._dec is None:
                raise MissingReference("inter frame before any keyframe: wait for the next IDR")
            if self._dec_last is not None and header.frame_id != (self._dec_last + 1) % 256:
                self._dec_damaged = self.keyint  # a reference is missing: concealed until refreshed
        else:
            self._dec = _new_decoder()
            self._dec_damaged = 0
        assert self._dec is not None
        try:
            small = _decode_rgb(self._dec, payload)
        except FFmpegError as err:
            if header.keyframe:
                self._dec = None
                raise UndecodablePayload(f"h264 keyframe does not decode: {err}") from err
            raise MissingReference(f"h264 inter frame does not decode: {err}") from err
        if small is None:
            raise MissingReference("h264 decoder gave no picture for this packet")
        self._dec_last = header.frame_id
        intact = self._dec_damaged == 0
        self._dec_damaged = max(0, self._dec_damaged - 1)
        h, w = self._frame_shape
        image = small
        if small.shape[:2] != (h, w):
            image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return DecodedFrame(
            header=header,
            image=image,
            setting=self._rungs[header.budget].as_setting(),
            intact=intact,
        )

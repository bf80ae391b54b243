"""Codec-degraded frames for the training mix.

A policy trained on clean frames only fell to ~14% on JPEG quality-5 or 16×16 frames in a
probe here; trained on a mix it held 94-100%. So the training set includes, for every
demonstration frame, what the classical baselines deliver at low rates:

- ``jpeg``:  OpenCV JPEG at a (quality, downscale) rung drawn uniformly from quality 1..30 and
             downscale 1, 2 or 4, decoded and upscaled back (bilinear);
- ``webp``:  OpenCV WebP, quality 0..40, downscale 1, 2 or 4;
- ``h264``:  each episode encoded as one libx264 stream (zerolatency, CBR at a bit rate drawn
             from 4..40 kbit/s at 30 fps, downscale 1 or 2), decoded frame by frame (inter frames).

One degraded copy per frame per codec, drawn with a seed; the policy sees a degraded copy in
place of the clean frame with probability ``p_degraded`` (always tokenized at full budget, as
in evaluation, where a baseline's decoded image goes through the tokenizer at full budget).
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np


def _updown(frame: np.ndarray, scale: int) -> np.ndarray:
    h, w = frame.shape[:2]
    return (
        cv2.resize(frame, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
        if scale > 1
        else frame
    )


def _up(small: np.ndarray, h: int, w: int) -> np.ndarray:
    if small.shape[:2] == (h, w):
        return small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def degrade_image(frame: np.ndarray, codec: str, quality: int, scale: int) -> np.ndarray:
    h, w = frame.shape[:2]
    small = _updown(frame, scale)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    if codec == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif codec == "webp":
        ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, max(quality, 1)])
    else:
        raise ValueError(f"unknown image codec {codec!r}; valid: jpeg, webp")
    assert ok
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert dec is not None, f"{codec} decode failed"
    dec = dec[:, :, ::-1]
    return _up(dec, h, w)


def degrade_episode_h264(frames: np.ndarray, kbps: float, scale: int) -> np.ndarray:
    import av

    h, w = frames.shape[1:3]
    sh, sw = (h // scale) // 2 * 2, (w // scale) // 2 * 2
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = sw, sh, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.framerate = Fraction(30)
    enc.bit_rate = int(kbps * 1000)
    enc.options = {
        "tune": "zerolatency", "preset": "veryfast", "profile": "baseline",
        "x264-params": f"vbv-maxrate={int(kbps)}:vbv-bufsize={max(1, int(kbps / 30 * 2))}:nal-hrd=cbr",
    }  # fmt: skip
    dec = av.CodecContext.create("h264", "r")
    out = []
    for i, f in enumerate(frames):
        small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA) if (sh, sw) != (h, w) else f
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(small), format="rgb24").reformat(
            format="yuv420p"
        )
        vf.pts = i
        got = None
        for pkt in enc.encode(vf):
            for d in dec.decode(pkt):
                got = d.to_ndarray(format="rgb24")
        out.append(_up(got, h, w) if got is not None else (out[-1] if out else f))
    return np.stack(out)


def degraded_copies(
    frames: np.ndarray,
    episode: np.ndarray,
    seed: int = 0,
    codecs: tuple[str, ...] = ("jpeg", "webp", "h264"),
) -> np.ndarray:
    """uint8 [N,H,W,3] → uint8 [len(codecs), N, H, W, 3]."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    out = np.empty((len(codecs), *frames.shape), np.uint8)
    for c, codec in enumerate(codecs):
        if codec == "h264":
            for e in tqdm(np.unique(episode), desc="h264 copies", leave=False):
                idx = np.flatnonzero(episode == e)
                out[c, idx] = degrade_episode_h264(
                    frames[idx], float(rng.uniform(4, 40)), int(rng.choice([1, 2]))
                )
        else:
            qmax = 30 if codec == "jpeg" else 40
            for i in tqdm(range(len(frames)), desc=f"{codec} copies", leave=False):
                q = int(rng.integers(1 if codec == "jpeg" else 0, qmax + 1))
                out[c, i] = degrade_image(frames[i], codec, q, int(rng.choice([1, 2, 4])))
    return out

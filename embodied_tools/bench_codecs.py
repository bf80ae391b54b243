"""Codec benchmark: sizes, target-size accuracy and encode/decode time per codec.

For every registered codec (or those named) and a few target packet sizes it
reports the median encode and decode time per frame, the mean packet size
against the target, how often the target was met, PSNR of the decoded image,
and the smallest packet the codec can make (over its whole ladder; for a
stateful codec, the median frame of a stream at its lowest rate).

Frames come from a ``.npy`` file of shape "n h w 3" uint8, or are synthetic
(a smooth gradient, sensor noise and a few coloured rectangles moving a
little each frame) until the sim dataset exists.

Examples::

    embodied bench codecs
    embodied bench codecs --codecs jpeg webp --targets 100 300 1000 --size 64
    embodied bench codecs --frames frames.npy --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence

import numpy as np

from embodied.codecs import (
    CodecUnavailable,
    UnknownCodecName,
    codec_names,
    codec_spec,
    make_codec,
)
from embodied.codecs.base import Codec
from embodied.metrics import psnr


def synthetic_frames(
    n: int = 10, shape: tuple[int, int] = (64, 64), seed: int = 0
) -> list[np.ndarray]:
    """Camera-like "h w 3" uint8 frames: gradient + noise + rectangles that drift."""
    h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w * 200 + 20, yy / h * 180 + 30, (xx + yy) / (h + w) * 100 + 80], axis=-1)
    frames = []
    for i in range(n):
        img = base.copy()
        dy, dx = i % 5, round(i * w / 64)
        img[int(h * 0.15) + dy : int(h * 0.45) + dy, int(w * 0.2) + dx : int(w * 0.45) + dx] = (
            220,
            40,
            40,
        )
        img[int(h * 0.6) : int(h * 0.8), max(0, int(w * 0.55) - dx) : int(w * 0.85) - dx] = (
            40,
            180,
            60,
        )
        img[int(h * 0.3) : int(h * 0.5), int(w * 0.7) : int(w * 0.8)] = (30, 30, 200)
        img += rng.normal(0.0, 3.0, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def smallest_packet(codec: Codec, frames: Sequence[np.ndarray]) -> int:
    """Median over frames of the smallest packet the codec can make."""
    if codec.stateful:
        codec.reset()
        sizes = [
            len(codec.encode(f, target_bytes=1, frame_id=i).packet) for i, f in enumerate(frames)
        ]
        codec.reset()
        return int(statistics.median(sizes[1:] or sizes))
    per_frame = [
        min(len(codec.encode(f, budget=b).packet) for b in codec.budgets()) for f in frames
    ]
    return int(statistics.median(per_frame))


def run_codec(codec: Codec, frames: Sequence[np.ndarray], target: int | None) -> dict[str, float]:
    """Encode then decode every frame in order at one target; timings in ms."""
    codec.reset()
    enc_ms, dec_ms, sizes, met, quality = [], [], [], 0, []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        enc = codec.encode(frame, target_bytes=target, frame_id=i, stamp_ms=100 * i)
        t1 = time.perf_counter()
        dec = codec.decode(enc.packet)
        t2 = time.perf_counter()
        enc_ms.append(1e3 * (t1 - t0))
        dec_ms.append(1e3 * (t2 - t1))
        sizes.append(len(enc.packet))
        met += enc.target_met
        if dec.image is not None:
            quality.append(psnr(dec.image, frame))
    return {
        "target_bytes": -1 if target is None else target,
        "mean_bytes": float(np.mean(sizes)),
        "met": met / len(frames),
        "encode_ms": statistics.median(enc_ms),
        "decode_ms": statistics.median(dec_ms),
        "psnr": float(np.mean(quality)) if quality else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="embodied bench codecs", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--codecs", nargs="*", default=None, help=f"default: all ({', '.join(codec_names())})"
    )
    parser.add_argument("--targets", nargs="*", type=int, default=[60, 150, 400, 1000])
    parser.add_argument("--frames", default=None, help=".npy file, shape (n, h, w, 3) uint8")
    parser.add_argument("--n", type=int, default=20, help="synthetic frames (without --frames)")
    parser.add_argument("--size", type=int, default=64, help="synthetic frame side")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    if args.frames:
        arr = np.load(args.frames, allow_pickle=False)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            parser.error(f"{args.frames}: need (n, h, w, 3) uint8, got {arr.shape} {arr.dtype}")
        frames = list(arr)
    else:
        frames = synthetic_frames(args.n, (args.size, args.size))
    shape = frames[0].shape[:2]
    names = args.codecs or codec_names()
    for name in names:
        try:
            codec_spec(name)  # unknown names fail before any work, with the valid list
        except UnknownCodecName as err:
            parser.error(str(err))

    results: dict[str, dict] = {}
    print(f"{len(frames)} frames {shape[0]}x{shape[1]}; times are medians per frame")
    print(
        f"{'codec':<11} {'target':>6} {'bytes':>7} {'met':>5} {'enc ms':>7} {'dec ms':>7} {'PSNR':>5}"
    )
    for name in names:
        try:
            codec = make_codec(name, frame_shape=shape)
        except CodecUnavailable as err:
            print(f"{name:<11} skipped: {err}")
            continue
        rows = [run_codec(codec, frames, t) for t in args.targets]
        results[name] = {"smallest_bytes": smallest_packet(codec, frames), "runs": rows}
        for r in rows:
            print(
                f"{name:<11} {r['target_bytes']:>6} {r['mean_bytes']:>7.0f} {r['met']:>5.0%} "
                f"{r['encode_ms']:>7.2f} {r['decode_ms']:>7.2f} {r['psnr']:>5.1f}"
            )
        print(f"{name:<11} smallest packet: {results[name]['smallest_bytes']} B")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frames": len(frames), "shape": list(shape), "codecs": results}, f, indent=2)
    return 0

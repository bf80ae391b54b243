"""``embodied rd``: rate–distortion report, learned tokens against the pixel codecs.

On held-out frames it measures, for every operating point, the bits per frame
that cross the link (packet bytes × 8, header included; header and payload
reported apart, and the inner format's own headers inside the payload too)
and the PSNR of what a person would see after decoding:

* tokens, for each tokenizer directory given (reconstruction-only and
  task-oriented ones side by side), at budgets 1, 2, 4, 8, 16, 32, 64 (up to
  each model's ``k_max``), reconstructed by the tokenizer's decoder ONNX;
* JPEG, WebP, H.264 intra and raw over every rung of their (quality,
  downscale) ladders from the codec registry, and H.264 inter as a stream per
  clip (constant QP × downscale, decoded in order); with ``--targets`` the
  ladder codecs instead search each frame for a list of packet sizes (their
  own per-frame envelope, slower);
* each pixel codec's curve is the upper envelope of its points (the best
  PSNR at or below each rate): the baselines get their best chance.

PSNR is not the point of task-oriented tokens (they spend bits on what the
policy needs), which is exactly why both kinds belong on one plot: the gap
between their PSNR curves and their success curves is the argument.

Outputs in ``--out`` (default ``results/rd/``): ``rd.json`` (every point, the
envelopes, the frame source), ``rd.csv`` (one row per point), ``rd.png``
(PSNR vs bits/frame, log x) and ``rd_grid.png`` (reconstructions of one frame
at several token budgets beside each codec's envelope point nearest in bits).

Held-out frames: episodes whose index (in ``sim.dataset.iter_episodes``
order, successful ones) is ``val_every - 1`` mod ``val_every``, the split that
``policies.data.split_by_episode`` holds out of training; from each chosen
episode a clip of consecutive frames (``--stride`` apart) from its middle.

Examples::

    embodied rd --data data/demos
    embodied rd --data data/demos --tokenizers embodied/models/tok-recon embodied/models/tok-task
    embodied rd --frames frames.npy --codecs jpeg webp --budgets 1 4 16 --out results/rd-quick
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embodied.metrics import PSNR_CAP, psnr
from embodied.modelfiles import shipped, shipped_names

if TYPE_CHECKING:
    from embodied.codecs.h264 import H264Codec
    from embodied.codecs.ladder import LadderCodec

DEFAULT_BUDGETS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_CODECS = ("jpeg", "webp", "h264-intra", "h264", "raw")
H264_QPS = (51, 45, 39, 33, 27, 21)


# ----------------------------------------------------------------------------- frames


def held_out_clips(
    data: str | Path,
    *,
    episodes: int = 10,
    clip_len: int = 20,
    stride: int = 2,
    val_every: int = 10,
    tasks: list[str] | None = None,
) -> list[np.ndarray]:
    """Clips of consecutive frames from held-out episodes, spread over tasks.

    Only the clip of each held-out episode is kept in memory, then ``episodes``
    of them are picked evenly across the held-out list (ordered by task), so a
    small run still sees several tasks.
    """
    from sim.dataset import iter_episodes  # lazy: sim is not on the robot-side path

    clips: list[np.ndarray] = []
    for e, ep in enumerate(iter_episodes(Path(data), tasks=tasks)):
        if e % val_every != val_every - 1:
            continue
        span = (clip_len - 1) * stride + 1
        start = max(0, (len(ep.frames) - span) // 2)
        clips.append(np.ascontiguousarray(ep.frames[start : start + span : stride]))
    if not clips:
        raise SystemExit(f"{data}: no held-out episodes (every {val_every}th successful one)")
    pick = np.unique(np.linspace(0, len(clips) - 1, min(episodes, len(clips))).round().astype(int))
    return [clips[i] for i in pick]


def npy_clips(path: str | Path, clip_len: int) -> list[np.ndarray]:
    """Frames from an .npy "n h w 3" uint8, in order, cut into clips of ``clip_len``."""
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise SystemExit(f"{path}: need (n, h, w, 3) uint8, got {arr.dtype} {arr.shape}")
    return [arr[i : i + clip_len] for i in range(0, len(arr), clip_len)]


# ----------------------------------------------------------------------------- points


@dataclass
class Point:
    """One operating point: means over every frame coded with one setting."""

    curve: str
    kind: str  # "tokens" or "image"
    setting: dict[str, Any]
    bits: float  # mean packet bits per frame, header included
    header_bits: float
    payload_bits: float
    format_overhead_bits: float  # inner format's own headers inside the payload
    psnr: float
    n_frames: int
    on_envelope: bool = False

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.setting.items())


@dataclass
class Accumulator:
    """Sums per-frame numbers of one setting; keeps the sample frame's reconstruction."""

    bits: list[int] = field(default_factory=list)
    header: list[int] = field(default_factory=list)
    fmt: list[int] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    sample: np.ndarray | None = None

    def add(self, packet_bytes: int, payload_bytes: int, fmt_bytes: int, q: float) -> None:
        self.bits.append(8 * packet_bytes)
        self.header.append(8 * (packet_bytes - payload_bytes))
        self.fmt.append(8 * fmt_bytes)
        self.quality.append(q)

    def point(self, curve: str, kind: str, setting: dict[str, Any]) -> Point:
        bits, header = float(np.mean(self.bits)), float(np.mean(self.header))
        return Point(
            curve=curve,
            kind=kind,
            setting=dict(setting),
            bits=bits,
            header_bits=header,
            payload_bits=bits - header,
            format_overhead_bits=float(np.mean(self.fmt)),
            psnr=float(np.mean(self.quality)),
            n_frames=len(self.bits),
        )


Samples = dict[tuple[str, str], np.ndarray]  # (curve, point label) → sample reconstruction


def token_points(
    model_dir: str | Path,
    clips: Sequence[np.ndarray],
    budgets: Iterable[int],
    sample: tuple[int, int],
    *,
    coder: str = "arithmetic",
    tick: Callable[[], object] = lambda: None,
) -> tuple[str, list[Point], Samples]:
    """Every budget of one tokenizer: real packets (checked to decode), decoder ONNX images."""
    from embodied.codecs.tokens import TokenCodec

    frames = np.concatenate(clips)
    sample_at = sum(len(c) for c in clips[: sample[0]]) + sample[1]
    codec = TokenCodec(model_dir, frame_shape=frames.shape[1:3], coder=coder)
    curve = f"tokens:{codec.spec.name}"
    ids = np.concatenate([codec.tokenize(frames[i : i + 64])[1] for i in range(0, len(frames), 64)])
    points, samples = [], {}
    for k in sorted({min(int(b), codec.k_max) for b in budgets}):
        acc = Accumulator()
        recon = np.concatenate(
            [codec.reconstruct(ids[i : i + 64], k) for i in range(0, len(ids), 64)]
        )
        for i, frame in enumerate(frames):
            enc = codec.encode_ids(ids[i], k, frame_id=i)
            if not np.array_equal(codec.decode_ids(enc.packet), ids[i, :k]):
                raise RuntimeError(f"{curve}: k={k} packet does not decode to its tokens")
            img = recon[i]
            if img.shape != frame.shape:
                import cv2

                img = cv2.resize(img, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            acc.add(len(enc.packet), enc.payload_bytes, 0, psnr(img, frame))
            if i == sample_at:
                acc.sample = img
        p = acc.point(curve, "tokens", {"k": k, "objective": codec.spec.objective, "coder": coder})
        points.append(p)
        samples[(curve, p.label)] = acc.sample
        tick()
    return curve, points, samples


def ladder_codec(name: str, **kwargs: Any) -> LadderCodec | H264Codec:
    """``make_codec(name)`` narrowed to the pixel codecs that expose a ladder of rungs."""
    from embodied.codecs import make_codec
    from embodied.codecs.h264 import H264Codec
    from embodied.codecs.ladder import LadderCodec

    codec = make_codec(name, **kwargs)
    if not isinstance(codec, LadderCodec | H264Codec):
        raise ValueError(f"codec {name!r} has no ladder of rungs (expected a pixel codec)")
    return codec


def ladder_points(
    name: str,
    clips: Sequence[np.ndarray],
    sample: tuple[int, int],
    *,
    targets: Sequence[int] | None = None,
    tick: Callable[[], object] = lambda: None,
) -> tuple[list[Point], Samples]:
    """A stateless ladder codec over every rung (or per-frame searches for ``targets``)."""
    codec = ladder_codec(name, frame_shape=clips[0].shape[1:3])
    knobs: list[dict[str, int]] = (
        [{"budget": r.index} for r in codec.ladder()]
        if targets is None
        else [{"target_bytes": int(t)} for t in targets]
    )
    points, samples = [], {}
    for knob in knobs:
        acc = Accumulator()
        setting: dict[str, Any] = {}
        for c, clip in enumerate(clips):
            for j, frame in enumerate(clip):
                enc = codec.encode(frame, **knob)
                dec = codec.decode(enc.packet)
                assert dec.image is not None
                acc.add(
                    len(enc.packet),
                    enc.payload_bytes,
                    enc.format_overhead_bytes,
                    psnr(dec.image, frame),
                )
                setting = dict(enc.setting) if "budget" in knob else dict(knob)
                if (c, j) == sample:
                    acc.sample = dec.image
        p = acc.point(name, "image", setting)
        points.append(p)
        samples[(name, p.label)] = acc.sample
        tick()
    return points, samples


def h264_inter_points(
    clips: Sequence[np.ndarray],
    sample: tuple[int, int],
    *,
    qps: Sequence[int] = H264_QPS,
    tick: Callable[[], object] = lambda: None,
) -> tuple[list[Point], Samples]:
    """H.264 inter streams: one per clip, constant QP × downscale rung, decoded in order."""
    from embodied.codecs.h264 import H264Codec

    shape = clips[0].shape[1:3]
    points, samples = [], {}
    for qp in qps:
        codec = H264Codec(frame_shape=shape, qp=qp)
        for rung in codec.ladder():
            acc = Accumulator()
            for c, clip in enumerate(clips):
                codec.reset()
                for j, frame in enumerate(clip):
                    enc = codec.encode(frame, budget=rung.index, frame_id=j, stamp_ms=100 * j)
                    dec = codec.decode(enc.packet)
                    assert dec.image is not None
                    acc.add(
                        len(enc.packet),
                        enc.payload_bytes,
                        enc.format_overhead_bytes,
                        psnr(dec.image, frame),
                    )
                    if (c, j) == sample:
                        acc.sample = dec.image
            p = acc.point("h264", "image", {"qp": qp, "downscale": rung.downscale})
            points.append(p)
            samples[("h264", p.label)] = acc.sample
            tick()
    return points, samples


def mark_envelope(points: Sequence[Point]) -> list[Point]:
    """Flag and return the upper envelope: points no cheaper point beats in PSNR."""
    best = -math.inf
    env = []
    for p in sorted(points, key=lambda p: (p.bits, -p.psnr)):
        if p.psnr > best:
            p.on_envelope = True
            env.append(p)
            best = p.psnr
    return env


# ----------------------------------------------------------------------------- outputs


def write_csv(path: Path, points: Sequence[Point]) -> None:
    cols = [
        "curve",
        "kind",
        "setting",
        "bits",
        "header_bits",
        "payload_bits",
        "format_overhead_bits",
        "psnr",
        "n_frames",
        "on_envelope",
    ]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for p in points:
            row = asdict(p)
            row["setting"] = json.dumps(p.setting, sort_keys=True)
            w.writerow([row[c] for c in cols])


def plot(path: Path, curves: dict[str, list[Point]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for name, pts in curves.items():
        if pts and pts[0].kind == "tokens":
            pts = sorted(pts, key=lambda p: p.bits)
            (line,) = ax.plot(
                [p.bits for p in pts],
                [p.psnr for p in pts],
                "o-",
                lw=2,
                label=f"{name} ({pts[0].setting['objective']})",
            )
            for p in pts:
                ax.annotate(
                    f"k={p.setting['k']}",
                    (p.bits, p.psnr),
                    textcoords="offset points",
                    xytext=(3, 4),
                    fontsize=7,
                    color=line.get_color(),
                )
        else:
            env = sorted((p for p in pts if p.on_envelope), key=lambda p: p.bits)
            (line,) = ax.plot(
                [p.bits for p in env],
                [p.psnr for p in env],
                "s--",
                ms=3,
                lw=1.5,
                label=f"{name} (envelope)",
            )
            ax.scatter(
                [p.bits for p in pts],
                [p.psnr for p in pts],
                s=4,
                alpha=0.25,
                color=line.get_color(),
            )
    finite = [p.psnr for pts in curves.values() for p in pts if p.psnr < PSNR_CAP]
    if finite:  # a lossless point (raw at full size) would flatten everything else
        ax.set_ylim(min(finite) - 1, max(finite) + 2)
    ax.set_xscale("log")
    ax.set_xlabel("bits per frame (packet bytes × 8, header included)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def grid(
    path: Path,
    original: np.ndarray,
    curves: dict[str, list[Point]],
    samples: Samples,
    grid_budgets: Sequence[int],
) -> None:
    """Rows: token budgets; columns: original, each tokenizer, each codec nearest in bits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tok = [n for n, pts in curves.items() if pts and pts[0].kind == "tokens"]
    img = [n for n, pts in curves.items() if pts and pts[0].kind == "image"]
    if not tok:
        return
    ref = {p.setting["k"]: p for p in curves[tok[0]]}
    rows = [k for k in grid_budgets if k in ref] or sorted(ref)[:4]
    cols = 1 + len(tok) + len(img)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(1.6 * cols, 1.75 * len(rows)), dpi=120, squeeze=False
    )
    for r, k in enumerate(rows):
        cells: list[tuple[str, np.ndarray | None]] = [("original", original)]
        for n in tok:
            p = next((q for q in curves[n] if q.setting["k"] == k), None)
            cells.append(
                (
                    f"{n.split(':', 1)[1]} k={k}\n{p.bits:.0f} b {p.psnr:.1f} dB",
                    samples.get((n, p.label)),
                )
                if p
                else (n, None)
            )
        for n in img:
            env = [p for p in curves[n] if p.on_envelope] or curves[n]
            p = min(env, key=lambda q: abs(math.log(q.bits / ref[k].bits)))
            cells.append((f"{n}\n{p.bits:.0f} b {p.psnr:.1f} dB", samples.get((n, p.label))))
        for c, (label, im) in enumerate(cells):
            ax = axes[r][c]
            ax.axis("off")
            if im is not None:
                ax.imshow(im, interpolation="nearest")
            ax.set_title(label, fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def default_tokenizers() -> list[Path]:
    """Every shipped tokenizer directory (``embodied/models/*/tokenizer.json``)."""
    return [shipped(n) for n in shipped_names("tokenizer")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="embodied rd",
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").split("\n")[-5:]),
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--data", default="data/demos", help="demo dataset dir (default data/demos)")
    src.add_argument("--frames", default=None, help=".npy (n, h, w, 3) uint8, in time order")
    parser.add_argument(
        "--tokenizers",
        nargs="*",
        default=None,
        metavar="DIR",
        help="tokenizer model dirs (default: every embodied/models/*/ with tokenizer.json)",
    )
    parser.add_argument("--budgets", nargs="*", type=int, default=list(DEFAULT_BUDGETS))
    parser.add_argument(
        "--codecs",
        nargs="*",
        default=list(DEFAULT_CODECS),
        help=f"pixel codecs (default {' '.join(DEFAULT_CODECS)})",
    )
    parser.add_argument(
        "--targets",
        nargs="*",
        type=int,
        default=None,
        help="packet sizes for a per-frame search instead of every ladder rung",
    )
    parser.add_argument(
        "--qps", nargs="*", type=int, default=list(H264_QPS), help="H.264 inter QPs"
    )
    parser.add_argument("--episodes", type=int, default=10, help="held-out episodes (clips)")
    parser.add_argument("--clip-len", type=int, default=20, help="frames per clip")
    parser.add_argument("--stride", type=int, default=2, help="steps between clip frames")
    parser.add_argument("--val-every", type=int, default=10, help="held-out split (as training)")
    parser.add_argument("--coder", default="arithmetic", choices=["arithmetic", "constriction"])
    parser.add_argument("--grid-budgets", nargs="*", type=int, default=[1, 4, 16, 64])
    parser.add_argument("--out", default="results/rd", help="output dir (default results/rd)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from tqdm import tqdm

    if args.frames:
        clips, source = npy_clips(args.frames, args.clip_len), {"frames": args.frames}
    else:
        if not Path(args.data).is_dir():
            parser.error(
                f"--data {args.data}: no such directory (run `embodied collect`, or give --frames)"
            )
        clips = held_out_clips(
            args.data,
            episodes=args.episodes,
            clip_len=args.clip_len,
            stride=args.stride,
            val_every=args.val_every,
        )
        source = {
            "data": args.data,
            "episodes": len(clips),
            "clip_len": args.clip_len,
            "stride": args.stride,
            "val_every": args.val_every,
        }
    n_frames = sum(len(c) for c in clips)
    sample = (0, len(clips[0]) // 2)  # mid-clip: H.264 inter is past its first frame
    tokenizers = (
        [Path(t) for t in args.tokenizers] if args.tokenizers is not None else default_tokenizers()
    )
    if not tokenizers:
        print(
            "embodied rd: no tokenizer directories (none shipped under embodied/models/); pixel codecs only",
            file=sys.stderr,
        )

    ladder_sizes = {}
    for name in args.codecs:
        if name == "h264":
            continue
        c = ladder_codec(name, frame_shape=clips[0].shape[1:3])
        ladder_sizes[name] = len(c.ladder()) if args.targets is None else len(args.targets)
    total = len(tokenizers) * len(args.budgets) + sum(ladder_sizes.values())
    if "h264" in args.codecs:
        total += len(args.qps) * len(ladder_codec("h264", frame_shape=clips[0].shape[1:3]).ladder())
    bar = tqdm(
        total=total, desc=f"rd ({n_frames} frames)", unit="pt", disable=args.no_progress or None
    )

    curves: dict[str, list[Point]] = {}
    samples: Samples = {}
    for t in tokenizers:
        bar.set_postfix_str(t.name)
        name, pts, smp = token_points(
            t, clips, args.budgets, sample, coder=args.coder, tick=lambda: bar.update()
        )
        bar.update(len(args.budgets) - len(pts))  # budgets above k_max collapse into one point
        curves[name] = pts
        samples.update(smp)
    for name in args.codecs:
        bar.set_postfix_str(name)
        if name == "h264":
            pts, smp = h264_inter_points(clips, sample, qps=args.qps, tick=lambda: bar.update())
        else:
            pts, smp = ladder_points(
                name, clips, sample, targets=args.targets, tick=lambda: bar.update()
            )
        mark_envelope(pts)
        curves[name] = pts
        samples.update(smp)
    bar.close()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_points = [p for pts in curves.values() for p in pts]
    report = {
        "source": source,
        "n_frames": n_frames,
        "frame_shape": list(clips[0].shape[1:3]),
        "bits": "packet bytes x 8 per frame, header included (header_bits + payload_bits)",
        "psnr": f"mean over frames of per-frame PSNR (dB, capped at {PSNR_CAP})",
        "curves": {
            name: {
                "kind": pts[0].kind if pts else None,
                "points": [asdict(p) for p in pts],
                "envelope": [
                    asdict(p)
                    for p in sorted(pts, key=lambda p: p.bits)
                    if p.on_envelope or p.kind == "tokens"
                ],
            }
            for name, pts in curves.items()
        },
    }
    (out / "rd.json").write_text(json.dumps(report, indent=1))
    write_csv(out / "rd.csv", all_points)
    plot(
        out / "rd.png",
        curves,
        f"rate-distortion on {n_frames} held-out frames {clips[0].shape[1]}x{clips[0].shape[2]}",
    )
    grid(out / "rd_grid.png", clips[sample[0]][sample[1]], curves, samples, args.grid_budgets)

    print(f"{n_frames} frames; bits/frame = packet bytes x 8 (header included); PSNR dB")
    for name, pts in curves.items():
        shown = pts if pts and pts[0].kind == "tokens" else [p for p in pts if p.on_envelope]
        line = "  ".join(f"{p.bits:.0f}b/{p.psnr:.1f}" for p in sorted(shown, key=lambda p: p.bits))
        print(f"{name:<22} {line}")
    print(f"wrote {out}/rd.json, rd.csv, rd.png, rd_grid.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

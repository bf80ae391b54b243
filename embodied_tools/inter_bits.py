"""``embodied inter-bits``: payload and header bits per frame, intra against inter, per task.

Renders scripted-expert episodes (held-out seeds) of the one-object suite and of the cluttered
suite (its front camera; moving tasks: the conveyor and the moving pad) and codes every episode's
frames twice with the shipped tokenizer: **intra** (every frame on its own, ``tokens``) and
**inter** (``tokens-inter``, each frame predicted from the one before, as on a link whose
acknowledgements come back within a frame; keyframe every ``--keyframe-interval`` frames). No
policy is involved: these are the bits a stream of those scenes costs, the one-object suite's
success at the same budgets is ``embodied eval`` (docs/interframe.md). The cluttered suite has no
tokenizer of its own yet, so the one-object suite's (64×64, trained on its scenes) codes the
front camera downscaled to 64×64: the bits are real, the tokens were not trained for that scene.

    embodied inter-bits --episodes 4 --out results/inter/bits

Writes ``bits.json`` / ``bits.csv``: per task and budget the mean payload and header bits per
frame of both codings and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embodied.modelfiles import MODELS_DIR

BUDGETS = (1, 4, 16, 64)
STATIC_ONE_OBJECT = ("drawer-open", "button-press-topdown", "door-open", "faucet-open")


def episode_frames(task: str, seed: int, frame_shape: tuple[int, int]) -> np.ndarray:
    """The expert's camera frames of one episode, ``[T, H, W, 3]`` at the tokenizer's input
    (the cluttered suite renders its front camera at 128×128: area-downscaled, as the
    tokenizer node brings a camera frame to the model's input)."""
    import cv2

    from sim.collect import rollout_expert

    cluttered = task.startswith("cluttered-")
    res = 128 if cluttered else frame_shape[0]
    frames = rollout_expert(task, seed, resolution=res, camera="front" if cluttered else "corner")
    h, w = frame_shape
    return np.stack([
        f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
        for f in frames["frames"]
    ])  # fmt: skip


def code_episode(codes: np.ndarray, tok: Any, prior: np.ndarray, k: int, interval: int):
    """(intra, inter) lists of (header bits, payload bits) per frame of one episode."""
    from embodied.interframe import InterTokenCodec
    from embodied.packet import bits

    snd = InterTokenCodec(tok, prior=prior, keyframe_interval=interval)
    intra, inter = [], []
    for i, c in enumerate(codes):
        a = bits(tok.encode_ids(tok.codes_to_ids(c[:k]), k, frame_id=i % 256).packet)
        intra.append((a.header_bits, a.payload_bits))
        b = bits(snd.encode_codes(c, k, i, 0).packet)
        inter.append((b.header_bits, b.payload_bits))
        snd.acknowledge(i)
    return intra, inter


def measure(tasks: Sequence[str], episodes: int, tokenizer: Path, interval: int) -> list[dict]:
    from embodied.codecs.tokens import TokenCodec
    from embodied.interframe import INTER_PRIOR_FILE, load_inter_prior
    from sim.suite import EVAL_SEED_BASE

    tok = TokenCodec(tokenizer)
    prior = load_inter_prior(tokenizer / INTER_PRIOR_FILE, tok.spec)
    rows = []
    for task in tasks:
        seqs = []
        for e in range(episodes):
            frames = episode_frames(task, EVAL_SEED_BASE + e, tok.frame_shape)
            seqs.append(tok.tokenize(frames)[0])
            print(f"inter-bits: {task} episode {e + 1}/{episodes}: {len(frames)} frames",
                  file=sys.stderr, flush=True)  # fmt: skip
        for k in BUDGETS:
            per = [code_episode(s, tok, prior, k, interval) for s in seqs]
            a = np.array([x for intra, _ in per for x in intra], float)
            b = np.array([x for _, inter in per for x in inter], float)
            rows.append({
                "task": task, "suite": "cluttered" if task.startswith("cluttered-") else "one-object",
                "moving": _moving(task), "k": k, "frames": len(a), "episodes": episodes,
                "intra_header_bits": a[:, 0].mean(), "intra_payload_bits": a[:, 1].mean(),
                "inter_header_bits": b[:, 0].mean(), "inter_payload_bits": b[:, 1].mean(),
                "payload_ratio": a[:, 1].mean() / max(b[:, 1].mean(), 1e-9),
            })  # fmt: skip
    return rows


def _moving(task: str) -> bool:
    if not task.startswith("cluttered-"):
        return False
    from sim.cluttered.spec import get_task

    return bool(get_task(task).moving)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="embodied inter-bits", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--tasks", default=None, help="comma list (default: 4 one-object tasks and "
                    "every cluttered task)")  # fmt: skip
    ap.add_argument("--episodes", type=int, default=4, help="held-out seeds per task")
    ap.add_argument("--tokenizer", type=Path, default=MODELS_DIR / "tok-task")
    ap.add_argument("--keyframe-interval", type=int, default=90)
    ap.add_argument("--out", type=Path, default=Path("results/inter/bits"))
    a = ap.parse_args(argv)
    if a.episodes < 1:
        ap.error("--episodes must be >= 1")
    if a.tasks:
        tasks = [t for t in a.tasks.split(",") if t]
    else:
        from sim.cluttered.spec import task_names

        tasks = [*STATIC_ONE_OBJECT, *task_names()]
    rows = measure(tasks, a.episodes, a.tokenizer, a.keyframe_interval)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "bits.json").write_text(json.dumps({"rows": rows, "args": {
        "tasks": tasks, "episodes": a.episodes, "tokenizer": str(a.tokenizer),
        "keyframe_interval": a.keyframe_interval}}, indent=1))  # fmt: skip
    with (a.out / "bits.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{'task':<24} {'k':>3}  payload intra → inter (×)   header intra → inter")
    for r in rows:
        print(f"{r['task']:<24} {r['k']:>3}  {r['intra_payload_bits']:7.1f} → "
              f"{r['inter_payload_bits']:6.1f} ({r['payload_ratio']:.1f}×)   "
              f"{r['intra_header_bits']:.0f} → {r['inter_header_bits']:.1f}")  # fmt: skip
    print(f"wrote {a.out / 'bits.json'}, {a.out / 'bits.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

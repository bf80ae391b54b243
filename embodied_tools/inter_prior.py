"""``embodied inter-prior``: learn the inter-frame prior of a tokenizer from demonstrations.

Tokenizes every episode's consecutive camera frames with the tokenizer and counts how each
token symbol follows the same symbol of the frame before (``embodied.interframe``); writes
``tokenizer_inter_prior.npy`` into the tokenizer's directory (shipped with it), and the packet
sizes of keyframes and predicted frames per budget, measured on held-out episodes (every
fifth), as ``tokenizer_inter_sizes.json`` (``embodied link-sim --size-table``).

    embodied collect --episodes 10 --out data/inter_demos
    embodied inter-prior --tokenizer embodied/models/tok-task --data data/inter_demos
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="embodied inter-prior", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--tokenizer", required=True, help="tokenizer directory")
    ap.add_argument("--data", default="data/inter_demos", help="dataset root (embodied collect)")
    ap.add_argument("--alpha", type=float, default=2.0, help="pseudo-counts toward the intra prior")
    ap.add_argument("--out", default=None, help="default: <tokenizer>/tokenizer_inter_prior.npy")
    ap.add_argument("--sizes-only", action="store_true",
                    help="keep the tokenizer's shipped prior; measure the size table on every "
                         "episode of --data (collect them with other seeds than the prior's)")  # fmt: skip
    a = ap.parse_args(argv)
    from embodied.codecs.tokens import TokenCodec
    from embodied.interframe import (
        INTER_PRIOR_FILE,
        InterTokenCodec,
        learn_inter_prior,
    )
    from sim.dataset import iter_episodes

    tok = TokenCodec(a.tokenizer)
    seqs, held, frames = [], [], 0
    for i, ep in enumerate(iter_episodes(Path(a.data))):
        codes, _ = tok.tokenize(np.asarray(ep.frames, np.uint8))
        (held if a.sizes_only or i % 5 == 4 else seqs).append(codes)
        frames += len(codes)
    if a.sizes_only:
        if not held:
            ap.error(f"{a.data}: no episodes (run `embodied collect --out {a.data}` first)")
        codec = InterTokenCodec(tok)
        _write_sizes(codec, held, Path(a.tokenizer))
        return 0
    if not seqs or not held:
        ap.error(f"{a.data}: fewer than 5 episodes (run `embodied collect --out {a.data}` first)")
    prior = learn_inter_prior(seqs, tuple(tok.spec.levels), tok.prior, alpha=a.alpha)
    same = np.mean([np.mean(s[1:] == s[:-1]) for s in seqs])
    out = Path(a.out) if a.out else Path(a.tokenizer) / INTER_PRIOR_FILE
    np.save(out, prior.astype(np.float32))
    info = {"episodes": len(seqs), "held_out_episodes": len(held), "frames": frames,
            "alpha": a.alpha, "symbols_unchanged_fraction": float(same), "data": str(a.data)}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    codec = InterTokenCodec(tok, prior=prior.astype(np.float32).astype(np.float64))
    print(f"inter prior from {len(seqs)} episodes ({frames} frames): {same:.1%} of token symbols "
          f"unchanged from the frame before -> {out}")  # fmt: skip
    _write_sizes(codec, held, out.parent)
    return 0


def _write_sizes(codec, held, where: Path) -> None:
    from embodied.interframe import INTER_SIZES_FILE, inter_size_table

    table = inter_size_table(codec, held, [1, 2, 4, 8, 16, 32, 64])
    sizes_path = where / INTER_SIZES_FILE
    sizes_path.write_text(json.dumps(table, indent=2) + "\n")
    print("packet bytes per budget, keyframe / predicted: " + ", ".join(
        f"k={k} {b:.1f}/{ib:.1f}"
        for k, b, ib in zip(table["budget"], table["bytes"], table["inter_bytes"], strict=True)
    ) + f" ({table['n_sequences']} episodes, {table['n_frames']} frames) -> {sizes_path}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())

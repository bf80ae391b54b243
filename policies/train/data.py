"""Loading demonstrations for training, and their codec-degraded copies (cached beside them)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from policies.data import DemoArrays, load_demos
from policies.train.common import CHUNK


def load_data(args: argparse.Namespace, max_episodes: int | None = None) -> DemoArrays:
    t = time.time()
    d = load_demos(args.data, chunk=CHUNK, max_episodes=max_episodes or args.max_episodes)
    print(f"  loaded {len(d)} frames from {len(d.seeds)} episodes in {time.time() - t:.1f} s")
    return d


def degraded_frames(d: DemoArrays, args: argparse.Namespace) -> np.ndarray:
    from policies.augment import degraded_copies

    cache = Path(args.data) / "degraded_v1.npy"
    if cache.exists():
        arr = np.load(cache, mmap_mode="r")
        if arr.shape[1:] == d.frames.shape:
            return np.asarray(arr)
    arr = degraded_copies(d.frames, d.episode, seed=0)
    np.save(cache, arr)
    return arr

"""Render-time benchmark: MuJoCo's default scene against the project's fast settings."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path


def measure(task: str, resolution: int, fast: bool, frames: int, warmup: int = 10) -> list[float]:
    from sim.env import MetaWorldTaskEnv

    env = MetaWorldTaskEnv(task, resolution=resolution, fast_render=fast)
    try:
        env.reset(seed=0)
        for _ in range(warmup):
            env.render()
        times = []
        for i in range(frames):
            if i % 10 == 0:  # move the arm so that frames differ
                env.step(env.action_space.sample())
            t = time.perf_counter()
            env.render()
            times.append((time.perf_counter() - t) * 1000)
        return times
    finally:
        env.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embodied bench render", description=__doc__)
    p.add_argument("--task", default="drawer-open")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    out = {}
    for label, fast in (("default", False), ("fast", True)):
        ts = measure(a.task, a.resolution, fast, a.frames)
        q = statistics.quantiles(ts, n=100)
        out[label] = {"median_ms": statistics.median(ts), "p95_ms": q[94], "frames": len(ts)}
        print(f"{label:8s} {a.resolution}x{a.resolution} {a.task}: median {out[label]['median_ms']:.2f} ms,"
              f" p95 {q[94]:.2f} ms over {len(ts)} frames")  # fmt: skip
    ratio = out["default"]["median_ms"] / out["fast"]["median_ms"]
    print(f"speed-up {ratio:.1f}x")
    out["speedup"] = ratio
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0

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


def measure_cluttered(
    task: str, resolution: int, fast: bool, frames: int, warmup: int = 10
) -> dict[str, list[float]]:
    """Per-camera render times (ms) of a cluttered-suite task (``front`` and ``wrist``)."""
    from sim.cluttered.env import CAMERAS, ClutteredEnv

    env = ClutteredEnv(task, resolution=resolution, fast_render=fast)
    try:
        env.reset(seed=0)
        times: dict[str, list[float]] = {c: [] for c in CAMERAS}
        for c in CAMERAS:
            for _ in range(warmup):
                env.render_camera(c)
        for i in range(frames):
            if i % 10 == 0:  # move the arm (and the belt) so that frames differ
                env.step(env.action_space.sample())
            for c in CAMERAS:
                t = time.perf_counter()
                env.render_camera(c)
                times[c].append((time.perf_counter() - t) * 1000)
        return times
    finally:
        env.close()


def _cluttered_main(a: argparse.Namespace) -> int:
    out: dict = {"task": a.task, "resolution": a.resolution}
    for label, fast in (("default", False), ("fast", True)):
        per_cam = measure_cluttered(a.task, a.resolution, fast, a.frames)
        out[label] = {}
        for cam, ts in per_cam.items():
            q = statistics.quantiles(ts, n=100)
            out[label][cam] = {
                "median_ms": statistics.median(ts),
                "p95_ms": q[94],
                "frames": len(ts),
            }
            print(f"{label:8s} {a.resolution}x{a.resolution} {a.task} {cam:6s}: median "
                  f"{out[label][cam]['median_ms']:.2f} ms, p95 {q[94]:.2f} ms over {len(ts)} frames")  # fmt: skip
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embodied bench render", description=__doc__)
    p.add_argument("--task", default="drawer-open", help="a suite task, or a cluttered-* task")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    from sim.cluttered.spec import is_cluttered

    if is_cluttered(a.task):  # the cluttered suite: per camera (front, wrist)
        return _cluttered_main(a)
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

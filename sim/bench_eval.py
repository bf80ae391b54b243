"""Parallel evaluation speed-up: the same episodes on 1 worker and on N workers, in one run.

Two figures per run, both from the same episodes:

- **end to end**: from the call to the last episode, worker start-up included (spawning
  processes, importing MuJoCo and ONNX Runtime, building one environment per task in
  each worker): what a small sweep sees;
- **steady state**: episodes per second between the first result of every worker and the
  last result, i.e. with the fixed start-up cost taken out: what a long sweep (thousands
  of episodes, as the headline's 2,860) converges to.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path


def _jobs(episodes: int) -> list[tuple]:
    from sim.evaluate import MODELS_DIR, Point
    from sim.suite import TASKS, eval_seeds

    point = asdict(Point(codec="tokens", budget=4, tokenizer="tok-task"))
    kw = {"models_dir": str(MODELS_DIR), "instruction_split": "train", "control_hz": 30.0,
          "max_steps": None}  # fmt: skip
    return [(point, t, s, kw) for t in TASKS for s in eval_seeds(episodes)]


def _timed(jobs: list[tuple], workers: int, backend: str) -> dict:
    from sim.sweep import run_jobs

    t0 = time.perf_counter()
    done = [time.perf_counter() - t0 for _ in run_jobs(jobs, workers, backend)]
    n, w = len(done), min(workers, len(done))
    steady = (n - w) / (done[-1] - done[w - 1]) if n > w and done[-1] > done[w - 1] else None
    return {"seconds": done[-1], "eps_per_s": n / done[-1], "steady_eps_per_s": steady}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embodied bench eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--episodes", type=int, default=2, help="seeds per task")
    p.add_argument("--backend", choices=["process", "ray"], default="process")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.episodes < 1 or a.workers < 2:
        p.error("--episodes must be >= 1 and --workers >= 2")
    jobs = _jobs(a.episodes)
    one = _timed(jobs, 1, "process")
    many = _timed(jobs, a.workers, a.backend)
    out = {"episodes": len(jobs), "workers": a.workers, "backend": a.backend, "one": one,
           "many": many, "speedup": one["seconds"] / many["seconds"]}  # fmt: skip
    if one["steady_eps_per_s"] and many["steady_eps_per_s"]:
        out["steady_speedup"] = many["steady_eps_per_s"] / one["steady_eps_per_s"]
    print(f"{len(jobs)} episodes, 1 worker vs {a.workers} {a.backend} workers:")
    print(f"  end to end (start-up included): {one['eps_per_s']:.2f} -> "
          f"{many['eps_per_s']:.2f} ep/s, speed-up {out['speedup']:.2f}x")  # fmt: skip
    if "steady_speedup" in out:
        print(f"  steady state (start-up excluded): {one['steady_eps_per_s']:.2f} -> "
              f"{many['steady_eps_per_s']:.2f} ep/s, speed-up {out['steady_speedup']:.2f}x")  # fmt: skip
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0

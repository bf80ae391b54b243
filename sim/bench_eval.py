"""Parallel evaluation speed-up: the same episodes on 1 worker and on N workers, in one run."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _run(workers: int, argv: list[str], backend: str) -> float:
    from sim.sweep import main as eval_main

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        eval_main([*argv, "--workers", str(workers), "--backend", backend, "--out", d])
        return time.perf_counter() - t


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embodied bench eval", description=__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--episodes", type=int, default=2, help="seeds per task")
    p.add_argument("--backend", choices=["process", "ray"], default="process")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    sweep = ["--tasks", "all", "--episodes", str(a.episodes), "--codecs", "tokens",
             "--tokenizers", "tok-task", "--budgets", "4", "--no-references"]  # fmt: skip
    n = 11 * a.episodes
    t1 = _run(1, sweep, "process")
    tn = _run(a.workers, sweep, a.backend)
    out = {"episodes": n, "seconds_1": t1, f"seconds_{a.workers}": tn,
           "eps_per_s_1": n / t1, f"eps_per_s_{a.workers}": n / tn, "speedup": t1 / tn,
           "backend": a.backend}  # fmt: skip
    print(f"{n} episodes: 1 worker {n / t1:.2f} ep/s, {a.workers} {a.backend} workers "
          f"{n / tn:.2f} ep/s: speed-up {t1 / tn:.2f}x (process start-up included)")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0

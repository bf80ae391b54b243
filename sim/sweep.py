"""``embodied eval``: task success versus bits per frame, tokens against pixel codecs.

Examples::

    embodied eval                                   # the default sweep with the shipped models
    embodied eval --codecs tokens,jpeg --budgets 1,4,16 --targets 300,700 --episodes 5
    embodied eval --traces cellular,outages --controllers deadline,aimd,fixed:8
    embodied eval --backend ray --workers 2         # same sweep on a (local) Ray cluster

Every (rate point, task, seed) episode is one job; results stream into
``OUT/episodes.jsonl`` so an interrupted sweep resumes where it stopped. The summary
(``summary.json``, ``summary.csv``, ``success_vs_rate.png``) gives per point the success rate
with its Wilson 95% interval, mean bits per frame (packet bytes × 8, header included), kbit/s
at the control rate, latency, deadline misses; per codec the bits at which success reaches
95% of the uncompressed policy; and the BD-rate of tokens against each codec on the success
curves (Bjøntegaard with PCHIP over the curves' upper envelopes).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from embodied.metrics import Rate, vision_gain
from embodied.pipeline import PROPRIO_PAIRINGS, FateCounts
from sim.evaluate import (
    MODELS_DIR,
    TOKEN_CODECS,
    Point,
    fates_of,
    run_episode,
    sweep_job,
)
from sim.suite import INSTRUCTION_SPLITS

DEFAULT_BUDGETS = (1, 2, 4, 8, 16, 64)
DEFAULT_TARGETS = {  # packet bytes per frame, header included
    "jpeg": (650, 800, 1000),
    "webp": (60, 100, 160, 300),
    "h264": (16, 32, 64, 128),
    "h264-intra": (60, 100, 160, 300),
    "raw": (56, 200, 776),
}
PIXEL_CODECS = tuple(DEFAULT_TARGETS)


def _ints(s: str) -> list[int]:
    try:
        out = [int(x) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from e
    return out


def _floats(s: str) -> list[float]:
    try:
        out = [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None
    if not out or any(x < 0 for x in out):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {s!r}")
    return out


def _losses(spec: str) -> list[dict]:
    """``--loss 0,1,5,burst`` → Point keywords per variant."""
    out: list[dict] = []
    for x in (v.strip() for v in spec.split(",") if v.strip()):
        if x == "burst":
            out.append({"burst": True})
            continue
        try:
            pct = float(x)
        except ValueError:
            raise ValueError(f"--loss: {x!r} is neither a percentage nor 'burst'") from None
        if not 0 <= pct < 100:
            raise ValueError(f"--loss: {pct} must be in [0, 100)")
        out.append({"loss_pct": pct})
    return out or [{}]


def build_points(a: argparse.Namespace) -> list[Point]:
    """Every rate point of the sweep, each with the ``--proprio`` pairing; in trace mode, once
    per ``--robots`` count sharing the trace's bottleneck."""
    pairing = getattr(a, "proprio", "capture")
    points = [replace(p, proprio=pairing) for p in _build_points(a)]
    robots = getattr(a, "robots", [1]) or [1]
    if robots != [1]:
        if not a.traces:
            raise ValueError("--robots shares a trace's bottleneck: give --traces")
        if any(n < 1 for n in robots):
            raise ValueError(f"--robots: counts must be >= 1, got {robots}")
        from embodied.control.registry import get_spec

        for p in points:
            if p.controller is not None and get_spec(p.controller).needs_world:
                raise ValueError(f"--robots: controller {p.controller!r} sees the future of a "
                                 "link it owns alone")  # fmt: skip
        points = [replace(p, robots=n) for n in robots for p in points]
    return points


def shared_rounds(
    n: int, tasks: Sequence[str], episodes_per_task: int, seed_start: int
) -> list[list[tuple[str, int]]]:
    """The rounds of a shared-link point: N robots each, every (task, seed) once. Slot i runs
    task ``i mod T`` on its ``i div T``-th held-out seed; there are enough rounds for
    ``episodes_per_task`` per task, the last filled with further held-out seeds (a round
    always has N robots on the link)."""
    from sim.suite import eval_seeds

    t = len(tasks)
    rounds = math.ceil(t * episodes_per_task / n)
    seeds = eval_seeds(math.ceil(rounds * n / t), seed_start)
    slots = [(tasks[i % t], seeds[i // t]) for i in range(rounds * n)]
    return [slots[r * n : (r + 1) * n] for r in range(rounds)]


def _build_points(a: argparse.Namespace) -> list[Point]:
    from embodied.codecs import codec_names

    points: list[Point] = []
    tokenizers = [t for t in a.tokenizers.split(",") if t]
    codecs = [c for c in a.codecs.split(",") if c]
    valid = codec_names()
    for c in codecs:
        if c not in valid:
            raise ValueError(f"unknown codec {c!r}; valid codecs: {', '.join(valid)}")
    if a.traces:
        from embodied.control.registry import available
        from embodied.link.catalog import entry

        for tr in a.traces.split(","):
            entry(tr)  # refuses unknown names with the list
            for ctl in a.controllers.split(","):
                name, _, fixed = ctl.partition(":")
                if name not in available():
                    raise ValueError(
                        f"unknown controller {name!r}; valid: {', '.join(available())}"
                    )
                for c in codecs:
                    for loss in _losses(a.loss):
                        tok = tokenizers[0]
                        if name == "fixed":
                            k = int(fixed or 8)
                            points.append(Point(c, budget=k, tokenizer=tok, trace=tr,
                                                controller=None, overhead_bytes=a.overhead,
                                                **loss))  # fmt: skip
                        else:
                            points.append(Point(c, tokenizer=tok, trace=tr, controller=name,
                                                max_budget=a.max_budget,
                                                overhead_bytes=a.overhead, **loss))  # fmt: skip
        return points
    if a.references:
        for tok in tokenizers:
            points.append(Point("clean", tokenizer=tok))
        points.append(Point("blind", tokenizer=tokenizers[0]))
    for c in codecs:
        if c in TOKEN_CODECS:
            if not a.budgets:
                raise ValueError(f"empty --budgets: nothing to evaluate for {c}")
            for tok in tokenizers:
                points += [Point(c, budget=k, tokenizer=tok, delay_ms=d, interval=n)
                           for n in a.intervals for d in a.delays for k in a.budgets]  # fmt: skip
        else:
            targets = a.targets or list(DEFAULT_TARGETS.get(c, ()))
            if not targets:
                raise ValueError(f"no --targets for codec {c!r}")
            points += [Point(c, target_bytes=t, tokenizer=tokenizers[0]) for t in targets]
    return points


def _single_thread_env() -> None:
    # One thread per episode runner: the pool is the parallelism. LP_NUM_THREADS keeps Mesa's
    # llvmpipe (the CPU GL renderer behind MUJOCO_GL=egl) from spreading a 64x64 frame over
    # every core, which made one worker look like more than one.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LP_NUM_THREADS"):
        os.environ[var] = "1"


def _init_worker() -> None:
    _single_thread_env()


def run_jobs(jobs: list[tuple], workers: int, backend: str) -> Iterable[dict]:
    """Episode records of ``jobs`` (:func:`sim.evaluate.sweep_job`'s: single episodes or
    shared-link rounds), as they finish; the bar counts episodes."""
    from tqdm import tqdm

    total = sum(len(j[1]) if len(j) == 3 else 1 for j in jobs)
    bar = tqdm(total=total, desc="eval", unit="ep", file=sys.stderr, dynamic_ncols=True)

    def done(rs: list[dict]) -> Iterable[dict]:
        bar.update(len(rs))
        yield from rs

    try:
        if backend == "ray":
            import ray

            if not ray.is_initialized():
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            remote = ray.remote(num_cpus=1)(sweep_job)
            pending = [remote.remote(j) for j in jobs]
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                for rs in ray.get(finished):
                    yield from done(rs)
        elif workers <= 1:
            _single_thread_env()  # before the first GL context of this process
            for j in jobs:
                yield from done(sweep_job(j))
        else:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for rs in pool.imap_unordered(sweep_job, jobs, chunksize=1):
                    yield from done(rs)
    finally:
        bar.close()


# --------------------------------------------------------------------------- analysis
def summarize(episodes: list[dict], points: list[Point], control_hz: float) -> dict[str, Any]:
    by_point: dict[str, list[dict]] = defaultdict(list)
    for e in episodes:
        by_point[e["point"]].append(e)
    rows = []
    for p in points:
        eps = by_point.get(p.key(), [])
        if not eps:
            continue
        rate = Rate(sum(e["success"] for e in eps), len(eps))
        lo, hi = rate.ci95
        fates = FateCounts()
        for e in eps:
            fates += fates_of(e)
        per_task: dict[str, list[bool]] = defaultdict(list)
        for e in eps:
            per_task[e["task"]].append(e["success"])
        # per-episode means over the frames sent; an episode that sent nothing (a controller
        # that skipped every frame) has no bits per frame and is left out of the mean
        sent = [e for e in eps if e["frames_sent"] > 0] or eps
        bits = float(np.mean([e["bits_mean"] for e in sent]))
        rows.append({
            "point": p.key(), "codec": p.codec, "tokenizer": p.tokenizer, "policy": p.policy_name,
            "budget": p.budget, "target_bytes": p.target_bytes, "trace": p.trace,
            "controller": p.controller, "delay_ms": p.delay_ms, "interval": p.interval,
            "proprio": p.proprio,
            "episodes": len(eps),
            "success": rate.value,
            "ci95_low": lo, "ci95_high": hi, "bits_per_frame": bits,
            "header_bits_per_frame": float(np.mean([e["header_bits_mean"] for e in sent])),
            "wire_bits_per_frame": float(np.mean([e["wire_bits_mean"] for e in sent])),
            "kbps": bits * control_hz / 1000,
            "latency_mean_ms": float(np.nanmean([e["latency_mean_ms"] for e in eps])),
            "latency_p95_ms": float(np.nanmean([e["latency_p95_ms"] for e in eps])),
            "deadline_miss_pct": 100 * fates.miss_rate, "frames_captured": fates.captured,
            "skipped_pct": 100 * fates.skipped / max(fates.captured, 1),
            "budget_mean": float(np.mean([e["budget_mean"] for e in eps])),
            "held_steps_mean": float(np.mean([e["held_steps"] for e in eps])),
            "per_task": {t: float(np.mean(v)) for t, v in sorted(per_task.items())},
        })  # fmt: skip
    out: dict[str, Any] = {"points": rows, "control_hz": control_hz}
    out.update(curve_analysis(rows))
    return out


def _family(r: dict) -> str:
    fam = f"{r['codec']}[{r['tokenizer']}]" if r["codec"] in TOKEN_CODECS else r["codec"]
    fam += f"+{r['delay_ms']:g}ms" if r.get("delay_ms") else ""  # one curve per delay
    fam += f"/{r['interval']}" if r.get("interval", 1) > 1 else ""  # and interval
    return fam + (f"^{r['proprio']}" if r.get("proprio", "capture") != "capture" else "")


def envelope(rates: Sequence[float], succ: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Upper envelope: sorted by rate, success made non-decreasing (a codec can always spend
    fewer bits than it is allowed, so more bits never need do worse)."""
    order = np.argsort(rates)
    r = np.asarray(rates, float)[order]
    s = np.maximum.accumulate(np.asarray(succ, float)[order])
    return r, s


def bits_to_reach(r: np.ndarray, s: np.ndarray, level: float) -> float | None:
    """Bits per frame where the envelope first reaches ``level`` (log-rate interpolation)."""
    idx = np.flatnonzero(s >= level)
    if len(idx) == 0:
        return None
    i = int(idx[0])
    if i == 0:
        return float(r[0])
    lr0, lr1 = math.log(r[i - 1]), math.log(r[i])
    f = (level - s[i - 1]) / max(s[i] - s[i - 1], 1e-9)
    return float(math.exp(lr0 + f * (lr1 - lr0)))


def bd_rate(anchor: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> dict:
    """Bjøntegaard delta rate of ``test`` against ``anchor`` on success curves (PCHIP).

    Only the strictly increasing part of each envelope is used (BD needs a monotone
    curve); where the success ranges do not overlap the BD-rate is undefined and the
    reason is returned instead of a number."""
    import warnings

    import bjontegaard as bd

    def strict(r, s):
        keep = np.concatenate([[True], np.diff(s) > 1e-9])
        return r[keep], s[keep]

    ra, sa = strict(*anchor)
    rt, st = strict(*test)
    if len(ra) < 2 or len(rt) < 2:
        return {"bd_rate_pct": None, "why": "fewer than 2 distinct success levels on a curve"}
    lo, hi = max(sa.min(), st.min()), min(sa.max(), st.max())
    if hi <= lo:
        out: dict[str, Any] = {
            "bd_rate_pct": None, "why": f"success ranges do not overlap ({lo:.2f} >= {hi:.2f})"
        }  # fmt: skip
        if st.min() >= sa.max():
            # the test curve's cheapest point already beats the anchor's best: at the anchor's
            # best success the test needs at most its cheapest rate, a bound on the BD-rate
            out["bound_pct"] = float(100 * (rt[0] / ra[np.argmax(sa)] - 1))
            out["why"] += (f"; the test's cheapest point ({rt[0]:.0f} bits, {st[0]:.0%}) beats the "
                           f"anchor's best ({ra[np.argmax(sa)]:.0f} bits, {sa.max():.0%})")  # fmt: skip
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = bd.bd_rate(ra, sa, rt, st, method="pchip", require_matching_points=False)
        except Exception as e:
            return {"bd_rate_pct": None, "why": str(e)}
    value = v[0] if isinstance(v, tuple) else v  # bd_rate returns a float unless asked for more
    return {"bd_rate_pct": float(value), "overlap": [float(lo), float(hi)]}


def curve_analysis(rows: list[dict]) -> dict[str, Any]:
    ideal = [r for r in rows if r["trace"] is None]
    refs = {r["point"]: r for r in ideal if r["codec"] in ("clean", "blind")}
    blind = next((r["success"] for r in ideal if r["codec"] == "blind"), None)
    clean = {r["tokenizer"]: r["success"] for r in ideal if r["codec"] == "clean"}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    fam_tok: dict[str, str] = {}
    for fam in sorted({_family(r) for r in ideal if r["codec"] not in ("clean", "blind")}):
        pts = [r for r in ideal if _family(r) == fam]
        curves[fam] = envelope([r["bits_per_frame"] for r in pts], [r["success"] for r in pts])
        fam_tok[fam] = pts[0]["tokenizer"]
    reach, gain = {}, {}
    for fam, (r, s) in curves.items():
        c = clean.get(fam_tok[fam])
        if c is not None:
            reach[fam] = bits_to_reach(r, s, 0.95 * c)
            if blind is not None:
                lvl = blind + 0.9 * (c - blind)
                gain[fam] = {"bits_for_90pct_vision_gain": bits_to_reach(r, s, lvl)}
    for r in ideal:
        c = clean.get(r["tokenizer"])
        if c is not None and blind is not None:
            r["vision_gain"] = vision_gain(r["success"], blind, c)
    bdr = {}
    for fam in curves:
        if not fam.startswith("tokens"):
            continue
        for other in curves:
            if other.startswith("tokens"):
                continue
            bdr[f"{fam} vs {other}"] = bd_rate(curves[other], curves[fam])
    return {
        "references": {k: v["success"] for k, v in refs.items()},
        "bits_to_95pct_of_clean": reach,
        "vision_gain_90": gain,
        "bd_rate": bdr,
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["points"] if r["trace"] is None]
    if not rows:
        plot_traces(summary, path)
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    hz = summary["control_hz"]
    for fam in sorted({_family(r) for r in rows if r["codec"] not in ("clean", "blind")}):
        pts = sorted((r for r in rows if _family(r) == fam), key=lambda r: r["bits_per_frame"])
        x = [r["kbps"] for r in pts]
        y = [100 * r["success"] for r in pts]
        err = [[100 * (r["success"] - r["ci95_low"]) for r in pts],
               [100 * (r["ci95_high"] - r["success"]) for r in pts]]  # fmt: skip
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=fam)
    for r in rows:
        if r["codec"] == "clean":
            ax.axhline(100 * r["success"], ls="--", c="k", lw=1,
                       label=f"uncompressed [{r['tokenizer']}] {100 * r['success']:.0f}%")  # fmt: skip
        if r["codec"] == "blind":
            ax.axhline(100 * r["success"], ls=":", c="r", lw=1,
                       label=f"blind floor {100 * r['success']:.0f}%")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"kbit/s at {hz:g} frames/s (packet bytes × 8, header included)")
    ax.grid(True, which="both", alpha=0.3)
    _finish(fig, ax, path, "task success (%) with 95% CI", (-2, 102), "lower right",
            "Closed-loop success vs bit rate (held-out seeds)")  # fmt: skip


def _finish(fig, ax, path: Path, ylabel: str, ylim: tuple[float, float], legend: str,
            title: str) -> None:  # fmt: skip
    import matplotlib.pyplot as plt

    ax.set_ylabel(ylabel)
    ax.set_ylim(*ylim)
    ax.legend(fontsize=8, loc=legend)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _controller_label(r: dict) -> str:
    how = r["controller"] or f"fixed k={r['budget']}"
    return how if r["codec"] == "tokens" else f"{r['codec']}, {how}"  # tokens-inter named


def plot_traces(summary: dict, path: Path) -> None:
    """Trace mode: success per (trace, controller) with 95% CI, deadline misses written above."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["points"] if r["trace"] is not None]
    traces = list(dict.fromkeys(r["trace"] for r in rows))
    labels = list(dict.fromkeys(_controller_label(r) for r in rows))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(traces) * max(1, len(labels)) / 2), 5))
    for j, lab in enumerate(labels):
        for i, tr in enumerate(traces):
            r = next((r for r in rows if r["trace"] == tr and _controller_label(r) == lab), None)
            if r is None:
                continue
            x = i + (j - (len(labels) - 1) / 2) * width
            y = 100 * r["success"]
            err = [[max(y - 100 * r["ci95_low"], 0.0)], [max(100 * r["ci95_high"] - y, 0.0)]]
            ax.bar(x, y, width, yerr=err, capsize=3, color=f"C{j}", label=lab if i == 0 else None)
            miss = r["deadline_miss_pct"]
            ax.text(x, min(100 * r["ci95_high"] + 1.5, 101), f"{miss:.0f}%", ha="center",
                    fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(traces)), traces)
    ax.grid(True, axis="y", alpha=0.3)
    _finish(fig, ax, path, "task success (%) with 95% CI; deadline misses above", (0, 108),
            "lower left",
            "Closed loop on bandwidth traces: success per controller (held-out seeds)")  # fmt: skip


def format_table(summary: dict) -> str:
    lines = [f"{'point':44s} {'n':>4s} {'success [95% CI]':>20s} {'bits/frame':>10s} "
             f"{'hdr':>5s} {'kbit/s':>8s} {'lat ms':>7s} {'miss%':>6s} {'skip%':>6s}"]  # fmt: skip
    for r in summary["points"]:
        ci = f"{100 * r['success']:5.1f} [{100 * r['ci95_low']:3.0f},{100 * r['ci95_high']:3.0f}]"
        lines.append(f"{r['point'][:44]:44s} {r['episodes']:4d} {ci:>20s} {r['bits_per_frame']:10.0f} "
                     f"{r['header_bits_per_frame']:5.0f} {r['kbps']:8.2f} {r['latency_mean_ms']:7.1f} "
                     f"{r['deadline_miss_pct']:6.1f} {r['skipped_pct']:6.1f}")  # fmt: skip
    if summary.get("bits_to_95pct_of_clean"):
        lines.append("bits/frame to reach 95% of uncompressed success:")
        for k, v in summary["bits_to_95pct_of_clean"].items():
            lines.append(f"  {k:30s} {'not reached' if v is None else f'{v:.0f}'}")
    if summary.get("bd_rate"):
        lines.append("BD-rate on success curves (negative = fewer bits for the same success):")
        for k, v in summary["bd_rate"].items():
            if v["bd_rate_pct"] is not None:
                val = f"{v['bd_rate_pct']:+.1f}%"
            elif v.get("bound_pct") is not None:
                val = f"<= {v['bound_pct']:+.1f}% (bound: {v['why']})"
            else:
                val = "n/a: " + v["why"]
            lines.append(f"  {k:40s} {val}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="embodied eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--tasks", default="all")
    p.add_argument("--episodes", type=int, default=10, help="held-out seeds per task and point")
    p.add_argument("--seed-start", type=int, default=0)
    p.add_argument("--codecs", default="tokens,jpeg,webp,h264")
    p.add_argument("--tokenizers", default="tok-task,tok-recon")
    p.add_argument("--budgets", type=_ints, default=list(DEFAULT_BUDGETS))
    p.add_argument("--targets", type=_ints, default=None, help="pixel codecs: packet bytes")
    p.add_argument("--no-references", dest="references", action="store_false",
                   help="skip the clean (uncompressed) and blind reference points")  # fmt: skip
    p.add_argument("--traces", default=None, help="comma list of shipped traces (trace mode)")
    p.add_argument("--controllers", default="deadline,aimd,fixed:4,fixed:16")
    p.add_argument("--overhead", type=int, default=8,
                   help="trace mode: transport bytes per packet (8: compact radio framing, as "
                        "`embodied link-sim`; 28: UDP/IPv4)")  # fmt: skip
    p.add_argument("--robots", type=_ints, default=[1],
                   help="trace mode: robot counts sharing each trace's bottleneck, e.g. 1,4,16 "
                   "(capacity and queue x N, one controller per robot, rounds of N episodes)")  # fmt: skip
    p.add_argument("--max-budget", type=int, default=None,
                   help="trace mode: the controllers' budget cap (a live setting)")  # fmt: skip
    p.add_argument("--link-warmup", type=float, default=2.0,
                   help="trace mode: seconds the camera streams before each episode starts "
                        "(controllers begin warm, as on a running robot; 0: cold)")  # fmt: skip
    p.add_argument("--loss", default="0",
                   help="trace mode: packet loss variants, e.g. 0,1,5,burst (%% random loss, or "
                        "Gilbert-Elliott bursts)")  # fmt: skip
    p.add_argument("--instructions", choices=list(INSTRUCTION_SPLITS), default="train",
                   help="phrasings: the training ones, the held-out ones, or novel sentences "
                   "(sim.suite.NOVEL_INSTRUCTIONS) read through the shipped sentence encoder")  # fmt: skip
    p.add_argument("--delays", type=_floats, default=[0.0],
                   help="ideal link: one-way delays (ms) added to the token points, e.g. "
                   "0,200,400 (success vs added latency)")  # fmt: skip
    p.add_argument("--intervals", type=_ints, default=[1],
                   help="ideal link: send only every n-th frame of the token points, e.g. "
                   "1,4,16 (success vs send interval)")  # fmt: skip
    p.add_argument("--proprio", choices=list(PROPRIO_PAIRINGS), default="capture",
                   help="the robot state the policy reads beside a frame: its capture's (as "
                   "trained), or the latest (the policy runs beside the robot; only the image "
                   "crossed the link)")  # fmt: skip
    p.add_argument("--control-hz", type=float, default=30.0)
    p.add_argument("--models", default=str(MODELS_DIR))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--backend", choices=["process", "ray"], default="process")
    p.add_argument("--out", default="results/eval")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--view", action="store_true",
                   help="run ONE episode (the first point, task and seed) and show it in rerun "
                        "(`embodied view`'s options below)")  # fmt: skip
    from embodied_tools.view.cli import add_output_args

    add_output_args(p)
    return p


def view_episode(a: argparse.Namespace, points: list[Point], task: str, seed: int) -> int:
    """``embodied eval --view``: one closed-loop episode shown live in the view."""
    from embodied_tools.view.cli import open_view
    from embodied_tools.view.eval import EvalTap

    point = next((pt for pt in points if pt.codec not in ("clean", "blind")), points[0])
    out = open_view(a, f"eval-{task}-{seed}")
    shot = out.screenshot_later()
    print(f"eval --view: {point.key()} on {task}, seed {seed}", flush=True)
    r = run_episode(point, task, seed, models_dir=a.models, instruction_split=a.instructions,
                    control_hz=a.control_hz, max_steps=a.max_steps, link_warmup_s=a.link_warmup,
                    observer=EvalTap(out.view))  # fmt: skip
    print(
        f"eval --view: {'success' if r.success else 'failure'} after {r.steps} steps, "
        f"{r.bits_mean:.0f} bits/frame, {r.deadline_misses}/{r.frames_captured} misses"
    )
    if shot is not None:
        shot.join()
    out.finish(hold=shot is None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    from sim.suite import eval_seeds, resolve_tasks

    try:
        if a.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {a.episodes}")
        if not 0 <= a.link_warmup <= 60:
            raise ValueError(f"--link-warmup must be in [0, 60] s, got {a.link_warmup}")
        tasks = resolve_tasks(a.tasks)
        points = build_points(a)
        if not points:
            raise ValueError("the sweep is empty")
        _check_models(Path(a.models), points)
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    if a.view:
        return view_episode(a, points, tasks[0].name, eval_seeds(1, a.seed_start)[0])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "episodes.jsonl"
    done: set[tuple[str, str, int]] = set()
    episodes: list[dict] = []
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                episodes.append(e)
                done.add((e["point"], e["task"], e["seed"]))
    kw = {"models_dir": a.models, "instruction_split": a.instructions, "control_hz": a.control_hz,
          "max_steps": a.max_steps, "link_warmup_s": a.link_warmup}  # fmt: skip
    seeds = eval_seeds(a.episodes, a.seed_start)
    jobs: list[tuple] = []
    wanted: set[tuple[str, str, int]] = set()
    for pt in points:
        if pt.robots == 1:
            ep = [(t.name, s) for t in tasks for s in seeds]
            wanted |= {(pt.key(), t, s) for t, s in ep}
            jobs += [(asdict(pt), t, s, kw) for t, s in ep if (pt.key(), t, s) not in done]
            continue
        for rnd in shared_rounds(pt.robots, [t.name for t in tasks], a.episodes, a.seed_start):
            keys = {(pt.key(), t, s) for t, s in rnd}
            wanted |= keys
            if not keys <= done:  # a round runs whole: its robots share one link
                jobs.append((asdict(pt), rnd, kw))
    n_jobs = sum(len(j[1]) if len(j) == 3 else 1 for j in jobs)
    total = len(wanted)
    print(f"eval: {len(points)} points x {len(tasks)} tasks x {len(seeds)} held-out seeds "
          f"(shared links: rounds of N robots) = {total} episodes; {total - n_jobs} on disk, "
          f"{n_jobs} to run on {a.workers} {a.backend} worker(s) -> {out}")  # fmt: skip
    t0 = time.time()
    with log.open("a") as f:
        for r in run_jobs(jobs, a.workers, a.backend):
            f.write(json.dumps(r) + "\n")
            f.flush()
            episodes.append(r)
    elapsed = time.time() - t0
    latest = {(e["point"], e["task"], e["seed"]): e for e in episodes}  # a round rerun: once
    episodes = [e for k, e in latest.items() if k in wanted]
    summary = summarize(episodes, points, a.control_hz)
    summary["meta"] = {"tasks": [t.name for t in tasks], "episodes_per_task": a.episodes,
                       "instructions": a.instructions, "models": a.models,
                       "link_warmup_s": a.link_warmup, "seconds": elapsed,
                       "episodes_run": n_jobs}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    with (out / "summary.csv").open("w", newline="") as f:
        keys = [k for k in summary["points"][0] if k != "per_task"]
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(summary["points"])
    plot(summary, out / "success_vs_rate.png")
    print(format_table(summary))
    if n_jobs:
        print(
            f"{n_jobs} episodes in {elapsed:.0f} s ({n_jobs / max(elapsed, 1e-9):.2f} episodes/s)"
        )
    print(
        f"results: {out / 'summary.json'}, {out / 'summary.csv'}; plot: {out / 'success_vs_rate.png'}"
    )
    return 0


def _check_models(models: Path, points: list[Point]) -> None:
    need = {pt.policy_name for pt in points} | {
        pt.tokenizer for pt in points if pt.codec != "blind"
    }
    for name in sorted(need):
        d = models / name
        want = "policy.json" if name.startswith("vla") else "tokenizer.json"
        if not (d / want).is_file():
            raise FileNotFoundError(
                f"model {name!r} not found: expected {d / want} (train with `embodied train all`, "
                f"or pass --models DIR)"
            )

"""``embodied success-curves``: measure the success curves the success-aware controller reads.

Three closed-loop sweeps with the tokenizer and policy (``embodied eval``, ideal link):
success against the budget (with the blind and uncompressed references), against an added
one-way delay at the smallest budget, and against the send interval (every n-th frame) at the
smallest budget; per task and over the suite. They are measured on evaluation seeds of their
own (``--seed-start``, default 500: seeds 1,000,500 on), so an evaluation of the controller on
the default held-out seeds (1,000,000 on) never sees the seeds its curves came from.

    embodied success-curves --episodes 4 --out embodied/models/vla-task/success_curves.json

Writes the curves JSON (``embodied.control.success.SuccessCurves``) and keeps each sweep's
``summary.json`` under ``--work`` (resumable: a sweep's finished episodes are not rerun).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from embodied.control.success import SUCCESS_CURVES_FILE, SuccessCurves, curves_file
from embodied.modelfiles import MODELS_DIR
from embodied.pipeline import PROPRIO_PAIRINGS

BUDGETS = (1, 2, 4, 16, 64)
DELAYS_MS = (0, 100, 200, 400, 800, 1600)
INTERVALS = (1, 2, 4, 8, 16, 32)
GRID_INTERVALS = (1, 2, 4, 8)  # --grid: every delay with each of these intervals


def _csv(xs: Sequence[float]) -> str:
    return ",".join(f"{x:g}" for x in xs)


def run(a: argparse.Namespace) -> SuccessCurves:
    import json

    from sim.sweep import main as eval_main

    common = ["--episodes", str(a.episodes), "--codecs", "tokens", "--tokenizers", a.tokenizer,
              "--seed-start", str(a.seed_start), "--workers", str(a.workers),
              "--models", str(a.models), "--tasks", a.tasks,
              "--proprio", a.proprio]  # fmt: skip
    if a.max_steps:
        common += ["--max-steps", str(a.max_steps)]
    runs = {
        "budgets": ["--budgets", _csv(BUDGETS)],
        "delays": ["--budgets", "1", "--delays", _csv(DELAYS_MS[1:]), "--no-references"],
        "intervals": ["--budgets", "1", "--intervals", _csv(INTERVALS[1:]), "--no-references"],
    }
    if a.grid:  # the (delay, interval) pairs the two one-axis sweeps leave out
        runs["grid"] = ["--budgets", "1", "--delays", _csv(DELAYS_MS[1:]),
                        "--intervals", _csv(GRID_INTERVALS[1:]), "--no-references"]  # fmt: skip
    summaries = {}
    for name, extra in runs.items():
        out = a.work / name
        print(f"success-curves: {name} sweep -> {out}", file=sys.stderr, flush=True)
        if eval_main([*common, *extra, "--out", str(out)]) != 0:
            raise SystemExit(f"success-curves: the {name} sweep failed")
        summaries[name] = json.loads((out / "summary.json").read_text())["points"]

    def find(rows: list[dict], **want: object) -> dict:
        for r in rows:
            if all(r.get(k) == v for k, v in want.items()):
                return r
        raise KeyError(f"no point with {want}")

    b = summaries["budgets"]
    tasks = sorted(find(b, codec="tokens", budget=BUDGETS[0])["per_task"])

    def row(r: dict) -> dict[str, float]:
        return {**{t: r["per_task"][t] for t in tasks}, "all": r["success"]}

    by_budget = [row(find(b, codec="tokens", budget=k, delay_ms=0.0, interval=1)) for k in BUDGETS]
    by_delay = [by_budget[0]] + [
        row(find(summaries["delays"], codec="tokens", budget=1, delay_ms=float(d)))
        for d in DELAYS_MS[1:]
    ]
    by_interval = [by_budget[0]] + [
        row(find(summaries["intervals"], codec="tokens", budget=1, interval=n))
        for n in INTERVALS[1:]
    ]
    blind = row(find(b, codec="blind"))
    clean = find(b, codec="clean")

    def table(rows: list[dict[str, float]]) -> dict[str, tuple[float, ...]]:
        return {t: tuple(r[t] for r in rows) for t in [*tasks, "all"]}

    episodes = {name: sum(r["episodes"] for r in rows) for name, rows in summaries.items()}
    grid: dict[str, tuple[tuple[float, ...], ...]] = {}
    if a.grid:
        ni = {n: INTERVALS.index(n) for n in GRID_INTERVALS}
        rows_by_delay = [[by_interval[ni[n]] for n in GRID_INTERVALS]]  # delay 0: the axis
        for i, d in enumerate(DELAYS_MS[1:], start=1):
            rows_by_delay.append([by_delay[i]] + [
                row(find(summaries["grid"], codec="tokens", budget=1, delay_ms=float(d),
                         interval=n))
                for n in GRID_INTERVALS[1:]
            ])  # fmt: skip
        grid = {t: tuple(tuple(c[t] for c in r) for r in rows_by_delay) for t in [*tasks, "all"]}
    return SuccessCurves(
        budgets=BUDGETS, success=table(by_budget),
        delays_ms=tuple(float(d) for d in DELAYS_MS), success_delay=table(by_delay),
        intervals=INTERVALS, success_interval=table(by_interval), blind=blind,
        meta={"tokenizer": a.tokenizer, "policy": find(b, codec="tokens")["policy"],
              "episodes_per_task_per_point": a.episodes, "seed_start": a.seed_start,
              "episodes": episodes, "uncompressed": clean["success"], "proprio": a.proprio,
              "command": " ".join(["embodied success-curves", *a.argv])},
        grid_delays_ms=tuple(float(d) for d in DELAYS_MS) if grid else (),
        grid_intervals=GRID_INTERVALS if grid else (), success_grid=grid,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="embodied success-curves", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--tokenizer", default="tok-task")
    ap.add_argument("--models", type=Path, default=MODELS_DIR)
    ap.add_argument("--episodes", type=int, default=4, help="per task and point")
    ap.add_argument("--seed-start", type=int, default=500)
    ap.add_argument("--tasks", default="all", help="comma list of tasks (default: the suite)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="cut episodes short (a smoke run; curves of cut episodes are not the "
                    "task's)")  # fmt: skip
    ap.add_argument("--proprio", choices=list(PROPRIO_PAIRINGS), default="capture",
                    help="the state the policy reads beside a frame (embodied eval --proprio); "
                    "latest writes success_curves.latest.json")  # fmt: skip
    ap.add_argument("--grid", action="store_true",
                    help="also measure every (delay, interval) pair at the smallest budget "
                    f"(intervals {_csv(GRID_INTERVALS)}): the controller then reads their "
                    "interaction instead of multiplying the one-axis shares")  # fmt: skip
    ap.add_argument("--work", type=Path, default=Path("results/success_curves"))
    ap.add_argument("--out", type=Path, default=None,
                    help=f"default: <models>/<policy>/{SUCCESS_CURVES_FILE}")  # fmt: skip
    a = ap.parse_args(argv)
    a.argv = list(sys.argv[2:] if argv is None else argv)
    if a.episodes < 1:
        ap.error("--episodes must be >= 1")
    curves = run(a)
    out = a.out or a.models / str(curves.meta["policy"]) / curves_file(a.proprio)
    curves.save(out)
    s = curves
    print(f"wrote {out}")
    print("budget   " + " ".join(f"{k:>6}" for k in s.budgets))
    print("success  " + " ".join(f"{v:6.1%}" for v in s.success["all"]))
    print("delay ms " + " ".join(f"{d:>6g}" for d in s.delays_ms))
    print("success  " + " ".join(f"{v:6.1%}" for v in s.success_delay["all"]))
    print("interval " + " ".join(f"{n:>6}" for n in s.intervals))
    print("success  " + " ".join(f"{v:6.1%}" for v in s.success_interval["all"]))
    if s.success_grid:
        print("grid: delay ms x interval " + " ".join(f"{n:>6}" for n in s.grid_intervals))
        for d, r in zip(s.grid_delays_ms, s.success_grid["all"], strict=True):
            print(f"  {d:>6g}                 " + " ".join(f"{v:6.1%}" for v in r))
    print(f"blind {s.blind['all']:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``embodied cluttered``: the measurements that show what the cluttered suite is for.

Each writes JSON (and a PNG plot) under ``--out`` (default ``results/cluttered``)::

    embodied cluttered expert   # scripted-expert success per task on held-out seeds
    embodied cluttered delay    # success vs observation delay 0/50/100/200/400 ms
    embodied cluttered info     # success vs bits per coordinate of the target/goal position,
                                # and with every position but not which is the target
    embodied cluttered all      # the three above (the README figures), a few minutes

Episodes run state-only (no rendering: the experts read privileged state) over a spawn pool.
Success rates carry 95% Wilson intervals (``embodied.metrics.Rate``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embodied.metrics import Rate

DELAYS_MS = (0, 50, 100, 200, 400)
BITS = (2, 3, 4, 5, 6, 7, 8, 10)
STEP_MS = 12.5

_ENVS: dict[str, Any] = {}


def _job(args: tuple[str, int, str, Any]) -> dict[str, Any]:
    task, seed, cond, value = args
    from sim.cluttered.env import ClutteredEnv
    from sim.cluttered.expert import run_episode

    if task not in _ENVS:
        _ENVS[task] = ClutteredEnv(task, cameras=())
    env = _ENVS[task]
    kw: dict[str, Any] = {}
    if cond == "delay":
        kw["delay_steps"] = round(value / STEP_MS)
    elif cond == "bits":
        kw["bits"] = None if value is None else int(value)
    elif cond == "unknown-target":
        kw["know_target"] = False
    r = run_episode(env, seed, **kw)
    return {"task": task, "seed": seed, "cond": cond, "value": value, "success": r["success"],
            "steps": r["steps"], "heldout_combo": r["heldout_combo"]}  # fmt: skip


def _run(jobs: list, workers: int, desc: str) -> list[dict[str, Any]]:
    from sim.collect import run_jobs

    return list(run_jobs(_job, jobs, workers, desc))


def _rate(rs: list[dict[str, Any]]) -> dict[str, Any]:
    r = Rate(sum(bool(x["success"]) for x in rs), len(rs))
    return {"success": r.value, "ci95": list(r.ci95), "n": r.n, "successes": r.successes}


def _tasks(names: str) -> list[str]:
    from sim.cluttered.spec import TASKS, get_task

    return (
        list(TASKS)
        if names in ("all", "cluttered")
        else [get_task(n).name for n in names.split(",")]
    )


def expert(tasks: list[str], episodes: int, workers: int, out: Path) -> dict[str, Any]:
    from sim.suite import eval_seeds

    jobs = [(t, s, "clean", None) for t in tasks for s in eval_seeds(episodes)]
    t0 = time.time()
    res = _run(jobs, workers, "expert")
    by: dict[str, list] = defaultdict(list)
    for r in res:
        by[r["task"]].append(r)
    summary = {
        "what": "scripted-expert success on held-out seeds (95% Wilson intervals)",
        "seeds": f"eval_seeds({episodes})",
        "per_task": {
            t: {
                **_rate(v),
                "heldout_combos": _rate([x for x in v if x["heldout_combo"]]),
                "mean_steps": sum(x["steps"] for x in v) / len(v),
            }
            for t, v in sorted(by.items())
        },
        "seconds": time.time() - t0,
    }
    _write(out / "expert.json", summary)
    for t, s in summary["per_task"].items():
        print(f"  {t:26s} {Rate(s['successes'], s['n'])}")
    return summary


def curve(kind: str, tasks: list[str], episodes: int, workers: int, out: Path) -> dict[str, Any]:
    from sim.suite import eval_seeds

    seeds = eval_seeds(episodes, start=10_000)
    if kind == "delay":
        conds = [("delay", d) for d in DELAYS_MS]
    else:
        conds = [("bits", b) for b in BITS] + [("bits", None), ("unknown-target", None)]
    jobs = [(t, s, c, v) for t in tasks for c, v in conds for s in seeds]
    t0 = time.time()
    res = _run(jobs, workers, kind)
    by: dict[tuple, list] = defaultdict(list)
    for r in res:
        by[(r["task"], r["cond"], r["value"])].append(r)
    per_task: dict[str, Any] = {}
    for t in tasks:
        rows = []
        for c, v in conds:
            rows.append({"cond": c, "value": v, **_rate(by[(t, c, v)])})
        per_task[t] = rows
    summary: dict[str, Any] = {
        "seeds": f"eval_seeds({episodes}, start=10000)",
        "per_task": per_task,
    }
    if kind == "delay":
        summary["what"] = ("expert success vs observation delay: object and pad positions "
                           f"delayed by d ms (d / {STEP_MS} ms actions), hand position current")  # fmt: skip
    else:
        summary["what"] = (
            "expert success vs information: target and goal positions quantized to b bits per "
            "coordinate (x, y, z over [-0.5, 0.5] x [0.4, 1.0] x [0, 0.3] m: 5 coordinates, "
            "5b bits per observation); 'unknown-target': every position exact but not which "
            "object is the target nor which pad the goal (the expert guesses, seeded)"
        )
    summary["seconds"] = time.time() - t0
    _write(out / f"{kind}.json", summary)
    _plot(kind, summary, out / f"{kind}.png")
    for t, rows in per_task.items():
        cells = " ".join(
            f"{'?' if r['cond'] == 'unknown-target' else ('exact' if r['value'] is None else r['value'])}:"
            f"{100 * r['success']:.0f}%"
            for r in rows
        )
        print(f"  {t:26s} {cells}")
    return summary


def _write(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _plot(kind: str, summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for t, rows in summary["per_task"].items():
        pts = [r for r in rows if r["cond"] != "unknown-target" and r["value"] is not None]
        xs = [r["value"] for r in pts]
        ys = [100 * r["success"] for r in pts]
        lo = [max(0.0, 100 * (r["success"] - r["ci95"][0])) for r in pts]
        hi = [max(0.0, 100 * (r["ci95"][1] - r["success"])) for r in pts]
        line = ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=t)
        if kind == "info":
            guess = next(r for r in rows if r["cond"] == "unknown-target")
            ax.axhline(100 * guess["success"], ls=":", color=line[0].get_color())
    ax.set_ylabel("expert success (%)")
    ax.set_ylim(-3, 103)
    if kind == "delay":
        ax.set_xlabel("observation delay (ms)")
        ax.set_title("Cluttered suite: expert success vs observation delay")
    else:
        ax.set_xlabel("bits per coordinate (target xyz + goal xy)")
        ax.set_title("Expert success vs information (dotted: positions, target unknown)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embodied cluttered", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("what", choices=["expert", "delay", "info", "all"])
    p.add_argument("--tasks", default="all", help="comma-separated cluttered tasks, or 'all'")
    p.add_argument("--episodes", type=int, default=None,
                   help="episodes per task (and per point); default 150 expert, 60 delay, 40 info")  # fmt: skip
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default="results/cluttered")
    a = p.parse_args(argv)
    try:
        tasks = _tasks(a.tasks)
        if a.episodes is not None and a.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {a.episodes}")
    except ValueError as e:
        p.error(str(e))
    out = Path(a.out)
    if a.what in ("expert", "all"):
        expert(tasks, a.episodes or 150, a.workers, out)
    if a.what in ("delay", "all"):
        curve("delay", tasks, a.episodes or 60, a.workers, out)
    if a.what in ("info", "all"):
        curve("info", tasks, a.episodes or 40, a.workers, out)
    return 0

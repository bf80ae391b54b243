"""Scripted-expert rollouts: ``embodied collect`` (datasets) and ``embodied expert-eval``.

Examples::

    embodied collect --episodes 50 --workers 2 --out data/demos   # whole suite, resumable
    embodied collect --tasks drawer-open,door-open --episodes 5
    embodied collect --episodes 100 --seed-start 100 --noise 0.3   # DART-style perturbed demos
    embodied expert-eval --episodes 20                            # held-out seeds, no files

Work is split into (task, seed) jobs over a process pool (spawn: GL contexts do
not survive fork). Each worker keeps one environment per task. An episode file
on disk is complete (atomic rename), so an interrupted run resumes where it
stopped: jobs whose file exists are skipped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embodied.metrics import Rate
from sim.env import check_resolution
from sim.suite import eval_seeds, resolve_tasks, train_seeds

_ENVS: dict[tuple[str, int, str], Any] = {}


def _env(task: str, resolution: int, camera: str) -> Any:
    key = (task, resolution, camera)
    if key not in _ENVS:
        from sim.cluttered.spec import is_cluttered

        if is_cluttered(task):
            from sim.cluttered.env import ClutteredEnv

            _ENVS[key] = ClutteredEnv(task, resolution=resolution, camera=camera)
        else:
            from sim.env import MetaWorldTaskEnv

            _ENVS[key] = MetaWorldTaskEnv(task, resolution=resolution, camera=camera)
    return _ENVS[key]


class ActionNoise:
    """Temporally correlated perturbation of the executed action (DART, Laskey et al. 2017).

    Behaviour cloning drifts off the expert's state distribution and has no labels there.
    With ``scale > 0`` the *executed* action is the expert's plus an AR(1) process on the
    motion dimensions (stationary standard deviation ``scale``, correlation ``rho`` per step,
    so the arm wanders for several steps), while the *recorded* label stays the expert's
    clean action: the demonstrations then show how to recover from off-nominal states.
    Deterministic given (task, seed)."""

    def __init__(self, scale: float, task: str, seed: int, rho: float = 0.8, dims: int = 3):
        if not (0.0 <= scale <= 1.0):
            raise ValueError(f"action noise scale must be in [0, 1], got {scale}")
        from sim.suite import task_key

        self.scale, self.rho, self.dims = float(scale), float(rho), dims
        self.rng = np.random.default_rng([task_key(task), int(seed), 0xDA27])
        self.state = np.zeros(dims)

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.scale == 0.0:
            return action
        innov = self.rng.normal(0.0, self.scale * np.sqrt(1 - self.rho**2), self.dims)
        self.state = self.rho * self.state + innov
        out = action.copy()
        out[: self.dims] = np.clip(out[: self.dims] + self.state, -1.0, 1.0)
        return out


def expert_loop(
    env: Any, expert: Any, obs: dict[str, Any], *, perturb: Any = None, record: bool = True
) -> tuple[bool, dict[str, Any]]:
    """Step ``expert`` from ``obs`` to the episode's end (either suite); the success and, with
    ``record``, the stacked ``frames``, ``wrist``, ``proprio`` and ``actions`` (a camera the
    env does not render is None). ``perturb`` changes the executed action, never the label."""
    rec: dict[str, list[Any]] = {"image": [], "wrist_image": [], "proprio": [], "actions": []}
    success = False
    for _ in range(env.max_steps):
        a = expert.act()
        if record:
            for key in ("image", "wrist_image", "proprio"):
                rec[key].append(obs.get(key))
            rec["actions"].append(a)
        obs, _, terminated, truncated, info = env.step(a if perturb is None else perturb(a))
        if terminated or truncated:
            success = bool(info["success"])
            break
    if not record:
        return success, {}

    def stack(xs: list[Any]) -> np.ndarray | None:
        return np.stack(xs) if xs and all(x is not None for x in xs) else None

    names = {"frames": "image", "wrist": "wrist_image", "proprio": "proprio", "actions": "actions"}
    return success, {out: stack(rec[key]) for out, key in names.items()}


def rollout_expert(
    task: str, seed: int, resolution: int = 64, camera: str = "corner", record: bool = True,
    noise: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """One expert episode. Returns arrays when ``record`` else just the outcome. With
    ``noise``, executed actions are perturbed (:class:`ActionNoise`), labels stay clean."""
    from sim.cluttered.spec import is_cluttered

    if is_cluttered(task):  # the cluttered suite's own state-machine experts
        from sim.cluttered.expert import rollout_for_collect

        return rollout_for_collect(_env(task, resolution, camera), seed, record, noise)
    from sim.experts import ScriptedExpert

    env = _env(task, resolution, camera)
    obs, _ = env.reset(seed=seed)
    success, arrays = expert_loop(
        env, ScriptedExpert(env), obs, perturb=ActionNoise(noise, task, seed), record=record
    )
    out: dict[str, Any] = {
        "task": task,
        "seed": seed,
        "success": success,
        "steps": env._steps,
        "instruction": env.instruction,
        "layout": env.layout.copy(),
        "noise": float(noise),
    }
    if record:
        out.update(frames=arrays["frames"], proprio=arrays["proprio"], actions=arrays["actions"])
    return out


def _collect_job(args: tuple[str, int, int, str, str, float]) -> dict[str, Any]:
    task, seed, resolution, camera, out, noise = args
    from sim.dataset import Episode, save_episode

    r = rollout_expert(task, seed, resolution, camera, record=True, noise=noise)
    save_episode(
        Path(out),
        Episode(
            task=task,
            seed=seed,
            instruction=r["instruction"],
            frames=r["frames"],
            proprio=r["proprio"],
            actions=r["actions"],
            success=r["success"],
            layout=r["layout"],
            action_noise=noise,
            wrist=r.get("wrist"),
        ),
    )
    return {"task": task, "seed": seed, "success": r["success"], "steps": r["steps"]}


def _eval_job(args: tuple[str, int, int, str]) -> dict[str, Any]:
    task, seed, resolution, camera = args
    r = rollout_expert(task, seed, resolution, camera, record=False)
    return {"task": task, "seed": seed, "success": r["success"], "steps": r["steps"]}


def _init_worker() -> None:
    # One BLAS/OMP thread per worker: the pool is the parallelism.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def run_jobs(fn: Any, jobs: list, workers: int, desc: str) -> Iterable[dict[str, Any]]:
    """Run jobs over a spawn pool (or inline for one worker), yielding results with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="ep", file=sys.stderr, dynamic_ncols=True)
    try:
        if workers <= 1:
            for j in jobs:
                yield fn(j)
                bar.update()
            return
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for r in pool.imap_unordered(fn, jobs, chunksize=1):
                yield r
                bar.update()
    finally:
        bar.close()


def _order_jobs(jobs: list[tuple]) -> list[tuple]:
    # Interleave by seed so that each worker's env cache stays small but all tasks progress.
    return sorted(jobs, key=lambda j: (j[0], j[1]))


def _report(results: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    by_task: dict[str, list[bool]] = defaultdict(list)
    steps = 0
    for r in results:
        by_task[r["task"]].append(bool(r["success"]))
        steps += int(r["steps"])
    per_task = {t: Rate(sum(v), len(v)) for t, v in sorted(by_task.items())}
    for t, rate in per_task.items():
        print(f"  {t:22s} expert success {rate}")
    total = Rate(sum(r.successes for r in per_task.values()), sum(r.n for r in per_task.values()))
    print(f"  {'all':22s} expert success {total}")
    if elapsed > 0 and results:
        print(
            f"  {len(results)} episodes, {steps} steps in {elapsed:.1f} s: "
            f"{len(results) / elapsed:.2f} episodes/s, {steps / elapsed:.0f} steps/s"
        )
    return {
        "per_task": {
            t: {"success": r.value, "ci95": r.ci95, "n": r.n} for t, r in per_task.items()
        },
        "all": {"success": total.value, "ci95": total.ci95, "n": total.n},
        "episodes": len(results),
        "steps": steps,
        "seconds": elapsed,
    }


def _common_args(p: argparse.ArgumentParser, default_episodes: int) -> None:
    p.add_argument("--tasks", default="all", help="comma-separated task names, or 'all'")
    p.add_argument("--episodes", type=int, default=default_episodes, help="episodes per task")
    p.add_argument("--resolution", type=int, default=64, help="camera resolution (16..512)")
    p.add_argument("--camera", default="corner")
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)"
    )
    p.add_argument("--seed-start", type=int, default=0, help="first seed offset within the split")


def _check_suite_args(tasks: list, a: argparse.Namespace) -> int:
    """Resolution (and camera) for the tasks' suite: the cluttered suite renders 64..256 from
    its ``front`` camera (plus ``wrist``, stored beside the frames); one suite per run."""
    from sim.cluttered.spec import is_cluttered

    kinds = {is_cluttered(t.name) for t in tasks}
    if len(kinds) > 1:
        raise ValueError("collect one suite per run (Meta-World tasks or cluttered tasks)")
    if kinds == {True}:
        from sim.cluttered.env import check_resolution as cluttered_resolution

        if a.camera == "corner":
            a.camera = "front"
        if a.camera != "front":
            raise ValueError(
                f"the cluttered suite records --camera front (and wrist), got {a.camera!r}"
            )
        return cluttered_resolution(a.resolution)
    return check_resolution(a.resolution)


def main(argv: Sequence[str] | None = None) -> int:
    """``embodied collect``: write expert demonstrations (training seeds)."""
    p = argparse.ArgumentParser(prog="embodied collect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    _common_args(p, default_episodes=50)
    p.add_argument("--out", default="data/demos", help="dataset root")
    p.add_argument(
        "--split", choices=["train", "eval"], default="train", help="seed split to collect"
    )
    p.add_argument(
        "--noise", type=float, default=0.0,
        help="DART-style perturbation of executed actions (std, 0..1); labels stay clean",
    )  # fmt: skip
    a = p.parse_args(argv)
    try:
        tasks = resolve_tasks(a.tasks)
        resolution = _check_suite_args(tasks, a)
        if a.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {a.episodes}")
        if not 0.0 <= a.noise <= 1.0:
            raise ValueError(f"--noise must be in [0, 1], got {a.noise}")
    except ValueError as e:
        p.error(str(e))
    from sim.dataset import episode_path, write_manifest

    out = Path(a.out)
    write_manifest(out, resolution, a.camera, max(t.max_steps for t in tasks))
    seeds = (train_seeds if a.split == "train" else eval_seeds)(a.episodes, a.seed_start)
    jobs = [(t.name, s, resolution, a.camera, str(out), a.noise) for t in tasks for s in seeds]
    todo = [j for j in jobs if not episode_path(out, j[0], j[1]).exists()]
    print(f"collect: {len(jobs)} episodes, {len(jobs) - len(todo)} already on disk, "
          f"{len(todo)} to run on {a.workers} worker(s) -> {out}")  # fmt: skip
    t0 = time.time()
    results = list(run_jobs(_collect_job, _order_jobs(todo), a.workers, "collect"))
    elapsed = time.time() - t0
    summary = _report(results, elapsed) if results else {}
    if results:
        (out / "collect_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def expert_eval_main(argv: Sequence[str] | None = None) -> int:
    """``embodied expert-eval``: scripted-expert success per task on held-out seeds."""
    p = argparse.ArgumentParser(prog="embodied expert-eval", description=expert_eval_main.__doc__)
    _common_args(p, default_episodes=20)
    p.add_argument("--json", default=None, help="write the summary here")
    a = p.parse_args(argv)
    try:
        tasks = resolve_tasks(a.tasks)
        resolution = _check_suite_args(tasks, a)
        if a.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {a.episodes}")
    except ValueError as e:
        p.error(str(e))
    seeds = eval_seeds(a.episodes, a.seed_start)
    jobs = [(t.name, s, resolution, a.camera) for t in tasks for s in seeds]
    print(f"expert-eval (scripted experts, not a learned policy): {len(tasks)} tasks x "
          f"{a.episodes} held-out seeds on {a.workers} worker(s)")  # fmt: skip
    t0 = time.time()
    results = list(run_jobs(_eval_job, _order_jobs(jobs), a.workers, "expert-eval"))
    summary = _report(results, time.time() - t0)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0

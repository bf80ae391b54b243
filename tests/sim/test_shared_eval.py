"""Several robots in closed loop on one bottleneck (``run_shared``, ``embodied eval --robots``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

pytest.importorskip("mujoco")

from sim.evaluate import Point, run_episode, run_shared
from sim.sweep import main as eval_main
from sim.sweep import shared_rounds

KW = {"max_steps": 30}


def _plain(r) -> dict:
    d = asdict(r)
    d.pop("extra")
    return d


def test_one_robot_on_a_shared_link_is_the_single_episode():
    """The shared path is the same pipeline: one robot on its own link, the same episode
    (trace moment, loss draws, controller, receiver) as ``run_episode``."""
    p = Point("tokens-inter", trace="crowded-cell", controller="success", proprio="latest")
    alone = run_episode(p, "drawer-open", 1_000_000, **KW)
    (shared,) = run_shared(p, [("drawer-open", 1_000_000)], **KW)
    assert _plain(shared) == _plain(alone)
    assert shared.extra == {"robot": 0, "robots": 1}


def test_robots_share_one_queue():
    """Four robots at a fixed 16 tokens on crowded-cell scaled x4: the same per-robot share as
    one robot alone, but one queue. Deterministic; every robot's fates add up; a robot
    never sees another's packets (its receiver decodes its own stream: no decode errors)."""
    p = Point("tokens-inter", budget=16, trace="crowded-cell", proprio="latest", robots=4)
    round_ = [("drawer-open", 1_000_000), ("door-open", 1_000_000), ("button-press", 1_000_000),
              ("window-open", 1_000_000)]  # fmt: skip
    a = run_shared(p, round_, **KW)
    b = run_shared(p, round_, **KW)
    assert [_plain(x) for x in a] == [_plain(x) for x in b]
    assert [r.extra["robot"] for r in a] == [0, 1, 2, 3]
    for r in a:
        assert r.frames_captured == r.steps == 30
        assert r.deadline_misses == r.frames_late + r.frames_lost + r.frames_skipped
        assert r.decode_errors == 0
    # saturated: 16 tokens at 30 frames/s is far above one robot's ~1-2 kbit/s share,
    # so every robot's packets queue: latency far past the 100 ms deadline
    assert min(r.latency_mean_ms for r in a if r.frames_sent) > 500


def test_robots_on_the_same_task_each_have_their_own_sim():
    """16 robots over 11 tasks: some run the same task in one round, each in its own env
    (a shared env stepped two episodes at once and raised at its step limit)."""
    from sim.evaluate import _env

    assert _env("drawer-open", "train", 0) is not _env("drawer-open", "train", 1)
    p = Point("tokens", budget=1, trace="crowded-cell", robots=2)
    a, b = run_shared(p, [("drawer-open", 1_000_000), ("drawer-open", 1_000_001)], **KW)
    assert a.steps == b.steps == 30 and a.seed != b.seed


def test_shared_links_refuse_what_cannot_share():
    with pytest.raises(ValueError, match="give a trace"):
        Point("tokens", budget=4, robots=4)
    with pytest.raises(ValueError, match="sees the future"):
        run_shared(Point("tokens", trace="cellular", controller="oracle", robots=2),
                   [("drawer-open", 1), ("door-open", 1)], **KW)  # fmt: skip


def test_rounds_cover_every_task_and_never_repeat_an_episode():
    tasks = [f"t{i}" for i in range(11)]
    rounds = shared_rounds(16, tasks, 2, 0)
    assert len(rounds) == 2 and all(len(r) == 16 for r in rounds)
    slots = [x for r in rounds for x in r]
    assert len(set(slots)) == 32  # no (task, seed) twice
    assert all(sum(t == name for t, _ in slots) >= 2 for name in tasks)  # >= 2 per task
    assert shared_rounds(4, tasks, 1, 0)[0][:2] == [("t0", slots[0][1]), ("t1", slots[0][1])]


def test_eval_robots_runs_rounds_and_resumes(tmp_path: Path, capsys):
    out = tmp_path / "shared"
    argv = ["--tasks", "drawer-open,door-open", "--episodes", "1", "--seed-start", "500",
            "--codecs", "tokens-inter", "--traces", "crowded-cell", "--controllers", "fixed:1",
            "--robots", "2", "--max-steps", "20", "--workers", "1", "--out", str(out)]  # fmt: skip
    assert eval_main(argv) == 0
    rows = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {r["extra"]["robots"] for r in rows} == {2}
    assert all(r["point"].endswith("~crowded-cellx2") for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["points"][0]["episodes"] == 2
    capsys.readouterr()
    assert eval_main(argv) == 0  # resumed: the round is on disk, nothing runs
    assert "2 on disk, 0 to run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        eval_main(["--codecs", "tokens", "--budgets", "1", "--robots", "4", "--out", str(out)])

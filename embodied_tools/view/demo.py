"""The README's screenshot of the live view during a budget change, remade by one command:

    python -m embodied_tools.view.demo --out docs/results/view

It launches the sim graph (``embodied launch sim``, the shipped models), attaches
``embodied view --web``, lowers the budget with ``embodied tune tokenizer budget`` after
``--change-at`` seconds, and lets headless Chromium photograph the served viewer a few seconds
later, so the picture holds the stream before and after the change.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _embodied(*args: str) -> list[str]:
    return [sys.executable, "-m", "embodied.cli", *args]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m embodied_tools.view.demo", description=__doc__)
    ap.add_argument("--out", default="docs/results/view")
    ap.add_argument("--budget", type=int, default=64, help="budget before the change")
    ap.add_argument("--to", type=int, default=1, help="budget after the change")
    ap.add_argument("--change-at", type=float, default=12.0, help="s after the view starts")
    ap.add_argument("--shoot-at", type=float, default=30.0, help="s after the view starts")
    ap.add_argument("--hz", type=float, default=10.0, help="the robot's control and camera rate")
    ap.add_argument("--picture-hz", type=float, default=2.0, help="the view's pictures per second")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    graph = subprocess.Popen(
        _embodied("launch", "sim", "-p", f"tokenizer.budget:={a.budget}",
                  "-p", f"sim_robot.control_hz:={a.hz}", "-p", f"tokenizer.frame_rate_hz:={a.hz}"),
        env=env,
        stdout=(out / "launch.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    time.sleep(8.0)  # the nodes load their models
    view = subprocess.Popen(
        _embodied("view", "--web", "--screenshot", str(out / "live_view.png"),
                  "--screenshot-after", str(a.shoot_at), "--duration", str(a.shoot_at + 12),
                  "--picture-hz", str(a.picture_hz), "--camera-hz", str(a.picture_hz)),
        env=env, stdout=(out / "view.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(a.change_at)
        tune = subprocess.run(
            _embodied("tune", "tokenizer", "budget", str(a.to)), env=env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        print(tune.stdout.strip() or tune.stderr.strip(), flush=True)
        rc = view.wait(timeout=a.shoot_at + 90)
    finally:
        os.killpg(graph.pid, signal.SIGINT)
        try:
            graph.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(graph.pid, signal.SIGKILL)
    shot = out / "live_view.png"
    print(f"{shot}: {'written' if shot.is_file() else 'MISSING'} (view exit {rc})")
    return 0 if shot.is_file() and rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

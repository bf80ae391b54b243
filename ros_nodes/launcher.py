"""``embodied launch NAME``: run a graph of ``launch/graphs.yaml`` without ROS's ``launch``.

The same nodes, names, parameter files and remaps as ``ros2 launch launch/NAME.launch.py``
(both read :mod:`ros_nodes.graphs`), each node a child process. SIGINT / SIGTERM are
forwarded to the nodes, which shut down cleanly; a node still running after
``--grace`` seconds is terminated, then killed. The graph ends when a ``required`` node
exits (the sim robot after its episodes: its exit code is the launcher's) or, unless
``--keep-going``, when any node fails.

    embodied launch sim
    embodied launch sim -p "*.tokenizer_dir:=/tmp/models/tok-task" -p sim_robot.episodes:=3
    embodied launch split --side robot          # on the robot; --side server on the GPU host
    embodied launch robot --params-file my_robot.yaml --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from ros_nodes.graphs import SIDES, get_graph, load_graphs, node_command, overrides_document


def _log(msg: str) -> None:
    print(f"[launch] {msg}", file=sys.stderr, flush=True)


def _stop(procs: dict[str, subprocess.Popen], grace_s: float, signalled: bool = False) -> None:
    """SIGINT every running node, then SIGTERM, then SIGKILL: never leave one behind.

    ``signalled``: a terminal's Ctrl-C already reached every node (one process group),
    so they get a moment to stop on their own before a second SIGINT interrupts that.
    """
    if signalled:
        deadline = time.monotonic() + min(grace_s, 2.0)
        while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
            time.sleep(0.05)
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        alive = {n: p for n, p in procs.items() if p.poll() is None}
        if not alive:
            return
        for p in alive.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(p.poll() is None for p in alive.values()):
            time.sleep(0.05)
        if sig != signal.SIGKILL:
            late = [n for n, p in alive.items() if p.poll() is None]
            if late:
                _log(f"still running after {signal.Signals(sig).name}: {', '.join(late)}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied launch", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("graph", nargs="?", help="graph name (see --list)")
    ap.add_argument("--list", action="store_true", help="list the graphs and their nodes")
    ap.add_argument(
        "--side", default="all", choices=("all", *SIDES), help="split graph: which machine"
    )
    ap.add_argument(
        "--params-file", action="append", default=[], type=Path,
        help="extra parameters file (keyed by node name; after the graph's, so it wins)",
    )  # fmt: skip
    ap.add_argument(
        "-p", "--param", action="append", default=[], metavar="NODE.PARAM:=VALUE",
        help="one parameter (NODE '*' = every node); wins over every file",
    )  # fmt: skip
    ap.add_argument("--grace", type=float, default=5.0, help="seconds a node gets to stop")
    ap.add_argument("--keep-going", action="store_true", help="a failed node does not end all")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--launch-dir", type=Path, default=None, help="where graphs.yaml lives")
    args = ap.parse_args(argv)

    if args.list or not args.graph:
        for g in load_graphs(args.launch_dir).values():
            print(f"{g.name}: {g.description}")
            for n in g.nodes:
                req = ", required" if n.required else ""
                print(f"    {n.name:<10} {n.executable}  (side {n.side}{req})")
        return 0 if args.list else 2
    try:
        graph = get_graph(args.graph, args.launch_dir)
    except KeyError as err:
        print(f"embodied launch: {err.args[0]}", file=sys.stderr)
        return 2
    for p in args.params_file:
        if not p.is_file():
            print(f"embodied launch: parameters file {p} not found", file=sys.stderr)
            return 2
    nodes = graph.select(args.side)
    if not nodes:
        print(f"embodied launch: graph {graph.name} has no {args.side} nodes", file=sys.stderr)
        return 2
    extra = [p.resolve() for p in args.params_file]
    tmp: Path | None = None
    if args.param:
        try:
            doc = overrides_document(args.param)
        except ValueError as err:
            print(f"embodied launch: {err}", file=sys.stderr)
            return 2
        fd, name = tempfile.mkstemp(prefix="embodied_launch_", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f)
        tmp = Path(name)
        extra.append(tmp)
    try:
        commands = {n.name: node_command(n, extra) for n in nodes}
    except FileNotFoundError as err:
        print(f"embodied launch: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        for name, cmd in commands.items():
            print(f"{name}: {' '.join(cmd)}")
        if tmp is not None:
            print(f"# overrides ({tmp}):\n{tmp.read_text()}", end="")
            tmp.unlink()
        return 0

    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[str, subprocess.Popen] = {}
    required = {n.name for n in nodes if n.required}
    code = 0
    try:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(cmd, env=env)
            _log(f"started {name} (pid {procs[name].pid}): {' '.join(cmd)}")
        while stop["signal"] is None:
            time.sleep(0.1)
            ended = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            done = [n for n in ended if n in required]
            failed = [n for n, rc in ended.items() if rc != 0]
            if done:
                code = ended[done[0]]
                _log(f"required node {done[0]} exited with {code}: stopping the graph")
                break
            if failed and not args.keep_going:
                code = ended[failed[0]] or 1
                _log(f"{failed[0]} failed with exit code {ended[failed[0]]}: stopping the graph")
                break
            if len(ended) == len(procs):
                _log("every node exited")
                code = max((abs(rc) for rc in ended.values()), default=0)
                break
        if stop["signal"] is not None:
            _log(f"{signal.Signals(stop['signal']).name}: stopping the graph")
    finally:
        _stop(procs, args.grace, signalled=stop["signal"] == signal.SIGINT)
        for s, h in old.items():
            signal.signal(s, h)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

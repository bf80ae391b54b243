"""The ``embodied`` command line.

Each subcommand is a ``main(argv) -> int`` function in its own module, named
here by a string entry point so that ``embodied --help`` imports nothing heavy
(the same trick gymnasium uses to register environments).

Examples::

    embodied --help
    embodied collect --episodes 50 --workers 2
    embodied bench render
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    entry: str  # "package.module:function"
    help: str

    def load(self) -> Callable[[Sequence[str] | None], int]:
        module, _, func = self.entry.partition(":")
        return getattr(importlib.import_module(module), func)


COMMANDS: dict[str, Command] = {}


def register(name: str, entry: str, help: str) -> None:
    if name in COMMANDS:
        raise ValueError(f"subcommand {name!r} is already registered ({COMMANDS[name].entry})")
    COMMANDS[name] = Command(name, entry, help)


register("collect", "sim.collect:main", "run the scripted experts and write demonstration datasets")
register(
    "expert-eval",
    "sim.collect:expert_eval_main",
    "evaluate the scripted experts per task (no policy)",
)
register(
    "bench",
    "embodied.bench:main",
    "benchmarks: render, codec, policy, ... (`embodied bench --help`)",
)
register(
    "train", "policies.train:main", "train tokenizer / policy / task-oriented tokens / all (torch)"
)
register("eval", "sim.sweep:main", "closed-loop success vs bit rate: tokens vs codecs, traces")
register("belief", "embodied.policy:belief_main", "which task a policy reads an instruction as")
register("tasks", "sim.suite:tasks_main", "list the benchmark tasks, their ids and instructions")
register("link-sim", "embodied.linksim:main", "trace-driven link + budget controllers (--all)")
register("trt-build", "embodied.trt:main", "TensorRT engine from ONNX (or the trtexec command)")
register("bench-codecs", "embodied.codecs.bench:main", "codec sizes, target fit, encode/decode ms")
register(
    "rd", "embodied.rd:main", "rate-distortion report: tokens vs JPEG/WebP/H.264/raw, PSNR vs bits"
)
register("launch", "ros_nodes.launcher:main", "run a ROS 2 graph (sim, robot, split) without ros2")
register("tune", "ros_nodes.tune:main", "set a node's parameter live (ros2 param set, rclpy)")
register("record", "ros_nodes.record:main", "record the graph's topics to MCAP (rosbag2/Foxglove)")


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: embodied <command> [options]", "", "commands:"]
    lines += [f"  {c.name:<{width}}  {c.help}" for c in COMMANDS.values()]
    lines += ["", "`embodied <command> --help` describes a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from embodied import __version__

        print(__version__)
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(
            f"embodied: unknown command {name!r}.{hint} Valid commands: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    return int(COMMANDS[name].load()(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

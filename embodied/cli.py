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

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from embodied.registry import Registry, UnknownName, load_entry


@dataclass(frozen=True)
class Command:
    name: str
    entry: str  # "package.module:function"
    help: str

    def load(self) -> Callable[[Sequence[str] | None], int]:
        return load_entry(self.entry)


COMMANDS: Registry[Command] = Registry("command")


def register(name: str, entry: str, help: str) -> Command:
    """Add a subcommand; a name already taken is refused."""
    return COMMANDS.add(name, Command(name, entry, help))


register("collect", "sim.collect:main", "run the scripted experts and write demonstration datasets")
register(
    "expert-eval",
    "sim.collect:expert_eval_main",
    "evaluate the scripted experts per task (no policy)",
)
register(
    "bench",
    "embodied_tools.bench:main",
    "benchmarks: render, codecs, tokens, policy, eval, ros, gpu (`embodied bench --help`)",
)
register(
    "train", "policies.train:main", "train tokenizer / policy / task-oriented tokens / all (torch)"
)
register("eval", "sim.sweep:main", "closed-loop success vs bit rate: tokens vs codecs, traces")
register(
    "export",
    "policies.export:main",
    "a training checkpoint (runs/<name>/model.pt) → the shipped model layout (torch)",
)
register(
    "stamp-metadata",
    "embodied.modelfiles:stamp_main",
    "write the ONNX metadata of docs/models.md into model files (weights and ids unchanged)",
)
register(
    "inter-prior",
    "embodied_tools.inter_prior:main",
    "learn a tokenizer's inter-frame prior from demonstrations (tokens-inter coding)",
)
register(
    "inter-bench",
    "embodied_tools.inter_bench:main",
    "the link controller with coding across frames: per-kind size model vs one model",
)
register(
    "inter-bits",
    "embodied_tools.inter_bits:main",
    "payload and header bits per frame, intra vs inter, on expert episodes of both suites",
)
register(
    "success-curves",
    "embodied_tools.success_curves:main",
    "measure success vs budget, added delay and send interval (the success-aware controller's)",
)
register("belief", "embodied_tools.belief:main", "which task a policy reads an instruction as")
register("tasks", "sim.suite:tasks_main", "list the benchmark tasks, their ids and instructions")
register(
    "cluttered",
    "sim.cluttered.measure:main",
    "cluttered suite measurements: expert success, delay and information curves",
)
register(
    "link-sim", "embodied_tools.linksim:main", "trace-driven link + budget controllers (--all)"
)
register("trt-build", "embodied.trt:main", "TensorRT engine from ONNX (or the trtexec command)")
register("bench-codecs", "embodied_tools.bench_codecs:main", "the same as `embodied bench codecs`")
register(
    "rd",
    "embodied_tools.rd:main",
    "rate-distortion report: tokens vs JPEG/WebP/H.264/raw, PSNR vs bits",
)
register("launch", "ros_nodes.launcher:main", "run a ROS 2 graph (sim, robot, split) without ros2")
register("tune", "ros_nodes.tune:main", "set a node's parameter live (ros2 param set, rclpy)")
register("record", "ros_nodes.record:main", "record the graph's topics to MCAP (rosbag2/Foxglove)")
register(
    "export-lerobot",
    "sim.lerobot:export_main",
    "an `embodied collect` dataset → LeRobotDataset v3 (parquet + video), LeRobot's writer",
)
register(
    "record-to-lerobot",
    "ros_nodes.mcap_lerobot:main",
    "an `embodied record` MCAP → LeRobotDataset v3 (episodes from robot/events)",
)
register(
    "view",
    "embodied_tools.view.cli:main",
    "live view in rerun: camera vs what the tokens sent reconstruct, bits, latency, misses",
)


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
    try:
        command = COMMANDS.get(name)
    except UnknownName as e:
        print(f"embodied: {e}", file=sys.stderr)
        return 2
    return int(command.load()(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``embodied bench <what>``: every benchmark of the project, in one registry.

Each benchmark is a ``main(argv) -> int`` named by a string entry point, so listing them
imports none (a benchmark of the sim needs MuJoCo, one of the ROS graph rclpy). Medians and
ratios are against a baseline measured in the same run. Another package adds its own with
:func:`register_bench` (e.g. the link simulator's ``link`` benchmark)::

    embodied bench --help
    embodied bench policy --json results/bench_policy.json
    embodied bench codecs --codecs jpeg webp
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from embodied.registry import Registry, UnknownName, load_entry


@dataclass(frozen=True)
class Bench:
    """One benchmark: its ``embodied bench`` name, entry point and one-line help."""

    name: str
    entry: str  # "package.module:main"
    help: str

    def load(self) -> Callable[[Sequence[str] | None], int]:
        return load_entry(self.entry)


BENCHES: Registry[Bench] = Registry("benchmark")


def register_bench(name: str, entry: str, help: str) -> Bench:
    """Add a benchmark; a name already taken is refused."""
    return BENCHES.add(name, Bench(name, entry, help))


register_bench("render", "sim.bench_render:main", "MuJoCo render time per frame, default vs fast")
register_bench(
    "codecs",
    "embodied_tools.bench_codecs:main",
    "codec sizes, target fit, encode/decode ms, PSNR (every registered codec)",
)
register_bench(
    "tokens", "embodied_tools.bench_tokens:main", "token codec encode/decode ms and bytes per k"
)
register_bench(
    "policy", "embodied_tools.bench_policy:main", "policy latency p50/p99 per budget, per provider"
)
register_bench(
    "eval", "sim.bench_eval:main", "closed-loop episodes/s on 1 worker vs N (process or Ray)"
)
register_bench("ros", "ros_nodes.bench:main", "ROS 2 loopback image→action latency p50/p99, soak")
register_bench(
    "gpu",
    "embodied_tools.bench_gpu:main",
    "CUDA/TensorRT vs CPU per shipped model: parity, latency, engine cache, profile (skips on CPU)",
)


def usage() -> str:
    width = max(len(n) for n in BENCHES)
    lines = ["usage: embodied bench <what> [options]", "", "benchmarks:"]
    lines += [f"  {b.name:<{width}}  {b.help}" for b in BENCHES.values()]
    lines += ["", "`embodied bench <what> --help` describes a benchmark's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    try:
        bench = BENCHES.get(args[0])
    except UnknownName as e:
        print(f"embodied bench: {e}", file=sys.stderr)
        return 2
    return int(bench.load()(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

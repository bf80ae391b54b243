"""``embodied bench <what>``: benchmarks (medians and ratios against a baseline in the same run).

embodied bench render     MuJoCo frame time, default scene vs the project's fast settings
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

BENCHES: dict[str, tuple[str, str]] = {
    "render": ("sim.bench_render:main", "MuJoCo render time per frame, default vs fast"),
    "tokens": ("embodied.codecs.bench_tokens:main", "token codec encode/decode ms and bytes per k"),
    "policy": ("embodied.bench_policy:main", "policy latency p50/p99 per budget, per provider"),
    "eval": ("sim.bench_eval:main", "closed-loop episodes/s on 1 worker vs N (process or Ray)"),
    "ros": ("ros_nodes.bench:main", "ROS 2 loopback image→action latency p50/p99, soak"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: embodied bench <what> [options]\n\nbenchmarks:")
        for k, (_, h) in BENCHES.items():
            print(f"  {k:10s} {h}")
        return 0
    if args[0] not in BENCHES:
        print(
            f"embodied bench: unknown benchmark {args[0]!r}; valid: {', '.join(BENCHES)}",
            file=sys.stderr,
        )
        return 2
    module, _, fn = BENCHES[args[0]][0].partition(":")
    return int(getattr(importlib.import_module(module), fn)(args[1:]) or 0)

"""``embodied inter-bench``: what coding across frames changes for the link controller.

The deadline-aware controller sizes each frame before it is coded. With ``tokens-inter`` a
keyframe at budget k is several times a predicted frame at the same k (the shipped table,
``tokenizer_inter_sizes.json``), so the sender tells the controller which kind comes next and
the controller keeps one size model per kind (``embodied.control.base``). This replays
narrowband links (shipped traces scaled down, no transport overhead: the regime where every
byte counts) with the measured table and compares that controller against the same one kept
unaware of the frame kind (one size model over both kinds, as before coding across frames):

    embodied inter-bench --out results/inter/controller

Writes ``controller.json`` / ``controller.csv``; deterministic (seeded traces and sizes).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from embodied.control.base import ControllerSettings, Delegating, Feedback
from embodied.control.registry import make_controller
from embodied.interframe import INTER_SIZES_FILE
from embodied.link.catalog import entry
from embodied.link.emulator import LinkConfig
from embodied.link.models import SizeModel, TableSizeModel
from embodied.link.traces import OpportunityTrace, RateTrace, Trace

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "embodied/models/tok-task" / INTER_SIZES_FILE
DEFAULT_CASES = ("stable:0.2", "cellular:0.2", "outages:0.2", "cellular:0.1")


class KindUnaware(Delegating):
    """A controller told every frame is a keyframe: one size model learns both kinds (the
    ablation of the per-kind size model)."""

    name: ClassVar[str] = "kind-unaware"

    def __init__(self, name: str, settings: ControllerSettings | None = None, fps: float = 30.0):
        super().__init__(make_controller(name, settings, frame_rate_hz=fps))

    def observe(self, feedback: Feedback) -> None:
        self.inner.observe(replace(feedback, keyframe=True))

    def next_budget(self, now: float, *, keyframe: bool = True) -> int:
        del keyframe
        return self.inner.next_budget(now, keyframe=True)


def trace_case(spec: str) -> Trace:
    """``name[:scale]`` of a shipped trace."""
    name, _, scale = spec.partition(":")
    trace = entry(name).load()
    if not scale:
        return trace
    if not isinstance(trace, RateTrace | OpportunityTrace):
        raise ValueError(f"{name}: a {type(trace).__name__} cannot be scaled")
    return trace.scaled(float(scale), name=spec)


def compare(
    trace: Trace, sizes: SizeModel, controller: str = "deadline", overhead_bytes: int = 0
) -> dict[str, dict[str, Any]]:
    """The controller told the frame kind, and kept unaware, on one trace."""
    from embodied_tools.linksim import SimConfig, simulate

    cfg = SimConfig(link=LinkConfig(overhead_bytes=overhead_bytes))
    out = {}
    for label, ctrl in (("kind-aware", controller), ("kind-unaware", KindUnaware(controller))):
        s = simulate(trace, ctrl, sizes=sizes, config=cfg, label=label).summary
        out[label] = {
            "miss_pct": float(s["miss_pct"]), "late": int(s["late"]),
            "skipped": int(s["skipped"]), "mean_budget": float(s["effective_budget"]),
            "packet_kbps": float(s["packet_kbps"]), "capacity_kbps": float(s["capacity_kbps"]),
        }  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="embodied inter-bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--size-table", type=Path, default=DEFAULT_TABLE)
    ap.add_argument("--traces", default=",".join(DEFAULT_CASES),
                    help="shipped traces, each name[:capacity scale]")  # fmt: skip
    ap.add_argument("--controller", default="deadline")
    ap.add_argument("--overhead", type=int, default=0, help="transport bytes per packet")
    ap.add_argument("--out", type=Path, default=Path("results/inter/controller"))
    a = ap.parse_args(argv)
    sizes = TableSizeModel.from_json(a.size_table)
    rows = []
    for spec in (t.strip() for t in a.traces.split(",") if t.strip()):
        for label, r in compare(trace_case(spec), sizes, a.controller, a.overhead).items():
            rows.append({"trace": spec, "controller": label, **r})
            print(f"{spec:14s} {label:13s} miss {r['miss_pct']:5.2f}%  (late {r['late']:4d}, "
                  f"skipped {r['skipped']:4d})  budget {r['mean_budget']:5.1f}  "
                  f"{r['packet_kbps']:.2f} of {r['capacity_kbps']:.2f} kbit/s")  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {"size_table": str(a.size_table), "controller": a.controller,
            "overhead_bytes": a.overhead, "sizes": sizes.description}  # fmt: skip
    (a.out / "controller.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    with (a.out / "controller.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"-> {a.out}/controller.json, controller.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

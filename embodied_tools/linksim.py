"""``embodied link-sim``: replay a bandwidth trace with a budget controller.

Each frame (30 frames/s by default) the controller picks a token budget; the
packet-size model turns it into bytes, the compute model into encoder time;
the link emulator says when (or whether) the packet arrives; the receiver's
report reaches the controller one feedback delay later. Reported per run:
deadline misses (late, dropped by the queue, or skipped by the controller),
frames in outages (apart), random/burst losses (apart), link utilization,
mean budget, bit rates (codec and transport overhead apart), a PNG timeline.

Examples::

    embodied link-sim --list                              # shipped traces and controllers
    embodied link-sim --trace cellular --controller deadline --controller aimd
    embodied link-sim --trace path/to/trace.log --scale 0.015625 --overhead 28
    embodied link-sim --trace cellular --loss 0.01 --burst 0.01,0.3  # random + bursty loss
    embodied link-sim --trace stable --size-table tokenizer_sizes.json
    embodied link-sim --all                               # the benchmark -> results/link/
    embodied link-sim --generate                          # rewrite embodied/traces/synthetic/

Defaults (stated): 8 bytes of transport framing per packet (a compact radio
link layer; ``--overhead 28`` for UDP/IPv4), 20 ms propagation each way, a
3000-byte drop-tail queue, no random loss, feedback one propagation delay after
arrival, 100 ms deadline. The packet-size model is the linear one of
:mod:`embodied.link.models` unless ``--size-table`` gives a measured table.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from embodied.control.base import SKIP, Controller, ControllerSettings
from embodied.control.registry import REGISTRY, make_controller
from embodied.interframe import KeyframeSchedule
from embodied.link import catalog, synthetic
from embodied.link.emulator import GilbertElliott, LinkConfig, LinkEmulator
from embodied.link.models import (
    ComputeModel,
    InterTableSizeModel,
    LinearSizeModel,
    SizeModel,
    TableSizeModel,
)
from embodied.link.session import LinkSession
from embodied.link.traces import RateTrace, Trace, read_trace
from embodied.pipeline import FATES, MISSES, FateCounts, Sender, frame_fate

DEFAULT_OVERHEAD_BYTES = 8
DEFAULT_OUT = Path("results/link")
# The benchmark's line-up: (label, registered name, settings changed from the run's).
BENCH_CONTROLLERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("fixed-4", "fixed", {"budget": 4}),
    ("fixed-16", "fixed", {"budget": 16}),
    ("fixed-64", "fixed", {"budget": 64}),
    ("aimd", "aimd", {}),
    ("deadline", "deadline", {}),
    ("oracle", "oracle", {}),
)


@dataclass(frozen=True)
class SimConfig:
    frame_rate_hz: float = 30.0
    duration_s: float | None = None  # None: one loop of the trace
    feedback_delay_s: float | None = None  # None: the propagation delay (reverse path)
    loss_timeout_s: float = 1.0  # a loss is reported then, or when a later packet's report arrives
    link: LinkConfig = field(
        default_factory=lambda: LinkConfig(overhead_bytes=DEFAULT_OVERHEAD_BYTES)
    )


@dataclass
class Frames:
    """Per-frame record of a run (one entry per frame, skipped frames included)."""

    capture: list[float] = field(default_factory=list)
    budget: list[int] = field(default_factory=list)  # 0 = skipped
    packet: list[int] = field(default_factory=list)  # packet bytes (0 = skipped)
    overhead: list[int] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)  # nan unless delivered
    departure: list[float] = field(default_factory=list)  # left the bottleneck; nan if never
    service_start: list[float] = field(default_factory=list)  # bytes on the service curve; nan
    served_by: list[float] = field(default_factory=list)  # S(t) at each frame time, bytes
    link: list[str] = field(default_factory=list)  # skipped / the link's event (delivered, ...)
    fate: list[str] = field(default_factory=list)  # the frame's fate (embodied.pipeline)
    backlog: list[float] = field(default_factory=list)  # bytes ahead in the queue when sent
    capacity_bits: list[float] = field(default_factory=list)  # link capacity in the frame slot
    usable_bits: list[float] = field(default_factory=list)  # min(capacity, max-budget frame)
    outage: list[bool] = field(default_factory=list)


@dataclass
class RunResult:
    trace: str
    controller: str
    frames: Frames
    summary: dict[str, Any]


class _World:
    """The simulator's view of the future, for the oracle only."""

    def __init__(self, link: LinkEmulator, sizes: SizeModel, compute: ComputeModel) -> None:
        self.link, self.sizes, self.compute = link, sizes, compute
        self.frame = 0
        self.keyframe = True

    def latency_if(self, now: float, budget: int) -> float | None:
        payload = self.sizes.packet_bytes(budget, self.frame, keyframe=self.keyframe)
        arrival = self.link.probe(now + self.compute.seconds(budget, self.frame), payload)
        return None if arrival is None else arrival - now


def _capacity_bits(trace: Trace, t0: float, t1: float) -> float:
    return (trace.delivered_bytes(t1) - trace.delivered_bytes(t0)) * 8.0


def simulate(
    trace: Trace,
    controller: str | Controller,
    *,
    settings: ControllerSettings | None = None,
    controller_kwargs: dict[str, Any] | None = None,
    sizes: SizeModel | None = None,
    compute: ComputeModel | None = None,
    config: SimConfig | None = None,
    label: str | None = None,
) -> RunResult:
    """Run one controller over one trace; deterministic given the seeds."""
    cfg = config or SimConfig()
    sizes = LinearSizeModel() if sizes is None else sizes
    compute = compute or ComputeModel()
    link = LinkEmulator(trace, cfg.link)
    world = _World(link, sizes, compute)
    if isinstance(controller, str):
        ctrl = make_controller(
            controller,
            settings,
            frame_rate_hz=cfg.frame_rate_hz,
            world=world,
            **(controller_kwargs or {}),
        )
        name = label or controller
    else:
        ctrl = controller
        name = label or getattr(ctrl, "name", type(ctrl).__name__)
    s = ctrl.settings
    fps = cfg.frame_rate_hz
    deadline = s.deadline_ms / 1e3
    duration = trace.period_s if cfg.duration_s is None else cfg.duration_s
    n = round(duration * fps)
    overhead = cfg.link.overhead_bytes
    frames = Frames()
    # The pipeline's sender over the emulated link: the loop `embodied eval` runs too. Sizes of
    # a codec across frames come with the stream's keyframe rule (losses, interval).
    schedule = _schedule(sizes)
    sender = Sender(ctrl, loss_timeout_s=cfg.loss_timeout_s, stream=schedule)
    session = LinkSession(sender, trace, feedback_delay_s=cfg.feedback_delay_s, emulator=link)

    for i in range(n):
        t = i / fps
        slot = _capacity_bits(trace, t, t + 1.0 / fps)
        min_wire = sizes.packet_bytes(s.min_budget, i) + overhead
        max_wire = sizes.packet_bytes(s.max_budget, i) + overhead
        frames.capture.append(t)
        frames.served_by.append(trace.delivered_bytes(t))
        frames.capacity_bits.append(slot)
        frames.usable_bits.append(min(slot, max_wire * 8.0))
        # Outage: over the deadline window the link cannot carry even the
        # minimum budget at the frame rate.
        frames.outage.append(
            _capacity_bits(trace, t, t + deadline) < min_wire * 8.0 * fps * deadline
        )
        world.frame = i
        key = sender.next_is_keyframe
        world.keyframe = key
        k = session.next_budget(t)
        if k == SKIP:
            frames.budget.append(0)
            frames.packet.append(0)
            frames.overhead.append(0)
            frames.compute.append(0.0)
            frames.latency.append(math.nan)
            frames.departure.append(math.nan)
            frames.service_start.append(math.nan)
            frames.link.append("skipped")
            frames.fate.append("skipped")
            frames.backlog.append(link.backlog_bytes(t))
            continue
        packet = sizes.packet_bytes(k, i, keyframe=key)
        c = compute.seconds(k, i)
        res = session.send(i, t, k, packet, c, keyframe=key)
        if schedule is not None:
            schedule.sent(keyframe=key, full_header=key)
        frames.budget.append(k)
        frames.packet.append(packet)
        frames.overhead.append(overhead)
        frames.compute.append(c)
        frames.latency.append(math.nan if res.arrival_time is None else res.arrival_time - t)
        frames.departure.append(math.nan if res.departure_time is None else res.departure_time)
        frames.service_start.append(math.nan if res.service_start is None else res.service_start)
        frames.link.append(res.fate)
        frames.fate.append(frame_fate(t, res.arrival_time, deadline))
        frames.backlog.append(res.backlog_bytes)
    summary = summarize(frames, deadline, fps, s.min_budget)
    assert summary["misses"] == session.fates.misses and session.fates.captured == n
    summary["recovery_frames"] = step_recoveries(trace, frames, deadline, fps)
    summary["controller_outages_seen"] = getattr(ctrl, "outages", None)
    return RunResult(getattr(trace, "name", "trace"), name, frames, summary)


@dataclass
class SharedResult:
    """N robots on one bottleneck: each robot's summary and the link's."""

    trace: str
    controller: str
    robots: list[dict[str, Any]]
    summary: dict[str, Any]


def simulate_shared(
    trace: Trace,
    controller: str,
    n_robots: int,
    *,
    settings: ControllerSettings | None = None,
    sizes: SizeModel | None = None,
    compute: ComputeModel | None = None,
    config: SimConfig | None = None,
) -> SharedResult:
    """``n_robots`` senders, each with its own controller, on one link emulator (one queue).

    The robots' cameras run at the same rate with their captures spread evenly over the
    frame period; every packet enters the shared queue at its send time, in time order.
    Allocation is whatever independent controllers sharing a queue arrive at (no
    coordinator): each sees only its own packets' reports. A clairvoyant controller (the
    oracle) is refused: its view of the future assumes it is alone on the link."""
    from embodied.control.registry import get_spec

    if n_robots < 1:
        raise ValueError(f"n_robots={n_robots} must be >= 1")
    if get_spec(controller).needs_world:
        raise ValueError(f"controller {controller!r} sees the future of a link it owns alone")
    cfg = config or SimConfig()
    sizes = LinearSizeModel() if sizes is None else sizes
    compute = compute or ComputeModel()
    link = LinkEmulator(trace, cfg.link)
    fps = cfg.frame_rate_hz
    schedules = [_schedule(sizes) for _ in range(n_robots)]
    sessions = [
        LinkSession(
            Sender(make_controller(controller, settings, frame_rate_hz=fps),
                   loss_timeout_s=cfg.loss_timeout_s, stream=sch),
            trace, feedback_delay_s=cfg.feedback_delay_s, emulator=link,
        )
        for sch in schedules
    ]  # fmt: skip
    duration = trace.period_s if cfg.duration_s is None else cfg.duration_s
    n = round(duration * fps)
    sends: list[tuple[float, int, int, float, int, int, float, bool]] = []  # heap by send time
    keys = [0] * n_robots

    def flush(until: float) -> None:
        while sends and sends[0][0] <= until:
            _, _, r, t, k, size, c, key = heapq.heappop(sends)
            sessions[r].send(keys[r], t, k, size, c, keyframe=key)
            keys[r] += 1

    seq = 0
    for i in range(n):
        for r, sess in enumerate(sessions):
            t = (i + r / n_robots) / fps
            flush(t)
            key = sess.sender.next_is_keyframe
            k = sess.next_budget(t)
            if k == SKIP:
                continue
            size = sizes.packet_bytes(k, i * n_robots + r, keyframe=key)
            c = compute.seconds(k, i)
            heapq.heappush(sends, (t + c, seq, r, t, k, size, c, key))
            sch = schedules[r]
            if sch is not None:
                sch.sent(keyframe=key, full_header=key)
            seq += 1
    flush(math.inf)
    for sess in sessions:
        sess.deliver_reports(math.inf)
    per = []
    for r, sess in enumerate(sessions):
        f, st = sess.fates, sess.stats
        per.append({"robot": r, **f.as_dict(), "mean_budget": st.summary()["budget_mean"],
                    "packet_kbps": sum(st.packet_bits) / duration / 1e3})  # fmt: skip
    total = FateCounts()
    for sess in sessions:
        total += sess.fates
    budgets = [p["mean_budget"] for p in per]
    jain = sum(budgets) ** 2 / (len(budgets) * sum(b * b for b in budgets)) if any(budgets) else 1.0
    summary = {
        "robots": n_robots, **total.as_dict(),
        "mean_budget": float(np.mean(budgets)), "fairness_jain": jain,
        "packet_kbps": sum(p["packet_kbps"] for p in per),
        "capacity_kbps": trace.delivered_bytes(duration) * 8.0 / duration / 1e3,
    }  # fmt: skip
    return SharedResult(getattr(trace, "name", "trace"), controller, per, summary)


def summarize(frames: Frames, deadline: float, fps: float, min_budget: int = 1) -> dict[str, Any]:
    fate = np.array(frames.fate)
    outage = np.array(frames.outage, dtype=bool)
    budget = np.array(frames.budget)
    latency = np.array(frames.latency)
    wire = (np.array(frames.packet) + np.array(frames.overhead)) * 8.0
    # Utilization: bytes that left the bottleneck in each frame slot. FIFO on the
    # service curve: by the time it reaches S, packet i has sent clip(S - start_i, 0, w_i).
    n = len(fate)
    usable = np.array(frames.usable_bits)
    capacity = np.array(frames.capacity_bits)
    start = np.array(frames.service_start)
    took = ~np.isnan(start)
    p, w = start[took], wire[took] / 8.0
    if n and len(p):
        edges = np.array([*frames.served_by, frames.served_by[-1] + capacity[-1] / 8.0])
        idx = np.searchsorted(p + w, edges, side="right")  # packets fully sent by each edge
        nxt = np.minimum(idx, len(p) - 1)
        partial = np.where(idx < len(p), np.clip(edges - p[nxt], 0.0, w[nxt]), 0.0)
        departed = np.concatenate([[0.0], np.cumsum(w)])[idx] + partial
        served = np.diff(departed) * 8.0
    else:
        served = np.zeros(n)
    event = np.array(frames.link)
    link_loss = (event == "random_loss") | (event == "burst_loss")
    on_time = fate == "on_time"
    miss = np.isin(fate, sorted(MISSES))
    ok = ~outage
    duration = n / fps
    sent = fate != "skipped"
    sent_ok = ok & sent
    lat_ok = latency[ok & (event == "delivered")]
    fates = FateCounts()
    for f in FATES:
        fates.add(f, int((fate == f).sum()))

    def pct(a: float, b: float) -> float:
        return 100.0 * a / b if b > 0 else 0.0

    return {
        "frames": n,
        # the one definition (embodied.pipeline): late, lost or skipped, of frames captured
        "misses": fates.misses,
        "miss_pct": 100.0 * fates.miss_rate,
        "late": fates.late,
        "lost": fates.lost,
        "skipped": fates.skipped,
        # diagnostics: where the misses come from
        "outage_frames": int(outage.sum()),
        "miss_pct_outside_outages": pct((miss & ok).sum(), ok.sum()),
        "queue_drops": int((event == "queue_drop").sum()),
        "link_losses": int(link_loss.sum()),
        "outage_on_time": int((on_time & outage).sum()),
        "util_pct": pct(np.minimum(served, usable)[ok].sum(), usable[ok].sum()),
        "util_raw_pct": pct(served[ok].sum(), capacity[ok].sum()),
        "mean_budget": float(budget[sent_ok].mean()) if sent_ok.any() else 0.0,
        "effective_budget": float(np.where(on_time, budget, 0).mean()) if n else 0.0,
        "min_budget_share_pct": pct((budget[sent_ok] == min_budget).sum(), sent_ok.sum()),
        "packet_kbps": float(np.sum(frames.packet) * 8.0 / duration / 1e3),
        "overhead_kbps": float(np.sum(frames.overhead) * 8.0 / duration / 1e3),
        "capacity_kbps": float(np.sum(frames.capacity_bits) / duration / 1e3),
        "latency_p50_ms": float(np.percentile(lat_ok, 50) * 1e3) if lat_ok.size else math.nan,
        "latency_p95_ms": float(np.percentile(lat_ok, 95) * 1e3) if lat_ok.size else math.nan,
        "max_backlog_bytes": float(np.max(frames.backlog)) if n else 0.0,
    }


def step_recoveries(trace: Trace, frames: Frames, deadline: float, fps: float) -> list[int]:
    """Frames from each ≥10× drop in capacity (into a level that is not an outage)
    until the first frame that starts one second of frames all on time."""
    if not isinstance(trace, RateTrace):
        return []
    n = len(frames.fate)
    on_time = [f == "on_time" for f in frames.fate]
    out = []
    rates = trace.rates_bps
    for j in range(1, len(rates)):
        if rates[j] > 0 and rates[j] * 10 <= rates[j - 1]:
            first = math.ceil(trace.times_s[j] * fps - 1e-9)
            if first >= n or frames.outage[first]:
                continue
            window = round(fps)
            k = next(
                (f for f in range(first, n - window) if all(on_time[f : f + window])),
                n - first,
            )
            out.append(k - first)
    return out


# -- output ------------------------------------------------------------------------------
TABLE_COLUMNS = (
    ("trace", "trace", "{}"),
    ("controller", "controller", "{}"),
    ("miss%", "miss_pct", "{:.2f}"),
    ("late", "late", "{}"),
    ("lost", "lost", "{}"),
    ("skip", "skipped", "{}"),
    ("outage", "outage_frames", "{}"),
    ("util%", "util_pct", "{:.0f}"),
    ("raw%", "util_raw_pct", "{:.0f}"),
    ("budget", "mean_budget", "{:.1f}"),
    ("eff", "effective_budget", "{:.1f}"),
    ("kbps", "packet_kbps", "{:.2f}"),
    ("+ovh", "overhead_kbps", "{:.2f}"),
    ("p95ms", "latency_p95_ms", "{:.0f}"),
)


MARKDOWN_COLUMNS = (
    ("trace", "trace", "{}"),
    ("controller", "controller", "{}"),
    ("miss %", "miss_pct", "{:.2f}"),
    ("late / lost / skipped", None, "{late} / {lost} / {skipped}"),
    ("outage frames", None, "{outage_frames} / {frames}"),
    ("miss % outside outages", "miss_pct_outside_outages", "{:.2f}"),
    ("util %", "util_pct", "{:.0f}"),
    ("mean budget", "mean_budget", "{:.1f}"),
    ("on-time budget", "effective_budget", "{:.1f}"),
    ("kbit/s packets + overhead", None, "{packet_kbps:.2f} + {overhead_kbps:.2f}"),
    ("p95 ms", "latency_p95_ms", "{:.0f}"),
)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The docs/link.md table (``--markdown``)."""
    head = "| " + " | ".join(h for h, _, _ in MARKDOWN_COLUMNS) + " |"
    align = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(MARKDOWN_COLUMNS))) + "|"
    lines = [head, align]
    for r in rows:
        cells = [fmt.format(r[key]) if key else fmt.format(**r) for _, key, fmt in MARKDOWN_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for h, _, _ in TABLE_COLUMNS]]
    for r in rows:
        cells.append([fmt.format(r[key]) for _, key, fmt in TABLE_COLUMNS])
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_COLUMNS))]
    lines = []
    for j, c in enumerate(cells):
        lines.append(
            "  ".join(
                x.ljust(w) if i < 2 else x.rjust(w)
                for i, (x, w) in enumerate(zip(c, widths, strict=True))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_timeline(
    results: list[RunResult], trace: Trace, deadline: float, fps: float, path: Path
) -> None:
    """Capacity, sent bit rate, budget and latency over time, one line per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True)
    t = np.array(results[0].frames.capture)
    cap = np.array(results[0].frames.capacity_bits) * fps / 1e3
    outage = np.array(results[0].frames.outage)
    win = max(1, round(fps))  # trailing 1-s mean for rates

    def smooth(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(x)])
        i = np.arange(1, len(x) + 1)
        lo = np.maximum(0, i - win)
        return (c[i] - c[lo]) / (i - lo)

    for ax in axes:
        ax.fill_between(
            t, 0, 1, where=outage, transform=ax.get_xaxis_transform(), color="0.9", lw=0
        )
    axes[0].plot(t, cap, color="k", lw=1, label="capacity")
    axes[0].set_ylabel("capacity kbit/s")
    for r in results:
        f = r.frames
        wire = (np.array(f.packet) + np.array(f.overhead)) * 8.0 * fps / 1e3
        axes[1].plot(t, smooth(wire), lw=0.8, label=r.controller)
        axes[2].plot(t, f.budget, lw=0.6, label=r.controller)
        axes[3].plot(t, np.array(f.latency) * 1e3, lw=0.6, label=r.controller)
    axes[1].plot(t, smooth(cap), color="k", lw=1, label="capacity")
    axes[1].set_ylabel("sent kbit/s (1 s avg, wire)")
    axes[2].set_ylabel("budget (0 = skipped)")
    axes[3].axhline(deadline * 1e3, color="r", ls="--", lw=1, label="deadline")
    axes[3].set_ylabel("latency ms")
    axes[3].set_ylim(0, deadline * 1e3 * 3)
    axes[3].set_xlabel("time s (grey: outage)")
    axes[1].legend(loc="upper right", fontsize=7, ncol=4)
    fig.suptitle(f"link-sim: {results[0].trace}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_results(results: list[RunResult], out: Path, meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"trace": r.trace, "controller": r.controller, **r.summary} for r in results]
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=1, default=str)
    )
    keys = [k for k in rows[0] if k != "recovery_frames"] + ["recovery_frames"]
    with (out / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for row in rows:
            w.writerow({**row, "recovery_frames": " ".join(map(str, row["recovery_frames"]))})


# -- command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="embodied link-sim",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--all", action="store_true", help="benchmark: every controller on every shipped trace"
    )
    what.add_argument(
        "--generate",
        nargs="?",
        const=str(synthetic.SYNTHETIC_DIR),
        metavar="DIR",
        help="write the shipped synthetic traces (default: %(const)s)",
    )
    what.add_argument("--list", action="store_true", help="list shipped traces and controllers")
    p.add_argument(
        "--markdown", action="store_true", help="print the table as markdown (docs/link.md)"
    )
    p.add_argument(
        "--trace", default="cellular", help="shipped trace name or a trace file (default: cellular)"
    )
    p.add_argument(
        "--scale", type=float, default=None, help="capacity scale for a trace file (default 1)"
    )
    p.add_argument(
        "--controller", action="append", help=f"one of {', '.join(REGISTRY)} (repeatable)"
    )
    p.add_argument(
        "--budget", type=int, default=0, help="budget of the fixed controller (0 = --max-budget)"
    )
    p.add_argument(
        "--robots",
        type=int,
        default=1,
        help="N robots share one bottleneck, each with its own controller: the link and its "
        "queue are N times one robot's (the trace scaled by N), captures spread over the frame",
    )
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--deadline-ms", type=float, default=100.0)
    p.add_argument("--min-budget", type=int, default=1)
    p.add_argument("--max-budget", type=int, default=64)
    p.add_argument("--k-max", type=int, default=64)
    p.add_argument(
        "--duration", type=float, default=None, help="seconds to run (default: the trace once)"
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=0.0,
        help="with --all: at most this many seconds of each trace (default 0: all of it)",
    )
    p.add_argument(
        "--overhead",
        type=int,
        default=DEFAULT_OVERHEAD_BYTES,
        help="transport bytes per packet (default 8, compact radio framing; 28 = UDP/IPv4)",
    )
    p.add_argument("--prop-ms", type=float, default=20.0, help="one-way propagation delay")
    p.add_argument(
        "--queue-bytes", type=float, default=3000.0, help="drop-tail limit (0 = unlimited)"
    )
    p.add_argument("--loss", type=float, default=0.0, help="random loss probability per packet")
    p.add_argument(
        "--burst",
        default=None,
        metavar="P_GB,P_BG",
        help="Gilbert-Elliott burst loss, transition probabilities per frame interval "
        "(Bad loses everything), e.g. 0.01,0.3",
    )
    p.add_argument(
        "--size-table",
        type=Path,
        default=None,
        help='JSON {"budget": [...], "bytes": [...]} (+ "inter_bytes", "keyframe_interval" for '
        "a codec across frames, as embodied inter-prior writes)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default results/link)"
    )
    return p


def _schedule(sizes: SizeModel) -> KeyframeSchedule | None:
    """The keyframe rule of a stream whose sizes depend on it (a table with inter sizes)."""
    if isinstance(sizes, InterTableSizeModel):
        return KeyframeSchedule(sizes.keyframe_interval)
    return None


def _sizes(args: argparse.Namespace) -> SizeModel:
    if args.size_table is not None:
        return TableSizeModel.from_json(args.size_table, seed=args.seed)
    return LinearSizeModel(seed=args.seed)


def _burst(spec: str | None, fps: float) -> GilbertElliott | None:
    if spec is None:
        return None
    try:
        p_gb, p_bg = (float(x) for x in spec.split(","))
    except ValueError:
        raise ValueError(f"--burst expects P_GB,P_BG (two probabilities), got {spec!r}") from None
    return GilbertElliott(p_gb, p_bg, step_s=1.0 / fps)


def _config(args: argparse.Namespace, duration: float | None) -> SimConfig:
    link = LinkConfig(
        propagation_delay_s=args.prop_ms / 1e3,
        queue_limit_bytes=args.queue_bytes or None,
        overhead_bytes=args.overhead,
        loss_rate=args.loss,
        burst_loss=_burst(args.burst, args.fps),
        seed=args.seed,
    )
    trace = getattr(args, "trace", None)
    if isinstance(trace, str) and trace in catalog.TRACES and not Path(trace).exists():
        link = catalog.entry(trace).link_config(link)  # a profile's own link parameters
    return SimConfig(frame_rate_hz=args.fps, duration_s=duration, link=link)


def _load_trace(spec: str, scale: float | None) -> Trace:
    path = Path(spec)
    if path.exists():
        return read_trace(path, scale=1.0 if scale is None else scale)
    e = catalog.entry(spec)
    return read_trace(e.path, scale=e.scale if scale is None else scale, name=e.name)


def run_benchmark(args: argparse.Namespace, settings: ControllerSettings) -> list[RunResult]:
    from tqdm import tqdm

    jobs = [(e, c) for e in catalog.SHIPPED for c in BENCH_CONTROLLERS]
    results: list[RunResult] = []
    by_trace: dict[str, list[RunResult]] = {}
    with tqdm(total=len(jobs), desc="link-sim", unit="run", file=sys.stderr) as bar:
        for e, (label, name, changes) in jobs:
            trace = e.load()
            duration = min(trace.period_s, args.max_duration or math.inf)
            bar.set_postfix_str(f"{e.name}/{label}")
            r = simulate(
                trace,
                name,
                settings=replace(settings, **changes),
                sizes=_sizes(args),
                compute=ComputeModel(seed=args.seed + 1),
                config=_config(args, duration),
                label=label,
            )
            r.summary["kind"] = e.kind
            results.append(r)
            by_trace.setdefault(e.name, []).append(r)
            bar.update()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rs in by_trace.items():
        plot_timeline(
            rs,
            catalog.entry(name).load(),
            settings.deadline_ms / 1e3,
            args.fps,
            args.out / f"{name}.png",
        )
    return results


def _run_shared(args: argparse.Namespace, settings: ControllerSettings, meta: dict) -> int:
    """``--robots N``: each ``--controller`` on N robots sharing one link (no plots)."""
    n = args.robots
    try:
        one = (
            args.scale
            if args.scale is not None
            else (1.0 if Path(args.trace).exists() else catalog.entry(args.trace).scale)
        )
        trace = _load_trace(args.trace, one * n)  # one robot's share, times N
    except (KeyError, ValueError, OSError) as e:
        print(f"embodied link-sim: {e}", file=sys.stderr)
        return 2
    cfg = _config(args, args.duration)
    queue = None if cfg.link.queue_limit_bytes is None else cfg.link.queue_limit_bytes * n
    cfg = replace(cfg, link=replace(cfg.link, queue_limit_bytes=queue))
    rows = []
    for name in args.controller or ["deadline"]:
        try:
            r = simulate_shared(trace, name, n, settings=settings, sizes=_sizes(args),
                                compute=ComputeModel(seed=args.seed + 1), config=cfg)  # fmt: skip
        except (KeyError, ValueError) as e:
            print(f"embodied link-sim: {e.args[0]}", file=sys.stderr)
            return 2
        rows.append({"trace": trace.name, "controller": name, **r.summary, "per_robot": r.robots})
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "robots": n, "trace_scale": one * n, "queue_bytes": queue}
    (args.out / "shared.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"{n} robots on one link ({trace.name} at {n}x one robot's share, queue {queue} bytes):")
    print(f"{'controller':<10} {'miss%':>6} {'late':>6} {'lost':>6} {'skip':>6} {'budget':>7} "
          f"{'fairness':>8} {'kbps':>8} {'capacity':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['controller']:<10} {r['deadline_miss_pct']:6.2f} {r['late']:6d} {r['lost']:6d} "
              f"{r['skipped']:6d} {r['mean_budget']:7.1f} {r['fairness_jain']:8.3f} "
              f"{r['packet_kbps']:8.1f} {r['capacity_kbps']:9.1f}")  # fmt: skip
    print(f"misses: late, lost or skipped, of frames captured (all robots). Written to {args.out}/")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.generate is not None:
        from embodied.link.profiles import NARROWBAND_DIR, write_narrowband

        for path in synthetic.write_shipped(args.generate):
            print(path)
        for path in write_narrowband(Path(args.generate).parent / NARROWBAND_DIR.name):
            print(path)
        return 0
    if args.list:
        print("traces:")
        for e in catalog.SHIPPED:
            print(f"  {e.name:<12} {e.kind:<9} scale {e.scale:g}: {e.description}")
        print("controllers:")
        for spec in REGISTRY.values():
            print(f"  {spec.name:<9} {spec.summary}")
        return 0
    try:
        settings = ControllerSettings(
            deadline_ms=args.deadline_ms,
            min_budget=args.min_budget,
            max_budget=args.max_budget,
            budget=args.budget or 0,
            k_max=args.k_max,
        )
        _config(args, None)  # validate the link options before running anything
    except ValueError as e:
        print(f"embodied link-sim: {e}", file=sys.stderr)
        return 2
    sizes = _sizes(args)
    meta = {
        "fps": args.fps,
        "deadline_ms": args.deadline_ms,
        "overhead_bytes": args.overhead,
        "propagation_ms": args.prop_ms,
        "queue_bytes": args.queue_bytes,
        "loss": args.loss,
        "burst": args.burst,
        "seed": args.seed,
        "size_model": sizes.description,
        "compute_model": ComputeModel().description,
        "settings": asdict(settings),
    }
    if args.all:
        meta["max_duration_s"] = args.max_duration
        results = run_benchmark(args, settings)
    else:
        try:
            trace = _load_trace(args.trace, args.scale)
        except (KeyError, ValueError, OSError) as e:
            print(f"embodied link-sim: {e}", file=sys.stderr)
            return 2
        if args.robots > 1:
            return _run_shared(args, settings, meta)
        results = []
        for name in args.controller or ["deadline"]:
            try:
                results.append(
                    simulate(
                        trace,
                        name,
                        settings=settings,
                        sizes=_sizes(args),
                        compute=ComputeModel(seed=args.seed + 1),
                        config=_config(args, args.duration),
                    )
                )
            except KeyError as e:
                print(f"embodied link-sim: {e.args[0]}", file=sys.stderr)
                return 2
        args.out.mkdir(parents=True, exist_ok=True)
        plot_timeline(
            results,
            trace,
            settings.deadline_ms / 1e3,
            args.fps,
            args.out / f"{results[0].trace}.png",
        )
    write_results(results, args.out, meta)
    rows = [{"trace": r.trace, "controller": r.controller, **r.summary} for r in results]
    print(markdown_table(rows) if args.markdown else format_table(rows))
    steps = [
        f"{r.trace}/{r.controller}: {r.summary['recovery_frames']}"
        for r in results
        if r.summary["recovery_frames"]
    ]
    if steps:
        print("\nframes from a >=10x drop until a second of on-time frames: " + ", ".join(steps))
    print(
        "\nmiss%: frames late, lost or skipped, of frames captured (outage frames included; "
        "miss_pct_outside_outages in the JSON leaves them out);"
    )
    print(f"util% is of min(capacity, max-budget rate); raw% of capacity. Written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``embodied bench ros``: image → action latency over real DDS loopback, and a soak.

The benchmark process is the camera and the robot: it publishes 64×64 frames (with a
proprioception message of the same stamp and a latched instruction) at ``--fps`` to a
tokenizer node and a policy node running as separate processes, exactly as the sim
graph runs them, and times each action chunk from the frame's capture stamp (carried
back in the chunk's layout label) to its arrival here. That includes three DDS hops
(image, packet, action) and both nodes' Python callbacks; the policy node's own
capture → publish latency (from ``/diagnostics``) is reported beside it.

Over the run it samples each process's resident memory (``/proc/PID/status``) and the
queues the nodes report (the tokenizer's unacknowledged packets, the policy's
proprioception buffer): the soak verdict is about their growth after warm-up.

Targets (issue 7): p50 <= 10 ms, p99 <= 25 ms at 30 frames/s and 64 tokens; no growth of
memory or queues over a 10-minute run (``--duration 600``, the default).

    embodied bench ros --duration 60 --tokenizer-dir /tmp/models/tok-task \\
        --policy-dir /tmp/models/vla-task --json results/ros_bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ros_nodes.common import DEFAULT_POLICY_DIR, DEFAULT_TOKENIZER_DIR

TARGET_P50_MS = 10.0
TARGET_P99_MS = 25.0
#: Soak verdict: resident memory may grow by at most this much after warm-up (allocator
#: noise and lazily loaded libraries are a few MB; a leak of one message per frame at
#: 30 frames/s over 10 minutes is far more).
MAX_RSS_GROWTH_MB = 8.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        pass
    return math.nan


def _frames(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth synthetic scenes (a gradient and a moving block), not noise: the codec's
    cost on noise is not what a camera sends."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for i in range(n):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 0] = (xx * 255 // size).astype(np.uint8)
        img[..., 1] = (yy * 255 // size).astype(np.uint8)
        img[..., 2] = 96
        x0, y0 = (i * 3) % (size - 12), (i * 2) % (size - 12)
        img[y0 : y0 + 12, x0 : x0 + 12] = rng.integers(0, 255, 3, dtype=np.uint8)
        out.append(img)
    return out


def _linear_slope(t: list[float], y: list[float]) -> float:
    if len(t) < 2:
        return math.nan
    return float(np.polyfit(np.asarray(t), np.asarray(y), 1)[0])


def _spawn(args: argparse.Namespace, env: dict[str, str]) -> dict[str, subprocess.Popen]:
    from ros_nodes.graphs import resolve_executable

    common = ["--ros-args", "--log-level", "warn"]
    tok = [
        resolve_executable("embodied-tokenizer-node"), *common, "-r", "__node:=tokenizer",
        "-p", f"tokenizer_dir:={args.tokenizer_dir}", "-p", "controller:=fixed",
        "-p", f"budget:={args.budget}", "-p", f"frame_rate_hz:={float(args.fps)}",
        "-p", "log_changes:=false", "-p", f"codec:={args.codec}",
    ]  # fmt: skip
    pol = [
        resolve_executable("embodied-policy-node"), *common, "-r", "__node:=policy",
        "-p", f"tokenizer_dir:={args.tokenizer_dir}", "-p", f"policy_dir:={args.policy_dir}",
        "-p", "watchdog_ms:=1000.0", "-p", "strict_model_check:=false",  # latency only
    ]  # fmt: skip
    if args.providers:
        pol += ["-p", f"providers:={args.providers}"]
    return {
        "tokenizer": subprocess.Popen(tok, env=env),
        "policy": subprocess.Popen(pol, env=env),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray, String

    from ros_nodes.common import (
        diag_values,
        msg_to_chunk,
        ns_to_stamp,
        rgb_to_image,
        topic_qos,
    )
    from ros_nodes.wire import PROPRIO_NAMES, TOPICS

    env = dict(
        os.environ, ROS_DOMAIN_ID=str(args.domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"
    )
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    procs = _spawn(args, env)
    rclpy.init(args=[])
    node = rclpy.create_node("embodied_bench_ros", start_parameter_services=False)
    from sensor_msgs.msg import Image

    image_pub = node.create_publisher(Image, TOPICS["image"].name, topic_qos("image"))
    proprio_pub = node.create_publisher(JointState, TOPICS["proprio"].name, topic_qos("proprio"))
    instr_pub = node.create_publisher(
        String, TOPICS["instruction"].name, topic_qos("instruction", depth=1)
    )
    instr_pub.publish(String(data=args.instruction))
    frames = _frames(64, 64)
    sent: dict[int, int] = {}  # capture stamp → frame index
    lat_ms: list[float] = []
    state: dict[str, Any] = {
        "ready": False,
        "measuring": False,
        "published": 0,
        "chunks": 0,
        "holds": 0,
        "unanswered": 0,
    }
    diag: dict[str, dict[str, str]] = {}
    samples: list[dict[str, float]] = []

    by_phase: dict[str, list[float]] = {"without view": [], "with view": []}

    def on_actions(msg: Float32MultiArray) -> None:
        t = time.time_ns()
        chunk, stamp, _ = msg_to_chunk(msg)
        if chunk.shape[0] == 0:
            state["holds"] += 1
            return
        if stamp in sent:
            sent.pop(stamp)
            state["ready"] = True
            if state["measuring"]:
                lat_ms.append((t - stamp) / 1e6)
                state["chunks"] += 1
                if state.get("phase"):
                    by_phase[state["phase"]].append((t - stamp) / 1e6)

    def on_diag(msg: DiagnosticArray) -> None:
        diag.update(diag_values(msg))

    node.create_subscription(
        Float32MultiArray, TOPICS["actions"].name, on_actions, topic_qos("actions")
    )
    node.create_subscription(
        DiagnosticArray, TOPICS["diagnostics"].name, on_diag, topic_qos("diagnostics")
    )

    def tick() -> None:
        t = time.time_ns()
        stamp = ns_to_stamp(t)
        i = state["published"]
        image_pub.publish(rgb_to_image(frames[i % len(frames)], stamp, "bench"))
        js = JointState(name=list(PROPRIO_NAMES), position=[0.0, 0.6, 0.2, 1.0])
        js.header.stamp = stamp
        proprio_pub.publish(js)
        sent[t] = i
        while sent and next(iter(sent)) < t - 1_000_000_000:  # no answer within 1 s: lost
            sent.pop(next(iter(sent)))
            if state["measuring"]:
                state["unanswered"] += 1
        if state["measuring"]:
            state["published_measured"] = state.get("published_measured", 0) + 1
        state["published"] = i + 1

    timer = None
    view_ab: _ViewAB | None = None
    t_start = time.monotonic()
    try:
        # wait until the pipeline answers (model loading, discovery), then warm up
        ready_deadline = time.monotonic() + args.startup_timeout
        timer = node.create_timer(1.0 / args.fps, tick)
        while not state["ready"]:
            rclpy.spin_once(node, timeout_sec=0.05)
            if any(p.poll() is not None for p in procs.values()):
                raise RuntimeError("a node exited during start-up (see its log above)")
            if time.monotonic() > ready_deadline:
                raise RuntimeError(f"no action chunk within {args.startup_timeout} s")
        warm_end = time.monotonic() + args.warmup
        while time.monotonic() < warm_end:
            rclpy.spin_once(node, timeout_sec=0.05)
        state["measuring"] = True
        t0 = time.monotonic()
        end = t0 + args.duration
        next_sample = t0
        print(f"measuring {args.duration:.0f} s at {args.fps} frames/s, budget {args.budget} ...",
              file=sys.stderr, flush=True)  # fmt: skip
        view_ab = _ViewAB(args, env, node) if args.view else None
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
            now = time.monotonic()
            if view_ab is not None:
                state["phase"] = view_ab.phase(now - t0)
            if now >= next_sample:
                row = {"t_s": now - t0, "bench_mb": rss_mb(os.getpid())}
                for name, p in procs.items():
                    row[f"{name}_mb"] = rss_mb(p.pid)
                tok, pol = diag.get("/tokenizer", {}), diag.get("/policy", {})
                row["tokenizer_pending"] = float(tok.get("pending", "nan"))
                row["policy_proprio_buffer"] = float(pol.get("proprio_buffer", "nan"))
                row["bench_in_flight"] = float(len(sent))
                samples.append(row)
                next_sample += args.sample_every
        state["measuring"] = False
    finally:
        if view_ab is not None:
            view_ab.stop()
        if timer is not None:
            node.destroy_timer(timer)
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        node.destroy_node()
        rclpy.try_shutdown()

    lat = np.asarray(lat_ms) if lat_ms else np.asarray([math.nan])
    p50, p99 = (float(v) for v in np.percentile(lat, [50, 99]))
    mem: dict[str, Any] = {}
    for key in ("tokenizer_mb", "policy_mb", "bench_mb"):
        ts = [s["t_s"] for s in samples]
        ys = [s[key] for s in samples]
        if len(ys) >= 2:
            head = float(np.median(ys[: max(1, len(ys) // 5)]))
            tail = float(np.median(ys[-max(1, len(ys) // 5) :]))
            mem[key] = {"start": head, "end": tail, "growth_mb": tail - head,
                        "slope_mb_per_min": _linear_slope(ts, ys) * 60.0, "max": max(ys)}  # fmt: skip
    queues = {
        k: {"max": float(np.nanmax([s[k] for s in samples])) if samples else math.nan,
            "end": samples[-1][k] if samples else math.nan}
        for k in ("tokenizer_pending", "policy_proprio_buffer", "bench_in_flight")
    }  # fmt: skip
    published = state.get("published_measured", 0)
    pol = diag.get("/policy", {})
    tok = diag.get("/tokenizer", {})
    grew = [k for k, v in mem.items() if k != "bench_mb" and v["growth_mb"] > MAX_RSS_GROWTH_MB]
    report = {
        "duration_s": args.duration,
        "fps": args.fps,
        "budget": args.budget,
        "codec": args.codec,
        "frames_published": published,
        "chunks_received": state["chunks"],
        "frames_unanswered": state["unanswered"],
        "answered_fraction": state["chunks"] / published if published else math.nan,
        "latency_ms": {
            "p50": p50,
            "p99": p99,
            "mean": float(np.nanmean(lat)),
            "max": float(np.nanmax(lat)),
            "n": len(lat_ms),
        },
        "policy_node_latency_ms": {
            "p50": float(pol.get("latency_p50_ms", "nan")),
            "p99": float(pol.get("latency_p99_ms", "nan")),
            "infer_p50": float(pol.get("infer_p50_ms", "nan")),
        },
        "tokenizer": {
            k: tok.get(k)
            for k in (
                "packet_kbps",
                "wire_kbps",
                "encode_p50_ms",
                "budget",
                "deadline_misses",
                "lost",
                "sent",
                "keyframes",
                "inter_frames",
                "full_headers",
                "keyframe_requests",
            )
        },
        # bytes of our packets per frame over the run: header + payload (wire framing apart)
        "packet_bytes_per_frame": float(tok.get("packet_kbps", "nan")) * 1e3 / 8 / args.fps,
        "policy_header_bytes": pol.get("packets_header_bytes"),
        "policy_payload_bytes": pol.get("packets_payload_bytes"),
        "policy_packets_accepted": pol.get("packets_accepted"),
        "policy_packets_dropped": pol.get("packets_dropped"),
        "memory": mem,
        "queues": queues,
        "samples": samples,
        "targets": {
            "p50_ms": TARGET_P50_MS,
            "p99_ms": TARGET_P99_MS,
            "p50_met": p50 <= TARGET_P50_MS,
            "p99_met": p99 <= TARGET_P99_MS,
            "no_memory_growth": not grew,
            "queues_bounded": all(
                q["max"] <= lim
                for q, lim in zip(queues.values(), (64.0, 64.0, 64.0), strict=True)
                if not math.isnan(q["max"])
            ),
        },
        "view": _view_report(by_phase) if args.view else None,
        "wall_s": time.monotonic() - t_start,
        "host_load_1min": os.getloadavg()[0],
    }
    return report


class _ViewAB:
    """``--view``: alternate phases of ``--view-phase`` s without and with ``embodied view``
    attached to the graph (saving to a file, as a watching person's viewer would receive it);
    a "with" phase counts from the view's subscription on, not its start-up."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], node: Any) -> None:
        self.args, self.env, self.node = args, env, node
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.out = Path(args.view_out)

    def _subscribed(self) -> bool:
        infos = self.node.get_subscriptions_info_by_topic("/tokens/packets")
        return any(i.node_name == "embodied_view" for i in infos)

    def phase(self, t: float) -> str | None:
        with_view = int(t // self.args.view_phase) % 2 == 1
        if with_view and self.proc is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "embodied.cli", "view", "--save", str(self.out),
                 "--tokenizer-dir", self.args.tokenizer_dir],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        if not with_view and self.proc is not None:
            self.stop()
        if with_view:
            return "with view" if self._subscribed() else None
        return "without view"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _view_report(by_phase: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, xs in by_phase.items():
        a = np.asarray(xs) if xs else np.asarray([math.nan])
        out[name] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                     "n": len(xs)}  # fmt: skip
    base, attached = out["without view"], out["with view"]
    out["ratio_p50"] = attached["p50"] / base["p50"] if base["p50"] else math.nan
    out["ratio_p99"] = attached["p99"] / base["p99"] if base["p99"] else math.nan
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied bench ros", description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )  # fmt: skip
    ap.add_argument("--duration", type=float, default=600.0, help="measured seconds (soak)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--budget", type=int, default=64, help="tokens per frame")
    ap.add_argument("--codec", default="tokens", choices=("tokens", "tokens-inter"),
                    help="tokens-inter: coded across frames (docs/interframe.md)")  # fmt: skip
    ap.add_argument("--tokenizer-dir", default=str(DEFAULT_TOKENIZER_DIR))
    ap.add_argument("--policy-dir", default=str(DEFAULT_POLICY_DIR))
    ap.add_argument("--providers", default="", help="policy providers ('' = TRT→CUDA→CPU)")
    ap.add_argument("--instruction", default="open the drawer")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--startup-timeout", type=float, default=60.0)
    ap.add_argument(
        "--domain-id", type=int, default=random.randint(120, 200),
        help="ROS_DOMAIN_ID of the benchmark graph (random: keeps it apart from others)",
    )  # fmt: skip
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    ap.add_argument("--view", action="store_true",
                    help="alternate phases without and with `embodied view` attached")  # fmt: skip
    ap.add_argument("--view-phase", type=float, default=15.0, help="seconds per phase")
    ap.add_argument("--view-out", default="results/bench_ros_view.rrd")
    args = ap.parse_args(argv)
    try:
        import rclpy  # noqa: F401
    except ImportError as err:
        print(f"embodied bench ros: rclpy is not installed ({err})", file=sys.stderr)
        return 2
    for d, what in ((args.tokenizer_dir, "tokenizer"), (args.policy_dir, "policy")):
        if not Path(d).is_dir():
            print(f"embodied bench ros: {what} model directory {d} not found", file=sys.stderr)
            return 2
    report = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    lat, t = report["latency_ms"], report["targets"]
    print(
        f"image→action over DDS loopback, {args.fps:g} frames/s, {args.budget} tokens, "
        f"{report['duration_s']:.0f} s: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
        f"max {lat['max']:.1f} ms (n={lat['n']}, answered "
        f"{report['answered_fraction']:.1%}); policy node capture→publish p50 "
        f"{report['policy_node_latency_ms']['p50']:.2f} ms"
    )
    tk = report["tokenizer"]
    acc = float(report["policy_packets_accepted"] or "nan")
    hdr = float(report["policy_header_bytes"] or "nan") / acc
    pay = float(report["policy_payload_bytes"] or "nan") / acc
    print(f"{args.codec}: packets of {hdr + pay:.2f} bytes as received (header {hdr:.2f}, "
          f"payload {pay:.2f}); keyframes {tk.get('keyframes', '-')}, predicted "
          f"{tk.get('inter_frames', '-')}, full headers {tk.get('full_headers', '-')}")  # fmt: skip
    print(f"targets: p50 <= {TARGET_P50_MS} ms {'met' if t['p50_met'] else 'MISSED'}, "
          f"p99 <= {TARGET_P99_MS} ms {'met' if t['p99_met'] else 'MISSED'}")  # fmt: skip
    for k, v in report["memory"].items():
        print(f"  {k:<14} RSS {v['start']:.1f} → {v['end']:.1f} MB "
              f"(growth {v['growth_mb']:+.2f} MB, slope {v['slope_mb_per_min']:+.3f} MB/min)")  # fmt: skip
    for k, v in report["queues"].items():
        print(f"  {k:<22} max {v['max']:.0f}, end {v['end']:.0f}")
    if report["view"]:
        v = report["view"]
        a, b = v["without view"], v["with view"]
        print(f"view attached: p50 {b['p50']:.2f} ms, p99 {b['p99']:.2f} ms (n={b['n']}) against "
              f"p50 {a['p50']:.2f} ms, p99 {a['p99']:.2f} ms without (n={a['n']}): "
              f"x{v['ratio_p50']:.2f} p50, x{v['ratio_p99']:.2f} p99")  # fmt: skip
    print(f"soak: memory {'flat' if t['no_memory_growth'] else 'GREW'}, queues "
          f"{'bounded' if t['queues_bounded'] else 'GREW'}; host load {report['host_load_1min']:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

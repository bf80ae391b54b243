"""Tokenizer node: camera images in, one packet per frame out, at the budget its controller sets.

    camera/image_raw (Image) ──► controller.next_budget ──► codec.encode ──► tokens/packets
    tokens/feedback (arrival reports) ──► controller.observe          (CompressedImage)

The packet is ``embodied.packet`` bytes in ``CompressedImage.data``; ``format`` names the
codec, packet version, stream id and frame size (:class:`ros_nodes.wire.PacketFormat`).
``codec`` picks the learned tokens (default) or a pixel baseline (``jpeg``, ``webp``,
``raw``, ``h264-intra``, ``h264``), whose budget is then a ladder rung (1 = smallest).

Live tuning: the controller's settings are ROS parameters whose descriptors (type, range,
description) come from :func:`embodied.control.base.settings_spec`, plus ``budget`` (the
fixed controller's budget; the held budget in mode ``hold``). A set is validated by
``controller.update_settings``; a bad value is refused with the reason and nothing
changes. The next frame is encoded with the new value (a change reaches the wire on the
next packet), so ``ros2 param set /tokenizer budget 24`` or ``embodied tune tokenizer
budget 24`` act within a frame.

    embodied-tokenizer-node --ros-args -p tokenizer_dir:=/tmp/models/tok-task -p budget:=32
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64MultiArray

from embodied.codecs import codec_names, codec_spec, make_codec
from embodied.control import SKIP, ControllerSettings, Feedback, make_controller, settings_spec
from embodied.control.registry import REGISTRY as CONTROLLERS
from ros_nodes.common import (
    BOOL,
    DEFAULT_TOKENIZER_DIR,
    FLOAT,
    INT,
    STR,
    RateMeter,
    Window,
    declare,
    descriptor,
    diagnostics,
    image_to_rgb,
    now_ns,
    ns_to_stamp,
    plain_descriptor,
    spin_node,
    stamp_ns,
    topic_qos,
)
from ros_nodes.wire import TOPICS, ArrivalReport, PacketFormat, budget_spec

#: Bytes a packet costs on an IPv4 network beyond the serialized message: UDP/IP (28),
#: RTPS header (20), DATA submessage header (24). Added to the CDR size of the message.
RTPS_UDP_OVERHEAD = 72
MAX_PENDING = 512


class TokenizerNode(Node):
    """Encodes each camera frame at the controller's budget and publishes the packet."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tokenizer", **kwargs)
        own = declare(
            self,
            {
                "tokenizer_dir": (
                    str(DEFAULT_TOKENIZER_DIR),
                    plain_descriptor("tokenizer model directory (docs/models.md)", STR,
                                     read_only=True),
                ),
                "codec": (
                    "tokens",
                    plain_descriptor("codec: learned tokens or a pixel baseline", STR,
                                     read_only=True, constraints=", ".join(codec_names())),
                ),
                "controller": (
                    "fixed",
                    plain_descriptor("budget controller", STR, read_only=True,
                                     constraints=", ".join(n for n, s in CONTROLLERS.items()
                                                           if not s.needs_world)),
                ),
                "providers": (
                    "",
                    plain_descriptor("ONNX Runtime providers for the encoder, e.g. 'cuda,cpu' "
                                     "('' = cpu)", STR, read_only=True),
                ),
                "resolution": (
                    64,
                    plain_descriptor("frame size a pixel codec encodes at (tokens: the model's)",
                                     INT, read_only=True, lo=16, hi=512),
                ),
                "frame_rate_hz": (
                    30.0,
                    plain_descriptor("expected camera rate (the controller's bit-rate model)",
                                     FLOAT, read_only=True, lo=0.1, hi=1000.0),
                ),
                "loss_timeout_ms": (
                    500.0,
                    plain_descriptor("a packet not reported by then counts as lost", FLOAT,
                                     lo=10.0, hi=60_000.0),
                ),
                "stats_period_s": (
                    1.0,
                    plain_descriptor("diagnostics period", FLOAT, read_only=True, lo=0.05,
                                     hi=60.0),
                ),
                "log_changes": (True, plain_descriptor("log accepted parameter changes", BOOL)),
            },
        )  # fmt: skip
        self.codec_name = own["codec"]
        self.loss_timeout_ns = int(own["loss_timeout_ms"] * 1e6)
        self.log_changes = bool(own["log_changes"])
        self.codec, self.k_max, self.rungs = self._make_codec(own)
        fmt = PacketFormat(self.codec_name, self.codec.model_id, self.codec.frame_shape)
        self.format = str(fmt)

        # Controller settings: descriptors generated from the settings spec (k_max from the model).
        self.specs = settings_spec(self.k_max)
        values: dict[str, Any] = {}
        for name, spec in self.specs.items():
            default = spec.default
            if name in ("k_max", "max_budget"):
                default = self.k_max
            values[name] = self.declare_parameter(name, default, descriptor(spec)).value
        if values["k_max"] != self.k_max:
            self.get_logger().warning(
                f"k_max={values['k_max']} ignored: the {self.codec_name} codec has {self.k_max}"
            )
            values["k_max"] = self.k_max
        budget = self.declare_parameter(
            "budget", values["max_budget"], descriptor(budget_spec(self.specs))
        ).value
        settings = ControllerSettings(**values)
        if not settings.min_budget <= budget <= settings.max_budget:
            raise ValueError(
                f"budget={budget} outside min_budget..max_budget = "
                f"{settings.min_budget}..{settings.max_budget}"
            )
        self.rate_hz = float(own["frame_rate_hz"])
        self.controller = make_controller(own["controller"], settings, frame_rate_hz=self.rate_hz)
        self._set_budget(budget)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.pub = self.create_publisher(
            CompressedImage, TOPICS["packets"].name, topic_qos("packets")
        )
        self.diag_pub = self.create_publisher(
            DiagnosticArray, TOPICS["diagnostics"].name, topic_qos("diagnostics")
        )
        self.create_subscription(
            Image, TOPICS["image"].name, self._on_image, topic_qos("image", depth=1)
        )
        self.create_subscription(
            Float64MultiArray, TOPICS["feedback"].name, self._on_feedback, topic_qos("feedback")
        )
        self.create_timer(0.05, self._check_losses)
        self.create_timer(float(own["stats_period_s"]), self._publish_stats)

        self.frame_count = 0
        self.pending: OrderedDict[int, Feedback] = OrderedDict()  # capture ns → sent report
        self.overhead_bytes: int | None = None
        self.counts = dict.fromkeys(
            ("frames_in", "sent", "skipped", "delivered", "lost", "late", "bad_images",
             "encode_errors", "unknown_reports"), 0,
        )  # fmt: skip
        self.bytes_meter = RateMeter()
        self.wire_meter = RateMeter()
        self.latency_ms = Window()
        self.encode_ms = Window()
        self.budgets = Window(100)
        self.last_budget = 0
        self.get_logger().info(
            f"{self.codec_name} codec ({fmt}), controller {own['controller']}, "
            f"budget {budget}, k_max {self.k_max}"
        )

    # ------------------------------------------------------------------ set-up

    def _make_codec(self, own: dict[str, Any]) -> tuple[Any, int, list[int]]:
        name = own["codec"]
        spec = codec_spec(name)  # unknown names answered with the valid ones
        if spec.kind == "tokens":
            providers = [p for p in own["providers"].split(",") if p.strip()] or None
            codec = make_codec(name, model_dir=own["tokenizer_dir"], providers=providers)
            return codec, int(codec.k_max), list(codec.budgets())
        res = int(own["resolution"])
        codec = make_codec(name, frame_shape=(res, res))
        rungs = list(codec.budgets())
        return codec, len(rungs), rungs

    # ------------------------------------------------------------------ parameters

    def _set_budget(self, budget: int) -> None:
        if hasattr(self.controller, "budget"):
            self.controller.budget = int(budget)  # the fixed controller
        self.controller.last_budget = int(budget)  # what mode 'hold' keeps
        self.budget_param = int(budget)

    def _on_set_parameters(self, params: Sequence[Any]) -> SetParametersResult:
        """Validate a set through the controller; refuse with the reason, keep the old values."""
        changes = {p.name: p.value for p in params if p.name in self.specs}
        budget = next((p.value for p in params if p.name == "budget"), None)
        s = self.controller.settings
        if budget is not None:
            lo = changes.get("min_budget", s.min_budget)
            hi = changes.get("max_budget", s.max_budget)
            if not lo <= budget <= hi:
                return SetParametersResult(
                    successful=False,
                    reason=f"budget={budget} is outside min_budget..max_budget = {lo}..{hi} "
                    f"(kept budget={self.budget_param})",
                )
        if changes:
            try:
                self.controller.update_settings(**changes)
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
        if budget is not None:
            self._set_budget(budget)
        s = self.controller.settings
        if not s.min_budget <= self.budget_param <= s.max_budget:
            self.get_logger().warning(
                f"budget={self.budget_param} lies outside min_budget..max_budget = "
                f"{s.min_budget}..{s.max_budget}: the controller clamps it"
            )
        if self.log_changes:
            what = ", ".join(f"{p.name}={p.value!r}" for p in params)
            self.get_logger().info(f"set {what}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ data path

    def _on_image(self, msg: Image) -> None:
        t_in = now_ns(self)
        self.counts["frames_in"] += 1
        try:
            frame = image_to_rgb(msg)
        except ValueError as err:
            self.counts["bad_images"] += 1
            self.get_logger().warning(str(err), throttle_duration_sec=5.0)
            return
        h, w = self.codec.frame_shape
        if frame.shape[:2] != (h, w):
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        capture = stamp_ns(msg.header.stamp) or t_in  # an unstamped camera: arrival time
        k = self.controller.next_budget(t_in / 1e9)
        if k == SKIP:
            self.counts["skipped"] += 1
            return
        t0 = time.perf_counter()
        try:
            enc = self.codec.encode(
                frame,
                budget=self.rungs[k - 1],
                frame_id=self.frame_count % 256,
                stamp_ms=(capture // 1_000_000) % 65536,
            )
        except ValueError as err:
            self.counts["encode_errors"] += 1
            self.get_logger().error(f"encode failed: {err}", throttle_duration_sec=5.0)
            return
        compute = time.perf_counter() - t0
        out = CompressedImage(format=self.format)
        out.header.stamp = ns_to_stamp(capture)
        out.header.frame_id = msg.header.frame_id
        out.data = enc.packet
        if self.overhead_bytes is None:
            self.overhead_bytes = len(serialize_message(out)) - len(enc.packet) + RTPS_UDP_OVERHEAD
        self.pub.publish(out)
        t_sent = now_ns(self)
        n = len(enc.packet)
        fb = Feedback(
            frame_id=self.frame_count, budget=k, payload_bytes=n,
            overhead_bytes=self.overhead_bytes, capture_time=capture / 1e9,
            send_time=t_sent / 1e9, compute_time=compute, status="sent",
            observed_at=t_sent / 1e9,
        )  # fmt: skip
        self.controller.observe(fb)
        self.pending[capture] = fb
        while len(self.pending) > MAX_PENDING:
            self._lost(*self.pending.popitem(last=False), t_sent)
        self.frame_count += 1
        self.counts["sent"] += 1
        self.last_budget = k
        self.budgets.add(k)
        self.encode_ms.add(compute * 1e3)
        self.bytes_meter.add(t_sent, n)
        self.wire_meter.add(t_sent, n + self.overhead_bytes)

    def _on_feedback(self, msg: Float64MultiArray) -> None:
        t = now_ns(self)
        width = 6
        data = list(msg.data)
        for i in range(0, len(data) - width + 1, width):
            try:
                rep = ArrivalReport.from_row(data[i : i + width])
            except ValueError:
                self.counts["unknown_reports"] += 1
                continue
            fb = self.pending.pop(rep.capture_ns, None)
            if fb is None:  # already counted lost, or another sender's frame
                self.counts["unknown_reports"] += 1
                continue
            self.controller.observe(
                replace(fb, status="delivered", arrival_time=rep.arrival_ns / 1e9,
                        observed_at=t / 1e9)
            )  # fmt: skip
            self.counts["delivered"] += 1
            latency = (rep.arrival_ns - rep.capture_ns) / 1e6
            self.latency_ms.add(latency)
            if latency > self.controller.settings.deadline_ms:
                self.counts["late"] += 1

    def _lost(self, capture: int, fb: Feedback, t: int) -> None:
        self.controller.observe(replace(fb, status="lost", observed_at=t / 1e9))
        self.counts["lost"] += 1

    def _check_losses(self) -> None:
        t = now_ns(self)
        while self.pending:
            capture, fb = next(iter(self.pending.items()))
            if t - int(fb.send_time * 1e9) < self.loss_timeout_ns:
                break
            self.pending.popitem(last=False)
            self._lost(capture, fb, t)

    def _publish_stats(self) -> None:
        t = now_ns(self)
        s = self.controller.settings
        c = self.counts
        values = {
            "codec": self.codec_name,
            "format": self.format,
            "controller": self.controller.name,
            "mode": s.mode,
            "budget": self.last_budget,
            "budget_param": self.budget_param,
            "budget_mean": self.budgets.mean(),
            "min_budget": s.min_budget,
            "max_budget": s.max_budget,
            "deadline_ms": s.deadline_ms,
            "bitrate_cap_kbps": s.bitrate_cap_kbps,
            "packet_kbps": self.bytes_meter.kbps(t),
            "wire_kbps": self.wire_meter.kbps(t),
            "latency_p50_ms": self.latency_ms.pct(50),
            "latency_p99_ms": self.latency_ms.pct(99),
            "encode_p50_ms": self.encode_ms.pct(50),
            "deadline_misses": c["late"] + c["lost"] + c["skipped"],
            "pending": len(self.pending),
            **c,
        }
        level, message = 0, "ok"
        if c["sent"] == 0:
            level, message = 1, "no frames encoded yet"
        self.diag_pub.publish(diagnostics(self, values, level=level, message=message))


def main(args: Sequence[str] | None = None) -> int:
    return spin_node(TokenizerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

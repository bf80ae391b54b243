"""Tokenizer node: camera images in, one packet per frame out, at the budget its controller sets.

    camera/image_raw (Image) ──► controller.next_budget ──► codec.encode ──► tokens/packets
    tokens/feedback (arrival reports) ──► controller.observe          (CompressedImage)

The packet is ``embodied.packet`` bytes in ``CompressedImage.data``; ``format`` names the
codec, packet version, stream id and frame size (:class:`ros_nodes.wire.PacketFormat`).
``codec`` picks the learned tokens (default) or a pixel baseline (``jpeg``, ``webp``,
``raw``, ``h264-intra``, ``h264``), whose budget is then a ladder rung (1 = smallest).
Images of any size and aspect ratio are accepted: each is brought to the codec's frame shape
by :func:`embodied.camera.to_model_input` (centre crop to the aspect ratio, then INTER_AREA),
the way the training frames were made.

``tokens-inter`` codes each frame against the newest one the policy node acknowledged on
``tokens/feedback`` (embodied.interframe). The reference is kept **per stream**, not per
subscriber: the packets topic is one stream, and the reports it is acknowledged by come from
its one receiving policy node; a receiver that lacks a reference (it restarted or joined
late) refuses the packet and sends a keyframe request on ``tokens/feedback`` (a row with
frame id ``KEYFRAME_REQUEST``), and the next frame goes out as a keyframe with full header
fields. Keyframes also go out at the start, after a loss and every ``keyframe_interval``.

Parameters: the node's own (:class:`ros_nodes.settings.TokenizerNodeSettings`) and the
controller's (:class:`embodied.control.base.ControllerSettings`, ``budget`` among them: the
fixed controller's budget, where mode ``hold`` starts), declared from those dataclasses'
fields (type, range, description, read-only unless live). A set is validated by the
settings it belongs to; a bad value is refused with the reason and nothing changes. The next frame is encoded with the new value (a change reaches the wire on the
next packet), so ``ros2 param set /tokenizer budget 24`` or ``embodied tune tokenizer
budget 24`` act within a frame.

    embodied-tokenizer-node --ros-args -p tokenizer_dir:=/tmp/models/tok-task -p budget:=32
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64MultiArray

from embodied.camera import to_model_input
from embodied.codecs import codec_spec, make_codec
from embodied.control import SKIP, ControllerSettings, make_controller, settings_spec
from embodied.control.base import Controller
from embodied.pipeline import INTER_CODEC, Sender
from embodied.settings import Settings
from ros_nodes.common import (
    LiveParameters,
    RateMeter,
    SettingsGroup,
    Window,
    declare_settings,
    descriptor,
    diagnostics,
    image_to_rgb,
    now_ns,
    ns_to_stamp,
    spin_node,
    stamp_ns,
    topic_qos,
)
from ros_nodes.settings import TokenizerNodeSettings
from ros_nodes.wire import (
    FEEDBACK_FIELDS,
    TOPICS,
    ArrivalReport,
    PacketFormat,
    transport_bytes,
)

MAX_PENDING = 512


class TokenizerNode(Node):
    """Encodes each camera frame at the controller's budget and publishes the packet.

    An adapter around :class:`embodied.pipeline.Sender`: it moves camera frames into the
    sender, packets onto DDS and arrival reports back; the budget, the codec setting, the
    loss rule and the miss count are the sender's. Packets are keyed by capture stamp.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("tokenizer", **kwargs)
        self.p = declare_settings(self, TokenizerNodeSettings())
        self.codec_name = self.p.codec
        self.codec = self._make_codec()
        k_max = len(list(self.codec.budgets()))
        fmt = PacketFormat(self.codec_name, self.codec.model_id, self.codec.frame_shape)
        self.format = str(fmt)

        # Controller settings: parameters from ControllerSettings' fields (k_max from the model).
        declared = declare_settings(self, ControllerSettings.for_k_max(k_max), skip=("k_max",))
        self.declare_parameter("k_max", k_max, descriptor(settings_spec(k_max)["k_max"]))
        settings = ControllerSettings.for_k_max(
            k_max, **{k: v for k, v in dataclasses.asdict(declared).items() if k != "k_max"}
        )
        controller = make_controller(
            self.p.controller, settings, frame_rate_hz=self.p.frame_rate_hz
        )
        self.sender = Sender(
            controller, codec=self.codec, loss_timeout_s=self.p.loss_timeout_ms / 1e3,
            max_pending=MAX_PENDING,
        )  # fmt: skip
        self.params = LiveParameters(
            self,
            [SettingsGroup(lambda: self.p, self._apply_own),
             SettingsGroup(lambda: self.controller.settings, self._apply_controller)],
            log=lambda: self.p.log_changes,
        )  # fmt: skip

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
        self.create_timer(self.p.stats_period_s, self._publish_stats)

        self.frame_count = 0
        self.overhead_bytes: int | None = None
        self.counts = dict.fromkeys(
            ("frames_in", "sent", "bad_images", "encode_errors", "keyframe_requests", "errors"), 0
        )
        self.bytes_meter = RateMeter()
        self.wire_meter = RateMeter()
        self.latency_ms = Window()
        self.encode_ms = Window()
        self.budgets = Window(100)
        self.last_budget = 0
        self.get_logger().info(
            f"{self.codec_name} codec ({fmt}), controller {self.p.controller}, "
            f"budget {settings.fixed_budget}, k_max {k_max}"
        )

    @property
    def controller(self) -> Controller:
        return self.sender.controller

    # ------------------------------------------------------------------ set-up

    def _make_codec(self) -> Any:
        name = self.p.codec
        if codec_spec(name).kind == "tokens":  # unknown names answered with the valid ones
            providers = [p for p in self.p.providers.split(",") if p.strip()] or None
            kw: dict[str, Any] = {}
            if name == INTER_CODEC:  # stream set-up: what compact headers leave out
                kw = {"keyframe_interval": self.p.keyframe_interval,
                      "frame_period_ms": 1000.0 / self.p.frame_rate_hz}  # fmt: skip
            return make_codec(name, model_dir=self.p.tokenizer_dir, providers=providers, **kw)
        res = self.p.resolution
        return make_codec(name, frame_shape=(res, res))

    # ------------------------------------------------------------------ parameters

    def _apply_own(self, new: Settings, changes: dict[str, Any]) -> None:
        assert isinstance(new, TokenizerNodeSettings)
        self.p = new
        self.sender.loss_timeout_s = new.loss_timeout_ms / 1e3

    def _apply_controller(self, new: Settings, changes: dict[str, Any]) -> None:
        self.controller.update_settings(**changes)  # validated already: cannot fail

    # ------------------------------------------------------------------ data path

    def _on_image(self, msg: Image) -> None:
        try:
            self._handle_image(msg)
        except Exception as err:  # one bad frame must never stop the camera stream
            self.counts["errors"] += 1
            self.get_logger().error(f"frame handling failed: {err!r}", throttle_duration_sec=2.0)

    def _on_feedback(self, msg: Float64MultiArray) -> None:
        try:
            self._handle_feedback(msg)
        except Exception as err:  # a bad report is counted and dropped, never fatal
            self.counts["errors"] += 1
            self.get_logger().error(f"feedback handling failed: {err!r}", throttle_duration_sec=2.0)

    def _handle_image(self, msg: Image) -> None:
        t_in = now_ns(self)
        self.counts["frames_in"] += 1
        try:
            frame = image_to_rgb(msg)
        except ValueError as err:
            self.counts["bad_images"] += 1
            self.get_logger().warning(str(err), throttle_duration_sec=5.0)
            return
        # any camera size and aspect ratio: centre crop + INTER_AREA, as training saw frames
        frame = to_model_input(frame, self.codec.frame_shape)
        capture = stamp_ns(msg.header.stamp) or t_in  # an unstamped camera: arrival time
        k = self.sender.next_budget(t_in / 1e9)
        self.last_budget = k
        if k == SKIP:
            return
        try:
            enc, compute = self.sender.encode(
                frame, k, frame_id=self.frame_count, capture_time=capture / 1e9
            )
        except ValueError as err:
            self.counts["encode_errors"] += 1
            self.sender.fates.add("lost")  # captured, never sent: a miss
            self.get_logger().error(f"encode failed: {err}", throttle_duration_sec=5.0)
            return
        out = CompressedImage(format=self.format)
        out.header.stamp = ns_to_stamp(capture)
        out.header.frame_id = msg.header.frame_id
        out.data = enc.packet
        if self.overhead_bytes is None:
            self.overhead_bytes = transport_bytes(len(serialize_message(out)), len(enc.packet))
        self.pub.publish(out)
        t_sent = now_ns(self)
        n = len(enc.packet)
        try:
            self.sender.on_sent(
                capture, budget=k, packet_bytes=n, overhead_bytes=self.overhead_bytes,
                capture_time=capture / 1e9, send_time=t_sent / 1e9, compute_s=compute,
                frame_id=self.frame_count, keyframe=enc.header.keyframe,
            )  # fmt: skip
        except ValueError:  # a camera that repeats a stamp: the packet went, unreported
            self.get_logger().warning(f"capture stamp {capture} repeated", throttle_duration_sec=5)
        self.frame_count += 1
        self.counts["sent"] += 1
        self.budgets.add(k)
        self.encode_ms.add(compute * 1e3)
        self.bytes_meter.add(t_sent, n)
        self.wire_meter.add(t_sent, n + self.overhead_bytes)

    def _handle_feedback(self, msg: Float64MultiArray) -> None:
        t = now_ns(self)
        width = len(FEEDBACK_FIELDS)
        data = list(msg.data)
        if len(data) % width:
            self.sender.unknown_reports += 1
        for i in range(0, len(data) - width + 1, width):
            try:
                rep = ArrivalReport.from_row(data[i : i + width])
            except ValueError:
                self.sender.unknown_reports += 1
                continue
            if rep.is_keyframe_request:  # the receiver lacks a reference (tokens-inter)
                self.counts["keyframe_requests"] += 1
                self.sender.request_keyframe()
                continue
            fate = self.sender.on_report(
                rep.capture_ns, arrival_time=rep.arrival_ns / 1e9, observed_at=t / 1e9
            )
            if fate is not None:
                self.latency_ms.add((rep.arrival_ns - rep.capture_ns) / 1e6)

    def _check_losses(self) -> None:
        self.sender.check_losses(now_ns(self) / 1e9)

    def _publish_stats(self) -> None:
        t = now_ns(self)
        s = self.controller.settings
        f = self.sender.fates
        values = {
            "codec": self.codec_name,
            "format": self.format,
            "controller": self.controller.name,
            "mode": s.mode,
            "budget": self.last_budget,
            "budget_param": s.budget,
            "budget_mean": self.budgets.mean(),
            "min_budget": s.min_budget,
            "max_budget": s.max_budget,
            "deadline_ms": s.deadline_ms,
            "bitrate_cap_kbps": s.bitrate_cap_kbps,
            "loss_timeout_ms": self.sender.loss_timeout_s * 1e3,
            "loss_timeout_effective_ms": self.sender.effective_loss_timeout_s * 1e3,
            "capacity_kbps": _kbps(self.controller.capacity_bps(t / 1e9)),
            "packet_kbps": self.bytes_meter.kbps(t),
            "wire_kbps": self.wire_meter.kbps(t),
            "latency_p50_ms": self.latency_ms.pct(50),
            "latency_p99_ms": self.latency_ms.pct(99),
            "encode_p50_ms": self.encode_ms.pct(50),
            # the pipeline's one definition: late, lost or skipped, of frames whose fate is known
            **f.as_dict(),
            "pending": len(self.sender.pending),
            **self._stream_stats(),
            "unknown_reports": self.sender.unknown_reports,
            "spurious_losses": self.sender.spurious_losses,
            **self.counts,
        }
        level, message = 0, "ok"
        if self.counts["sent"] == 0:
            level, message = 1, "no frames encoded yet"
        self.diag_pub.publish(diagnostics(self, values, level=level, message=message))

    def _stream_stats(self) -> dict[str, int]:
        """Coding across frames (tokens-inter): keyframes and predicted frames sent, packets
        with the full header fields (the rest carried the 3-byte compact header)."""
        if self.sender.stream is None:
            return {}
        c = self.codec
        return {"keyframes": c.keyframes, "inter_frames": c.inter_frames,
                "full_headers": c.full_headers}  # fmt: skip


def _kbps(bps: float | None) -> float:
    return float("nan") if bps is None else bps / 1e3


def main(args: Sequence[str] | None = None) -> int:
    return spin_node(TokenizerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())

"""Policy node (lifecycle): packets + proprioception + instruction in, action chunks out.

    tokens/packets ──Receiver───────► token ids ─┐
    robot/proprio (JointState) ─────────────────┼─► OnnxPolicy.infer ──► policy/actions
    robot/instruction (String) ─────────────────┘                   └─► tokens/feedback

* Malformed packets (bad ``format``, CRC, truncation, another model's stream) are
  caught as ``PacketError``, counted in a ``PacketStats`` by error class, reported in
  ``/diagnostics``, and dropped; the node keeps running. Bad policy inputs
  (``PolicyInputError``) are counted the same way.
* Every accepted packet is reported back to the tokenizer on ``tokens/feedback``
  (capture stamp, arrival stamp, size): its controller's "delivered" reports, and for a
  stream coded across frames (``tokens-inter``) the acknowledgements its references come
  from. A packet whose reference this node lacks (it restarted, joined mid-stream) is
  refused (``packets_MissingReference`` / ``NoStreamContext``) and answered with a keyframe
  request on the same topic, at most one per ``KEYFRAME_REQUEST_GAP_S``.
* Watchdog: when no fresh observation arrived for ``watchdog_ms``, it publishes the
  stop/hold command (a chunk of zero rows) and repeats it every ``hold_repeat_s`` while
  the silence lasts; the robot drops the rest of its chunk and holds.
* An instruction the policy reads as none of its tasks (task belief of the likeliest under
  ``min_task_belief``, 0.5) is a warning on ``/diagnostics``; with ``unsure_instruction``
  ``hold`` (the default) the node publishes the hold command instead of guessing, ``act``
  acts anyway. Any sentence is read: the policy's instruction cache first, else the sentence
  encoder shipped in ``embodied/models/instruction`` (ONNX Runtime, no torch).
* Lifecycle: the models load in ``on_configure`` (so a missing file is a failed
  transition, not a crash) and are freed in ``on_cleanup``; ``autostart`` (default
  true) configures and activates at start-up, as a launch file usually wants.
  ONNX Runtime providers: TensorRT → CUDA → CPU (``embodied.providers``), or ``providers``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import Float32MultiArray, Float64MultiArray, String

from embodied.packet import PacketError, PacketStats
from embodied.pipeline import INTER_CODEC, Newest, Observation, Receiver
from embodied.settings import Settings
from ros_nodes.common import (
    LiveParameters,
    SettingsGroup,
    Window,
    autostart,
    chunk_to_msg,
    declare_settings,
    diagnostics,
    feedback_msg,
    now_ns,
    spin_node,
    stamp_ns,
    topic_qos,
)
from ros_nodes.settings import PolicyNodeSettings
from ros_nodes.wire import TOPICS, ArrivalReport, PacketFormat, PacketFormatError

#: Keyframe requests are repeated no sooner than this: packets already in flight when the first
#: went out are refused too, and each must not cost another keyframe.
KEYFRAME_REQUEST_GAP_S = 0.1


class BadFormat(PacketError):
    """The ``CompressedImage.format`` is not an embodied packet this node can read."""


class PolicyNode(LifecycleNode):
    """Runs the ONNX policy on every fresh observation; holds the robot when they stop."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("policy", **kwargs)
        self.p = declare_settings(self, PolicyNodeSettings())
        self.params = LiveParameters(self, [SettingsGroup(lambda: self.p, self._apply)])
        self.diag_pub = self.create_publisher(
            DiagnosticArray, TOPICS["diagnostics"].name, topic_qos("diagnostics")
        )
        self.create_timer(self.p.stats_period_s, self._publish_stats)
        self._entities: list[Any] = []
        self.active = False
        self.policy: Any = None
        self.tokenizer: Any = None
        self.receiver: Receiver | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self.stats = PacketStats()
        if self.receiver is not None:
            self.receiver.stats = self.stats
        self.counts = dict.fromkeys(
            ("chunks", "holds", "stale", "no_proprio", "no_instruction", "input_errors",
             "errors", "actions_late", "keyframe_requests", "instruction_holds"), 0,
        )  # fmt: skip
        self.latency_ms = Window()
        self.infer_ms = Window()
        self.proprio: deque[tuple[int, np.ndarray]] = deque(maxlen=64)
        self.instruction: str | None = None
        self.belief: tuple[str, str, float] | None = None  # (instruction, task, probability)
        self.last_obs_ns: int | None = None
        self.newest = Newest()
        self.last_hold_ns: int | None = None
        self.last_key_request_ns: int | None = None
        self.holding = False
        self.hold_reason = ""
        self.started_ns = now_ns(self)

    # ------------------------------------------------------------------ parameters

    def _apply(self, new: Settings, changes: dict[str, Any]) -> None:
        assert isinstance(new, PolicyNodeSettings)
        self.p = new  # read where used: the next packet, watchdog tick or hold repeat

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from embodied.codecs.tokens import TokenCodec, TokenizerModelError
        from embodied.policy import ModelFileError, OnnxPolicy
        from embodied.providers import TensorRTOptions

        providers = [x.strip() for x in self.p.providers.split(",") if x.strip()] or None
        try:
            self.tokenizer = TokenCodec(self.p.tokenizer_dir)
            trt = TensorRTOptions(
                fp16=bool(self.p.trt_fp16), engine_cache_path=self.p.trt_cache_dir
            )
            self.policy = OnnxPolicy(
                self.p.policy_dir, precision="fp16" if self.p.precision == "fp16" else "fp32",
                providers=providers,
                threads=int(self.p.threads), trt=trt,
            )  # fmt: skip
            mid = self.tokenizer.spec.model_id_hex
            if mid != self.policy.spec.tokenizer_model_id:
                text = (
                    f"policy {self.p.policy_dir} was trained on tokenizer "
                    f"{self.policy.spec.tokenizer_model_id}, this tokenizer is {mid}"
                )
                if self.p.strict_model_check:
                    raise ModelFileError(text)
                self.get_logger().warning(text)
        except (ModelFileError, TokenizerModelError, ValueError, RuntimeError) as err:
            self.get_logger().error(f"configure failed: {err}")
            self.policy = self.tokenizer = None
            return TransitionCallbackReturn.FAILURE
        self.receiver = Receiver(self.tokenizer, stats=self.stats)
        self.actions_pub = self.create_lifecycle_publisher(
            Float32MultiArray, TOPICS["actions"].name, topic_qos("actions")
        )
        self.feedback_pub = self.create_lifecycle_publisher(
            Float64MultiArray, TOPICS["feedback"].name, topic_qos("feedback")
        )
        self._entities = [
            self.create_subscription(
                CompressedImage, TOPICS["packets"].name, self._on_packet,
                topic_qos("packets", depth=2),
            ),
            self.create_subscription(
                JointState, TOPICS["proprio"].name, self._on_proprio, topic_qos("proprio")
            ),
            self.create_subscription(
                String, TOPICS["instruction"].name, self._on_instruction,
                topic_qos("instruction"),
            ),
            self.create_timer(0.02, self._watchdog),
        ]  # fmt: skip
        self.get_logger().info(
            f"configured: policy {self.policy.spec.name} on {self.policy.provider}, "
            f"tokenizer {self.tokenizer.spec.name} ({self.tokenizer.spec.model_id_hex})"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._reset_state()
        self.active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.active = False
        for e in self._entities:
            if hasattr(e, "timer_period_ns"):
                self.destroy_timer(e)
            else:
                self.destroy_subscription(e)
        self._entities = []
        for name in ("actions_pub", "feedback_pub"):
            pub = getattr(self, name, None)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, name, None)
        self.policy = self.tokenizer = self.receiver = None  # frees the ONNX Runtime sessions

    # ------------------------------------------------------------------ inputs

    def _on_proprio(self, msg: JointState) -> None:
        if len(msg.position) >= 1:
            self.proprio.append((stamp_ns(msg.header.stamp), np.asarray(msg.position, np.float32)))

    def _on_instruction(self, msg: String) -> None:
        self.instruction = msg.data

    def _proprio_for(self, capture_ns: int) -> tuple[int, np.ndarray] | None:
        """(the stamp the chunk starts at, the state read with the frame): under ``capture``
        the state of the frame's own stamp (the newest if it is not here) and the frame's
        stamp; under ``latest`` the newest state and its stamp."""
        if not self.proprio:
            return None
        if self.p.proprio_pairing == "latest":
            return self.proprio[-1]
        for t, p in reversed(self.proprio):
            if t == capture_ns:
                return capture_ns, p
        return capture_ns, self.proprio[-1][1]

    def _observe(self, msg: CompressedImage) -> Observation | None:
        """Packet → the policy's observation (the pipeline's receiver); None when dropped
        (counted by error class in ``stats``)."""
        assert self.receiver is not None
        try:
            fmt = PacketFormat.parse(msg.format)
        except PacketFormatError as err:
            self.stats.drop(BadFormat(str(err)))
            self.get_logger().warning(f"dropped packet: {err}", throttle_duration_sec=2.0)
            return None
        tokens = fmt.codec in ("tokens", INTER_CODEC)  # model-keyed: a foreign one is refused
        obs = self.receiver.receive(
            bytes(msg.data), codec=fmt.codec, model_id=fmt.model_id if tokens else None,
            frame_shape=fmt.frame_shape,
        )  # fmt: skip
        if obs is None:
            self.get_logger().warning(
                f"dropped packet: {self.stats.last_error}", throttle_duration_sec=2.0
            )
            if self.receiver.keyframe_wanted:
                self._request_keyframe()
        return obs

    def _request_keyframe(self) -> None:
        t = now_ns(self)
        if self.last_key_request_ns is not None and (
            t - self.last_key_request_ns < KEYFRAME_REQUEST_GAP_S * 1e9
        ):
            return
        self.last_key_request_ns = t
        self.counts["keyframe_requests"] += 1
        self.feedback_pub.publish(feedback_msg([ArrivalReport.keyframe_request(t)]))

    def _on_packet(self, msg: CompressedImage) -> None:
        if not self.active or self.policy is None:
            return
        from embodied.policy import PolicyInputError, PolicyOutputError

        arrival = now_ns(self)
        capture = stamp_ns(msg.header.stamp)
        try:
            obs = self._observe(msg)
            if obs is None:
                return
            ids, budget, frame_id = obs.token_ids, obs.budget, obs.frame_id
            report = ArrivalReport(frame_id, capture, arrival, len(msg.data))
            self.feedback_pub.publish(feedback_msg([report]))
            if not self.newest.accept(capture):  # out of order: a newer one was acted on
                self.counts["stale"] = self.newest.stale
                return
            self.last_obs_ns = arrival
            paired = self._proprio_for(capture)
            if paired is None:
                self.counts["no_proprio"] += 1
                return
            start, proprio = paired
            instruction = self.p.instruction or self.instruction
            if not instruction:
                self.counts["no_instruction"] += 1
                return
            if self.belief is None or self.belief[0] != instruction:
                self._read_instruction(instruction)
            if self._unsure() and self.p.unsure_instruction == "hold":
                self.counts["instruction_holds"] += 1
                self._hold(arrival, "instruction")
                return
            t0 = time.perf_counter()
            try:
                chunk = self.policy.infer(
                    {"token_ids": ids, "budget": int(budget), "instruction": instruction,
                     "proprio": proprio}
                )  # fmt: skip
            except (PolicyInputError, PolicyOutputError) as err:
                self.counts["input_errors"] += 1
                self.get_logger().warning(f"policy refused: {err}", throttle_duration_sec=2.0)
                return
            self.infer_ms.add((time.perf_counter() - t0) * 1e3)
            self.actions_pub.publish(chunk_to_msg(chunk, start, frame_id))
            done = now_ns(self)
            latency = (done - capture) / 1e6
            self.latency_ms.add(latency)
            if latency > self.p.action_deadline_ms:
                self.counts["actions_late"] += 1
            self.counts["chunks"] += 1
            if self.holding:
                why = {"watchdog": "observations are back", "instruction": "instruction read"}
                self.get_logger().info(f"{why.get(self.hold_reason, 'resumed')}: acting again")
            self.holding = False
            self.hold_reason = ""
        except Exception as err:  # one bad message must never stop the robot's brain
            self.counts["errors"] += 1
            self.get_logger().error(f"packet handling failed: {err!r}", throttle_duration_sec=2.0)

    def _read_instruction(self, instruction: str) -> None:
        """Log which task a new instruction is read as (policies with a task belief); a
        belief under 0.5 is a warning: the policy is unsure what it has been asked to do."""
        if not getattr(self.policy, "tasks", ()):
            self.belief = (instruction, "", float("nan"))
            return
        try:
            belief = self.policy.task_belief(instruction)
        except ValueError as err:  # unknown phrasing without an encoder, missing belief file
            self.belief = (instruction, "", float("nan"))
            self.get_logger().warning(f"no task belief for {instruction!r}: {err}")
            return
        top = list(belief.items())[:3]
        self.belief = (instruction, top[0][0], top[0][1])
        shown = ", ".join(f"{t} {v:.2f}" for t, v in top)
        if top[0][1] < self.p.min_task_belief:
            then = "holding" if self.p.unsure_instruction == "hold" else "acting anyway"
            self.get_logger().warning(
                f"instruction {instruction!r} is read as none of the policy's tasks "
                f"({shown}; min_task_belief {self.p.min_task_belief}): {then}"
            )
        else:
            self.get_logger().info(f"instruction {instruction!r} read as {shown}")

    # ------------------------------------------------------------------ watchdog

    def _unsure(self) -> bool:
        """The instruction is read as none of the policy's tasks (its likeliest task's belief
        is under ``min_task_belief``); False for a policy without a task belief."""
        b = self.belief
        return b is not None and bool(b[1]) and b[2] < self.p.min_task_belief

    def _watchdog(self) -> None:
        if not self.active:
            return
        t = now_ns(self)
        since = self.last_obs_ns if self.last_obs_ns is not None else self.started_ns
        if (t - since) / 1e6 <= self.p.watchdog_ms:
            return
        if not self.holding or self.hold_reason != "watchdog":
            self.get_logger().warning(
                f"no observation for {(t - since) / 1e6:.0f} ms: holding the robot"
            )
        self._hold(t, "watchdog")

    def _hold(self, t: int, reason: str) -> None:
        """Publish the stop/hold command (a chunk of zero rows), repeated every
        ``hold_repeat_s`` while the reason lasts: ``watchdog`` (no fresh observation) or
        ``instruction`` (an instruction read as none of the policy's tasks)."""
        repeat_ns = self.p.hold_repeat_s * 1e9
        same = self.holding and self.hold_reason == reason
        if same and self.last_hold_ns is not None and t - self.last_hold_ns < repeat_ns:
            return
        dim = self.policy.spec.action_dim if self.policy is not None else 4
        self.actions_pub.publish(chunk_to_msg(np.zeros((0, dim), np.float32), 0, 0))
        self.holding = True
        self.hold_reason = reason
        self.last_hold_ns = t
        self.counts["holds"] += 1

    # ------------------------------------------------------------------ statistics

    def _publish_stats(self) -> None:
        state = "active" if self.active else ("inactive" if self.policy else "unconfigured")
        values: dict[str, Any] = {
            "state": state,
            "provider": getattr(self.policy, "provider", ""),
            "latency_p50_ms": self.latency_ms.pct(50),
            "latency_p99_ms": self.latency_ms.pct(99),
            "infer_p50_ms": self.infer_ms.pct(50),
            "infer_p99_ms": self.infer_ms.pct(99),
            "holding": self.holding,
            "hold_reason": self.hold_reason,
            "instruction": self.belief[0] if self.belief else "",
            "proprio_buffer": len(self.proprio),
            "task": self.belief[1] if self.belief else "",
            "task_belief": self.belief[2] if self.belief else float("nan"),
            **{f"packets_{k}": v for k, v in self.stats.as_dict().items()},
            **self.counts,
        }
        level = 0 if self.active and not self.holding else 1
        message = state
        if self.holding:
            message = {"watchdog": "holding: no fresh observation",
                       "instruction": "holding: the instruction is read as none of the "
                       "policy's tasks"}.get(self.hold_reason, "holding")  # fmt: skip
        elif self.active and self._unsure():  # unsure_instruction = act: warn, act anyway
            level, message = 1, "acting on an instruction read as none of the policy's tasks"
        self.diag_pub.publish(diagnostics(self, values, level=level, message=message))


def main(args: Sequence[str] | None = None) -> int:
    return spin_node(PolicyNode, args, after_create=autostart)


if __name__ == "__main__":
    raise SystemExit(main())

"""The graph's topics into a :class:`~embodied_tools.view.stream.StreamView`: live over DDS,
or replayed from an MCAP file written by ``embodied record``.

One :class:`GraphTap` reads both: its handlers take a message (an rclpy message live, the
``mcap_ros2`` decoder's object in a replay: the same fields) and the size of its CDR
serialization (for the transport bits), so a live graph and its recording look the same.

Live, the view is a separate process that only subscribes (best-effort for the sensor
topics, small queues): it never publishes, so the control loop never waits for it; it
lowers its own CPU priority (``nice``) so that on a robot computer short of cores the
nodes are served first. ``embodied bench ros --view`` measures the loop with and without it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied_tools.view.stream import StreamView
from ros_nodes.wire import FEEDBACK_FIELDS, TOPICS, ArrivalReport, transport_bytes

#: The topics the view reads, by role (``ros_nodes.wire.TOPICS``).
VIEW_ROLES = ("image", "packets", "feedback", "diagnostics", "instruction", "events")


def _stamp_s(header: Any) -> float:
    return int(header.stamp.sec) + int(header.stamp.nanosec) * 1e-9


@dataclass
class GraphTap:
    """ROS messages → view calls (see :data:`VIEW_ROLES`)."""

    view: StreamView
    camera: str = "front"
    errors: int = 0  # messages the view could not read (counted, never raised)
    _instruction: str = ""
    _task: str | None = None  # how the policy reads it (its /diagnostics)

    def handler(self, role: str) -> Callable[[Any, int], None]:
        return {
            "image": self.image,
            "packets": self.packet,
            "feedback": self.feedback,
            "diagnostics": self.diagnostics,
            "instruction": self.instruction,
            "events": self.event,
        }[role]

    def dispatch(self, role: str, msg: Any, cdr_bytes: int = 0) -> None:
        try:
            self.handler(role)(msg, cdr_bytes)
        except Exception as err:  # a view never takes a graph down, nor itself
            self.errors += 1
            if self.errors <= 5:
                print(f"embodied view: {role} message skipped: {err!r}", flush=True)

    def image(self, msg: Any, cdr_bytes: int = 0) -> None:
        from ros_nodes.common import image_to_rgb

        self.view.camera(_stamp_s(msg.header), image_to_rgb(msg), self.camera)

    def packet(self, msg: Any, cdr_bytes: int = 0) -> None:
        data = bytes(msg.data)
        extra = transport_bytes(cdr_bytes, len(data)) if cdr_bytes else None
        self.view.packet(_stamp_s(msg.header), data, msg.format, extra, self.camera)

    def feedback(self, msg: Any, cdr_bytes: int = 0) -> None:
        width = len(FEEDBACK_FIELDS)
        data = list(msg.data)
        for i in range(0, len(data) - width + 1, width):
            rep = ArrivalReport.from_row(data[i : i + width])
            self.view.arrival(rep.capture_ns / 1e9, (rep.arrival_ns - rep.capture_ns) / 1e6)

    def diagnostics(self, msg: Any, cdr_bytes: int = 0) -> None:
        t = _stamp_s(msg.header)
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            name = str(status.name)
            if name.endswith("tokenizer"):
                self.view.tokenizer_stats(t, values)
            elif name.endswith("policy"):
                self.view.policy_stats(t, values)
                task = values.get("task", "")
                if task and task != self._task:
                    self._task = task
                    self.view.instruction(t, self._instruction, task)

    def instruction(self, msg: Any, cdr_bytes: int = 0) -> None:
        self._instruction = str(msg.data)
        self._task = None  # the policy's reading follows on /diagnostics
        self.view.instruction(self.view.now, self._instruction)

    def event(self, msg: Any, cdr_bytes: int = 0) -> None:
        body = json.loads(msg.data)
        self.view.event(float(body.get("t", self.view.now)), body)


# ----------------------------------------------------------------------------- live


def watch_graph(
    tap: GraphTap, *, duration_s: float | None = None, nice: int = 10, on_spin=None
) -> int:
    """Subscribe the graph's topics and feed ``tap`` until Ctrl-C or ``duration_s``."""
    import rclpy
    from rclpy.node import Node
    from rclpy.serialization import serialize_message

    from ros_nodes.common import topic_qos

    if nice:
        os.nice(nice)
    rclpy.init()
    node = Node("embodied_view")
    types = _message_types()
    for role in VIEW_ROLES:
        topic = TOPICS[role]

        def callback(msg: Any, role: str = role) -> None:
            size = len(serialize_message(msg)) if role == "packets" else 0
            tap.dispatch(role, msg, size)

        depth = 2 if role == "image" else None
        node.create_subscription(types[role], topic.name, callback, topic_qos(role, depth))
    print(f"embodied view: watching {', '.join(TOPICS[r].name for r in VIEW_ROLES)}", flush=True)
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while rclpy.ok() and (end is None or time.monotonic() < end):
            rclpy.spin_once(node, timeout_sec=0.05)
            if on_spin is not None:
                on_spin()
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def _message_types() -> dict[str, type]:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Float64MultiArray, String

    return {
        "image": Image,
        "packets": CompressedImage,
        "feedback": Float64MultiArray,
        "diagnostics": DiagnosticArray,
        "instruction": String,
        "events": String,
    }


# ----------------------------------------------------------------------------- recordings


def _role_of_topic() -> dict[str, str]:
    out = {}
    for role in VIEW_ROLES:
        name = TOPICS[role].name
        out[name] = role
        out["/" + name.lstrip("/")] = role
    return out


def recorded_messages(path: str | Path) -> Iterable[tuple[int, str, Any, int]]:
    """(log time ns, role, decoded message, CDR bytes) of the view's topics in an MCAP file,
    in log-time order."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    roles = _role_of_topic()
    with Path(path).open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            role = roles.get(channel.topic)
            if role is not None:
                yield message.log_time, role, decoded, len(message.data)


def replay(tap: GraphTap, path: str | Path, *, realtime: bool = True, speed: float = 1.0) -> int:
    """Feed a recording to ``tap``: at recorded time (``realtime``, scaled by ``speed``) or as
    fast as possible. Returns the number of messages replayed."""
    n = 0
    start_wall = time.monotonic()
    first: int | None = None
    for log_ns, role, msg, size in recorded_messages(path):
        if first is None:
            first = log_ns
        if realtime:
            due = start_wall + (log_ns - first) / 1e9 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        tap.dispatch(role, msg, size)
        n += 1
    if n == 0:
        raise ValueError(
            f"{path}: no message on the view's topics "
            f"({', '.join(TOPICS[r].name for r in VIEW_ROLES)})"
        )
    return n

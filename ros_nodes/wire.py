"""What the nodes put on the wire, as plain data: topics, the packet ``format`` string,
the action-chunk and feedback layouts. No rclpy here, so the conventions are testable
(and documented in ``docs/ros.md``) without a ROS install.

Why standard messages with documented conventions rather than custom ones: a custom
``.msg`` needs a ROS build (colcon + rosidl) on every machine that touches the topic,
including Foxglove and rosbag2 readers; ``sensor_msgs/CompressedImage``,
``std_msgs/Float32MultiArray`` and friends need nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from embodied.packet import VERSION as PACKET_VERSION
from embodied.pipeline import KEYFRAME_REQUEST

QosKind = Literal["sensor", "reliable", "latched"]


@dataclass(frozen=True)
class Topic:
    """One topic of the graph. ``name`` is relative (namespaces and remaps apply)."""

    name: str
    type: str  # "pkg/msg/Type"
    qos: QosKind
    publisher: str
    description: str


#: ``tokens/feedback`` is a Float64MultiArray of rows with these fields (every value
#: exactly representable in a double: stamps are split into seconds and nanoseconds).
FEEDBACK_FIELDS: Final = (
    "frame_id",
    "capture_sec",
    "capture_nanosec",
    "arrival_sec",
    "arrival_nanosec",
    "packet_bytes",
)


#: Bytes of framing under a DDS sample on UDP/IPv4: IPv4 20 + UDP 8 + RTPS header 20 + the
#: DATA submessage's header and fields 24 (no inline QoS, no fragmentation).
RTPS_UDP_OVERHEAD: Final = 72


def transport_bytes(cdr_bytes: int, payload_bytes: int) -> int:
    """Transport bytes of one packet sent as a ROS message: everything on the wire that is not
    our packet (the message's CDR serialization around it, plus :data:`RTPS_UDP_OVERHEAD`).
    ``cdr_bytes``: the serialized message (``rclpy.serialization.serialize_message``, or a
    recording's raw message); ``payload_bytes``: our packet inside it."""
    return int(cdr_bytes) - int(payload_bytes) + RTPS_UDP_OVERHEAD


#: Every topic of the graphs, by role. docs/ros.md's table and ``embodied record``'s
#: defaults come from here.
TOPICS: Final[dict[str, Topic]] = {
    "image": Topic(
        "camera/image_raw",
        "sensor_msgs/msg/Image",
        "sensor",
        "camera / sim_robot",
        "camera frames, rgb8; header.stamp = capture time",
    ),
    "proprio": Topic(
        "robot/proprio",
        "sensor_msgs/msg/JointState",
        "sensor",
        "sim_robot (or the robot driver)",
        "name = ee_x, ee_y, ee_z, gripper; position = values; header.stamp = the image's",
    ),
    "instruction": Topic(
        "robot/instruction",
        "std_msgs/msg/String",
        "latched",
        "sim_robot (or an operator)",
        "the task instruction in words (transient local: late joiners get it)",
    ),
    "events": Topic(
        "robot/events",
        "std_msgs/msg/String",
        "latched",
        "sim_robot",
        'JSON: {"event": "start"|"end"|"hold"|"resume"|"done", ...}; end carries success',
    ),
    "executed": Topic(
        "robot/executed_action",
        "std_msgs/msg/Float32MultiArray",
        "reliable",
        "sim_robot (or the robot driver)",
        "the action executed at each control step, one row [1 x 4] in the action-chunk layout; "
        "its label's stamp_ns is the observation it was executed on (demonstration labels)",
    ),
    "packets": Topic(
        "tokens/packets",
        "sensor_msgs/msg/CompressedImage",
        "sensor",
        "tokenizer",
        "data = one embodied packet; format = 'embodied-packet; codec=..; v=..; model=..; "
        "shape=..'; header.stamp = capture time",
    ),
    "feedback": Topic(
        "tokens/feedback",
        "std_msgs/msg/Float64MultiArray",
        "reliable",
        "policy",
        "arrival report per packet, rows of [" + ", ".join(FEEDBACK_FIELDS) + "]; a row "
        f"with frame_id {KEYFRAME_REQUEST} asks for a keyframe (tokens-inter)",
    ),
    "actions": Topic(
        "policy/actions",
        "std_msgs/msg/Float32MultiArray",
        "reliable",
        "policy",
        "action chunk [chunk x action_dim]; a chunk of 0 rows = stop/hold",
    ),
    "diagnostics": Topic(
        "/diagnostics",
        "diagnostic_msgs/msg/DiagnosticArray",
        "reliable",
        "every node, 1 Hz",
        "bit rate, budget, latency p50/p99, deadline misses, dropped packets, holds",
    ),
}

# --------------------------------------------------------------------------- packet format

PACKET_FORMAT_PREFIX: Final = "embodied-packet"
_FORMAT_RE = re.compile(r"^\s*([a-z0-9][a-z0-9-]*)\s*=\s*(\S+)\s*$")


class PacketFormatError(ValueError):
    """A ``CompressedImage.format`` this build cannot read."""


@dataclass(frozen=True)
class PacketFormat:
    """``embodied-packet; codec=<name>; v=<packet version>; model=<8 hex>; shape=<H>x<W>``.

    ``codec`` is the registry name (``tokens``, ``jpeg``, ...); ``model`` the 32-bit
    stream id that keys the packet CRC (the tokenizer's ``model_id``, or a pixel
    codec's identity hash); ``shape`` the frame size the sender's codec works at (a
    pixel-codec receiver must build its decoder for the same size).
    """

    codec: str
    model_id: int
    frame_shape: tuple[int, int]
    version: int = PACKET_VERSION

    def __str__(self) -> str:
        h, w = self.frame_shape
        return (
            f"{PACKET_FORMAT_PREFIX}; codec={self.codec}; v={self.version}; "
            f"model={self.model_id:08x}; shape={h}x{w}"
        )

    @classmethod
    def parse(cls, text: str) -> PacketFormat:
        parts = [p for p in text.split(";")]
        if not parts or parts[0].strip() != PACKET_FORMAT_PREFIX:
            raise PacketFormatError(
                f"format {text[:80]!r} is not '{PACKET_FORMAT_PREFIX}; codec=...; v=...'"
            )
        fields: dict[str, str] = {}
        for p in parts[1:]:
            m = _FORMAT_RE.match(p)
            if m is None:
                raise PacketFormatError(f"format {text[:80]!r}: cannot read {p.strip()!r}")
            fields[m.group(1)] = m.group(2)
        missing = [k for k in ("codec", "v", "model", "shape") if k not in fields]
        if missing:
            raise PacketFormatError(f"format {text[:80]!r}: missing {', '.join(missing)}")
        try:
            version = int(fields["v"])
            model_id = int(fields["model"], 16)
            h, w = (int(s) for s in fields["shape"].lower().split("x"))
        except ValueError:
            raise PacketFormatError(f"format {text[:80]!r}: malformed v/model/shape") from None
        if version != PACKET_VERSION:
            raise PacketFormatError(f"packet format v={version}, this build reads {PACKET_VERSION}")
        if not 0 <= model_id <= 0xFFFFFFFF:
            raise PacketFormatError(f"format {text[:80]!r}: model id out of 32 bits")
        return cls(fields["codec"], model_id, (h, w), version)


# --------------------------------------------------------------------------- action chunks

#: ``layout.dim[0].label`` of an action chunk: ``chunk;stamp_ns=<ns>;frame=<id>``, the
#: capture stamp and frame id of the observation the chunk was computed from, so the
#: robot drops the actions that latency made stale (ActionChunker semantics) and a
#: benchmark can time image → action without a custom message.
CHUNK_LABEL: Final = "chunk"
ACTION_LABEL: Final = "action"


def chunk_label(stamp_ns: int, frame_id: int) -> str:
    return f"{CHUNK_LABEL};stamp_ns={int(stamp_ns)};frame={int(frame_id)}"


def parse_chunk_label(label: str) -> tuple[int | None, int | None]:
    """(stamp_ns, frame_id) from a chunk label; ``None`` for what is absent."""
    stamp = frame = None
    for part in label.split(";")[1:]:
        key, _, value = part.partition("=")
        try:
            if key.strip() == "stamp_ns":
                stamp = int(value)
            elif key.strip() == "frame":
                frame = int(value)
        except ValueError:
            continue
    return stamp, frame


# --------------------------------------------------------------------------- feedback


@dataclass(frozen=True)
class ArrivalReport:
    """The receiver's report about one packet: which frame (by capture stamp), when it arrived."""

    frame_id: int  # the wire frame id (mod 256); the capture stamp is the key
    capture_ns: int
    arrival_ns: int
    packet_bytes: int

    @classmethod
    def keyframe_request(cls, at_ns: int) -> ArrivalReport:
        """The receiver lacks a reference of a stream coded across frames: "send a keyframe"
        (a report about frame ``KEYFRAME_REQUEST``, no capture, made at ``at_ns``)."""
        return cls(KEYFRAME_REQUEST, 0, int(at_ns), 0)

    @property
    def is_keyframe_request(self) -> bool:
        return self.frame_id == KEYFRAME_REQUEST

    def to_row(self) -> list[float]:
        cs, cn = divmod(self.capture_ns, 10**9)
        as_, an = divmod(self.arrival_ns, 10**9)
        return [float(self.frame_id), float(cs), float(cn), float(as_), float(an),
                float(self.packet_bytes)]  # fmt: skip

    @classmethod
    def from_row(cls, row: list[float] | tuple[float, ...]) -> ArrivalReport:
        if len(row) != len(FEEDBACK_FIELDS):
            raise ValueError(f"feedback row has {len(row)} values, expected {FEEDBACK_FIELDS}")
        f, cs, cn, as_, an, b = (int(v) for v in row)
        return cls(f, cs * 10**9 + cn, as_ * 10**9 + an, b)


#: Joint names of the proprioception (the sim's end-effector state).
PROPRIO_NAMES: Final = ("ee_x", "ee_y", "ee_z", "gripper")

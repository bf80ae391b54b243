"""rclpy helpers shared by the nodes: QoS, parameter descriptors from the settings spec,
message conversions, diagnostics, the ``main`` loop.

Everything here is an adapter; the conventions themselves are in :mod:`ros_nodes.wire`.
"""

from __future__ import annotations

import array
import contextlib
import math
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension, MultiArrayLayout

from embodied.control.base import SettingSpec
from embodied.settings import Settings
from ros_nodes.settings import DEFAULT_POLICY_DIR as _DEFAULT_POLICY_DIR
from ros_nodes.settings import DEFAULT_TOKENIZER_DIR as _DEFAULT_TOKENIZER_DIR
from ros_nodes.wire import (
    ACTION_LABEL,
    FEEDBACK_FIELDS,
    TOPICS,
    ArrivalReport,
    QosKind,
    chunk_label,
    parse_chunk_label,
)

#: The shipped models (written by the training pipeline); node parameters default here.
DEFAULT_TOKENIZER_DIR, DEFAULT_POLICY_DIR = _DEFAULT_TOKENIZER_DIR, _DEFAULT_POLICY_DIR

# --------------------------------------------------------------------------- QoS


def qos(kind: QosKind, depth: int | None = None) -> QoSProfile:
    """The QoS of a topic kind.

    ``sensor``: best effort, keep last 5 (ROS's SensorDataQoS): a late frame is worth
    less than the next one, and nothing queues behind a slow link. ``reliable``: keep
    last 10, so a slow subscriber never grows a queue. ``latched``: reliable + transient
    local, so a node that (re)starts late still gets the instruction and recent events.
    """
    if kind == "sensor":
        if depth is None:
            return qos_profile_sensor_data
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth,
            reliability=ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.VOLATILE,
        )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth or 10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL if kind == "latched" else DurabilityPolicy.VOLATILE
        ),
    )


def topic_qos(role: str, depth: int | None = None) -> QoSProfile:
    return qos(TOPICS[role].qos, depth)


# --------------------------------------------------------------------------- parameters


def descriptor(spec: SettingSpec, *, read_only: bool | None = None) -> ParameterDescriptor:
    """A ROS parameter descriptor from one controller setting (type, range, description)."""
    d = ParameterDescriptor(
        name=spec.name,
        description=spec.description,
        read_only=(not spec.live) if read_only is None else read_only,
    )
    if spec.type is int:
        d.type = ParameterType.PARAMETER_INTEGER
        if spec.min is not None and spec.max is not None:
            d.integer_range = [
                IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)
            ]
    elif spec.type is float:
        d.type = ParameterType.PARAMETER_DOUBLE
        if spec.min is not None and spec.max is not None:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max), step=0.0)
            ]
    elif spec.type is bool:
        d.type = ParameterType.PARAMETER_BOOL
    else:
        d.type = ParameterType.PARAMETER_STRING
    if spec.choices is not None:
        d.additional_constraints = spec.allowed()
    return d


S = TypeVar("S", bound=Settings)
N = TypeVar("N", bound=Node)


def declare_settings(node: Node, settings: S, *, skip: Sequence[str] = ()) -> S:
    """Declare one ROS parameter per field of ``settings`` (descriptor from the field: type,
    range, description, read-only unless live) with the field's value as the default;
    returns the settings with the launch overrides (``-p``, YAML) applied and validated: a
    bad launch value raises ValueError naming the parameter and the allowed values."""
    specs = settings.current_specs()
    values = {}
    for name, spec in specs.items():
        if name in skip:
            continue
        values[name] = node.declare_parameter(name, getattr(settings, name), descriptor(spec)).value
    return settings.launched(**values)


@dataclass
class SettingsGroup:
    """One settings object of a node: how to read it and how to apply a validated change."""

    get: Callable[[], Settings]
    apply: Callable[[Settings, dict[str, Any]], None]  # (new settings, the changes)


class LiveParameters:
    """A node's one parameter callback: each set is validated by the settings it belongs to
    (``Settings.updated``: range, type, liveness, cross-field rules) and applied to all of
    them, or refused with the reason, nothing changed. ``log`` says whether to log accepted
    changes (read at each set, so a live ``log_changes`` takes effect)."""

    def __init__(
        self, node: Node, groups: Sequence[SettingsGroup], log: Callable[[], bool] = lambda: True
    ) -> None:
        self.node = node
        self.groups = list(groups)
        self.log = log
        self.accepted = 0
        self.refused = 0
        node.add_on_set_parameters_callback(self._on_set)

    def _on_set(self, params: Sequence[Any]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        plan: list[tuple[SettingsGroup, Settings, dict[str, Any]]] = []
        for g in self.groups:
            current = g.get()
            names = current.current_specs()
            mine = {k: v for k, v in changes.items() if k in names}
            if not mine:
                continue
            try:
                plan.append((g, current.updated(**mine), mine))
            except ValueError as err:
                self.refused += 1
                return SetParametersResult(successful=False, reason=str(err))
        for g, new, mine in plan:
            g.apply(new, mine)
        self.accepted += 1
        if plan and self.log():
            what = ", ".join(f"{p.name}={p.value!r}" for p in params)
            self.node.get_logger().info(f"set {what}")
        return SetParametersResult(successful=True)


def plain_descriptor(
    description: str,
    type_: int,
    *,
    read_only: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    constraints: str = "",
) -> ParameterDescriptor:
    """A descriptor for a node's own (non-controller) parameter."""
    d = ParameterDescriptor(description=description, type=type_, read_only=read_only)
    if lo is not None and hi is not None:
        if type_ == ParameterType.PARAMETER_INTEGER:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        elif type_ == ParameterType.PARAMETER_DOUBLE:
            d.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
    if constraints:
        d.additional_constraints = constraints
    return d


STR = ParameterType.PARAMETER_STRING
INT = ParameterType.PARAMETER_INTEGER
FLOAT = ParameterType.PARAMETER_DOUBLE
BOOL = ParameterType.PARAMETER_BOOL


def declare(node: Node, table: Mapping[str, tuple[Any, ParameterDescriptor]]) -> dict[str, Any]:
    """Declare ``{name: (default, descriptor)}``; returns the values (YAML overrides applied)."""
    out = {}
    for name, (default, desc) in table.items():
        desc.name = name
        out[name] = node.declare_parameter(name, default, desc).value
    return out


# --------------------------------------------------------------------------- time


def stamp_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec)


def now_ns(node: Node) -> int:
    return node.get_clock().now().nanoseconds


# --------------------------------------------------------------------------- images

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def image_to_rgb(msg: Image) -> np.ndarray:
    """``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) → "h w 3" uint8 RGB."""
    enc = msg.encoding.lower()
    if enc not in _CHANNELS:
        raise ValueError(f"image encoding {msg.encoding!r} not supported; use {list(_CHANNELS)}")
    c = _CHANNELS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(msg.data, np.uint8)
    if h < 1 or w < 1 or step < w * c or buf.size < h * step:
        raise ValueError(f"image {w}x{h} step {step} with {buf.size} bytes is inconsistent")
    img = buf[: h * step].reshape(h, step)[:, : w * c].reshape(h, w, c)
    if enc == "rgb8":
        return img
    if enc == "bgr8":
        return np.ascontiguousarray(img[..., ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(img[..., :3])
    if enc == "bgra8":
        return np.ascontiguousarray(img[..., 2::-1])
    return np.ascontiguousarray(np.repeat(img, 3, axis=2))


def rgb_to_image(frame: np.ndarray, stamp: Time, frame_id: str = "camera") -> Image:
    """ "h w 3" uint8 RGB → ``sensor_msgs/Image`` rgb8."""
    h, w = frame.shape[:2]
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = array.array("B", np.ascontiguousarray(frame, np.uint8).tobytes())
    return msg


# --------------------------------------------------------------------------- actions


def chunk_to_msg(chunk: np.ndarray, stamp: int, frame_id: int) -> Float32MultiArray:
    """An action chunk ``[H, A]`` (H may be 0: the stop/hold command) as Float32MultiArray."""
    c = np.asarray(chunk, np.float32).reshape(-1, chunk.shape[-1] if chunk.ndim == 2 else 4)
    h, a = c.shape
    layout = MultiArrayLayout(
        dim=[
            MultiArrayDimension(label=chunk_label(stamp, frame_id), size=h, stride=h * a),
            MultiArrayDimension(label=ACTION_LABEL, size=a, stride=a),
        ],
        data_offset=0,
    )
    msg = Float32MultiArray(layout=layout)
    msg.data = array.array("f", c.tobytes())
    return msg


def msg_to_chunk(msg: Float32MultiArray) -> tuple[np.ndarray, int | None, int | None]:
    """(chunk ``[H, A]``, source stamp ns, source frame id) from an action message."""
    dims = list(msg.layout.dim)
    if len(dims) != 2:
        raise ValueError(f"action layout has {len(dims)} dims, expected [chunk, action]")
    h, a = int(dims[0].size), int(dims[1].size)
    data = np.frombuffer(msg.data, np.float32) if len(msg.data) else np.zeros(0, np.float32)
    off = int(msg.layout.data_offset)
    if data.size < off + h * a:
        raise ValueError(f"action data has {data.size} values, layout needs {off + h * a}")
    stamp, frame = parse_chunk_label(dims[0].label)
    return data[off : off + h * a].reshape(h, a).copy(), stamp, frame


def feedback_msg(reports: Sequence[ArrivalReport]) -> Float64MultiArray:
    """Arrival reports as ``tokens/feedback`` rows, the layout naming the fields."""
    width = len(FEEDBACK_FIELDS)
    layout = MultiArrayLayout(
        dim=[
            MultiArrayDimension(label="report", size=len(reports), stride=len(reports) * width),
            MultiArrayDimension(label=",".join(FEEDBACK_FIELDS), size=width, stride=width),
        ]
    )
    return Float64MultiArray(layout=layout, data=[v for r in reports for v in r.to_row()])


# --------------------------------------------------------------------------- statistics


class Window:
    """The last ``n`` samples of something (latency, compute time), for p50/p99 reports."""

    def __init__(self, n: int = 300) -> None:
        self.values: deque[float] = deque(maxlen=n)

    def add(self, v: float) -> None:
        self.values.append(float(v))

    def pct(self, q: float) -> float:
        if not self.values:
            return math.nan
        return float(np.percentile(np.fromiter(self.values, float), q))

    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan


class RateMeter:
    """Bytes over the last ``window_s`` seconds → kbit/s (what the link actually carried)."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self.samples: deque[tuple[int, int]] = deque()

    def add(self, t_ns: int, nbytes: int) -> None:
        self.samples.append((t_ns, nbytes))
        self._trim(t_ns)

    def _trim(self, t_ns: int) -> None:
        while self.samples and self.samples[0][0] < t_ns - self.window_ns:
            self.samples.popleft()

    def per_s(self, t_ns: int) -> float:
        """Units (bytes, frames) per second over the window."""
        self._trim(t_ns)
        return sum(b for _, b in self.samples) / (self.window_ns / 1e9)

    def kbps(self, t_ns: int) -> float:
        return self.per_s(t_ns) * 8 / 1e3


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def diagnostics(
    node: Node, values: Mapping[str, Any], *, level: int = 0, message: str = "ok"
) -> DiagnosticArray:
    """One DiagnosticArray with one status named after the node."""
    status = DiagnosticStatus(
        level=bytes([level]),
        name=node.get_fully_qualified_name(),
        message=message,
        hardware_id=os.uname().nodename,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )
    arr = DiagnosticArray(status=[status])
    arr.header.stamp = node.get_clock().now().to_msg()
    return arr


def diag_values(arr: DiagnosticArray, node_name: str | None = None) -> dict[str, dict[str, str]]:
    """``{status name: {key: value}}`` of a DiagnosticArray (tests, the benchmark)."""
    out = {}
    for s in arr.status:
        if node_name is None or s.name.endswith(node_name):
            out[s.name] = {kv.key: kv.value for kv in s.values}
    return out


# --------------------------------------------------------------------------- main


def flush_reliable(node: Node, timeout_s: float = 2.0) -> bool:
    """Before an orderly exit: spin a little, then wait (up to ``timeout_s`` in all) until
    every subscriber matched to a reliable publisher has acknowledged what was sent, so
    the last event (``done``) is not lost with the process. True when all acked."""
    for _ in range(5):
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + timeout_s
    ok = True
    for pub in node.publishers:
        if pub.qos_profile.reliability != ReliabilityPolicy.RELIABLE:
            continue
        left = max(0.0, end - time.monotonic())
        ok = pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))) and ok
    return ok


def spin_node(
    make: Callable[[], N],
    args: Sequence[str] | None = None,
    *,
    after_create: Callable[[N], int | None] | None = None,
    until: Callable[[N], bool] | None = None,
) -> int:
    """rclpy.init → make the node → spin until Ctrl-C, shutdown or ``until(node)`` → clean up.

    ``after_create`` may return an exit code to stop early (a lifecycle node whose
    autostart failed). SIGTERM is handled like SIGINT so a launcher's terminate is clean.
    """
    rclpy.init(args=None if args is None else list(args))
    # SIGTERM (a launcher's stop) ends the loop between callbacks, as Ctrl-C does: shutting
    # the context down inside the handler, in the middle of a wait, raised InvalidHandle
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    node: N | None = None
    code = 0
    try:
        node = make()
        if after_create is not None:
            early = after_create(node)
            if early is not None:
                return early
        while rclpy.ok() and not terminated.is_set():
            rclpy.spin_once(node, timeout_sec=0.1)
            if until is not None and until(node):
                flush_reliable(node)
                break
        if terminated.is_set():
            flush_reliable(node, timeout_s=0.5)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            # the context may already be gone after Ctrl-C
            with contextlib.suppress(Exception):
                node.destroy_node()
        rclpy.try_shutdown()
    return code


def autostart(node: Node) -> int | None:
    """A lifecycle node's ``autostart``: configure and activate now; exit 1 when that fails
    (a launch file then shows the reason instead of a node that silently does nothing)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if not node.get_parameter("autostart").value:
        return None
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:  # type: ignore[attr-defined]
        node.get_logger().error("autostart: configure failed; exiting")
        return 1
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:  # type: ignore[attr-defined]
        node.get_logger().error("autostart: activate failed; exiting")
        return 1
    return None

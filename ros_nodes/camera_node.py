"""Camera node (lifecycle): ``sensor_msgs/Image`` (rgb8) from an OpenCV device or a video file.

Publishes on ``camera/image_raw`` with SensorDataQoS (best effort, keep last 5) at
``rate_hz``, at ``width`` × ``height`` when they are set: the device is asked for that size,
and whatever size it delivers is brought to it by :func:`embodied.camera.to_model_input`
(centre crop to the ``width : height`` aspect ratio, then INTER_AREA down / bilinear up), the
same function the tokenizer node and training use, so nothing is stretched; with 0 (the
default) frames go out as captured. ``header.stamp`` is the time the frame was read, the
capture time every later latency is measured from. The
device opens on ``configure`` and is released on ``cleanup``, so ``ros2 lifecycle set
/camera cleanup`` frees it for another process without killing the node.

    embodied-camera-node --ros-args -p device:=0 -p rate_hz:=30.0 -p width:=64 -p height:=64
    embodied-camera-node --ros-args -p device:=/data/run.mp4 -p loop:=true
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image

from embodied.camera import to_model_input
from embodied.settings import Settings
from ros_nodes.common import (
    LiveParameters,
    RateMeter,
    SettingsGroup,
    autostart,
    declare_settings,
    diagnostics,
    now_ns,
    ns_to_stamp,
    rgb_to_image,
    spin_node,
    topic_qos,
)
from ros_nodes.settings import CameraNodeSettings
from ros_nodes.wire import TOPICS


class CameraNode(LifecycleNode):
    """Reads frames at a fixed rate and publishes them; nothing else."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("camera", **kwargs)
        self.p = declare_settings(self, CameraNodeSettings())
        self.params = LiveParameters(self, [SettingsGroup(lambda: self.p, self._apply)])
        self.diag_pub = self.create_publisher(
            DiagnosticArray, TOPICS["diagnostics"].name, topic_qos("diagnostics")
        )
        self.create_timer(1.0, self._publish_stats)
        self.cap: cv2.VideoCapture | None = None
        self.pub: Any = None
        self.timer: Any = None
        self.is_file = False
        self.counts = {"published": 0, "read_failures": 0, "rewinds": 0}
        self.rate = RateMeter(window_s=2.0)

    def _apply(self, new: Settings, changes: dict[str, Any]) -> None:
        assert isinstance(new, CameraNodeSettings)
        self.p = new  # read where used (each frame / tick)

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        dev = str(self.p.device).strip()
        self.is_file = not dev.isdigit()
        cap = cv2.VideoCapture(dev if self.is_file else int(dev))
        if not cap.isOpened():
            self.get_logger().error(f"cannot open {'file' if self.is_file else 'device'} {dev!r}")
            return TransitionCallbackReturn.FAILURE
        if not self.is_file:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queued one
            if self.p.width and self.p.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.p.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.p.height)
            cap.set(cv2.CAP_PROP_FPS, self.p.rate_hz)
        self.cap = cap
        self.pub = self.create_lifecycle_publisher(Image, TOPICS["image"].name, topic_qos("image"))
        self.get_logger().info(f"opened {dev!r}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.timer = self.create_timer(1.0 / float(self.p.rate_hz), self._tick)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.timer is not None:
            self.destroy_timer(self.timer)
            self.timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.timer is not None:
            self.destroy_timer(self.timer)
            self.timer = None
        if self.pub is not None:
            self.destroy_lifecycle_publisher(self.pub)
            self.pub = None
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    # ------------------------------------------------------------------ frames

    def _tick(self) -> None:
        if self.cap is None or self.pub is None:
            return
        ok, bgr = self.cap.read()
        if not ok and self.is_file and self.p.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.counts["rewinds"] += 1
            ok, bgr = self.cap.read()
        t = now_ns(self)
        if not ok or bgr is None:
            self.counts["read_failures"] += 1
            self.get_logger().warning("no frame from the camera", throttle_duration_sec=5.0)
            return
        w, h = int(self.p.width), int(self.p.height)
        if w and h:  # any device size: centre crop to w:h, then resize (channel order kept)
            bgr = to_model_input(bgr, (h, w))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self.pub.publish(rgb_to_image(rgb, ns_to_stamp(t), self.p.frame_id))
        self.counts["published"] += 1
        self.rate.add(t, 1)

    def _publish_stats(self) -> None:
        fps = self.rate.per_s(now_ns(self))
        values = {"state": "active" if self.timer else "inactive", "fps": fps, **self.counts}
        self.diag_pub.publish(diagnostics(self, values))


def main(args: Sequence[str] | None = None) -> int:
    return spin_node(CameraNode, args, after_create=autostart)


if __name__ == "__main__":
    raise SystemExit(main())

"""Every live parameter of every node, set over DDS, observed to take effect.

The set of live parameters is read from the nodes' settings dataclasses
(``ros_nodes.settings``), so a new live parameter without a check here fails the
coverage test at the bottom.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(180)]
LENIENT = {"strict_model_check": False}
#: Which test below checks each live parameter (node -> parameters).
CHECKED = {
    "tokenizer": {"budget", "min_budget", "max_budget", "mode", "bitrate_cap_kbps",
                  "deadline_ms", "loss_timeout_ms", "log_changes"},
    "policy": {"action_deadline_ms", "instruction", "watchdog_ms", "hold_repeat_s",
               "min_task_belief", "unsure_instruction", "proprio_pairing"},
    "camera": {"width", "height", "frame_id", "loop"},
    "sim_robot": {"action_timeout_ms"},
}  # fmt: skip


def _qos(role: str, depth: int | None = None):
    from ros_nodes.common import topic_qos

    return topic_qos(role, depth)


class Params:
    """Set a node's parameters through its parameter services, as `embodied tune` does."""

    def __init__(self, ros, node: str) -> None:
        from rclpy.parameter_client import AsyncParameterClient

        self.ros = ros
        self.client = AsyncParameterClient(ros.node, f"/{node}")
        assert self.client.wait_for_services(timeout_sec=30), f"/{node} parameter services"

    def set(self, **values) -> None:
        from rclpy.parameter import Parameter

        f = self.client.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        self.ros.spin_until(f.done, 10, "a parameter service reply")
        for r in f.result().results:
            assert r.successful, (values, r.reason)


def _latest_diag(diags, name: str) -> dict[str, str]:
    from ros_nodes.common import diag_values

    for _, m in reversed(diags):
        v = diag_values(m, name)
        if v:
            return next(iter(v.values()))
    return {}


def test_tokenizer_live_parameters_take_effect(models, procs, ros):
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Log
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Float64MultiArray

    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.common import feedback_msg, rgb_to_image, stamp_ns
    from ros_nodes.wire import ArrivalReport

    tok, _ = models
    codec = TokenCodec(tok)
    procs.node("embodied-tokenizer-node", "tokenizer", tokenizer_dir=tok, budget=32,
               stats_period_s=0.2)  # fmt: skip
    packets = ros.collect(CompressedImage, "tokens/packets", _qos("packets", depth=50))
    diags = ros.collect(DiagnosticArray, "/diagnostics", _qos("diagnostics"))
    logs = ros.collect(Log, "/rosout", 50)
    img_pub = ros.node.create_publisher(Image, "camera/image_raw", _qos("image"))
    fb_pub = ros.node.create_publisher(Float64MultiArray, "tokens/feedback", _qos("feedback"))
    frames = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8) for i in range(4)]
    state = {"n": 0, "report": True, "reported": 0}

    def tick() -> None:  # the camera (30/s) and the receiver: each packet arrives 50 ms late
        img_pub.publish(rgb_to_image(frames[state["n"] % 4], ros.node.get_clock().now().to_msg()))
        state["n"] += 1
        new = packets[state["reported"] :]
        state["reported"] = len(packets)
        if state["report"] and new:
            rows = [ArrivalReport(0, stamp_ns(m.header.stamp), stamp_ns(m.header.stamp)
                                  + 50_000_000, len(m.data)) for _, m in new]  # fmt: skip
            fb_pub.publish(feedback_msg(rows))

    ros.node.create_timer(1 / 30, tick)
    ros.spin_until(lambda: len(packets) >= 5, 60, "packets from the tokenizer")
    params = Params(ros, "tokenizer")

    def budgets_after(n_after: int = 6) -> list[int]:
        n = len(packets)
        ros.spin_until(lambda: len(packets) >= n + n_after, 10, "packets after a set")
        return [codec.decode(bytes(m.data)).budget for _, m in packets[n + 2 :]]

    def diag() -> dict[str, str]:
        return _latest_diag(diags, "/tokenizer")

    def diag_after(seconds: float = 0.6) -> dict[str, str]:
        ros.spin_for(seconds)
        return diag()

    # budget (the fixed controller sends it)
    params.set(budget=24)
    assert set(budgets_after()) == {24}
    # min_budget + mode 'min'
    params.set(min_budget=5)
    params.set(mode="min")
    assert set(budgets_after()) == {5}
    # max_budget + mode 'max'
    params.set(max_budget=40, mode="max")
    assert set(budgets_after()) == {40}
    # the bit-rate cap: 3 kbit/s at 30 frames/s holds the controller at its minimum
    params.set(bitrate_cap_kbps=3.0)
    assert set(budgets_after()) == {5}
    params.set(bitrate_cap_kbps=0.0, mode="adaptive")
    assert set(budgets_after()) == {24}
    # deadline_ms: reports say 50 ms; against 100 ms on time, against 20 ms late
    before = diag_after()
    assert int(before["late"]) == 0 and int(before["on_time"]) > 0, before
    params.set(deadline_ms=20.0)
    late = int(diag_after(1.0)["late"])
    assert late >= 10, diag()
    # loss_timeout_ms: without reports nothing is lost for a minute, then all at 10 ms
    state["report"] = False
    params.set(loss_timeout_ms=60_000.0)
    lost0 = int(diag_after(0.3)["lost"])
    d = diag_after(1.0)
    assert int(d["lost"]) == lost0 and int(d["pending"]) >= 15, d
    params.set(loss_timeout_ms=10.0)
    d = diag_after(0.6)
    assert int(d["lost"]) >= lost0 + 15 and int(d["pending"]) <= 3, d
    # log_changes: an accepted set is logged only while it is true
    params.set(log_changes=False)
    params.set(deadline_ms=90.0)
    ros.spin_for(0.5)
    params.set(log_changes=True)
    params.set(deadline_ms=95.0)
    ros.spin_until(lambda: any("deadline_ms=95.0" in m.msg for _, m in logs), 5, "a log line")
    said = [m.msg for _, m in logs if m.name == "tokenizer"]
    assert not any("deadline_ms=90.0" in x for x in said), said


def test_policy_live_parameters_take_effect(models, procs, ros):
    import json

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, JointState
    from std_msgs.msg import Float32MultiArray, String

    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.common import msg_to_chunk, ns_to_stamp
    from ros_nodes.wire import PROPRIO_NAMES, PacketFormat

    tok, pol = models
    codec = TokenCodec(tok)
    procs.node("embodied-policy-node", "policy", tokenizer_dir=tok, policy_dir=pol,
               watchdog_ms=60_000.0, stats_period_s=0.2, **LENIENT)  # fmt: skip
    pkt_pub = ros.node.create_publisher(CompressedImage, "tokens/packets", _qos("packets"))
    prop_pub = ros.node.create_publisher(JointState, "robot/proprio", _qos("proprio"))
    instr_pub = ros.node.create_publisher(String, "robot/instruction", _qos("instruction"))
    actions = ros.collect(Float32MultiArray, "policy/actions", _qos("actions"))
    diags = ros.collect(DiagnosticArray, "/diagnostics", _qos("diagnostics"))
    fmt = str(PacketFormat("tokens", codec.model_id, codec.frame_shape))
    frame = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    packet = codec.encode(frame, budget=16).packet
    state = {"send": True, "image_age_ns": 0}
    stamps: dict[str, set[int]] = {"image": set(), "state": set()}

    def tick() -> None:
        if not state["send"]:
            return
        t = time.time_ns()
        js = JointState(name=list(PROPRIO_NAMES), position=[0.0, 0.6, 0.2, 1.0])
        js.header.stamp = ns_to_stamp(t)
        prop_pub.publish(js)
        msg = CompressedImage(format=fmt, data=packet)
        msg.header.stamp = ns_to_stamp(t - state["image_age_ns"])  # captured that long ago
        pkt_pub.publish(msg)
        stamps["state"].add(t)
        stamps["image"].add(t - state["image_age_ns"])

    ros.node.create_timer(1 / 20, tick)
    instr_pub.publish(String(data="press the button from above"))
    moving = lambda: [m for _, m in actions if msg_to_chunk(m)[0].shape[0] > 0]  # noqa: E731
    ros.spin_until(lambda: len(moving()) >= 5, 60, "action chunks")
    params = Params(ros, "policy")

    def diag_after(seconds: float) -> dict[str, str]:
        ros.spin_for(seconds)
        return _latest_diag(diags, "/policy")

    # action_deadline_ms: 1 ms cannot be met, 10 s always is
    params.set(action_deadline_ms=1.0)
    a = int(diag_after(0.5)["actions_late"])
    b = int(diag_after(1.0)["actions_late"])
    assert b >= a + 5, (a, b)
    params.set(action_deadline_ms=10_000.0)
    c = int(diag_after(0.5)["actions_late"])
    assert int(diag_after(1.0)["actions_late"]) == c
    # instruction: the override is what the policy reads (its task belief says which task)
    has_tasks = bool(json.loads((pol / "policy.json").read_text()).get("tasks"))
    topic_task = _latest_diag(diags, "/policy").get("task")
    params.set(instruction="open the drawer")
    if has_tasks:
        assert topic_task and topic_task.startswith("button-press"), topic_task
        ros.spin_until(lambda: _latest_diag(diags, "/policy").get("task") == "drawer-open", 5,
                       "the override read as drawer-open")  # fmt: skip
        params.set(instruction="")
        ros.spin_until(lambda: _latest_diag(diags, "/policy").get("task") == topic_task, 5,
                       "back to the topic's instruction")  # fmt: skip
        # min_task_belief: above any belief, the instruction reads as no task and the robot
        # holds; unsure_instruction: act acts on it anyway
        params.set(min_task_belief=1.0)
        ros.spin_until(lambda: _latest_diag(diags, "/policy").get("hold_reason") == "instruction",
                       5, "the hold on an unsure instruction")  # fmt: skip
        params.set(unsure_instruction="act")
        n = len(moving())
        ros.spin_until(lambda: len(moving()) >= n + 3, 5, "acting on it anyway")
        params.set(min_task_belief=0.5, unsure_instruction="hold")
    # proprio_pairing: frames captured 40 ms before the newest state; the chunk starts at the
    # frame's capture stamp (capture), or at the newest state's stamp (latest)
    state["image_age_ns"] = 40_000_000

    def chunk_starts(n: int) -> list[str]:
        """Which stamp the last n chunks start at: an image's or a state's."""
        k = len(moving())
        ros.spin_until(lambda: len(moving()) >= k + n, 5, "chunks")
        starts = [msg_to_chunk(m)[1] for m in moving()[-n:]]
        return ["image" if s in stamps["image"] else "state" if s in stamps["state"] else "?"
                for s in starts]  # fmt: skip

    ros.spin_for(0.3)
    assert chunk_starts(3) == ["image"] * 3  # at the frame's capture, 40 ms before the state
    params.set(proprio_pairing="latest")
    ros.spin_for(0.3)
    assert chunk_starts(3) == ["state"] * 3  # at the newest state's stamp
    params.set(proprio_pairing="capture")
    state["image_age_ns"] = 0
    # watchdog_ms: silent for 1.5 s under a minute's watchdog: no hold; at 100 ms: hold
    state["send"] = False

    def holds() -> int:
        return sum(1 for _, m in actions if msg_to_chunk(m)[0].shape[0] == 0)

    ros.spin_for(0.3)
    h0 = holds()
    ros.spin_for(1.5)
    assert holds() == h0
    params.set(watchdog_ms=100.0)
    ros.spin_until(lambda: holds() > h0, 3, "the watchdog's hold command")
    # hold_repeat_s: while silent the hold repeats at this period
    ros.spin_for(0.2)
    h1 = holds()
    ros.spin_for(1.0)
    slow = holds() - h1
    params.set(hold_repeat_s=0.1)
    ros.spin_for(0.3)
    h2 = holds()
    ros.spin_for(1.0)
    fast = holds() - h2
    assert slow <= 2 and fast >= 6, (slow, fast)


def test_camera_live_parameters_take_effect(procs, ros, tmp_path):
    import cv2
    from sensor_msgs.msg import Image

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (80, 60))
    for i in range(20):
        writer.write(np.full((60, 80, 3), 10 * i, np.uint8))
    writer.release()
    procs.node("embodied-camera-node", "camera", device=str(video), rate_hz=20.0, width=32,
               height=24)  # fmt: skip
    images = ros.collect(Image, "camera/image_raw", _qos("image", depth=50))
    ros.spin_until(lambda: len(images) >= 5, 60, "camera frames")
    params = Params(ros, "camera")

    def after(n_after: int = 4):
        n = len(images)
        ros.spin_until(lambda: len(images) >= n + n_after, 10, "frames after a set")
        return [m for _, m in images[n + 1 :]]

    params.set(width=40, height=30, frame_id="wrist")
    got = after()
    assert {(m.width, m.height, m.header.frame_id) for m in got} == {(40, 30, "wrist")}
    # loop: a 20-frame file at 20/s ends within a second and a half; without loop it stops
    params.set(loop=False)
    ros.spin_for(2.5)
    n = len(images)
    ros.spin_for(1.0)
    assert len(images) == n
    params.set(loop=True)  # read at the next frame: the file plays again from its start
    after(3)


def test_sim_robot_live_parameters_take_effect(procs, ros):
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32MultiArray, String

    from ros_nodes.common import chunk_to_msg, stamp_ns
    from tests.ros_nodes.conftest import events

    procs.node("embodied-sim-robot-node", "sim_robot", episodes=1, max_steps=100000,
               wait_for_policy_s=0.0, action_timeout_ms=60_000.0)  # fmt: skip
    images = ros.collect(Image, "camera/image_raw", _qos("image", depth=5))
    ev = ros.collect(String, "robot/events", _qos("events"))
    pub = ros.node.create_publisher(Float32MultiArray, "policy/actions", _qos("actions"))
    ros.spin_until(lambda: len(images) >= 3, 60, "robot frames")
    params = Params(ros, "sim_robot")

    def answer(n: int) -> None:  # one chunk per new frame, stamped with that frame
        for _ in range(n):
            k = len(images)
            ros.spin_until(lambda k=k: len(images) > k, 5, "a frame")
            stamp = stamp_ns(images[-1][1].header.stamp)
            pub.publish(chunk_to_msg(np.zeros((4, 4), np.float32), stamp, 0))

    def watchdog_holds() -> int:
        return sum(1 for e in events(ev) if e["event"] == "hold" and e["reason"] == "watchdog")

    answer(10)
    ros.spin_for(1.5)  # silent, under a minute's timeout: no hold
    assert watchdog_holds() == 0
    params.set(action_timeout_ms=50.0)
    ros.spin_until(lambda: watchdog_holds() == 1, 3, "the robot's watchdog hold")


def test_every_live_parameter_is_checked_here():
    from ros_nodes.settings import NODE_SETTINGS

    pytest.importorskip("rclpy")
    from embodied.control.base import settings_spec

    live = {n: {s.name for s in c.specs().values() if s.live} for n, c in NODE_SETTINGS.items()}
    live["tokenizer"] |= {s.name for s in settings_spec().values() if s.live}
    assert live == CHECKED

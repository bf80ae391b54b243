"""The nodes over real DDS, each in its own process (see conftest.py for isolation).

* the sim graph (``embodied launch sim``) runs a full episode end to end, recorded to MCAP;
* a live budget change reaches the wire within 2 frames; bad values are refused, old kept;
* malformed packets are dropped and counted; the policy node keeps running;
* the policy node killed mid-episode: the robot holds; restarted: the graph resumes;
* the camera node's lifecycle (configure/activate at start, deactivate, cleanup);
* a ``tokens-inter`` stream: predicted frames with compact headers, a policy node joining
  mid-stream asks for a keyframe and reads on, lost acknowledgements fall back to keyframes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tests.ros_nodes.conftest import BIN, ROOT, events

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(150)]
#: The graph mechanics are under test, not the model pairing: smoke models (/tmp/models)
#: pair a policy with another tokenizer's ids, which the node refuses by default.
LENIENT = {"strict_model_check": False}
#: The full-episode test's control rate (Hz).
HZ = 10.0


def _qos(role: str, depth: int | None = None):
    from ros_nodes.common import topic_qos

    return topic_qos(role, depth)


def _end_events(got):
    return [e for e in events(got) if e["event"] == "end"]


def test_sim_graph_runs_a_full_episode(models, procs, ros, tmp_path):
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Float32MultiArray, String

    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.common import msg_to_chunk
    from ros_nodes.wire import PacketFormat

    tok, pol = models
    extra = tmp_path / "models.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"tokenizer_dir": str(tok)}},
                "policy": {"ros__parameters": {"policy_dir": str(pol), **LENIENT}},
                "tokenizer": {"ros__parameters": {"budget": 16}},
                # the launched graph runs until stopped, cycling the suite: this test, one episode.
                # The sim steps the same per control step at any rate; 10 Hz leaves the graph
                # 100 ms a step, so a loaded CI machine still answers each observation in time
                # (at 30 Hz, stale chunks there cost the episode once)
                "sim_robot": {
                    "ros__parameters": {"task": "drawer-open", "episodes": 1, "control_hz": HZ}
                },
            }
        )
    )
    ev = ros.collect(String, "robot/events", _qos("events"))
    # best effort (to match the publishers), with a deep queue for this process's late spins
    packets = ros.collect(CompressedImage, "tokens/packets", _qos("packets", depth=300))
    actions = ros.collect(Float32MultiArray, "policy/actions", _qos("actions"))
    images = ros.collect(Image, "camera/image_raw", _qos("image", depth=300))
    mcap = tmp_path / "run.mcap"
    recorder = procs.start("record", ["embodied", "record", "--out", str(mcap), "--duration", "8"])

    def recording(topic: str) -> bool:
        infos = ros.node.get_subscriptions_info_by_topic(topic)
        return any(i.node_name == "embodied_record" for i in infos)

    # the recorder subscribes first: a trained policy may finish the episode in a few seconds
    ros.spin_until(lambda: all(recording(t) for t in ("/camera/image_raw", "/tokens/packets")),
                   30, "the recorder's subscriptions")  # fmt: skip
    launcher = procs.start("launch", ["embodied", "launch", "sim", "--params-file", str(extra)])

    ros.spin_until(lambda: any(e["event"] == "start" for e in events(ev)), 60, "episode start")
    ros.spin_until(lambda: bool(_end_events(ev)), 150 / HZ + 20, "episode end")
    assert launcher.wait(timeout=20) == 0, procs.log("launch")[-3000:]
    assert recorder.wait(timeout=30) == 0, procs.log("record")[-2000:]

    end = _end_events(ev)[0]
    # a full episode: the env terminates at success, else at its 150-step limit
    assert (end["steps"] <= 150) if end["success"] else (end["steps"] == 150), end
    if tok.parent == ROOT / "embodied" / "models":  # the shipped models (not smoke ones)
        # the task policy opens the drawer on this seed at 16 tokens (it does in `embodied eval`)
        assert end["success"], json.dumps(end)
    assert end["held_steps"] < end["steps"] // 2, json.dumps(end)
    codec = TokenCodec(tok)
    fmt = PacketFormat.parse(packets[-1][1].format)
    assert (fmt.codec, fmt.model_id) == ("tokens", codec.model_id)
    assert {codec.decode(bytes(m.data)).budget for _, m in packets} == {16}
    chunks = [msg_to_chunk(m)[0] for _, m in actions]
    moving = [c for c in chunks if c.shape[0] > 0]
    # about one chunk, image and packet per control step (a trained policy may succeed early)
    n = end["steps"]
    # the policy answers the newest packet (older ones in its queue are skipped), so chunks come
    # at most once per step; the robot's held_steps above shows it had fresh actions throughout
    assert len(moving) >= n // 4 and moving[0].shape == (4, 4), (len(moving), n)
    # the test's own packet subscription matches the tokenizer only after DDS discovery (2-3 s
    # here), so count from its first packet: about one packet per control step from then on
    span = packets[-1][0] - packets[0][0]
    assert len(packets) >= 20 and len(packets) >= 0.5 * HZ * span, (len(packets), span, n)
    # the test's own camera subscriber is best-effort (sensor-data QoS) and may miss frames on a
    # loaded machine; the tokenizer's packets above show the frames were delivered to the graph
    assert len(images) >= n // 4, (len(images), n)

    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with mcap.open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        topics = {ch.topic for _, ch, _, _ in reader.iter_decoded_messages()}
    assert {"/camera/image_raw", "/tokens/packets", "/policy/actions", "/diagnostics"} <= topics


def _image_publisher(ros, rate_hz: float = 30.0, n_frames: int = 8):
    from sensor_msgs.msg import Image

    from ros_nodes.common import rgb_to_image

    pub = ros.node.create_publisher(Image, "camera/image_raw", _qos("image"))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(n_frames)]
    count = [0]

    def tick() -> None:
        msg = rgb_to_image(frames[count[0] % n_frames], ros.node.get_clock().now().to_msg())
        pub.publish(msg)
        count[0] += 1

    ros.node.create_timer(1.0 / rate_hz, tick)
    return count


def test_live_budget_change_within_two_frames_and_bad_values_refused(models, procs, ros):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from sensor_msgs.msg import CompressedImage

    from embodied.codecs.tokens import TokenCodec

    tok, _ = models
    codec = TokenCodec(tok)
    node = procs.node("embodied-tokenizer-node", "tokenizer", tokenizer_dir=tok, budget=32)
    packets = ros.collect(CompressedImage, "tokens/packets", _qos("packets"))
    _image_publisher(ros)
    ros.spin_until(lambda: len(packets) >= 5, 60, "packets from the tokenizer")
    client = AsyncParameterClient(ros.node, "/tokenizer")
    assert client.wait_for_services(timeout_sec=10)

    def call(future):
        ros.spin_until(future.done, 10, "a parameter service reply")
        return future.result()

    def budgets(since: int) -> list[int]:
        return [codec.decode(bytes(m.data)).budget for _, m in packets[since:]]

    assert set(budgets(0)) == {32}
    res = call(client.set_parameters([Parameter("budget", value=24)]))
    n = len(packets)  # everything from here on was sent after the node accepted the change
    assert res.results[0].successful, res.results[0].reason
    ros.spin_until(lambda: len(packets) >= n + 6, 10, "packets after the change")
    after = budgets(n)
    first = after.index(24)
    assert first <= 1 and set(after[first:]) == {24}, after  # on the wire within 2 frames

    refused = [
        ("max_budget", 1000, "out of range"),  # the descriptor's range
        ("budget", 65, "out of range"),  # 0..k_max (0 = max_budget)
        ("mode", "turbo", "not allowed"),  # the controller's validation
        ("deadline_ms", "fast", "type"),  # the declared type
        ("k_max", 32, "read-only"),  # fixed by the model
    ]
    for name, value, words in refused:
        before = call(client.get_parameters([name])).values[0]
        r = call(client.set_parameters([Parameter(name, value=value)])).results[0]
        assert not r.successful and words in r.reason.lower(), (name, r.reason)
        assert call(client.get_parameters([name])).values[0] == before, name
    # min/max consistency is the controller's check, and budget must lie between them
    assert call(client.set_parameters([Parameter("max_budget", value=30)])).results[0].successful
    r = call(client.set_parameters([Parameter("budget", value=40)])).results[0]
    assert not r.successful and "kept budget=24" in r.reason, r.reason
    r = call(client.set_parameters([Parameter("min_budget", value=31)])).results[0]
    assert not r.successful and "kept min_budget=1" in r.reason, r.reason

    # the command line does the same through the parameter services
    out = subprocess.run(
        [str(BIN / "embodied"), "tune", "tokenizer", "mode", "turbo"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1 and "refused" in out.stderr and "kept 'adaptive'" in out.stderr
    out = subprocess.run(
        [str(BIN / "embodied"), "tune", "tokenizer", "deadline_ms", "80"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and "-> 80.0" in out.stdout, out.stderr
    n = len(packets)
    ros.spin_until(lambda: len(packets) >= n + 3, 10, "packets after the refusals")
    assert set(budgets(n)) == {24}  # the refusals changed nothing on the wire
    assert node.poll() is None


def test_tokens_inter_stream_join_mid_stream_and_lost_acks(models, procs, ros):
    """The reference is kept per stream: the tokenizer predicts from the newest frame the
    policy acknowledged. A second policy node joining mid-stream refuses the compact
    packets, asks for a keyframe on tokens/feedback and decodes from it on; with every
    receiver gone the acknowledgements stop and the stream falls back to keyframes."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Float64MultiArray

    from embodied.interframe import INTER_PRIOR_FILE
    from embodied.packet import COMPACT_VERSION
    from ros_nodes.common import diag_values
    from ros_nodes.wire import FEEDBACK_FIELDS, PacketFormat

    tok, pol = models
    if not (tok / INTER_PRIOR_FILE).is_file():
        pytest.skip(f"{tok} has no {INTER_PRIOR_FILE}")
    procs.node(
        "embodied-tokenizer-node", "tokenizer", tokenizer_dir=tok, codec="tokens-inter",
        budget=16, loss_timeout_ms=300.0,
    )  # fmt: skip
    policy_params = {"tokenizer_dir": tok, "policy_dir": pol, "watchdog_ms": 10000.0, **LENIENT}
    first = procs.node("embodied-policy-node", "policy", **policy_params)
    packets = ros.collect(CompressedImage, "tokens/packets", _qos("packets"))
    feedback = ros.collect(Float64MultiArray, "tokens/feedback", _qos("feedback"))
    diags = ros.collect(DiagnosticArray, "/diagnostics", _qos("diagnostics"))
    _image_publisher(ros, n_frames=1)  # a still scene: predicted frames change nothing

    def compact(m) -> bool:
        return bytes(m.data)[0] >> 6 == COMPACT_VERSION

    def acked() -> int:
        return sum(len(m.data) // len(FEEDBACK_FIELDS) for _, m in feedback)

    def stats(node: str) -> dict[str, str]:
        for _, m in reversed(diags):
            v = diag_values(m, f"/{node}")
            if v:
                return next(iter(v.values()))
        return {}

    ros.spin_until(lambda: acked() >= 30, 90, "30 acknowledged packets")
    fmt = PacketFormat.parse(packets[-1][1].format)
    assert fmt.codec == "tokens-inter"
    n = len(packets)
    ros.spin_until(lambda: len(packets) >= n + 30, 20, "30 more packets")
    recent = [m for _, m in packets[n:]]
    inter = [m for m in recent if compact(m)]
    assert len(inter) >= 25, [len(m.data) for m in recent]
    # a frame that changes nothing: the 3-byte compact header and no payload
    assert np.median([len(m.data) for m in inter]) == 3

    second = procs.node("embodied-policy-node", "policy_late", **policy_params)

    ros.spin_until(
        lambda: int(stats("policy_late").get("packets_accepted", 0)) >= 10, 60,
        "the late policy decoding the stream",
    )  # fmt: skip
    late = stats("policy_late")
    assert int(late["keyframe_requests"]) >= 1
    assert int(late.get("packets_dropped_NoStreamContext", 0)) >= 1, late
    ros.spin_until(lambda: int(stats("tokenizer").get("keyframe_requests", 0)) >= 1, 10, "stats")
    assert int(stats("policy").get("packets_dropped", 0)) == 0  # the first one lost nothing

    procs.kill(first)
    procs.kill(second)
    ros.spin_for(3.0)  # no acknowledgements: losses declared, references age out
    n = len(packets)
    ros.spin_until(lambda: len(packets) >= n + 10, 10, "packets with no receiver")
    heads = [bytes(m.data)[:2].hex() for _, m in packets[n:]]
    assert not any(compact(m) for _, m in packets[n:]), (heads, stats("tokenizer"))  # keyframes
    procs.node("embodied-policy-node", "policy", **policy_params)
    n = len(packets)
    ros.spin_until(
        lambda: sum(compact(m) for _, m in packets[n:]) >= 10, 60,
        "predicted frames again after a policy came back",
    )  # fmt: skip
    t = stats("tokenizer")
    assert int(t["keyframes"]) >= 10 and int(t["inter_frames"]) >= 40, t


def test_malformed_packets_are_dropped_counted_and_the_policy_keeps_running(models, procs, ros):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, JointState
    from std_msgs.msg import Float32MultiArray, String

    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.common import diag_values, msg_to_chunk, ns_to_stamp
    from ros_nodes.wire import PROPRIO_NAMES, PacketFormat

    tok, pol = models
    codec = TokenCodec(tok)
    node = procs.node(
        "embodied-policy-node",
        "policy",
        tokenizer_dir=tok,
        policy_dir=pol,
        watchdog_ms=10000.0,
        **LENIENT,
    )
    pkt_pub = ros.node.create_publisher(CompressedImage, "tokens/packets", _qos("packets"))
    prop_pub = ros.node.create_publisher(JointState, "robot/proprio", _qos("proprio"))
    instr_pub = ros.node.create_publisher(String, "robot/instruction", _qos("instruction"))
    actions = ros.collect(Float32MultiArray, "policy/actions", _qos("actions"))
    diags = ros.collect(DiagnosticArray, "/diagnostics", _qos("diagnostics"))
    instr_pub.publish(String(data="open the drawer"))
    good_format = str(PacketFormat("tokens", codec.model_id, codec.frame_shape))
    frame = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)

    def send(data: bytes, fmt: str = good_format) -> int:
        t = time.time_ns()
        js = JointState(name=list(PROPRIO_NAMES), position=[0.0, 0.6, 0.2, 1.0])
        js.header.stamp = ns_to_stamp(t)
        prop_pub.publish(js)
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp = ns_to_stamp(t)
        pkt_pub.publish(msg)
        return t

    def answered(stamp: int) -> bool:
        return any(msg_to_chunk(m)[1] == stamp for _, m in actions)

    def valid() -> bytes:
        return codec.encode(frame, budget=16, frame_id=1, stamp_ms=0).packet

    ros.spin_until(lambda: pkt_pub.get_subscription_count() > 0, 60, "the policy node")
    deadline = time.monotonic() + 30
    while True:  # best effort: the first packets may precede discovery of this publisher
        stamp = send(valid())
        try:
            ros.spin_until(lambda s=stamp: answered(s), 1.0, "an action chunk")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    good = valid()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x40
    foreign = str(PacketFormat("tokens", codec.model_id ^ 1, codec.frame_shape))
    bad = [
        (bytes(flipped), good_format),  # CRC
        (good[:-3], good_format),  # truncated
        (b"", good_format),  # empty
        (good, "image/jpeg"),  # not our format
        (good, foreign),  # another tokenizer's stream
        (bytes(np.random.default_rng(2).integers(0, 255, 40, dtype=np.uint8)), good_format),
    ]
    for data, fmt in bad:
        send(data, fmt)
        ros.spin_for(0.05)
    stamp = send(valid())
    ros.spin_until(lambda: answered(stamp), 10, "an action after the malformed packets")

    def dropped() -> dict[str, str]:
        for _, m in reversed(diags):
            v = diag_values(m, "/policy")
            if v:
                return next(iter(v.values()))
        return {}

    ros.spin_until(lambda: int(dropped().get("packets_dropped", 0)) >= len(bad), 10, "stats")
    d = dropped()
    assert int(d["packets_dropped"]) == len(bad), d
    for cls in ("CorruptPacket", "TruncatedPacket", "BadFormat", "ForeignModel"):
        assert int(d.get(f"packets_dropped_{cls}", 0)) >= 1, (cls, d)
    assert int(d["errors"]) == 0
    assert node.poll() is None
    if json.loads((pol / "policy.json").read_text()).get("tasks"):
        # the node reports which task it reads the instruction as (its task belief)
        assert d["task"] == "drawer-open" and float(d["task_belief"]) > 0.5, d


def test_an_instruction_read_as_no_task_holds_and_a_new_sentence_acts(models, procs, ros):
    """Any sentence is read (the shipped sentence encoder); one read as none of the policy's
    tasks holds the robot with a warning on /diagnostics, ``unsure_instruction:=act`` (set
    live) acts anyway, and a never-seen phrasing of a task acts."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from sensor_msgs.msg import CompressedImage, JointState
    from std_msgs.msg import Float32MultiArray

    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.common import diag_values, msg_to_chunk, ns_to_stamp
    from ros_nodes.wire import PROPRIO_NAMES, PacketFormat

    tok, pol = models
    if not json.loads((pol / "policy.json").read_text()).get("tasks"):
        pytest.skip(f"{pol} has no task belief")
    codec = TokenCodec(tok)
    procs.node(
        "embodied-policy-node", "policy", tokenizer_dir=tok, policy_dir=pol,
        watchdog_ms=10000.0, instruction="make me a sandwich", **LENIENT,
    )  # fmt: skip
    pkt_pub = ros.node.create_publisher(CompressedImage, "tokens/packets", _qos("packets"))
    prop_pub = ros.node.create_publisher(JointState, "robot/proprio", _qos("proprio"))
    actions = ros.collect(Float32MultiArray, "policy/actions", _qos("actions"))
    diags = ros.collect(DiagnosticArray, "/diagnostics", _qos("diagnostics"))
    fmt = str(PacketFormat("tokens", codec.model_id, codec.frame_shape))
    frame = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    packet = codec.encode(frame, budget=16).packet
    ros.spin_until(lambda: pkt_pub.get_subscription_count() > 0, 60, "the policy node")
    client = AsyncParameterClient(ros.node, "/policy")
    assert client.wait_for_services(timeout_sec=10)

    def tick() -> None:
        t = time.time_ns()
        js = JointState(name=list(PROPRIO_NAMES), position=[0.0, 0.6, 0.2, 1.0])
        js.header.stamp = ns_to_stamp(t)
        prop_pub.publish(js)
        msg = CompressedImage(format=fmt, data=packet)
        msg.header.stamp = ns_to_stamp(t)
        pkt_pub.publish(msg)

    ros.node.create_timer(0.05, tick)

    def stats() -> tuple[int, str, dict[str, str]]:
        for _, m in reversed(diags):
            for st in m.status:
                if st.name.endswith("/policy"):
                    level = st.level if isinstance(st.level, int) else st.level[0]
                    return level, st.message, diag_values(m)[st.name]
        return 0, "", {}

    def rows(since: int) -> list[int]:
        return [len(msg_to_chunk(m)[0]) for _, m in actions[since:]]

    ros.spin_until(lambda: "none of the policy" in stats()[1], 60, "the hold warning")
    level, _, d = stats()
    assert level == 1 and d["hold_reason"] == "instruction" and int(d["instruction_holds"]) > 0
    assert float(d["task_belief"]) < 0.5 and int(d["chunks"]) == 0, d
    assert actions and set(rows(0)) == {0}  # only the hold command
    future = client.set_parameters([Parameter("unsure_instruction", value="act")])
    ros.spin_until(future.done, 10)
    assert future.result().results[0].successful
    n = len(actions)
    ros.spin_until(lambda: any(r > 0 for r in rows(n)), 10, "acting anyway")
    ros.spin_until(lambda: "acting on an instruction" in stats()[1], 10, "the warning")
    future = client.set_parameters(
        [Parameter("unsure_instruction", value="hold"),
         Parameter("instruction", value="hit the button from the top")]
    )  # fmt: skip
    ros.spin_until(future.done, 10)
    assert all(r.successful for r in future.result().results)
    ros.spin_until(lambda: stats()[2].get("task") == "button-press-topdown", 10, "the new task")
    n = len(actions)
    ros.spin_until(lambda: len([r for r in rows(n) if r > 0]) >= 5, 10, "chunks for it")
    level, _, d = stats()
    assert level == 0 and float(d["task_belief"]) >= 0.5 and d["hold_reason"] == "", d


def test_policy_killed_robot_holds_restarted_graph_resumes(models, procs, ros):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray, String

    from ros_nodes.common import stamp_ns

    tok, pol = models
    policy_params = {"tokenizer_dir": tok, "policy_dir": pol, **LENIENT}
    # episodes=0 (forever): a success soon after the restart must not stop the robot
    procs.node(
        "embodied-sim-robot-node", "sim_robot", episodes=0, max_steps=6000,
        action_timeout_ms=300.0,
    )  # fmt: skip
    procs.node("embodied-tokenizer-node", "tokenizer", tokenizer_dir=tok, budget=32)
    policy = procs.node("embodied-policy-node", "policy", **policy_params)
    ev = ros.collect(String, "robot/events", _qos("events"))
    actions = ros.collect(Float32MultiArray, "policy/actions", _qos("actions"))
    proprio = ros.collect(JointState, "robot/proprio", _qos("proprio"))
    ros.spin_until(lambda: any(e["event"] == "start" for e in events(ev)), 60, "episode start")
    n = len(actions)
    ros.spin_until(lambda: len(actions) >= n + 15, 15, "action chunks")

    procs.kill(policy)
    killed = time.monotonic()
    n_before = len(events(ev))

    def watchdog_hold_in_effect() -> dict | None:
        """The robot's watchdog hold now in effect (its event), by the robot's own events. On
        a loaded machine a slow policy may trip the watchdog before the kill and a queued
        chunk resume it: only a hold that nothing resumed counts."""
        current = None
        for e in events(ev):
            if e["event"] == "hold":
                current = e if e["reason"] == "watchdog" else None
            elif e["event"] == "resume":
                current = None
        return current

    ros.spin_until(lambda: watchdog_hold_in_effect() is not None, 5, "the robot's watchdog hold")
    held_at = time.monotonic()
    assert held_at - killed < 2.0
    ros.spin_for(1.5)
    hold = watchdog_hold_in_effect()
    assert hold is not None, events(ev)[n_before - 2 :]  # nothing resumed the robot since
    # by the robot's own clock (event time, proprio stamps), not this process's receive times:
    # on 2 busy cores this process drains its queues late, with pre-hold states still in them
    hold_t = hold["t"]
    still = np.array(
        [m.position[:3] for _, m in proprio if stamp_ns(m.header.stamp) / 1e9 > hold_t + 0.3]
    )
    assert len(still) >= 10  # the robot keeps publishing while it holds
    # and the arm stays put: executing even a tenth of full speed moves it ~3.6 cm in this
    # window; held, the hand only settles against what it touches (measured up to ~5 mm)
    assert np.ptp(still, axis=0).max() < 1e-2, np.ptp(still, axis=0)

    procs.node("embodied-policy-node", "policy", **policy_params)
    ros.spin_until(lambda: any(e["event"] == "resume" for e in events(ev)), 60, "resume")
    n = len(actions)
    ros.spin_until(lambda: len(actions) >= n + 15, 15, "action chunks after the restart")
    # the first resume after the watchdog hold ends that hold, in the same episode (a later
    # stop-and-go of the fresh policy node while its first packets arrive may follow; the
    # episode may then succeed and the next one start, which once stopped a one-episode robot)
    evs = events(ev)
    held = evs.index(hold)
    resumed = next(i for i, e in enumerate(evs) if i > held and e["event"] == "resume")
    assert evs[resumed]["after"] == "watchdog"
    assert not any(e["event"] == "end" for e in evs[held:resumed]), evs[held:]


def test_camera_node_lifecycle_on_a_video_file(procs, ros, tmp_path):
    import cv2
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.msg import Image

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (80, 60))
    for i in range(10):
        writer.write(np.full((60, 80, 3), 20 * i, np.uint8))
    writer.release()
    procs.node(
        "embodied-camera-node", "camera", device=str(video), rate_hz=20.0, width=32, height=24
    )
    images = ros.collect(Image, "camera/image_raw", _qos("image"))
    ros.spin_until(lambda: len(images) >= 15, 60, "camera frames")  # 10-frame file: it loops
    m = images[-1][1]
    assert (m.width, m.height, m.encoding) == (32, 24, "rgb8")

    change = ros.node.create_client(ChangeState, "/camera/change_state")
    get = ros.node.create_client(GetState, "/camera/get_state")
    assert change.wait_for_service(timeout_sec=10)

    def transition(tid: int) -> bool:
        f = change.call_async(ChangeState.Request(transition=Transition(id=tid)))
        ros.spin_until(f.done, 10, "change_state")
        return f.result().success

    assert transition(Transition.TRANSITION_DEACTIVATE)
    ros.spin_for(0.3)
    n = len(images)
    ros.spin_for(0.7)
    assert len(images) == n  # inactive: nothing published
    assert transition(Transition.TRANSITION_CLEANUP)
    f = get.call_async(GetState.Request())
    ros.spin_until(f.done, 10, "get_state")
    assert f.result().current_state.label == "unconfigured"


def test_cli_without_a_graph_fails_cleanly(ros_env):
    out = subprocess.run(
        [sys.executable, "-m", "embodied.cli", "tune", "no_such_node", "budget", "3",
         "--timeout", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "no parameter services" in out.stderr

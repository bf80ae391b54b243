"""``embodied record-to-lerobot``: a recording of the graph becomes a LeRobotDataset v3 that
LeRobot's own class reads.

Over real DDS: the sim robot with ``driver:=expert`` demonstrates two short episodes while
``embodied record`` records; the conversion's frames, states and actions are the expert's own
(the same rollout run here offline). Without ``robot/executed_action`` (older recordings), the
policy's chunks are replayed through the robot's ActionChunker: checked on an MCAP written
here in ``embodied record``'s layout from a simulated robot whose executed actions are known.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mujoco")
pytest.importorskip("mcap_ros2")

from sim import lerobot as lr

try:
    LeRobotDataset = lr.lerobot_dataset_class()
except ImportError as err:  # pragma: no cover - the `lerobot` extra is not installed
    pytest.skip(str(err), allow_module_level=True)

STEPS, SEED = 6, 40


def _expert_rollouts(task: str, seeds: list[int]) -> list[dict[str, np.ndarray]]:
    from sim.collect import expert_loop
    from sim.env import MetaWorldTaskEnv
    from sim.experts import ScriptedExpert

    env = MetaWorldTaskEnv(task, max_steps=STEPS)
    out = []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        _, arr = expert_loop(env, ScriptedExpert(env), obs)
        out.append({**arr, "instruction": env.instruction})
    env.close()
    return out


def test_a_recorded_expert_graph_becomes_a_lerobot_dataset(procs, ros, tmp_path):
    from std_msgs.msg import String

    from embodied.cli import main as cli
    from ros_nodes.common import topic_qos

    got = ros.collect(String, "robot/events", topic_qos("events"))
    mcap = tmp_path / "demos.mcap"
    recorder = procs.start("record", ["embodied", "record", "--out", str(mcap),
                                      "--duration", "120"])  # fmt: skip
    robot = procs.node(
        "embodied-sim-robot-node", "sim_robot", task="drawer-open", episodes=2,
        max_steps=STEPS, driver="expert", wait_for_policy_s=60.0, seed=SEED,
    )  # fmt: skip
    # The robot exits after its last episode. It starts as soon as the recorder subscribes,
    # so its latched events may be gone before this process has matched them: wait on the
    # process, and read the episodes from the recording.
    ros.spin_until(lambda: robot.poll() is not None, 180, "the expert's two episodes")
    assert robot.returncode == 0, procs.log("sim_robot")[-2000:]
    del got
    ros.spin_for(0.5)
    os.killpg(recorder.pid, signal.SIGINT)  # the recorder finishes the file on Ctrl-C
    assert recorder.wait(timeout=20) == 0, procs.log("record")[-2000:]

    out = tmp_path / "lerobot"
    assert cli(["record-to-lerobot", str(mcap), "--out", str(out), "--images"]) == 0
    ds = LeRobotDataset("local/embodied-record", root=out)
    want = _expert_rollouts("drawer-open", [SEED, SEED + 1])
    assert ds.num_episodes == 2 and len(ds) == 2 * STEPS, procs.log("record")
    assert ds.fps == 30  # the sim robot's control_hz
    assert list(ds.meta.tasks.index) == list(dict.fromkeys(w["instruction"] for w in want))
    i = 0
    for e, w in enumerate(want):
        for t in range(STEPS):
            item = ds[i]
            assert int(item["episode_index"]) == e and int(item["frame_index"]) == t
            # the executed action is the expert's for this observation, exactly
            np.testing.assert_array_equal(item["action"].numpy(), w["actions"][t])
            np.testing.assert_allclose(item["observation.state"].numpy(), w["proprio"][t],
                                       atol=1e-6)  # fmt: skip
            img = np.round(item["observation.images.corner"].permute(1, 2, 0).numpy() * 255)
            np.testing.assert_array_equal(img.astype(np.uint8), w["frames"][t])
            assert item["task"] == w["instruction"]
            i += 1
    assert bool(ds[STEPS - 1]["next.success"]) is False  # 6 steps do not open the drawer


# --------------------------------------------------------------------------- chunk replay


def _write_mcap(path: Path, messages: list[tuple[int, str, object]]) -> None:
    """(log ns, role, rclpy message) in ``embodied record``'s layout: the same schemas and
    channels, the messages as CDR bytes."""
    from mcap.writer import CompressionType, Writer
    from rclpy.serialization import serialize_message

    from ros_nodes.record import msg_definition
    from ros_nodes.wire import TOPICS

    with path.open("wb") as f:
        w = Writer(f, compression=CompressionType.ZSTD)
        w.start(profile="ros2", library="embodied record")
        channels: dict[str, int] = {}
        for role in sorted({r for _, r, _ in messages}):
            t = TOPICS[role]
            schema = w.register_schema(name=t.type, encoding="ros2msg",
                                       data=msg_definition(t.type).encode())  # fmt: skip
            channels[role] = w.register_channel(topic="/" + t.name.lstrip("/"),
                                                message_encoding="cdr", schema_id=schema)  # fmt: skip
        for seq, (log, role, msg) in enumerate(sorted(messages, key=lambda m: m[0])):
            w.add_message(channels[role], log_time=log, data=serialize_message(msg),
                          publish_time=log, sequence=seq)  # fmt: skip
        w.finish()


def test_without_executed_actions_the_chunks_are_replayed_like_the_robot(tmp_path):
    """A 30 Hz robot, a policy answering each observation with a 4-row chunk 50 ms later (so
    every chunk arrives with one or two rows already stale), one chunk lost, a stop command
    and a watchdog hold: the replay gives the actions the robot's ActionChunker executed."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    from embodied.policy import ActionChunker
    from ros_nodes.common import chunk_to_msg, ns_to_stamp, rgb_to_image
    from ros_nodes.mcap_lerobot import record_to_lerobot

    period, t0 = 33_333_333, 1_700_000_000_000_000_000
    rng = np.random.default_rng(0)
    msgs: list[tuple[int, str, object]] = []
    truth: list[list[np.ndarray]] = []
    frames: list[list[np.ndarray]] = []

    def obs(t: int, k: int) -> int:
        img = np.full((32, 32, 3), (7 * k) % 256, np.uint8)
        msgs.append((t + 1000, "image", rgb_to_image(img, ns_to_stamp(t))))
        js = JointState(name=["ee_x", "ee_y", "ee_z", "gripper"], position=[0.01 * k] * 4)
        js.header.stamp = ns_to_stamp(t)
        msgs.append((t + 1000, "proprio", js))
        return t

    def event(t: int, **body: object) -> None:
        msgs.append((t, "events", String(data=json.dumps(body))))

    t = t0
    for ep in range(2):
        chunker = ActionChunker(action_dim=4)
        stamps = [obs(t, 0)]  # the reset observation, before start
        event(t + 2000, event="start", episode=ep, instruction="open the drawer")
        pending: list[tuple[int, int]] = []  # (arrival, obs step)
        truth.append([])
        frames.append([])
        for k in range(12):
            if not (ep == 0 and k == 3):  # this observation's chunk is lost
                pending.append((stamps[k] + 50_000_000, k))
            tick = t + (k + 1) * period
            for arrival, j in [p for p in pending if p[0] < tick]:
                pending.remove((arrival, j))
                rows = rng.uniform(-1, 1, (4, 4)).astype(np.float32)
                stop = ep == 1 and j == 6
                chunk = np.zeros((0, 4), np.float32) if stop else rows
                msgs.append((arrival, "actions", chunk_to_msg(chunk, stamps[j], j)))
                if stop:
                    chunker.drop_chunk()
                else:
                    chunker.submit(rows, obs_step=j)
            if ep == 0 and k == 8:  # the robot's watchdog
                event(tick + 100, event="hold", reason="watchdog", step=k)
                chunker.drop_chunk()
            truth[ep].append(chunker.next_action())
            frames[ep].append(np.full((32, 32, 3), (7 * k) % 256, np.uint8))
            stamps.append(obs(tick + 2_000_000, k + 1))  # after the step's simulation
        end = stamps[-1] + 3_000_000
        event(end, event="end", episode=ep, success=ep == 1, steps=12)
        t = end + 10 * period
    mcap = tmp_path / "old.mcap"
    _write_mcap(mcap, msgs)
    r = record_to_lerobot(mcap, tmp_path / "out", video=False, fps=30)
    assert r.action_source == "replayed chunks" and (r.episodes, r.frames) == (2, 24)
    ds = LeRobotDataset("local/x", root=tmp_path / "out")
    got = np.stack([ds[i]["action"].numpy() for i in range(len(ds))])
    np.testing.assert_array_equal(got, np.concatenate([np.stack(a) for a in truth]))
    assert (got[8, :3] == 0).all()  # the watchdog hold: motion zeroed
    img = np.round(ds[5]["observation.images.corner"].permute(1, 2, 0).numpy() * 255)
    np.testing.assert_array_equal(img.astype(np.uint8), frames[0][5])
    assert bool(ds[23]["next.success"]) and not bool(ds[11]["next.success"])

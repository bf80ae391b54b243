"""The sim robot cycles tasks and seeds (the launched graph runs until stopped)."""

from __future__ import annotations

import json
import signal

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("mujoco")


def test_task_setting_names_one_task_a_list_or_the_suite():
    from ros_nodes.sim_robot_node import robot_tasks
    from sim.suite import TASKS

    assert robot_tasks("all") == list(TASKS) and len(TASKS) == 11
    assert robot_tasks("drawer-open") == ["drawer-open"]
    assert robot_tasks("drawer-open,door-open") == ["drawer-open", "door-open"]
    with pytest.raises(ValueError, match=r"Valid tasks: .*drawer-open"):
        robot_tasks("drawer-opne")  # a typo: the valid names are listed
    with pytest.raises(ValueError, match="Meta-World suite"):
        robot_tasks("cluttered")  # two-camera scenes are not a sim robot yet


def test_robot_cycles_tasks_and_seeds_episode_by_episode(procs, ros):
    from std_msgs.msg import String

    from ros_nodes.common import topic_qos

    got = ros.collect(String, "robot/events", topic_qos("events"))
    node = procs.node(
        "embodied-sim-robot-node", "sim_robot", task="drawer-open,door-open", episodes=3,
        max_steps=4, wait_for_policy_s=0.0, seed=500, exit_when_done=False,
    )  # fmt: skip
    # exit_when_done:=false: the robot (no policy to wait for) may finish its 12 steps before
    # this node's subscription is discovered; alive, its latched events still reach it

    def events(kind: str) -> list[dict]:
        return [e for e in (json.loads(m.data) for _, m in got) if e["event"] == kind]

    try:
        ros.spin_until(lambda: bool(events("done")), 60, "the robot's three episodes")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{procs.log('sim_robot')[-3000:]}") from None
    assert [(e["task"], e["seed"]) for e in events("start")] == [
        ("drawer-open", 500), ("door-open", 501), ("drawer-open", 502),
    ]  # fmt: skip
    assert [e["steps"] for e in events("end")] == [4, 4, 4]
    assert node.poll() is None  # still up after its last episode
    node.send_signal(signal.SIGTERM)  # a launcher's stop: a clean exit
    assert node.wait(timeout=20) == 0, procs.log("sim_robot")[-2000:]


def test_expert_driver_demonstrates_and_publishes_what_it_executed(procs, ros):
    """``driver:=expert``: the scripted expert acts (a stand-in teleoperator), starts once the
    executed actions have a subscriber, solves the task, and every executed action names the
    observation it was executed on (the demonstration's labels)."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float32MultiArray, String

    from ros_nodes.common import msg_to_chunk, stamp_ns, topic_qos

    got = ros.collect(String, "robot/events", topic_qos("events"))
    executed = ros.collect(Float32MultiArray, "robot/executed_action", topic_qos("executed"))
    proprio = ros.collect(JointState, "robot/proprio", topic_qos("proprio", depth=500))
    node = procs.node(
        "embodied-sim-robot-node", "sim_robot", task="drawer-close", episodes=1,
        driver="expert", wait_for_policy_s=60.0, seed=1_000_000,
    )  # fmt: skip

    def events(kind: str) -> list[dict]:
        return [e for e in (json.loads(m.data) for _, m in got) if e["event"] == kind]

    ros.spin_until(lambda: bool(events("done")), 90, "the expert's episode")
    end = events("end")[0]
    assert end["success"] is True, end
    rows = [msg_to_chunk(m) for _, m in executed]
    assert all(c.shape == (1, 4) for c, _, _ in rows)
    steps = [f for _, _, f in rows]
    assert steps[-end["steps"] :] == list(range(end["steps"]))  # one per step, in order
    seen = {stamp_ns(m.header.stamp) for _, m in proprio}
    labelled = [s for _, s, _ in rows[-end["steps"] :]]
    assert sum(s in seen for s in labelled) >= 0.9 * len(labelled)  # (best-effort proprio)
    assert node.wait(timeout=20) == 0, procs.log("sim_robot")[-2000:]

"""Sim robot node: a MuJoCo benchmark task (``sim.env.MetaWorldTaskEnv``) as the robot.

At ``control_hz`` (30 by default) it executes one action and publishes what its camera
and joints see; what it executes comes from the newest action chunk, served by
``embodied.policy.ActionChunker`` (LeRobot's and openpi's asynchronous semantics: a newer
chunk replaces the rest of the current one; actions that latency made stale are
dropped; an exhausted chunk holds the arm). This is ``sim.evaluate.run_episode`` with
the link and the policy moved into other processes.

    publishes  camera/image_raw (Image), robot/proprio (JointState, same stamp),
               robot/instruction (String, latched), robot/events (String JSON, latched),
               robot/executed_action (the action each step executed, on which observation)
    subscribes policy/actions (Float32MultiArray [chunk x 4]; 0 rows = stop/hold)

``driver:=expert`` makes the task's scripted expert act instead of the policy (a stand-in
teleoperator): ``embodied record`` of that graph is a set of demonstrations, with the executed
actions as labels, that ``embodied record-to-lerobot`` turns into a LeRobotDataset. The expert
starts once the recorder is listening: something has subscribed to ``robot/executed_action``,
``camera/image_raw`` and ``robot/proprio`` for ``EXPERT_SETTLE_TICKS`` control ticks (each topic
is matched on its own, and both ends of a match take a moment; a demonstration's first steps
would be lost otherwise), or after ``wait_for_policy_s``.

Two holds: the policy's stop command (a chunk of zero rows, sent by its watchdog when
observations stop), and this node's own watchdog: no chunk for ``action_timeout_ms``
(the policy died or the link did) drops the rest of the chunk, so the arm holds
instead of playing out a plan made from an old view. Events: ``start``, ``hold``,
``resume``, ``end`` (with ``success``), ``done``.

Before the first episode it publishes the reset observation without stepping until
the first message from a policy arrives (or ``wait_for_policy_s``), so start-up time of
the other nodes does not eat the episode.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, String

from embodied.policy import ActionChunker, PolicyOutputError
from embodied.settings import Settings
from ros_nodes.common import (
    LiveParameters,
    SettingsGroup,
    Window,
    chunk_to_msg,
    declare_settings,
    diagnostics,
    msg_to_chunk,
    now_ns,
    ns_to_stamp,
    rgb_to_image,
    spin_node,
    topic_qos,
)
from ros_nodes.settings import SimRobotNodeSettings
from ros_nodes.wire import PROPRIO_NAMES, TOPICS

#: driver = expert: control ticks the recorder must have been subscribed to every recorded topic
#: before the demonstration starts (half a second at 30 Hz).
EXPERT_SETTLE_TICKS = 15


class SimRobotNode(Node):
    """Steps a Meta-World task at a fixed rate, executing the newest action chunk."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_robot", **kwargs)
        self.p = declare_settings(self, SimRobotNodeSettings())
        self.params = LiveParameters(self, [SettingsGroup(lambda: self.p, self._apply)])
        self.tasks = robot_tasks(self.p.task)  # unknown names refused with the valid ones
        self.envs: dict[str, Any] = {}  # one env per task, made when its first episode starts
        self.chunker = ActionChunker(action_dim=4)
        self.image_pub = self.create_publisher(Image, TOPICS["image"].name, topic_qos("image"))
        self.proprio_pub = self.create_publisher(
            JointState, TOPICS["proprio"].name, topic_qos("proprio")
        )
        self.instruction_pub = self.create_publisher(
            String, TOPICS["instruction"].name, topic_qos("instruction", depth=1)
        )
        self.events_pub = self.create_publisher(String, TOPICS["events"].name, topic_qos("events"))
        self.executed_pub = self.create_publisher(
            Float32MultiArray, TOPICS["executed"].name, topic_qos("executed")
        )
        self.expert: Any = None  # driver = expert: the task's scripted expert, per episode
        self.last_obs_ns = 0
        self.diag_pub = self.create_publisher(
            DiagnosticArray, TOPICS["diagnostics"].name, topic_qos("diagnostics")
        )
        self.create_subscription(
            Float32MultiArray, TOPICS["actions"].name, self._on_actions, topic_qos("actions")
        )
        self.period_ns = int(1e9 / float(self.p.control_hz))
        self.create_timer(self.period_ns / 1e9, self._tick)
        self.create_timer(1.0, self._publish_stats)

        self.episode = 0
        self.successes = 0
        self.done = False
        self.running = False
        self.policy_seen = False
        self.listening_ticks = 0  # driver = expert: ticks the recorder has been subscribed
        self.holding: str | None = None  # None, "policy" (stop command) or "watchdog"
        self.last_chunk_ns: int | None = None
        self.stamp_to_step: OrderedDict[int, int] = OrderedDict()
        self.counts = dict.fromkeys(
            ("chunks", "stale_chunks", "unknown_chunks", "bad_chunks", "hold_commands",
             "watchdog_holds", "overruns"), 0,
        )  # fmt: skip
        self.step_ms = Window()
        self.created_ns = now_ns(self)
        self.last_tick_ns: int | None = None
        self._reset_episode()

    @property
    def task(self) -> str:
        """The task of the current episode: episode i runs ``tasks[i % len(tasks)]``."""
        return self.tasks[self.episode % len(self.tasks)]

    @property
    def env(self) -> Any:
        if self.task not in self.envs:
            from sim.env import MetaWorldTaskEnv

            self.envs[self.task] = MetaWorldTaskEnv(
                self.task,
                resolution=int(self.p.resolution),
                camera=self.p.camera,
                instruction_split=self.p.instruction_split,
                max_steps=int(self.p.max_steps) or None,
            )
        return self.envs[self.task]

    def _apply(self, new: Settings, changes: dict[str, Any]) -> None:
        assert isinstance(new, SimRobotNodeSettings)
        self.p = new  # read where used (each frame / tick)

    # ------------------------------------------------------------------ episodes

    def _event(self, event: str, **fields: Any) -> None:
        body = {"event": event, "episode": self.episode, "t": time.time(), **fields}
        self.events_pub.publish(String(data=json.dumps(body)))

    def _reset_episode(self) -> None:
        self.seed = int(self.p.seed) + self.episode
        self.obs, _ = self.env.reset(seed=self.seed)
        self.chunker.reset()
        self.stamp_to_step.clear()
        self.steps = 0
        if self.p.driver == "expert":
            from sim.experts import ScriptedExpert

            self.expert = ScriptedExpert(self.env)
        self.instruction_pub.publish(String(data=self.obs["instruction"]))
        self._publish_obs()

    def _start(self) -> None:
        self.running = True
        self._event("start", seed=self.seed, task=self.task, instruction=self.obs["instruction"])
        self.get_logger().info(f"episode {self.episode}: {self.task} (seed {self.seed}) started")

    def _end(self, success: bool) -> None:
        self.successes += int(success)
        self._event(
            "end", seed=self.seed, task=self.task, success=bool(success), steps=self.steps,
            held_steps=self.chunker.held_steps, stale_chunks=self.chunker.stale_chunks,
        )  # fmt: skip
        self.get_logger().info(
            f"episode {self.episode} ended after {self.steps} steps: "
            f"{'success' if success else 'failure'} ({self.chunker.held_steps} held)"
        )
        self.running = False
        self.episode += 1
        n = int(self.p.episodes)
        if n and self.episode >= n:
            self._event("done", episodes=self.episode, successes=self.successes)
            self.done = True
            return
        self._reset_episode()
        self._start()

    # ------------------------------------------------------------------ control loop

    def _publish_obs(self) -> None:
        t = now_ns(self)
        stamp = ns_to_stamp(t)
        self.image_pub.publish(rgb_to_image(self.obs["image"], stamp, self.p.frame_id))
        js = JointState(name=list(PROPRIO_NAMES), position=[float(v) for v in self.obs["proprio"]])
        js.header.stamp = stamp
        js.header.frame_id = self.p.frame_id
        self.proprio_pub.publish(js)
        self.last_obs_ns = t
        self.stamp_to_step[t] = self.chunker.step  # the step this observation is the state of
        while len(self.stamp_to_step) > 256:
            self.stamp_to_step.popitem(last=False)

    def _tick(self) -> None:
        t = now_ns(self)
        if self.last_tick_ns is not None and t - self.last_tick_ns > 1.5 * self.period_ns:
            self.counts["overruns"] += 1
        self.last_tick_ns = t
        if self.done:
            return
        if not self.running:
            waited = (t - self.created_ns) / 1e9
            ready = self.policy_seen
            if self.p.driver == "expert":  # the recorder is listening: demonstrate
                pubs = (self.executed_pub, self.image_pub, self.proprio_pub)
                listening = all(p.get_subscription_count() > 0 for p in pubs)
                self.listening_ticks = self.listening_ticks + 1 if listening else 0
                ready = self.listening_ticks >= EXPERT_SETTLE_TICKS
            if ready or waited > self.p.wait_for_policy_s:
                self._start()
            else:
                self._publish_obs()  # warm the pipeline on the reset frame
                return
        if self.expert is not None:
            action = self.expert.act()
        else:
            self._watchdog(t)
            action = self.chunker.next_action()
        self.executed_pub.publish(chunk_to_msg(action[None], self.last_obs_ns, self.steps))
        t0 = time.perf_counter()
        self.obs, _, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        self._publish_obs()
        self.step_ms.add((time.perf_counter() - t0) * 1e3)
        if terminated or truncated:
            self._end(bool(info["success"]))

    def _watchdog(self, t: int) -> None:
        if self.holding is not None or self.last_chunk_ns is None:
            return
        if (t - self.last_chunk_ns) / 1e6 > self.p.action_timeout_ms:
            self.chunker.drop_chunk()
            self.counts["watchdog_holds"] += 1
            self._hold("watchdog", f"no action chunk for {(t - self.last_chunk_ns) / 1e6:.0f} ms")

    def _hold(self, reason: str, detail: str) -> None:
        self.holding = reason
        self._event("hold", reason=reason, detail=detail, step=self.steps)
        self.get_logger().warning(f"holding ({reason}): {detail}")

    def _on_actions(self, msg: Float32MultiArray) -> None:
        self.policy_seen = True
        try:
            chunk, stamp, _ = msg_to_chunk(msg)
        except ValueError as err:
            self.counts["bad_chunks"] += 1
            self.get_logger().warning(f"bad action message: {err}", throttle_duration_sec=5.0)
            return
        if chunk.shape[0] == 0:  # the stop/hold command
            self.counts["hold_commands"] += 1
            self.chunker.drop_chunk()
            if self.holding is None:
                self._hold("policy", "stop command from the policy")
            return
        step = self.stamp_to_step.get(stamp) if stamp is not None else None
        if step is None:  # an observation of an earlier episode, or of nobody we know
            self.counts["unknown_chunks"] += 1
            return
        try:
            accepted = self.chunker.submit(chunk, obs_step=step)
        except (ValueError, PolicyOutputError) as err:
            self.counts["bad_chunks"] += 1
            self.get_logger().warning(f"chunk refused: {err}", throttle_duration_sec=5.0)
            return
        self.last_chunk_ns = now_ns(self)
        self.counts["chunks"] += 1
        if not accepted:
            self.counts["stale_chunks"] += 1
            return
        if self.holding is not None:
            self._event("resume", step=self.steps, after=self.holding)
            self.get_logger().info("action chunks are back: acting again")
            self.holding = None

    def _publish_stats(self) -> None:
        values = {
            "episode": self.episode,
            "step": self.steps,
            "running": self.running,
            "successes": self.successes,
            "holding": self.holding or "",
            "held_steps": self.chunker.held_steps,
            "step_p50_ms": self.step_ms.pct(50),
            "step_p99_ms": self.step_ms.pct(99),
            "stamps_tracked": len(self.stamp_to_step),
            **self.counts,
        }
        level = 1 if self.holding else 0
        self.diag_pub.publish(
            diagnostics(self, values, level=level, message=f"holding ({self.holding})"
                        if self.holding else "ok")
        )  # fmt: skip

    def destroy_node(self) -> None:
        for env in self.envs.values():
            env.close()
        super().destroy_node()


def robot_tasks(spec: str) -> list[str]:
    """The ``task`` setting → the tasks the robot cycles through: one name, a comma list, or
    "all" (the Meta-World suite in ``embodied tasks`` order). Unknown names are refused
    with the valid ones; the cluttered suite's two-camera scenes are not a robot here yet."""
    from sim.suite import TASKS, resolve_tasks

    names = [t.name for t in resolve_tasks(spec.strip() or "all")]
    other = [n for n in names if n not in TASKS]
    if other or not names:
        raise ValueError(
            f"task={spec!r}: the sim robot runs the Meta-World suite; {other or 'none'} is "
            f"not one of it. Valid: all, or names of {', '.join(TASKS)} (comma-separated)"
        )
    return names


def main(args: Sequence[str] | None = None) -> int:
    return spin_node(SimRobotNode, args, until=lambda n: n.done and bool(n.p.exit_when_done))


if __name__ == "__main__":
    raise SystemExit(main())

"""Scripted state-machine experts of the cluttered suite (after Meta-World's pick-place
policy: above the object, down, close, up, over the goal, down, open), reading privileged
state through an *observation model* that can be degraded on purpose:

* ``delay_steps``: object and pad positions are those of ``delay_steps`` actions ago (the
  hand's own position stays current, as proprioception is), like a stale camera frame;
* ``bits``: object and pad coordinates quantized to ``bits`` bits each over the workspace box
  (:data:`QUANT_LOW` .. :data:`QUANT_HIGH`), like a rate-limited description of the scene;
* ``know_target=False``: every object's and pad's position, but not which is the target or
  the goal: the expert picks one of each at random (seeded), like an observation without
  the instruction.

Moving things are led by a velocity estimated from the expert's own (possibly delayed or
quantized) observations; the expert never knows the delay.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from sim.cluttered.env import ACTION_SCALE, DT, ClutteredEnv
from sim.cluttered.spec import BELT_HALF_WIDTH, BELT_Y, BELT_Z, SHAPES
from sim.suite import task_key

QUANT_LOW = np.array([-0.5, 0.4, 0.0])
QUANT_HIGH = np.array([0.5, 1.0, 0.3])
HOVER_Z = 0.13
P_GAIN = 10.0
VEL_WINDOW = 8  # actions between the two positions a velocity is estimated from
#: while reaching, the fingers are part-closed to leave this much room beside the object (so
#: that an open finger does not land on a neighbour 7 cm away); the finger actuators are
#: position servos whose target is the closing distance (0 open .. 0.04 m)
REACH_MARGIN = 0.01
OPEN_GAP = 0.088  # m between the pads fully open


def quantize(x: np.ndarray, bits: int, low: np.ndarray = QUANT_LOW, high: np.ndarray = QUANT_HIGH) -> np.ndarray:  # fmt: skip
    """Uniform quantizer, ``2**bits`` cells per coordinate, returning cell centres."""
    n = 2**bits
    lo, hi = low[: x.shape[-1]], high[: x.shape[-1]]
    cell = np.clip(np.floor((x - lo) / (hi - lo) * n), 0, n - 1)
    return lo + (cell + 0.5) * (hi - lo) / n


class ClutteredExpert:
    """One episode's expert; build a new one after each ``reset``."""

    def __init__(
        self, env: ClutteredEnv, delay_steps: int = 0, bits: int | None = None,
        know_target: bool = True,
    ) -> None:  # fmt: skip
        if delay_steps < 0:
            raise ValueError(f"delay_steps must be >= 0, got {delay_steps}")
        if bits is not None and not 1 <= bits <= 16:
            raise ValueError(f"bits must be in 1..16 or None, got {bits}")
        self.env = env
        self.kind = env.spec_task.kind
        self.delay = int(delay_steps)
        self.bits = bits
        st = env.expert_state()
        lay = env.layout
        assert lay is not None
        if know_target:
            self.target, self.goal = st["target"], st["goal_index"]
        else:
            rng = np.random.default_rng([task_key(env.spec_task.name), env.seed_value, 0x5EE])
            self.target = int(rng.integers(len(st["objects"])))
            self.goal = int(rng.integers(len(st["goals"])))
        self.shape = lay.objects[self.target][1]
        self.half = SHAPES[self.shape][2]
        gtype, size, _ = SHAPES[self.shape]
        width = 2 * size[1] if gtype == "box" else 2 * size[0]  # across the fingers (y)
        self.reach_grip = float(np.clip((OPEN_GAP - width - 2 * REACH_MARGIN) / 2, 0.0, 0.02))
        self.history: deque = deque(maxlen=self.delay + VEL_WINDOW + 2)
        self.seen: deque = deque(maxlen=VEL_WINDOW + 1)
        self.phase = "approach"
        self.t_phase = 0
        self.offset = np.zeros(2)
        self.z_off = 0.03

    # -- observation model -------------------------------------------------------------------
    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        st = self.env.expert_state()
        self.history.append((st["objects"][self.target].copy(), st["goals"][self.goal].copy()))
        obj, goal = self.history[max(0, len(self.history) - 1 - self.delay)]
        if self.bits is not None:
            obj, goal = quantize(obj, self.bits), quantize(goal, self.bits)
        self.seen.append((obj, goal))
        k = len(self.seen) - 1
        if k >= 1:
            v_obj = (self.seen[-1][0] - self.seen[0][0]) / (k * DT)
            v_goal = (self.seen[-1][1] - self.seen[0][1]) / (k * DT)
        else:
            v_obj = v_goal = np.zeros(3)
        if not self.env.spec_task.moving:
            v_goal = np.zeros(3)
        v_obj[2] = v_goal[2] = 0.0
        return obj, goal, v_obj, v_goal

    # -- control -----------------------------------------------------------------------------
    def _move(self, hand: np.ndarray, target: np.ndarray, vel: np.ndarray, grip: float) -> np.ndarray:  # fmt: skip
        a = P_GAIN * (target - hand) + vel * DT / ACTION_SCALE
        return np.clip(np.append(a, grip), -1.0, 1.0).astype(np.float32)

    def _next(self, phase: str) -> None:
        self.phase, self.t_phase = phase, 0

    def act(self) -> np.ndarray:
        obj, goal, v_obj, v_goal = self._observe()
        hand = self.env.proprio()[:3].astype(np.float64)
        self.t_phase += 1
        if self.kind == "push":
            return self._push(hand, obj, goal)
        return self._pick(hand, obj, goal, v_obj, v_goal)

    def _surface(self, xy: np.ndarray) -> float:
        return BELT_Z if abs(xy[1] - BELT_Y) < BELT_HALF_WIDTH else 0.0

    def _pick(
        self, hand: np.ndarray, obj: np.ndarray, goal: np.ndarray, v_obj: np.ndarray,
        v_goal: np.ndarray, after_grasp: str = "lift",
    ) -> np.ndarray:  # fmt: skip
        lead = 2  # actions: the hand trails the mocap target by about this much
        obj_p = obj + v_obj * DT * lead
        grasp_z = max(self._surface(obj[:2]) + self.half + 0.03, 0.05)
        ph = self.phase
        if ph == "approach":
            tgt = np.array([obj_p[0], obj_p[1], HOVER_Z])
            if np.linalg.norm(hand[:2] - obj_p[:2]) < 0.015:
                self._next("descend")
            return self._move(hand, tgt, v_obj, self.reach_grip)
        if ph == "descend":
            tgt = np.array([obj_p[0], obj_p[1], grasp_z])
            if np.linalg.norm(hand[:2] - obj_p[:2]) > 0.04:
                self._next("approach")
            elif hand[2] < grasp_z + 0.008:
                self.offset = (
                    obj[:2] - hand[:2]
                    if self.env.spec_task.kind != "conveyor-pick"
                    else np.zeros(2)
                )
                self._next("grasp")
            return self._move(hand, tgt, v_obj, self.reach_grip)
        if ph == "grasp":
            tgt = np.array([obj_p[0], obj_p[1], grasp_z])
            if self.t_phase >= 12:
                self._next(after_grasp)
            return self._move(hand, tgt, v_obj, 1.0)
        place_z = self._surface(goal[:2]) + self.half + 0.008 + self.z_off
        goal_p = goal + v_goal * DT * lead
        carry = goal_p[:2] - self.offset
        if ph == "lift":
            tgt = np.array([hand[0], hand[1], HOVER_Z])
            if hand[2] > HOVER_Z - 0.04:
                self._next("carry")
            return self._move(hand, tgt, np.zeros(3), 1.0)
        if ph == "carry":
            if self.t_phase > 5:  # how far below the hand the object hangs in this grasp
                self.z_off = 0.8 * self.z_off + 0.2 * float(hand[2] - obj[2])
            tgt = np.array([carry[0], carry[1], HOVER_Z])
            if np.linalg.norm(hand[:2] - carry) < 0.012:
                self._next("lower")
            return self._move(hand, tgt, v_goal, 1.0)
        if ph == "lower":
            tgt = np.array([carry[0], carry[1], place_z])
            low = hand[2] < place_z + 0.006 or self.t_phase > 40
            if low and np.linalg.norm(hand[:2] - carry) < 0.008:
                self._next("release")
            return self._move(hand, tgt, v_goal, 1.0)
        if ph == "release":
            tgt = np.array([carry[0], carry[1], place_z])
            if self.t_phase >= 10:
                self._next("retreat")
            return self._move(hand, tgt, v_goal, -1.0)
        tgt = np.array([hand[0], hand[1], HOVER_Z])
        return self._move(hand, tgt, np.zeros(3), -1.0)

    def _push(self, hand: np.ndarray, obj: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Meta-World's push: close on the object and slide it along the table (never lift)."""
        grasp_z = max(self.half + 0.03, 0.05)
        ph = self.phase
        if ph in ("approach", "descend", "grasp"):
            return self._pick(hand, obj, goal, np.zeros(3), np.zeros(3), after_grasp="slide")
        slide = goal[:2] - self.offset
        if ph == "slide":
            step = slide - hand[:2]
            n = np.linalg.norm(step)
            if n > 0.06:  # a limited speed keeps the object sliding, not tumbling
                step = step * 0.06 / n
            tgt = np.array([hand[0] + step[0], hand[1] + step[1], grasp_z])
            if np.linalg.norm(obj[:2] - goal[:2]) < 0.008 or self.t_phase > 200:
                self._next("release")
            return self._move(hand, tgt, np.zeros(3), 1.0)
        if ph == "release":
            if self.t_phase >= 10:
                self._next("retreat")
            return self._move(hand, np.array([*hand[:2], grasp_z]), np.zeros(3), -1.0)
        return self._move(hand, np.array([hand[0], hand[1], HOVER_Z]), np.zeros(3), -1.0)


def run_episode(
    env: ClutteredEnv, seed: int, delay_steps: int = 0, bits: int | None = None,
    know_target: bool = True, record: bool = False, instruction: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One expert episode; with ``record`` the observations and actions come back too."""
    from sim.collect import expert_loop

    options = {"instruction": instruction} if instruction else None
    obs, info = env.reset(seed=seed, options=options)
    expert = ClutteredExpert(env, delay_steps=delay_steps, bits=bits, know_target=know_target)
    success, arrays = expert_loop(env, expert, obs, record=record)
    out: dict[str, Any] = {
        "task": env.spec_task.name, "seed": int(seed), "success": success, "steps": env.steps,
        "instruction": env.instruction, "heldout_combo": info["heldout_combo"],
        "heldout_phrasing": info["heldout_phrasing"],
    }  # fmt: skip
    out.update(arrays)
    return out


def rollout_for_collect(
    env: ClutteredEnv, seed: int, record: bool = True, noise: float = 0.0
) -> dict[str, Any]:
    """``sim.collect.rollout_expert`` for a cluttered task: the same keys (plus ``wrist``).
    With ``noise`` the executed actions are perturbed (DART), the recorded labels stay clean."""
    from sim.collect import ActionNoise, expert_loop

    obs, _ = env.reset(seed=seed)
    perturb = ActionNoise(noise, env.spec_task.name, seed)
    success, arrays = expert_loop(env, ClutteredExpert(env), obs, perturb=perturb, record=record)
    assert env.layout is not None
    out: dict[str, Any] = {
        "task": env.spec_task.name, "seed": int(seed), "success": success, "steps": env.steps,
        "instruction": env.instruction, "layout": env.layout.as_vector(), "noise": float(noise),
    }  # fmt: skip
    out.update(arrays)
    return out

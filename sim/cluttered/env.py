"""Gymnasium environment of the cluttered suite on Meta-World's Sawyer arm.

Observation (a ``Dict``)::

    image        uint8  (H, W, 3)  RGB from the ``front`` camera (H = W = resolution, 64..256)
    wrist_image  uint8  (H, W, 3)  RGB from the ``wrist`` camera on the hand
    proprio      float32 (4,)      end-effector x, y, z and gripper opening (as Meta-World)
    instruction  str               names the target object and the goal pad

Action: Meta-World's, exactly: end-effector position deltas (x, y, z in [-1, 1], scaled by
1/100 m onto the mocap target, clipped to the hand box) and the gripper (-1 open .. 1 close,
the two finger actuators), 5 physics steps of 2.5 ms per action (80 actions per second).

Object, pad and belt state never enter the observation: the scripted experts read them
through :meth:`ClutteredEnv.expert_state`, and success is computed from them.
"""

# mujoco's compiled bindings ship no stubs for MjSpec, MjData, mj_* and the mjt* enums:
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.cluttered.scene import (
    FRAME_SKIP,
    HAND_HIGH,
    HAND_LOW,
    HIDDEN,
    MOCAP_QUAT,
    PAD_HALF_HEIGHT,
    PARK,
    build_model,
    home_arm,
)
from sim.cluttered.spec import (
    BELT_Z,
    COLOURS,
    GOALS,
    PARAM_RANGES,
    SHAPES,
    ClutteredTaskSpec,
    Layout,
    get_task,
    layout_for,
)
from sim.env import INSTRUCTION_CHARSET, FastCamera
from sim.env import check_resolution as _check_resolution

MIN_RESOLUTION, MAX_RESOLUTION = 64, 256
CAMERAS = ("front", "wrist")
DT = 0.0025 * FRAME_SKIP  # seconds per action
ACTION_SCALE = 1.0 / 100
PUSH_MAX_LIFT = 0.02  # m: a push fails once the target's bottom rose this far off the table
REST_TOL = 0.01  # an object "rests" when its bottom is within this of the surface under it


def check_resolution(resolution: Any) -> int:
    """The cluttered suite's range, 64..256 (``sim.env.check_resolution``)."""
    return _check_resolution(resolution, MIN_RESOLUTION, MAX_RESOLUTION)


class _Camera(FastCamera):
    """The fast renderer without Meta-World's vertical flip (these cameras render upright)."""

    def render(self, data: Any) -> np.ndarray:
        renderer = self.renderer
        if renderer is None:
            raise RuntimeError("the camera is closed")
        renderer.update_scene(data, camera=self.camera)
        return renderer.render()


class ClutteredEnv(gym.Env):
    """One cluttered task. ``reset(seed=s)``: the scene is ``layout_for(task, s)``.

    Task parameters (``n_objects``, ``n_goals``, ``speed``, ``tolerance``, ``max_steps``)
    default to the task's and are refused outside their ranges. ``reset(options=
    {"instruction": text})`` forces the named target and pad into the seed's scene."""

    # gymnasium.Env declares ``metadata`` a plain (instance-overridable) dict, not a ClassVar
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 80}  # noqa: RUF012

    def __init__(
        self,
        task: str = "cluttered-pick-place",
        resolution: int = 128,
        cameras: tuple[str, ...] | list[str] = CAMERAS,
        n_objects: int | None = None,
        n_goals: int | None = None,
        speed: float | None = None,
        tolerance: float | None = None,
        max_steps: int | None = None,
        fast_render: bool = True,
        render_mode: str | None = "rgb_array",
        camera: str | None = None,  # accepted for sim.collect's signature: the primary camera
    ) -> None:
        super().__init__()
        import mujoco

        self._mj = mujoco
        self.spec_task: ClutteredTaskSpec = get_task(task).with_params(
            n_objects=n_objects, n_goals=n_goals, speed=speed, tolerance=tolerance,
            max_steps=max_steps,
        )  # fmt: skip
        self.resolution = check_resolution(resolution)
        cameras = tuple(cameras)
        if camera not in (None, "corner", *CAMERAS):
            raise ValueError(f"unknown camera {camera!r}; valid cameras: {', '.join(CAMERAS)}")
        bad = [c for c in cameras if c not in CAMERAS]
        if bad or len(set(cameras)) != len(cameras):
            raise ValueError(
                f"cameras must be distinct names from {', '.join(CAMERAS)} (or none, for "
                f"state-only rollouts), got {list(cameras)}"
            )
        self.cameras = cameras
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_steps = int(self.spec_task.max_steps)
        self.max_lift = 0.0
        self.model, self.ids = build_model()
        self.data = mujoco.MjData(self.model)
        self._cams = {c: _Camera(self.model, self.resolution, c, fast=fast_render) for c in cameras}
        home_arm(self.model, self.data)
        self._home = self._snapshot()
        r = self.resolution
        obs: dict[str, spaces.Space] = {}
        if "front" in cameras:
            obs["image"] = spaces.Box(0, 255, (r, r, 3), np.uint8)
        if "wrist" in cameras:
            obs["wrist_image"] = spaces.Box(0, 255, (r, r, 3), np.uint8)
        obs["proprio"] = spaces.Box(
            np.array([-1.0, 0.0, -0.5, -1.0], np.float32),
            np.array([1.0, 1.5, 1.0, 1.0], np.float32),
        )
        obs["instruction"] = spaces.Text(max_length=128, charset=INSTRUCTION_CHARSET)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.layout: Layout | None = None
        self._steps = 0
        self._slots: list[tuple[str, int]] = []
        self._last_grip = -1.0
        self.release_events: list[dict[str, Any]] = []
        self.seed_value = 0

    # -- state save/restore ------------------------------------------------------------------
    def _snapshot(self) -> dict[str, np.ndarray]:
        d = self.data
        return {k: getattr(d, k).copy() for k in
                ("qpos", "qvel", "act", "ctrl", "mocap_pos", "mocap_quat", "qacc_warmstart")}  # fmt: skip

    def _restore(self, snap: dict[str, np.ndarray]) -> None:
        self._mj.mj_resetData(self.model, self.data)
        for k, v in snap.items():
            getattr(self.data, k)[:] = v

    # -- gymnasium API -----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        options = options or {}
        unknown = set(options) - {"instruction"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; valid: instruction")
        self.seed_value = int(seed)
        self.layout = lay = layout_for(self.spec_task, self.seed_value, options.get("instruction"))
        self._restore(self._home)  # the arm's reset motion, done once with objects parked
        m, d, ids = self.model, self.data, self.ids
        # -- appearance
        for g in ids.table_geoms:
            m.geom_matid[g] = ids.table_mats[lay.table_texture]
        m.mat_rgba[ids.table_mats[lay.table_texture]] = [*lay.tint, 1.0]
        m.geom_matid[ids.wall_geom] = ids.wall_mats[lay.wall_texture]
        # -- objects: park the pool, then place this scene's
        for shape in SHAPES:
            for k in range(len(ids.obj_qpos[shape])):
                a = ids.obj_qpos[shape][k]
                d.qpos[a : a + 3] = PARK + np.array([0.12 * k, 0.12 * list(SHAPES).index(shape), 0])
                d.qpos[a + 3 : a + 7] = [1, 0, 0, 0]
        used: dict[str, int] = {s: 0 for s in SHAPES}
        self._slots = []
        for i, (colour, shape) in enumerate(lay.objects):
            k = used[shape]
            used[shape] += 1
            self._slots.append((shape, k))
            m.geom_rgba[ids.obj_geom[shape][k]] = [*COLOURS[colour], 1.0]
            half = SHAPES[shape][2]
            z = (BELT_Z if lay.on_belt[i] else 0.0) + half + 0.0005
            a = ids.obj_qpos[shape][k]
            d.qpos[a : a + 3] = [lay.object_xy[i, 0], lay.object_xy[i, 1], z]
            if lay.on_belt[i]:
                d.qvel[ids.obj_qvel[shape][k]] = lay.velocity
        # -- pads
        moving_pads = self.spec_task.kind == "moving-goal"
        for j in range(len(GOALS)):
            for g in (ids.static_pads[j], ids.belt_pads[j]):
                m.geom_pos[g] = HIDDEN
        for j, name in enumerate(lay.goals):
            g = ids.belt_pads[j] if moving_pads else ids.static_pads[j]
            x, y = lay.goal_xy[j]
            if moving_pads:  # in the belt's frame (the belt starts at x = 0)
                m.geom_pos[g] = [x, 0.0, BELT_Z + PAD_HALF_HEIGHT]
            else:
                m.geom_pos[g] = [x, y, PAD_HALF_HEIGHT]
            m.geom_rgba[g] = [*GOALS[name], 1.0]
        # -- belt
        d.qpos[ids.belt_qpos] = 0.0
        d.qvel[ids.belt_qvel] = lay.velocity
        d.ctrl[2] = lay.velocity
        self._mj.mj_forward(m, d)
        self._steps = 0
        self._last_grip = -1.0
        self.release_events = []
        self.max_lift = 0.0
        info = {
            "success": False, "seed": self.seed_value, "instruction": lay.instruction,
            "heldout_combo": lay.heldout_combo, "heldout_phrasing": lay.heldout_phrasing,
        }  # fmt: skip
        return self._observe(), info

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.layout is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (4,):
            raise ValueError(f"action must have shape (4,), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or inf")
        a = np.clip(a, -1.0, 1.0)
        d = self.data
        mid = self.ids.mocap
        d.mocap_pos[mid] = np.clip(d.mocap_pos[mid] + a[:3] * ACTION_SCALE, HAND_LOW, HAND_HIGH)
        d.mocap_quat[mid] = MOCAP_QUAT
        d.ctrl[0], d.ctrl[1] = a[3], -a[3]
        d.ctrl[2] = self.layout.velocity
        self._mj.mj_step(self.model, d, nstep=FRAME_SKIP)
        self._steps += 1
        released = self._last_grip > 0.0 and a[3] <= 0.0
        self._last_grip = float(a[3])
        st = self.expert_state()
        dist = float(np.linalg.norm(st["target_pos"][:2] - st["goal_pos"][:2]))
        if self.spec_task.kind == "moving-goal":
            success = False
            if released:
                height = st["target_pos"][2] - st["target_half"] - (BELT_Z + PAD_HALF_HEIGHT)
                lifted = height > 0.003
                ok = lifted and height < 0.05 and dist < self.spec_task.tolerance
                self.release_events.append(
                    {"step": self._steps, "distance": dist, "height": height, "success": ok}
                )
                success = ok
        else:
            surface = self._surface_under(st["target_pos"][:2])
            height = st["target_pos"][2] - st["target_half"] - surface
            if self.spec_task.kind == "push":  # a push never lifts the object off the table
                self.max_lift = max(self.max_lift, float(height))
            success = bool(
                dist < self.spec_task.tolerance and abs(height) < REST_TOL
                and self.max_lift < PUSH_MAX_LIFT
            )  # fmt: skip
        terminated = bool(success)
        truncated = self._steps >= self.max_steps and not terminated
        info = {"success": bool(success), "distance": dist}
        return self._observe(), 0.0 + float(success), terminated, truncated, info

    def _surface_under(self, xy: np.ndarray) -> float:
        from sim.cluttered.spec import BELT_HALF_WIDTH, BELT_Y

        return BELT_Z if abs(xy[1] - BELT_Y) < BELT_HALF_WIDTH else 0.0

    def render(self) -> np.ndarray:
        if not self._cams:
            raise RuntimeError("this env was built with cameras=(): nothing to render")
        cam = "front" if "front" in self._cams else self.cameras[0]
        return self._cams[cam].render(self.data)

    def render_camera(self, camera: str) -> np.ndarray:
        if camera not in self._cams:
            raise ValueError(f"camera {camera!r} not enabled; enabled: {', '.join(self._cams)}")
        return self._cams[camera].render(self.data)

    def close(self) -> None:
        for c in self._cams.values():
            c.close()

    # -- beyond gymnasium --------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return self.layout.instruction if self.layout else ""

    @property
    def steps(self) -> int:
        return self._steps

    def proprio(self) -> np.ndarray:
        d = self.data
        hand = d.xpos[self.ids.hand_body]
        grip = np.linalg.norm(d.xpos[self.ids.right_claw] - d.xpos[self.ids.left_claw]) / 0.1
        return np.array([hand[0], hand[1], hand[2], np.clip(grip, 0, 1)], dtype=np.float32)

    def object_positions(self) -> np.ndarray:
        d = self.data
        return np.array([d.xpos[self.ids.obj_body[s][k]] for s, k in self._slots])

    def goal_positions(self) -> np.ndarray:
        m, d, ids = self.model, self.data, self.ids
        assert self.layout is not None
        if self.spec_task.kind == "moving-goal":
            return np.array([d.geom_xpos[ids.belt_pads[j]] for j in range(len(self.layout.goals))])
        return np.array([m.geom_pos[ids.static_pads[j]] for j in range(len(self.layout.goals))])

    def expert_state(self) -> dict[str, Any]:
        """Privileged state, for experts and success only (never the policy's observation)."""
        assert self.layout is not None
        lay = self.layout
        objs, goals = self.object_positions(), self.goal_positions()
        p = self.proprio()
        return {
            "hand": p[:3].astype(np.float64), "gripper": float(p[3]),
            "objects": objs, "halves": np.array([SHAPES[s][2] for _, s in lay.objects]),
            "target": lay.target, "target_pos": objs[lay.target].copy(),
            "target_half": SHAPES[lay.objects[lay.target][1]][2],
            "goals": goals, "goal_index": lay.goal_index, "goal_pos": goals[lay.goal_index].copy(),
            "velocity": lay.velocity, "time": self._steps * DT,
        }  # fmt: skip

    def _observe(self) -> dict[str, Any]:
        obs: dict[str, Any] = {}
        if "front" in self._cams:
            obs["image"] = self._cams["front"].render(self.data)
        if "wrist" in self._cams:
            obs["wrist_image"] = self._cams["wrist"].render(self.data)
        obs["proprio"] = self.proprio()
        obs["instruction"] = self.instruction
        return obs


__all__ = ["CAMERAS", "PARAM_RANGES", "ClutteredEnv", "check_resolution"]

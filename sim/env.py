"""Gymnasium environment over a Meta-World v3 task, seen through a fast 64×64 camera.

Observation (a ``Dict``)::

    image        uint8  (H, W, 3)   RGB from the ``corner`` camera (H = W = resolution)
    proprio      float32 (4,)       end-effector x, y, z and gripper opening
    instruction  str                one phrasing of the task (training or held-out split)

Object and goal positions never enter the observation: the scripted experts read
them through :meth:`MetaWorldTaskEnv.expert_state`, and success comes from
Meta-World's own ``info["success"]``.

Rendering: MuJoCo's default scene (shadows, reflections, skybox, 4× MSAA) costs
about 90 ms per 64×64 frame on this CPU (Mesa EGL); with those off it costs a
few ms. ``fast_render=False`` keeps the default look for comparison
(``embodied bench render`` measures both).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import string
import weakref
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.suite import INSTRUCTION_SPLITS, TaskSpec, get_task, instruction_for, layout_for

MIN_RESOLUTION = 16
MAX_RESOLUTION = 512
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " ,.'-"


def check_resolution(resolution: Any, lo: int = MIN_RESOLUTION, hi: int = MAX_RESOLUTION) -> int:
    """Refuse a resolution that is not an integer in ``lo..hi``, with the allowed range."""
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer):
        raise ValueError(f"resolution must be an integer in {lo}..{hi}, got {resolution!r}")
    if not lo <= int(resolution) <= hi:
        raise ValueError(f"resolution must be in {lo}..{hi}, got {resolution}")
    return int(resolution)


_LIVE_CAMERAS: weakref.WeakSet = weakref.WeakSet()
_ATEXIT_REGISTERED = False


def _close_cameras() -> None:
    # Free GL contexts before MuJoCo's own atexit hook terminates the EGL display;
    # otherwise every renderer's destructor prints an EGL_NOT_INITIALIZED trace at exit.
    for cam in list(_LIVE_CAMERAS):
        cam.close()


class FastCamera:
    """An offscreen MuJoCo renderer with the expensive effects off.

    Meta-World's cameras come out upside down from ``mujoco.Renderer``
    (OpenGL's bottom-left origin), so frames are flipped to the usual top-left.
    """

    def __init__(self, model: Any, resolution: int, camera: str, fast: bool = True) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        self._mujoco = mujoco
        if fast:
            model.vis.quality.offsamples = 0
        self.renderer: mujoco.Renderer | None = mujoco.Renderer(model, resolution, resolution)
        global _ATEXIT_REGISTERED
        if not _ATEXIT_REGISTERED:  # after MuJoCo's EGL hook exists, so that ours runs first
            atexit.register(_close_cameras)
            _ATEXIT_REGISTERED = True
        if fast:
            flags = self.renderer.scene.flags
            rnd = mujoco.mjtRndFlag  # pyright: ignore[reportAttributeAccessIssue] (native enum, no stubs)
            for f in (rnd.mjRND_SHADOW, rnd.mjRND_REFLECTION, rnd.mjRND_SKYBOX):
                flags[f] = 0
        self.camera = camera
        _LIVE_CAMERAS.add(self)

    def render(self, data: Any) -> np.ndarray:
        if self.renderer is None:
            raise RuntimeError("FastCamera.render after close()")
        self.renderer.update_scene(data, camera=self.camera)
        return np.ascontiguousarray(self.renderer.render()[::-1])

    def close(self) -> None:
        renderer, self.renderer = getattr(self, "renderer", None), None
        if renderer is not None:
            with contextlib.suppress(Exception):  # EGL teardown at exit can fail harmlessly
                renderer.close()


class MetaWorldTaskEnv(gym.Env):
    """One suite task. ``reset(seed=s)`` sets the layout from ``s`` (see ``sim.suite``)."""

    # gymnasium.Env declares ``metadata`` a plain (instance-overridable) dict, not a ClassVar
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 80}  # noqa: RUF012

    def __init__(
        self,
        task: str = "drawer-open",
        resolution: int = 64,
        camera: str = "corner",
        instruction_split: str = "train",
        max_steps: int | None = None,
        fast_render: bool = True,
        render_mode: str | None = "rgb_array",
    ) -> None:
        super().__init__()
        self.spec_task: TaskSpec = get_task(task)
        self.resolution = check_resolution(resolution)
        if instruction_split not in INSTRUCTION_SPLITS:
            raise ValueError(
                f"instruction_split must be one of {', '.join(INSTRUCTION_SPLITS)}, "
                f"got {instruction_split!r}"
            )
        self.instruction_split = instruction_split
        self.max_steps = int(max_steps or self.spec_task.max_steps)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode

        import warnings

        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self._mw = ALL_V3_ENVIRONMENTS[self.spec_task.mw_id]()
        self._mw._partially_observable = False
        self._mw._set_task_called = True
        self._mw._freeze_rand_vec = True
        self._mw.max_path_length = self.max_steps
        self._mw._last_rand_vec = layout_for(self.spec_task, 0)
        valid_cams = [self._mw.model.camera(i).name for i in range(self._mw.model.ncam)]
        if camera not in valid_cams:
            raise ValueError(f"unknown camera {camera!r}; valid cameras: {', '.join(valid_cams)}")
        self.camera_name = camera
        self._camera = FastCamera(self._mw.model, self.resolution, camera, fast=fast_render)
        warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")

        r = self.resolution
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (r, r, 3), np.uint8),
                # hand x, y, z (Meta-World clips them to its hand box) and gripper opening
                "proprio": spaces.Box(
                    np.array([-1.0, 0.0, -0.5, -1.0], np.float32),
                    np.array([1.0, 1.5, 1.0, 1.0], np.float32),
                ),
                "instruction": spaces.Text(max_length=128, charset=INSTRUCTION_CHARSET),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._state = np.zeros(39)
        self._instruction = self.spec_task.train_instructions[0]
        self._steps = 0
        self.layout = np.zeros(len(self.spec_task.obj_low))

    # -- gymnasium API -------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        options = options or {}
        split = options.get("instruction_split", self.instruction_split)
        self.seed_value = int(seed)
        self.layout = layout_for(self.spec_task, self.seed_value)
        self._mw._last_rand_vec = self.layout.copy()
        self._mw.curr_path_length = 0
        state, _ = self._mw.reset()
        self._state = np.asarray(state, dtype=np.float64)
        self._instruction = options.get("instruction") or instruction_for(
            self.spec_task, self.seed_value, split
        )
        self._steps = 0
        info = {"success": False, "layout": self.layout.copy(), "seed": self.seed_value}
        return self._observe(), info

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (4,):
            raise ValueError(f"action must have shape (4,), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or inf")
        a = np.clip(a, -1.0, 1.0)
        state, reward, _, truncated, mw_info = self._mw.step(a)
        self._state = np.asarray(state, dtype=np.float64)
        self._steps += 1
        success = bool(mw_info.get("success", 0.0))
        # Success ends the episode (terminated); the step limit truncates it.
        terminated = success
        truncated = bool(truncated or self._steps >= self.max_steps) and not terminated
        info = {"success": success, "near_object": float(mw_info.get("near_object", 0.0))}
        return self._observe(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray:
        return self._camera.render(self._mw.data)

    def close(self) -> None:
        self._camera.close()

    # -- beyond gymnasium ------------------------------------------------------------
    @property
    def instruction(self) -> str:
        return self._instruction

    def proprio(self) -> np.ndarray:
        s = self._state
        return np.array([s[0], s[1], s[2], s[3]], dtype=np.float32)

    def expert_state(self) -> np.ndarray:
        """Meta-World's full 39-d state (object and goal positions): experts only, never the policy."""
        return self._state.copy()

    def _observe(self) -> dict[str, Any]:
        return {
            "image": self.render(),
            "proprio": self.proprio(),
            "instruction": self._instruction,
        }

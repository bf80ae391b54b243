"""Benchmark tasks on MuJoCo (Meta-World v3), scripted experts, demonstration datasets.

Offscreen rendering needs the GL backend chosen before MuJoCo is first
imported, so this package defaults ``MUJOCO_GL`` to ``egl`` (headless, works
on CPU Mesa and on NVIDIA). Set it yourself to override.
"""

import importlib.util
import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

if importlib.util.find_spec("gymnasium") is not None:  # the `sim` extra (absent on the robot)
    from sim import registration as registration  # registers the embodied/* gymnasium ids

"""Register every suite task with gymnasium under a versioned id, by string entry point.

``gymnasium.make("embodied/drawer-open-v0")`` builds the env; importing this
module imports neither MuJoCo nor Meta-World.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from sim.suite import TASKS

ENTRY_POINT = "sim.env:MetaWorldTaskEnv"
CLUTTERED_ENTRY_POINT = "sim.cluttered.env:ClutteredEnv"


def _register(specs: Any, entry_point: str) -> list[str]:
    """Register each task spec's ``gym_id`` (once) with ``entry_point``; the ids."""
    ids = []
    for spec in specs:
        if spec.gym_id not in gym.registry:
            gym.register(id=spec.gym_id, entry_point=entry_point,
                         kwargs={"task": spec.name}, max_episode_steps=None)  # fmt: skip
        ids.append(spec.gym_id)
    return ids


def register_envs() -> list[str]:
    return _register(TASKS.values(), ENTRY_POINT) + register_cluttered_envs()


def register_cluttered_envs() -> list[str]:
    """The cluttered suite (``sim.cluttered``): ``embodied/cluttered-<task>-v0``."""
    from sim.cluttered.spec import TASKS as CLUTTERED

    return _register(CLUTTERED.values(), CLUTTERED_ENTRY_POINT)


register_envs()

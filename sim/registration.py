"""Register every suite task with gymnasium under a versioned id, by string entry point.

``gymnasium.make("embodied/drawer-open-v0")`` builds the env; importing this
module imports neither MuJoCo nor Meta-World.
"""

from __future__ import annotations

import gymnasium as gym

from sim.suite import TASKS

ENTRY_POINT = "sim.env:MetaWorldTaskEnv"
CLUTTERED_ENTRY_POINT = "sim.cluttered.env:ClutteredEnv"


def register_envs() -> list[str]:
    ids = []
    for spec in TASKS.values():
        if spec.gym_id not in gym.registry:
            gym.register(
                id=spec.gym_id,
                entry_point=ENTRY_POINT,
                kwargs={"task": spec.name},
                max_episode_steps=None,
            )
        ids.append(spec.gym_id)
    return ids + register_cluttered_envs()


def register_cluttered_envs() -> list[str]:
    """The cluttered suite (``sim.cluttered``): ``embodied/cluttered-<task>-v0``."""
    from sim.cluttered.spec import TASKS as CLUTTERED

    ids = []
    for spec in CLUTTERED.values():
        if spec.gym_id not in gym.registry:
            gym.register(
                id=spec.gym_id,
                entry_point=CLUTTERED_ENTRY_POINT,
                kwargs={"task": spec.name},
                max_episode_steps=None,
            )
        ids.append(spec.gym_id)
    return ids


register_envs()

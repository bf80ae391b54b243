"""Scripted experts: Meta-World's hand-written policies, reading the privileged state."""

from __future__ import annotations

import warnings

import numpy as np

from sim.env import MetaWorldTaskEnv


class ScriptedExpert:
    def __init__(self, env: MetaWorldTaskEnv) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
        self.env = env
        self.policy = ENV_POLICY_MAP[env.spec_task.mw_id]()

    def act(self) -> np.ndarray:
        a = self.policy.get_action(self.env.expert_state())
        return np.clip(np.asarray(a, dtype=np.float32), -1.0, 1.0)

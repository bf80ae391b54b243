"""``embodied train language``: a policy's instruction pathway becomes a task belief.

The policy (any grounding) is fine-tuned for 1,500 steps on its frozen tokenizer's tokens,
initialised from every tensor of matching name and shape, with the task belief
(``policies.vla``) in place of the MLP on the raw embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policies.data import DemoArrays
from policies.train.common import LANGUAGE_LR, LANGUAGE_STEPS
from policies.train.policy_stage import train_policy
from policies.vla import VLAPolicy


def train_language(
    data: DemoArrays,
    tokenizer_dir: Path,
    policy_dir: Path,
    out: Path | None = None,
    *,
    steps: int = LANGUAGE_STEPS,
    degraded: np.ndarray | None = None,
    seed: int = 0,
) -> VLAPolicy:
    """Fine-tune ``policy_dir`` into ``out`` (default: in place) with a task belief."""
    out = policy_dir if out is None else out
    return train_policy(data, tokenizer_dir, out, steps=steps, lr=LANGUAGE_LR, degraded=degraded,
                        seed=seed, name=out.name, init=policy_dir)  # fmt: skip

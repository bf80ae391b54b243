"""Blind floor of the cluttered suite: behaviour cloning with the images blanked.

A small MLP reads what a policy has without a camera (proprioception, the instruction as a
bag of words, the task) and is trained on ``embodied collect`` demonstrations of the
cluttered tasks; evaluated in closed loop on held-out seeds, its success is the floor that
any image-reading policy must beat (the instruction names the target, but only the image
says where it is)::

    embodied collect --tasks cluttered --episodes 30 --resolution 64 --out data/cluttered_demos
    python -m policies.blind_cluttered --data data/cluttered_demos --minutes 3 \
        --episodes 25 --json results/cluttered/blind.json

Training checkpoints to ``--ckpt`` every epoch and resumes from it.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.cluttered.spec import COLOURS, GOALS, SHAPES, TASKS

VOCAB = sorted(
    {*COLOURS, *SHAPES, *GOALS}
    | {w for s in TASKS.values() for t in s.train_templates for w in re.findall(r"[a-z]+", t)}
)
TASK_LIST = list(TASKS)


def features(task: str, instruction: str, proprio: np.ndarray, t: int) -> np.ndarray:
    words = set(re.findall(r"[a-z]+", instruction.lower()))
    bow = np.array([w in words for w in VOCAB], np.float32)
    onehot = np.array([task == n for n in TASK_LIST], np.float32)
    return np.concatenate([proprio.astype(np.float32), [t / 300.0], bow, onehot]).astype(np.float32)


def load(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from sim.dataset import iter_episodes

    xs, ys = [], []
    for ep in iter_episodes(root, tasks=TASK_LIST):
        for t in range(len(ep)):  # frames are never read: the images are blanked
            xs.append(features(ep.task, ep.instruction, ep.proprio[t], t))
            ys.append(ep.actions[t])
    if not xs:
        raise SystemExit(
            f"no cluttered episodes under {root}; run `embodied collect --tasks cluttered`"
        )
    return np.stack(xs), np.stack(ys)


def make_model(n_in: int):
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(n_in, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
        torch.nn.ReLU(), torch.nn.Linear(256, 4),
    )  # fmt: skip


def train(data: Path, ckpt: Path, minutes: float, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    x, y = load(data)
    model = make_model(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epoch = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        epoch = int(state["epoch"])
        print(f"resumed from {ckpt} at epoch {epoch}")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.time()
    rng = np.random.default_rng(seed + epoch)
    while time.time() - t0 < minutes * 60:
        perm = torch.from_numpy(rng.permutation(len(xt)))
        total = 0.0
        for i in range(0, len(perm), 512):
            idx = perm[i : i + 512]
            loss = torch.nn.functional.mse_loss(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        epoch += 1
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch}, ckpt)
        print(f"epoch {epoch}: loss {total / len(perm):.4f} ({time.time() - t0:.0f} s)")
    return model, {"samples": len(x), "epochs": epoch}


def evaluate(model, episodes: int) -> dict:
    import torch

    from embodied.metrics import Rate
    from sim.cluttered.env import ClutteredEnv
    from sim.suite import eval_seeds

    per_task = {}
    all_s = 0
    for task in TASK_LIST:
        env = ClutteredEnv(task, cameras=())  # blanked images: nothing is rendered
        wins = 0
        for s in eval_seeds(episodes, start=20_000):
            obs, _ = env.reset(seed=s)
            info: dict = {"success": False}
            for t in range(env.max_steps):
                f = torch.from_numpy(features(task, obs["instruction"], obs["proprio"], t))
                with torch.no_grad():
                    a = model(f[None])[0].numpy()
                obs, _, term, trunc, info = env.step(np.clip(a, -1, 1))
                if term or trunc:
                    break
            wins += bool(info["success"])
        env.close()
        r = Rate(wins, episodes)
        per_task[task] = {"success": r.value, "ci95": list(r.ci95), "n": r.n}
        all_s += wins
        print(f"  blind {task:26s} {r}")
    tot = Rate(all_s, episodes * len(TASK_LIST))
    print(f"  blind {'all':26s} {tot}")
    return {"per_task": per_task, "all": {"success": tot.value, "ci95": list(tot.ci95), "n": tot.n}}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m policies.blind_cluttered", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--data", default="data/cluttered_demos")
    p.add_argument("--ckpt", default="runs/blind_cluttered/model.pt")
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    p.add_argument("--episodes", type=int, default=25, help="held-out episodes per task")
    p.add_argument("--json", default="results/cluttered/blind.json")
    a = p.parse_args(argv)
    model, meta = train(Path(a.data), Path(a.ckpt), a.minutes)
    res = evaluate(model.eval(), a.episodes)
    res.update(meta, what="blind floor: MLP on proprio + instruction words + task, images blanked")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

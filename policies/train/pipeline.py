"""``embodied train all``: collect → tokenizer → policy → task-oriented → language → blind → ship.

The order the shipped models came from: the first policy stages with the MLP grounding, then
the language stage turns each into a task-belief policy on its own frozen tokenizer's tokens.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embodied.modelfiles import CHECKPOINT, PolicySpec
from policies.export import ship
from policies.train.common import BLIND_STEPS, LANGUAGE_STEPS, POLICY_STEPS, TASK_STEPS
from policies.train.data import degraded_frames, load_data
from policies.train.language_stage import train_language
from policies.train.policy_stage import train_policy
from policies.train.task_stage import train_task
from policies.train.tokenizer_stage import train_tokenizer


def run_all(a: argparse.Namespace) -> None:
    from sim.collect import main as collect

    # 100 clean expert episodes per task (seeds 0-99) and 100 DART-perturbed ones (seeds
    # 100-199, executed actions perturbed, labels clean); both resume if already on disk
    collect(["--episodes", "100", "--out", a.data])
    collect(["--episodes", "100", "--seed-start", "100", "--noise", "0.3", "--out", a.data])
    runs = Path("runs")

    def todo(*names: str) -> bool:
        """With --resume, a stage whose exported files are all there is not run again."""
        done = all((runs / n / CHECKPOINT).exists() and any((runs / n).glob("*.onnx"))
                   for n in names)  # fmt: skip
        if a.resume and done:
            print(f"  --resume: {', '.join(names)} already trained, skipped")
        return not (a.resume and done)

    # the tokenizer learns from the first 50 clean episodes per task, the policies from all
    if todo("tok-recon"):
        train_tokenizer(load_data(a, max_episodes=50), runs / "tok-recon", steps=2500, seed=a.seed)
    d = load_data(a)
    deg = degraded_frames(d, a)
    if todo("vla-recon"):
        train_policy(d, runs / "tok-recon", runs / "vla-recon", steps=POLICY_STEPS, degraded=deg,
                     seed=a.seed, name="vla-recon", grounding="mlp")  # fmt: skip
    if todo("tok-task", "vla-task"):
        train_task(d, runs / "tok-recon", runs / "vla-recon", runs / "tok-task", runs / "vla-task",
                   steps=TASK_STEPS, degraded=deg, seed=a.seed)  # fmt: skip
    # language stage: the instruction pathway becomes a task belief (policies.vla), each
    # policy fine-tuned on its own frozen tokenizer's tokens; the order is the one the
    # shipped models came from (BC and task stages with the first policies' MLP grounding)
    for tok_name, pol in (("tok-recon", "vla-recon"), ("tok-task", "vla-task")):
        if PolicySpec.load(runs / pol).instruction_grounding == "task-belief" and a.resume:
            print(f"  --resume: {pol} already has a task belief, skipped")
            continue
        train_language(d, runs / tok_name, runs / pol, steps=LANGUAGE_STEPS, degraded=deg,
                       seed=a.seed)  # fmt: skip
    if todo("vla-blind"):
        train_policy(d, runs / "tok-recon", runs / "vla-blind", blind=True, steps=BLIND_STEPS,
                     seed=a.seed, name="vla-blind")  # fmt: skip
    ship(runs, Path(a.ship))

"""``embodied train {tokenizer,policy,task,language,all}``: training on this 2-core CPU.

Examples::

    embodied train tokenizer --data data/demos --out runs/tok-recon
    embodied train policy    --data data/demos --tokenizer runs/tok-recon --out runs/vla-recon
    embodied train policy    --data data/demos --tokenizer runs/tok-recon --out runs/vla-blind --blind
    embodied train task      --data data/demos --tokenizer runs/tok-recon --policy runs/vla-recon \\
                             --out-tokenizer runs/tok-task --out-policy runs/vla-task
    embodied train language  --data data/demos --tokenizer runs/tok-task --policy runs/vla-task
    embodied train all       # collect → tokenizer → policy → task-oriented → language → blind → export
    embodied train policy    --dataset path/to/lerobot-v3 --blind   # any LeRobotDataset v3

``language`` fine-tunes a policy (1,500 steps, on its frozen tokenizer's tokens) after its
instruction pathway is replaced by a task belief (``policies.vla``); ``all`` runs the first
policy stages with the MLP grounding and then this stage, the order the shipped models came from.

Every stage logs losses to ``<out>/log.jsonl``, shows a progress bar, writes a checkpoint
(``model.pt``, a torch state dict: training only, never on the wire) and exports ONNX files
in the layout of docs/models.md (:mod:`policies.export`; ``embodied export`` re-exports a
checkpoint). One module per stage: ``tokenizer_stage``, ``policy_stage``, ``task_stage``,
``language_stage``, ``pipeline`` (``all``); ``common`` holds what they share.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from embodied.modelfiles import MODELS_DIR
from policies.train.common import (
    BLIND_STEPS,
    GROUNDINGS,
    LANGUAGE_STEPS,
    POLICY_STEPS,
    TASK_STEPS,
    set_threads,
)
from policies.train.data import degraded_frames, load_data
from policies.train.language_stage import train_language
from policies.train.policy_stage import train_policy
from policies.train.task_stage import train_task
from policies.train.tokenizer_stage import train_tokenizer
from sim.lerobot import LeRobotFormatError, add_train_args, prepare_train_data


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embodied train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("stage", choices=["tokenizer", "policy", "task", "language", "all"])
    p.add_argument("--data", default="data/demos")
    p.add_argument("--out", default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--policy", default=None)
    p.add_argument("--out-tokenizer", default="runs/tok-task")
    p.add_argument("--out-policy", default="runs/vla-task")
    p.add_argument("--blind", action="store_true")
    p.add_argument("--grounding", choices=GROUNDINGS, default="belief",
                   help="policy: how the instruction enters (task belief, or the first "
                        "policies' MLP)")  # fmt: skip
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-episodes", type=int, default=None, help="use seeds below this per task")
    p.add_argument("--ship", default=str(MODELS_DIR), help="`all`: copy exported models here")
    p.add_argument("--resume", action="store_true",
                   help="`all`: skip stages whose exported models are already in runs/")  # fmt: skip
    add_train_args(p)  # --dataset PATH: a LeRobotDataset v3 instead of --data
    a = p.parse_args(argv)
    if a.steps is not None and a.steps < 1:
        p.error(f"--steps must be >= 1, got {a.steps}")
    try:
        prepare_train_data(a)  # with --dataset: converted into --lerobot-cache, a.data set
    except (LeRobotFormatError, ImportError, ValueError) as err:
        p.error(str(err))
    set_threads(a.threads)
    t0 = time.time()
    if a.stage == "tokenizer":
        d = load_data(a)
        train_tokenizer(d, Path(a.out or "runs/tok-recon"), steps=a.steps or 2500, seed=a.seed)
    elif a.stage == "policy":
        d = load_data(a)
        tdir = Path(a.tokenizer) if a.tokenizer else None
        if tdir is None and not a.blind:
            p.error("--tokenizer is required unless --blind")
        out = Path(a.out or ("runs/vla-blind" if a.blind else "runs/vla-recon"))
        train_policy(d, tdir, out, steps=a.steps or (BLIND_STEPS if a.blind else POLICY_STEPS), blind=a.blind,
                     name=out.name, degraded=None if a.blind else degraded_frames(d, a), seed=a.seed,
                     grounding=a.grounding)  # fmt: skip
    elif a.stage == "task":
        if not (a.tokenizer and a.policy):
            p.error("task needs --tokenizer (reconstruction-trained) and --policy (its policy)")
        d = load_data(a)
        train_task(d, Path(a.tokenizer), Path(a.policy), Path(a.out_tokenizer), Path(a.out_policy),
                   steps=a.steps or TASK_STEPS, degraded=degraded_frames(d, a), seed=a.seed)  # fmt: skip
    elif a.stage == "language":
        if not (a.tokenizer and a.policy):
            p.error("language needs --tokenizer (frozen) and --policy (the policy to fine-tune)")
        d = load_data(a)
        out = Path(a.out or a.policy)
        train_language(d, Path(a.tokenizer), Path(a.policy), out, steps=a.steps or LANGUAGE_STEPS,
                       degraded=degraded_frames(d, a), seed=a.seed)  # fmt: skip
    else:
        from policies.train.pipeline import run_all

        run_all(a)
    print(f"done in {(time.time() - t0) / 60:.1f} min")
    return 0

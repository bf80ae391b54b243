"""``embodied train policy``: behaviour cloning over frozen tokens, a random budget per sample.

Also the blind floor (``--blind``: budget 0 only) and, with ``init``, the fine-tuning the
language stage runs (:mod:`policies.train.language_stage`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from embodied.modelfiles import CHECKPOINT
from policies.data import DemoArrays, split_by_episode
from policies.export import export_policy, load_tokenizer
from policies.tokenizer import Tokenizer, encode_all
from policies.train.common import (
    CHUNK,
    GROUNDINGS,
    LANGUAGE_WEIGHT,
    RunLog,
    bc_loss,
    budgets_for_batch,
    language_loss,
    lr_at,
    progress,
    with_belief_group,
)
from policies.train.instructions import InstructionPool
from policies.vla import VLAPolicy


def _policy_batch(idx: np.ndarray, ids: np.ndarray, budgets: np.ndarray, k: int, fsq,
                  instr: InstructionPool, data: DemoArrays) -> dict:  # fmt: skip
    tid = torch.from_numpy(ids[idx, :k])
    return {
        "token_ids": tid,
        "token_values": fsq.values(fsq.codes_from_ids(tid)),
        "budget": torch.from_numpy(budgets),
        "instruction": instr(idx),
        "proprio": torch.from_numpy(data.proprio[idx]),
        "belief_mix": instr.belief_mix(idx),
    }


def train_policy(
    data: DemoArrays, tokenizer_dir: Path | None, out: Path, steps: int = 3000, batch: int = 256,
    lr: float = 1e-3, blind: bool = False, p_degraded: float = 0.25, seed: int = 0,
    name: str = "vla-recon", degraded: np.ndarray | None = None, augment_language: bool = True,
    init: Path | None = None, grounding: str = "belief",
) -> VLAPolicy:  # fmt: skip
    """Behaviour cloning over frozen tokens, a random budget per sample (0 for the blind floor).

    ``grounding``: "belief" (the instruction through a task belief, :class:`VLAPolicy`) or
    "mlp" (the first policies' MLP on the raw embedding). ``init``: a run directory whose
    ``model.pt`` initialises every tensor of matching name and shape (the language stage)."""
    if grounding not in GROUNDINGS:
        raise ValueError(f"unknown grounding {grounding!r}; valid: {', '.join(GROUNDINGS)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = load_tokenizer(tokenizer_dir) if tokenizer_dir else Tokenizer()
    fsq = tok.fsq
    k_max = tok.k_max
    instr = InstructionPool(data, rng, augment=augment_language)
    policy = VLAPolicy(k_max=k_max, vocab=tok.vocab, fsq_dims=len(tok.levels), chunk=CHUNK,
                       tasks=data.tasks if grounding == "belief" else ())  # fmt: skip
    if init is not None:  # fine-tune: every tensor whose name and shape match
        own = policy.state_dict()
        old = torch.load(Path(init) / CHECKPOINT, weights_only=True)
        keep = {n: v for n, v in old.items() if n in own and own[n].shape == v.shape}
        policy.load_state_dict(keep, strict=False)
        print(f"  initialised {len(keep)}/{len(own)} tensors from {init}")
    train_idx, _ = split_by_episode(data)
    if blind:
        ids = np.zeros((len(data), k_max), np.int64)
        variants = [ids]
    else:
        print("  tokenizing frames (clean + codec-degraded copies) with the frozen tokenizer")
        variants = [fsq.ids(torch.from_numpy(encode_all(tok, data.frames))).numpy()]
        if degraded is not None:
            for copy in degraded:
                variants.append(fsq.ids(torch.from_numpy(encode_all(tok, copy))).numpy())
    opt = torch.optim.AdamW(with_belief_group([{"params": list(policy.parameters())}], policy),
                            lr=lr, weight_decay=1e-4)  # fmt: skip
    log = RunLog(out)
    bar = progress(steps, f"train policy{' (blind)' if blind else ''}")
    for step in bar:
        policy.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr) * g.get("lr_scale", 1.0)
        idx = rng.choice(train_idx, batch)
        if blind:
            budgets, k, ids = np.zeros(batch, np.int64), 0, variants[0]
        elif len(variants) > 1 and rng.random() < p_degraded:
            # codec-degraded frames are tokenized at full budget, as in evaluation
            budgets, k = np.full(batch, k_max), k_max
            ids = variants[int(rng.integers(1, len(variants)))]
        else:
            budgets, k = budgets_for_batch(rng, batch, k_max)
            ids = variants[0]
        inp = _policy_batch(idx, ids, budgets, k, fsq, instr, data)
        pred = policy(**inp)
        bc = bc_loss(
            pred, torch.from_numpy(data.chunks[idx]), torch.from_numpy(data.chunk_mask[idx])
        )
        lang = language_loss(policy, inp["instruction"], data.task[idx])
        loss = bc + LANGUAGE_WEIGHT * lang
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(bc=f"{bc.item():.4f}", lang=f"{lang.item():.3f}", k=k)
            log(step=step, bc=bc.item(), lang=lang.item(), cap=k, lr=opt.param_groups[0]["lr"])
    torch.save(policy.state_dict(), out / CHECKPOINT)
    export_policy(policy, tok, out, name, tokenizer_dir, blind, *instr.cache_entries())
    return policy

"""``embodied train task``: task-oriented tokens, L = D_task + λ_R·R + λ_D·D_pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from embodied.modelfiles import CHECKPOINT
from policies.data import DemoArrays, split_by_episode
from policies.export import export_policy, export_tokenizer, load_policy, load_tokenizer
from policies.tokenizer import Tokenizer, encode_all, recon_loss, saturation_penalty, to_input
from policies.train.common import (
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


def train_task(
    data: DemoArrays, tokenizer_dir: Path, policy_dir: Path, out_tok: Path, out_pol: Path,
    steps: int = 1500, batch: int = 128, lr: float = 5e-4, rate_weight: float = 0.002,
    recon_weight: float = 1.0, p_degraded: float = 0.25, degraded: np.ndarray | None = None,
    seed: int = 0, augment_language: bool = True,
) -> tuple[Tokenizer, VLAPolicy]:  # fmt: skip
    """L = D_task + λ_R·R + λ_D·D_pixels, the survey's unified objective made concrete.

    D_task: the policy's behaviour-cloning loss on budgets drawn toward short prefixes;
    R: bits of the kept prefix under the learned prior (the same cross-entropy the arithmetic
    coder pays on the wire); D_pixels: reconstruction, weighted toward long prefixes so that the
    first tokens are free to carry what the task needs and the tail still describes the image.
    Encoder, prior and policy are trained jointly from the reconstruction-trained start.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = load_tokenizer(tokenizer_dir)
    policy = load_policy(policy_dir)
    instr = InstructionPool(data, rng, augment=augment_language)
    params = (
        list(tok.encoder.parameters()) + list(tok.prior.parameters()) + list(policy.parameters())
    )
    dec_params = list(tok.decoder.parameters())
    groups = with_belief_group([{"params": params}, {"params": dec_params}], policy)
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-4)
    log = RunLog(out_tok)
    train_idx, _ = split_by_episode(data)
    k_max = tok.k_max
    bar = progress(steps, "train task-oriented tokens")
    for step in bar:
        tok.train()
        policy.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr) * g.get("lr_scale", 1.0)
        idx = rng.choice(train_idx, batch)
        frames = data.frames[idx]
        if degraded is not None and rng.random() < p_degraded:
            frames = degraded[int(rng.integers(len(degraded))), idx]
            budgets, k = np.full(batch, k_max), k_max
        else:
            # task budgets: log-uniform, short prefixes most often
            budgets, k = budgets_for_batch(rng, batch, k_max)
        x = to_input(torch.from_numpy(frames))
        z = tok.encoder(x)
        c, q, codes = tok.fsq(z)
        b = torch.from_numpy(budgets)
        mask = tok.prefix_mask(b)
        ids = tok.fsq.ids(codes)
        e = instr(idx)
        pred = policy(ids[:, :k], tok.fsq.values(q)[:, :k], b, e,
                      torch.from_numpy(data.proprio[idx]), instr.belief_mix(idx))  # fmt: skip
        bc = bc_loss(
            pred, torch.from_numpy(data.chunks[idx]), torch.from_numpy(data.chunk_mask[idx])
        )
        lang = language_loss(policy, e, data.task[idx])
        bits = tok.prior.bits(c, mask).mean()
        # reconstruction on a separate long-prefix budget (k_r >= 16), weighted toward long prefixes
        kr = torch.from_numpy(rng.integers(16, k_max + 1, batch))
        recon = tok.decoder(tok.fsq.values(q), tok.prefix_mask(kr))
        rl = (recon_loss(recon, x) * (kr.float() / k_max)).mean()
        loss = bc + LANGUAGE_WEIGHT * lang + rate_weight * bits / max(1, k) * 4 + recon_weight * rl
        loss = loss + 0.1 * saturation_penalty(z)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(
                bc=f"{bc.item():.4f}", bits=f"{bits.item():.0f}", rec=f"{rl.item():.4f}"
            )
            log(step=step, bc=bc.item(), lang=lang.item(), bits=bits.item(), budget_cap=k,
                recon=rl.item())  # fmt: skip
    out_tok.mkdir(parents=True, exist_ok=True)
    out_pol.mkdir(parents=True, exist_ok=True)
    torch.save(tok.state_dict(), out_tok / CHECKPOINT)
    codes = encode_all(tok, data.frames[train_idx])
    export_tokenizer(tok, out_tok, out_tok.name, "task", codes)
    torch.save(policy.state_dict(), out_pol / CHECKPOINT)
    export_policy(policy, tok, out_pol, out_pol.name, out_tok, False, *instr.cache_entries())
    return tok, policy

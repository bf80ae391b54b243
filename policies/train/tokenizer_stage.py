"""``embodied train tokenizer``: the reconstruction objective with nested dropout.

A tiny rate term trains the prior alongside; the run ends with the ONNX export of
:mod:`policies.export` and a validation PSNR per budget in ``log.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from embodied.modelfiles import CHECKPOINT
from policies.data import DemoArrays, split_by_episode
from policies.export import export_tokenizer
from policies.tokenizer import Tokenizer, encode_all, recon_loss, sample_budgets, to_input
from policies.train.common import RunLog, lr_at, progress


def train_tokenizer(
    data: DemoArrays, out: Path, steps: int = 1500, batch: int = 128, lr: float = 1e-3,
    rate_weight: float = 1e-6, seed: int = 0, name: str = "tok-recon",
) -> Tokenizer:  # fmt: skip
    """Reconstruction objective with nested dropout (+ a tiny rate term that trains the prior)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = Tokenizer()
    opt = torch.optim.AdamW(tok.parameters(), lr=lr, weight_decay=1e-4)
    log = RunLog(out)
    train_idx, val_idx = split_by_episode(data)
    bar = progress(steps, "train tokenizer")
    for step in bar:
        tok.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        idx = rng.choice(train_idx, batch)
        x = to_input(torch.from_numpy(data.frames[idx]))
        budget = sample_budgets(batch, tok.k_max)
        o = tok(x, budget)
        mse = recon_loss(o["recon"], x).mean()
        bits = tok.prior.bits(o["c"], o["mask"]).mean()
        loss = mse + rate_weight * bits + 0.1 * o["zpen"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            used = o["codes"][:, :8].float().std(0).mean().item()  # 0 means collapsed codes
            bar.set_postfix(
                mse=f"{mse.item():.4f}", bits=f"{bits.item():.0f}", spread=f"{used:.2f}"
            )
            log(step=step, mse=mse.item(), bits=bits.item(), code_spread=used,
                lr=opt.param_groups[0]["lr"])  # fmt: skip
    # validation PSNR per budget
    tok.eval()
    with torch.no_grad():
        x = to_input(torch.from_numpy(data.frames[val_idx[:512]]))
        for k in (1, 4, 16, 64):
            o = tok(x, torch.full((len(x),), k))
            psnr = (10 * torch.log10(1 / recon_loss(o["recon"], x))).mean().item()
            log(val_budget=k, val_psnr=psnr)
            print(f"  val PSNR at k={k}: {psnr:.2f} dB")
    torch.save(tok.state_dict(), out / CHECKPOINT)
    codes = encode_all(tok, data.frames[train_idx])
    export_tokenizer(tok, out, name, "reconstruction", codes)
    return tok

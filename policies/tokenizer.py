"""A rate-adaptive 1-D tokenizer: any prefix of K ordered FSQ tokens describes the frame.

::

    image [B,64,64,3] ──CNN──► feature [B,512] ──Linear──► z [B,K,D]
        ──FSQ (levels L_d, straight-through round)──► codes [B,K,D] ∈ {0..L_d-1}
        ──nested dropout: keep the first k, zero the rest──► Decoder ──► image

- FSQ: Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple" (2023): no
  codebook to collapse; a token carries log2(prod L_d) bits before entropy coding.
- Ordered tokens: nested dropout (Rippel et al. 2014) as FlexTok / One-D-Piece use
  it: training drops a random tail, so the first tokens carry what matters most.
- Rate: a factorized prior per (token position, FSQ dimension) over the L_d levels
  (as CompressAI's EntropyBottleneck, but categorical since FSQ is discrete). Its
  cross-entropy is the rate term in training and the model the arithmetic coder uses
  on the wire, so training rate and wire rate are one number.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from embodied.modelfiles import mixed_radix


class FSQ(nn.Module):
    L: torch.Tensor  # levels per dimension (float buffer)
    radix: torch.Tensor  # mixed-radix place values of the token id (embodied.modelfiles)

    def __init__(self, levels: list[int]) -> None:
        super().__init__()
        self.levels = list(levels)
        self.register_buffer("L", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("radix", torch.tensor(mixed_radix(levels)), persistent=False)

    def continuous(self, z: torch.Tensor) -> torch.Tensor:
        """Map to [0, L_d - 1] per dimension (before rounding)."""
        return torch.sigmoid(z) * (self.L - 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (continuous c, rounded codes with straight-through gradient, integer codes)."""
        c = self.continuous(z)
        q = c + (torch.round(c) - c).detach()
        return c, q, torch.round(c).long()

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (float or long) in 0..L-1 → values in [-1, 1] for the networks."""
        return codes.float() / (self.L - 1) * 2 - 1

    def ids(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes.long() * self.radix).sum(-1)

    def codes_from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.div(ids.unsqueeze(-1), self.radix, rounding_mode="floor") % self.L.long()


class FactorizedPrior(nn.Module):
    """Learned categorical prior per token position and FSQ dimension."""

    valid: torch.Tensor  # [D, L_max]: which levels exist per dimension

    def __init__(self, k_max: int, levels: list[int]) -> None:
        super().__init__()
        self.levels = levels
        lmax = max(levels)
        self.logits = nn.Parameter(torch.zeros(k_max, len(levels), lmax))
        valid = torch.zeros(len(levels), lmax, dtype=torch.bool)
        for d, n in enumerate(levels):
            valid[d, :n] = True
        self.register_buffer("valid", valid, persistent=False)

    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits.masked_fill(~self.valid, -1e9), dim=-1)

    def bits(self, c: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable bits of continuous codes c [B,K,D]: −log2 p, linearly
        interpolated between the two nearest levels so that the gradient pushes the
        encoder toward probable levels; equals the true code length at integers."""
        lp = self.log_probs()  # [K, D, Lmax]
        lo = torch.floor(c).clamp(min=0)
        hi = torch.clamp(lo + 1, max=(torch.tensor(self.levels, device=c.device) - 1).float())
        w = c - lo
        lpb = lp.unsqueeze(0).expand(c.shape[0], -1, -1, -1)
        l_lo = torch.gather(lpb, -1, lo.long().unsqueeze(-1)).squeeze(-1)
        l_hi = torch.gather(lpb, -1, hi.long().unsqueeze(-1)).squeeze(-1)
        nats = -((1 - w) * l_lo + w * l_hi)  # [B, K, D]
        per_token = nats.sum(-1) / math.log(2)
        if mask is not None:
            per_token = per_token * mask
        return per_token.sum(-1)  # bits per frame [B]

    def probs(self) -> torch.Tensor:
        return self.log_probs().exp() * self.valid


class Encoder(nn.Module):
    def __init__(self, k_max: int, dims: int, width: int = 32, resolution: int = 64) -> None:
        super().__init__()
        c = width
        self.conv = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.GELU(),
            nn.Conv2d(4 * c, 4 * c, 4, 2, 1), nn.GELU(),
        )  # fmt: skip
        side = resolution // 16
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * c * side * side, 512), nn.GELU())
        self.proj = nn.Linear(512, k_max * dims)
        # Batch-normalised pre-quantization values span several FSQ levels from the first step;
        # without it a freshly initialised projection is ~0.1 wide, every 5-level dimension
        # rounds to its middle level, and the codes never leave it (seen in a first run).
        self.norm = nn.BatchNorm1d(k_max * dims)
        self.k_max, self.dims = k_max, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float [B,3,H,W] in [0,1] → z [B,K,D]."""
        z = self.norm(self.proj(self.fc(self.conv(x * 2 - 1))))
        return z.view(-1, self.k_max, self.dims)


class Decoder(nn.Module):
    def __init__(self, k_max: int, dims: int, width: int = 32, resolution: int = 64) -> None:
        super().__init__()
        c = width
        self.side = resolution // 16
        self.c = 4 * c
        self.fc = nn.Sequential(
            nn.Linear(k_max * (dims + 1), 512), nn.GELU(),
            nn.Linear(512, 4 * c * self.side * self.side), nn.GELU(),
        )  # fmt: skip
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 4 * c, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(c, 3, 4, 2, 1),
        )  # fmt: skip

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """values [B,K,D] in [-1,1], mask [B,K] (1 = kept) → image float [B,3,H,W] in [0,1]."""
        v = torch.cat([values * mask.unsqueeze(-1), mask.unsqueeze(-1)], -1).flatten(1)
        h = self.fc(v).view(-1, self.c, self.side, self.side)
        return torch.sigmoid(self.deconv(h))


class Tokenizer(nn.Module):
    def __init__(self, k_max: int = 64, levels: list[int] | None = None, resolution: int = 64):
        super().__init__()
        self.levels = list(levels or [8, 5, 5, 5])
        self.k_max = k_max
        self.resolution = resolution
        self.fsq = FSQ(self.levels)
        self.encoder = Encoder(k_max, len(self.levels), resolution=resolution)
        self.decoder = Decoder(k_max, len(self.levels), resolution=resolution)
        self.prior = FactorizedPrior(k_max, self.levels)

    @property
    def vocab(self) -> int:
        return math.prod(self.levels)

    def prefix_mask(self, budget: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(self.k_max, device=budget.device)
        return (pos.unsqueeze(0) < budget.unsqueeze(1)).float()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x float [B,3,H,W] → (continuous c, straight-through q, integer codes)."""
        return self.fsq(self.encoder(x))

    def forward(self, x: torch.Tensor, budget: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        c, q, codes = self.fsq(z)
        mask = self.prefix_mask(budget)
        recon = self.decoder(self.fsq.values(q), mask)
        return {"c": c, "q": q, "codes": codes, "mask": mask, "recon": recon,
                "zpen": saturation_penalty(z)}  # fmt: skip


def saturation_penalty(z: torch.Tensor, bound: float = 3.0) -> torch.Tensor:
    """Keeps pre-quantization values out of the sigmoid's flat tails: saturated codes pass no
    gradient, and a first run without this collapsed every token to a constant."""
    return F.relu(z.abs() - bound).pow(2).mean()


def sample_budgets(n: int, k_max: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Nested-dropout budgets: log-uniform over 1..k_max so short prefixes get trained often."""
    u = torch.rand(n, generator=generator)
    return torch.clamp(torch.floor(torch.exp(u * math.log(k_max + 1))), 1, k_max).long()


def to_input(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B,H,W,3] → float [B,3,H,W] in [0,1]."""
    return frames_uint8.permute(0, 3, 1, 2).float() / 255.0


def recon_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(recon, target, reduction="none").mean((1, 2, 3))


# ---- ONNX-facing wrappers (docs/models.md) -------------------------------------------------
class EncoderExport(nn.Module):
    def __init__(self, tok: Tokenizer) -> None:
        super().__init__()
        self.tok = tok

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).float() / 255.0
        _, _, codes = self.tok.encode(x)
        return codes, self.tok.fsq.ids(codes)


class DecoderExport(nn.Module):
    def __init__(self, tok: Tokenizer) -> None:
        super().__init__()
        self.tok = tok

    def forward(self, token_ids: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
        codes = self.tok.fsq.codes_from_ids(token_ids)
        mask = self.tok.prefix_mask(budget)
        img = self.tok.decoder(self.tok.fsq.values(codes), mask)
        return torch.round(img.permute(0, 2, 3, 1) * 255.0).clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def encode_all(tok: Tokenizer, frames: np.ndarray, batch: int = 512) -> np.ndarray:
    """Integer codes ``[N, k_max, D]`` of uint8 frames ``[N, H, W, 3]``, in batches.

    Frames of another size than the tokenizer's (a dataset from a real camera) are brought to
    it by :func:`embodied.camera.to_model_input`, as the robot's camera path does; the sim's
    frames are at the tokenizer's resolution already and pass unchanged."""
    r = tok.resolution
    if frames.shape[1:3] != (r, r):
        from embodied.camera import to_model_input

        frames = np.stack([to_model_input(f, (r, r)) for f in frames])
    tok.eval()
    out = []
    for i in range(0, len(frames), batch):
        _, _, codes = tok.encode(to_input(torch.from_numpy(frames[i : i + batch])))
        out.append(codes.numpy().astype(np.int64))
    return np.concatenate(out)

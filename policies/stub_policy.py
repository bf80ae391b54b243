"""A random-init policy with exactly the ONNX I/O of docs/models.md, for run-time work before training.

Run time, ROS nodes, benchmarks and tests need a ``policy.json`` + ``policy.onnx`` long
before a trained policy exists; this writes one. The architecture is a small
transformer of the kind the real policy is (a context token from instruction and
proprioception, attending over the masked visual tokens), so its latency is a fair
stand-in; its actions are meaningless. ``name`` is ``stub-policy`` so it is never mistaken
for a trained one.

    python -m policies.stub_policy OUT_DIR [--d-model 128 --layers 2 --seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embodied.instruction import ENCODER_ID, INSTRUCTION_DIM
from embodied.modelfiles import POLICY_IO, POLICY_ONNX, PolicySpec, stamp_model_dir
from policies.onnx_export import export_onnx


def stub_spec(**overrides: Any) -> PolicySpec:
    d = {
        "kind": "policy",
        "name": "stub-policy",
        "tokenizer": "tok-stub",
        "tokenizer_model_id": "00000000",
        "k_max": 64,
        "vocab": 1000,
        "chunk": 8,
        "action_dim": 4,
        "proprio_dim": 4,
        "instruction_encoder": ENCODER_ID,
        "instruction_dim": INSTRUCTION_DIM,
        "budget_min": 0,
        "budget_max": 64,
        "format_version": 1,
        **overrides,
    }
    return PolicySpec.from_dict(d, "stub_spec")


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d // h)) + bias[:, None, None, :]
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class StubPolicy(nn.Module):
    """(token_ids [B,k_max] int64, budget [B] int64, instruction [B,384], proprio [B,4]) → actions [B,chunk,4].

    Positions >= budget are masked out of attention (a large negative bias, -1e4 so it
    survives fp16), and a context token that is never masked keeps budget 0 well defined.
    """

    positions: torch.Tensor  # [k_max] position indices (buffer)

    def __init__(
        self, spec: PolicySpec, d_model: int = 64, layers: int = 1, heads: int = 4
    ) -> None:
        super().__init__()
        self.spec = spec
        self.tok = nn.Embedding(spec.vocab, d_model)
        self.pos = nn.Parameter(torch.randn(1, spec.k_max, d_model) * 0.02)
        self.instr = nn.Linear(spec.instruction_dim, d_model)
        self.prop = nn.Linear(spec.proprio_dim, d_model)
        self.blocks = nn.ModuleList([_Block(d_model, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, spec.chunk * spec.action_dim)
        self.register_buffer("positions", torch.arange(spec.k_max), persistent=False)

    def forward(
        self,
        token_ids: torch.Tensor,
        budget: torch.Tensor,
        instruction: torch.Tensor,
        proprio: torch.Tensor,
    ) -> torch.Tensor:
        ctx = (self.instr(instruction) + self.prop(proprio))[:, None, :]
        x = torch.cat([ctx, self.tok(token_ids) + self.pos], dim=1)
        valid = self.positions[None, :] < budget[:, None]
        bias = torch.cat(
            [torch.zeros_like(budget[:, None], dtype=x.dtype), (~valid).to(x.dtype) * -1e4], dim=1
        )
        for blk in self.blocks:
            x = blk(x, bias)
        out = torch.tanh(self.head(self.ln(x[:, 0])))
        return out.reshape(-1, self.spec.chunk, self.spec.action_dim)


def example_inputs(spec: PolicySpec, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random valid inputs (unit-norm instruction, budgets spread over the range)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, spec.vocab, (batch, spec.k_max), generator=g)
    budget = torch.randint(spec.budget_min, spec.budget_max + 1, (batch,), generator=g)
    instr = torch.randn(batch, spec.instruction_dim, generator=g)
    instr = instr / instr.norm(dim=1, keepdim=True)
    proprio = torch.rand(batch, spec.proprio_dim, generator=g) * 2 - 1
    return ids, budget, instr, proprio


def export_stub_policy(
    out_dir: str | Path,
    *,
    d_model: int = 64,
    layers: int = 1,
    heads: int = 4,
    seed: int = 0,
    module: nn.Module | None = None,
    **spec_overrides: Any,
) -> tuple[nn.Module, dict[str, Path]]:
    """Write policy.json, policy.onnx and policy_fp16.onnx (with the metadata of docs/models.md);
    returns the torch module and paths.

    ``module`` exports another module with the same signature instead (tests use it to
    build a policy that emits NaN).
    """
    spec = stub_spec(**spec_overrides)
    torch.manual_seed(seed)
    model = module if module is not None else StubPolicy(spec, d_model, layers, heads)
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = export_onnx(
        model,
        example_inputs(spec),
        POLICY_IO.input_names,
        POLICY_IO.output_names,
        None,  # batch axis dynamic on every input and output
        out / POLICY_ONNX["fp32"],
        spec.metadata(),
    )
    json_path = spec.write(out)
    stamp_model_dir(out, sorted(p.name for p in paths.values()))  # docs/models.md metadata
    return model, {**paths, "json": json_path}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m policies.stub_policy", description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, paths = export_stub_policy(
        args.out, d_model=args.d_model, layers=args.layers, heads=args.heads, seed=args.seed
    )
    n = sum(p.numel() for p in model.parameters())
    for k, p in paths.items():
        print(f"{k:5s} {p} ({p.stat().st_size / 1e6:.2f} MB)")
    print(f"parameters: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small vision-language-action transformer over visual tokens.

::

    [instr] [proprio] [tok_1 … tok_k | masked k+1…K]  ──2-layer transformer──► readout ──► chunk×4

- Visual tokens enter as an id embedding (what the wire carries) plus a linear map of
  their FSQ values (so a tokenizer can be trained through the policy's loss by the
  straight-through gradient), plus a position embedding; tokens past the budget are
  masked out of attention, so one network serves every budget 0..K.
- The instruction is a fixed all-MiniLM-L6-v2 sentence embedding (384-d), computed
  once per phrasing and cached. With ``tasks`` given (what ``embodied train`` builds),
  it enters through a *task belief*: a linear head gives a softmax over the suite's
  tasks, also trained with a cross-entropy term, and the instruction token is the
  belief-weighted mix of learned task vectors; a zero vector (no instruction) maps to
  its own learned token. A linear read-out of the embedding is what generalises to
  phrasings never seen in training (a linear probe on the 110 training phrasings gets
  10 of the 11 held-out ones; the first policies, with an MLP on the raw embedding,
  failed on sentences far from every training phrasing, e.g. "open the tap"), and the
  policy only ever sees inputs from the simplex it was trained on. Without ``tasks``
  the instruction goes through an MLP (the format of the first released policies).
- Output: an action chunk (Zhao et al., ACT, 2023) of ``chunk`` steps, tanh-bounded.
"""

from __future__ import annotations

import torch
from torch import nn


class VLAPolicy(nn.Module):
    def __init__(
        self,
        k_max: int = 64,
        vocab: int = 1000,
        fsq_dims: int = 4,
        chunk: int = 4,
        action_dim: int = 4,
        proprio_dim: int = 4,
        instruction_dim: int = 384,
        d_model: int = 128,
        layers: int = 2,
        heads: int = 4,
        tasks: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__()
        self.k_max, self.vocab, self.chunk, self.action_dim = k_max, vocab, chunk, action_dim
        self.fsq_dims = fsq_dims
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.val_proj = nn.Linear(fsq_dims, d_model)
        self.pos = nn.Parameter(torch.randn(k_max, d_model) * 0.02)
        self.tasks = tuple(tasks)
        if self.tasks:
            self.task_head = nn.Linear(instruction_dim, len(self.tasks))
            self.task_vec = nn.Linear(len(self.tasks), d_model)
            self.no_instruction = nn.Parameter(torch.randn(d_model) * 0.02)
        else:
            self.instr = nn.Sequential(nn.Linear(instruction_dim, d_model), nn.GELU())
        self.prop = nn.Sequential(nn.Linear(proprio_dim, d_model), nn.GELU())
        self.readout = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.type_emb = nn.Parameter(torch.randn(4, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, 2 * d_model, dropout=0.0, activation="gelu", batch_first=True,
            norm_first=True,
        )  # fmt: skip
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(
            nn.Linear(3 * d_model, 256), nn.GELU(), nn.Linear(256, chunk * action_dim)
        )

    @staticmethod
    def given(instruction: torch.Tensor) -> torch.Tensor:
        """[B] bool: rows that carry an instruction (an all-zero embedding means none)."""
        return instruction.abs().sum(-1) > 0

    def task_logits(self, instruction: torch.Tensor) -> torch.Tensor:
        """[B, n_tasks] logits of the task belief (only for a policy built with ``tasks``)."""
        return self.task_head(instruction)

    def instruction_token(
        self, instruction: torch.Tensor, belief_mix: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        if not self.tasks:
            return self.instr(instruction)
        belief = torch.softmax(self.task_logits(instruction), -1)
        if belief_mix is not None:  # training: (weight [B], other belief [B, n]) blended in
            w, other = belief_mix
            belief = (1 - w.unsqueeze(1)) * belief + w.unsqueeze(1) * other
        given = self.given(instruction).unsqueeze(-1).to(belief.dtype)
        return given * self.task_vec(belief) + (1 - given) * self.no_instruction

    def forward(
        self,
        token_ids: torch.Tensor,  # int64 [B, K]
        token_values: torch.Tensor,  # float [B, K, D] in [-1, 1]
        budget: torch.Tensor,  # int64 [B]
        instruction: torch.Tensor,  # float [B, 384]
        proprio: torch.Tensor,  # float [B, 4]
        belief_mix: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        b, k = token_ids.shape  # k <= k_max: training may pass only the longest prefix in use
        pos = torch.arange(k, device=token_ids.device)
        keep = pos.unsqueeze(0) < budget.unsqueeze(1)  # [B, k]
        vis = (
            self.tok_emb(token_ids) + self.val_proj(token_values) + self.pos[:k] + self.type_emb[3]
        )
        vis = vis * keep.unsqueeze(-1)
        i = self.instruction_token(instruction, belief_mix).unsqueeze(1) + self.type_emb[0]
        p = self.prop(proprio).unsqueeze(1) + self.type_emb[1]
        r = self.readout.expand(b, 1, -1) + self.type_emb[2]
        x = torch.cat([r, i, p, vis], 1)
        always = torch.zeros(b, 3, dtype=torch.bool, device=x.device)
        pad = torch.cat([always, ~keep], 1)  # True = ignored
        h = self.norm(self.body(x, src_key_padding_mask=pad))
        # mean over kept visual tokens (zero when the budget is 0: the blind case)
        n = keep.sum(1, keepdim=True).clamp(min=1).float()
        vis_mean = (h[:, 3:] * keep.unsqueeze(-1)).sum(1) / n
        out = self.head(torch.cat([h[:, 0], h[:, 2], vis_mean], -1))
        return torch.tanh(out).view(b, self.chunk, self.action_dim)


class PolicyExport(nn.Module):
    """The ONNX signature of docs/models.md: token ids in, action chunk out."""

    def __init__(self, policy: VLAPolicy, levels: list[int]) -> None:
        super().__init__()
        from policies.tokenizer import FSQ

        self.policy = policy
        self.fsq = FSQ(levels)

    def forward(self, token_ids, budget, instruction, proprio):  # type: ignore[no-untyped-def]
        values = self.fsq.values(self.fsq.codes_from_ids(token_ids))
        return self.policy(token_ids, values, budget, instruction, proprio)


class TaskBeliefExport(nn.Module):
    """``task_belief.onnx``: instruction embedding [B, 384] → belief over the policy's tasks
    [B, n_tasks] (the softmax the policy's instruction token is built from), so the robot can
    show which task a sentence is read as, without torch."""

    def __init__(self, policy: VLAPolicy) -> None:
        super().__init__()
        if not policy.tasks:
            raise ValueError("this policy has no task belief (built without `tasks`)")
        self.head = policy.task_head

    def forward(self, instruction):  # type: ignore[no-untyped-def]
        return torch.softmax(self.head(instruction), -1)

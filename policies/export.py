"""Training checkpoints → model files: the ONNX exports, the spec files and the shipped layout.

Everything torch hands to the run time goes through here, written with the contract of
:mod:`embodied.modelfiles` (file names, ONNX I/O names, ``TokenizerSpec`` / ``PolicySpec``):

* :func:`export_tokenizer` / :func:`export_policy`: a module in memory → a model directory
  (the training stages call them at the end of every run);
* :func:`load_tokenizer` / :func:`load_policy`: a run directory (``model.pt`` + its json) → the
  torch module again;
* :func:`ship`: run directories → ``embodied/models/<name>/`` (ONNX + JSON + prior only, the
  tokenizer decoders with fp16-stored weights);
* :func:`main`, ``embodied export``: a checkpoint → the shipped layout, without retraining::

    embodied export runs/tok-task runs/vla-task --out embodied/models
    embodied export runs/tok-recon --data data/demos --out /tmp/models   # refit the prior
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from embodied.instruction import ENCODER_ID, INSTRUCTION_DIM
from embodied.modelfiles import (
    BELIEF_IO,
    BELIEF_ONNX,
    CHECKPOINT,
    DECODER_IO,
    DECODER_ONNX,
    ENCODER_IO,
    ENCODER_ONNX,
    INSTRUCTION_CACHE,
    POLICY_IO,
    POLICY_JSON,
    POLICY_ONNX,
    PRIOR_NPY,
    SHIP_PATTERNS,
    TOKENIZER_JSON,
    ModelFileError,
    PolicySpec,
    TokenizerSpec,
    encoder_model_id,
    policy_onnx_metadata,
    shipped,
    stamp_model_dir,
)
from policies.onnx_export import export_onnx
from policies.tokenizer import DecoderExport, EncoderExport, Tokenizer, encode_all
from policies.vla import PolicyExport, TaskBeliefExport, VLAPolicy

OPSET = 17
PROPRIO_DIM = 4


# --------------------------------------------------------------------------- tokenizer


def fit_prior(tok: Tokenizer, codes: np.ndarray) -> np.ndarray:
    """ML estimate of the per-(position, dimension) level distribution, add-0.5 smoothed."""
    k, d = codes.shape[1:]
    lmax = max(tok.levels)
    prior = np.zeros((k, d, lmax))
    for j, n in enumerate(tok.levels):
        counts = np.stack([np.bincount(codes[:, i, j], minlength=n)[:n] for i in range(k)])
        prior[:, j, :n] = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    return prior


def export_tokenizer(
    tok: Tokenizer,
    out: Path,
    name: str,
    objective: str,
    codes: np.ndarray | None = None,
    *,
    prior: np.ndarray | None = None,
) -> dict:
    """Encoder + decoder ONNX, the prior (fitted to ``codes``, or ``prior`` as given) and
    ``tokenizer.json``, whose ``model_id`` is the encoder's hash (metadata left out); both ONNX
    files carry the metadata of docs/models.md (``stamp_model_dir``). Returns the json."""
    if (codes is None) == (prior is None):
        raise ValueError("give the codes to fit the prior to, or the prior itself")
    if prior is None:
        assert codes is not None
        prior = fit_prior(tok, codes)
    tok.eval()
    out.mkdir(parents=True, exist_ok=True)
    r = tok.resolution
    img = torch.randint(0, 256, (2, r, r, 3), dtype=torch.uint8)
    ids = torch.randint(0, tok.vocab, (2, tok.k_max))
    for module, args, file, io in (
        # wrappers in eval mode: the legacy exporter restores the wrapper's mode afterwards,
        # and a fresh wrapper's train mode would leave ``tok`` (BatchNorm) training
        (EncoderExport(tok).eval(), (img,), ENCODER_ONNX, ENCODER_IO),
        (DecoderExport(tok).eval(), (ids, torch.tensor([3, tok.k_max])), DECODER_ONNX, DECODER_IO),
    ):
        torch.onnx.export(
            module, args, str(out / file), **io.export_kwargs(), opset_version=OPSET, dynamo=False
        )
    np.save(out / PRIOR_NPY, prior)
    model_id = encoder_model_id(out / ENCODER_ONNX)
    spec = TokenizerSpec(name, model_id, tok.k_max, tuple(tok.levels), r, objective)
    spec.write(out)
    stamp_model_dir(out, [ENCODER_ONNX, DECODER_ONNX])  # the id is the hash without them
    return spec.to_dict()


def load_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer of a run directory (``tokenizer.json`` + ``model.pt``)."""
    spec = TokenizerSpec.load(path)
    tok = Tokenizer(spec.k_max, list(spec.levels), spec.resolution)
    tok.load_state_dict(torch.load(Path(path) / CHECKPOINT, weights_only=True))
    return tok


# --------------------------------------------------------------------------- policy


def export_policy(
    policy: VLAPolicy,
    tok: Tokenizer | Sequence[int],
    out: Path,
    name: str,
    tokenizer: Path | TokenizerSpec | tuple[str, str] | None,
    blind: bool,
    instructions: Sequence[str],
    emb: np.ndarray,
) -> dict:
    """``policy.onnx`` (+ fp16, + ``task_belief.onnx`` for a task-belief policy), ``policy.json``
    and the instruction cache of the phrasings it was trained on. ``tok``: the tokenizer (or its
    FSQ levels) whose ids the policy reads; ``tokenizer``: its directory, spec or (name, model id)
    as ``policy.json`` records them (``None`` for a policy trained on no tokenizer). Every ONNX
    file carries the metadata of docs/models.md. Returns the json."""
    policy.eval()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused fast path has no ONNX symbolic
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(tokenizer, Path):
        tokenizer = TokenizerSpec.load(tokenizer)
    if isinstance(tokenizer, TokenizerSpec):
        tokenizer = (tokenizer.name, tokenizer.model_id_hex)
    tok_name, tok_id = tokenizer or ("none", "none")
    levels = list(tok.levels) if isinstance(tok, Tokenizer) else list(tok)
    spec = PolicySpec(
        kind="policy",
        name=name,
        tokenizer=tok_name,
        tokenizer_model_id=tok_id,
        k_max=policy.k_max,
        vocab=policy.vocab,
        chunk=policy.chunk,
        action_dim=policy.action_dim,
        proprio_dim=PROPRIO_DIM,
        instruction_encoder=ENCODER_ID,
        instruction_dim=INSTRUCTION_DIM,
        budget_min=0,
        budget_max=0 if blind else policy.k_max,
        blind=blind,
        instruction_grounding="task-belief" if policy.tasks else "mlp",
        tasks=tuple(policy.tasks),
    )
    b = 2
    inputs = (
        torch.randint(0, policy.vocab, (b, policy.k_max)),
        torch.tensor([1, policy.k_max]),
        torch.randn(b, INSTRUCTION_DIM),
        torch.randn(b, PROPRIO_DIM),
    )
    wrapper = PolicyExport(policy, levels).eval()
    written = [out / POLICY_ONNX["fp32"], out / POLICY_ONNX["fp16"], out / BELIEF_ONNX]
    export_onnx(wrapper, inputs, POLICY_IO.input_names, POLICY_IO.output_names,
                POLICY_IO.dynamic_batch(), out / POLICY_ONNX["fp32"], spec.metadata(),
                opset=OPSET)  # fmt: skip
    if policy.tasks:
        export_onnx(TaskBeliefExport(policy).eval(), (torch.randn(b, INSTRUCTION_DIM),),
                    BELIEF_IO.input_names, BELIEF_IO.output_names, BELIEF_IO.dynamic_batch(),
                    out / BELIEF_ONNX, policy_onnx_metadata(spec, "", "task_belief"),
                    opset=OPSET, fp16=False)  # fmt: skip
    spec.write(out)
    # the policy's id (its hash) is known once policy.onnx is written
    stamp_model_dir(out, sorted(f.name for f in written if f.is_file()))
    cache = {s: [round(float(v), 7) for v in e] for s, e in zip(instructions, emb, strict=True)}
    (out / INSTRUCTION_CACHE).write_text(json.dumps(cache) + "\n")
    return spec.to_dict()


def load_policy(path: Path) -> VLAPolicy:
    """The policy of a run directory (``policy.json`` + ``model.pt``)."""
    spec = PolicySpec.load(path)
    p = VLAPolicy(k_max=spec.k_max, vocab=spec.vocab, chunk=spec.chunk, tasks=spec.tasks)
    p.load_state_dict(torch.load(Path(path) / CHECKPOINT, weights_only=True))
    return p


# --------------------------------------------------------------------------- shipping

#: the run directories ``embodied train all`` ships, in training order
SHIPPED = ("tok-recon", "tok-task", "vla-recon", "vla-task", "vla-blind")


def ship_one(src: Path, dest: Path) -> Path:
    """Copy one run's exported (torch-free) files into ``dest`` (the shipped layout): json,
    ONNX and prior, no fp16 policy variant, no logs, the tokenizer decoder with fp16 weights;
    the ONNX files stamped with the metadata of docs/models.md (a run exported before it)."""
    dest.mkdir(parents=True, exist_ok=True)
    onnx_files = []
    for pattern in SHIP_PATTERNS:
        for f in sorted(src.glob(pattern)):
            if f.name.endswith("_fp16.onnx") or f.name == "log.jsonl":
                continue
            if f.name == DECODER_ONNX:
                store_weights_fp16(f, dest / f.name)
            else:
                shutil.copy2(f, dest / f.name)
            if f.suffix == ".onnx":
                onnx_files.append(f.name)
    stamp_model_dir(dest, onnx_files)
    return dest


def ship(runs: Path, dest: Path, names: Sequence[str] = SHIPPED) -> None:
    """Copy the exported files of each run in ``names`` into the shipped model directory."""
    for name in names:
        ship_one(runs / name, dest / name)
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


# --------------------------------------------------------------------------- embodied export


def _policy_levels(run: Path, spec: PolicySpec, tokenizer: Path | None) -> list[int]:
    """FSQ levels of the tokenizer a policy reads: ``--tokenizer``, else the run's sibling or
    the shipped directory of that name with the recorded model id."""
    candidates = (
        [tokenizer] if tokenizer else [run.parent / spec.tokenizer, shipped(spec.tokenizer)]
    )
    for d in candidates:
        if d is not None and (d / TOKENIZER_JSON).is_file():
            t = TokenizerSpec.load(d)
            if tokenizer or t.model_id_hex == spec.tokenizer_model_id:
                return list(t.levels)
    if spec.blind or spec.tokenizer == "none":
        return list(Tokenizer().levels)  # a blind policy never reads a token id
    raise ModelFileError(
        f"{run}: policy trained on tokenizer {spec.tokenizer!r} ({spec.tokenizer_model_id}); "
        f"none found at {', '.join(str(c) for c in candidates)}: pass --tokenizer DIR"
    )


def export_checkpoint(
    run: Path, out: Path, *, data: Path | None = None, tokenizer: Path | None = None
) -> Path:
    """Re-export one run directory (``model.pt`` + its json) into ``out`` in the shipped layout.

    Tokenizer: the prior is the run's ``tokenizer_prior.npy`` if present, else fitted to the
    codes of ``data``'s frames, else the learned prior of the checkpoint. Policy: the FSQ
    levels come from its tokenizer; the instruction cache from the run's, if it has one.
    """
    if not (run / CHECKPOINT).is_file():
        raise ModelFileError(f"{run}: no {CHECKPOINT} (a training run directory holds one)")
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / run.name
        if (run / TOKENIZER_JSON).is_file():
            spec = TokenizerSpec.load(run)
            tok = load_tokenizer(run)
            if data is not None:
                from policies.data import load_demos

                export_tokenizer(tok, stage, spec.name, spec.objective,
                                 encode_all(tok, load_demos(data, chunk=1).frames))  # fmt: skip
            elif (run / PRIOR_NPY).is_file():
                export_tokenizer(
                    tok, stage, spec.name, spec.objective, prior=np.load(run / PRIOR_NPY)
                )
            else:
                with torch.no_grad():
                    learned = tok.prior.probs().double().numpy()
                export_tokenizer(tok, stage, spec.name, spec.objective, prior=learned)
        elif (run / POLICY_JSON).is_file():
            spec = PolicySpec.load(run)
            policy = load_policy(run)
            texts: list[str] = []
            emb = np.zeros((0, INSTRUCTION_DIM), np.float32)
            if (run / INSTRUCTION_CACHE).is_file():
                cache = json.loads((run / INSTRUCTION_CACHE).read_text())
                texts = list(cache)
                emb = np.asarray([cache[t] for t in texts], np.float32).reshape(-1, INSTRUCTION_DIM)
            levels = _policy_levels(run, spec, tokenizer)
            ref = (spec.tokenizer, spec.tokenizer_model_id)
            export_policy(policy, levels, stage, spec.name, ref,
                          spec.blind, texts, emb)  # fmt: skip
        else:
            raise ModelFileError(f"{run}: neither {TOKENIZER_JSON} nor {POLICY_JSON}")
        return ship_one(stage, out / run.name)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="embodied export",
        description="Training checkpoints (runs/<name>/model.pt + json) → the shipped model "
        "layout (docs/models.md), re-exported from the weights.",
    )
    p.add_argument("runs", nargs="+", type=Path, help="run directories (runs/tok-task ...)")
    p.add_argument("--out", type=Path, required=True, help="models root (e.g. embodied/models)")
    p.add_argument("--data", type=Path, default=None, help="tokenizer: refit the prior here")
    p.add_argument("--tokenizer", type=Path, default=None, help="policy: its tokenizer dir")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    for run in a.runs:
        try:
            dest = export_checkpoint(run, a.out, data=a.data, tokenizer=a.tokenizer)
        except ModelFileError as e:
            print(f"embodied export: {e}", file=sys.stderr)
            return 2
        print(f"  {run} -> {dest}: {', '.join(sorted(f.name for f in dest.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

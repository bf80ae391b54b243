"""``embodied export``: a training checkpoint becomes the shipped model layout.

A tiny tokenizer and a task-belief policy are initialised here (no training), written as
training writes a run (``model.pt`` + the exported files), then re-exported from the weights
by the command; the run time must load the result and agree with torch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from embodied.cli import main as cli_main  # noqa: E402
from embodied.codecs.tokens import TokenCodec  # noqa: E402
from embodied.modelfiles import (  # noqa: E402
    CHECKPOINT,
    DECODER_ONNX,
    ONNX_METADATA_KEYS,
    POLICY_JSON,
    PRIOR_NPY,
    PolicySpec,
    TokenizerSpec,
    model_dir_metadata,
)
from embodied.onnxmeta import read_metadata  # noqa: E402
from embodied.policy import OnnxPolicy  # noqa: E402
from policies.export import export_policy, export_tokenizer, fit_prior  # noqa: E402
from policies.tokenizer import Tokenizer, encode_all, to_input  # noqa: E402
from policies.vla import PolicyExport, VLAPolicy  # noqa: E402
from tests.fixtures.tiny_models import make_frames  # noqa: E402

TASKS = ("drawer-open", "drawer-close", "faucet-open")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/tok-x and runs/vla-x as a training run leaves them."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("runs")
    frames = make_frames(8, seed=5)
    tok = Tokenizer(k_max=8).eval()
    export_tokenizer(tok, root / "tok-x", "tok-x", "reconstruction", encode_all(tok, frames))
    torch.save(tok.state_dict(), root / "tok-x" / CHECKPOINT)
    policy = VLAPolicy(k_max=8, vocab=tok.vocab, chunk=4, tasks=TASKS).eval()
    e = np.ones((1, 384), np.float32) / np.sqrt(384)
    export_policy(policy, tok, root / "vla-x", "vla-x", root / "tok-x", False, ["open it"], e)
    torch.save(policy.state_dict(), root / "vla-x" / CHECKPOINT)
    (root / "vla-x" / "log.jsonl").write_text("{}\n")
    return root, tok, policy, frames


def test_export_writes_the_shipped_layout_from_the_weights(runs, tmp_path):
    root, tok, policy, frames = runs
    out = tmp_path / "models"
    assert cli_main(["export", str(root / "tok-x"), str(root / "vla-x"), "--out", str(out)]) == 0
    names = {d.name: sorted(f.name for f in d.iterdir()) for d in out.iterdir()}
    assert names["tok-x"] == sorted(
        ["tokenizer.json", "tokenizer_encoder.onnx", "tokenizer_decoder.onnx", PRIOR_NPY]
    )
    assert names["vla-x"] == sorted(
        ["policy.json", "policy.onnx", "task_belief.onnx", "instruction_cache.json"]
    )  # no checkpoint, no log, no fp16 policy variant
    # the tokenizer: same spec (the encoder is re-exported, so its hash is the model id),
    # same prior, tokens equal to torch's, decoder weights stored in fp16
    spec = TokenizerSpec.load(out / "tok-x")
    assert spec.levels == tuple(tok.levels) and spec.k_max == 8
    np.testing.assert_array_equal(
        np.load(out / "tok-x" / PRIOR_NPY), np.load(root / "tok-x" / PRIOR_NPY)
    )
    assert not tok.training  # export leaves the module as it found it
    codec = TokenCodec(out / "tok-x")
    _, ids = codec.tokenize(frames)
    with torch.no_grad():
        _, _, codes = tok.encode(to_input(torch.from_numpy(frames)))
    np.testing.assert_array_equal(ids, codec.codes_to_ids(codes.numpy()))
    dec = (out / "tok-x" / DECODER_ONNX).stat().st_size
    assert dec < 0.7 * (root / "tok-x" / DECODER_ONNX).stat().st_size
    # the policy: the run's policy.json, now naming the re-exported tokenizer's id
    run_spec = PolicySpec.load(root / "vla-x")
    got = PolicySpec.load(out / "vla-x")
    assert got.tasks == TASKS and got.instruction_grounding == "task-belief"
    assert {**got.to_dict(), "tokenizer_model_id": "-"} == {
        **run_spec.to_dict(),
        "tokenizer_model_id": "-",
    }
    p = OnnxPolicy(out / "vla-x", providers="cpu")
    g = torch.Generator().manual_seed(3)
    tids = torch.randint(0, tok.vocab, (3, 8), generator=g)
    budget = torch.tensor([1, 4, 8])
    instr = torch.nn.functional.normalize(torch.randn(3, 384, generator=g), dim=-1)
    prop = torch.rand(3, 4, generator=g) * 2 - 1
    with torch.no_grad():
        ref = PolicyExport(policy, tok.levels).eval()(tids, budget, instr, prop).numpy()
    act = p.infer_batch(tids.numpy(), budget.numpy(), instr.numpy(), prop.numpy())
    assert np.abs(act - np.clip(ref, -1, 1)).max() <= 1e-4
    assert max(p.task_belief(instr[0].numpy()).values()) > 0
    assert json.loads((out / "vla-x" / "instruction_cache.json").read_text()).keys() == {"open it"}
    # every ONNX file written (the runs' and the shipped ones) says what it is (docs/models.md)
    written = [*root.rglob("*.onnx"), *out.rglob("*.onnx")]
    assert {f.name for f in written} >= {"policy_fp16.onnx", "task_belief.onnx", DECODER_ONNX}
    for f in written:
        meta = read_metadata(f)
        assert set(ONNX_METADATA_KEYS) <= meta.keys(), f
        assert {k: meta[k] for k in ONNX_METADATA_KEYS} == {
            k: model_dir_metadata(f.parent, [f.name])[f.name][k] for k in ONNX_METADATA_KEYS
        }
    assert read_metadata(out / "vla-x" / "policy.onnx")["tokenizer_model_id"] == spec.model_id_hex
    assert cli_main(["stamp-metadata", str(out), str(root), "--check"]) == 0


def test_export_refits_or_learns_the_prior_and_refuses_what_is_not_a_run(runs, tmp_path):
    root, tok, _, frames = runs
    bare = tmp_path / "runs" / "tok-x"
    bare.mkdir(parents=True)
    for f in ("tokenizer.json", CHECKPOINT):
        (bare / f).write_bytes((root / "tok-x" / f).read_bytes())
    out = tmp_path / "models"
    assert cli_main(["export", str(bare), "--out", str(out)]) == 0
    learned = np.load(out / "tok-x" / PRIOR_NPY)
    with torch.no_grad():
        np.testing.assert_allclose(learned, tok.prior.probs().double().numpy())
    assert not np.allclose(learned, fit_prior(tok, encode_all(tok, frames)))
    TokenCodec(out / "tok-x")  # a valid prior: rows sum to one within the levels
    (bare / CHECKPOINT).unlink()
    assert cli_main(["export", str(bare), "--out", str(out)]) == 2
    (bare / "tokenizer.json").unlink()
    (bare / CHECKPOINT).write_bytes(b"")
    assert cli_main(["export", str(bare), "--out", str(out)]) == 2
    assert not (tmp_path / "models" / POLICY_JSON).exists()

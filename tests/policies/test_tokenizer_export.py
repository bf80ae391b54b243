"""Tokenizer export: torch and ONNX Runtime give the same codes; shipped tokenizers keep the prefix
property (reconstruction error does not grow with the budget) on held-out sim frames."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from embodied.modelfiles import MODELS_DIR  # noqa: E402
from policies.export import export_tokenizer  # noqa: E402
from policies.tokenizer import Tokenizer, to_input  # noqa: E402

MODELS = MODELS_DIR


def _frames(n_seeds: int = 3, steps: int = 8) -> np.ndarray:
    from sim.env import MetaWorldTaskEnv
    from sim.suite import eval_seeds

    out = []
    for task in ("drawer-open", "window-close", "button-press"):
        env = MetaWorldTaskEnv(task)
        for s in eval_seeds(n_seeds, start=900):
            obs, _ = env.reset(seed=s)
            out.append(obs["image"])
            for _ in range(steps):
                obs, *_ = env.step(env.action_space.sample())
                out.append(obs["image"])
        env.close()
    return np.stack(out)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return _frames()


def _session(path: Path):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def test_onnx_codes_match_torch(tmp_path, frames):
    torch.manual_seed(0)
    tok = Tokenizer().eval()
    with torch.no_grad():  # give batch norm non-trivial statistics
        tok.encoder.norm.running_mean.normal_(0, 0.3)
        tok.encoder.norm.running_var.uniform_(0.5, 2.0)
        _, _, codes = tok.encode(to_input(torch.from_numpy(frames)))
    meta = export_tokenizer(tok, tmp_path, "tok-test", "reconstruction", codes.numpy())
    onnx_codes, onnx_ids = _session(tmp_path / "tokenizer_encoder.onnx").run(
        None, {"image": frames}
    )
    disagree = float(np.mean(onnx_codes != codes.numpy()))
    # rounding of values that sit exactly between two levels may differ by float error only
    assert disagree <= 1e-3, f"{disagree:.2%} of codes differ between torch and ONNX"
    assert onnx_ids.shape == (len(frames), meta["k_max"])
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model_id"] == meta["model_id"]


@pytest.mark.parametrize("name", ["tok-recon", "tok-task"])
def test_shipped_prefix_property(name, frames):
    d = MODELS / name
    if not (d / "tokenizer.json").is_file():
        pytest.skip(f"{d} not shipped")
    _, ids = _session(d / "tokenizer_encoder.onnx").run(None, {"image": frames})
    dec = _session(d / "tokenizer_decoder.onnx")
    target = frames.astype(np.float32) / 255
    errs = []
    for k in (1, 2, 4, 8, 16, 32, 64):
        img = dec.run(None, {"token_ids": ids, "budget": np.full(len(ids), k, np.int64)})[0]
        errs.append(float(np.mean((img.astype(np.float32) / 255 - target) ** 2)))
    # more tokens never make the reconstruction worse (small tolerance for 8-bit rounding)
    assert all(b <= a + 2e-4 for a, b in pairwise(errs)), errs
    assert errs[-1] < errs[0]

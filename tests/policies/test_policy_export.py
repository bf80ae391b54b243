"""Policy export (torch → ONNX): the contract's files, metadata and parity with torch.

A tiny random-init torch policy with exactly the ONNX I/O of docs/models.md is exported once
per module; the run time under test (``embodied.policy``) never imports torch.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from embodied.modelfiles import POLICY_IO  # noqa: E402
from embodied.policy import (  # noqa: E402
    ActionChunker,
    ModelFileError,
    Observation,
    OnnxPolicy,
    PolicyOutputError,
    PolicySpec,
)
from policies.onnx_export import check_parity, export_onnx  # noqa: E402
from policies.stub_policy import StubPolicy, example_inputs, export_stub_policy  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    """(torch module, model dir) of a tiny stub policy, exported once."""
    d = tmp_path_factory.mktemp("stub_policy")
    model, _ = export_stub_policy(d, d_model=32, layers=1, heads=2, seed=1)
    return model, d


@pytest.fixture(scope="module")
def policy(stub):
    return OnnxPolicy(stub[1], providers=["cpu"])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def obs(rng, k=8, **kw):
    e = rng.standard_normal(384).astype(np.float32)
    d = {
        "token_ids": rng.integers(0, 1000, k),
        "budget": k,
        "instruction": e / np.linalg.norm(e),
        "proprio": rng.uniform(-1, 1, 4).astype(np.float32),
    }
    d.update(kw)
    return d


def test_onnx_files_pass_checker_and_carry_metadata(stub):
    _, d = stub
    spec = PolicySpec.load(d / "policy.json")
    for name in ("policy.onnx", "policy_fp16.onnx"):
        m = onnx.load(str(d / name))
        onnx.checker.check_model(m)
        assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
        meta = {p.key: p.value for p in m.metadata_props}
        for k, v in spec.metadata().items():
            assert meta[k] == v, k
        ins = {i.name: i for i in m.graph.input}
        assert list(ins) == POLICY_IO.input_names
        assert ins["token_ids"].type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert ins["budget"].type.tensor_type.elem_type == onnx.TensorProto.INT64
        for i in m.graph.input:  # dynamic batch
            assert i.type.tensor_type.shape.dim[0].dim_param
        # fp16 variant keeps fp32 I/O so the same feed works
        assert ins["instruction"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        out = m.graph.output[0]
        assert out.name == "actions"
        assert [x.dim_value for x in out.type.tensor_type.shape.dim[1:]] == [8, 4]


def test_ort_matches_torch_on_heldout_inputs(stub, policy):
    model, d = stub
    held = example_inputs(policy.spec, batch=6, seed=123)
    assert check_parity(model, d / "policy.onnx", held) <= 1e-4
    ids, budget, instr, prop = held
    got = policy.infer_batch(ids.numpy(), budget.numpy(), instr.numpy(), prop.numpy())
    with torch.no_grad():
        ref = model(*held).numpy()
    assert got.shape == (6, 8, 4)
    assert np.max(np.abs(got - ref)) <= 1e-4
    one = policy.infer(
        Observation(ids[0].numpy(), int(budget[0]), instr[0].numpy(), prop[0].numpy())
    )
    assert np.max(np.abs(one - ref[0])) <= 1e-4


def test_nan_action_from_model_never_leaves(tmp_path, rng):
    class NanPolicy(torch.nn.Module):
        """Finite for proprio[0] >= 0, NaN below: a model that breaks on some inputs."""

        def forward(self, token_ids, budget, instruction, proprio):
            x = torch.sqrt(proprio[:, :1]) + 0 * instruction[:, :1] + 0 * budget[:, None]
            x = x + 0 * token_ids[:, :1]
            return x[:, :, None].expand(-1, 8, 4).contiguous()

    export_stub_policy(tmp_path, module=NanPolicy())
    p = OnnxPolicy(tmp_path, providers="cpu")
    good = obs(rng, 2, proprio=np.array([0.25, 0, 0, 0], np.float32))
    assert np.allclose(p.infer(good), 0.5)
    with pytest.raises(PolicyOutputError, match="NaN"):
        p.infer({**good, "proprio": np.array([-0.5, 0, 0, 0], np.float32)})
    with pytest.raises(PolicyOutputError, match=r"\[1\]"):
        p.infer_batch(
            np.zeros((2, 64), np.int64),
            [1, 1],
            np.stack([good["instruction"]] * 2),
            np.array([[0.5, 0, 0, 0], [-1, 0, 0, 0]], np.float32),
        )
    ch = ActionChunker()
    with pytest.raises(PolicyOutputError):
        ch.submit(np.full((8, 4), np.nan))


def test_foreign_onnx_refused(tmp_path, stub):
    export_onnx(
        torch.nn.Linear(4, 3), torch.zeros(1, 4), ["x"], ["y"], None, tmp_path / "policy.onnx",
        {"kind": "other"}, fp16=False,
    )  # fmt: skip
    shutil.copy(stub[1] / "policy.json", tmp_path / "policy.json")
    with pytest.raises(ModelFileError, match=r"different models.*kind: onnx 'other'"):
        OnnxPolicy(tmp_path, providers="cpu")
    m = onnx.load(str(tmp_path / "policy.onnx"))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "policy.onnx"))
    with pytest.raises(ModelFileError, match=r"inputs \['x'\].*docs/models.md"):
        OnnxPolicy(tmp_path, providers="cpu")


def test_stub_module_roundtrip_spec():
    from policies.stub_policy import stub_spec

    s = stub_spec(k_max=16, budget_max=16)
    m = StubPolicy(s, d_model=16, layers=1, heads=2).eval()
    with torch.no_grad():
        y = m(*example_inputs(s, batch=3))
    assert y.shape == (3, 8, 4)


_REAL_POLICY_SCRIPT = """
import json, sys, numpy as np, torch
torch.set_num_threads(1)
from pathlib import Path
from policies.vla import PolicyExport, VLAPolicy
from policies.onnx_export import check_parity, export_onnx
from policies.stub_policy import example_inputs, stub_spec
from embodied.policy import OnnxPolicy
torch.backends.mha.set_fastpath_enabled(False)
torch.manual_seed(0)
spec = stub_spec(name="vla-untrained")
w = PolicyExport(VLAPolicy(chunk=spec.chunk), [8, 5, 5, 5]).eval()
out = Path(sys.argv[1])
names = ["token_ids", "budget", "instruction", "proprio"]
paths = export_onnx(w, example_inputs(spec), names, ["actions"], None, out / "policy.onnx",
                    spec.metadata())
(out / "policy.json").write_text(json.dumps(spec.to_dict()))
held = example_inputs(spec, batch=6, seed=9)
d32 = check_parity(w, paths["fp32"], held)
d16 = check_parity(w, paths["fp16"], held)
ids, b, e, p = (t.numpy() for t in held)
with torch.no_grad():
    ref = w(*held).numpy()
for prec in ("fp32", "fp16"):
    got = OnnxPolicy(out, precision=prec, providers="cpu").infer_batch(ids, b, e, p)
    print(prec, float(np.max(np.abs(got - ref))))
print("parity", d32, d16)
"""


def test_training_policy_exports_and_runs_in_both_precisions(tmp_path):
    """policies.vla (the trained architecture) through export_onnx and OnnxPolicy, fp32 and fp16.

    Runs in a subprocess: onnxruntime 1.32 segfaulted (not raised) opening this model's fp16
    variant with its NCHWc transformer, which would take pytest down with it.
    """
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("policies.vla")
    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-c", _REAL_POLICY_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in res.stdout.strip().splitlines())
    assert float(lines["fp32"]) <= 1e-4
    assert float(lines["fp16"]) <= 2e-2
    d32, d16 = map(float, lines["parity"].split())
    assert d32 <= 1e-4 and d16 <= 2e-2

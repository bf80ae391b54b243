"""Policy run time without torch: OnnxPolicy validation, wrappers, providers, trt-build, bench.

The policy is the committed fixture ``tests/fixtures/models/vla-tiny`` (a random-init stub
with the ONNX I/O of docs/models.md, on the fixture tokenizer's ids; regenerate it with
``GENERATE_EXPECTED=1``), so this module runs in the torch-free core environment. Export and
torch/ONNX parity are tested in ``tests/policies/test_policy_export.py``.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from embodied.instruction import EmbeddingCache, InstructionEncoder, InstructionEncoderUnavailable
from embodied.modelfiles import PolicySpec
from embodied.policy import (
    ActionChunker,
    LatencyMeter,
    ModelFileError,
    OnnxPolicy,
    PolicyInputError,
)
from embodied.providers import (
    CPU,
    CUDA,
    TENSORRT,
    ProviderUnavailableError,
    TensorRTOptions,
    UnknownProviderError,
    make_session,
    select_providers,
)
from tests.fixtures.tiny_models import committed

HAS_CUDA = CUDA in ort.get_available_providers()


@pytest.fixture(scope="module")
def policy_dir():
    """The committed fixture policy (k_max 64, vocab 1000, chunk 8, fp32 + fp16)."""
    return committed()[1]


@pytest.fixture(scope="module")
def policy(policy_dir):
    return OnnxPolicy(policy_dir, providers=["cpu"])


@pytest.fixture
def unit(rng):
    e = rng.standard_normal(384).astype(np.float32)
    return e / np.linalg.norm(e)


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


def test_fp16_variant_close_to_fp32(policy_dir, rng):
    p32 = OnnxPolicy(policy_dir, providers="cpu")
    p16 = OnnxPolicy(policy_dir, precision="fp16", providers="cpu")
    o = obs(rng, 16)
    assert np.max(np.abs(p32.infer(o) - p16.infer(o))) < 2e-2


def test_unpadded_and_padded_tokens_agree_and_masked_positions_ignored(policy, rng):
    o = obs(rng, 5)
    a = policy.infer(o)
    padded = np.concatenate([o["token_ids"], rng.integers(0, 1000, 59)])
    b = policy.infer({**o, "token_ids": padded})
    assert a.shape == (8, 4) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    blind = policy.infer({**o, "token_ids": None, "budget": 0})
    blind2 = policy.infer({**o, "token_ids": [], "budget": 0})
    np.testing.assert_allclose(blind, blind2, atol=1e-6)
    assert np.all(np.abs(a) <= 1)


# --------------------------------------------------------------------------- bad input


BAD = [
    ("token_ids", {"token_ids": np.array([0, 1, 1000, 3])}, "0..999"),
    ("token_ids", {"token_ids": np.array([0, -1, 2, 3])}, "0..999"),
    ("token_ids", {"token_ids": np.array([0.0, 1.0, np.nan, 3.0])}, "0..999"),
    ("token_ids", {"token_ids": np.array([0.0, 1.0, 2.0, 3.0])}, "integers"),
    ("token_ids", {"token_ids": np.array([0, 1])}, "at least budget"),
    ("token_ids", {"token_ids": np.zeros(65, np.int64)}, "at most k_max (64)"),
    ("token_ids", {"token_ids": np.zeros((2, 2), np.int64)}, "integers"),
    ("token_ids", {"token_ids": None}, "0..999"),
    ("budget", {"budget": 65}, "0..64"),
    ("budget", {"budget": -1}, "0..64"),
    ("budget", {"budget": 2.0}, "0..64"),
    ("budget", {"budget": True}, "0..64"),
    ("budget", {"budget": float("nan")}, "0..64"),
    ("proprio", {"proprio": np.zeros(3)}, "(4,)"),
    ("proprio", {"proprio": np.zeros((1, 4))}, "(4,)"),
    ("proprio", {"proprio": np.array([0, np.nan, 0, 0])}, "finite"),
    ("proprio", {"proprio": np.array([0, np.inf, 0, 0])}, "finite"),
    ("proprio", {"proprio": ["a", "b", "c", "d"]}, "(4,)"),
    ("instruction", {"instruction": np.full(384, np.nan, np.float32)}, "(384,)"),
    ("instruction", {"instruction": np.ones(383, np.float32) / np.sqrt(383)}, "(384,)"),
    ("instruction", {"instruction": np.ones(384, np.float32)}, "norm 1"),
    ("instruction", {"instruction": "  "}, "phrasing"),
]


@pytest.mark.parametrize(
    ("field", "change", "allowed"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_input_raises_typed_error_naming_field(policy, rng, field, change, allowed):
    o = obs(rng, 4)
    o.update(change)
    with pytest.raises(PolicyInputError) as ei:
        policy.infer(o)
    assert ei.value.field == field
    assert allowed in ei.value.allowed
    assert field in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_missing_field_named(policy, rng):
    o = obs(rng, 4)
    del o["proprio"]
    with pytest.raises(PolicyInputError, match="proprio"):
        policy.infer(o)


def test_batch_errors_name_the_row(policy, rng):
    ids = rng.integers(0, 1000, (3, 64))
    ids[2, 0] = 5000
    e = np.stack([obs(rng)["instruction"] for _ in range(3)])
    with pytest.raises(PolicyInputError) as ei:
        policy.infer_batch(ids, [4, 4, 4], e, np.zeros((3, 4)))
    assert ei.value.field == "token_ids[2]"
    with pytest.raises(PolicyInputError) as ei:
        policy.infer_batch(ids[:2], [4, 99], e[:2], np.zeros((2, 4)))
    assert ei.value.field == "budget[1]"
    with pytest.raises(PolicyInputError) as ei:
        policy.infer_batch(ids[:2], [4, 4], e[:2], np.zeros((3, 4)))
    assert ei.value.field == "batch"


def test_random_valid_inputs_give_finite_bounded_actions(policy):
    r = np.random.default_rng(7)
    for _ in range(50):
        k = int(r.integers(0, 65))
        a = policy.infer(obs(r, k, token_ids=r.integers(0, 1000, int(r.integers(k, 65)))))
        assert a.shape == (8, 4) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1)


# --------------------------------------------------------------------------- model files


def test_model_file_errors_name_what_was_expected(policy_dir, tmp_path):
    d = policy_dir
    with pytest.raises(ModelFileError, match="not found"):
        OnnxPolicy(tmp_path / "nope")
    with pytest.raises(ModelFileError, match=r"policy\.json"):
        OnnxPolicy(tmp_path)
    shutil.copy(d / "policy.json", tmp_path / "policy.json")
    with pytest.raises(ModelFileError, match=r"policy\.onnx"):
        OnnxPolicy(tmp_path)
    shutil.copy(d / "policy.onnx", tmp_path / "policy.onnx")
    with pytest.raises(ModelFileError, match=r"policy_fp16\.onnx"):
        OnnxPolicy(tmp_path, precision="fp16")
    mid = PolicySpec.load(d).tokenizer_model_id
    with pytest.raises(ModelFileError, match=rf"model_id {mid}.*model_id deadbeef"):
        OnnxPolicy(tmp_path, providers="cpu", tokenizer_model_id="deadbeef")
    p = OnnxPolicy(tmp_path, providers="cpu", tokenizer_model_id=mid)
    p.check_tokenizer({"model_id": mid, "k_max": 64, "levels": [8, 5, 5, 5]})
    with pytest.raises(ModelFileError, match="vocab"):
        p.check_tokenizer({"model_id": mid, "k_max": 64, "levels": [8, 8, 8, 8]})
    # json from another model than the onnx
    spec = json.loads((d / "policy.json").read_text())
    (tmp_path / "policy.json").write_text(json.dumps({**spec, "chunk": 16}))
    with pytest.raises(ModelFileError, match="chunk"):
        OnnxPolicy(tmp_path, providers="cpu")
    (tmp_path / "policy.json").write_text(json.dumps({**spec, "kind": "tokenizer"}))
    with pytest.raises(ModelFileError, match="kind"):
        OnnxPolicy(tmp_path, providers="cpu")
    (tmp_path / "policy.json").write_text(
        json.dumps({k: v for k, v in spec.items() if k != "vocab"})
    )
    with pytest.raises(ModelFileError, match="vocab"):
        OnnxPolicy(tmp_path, providers="cpu")


def test_instruction_text_via_cache(policy_dir, tmp_path, unit):
    cache = EmbeddingCache({"open the drawer": unit})
    p = OnnxPolicy(policy_dir, providers="cpu", instruction_encoder=InstructionEncoder(cache=cache))
    o = {"token_ids": [1, 2], "budget": 2, "proprio": np.zeros(4)}
    np.testing.assert_allclose(
        p.infer({**o, "instruction": "Open  the drawer"}), p.infer({**o, "instruction": unit})
    )
    with pytest.raises(InstructionEncoderUnavailable, match=r"instruction_cache\.json"):
        p.infer({**o, "instruction": "make coffee"})
    out = p.infer_batch([[1], [2]], [1, 1], ["open the drawer", unit], np.zeros((2, 4)))
    assert out.shape == (2, 8, 4)


def test_default_encoder_uses_the_shipped_suite_cache(policy, rng):
    TASKS = pytest.importorskip("sim.suite").TASKS

    phr = next(iter(TASKS.values())).instructions[0]
    assert policy.encoder.cache.get(phr) is not None
    assert policy.infer(obs(rng, 3, instruction=phr)).shape == (8, 4)


# --------------------------------------------------------------------------- wrappers


def _chunk(start: float, n: int = 4) -> np.ndarray:
    c = np.zeros((n, 4), np.float32)
    c[:, 0] = start + np.arange(n)
    c[:, 3] = 1.0  # gripper closed
    return c


def test_action_chunker_serves_replaces_and_holds():
    ch = ActionChunker(initial_action=[0, 0, 0, -1])
    a = ch.next_action()  # nothing yet: hold the initial gripper, no motion
    np.testing.assert_array_equal(a, [0, 0, 0, -1])
    assert ch.held_steps == 1 and ch.step == 1
    assert ch.submit(_chunk(10), obs_step=1)
    assert [ch.next_action()[0] for _ in range(2)] == [10, 11]
    # a newer observation is in flight: keep executing the current chunk
    ch.mark_requested()
    assert ch.in_flight == 3 and not ch.should_request()
    assert ch.next_action()[0] == 12
    # the chunk from step 3 arrives at step 4: its first action (for step 3) is stale
    assert ch.submit(_chunk(100), obs_step=3)
    assert ch.in_flight is None
    assert ch.remaining == 3
    assert ch.next_action()[0] == 101
    # an older chunk arriving late is ignored
    assert not ch.submit(_chunk(50), obs_step=2)
    assert ch.stale_chunks == 1
    assert [ch.next_action()[0] for _ in range(2)] == [102, 103]
    # exhausted: hold = last action with zero motion, gripper unchanged
    h = ch.next_action()
    np.testing.assert_array_equal(h, [0, 0, 0, 1])
    assert ch.holding and ch.held_steps == 2
    # a chunk entirely in the past does not replace anything
    assert not ch.submit(_chunk(7, n=2), obs_step=3)
    with pytest.raises(ValueError, match="future"):
        ch.submit(_chunk(0), obs_step=ch.step + 1)


class CountingPolicy:
    def __init__(self):
        self.calls = 0

    def infer(self, obs):
        self.calls += 1
        return _chunk(self.calls * 100, n=3)


def test_action_chunker_sync_loop_and_replan():
    p = CountingPolicy()
    ch = ActionChunker(p)
    xs = [ch.act({"budget": 1})[0] for _ in range(7)]
    assert xs == [100, 101, 102, 200, 201, 202, 300] and p.calls == 3
    p2 = CountingPolicy()
    ch2 = ActionChunker(p2, replan_every=2)
    xs = [ch2.act({})[0] for _ in range(5)]
    assert xs == [100, 101, 200, 201, 300]
    assert ActionChunker(p).should_request()  # empty: ask


def test_latency_meter_wraps_and_passes_through(policy, rng):
    m = LatencyMeter(policy, window=100)
    chunker = ActionChunker(m)
    for k in (1, 1, 4):
        m.infer(obs(rng, k))
    chunker.act(obs(rng, 4))
    s = m.stats()
    assert s.n == 4 and 0 < s.p50_ms <= s.p99_ms <= s.max_ms
    assert m.stats(1).n == 2 and set(m.stats_by_budget()) == {1, 4}
    assert m.spec.chunk == 8 and chunker.spec.k_max == 64  # attributes pass through
    with pytest.raises(PolicyInputError):
        m.infer(obs(rng, 4, budget=99))
    assert m.stats().n == 5  # failed calls are timed too


# --------------------------------------------------------------------------- providers


def test_provider_selection_falls_back_to_cpu_and_logs(policy_dir, caplog):
    assert [n for n, _ in select_providers(available=[CPU])] == [CPU]
    chosen = select_providers(
        available=[CPU, CUDA, TENSORRT],
        trt=TensorRTOptions(fp16=False, engine_cache=False, engine_cache_path="/tmp/x"),
    )
    assert [n for n, _ in chosen] == [TENSORRT, CUDA, CPU]
    assert chosen[0][1]["trt_fp16_enable"] == "False"
    assert chosen[0][1]["trt_engine_cache_path"] == "/tmp/x"
    assert [n for n, _ in select_providers(["cuda", "cpu"], available=[CPU, CUDA])] == [CUDA, CPU]
    with caplog.at_level(logging.INFO, logger="embodied.providers"):
        sess = make_session(policy_dir / "policy.onnx", threads=1)
    assert sess.get_providers()[0] in (TENSORRT, CUDA, CPU)
    assert f"execution provider {sess.get_providers()[0]}" in caplog.text
    if not HAS_CUDA:
        assert sess.get_providers() == [CPU]


def test_provider_errors(monkeypatch):
    with pytest.raises(UnknownProviderError, match="valid names: tensorrt, trt, cuda"):
        select_providers(["rocm-ish"])
    with pytest.raises(ProviderUnavailableError, match="offers"):
        select_providers(["cuda"], available=[CPU])
    monkeypatch.setenv("EMBODIED_ORT_PROVIDERS", "cpu")
    assert [n for n, _ in select_providers(available=[CPU, CUDA])] == [CPU]
    with pytest.raises(FileNotFoundError):
        make_session("/nonexistent.onnx")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDAExecutionProvider in this onnxruntime build")
def test_cuda_matches_cpu(policy_dir, rng):
    cpu = OnnxPolicy(policy_dir, providers="cpu")
    gpu = OnnxPolicy(policy_dir, providers="cuda,cpu")
    assert gpu.provider == CUDA
    o = obs(rng, 32)
    assert np.max(np.abs(cpu.infer(o) - gpu.infer(o))) < 1e-3


# --------------------------------------------------------------------------- CLI


def test_trt_build_prints_trtexec_when_absent(policy_dir, capsys):
    from embodied import trt

    cmd = trt.trtexec_command(policy_dir / "policy.onnx", "/x/policy.engine", batch=(1, 2, 8))
    assert cmd[:3] == [
        "trtexec",
        f"--onnx={policy_dir / 'policy.onnx'}",
        "--saveEngine=/x/policy.engine",
    ]
    assert "--fp16" in cmd
    assert "--minShapes=token_ids:1x64,budget:1,instruction:1x384,proprio:1x4" in cmd
    assert "--maxShapes=token_ids:8x64,budget:8,instruction:8x384,proprio:8x4" in cmd
    with pytest.raises(ValueError):
        trt.parse_batch("4:2:8")
    if trt.tensorrt_available():
        pytest.skip("tensorrt is installed here; the print path is not taken")
    rc = trt.main(["--onnx", str(policy_dir / "policy.onnx")])
    out = capsys.readouterr()
    assert rc == 0
    assert out.out.startswith("trtexec --onnx=") and "--saveEngine=" in out.out
    assert "TensorRT is absent" in out.err


def test_cli_and_bench_registration_and_bench_runs(policy_dir, tmp_path, capsys):
    from embodied.cli import COMMANDS
    from embodied_tools.bench import BENCHES
    from embodied_tools.bench_policy import main as bench_main

    assert COMMANDS["trt-build"].entry == "embodied.trt:main"
    assert BENCHES["policy"].entry == "embodied_tools.bench_policy:main"
    out = tmp_path / "bench.json"
    rc = bench_main(
        ["--model-dir", str(policy_dir), "--iters", "20", "--warmup", "2", "--json", str(out)]
    )
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    cpu = [r for r in rows if r["provider"] == CPU]
    assert {(r["precision"], r["budget"]) for r in cpu} == {
        (p, k) for p in ("fp32", "fp16") for k in (1, 4, 16, 64)
    }
    assert all(r["p50_ms"] > 0 for r in rows)
    assert "p99 ms" in capsys.readouterr().out

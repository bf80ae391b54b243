"""TensorRT optimisation profiles from the shipped models' real input shapes, and trt-build
where TensorRT is missing (no mocks: the shapes are read from the ONNX files by ONNX Runtime)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from embodied import trt
from embodied.modelfiles import MODELS_DIR

POLICY = MODELS_DIR / "vla-task" / "policy.onnx"
DECODER = MODELS_DIR / "tok-task" / "tokenizer_decoder.onnx"
INSTRUCTION = MODELS_DIR / "instruction" / "instruction_encoder_int8.onnx"


def test_policy_profile_strings_for_ort_and_trt():
    inputs = trt.onnx_input_shapes(POLICY)
    assert [i.name for i in inputs] == ["token_ids", "budget", "instruction", "proprio"]
    assert all(i.dynamic_axes() == [] for i in inputs)  # only the batch axis is dynamic
    prof = trt.profile_shapes(inputs, batch=(1, 2, 8))
    assert prof.ort_options() == {
        "trt_profile_min_shapes": "token_ids:1x64,budget:1,instruction:1x384,proprio:1x4",
        "trt_profile_opt_shapes": "token_ids:2x64,budget:2,instruction:2x384,proprio:2x4",
        "trt_profile_max_shapes": "token_ids:8x64,budget:8,instruction:8x384,proprio:8x4",
    }
    assert prof.builder_shapes()["token_ids"] == ((1, 64), (2, 64), (8, 64))
    assert prof.builder_shapes()["budget"] == ((1,), (2,), (8,))
    cmd = trt.trtexec_command(POLICY, "/x/p.engine", batch=(1, 2, 8), inputs=inputs)
    assert cmd[-3:] == prof.trtexec_args()
    assert cmd[-1] == "--maxShapes=token_ids:8x64,budget:8,instruction:8x384,proprio:8x4"


def test_decoder_profile_keeps_its_static_dims():
    prof = trt.profile_shapes(trt.onnx_input_shapes(DECODER), batch=(1, 1, 4))
    assert prof.shape_strings() == {
        "min": "token_ids:1x64,budget:1",
        "opt": "token_ids:1x64,budget:1",
        "max": "token_ids:4x64,budget:4",
    }


@pytest.mark.skipif(not INSTRUCTION.is_file(), reason="no shipped instruction encoder")
def test_dynamic_sequence_dim_needs_a_range_and_gets_one():
    inputs = trt.onnx_input_shapes(INSTRUCTION)
    assert {i.dim_key(1) for i in inputs} == {"sequence"}
    with pytest.raises(ValueError, match=r"--dim sequence=min:opt:max"):
        trt.profile_shapes(inputs)
    dims = trt.parse_dims(["sequence=1:16:64"])
    assert dims == trt.default_dim_ranges(inputs) == {"sequence": (1, 16, 64)}
    prof = trt.profile_shapes(inputs, batch=(1, 1, 8), dims=dims)
    assert prof.ort_options()["trt_profile_max_shapes"] == (
        "input_ids:8x64,attention_mask:8x64,token_type_ids:8x64"
    )
    assert prof.builder_shapes()["attention_mask"] == ((1, 1), (1, 16), (8, 64))


def test_range_parsing_refuses_bad_specs():
    assert trt.parse_batch("4") == (4, 4, 4)
    for bad in ("4:2:8", "0:1:2", "a:b:c", "1:2"):
        with pytest.raises(ValueError):
            trt.parse_batch(bad)
    with pytest.raises(ValueError, match="NAME=min:opt:max"):
        trt.parse_dims(["1:2:3"])


@pytest.mark.skipif(trt.tensorrt_import_error() is None, reason="TensorRT is installed here")
def test_trt_build_says_tensorrt_is_not_installed(tmp_path):
    if trt.find_trtexec() is not None:
        pytest.skip("trtexec is on this machine; it would build")
    engine = tmp_path / "policy.engine"
    argv = ["trt-build", "--onnx", str(POLICY), "--engine", str(engine)]
    proc = subprocess.run(
        [sys.executable, "-m", "embodied.cli", *argv, "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "TensorRT is not installed" in proc.stderr and "tensorrt-cu12" in proc.stderr
    assert proc.stdout.startswith("trtexec --onnx=")
    assert f"--saveEngine={engine}" in proc.stdout
    assert not engine.exists() and not (tmp_path / "r.json").exists()


@pytest.mark.gpu
@pytest.mark.skipif(trt.tensorrt_import_error() is not None, reason="TensorRT is not installed")
def test_trt_build_through_the_python_api(tmp_path):
    out = tmp_path / "r.json"
    argv = ["--onnx", str(POLICY), "--engine", str(tmp_path / "p.engine"), "--batch", "1:1:4"]
    rc = trt.main([*argv, "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["via"] == "tensorrt-python" and rep["size_bytes"] > 0 and rep["build_s"] > 0
    assert rep["profile"]["max"].startswith("token_ids:4x64")

"""``embodied bench gpu`` on this machine, for real: the skip path where there is no CUDA,
the install plan (``--dry-run``), the CPU self-check through the code path the GPU run
takes, feeds and fp16 copies of the shipped models. The GPU measurements themselves run
only where a CUDA device and ONNX Runtime's CUDA provider are both present."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from embodied.modelfiles import MODELS_DIR
from embodied.trt import tensorrt_import_error
from embodied_tools import bench_gpu as bg

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "models"
HAS_CUDA = bool(bg.detect_gpus().gpus) and bg.CUDA in ort.get_available_providers()


def _cli(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embodied.cli", "bench", "gpu", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU with onnxruntime-gpu is here: nothing skips")
def test_skips_cleanly_without_cuda(tmp_path):
    out = tmp_path / "gpu.json"
    proc = _cli("--json", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "skipped" in ln]
    assert len(lines) == 1 and lines[0].startswith("embodied bench gpu: skipped: ")
    rep = json.loads(out.read_text())
    assert rep["skipped"] is True and "CUDA" in rep["reason"] and rep["models"] == []
    assert rep["reason"] in lines[0]
    # --require-gpu turns the same skip into a failure exit for CI jobs that must measure
    assert _cli("--json", str(out), "--require-gpu").returncode == 3


def test_install_plan_dry_run_lists_the_swap_and_the_way_back(tmp_path):
    out = tmp_path / "plan.json"
    proc = _cli("--dry-run", "--cuda", "12", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(out.read_text())["install"]
    assert plan["dry_run"] is True and plan["cuda_major"] == 12
    text = "\n".join(plan["plan"])
    if bg._dist_version("onnxruntime-gpu") != bg.ORT_GPU_VERSION[12]:
        assert "uninstall -y onnxruntime onnxruntime-gpu" in text
        assert "'onnxruntime-gpu[cuda,cudnn]==1.26.0'" in text
        order = [
            next(i for i, s in enumerate(plan["plan"]) if k in s)
            for k in (" download ", " uninstall ", "--no-index")
        ]
        assert order == sorted(order)  # fetch first, then swap
    if tensorrt_import_error() is not None:
        assert "tensorrt-cu12==" in text and "--extra-index-url https://pypi.nvidia.com" in text
    assert "pip uninstall -y onnxruntime-gpu tensorrt-cu12" in plan["revert"]
    assert f"{sys.executable} -m pip" in plan["revert"]  # the running interpreter's pip
    assert "to go back to the CPU wheel" in proc.stdout
    assert bg._dist_version("onnxruntime") == ort.__version__ or not bg._dist_version(
        "onnxruntime"
    )  # nothing was installed or removed


def test_install_plan_steps_and_rollback():
    steps = bg.install_plan("py", 13, ort_cpu_version="1.32.0", wheelhouse="/wh")
    lines = [s.line() for s in steps]
    assert (
        lines[0].startswith("py -m pip download")
        and "onnxruntime-gpu[cuda,cudnn]==1.31.1" in lines[0]
    )
    assert "onnxruntime==1.32.0" in lines[1]
    assert lines[2] == "py -m pip uninstall -y onnxruntime onnxruntime-gpu"
    assert steps[3].on_fail == "rollback" and steps[4].rollback
    assert steps[-1].argv[-1] == f"tensorrt-cu13=={bg.TENSORRT_VERSION}"
    assert steps[-1].on_fail == "continue"
    bare = bg.install_plan(
        "py", 12, ort_cpu_version=None, wheelhouse="/wh", cuda_wheels=False, tensorrt=False
    )
    assert [s.argv[3] for s in bare] == ["download", "uninstall", "install"]
    assert bare[-1].argv[-1] == "onnxruntime-gpu==1.26.0"
    with pytest.raises(ValueError):
        bg.install_plan("py", 11, ort_cpu_version=None, wheelhouse="/wh")


def test_cpu_self_check_reports_zero_difference(tmp_path):
    out = tmp_path / "self.json"
    models = [
        FIXTURES / "tok-tiny",
        FIXTURES / "vla-tiny",
        MODELS_DIR / "vla-task" / "task_belief.onnx",
    ]
    argv = ["--providers", "cpu", "--iters", "5", "--warmup", "1", "--json", str(out)]
    rc = bg.main([*argv, "--models", *map(str, models)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["skipped"] is False and rep["mode"] == "self-check" and rep["failures"] == []
    by = {m["model"]: m for m in rep["models"]}
    assert set(by) == {
        "tok-tiny/tokenizer_decoder.onnx",
        "tok-tiny/tokenizer_encoder.onnx",
        "vla-tiny/policy.onnx",
        "vla-task/task_belief.onnx",
    }
    for m in by.values():
        (v,) = m["variants"]
        assert v["variant"] == "cpu-fp32" and v["providers_active"][0] == bg.CPU
        assert v["parity"]["max_abs_diff"] == 0.0 and v["parity"]["ok"]
        assert all(o["mismatch_frac"] == 0.0 for o in v["parity"]["outputs"].values())
        assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in v["latency"])
        assert m["reference"]["latency"]
    budgets = [r["budget"] for r in by["vla-tiny/policy.onnx"]["variants"][0]["latency"]]
    assert budgets == [1, 4, 16, 64]
    assert [r["budget"] for r in by["vla-task/task_belief.onnx"]["variants"][0]["latency"]] == [
        None
    ]
    assert by["vla-tiny/policy.onnx"]["profile"]["max"].startswith("token_ids:8x64,budget:8")
    assert rep["tensorrt"]["models"] == []


def test_feeds_follow_the_run_time_contract():
    (pol,) = bg.discover_models([MODELS_DIR / "vla-task" / "policy.onnx"])
    assert pol.kind == "policy" and pol.k_max == 64 and pol.vocab == 1000 and pol.dims == {}
    f = bg.make_feed(pol, 8, [1, 4, 16, 64], np.random.default_rng(0))
    assert f["token_ids"].shape == (8, 64) and f["token_ids"].dtype == np.int64
    assert f["budget"].tolist() == [1, 4, 16, 64] * 2
    assert not f["token_ids"][np.arange(64)[None, :] >= f["budget"][:, None]].any()
    assert f["token_ids"].max() < 1000
    assert np.allclose(np.linalg.norm(f["instruction"], axis=1), 1, atol=1e-5)
    assert np.abs(f["proprio"]).max() <= 1
    enc = MODELS_DIR / "instruction" / "instruction_encoder_int8.onnx"
    if enc.is_file():
        (m,) = bg.discover_models([enc])
        assert m.dims == {"sequence": bg.DEFAULT_DIM}
        f = bg.make_feed(m, 2, None, np.random.default_rng(0))
        assert f["attention_mask"].shape == (2, 16) and f["attention_mask"].all()
        assert not f["token_type_ids"].any()


def test_compare_by_output_kind():
    ref = [np.zeros((2, 3), np.float32), np.full(4, 7, np.uint8), np.arange(100, dtype=np.int64)]
    got = [ref[0] + 4e-4, ref[1] + np.array([0, 0, 1, 2], np.uint8), ref[2].copy()]
    got[2][0] = 99
    r = bg.compare(ref, got, ["a", "img", "ids"], "fp32")
    assert r["ok"] and r["outputs"]["ids"]["mismatch_frac"] == 0.01
    assert r["max_abs_diff"] == 99.0  # ids count by mismatch, not by how far an id moved
    got[0] = ref[0] + 2e-2
    assert not bg.compare(ref, got, ["a", "img", "ids"], "fp32")["ok"]
    assert bg.compare(ref, got, ["a", "img", "ids"], "fp16")["ok"]


def test_fp16_copy_of_a_shipped_policy_runs_and_is_close(tmp_path):
    pytest.importorskip("onnx")
    (m,) = bg.discover_models([MODELS_DIR / "vla-task" / "policy.onnx"])
    path, note = bg.fp16_copy(m.path, tmp_path / "policy_fp16.onnx")
    assert path is not None and path.is_file(), note
    feed = bg.make_feed(m, 8, [1, 4, 16, 64], np.random.default_rng(0))
    s32, _ = bg.open_session(m.path, bg.CPU)
    s16, _ = bg.open_session(path, bg.CPU, fp16_file=True)
    r = bg.compare(bg.run(s32, feed), bg.run(s16, feed), m.outputs, "fp16")
    assert r["ok"] and 0 < r["max_abs_diff"] < bg.TOLERANCE["fp16"]["float"]


@pytest.mark.gpu
@pytest.mark.skipif(
    not HAS_CUDA, reason="no CUDA device with onnxruntime-gpu's CUDAExecutionProvider"
)
def test_cuda_against_cpu_on_the_shipped_policy(tmp_path):
    out = tmp_path / "gpu.json"
    argv = ["--providers", "cuda", "--iters", "20", "--warmup", "5", "--json", str(out)]
    assert bg.main([*argv, "--models", str(MODELS_DIR / "vla-task")]) == 0
    rep = json.loads(out.read_text())
    v = {r["variant"]: r for m in rep["models"] for r in m["variants"]}
    assert v["cuda-fp32"]["providers_active"][0] == bg.CUDA and v["cuda-fp32"]["parity"]["ok"]


def test_a_failed_download_stops_the_plan_before_anything_changes(tmp_path):
    """Real pip against an empty local wheelhouse (no index): the download fails, the steps
    after it (here a marker file standing for the uninstall) never run, and the report names
    pip's own reason."""
    marker = tmp_path / "uninstalled"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    steps = [
        bg.Step(
            [
                *pip,
                "download",
                "--no-index",
                "--find-links",
                str(tmp_path),
                "--dest",
                str(tmp_path),
                "onnxruntime-gpu==0.0.1",
            ],
            "fetch",
        ),
        bg.Step([sys.executable, "-c", f"open({str(marker)!r}, 'w')"], "stands for the uninstall"),
    ]
    res = bg.run_install(steps, lambda _m: None)
    assert res["ok"] is False and len(res["steps"]) == 1 and not marker.exists()
    assert "onnxruntime-gpu==0.0.1" in res["steps"][0]["cause"]
    assert bg.pip_cause(["x", "  ERROR: No matching distribution found for y", "hint: z"]) == (
        "ERROR: No matching distribution found for y"
    )

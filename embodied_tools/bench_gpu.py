"""``embodied bench gpu``: the GPU path in one command (``make gpu-check``, docs/gpu.md).

For every shipped ONNX model (``embodied/models/**/*.onnx``: tokenizer encoders and
decoders, policies, task beliefs, the instruction encoder) it runs the CUDA and TensorRT
execution providers of ONNX Runtime against the CPU provider on the same feeds and reports

* parity: the largest absolute difference of every output against the CPU fp32 reference,
  in fp32, with TensorRT's fp16 flag, and for policies with ``policy_fp16.onnx`` (the file
  ``OnnxPolicy(precision="fp16")`` opens; made here with ONNX Runtime's converter when
  the directory has none and ``onnx`` is importable);
* latency: ``session.run`` p50/p99 at batch 1, per token budget (1, 4, 16, 64) for the
  models that take one (policy, decoder), after a warm-up;
* TensorRT's engine cache: the start (session + first run) of a second session against the
  first, both with ``trt_engine_cache_enable`` in a fresh temporary directory;
* an explicit TensorRT optimisation profile (``trt_profile_{min,opt,max}_shapes`` over the
  batch axis and every other dynamic dim, :func:`embodied.trt.profile_shapes`): the first
  call at a new batch size inside the profile against the same call without a profile,
  where ONNX Runtime rebuilds the engine for the new shape (onnxruntime issue 13851).

Where there is no CUDA device (no ``nvidia-smi``, or it lists no GPU) or this onnxruntime
build has no working ``CUDAExecutionProvider``, it skips: exit 0, one line saying why,
and a JSON report with ``"skipped": true`` and the reason. ``--providers cpu`` is a
self-check on any machine: the same code path with the CPU provider as the device (every
difference is 0.0). ``--install`` puts ``onnxruntime-gpu`` (in place of the CPU
``onnxruntime`` wheel: the two ship the same package) and TensorRT's Python wheel into the
running interpreter's environment with its own pip, then reruns itself; ``--dry-run`` only
prints that plan and how to go back.

    embodied bench gpu --dry-run                 # the install plan, nothing run
    embodied bench gpu --providers cpu --json /tmp/self.json
    embodied bench gpu --install                 # what `make gpu-check` runs (~2-6 min)

Detection and measurement need neither torch nor CuPy: ``nvidia-smi`` and ONNX Runtime only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.trt import (
    DimRange,
    InputShape,
    Profile,
    default_dim_ranges,
    parse_batch,
    parse_dims,
    profile_shapes,
)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
SHORT = {"cpu": CPU, "cuda": CUDA, "gpu": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}
LABEL = {CPU: "cpu", CUDA: "cuda", TENSORRT: "tensorrt"}

DEFAULT_JSON = Path("results/gpu/gpu_check.json")
MODELS_ROOT = Path(__file__).resolve().parent.parent / "embodied" / "models"

#: onnxruntime-gpu per CUDA major (checked in the wheels: 1.31.1 links libcudart.so.13 and
#: libnvinfer.so.10; 1.26.0 is the last PyPI build for CUDA 12, also TensorRT 10)
ORT_GPU_VERSION = {12: "1.26.0", 13: "1.31.1"}
#: TensorRT 10 (the onnxruntime-gpu wheels above link libnvinfer.so.10, not 11)
TENSORRT_VERSION = "10.16.1.11"
#: PyPI's tensorrt-cu1x-libs is a stub that fetches the libraries from NVIDIA's index
TENSORRT_INDEX = "https://pypi.nvidia.com"

#: parity tolerances against the CPU fp32 reference: float outputs (absolute), uint8 images
#: (levels), integer ids (fraction of elements that differ: a rounding flip changes an id)
TOLERANCE = {
    "fp32": {"float": 1e-2, "uint8": 4.0, "int": 0.02},
    "fp16": {"float": 5e-2, "uint8": 12.0, "int": 0.1},
}
#: why fp32 is not held to 1e-4: CUDA's provider (use_tf32) and TensorRT both run fp32
#: matrix products in TF32 by default on Ampere and later GPUs, as the robot's sessions do
TOLERANCE_NOTE = (
    "fp32 tolerances allow TF32 (on by default in ONNX Runtime's CUDA provider and in "
    "TensorRT on Ampere and later); integer outputs count the fraction of differing ids"
)
MODES = {  # warm-up, timed iterations, time budget (s)
    "quick": (10, 100, 420.0),
    "full": (50, 1000, 1800.0),
}
#: what dynamic non-batch dims (the instruction encoder's sequence) are profiled and fed with
DEFAULT_DIM: DimRange = (1, 16, 64)

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class SkipVariant(Exception):
    """A variant that cannot run here, for a stated reason (not a failure)."""


# --------------------------------------------------------------------------- detection


@dataclass
class GpuInfo:
    gpus: list[str] = field(default_factory=list)
    driver: str | None = None
    cuda: str | None = None  # the highest CUDA version the driver supports
    error: str | None = None

    @property
    def cuda_major(self) -> int | None:
        return int(self.cuda.split(".")[0]) if self.cuda else None


def detect_gpus(timeout: float = 20.0) -> GpuInfo:
    """NVIDIA GPUs through ``nvidia-smi`` (no torch, no CUDA runtime needed)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return GpuInfo(error="nvidia-smi not found (no NVIDIA driver)")
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=timeout)
        header = subprocess.run([smi], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return GpuInfo(error=f"nvidia-smi failed: {e}")
    gpus = [ln.strip() for ln in listed.stdout.splitlines() if ln.startswith("GPU ")]
    driver = re.search(r"Driver Version:\s*([\d.]+)", header.stdout)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header.stdout)
    err = None
    if not gpus:
        err = f"nvidia-smi -L lists no GPU ({(listed.stderr or listed.stdout).strip()[:200]})"
    return GpuInfo(gpus, driver and driver.group(1), cuda and cuda.group(1), err)


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def ort_state() -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "version": ort.__version__,
        "available_providers": list(ort.get_available_providers()),
        "dists": {n: _dist_version(n) for n in ("onnxruntime", "onnxruntime-gpu")},
        "tensorrt_python": _dist_version("tensorrt") or _tensorrt_version(),
    }


def _tensorrt_version() -> str | None:
    for name in (
        "tensorrt-cu13",
        "tensorrt-cu12",
        "tensorrt-cu13-bindings",
        "tensorrt-cu12-bindings",
    ):
        v = _dist_version(name)
        if v:
            return f"{name} {v}"
    return None


def preload_gpu_libraries() -> list[str]:
    """Load the CUDA/cuDNN libraries of the nvidia-* wheels (``onnxruntime.preload_dlls``)
    and TensorRT's (``import tensorrt``) into this process, so the providers find them
    without LD_LIBRARY_PATH. Returns notes on what failed (nothing fatal)."""
    import onnxruntime as ort

    notes = []
    try:
        importlib.import_module("tensorrt")
    except ImportError:
        pass  # absent: the TensorRT provider's own probe says so
    except Exception as e:  # a wheel whose libraries are missing
        notes.append(f"import tensorrt failed: {type(e).__name__}: {e}")
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None and CUDA in ort.get_available_providers():
        try:
            preload()
        except Exception as e:
            notes.append(f"onnxruntime.preload_dlls failed: {type(e).__name__}: {e}")
    return notes


# --------------------------------------------------------------------------- install plan


@dataclass(frozen=True)
class Step:
    argv: list[str]
    why: str
    on_fail: str = "abort"  # abort | rollback | continue
    rollback: bool = False  # run only after a failed "rollback" step

    def line(self) -> str:
        import shlex

        return shlex.join(self.argv)


def install_plan(
    python: str,
    cuda_major: int,
    *,
    ort_cpu_version: str | None,
    wheelhouse: str,
    ort_gpu_version: str | None = None,
    tensorrt_version: str = TENSORRT_VERSION,
    tensorrt_index: str = TENSORRT_INDEX,
    cuda_wheels: bool = True,
    tensorrt: bool = True,
    ort_gpu: bool = True,
    offline: bool = False,
) -> list[Step]:
    """The pip commands that put onnxruntime-gpu and TensorRT into ``python``'s environment.

    The GPU wheel and the CPU wheel to go back to are downloaded first, so an unreachable
    index leaves the environment untouched; only then is the CPU ``onnxruntime``
    uninstalled (both wheels write the same ``onnxruntime`` package, so they cannot be
    installed side by side) and the GPU one installed from the downloads, with the CPU one
    put back if that fails. TensorRT comes last, from NVIDIA's index (its PyPI package is a
    stub that downloads from there); its failure leaves the CUDA measurements possible.
    ``offline``: ``wheelhouse`` already holds the wheels (a machine without an index), so
    nothing is downloaded and everything is installed from there.
    """
    if cuda_major not in ORT_GPU_VERSION:
        raise ValueError(f"CUDA {cuda_major}: expected one of {sorted(ORT_GPU_VERSION)}")
    pip = [python, "-m", "pip"]
    ver = ort_gpu_version or ORT_GPU_VERSION[cuda_major]
    req = f"onnxruntime-gpu{'[cuda,cudnn]' if cuda_wheels else ''}=={ver}"
    steps: list[Step] = []
    net = ["--retries", "1", "--timeout", "30"]
    if ort_gpu and not offline:
        steps.append(
            Step(
                [*pip, "download", *net, "--dest", wheelhouse, req],
                f"fetch {req} with its CUDA {cuda_major} / cuDNN wheels (nothing changes yet)",
            )
        )
    if ort_gpu:
        if ort_cpu_version and not offline:
            steps.append(
                Step(
                    [
                        *pip,
                        "download",
                        *net,
                        "--no-deps",
                        "--dest",
                        wheelhouse,
                        f"onnxruntime=={ort_cpu_version}",
                    ],
                    "fetch the CPU wheel in use, to put back if the GPU one fails",
                )
            )
        steps.append(
            Step(
                [*pip, "uninstall", "-y", "onnxruntime", "onnxruntime-gpu"],
                "remove the CPU onnxruntime (onnxruntime-gpu ships the same package)",
            )
        )
        steps.append(
            Step(
                [*pip, "install", "--no-index", "--find-links", wheelhouse, req],
                f"install {req} from the downloads",
                on_fail="rollback",
            )
        )
        if ort_cpu_version:
            steps.append(
                Step(
                    [
                        *pip,
                        "install",
                        "--no-index",
                        "--find-links",
                        wheelhouse,
                        "--no-deps",
                        f"onnxruntime=={ort_cpu_version}",
                    ],
                    "put the CPU onnxruntime back (only if the install above failed)",
                    rollback=True,
                )
            )
    if tensorrt and offline:
        trt_req = f"tensorrt-cu{cuda_major}=={tensorrt_version}"
        steps.append(
            Step(
                [*pip, "install", "--no-index", "--find-links", wheelhouse, trt_req],
                f"TensorRT's Python API and libraries ({trt_req}, from {wheelhouse})",
                on_fail="continue",
            )
        )
    elif tensorrt:
        trt_req = f"tensorrt-cu{cuda_major}=={tensorrt_version}"
        steps.append(
            Step(
                [
                    *pip,
                    "install",
                    "--retries",
                    "1",
                    "--timeout",
                    "60",
                    "--extra-index-url",
                    tensorrt_index,
                    trt_req,
                ],
                f"TensorRT's Python API and libraries ({trt_req}, from {tensorrt_index}; no trtexec)",
                on_fail="continue",
            )
        )
    return steps


def revert_command(python: str, cuda_major: int, ort_cpu_version: str | None) -> str:
    """How to go back to the CPU wheel the project installs."""
    trt = " ".join(f"tensorrt-cu{cuda_major}{s}" for s in ("", "-libs", "-bindings"))
    cpu = f"onnxruntime=={ort_cpu_version}" if ort_cpu_version else "onnxruntime"
    return f"{python} -m pip uninstall -y onnxruntime-gpu {trt} && {python} -m pip install {cpu}"


#: what a failed pip run's cause line looks like, most telling first (pip ends with hints)
_PIP_CAUSES = tuple(
    re.compile(p)
    for p in (
        r"urlopen error|Failed to resolve|Name or service not known|name resolution",
        r"No matching distribution|Could not find a version",
        r"HTTPError|ConnectionError|timed out",
        r"^\s*ERROR: |error: ",
    )
)


def pip_cause(lines: Sequence[str]) -> str:
    """The line of pip's output that says why it failed ('' when none does)."""
    for pat in _PIP_CAUSES:
        hit = next((ln.strip() for ln in lines if pat.search(ln)), None)
        if hit:
            return hit
    return ""


def run_install(steps: Sequence[Step], log: Any) -> dict[str, Any]:
    """Run a plan; stops at a failed ``abort`` step, rolls back after a failed ``rollback``."""
    done: list[dict[str, Any]] = []
    failed_rollback_step = False
    ok = True
    ort_ok = True
    trt_ok = True
    for step in steps:
        if step.rollback and not failed_rollback_step:
            continue
        log(f"install: {step.why}\n    $ {step.line()}")
        t0 = time.perf_counter()
        proc = subprocess.run(step.argv, capture_output=True, text=True)
        out = (proc.stdout + proc.stderr).strip().splitlines()
        rec = {
            "argv": step.argv,
            "why": step.why,
            "rc": proc.returncode,
            "s": round(time.perf_counter() - t0, 1),
            "tail": out[-6:],
        }
        done.append(rec)
        if proc.returncode == 0:
            continue
        # pip ends with generic hints; the line that says what went wrong comes earlier
        cause = pip_cause(out)
        rec["cause"] = cause[:300]
        log(f"install: failed (exit {proc.returncode}): {cause[:300] or ' | '.join(out[-3:])}")
        if step.on_fail == "continue":
            trt_ok = False
            continue
        if step.on_fail == "rollback":
            failed_rollback_step = True
            ok = ort_ok = False
            continue
        ok = ort_ok = False
        break
    has_ort = any(s.on_fail == "rollback" for s in steps)
    has_trt = any(s.on_fail == "continue" for s in steps)
    return {
        "steps": done,
        "ok": ok and trt_ok,
        "onnxruntime_gpu": ort_ok if has_ort else None,  # None: not attempted
        "tensorrt": trt_ok if has_trt else None,
    }


# --------------------------------------------------------------------------- models, feeds


@dataclass
class InputInfo:
    name: str
    shape: list[int | str | None]
    type: str


@dataclass
class ModelEntry:
    path: Path
    label: str
    kind: str  # encoder | decoder | policy | belief | instruction | other
    inputs: list[InputInfo]
    outputs: list[str]
    vocab: int = 1000
    dims: dict[str, DimRange] = field(default_factory=dict)

    @property
    def shapes(self) -> list[InputShape]:
        return [InputShape(i.name, tuple(i.shape)) for i in self.inputs]

    @property
    def takes_budget(self) -> bool:
        return any(i.name == "budget" for i in self.inputs)

    @property
    def k_max(self) -> int | None:
        for i in self.inputs:
            if i.name == "token_ids" and len(i.shape) == 2 and isinstance(i.shape[1], int):
                return i.shape[1]
        return None


def _kind(path: Path) -> str:
    stem = path.stem
    for key, kind in (
        ("encoder", "encoder"),
        ("decoder", "decoder"),
        ("policy", "policy"),
        ("belief", "belief"),
        ("instruction", "instruction"),
    ):
        if key in stem:
            return "instruction" if stem.startswith("instruction") else kind
    return "other"


def _vocab(path: Path) -> int:
    d = path.parent
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if (d / "policy.json").is_file():
            return int(json.loads((d / "policy.json").read_text())["vocab"])
        if (d / "tokenizer.json").is_file():
            return int(np.prod(json.loads((d / "tokenizer.json").read_text())["levels"]))
    return 1000


def discover_models(
    paths: Sequence[Path], dims: Mapping[str, DimRange] | None = None
) -> list[ModelEntry]:
    """Every ``*.onnx`` under ``paths`` (files or directories) but ``*_fp16.onnx`` (a
    precision variant, run as such), with its input names, shapes and types."""
    import onnxruntime as ort

    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*.onnx")) if p.is_dir() else [p]
    out = []
    for f in files:
        if f.stem.endswith("_fp16"):
            continue
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        s = ort.InferenceSession(str(f), so, providers=[CPU])
        inputs = [InputInfo(i.name, list(i.shape), i.type) for i in s.get_inputs()]
        full = f.resolve()
        label = (
            str(full.relative_to(MODELS_ROOT))
            if full.is_relative_to(MODELS_ROOT)
            else f"{f.parent.name}/{f.name}"
        )
        entry = ModelEntry(
            path=f,
            label=label,
            kind=_kind(f),
            inputs=inputs,
            outputs=[o.name for o in s.get_outputs()],
            vocab=_vocab(f),
        )
        entry.dims = {**default_dim_ranges(entry.shapes, DEFAULT_DIM), **(dims or {})}
        out.append(entry)
    return out


def make_feed(
    model: ModelEntry, batch: int, budgets: Sequence[int] | None, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs for ``model`` at ``batch`` rows (dynamic dims at their opt size), the ones the
    run time feeds: token ids zero past each row's budget, unit-norm instruction
    embeddings, proprioception in [-1, 1], uint8 images, all-ones attention masks."""
    k_max = model.k_max
    ks = np.resize(np.asarray(budgets or [k_max or 1], np.int64), batch)
    feed: dict[str, np.ndarray] = {}
    for inp, shp in zip(model.inputs, model.shapes, strict=True):
        shape = shp.resolve(batch, model.dims, 1)
        dtype = _DTYPES.get(inp.type, np.float32)
        name = inp.name.lower()
        if name == "budget":
            v = ks.reshape(shape)
        elif name in ("token_ids", "input_ids"):
            v = rng.integers(0, max(model.vocab, 1), shape)
            if name == "token_ids" and model.takes_budget and len(shape) == 2:
                v[np.arange(shape[1])[None, :] >= ks[:, None]] = 0
        elif "mask" in name:
            v = np.ones(shape)
        elif name == "token_type_ids":
            v = np.zeros(shape)
        elif name == "instruction":
            v = rng.standard_normal(shape)
            v /= np.linalg.norm(v, axis=-1, keepdims=True)
        elif name == "proprio":
            v = rng.uniform(-1, 1, shape)
        elif dtype == np.uint8:
            v = rng.integers(0, 256, shape)
        elif np.issubdtype(dtype, np.floating):
            v = rng.standard_normal(shape)
        else:
            v = np.zeros(shape)
        feed[inp.name] = np.ascontiguousarray(v.astype(dtype))
    return feed


def compare(
    ref: Sequence[np.ndarray], got: Sequence[np.ndarray], names: Sequence[str], precision: str
) -> dict[str, Any]:
    """Per output: max |got - ref| and the fraction of differing elements; ``ok`` against
    :data:`TOLERANCE` (integer outputs by that fraction, the rest by the difference)."""
    tol = TOLERANCE["fp16" if precision != "fp32" else "fp32"]
    per: dict[str, Any] = {}
    ok = True
    worst = 0.0
    for name, r, g in zip(names, ref, got, strict=True):
        if r.shape != g.shape:
            per[name] = {"error": f"shape {g.shape} != reference {r.shape}"}
            ok = False
            continue
        d = np.abs(g.astype(np.float64) - r.astype(np.float64))
        diff = float(d.max()) if d.size else 0.0
        frac = float(np.mean(d > 0)) if d.size else 0.0
        if not np.all(np.isfinite(g.astype(np.float64))):
            diff = float("inf")
        kind = "uint8" if r.dtype == np.uint8 else ("int" if r.dtype.kind in "iu" else "float")
        good = (frac if kind == "int" else diff) <= tol[kind]
        per[name] = {"max_abs_diff": diff, "mismatch_frac": frac, "kind": kind, "ok": bool(good)}
        ok &= bool(good)
        worst = max(worst, diff)
    return {"max_abs_diff": worst, "ok": ok, "outputs": per}


def fp16_copy(src: Path, dst: Path) -> tuple[Path | None, str]:
    """An fp16 copy of ``src`` with fp32 I/O (what ``policy_fp16.onnx`` is: the export's
    ``policies.onnx_export.convert_fp16``, i.e. ONNX Runtime's converter with
    ``keep_io_types`` and the nodes put back in topological order), without torch;
    ``(None, why)`` where ``onnx`` is not installed."""
    try:
        import warnings

        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as e:
        return None, f"no policy_fp16.onnx and no onnx to make one ({e})"
    model = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True)
    graph = half.graph  # the converter appends its input casts last: sort, as the export does
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(x in known for x in n.input)]
        if not ready:
            return None, "fp16 conversion left a graph that cannot be ordered"
        for n in ready:
            known.update(n.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(ordered)
    onnx.save(half, str(dst))
    return dst, "made here: onnxruntime.transformers.float16, keep_io_types (as the export)"


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Variant:
    name: str  # e.g. cuda-fp32, tensorrt-fp16, cuda-policy_fp16
    provider: str
    precision: str  # fp32 | fp16
    file: Path
    trt_fp16: bool = False


def provider_chain(
    provider: str, trt_options: Mapping[str, str] | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    if provider == TENSORRT:
        return [TENSORRT, CUDA, CPU], [dict(trt_options or {}), {"device_id": "0"}, {}]
    if provider == CUDA:
        return [CUDA, CPU], [{"device_id": "0"}, {}]
    return [CPU], [{}]


def open_session(
    file: Path,
    provider: str,
    *,
    trt_options: Mapping[str, str] | None = None,
    fp16_file: bool = False,
    threads: int = 1,
) -> tuple[Any, float]:
    """An ONNX Runtime session on ``provider`` (its fallbacks after it), with the session
    options the robot uses (:func:`embodied.providers.session_options`); raises SkipVariant
    when ONNX Runtime runs it elsewhere (the provider failed to load)."""
    import onnxruntime as ort

    from embodied.providers import FP16_CPU_DISABLED_OPTIMIZERS, session_options

    names, opts = provider_chain(provider, trt_options)
    kw: dict[str, Any] = {}
    if fp16_file and provider == CPU:
        kw["disabled_optimizers"] = list(FP16_CPU_DISABLED_OPTIMIZERS)
    t0 = time.perf_counter()
    sess = ort.InferenceSession(
        str(file),
        sess_options=session_options(threads),
        providers=names,
        provider_options=opts,
        **kw,
    )
    took = time.perf_counter() - t0
    active = sess.get_providers()
    if not active or active[0] != provider:
        raise SkipVariant(f"{provider} did not start; ONNX Runtime runs the model on {active}")
    return sess, took


def run(sess: Any, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    from embodied.providers import run_arrays

    return run_arrays(sess, None, feed)


def timed_run(sess: Any, feed: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], float]:
    t0 = time.perf_counter()
    out = run(sess, feed)
    return out, time.perf_counter() - t0


def latency(sess: Any, feed: Mapping[str, np.ndarray], warmup: int, iters: int) -> dict[str, float]:
    for _ in range(warmup):
        sess.run(None, feed)
    ns = np.empty(iters, np.int64)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        ns[i] = time.perf_counter_ns() - t0
    ms = ns / 1e6
    p50, p99 = np.percentile(ms, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "mean_ms": float(ms.mean()), "iters": iters}


def trt_options(
    cache_dir: Path, *, fp16: bool, profile: Profile | None, engine_cache: bool = True
) -> dict[str, str]:
    """The robot's TensorRT options (:class:`embodied.providers.TensorRTOptions`) plus the
    explicit profile."""
    from embodied.providers import TensorRTOptions

    opts = TensorRTOptions(fp16=fp16, engine_cache=engine_cache, engine_cache_path=cache_dir)
    out = opts.provider_options()
    if profile is not None:
        out.update(profile.ort_options())
    return out


# --------------------------------------------------------------------------- the run


@dataclass
class Ctx:
    args: argparse.Namespace
    t0: float
    tmp: Path
    warmup: int
    iters: int
    budget_s: float
    batch: DimRange
    budgets: list[int]
    failures: list[str] = field(default_factory=list)

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f}s] {msg}", flush=True)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


def _cache_stats(d: Path) -> dict[str, Any]:
    files = [p for p in d.rglob("*") if p.is_file()] if d.is_dir() else []
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "engines": sorted(p.name for p in files if p.suffix == ".engine")[:8],
    }


def measure_variant(
    ctx: Ctx, model: ModelEntry, v: Variant, ref: dict[str, Any], profile: Profile
) -> dict[str, Any]:
    """Parity against the CPU reference and latency per budget for one variant; TensorRT
    fp32 also checks its engine cache with a second session."""
    rec: dict[str, Any] = {
        "variant": v.name,
        "provider": v.provider,
        "precision": v.precision,
        "file": v.file.name,
        "trt_fp16": v.trt_fp16,
    }
    cache = ctx.tmp / "trt" / f"{model.label.replace('/', '__')}.{v.name}"
    opts = trt_options(cache, fp16=v.trt_fp16, profile=profile) if v.provider == TENSORRT else None
    try:
        try:
            sess, create_s = open_session(
                v.file, v.provider, trt_options=opts, fp16_file=v.file.stem.endswith("_fp16")
            )
            got, first_s = timed_run(sess, ref["feed"])
        except SkipVariant:
            raise
        except Exception as e:
            # ONNX Runtime refuses an explicit profile when TensorRT takes only parts of the
            # graph (their inputs are inner tensors the profile does not name): retry without
            if v.provider != TENSORRT or "profile" not in str(e).lower():
                raise
            rec["profile_note"] = f"explicit profile refused, built without: {str(e)[:200]}"
            opts = trt_options(cache, fp16=v.trt_fp16, profile=None)
            sess, create_s = open_session(v.file, v.provider, trt_options=opts)
            got, first_s = timed_run(sess, ref["feed"])
        rec["session_s"], rec["first_run_s"] = create_s, first_s
        rec["start_s"] = create_s + first_s
        rec["providers_active"] = sess.get_providers()
        rec["parity"] = compare(ref["outputs"], got, model.outputs, v.precision)
        if not rec["parity"]["ok"]:
            ctx.failures.append(f"{model.label} {v.name}: parity beyond tolerance")
        rec["latency"] = latency_rows(ctx, model, sess)
        del sess
        if v.provider == TENSORRT and not v.trt_fp16 and opts is not None:
            rec["engine_cache"] = engine_cache_check(v, opts, ref["feed"], rec["start_s"], cache)
    except SkipVariant as e:
        rec["skipped"] = str(e)
    except Exception as e:  # an error of one variant must not lose the others' numbers
        rec["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        ctx.failures.append(f"{model.label} {v.name}: {rec['error'][:120]}")
    return rec


def latency_rows(ctx: Ctx, model: ModelEntry, sess: Any) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    ks: list[int | None] = list(ctx.budgets) if model.takes_budget else [None]
    rows = []
    for k in ks:
        if k is not None and model.k_max is not None and k > model.k_max:
            continue
        feed = make_feed(model, 1, None if k is None else [k], rng)
        rows.append({"budget": k, **latency(sess, feed, ctx.warmup, ctx.iters)})
    return rows


def engine_cache_check(
    v: Variant,
    opts: Mapping[str, str],
    feed: Mapping[str, np.ndarray],
    first_start_s: float,
    cache: Path,
) -> dict[str, Any]:
    before = _cache_stats(cache)
    sess, create_s = open_session(v.file, v.provider, trt_options=opts)
    _, first_s = timed_run(sess, feed)
    second = create_s + first_s
    return {
        "first_start_s": first_start_s,
        "second_start_s": second,
        "second_session_s": create_s,
        "second_first_run_s": first_s,
        "speedup": first_start_s / second if second > 0 else None,
        "cache": before,
        "reused": bool(before["files"] and second < 0.5 * first_start_s),
    }


def profile_check(ctx: Ctx, model: ModelEntry, file: Path, profile: Profile) -> dict[str, Any]:
    """The first call at a new batch size inside the explicit profile, against the same
    call on a session without one (ONNX Runtime then rebuilds the engine for the shape)."""
    rng = np.random.default_rng(2)
    small, big = ctx.batch[0], ctx.batch[2]
    f_small = make_feed(model, small, ctx.budgets, rng)
    f_big = make_feed(model, big, ctx.budgets, rng)
    f_out = make_feed(model, big * 2, ctx.budgets, rng)
    out: dict[str, Any] = {"profile": profile.shape_strings(), "batches": [small, big, big * 2]}
    for label, prof in (("explicit", profile), ("implicit", None)):
        # the explicit session loads the tensorrt-fp32 variant's cached engine (same options);
        # the one without a profile builds at the first call and again at the new batch size
        cache = ctx.tmp / "trt" / f"{model.label.replace('/', '__')}.tensorrt-fp32"
        opts = trt_options(cache, fp16=False, profile=prof, engine_cache=prof is not None)
        try:
            sess, create_s = open_session(file, TENSORRT, trt_options=opts)
            _, first_small = timed_run(sess, f_small)
            timed_run(sess, f_small)
            _, first_big = timed_run(sess, f_big)
            _, steady_big = timed_run(sess, f_big)
            rec: dict[str, Any] = {
                "session_s": create_s,
                "first_small_s": first_small,
                "first_new_batch_ms": first_big * 1e3,
                "steady_new_batch_ms": steady_big * 1e3,
            }
            try:
                _, outside = timed_run(sess, f_out)
                rec["outside_profile_ms"] = outside * 1e3
            except Exception as e:
                rec["outside_profile_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            out[label] = rec
            del sess
        except Exception as e:
            out[label] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    e, i = out.get("explicit", {}), out.get("implicit", {})
    if "first_new_batch_ms" in e and "first_new_batch_ms" in i:
        out["rebuild_avoided"] = bool(e["first_new_batch_ms"] * 3 < i["first_new_batch_ms"])
    return out


def _priority(m: ModelEntry) -> tuple[int, int, str]:
    order = {"policy": 0, "decoder": 1, "encoder": 2, "belief": 3, "instruction": 4}
    return (order.get(m.kind, 5), 0 if "task" in m.label else 1, m.label)


def _profile_phase(
    ctx: Ctx, m: ModelEntry, refs: Mapping[str, dict[str, Any]], report: dict[str, Any]
) -> None:
    if ctx.left() > 60:
        ctx.log(f"{m.label:42s} TensorRT profile check (explicit vs none) ...")
        rec = {"model": m.label, **profile_check(ctx, m, m.path, refs[m.label]["profile"])}
        report["tensorrt"]["profile_check"] = rec
        ctx.log(f"{m.label:42s} {_profile_line(rec)}")
    else:
        report["tensorrt"]["profile_check"] = {"skipped": "time budget spent"}


def _profile_line(pc: Mapping[str, Any]) -> str:
    ex, im = pc.get("explicit", {}), pc.get("implicit", {})
    nan = float("nan")
    return (
        f"profile batch {pc['batches'][0]} -> {pc['batches'][1]}: first call "
        f"{ex.get('first_new_batch_ms', nan):.1f} ms with the explicit profile, "
        f"{im.get('first_new_batch_ms', nan):.1f} ms without (rebuild avoided: "
        f"{pc.get('rebuild_avoided')}){' ' + ex['error'][:80] if 'error' in ex else ''}"
        f"{' ' + im['error'][:80] if 'error' in im else ''}"
    )


def benchmark(
    ctx: Ctx, models: list[ModelEntry], providers: list[str], report: dict[str, Any]
) -> None:
    args = ctx.args
    self_check = providers == [CPU]
    trt_skip = report.get("tensorrt", {}).get("skipped")
    trt_models: list[ModelEntry] = []
    if TENSORRT in providers and not trt_skip:
        if args.full:
            trt_models = sorted(models, key=_priority)
        else:  # one model of each kind (the others share its architecture)
            seen: set[str] = set()
            for m in sorted(models, key=_priority):
                if m.kind not in seen:
                    seen.add(m.kind)
                    trt_models.append(m)
    report["tensorrt"]["models"] = [m.label for m in trt_models]
    refs: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    # phase 1: the CPU reference and the CUDA (or, self-check, CPU) variants, every model
    for m in models:
        rng = np.random.default_rng(0)
        prof = profile_shapes(m.shapes, ctx.batch, m.dims)
        entry: dict[str, Any] = {
            "model": m.label,
            "kind": m.kind,
            "file": str(m.path),
            "inputs": [asdict(i) for i in m.inputs],
            "outputs": m.outputs,
            "dims": m.dims,
            "profile": prof.shape_strings(),
            "variants": [],
        }
        results[m.label] = entry
        feed = make_feed(m, ctx.batch[2], ctx.budgets, rng)
        try:
            sess, create_s = open_session(m.path, CPU)
            outputs, first_s = timed_run(sess, feed)
            entry["reference"] = {
                "provider": CPU,
                "session_s": create_s,
                "first_run_s": first_s,
                "latency": latency_rows(ctx, m, sess),
            }
            del sess
        except Exception as e:
            entry["error"] = f"CPU reference: {type(e).__name__}: {str(e)[:300]}"
            ctx.failures.append(f"{m.label}: {entry['error'][:120]}")
            ctx.log(f"{m.label:42s} {entry['error'][:120]}")
            continue
        refs[m.label] = {"feed": feed, "outputs": outputs, "profile": prof}
        fp16 = None
        if m.kind == "policy" and not self_check:
            fp16 = m.path.with_name(m.path.stem + "_fp16.onnx")
            if not fp16.is_file():
                try:
                    dst = ctx.tmp / f"{m.label.replace('/', '__')}_fp16.onnx"
                    fp16, entry["policy_fp16"] = fp16_copy(m.path, dst)
                except Exception as e:
                    fp16, entry["policy_fp16"] = None, f"fp16 conversion failed: {e}"
        variants = [Variant("cpu-fp32", CPU, "fp32", m.path)] if self_check else []
        if CUDA in providers:
            variants.append(Variant("cuda-fp32", CUDA, "fp32", m.path))
            if fp16 is not None:
                variants.append(Variant("cuda-policy_fp16", CUDA, "fp16", fp16))
        entry["_fp16"] = fp16
        for v in variants:
            rec = measure_variant(ctx, m, v, refs[m.label], prof)
            entry["variants"].append(rec)
            ctx.log(f"{m.label:42s} {_brief(rec)}")
    # phase 2: TensorRT on the chosen models, most important first, inside the time budget;
    # after the first (the policy), the explicit profile against none on it
    trt_models = [m for m in trt_models if m.label in refs]
    report["tensorrt"]["models"] = [m.label for m in trt_models]
    for n, m in enumerate(trt_models):
        if n == 1:
            _profile_phase(ctx, trt_models[0], refs, report)
        entry, ref = results[m.label], refs[m.label]
        fp16 = entry["_fp16"]
        variants = [
            Variant("tensorrt-fp32", TENSORRT, "fp32", m.path),
            Variant("tensorrt-fp16", TENSORRT, "fp16", m.path, trt_fp16=True),
        ]
        if fp16 is not None:
            variants.append(Variant("tensorrt-policy_fp16", TENSORRT, "fp16", fp16, True))
        for v in variants:
            if ctx.left() < 45:
                entry["variants"].append({"variant": v.name, "skipped": "time budget spent"})
                ctx.log(f"{m.label:42s} {v.name}: skipped (time budget)")
                continue
            ctx.log(f"{m.label:42s} {v.name}: building the engine ...")
            rec = measure_variant(ctx, m, v, ref, ref["profile"])
            entry["variants"].append(rec)
            ctx.log(f"{m.label:42s} {_brief(rec)}")
    if len(trt_models) == 1:
        _profile_phase(ctx, trt_models[0], refs, report)
    for entry in results.values():
        entry.pop("_fp16", None)
    report["models"] = list(results.values())


def _brief(rec: dict[str, Any]) -> str:
    if "skipped" in rec:
        return f"{rec['variant']}: skipped ({rec['skipped']})"
    if "error" in rec:
        return f"{rec['variant']}: ERROR {rec['error'][:100]}"
    lat = " ".join(
        f"k={r['budget']}:{r['p50_ms']:.3f}/{r['p99_ms']:.3f}"
        if r["budget"] is not None
        else f"{r['p50_ms']:.3f}/{r['p99_ms']:.3f}"
        for r in rec["latency"]
    )
    par = rec["parity"]
    cache = ""
    if "engine_cache" in rec:
        c = rec["engine_cache"]
        cache = f", cache {c['first_start_s']:.1f}s -> {c['second_start_s']:.2f}s"
    return (
        f"{rec['variant']}: start {rec['start_s']:.2f}s, max|d| {par['max_abs_diff']:.3g}"
        f" {'ok' if par['ok'] else 'BEYOND TOL'}, p50/p99 ms {lat}{cache}"
    )


def summary_table(report: dict[str, Any]) -> list[str]:
    """The compact table printed at the end (one line per model and variant)."""
    lines = [
        f"{'model':40s} {'variant':22s} {'start s':>8s} {'max|d|':>9s} {'ok':>4s}  p50/p99 ms per budget"
    ]
    for e in report.get("models", []):
        if "reference" not in e:
            lines.append(f"{e['model']:40s} {e.get('error', '')[:80]}")
            continue
        ref = e["reference"]
        rows = [
            {
                "variant": "cpu (reference)",
                "start_s": ref["session_s"] + ref["first_run_s"],
                "latency": ref["latency"],
            },
            *e["variants"],
        ]
        for i, r in enumerate(rows):
            name = e["model"] if i == 0 else ""
            if "latency" not in r:
                why = r.get("skipped") or r.get("error", "")
                lines.append(
                    f"{name:40s} {r['variant']:22s} {'-':>8s} {'-':>9s} {'-':>4s}  {why[:60]}"
                )
                continue
            lat = " ".join(
                (f"{r2['budget']}:" if r2["budget"] is not None else "")
                + f"{r2['p50_ms']:.3f}/{r2['p99_ms']:.3f}"
                for r2 in r["latency"]
            )
            par = r.get("parity")
            d = f"{par['max_abs_diff']:.2e}" if par else "-"
            ok = ("ok" if par["ok"] else "NO") if par else "-"
            lines.append(
                f"{name:40s} {r['variant']:22s} {r['start_s']:8.2f} {d:>9s} {ok:>4s}  {lat}"
            )
    for e in report.get("models", []):
        for r in e["variants"]:
            c = r.get("engine_cache")
            if c:
                sp = c["speedup"]
                lines.append(
                    f"engine cache {e['model']} {r['variant']}: first start {c['first_start_s']:.2f} s, "
                    f"second {c['second_start_s']:.2f} s ({sp and f'{sp:.1f}x'}; "
                    f"{c['cache']['files']} cache files, reused={c['reused']})"
                )
    pc = report.get("tensorrt", {}).get("profile_check")
    if pc and "explicit" in pc:
        lines.append(f"{pc['model']} {_profile_line(pc)}")
    if report.get("tensorrt", {}).get("skipped"):
        lines.append(f"TensorRT: skipped: {report['tensorrt']['skipped']}")
    return lines


# --------------------------------------------------------------------------- main


def _write(path: Path | None, report: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {path}", flush=True)


def _skip(report: dict[str, Any], reason: str, args: argparse.Namespace) -> int:
    report["skipped"], report["reason"] = True, reason
    print(f"embodied bench gpu: skipped: {reason}", flush=True)
    _write(args.json, report)
    return 3 if args.require_gpu else 0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="embodied bench gpu", description=(__doc__ or "").split("\n")[0]
    )
    ap.add_argument(
        "--providers",
        default="cuda,tensorrt",
        help="compared against the CPU: cuda,tensorrt (default); `cpu` alone is "
        "the self-check (CPU against CPU, any machine)",
    )
    ap.add_argument(
        "--models",
        nargs="+",
        type=Path,
        default=[MODELS_ROOT],
        help="ONNX files or directories (default: every shipped model)",
    )
    ap.add_argument("--budgets", default="1,4,16,64", help="token budgets timed (1,4,16,64)")
    ap.add_argument(
        "--batch",
        default="1:1:8",
        help="TensorRT profile over the batch, min:opt:max; parity runs at max",
    )
    ap.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=MIN:OPT:MAX",
        help=f"range of another dynamic dim (default {DEFAULT_DIM} each)",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        default=True,
        help="(default) fewer iterations, TensorRT on one model per kind, ~7 min max",
    )
    mode.add_argument(
        "--full", action="store_true", help="more iterations, TensorRT on every model"
    )
    ap.add_argument("--iters", type=int, default=None, help="timed runs per budget")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs first")
    ap.add_argument(
        "--time-budget-s",
        type=float,
        default=None,
        help="start no TensorRT build after this (quick 420, full 1800)",
    )
    ap.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"report (default {DEFAULT_JSON})"
    )
    ap.add_argument(
        "--install",
        action="store_true",
        help="install onnxruntime-gpu (replacing onnxruntime) and TensorRT into this "
        "interpreter's environment where a GPU is present, then run",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the install plan and stop")
    ap.add_argument(
        "--cuda",
        type=int,
        choices=sorted(ORT_GPU_VERSION),
        default=None,
        help="CUDA major of the wheels (default: what the driver supports, else 12)",
    )
    ap.add_argument("--ort-gpu-version", default=None, help="onnxruntime-gpu version to install")
    ap.add_argument("--tensorrt-version", default=TENSORRT_VERSION)
    ap.add_argument(
        "--wheelhouse",
        type=Path,
        default=None,
        help="install from the wheels in this directory, no index (a machine offline)",
    )
    ap.add_argument("--tensorrt-index", default=TENSORRT_INDEX)
    ap.add_argument(
        "--no-tensorrt-install", action="store_true", help="install onnxruntime-gpu only"
    )
    ap.add_argument(
        "--system-cuda", action="store_true", help="use the host's CUDA/cuDNN (no nvidia-* wheels)"
    )
    ap.add_argument("--require-gpu", action="store_true", help="exit 3 instead of 0 when skipped")
    ap.add_argument(
        "--strict", action="store_true", help="exit 1 when a parity is beyond tolerance"
    )
    ap.add_argument("--install-report", type=Path, default=None, help=argparse.SUPPRESS)
    return ap


def _drop(wheelhouse: str, offline: bool) -> None:
    if not offline:  # a temporary download directory, not the user's wheels
        shutil.rmtree(wheelhouse, ignore_errors=True)


def _strip_install(argv: Sequence[str]) -> list[str]:
    return [a for a in argv if a != "--install"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        providers = [SHORT[p.strip().lower()] for p in args.providers.split(",") if p.strip()]
        batch = parse_batch(args.batch)
        dims = parse_dims(args.dim)
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except (KeyError, ValueError) as e:
        print(f"embodied bench gpu: bad option: {e}", file=sys.stderr)
        return 2
    mode = "full" if args.full else "quick"
    warmup, iters, budget_s = MODES[mode]
    report: dict[str, Any] = {
        "command": "embodied bench gpu " + " ".join(argv),
        "format": 1,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "self-check" if providers == [CPU] else mode,
        "providers": providers,
        "skipped": False,
        "reason": None,
        "host": {
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "install": None,
        "tensorrt": {},
        "models": [],
        "failures": [],
        "notes": [TOLERANCE_NOTE],
    }
    if args.install_report and args.install_report.is_file():
        report["install"] = json.loads(args.install_report.read_text())

    gpu = None if providers == [CPU] and not args.dry_run else detect_gpus()
    if gpu is not None:
        report["host"]["gpu"] = asdict(gpu)
    if args.dry_run or (args.install and report["install"] is None):
        cuda_major = args.cuda or (gpu and gpu.cuda_major) or 12
        cuda_major = cuda_major if cuda_major in ORT_GPU_VERSION else max(ORT_GPU_VERSION)
        cpu_ver = _dist_version("onnxruntime")
        gpu_ver = _dist_version("onnxruntime-gpu")
        want = args.ort_gpu_version or ORT_GPU_VERSION[cuda_major]
        ort_needed = not (gpu_ver == want and cpu_ver is None)
        from embodied.trt import tensorrt_import_error

        trt_needed = not args.no_tensorrt_install and tensorrt_import_error() is not None
        offline = args.wheelhouse is not None
        wheelhouse = str(args.wheelhouse) if offline else tempfile.mkdtemp(prefix="embodied-gpu-")
        plan = install_plan(
            sys.executable,
            cuda_major,
            ort_cpu_version=cpu_ver,
            wheelhouse=wheelhouse,
            ort_gpu_version=args.ort_gpu_version,
            tensorrt_version=args.tensorrt_version,
            tensorrt_index=args.tensorrt_index,
            cuda_wheels=not args.system_cuda,
            tensorrt=trt_needed,
            ort_gpu=ort_needed,
            offline=offline,
        )
        revert = revert_command(sys.executable, cuda_major, cpu_ver)
        inst: dict[str, Any] = {
            "cuda_major": cuda_major,
            "plan": [s.line() for s in plan],
            "why": [s.why for s in plan],
            "revert": revert,
            "dry_run": bool(args.dry_run),
        }
        if args.dry_run:
            _drop(wheelhouse, offline)
            where = f"CUDA {cuda_major}" + ("" if gpu and gpu.gpus else " (no GPU detected here)")
            print(f"install plan for {sys.executable}, {where}:")
            for s in plan:
                print(f"  # {s.why}\n  {s.line()}")
            if not plan:
                print("  (nothing to do: onnxruntime-gpu and TensorRT are already here)")
            print(f"to go back to the CPU wheel:\n  {revert}")
            report["install"] = inst
            _write(args.json if "--json" in argv else None, report)
            return 0
        if gpu is None or not gpu.gpus:
            inst["ran"] = False
            inst["why_not"] = "no CUDA device: nothing installed"
            report["install"] = inst
        elif not plan:
            inst["ran"] = False
            inst["why_not"] = "already installed"
            report["install"] = inst
        else:
            print(f"installing into {sys.executable} (to go back: {revert})", flush=True)
            inst.update(run_install(plan, lambda m: print(m, flush=True)), ran=True)
            _drop(wheelhouse, offline)
            rep_path = Path(tempfile.mkdtemp(prefix="embodied-gpu-")) / "install.json"
            rep_path.write_text(json.dumps(inst))
            # a fresh interpreter, so the onnxruntime just installed is the one imported
            cmd = [
                sys.executable,
                "-m",
                "embodied_tools.bench_gpu",
                *_strip_install(argv),
                "--install-report",
                str(rep_path),
            ]
            return subprocess.run(cmd).returncode
        _drop(wheelhouse, offline)

    try:
        import onnxruntime as ort
    except ImportError as e:
        return _skip(report, f"no CUDA: onnxruntime does not import ({e})", args)
    ort.set_default_logger_severity(3)
    report["host"]["onnxruntime"] = ort_state()
    if providers != [CPU]:
        assert gpu is not None
        if not gpu.gpus:
            return _skip(report, f"no CUDA device: {gpu.error}", args)
        report["host"]["preload_notes"] = preload_gpu_libraries()
        have = ort.get_available_providers()
        if CUDA not in have:
            inst = report["install"] or {}
            extra = ""
            if inst.get("ran") and inst.get("onnxruntime_gpu") is False:
                why = [s.get("cause") or " ".join(s["tail"][-1:]) for s in inst["steps"] if s["rc"]]
                extra = f"; the install failed ({why[0][:200] if why else '?'})"
            return _skip(
                report,
                f"no CUDAExecutionProvider in onnxruntime {ort.__version__} "
                f"({'onnxruntime-gpu' if _dist_version('onnxruntime-gpu') else 'the CPU wheel'}) "
                f"although {gpu.gpus[0].split(' (UUID')[0]} is present: run with --install "
                f"(needs pip's index){extra}",
                args,
            )
    if args.iters is not None:
        iters = args.iters
    if args.warmup is not None:
        warmup = args.warmup
    if args.time_budget_s is not None:
        budget_s = args.time_budget_s
    if report["install"] and report["install"].get("ran"):  # the install counts against it
        spent = sum(st["s"] for st in report["install"].get("steps", []))
        budget_s = max(60.0, budget_s - spent)
    try:
        models = discover_models(args.models, dims)
    except Exception as e:
        print(f"embodied bench gpu: reading the models: {e}", file=sys.stderr)
        return 2
    if not models:
        print(f"embodied bench gpu: no ONNX model under {args.models}", file=sys.stderr)
        return 2
    probe = min(models, key=lambda m: m.path.stat().st_size)
    if CUDA in providers:
        try:
            open_session(probe.path, CUDA)
        except Exception as e:
            return _skip(
                report,
                f"no working CUDAExecutionProvider: onnxruntime {ort.__version__}'s CUDA "
                f"provider did not start on {gpu.gpus[0].split(' (UUID')[0] if gpu else 'the GPU'} "
                f"({e}; ONNX Runtime's log above names the library it could not load)",
                args,
            )
    if TENSORRT in providers:
        if TENSORRT not in ort.get_available_providers():
            report["tensorrt"]["skipped"] = (
                "this onnxruntime build has no TensorrtExecutionProvider"
            )
        else:
            try:
                with tempfile.TemporaryDirectory() as d:
                    open_session(
                        probe.path,
                        TENSORRT,
                        trt_options=trt_options(
                            Path(d), fp16=False, profile=None, engine_cache=False
                        ),
                    )
            except Exception as e:
                report["tensorrt"]["skipped"] = (
                    f"TensorRT provider did not start ({str(e)[:200]}); TensorRT 10's libraries "
                    f"(libnvinfer.so.10) are needed: `pip install tensorrt-cu12` or -cu13 "
                    f"--extra-index-url {TENSORRT_INDEX}"
                )
        if report["tensorrt"].get("skipped"):
            print(f"TensorRT: skipped: {report['tensorrt']['skipped']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="embodied-gpu-") as tmp:
        ctx = Ctx(args, t0, Path(tmp), warmup, iters, budget_s, batch, budgets)
        report.update(
            warmup=warmup, iters=iters, time_budget_s=budget_s, batch=list(batch), budgets=budgets
        )
        ctx.log(
            f"{len(models)} models, providers {[LABEL[p] for p in providers]} vs cpu, "
            f"{mode}: warm-up {warmup}, {iters} timed runs per budget"
        )
        try:
            benchmark(ctx, models, providers, report)
        finally:
            report["failures"] = ctx.failures
            report["wall_s"] = time.perf_counter() - t0
            print("\n".join(summary_table(report)), flush=True)
            _write(args.json, report)
    errors = [f for f in ctx.failures if "parity" not in f]
    if errors or (args.strict and ctx.failures):
        print(f"embodied bench gpu: {len(ctx.failures)} problem(s): {ctx.failures[:5]}")
        return 1
    return 0


def iter_rows(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every measured variant of a report, flat (for scripts reading the JSON)."""
    for e in report.get("models", []):
        for v in e.get("variants", []):
            yield {"model": e["model"], **v}


if __name__ == "__main__":
    sys.exit(main())

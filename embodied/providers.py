"""ONNX Runtime execution providers: TensorRT → CUDA → CPU, chosen from what is installed.

Every ONNX model on the robot side (policy, tokenizer, instruction encoder) opens its
session through :func:`make_session`, so one place decides which accelerator runs it,
with which TensorRT options, and says so in the log. Why a fixed order: TensorRT is
the fastest where it exists (Jetson, desktop GPUs) but builds engines on first use,
CUDA needs no build, and the CPU provider is always there. ONNX Runtime itself falls
back silently when a provider fails to load (a CUDA wheel without its libraries), so
the provider that is logged is the one the session reports after creation, not the
one that was asked for.

Examples::

    sess = make_session("policy.onnx")                       # best available, 1 CPU thread
    sess = make_session("policy.onnx", providers=["cpu"])    # force CPU
    sess = make_session("policy.onnx", trt=TensorRTOptions(fp16=True,
                        engine_cache_path="/var/cache/embodied/trt"))

The environment variable ``EMBODIED_ORT_PROVIDERS`` (comma-separated short or full
names, e.g. ``cuda,cpu``) overrides the default order for processes that do not pass
``providers`` (ROS nodes, evaluation workers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

#: The preference order: first available wins, the rest stay as fallbacks for nodes the
#: earlier providers cannot run (ONNX Runtime partitions the graph in this order).
DEFAULT_ORDER: tuple[str, ...] = (TENSORRT, CUDA, CPU)

#: Short names accepted wherever a provider is named (CLI flags, env var, YAML).
ALIASES: dict[str, str] = {
    "tensorrt": TENSORRT,
    "trt": TENSORRT,
    "cuda": CUDA,
    "gpu": CUDA,
    "cpu": CPU,
}

ENV_VAR = "EMBODIED_ORT_PROVIDERS"

#: onnxruntime 1.32's CPU NCHWc layout transformer segfaults while creating a session for
#: the fp16 variant of the project's policy (a transformer encoder with fp32 I/O casts;
#: seen here, reproducible). NCHWc only speeds up convolutions, which the policy has none
#: of, so fp16 models are opened without it.
FP16_CPU_DISABLED_OPTIMIZERS: tuple[str, ...] = ("NchwcTransformer",)


class UnknownProviderError(ValueError):
    """A provider name that is neither a short alias nor an ONNX Runtime provider name."""


class ProviderUnavailableError(RuntimeError):
    """None of the requested providers is offered by the installed onnxruntime build."""


@dataclass(frozen=True)
class TensorRTOptions:
    """TensorRT execution-provider options (the ``trt_*`` keys of ONNX Runtime).

    The engine cache matters most on a Jetson: building an engine takes minutes there,
    a cached one loads in about a second, so it is on by default and its path is a
    setting (it must be writable and survive reboots; the default is per user).
    """

    fp16: bool = True
    engine_cache: bool = True
    engine_cache_path: str | Path = "~/.cache/embodied/trt_engines"
    device_id: int = 0
    max_workspace_bytes: int | None = None

    def provider_options(self) -> dict[str, str]:
        cache = Path(os.path.expanduser(str(self.engine_cache_path)))
        opts = {
            "device_id": str(self.device_id),
            "trt_fp16_enable": _b(self.fp16),
            "trt_engine_cache_enable": _b(self.engine_cache),
            "trt_engine_cache_path": str(cache),
        }
        if self.engine_cache:
            cache.mkdir(parents=True, exist_ok=True)
        if self.max_workspace_bytes is not None:
            opts["trt_max_workspace_size"] = str(int(self.max_workspace_bytes))
        return opts


def _b(x: bool) -> str:
    return "True" if x else "False"


def valid_provider_names() -> list[str]:
    """Every name :func:`resolve_provider_name` accepts (aliases, then full names)."""
    full = sorted(set(ort.get_all_providers()) | set(DEFAULT_ORDER))
    return [*ALIASES, *full]


def resolve_provider_name(name: str) -> str:
    """Map a short alias (``cpu``, ``cuda``, ``tensorrt``/``trt``) or full name to ORT's name."""
    key = name.strip()
    if key.lower() in ALIASES:
        return ALIASES[key.lower()]
    full = set(ort.get_all_providers()) | set(DEFAULT_ORDER)
    if key in full:
        return key
    raise UnknownProviderError(
        f"unknown execution provider {name!r}; valid names: {', '.join(valid_provider_names())}"
    )


def requested_order(providers: Sequence[str] | str | None = None) -> list[str]:
    """The requested preference order: explicit argument, else ``$EMBODIED_ORT_PROVIDERS``, else default."""
    if providers is None:
        env = os.environ.get(ENV_VAR, "").strip()
        providers = env if env else DEFAULT_ORDER
    if isinstance(providers, str):
        providers = [p for p in providers.split(",") if p.strip()]
    out: list[str] = []
    for p in providers:
        full = resolve_provider_name(p)
        if full not in out:
            out.append(full)
    return out


def select_providers(
    providers: Sequence[str] | str | None = None,
    *,
    available: Sequence[str] | None = None,
    trt: TensorRTOptions | None = None,
    cuda_device_id: int = 0,
) -> list[tuple[str, dict[str, str]]]:
    """Filter the requested order down to what this onnxruntime build offers, with options.

    Returns ``(name, options)`` pairs in preference order, ready for
    ``InferenceSession(providers=...)``. Raises :class:`ProviderUnavailableError` when
    nothing requested is available (e.g. ``providers=["cuda"]`` on a CPU-only build),
    naming both lists, instead of silently running somewhere else.
    """
    wanted = requested_order(providers)
    have = list(ort.get_available_providers() if available is None else available)
    chosen: list[tuple[str, dict[str, str]]] = []
    for name in wanted:
        if name not in have:
            log.debug("execution provider %s requested but not available", name)
            continue
        if name == TENSORRT:
            chosen.append((name, (trt or TensorRTOptions()).provider_options()))
        elif name == CUDA:
            chosen.append((name, {"device_id": str(cuda_device_id)}))
        else:
            chosen.append((name, {}))
    if not chosen:
        raise ProviderUnavailableError(
            f"none of the requested execution providers {wanted} is available; "
            f"this onnxruntime build offers {have}"
        )
    return chosen


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Session options for small, latency-bound models: sequential, ``threads`` intra-op threads.

    One thread is the default because the robot computer runs camera, codec and policy
    side by side, and for models of a few MB extra threads cost more in wake-ups than they
    gain (the policy benchmark measures it).
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only; the chosen provider is logged by us
    return so


def make_session(
    path: str | Path | bytes,
    providers: Sequence[str] | str | None = None,
    threads: int = 1,
    *,
    trt: TensorRTOptions | None = None,
    cuda_device_id: int = 0,
    options: ort.SessionOptions | None = None,
    disabled_optimizers: Sequence[str] = (),
) -> ort.InferenceSession:
    """Open an ONNX Runtime session with the best available provider and log which one runs it.

    ``disabled_optimizers``: graph transformers to skip by name (see
    :data:`FP16_CPU_DISABLED_OPTIMIZERS` for why fp16 models need one).
    """
    label = "<bytes>" if isinstance(path, bytes) else str(path)
    if not isinstance(path, bytes) and not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model not found: {label}")
    chosen = select_providers(providers, trt=trt, cuda_device_id=cuda_device_id)
    so = options or session_options(threads)
    names = [n for n, _ in chosen]
    opts: list[dict[str, Any]] = [o for _, o in chosen]
    src = path if isinstance(path, bytes) else str(path)
    kwargs: dict[str, Any] = {}
    if disabled_optimizers:
        kwargs["disabled_optimizers"] = list(disabled_optimizers)
    sess = ort.InferenceSession(
        src, sess_options=so, providers=names, provider_options=opts, **kwargs
    )
    active = sess.get_providers()
    if active and active[0] != names[0]:
        log.warning(
            "%s: requested %s but ONNX Runtime runs it on %s (provider failed to load)",
            label,
            names[0],
            active[0],
        )
    extra = f", trt options {chosen[0][1]}" if active and active[0] == TENSORRT else ""
    log.info(
        "%s: execution provider %s (fallbacks %s; threads %d%s)",
        label,
        active[0] if active else "?",
        active[1:],
        so.intra_op_num_threads,
        extra,
    )
    return sess


def active_provider(session: ort.InferenceSession) -> str:
    """The provider that runs a session's nodes first (what latency numbers should be labelled with)."""
    return session.get_providers()[0]


def run_arrays(
    session: ort.InferenceSession,
    outputs: Sequence[str] | None,
    feed: Mapping[str, np.ndarray],
) -> list[np.ndarray]:
    """``session.run`` for models whose outputs are dense tensors (every model of this project):
    the outputs as arrays. ONNX Runtime types ``run`` as returning sparse tensors, sequences or
    maps as well; such an output is refused here rather than failing later on ``.shape``."""
    arrays = []
    for i, out in enumerate(session.run(None if outputs is None else list(outputs), dict(feed))):
        if not isinstance(out, np.ndarray):
            name = outputs[i] if outputs is not None else session.get_outputs()[i].name
            raise TypeError(f"ONNX output {name!r} is a {type(out).__name__}, not a dense tensor")
        arrays.append(out)
    return arrays

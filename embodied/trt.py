"""``embodied trt-build``: a TensorRT engine from an ONNX model, for a Jetson or a GPU host.

Three ways, the first that is there:

1. the TensorRT Python API (``import tensorrt``: JetPack ships it, ``pip install
   tensorrt-cu12``/``tensorrt-cu13`` on a desktop GPU; see ``embodied bench gpu --install``):
   ``tensorrt.Builder`` + ``OnnxParser``, fp16 by default, one optimisation profile over the
   batch axis and every other dynamic dimension, the serialized engine written to a file,
   the build time and size reported;
2. ``trtexec`` (on ``PATH`` or JetPack's ``/usr/src/tensorrt/bin/trtexec``), run with the
   same profile;
3. neither: the command says TensorRT is not installed, prints the exact ``trtexec`` line to
   run on the target and exits 0, since an engine is specific to the GPU and TensorRT
   version it is built on and is normally built on the robot anyway.

The input shapes come from the ONNX file itself (read through ONNX Runtime, so this module
needs neither onnx nor torch). The batch axis (dim 0) takes ``--batch min:opt:max``; any
other dynamic dimension needs a range by its symbolic name, ``--dim sequence=1:16:64``
(the policy and the tokenizer have none, the instruction encoder has ``sequence``).
:func:`profile_shapes` computes the profile once, for the TensorRT builder, for
``trtexec`` and for ONNX Runtime's TensorRT provider (``trt_profile_min_shapes`` & co.,
:meth:`Profile.ort_options`), so the three agree.

    embodied trt-build --onnx embodied/models/vla-recon/policy.onnx --fp16 --batch 1:1:8
    embodied trt-build --onnx embodied/models/instruction/instruction_encoder_int8.onnx \\
        --dim sequence=1:16:64 --json results/gpu/instruction.engine.json

Use with ONNX Runtime's TensorRT provider instead: ``embodied.providers.TensorRTOptions``
(its engine cache does the same build on first use) plus :meth:`Profile.ort_options`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: (min, opt, max) of one dimension
DimRange = tuple[int, int, int]

#: where JetPack puts trtexec (not on PATH by default)
JETPACK_TRTEXEC = Path("/usr/src/tensorrt/bin/trtexec")

#: how to get the Python API where it is missing (the libraries come from NVIDIA's index)
TENSORRT_INSTALL_HINT = (
    "pip install tensorrt-cu12 --extra-index-url https://pypi.nvidia.com "
    "(tensorrt-cu13 for CUDA 13; `embodied bench gpu --install` does it), or JetPack on a Jetson"
)


@dataclass(frozen=True)
class InputShape:
    name: str
    dims: tuple[int | str | None, ...]  # dim 0 is the batch axis

    def dim_key(self, axis: int) -> str:
        """The name a range for dynamic dim ``axis`` is looked up by: its symbolic name, or
        ``<input>.<axis>`` where the export left it unnamed."""
        d = self.dims[axis]
        return d if isinstance(d, str) and d else f"{self.name}.{axis}"

    def dynamic_axes(self) -> list[int]:
        """The axes other than the batch axis whose size is not fixed in the file."""
        return [a for a, d in enumerate(self.dims) if a > 0 and not isinstance(d, int)]

    def resolve(
        self, batch: int, dims: Mapping[str, DimRange] | None = None, which: int = 1
    ) -> tuple[int, ...]:
        """The concrete shape at ``batch`` with each dynamic dim's ``which`` value (0 min,
        1 opt, 2 max) from ``dims``; a static batch axis keeps its size."""
        out: list[int] = []
        for axis, d in enumerate(self.dims):
            if axis == 0:
                out.append(d if isinstance(d, int) and d > 0 else batch)
            elif isinstance(d, int) and d >= 0:
                out.append(d)
            else:
                key = self.dim_key(axis)
                if dims is None or key not in dims:
                    raise ValueError(
                        f"input {self.name} has dynamic non-batch dim {axis} ({key!r}) in "
                        f"{self.dims}; give it a range, --dim {key}=min:opt:max"
                    )
                out.append(int(dims[key][which]))
        return tuple(out)

    def at(self, batch: int) -> tuple[int, ...]:
        """The shape at ``batch`` (every other dim must be static)."""
        return self.resolve(batch, None)


def onnx_input_shapes(onnx_path: str | Path) -> list[InputShape]:
    """Input names and shapes of an ONNX model (via an ONNX Runtime CPU session)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return [InputShape(i.name, tuple(i.shape)) for i in sess.get_inputs()]


def parse_batch(spec: str) -> DimRange:
    """``"1:1:8"`` (min:opt:max) or ``"4"`` (all equal) → (min, opt, max)."""
    try:
        parts = [int(p) for p in spec.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise ValueError(f"range {spec!r}: expected min:opt:max with 1 <= min <= opt <= max")
    return parts[0], parts[1], parts[2]


def parse_dims(specs: Sequence[str]) -> dict[str, DimRange]:
    """``["sequence=1:16:64", ...]`` → ``{"sequence": (1, 16, 64)}``."""
    out: dict[str, DimRange] = {}
    for spec in specs:
        name, sep, rng = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--dim {spec!r}: expected NAME=min:opt:max")
        out[name.strip()] = parse_batch(rng)
    return out


def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimisation profile: input name → shape, for min, opt and max."""

    min: dict[str, tuple[int, ...]]
    opt: dict[str, tuple[int, ...]]
    max: dict[str, tuple[int, ...]]

    def shape_strings(self) -> dict[str, str]:
        """``{"min": "a:1x64,b:1", "opt": ..., "max": ...}``: the format ``trtexec`` and ONNX
        Runtime's ``trt_profile_*_shapes`` both read (``input:dim1xdim2,...``)."""
        return {
            k: ",".join(f"{n}:{_shape_str(s)}" for n, s in getattr(self, k).items())
            for k in ("min", "opt", "max")
        }

    def ort_options(self) -> dict[str, str]:
        """ONNX Runtime TensorRT-provider options for this explicit profile (a shape inside it
        never makes the provider rebuild its engine; onnxruntime issue 13851)."""
        s = self.shape_strings()
        return {
            "trt_profile_min_shapes": s["min"],
            "trt_profile_opt_shapes": s["opt"],
            "trt_profile_max_shapes": s["max"],
        }

    def trtexec_args(self) -> list[str]:
        s = self.shape_strings()
        return [f"--minShapes={s['min']}", f"--optShapes={s['opt']}", f"--maxShapes={s['max']}"]

    def builder_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """input name → (min, opt, max) shapes, as ``IOptimizationProfile.set_shape`` takes them."""
        return {n: (self.min[n], self.opt[n], self.max[n]) for n in self.min}


def default_dim_ranges(
    inputs: Sequence[InputShape], default: DimRange = (1, 16, 64)
) -> dict[str, DimRange]:
    """A range for every dynamic non-batch dim of ``inputs`` (``default`` for each): what
    ``embodied bench gpu`` profiles models with when no ``--dim`` names them."""
    return {i.dim_key(a): default for i in inputs for a in i.dynamic_axes()}


def profile_shapes(
    inputs: Sequence[InputShape],
    batch: DimRange = (1, 1, 8),
    dims: Mapping[str, DimRange] | None = None,
) -> Profile:
    """The optimisation profile of a model: every input at the batch range and, for each
    other dynamic dim, the range ``dims`` gives by its symbolic name (ValueError naming the
    dim where none does). Pure: the same inputs give the same strings, for ORT and TRT."""
    return Profile(
        min={i.name: i.resolve(batch[0], dims, 0) for i in inputs},
        opt={i.name: i.resolve(batch[1], dims, 1) for i in inputs},
        max={i.name: i.resolve(batch[2], dims, 2) for i in inputs},
    )


def _shape_arg(inputs: Sequence[InputShape], batch: int) -> str:
    return ",".join(f"{i.name}:{_shape_str(i.at(batch))}" for i in inputs)


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = True,
    batch: DimRange = (1, 1, 8),
    workspace_mb: int = 1024,
    inputs: Sequence[InputShape] | None = None,
    dims: Mapping[str, DimRange] | None = None,
    trtexec: str = "trtexec",
) -> list[str]:
    """The ``trtexec`` argv that builds the same engine as :func:`build_engine`."""
    inputs = list(inputs) if inputs is not None else onnx_input_shapes(onnx_path)
    cmd = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--memPoolSize=workspace:{workspace_mb}M",
    ]
    if fp16:
        cmd.append("--fp16")
    cmd += profile_shapes(inputs, batch, dims).trtexec_args()
    return cmd


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def tensorrt_import_error() -> str | None:
    """None where ``import tensorrt`` works, else why not (module absent, libraries missing)."""
    if not tensorrt_available():
        return "no `tensorrt` Python module"
    try:
        import tensorrt  # noqa: F401  # pyright: ignore[reportMissingImports]
    except Exception as e:  # a stub wheel without its libraries raises OSError or ImportError
        return f"`import tensorrt` failed: {type(e).__name__}: {e}"
    return None


def find_trtexec() -> str | None:
    """``trtexec`` on PATH, else JetPack's copy, else None."""
    found = shutil.which("trtexec")
    if found:
        return found
    return str(JETPACK_TRTEXEC) if JETPACK_TRTEXEC.is_file() else None


@dataclass
class EngineBuild:
    """What one engine build did (``embodied trt-build --json`` writes it)."""

    onnx: str
    engine: str
    via: str  # "tensorrt-python" | "trtexec"
    fp16: bool
    build_s: float
    size_bytes: int
    profile: dict[str, str]
    tensorrt_version: str | None = None
    notes: list[str] = field(default_factory=list)


def build_engine_report(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = True,
    batch: DimRange = (1, 1, 8),
    workspace_mb: int = 1024,
    dims: Mapping[str, DimRange] | None = None,
) -> EngineBuild:
    """Build and write a serialized TensorRT engine through the Python API (needs the
    ``tensorrt`` module and a GPU); the profile covers the batch and every dynamic dim."""
    import tensorrt as trt  # pyright: ignore[reportMissingImports]

    profile = profile_shapes(onnx_input_shapes(onnx_path), batch, dims)
    notes: list[str] = []
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        fp16_flag = getattr(trt.BuilderFlag, "FP16", None)
        if fp16_flag is None:
            notes.append(f"TensorRT {trt.__version__} has no FP16 builder flag; built fp32")
            fp16 = False
        else:
            if not getattr(builder, "platform_has_fast_fp16", True):
                notes.append("this GPU has no fast fp16; built with the flag anyway")
            config.set_flag(fp16_flag)
    opt_profile = builder.create_optimization_profile()
    shapes = profile.builder_shapes()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in shapes:
            raise RuntimeError(f"TensorRT sees input {tensor.name!r}, ONNX Runtime does not")
        opt_profile.set_shape(tensor.name, *shapes[tensor.name])
    config.add_optimization_profile(opt_profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    out = Path(engine_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(engine))
    return EngineBuild(
        onnx=str(onnx_path),
        engine=str(out),
        via="tensorrt-python",
        fp16=fp16,
        build_s=time.perf_counter() - t0,
        size_bytes=out.stat().st_size,
        profile=profile.shape_strings(),
        tensorrt_version=str(trt.__version__),
        notes=notes,
    )


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = True,
    batch: DimRange = (1, 1, 8),
    workspace_mb: int = 1024,
    dims: Mapping[str, DimRange] | None = None,
) -> Path:
    """Build and write a serialized TensorRT engine (needs the ``tensorrt`` module and a GPU)."""
    rep = build_engine_report(
        onnx_path, engine_path, fp16=fp16, batch=batch, workspace_mb=workspace_mb, dims=dims
    )
    return Path(rep.engine)


def run_trtexec(
    cmd: Sequence[str],
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool,
    profile: Profile,
) -> EngineBuild:
    """Run a :func:`trtexec_command` argv; raises with trtexec's last lines if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0 or not Path(engine_path).is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"trtexec failed (exit {proc.returncode}):\n{tail}")
    return EngineBuild(
        onnx=str(onnx_path),
        engine=str(engine_path),
        via="trtexec",
        fp16=fp16,
        build_s=took,
        size_bytes=Path(engine_path).stat().st_size,
        profile=profile.shape_strings(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied trt-build",
        description="Build a TensorRT engine from an ONNX model (TensorRT Python API, else "
        "trtexec), or print the trtexec command for the target (Jetson) where neither is here.",
    )
    ap.add_argument("--onnx", required=True, type=Path, help="ONNX model (e.g. .../policy.onnx)")
    ap.add_argument("--engine", type=Path, help="output engine (default: <onnx stem>.engine)")
    fp = ap.add_mutually_exclusive_group()
    fp.add_argument("--fp16", dest="fp16", action="store_true", default=True, help="(default)")
    fp.add_argument("--fp32", dest="fp16", action="store_false", help="no fp16 kernels")
    ap.add_argument("--batch", default="1:1:8", help="batch profile min:opt:max (default 1:1:8)")
    ap.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=MIN:OPT:MAX",
        help="range of another dynamic dimension, by its symbolic name (repeatable)",
    )
    ap.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace, MiB")
    ap.add_argument("--json", type=Path, default=None, help="also write the build report here")
    ap.add_argument(
        "--print-only",
        action="store_true",
        help="print the trtexec command even if TensorRT is here",
    )
    args = ap.parse_args(argv)
    if not args.onnx.is_file():
        print(f"embodied trt-build: {args.onnx}: no such ONNX file", file=sys.stderr)
        return 2
    engine = args.engine or args.onnx.with_suffix(".engine")
    trtexec = find_trtexec()
    try:
        batch = parse_batch(args.batch)
        dims = parse_dims(args.dim)
        inputs = onnx_input_shapes(args.onnx)
        profile = profile_shapes(inputs, batch, dims)
        cmd = trtexec_command(
            args.onnx,
            engine,
            fp16=args.fp16,
            batch=batch,
            workspace_mb=args.workspace_mb,
            inputs=inputs,
            dims=dims,
            trtexec=trtexec or "trtexec",
        )
    except ValueError as e:
        print(f"embodied trt-build: {e}", file=sys.stderr)
        return 2
    if args.print_only:
        print(shlex.join(cmd))
        return 0
    why_not = tensorrt_import_error()
    if why_not is None:
        rep = build_engine_report(
            args.onnx,
            engine,
            fp16=args.fp16,
            batch=batch,
            workspace_mb=args.workspace_mb,
            dims=dims,
        )
    elif trtexec is not None:
        print(f"TensorRT Python API unavailable ({why_not}); building with {trtexec}")
        try:
            rep = run_trtexec(cmd, args.onnx, engine, fp16=args.fp16, profile=profile)
        except RuntimeError as e:
            print(f"embodied trt-build: {e}", file=sys.stderr)
            return 1
    else:
        print(
            f"TensorRT is absent here: TensorRT is not installed ({why_not}) and no trtexec "
            f"was found (PATH, {JETPACK_TRTEXEC}). Install it: {TENSORRT_INSTALL_HINT}. "
            "Or build the engine on the target with:",
            file=sys.stderr,
        )
        print(shlex.join(cmd))
        return 0
    for note in rep.notes:
        print(f"trt-build: {note}", file=sys.stderr)
    print(
        f"wrote {rep.engine} ({rep.size_bytes / 1e6:.2f} MB) in {rep.build_s:.1f} s via "
        f"{rep.via}{' ' + rep.tensorrt_version if rep.tensorrt_version else ''}, "
        f"{'fp16' if rep.fp16 else 'fp32'}, profile min {rep.profile['min']} / opt "
        f"{rep.profile['opt']} / max {rep.profile['max']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(rep), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

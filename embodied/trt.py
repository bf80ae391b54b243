"""``embodied trt-build``: a TensorRT engine from an ONNX model, for a Jetson or a GPU host.

Where the ``tensorrt`` Python module is installed (JetPack ships it), the engine is
built here: fp16 by default, one optimisation profile over the dynamic batch axis.
Elsewhere the command prints the exact ``trtexec`` line to run on the target and exits
0, since an engine is specific to the GPU and TensorRT version it is built on and is
normally built on the robot anyway.

The input shapes come from the ONNX file itself (read through ONNX Runtime, so this
module needs neither onnx nor torch): every dimension that is not the batch axis must
be static, as the policy's are (docs/models.md).

    embodied trt-build --onnx embodied/models/vla-recon/policy.onnx --fp16 --batch 1:1:8

Use with ONNX Runtime's TensorRT provider instead: ``embodied.providers.TensorRTOptions``
(its engine cache does the same build on first use).
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InputShape:
    name: str
    dims: tuple[int | str | None, ...]  # dim 0 is the batch axis

    def at(self, batch: int) -> tuple[int, ...]:
        rest = self.dims[1:]
        if any(not isinstance(d, int) for d in rest):
            raise ValueError(
                f"input {self.name} has dynamic non-batch dims {self.dims}; give them fixed sizes "
                "in the export (only the batch axis may be dynamic for trt-build)"
            )
        return (batch, *rest)  # type: ignore[return-value]


def onnx_input_shapes(onnx_path: str | Path) -> list[InputShape]:
    """Input names and shapes of an ONNX model (via an ONNX Runtime CPU session)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    return [InputShape(i.name, tuple(i.shape)) for i in sess.get_inputs()]


def parse_batch(spec: str) -> tuple[int, int, int]:
    """``"1:1:8"`` (min:opt:max) or ``"4"`` (all equal) → (min, opt, max)."""
    parts = [int(p) for p in spec.split(":")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise ValueError(
            f"batch profile {spec!r}: expected min:opt:max with 1 <= min <= opt <= max"
        )
    return parts[0], parts[1], parts[2]


def _shape_arg(inputs: Sequence[InputShape], batch: int) -> str:
    return ",".join(f"{i.name}:{'x'.join(str(d) for d in i.at(batch))}" for i in inputs)


def trtexec_command(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = True,
    batch: tuple[int, int, int] = (1, 1, 8),
    workspace_mb: int = 1024,
    inputs: Sequence[InputShape] | None = None,
) -> list[str]:
    """The ``trtexec`` argv that builds the same engine as :func:`build_engine`."""
    inputs = list(inputs) if inputs is not None else onnx_input_shapes(onnx_path)
    cmd = [
        "trtexec",
        f"--onnx={onnx_path}",
        f"--saveEngine={engine_path}",
        f"--memPoolSize=workspace:{workspace_mb}M",
    ]
    if fp16:
        cmd.append("--fp16")
    cmd += [
        f"--minShapes={_shape_arg(inputs, batch[0])}",
        f"--optShapes={_shape_arg(inputs, batch[1])}",
        f"--maxShapes={_shape_arg(inputs, batch[2])}",
    ]
    return cmd


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = True,
    batch: tuple[int, int, int] = (1, 1, 8),
    workspace_mb: int = 1024,
) -> Path:
    """Build and write a serialized TensorRT engine (needs the ``tensorrt`` module and a GPU)."""
    import tensorrt as trt  # pyright: ignore[reportMissingImports] (JetPack ships it)

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
        if not builder.platform_has_fast_fp16:
            print("trt-build: this GPU has no fast fp16; building anyway", file=sys.stderr)
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for inp in onnx_input_shapes(onnx_path):
        profile.set_shape(inp.name, inp.at(batch[0]), inp.at(batch[1]), inp.at(batch[2]))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    out = Path(engine_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(engine))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied trt-build",
        description="Build a TensorRT engine from an ONNX model, or print the trtexec command "
        "for the target (Jetson) where TensorRT is absent.",
    )
    ap.add_argument("--onnx", required=True, type=Path, help="ONNX model (e.g. .../policy.onnx)")
    ap.add_argument("--engine", type=Path, help="output engine (default: <onnx stem>.engine)")
    fp = ap.add_mutually_exclusive_group()
    fp.add_argument("--fp16", dest="fp16", action="store_true", default=True, help="(default)")
    fp.add_argument("--fp32", dest="fp16", action="store_false", help="no fp16 kernels")
    ap.add_argument("--batch", default="1:1:8", help="batch profile min:opt:max (default 1:1:8)")
    ap.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace, MiB")
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
    try:
        batch = parse_batch(args.batch)
        cmd = trtexec_command(
            args.onnx, engine, fp16=args.fp16, batch=batch, workspace_mb=args.workspace_mb
        )
    except ValueError as e:
        print(f"embodied trt-build: {e}", file=sys.stderr)
        return 2
    if args.print_only or not tensorrt_available():
        if not args.print_only:
            print(
                "TensorRT is absent here (no `tensorrt` Python module); build the engine on the "
                "target (Jetson: JetPack's /usr/src/tensorrt/bin/trtexec) with:",
                file=sys.stderr,
            )
        print(shlex.join(cmd))
        return 0
    out = build_engine(
        args.onnx, engine, fp16=args.fp16, batch=batch, workspace_mb=args.workspace_mb
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

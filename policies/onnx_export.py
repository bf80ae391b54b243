"""Export a torch module to ONNX the way the run time expects it (docs/models.md).

One helper for every model that crosses from training (torch) to the robot (ONNX
Runtime): the tokenizer's encoder/decoder, the policy, the instruction encoder. It
pins the choices that otherwise drift between call sites:

* the TorchScript exporter (``dynamo=False``): the torch.export-based one needs
  ``onnxscript``, which is not part of this project's dependency set;
* opset >= 17, a dynamic batch axis, eval mode during export (and the module left in
  eval afterwards: the legacy exporter restores the mode of the *wrapper* it was given,
  which silently re-enables dropout in a freshly built wrapper);
* ``metadata_props`` carrying the model's json fields, so a stray ``.onnx`` file can be
  identified without its ``.json``;
* ``onnx.checker`` on the result;
* an fp16 variant whose inputs and outputs stay fp32 (same feeds as the fp32 model),
  converted with ONNX Runtime's own ``convert_float_to_float16`` (onnxconverter-common
  is not installed).

Parity: :func:`check_parity` runs the torch module and ONNX Runtime (CPU) on the same
inputs and returns the largest absolute difference; the contract is <= 1e-4 in fp32.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch

MIN_OPSET = 17


def _to_tuple(inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    return tuple(inputs)


def add_metadata(model: onnx.ModelProto, metadata: Mapping[str, object]) -> None:
    """Set ``metadata_props`` (string key → string value; non-strings are JSON-encoded)."""
    existing = {p.key: p for p in model.metadata_props}
    for k, v in metadata.items():
        val = v if isinstance(v, str) else json.dumps(v)
        if k in existing:
            existing[k].value = val
        else:
            p = model.metadata_props.add()
            p.key, p.value = str(k), val


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically, in place (stable: keeps the order where it can).

    ``convert_float_to_float16(keep_io_types=True)`` appends its input casts at the end of
    the node list; ONNX Runtime tolerates that, ``onnx.checker`` does not.
    """
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(n in known for n in node.input):
                ordered.append(node)
                known.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({n for nd in rest for n in nd.input if n not in known})
            raise ValueError(f"graph has a cycle or dangling inputs: {missing[:5]}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def convert_fp16(src: str | Path, dst: str | Path, *, keep_io_types: bool = True) -> Path:
    """Write an fp16 copy of an ONNX model; I/O stays fp32 by default so callers feed it alike.

    Integer inputs (token ids, budgets) are untouched by the conversion either way.
    Ops ONNX Runtime's converter blocks by default (and ``Range``/``CumSum``, used for
    position indices) stay fp32 with casts around them.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=keep_io_types)
    toposort(half.graph)
    add_metadata(half, {**meta, "precision": "fp16"})
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))
    return Path(dst)


def _pin_output_dims(
    model: onnx.ModelProto,
    outputs: Sequence[np.ndarray],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> None:
    """Write the static output dims (those not declared dynamic) into the graph.

    The TorchScript exporter leaves dims symbolic after a computed ``reshape`` (the
    policy's ``[B, chunk, 4]`` comes out as ``[B, ?, ?]``); run times read these dims to
    check a model against its json, so they are pinned from the example run.
    """
    by_name = {o.name: o for o in model.graph.output}
    for name, arr in zip(output_names, outputs, strict=False):
        out = by_name.get(name)
        if out is None:
            continue
        dyn = dynamic_axes.get(name, {})
        dims = out.type.tensor_type.shape.dim
        if len(dims) != arr.ndim:
            continue
        for axis, d in enumerate(dims):
            if axis not in dyn and not d.dim_value:
                d.Clear()
                d.dim_value = int(arr.shape[axis])


def export_onnx(
    module: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None,
    path: str | Path,
    metadata: Mapping[str, str],
    opset: int = MIN_OPSET,
    *,
    fp16: bool = True,
    fp16_path: str | Path | None = None,
) -> dict[str, Path]:
    """Export ``module`` to ``path`` (+ an fp16 variant), add metadata, run ``onnx.checker``.

    ``dynamic_axes`` defaults (``None``) to axis 0 named ``batch`` on every input and
    output. The fp16 file defaults to ``<stem>_fp16.onnx`` beside ``path`` (e.g.
    ``policy_fp16.onnx``). Returns ``{"fp32": path, "fp16": fp16_path}`` (no ``fp16`` key
    when ``fp16=False``).
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (docs/models.md), got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = _to_tuple(example_inputs)
    if len(args) != len(input_names):
        raise ValueError(f"{len(args)} example inputs but {len(input_names)} input names")
    if dynamic_axes is None:
        dynamic_axes = {n: {0: "batch"} for n in [*input_names, *output_names]}
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
            do_constant_folding=True,
        )
    module.eval()  # the exporter restores the caller's mode; a fresh wrapper is in train mode
    model = onnx.load(str(path))
    _pin_output_dims(model, _run_torch(module, args), output_names, dynamic_axes)
    add_metadata(model, {**metadata, "precision": "fp32"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    out = {"fp32": path}
    if fp16:
        dst = Path(fp16_path) if fp16_path is not None else path.with_name(f"{path.stem}_fp16.onnx")
        out["fp16"] = convert_fp16(path, dst)
    return out


def _run_torch(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    module.eval()
    with torch.no_grad():
        res = module(*args)
    if isinstance(res, torch.Tensor):
        res = (res,)
    return [r.detach().cpu().numpy() for r in res]


def check_parity(
    torch_module: torch.nn.Module,
    onnx_path: str | Path,
    inputs: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
) -> float:
    """Largest |torch − ONNX Runtime (CPU)| over all outputs on ``inputs`` (held-out ones, ideally).

    ``inputs`` in the model's input order, or a mapping by input name. Runs ONNX
    Runtime with one thread on the CPU provider so the number does not depend on
    the machine's accelerator.
    """
    import onnxruntime as ort

    from embodied.providers import FP16_CPU_DISABLED_OPTIMIZERS

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        str(onnx_path),
        so,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(FP16_CPU_DISABLED_OPTIMIZERS),  # segfaults on fp16 (ORT 1.32)
    )
    names = [i.name for i in sess.get_inputs()]
    args = tuple(inputs[n] for n in names) if isinstance(inputs, Mapping) else _to_tuple(inputs)
    feed = {n: a.detach().cpu().numpy() for n, a in zip(names, args, strict=True)}
    got = [np.asarray(g) for g in sess.run(None, feed)]
    ref = _run_torch(torch_module, args)
    if len(got) != len(ref):
        raise ValueError(f"ONNX model has {len(got)} outputs, torch module {len(ref)}")
    return float(
        max(
            np.max(np.abs(g.astype(np.float64) - np.asarray(r, np.float64))) if g.size else 0.0
            for g, r in zip(got, ref, strict=True)
        )
    )

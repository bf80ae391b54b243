"""The model-file contract between training (``policies/``, torch) and run time (ONNX Runtime).

Everything that training writes and the robot reads is named here once (docs/models.md):

* the file names of a tokenizer directory and of a policy directory;
* the ONNX input and output names of every model (:data:`POLICY_IO`, :data:`ENCODER_IO`,
  :data:`DECODER_IO`, :data:`BELIEF_IO`);
* :class:`TokenizerSpec` and :class:`PolicySpec`, which both **write** and **read**
  ``tokenizer.json`` / ``policy.json`` (no dict literals elsewhere);
* the ``metadata_props`` every shipped or exported ONNX file carries (the keys
  :data:`ONNX_METADATA_KEYS`, what each model's values are: :func:`model_dir_metadata`), which
  the exporters and ``embodied stamp-metadata`` (:func:`stamp_model_dir`) write;
* the packing of FSQ codes into token ids (:func:`mixed_radix`, :func:`codes_to_ids`,
  :func:`ids_to_codes`; the torch side uses the same radix);
* where the shipped models live (:func:`shipped`, by ``importlib.resources``, so an installed
  wheel finds them as a source checkout does).

Model identity comes in two kinds, and they are not the same number:

* the **model's id** (``TokenizerSpec.model_id``, the first 4 bytes of the encoder ONNX's
  SHA-256, metadata left out: :func:`onnx_model_id`) says which weights made the tokens; a policy records it as ``tokenizer_model_id``
  and refuses tokens of any other tokenizer;
* the **stream id** that keys a packet's CRC (``TokenCodec.model_id``) also covers the entropy
  coder, since two coders write different bytes for the same tokens (``embodied.codecs.tokens``).

This module imports numpy only (and :mod:`embodied.onnxmeta`, standard library): it is read
by the robot, by training and by tests alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embodied.onnxmeta import NotOnnx, read_metadata, without_metadata, write_metadata

if TYPE_CHECKING:
    import onnxruntime as ort

FORMAT_VERSION = 1
#: the packet's budget byte bounds k_max
MAX_BUDGET = 255

# --------------------------------------------------------------------------- file names

TOKENIZER_JSON = "tokenizer.json"
ENCODER_ONNX = "tokenizer_encoder.onnx"
DECODER_ONNX = "tokenizer_decoder.onnx"
PRIOR_NPY = "tokenizer_prior.npy"
TOKENIZER_FILES = (TOKENIZER_JSON, ENCODER_ONNX, DECODER_ONNX, PRIOR_NPY)

POLICY_JSON = "policy.json"
POLICY_ONNX = {"fp32": "policy.onnx", "fp16": "policy_fp16.onnx"}
#: instruction embedding → belief over the policy's tasks (policies with a task belief only)
BELIEF_ONNX = "task_belief.onnx"
#: phrasing → embedding, so a robot needs no sentence encoder for known instructions
INSTRUCTION_CACHE = "instruction_cache.json"

#: a training run's torch state dict (``runs/<name>/model.pt``): training only, never shipped
CHECKPOINT = "model.pt"
#: what a shipped directory keeps of a run (``embodied export`` / ``policies.export.ship``)
SHIP_PATTERNS = ("*.json", "*.onnx", "*.npy")

# --------------------------------------------------------------------------- ONNX I/O


@dataclass(frozen=True)
class OnnxIO:
    """The input and output names (in order) and element types of one exported model."""

    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    @property
    def input_names(self) -> list[str]:
        return [n for n, _ in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [n for n, _ in self.outputs]

    def dynamic_batch(self) -> dict[str, dict[int, str]]:
        """``dynamic_axes`` for ``torch.onnx.export``: axis 0 of every input and output is B."""
        return {n: {0: "B"} for n in (*self.input_names, *self.output_names)}

    def export_kwargs(self) -> dict[str, Any]:
        """The names and dynamic batch axes as ``torch.onnx.export`` keywords."""
        return {
            "input_names": self.input_names,
            "output_names": self.output_names,
            "dynamic_axes": self.dynamic_batch(),
        }


_I64, _U8, _F32 = "tensor(int64)", "tensor(uint8)", "tensor(float)"
#: tokenizer encoder: image uint8 [B, H, W, 3] → codes int64 [B, k_max, D], token_ids [B, k_max]
ENCODER_IO = OnnxIO(inputs=(("image", _U8),), outputs=(("codes", _I64), ("token_ids", _I64)))
#: tokenizer decoder: token_ids int64 [B, k_max], budget int64 [B] → image uint8 [B, H, W, 3]
DECODER_IO = OnnxIO(inputs=(("token_ids", _I64), ("budget", _I64)), outputs=(("image", _U8),))
#: policy: token ids, budget, instruction [B, 384], proprio [B, 4] → actions [B, chunk, 4]
#: (the float inputs are float32 in policy.onnx and in policy_fp16.onnx alike)
POLICY_IO = OnnxIO(
    inputs=(("token_ids", _I64), ("budget", _I64), ("instruction", _F32), ("proprio", _F32)),
    outputs=(("actions", _F32),),
)
#: task belief: instruction [B, 384] → belief [B, n_tasks]
BELIEF_IO = OnnxIO(inputs=(("instruction", _F32),), outputs=(("belief", _F32),))
#: sentence encoder (``policies.export_instruction``): WordPiece ids, mask, types [B, T] →
#: token embeddings [B, T, 384]
INSTRUCTION_IO = OnnxIO(
    inputs=(("input_ids", _I64), ("attention_mask", _I64), ("token_type_ids", _I64)),
    outputs=(("token_embeddings", _F32),),
)


class ModelFileError(ValueError):
    """Model files missing, malformed, or from a different model than expected."""


class TokenizerModelError(ModelFileError):
    """A tokenizer directory that does not honour docs/models.md (foreign or malformed)."""


# --------------------------------------------------------------------------- shipped models


def shipped(name: str = "") -> Path:
    """The shipped model directory ``embodied/models/<name>`` (the root without a name).

    Found through ``importlib.resources`` (the package data of ``embodied``), so it is the
    same place in a checkout, an editable install and a wheel.
    """
    root = Path(str(importlib.resources.files("embodied") / "models"))
    return root / name if name else root


MODELS_DIR = shipped()
#: the suite's instruction cache (+ encoder, where exported), used by a policy directory that
#: has no instruction files of its own
INSTRUCTION_DIR = shipped("instruction")
#: What ``embodied/models`` may weigh in all (MB): tokenizers, policies and the one int8 sentence
#: encoder every policy shares (23 MB of it), so a new sentence needs nothing but the checkout.
MODEL_BUDGET_MB = 55.0
DEFAULT_TOKENIZER = "tok-task"
DEFAULT_POLICY = "vla-task"


def shipped_names(kind: Literal["tokenizer", "policy"]) -> list[str]:
    """Names of the shipped model directories of one kind, sorted."""
    marker = TOKENIZER_JSON if kind == "tokenizer" else POLICY_JSON
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.parent.name for p in MODELS_DIR.glob(f"*/{marker}"))


# --------------------------------------------------------------------------- token ids


def mixed_radix(levels: Sequence[int]) -> tuple[int, ...]:
    """Place values of the FSQ token id: ``id = sum_d code[d] * radix[d]``, with
    ``radix[d] = prod(levels[d+1:])``, so ids lie in ``0 .. prod(levels) - 1``."""
    return tuple(math.prod(levels[d + 1 :]) for d in range(len(levels)))


def codes_to_ids(codes: np.ndarray | Sequence[Any], levels: Sequence[int]) -> np.ndarray:
    """Level indices ``[..., D]`` → token ids ``[...]`` (int64)."""
    return (np.asarray(codes, dtype=np.int64) * np.asarray(mixed_radix(levels), np.int64)).sum(-1)


def ids_to_codes(ids: np.ndarray | Sequence[int], levels: Sequence[int]) -> np.ndarray:
    """Token ids ``[...]`` → level indices ``[..., D]`` (int64); refuses ids out of range."""
    arr = np.asarray(ids, dtype=np.int64)
    vocab = math.prod(levels)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= vocab):
        raise ValueError(f"token ids must be in 0..{vocab - 1}")
    radix = np.asarray(mixed_radix(levels), np.int64)
    return (arr[..., None] // radix) % np.asarray(levels, np.int64)


def onnx_model_id(path: str | Path) -> int:
    """First 4 bytes of SHA-256 of an ONNX file **without its** ``metadata_props``.

    The hash covers every byte of the model but the metadata records
    (:func:`embodied.onnxmeta.without_metadata`: graph, initializers, opsets, producer), so
    stamping metadata into a file (``embodied stamp-metadata``) keeps its id, and a model can
    carry its own id. For a file without metadata it is the hash of the file's bytes, the
    definition the first shipped tokenizers were given their ids by. Bytes that are not a
    protobuf message are hashed as they are.
    """
    data = Path(path).read_bytes()
    with contextlib.suppress(NotOnnx):
        data = without_metadata(data)
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


def encoder_model_id(encoder_path: str | Path) -> int:
    """The tokenizer's ``model_id``: :func:`onnx_model_id` of its encoder ONNX."""
    return onnx_model_id(encoder_path)


# --------------------------------------------------------------------------- json files


def read_json(path: str | Path, error: type[ModelFileError] = ModelFileError) -> dict[str, Any]:
    """A model file's JSON object, or ``error`` naming the file and what is wrong."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: missing (see docs/models.md)") from None
    except ValueError as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise error(f"{path}: expected a JSON object")
    return d


def _write_json(path: str | Path, d: Mapping[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d, indent=2) + "\n")
    return path


def _metadata(d: Mapping[str, Any]) -> dict[str, str]:
    # str() of each value, lists as Python lists: what the shipped ONNX files carry
    return {k: str(list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@dataclass(frozen=True)
class TokenizerSpec:
    """``tokenizer.json``: what both ends must agree on to exchange tokens."""

    name: str
    model_id: int
    k_max: int
    levels: tuple[int, ...]
    resolution: int
    objective: str = "reconstruction"
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def dims(self) -> int:
        return len(self.levels)

    @property
    def vocab(self) -> int:
        return math.prod(self.levels)

    @property
    def radix(self) -> tuple[int, ...]:
        """Mixed-radix place values: ``id = sum_d code[d] * radix[d]``."""
        return mixed_radix(self.levels)

    @property
    def model_id_hex(self) -> str:
        """The model's id as ``tokenizer.json`` and ``policy.json`` spell it (8 hex digits)."""
        return f"{self.model_id:08x}"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = TOKENIZER_JSON) -> TokenizerSpec:
        if raw.get("kind") != "tokenizer":
            raise TokenizerModelError(f"{where}: kind={raw.get('kind')!r}, expected 'tokenizer'")
        if raw.get("format_version") != FORMAT_VERSION:
            raise TokenizerModelError(
                f"{where}: format_version={raw.get('format_version')!r}, this build reads "
                f"{FORMAT_VERSION}"
            )
        missing = [k for k in ("name", "model_id", "k_max", "levels", "resolution") if k not in raw]
        if missing:
            raise TokenizerModelError(f"{where}: missing fields {missing}")
        mid = raw["model_id"]
        if not (
            isinstance(mid, str)
            and len(mid) == 8
            and all(c in "0123456789abcdefABCDEF" for c in mid)
        ):
            raise TokenizerModelError(f"{where}: model_id={mid!r}, expected 8 hex characters")
        levels = raw["levels"]
        if not (
            isinstance(levels, list)
            and levels
            and all(isinstance(v, int) and v >= 2 for v in levels)
        ):
            raise TokenizerModelError(f"{where}: levels={levels!r}, expected a list of ints >= 2")
        k_max = raw["k_max"]
        if not (isinstance(k_max, int) and 1 <= k_max <= MAX_BUDGET):
            raise TokenizerModelError(
                f"{where}: k_max={k_max!r}, expected 1..{MAX_BUDGET} (one budget byte)"
            )
        res = raw["resolution"]
        if not (isinstance(res, int) and res > 0):
            raise TokenizerModelError(f"{where}: resolution={res!r}, expected a positive int")
        known = {f.name for f in fields(cls)} | {"kind"}
        return cls(
            name=str(raw["name"]),
            model_id=int(mid, 16),
            k_max=k_max,
            levels=tuple(levels),
            resolution=res,
            objective=str(raw.get("objective", "reconstruction")),
            format_version=FORMAT_VERSION,
            extra={k: v for k, v in raw.items() if k not in known},
        )

    @classmethod
    def load(cls, path: str | Path) -> TokenizerSpec:
        """Read and validate ``tokenizer.json`` (a file, or the directory holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_JSON
        return cls.from_dict(read_json(path, TokenizerModelError), str(path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "tokenizer",
            "name": self.name,
            "model_id": self.model_id_hex,
            "k_max": self.k_max,
            "levels": list(self.levels),
            "resolution": self.resolution,
            "objective": self.objective,
            "format_version": self.format_version,
            **self.extra,
        }

    def write(self, directory: str | Path) -> Path:
        """Write ``<directory>/tokenizer.json`` (validated first: what is written reads back
        as this spec); returns its path."""
        path = Path(directory) / TOKENIZER_JSON
        TokenizerSpec.from_dict(self.to_dict(), str(path))
        return _write_json(path, self.to_dict())


GROUNDINGS = ("mlp", "task-belief")


@dataclass(frozen=True)
class PolicySpec:
    """``policy.json`` (docs/models.md), validated. Field order is the file's order."""

    kind: str
    name: str
    tokenizer: str
    tokenizer_model_id: str
    k_max: int
    vocab: int
    chunk: int
    action_dim: int
    proprio_dim: int
    instruction_encoder: str
    instruction_dim: int
    budget_min: int
    budget_max: int
    blind: bool = False
    format_version: int = FORMAT_VERSION
    #: "task-belief" (a softmax over ``tasks``) or "mlp" (the first policies; files without it)
    instruction_grounding: str = "mlp"
    tasks: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = POLICY_JSON) -> PolicySpec:
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING] + ["format_version"]
        missing = [n for n in required if n not in d]
        if missing:
            raise ModelFileError(f"{where}: missing field(s) {missing}; a policy.json has {names}")
        if d["kind"] != "policy":
            raise ModelFileError(f"{where}: kind is {d['kind']!r}, expected 'policy'")
        if d["format_version"] != FORMAT_VERSION:
            raise ModelFileError(
                f"{where}: format_version {d['format_version']!r}, this run time reads {FORMAT_VERSION}"
            )
        for n in (f.name for f in fields(cls) if f.type == "int"):
            if not isinstance(d[n], int) or isinstance(d[n], bool) or d[n] < 0:
                raise ModelFileError(f"{where}: {n} must be a non-negative integer, got {d[n]!r}")
        blind = d.get("blind", False)
        if not isinstance(blind, bool):
            raise ModelFileError(f"{where}: blind must be true or false, got {blind!r}")
        grounding = d.get("instruction_grounding", "mlp")
        if grounding not in GROUNDINGS:
            raise ModelFileError(
                f"{where}: instruction_grounding {grounding!r}, expected one of {list(GROUNDINGS)}"
            )
        tasks = d.get("tasks", [])
        if not isinstance(tasks, list | tuple) or not all(isinstance(t, str) for t in tasks):
            raise ModelFileError(f"{where}: tasks must be a list of task names, got {tasks!r}")
        spec = cls(
            **{n: d[n] for n in names if n in d and n not in ("tasks", "blind")},
            blind=blind,
            tasks=tuple(tasks),
        )
        if not 0 <= spec.budget_min <= spec.budget_max <= spec.k_max:
            raise ModelFileError(
                f"{where}: need 0 <= budget_min <= budget_max <= k_max, got "
                f"{spec.budget_min}, {spec.budget_max}, {spec.k_max}"
            )
        if min(spec.vocab, spec.chunk, spec.action_dim, spec.k_max) < 1:
            raise ModelFileError(f"{where}: vocab, chunk, action_dim and k_max must be >= 1")
        return spec

    @classmethod
    def load(cls, path: str | Path) -> PolicySpec:
        """Read and validate ``policy.json`` (a file, or the directory holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / POLICY_JSON
        return cls.from_dict(cls.read(path), str(path))

    @staticmethod
    def read(path: str | Path) -> dict[str, Any]:
        """The raw ``policy.json`` object, or a ModelFileError."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(
                f"{path}: not found; a policy directory holds {POLICY_JSON} + "
                f"{POLICY_ONNX['fp32']} [+ {POLICY_ONNX['fp16']}] (docs/models.md)"
            )
        return read_json(path)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["tasks"] = list(self.tasks)
        return d

    def write(self, directory: str | Path) -> Path:
        """Write ``<directory>/policy.json`` (validated first: what is written reads back as
        this spec); returns its path."""
        path = Path(directory) / POLICY_JSON
        PolicySpec.from_dict(self.to_dict(), str(path))
        return _write_json(path, self.to_dict())

    def metadata(self) -> dict[str, str]:
        """What the exporter writes into ``metadata_props`` (strings, as ONNX stores them)."""
        return _metadata(self.to_dict())

    def check_tokenizer(self, tok: TokenizerSpec, where: str = POLICY_JSON) -> None:
        """Refuse a tokenizer whose ids this policy does not understand (the *model's* id,
        ``TokenizerSpec.model_id_hex``, against ``tokenizer_model_id``; never the stream id)."""
        if tok.model_id_hex != self.tokenizer_model_id:
            raise ModelFileError(
                f"{where}: the policy was trained on tokens of tokenizer {self.tokenizer!r} "
                f"(model_id {self.tokenizer_model_id}), but the tokenizer in use has model_id "
                f"{tok.model_id_hex}: its token ids mean something else"
            )
        if tok.k_max != self.k_max or tok.vocab != self.vocab:
            raise ModelFileError(
                f"tokenizer k_max={tok.k_max} vocab={tok.vocab} but the policy expects "
                f"k_max={self.k_max} vocab={self.vocab}"
            )


def check_io(
    session: ort.InferenceSession,
    path: str | Path,
    io: OnnxIO,
    error: type[ModelFileError] = ModelFileError,
) -> None:
    """Refuse an ONNX Runtime session whose input/output names or element types differ from
    ``io`` (float inputs may be float16 in an fp16 export)."""
    got_in = {i.name: i.type for i in session.get_inputs()}
    got_out = {o.name: o.type for o in session.get_outputs()}
    for kind, want, got in (("input", io.inputs, got_in), ("output", io.outputs, got_out)):
        for name, typ in want:
            ok = got.get(name) == typ or (typ == _F32 and got.get(name) == "tensor(float16)")
            if not ok:
                raise error(
                    f"{path}: expected {kind} {name!r} of {typ} (docs/models.md), model has {got}"
                )


# --------------------------------------------------------------------------- ONNX metadata

#: ``metadata_props`` keys of every shipped or exported ONNX file (docs/models.md, "ONNX
#: metadata"), so a file opened in plain ONNX Runtime says what it is:
#: the model it belongs to (a tokenizer's or policy's name; the instruction encoder's model)
META_MODEL_NAME = "model_name"
#: 8 hex digits: a tokenizer's ``model_id`` (its encoder's :func:`onnx_model_id`) on both its
#: files; a policy's: :func:`onnx_model_id` of its fp32 ``policy.onnx``, on its fp16 variant
#: and task belief too; an instruction encoder's: its own file's
META_MODEL_ID = "model_id"
#: one of :data:`ONNX_ROLES`
META_ROLE = "role"
#: JSON lists, in the graph's order, of ``{"name", "dtype", "shape", "meaning"}`` (dtype a
#: numpy name, shape with ``"B"`` / ``"T"`` for the batch / sequence axis)
META_INPUTS = "inputs"
META_OUTPUTS = "outputs"
#: JSON ``[lo, hi]``: the token budgets the model takes (a tokenizer 1..k_max, a policy
#: budget_min..budget_max, 0 = no image), ``null`` for a model that reads no tokens
META_BUDGET = "budget_range"
#: the tokenizer whose token ids the model reads or writes (a tokenizer: its own model id;
#: a policy and its task belief: policy.json's); ``none`` where no tokenizer is involved
META_TOKENIZER_ID = "tokenizer_model_id"
#: the model-file format (:data:`FORMAT_VERSION`)
META_FORMAT = "format_version"
#: one sentence for a person
META_DESCRIPTION = "description"
ONNX_METADATA_KEYS = (
    META_MODEL_NAME,
    META_MODEL_ID,
    META_ROLE,
    META_INPUTS,
    META_OUTPUTS,
    META_BUDGET,
    META_TOKENIZER_ID,
    META_FORMAT,
    META_DESCRIPTION,
)
OnnxRole = Literal[
    "tokenizer_encoder", "tokenizer_decoder", "policy", "task_belief", "instruction_encoder"
]
ONNX_ROLES: tuple[OnnxRole, ...] = (
    "tokenizer_encoder",
    "tokenizer_decoder",
    "policy",
    "task_belief",
    "instruction_encoder",
)
#: ``tokenizer_model_id`` of a model that reads no tokenizer's ids
NO_TOKENIZER = "none"
#: numpy dtype name → ONNX Runtime's type string (``NodeArg.type``)
ORT_TYPES = {"uint8": _U8, "int64": _I64, "float32": _F32}
_NUMPY_TYPES = {v: k for k, v in ORT_TYPES.items()}


def _io_entries(
    pairs: Sequence[tuple[str, str]],
    shapes: Mapping[str, Sequence[int | str]],
    meanings: Mapping[str, str],
) -> str:
    return json.dumps(
        [
            {"name": n, "dtype": _NUMPY_TYPES[t], "shape": list(shapes[n]), "meaning": meanings[n]}
            for n, t in pairs
        ]
    )


def onnx_metadata(
    *,
    role: OnnxRole,
    model_name: str,
    model_id: str,
    io: OnnxIO,
    shapes_in: Mapping[str, Sequence[int | str]],
    meanings_in: Mapping[str, str],
    shapes_out: Mapping[str, Sequence[int | str]],
    meanings_out: Mapping[str, str],
    budget: tuple[int, int] | None,
    tokenizer_model_id: str,
    description: str,
) -> dict[str, str]:
    """The :data:`ONNX_METADATA_KEYS` of one file, as the strings ONNX stores."""
    if role not in ONNX_ROLES:
        raise ValueError(f"role {role!r}, expected one of {list(ONNX_ROLES)}")
    return {
        META_MODEL_NAME: model_name,
        META_MODEL_ID: model_id,
        META_ROLE: role,
        META_INPUTS: _io_entries(io.inputs, shapes_in, meanings_in),
        META_OUTPUTS: _io_entries(io.outputs, shapes_out, meanings_out),
        META_BUDGET: json.dumps(None if budget is None else list(budget)),
        META_TOKENIZER_ID: tokenizer_model_id,
        META_FORMAT: str(FORMAT_VERSION),
        META_DESCRIPTION: description,
    }


def tokenizer_onnx_metadata(
    spec: TokenizerSpec, role: Literal["tokenizer_encoder", "tokenizer_decoder"]
) -> dict[str, str]:
    """Metadata of a tokenizer's encoder or decoder ONNX (both carry the tokenizer's id)."""
    r, k = spec.resolution, spec.k_max
    image, tokens = ["B", r, r, 3], ["B", k]
    frame = (
        f"RGB frame, 0..255, {r}x{r} (a camera frame of another size first goes through "
        "embodied.camera.to_model_input: centre crop to the aspect ratio, INTER_AREA resize)"
    )
    ids = (
        f"token ids 0..{spec.vocab - 1} (FSQ levels {list(spec.levels)}, id = sum_d code[d] * "
        f"radix[d], radix {list(spec.radix)}), in token order"
    )
    if role == "tokenizer_encoder":
        io = ENCODER_IO
        desc = (
            f"{spec.name} tokenizer encoder ({spec.objective}): one {r}x{r} RGB frame -> {k} "
            f"ordered FSQ tokens; any prefix k in 1..{k} describes the frame (nested dropout)"
        )
        shapes_in, meanings_in = {"image": image}, {"image": frame}
        shapes_out = {"codes": ["B", k, spec.dims], "token_ids": tokens}
        meanings_out = {
            "codes": f"per-token FSQ level indices, codes[..., d] in 0..levels[d]-1 "
            f"(levels {list(spec.levels)}); all {k} tokens, send a prefix",
            "token_ids": f"{ids}; all {k} tokens, send a prefix",
        }
    else:
        io = DECODER_IO
        desc = (
            f"{spec.name} tokenizer decoder ({spec.objective}): the first `budget` of {k} "
            f"token ids -> the {r}x{r} RGB frame they describe"
        )
        shapes_in, shapes_out = {"token_ids": tokens, "budget": ["B"]}, {"image": image}
        meanings_in = {
            "token_ids": f"{ids}; positions >= budget are ignored (any value)",
            "budget": f"tokens to use per row, 1..{k}",
        }
        meanings_out = {"image": f"reconstructed RGB frame, 0..255, {r}x{r}"}
    meta = onnx_metadata(
        role=role, model_name=spec.name, model_id=spec.model_id_hex, io=io,
        shapes_in=shapes_in, meanings_in=meanings_in, shapes_out=shapes_out,
        meanings_out=meanings_out, budget=(1, k), tokenizer_model_id=spec.model_id_hex,
        description=f"{desc}. Files: docs/models.md",
    )  # fmt: skip
    extra = {"k_max": k, "levels": list(spec.levels), "resolution": r, "objective": spec.objective}
    return {**meta, **_metadata(extra)}


def policy_onnx_metadata(
    spec: PolicySpec, model_id: str, role: Literal["policy", "task_belief"] = "policy"
) -> dict[str, str]:
    """Metadata of a policy's ONNX (``policy.onnx`` / ``policy_fp16.onnx``: the policy.json
    fields too) or of its task belief; ``model_id``: the fp32 policy's :func:`onnx_model_id`."""
    instr = (
        f"L2-normalised {spec.instruction_encoder} sentence embedding "
        f"({spec.instruction_dim} floats); all zeros = no instruction"
    )
    tasks = f"the policy's {len(spec.tasks)} tasks (metadata tasks, in order)"
    if role == "task_belief":
        meta = onnx_metadata(
            role=role, model_name=spec.name, model_id=model_id, io=BELIEF_IO,
            shapes_in={"instruction": ["B", spec.instruction_dim]}, meanings_in={"instruction": instr},
            shapes_out={"belief": ["B", len(spec.tasks)]},
            meanings_out={"belief": f"softmax over {tasks}: which task the instruction names"},
            budget=None, tokenizer_model_id=spec.tokenizer_model_id,
            description=f"{spec.name} task belief: instruction embedding -> belief over {tasks}, "
            "the softmax the policy conditions on. Files: docs/models.md",
        )  # fmt: skip
        return {"kind": "task_belief", "policy": spec.name, "tasks": json.dumps(list(spec.tasks)),
                **meta}  # fmt: skip
    lo, hi = spec.budget_min, spec.budget_max
    tok = f"tokenizer {spec.tokenizer} (model_id {spec.tokenizer_model_id})"
    meta = onnx_metadata(
        role=role, model_name=spec.name, model_id=model_id, io=POLICY_IO,
        shapes_in={"token_ids": ["B", spec.k_max], "budget": ["B"],
                   "instruction": ["B", spec.instruction_dim], "proprio": ["B", spec.proprio_dim]},
        meanings_in={
            "token_ids": f"token ids 0..{spec.vocab - 1} of {tok}, in token order; positions "
            ">= budget are ignored (any value)",
            "budget": f"tokens to use per row, {lo}..{hi}; 0 = no image",
            "instruction": instr,
            "proprio": "end-effector x, y, z and gripper opening (sim.env)",
        },
        shapes_out={"actions": ["B", spec.chunk, spec.action_dim]},
        meanings_out={"actions": f"{spec.chunk} actions, first to act first: end-effector "
                      "dx, dy, dz and gripper, each in [-1, 1] (Meta-World action space)"},
        budget=(lo, hi), tokenizer_model_id=spec.tokenizer_model_id,
        description=f"{spec.name} VLA policy: "
        + ("no image (budget 0; token_ids unread)" if hi == 0 else f"tokens of {tok} at budget "
           f"{lo}..{hi}") + ", instruction, proprioception -> an action chunk. Files: docs/models.md",
    )  # fmt: skip
    return {**spec.metadata(), **meta}


def instruction_onnx_metadata(
    model_id: str, encoder: str, dim: int, text_tokenizer: str
) -> dict[str, str]:
    """Metadata of an exported sentence encoder (``policies.export_instruction``)."""
    seq = {n: ["B", "T"] for n in ("input_ids", "attention_mask", "token_type_ids")}
    meta = onnx_metadata(
        role="instruction_encoder", model_name=encoder, model_id=model_id, io=INSTRUCTION_IO,
        shapes_in=seq,
        meanings_in={
            "input_ids": f"WordPiece ids of the sentence ({text_tokenizer}), [CLS] .. [SEP], "
            "0-padded to T",
            "attention_mask": "1 for the sentence's tokens, 0 for padding",
            "token_type_ids": "all 0",
        },
        shapes_out={"token_embeddings": ["B", "T", dim]},
        meanings_out={"token_embeddings": f"{dim}-d embedding per token; the mean over real "
                      "tokens, L2-normalised, is the sentence embedding a policy reads"},
        budget=None, tokenizer_model_id=NO_TOKENIZER,
        description=f"{encoder} sentence encoder (token embeddings; mean pooling and L2 "
        "normalisation in embodied.instruction). Files: docs/models.md",
    )  # fmt: skip
    return {
        "kind": "instruction_encoder", "instruction_encoder": encoder,
        "instruction_dim": str(dim), "pooling": "mean", "normalize": "l2",
        "tokenizer": text_tokenizer, **meta,
    }  # fmt: skip


def model_dir_metadata(
    directory: str | Path, files: Sequence[str] | None = None
) -> dict[str, dict[str, str]]:
    """What each ONNX file in a model directory must carry: ``{file name: metadata}``.

    Read from the directory's ``tokenizer.json`` / ``policy.json`` and the files' own ids;
    a tokenizer whose encoder does not hash to its ``model_id`` is refused, and so is an
    ONNX file of no known role. ``files``: only these (file names), default every ``*.onnx``.
    """
    from embodied.instruction import (  # it imports this module: not at the top
        ENCODER_FILENAMES,
        ENCODER_ID,
        INSTRUCTION_DIM,
        TOKENIZER_FILENAME,
    )

    d = Path(directory)
    present = sorted(p.name for p in d.glob("*.onnx")) if files is None else list(files)
    out: dict[str, dict[str, str]] = {}
    if (d / TOKENIZER_JSON).is_file():
        tok = TokenizerSpec.load(d)
        if (d / ENCODER_ONNX).is_file() and encoder_model_id(d / ENCODER_ONNX) != tok.model_id:
            raise TokenizerModelError(
                f"{d}: {ENCODER_ONNX} hashes to {encoder_model_id(d / ENCODER_ONNX):08x} but "
                f"{TOKENIZER_JSON} says model_id {tok.model_id_hex}"
            )
        out[ENCODER_ONNX] = tokenizer_onnx_metadata(tok, "tokenizer_encoder")
        out[DECODER_ONNX] = tokenizer_onnx_metadata(tok, "tokenizer_decoder")
    if (d / POLICY_JSON).is_file():
        pol = PolicySpec.load(d)
        fp32 = d / POLICY_ONNX["fp32"]
        if not fp32.is_file():
            raise ModelFileError(f"{d}: {POLICY_JSON} but no {fp32.name}")
        pid = f"{onnx_model_id(fp32):08x}"
        for name in POLICY_ONNX.values():
            out[name] = policy_onnx_metadata(pol, pid)
        out[BELIEF_ONNX] = policy_onnx_metadata(pol, pid, "task_belief")
    for name in ENCODER_FILENAMES:
        if (d / name).is_file():
            mid = f"{onnx_model_id(d / name):08x}"
            out[name] = instruction_onnx_metadata(mid, ENCODER_ID, INSTRUCTION_DIM,
                                                  TOKENIZER_FILENAME)  # fmt: skip
    unknown = [n for n in present if n not in out]
    if unknown:
        raise ModelFileError(
            f"{d}: {unknown}: no known role (a tokenizer, policy or instruction encoder file "
            "of docs/models.md, beside its json)"
        )
    return {n: out[n] for n in present}


def stamp_model_dir(
    directory: str | Path, files: Sequence[str] | None = None, *, dry_run: bool = False
) -> list[Path]:
    """Write :func:`model_dir_metadata` into the directory's ONNX files (``files``: only those;
    other keys kept); returns the files that changed (or would, with ``dry_run``). Idempotent;
    weights and graph stay byte-identical (:func:`embodied.onnxmeta.with_metadata`), so ids
    do not change."""
    d = Path(directory)
    changed = []
    for name, meta in model_dir_metadata(d, files).items():
        path = d / name
        before = onnx_model_id(path)
        current = read_metadata(path)
        if all(current.get(k) == v for k, v in meta.items()):
            continue
        changed.append(path)
        if not dry_run:
            write_metadata(path, meta)
            if onnx_model_id(path) != before:  # pragma: no cover - by construction
                raise ModelFileError(f"{path}: stamping changed the model's bytes")
    return changed


def stamp_main(argv: Sequence[str] | None = None) -> int:
    """``embodied stamp-metadata [ROOT ...] [--check]``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="embodied stamp-metadata",
        description="Write the ONNX metadata of docs/models.md (model, role, inputs and outputs, "
        "budget range, paired tokenizer) into model directories' ONNX files, leaving weights, "
        "graph and model ids unchanged. Idempotent.",
    )
    p.add_argument("roots", nargs="*", type=Path, default=[MODELS_DIR],
                   help=f"a model directory or a root of them (default {MODELS_DIR})")  # fmt: skip
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    a = p.parse_args(argv)
    stale = 0
    for root in a.roots:
        dirs = [root, *sorted(c for c in root.iterdir() if c.is_dir())] if root.is_dir() else []
        if not dirs:
            print(f"embodied stamp-metadata: {root}: not a directory", file=sys.stderr)
            return 2
        for d in dirs:
            if not any(d.glob("*.onnx")):
                continue
            try:
                changed = stamp_model_dir(d, dry_run=a.check)
            except ModelFileError as e:
                print(f"embodied stamp-metadata: {e}", file=sys.stderr)
                return 2
            stale += len(changed)
            for f in sorted(d.glob("*.onnx")):
                state = ("stale" if a.check else "stamped") if f in changed else "up to date"
                print(f"  {f}: {state}")
    return 1 if a.check and stale else 0


__all__ = [
    "BELIEF_IO",
    "BELIEF_ONNX",
    "CHECKPOINT",
    "DECODER_IO",
    "DECODER_ONNX",
    "DEFAULT_POLICY",
    "DEFAULT_TOKENIZER",
    "ENCODER_IO",
    "ENCODER_ONNX",
    "FORMAT_VERSION",
    "INSTRUCTION_CACHE",
    "INSTRUCTION_DIR",
    "INSTRUCTION_IO",
    "META_BUDGET",
    "META_DESCRIPTION",
    "META_FORMAT",
    "META_INPUTS",
    "META_MODEL_ID",
    "META_MODEL_NAME",
    "META_OUTPUTS",
    "META_ROLE",
    "META_TOKENIZER_ID",
    "MODELS_DIR",
    "MODEL_BUDGET_MB",
    "NO_TOKENIZER",
    "ONNX_METADATA_KEYS",
    "ONNX_ROLES",
    "ORT_TYPES",
    "POLICY_IO",
    "POLICY_JSON",
    "POLICY_ONNX",
    "PRIOR_NPY",
    "SHIP_PATTERNS",
    "TOKENIZER_FILES",
    "TOKENIZER_JSON",
    "ModelFileError",
    "OnnxIO",
    "OnnxRole",
    "PolicySpec",
    "TokenizerModelError",
    "TokenizerSpec",
    "check_io",
    "codes_to_ids",
    "encoder_model_id",
    "ids_to_codes",
    "instruction_onnx_metadata",
    "mixed_radix",
    "model_dir_metadata",
    "onnx_metadata",
    "onnx_model_id",
    "policy_onnx_metadata",
    "read_json",
    "shipped",
    "shipped_names",
    "stamp_main",
    "stamp_model_dir",
    "tokenizer_onnx_metadata",
]

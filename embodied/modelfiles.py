"""The model-file contract between training (``policies/``, torch) and run time (ONNX Runtime).

Everything that training writes and the robot reads is named here once (docs/models.md):

* the file names of a tokenizer directory and of a policy directory;
* the ONNX input and output names of every model (:data:`POLICY_IO`, :data:`ENCODER_IO`,
  :data:`DECODER_IO`, :data:`BELIEF_IO`);
* :class:`TokenizerSpec` and :class:`PolicySpec`, which both **write** and **read**
  ``tokenizer.json`` / ``policy.json`` (no dict literals elsewhere), and the strings the
  exporter puts into ONNX ``metadata_props``;
* the packing of FSQ codes into token ids (:func:`mixed_radix`, :func:`codes_to_ids`,
  :func:`ids_to_codes`; the torch side uses the same radix);
* where the shipped models live (:func:`shipped`, by ``importlib.resources``, so an installed
  wheel finds them as a source checkout does).

Model identity comes in two kinds, and they are not the same number:

* the **model's id** (``TokenizerSpec.model_id``, the first 4 bytes of the encoder ONNX's
  SHA-256) says which weights made the tokens; a policy records it as ``tokenizer_model_id``
  and refuses tokens of any other tokenizer;
* the **stream id** that keys a packet's CRC (``TokenCodec.model_id``) also covers the entropy
  coder, since two coders write different bytes for the same tokens (``embodied.codecs.tokens``).

This module imports numpy only: it is read by the robot, by training and by tests alike.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

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


def encoder_model_id(encoder_path: str | Path) -> int:
    """First 4 bytes of SHA-256 of the encoder ONNX file (the tokenizer's ``model_id``)."""
    return int.from_bytes(hashlib.sha256(Path(encoder_path).read_bytes()).digest()[:4], "big")


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
    "MODEL_BUDGET_MB",
    "MODELS_DIR",
    "POLICY_IO",
    "POLICY_JSON",
    "POLICY_ONNX",
    "PRIOR_NPY",
    "SHIP_PATTERNS",
    "TOKENIZER_FILES",
    "TOKENIZER_JSON",
    "ModelFileError",
    "OnnxIO",
    "PolicySpec",
    "TokenizerModelError",
    "TokenizerSpec",
    "check_io",
    "codes_to_ids",
    "encoder_model_id",
    "ids_to_codes",
    "mixed_radix",
    "read_json",
    "shipped",
    "shipped_names",
]

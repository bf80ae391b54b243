"""The VLA policy on ONNX Runtime: one ``infer(observation) -> action chunk`` call, plus wrappers.

What crosses into the policy is checked before it reaches the model, because on the
robot a bad input does not fail loudly by itself: an out-of-range token id indexes
past an embedding table (garbage on some providers, a crash on others), a NaN in the
proprioception turns into a NaN action that a controller forwards to a motor. Each
bad input raises :class:`PolicyInputError` naming the field and what is allowed; a
non-finite action from the model raises :class:`PolicyOutputError`, so no NaN action
ever leaves :meth:`OnnxPolicy.infer`.

Model files follow docs/models.md (``policy.json`` + ``policy.onnx`` [+
``policy_fp16.onnx``]); a missing or foreign file raises :class:`ModelFileError` naming
what was expected.

Wrappers, not branches (the openpi pattern): :class:`LatencyMeter` times calls,
:class:`ActionChunker` serves one action per control step from the latest chunk. Each
takes anything with ``infer(obs)``, so they compose::

    policy = OnnxPolicy("embodied/models/vla-recon")
    meter = LatencyMeter(policy)
    robot = ActionChunker(meter)
    a = robot.act({"token_ids": ids, "budget": 8, "instruction": "open the drawer",
                   "proprio": ee_state})
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from embodied.instruction import (
    CACHE_FILENAME,
    ENCODER_FILENAMES,
    ENCODER_ID,
    InstructionEncoder,
    InstructionEncoderUnavailable,
    InstructionError,
)
from embodied.providers import (
    FP16_CPU_DISABLED_OPTIMIZERS,
    TensorRTOptions,
    active_provider,
    make_session,
)

log = logging.getLogger(__name__)

POLICY_JSON = "policy.json"
ONNX_FILES = {"fp32": "policy.onnx", "fp16": "policy_fp16.onnx"}
#: instruction embedding → belief over the policy's tasks (policies with a task belief only)
BELIEF_ONNX = "task_belief.onnx"
INPUTS = ("token_ids", "budget", "instruction", "proprio")
OUTPUT = "actions"
FORMAT_VERSION = 1
#: The shipped instruction cache (+ encoder, where exported), used when a model directory
#: has no instruction files of its own.
SHIPPED_INSTRUCTION_DIR = Path(__file__).resolve().parent / "models" / "instruction"
#: Allowed |norm - 1| of an instruction embedding: an fp16 round trip moves it by ~1e-3, an
#: unnormalised vector by far more.
NORM_TOL = 1e-2


class PolicyInputError(ValueError):
    """An observation field the policy cannot take. ``field`` and ``allowed`` say which and what."""

    def __init__(self, field: str, problem: str, allowed: str) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        super().__init__(f"{field}: {problem}; allowed: {allowed}")


class PolicyOutputError(RuntimeError):
    """The model produced non-finite actions; they are withheld, never returned."""


class ModelFileError(ValueError):
    """Model files missing, malformed, or from a different model than expected."""


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class PolicySpec:
    """``policy.json`` (docs/models.md), validated."""

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
    format_version: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = POLICY_JSON) -> PolicySpec:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ModelFileError(f"{where}: missing field(s) {missing}; a policy.json has {names}")
        if d["kind"] != "policy":
            raise ModelFileError(f"{where}: kind is {d['kind']!r}, expected 'policy'")
        if d["format_version"] != FORMAT_VERSION:
            raise ModelFileError(
                f"{where}: format_version {d['format_version']!r}, this run time reads {FORMAT_VERSION}"
            )
        ints = [f.name for f in fields(cls) if f.type == "int"]
        for n in ints:
            if not isinstance(d[n], int) or isinstance(d[n], bool) or d[n] < 0:
                raise ModelFileError(f"{where}: {n} must be a non-negative integer, got {d[n]!r}")
        spec = cls(**{n: d[n] for n in names})
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
        return cls.from_dict(cls.read(path), str(path))

    @staticmethod
    def read(path: str | Path) -> dict[str, Any]:
        """The raw ``policy.json`` object (optional fields included), or a ModelFileError."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(
                f"{path}: not found; a policy directory holds {POLICY_JSON} + {ONNX_FILES['fp32']}"
                f" [+ {ONNX_FILES['fp16']}] (docs/models.md)"
            )
        try:
            d = json.loads(path.read_text())
        except ValueError as e:
            raise ModelFileError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(d, dict):
            raise ModelFileError(f"{path}: expected a JSON object")
        return d

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def metadata(self) -> dict[str, str]:
        """What the exporter writes into ``metadata_props`` (strings, as ONNX stores them)."""
        return {k: str(v) for k, v in self.to_dict().items()}


@dataclass
class Observation:
    """One policy input. ``token_ids``: the first ``budget`` tokens (or a k_max-padded row);
    ``instruction``: a phrasing or its 384-d L2-normalised embedding; ``proprio``: (4,)."""

    token_ids: np.ndarray | Sequence[int] | None
    budget: int
    instruction: str | np.ndarray
    proprio: np.ndarray | Sequence[float]


@runtime_checkable
class Policy(Protocol):
    """Anything that maps an observation to an action chunk ``[chunk, action_dim]``."""

    def infer(self, obs: Any) -> np.ndarray: ...


def _field(obs: Any, name: str) -> Any:
    if isinstance(obs, Mapping):
        if name not in obs:
            raise PolicyInputError(name, "missing from the observation", f"keys {list(INPUTS)}")
        return obs[name]
    if not hasattr(obs, name):
        raise PolicyInputError(
            name, f"missing from the observation ({type(obs).__name__})", f"fields {list(INPUTS)}"
        )
    return getattr(obs, name)


# --------------------------------------------------------------------------- policy


class OnnxPolicy:
    """The policy of one model directory on ONNX Runtime (CPU, CUDA or TensorRT).

    ``precision`` picks ``policy.onnx`` or ``policy_fp16.onnx`` (same fp32 I/O).
    ``instruction_encoder`` turns phrasings into embeddings: an
    :class:`~embodied.instruction.InstructionEncoder`, a directory for
    :meth:`InstructionEncoder.from_dir`, or ``None`` to use the model directory's own
    ``instruction_cache.json`` / encoder files if it has any, else the shipped
    ``embodied/models/instruction/`` (the suite's phrasings, cached). ``tokenizer_model_id``, when
    given (the tokenizer in use), must equal the one the policy was trained on.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        precision: Literal["fp32", "fp16"] = "fp32",
        providers: Sequence[str] | str | None = None,
        threads: int = 1,
        trt: TensorRTOptions | None = None,
        instruction_encoder: InstructionEncoder | str | Path | None = None,
        tokenizer_model_id: str | None = None,
        clip: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise ModelFileError(f"{self.model_dir}: policy model directory not found")
        raw = PolicySpec.read(self.model_dir / POLICY_JSON)
        self.spec = PolicySpec.from_dict(raw, str(self.model_dir / POLICY_JSON))
        #: the tasks of the policy's task belief (empty for the first policies' MLP grounding)
        self.tasks: tuple[str, ...] = tuple(raw.get("tasks", ()))
        self.grounding: str = raw.get("instruction_grounding", "mlp")
        self._belief: Any = None
        if precision not in ONNX_FILES:
            raise ValueError(f"precision must be one of {list(ONNX_FILES)}, got {precision!r}")
        self.precision = precision
        self.onnx_path = self.model_dir / ONNX_FILES[precision]
        if not self.onnx_path.is_file():
            have = sorted(p.name for p in self.model_dir.iterdir())
            raise ModelFileError(
                f"{self.onnx_path}: not found (precision={precision!r} expects "
                f"{ONNX_FILES[precision]}); the directory holds {have}"
            )
        if tokenizer_model_id is not None:
            self.check_tokenizer_model_id(tokenizer_model_id)
        self.clip = clip
        self.session = make_session(
            self.onnx_path,
            providers=providers,
            threads=threads,
            trt=trt,
            disabled_optimizers=FP16_CPU_DISABLED_OPTIMIZERS if precision == "fp16" else (),
        )
        self.provider = active_provider(self.session)
        self._check_graph()
        self._float_types = {
            i.name: (np.float16 if i.type == "tensor(float16)" else np.float32)
            for i in self.session.get_inputs()
        }
        self.encoder = self._open_encoder(instruction_encoder)

    # -- model checks ------------------------------------------------------------

    def check_tokenizer_model_id(self, model_id: str) -> None:
        if model_id != self.spec.tokenizer_model_id:
            raise ModelFileError(
                f"{self.model_dir}: the policy was trained on tokens of tokenizer "
                f"{self.spec.tokenizer!r} (model_id {self.spec.tokenizer_model_id}), but the "
                f"tokenizer in use has model_id {model_id}: its token ids mean something else"
            )

    def check_tokenizer(self, tokenizer_json: str | Path | Mapping[str, Any]) -> None:
        """Refuse a tokenizer (its ``tokenizer.json``) whose ids this policy does not understand."""
        meta = (
            tokenizer_json
            if isinstance(tokenizer_json, Mapping)
            else json.loads(Path(tokenizer_json).read_text())
        )
        self.check_tokenizer_model_id(str(meta.get("model_id")))
        vocab = math.prod(meta.get("levels", [])) if meta.get("levels") else None
        if meta.get("k_max") != self.spec.k_max or (vocab is not None and vocab != self.spec.vocab):
            raise ModelFileError(
                f"tokenizer k_max={meta.get('k_max')} vocab={vocab} but the policy expects "
                f"k_max={self.spec.k_max} vocab={self.spec.vocab}"
            )

    def _check_graph(self) -> None:
        s = self.spec
        meta = self.session.get_modelmeta().custom_metadata_map
        expected = s.metadata()
        diff = {k: (meta[k], expected[k]) for k in expected if k in meta and meta[k] != expected[k]}
        if diff:
            detail = ", ".join(f"{k}: onnx {a!r} vs json {b!r}" for k, (a, b) in diff.items())
            raise ModelFileError(
                f"{self.onnx_path} and {POLICY_JSON} describe different models ({detail})"
            )
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = {o.name: o for o in self.session.get_outputs()}
        if set(ins) != set(INPUTS) or OUTPUT not in outs:
            raise ModelFileError(
                f"{self.onnx_path}: inputs {sorted(ins)} / outputs {sorted(outs)}; a policy has "
                f"inputs {list(INPUTS)} and output {OUTPUT!r} (docs/models.md)"
            )
        want = {
            "token_ids": ("tensor(int64)", [None, s.k_max]),
            "budget": ("tensor(int64)", [None]),
            "instruction": (None, [None, s.instruction_dim]),
            "proprio": (None, [None, s.proprio_dim]),
        }
        for name, (dtype, shape) in want.items():
            i = ins[name]
            if dtype is not None and i.type != dtype:
                raise ModelFileError(
                    f"{self.onnx_path}: input {name} is {i.type}, expected {dtype}"
                )
            if len(i.shape) != len(shape) or any(
                isinstance(g, int) and w is not None and g != w
                for g, w in zip(i.shape, shape, strict=True)
            ):
                raise ModelFileError(
                    f"{self.onnx_path}: input {name} has shape {i.shape}, policy.json implies "
                    f"[B, {', '.join(str(w) for w in shape[1:])}]"
                )
        o = outs[OUTPUT]
        if len(o.shape) != 3 or any(
            isinstance(g, int) and g != w
            for g, w in zip(o.shape[1:], (s.chunk, s.action_dim), strict=True)
        ):
            raise ModelFileError(
                f"{self.onnx_path}: output actions has shape {o.shape}, policy.json implies "
                f"[B, {s.chunk}, {s.action_dim}]"
            )

    def _open_encoder(self, enc: InstructionEncoder | str | Path | None) -> InstructionEncoder:
        if isinstance(enc, InstructionEncoder):
            return enc
        if enc is not None:
            return InstructionEncoder.from_dir(enc)
        own = [self.model_dir / n for n in (CACHE_FILENAME, *ENCODER_FILENAMES)]
        if any(p.is_file() for p in own) or not SHIPPED_INSTRUCTION_DIR.is_dir():
            return InstructionEncoder.from_dir(self.model_dir)
        return InstructionEncoder.from_dir(SHIPPED_INSTRUCTION_DIR)

    # -- validation ----------------------------------------------------------------

    def _budget(self, value: Any, row: str = "") -> int:
        s = self.spec
        allowed = f"an integer in {s.budget_min}..{s.budget_max}"
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise PolicyInputError(
                "budget" + row, f"got {value!r} ({type(value).__name__})", allowed
            )
        v = int(value)
        if not s.budget_min <= v <= s.budget_max:
            raise PolicyInputError("budget" + row, f"got {v}", allowed)
        return v

    def _token_row(self, value: Any, budget: int, out: np.ndarray, row: str = "") -> None:
        """Validate one row of token ids and write it, zero-padded, into ``out`` (k_max,)."""
        s = self.spec
        allowed = (
            f"integers in 0..{s.vocab - 1}, at least budget ({budget}) and at most k_max "
            f"({s.k_max}) of them"
        )
        name = "token_ids" + row
        if value is None:
            if budget == 0:
                out[:] = 0
                return
            raise PolicyInputError(name, f"missing with budget {budget}", allowed)
        arr = np.asarray(value)
        if arr.shape == (0,):  # [] parses as float64; an empty row is just "no tokens"
            arr = arr.astype(np.int64)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
        ):
            raise PolicyInputError(name, f"dtype {arr.dtype}", allowed)
        if arr.ndim != 1:
            raise PolicyInputError(name, f"shape {arr.shape}, expected one row", allowed)
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)):
                raise PolicyInputError(name, "contains NaN or inf", allowed)
            raise PolicyInputError(name, f"dtype {arr.dtype} (not integers)", allowed)
        n = arr.shape[0]
        if not budget <= n <= s.k_max:
            raise PolicyInputError(name, f"{n} tokens with budget {budget}", allowed)
        if n and (int(arr.min()) < 0 or int(arr.max()) >= s.vocab):
            bad = int(arr[(arr < 0) | (arr >= s.vocab)][0])
            raise PolicyInputError(name, f"token id {bad} out of range", allowed)
        out[:n] = arr
        out[n:] = 0

    def _vector(self, value: Any, name: str, dim: int, allowed: str) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise PolicyInputError(name, f"not numeric ({e})", allowed) from None
        if arr.shape != (dim,):
            raise PolicyInputError(name, f"shape {arr.shape}", allowed)
        if not np.all(np.isfinite(arr)):
            raise PolicyInputError(name, "contains NaN or inf", allowed)
        return arr

    def _proprio(self, value: Any, row: str = "") -> np.ndarray:
        d = self.spec.proprio_dim
        return self._vector(value, "proprio" + row, d, f"finite floats of shape ({d},)")

    def _instruction(self, value: Any, row: str = "") -> np.ndarray:
        d = self.spec.instruction_dim
        allowed = (
            f"a non-empty phrasing (embedded by {self.spec.instruction_encoder}) or its "
            f"L2-normalised embedding: finite float32 of shape ({d},), norm 1"
        )
        name = "instruction" + row
        if isinstance(value, str):
            if not value.strip():
                raise PolicyInputError(name, "empty string", allowed)
            if self.spec.instruction_encoder != ENCODER_ID:
                raise ModelFileError(
                    f"{self.model_dir}: policy expects {self.spec.instruction_encoder} embeddings, "
                    f"this run time embeds with {ENCODER_ID}; pass embeddings instead of text"
                )
            try:
                return self.encoder.encode(value)
            except InstructionError as e:
                if type(e) is InstructionError:
                    raise PolicyInputError(name, str(e), allowed) from e
                raise
        arr = self._vector(value, name, d, allowed)
        norm = float(np.linalg.norm(arr))
        if abs(norm - 1.0) > NORM_TOL:
            raise PolicyInputError(name, f"norm {norm:.4f}", allowed)
        return arr

    # -- task belief -----------------------------------------------------------------

    def task_belief(self, instruction: str | np.ndarray) -> dict[str, float]:
        """Which task the policy reads ``instruction`` as: ``{task: probability}``, most likely
        first (``task_belief.onnx``, the same softmax the policy conditions on). A policy without
        a task belief (``instruction_grounding`` "mlp") raises :class:`ModelFileError`."""
        if self._belief is None:
            path = self.model_dir / BELIEF_ONNX
            if not self.tasks or not path.is_file():
                raise ModelFileError(
                    f"{self.model_dir}: no task belief (instruction_grounding "
                    f"{self.grounding!r}, {BELIEF_ONNX} {'present' if path.is_file() else 'absent'}"
                    "); policies trained by `embodied train` since the language stage have one"
                )
            sess = make_session(path, providers=["CPUExecutionProvider"], threads=1)
            tasks = json.loads(sess.get_modelmeta().custom_metadata_map.get("tasks", "[]"))
            if tuple(tasks) != self.tasks:
                raise ModelFileError(
                    f"{path}: tasks {tasks} differ from {POLICY_JSON}'s {list(self.tasks)}"
                )
            self._belief = sess
        e = self._instruction(instruction).astype(np.float32)
        p = np.asarray(self._belief.run(["belief"], {"instruction": e[None]})[0][0], np.float64)
        return {self.tasks[i]: float(p[i]) for i in np.argsort(-p, kind="stable")}

    # -- inference -------------------------------------------------------------------

    def infer(self, obs: Observation | Mapping[str, Any] | Any) -> np.ndarray:
        """One observation → action chunk ``[chunk, action_dim]`` float32, every entry finite."""
        s = self.spec
        budget = self._budget(_field(obs, "budget"))
        tokens = np.zeros((1, s.k_max), np.int64)
        self._token_row(_field(obs, "token_ids"), budget, tokens[0])
        instr = self._instruction(_field(obs, "instruction"))
        proprio = self._proprio(_field(obs, "proprio"))
        return self._run(tokens, np.array([budget], np.int64), instr[None], proprio[None])[0]

    __call__ = infer

    def infer_batch(
        self,
        token_ids: np.ndarray | Sequence[Sequence[int] | None],
        budget: np.ndarray | Sequence[int],
        instruction: np.ndarray | Sequence[str | np.ndarray],
        proprio: np.ndarray | Sequence[Sequence[float]],
    ) -> np.ndarray:
        """A batch (evaluation): ``[B, chunk, action_dim]``. Rows are validated like :meth:`infer`;
        an error names the row (``token_ids[3]``)."""
        s = self.spec
        b_arr = np.asarray(budget)
        if b_arr.ndim != 1:
            raise PolicyInputError("budget", f"shape {b_arr.shape}", "a 1-D array of budgets [B]")
        n = b_arr.shape[0]
        budgets = np.array([self._budget(b_arr[i], f"[{i}]") for i in range(n)], np.int64)
        if len(token_ids) != n or len(instruction) != n or len(proprio) != n:
            raise PolicyInputError(
                "batch",
                f"lengths token_ids {len(token_ids)}, budget {n}, instruction "
                f"{len(instruction)}, proprio {len(proprio)}",
                "the same batch size B for every field",
            )
        tokens = np.zeros((n, s.k_max), np.int64)
        for i in range(n):
            self._token_row(token_ids[i], int(budgets[i]), tokens[i], f"[{i}]")
        if isinstance(instruction, np.ndarray) and instruction.dtype != object:
            instr = np.stack([self._instruction(instruction[i], f"[{i}]") for i in range(n)])
        else:
            texts = [x for x in instruction if isinstance(x, str) and x.strip()]
            if texts and self.spec.instruction_encoder == ENCODER_ID:
                # one encoder call for all unknown phrasings; failures are reported per row below
                with contextlib.suppress(InstructionError):
                    self.encoder.encode(texts)
            instr = np.stack([self._instruction(instruction[i], f"[{i}]") for i in range(n)])
        prop = np.stack([self._proprio(proprio[i], f"[{i}]") for i in range(n)])
        return self._run(tokens, budgets, instr.astype(np.float32), prop)

    def _run(
        self, tokens: np.ndarray, budget: np.ndarray, instr: np.ndarray, proprio: np.ndarray
    ) -> np.ndarray:
        feed = {
            "token_ids": tokens,
            "budget": budget,
            "instruction": instr.astype(self._float_types["instruction"], copy=False),
            "proprio": proprio.astype(self._float_types["proprio"], copy=False),
        }
        out = self.session.run([OUTPUT], feed)[0]
        actions = np.asarray(out, dtype=np.float32)
        if not np.all(np.isfinite(actions)):
            rows = np.flatnonzero(~np.isfinite(actions).reshape(actions.shape[0], -1).all(axis=1))
            raise PolicyOutputError(
                f"{self.onnx_path}: the model produced NaN/inf actions for batch row(s) "
                f"{rows.tolist()} (budgets {budget[rows].tolist()}); withheld"
            )
        if self.clip:
            # the contract's range; a model without a final tanh must not drive a motor past it
            np.clip(actions, -1.0, 1.0, out=actions)
        return actions


# --------------------------------------------------------------------------- wrappers


@dataclass(frozen=True)
class LatencyStats:
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        x = np.asarray(samples_ms, np.float64)
        if x.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan)
        p50, p99 = np.percentile(x, [50, 99])
        return cls(int(x.size), float(p50), float(p99), float(x.mean()), float(x.max()))


class LatencyMeter:
    """Wraps a policy and records each ``infer`` call's wall time, overall and per budget.

    The per-budget samples are what the rate controller needs (compute(k)); ``window``
    keeps only the most recent calls so the numbers follow thermal throttling on a Jetson.
    Other attributes pass through to the wrapped policy.
    """

    def __init__(self, policy: Policy, window: int | None = None) -> None:
        self.policy = policy
        self.window = window
        self._all: deque[float] = deque(maxlen=window)
        self._by_budget: dict[int, deque[float]] = {}

    def infer(self, obs: Any) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.policy.infer(obs)
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            self._all.append(ms)
            try:
                k = int(_field(obs, "budget"))
            except (PolicyInputError, TypeError, ValueError):
                k = -1
            self._by_budget.setdefault(k, deque(maxlen=self.window)).append(ms)

    __call__ = infer

    @property
    def samples_ms(self) -> list[float]:
        return list(self._all)

    def stats(self, budget: int | None = None) -> LatencyStats:
        if budget is None:
            return LatencyStats.of(self._all)
        return LatencyStats.of(self._by_budget.get(budget, ()))

    def stats_by_budget(self) -> dict[int, LatencyStats]:
        return {k: LatencyStats.of(v) for k, v in sorted(self._by_budget.items())}

    def reset(self) -> None:
        self._all.clear()
        self._by_budget.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


class ActionChunker:
    """Serves one action per control step from the latest action chunk.

    Semantics (the asynchronous inference of LeRobot and openpi):

    * Control steps are counted by :meth:`next_action` (``step`` is the index of the next
      action to execute). A chunk computed from the observation of step ``t`` holds the
      actions for steps ``t, t+1, ...``; :meth:`submit` with ``obs_step=t`` drops the ones
      already in the past (the inference latency), so the robot never replays stale actions.
    * A newer chunk replaces whatever is left of the current one. A chunk from an older
      observation than the current chunk's (out-of-order arrival), or one entirely in the
      past, is ignored (``submit`` returns ``False``).
    * While a newer observation is in flight (:meth:`mark_requested`), the current chunk
      keeps executing: nothing waits for the policy.
    * When the chunk is exhausted and nothing newer has arrived, the chunker **holds**: it
      repeats the last action with the motion dimensions zeroed (``motion_dims``, the
      end-effector deltas xyz for Meta-World) and the gripper dimension unchanged, i.e. the
      arm stays where it is and keeps its grip. Before any chunk, the hold action is
      ``initial_action`` (zeros unless given). ``held_steps`` counts these steps: each one
      is a deadline miss of the inference loop.

    With a ``policy``, :meth:`act` is the synchronous loop: infer when the chunk is
    exhausted (or every ``replan_every`` steps), then serve the next action.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        action_dim: int = 4,
        motion_dims: Sequence[int] = (0, 1, 2),
        gripper_index: int | None = 3,
        initial_action: np.ndarray | Sequence[float] | None = None,
        replan_every: int | None = None,
    ) -> None:
        if replan_every is not None and replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {replan_every}")
        self.policy = policy
        self.action_dim = action_dim
        self.motion_dims = tuple(motion_dims)
        self.gripper_index = gripper_index
        init = np.zeros(action_dim, np.float32) if initial_action is None else initial_action
        self.initial_action = np.asarray(init, np.float32).reshape(action_dim).copy()
        self.replan_every = replan_every
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self._queue: deque[np.ndarray] = deque()
        self._chunk_obs_step: int | None = None
        self._since_submit = 0
        self._last = self.initial_action.copy()
        self.in_flight: int | None = None
        self.held_steps = 0
        self.stale_chunks = 0

    @property
    def remaining(self) -> int:
        """Actions left in the current chunk."""
        return len(self._queue)

    @property
    def holding(self) -> bool:
        return not self._queue

    def hold_action(self) -> np.ndarray:
        a = self._last.copy()
        a[list(self.motion_dims)] = 0.0
        return a

    def mark_requested(self, obs_step: int | None = None) -> None:
        """Note that the observation of ``obs_step`` (default: now) is on its way to the policy."""
        self.in_flight = self.step if obs_step is None else obs_step

    def should_request(self, threshold: float = 0.5, chunk_len: int | None = None) -> bool:
        """LeRobot's trigger: ask for a new chunk once ``remaining / chunk_len <= threshold``
        and no request is in flight."""
        if self.in_flight is not None:
            return False
        n = chunk_len or max(self._since_submit + self.remaining, 1)
        return self.remaining / n <= threshold

    def submit(self, chunk: np.ndarray, obs_step: int | None = None) -> bool:
        """Install ``chunk`` ``[H, action_dim]`` computed from the observation of ``obs_step``."""
        c = np.asarray(chunk, np.float32)
        if c.ndim != 2 or c.shape[1] != self.action_dim:
            raise ValueError(f"chunk shape {c.shape}, expected [H, {self.action_dim}]")
        if not np.all(np.isfinite(c)):
            raise PolicyOutputError("action chunk contains NaN/inf; not executed")
        t = self.step if obs_step is None else int(obs_step)
        if self.in_flight is not None and t >= self.in_flight:
            self.in_flight = None
        if self._chunk_obs_step is not None and t < self._chunk_obs_step:
            self.stale_chunks += 1
            return False
        skip = self.step - t
        if skip < 0:
            raise ValueError(f"chunk for observation step {t} is in the future (now {self.step})")
        if skip >= len(c):
            self.stale_chunks += 1
            return False
        self._queue = deque(c[skip:].copy())
        self._chunk_obs_step = t
        self._since_submit = 0
        return True

    def drop_chunk(self) -> None:
        """Discard what is left of the current chunk: the next steps hold.

        A stop command, or a watchdog that found the policy silent: executing actions
        planned from an observation that old is worse than holding still. Chunks older
        than the dropped one stay refused.
        """
        self._queue.clear()

    def next_action(self) -> np.ndarray:
        """The action for this control step (advances ``step``)."""
        if self._queue:
            a = self._queue.popleft()
            self._last = a
        else:
            a = self.hold_action()
            self.held_steps += 1
        self.step += 1
        self._since_submit += 1
        return a.copy()

    def act(self, obs: Any) -> np.ndarray:
        """Synchronous loop: re-plan when the chunk is exhausted (or every ``replan_every``)."""
        if self.policy is None:
            raise RuntimeError("ActionChunker.act needs a policy; use submit/next_action otherwise")
        due = not self._queue or (
            self.replan_every is not None and self._since_submit >= self.replan_every
        )
        if due:
            self.submit(self.policy.infer(obs), obs_step=self.step)
        return self.next_action()

    def __getattr__(self, name: str) -> Any:
        policy = self.__dict__.get("policy")
        if policy is None:
            raise AttributeError(name)
        return getattr(policy, name)


# --------------------------------------------------------------------------- CLI


def belief_main(argv: Sequence[str] | None = None) -> int:
    """``embodied belief "open the tap" ...``: which task a policy reads each phrasing as."""
    import argparse

    p = argparse.ArgumentParser(
        prog="embodied belief",
        description="Which task the policy reads each instruction as (its task belief). "
        "Phrasings outside the instruction cache are embedded by the exported encoder if one "
        "is configured, else by sentence-transformers (the `train` extra).",
    )
    p.add_argument("phrasings", nargs="+", help="instructions, quoted")
    p.add_argument("--policy", default="vla-task", help="policy directory name under --models")
    p.add_argument("--models", default=str(Path(__file__).resolve().parent / "models"))
    p.add_argument("--top", type=int, default=3, help="tasks shown per phrasing")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    a = p.parse_args(argv)
    if a.top < 1:
        p.error(f"--top must be >= 1, got {a.top}")
    root = Path(a.models)
    if not (root / a.policy / POLICY_JSON).is_file():
        have = sorted(d.parent.name for d in root.glob(f"*/{POLICY_JSON}")) if root.is_dir() else []
        p.error(f"no policy {a.policy!r} under {root}; valid: {', '.join(have) or 'none'}")
    try:
        policy = OnnxPolicy(root / a.policy)
    except ModelFileError as e:
        p.error(str(e))
    out: dict[str, dict[str, float]] = {}
    for text in a.phrasings:
        try:
            belief = policy.task_belief(text)
        except InstructionEncoderUnavailable:
            try:  # a development machine: embed with the training-side encoder
                from policies.train import instruction_embeddings
            except ImportError as e:
                raise SystemExit(
                    f"embodied belief: {text!r} is not in the instruction cache and no encoder "
                    "is available (export one with policies.export_instruction, or install "
                    "the `train` extra)"
                ) from e
            belief = policy.task_belief(instruction_embeddings([text])[0])
        except (ModelFileError, PolicyInputError) as e:
            p.error(str(e))
        out[text] = belief
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    for text, belief in out.items():
        top = list(belief.items())[: a.top]
        shown = ", ".join(f"{t} {v:.2f}" for t, v in top)
        flag = "" if top[0][1] >= 0.5 else "   (unsure: no task above 0.5)"
        print(f"{text!r:40s} -> {shown}{flag}")
    return 0

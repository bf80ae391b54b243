"""The learned token codec: ONNX tokenizer + exact arithmetic coding, no torch.

One camera frame becomes one packet of ``k`` ordered FSQ tokens (the budget,
``1..k_max``, written to the packet's budget byte)::

    frame ──encoder ONNX──► codes [k_max, D] ──[:k]──► k·D level indices
          ──arithmetic coder, prior per (position, dimension)──► payload
          ──embodied.packet (codec TOKENS, budget k, CRC keyed by model_id)──► bytes

and back: packet → level indices → token ids (``embodied.modelfiles.codes_to_ids``),
and, only when asked (``decode(packet, image=True)``), the decoder ONNX's
reconstruction. The policy consumes token ids, so the receiver normally never
runs the image decoder and the session is opened lazily.

Why this shape:

* The model directory is the contract of ``docs/models.md``; the codec checks
  it (files present, ``kind``, ``format_version``, the encoder's SHA-256
  against ``model_id``, the prior's shape, the ONNX inputs and outputs) and
  says which file and which field is wrong, because a codec silently running
  another model's prior decodes garbage that no CRC catches.
* Two ids. The *model's* id (``spec.model_id``, from ``tokenizer.json``: the
  encoder's hash) is what a policy checks its tokens against. The *stream* id
  (``TokenCodec.model_id``, a hash of ``identity()``: model id and entropy coder)
  seeds the packet CRC, so packets of another tokenizer, or of the same tokenizer
  with another coder, fail as ``CorruptPacket`` / ``ForeignModel``.
* Bits are real: ``EncodedFrame.bits == 8 * len(packet)``, header included;
  the coder (``embodied.entropy``) is byte-exact, at most 7 bits of padding
  per frame, so one token costs ``8`` header bytes + about its information
  content.
* ``target_bytes`` picks the largest ``k`` whose packet fits: with an exact
  arithmetic code the packet size never decreases with ``k`` (a longer
  message's interval lies inside the shorter one's), so a binary search over
  ``k`` is exact.
* Any camera size: frames of ``frame_shape`` are averaged down (``INTER_AREA``)
  to the tokenizer's resolution, and images come back at ``frame_shape``. The
  packet carries tokens only, so it does not depend on the camera size: a
  receiver built with another ``frame_shape`` decodes it (the stream identity
  is the model, not the camera).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import cv2
import numpy as np

from embodied.codecs.base import (
    CodecKind,
    CodecUnavailable,
    DecodedFrame,
    EncodedFrame,
    PacketCodec,
    UndecodablePayload,
    check_frame,
)
from embodied.entropy import CategoricalTables, EntropyCoder, EntropyDecodeError, get_coder
from embodied.modelfiles import (
    DECODER_IO,
    DECODER_ONNX,
    DEFAULT_TOKENIZER,
    ENCODER_IO,
    ENCODER_ONNX,
    PRIOR_NPY,
    TOKENIZER_FILES,
    TOKENIZER_JSON,
    TokenizerModelError,
    TokenizerSpec,
    check_io,
    codes_to_ids,
    encoder_model_id,
    ids_to_codes,
    shipped,
)
from embodied.packet import CodecId, PacketHeader, max_payload_for, model_hash, overhead_bytes
from embodied.providers import (
    ProviderUnavailableError,
    UnknownProviderError,
    make_session,
    run_arrays,
)

if TYPE_CHECKING:
    import onnxruntime as ort

#: The shipped task-oriented tokenizer (written by training, see docs/models.md).
DEFAULT_MODEL_DIR = shipped(DEFAULT_TOKENIZER)
#: the coder whose packets the shipped numbers were measured with
DEFAULT_CODER = "arithmetic"

# the names this module has always exported, from the contract
SPEC_FILE, ENCODER_FILE, DECODER_FILE, PRIOR_FILE = (
    TOKENIZER_JSON,
    ENCODER_ONNX,
    DECODER_ONNX,
    PRIOR_NPY,
)
MODEL_FILES = TOKENIZER_FILES


class TokenizerMissing(TokenizerModelError, CodecUnavailable):
    """The model directory or one of its files is absent (not trained or shipped yet).

    Also a ``CodecUnavailable``, so registry-wide tests and benchmarks skip the
    codec with this message, while a present but foreign or broken model fails.
    """


# ----------------------------------------------------------------------------- model files


def load_prior(path: str | Path, spec: TokenizerSpec) -> np.ndarray:
    """``tokenizer_prior.npy`` checked against the spec: float ``[k_max, D, max(levels)]``."""
    path = Path(path)
    try:
        prior = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TokenizerModelError(
            f"{path}: missing (expected {PRIOR_FILE}, see docs/models.md)"
        ) from None
    except ValueError as err:
        raise TokenizerModelError(f"{path}: not a plain .npy array ({err})") from None
    want = (spec.k_max, spec.dims, max(spec.levels))
    if prior.shape != want or prior.dtype.kind != "f":
        raise TokenizerModelError(
            f"{path}: prior is {prior.dtype} {prior.shape}, expected float {want} "
            f"[k_max, D, L_max] for levels {list(spec.levels)}"
        )
    prior = prior.astype(np.float64)
    if not np.all(np.isfinite(prior)) or np.any(prior < 0):
        raise TokenizerModelError(f"{path}: prior has negative or non-finite entries")
    for d, n in enumerate(spec.levels):
        if np.any(prior[:, d, n:] > 1e-9):
            raise TokenizerModelError(
                f"{path}: dimension {d} has mass beyond its {n} levels (levels out of order?)"
            )
    sums = prior.sum(-1)
    if np.any(np.abs(sums - 1) > 1e-3):
        raise TokenizerModelError(
            f"{path}: prior rows must sum to 1 (range {sums.min():.4f}..{sums.max():.4f})"
        )
    return prior


def prior_tables(prior: np.ndarray, spec: TokenizerSpec) -> CategoricalTables:
    """Integer tables in coding order: position-major, FSQ dimension within a position."""
    rows = prior.reshape(spec.k_max * spec.dims, -1)
    return CategoricalTables.from_probabilities(rows, list(spec.levels) * spec.k_max)


def _resize(image: np.ndarray, shape: tuple[int, int], interpolation: int = -1) -> np.ndarray:
    if image.shape[:2] == shape:
        return image
    if interpolation < 0:
        interpolation = cv2.INTER_LINEAR  # no overshoot or ringing, as the ladder codecs
    return cv2.resize(image, (shape[1], shape[0]), interpolation=interpolation)


def _open_session(
    path: Path, providers: Sequence[str] | None, threads: int
) -> ort.InferenceSession:
    """One ONNX Runtime session through :func:`embodied.providers.make_session` (the
    project's one place for providers, threads and logging); CPU unless told otherwise.

    One thread by default: the robot computer runs camera, codec and policy side by
    side, and for a model of a few MB more threads cost wake-ups, not time.
    """
    try:
        return make_session(path, providers=list(providers or ["cpu"]), threads=threads)
    except (UnknownProviderError, ProviderUnavailableError):
        raise  # the caller's provider names, not the model, are wrong
    except Exception as err:  # onnxruntime raises its own exception types
        raise TokenizerModelError(f"{path}: ONNX Runtime cannot load it ({err})") from err


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EncodedTokens(EncodedFrame):
    """An ``EncodedFrame`` that also carries the ``k`` token ids it sent (sender bookkeeping)."""

    tokens: np.ndarray | None = None


@dataclass(frozen=True)
class DecodedTokens(DecodedFrame):
    """A ``DecodedFrame`` of ``k`` token ids; ``padded`` is the policy's fixed-size input."""

    k_max: int = 0

    @property
    def budget(self) -> int:
        return 0 if self.tokens is None else len(self.tokens)

    @property
    def padded(self) -> np.ndarray:
        """int64 ``[k_max]``: the ids, zeros past ``budget`` (the policy masks them)."""
        out = np.zeros(self.k_max, dtype=np.int64)
        if self.tokens is not None:
            out[: len(self.tokens)] = self.tokens
        return out


# ----------------------------------------------------------------------------- codec


class TokenCodec(PacketCodec):
    """Frames ⇄ packets of ``k`` entropy-coded tokens of one tokenizer model directory.

    ``providers``: ONNX Runtime providers in order (short names ``cpu``, ``cuda``,
    ``tensorrt`` or full names); CPU by default. ``coder``: ``"arithmetic"``
    (exact, default) or ``"constriction"`` (32-bit words; comparisons only, and
    its packets are a different stream: the two ends must use the same coder).
    """

    name: ClassVar[str] = "tokens"
    kind: ClassVar[CodecKind] = "tokens"
    codec_id: ClassVar[CodecId] = CodecId.TOKENS

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        frame_shape: Sequence[int] | None = None,
        providers: Sequence[str] | None = None,
        threads: int = 1,
        coder: str = "arithmetic",
        known_models: Iterable[int] = (),
    ) -> None:
        self.model_dir = Path(DEFAULT_MODEL_DIR if model_dir is None else model_dir)
        if not self.model_dir.is_dir():
            raise TokenizerMissing(
                f"tokenizer model directory {self.model_dir} not found; expected a directory "
                f"with {', '.join(MODEL_FILES)} (docs/models.md)"
            )
        missing = [f for f in MODEL_FILES if not (self.model_dir / f).is_file()]
        if missing:
            raise TokenizerMissing(
                f"{self.model_dir}: missing {', '.join(missing)} (a tokenizer directory holds "
                f"{', '.join(MODEL_FILES)}, docs/models.md)"
            )
        self.spec = TokenizerSpec.load(self.model_dir / SPEC_FILE)
        res = self.spec.resolution
        super().__init__((res, res) if frame_shape is None else frame_shape, known_models)
        self._native = (res, res)
        found = encoder_model_id(self.model_dir / ENCODER_FILE)
        if found != self.spec.model_id:
            raise TokenizerModelError(
                f"{self.model_dir}: {ENCODER_FILE} hashes to {found:08x} but {SPEC_FILE} says "
                f"model_id {self.spec.model_id_hex}: the files come from different exports"
            )
        self.prior = load_prior(self.model_dir / PRIOR_FILE, self.spec)
        self.tables = prior_tables(self.prior, self.spec)
        self.coder: EntropyCoder = get_coder(coder)
        self.providers = tuple(providers) if providers else ("cpu",)
        self.threads = int(threads)
        path = self.model_dir / ENCODER_FILE
        self._encoder = _open_session(path, self.providers, self.threads)
        check_io(self._encoder, path, ENCODER_IO, TokenizerModelError)
        self._decoder: ort.InferenceSession | None = None  # opened on the first image decode
        self._levels = np.asarray(self.spec.levels, dtype=np.int64)

    # ------------------------------------------------------------------ identity

    @property
    def model_id(self) -> int:
        """The stream id that keys every packet's CRC: a hash of :meth:`identity`, i.e. of
        the tokenizer's weights *and* the entropy coder.

        Two coders write different bytes for the same tokens, so a receiver running the
        other coder must refuse the packet (``CorruptPacket`` / ``ForeignModel``) rather than
        decode garbage. This is not the *model's* id: a policy checks the tokenizer it was
        trained on with ``spec.model_id`` / :attr:`tokenizer_model_id` (the encoder's hash,
        ``policy.json``'s ``tokenizer_model_id``), which does not depend on the coder.
        """
        return model_hash(self.identity())

    @property
    def tokenizer_model_id(self) -> str:
        """The model's id as ``policy.json`` records it (8 hex digits of the encoder hash)."""
        return self.spec.model_id_hex

    def identity(self) -> str:
        """What both ends must share to decode: tokenizer name, weights hash and coder."""
        return f"tokenizer/{self.spec.name}/{self.spec.model_id_hex}/{self.coder.name}"

    @property
    def active_providers(self) -> list[str]:
        """What ONNX Runtime runs the encoder on (label latency numbers with it)."""
        return list(self._encoder.get_providers())

    @property
    def k_max(self) -> int:
        return self.spec.k_max

    def budgets(self) -> range:
        return range(1, self.spec.k_max + 1)

    def _check_budget(self, k: int) -> int:
        if (
            isinstance(k, bool)
            or not isinstance(k, int | np.integer)
            or not 1 <= k <= self.spec.k_max
        ):
            raise ValueError(
                f"{self.name}: budget={k!r} outside 1..{self.spec.k_max} (token count)"
            )
        return int(k)

    # ------------------------------------------------------------------ model runs

    def tokenize(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encoder ONNX on ``[B, H, W, 3]`` (or one ``[H, W, 3]``) uint8 frames.

        Returns ``(codes [B, k_max, D], token_ids [B, k_max])`` int64, all ``k_max``
        tokens; any prefix is a valid description of the frame.
        """
        one = frames.ndim == 3
        batch = frames[None] if one else frames
        shapes = {(*self._frame_shape, 3), (*self._native, 3)}
        if batch.ndim != 4 or batch.dtype != np.uint8 or batch.shape[1:] not in shapes:
            raise ValueError(
                f"frames must be [B, H, W, 3] uint8 with (H, W) = {self._frame_shape} "
                f"(or the tokenizer's {self._native}), got {batch.dtype} {batch.shape}"
            )
        if batch.shape[1:3] != self._native:
            # Another camera size: average down (or interpolate up) to the model's input.
            batch = np.stack([_resize(f, self._native, cv2.INTER_AREA) for f in batch])
        codes, ids = run_arrays(
            self._encoder,
            ENCODER_IO.output_names,
            {ENCODER_IO.input_names[0]: np.ascontiguousarray(batch)},
        )
        want = (len(batch), self.spec.k_max, self.spec.dims)
        if codes.shape != want or np.any(codes < 0) or np.any(codes >= self._levels):
            raise TokenizerModelError(
                f"{self.model_dir / ENCODER_FILE}: codes {codes.shape} outside levels {list(self.spec.levels)}"
            )
        return (codes[0], ids[0]) if one else (codes, ids)

    def reconstruct(self, token_ids: np.ndarray, budget: int | np.ndarray) -> np.ndarray:
        """Decoder ONNX: ids ``[B, k_max]`` (or ``[k_max]``) and budgets → uint8 images.

        Images are at the tokenizer's resolution; ``decode(..., image=True)``
        resizes them to ``frame_shape``.
        """
        if self._decoder is None:
            path = self.model_dir / DECODER_FILE
            sess = _open_session(path, self.providers, self.threads)
            check_io(sess, path, DECODER_IO, TokenizerModelError)
            self._decoder = sess
        ids = np.asarray(token_ids, dtype=np.int64)
        one = ids.ndim == 1
        ids = ids[None] if one else ids
        b = np.broadcast_to(np.asarray(budget, dtype=np.int64), (len(ids),)).copy()
        feed = dict(zip(DECODER_IO.input_names, (np.ascontiguousarray(ids), b), strict=True))
        (img,) = run_arrays(self._decoder, DECODER_IO.output_names, feed)
        return img[0] if one else img

    # ------------------------------------------------------------------ ids ⇄ codes

    def ids_to_codes(self, token_ids: np.ndarray) -> np.ndarray:
        return ids_to_codes(token_ids, self.spec.levels)

    def codes_to_ids(self, codes: np.ndarray) -> np.ndarray:
        return codes_to_ids(codes, self.spec.levels)

    # ------------------------------------------------------------------ entropy coding

    def _payload(self, codes: np.ndarray, k: int) -> bytes:
        return self.coder.encode(codes[:k].reshape(-1).tolist(), self.tables)

    def _fit(self, codes: np.ndarray, target_bytes: int) -> tuple[int, bytes, bool]:
        """Largest k whose packet fits ``target_bytes`` (sizes never shrink as k grows)."""
        limit = max_payload_for(target_bytes)
        payload1 = self._payload(codes, 1)
        if len(payload1) > limit:
            return 1, payload1, False
        lo, hi, best = 1, self.spec.k_max, payload1
        while lo < hi:  # invariant: k = lo fits, best is its payload
            mid = (lo + hi + 1) // 2
            p = self._payload(codes, mid)
            if len(p) <= limit:
                lo, best = mid, p
            else:
                hi = mid - 1
        return lo, best, True

    def _frame(
        self,
        codes: np.ndarray,
        *,
        budget: int | None,
        target_bytes: int | None,
        frame_id: int,
        stamp_ms: int,
    ) -> EncodedTokens:
        met = True
        if target_bytes is not None:
            k, payload, met = self._fit(codes, target_bytes)
        else:
            k = self.spec.k_max if budget is None else self._check_budget(budget)
            payload = self._payload(codes, k)
        packet, header = self._pack(payload, budget=k, frame_id=frame_id, stamp_ms=stamp_ms)
        return EncodedTokens(
            packet=packet,
            header=header,
            payload_bytes=len(payload),
            setting={"k": k, "coder": self.coder.name},
            target_bytes=target_bytes,
            target_met=met,
            tokens=self.codes_to_ids(codes[:k]),
        )

    # ------------------------------------------------------------------ Codec interface

    def encode(
        self,
        frame: np.ndarray,
        *,
        budget: int | None = None,
        target_bytes: int | None = None,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedTokens:
        """One frame → one packet of ``budget`` tokens (default ``k_max``) or the most that fit."""
        if budget is not None:
            self._check_budget(budget)
        self._check_knobs(budget, target_bytes)
        codes, _ = self.tokenize(check_frame(frame, self._frame_shape))
        return self._frame(
            codes, budget=budget, target_bytes=target_bytes, frame_id=frame_id, stamp_ms=stamp_ms
        )

    def encode_ids(
        self,
        token_ids: Sequence[int] | np.ndarray,
        k: int | None = None,
        *,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedTokens:
        """Token ids already computed (e.g. by a batched encoder) → packet of the first ``k``."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        k = len(ids) if k is None else k
        k = self._check_budget(k)
        if len(ids) < k:
            raise ValueError(f"{len(ids)} token ids given for budget k={k}")
        return self._frame(
            self.ids_to_codes(ids[:k]),
            budget=k,
            target_bytes=None,
            frame_id=frame_id,
            stamp_ms=stamp_ms,
        )

    def decode_symbols(self, packet: bytes) -> tuple[PacketHeader, list[int]]:
        """Verify the packet and entropy-decode its level indices (raises ``PacketError`` only)."""
        header, payload = self._unpack(packet)
        k = header.budget
        if not 1 <= k <= self.spec.k_max:
            raise UndecodablePayload(
                f"budget byte {k} outside 1..{self.spec.k_max} for {self.spec.name}"
            )
        try:
            symbols = self.coder.decode(payload, k * self.spec.dims, self.tables)
        except EntropyDecodeError as err:
            raise UndecodablePayload(f"token payload does not decode: {err}") from err
        return header, symbols

    def decode(self, packet: bytes, *, image: bool = False) -> DecodedTokens:
        """Packet → ``k`` token ids (and the decoder ONNX's image when ``image=True``)."""
        header, symbols = self.decode_symbols(packet)
        codes = np.asarray(symbols, dtype=np.int64).reshape(header.budget, self.spec.dims)
        ids = self.codes_to_ids(codes)
        out = DecodedTokens(
            header=header, tokens=ids, setting={"k": header.budget}, k_max=self.spec.k_max
        )
        return self.with_image(out) if image else out

    def with_image(self, out: DecodedTokens) -> DecodedTokens:
        """``out`` with the decoder ONNX's image of its tokens at its budget."""
        img = _resize(self.reconstruct(out.padded, out.header.budget), self._frame_shape)
        return replace(out, image=img)

    def decode_ids(self, packet: bytes) -> np.ndarray:
        """Packet → the ``k`` token ids (int64), nothing else."""
        tokens = self.decode(packet).tokens
        assert tokens is not None
        return tokens

    # ------------------------------------------------------------------ rates for the controller

    def size_table(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        budgets: Iterable[int] | None = None,
        *,
        batch: int = 64,
    ) -> dict[str, Any]:
        """Measured mean packet bytes per budget over ``frames`` (JSON-able).

        The link controller needs bits(k) before it has seen this stream's
        packets; this gives it a measured start (it keeps learning online).
        """
        ks = [self._check_budget(k) for k in (budgets if budgets is not None else self.budgets())]
        arr = np.asarray(frames)
        if arr.ndim == 3:
            arr = arr[None]
        if len(arr) == 0:
            raise ValueError("size_table needs at least one frame")
        sizes = {k: [] for k in ks}
        for start in range(0, len(arr), batch):
            codes, _ = self.tokenize(arr[start : start + batch])
            for c in codes:
                for k in ks:
                    sizes[k].append(len(self._payload(c, k)))
        payload = [float(np.mean(sizes[k])) for k in ks]
        return {
            "codec": self.name,
            "tokenizer": self.spec.name,
            "model_id": self.spec.model_id_hex,
            "coder": self.coder.name,
            "n_frames": len(arr),
            "budgets": ks,
            "mean_payload_bytes": payload,
            "mean_packet_bytes": [
                float(np.mean([n + overhead_bytes(n) for n in sizes[k]])) for k in ks
            ],
            "max_packet_bytes": [max(n + overhead_bytes(n) for n in sizes[k]) for k in ks],
        }


__all__ = [
    "DEFAULT_MODEL_DIR",
    "MODEL_FILES",
    "DecodedTokens",
    "EncodedTokens",
    "TokenCodec",
    "TokenizerMissing",
    "TokenizerModelError",
    "TokenizerSpec",
    "encoder_model_id",
    "load_prior",
    "prior_tables",
]

"""Token coding across frames: send only what changed since a frame the receiver holds.

Inter-frame video coding predicts a frame from a reference the decoder already has and codes
the difference; here the "difference" is coded by probability. Each token symbol (FSQ
dimension ``d`` of position ``i``) is entropy-coded with a prior **conditioned on the same
symbol of the reference frame**, ``P(s | r; i, d)``, learned from consecutive frames of the
demonstrations (:func:`learn_inter_prior`, ``embodied train inter-prior``) and shipped with the
tokenizer (``tokenizer_inter_prior.npy``, ``[k_max, D, L, L]``). Tokens that did not change
cost a fraction of a bit each, and a frame that changes nothing has an empty payload
(see :class:`InterTables`): its packet is the 3-byte compact header alone.

The reference is the newest frame the receiver has **acknowledged** (its arrival report came
back), never a frame merely sent: a lost packet can therefore never be the reference of a
later one, and a lost packet never corrupts a later decoded frame. A receiver that lacks the
reference anyway (it restarted, joined mid-stream, evicted it) refuses the packet with
:class:`MissingReference` and asks for a keyframe through the feedback path
(:meth:`InterTokenCodec.request_keyframe` on the sender's side).

Keyframes (intra-coded exactly as :class:`~embodied.codecs.tokens.TokenCodec` codes every
frame) go out at the start, on request, after a reported loss and every ``keyframe_interval``
frames. An inter packet is the same packet format with the header's keyframe flag clear and
one payload byte naming its reference (``frame_id - reference_id`` mod 256, 1..255) before the
entropy-coded symbols. Its CRC key (:attr:`InterTokenCodec.model_id`) is the tokenizer's
identity plus the inter prior's hash, so a receiver with another prior refuses the stream.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embodied.codecs.base import CodecKind, CodecUnavailable, MissingReference, check_frame
from embodied.codecs.tokens import DecodedTokens, EncodedTokens, TokenCodec
from embodied.entropy import CategoricalTables, quantize_probabilities
from embodied.packet import (
    COMPACT_VERSION,
    CodecId,
    CompactFields,
    PacketHeader,
    TruncatedPacket,
    decode_packet,
    encode_compact,
    encode_packet,
    model_hash,
    read_compact,
)

INTER_PRIOR_FILE = "tokenizer_inter_prior.npy"
INTER_SIZES_FILE = "tokenizer_inter_sizes.json"  # measured bytes per budget, key / predicted
DEFAULT_KEYFRAME_INTERVAL = 90  # frames (3 s at 30 frames/s)
REFERENCES_KEPT = 64  # frames either side keeps to predict from


class NoStreamContext(MissingReference):
    """A compact packet reached a receiver that has decoded nothing of this stream yet (it
    joined mid-stream or restarted): refused, and a keyframe with full fields is wanted."""


class InterPriorError(ValueError):
    """``tokenizer_inter_prior.npy`` is missing, malformed or not this tokenizer's."""


class InterPriorMissing(InterPriorError, CodecUnavailable):
    """The tokenizer has no usable inter prior: ``tokens-inter`` cannot be built here."""


# ----------------------------------------------------------------------------- the prior


def learn_inter_prior(
    sequences: Iterable[np.ndarray], levels: tuple[int, ...], intra: np.ndarray, alpha: float = 2.0
) -> np.ndarray:
    """``P(s | r; i, d)`` from code sequences ``[T, k_max, D]`` (consecutive frames of
    demonstrations): transition counts smoothed toward the intra prior ``[k_max, D, L]`` with
    ``alpha`` pseudo-counts. Rows of references beyond a dimension's levels are the intra prior."""
    k_max, dims, lmax = intra.shape
    counts = np.zeros((k_max, dims, lmax, lmax))
    pos = np.arange(k_max)[:, None]
    dim = np.arange(dims)[None, :]
    for seq in sequences:
        seq = np.asarray(seq, np.int64)
        if seq.ndim != 3 or seq.shape[1:] != (k_max, dims):
            raise ValueError(f"code sequence of shape {seq.shape}, expected [T, {k_max}, {dims}]")
        for prev, cur in itertools.pairwise(seq):
            np.add.at(counts, (pos, dim, prev, cur), 1.0)
    out = counts + alpha * intra[:, :, None, :]
    out /= out.sum(-1, keepdims=True)
    for d, n in enumerate(levels):
        out[:, d, n:, :] = intra[:, d, None, :]  # no such reference: intra
        out[:, d, :, n:] = 0.0
    return out / out.sum(-1, keepdims=True)


def load_inter_prior(path: str | Path, spec: Any) -> np.ndarray:
    path = Path(path)
    try:
        prior = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InterPriorError(
            f"{path}: missing; learn it with `embodied inter-prior --tokenizer "
            f"{path.parent}` (docs/token_codec.md)"
        ) from None
    except ValueError as err:
        raise InterPriorError(f"{path}: not a plain .npy array ({err})") from None
    lmax = max(spec.levels)
    want = (spec.k_max, spec.dims, lmax, lmax)
    if prior.shape != want or prior.dtype.kind != "f":
        raise InterPriorError(f"{path}: {prior.dtype} {prior.shape}, expected float {want}")
    prior = prior.astype(np.float64)
    if not np.all(np.isfinite(prior)) or np.any(prior < 0):
        raise InterPriorError(f"{path}: negative or non-finite entries")
    if np.any(np.abs(prior.sum(-1) - 1) > 1e-3):
        raise InterPriorError(f"{path}: rows must sum to 1")
    return prior


class InterTables:
    """The conditional prior quantized once: one integer table per (position, dimension,
    reference symbol); :meth:`for_reference` picks a frame's tables.

    Symbols are coded as their change ``t = (s - r) mod L`` from the reference symbol ``r``
    (the table rolled to match), so "unchanged" is always symbol 0, the bottom of the coding
    interval: a frame whose tokens all equal the reference's leaves the arithmetic coder's
    interval at 0 and its payload is **empty** (zero bytes), not merely short."""

    def __init__(self, prior: np.ndarray, levels: tuple[int, ...], intra: CategoricalTables):
        k_max, dims = prior.shape[:2]
        self.k_max, self.dims = k_max, dims
        self.levels = tuple(int(n) for n in levels)
        self.intra = intra
        self.rows = [
            [
                [tuple(quantize_probabilities(np.roll(prior[i, d, r, :n], -r), intra.precision))
                 for r in range(n)]
                for d, n in enumerate(self.levels)
            ]
            for i in range(k_max)
        ]  # fmt: skip

    def for_reference(self, ref: np.ndarray, k: int) -> CategoricalTables:
        """Tables for the first ``k`` positions given reference codes ``[k_ref, D]``;
        positions the reference lacks use the intra tables."""
        freqs: list[tuple[int, ...]] = []
        k_ref = len(ref)
        for i in range(k):
            for d in range(self.dims):
                if i < k_ref:
                    freqs.append(self.rows[i][d][int(ref[i, d])])
                else:
                    freqs.append(self.intra.freqs[i * self.dims + d])
        return CategoricalTables(tuple(freqs), self.intra.precision)

    def to_changes(self, codes: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Codes ``[k, D]`` → the symbols coded: changes from the reference where it has the
        position, the codes themselves where it has not."""
        out = np.array(codes, np.int64, copy=True)
        n = min(len(ref), len(out))
        lv = np.asarray(self.levels)
        out[:n] = (out[:n] - ref[:n]) % lv
        return out

    def from_changes(self, symbols: np.ndarray, ref: np.ndarray) -> np.ndarray:
        out = np.array(symbols, np.int64, copy=True)
        n = min(len(ref), len(out))
        lv = np.asarray(self.levels)
        out[:n] = (out[:n] + ref[:n]) % lv
        return out


# ----------------------------------------------------------------------------- keyframes


class KeyframeSchedule:
    """When a stream sends a keyframe, defined once for the codec and for size-only runs
    (``embodied link-sim`` has sizes, not frames): at the start, after a reported loss, on
    the receiver's request, when no acknowledged frame is left to predict from, and every
    ``interval`` frames. A request also makes the next packet carry the full header fields
    (the receiver's stream context is gone)."""

    def __init__(self, interval: int = DEFAULT_KEYFRAME_INTERVAL) -> None:
        if interval < 1:
            raise ValueError(f"keyframe_interval={interval} must be >= 1")
        self.interval = int(interval)
        self.reset()

    def reset(self) -> None:
        self.acked: int | None = None  # newest acknowledged frame id (mod 256)
        self.since_key = 0  # frames sent since the last keyframe
        self.want_key = True
        self.want_full = True
        self.keyframes = 0
        self.inter_frames = 0

    @property
    def next_is_keyframe(self) -> bool:
        return self.want_key or self.acked is None or self.since_key >= self.interval - 1

    def acknowledge(self, frame_id: int) -> None:
        self.acked = int(frame_id) % 256

    def on_loss(self) -> None:
        self.want_key = True

    def request_keyframe(self) -> None:
        self.want_key = self.want_full = True
        self.acked = None  # whatever the receiver held is no use

    def sent(self, *, keyframe: bool, full_header: bool) -> None:
        if keyframe:
            self.since_key, self.want_key = 0, False
            self.keyframes += 1
        else:
            self.since_key += 1
            self.inter_frames += 1
        if full_header:
            self.want_full = False


# ----------------------------------------------------------------------------- the codec


class InterTokenCodec:
    """A :class:`TokenCodec` that codes across frames; one instance per stream end.

    Sender side: :meth:`encode` (as ``TokenCodec.encode``), told what arrived by
    :meth:`acknowledge` (the arrival reports), about losses by :meth:`on_loss` and about the
    receiver's wish by :meth:`request_keyframe`. Receiver side: :meth:`decode`, which raises
    :class:`MissingReference` (and sets ``keyframe_wanted``) for a packet it cannot predict.
    """

    name: ClassVar[str] = "tokens-inter"
    kind: ClassVar[CodecKind] = "tokens"
    codec_id: ClassVar[CodecId] = CodecId.TOKENS
    stateful: ClassVar[bool] = True  # a packet depends on the frame it is predicted from

    def __init__(
        self,
        tokenizer: TokenCodec,
        *,
        prior: np.ndarray | None = None,
        keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
        frame_period_ms: float = 1000.0 / 30.0,
    ) -> None:
        if not frame_period_ms > 0:
            raise ValueError(f"frame_period_ms={frame_period_ms} must be positive")
        self.frame_period_ms = float(frame_period_ms)  # stream set-up: compact stamps inferred
        self._anchor: tuple[int, int, int] | None = None  # full packet: (frame id, stamp, turns)
        self.schedule = KeyframeSchedule(keyframe_interval)
        self.tok = tokenizer
        self.spec = tokenizer.spec
        if prior is None:
            prior = load_inter_prior(tokenizer.model_dir / INTER_PRIOR_FILE, self.spec)
        self.prior = prior
        self.tables = InterTables(prior, tuple(self.spec.levels), tokenizer.tables)
        self._prior_hash = hashlib.sha256(np.ascontiguousarray(prior).tobytes()).hexdigest()[:8]
        self.keyframe_interval = int(keyframe_interval)
        # sender state
        self._sent: OrderedDict[int, tuple[np.ndarray, int]] = OrderedDict()  # id → codes, k
        self.full_headers = 0
        # receiver state
        self._held: OrderedDict[int, np.ndarray] = OrderedDict()  # frame id (mod 256) → codes
        self._last: tuple[int, int] | None = None  # last decoded (frame id, budget)
        self.keyframe_wanted = False

    # -- identity ---------------------------------------------------------------------------
    @property
    def model_id(self) -> int:
        return model_hash(self.identity())

    def identity(self) -> str:
        return f"{self.tok.identity()}/inter/{self._prior_hash}"

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.tok.frame_shape

    @property
    def k_max(self) -> int:
        return self.tok.k_max

    def budgets(self) -> range:
        return self.tok.budgets()

    def tokenize(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.tok.tokenize(frames)

    def reconstruct(self, token_ids: np.ndarray, budget: int | np.ndarray) -> np.ndarray:
        return self.tok.reconstruct(token_ids, budget)

    # -- sender -------------------------------------------------------------------------------
    def acknowledge(self, frame_id: int) -> None:
        """The receiver reported frame ``frame_id`` (mod 256) arrived: it may be a reference."""
        fid = int(frame_id) % 256
        if fid in self._sent:
            self.schedule.acknowledge(fid)

    def on_loss(self) -> None:
        """A packet was declared lost: the next frame is a keyframe."""
        self.schedule.on_loss()

    def request_keyframe(self) -> None:
        """The receiver asked (it lacks a reference or the stream's context): the next frame
        is a keyframe with full fields, until a frame is acknowledged again."""
        self.schedule.request_keyframe()

    @property
    def next_is_keyframe(self) -> bool:
        """Whether the next frame will be intra-coded (the controller sizes it so)."""
        return self.schedule.next_is_keyframe

    @property
    def keyframes(self) -> int:
        return self.schedule.keyframes

    @property
    def inter_frames(self) -> int:
        return self.schedule.inter_frames

    def encode(
        self,
        frame: np.ndarray,
        *,
        budget: int | None = None,
        target_bytes: int | None = None,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedTokens:
        """One frame → one packet of ``budget`` tokens (default ``k_max``), or of the most
        tokens whose packet (as coded now: keyframe or predicted) fits ``target_bytes``."""
        self.tok._check_knobs(budget, target_bytes)
        codes, _ = self.tok.tokenize(check_frame(frame, self.tok.frame_shape))
        codes = codes[0] if codes.ndim == 3 else codes
        if target_bytes is None:
            k = self.spec.k_max if budget is None else self.tok._check_budget(budget)
            return self.encode_codes(codes, k, frame_id, stamp_ms)
        fid = int(frame_id) % 256
        fits = lambda k: len(self._pack(codes, k, fid, stamp_ms)[0]) <= target_bytes  # noqa: E731
        if not fits(1):
            return replace(self.encode_codes(codes, 1, fid, stamp_ms), target_bytes=target_bytes,
                           target_met=False)  # fmt: skip
        lo, hi = 1, self.spec.k_max
        while lo < hi:  # invariant: k = lo fits (sizes grow with k, as for intra coding)
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        enc = self.encode_codes(codes, lo, fid, stamp_ms)
        return replace(enc, target_bytes=target_bytes, target_met=len(enc.packet) <= target_bytes)

    def _budget_inferable(self, k: int) -> bool:
        """Every packet from the acknowledged one on had budget ``k``: whichever of them the
        receiver decoded last, it infers ``k``."""
        seen = False
        for fid, (_, budget) in self._sent.items():
            seen = seen or fid == self.schedule.acked
            if seen and budget != k:
                return False
        return seen

    def _pack(
        self, codes: np.ndarray, k: int, fid: int, stamp_ms: int
    ) -> tuple[bytes, PacketHeader, int, bool, bool]:
        """The packet frame ``fid`` gets at budget ``k`` in the stream's present state, which
        this does not change: (packet, header, payload bytes, keyframe, compact header)."""
        sch = self.schedule
        gap = None if sch.acked is None else (fid - sch.acked) % 256
        key = sch.next_is_keyframe or gap == 0
        ref_id = None if key else sch.acked
        # compact only where the receiver can infer the id: within 15 of the acknowledged frame
        compact = gap is not None and 1 <= gap <= 15 and not sch.want_full
        codes = np.asarray(codes, np.int64)[:k]
        if key:
            tables, coded = self.tok.tables, codes
        else:
            ref = self._sent[ref_id][0][:k]  # type: ignore[index]
            tables, coded = self.tables.for_reference(ref, k), self.tables.to_changes(codes, ref)
        symbols = self.tok.coder.encode(coded.reshape(-1).tolist(), tables)
        delta = 0 if key else (fid - ref_id) % 256  # type: ignore[operator]
        header = PacketHeader.for_frame(
            self.tok.codec_id, frame_id=fid, stamp_ms=stamp_ms, budget=k, keyframe=key
        )
        if compact:
            fields = CompactFields(
                frame_id=fid, budget=k, keyframe=key, ref_delta=delta,
                send_budget=not self._budget_inferable(k),
            )  # fmt: skip
            return encode_compact(fields, symbols, self.model_id), header, len(symbols), key, True
        payload = symbols if key else bytes([delta]) + symbols
        packet = encode_packet(header, payload, self.model_id)
        return packet, header, len(payload), key, False

    def encode_codes(
        self, codes: np.ndarray, k: int, frame_id: int, stamp_ms: int
    ) -> EncodedTokens:
        """Code frame ``frame_id``'s first ``k`` tokens and enter it in the stream's state."""
        fid = int(frame_id) % 256
        sch = self.schedule
        codes = np.asarray(codes, np.int64)
        packet, header, payload_bytes, key, compact = self._pack(codes, k, fid, stamp_ms)
        if not compact:
            self.full_headers += 1
        sch.sent(keyframe=key, full_header=not compact)
        self._sent[fid] = (codes[:k], k)
        self._sent.move_to_end(fid)
        while len(self._sent) > REFERENCES_KEPT:
            old, _ = self._sent.popitem(last=False)
            if old == sch.acked:
                sch.acked = None
        return EncodedTokens(
            packet=packet, header=header, payload_bytes=payload_bytes,
            setting={"k": k, "coder": self.tok.coder.name, "keyframe": int(key)},
            target_bytes=None, target_met=True, tokens=self.tok.codes_to_ids(codes[:k]),
        )  # fmt: skip

    # -- receiver -----------------------------------------------------------------------------
    def decode(self, packet: bytes, *, image: bool = False) -> DecodedTokens:
        if packet and packet[0] >> 6 == COMPACT_VERSION:
            if self._last is None:
                self.keyframe_wanted = True
                raise NoStreamContext(
                    "a compact packet before any full one: this receiver joined mid-stream; "
                    "a keyframe is requested"
                )
            f, body = read_compact(packet, self.model_id, *self._last)
            header = PacketHeader(
                codec=self.tok.codec_id, frame_id=f.frame_id, budget=f.budget,
                stamp_ms=self._infer_stamp(f.frame_id), keyframe=f.keyframe,
            )  # fmt: skip
            delta = f.ref_delta
            if f.keyframe == (delta != 0):
                raise TruncatedPacket(f"compact packet: keyframe {f.keyframe}, reference {delta}")
        else:
            header, payload = decode_packet(packet, self.model_id)
            delta, body = 0, payload
            if not header.keyframe:
                if not payload or payload[0] == 0:
                    raise TruncatedPacket("inter packet without a valid reference byte")
                delta, body = payload[0], payload[1:]
        k, dims = header.budget, self.spec.dims
        if not 1 <= k <= self.spec.k_max:
            raise TruncatedPacket(f"budget {k} outside 1..{self.spec.k_max}")
        ref = None
        if header.keyframe:
            tables = self.tok.tables
        else:
            ref_id = (header.frame_id - delta) % 256
            ref = self._held.get(ref_id)
            if ref is None:
                self.keyframe_wanted = True
                raise MissingReference(
                    f"frame {header.frame_id} is predicted from frame {ref_id}, which this "
                    "receiver does not hold: a keyframe is requested"
                )
            tables = self.tables.for_reference(ref, k)
        symbols = self.tok.coder.decode(body, k * dims, tables)
        codes = np.asarray(symbols, np.int64).reshape(k, dims)
        if ref is not None:
            codes = self.tables.from_changes(codes, ref)
        if self._last is None or packet[0] >> 6 != COMPACT_VERSION:
            self._anchor = (header.frame_id, header.stamp_ms, 0)
        elif self._anchor is not None and header.frame_id < self._last[0]:
            fid, stamp, turns = self._anchor  # the 8-bit frame id wrapped since the anchor
            self._anchor = (fid, stamp, turns + 1)
        self._last = (header.frame_id, k)
        self._held[header.frame_id] = codes
        self._held.move_to_end(header.frame_id)
        while len(self._held) > REFERENCES_KEPT:
            self._held.popitem(last=False)
        if header.keyframe:
            self.keyframe_wanted = False
        ids = self.tok.codes_to_ids(codes)
        out = DecodedTokens(header=header, tokens=ids, setting={"k": k}, k_max=self.spec.k_max)
        return self.tok.with_image(out) if image else out

    def _infer_stamp(self, frame_id: int) -> int:
        """A compact packet's capture stamp (ms mod 65536): the last full packet's plus the
        frames since at the stream's frame period (set up with the stream)."""
        if self._anchor is None:
            return 0
        fid, stamp, turns = self._anchor
        assert self._last is not None
        turns += int(frame_id < self._last[0])  # this packet wraps the 8-bit id again
        frames = frame_id + 256 * turns - fid
        return round(stamp + frames * self.frame_period_ms) % 65536

    def reset(self) -> None:
        """Both ends forget their references (the next packet is a keyframe)."""
        self._sent.clear()
        self._held.clear()
        self._last = None
        self._anchor = None
        self.schedule.reset()


def make_inter_codec(
    model_dir: str | Path | None = None,
    *,
    keyframe_interval: int = DEFAULT_KEYFRAME_INTERVAL,
    frame_period_ms: float = 1000.0 / 30.0,
    **tokenizer_kwargs: Any,
) -> InterTokenCodec:
    """The registry's ``tokens-inter``: the tokenizer of ``model_dir`` (default the shipped
    one; ``frame_shape``, ``providers``, ``threads``, ``coder`` go to it) with its prior. A
    tokenizer without ``tokenizer_inter_prior.npy`` is a ``CodecUnavailable``."""
    tok = TokenCodec(model_dir, **tokenizer_kwargs)
    try:
        return InterTokenCodec(
            tok, keyframe_interval=keyframe_interval, frame_period_ms=frame_period_ms
        )
    except InterPriorError as err:
        raise InterPriorMissing(str(err)) from None


def inter_size_table(
    codec: InterTokenCodec, sequences: Iterable[np.ndarray], budgets: Iterable[int]
) -> dict[str, Any]:
    """Measured mean packet bytes per budget of keyframes (full header) and of predicted
    frames (compact header, each predicted from the frame before, as on a link whose reports
    come back within a frame) over code sequences ``[T, k_max, D]``: the table ``embodied
    link-sim --size-table`` and the controllers' start take (``embodied.link.models``)."""
    ks = [codec.tok._check_budget(k) for k in budgets]
    seqs = [np.asarray(s, np.int64) for s in sequences]
    key: dict[int, list[int]] = {k: [] for k in ks}
    inter: dict[int, list[int]] = {k: [] for k in ks}
    for k in ks:
        for seq in seqs:
            snd = InterTokenCodec(codec.tok, prior=codec.prior, keyframe_interval=10**9)
            for i, c in enumerate(seq):
                enc = snd.encode_codes(c, k, i, 0)
                (key if enc.header.keyframe else inter)[k].append(len(enc.packet))
                snd.acknowledge(i)
    if not all(key[k] and inter[k] for k in ks):
        raise ValueError("inter_size_table needs sequences of at least two frames")
    return {
        "codec": codec.name,
        "tokenizer": codec.spec.name,
        "model_id": f"{codec.model_id:08x}",
        "n_sequences": len(seqs),
        "n_frames": int(sum(len(s) for s in seqs)),
        "budget": ks,
        "bytes": [float(np.mean(key[k])) for k in ks],
        "inter_bytes": [float(np.mean(inter[k])) for k in ks],
        "keyframe_interval": codec.schedule.interval,
    }


def sequences_from(frames_per_episode: Iterable[np.ndarray], tokenizer: TokenCodec):
    """Code sequences ``[T, k_max, D]`` of demonstration episodes' frames."""
    for frames in frames_per_episode:
        codes, _ = tokenizer.tokenize(np.asarray(frames, np.uint8))
        yield codes


__all__ = [
    "INTER_PRIOR_FILE",
    "INTER_SIZES_FILE",
    "InterPriorError",
    "InterTables",
    "InterTokenCodec",
    "KeyframeSchedule",
    "MissingReference",
    "inter_size_table",
    "learn_inter_prior",
    "load_inter_prior",
]

"""Pixel codecs as ladders of (quality, downscale-before-encode) settings.

Why a ladder: at a few hundred bytes per frame a pixel codec does better
coding a smaller image well than a full-size one badly, so the baselines get
their best chance only when they may also shrink the frame. EmbodiedComp
(arXiv 2512.11612) runs each codec over such a grid and takes the upper
envelope of its curve; we do the same:

* ``codec.ladder()`` lists every rung ``(quality, downscale)``; an evaluation
  sweeps them all and keeps the upper envelope of success against bits.
* ``encode(frame, target_bytes=n)`` searches per frame: for each downscale,
  a binary search over the quality levels finds the best quality whose packet
  fits; among those (one per downscale) it keeps the one whose upscaled
  decode has the highest PSNR (``select="psnr"``) or the largest packet
  (``select="bytes"``). This is the envelope taken per frame.

Resampling: ``cv2.INTER_AREA`` to downscale (it averages, so no aliasing),
``cv2.INTER_LINEAR`` to upscale the decode back to the camera resolution (no
overshoot or ringing, and cheap).

The packet's budget byte carries the rung index, so the receiver knows the
setting (raw needs it to reshape); rung indices run downscale-major from the
smallest image, quality ascending within one downscale.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from embodied.codecs.base import (
    DecodedFrame,
    EncodedFrame,
    PacketCodec,
    UndecodablePayload,
    check_frame,
)
from embodied.metrics import psnr
from embodied.packet import CorruptPacket, max_payload_for, overhead_bytes

DEFAULT_DOWNSCALES: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 16)


@dataclass(frozen=True)
class Rung:
    """One setting of a ladder; ``quality`` is the codec's own knob (None for raw)."""

    index: int
    quality: int | None
    downscale: float
    height: int
    width: int

    def as_setting(self) -> dict[str, int | float | str]:
        out: dict[str, int | float | str] = {
            "rung": self.index,
            "downscale": self.downscale,
            "height": self.height,
            "width": self.width,
        }
        if self.quality is not None:
            out["quality"] = self.quality
        return out


def build_ladder(
    frame_shape: tuple[int, int],
    downscales: Sequence[float],
    qualities: Sequence[int | None],
    *,
    min_side: int,
    even: bool = False,
) -> list[Rung]:
    """Rungs for every (distinct encoded size, quality); at most 256 (one budget byte)."""
    h, w = frame_shape
    sizes: dict[tuple[int, int], float] = {}
    for d in sorted(downscales, reverse=True):
        if d < 1:
            raise ValueError(f"downscale {d} < 1: the ladder only shrinks frames")
        sh, sw = max(min_side, round(h / d)), max(min_side, round(w / d))
        if even:
            sh, sw = sh + sh % 2, sw + sw % 2
        sh, sw = min(sh, h + h % 2), min(sw, w + w % 2)
        sizes.setdefault((sh, sw), d)
    rungs = [
        Rung(i, q, d, sh, sw)
        for i, ((sh, sw), d, q) in enumerate(
            (
                (s, d, q)
                for s, d in sorted(sizes.items(), key=lambda kv: kv[0][0] * kv[0][1])
                for q in qualities
            )
        )
    ]
    if len(rungs) > 256:
        raise ValueError(f"{len(rungs)} rungs do not fit the packet's one-byte budget (max 256)")
    return rungs


class LadderCodec(PacketCodec):
    """A stateless pixel codec searched over a (quality, downscale) ladder.

    Subclasses give ``qualities`` (ascending rate), ``min_side`` and the two
    image functions ``_encode_image`` / ``_decode_image`` on RGB arrays.
    """

    kind = "image"
    default_qualities: tuple[int | None, ...] = (None,)
    min_side: int = 8
    even: bool = False

    def __init__(
        self,
        frame_shape: Sequence[int] = (64, 64),
        *,
        downscales: Sequence[float] = DEFAULT_DOWNSCALES,
        qualities: Sequence[int | None] | None = None,
        select: str = "psnr",
        known_models: Sequence[int] = (),
    ) -> None:
        super().__init__(frame_shape, known_models)
        if select not in ("psnr", "bytes"):
            raise ValueError(f"select={select!r}: one of 'psnr', 'bytes'")
        self.select = select
        self.downscales = tuple(float(d) for d in downscales)
        self.qualities = tuple(self.default_qualities if qualities is None else qualities)
        self._rungs = build_ladder(
            self._frame_shape,
            self.downscales,
            self.qualities,
            min_side=self.min_side,
            even=self.even,
        )
        self._nq = len(self.qualities)

    def identity(self) -> str:
        # The receiver maps the budget byte to a rung, so the ladder is part of the stream.
        return f"{super().identity()}/d{self.downscales}/q{self.qualities}"

    def ladder(self) -> list[Rung]:
        """Every rung, index = budget byte; sweep these for the envelope."""
        return list(self._rungs)

    def budgets(self) -> range:
        return range(len(self._rungs))

    # ------------------------------------------------------------------ subclass hooks

    @abstractmethod
    def _encode_image(self, image: np.ndarray, rung: Rung) -> bytes:
        """RGB "h w 3" uint8 at the rung's size → payload bytes."""

    @abstractmethod
    def _decode_image(self, payload: bytes, rung: Rung) -> np.ndarray | None:
        """Payload → RGB "h w 3" uint8, or None if it does not decode."""

    def _format_overhead(self, payload: bytes) -> int:
        """Bytes of the payload that are the inner format's fixed headers."""
        return 0

    # ------------------------------------------------------------------ encode

    def _resize(self, frame: np.ndarray, rung: Rung) -> np.ndarray:
        if (rung.height, rung.width) == frame.shape[:2]:
            return frame
        return cv2.resize(frame, (rung.width, rung.height), interpolation=cv2.INTER_AREA)

    def _upscale(self, image: np.ndarray) -> np.ndarray:
        h, w = self._frame_shape
        if image.shape[:2] == (h, w):
            return image
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)

    def encode(
        self,
        frame: np.ndarray,
        *,
        budget: int | None = None,
        target_bytes: int | None = None,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedFrame:
        frame = check_frame(frame, self._frame_shape)
        self._check_knobs(budget, target_bytes)
        smalls: dict[tuple[int, int], np.ndarray] = {}
        cache: dict[int, bytes] = {}

        def payload_of(i: int) -> bytes:
            if i not in cache:
                r = self._rungs[i]
                key = (r.height, r.width)
                if key not in smalls:
                    smalls[key] = self._resize(frame, r)
                cache[i] = self._encode_image(smalls[key], r)
            return cache[i]

        met = True
        if target_bytes is None:
            index = len(self._rungs) - 1 if budget is None else budget
        else:
            index, met = self._search(frame, target_bytes, payload_of)
        payload = payload_of(index)
        packet, header = self._pack(payload, budget=index, frame_id=frame_id, stamp_ms=stamp_ms)
        return EncodedFrame(
            packet=packet,
            header=header,
            payload_bytes=len(payload),
            setting=self._rungs[index].as_setting(),
            target_bytes=target_bytes,
            target_met=met,
            format_overhead_bytes=self._format_overhead(payload),
        )

    def _search(self, frame: np.ndarray, target_bytes: int, payload_of) -> tuple[int, bool]:
        """(rung index, target met): per downscale a binary search on quality, then select."""
        limit = max_payload_for(target_bytes)
        fits: list[int] = []
        smallest: tuple[int, int] | None = None  # (packet bytes, index)
        for start in range(0, len(self._rungs), self._nq):
            lo, hi = start, start + self._nq - 1
            n_lo = len(payload_of(lo))
            if smallest is None or n_lo < smallest[0]:
                smallest = (n_lo, lo)
            if n_lo > limit:
                continue
            while lo < hi:  # invariant: rung lo fits
                mid = (lo + hi + 1) // 2
                if len(payload_of(mid)) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            fits.append(lo)
        if not fits:
            assert smallest is not None
            return smallest[1], False
        if self.select == "bytes" or len(fits) == 1:
            return max(fits, key=lambda i: (len(payload_of(i)), i)), True
        best, best_q = fits[-1], -1.0
        for i in fits:
            img = self._decode_image(payload_of(i), self._rungs[i])
            q = -1.0 if img is None else psnr(self._upscale(img), frame)
            if q > best_q:
                best, best_q = i, q
        return best, True

    # ------------------------------------------------------------------ decode

    def decode(self, packet: bytes) -> DecodedFrame:
        header, payload = self._unpack(packet)
        if header.budget >= len(self._rungs):
            raise CorruptPacket(
                f"rung {header.budget} not in this ladder (0..{len(self._rungs) - 1})"
            )
        rung = self._rungs[header.budget]
        try:
            small = self._decode_image(payload, rung)
        except Exception as err:  # a decoder library's own error types vary
            raise UndecodablePayload(f"{self.name} payload does not decode: {err}") from err
        if small is None or small.shape != (rung.height, rung.width, 3) or small.dtype != np.uint8:
            got = None if small is None else small.shape
            raise UndecodablePayload(f"{self.name} payload decodes to {got}, rung says {rung}")
        return DecodedFrame(header=header, image=self._upscale(small), setting=rung.as_setting())

    def smallest_packet_bytes(self, frame: np.ndarray) -> int:
        """The smallest packet this codec can make for ``frame`` (over the whole ladder)."""
        frame = check_frame(frame, self._frame_shape)
        sizes = []
        for start in range(0, len(self._rungs), self._nq):
            r = self._rungs[start]
            n = len(self._encode_image(self._resize(frame, r), r))
            sizes.append(n + overhead_bytes(n))
        return min(sizes)

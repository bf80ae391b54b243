"""WebP baseline (OpenCV / libwebp, lossy VP8), searched over a (quality, downscale) ladder.

A lossy WebP file is a 12-byte RIFF header, an 8-byte ``VP8 `` chunk header
and a 10-byte VP8 frame header before the coded data: ~30 bytes of fixed
cost, reported as ``format_overhead_bytes``. Quality 100 stays lossy in
OpenCV (above 100 would switch to lossless, which the ladder does not use).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from embodied.codecs.ladder import DEFAULT_DOWNSCALES, LadderCodec, Rung
from embodied.packet import CodecId

QUALITIES: tuple[int, ...] = (1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95, 100)


def webp_header_length(data: bytes) -> int:
    """RIFF + chunk header (+ the 10-byte VP8 frame header, or 5 for VP8L)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    chunk = data[12:16]
    return 20 + {b"VP8 ": 10, b"VP8L": 5}.get(chunk, 0)


class WebpCodec(LadderCodec):
    name = "webp"
    codec_id = CodecId.WEBP
    default_qualities = QUALITIES
    min_side = 4

    def __init__(
        self,
        frame_shape: Sequence[int] = (64, 64),
        *,
        downscales: Sequence[float] = DEFAULT_DOWNSCALES,
        qualities: Sequence[int] | None = None,
        select: str = "psnr",
        known_models: Sequence[int] = (),
    ) -> None:
        if qualities is not None and not all(1 <= q <= 100 for q in qualities):
            raise ValueError(f"WebP qualities {qualities!r} must be in 1..100 (lossy)")
        super().__init__(
            frame_shape,
            downscales=downscales,
            qualities=qualities,
            select=select,
            known_models=known_models,
        )

    def _encode_image(self, image: np.ndarray, rung: Rung) -> bytes:
        assert rung.quality is not None
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, int(rung.quality)])
        if not ok:
            raise RuntimeError("cv2.imencode('.webp') failed")
        return buf.tobytes()

    def _decode_image(self, payload: bytes, rung: Rung) -> np.ndarray | None:
        bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _format_overhead(self, payload: bytes) -> int:
        return webp_header_length(payload)

"""JPEG baseline (OpenCV / libjpeg), searched over a (quality, downscale) ladder.

OpenCV writes baseline JPEG with the standard Annex K Huffman tables and
4:2:0 chroma; about 600 bytes of every file are fixed markers and tables
(JFIF APP0, two DQT, four DHT, SOF0, SOS), which is why the smallest JPEG of
even a 4×4 image is ~630 bytes. That cost is measured per packet
(``EncodedFrame.format_overhead_bytes``, from the marker structure) and kept
in the packet by default, since it is what a stock JPEG sender pays.

``headerless=True`` gives JPEG the same favour a video codec's parameter sets
get: the receiver rebuilds the whole header from the rung (quality and size
are in the budget byte; the tables depend on nothing else), so only the
entropy-coded scan crosses the link. It is reported as its own stream
identity, never mixed with stock JPEG.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from embodied.codecs.ladder import DEFAULT_DOWNSCALES, LadderCodec, Rung
from embodied.packet import CodecId

QUALITIES: tuple[int, ...] = (1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95, 100)
_EOI = b"\xff\xd9"


def jpeg_header_length(data: bytes) -> int:
    """Bytes before the entropy-coded scan: SOI and every marker segment up to SOS's end."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # SOS: the scan's entropy-coded data follows
            return pos
    raise ValueError("no SOS marker")


@lru_cache(maxsize=512)
def _header_for(quality: int, height: int, width: int) -> bytes:
    """The header OpenCV writes at this quality and size (content-independent)."""
    _, buf = cv2.imencode(
        ".jpg", np.zeros((height, width, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    data = buf.tobytes()
    return data[: jpeg_header_length(data)]


class JpegCodec(LadderCodec):
    name = "jpeg"
    codec_id = CodecId.JPEG
    default_qualities = QUALITIES
    min_side = 8  # one DCT block

    def __init__(
        self,
        frame_shape: Sequence[int] = (64, 64),
        *,
        downscales: Sequence[float] = DEFAULT_DOWNSCALES,
        qualities: Sequence[int] | None = None,
        select: str = "psnr",
        headerless: bool = False,
        known_models: Sequence[int] = (),
    ) -> None:
        if qualities is not None and not all(1 <= q <= 100 for q in qualities):
            raise ValueError(f"JPEG qualities {qualities!r} must be in 1..100")
        self.headerless = bool(headerless)
        super().__init__(
            frame_shape,
            downscales=downscales,
            qualities=qualities,
            select=select,
            known_models=known_models,
        )

    def identity(self) -> str:
        return super().identity() + ("/headerless" if self.headerless else "")

    def _encode_image(self, image: np.ndarray, rung: Rung) -> bytes:
        assert rung.quality is not None
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rung.quality)])
        if not ok:
            raise RuntimeError("cv2.imencode('.jpg') failed")
        data = buf.tobytes()
        if self.headerless:
            start = jpeg_header_length(data)
            end = len(data) - 2 if data.endswith(_EOI) else len(data)
            return data[start:end]
        return data

    def _decode_image(self, payload: bytes, rung: Rung) -> np.ndarray | None:
        if self.headerless:
            assert rung.quality is not None
            payload = _header_for(int(rung.quality), rung.height, rung.width) + payload + _EOI
        bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _format_overhead(self, payload: bytes) -> int:
        if self.headerless:
            return 0
        return jpeg_header_length(payload) + (2 if payload.endswith(_EOI) else 0)

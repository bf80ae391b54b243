"""Raw pixels, optionally downscaled: the no-codec reference and the tiny-image baseline.

The ladder is the downscale alone (no quality knob): 64×64 → 32, 21, 16, 11,
8, 4 pixels a side. DESIGN.md measured that 8×8 and 4×4 raw frames (1536 and
384 bits) keep most of the task's gain, so this is the baseline the learned
tokens must beat at a few hundred bits. The payload is the RGB bytes, rows
first; the rung in the budget byte gives the receiver the shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embodied.codecs.ladder import LadderCodec, Rung
from embodied.packet import CodecId

RAW_DOWNSCALES: tuple[float, ...] = (1, 2, 3, 4, 6, 8, 16)


class RawCodec(LadderCodec):
    name = "raw"
    codec_id = CodecId.RAW
    default_qualities = (None,)
    min_side = 2

    def __init__(
        self,
        frame_shape: Sequence[int] = (64, 64),
        *,
        downscales: Sequence[float] = RAW_DOWNSCALES,
        select: str = "bytes",
        known_models: Sequence[int] = (),
    ) -> None:
        super().__init__(
            frame_shape, downscales=downscales, select=select, known_models=known_models
        )

    def _encode_image(self, image: np.ndarray, rung: Rung) -> bytes:
        return np.ascontiguousarray(image, dtype=np.uint8).tobytes()

    def _decode_image(self, payload: bytes, rung: Rung) -> np.ndarray | None:
        if len(payload) != rung.height * rung.width * 3:
            return None
        return np.frombuffer(payload, np.uint8).reshape(rung.height, rung.width, 3).copy()

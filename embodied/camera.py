"""Any camera frame → the tokenizer's input, the way training saw it (one function for all paths).

The tokenizers were trained on square 64×64 renders of the simulator's camera; a real camera
delivers 640×480, 1280×720, a portrait phone frame, ... :func:`to_model_input` brings any
``H × W × 3`` uint8 frame to the model's ``(h, w)`` in two steps:

1. **centre crop to the target aspect ratio** ``w : h`` (a 4:3 or 16:9 frame loses equal
   strips left and right, a portrait frame top and bottom; an odd remainder leaves the extra
   pixel on the right / bottom). Nothing is stretched: a square model sees square pixels, as
   in training. The crop's size is rounded to the nearest pixel (:func:`crop_box`);
2. **resize** the crop to ``(h, w)``: ``cv2.INTER_AREA`` when it shrinks (each output pixel
   the mean of the input pixels it covers: no aliasing, what the sim's render-at-64 is closest
   to), ``cv2.INTER_LINEAR`` when it grows in either axis (a crop smaller than the model's
   input: bilinear, no overshoot or ringing; training never saw an upscaled frame, so expect
   less from such a camera).

A frame already at ``(h, w)`` is returned as it is (the same array): the simulator's square
renders at the model's resolution, what every training frame was, pass through unchanged, so
results measured on the sim do not move.

Used by every path that brings frames to a model: the camera node (``width``/``height``), the
tokenizer node (to the codec's frame shape), ``embodied.pipeline.Receiver.from_frame``, and on
the training side ``policies.data.load_demos(resolution=...)`` and ``policies.tokenizer.encode_all``.
A :class:`embodied.codecs.tokens.TokenCodec` built with another ``frame_shape`` still resizes on
its own (a codec round trip: the image it decodes covers the whole frame it was given).

Channel order is kept (RGB in, RGB out; BGR works the same). numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def crop_box(height: int, width: int, shape: Sequence[int]) -> tuple[int, int, int, int]:
    """``(y0, x0, crop_h, crop_w)`` of the centred crop of a ``height × width`` frame with the
    aspect ratio of ``shape = (h, w)`` (the whole frame when the ratio already matches)."""
    h, w = _target(shape)
    if height < 1 or width < 1:
        raise ValueError(f"frame of {height}x{width} pixels")
    if width * h > height * w:  # wider than the target: crop the sides
        ch, cw = height, min(width, max(1, (2 * height * w + h) // (2 * h)))
    elif width * h < height * w:  # taller: crop top and bottom
        ch, cw = min(height, max(1, (2 * width * h + w) // (2 * w))), width
    else:
        ch, cw = height, width
    return (height - ch) // 2, (width - cw) // 2, ch, cw


def to_model_input(frame: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``frame`` (uint8 ``[H, W, 3]``, any size and aspect ratio) → uint8 ``[h, w, 3]``:
    centre crop to ``w : h``, then ``INTER_AREA`` down (``INTER_LINEAR`` up). A frame already
    at ``(h, w)`` comes back unchanged (the same array)."""
    h, w = _target(shape)
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] frame, got {arr.dtype} {arr.shape}")
    if arr.shape[:2] == (h, w):
        return arr
    y0, x0, ch, cw = crop_box(arr.shape[0], arr.shape[1], (h, w))
    crop = arr[y0 : y0 + ch, x0 : x0 + cw]
    if (ch, cw) == (h, w):
        return np.ascontiguousarray(crop)
    shrink = ch >= h and cw >= w
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interpolation)


def _target(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"target shape (height, width), got {tuple(shape)!r}")
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"target shape (height, width) must be positive, got {(h, w)}")
    return h, w


__all__ = ["crop_box", "to_model_input"]

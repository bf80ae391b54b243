"""``embodied.camera.to_model_input``: any camera frame → the tokenizer's input (centre crop to the
aspect ratio, INTER_AREA down, INTER_LINEAR up); a frame at the target size passes unchanged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from embodied.camera import crop_box, to_model_input

TARGET = (64, 64)
#: (height, width): 4:3 landscape, 16:9 landscape, portrait
CAMERAS = [(480, 640), (720, 1280), (640, 480)]


def _marker_frame(height: int, width: int, side: int) -> np.ndarray:
    """Grey frame, a white square of ``side`` pixels centred, red strips where the crop cuts."""
    f = np.full((height, width, 3), 60, np.uint8)
    y0, x0, ch, cw = crop_box(height, width, TARGET)
    f[:, :x0] = f[:, x0 + cw :] = (255, 0, 0)  # cut away by the crop: must not show
    f[:y0] = f[y0 + ch :] = (255, 0, 0)
    cy, cx = height // 2, width // 2
    f[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2] = 255
    return f


@pytest.mark.parametrize(("height", "width"), CAMERAS)
def test_any_camera_frame_becomes_the_models_input(height, width):
    side = min(height, width) // 4
    out = to_model_input(_marker_frame(height, width, side), TARGET)
    assert out.shape == (*TARGET, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    # nothing of what the centre crop cuts away reaches the model
    assert not np.any((out[..., 0] > 150) & (out[..., 1] < 100))
    # the centred square lands centred, a quarter of the picture wide (no stretch: square)
    white = out.min(-1) > 200
    ys, xs = np.nonzero(white)
    assert abs(ys.mean() - 31.5) <= 0.5 and abs(xs.mean() - 31.5) <= 0.5, (ys.mean(), xs.mean())
    assert abs((ys.max() - ys.min() + 1) - (xs.max() - xs.min() + 1)) <= 1
    assert 14 <= xs.max() - xs.min() + 1 <= 17  # side / crop * 64 = 16


@pytest.mark.parametrize(("height", "width"), CAMERAS)
def test_crop_is_centred_with_the_target_aspect(height, width):
    y0, x0, ch, cw = crop_box(height, width, TARGET)
    assert ch == cw == min(height, width)
    assert (y0, x0) == ((height - ch) // 2, (width - cw) // 2)
    # a non-square target: 4:3 → 80 wide by 48 high (5:3) crops top and bottom
    assert crop_box(480, 640, (48, 80)) == (48, 0, 384, 640)
    assert crop_box(480, 640, (48, 80)) == crop_box(480, 640, (96, 160))
    assert to_model_input(np.zeros((480, 640, 3), np.uint8), (48, 80)).shape == (48, 80, 3)


def test_a_frame_at_the_target_size_is_returned_unchanged():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (*TARGET, 3), dtype=np.uint8)
    assert to_model_input(frame, TARGET) is frame  # the sim's renders: nothing moves
    # a square frame of another size: no crop, the plain INTER_AREA resize (down) ...
    big = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        to_model_input(big, TARGET), cv2.resize(big, (64, 64), interpolation=cv2.INTER_AREA)
    )
    # ... and bilinear up
    small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        to_model_input(small, TARGET),
        cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR),
    )
    # a crop that already has the target size is only cut out
    wide = rng.integers(0, 256, (64, 100, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_model_input(wide, TARGET), wide[:, 18:82])


def test_bad_frames_and_shapes_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((48, 64, 3), np.float32), TARGET)
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((48, 64), np.uint8), TARGET)
    with pytest.raises(ValueError, match="positive"):
        to_model_input(np.zeros((48, 64, 3), np.uint8), (0, 64))


def test_the_receiver_brings_any_image_to_the_tokenizer_the_same_way():
    from embodied.codecs.tokens import TokenCodec
    from embodied.pipeline import Receiver
    from tests.fixtures.tiny_models import TOKENIZER

    tok = TokenCodec(TOKENIZER)
    rx = Receiver(tok)
    rng = np.random.default_rng(1)
    for h, w in CAMERAS:
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        got = rx.from_frame(frame).token_ids
        _, want = tok.tokenize(to_model_input(frame, tok.frame_shape)[None])
        np.testing.assert_array_equal(got, want[0])

"""Real camera sizes over real DDS: 640×480 and 1280×720 ``camera/image_raw`` images into the
tokenizer node (its own process) come out as decodable token packets, and their tokens are the
tokens of the frame brought to the model's input by ``embodied.camera.to_model_input`` (centre
crop + INTER_AREA), not of a stretched frame."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.tiny_models import make_frames

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(150)]
#: (height, width) of the cameras
SIZES = ((480, 640), (720, 1280))


def _camera_frame(height: int, width: int, seed: int) -> np.ndarray:
    """A scene in the centre square, noise where the centre crop cuts the sides away."""
    side = min(height, width)
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    frame[y0 : y0 + side, x0 : x0 + side] = make_frames(1, seed=seed, res=side)[0]
    return frame


def test_tokenizer_node_takes_any_camera_size(models, procs, ros):
    import cv2
    from sensor_msgs.msg import CompressedImage, Image

    from embodied.camera import to_model_input
    from embodied.codecs.tokens import TokenCodec
    from ros_nodes.common import rgb_to_image, topic_qos
    from ros_nodes.wire import PacketFormat

    tok, _ = models
    codec = TokenCodec(tok)
    shape = codec.frame_shape
    frames = [_camera_frame(h, w, seed=i) for i, (h, w) in enumerate(SIZES)]
    expected = [codec.tokenize(to_model_input(f, shape)[None])[1][0] for f in frames]
    stretched = [
        codec.tokenize(cv2.resize(f, shape[::-1], interpolation=cv2.INTER_AREA)[None])[1][0]
        for f in frames
    ]
    # even the first token tells the crop from a stretch, so a packet at any budget does
    assert all(e[0] != s[0] for e, s in zip(expected, stretched, strict=True))

    procs.node("embodied-tokenizer-node", "tokenizer", tokenizer_dir=tok, budget=32)
    packets = ros.collect(CompressedImage, "tokens/packets", topic_qos("packets", 100))
    pub = ros.node.create_publisher(Image, "camera/image_raw", topic_qos("image"))
    state = {"n": 0}

    def tick() -> None:  # 10 frames/s, alternating the two camera sizes
        frame = frames[state["n"] % len(frames)]
        pub.publish(rgb_to_image(frame, ros.node.get_clock().now().to_msg()))
        state["n"] += 1

    ros.node.create_timer(0.1, tick)

    def seen() -> list[int]:
        counts = [0] * len(frames)
        for _, m in packets:
            d = codec.decode(bytes(m.data))  # decodable: CRC keyed by the tokenizer's stream id
            for i, e in enumerate(expected):
                if np.array_equal(np.asarray(d.tokens), e[: d.budget]):
                    counts[i] += 1
        return counts

    ros.spin_until(lambda: min(seen()) >= 3, 90, "packets of both camera sizes")
    for _, m in packets:
        fmt = PacketFormat.parse(m.format)
        assert fmt.model_id == codec.model_id and fmt.frame_shape == shape
        d = codec.decode(bytes(m.data))
        assert 1 <= d.budget <= codec.k_max
        # every packet is one of the two frames, cropped (never the stretched tokens)
        assert any(np.array_equal(np.asarray(d.tokens), e[: d.budget]) for e in expected), d.budget

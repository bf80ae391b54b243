"""``ActionChunker.drop_chunk``: the stop command the ROS watchdogs send."""

import numpy as np

from embodied.policy import ActionChunker


def test_drop_chunk_holds_until_a_newer_chunk():
    c = ActionChunker(action_dim=4)
    chunk = np.array([[0.5, 0.1, -0.2, 0.7]] * 4, np.float32)
    assert c.submit(chunk, obs_step=0)
    np.testing.assert_array_equal(c.next_action(), chunk[0])
    c.drop_chunk()
    assert c.holding and c.remaining == 0
    held = c.next_action()
    np.testing.assert_allclose(held, [0.0, 0.0, 0.0, 0.7])  # arm still, grip kept
    assert c.held_steps == 1
    newer = np.full((4, 4), 0.25, np.float32)
    assert c.submit(newer, obs_step=c.step)
    np.testing.assert_array_equal(c.next_action(), newer[0])

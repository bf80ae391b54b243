"""``embodied view`` on a running sim graph over real DDS: a live budget change shows within a
second (the packets' budget, the bits and the received picture's fidelity move together),
and the same view replays the graph's MCAP recording."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

pytest.importorskip("rerun")
pytest.importorskip("mujoco")

from tests.ros_nodes.test_graph import LENIENT, _qos


def test_live_view_of_the_graph_and_its_recording(models, procs, ros, tmp_path):
    from std_msgs.msg import String

    from embodied_tools.view.readback import read_recording

    tok, pol = models
    ev = ros.collect(String, "robot/events", _qos("events"))
    procs.node("embodied-sim-robot-node", "sim_robot", task="drawer-open,door-open", episodes=0)
    procs.node("embodied-tokenizer-node", "tokenizer", tokenizer_dir=tok, budget=64)
    procs.node("embodied-policy-node", "policy", tokenizer_dir=tok, policy_dir=pol, **LENIENT)
    live, mcap, replayed = tmp_path / "live.rrd", tmp_path / "run.mcap", tmp_path / "replay.rrd"
    view = procs.start("view", ["embodied", "view", "--save", str(live), "--duration", "14",
                                "--tokenizer-dir", str(tok)])  # fmt: skip
    record = procs.start("record", ["embodied", "record", "--out", str(mcap), "--duration", "12"])
    ros.spin_until(lambda: any(json.loads(m.data)["event"] == "start" for _, m in ev), 60, "start")
    ros.spin_for(5.0)
    tuned_at = time.time()
    tune = procs.start("tune", ["embodied", "tune", "tokenizer", "budget", "2"])
    assert tune.wait(timeout=30) == 0, procs.log("tune")
    assert view.wait(timeout=60) == 0, procs.log("view")[-3000:]
    assert record.wait(timeout=60) == 0, procs.log("record")[-2000:]

    got = read_recording(live)
    _, logged, budget = got.scalars("budget/sent")
    assert {64, 2} <= set(budget), set(budget)
    first_low = logged[np.argmax(budget == 2)]
    # shown within a second of the change: from the moment the node applied it (its log line's
    # stamp, the same clock), not from the tune command's start (a Python + DDS start-up)
    m = re.search(r"\[INFO\] \[(\d+\.\d+)\] \[tokenizer\]: set budget=2", procs.log("tokenizer"))
    assert m is not None, procs.log("tokenizer")[-2000:]
    applied = float(m.group(1))
    assert tuned_at < applied < first_low < applied + 1.0, (tuned_at, applied, first_low)
    _, _, payload = got.scalars("bits/payload")
    assert payload[budget == 64].mean() > 4 * payload[budget == 2].mean()
    # the received picture follows: the decoder at 2 tokens is further from the camera frame
    _, q_logged, psnr = got.scalars("quality/psnr_db")
    assert psnr[q_logged < tuned_at].mean() > psnr[q_logged > first_low + 0.5].mean() + 0.5
    for path in ("camera/front", "received/front", "rate/wire_kbps", "latency/arrival_ms",
                 "latency/action_p50_ms", "misses/deadline_pct", "packets/dropped",
                 "task/belief", "task/instruction", "events"):  # fmt: skip
        assert path in got.paths(), (path, got.paths())
    assert any(t.startswith("start") for t in got.texts("events"))

    # the recording of the same graph, replayed as fast as possible, fills the same panels
    replay = procs.start("replay", ["embodied", "view", str(mcap), "--fast", "--save",
                                    str(replayed), "--tokenizer-dir", str(tok)])  # fmt: skip
    assert replay.wait(timeout=120) == 0, procs.log("replay")[-3000:]
    again = read_recording(replayed)
    assert set(got.paths()) - set(again.paths()) <= {"rate/capacity_kbps"}, again.paths()
    assert {64, 2} <= set(again.scalars("budget/sent")[2])

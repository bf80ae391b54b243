"""Controllers: settings validation, registry, and closed-loop behaviour on the link emulator."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from embodied.control import (
    REGISTRY,
    SETTINGS_SPEC,
    SKIP,
    ControllerSettings,
    ControllerSpec,
    Feedback,
    make_controller,
    register,
    settings_spec,
)
from embodied.control.estimators import OnlineLinear
from embodied.link import RateTrace
from embodied.link.synthetic import generate, spec_by_name
from embodied_tools.linksim import SimConfig, main, simulate

DEADLINE = 0.1


def _run(trace, name: str, **kw):
    return simulate(trace, name, **kw)


def _arrays(result):
    f = result.frames
    return np.array(f.capture), np.array(f.budget), np.array(f.latency), np.array(f.link)


# -- settings ------------------------------------------------------------------------------
def test_default_settings_and_spec_table():
    s = ControllerSettings()
    assert (s.deadline_ms, s.min_budget, s.max_budget, s.mode, s.k_max) == (
        100.0,
        1,
        64,
        "adaptive",
        64,
    )
    assert set(SETTINGS_SPEC) == {f.name for f in dataclasses.fields(ControllerSettings)}
    for spec in SETTINGS_SPEC.values():
        assert spec.description and spec.default == getattr(s, spec.name)
    assert (
        SETTINGS_SPEC["max_budget"].max == 64 and settings_spec(k_max=128)["max_budget"].max == 128
    )
    assert SETTINGS_SPEC["mode"].choices == ("adaptive", "hold", "min", "max")
    assert not SETTINGS_SPEC["k_max"].live


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"deadline_ms": 0.0}, r"deadline_ms=0.0 is out of range: allowed 1.0..10000.0"),
        ({"deadline_ms": float("nan")}, "finite"),
        ({"min_budget": 0}, r"min_budget=0 is out of range: allowed 1..64"),
        ({"max_budget": 65}, r"max_budget=65 is out of range: allowed 1..64"),
        ({"max_budget": 8.5}, "must be an integer"),
        ({"max_budget": True}, "must be an integer"),
        ({"min_budget": 10, "max_budget": 5}, "must not exceed"),
        ({"bitrate_cap_kbps": -1.0}, "out of range"),
        ({"mode": "turbo"}, r"one of 'adaptive', 'hold', 'min', 'max'"),
    ],
)
def test_bad_settings_are_refused_with_the_range(changes, match):
    with pytest.raises(ValueError, match=match):
        ControllerSettings(**changes)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_update_settings_validates_and_keeps_old_values(name):
    ctrl = make_controller(name, world=_NullWorld())
    new = ctrl.update_settings(deadline_ms=150.0, max_budget=32)
    assert ctrl.settings is new and (new.deadline_ms, new.max_budget) == (150.0, 32)
    before = ctrl.settings
    with pytest.raises(ValueError, match=r"allowed 1\.\.64 \(kept min_budget=1, max_budget=32\)"):
        ctrl.update_settings(min_budget=1, max_budget=99)
    assert ctrl.settings is before
    with pytest.raises(ValueError, match="must not exceed"):
        ctrl.update_settings(min_budget=40)
    assert ctrl.settings is before
    with pytest.raises(ValueError, match=r"unknown setting 'deadline'.*deadline_ms"):
        ctrl.update_settings(deadline=10)
    with pytest.raises(ValueError, match="cannot change while running"):
        ctrl.update_settings(k_max=128)
    assert ctrl.settings is before


# -- registry ------------------------------------------------------------------------------
class _NullWorld:
    def latency_if(self, now: float, budget: int) -> float | None:
        return 0.01


def test_registry_refuses_duplicates_and_names_valid_ones():
    assert {"fixed", "aimd", "deadline", "success", "oracle"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="already registered"):
        register(ControllerSpec("aimd", "x:Y", "dup"))
    with pytest.raises(
        KeyError,
        match=r"Did you mean 'deadline'.*Valid controllers: fixed, aimd, deadline, success, oracle",
    ):
        make_controller("dealine")
    with pytest.raises(ValueError, match="needs the simulator's world"):
        make_controller("oracle")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_controller_cites_its_source(name):
    cls = REGISTRY[name].load()
    assert cls.name == name
    assert cls.__doc__ and len(cls.__doc__) > 80


# -- every registered controller in the loop ------------------------------------------------
CELLULAR = generate(spec_by_name("cellular"))
SHORT = SimConfig(duration_s=20.0)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_budgets_in_range_and_deterministic(name):
    settings = ControllerSettings(min_budget=2, max_budget=48)
    a = _run(CELLULAR, name, settings=settings, config=SHORT)
    b = _run(CELLULAR, name, settings=settings, config=SHORT)
    _, budget, _, fate = _arrays(a)
    sent = budget[fate != "skipped"]
    assert sent.size > 0 and sent.min() >= 2 and sent.max() <= 48
    assert set(budget[fate == "skipped"]) <= {SKIP}
    assert a.frames == b.frames and a.summary == b.summary


class _Retune:
    """Wraps a controller and changes its settings at given times, as a ROS node would."""

    def __init__(self, inner, at: dict[float, dict]):
        self.inner, self.at = inner, dict(at)
        self.name = inner.name

    @property
    def settings(self):
        return self.inner.settings

    def update_settings(self, **changes):
        return self.inner.update_settings(**changes)

    def observe(self, fb: Feedback) -> None:
        self.inner.observe(fb)

    def next_budget(self, now: float, *, keyframe: bool = True) -> int:
        for t in [t for t in self.at if now >= t]:
            self.inner.update_settings(**self.at.pop(t))
        return self.inner.next_budget(now, keyframe=keyframe)


@pytest.mark.parametrize("name", ["fixed", "aimd", "deadline", "success"])
def test_live_settings_take_effect(name):
    ctrl = _Retune(
        make_controller(name),
        {5.0: {"max_budget": 10}, 10.0: {"mode": "min", "min_budget": 3}, 15.0: {"mode": "max"}},
    )
    t, budget, _, fate = _arrays(simulate(CELLULAR, ctrl, config=SHORT))
    sent = fate != "skipped"
    assert budget[sent & (t >= 5.0) & (t < 10.0)].max() <= 10
    assert set(budget[(t >= 10.0) & (t < 15.0)]) == {3}
    assert set(budget[t >= 15.0]) == {10}


@pytest.mark.parametrize("name", ["fixed", "aimd", "deadline"])
def test_bitrate_cap(name):
    # 6 kbit/s at 30 fps with 8-byte framing leaves 25 wire bytes a frame: k <= about 10.
    settings = ControllerSettings(bitrate_cap_kbps=6.0)
    r = _run(RateTrace.constant(50_000.0, 20.0), name, settings=settings, config=SHORT)
    _, budget, _, fate = _arrays(r)
    late = budget[fate != "skipped"][60:]  # after the size model has seen some frames
    assert late.max() <= 11
    assert r.summary["packet_kbps"] + r.summary["overhead_kbps"] <= 6.0 * 1.1


# -- the controllers' own behaviour ---------------------------------------------------------
def test_fixed_always_sends_its_budget():
    _, budget, _, _ = _arrays(
        _run(CELLULAR, "fixed", settings=ControllerSettings(budget=7), config=SHORT)
    )
    assert set(budget) == {7}
    ctrl = make_controller("fixed", ControllerSettings(budget=7))
    ctrl.update_settings(budget=3)  # the budget is a live setting like any other
    assert ctrl.next_budget(0.0) == 3
    with pytest.raises(ValueError, match=r"budget=65 is out of range: allowed 0\.\.64"):
        ctrl.update_settings(budget=65)
    assert ctrl.settings.budget == 3


def _fb(i: int, latency: float, status: str = "delivered") -> Feedback:
    t = i / 30
    arrival = None if status == "lost" else t + latency
    return Feedback(i, 8, 20, 8, t, t + 0.001, 0.001, status, t + 0.2, arrival)  # type: ignore[arg-type]


def test_aimd_by_hand():
    ctrl = make_controller("aimd", ControllerSettings(min_budget=4))
    assert ctrl.next_budget(0.0) == 4
    for i in range(10):  # ten on-time frames at a steady pace: x1.5
        ctrl.observe(_fb(i, 0.05))
    assert ctrl.next_budget(0.4) == 6
    ctrl.observe(_fb(10, 0.25))  # late: x0.7 (6 -> 4.2)
    assert ctrl.next_budget(0.5) == 4
    ctrl.observe(_fb(11, 0.25))  # sent before the cut: no second cut in the same window
    assert ctrl._budget == pytest.approx(4.2)


def test_oracle_never_sends_a_late_frame():
    r = _run(CELLULAR, "oracle", config=SimConfig(duration_s=60.0))
    _, _, latency, fate = _arrays(r)
    delivered = fate == "delivered"
    assert np.all(latency[delivered] <= DEADLINE + 1e-9)
    assert r.summary["util_pct"] > 95


def test_deadline_stable_link_meets_targets():
    r = _run(generate(spec_by_name("stable")), "deadline")
    assert r.summary["miss_pct"] <= 1.0
    assert r.summary["util_pct"] >= 70.0


def test_deadline_step_down_and_up():
    # 80 kbit/s, 10x down to 8 kbit/s at 10 s, back up at 20 s.
    tr = RateTrace.from_segments([(10.0, 80e3), (10.0, 8e3), (10.0, 80e3)], name="step")
    r = _run(tr, "deadline")
    t, budget, latency, fate = _arrays(r)
    on_time = (fate == "delivered") & (latency <= DEADLINE)
    (recovery,) = r.summary["recovery_frames"]
    assert recovery <= 5  # back inside the deadline within 5 frames
    low = (t >= 10.5) & (t < 20.0)
    assert on_time[low].mean() >= 0.99
    assert np.median(budget[low & (fate != "skipped")]) < 30  # fell with the link
    high = (t >= 22.0) & (t < 30.0)
    assert np.median(budget[high]) == 64 and on_time[high].all()  # climbed back after the step up


def test_deadline_two_second_outage():
    tr = RateTrace.from_segments([(10.0, 12e3), (2.0, 0.0), (10.0, 12e3)], name="outage")
    r = _run(tr, "deadline")
    t, budget, latency, fate = _arrays(r)
    backlog = np.array(r.frames.backlog)
    during = (t >= 10.2) & (t < 12.0)
    assert set(budget[during]) <= {SKIP, 1}  # skip, or send the minimum as a probe
    assert (budget[during] == 1).any()
    # bytes: the queue stays bounded (a probe written off by the 1-s loss rule frees its slot
    # among the six in flight, so the queue holds at most ~15 minimum packets of 16 bytes)
    assert backlog[(t >= 10.0) & (t < 12.2)].max() < 300
    on_time = (fate == "delivered") & (latency <= DEADLINE)
    after = (t >= 12.3) & (t < 22.0)
    assert on_time[after].all()
    assert np.mean(budget[after]) > 20  # recovered, not stuck at the minimum
    s = r.summary
    # outside the outage: the frame caught in the queue when it began, and the few frames the
    # controller skips after the link is back until a probe's report says so (a round trip)
    assert s["outage_frames"] >= 55 and s["miss_pct_outside_outages"] <= 1.5
    # the one miss rule counts the outage's skipped and late frames against frames captured
    assert s["misses"] == s["late"] + s["lost"] + s["skipped"] >= 50
    assert s["miss_pct"] == pytest.approx(100 * s["misses"] / s["frames"])


def test_deadline_tolerates_bursty_loss():
    from embodied.link import GilbertElliott, LinkConfig

    ge = GilbertElliott(0.01, 0.3, step_s=1 / 30)  # ~3% of frames lost, bursts of ~3
    cfg = SimConfig(duration_s=60.0, link=LinkConfig(overhead_bytes=8, burst_loss=ge, seed=1))
    s = _run(generate(spec_by_name("stable")), "deadline", config=cfg).summary
    assert s["link_losses"] >= 20 and s["lost"] >= s["link_losses"]
    assert s["miss_pct"] <= 5.0 and s["util_pct"] >= 70.0


@pytest.mark.parametrize("name", ["deadline", "aimd"])
def test_random_loss_is_reported_apart(name):
    from embodied.link import LinkConfig

    cfg = SimConfig(duration_s=20.0, link=LinkConfig(overhead_bytes=8, loss_rate=0.05, seed=1))
    s = _run(generate(spec_by_name("stable")), name, config=cfg).summary
    assert 10 <= s["link_losses"] <= 60  # about 5% of 600 frames
    assert s["lost"] == s["link_losses"] + s["queue_drops"]  # every loss is a miss
    assert s["misses"] >= s["lost"]


def test_online_linear_learns_a_line():
    m = OnlineLinear(prior_intercept=0.0, prior_slope=2.0)
    for i in range(400):
        k = 1 + i % 64
        m.update(k, 7.0 + 0.9 * k)
    assert m.predict(1) == pytest.approx(7.9, abs=0.3)
    assert m.predict(64) == pytest.approx(64.6, abs=0.5)


def test_online_linear_cold_start_does_not_inflate_the_upper_prediction():
    # The first packet (k = 15, 40 B) is far from the prior line (8 + k): judged against the
    # prior alone it would read as a 74% error. Then a steady stream of k = 1 packets of 18 B.
    m = OnlineLinear(prior_intercept=8.0, prior_slope=1.0)
    m.update(15, 40.0)
    for _ in range(5):
        m.update(1, 18.0)
    assert m.residual_std < 0.3
    assert m.predict(1, 1.5) < 1.6 * 18.0  # an upper prediction, not a 4x over-estimate
    # a genuinely noisy source still widens it (clipped per sample at +-50%)
    n = OnlineLinear(prior_intercept=8.0, prior_slope=1.0)
    for i in range(200):
        n.update(4, 12.0 * (1.6 if i % 2 else 0.6))
    assert 0.3 < n.residual_std <= 0.5


# -- simulator accounting ------------------------------------------------------------------
def test_simulator_accounting_by_hand():
    from embodied.link import LinkConfig
    from embodied.link.models import LinearSizeModel

    # k = 10: 7 + 9 = 16 payload bytes + 8 framing = 24 wire bytes, 10 frames/s = 240 B/s
    # on a 480 B/s link: 50% utilization, 50 ms transmission + 20 ms propagation + ~1.2 ms compute.
    cfg = SimConfig(frame_rate_hz=10.0, link=LinkConfig(overhead_bytes=8, propagation_delay_s=0.02))
    r = simulate(
        RateTrace.constant(3840.0, 10.0),
        "fixed",
        settings=ControllerSettings(budget=10),
        sizes=LinearSizeModel(jitter=0.0),
        config=cfg,
    )
    s = r.summary
    assert s["frames"] == 100 and s["misses"] == 0 and s["outage_frames"] == 0
    assert s["util_pct"] == pytest.approx(50.0) and s["util_raw_pct"] == pytest.approx(50.0)
    assert s["packet_kbps"] == pytest.approx(1.28) and s["overhead_kbps"] == pytest.approx(0.64)
    assert s["latency_p50_ms"] == pytest.approx(71.2, abs=0.5)


def test_outage_frames_by_hand():
    # Minimum frame: 16 wire bytes = 384 bits per 100 ms deadline window at 30 fps. With a
    # 1-s outage from t = 5 s on a 12 kbit/s link, a frame is in an outage when its window
    # holds under 384 bits: t in [5.0, 5.9], 28 frames.
    tr = RateTrace.from_segments([(5.0, 12e3), (1.0, 0.0), (4.0, 12e3)])
    r = simulate(tr, "fixed", settings=ControllerSettings(budget=1), sizes=_exact_sizes())
    t = np.array(r.frames.capture)
    outage = np.array(r.frames.outage)
    assert outage.sum() == 28
    assert t[outage].min() == pytest.approx(5.0) and t[outage].max() == pytest.approx(5.9)


def _exact_sizes():
    from embodied.link.models import LinearSizeModel

    return LinearSizeModel(jitter=0.0)


# -- command line ------------------------------------------------------------------------
def test_cli_single_run_writes_results(tmp_path: Path, capsys):
    pytest.importorskip("matplotlib", reason="link-sim's timeline plot (the tools extra)")
    rc = main(["--trace", "step10x", "--controller", "deadline", "--controller", "fixed",
               "--budget", "8", "--duration", "3", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["controller"] for r in data["results"]] == ["deadline", "fixed"]
    assert data["meta"]["overhead_bytes"] == 8
    assert (tmp_path / "step10x.png").stat().st_size > 1000
    assert (tmp_path / "results.csv").read_text().startswith("trace,controller,")
    assert "miss%" in capsys.readouterr().out


def test_cli_refuses_bad_input(tmp_path: Path, capsys):
    assert main(["--trace", "nope", "--out", str(tmp_path)]) == 2
    assert "Valid traces: stable, cellular" in capsys.readouterr().err
    assert main(["--controller", "dealine", "--duration", "1", "--out", str(tmp_path)]) == 2
    assert "Valid controllers:" in capsys.readouterr().err
    assert main(["--min-budget", "0", "--out", str(tmp_path)]) == 2
    assert "allowed 1..64" in capsys.readouterr().err
    assert main(["--burst", "0.1", "--out", str(tmp_path)]) == 2
    assert "P_GB,P_BG" in capsys.readouterr().err


# -- several robots on one link ------------------------------------------------------------
def test_shared_link_counts_every_robot_and_shares_the_queue():
    from embodied.link import LinkConfig
    from embodied_tools.linksim import simulate_shared

    # 4 robots at k = 10 (24 wire bytes each, 10 frames/s): 960 B/s into a 960 B/s link
    # saturates it; into twice that it does not. One robot's k = 10 alone never queues.
    cfg = SimConfig(frame_rate_hz=10.0, duration_s=10.0,
                    link=LinkConfig(overhead_bytes=8, propagation_delay_s=0.02))  # fmt: skip
    fixed10 = ControllerSettings(budget=10)
    wide = simulate_shared(RateTrace.constant(8 * 1920.0, 10.0), "fixed", 4, settings=fixed10,
                           sizes=_exact_sizes(), config=cfg)  # fmt: skip
    narrow = simulate_shared(RateTrace.constant(8 * 700.0, 10.0), "fixed", 4, settings=fixed10,
                             sizes=_exact_sizes(), config=cfg)  # fmt: skip
    assert wide.summary["captured"] == 4 * 100 and len(wide.robots) == 4
    assert wide.summary["deadline_misses"] == 0
    assert narrow.summary["deadline_misses"] > 100  # the shared queue delays everyone
    assert all(r["captured"] == 100 for r in narrow.robots)
    assert narrow.summary["packet_kbps"] == pytest.approx(4 * 16 * 8 * 10 / 1e3)
    # independent deadline-aware controllers on one queue: fair shares, fewer misses than AIMD
    cell = RateTrace.from_segments([(10.0, 4 * 12e3), (10.0, 4 * 6e3)], name="steps")
    cfg4 = SimConfig(duration_s=20.0, link=LinkConfig(overhead_bytes=8, queue_limit_bytes=12_000))
    dl = simulate_shared(cell, "deadline", 4, config=cfg4).summary
    aimd = simulate_shared(cell, "aimd", 4, config=cfg4).summary
    assert dl["fairness_jain"] > 0.95 and dl["deadline_miss_pct"] < aimd["deadline_miss_pct"]
    with pytest.raises(ValueError, match="sees the future"):
        simulate_shared(cell, "oracle", 2)


def test_cli_shared_link_writes_results(tmp_path: Path, capsys):
    rc = main(["--trace", "cellular", "--robots", "2", "--controller", "deadline",
               "--controller", "fixed", "--budget", "4", "--duration", "5",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    data = json.loads((tmp_path / "shared.json").read_text())
    assert [r["controller"] for r in data["results"]] == ["deadline", "fixed"]
    assert data["meta"]["robots"] == 2 and len(data["results"][0]["per_robot"]) == 2
    assert "2 robots on one link" in capsys.readouterr().out
    assert main(["--trace", "cellular", "--robots", "2", "--controller", "oracle",
                 "--out", str(tmp_path)]) == 2  # fmt: skip

"""The pipeline's rules, tested directly (no ROS, no MuJoCo): the miss rule, the loss rule,
budget → codec setting, the receiver's drops, and the sim-time link session."""

from __future__ import annotations

import pytest

from embodied.codecs.tokens import TokenCodec
from embodied.control.base import SKIP, BaseController, ControllerSettings, Feedback
from embodied.control.registry import make_controller
from embodied.link.emulator import LinkConfig
from embodied.link.session import LinkSession
from embodied.link.traces import RateTrace
from embodied.pipeline import FateCounts, Observation, Receiver, Sender, frame_fate, is_miss
from tests.fixtures.tiny_models import committed, make_frames


class Recorder(BaseController):
    """A fixed budget (or a script of them) that records every report it is given."""

    name = "recorder"

    def __init__(self, settings=None, *, script=(), **kw) -> None:
        super().__init__(settings or ControllerSettings(), **kw)
        self.script = list(script)
        self.reports: list[Feedback] = []

    def _decide(self, now: float) -> int:
        return self.script.pop(0) if self.script else self.settings.max_budget

    def _observe(self, feedback: Feedback) -> None:
        self.reports.append(feedback)


@pytest.fixture(scope="module")
def tok() -> TokenCodec:
    return TokenCodec(committed()[0])


def _send(s: Sender, key: int, t: float, k: int = 4) -> Feedback:
    return s.on_sent(key, budget=k, packet_bytes=10 + k, overhead_bytes=8, capture_time=t,
                     send_time=t + 0.002, compute_s=0.002)  # fmt: skip


# -- the miss rule ---------------------------------------------------------------------------
def test_frame_fate_and_the_miss_rule():
    assert frame_fate(1.0, 1.1, 0.1) == "on_time"  # exactly at the deadline: on time
    assert frame_fate(1.0, 1.1001, 0.1) == "late"
    assert frame_fate(1.0, None, 0.1) == "lost"
    assert [is_miss(f) for f in ("on_time", "late", "lost", "skipped")] == [0, 1, 1, 1]
    c = FateCounts(on_time=6, late=1, lost=1, skipped=2)
    assert (c.captured, c.sent, c.misses) == (10, 8, 4)
    assert c.miss_rate == pytest.approx(0.4)  # of frames captured, skips included
    c.move("on_time", "lost")  # a delivered packet the receiver refused
    assert (c.on_time, c.lost, c.captured) == (5, 2, 10)
    with pytest.raises(ValueError, match="unknown fate 'dropped'; fates: on_time, late"):
        c.add("dropped")  # type: ignore[arg-type]
    total = FateCounts()
    total += c
    total += FateCounts(skipped=10)
    assert total.as_dict()["deadline_miss_pct"] == pytest.approx(100 * 15 / 20)
    assert FateCounts().miss_rate == 0.0


def test_a_skip_is_a_miss_counted_by_the_sender():
    s = Sender(Recorder(script=[SKIP, 3]))
    assert s.next_budget(0.0) == SKIP and s.next_budget(0.033) == 3
    assert (s.fates.skipped, s.fates.captured, s.fates.misses) == (1, 1, 1)


# -- the loss rule ---------------------------------------------------------------------------
def test_a_report_about_a_later_packet_declares_the_earlier_ones_lost():
    ctrl = Recorder()
    s = Sender(ctrl, loss_timeout_s=0.5)
    for i in range(3):
        _send(s, i, i / 30)
    assert s.on_report(2, arrival_time=0.12, observed_at=0.14) == "on_time"
    assert [(r.frame_id, r.status) for r in ctrl.reports[3:]] == [
        (0, "lost"), (1, "lost"), (2, "delivered")]  # fmt: skip
    assert ctrl.reports[3].observed_at == 0.14  # known when the later report came
    assert (s.fates.lost, s.fates.on_time, len(s.pending)) == (2, 1, 0)
    # a report about a packet already written off: counted, not raised, fates unchanged
    assert s.on_report(0, arrival_time=0.5, observed_at=0.52) is None
    assert s.unknown_reports == 1 and s.fates.captured == 3


def test_the_timeout_declares_a_loss_at_send_plus_timeout():
    ctrl = Recorder()
    s = Sender(ctrl, loss_timeout_s=0.5)
    _send(s, 7, 1.0)
    assert s.next_timeout() == pytest.approx(1.502)
    assert s.check_losses(1.5) == 0 and len(s.pending) == 1
    s.next_budget(2.0)  # the sender applies the timeout before every decision
    lost = ctrl.reports[-1]
    assert (lost.status, lost.frame_id, lost.observed_at) == ("lost", 7, pytest.approx(1.502))
    assert s.fates.lost == 1 and s.next_timeout() is None
    # a late report after the write-off is no second verdict
    assert s.on_report(7, arrival_time=2.1, observed_at=2.12) is None and s.fates.captured == 1
    assert s.spurious_losses == 1 and s.unknown_reports == 0  # the timeout was too short


def test_the_loss_timeout_grows_to_the_reports_round_trip():
    """Reports come back 1.5 s after each send (a satellite or acoustic link): the fixed 0.5 s
    timeout writes the first packets off, their late reports teach the round trip (RFC 6298),
    and from then on packets are no longer declared lost before their report comes."""
    ctrl = Recorder()
    s = Sender(ctrl, loss_timeout_s=0.5)
    rtt, period = 1.5, 0.2
    reports: list[tuple[float, int]] = []  # (observed at, key)
    verdicts = []
    for i in range(60):
        now = i * period
        while reports and reports[0][0] <= now:
            seen, key = reports.pop(0)
            verdicts.append((key, s.on_report(key, arrival_time=seen - 0.01, observed_at=seen)))
        s.next_budget(now)
        _send(s, i, now)
        reports.append((now + 0.002 + rtt, i))
    lost_early = [k for k, v in verdicts if v is None]
    assert lost_early and max(lost_early) < 20  # written off at first only
    assert all(v is not None for k, v in verdicts if k >= 20)
    assert s.spurious_losses == len(lost_early) and s.unknown_reports == 0
    assert 1.5 < s.effective_loss_timeout_s < 3.0
    # a short round trip leaves the configured timeout in force
    quick = Sender(Recorder(), loss_timeout_s=0.5)
    _send(quick, 0, 0.0)
    quick.on_report(0, arrival_time=0.05, observed_at=0.06)
    assert quick.effective_loss_timeout_s == 0.5


def test_too_many_pending_reports_declares_the_oldest_lost():
    s = Sender(Recorder(), loss_timeout_s=10.0, max_pending=2)
    for i in range(3):
        _send(s, i, i / 30)
    assert list(s.pending) == [1, 2] and s.fates.lost == 1
    with pytest.raises(ValueError, match="sent twice"):
        _send(s, 2, 0.1)
    with pytest.raises(ValueError, match="must be positive"):
        Sender(Recorder(), loss_timeout_s=0)


def test_late_reports_are_late():
    s = Sender(Recorder(ControllerSettings(deadline_ms=100)))
    _send(s, 0, 0.0)
    assert s.on_report(0, arrival_time=0.25, observed_at=0.27) == "late"
    assert s.fates.late == 1 and s.fates.miss_rate == 1.0


# -- budget → the codec's setting ------------------------------------------------------------
def test_token_budget_maps_to_itself(tok):
    ctrl = make_controller("fixed", ControllerSettings.for_k_max(tok.k_max, budget=3))
    s = Sender(ctrl, codec=tok)
    assert [s.codec_setting(k) for k in (1, tok.k_max)] == [{"budget": 1}, {"budget": tok.k_max}]
    with pytest.raises(ValueError, match=rf"budget=0 is out of range: allowed 1\.\.{tok.k_max}"):
        s.codec_setting(0)
    k = s.next_budget(0.0)
    enc, seconds = s.encode(make_frames(1, res=tok.spec.resolution)[0], k, frame_id=300,
                            capture_time=1.234)  # fmt: skip
    assert k == 3 and tok.decode(enc.packet).budget == 3 and seconds > 0
    assert tok.decode(enc.packet).header.frame_id == 300 % 256


def test_a_pixel_codecs_budget_is_its_ladder_rung():
    from embodied.codecs import make_codec

    pytest.importorskip("cv2")
    jpeg = make_codec("jpeg", frame_shape=(32, 32))
    rungs = list(jpeg.budgets())
    s = Sender(make_controller("fixed", ControllerSettings.for_k_max(len(rungs))), codec=jpeg)
    assert [s.codec_setting(k)["budget"] for k in range(1, len(rungs) + 1)] == rungs
    assert Sender(s.controller, codec=jpeg, target_bytes=400).codec_setting(1) == {
        "target_bytes": 400}  # fmt: skip
    with pytest.raises(ValueError, match="does not match the codec's"):
        Sender(make_controller("fixed", ControllerSettings()), codec=jpeg)


def test_a_controller_out_of_range_is_refused():
    class Bad(Recorder):
        def next_budget(self, now: float, *, keyframe: bool = True) -> int:
            return 99

    with pytest.raises(ValueError, match=r"returned budget 99, outside 1\.\.64"):
        Sender(Bad()).next_budget(0.0)


# -- the receiver ----------------------------------------------------------------------------
def test_receiver_gives_padded_ids_and_counts_drops(tok):
    rx = Receiver(tok)
    frame = make_frames(1, res=tok.spec.resolution)[0]
    packet = tok.encode(frame, budget=2, frame_id=9).packet
    got = rx.receive(packet)
    assert isinstance(got, Observation) and (got.budget, got.frame_id) == (2, 9)
    assert got.token_ids.shape == (tok.k_max,) and not got.token_ids[2:].any()
    bad = bytearray(packet)
    bad[-1] ^= 0xFF
    assert rx.receive(bytes(bad)) is None and rx.receive(b"\x00\x01") is None
    assert rx.receive(packet, model_id=tok.model_id ^ 1) is None  # another tokenizer's stream
    assert rx.stats.accepted == 1 and sum(rx.stats.dropped.values()) == 3
    assert "ForeignModel" in rx.stats.dropped
    assert rx.receive(packet, codec="nope") is None  # unknown codec: dropped, named
    blind = rx.blind()
    assert blind.budget == 0 and blind.token_ids.shape == (tok.k_max,)


def test_receive_newest_decodes_all_acts_on_the_newest(tok):
    rx = Receiver(tok)
    frames = make_frames(3, res=tok.spec.resolution)
    packets = [tok.encode(f, budget=1 + i, frame_id=i).packet for i, f in enumerate(frames)]
    obs, index, refused = rx.receive_newest([packets[0], b"junk", packets[2]])
    assert (obs.frame_id, index, refused) == (2, 2, [1])
    assert rx.stats.accepted == 2
    assert rx.receive_newest([b"junk"]) == (None, None, [0])


def test_receive_newest_feeds_a_stateful_decoder_every_packet(tok):
    pytest.importorskip("av")
    from embodied.codecs import make_codec

    shape = (tok.spec.resolution, tok.spec.resolution)
    h264 = make_codec("h264", frame_shape=shape, qp=30)
    frames = make_frames(4, res=shape[0])
    packets = [h264.encode(f, budget=0, frame_id=i).packet for i, f in enumerate(frames)]
    rx = Receiver(tok)
    obs, index, refused = rx.receive_newest(packets[:3], codec="h264")
    assert (index, refused) == (2, []) and obs.budget == tok.k_max
    fresh = Receiver(tok)  # never saw the keyframe: the inter frame has no reference
    assert fresh.receive_newest(packets[3:], codec="h264")[2] == [0]
    assert "MissingReference" in fresh.stats.dropped


# -- the link session in simulated time -----------------------------------------------------
def test_ideal_link_session_is_on_time_and_reports_at_once():
    ctrl = Recorder()
    sess = LinkSession(Sender(ctrl), None)
    for i in range(5):
        k = sess.next_budget(i / 30)
        sess.send(i, i / 30, k, 20, 0.002)
    sess.deliver_reports(1.0)
    assert sess.fates.on_time == 5 and sess.sender.fates.on_time == 5
    assert [r.status for r in ctrl.reports].count("delivered") == 5


def test_session_counts_ground_truth_and_reports_after_the_feedback_delay():
    # 8 kbit/s: a 100-byte packet (+8 framing) takes 108 ms: late against a 100-ms deadline
    trace = RateTrace.constant(8000.0, 10.0)
    ctrl = Recorder(ControllerSettings(deadline_ms=100))
    sess = LinkSession(Sender(ctrl), trace, LinkConfig(overhead_bytes=8, propagation_delay_s=0.02))
    res = sess.send(0, 0.0, 4, 100, 0.0)
    assert res.arrival_time == pytest.approx(0.128)
    assert sess.fates.late == 1
    sess.deliver_reports(0.147)  # the report comes one propagation delay after the arrival
    assert [r.status for r in ctrl.reports] == ["sent"]
    sess.deliver_reports(0.149)
    assert ctrl.reports[-1].status == "delivered"
    assert ctrl.reports[-1].observed_at == pytest.approx(0.148)
    assert sess.sender.fates.late == 1
    sess.refused(0.0, 0.128)  # a delivered packet the receiver refused: lost
    assert (sess.fates.late, sess.fates.lost) == (0, 1)


def test_session_skips_and_outage_losses_are_misses_of_frames_captured():
    trace = RateTrace.from_segments([(1.0, 16e3), (1.0, 0.0), (1.0, 16e3)])
    ctrl = Recorder(script=[SKIP] * 3)
    cfg = LinkConfig(overhead_bytes=8, queue_limit_bytes=200)
    sess = LinkSession(Sender(ctrl, loss_timeout_s=0.3), trace, cfg)
    for i in range(90):
        t = i / 30
        k = sess.next_budget(t)
        if k != SKIP:
            sess.send(i, t, k, 40, 0.001)
    f = sess.fates
    assert f.captured == 90 and f.skipped == 3
    assert f.lost > 0 and f.misses == f.late + f.lost + f.skipped
    # the sender learned of the losses only by the rule (timeouts, later reports)
    lost_reports = [r for r in ctrl.reports if r.status == "lost"]
    assert len(lost_reports) >= f.lost - 5
    assert all(r.observed_at >= r.send_time for r in lost_reports)


def test_session_offer_carries_packets_to_arrived_and_counts_bits(tok):
    trace = RateTrace.constant(64_000.0, 10.0)
    ctrl = make_controller("fixed", ControllerSettings.for_k_max(tok.k_max, budget=4))
    sess = LinkSession(Sender(ctrl, codec=tok), trace, LinkConfig(overhead_bytes=8))
    frames = make_frames(3, res=tok.spec.resolution)
    for i, f in enumerate(frames):
        assert sess.offer(f, i / 30, 0.002) is not None
    assert sess.arrived(0.0) == []  # nothing has arrived at the first capture
    got = sess.arrived(1.0)
    assert [a.key for a in got] == [0, 1, 2] and sess.arrived(1.0) == []
    assert all(tok.decode(a.payload).budget == 4 for a in got)
    s = sess.stats.summary()
    assert sess.stats.frames_sent == 3 and s["budget_mean"] == 4
    assert s["wire_bits_mean"] == s["bits_mean"] + 64 and s["header_bits_mean"] > 0
    sess.begin()  # a warm-up's counts are dropped, the link and the sender carry on
    assert sess.stats.frames_sent == 0 and sess.fates.captured == 0 and sess.frames_offered == 3

"""Link emulator, traces and their readers: hand-computed cases, determinism, malformed files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from embodied.link import (
    GilbertElliott,
    LinkConfig,
    LinkEmulator,
    OpportunityTrace,
    RateTrace,
    TraceFormatError,
    catalog,
    mean_rate_bps,
    read_mahimahi,
    read_trace,
    read_two_column,
    synthetic,
)
from embodied.link.models import ComputeModel, LinearSizeModel, TableSizeModel


def _link(trace, **kw) -> LinkEmulator:
    cfg = {"propagation_delay_s": 0.0, "queue_limit_bytes": None, "overhead_bytes": 0} | kw
    return LinkEmulator(trace, LinkConfig(**cfg))


# -- traces ------------------------------------------------------------------------------
def test_rate_trace_service_curve_by_hand():
    # 8 kbit/s for 1 s, 0 for 1 s, 16 kbit/s for 1 s; loops every 3 s.
    tr = RateTrace.from_segments([(1.0, 8000.0), (1.0, 0.0), (1.0, 16000.0)])
    assert tr.period_s == 3.0
    assert tr.delivered_bytes(0.5) == pytest.approx(500.0)
    assert tr.delivered_bytes(1.5) == pytest.approx(1000.0)  # nothing during the outage
    assert tr.delivered_bytes(2.5) == pytest.approx(2000.0)
    assert tr.delivered_bytes(4.5) == pytest.approx(3000.0 + 1000.0)  # second loop
    assert tr.time_of_byte(1000.0) == pytest.approx(1.0)  # earliest time, not the end of the outage
    assert tr.time_of_byte(1001.0) == pytest.approx(2.0 + 1.0 / 2000.0)
    assert tr.time_of_byte(3000.0) == pytest.approx(3.0)
    assert tr.time_of_byte(3500.0) == pytest.approx(3.5)
    assert tr.mean_bps == pytest.approx(8000.0)
    assert mean_rate_bps(tr, 2.0, 3.0) == pytest.approx(16000.0)


def test_rate_trace_rejects_nonsense():
    with pytest.raises(ValueError, match="delivers nothing"):
        RateTrace.from_segments([(1.0, 0.0)])
    with pytest.raises(ValueError, match="increase"):
        RateTrace((0.0, 1.0, 1.0), (1.0, 1.0, 1.0), 3.0)
    with pytest.raises(ValueError, match="non-negative"):
        RateTrace((0.0,), (-1.0,), 1.0)


def test_opportunity_trace_counts_and_loops():
    tr = OpportunityTrace((0.001, 0.001, 0.003), opportunity_bytes=100.0)  # loop every 3 ms
    assert tr.delivered_bytes(0.001) == 0.0  # strictly before t
    assert tr.delivered_bytes(0.002) == 200.0  # two opportunities in ms 1
    assert tr.delivered_bytes(0.003) == 200.0
    assert tr.delivered_bytes(0.0031) == 300.0
    assert tr.delivered_bytes(0.0045) == 500.0  # loop 2: 3 + 2
    assert tr.time_of_byte(250.0) == pytest.approx(0.003)
    assert tr.time_of_byte(301.0) == pytest.approx(0.004)
    assert tr.mean_bps == pytest.approx(300 * 8 / 0.003)


# -- emulator arithmetic -------------------------------------------------------------------
def test_fifo_queue_propagation_and_drop_tail_by_hand():
    # 1000 bytes/s, 10 ms propagation, 250-byte queue.
    link = _link(RateTrace.constant(8000.0), propagation_delay_s=0.01, queue_limit_bytes=250)
    a = link.send(0.0, 100)
    assert (a.departure_time, a.arrival_time, a.backlog_bytes) == pytest.approx((0.1, 0.11, 0.0))
    b = link.send(0.05, 100)  # 50 bytes of a still ahead
    assert b.backlog_bytes == pytest.approx(50.0)
    assert b.arrival_time == pytest.approx(0.21)
    c = link.send(0.06, 100)  # 140 ahead + 100 = 240 <= 250: accepted
    assert c.fate == "delivered" and c.arrival_time == pytest.approx(0.31)
    d = link.send(0.07, 100)  # 230 ahead + 100 > 250: dropped, takes no capacity
    assert d.fate == "queue_drop" and d.arrival_time is None and d.departure_time is None
    e = link.send(0.5, 100)  # queue empty again; idle capacity is not banked
    assert e.backlog_bytes == 0.0 and e.arrival_time == pytest.approx(0.61)
    assert link.backlog_bytes(0.55) == pytest.approx(50.0)


def test_transport_overhead_counts_against_the_link_and_apart():
    link = _link(RateTrace.constant(8000.0), overhead_bytes=28)
    r = link.send(0.0, 72)
    assert r.wire_bytes == 100 and r.overhead_bytes == 28
    assert r.departure_time == pytest.approx(0.1)  # 100 wire bytes at 1000 B/s
    assert link.stats.packet_bytes == 72 and link.stats.overhead_bytes == 28


def test_mahimahi_opportunities_by_hand():
    # Opportunities of 1500 bytes at 1, 2, 3, 4 ms (Mahimahi semantics).
    link = _link(OpportunityTrace((0.001, 0.002, 0.003, 0.004)))
    assert link.send(0.0, 1000).departure_time == pytest.approx(0.001)
    assert link.send(0.0, 1000).departure_time == pytest.approx(0.002)  # spans two opportunities
    # At 2.5 ms the leftover 1000 bytes of the 2-ms opportunity are gone (queue was empty).
    third = link.send(0.0025, 1000)
    assert third.backlog_bytes == 0.0 and third.departure_time == pytest.approx(0.003)
    big = link.send(0.0035, 2000)  # needs the 4-ms opportunity and the next loop's 1-ms one
    assert big.departure_time == pytest.approx(0.004 + 0.001)


def test_lost_packets_used_the_link():
    link = _link(RateTrace.constant(8000.0), loss_rate=1.0)
    first = link.send(0.0, 100)
    assert first.fate == "random_loss" and first.arrival_time is None
    assert first.departure_time == pytest.approx(0.1)
    assert link.send(0.0, 100).departure_time == pytest.approx(0.2)


def test_gilbert_elliott_alternates_by_hand():
    # Always switch state: Good -> Bad -> Good ...; Bad loses everything, Good nothing.
    ge = GilbertElliott(p_good_to_bad=1.0, p_bad_to_good=1.0, loss_good=0.0, loss_bad=1.0)
    link = _link(RateTrace.constant(1e6), burst_loss=ge)
    fates = [link.send(i * 0.01, 10).fate for i in range(6)]
    assert fates == ["burst_loss", "delivered"] * 3


def test_gilbert_elliott_long_run_loss_and_bursts():
    ge = GilbertElliott(p_good_to_bad=0.02, p_bad_to_good=0.25, loss_good=0.0, loss_bad=0.8)
    assert ge.stationary_bad == pytest.approx(0.02 / 0.27)
    link = _link(RateTrace.constant(1e9), burst_loss=ge, seed=7)
    lost = [link.send(i * 1e-3, 10).lost for i in range(40_000)]
    rate = sum(lost) / len(lost)
    assert rate == pytest.approx(ge.mean_loss, rel=0.1)
    # Bursty: a loss is far more likely right after a loss than on average.
    after_loss = [b for a, b in itertools.pairwise(lost) if a]
    assert sum(after_loss) / len(after_loss) > 3 * rate


def test_time_stepped_gilbert_elliott():
    ge = GilbertElliott(p_good_to_bad=0.2, p_bad_to_good=0.3, step_s=0.1)
    assert ge.p_bad_after(True, 0.0) == pytest.approx(1.0)
    assert ge.p_bad_after(False, 1.0) == pytest.approx(0.2)  # one step
    assert ge.p_bad_after(True, 2.0) == pytest.approx(0.4 + 0.6 * 0.25)  # pi_B + (1 - pi_B) 0.5^2
    assert ge.p_bad_after(False, 1e6) == pytest.approx(ge.stationary_bad)

    # A fade lasts a time, not a number of packets: sending once a second, losses
    # are about independent with a time-stepped chain, bursty with a per-packet one.
    def after_loss_ratio(chain: GilbertElliott) -> float:
        link = _link(RateTrace.constant(1e9), burst_loss=chain, seed=5)
        lost = [link.send(float(i), 10).lost for i in range(20_000)]
        after = [b for a, b in itertools.pairwise(lost) if a]
        return (sum(after) / len(after)) / (sum(lost) / len(lost))

    assert after_loss_ratio(GilbertElliott(0.02, 0.2, step_s=1 / 30)) < 1.5
    assert after_loss_ratio(GilbertElliott(0.02, 0.2)) > 3.0
    with pytest.raises(ValueError, match="p_good_to_bad \\+ p_bad_to_good <= 1"):
        GilbertElliott(0.8, 0.5, step_s=1.0)


def test_random_loss_rate():
    link = _link(RateTrace.constant(1e9), loss_rate=0.1, seed=3)
    lost = sum(link.send(i * 1e-3, 10).lost for i in range(20_000))
    assert lost / 20_000 == pytest.approx(0.1, abs=0.01)


def test_determinism_by_seed():
    ge = GilbertElliott(0.05, 0.3)

    def run(seed: int) -> list:
        link = _link(
            synthetic.generate(synthetic.spec_by_name("cellular")),
            loss_rate=0.05,
            burst_loss=ge,
            seed=seed,
        )
        return [link.send(i / 30, 20 + i % 40) for i in range(900)]

    assert run(1) == run(1)
    assert [r.fate for r in run(1)] != [r.fate for r in run(2)]


def test_send_times_must_not_go_back():
    link = _link(RateTrace.constant(8000.0))
    link.send(1.0, 10)
    with pytest.raises(ValueError, match="must not decrease"):
        link.send(0.5, 10)


def test_probe_matches_send_without_changing_state():
    link = _link(RateTrace.constant(8000.0), queue_limit_bytes=150)
    link.send(0.0, 100)
    assert link.probe(0.0, 100) is None  # would be dropped
    assert link.probe(0.05, 50) == pytest.approx(0.15)
    assert link.send(0.05, 50).arrival_time == pytest.approx(0.15)


def test_link_config_validation():
    with pytest.raises(ValueError, match="loss_rate"):
        LinkConfig(loss_rate=1.5)
    with pytest.raises(ValueError, match="probability"):
        GilbertElliott(p_good_to_bad=-0.1, p_bad_to_good=0.5)


# -- readers -------------------------------------------------------------------------------
def test_read_mahimahi(tmp_path: Path):
    p = tmp_path / "link.trace"
    p.write_text("1\n1\n2\n5\n")
    tr = read_mahimahi(p)
    assert tr.times_s == (0.001, 0.001, 0.002, 0.005)
    assert tr.period_s == 0.005
    assert tr.mean_bps == pytest.approx(4 * 1500 * 8 / 0.005)
    assert read_mahimahi(p, scale=0.5).opportunity_bytes == 750.0
    assert isinstance(read_trace(p), OpportunityTrace)


def test_read_two_column(tmp_path: Path):
    p = tmp_path / "bw.log"
    p.write_text("# a comment\n10.0\t1.0\n11.0\t2.0\n\n12.0 0.5\n")
    tr = read_two_column(p, scale=0.5)
    assert tr.times_s == (0.0, 1.0, 2.0)  # shifted to start at 0
    assert tr.rates_bps == (500_000.0, 1_000_000.0, 250_000.0)
    assert tr.period_s == 3.0  # last sample lasts the median interval
    assert isinstance(read_trace(p), RateTrace)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("1\n2\nabc\n", 3, "integer"),
        ("1\n5\n3\n", 3, "goes back"),
        ("1\n-2\n", 2, "negative"),
    ],
)
def test_mahimahi_malformed_lines_name_the_line(tmp_path: Path, text: str, line: int, match: str):
    p = tmp_path / "bad.trace"
    p.write_text(text)
    with pytest.raises(TraceFormatError, match=match) as e:
        read_mahimahi(p)
    assert f"{p}:{line}:" in str(e.value)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("0 1.0\n1 2.0 3.0\n", 2, "2 columns"),
        ("0 1.0\n1 fast\n", 2, "not a number"),
        ("0 1.0\n1 2.0\n1 3.0\n", 3, "does not increase"),
        ("0 1.0\n1 -2.0\n", 2, "negative"),
        ("0 1.0\n1 nan\n", 2, "non-finite"),
    ],
)
def test_two_column_malformed_lines_name_the_line(tmp_path: Path, text: str, line: int, match: str):
    p = tmp_path / "bad.log"
    p.write_text(text)
    with pytest.raises(TraceFormatError, match=match) as e:
        read_two_column(p)
    assert f"{p}:{line}:" in str(e.value)


def test_empty_and_all_zero_files(tmp_path: Path):
    p = tmp_path / "empty.log"
    p.write_text("# nothing\n\n")
    with pytest.raises(TraceFormatError, match="no samples"):
        read_trace(p)
    z = tmp_path / "zero.log"
    z.write_text("0 0\n1 0\n")
    with pytest.raises(TraceFormatError, match="delivers nothing"):
        read_two_column(z)


# -- synthetic and shipped traces ----------------------------------------------------------
def test_synthetic_is_deterministic_and_seed_matters():
    spec = synthetic.spec_by_name("outages")
    a, b = synthetic.generate(spec), synthetic.generate(spec)
    assert a == b
    other = synthetic.generate(
        synthetic.MarkovTraceSpec(**{**spec.__dict__, "seed": spec.seed + 1})
    )
    assert other.rates_bps != a.rates_bps
    assert min(a.rates_bps) == 0.0  # it has outages
    assert max(a.rates_bps) < 2 * max(spec.levels_kbps) * 1e3


def test_shipped_synthetic_files_are_what_the_generator_makes(tmp_path: Path):
    synthetic.write_shipped(tmp_path)
    for spec in synthetic.SHIPPED:
        shipped = synthetic.SYNTHETIC_DIR / f"{spec.name}.txt"
        assert (tmp_path / shipped.name).read_text() == shipped.read_text(), (
            f"{shipped} is stale: run `embodied link-sim --generate`"
        )
        read, made = read_trace(shipped), synthetic.generate(spec)
        assert read.times_s == pytest.approx(made.times_s)
        assert read.rates_bps == pytest.approx(made.rates_bps)
        assert read.period_s == pytest.approx(made.period_s)


def test_shipped_traces_load_scaled_and_small():
    assert {e.kind for e in catalog.SHIPPED} == {"synthetic", "measured"}
    for e in catalog.SHIPPED:
        tr = e.load()
        assert tr.name == e.name
        if e.kind == "measured":
            assert 3e3 <= tr.mean_bps <= 30e3, f"{e.name}: {tr.mean_bps:.0f} bit/s after scaling"
    total = sum(p.stat().st_size for p in catalog.TRACES_DIR.rglob("*") if p.is_file())
    assert total < 200_000
    assert (catalog.TRACES_DIR / "measured" / "LICENSE.pensieve").exists()
    with pytest.raises(KeyError, match="Did you mean 'cellular'"):
        catalog.entry("celular")


# -- packet-size and compute models ---------------------------------------------------------
def test_linear_size_model_by_hand_and_deterministic():
    exact = LinearSizeModel(jitter=0.0)
    assert [exact.packet_bytes(k, 0) for k in (1, 10, 64)] == [8, 16, 65]
    noisy_a, noisy_b = LinearSizeModel(seed=4), LinearSizeModel(seed=4)
    sizes = [noisy_a.packet_bytes(32, i) for i in range(200)]
    assert sizes == [noisy_b.packet_bytes(32, i) for i in range(200)]
    assert 30 < sum(sizes) / len(sizes) < 42 and len(set(sizes)) > 3


def test_table_size_model(tmp_path: Path):
    p = tmp_path / "sizes.json"
    p.write_text('{"budget": [1, 8, 64], "bytes": [10, 24, 80]}')
    table = TableSizeModel.from_json(p, jitter=0.0)
    assert table.packet_bytes(1, 0) == 10
    assert table.packet_bytes(36, 0) == 52  # halfway between 8 and 64
    p.write_text('{"budget": [8, 1], "bytes": [10, 24]}')
    with pytest.raises(ValueError, match="increase"):
        TableSizeModel.from_json(p)


def test_compute_model_mean():
    m = ComputeModel(seed=0)
    mean = sum(m.seconds(50, i) for i in range(4000)) / 4000
    assert math.isclose(mean, 2.0e-3, rel_tol=0.03)

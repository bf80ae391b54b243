"""Token coding across frames (``embodied.interframe``) and the compact stream header: exact
round trips, what an unchanged frame costs, loss / reordering / duplication / a receiver
joining mid-stream never give a wrong frame, and a fuzz of the strict decoder."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embodied.codecs.tokens import TokenCodec
from embodied.interframe import (
    INTER_PRIOR_FILE,
    InterPriorError,
    InterTokenCodec,
    MissingReference,
    NoStreamContext,
    learn_inter_prior,
    load_inter_prior,
)
from embodied.packet import COMPACT_VERSION, PacketError, bits

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "models" / "tok-tiny"
SHIPPED = Path(__file__).resolve().parents[2] / "embodied" / "models" / "tok-task"
LEVELS = np.array([8, 5, 5, 5])


def _walk(n: int, p_change: float, seed: int, k_max: int = 64) -> np.ndarray:
    """Codes ``[n, k_max, 4]`` of a scene that changes slowly: each symbol moves w.p. p."""
    rng = np.random.default_rng(seed)
    cur = rng.integers(0, LEVELS, (k_max, 4))
    out = []
    for _ in range(n):
        move = rng.random((k_max, 4)) < p_change
        cur = np.where(move, rng.integers(0, LEVELS, (k_max, 4)), cur)
        out.append(cur.copy())
    return np.stack(out)


@pytest.fixture(scope="module")
def tok() -> TokenCodec:
    return TokenCodec(TINY)


@pytest.fixture(scope="module")
def prior(tok) -> np.ndarray:
    return learn_inter_prior([_walk(200, 0.05, s) for s in range(3)], (8, 5, 5, 5), tok.prior)


def _pair(tok, prior, **kw) -> tuple[InterTokenCodec, InterTokenCodec]:
    return InterTokenCodec(tok, prior=prior, **kw), InterTokenCodec(tok, prior=prior, **kw)


def test_learned_prior_is_a_conditional_distribution(tok, prior):
    assert prior.shape == (64, 4, 8, 8)
    np.testing.assert_allclose(prior.sum(-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(  # no such reference: the intra prior
        prior[:, 1:, 5:, :], np.broadcast_to(tok.prior[:, 1:, None, :], (64, 3, 3, 8)), atol=1e-9
    )
    assert np.all(prior[:, 1:, :, 5:] == 0)  # never beyond a dimension's levels
    # slowly changing codes: staying put is by far the likeliest
    diag = prior[:, 0, np.arange(8), np.arange(8)]
    assert np.median(diag) > 0.6  # (references never seen fall back to the intra prior)


def test_round_trip_is_exact_and_unchanged_frames_cost_no_payload(tok, prior):
    snd, rcv = _pair(tok, prior)
    seq = _walk(300, 0.05, seed=7)  # past a wrap of the 8-bit frame id
    for k in (1, 4, 16, 64):
        snd.reset()
        rcv.reset()
        heads, pays = [], []
        for i, codes in enumerate(seq):
            stamp = round(1000 * i / 30) % 65536
            enc = snd.encode_codes(codes, k, i % 256, stamp)
            got = rcv.decode(enc.packet)
            assert np.array_equal(got.tokens, tok.codes_to_ids(codes[:k])), (k, i)
            assert got.header.stamp_ms == stamp  # inferred from the frame period when compact
            snd.acknowledge(i)  # an ideal link: every frame acknowledged before the next
            heads.append(enc.header_bytes)
            pays.append(enc.payload_bytes)
            assert bits(enc.packet).header_bits == 8 * enc.header_bytes
        # established stream: only the first packet carries the full 8-byte header
        assert heads[0] in (8, 9) and max(heads[1:]) <= 4 and np.mean(heads) <= 3.1, (k, heads[:5])
    still = np.repeat(seq[:1], 10, axis=0)
    snd.reset()
    rcv.reset()
    for i, codes in enumerate(still):
        enc = snd.encode_codes(codes, 64, i, 0)
        rcv.decode(enc.packet)
        snd.acknowledge(i)
    assert enc.payload_bytes == 0 and len(enc.packet) == 3  # nothing changed: nothing but
    # the compact header is sent


def test_inter_coding_cuts_the_payload_of_slow_scenes(tok, prior):
    snd, rcv = _pair(tok, prior)
    seq = _walk(150, 0.05, seed=11)
    intra = inter = 0
    for i, codes in enumerate(seq):
        intra += len(tok.coder.encode(codes[:16].reshape(-1).tolist(), tok.tables))
        enc = snd.encode_codes(codes, 16, i, 0)
        rcv.decode(enc.packet)
        snd.acknowledge(i)
        inter += enc.payload_bytes
    assert intra > 3 * inter, (intra, inter)


def test_loss_never_corrupts_a_later_frame_and_keyframes_recover(tok, prior):
    """Only acknowledged frames are references, so a lost packet leaves every later decoded
    frame exact; a receiver that lost its references refuses with a typed error and a
    keyframe request brings it back."""
    snd, rcv = _pair(tok, prior, keyframe_interval=1000)
    seq = _walk(300, 0.08, seed=3)
    rng = np.random.default_rng(0)
    in_flight: list[tuple[int, bytes]] = []
    decoded = refused = 0
    for i, codes in enumerate(seq):
        in_flight.append((i, snd.encode_codes(codes, 8, i, 0).packet))
        if len(in_flight) > 3:  # three frames of latency; then 10% of packets are lost
            j, pkt = in_flight.pop(0)
            if rng.random() < 0.10:
                snd.on_loss()
                continue
            try:
                got = rcv.decode(pkt)
            except (MissingReference, NoStreamContext):
                refused += 1
                snd.request_keyframe()
                continue
            assert np.array_equal(got.tokens, tok.codes_to_ids(seq[j][:8])), j
            snd.acknowledge(j)
            decoded += 1
        if i == 150:  # the receiver restarts: everything it held is gone
            rcv.reset()
    assert decoded > 200 and refused >= 1


def test_receiver_joining_mid_stream_asks_for_a_keyframe(tok, prior):
    snd, rcv = _pair(tok, prior)
    seq = _walk(40, 0.05, seed=5)
    packets = []
    for i, codes in enumerate(seq[:20]):
        packets.append(snd.encode_codes(codes, 4, i, 0).packet)
        snd.acknowledge(i)
    late = InterTokenCodec(tok, prior=prior)
    with pytest.raises(NoStreamContext):
        late.decode(packets[-1])
    assert late.keyframe_wanted
    snd.request_keyframe()
    key = snd.encode_codes(seq[20], 4, 20, 0)
    assert key.packet[0] >> 6 != COMPACT_VERSION and key.header.keyframe  # full fields
    assert np.array_equal(late.decode(key.packet).tokens, tok.codes_to_ids(seq[20][:4]))
    assert not late.keyframe_wanted
    snd.acknowledge(20)
    nxt = snd.encode_codes(seq[21], 4, 21, 0)
    assert nxt.packet[0] >> 6 == COMPACT_VERSION
    got = late.decode(nxt.packet, image=True)  # the picture the receiver shows, as tokens'
    assert np.array_equal(got.tokens, tok.codes_to_ids(seq[21][:4]))
    assert got.image is not None and got.image.shape == (*tok.frame_shape, 3)
    assert np.array_equal(got.image, tok.with_image(got).image)
    del rcv


def test_the_pipeline_receiver_reads_the_stream_and_asks_for_keyframes(tok, prior):
    """The one receiver every adapter runs (eval, ROS policy node): ``tokens-inter`` packets
    by codec name, its own stream end, refusals counted and a keyframe wanted, not raised."""
    from embodied.pipeline import INTER_CODEC, Receiver

    snd = InterTokenCodec(tok, prior=prior)
    rcv = Receiver(tok)
    rcv._inter = InterTokenCodec(tok, prior=prior)  # the fixture's prior (tok-tiny ships none)
    seq = _walk(12, 0.05, seed=9)
    obs = []
    for i, codes in enumerate(seq[:6]):
        pkt = snd.encode_codes(codes, 4, i, 0).packet
        obs.append(rcv.receive(pkt, codec=INTER_CODEC, model_id=snd.model_id))
        snd.acknowledge(i)
    assert all(o is not None for o in obs) and snd.inter_frames == 5
    assert np.array_equal(obs[-1].token_ids[:4], tok.codes_to_ids(seq[5][:4]))
    assert not rcv.keyframe_wanted
    late = Receiver(tok)
    late._inter = InterTokenCodec(tok, prior=prior)
    pkt = snd.encode_codes(seq[6], 4, 6, 0).packet
    assert late.receive(pkt, codec=INTER_CODEC) is None  # joined mid-stream: refused
    assert late.keyframe_wanted and late.stats.dropped == {"NoStreamContext": 1}
    # as an intra stream, or under another model id, the packet is refused too
    assert rcv.receive(pkt, codec="tokens") is None
    assert rcv.receive(pkt, codec=INTER_CODEC, model_id=tok.model_id) is None
    snd.request_keyframe()
    key = snd.encode_codes(seq[7], 4, 7, 0).packet
    assert late.receive(key, codec=INTER_CODEC) is not None and not late.keyframe_wanted
    # a tokenizer with no shipped prior refuses the stream's packets, counted, never raised
    bare = Receiver(tok)
    assert bare.receive(key, codec=INTER_CODEC) is None
    assert bare.stats.dropped == {"NoInterPrior": 1}


def test_registry_codec_fits_a_packet_size_target():
    """``make_codec("tokens-inter")`` (the shipped tokenizer): target_bytes picks the most
    tokens whose packet, as coded now (keyframe or predicted), fits."""
    from embodied.codecs import make_codec
    from embodied_tools.bench_codecs import synthetic_frames

    codec = make_codec("tokens-inter", frame_period_ms=50.0)
    assert isinstance(codec, InterTokenCodec) and codec.frame_period_ms == 50.0
    frames = synthetic_frames(4)
    key = codec.encode(frames[0], target_bytes=40, frame_id=0)
    assert key.header.keyframe and key.target_met and len(key.packet) <= 40
    assert len(codec.encode(frames[0], budget=key.header.budget + 1).packet) > 40
    codec.acknowledge(0)  # the receiver holds frame 0: frame 1 is predicted from it
    inter = codec.encode(frames[0], target_bytes=40, frame_id=1)
    assert not inter.header.keyframe and inter.header.budget > key.header.budget
    tiny = codec.encode(frames[1], target_bytes=1, frame_id=2)
    assert tiny.header.budget == 1 and not tiny.target_met


def test_reordered_and_duplicated_packets_are_exact_or_refused(tok, prior):
    snd, rcv = _pair(tok, prior)
    seq = _walk(60, 0.1, seed=9)
    sent = []
    for i, codes in enumerate(seq):
        sent.append(snd.encode_codes(codes, 6, i, 0).packet)
        if i >= 2:
            snd.acknowledge(i - 2)
    order = list(range(60))
    rng = np.random.default_rng(1)
    for a in range(0, 58, 5):  # swap neighbours, repeat some
        order[a], order[a + 1] = order[a + 1], order[a]
    order += [int(x) for x in rng.integers(0, 60, 15)]
    for j in order:
        try:
            got = rcv.decode(sent[j])
        except PacketError:
            continue
        assert np.array_equal(got.tokens, tok.codes_to_ids(seq[j][:6])), j


def test_budget_changes_inside_the_stream_are_sent_until_inferable(tok, prior):
    snd, rcv = _pair(tok, prior)
    seq = _walk(30, 0.05, seed=2)
    budgets = [4] * 10 + [9] * 10 + [2] * 10
    for i, (codes, k) in enumerate(zip(seq, budgets, strict=True)):
        enc = snd.encode_codes(codes, k, i, 0)
        got = rcv.decode(enc.packet)
        assert got.budget == k and np.array_equal(got.tokens, tok.codes_to_ids(codes[:k]))
        if i % 3 == 0:  # acknowledgements arrive late and sparsely
            snd.acknowledge(i)


def test_streams_of_another_prior_or_tokenizer_are_refused(tok, prior):
    other = learn_inter_prior([_walk(50, 0.3, 99)], (8, 5, 5, 5), tok.prior)
    a, b = InterTokenCodec(tok, prior=prior), InterTokenCodec(tok, prior=other)
    assert a.model_id != b.model_id != tok.model_id
    pkt = a.encode_codes(_walk(1, 0.0, 0)[0], 4, 0, 0).packet
    with pytest.raises(PacketError):
        b.decode(pkt)


def test_shipped_inter_prior_loads_and_refuses_a_wrong_file(tmp_path):
    spec = TokenCodec(SHIPPED).spec
    p = load_inter_prior(SHIPPED / INTER_PRIOR_FILE, spec)
    assert p.shape == (spec.k_max, spec.dims, 8, 8)
    bad = tmp_path / INTER_PRIOR_FILE
    np.save(bad, np.ones((3, 3)))
    with pytest.raises(InterPriorError, match="expected float"):
        load_inter_prior(bad, spec)
    with pytest.raises(InterPriorError, match="embodied inter-prior"):
        load_inter_prior(tmp_path / "none.npy", spec)


_FUZZ = settings(
    max_examples=10_000, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip


@pytest.fixture(scope="module")
def streams(tok, prior) -> list[tuple[InterTokenCodec, list[bytes]]]:
    """Receivers mid-stream (each has decoded a few packets of its stream) and the next
    packets of that stream in every form: compact inter, compact with a budget byte, full
    keyframe, full inter (a reference byte), compact keyframe."""
    out = []
    for k in (1, 3, 8, 16, 64):
        snd, rcv = _pair(tok, prior, keyframe_interval=1000)
        seq = _walk(12, 0.1, seed=k)
        for i in range(6):
            rcv.decode(snd.encode_codes(seq[i], k, i, 0).packet)
            snd.acknowledge(i)
        nxt = [snd.encode_codes(seq[6], k, 6, 0).packet]  # compact inter
        nxt.append(snd.encode_codes(seq[7], max(1, k - 1), 7, 0).packet)  # + budget byte
        snd.on_loss()
        nxt.append(snd.encode_codes(seq[8], k, 8, 0).packet)  # compact keyframe
        snd.request_keyframe()
        nxt.append(snd.encode_codes(seq[9], k, 9, 0).packet)  # full keyframe
        snd.acknowledge(5)  # a frame the receiver holds, 35 frames back: full fields
        nxt.append(snd.encode_codes(seq[10], k, 40, 0).packet)  # full inter (gap > 15)
        assert {p[0] >> 6 for p in nxt} == {1, COMPACT_VERSION}
        out.append((rcv, nxt))
    return out


def _clone(rcv: InterTokenCodec) -> InterTokenCodec:
    c = copy.copy(rcv)
    c._held = OrderedDict(rcv._held)
    return c


@_FUZZ
@given(data=st.data())
def test_fuzz_strict_decoder_never_raises_anything_but_packet_errors(streams, data):
    """10,000 packets of every form (compact and full, inter and key, budgets 1-64) met by
    a receiver mid-stream, each mutated (bit flips, truncation, appended bytes, a byte
    replaced, random bytes): the decoder refuses with a PacketError or returns valid ids,
    and an unmutated packet always decodes."""
    rcv, packets = data.draw(st.sampled_from(streams))
    pkt = bytearray(data.draw(st.sampled_from(packets)))
    how = data.draw(st.sampled_from(["none", "flip", "truncate", "append", "random", "byte"]))
    if how == "flip":
        pos = data.draw(st.integers(0, 8 * len(pkt) - 1))
        pkt[pos // 8] ^= 1 << (pos % 8)
    elif how == "truncate":
        pkt = pkt[: data.draw(st.integers(0, len(pkt) - 1))]
    elif how == "append":
        pkt += data.draw(st.binary(min_size=1, max_size=8))
    elif how == "byte":
        pos = data.draw(st.integers(0, len(pkt) - 1))
        pkt[pos] = data.draw(st.integers(0, 255))
    elif how == "random":
        pkt = bytearray(data.draw(st.binary(max_size=40)))
    rcv = _clone(rcv)
    try:
        got = rcv.decode(bytes(pkt))
    except PacketError:
        assert how != "none"
        return
    ids = np.asarray(got.tokens)
    assert 1 <= got.budget <= 64 and ids.shape == (got.budget,)
    assert ids.min() >= 0 and ids.max() < 1000


# ----------------------------------------------------------------------------- sizes and control


def test_controller_learns_keyframe_and_predicted_sizes_apart():
    from embodied.control.base import Feedback
    from embodied.control.registry import make_controller

    ctrl = make_controller("deadline", None, frame_rate_hz=30.0)
    for i in range(200):
        key = i % 10 == 0
        fb = Feedback(frame_id=i, budget=16, packet_bytes=40 if key else 6, overhead_bytes=0,
                      capture_time=i / 30, send_time=i / 30, compute_time=1e-3, status="sent",
                      observed_at=i / 30, keyframe=key)  # fmt: skip
        ctrl.observe(fb)
    assert ctrl.predicted_wire_bytes(16, keyframe=True) == pytest.approx(40, rel=0.1)
    assert ctrl.predicted_wire_bytes(16, keyframe=False) == pytest.approx(6, rel=0.1)
    ctrl.next_budget(10.0, keyframe=False)  # the kind being decided is what predictions use
    assert ctrl.predicted_wire_bytes(16) == ctrl.predicted_wire_bytes(16, keyframe=False)


def test_shipped_size_table_and_the_kind_aware_controller_on_a_narrow_link():
    """The measured table makes predicted frames far cheaper than keyframes; on a 2.4 kbit/s
    link the controller told the frame kind misses far fewer deadlines at a larger budget
    than the same controller kept unaware (embodied inter-bench)."""
    from embodied.interframe import INTER_SIZES_FILE
    from embodied.link.models import InterTableSizeModel, TableSizeModel
    from embodied_tools.inter_bench import compare, trace_case

    sizes = TableSizeModel.from_json(SHIPPED / INTER_SIZES_FILE)
    assert isinstance(sizes, InterTableSizeModel)
    for k in (1, 16, 64):
        assert sizes.mean_inter_bytes(k) < sizes.mean_bytes(k) / 2.5
        assert sizes.mean_inter_bytes(k) >= 3  # the compact header
    r = compare(trace_case("stable:0.2"), sizes)
    aware, unaware = r["kind-aware"], r["kind-unaware"]
    assert aware["miss_pct"] < 1.0 < 2 * aware["miss_pct"] + 1 < unaware["miss_pct"]
    assert aware["mean_budget"] > unaware["mean_budget"] + 10


def test_link_sim_keyframes_follow_losses():
    """Size-only runs keep the stream's keyframe rule: every loss makes the next frame a
    keyframe, so a lossy link sends more (larger) keyframes than a clean one."""
    from embodied.interframe import INTER_SIZES_FILE
    from embodied.link.emulator import LinkConfig
    from embodied.link.models import TableSizeModel
    from embodied_tools.inter_bench import trace_case
    from embodied_tools.linksim import SimConfig, simulate

    sizes = TableSizeModel.from_json(SHIPPED / INTER_SIZES_FILE)
    trace = trace_case("stable")
    out = {}
    for loss in (0.0, 0.05):
        cfg = SimConfig(duration_s=30.0, link=LinkConfig(overhead_bytes=0, loss_rate=loss))
        r = simulate(trace, "fixed", sizes=sizes, config=cfg)
        pk = [p for p in r.frames.packet if p]
        out[loss] = (r.summary["lost"], sum(p > sizes.mean_inter_bytes(64) * 2.5 for p in pk))
    (lost0, keys0), (lost5, keys5) = out[0.0], out[0.05]
    # the frames before the first report comes back (nothing to predict from), one per interval
    assert lost0 == 0 and 900 // 90 <= keys0 <= 900 // 90 + 5
    assert lost5 > 20 and keys5 >= lost5 * 0.8


def test_inter_bits_codes_each_episode_both_ways(tok, prior):
    """``embodied inter-bits``' coder: the same frames intra (64-bit header every frame) and
    inter (full header once, then the 3-byte compact one; less payload on a slow scene)."""
    from embodied_tools.inter_bits import code_episode

    seq = _walk(30, 0.05, seed=11)
    intra, inter = code_episode(seq, tok, prior, 16, interval=90)
    assert len(intra) == len(inter) == 30
    assert {h for h, _ in intra} == {64} and inter[0][0] == 64
    assert all(h in (24, 32) for h, _ in inter[1:])  # compact (+ budget byte on a change)
    assert sum(p for _, p in inter) * 2 < sum(p for _, p in intra)
    assert inter[0][1] == intra[0][1]  # the keyframe is the intra packet's payload

"""The camera → action line, written once: the sender and the receiver every adapter runs.

::

    frame ─► Sender.next_budget(now) ─► Sender.encode ─► packet ─► link ─► Receiver.receive
               ▲ controller.next_budget        │ on_sent()                    │
               │                               ▼                              ▼
               └── on_report() / the loss rule ◄── arrival reports ◄── Observation ─► policy

Three adapters move data between these two objects and their world, and do nothing else:
``sim.evaluate.run_episode`` (sim time, emulated link, real codecs),
``embodied_tools.linksim.simulate`` (sim time, a packet-size model instead of a codec) and the ROS
nodes ``ros_nodes.tokenizer_node`` / ``ros_nodes.policy_node`` (DDS, wall time). The
emulated link in sim time is :class:`embodied.link.session.LinkSession`.

Definitions used everywhere (one meaning per name):

* **deadline miss**: a frame the camera captured whose packet did not reach the receiver
  within the deadline of its capture: it arrived late, it was lost (dropped by a queue, lost
  by the link, refused by the receiver), or the controller skipped it. The miss rate is
  misses over frames *captured* (:class:`FateCounts`). A skipped frame is a miss because
  the policy acts on an older frame instead, exactly as if this one had been lost.
* **the loss rule**: the sender declares a packet lost when no report has come within the
  loss timeout after it was sent, when a report about a *later* packet arrives (links and
  DDS writers deliver in order: a later arrival means this one will not come), or when more
  than ``max_pending`` reports are outstanding. Nothing else declares a loss. The loss
  timeout is ``loss_timeout_s`` or, where the reports' round trip is longer, the
  retransmission timeout of RFC 6298 (SRTT + 4·RTTVAR over report round trips, a report that
  comes after its packet was timed out included), as TCP's: on a link of seconds of
  propagation a fixed half second declared every packet lost.
* **packet bytes** are the codec's packet (our header + payload); **payload bytes** exclude
  the header; **wire bytes** add the transport's framing (UDP/IP, DDS, radio).
* **budget**: the controller's budget ``k`` in ``1..k_max``; the codec's setting for it is
  ``codec.budgets()[k - 1]`` (tokens: ``k`` itself; a pixel codec: its ladder rung).
* **keyframe request**: a receiver of a stream coded across frames (``tokens-inter``) that
  lacks a packet's reference refuses it (a miss) and asks the sender for a keyframe: an
  arrival report about frame :data:`KEYFRAME_REQUEST` (no frame). Every adapter carries it
  on its feedback path; the sender answers with :meth:`Sender.request_keyframe`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from embodied.codecs.base import Codec, EncodedFrame
from embodied.control.base import SKIP, Controller, Feedback
from embodied.packet import ForeignModel, PacketError, PacketStats

FrameFate = Literal["on_time", "late", "lost", "skipped"]
FATES: tuple[FrameFate, ...] = ("on_time", "late", "lost", "skipped")
MISSES: frozenset[str] = frozenset(("late", "lost", "skipped"))
DEFAULT_LOSS_TIMEOUT_S = 0.5
DEFAULT_MAX_PENDING = 512
KEYFRAME_REQUEST = -1  # the frame id of a report about no frame: "send me a keyframe"
INTER_CODEC = "tokens-inter"  # the registry name of token coding across frames
#: Which robot state the policy reads beside a frame. ``capture``: the state at the frame's
#: capture (as in training; the chunk starts at the capture step, and the actions its latency
#: made stale are dropped). ``latest``: the robot's state when the frame is acted on: the policy
#: runs beside the robot (its proprioception is local and fresh) while the camera's frame
#: crossed the link, so the chunk starts now and only the image is old.
PROPRIO_PAIRINGS = ("capture", "latest")


def frame_fate(capture_time: float, arrival_time: float | None, deadline_s: float) -> FrameFate:
    """The fate of a sent frame: ``on_time``, ``late`` or ``lost`` (no arrival)."""
    if arrival_time is None:
        return "lost"
    return "late" if arrival_time - capture_time > deadline_s + 1e-9 else "on_time"


def is_miss(fate: str) -> bool:
    return fate in MISSES


@dataclass
class FateCounts:
    """Frames captured by fate; the one place a deadline-miss rate is computed."""

    on_time: int = 0
    late: int = 0
    lost: int = 0
    skipped: int = 0

    def add(self, fate: FrameFate, n: int = 1) -> None:
        if fate not in FATES:
            raise ValueError(f"unknown fate {fate!r}; fates: {', '.join(FATES)}")
        setattr(self, fate, getattr(self, fate) + n)

    def move(self, old: FrameFate, new: FrameFate) -> None:
        """Re-class one frame (a delivered packet the receiver then refused: ``lost``)."""
        if getattr(self, old) < 1:
            raise ValueError(f"no {old!r} frame to re-class as {new!r}")
        self.add(old, -1)
        self.add(new)

    def __iadd__(self, other: FateCounts) -> FateCounts:
        for f in FATES:
            self.add(f, getattr(other, f))
        return self

    @property
    def captured(self) -> int:
        return self.on_time + self.late + self.lost + self.skipped

    @property
    def sent(self) -> int:
        return self.captured - self.skipped

    @property
    def misses(self) -> int:
        return self.late + self.lost + self.skipped

    @property
    def miss_rate(self) -> float:
        """Misses over frames captured (0 when nothing was captured)."""
        return self.misses / self.captured if self.captured else 0.0

    def as_dict(self) -> dict[str, int | float]:
        return {
            "captured": self.captured,
            **{f: getattr(self, f) for f in FATES},
            "deadline_misses": self.misses,
            "deadline_miss_pct": 100.0 * self.miss_rate,
        }


@dataclass
class StreamStats:
    """Per frame captured: budget (0 = skipped), and per frame sent: packet, header and wire
    bits and, when it arrived, capture → arrival latency. Bits are packet bytes × 8 (our
    header included); wire bits add the transport's framing."""

    budgets: list[int] = field(default_factory=list)
    packet_bits: list[int] = field(default_factory=list)
    header_bits: list[int] = field(default_factory=list)
    wire_bits: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def skipped(self) -> None:
        self.budgets.append(0)

    def sent(
        self, budget: int, packet_bytes: int, header_bytes: int, wire_bytes: int,
        latency_s: float | None,
    ) -> None:  # fmt: skip
        self.budgets.append(int(budget))
        self.packet_bits.append(8 * int(packet_bytes))
        self.header_bits.append(8 * int(header_bytes))
        self.wire_bits.append(8 * int(wire_bytes))
        if latency_s is not None:
            self.latency_ms.append(1e3 * latency_s)

    @property
    def frames_sent(self) -> int:
        return len(self.packet_bits)

    def summary(self) -> dict[str, float]:
        """Means over frames sent (bits), captured (budget) and arrived (latency); NaN for
        none."""

        def mean(xs: Sequence[float]) -> float:
            return float(np.mean(xs)) if len(xs) else math.nan

        lat = self.latency_ms
        return {
            "bits_mean": mean(self.packet_bits),
            "header_bits_mean": mean(self.header_bits),
            "wire_bits_mean": mean(self.wire_bits),
            "latency_mean_ms": mean(lat),
            "latency_p95_ms": float(np.percentile(lat, 95)) if lat else math.nan,
            "budget_mean": mean(self.budgets),
        }


# --------------------------------------------------------------------------- sender


@runtime_checkable
class StreamState(Protocol):
    """The state of a stream coded across frames, on the sender's side: which frames the
    receiver holds (acknowledged), what was lost, what it asked for, and so whether the next
    frame is a keyframe. ``embodied.interframe.InterTokenCodec`` is one; for size-only runs
    (``embodied link-sim``), ``embodied.interframe.KeyframeSchedule`` alone."""

    @property
    def next_is_keyframe(self) -> bool: ...

    def acknowledge(self, frame_id: int) -> None: ...

    def on_loss(self) -> None: ...

    def request_keyframe(self) -> None: ...


class Sender:
    """One camera stream's sending side: budget, codec setting, pending reports, loss rule.

    The controller is asked for each frame's budget (``SKIP`` = do not send); the codec (if
    any: link-sim uses a size model instead) encodes at the setting that budget maps to; the
    adapter puts the packet on its link and calls :meth:`on_sent`; arrival reports come back
    through :meth:`on_report`; :meth:`check_losses` applies the loss rule's timeout.
    ``fates`` counts what the sender has learned (reports, losses, skips).

    ``target_bytes`` encodes every frame of a pixel codec by a packet-size target instead of
    a budget (the rate points of a codec without rate control).
    """

    def __init__(
        self,
        controller: Controller,
        *,
        codec: Codec | None = None,
        target_bytes: int | None = None,
        loss_timeout_s: float = DEFAULT_LOSS_TIMEOUT_S,
        max_pending: int = DEFAULT_MAX_PENDING,
        stream: StreamState | None = None,
    ) -> None:
        if not loss_timeout_s > 0:
            raise ValueError(f"loss_timeout_s={loss_timeout_s} must be positive")
        if max_pending < 1:
            raise ValueError(f"max_pending={max_pending} must be >= 1")
        self.controller = controller
        self.codec = codec
        if stream is None and isinstance(codec, StreamState):
            stream = codec  # a codec across frames keeps its own stream state
        self.stream = stream
        self.target_bytes = target_bytes
        self.settings_of_budget: list[int] = (
            list(codec.budgets()) if codec is not None else list(range(1, self.k_max + 1))
        )
        if len(self.settings_of_budget) != self.k_max:
            raise ValueError(
                f"the controller's k_max={self.k_max} does not match the codec's "
                f"{len(self.settings_of_budget)} budgets"
            )
        self.loss_timeout_s = float(loss_timeout_s)
        self.max_pending = int(max_pending)
        self.pending: OrderedDict[Hashable, Feedback] = OrderedDict()
        self.fates = FateCounts()
        self.unknown_reports = 0
        self.spurious_losses = 0  # reports about packets the timeout had declared lost
        self.last_budget = 0
        self._srtt: float | None = None  # RFC 6298 over report round trips (observed - sent)
        self._rttvar = 0.0
        self._timed_out: OrderedDict[Hashable, float] = OrderedDict()  # key -> send time

    @property
    def effective_loss_timeout_s(self) -> float:
        """The loss timeout in force: ``loss_timeout_s``, or RFC 6298's SRTT + 4·RTTVAR over
        the reports' round trips where that is longer (capped at 60 s)."""
        if self._srtt is None:
            return self.loss_timeout_s
        return min(max(self.loss_timeout_s, self._srtt + 4.0 * self._rttvar), 60.0)

    def _rtt_sample(self, rtt: float) -> None:
        if rtt < 0:
            return
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2.0
        else:  # alpha = 1/8, beta = 1/4 (RFC 6298, 2.3)
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt

    @property
    def k_max(self) -> int:
        return self.controller.settings.k_max

    @property
    def deadline_s(self) -> float:
        return self.controller.settings.deadline_ms / 1e3

    def codec_setting(self, budget: int) -> dict[str, int]:
        """The codec's ``encode`` keyword for the controller's budget ``k``."""
        if self.target_bytes is not None:
            return {"target_bytes": self.target_bytes}
        if not 1 <= budget <= self.k_max:
            raise ValueError(f"budget={budget} is out of range: allowed 1..{self.k_max}")
        return {"budget": self.settings_of_budget[budget - 1]}

    def next_budget(self, now: float) -> int:
        """This frame's budget, or ``SKIP`` (counted as a skipped frame: a deadline miss)."""
        self.check_losses(now)
        k = int(self.controller.next_budget(now, keyframe=self.next_is_keyframe))
        if k == SKIP:
            self.fates.add("skipped")
            self.last_budget = SKIP
            return SKIP
        if not 1 <= k <= self.k_max:
            name = getattr(self.controller, "name", type(self.controller).__name__)
            raise ValueError(f"controller {name!r} returned budget {k}, outside 1..{self.k_max}")
        self.last_budget = k
        return k

    @property
    def next_is_keyframe(self) -> bool:
        """Whether the next frame goes out coded on its own (always, for an intra codec)."""
        return True if self.stream is None else bool(self.stream.next_is_keyframe)

    def encode(
        self, frame: np.ndarray, budget: int, *, frame_id: int, capture_time: float
    ) -> tuple[EncodedFrame, float]:
        """Encode at the budget's setting; the packet and the measured encode seconds."""
        if self.codec is None:
            raise RuntimeError("this sender has no codec (a size-model run sends sizes only)")
        kw = self.codec_setting(budget)
        t0 = time.perf_counter()
        enc = self.codec.encode(
            frame, frame_id=frame_id % 256, stamp_ms=int(capture_time * 1000) % 65536, **kw
        )
        return enc, time.perf_counter() - t0

    def on_sent(
        self,
        key: Hashable,
        *,
        budget: int,
        packet_bytes: int,
        overhead_bytes: int,
        capture_time: float,
        send_time: float,
        compute_s: float,
        frame_id: int | None = None,
        keyframe: bool = True,
    ) -> Feedback:
        """A packet left: the controller's "sent" report; its arrival report is now pending.
        ``keyframe``: the packet was coded on its own (False: predicted from a reference)."""
        if frame_id is None:
            frame_id = int(key) if isinstance(key, int) else 0
        fb = Feedback(
            frame_id=frame_id,
            budget=budget, packet_bytes=packet_bytes, overhead_bytes=overhead_bytes,
            capture_time=capture_time, send_time=send_time, compute_time=compute_s,
            status="sent", observed_at=send_time, keyframe=bool(keyframe),
        )  # fmt: skip
        self.controller.observe(fb)
        if key in self.pending:
            raise ValueError(f"packet key {key!r} sent twice")
        self.pending[key] = fb
        while len(self.pending) > self.max_pending:
            _, old = self.pending.popitem(last=False)
            self._lost(old, send_time)
        return fb

    def on_report(
        self, key: Hashable, *, arrival_time: float, observed_at: float
    ) -> FrameFate | None:
        """The receiver's report that packet ``key`` arrived; earlier pending ones are lost.

        Returns the packet's fate, or None for a report about no pending packet (already
        declared lost, or another sender's), which is counted in ``unknown_reports``."""
        if key not in self.pending:
            sent = self._timed_out.pop(key, None)
            if sent is not None:  # the timeout was too short: learn the round trip from it
                self.spurious_losses += 1
                self._rtt_sample(observed_at - sent)
            else:
                self.unknown_reports += 1
            return None
        while True:
            k, fb = self.pending.popitem(last=False)
            if k == key:
                break
            self._lost(fb, observed_at)  # a later packet arrived: this one will not
        self._rtt_sample(observed_at - fb.send_time)
        self.controller.observe(
            replace(fb, status="delivered", arrival_time=arrival_time, observed_at=observed_at)
        )
        if self.stream is not None:  # coding across frames: the receiver holds this frame
            self.stream.acknowledge(fb.frame_id)
        fate = frame_fate(fb.capture_time, arrival_time, self.deadline_s)
        self.fates.add(fate)
        return fate

    def next_timeout(self) -> float | None:
        """When the oldest pending packet will be declared lost, if no report comes."""
        if not self.pending:
            return None
        return next(iter(self.pending.values())).send_time + self.effective_loss_timeout_s

    def check_losses(self, now: float) -> int:
        """Declare lost every pending packet sent the loss timeout or more before ``now``."""
        n = 0
        timeout = self.effective_loss_timeout_s
        while self.pending:
            fb = next(iter(self.pending.values()))
            due = fb.send_time + timeout
            if due > now + 1e-12:
                break
            key, _ = self.pending.popitem(last=False)
            self._timed_out[key] = fb.send_time
            while len(self._timed_out) > self.max_pending:
                self._timed_out.popitem(last=False)
            self._lost(fb, due)
            n += 1
        return n

    def _lost(self, fb: Feedback, observed_at: float) -> None:
        self.controller.observe(replace(fb, status="lost", observed_at=observed_at))
        self.fates.add("lost")
        if self.stream is not None:  # coding across frames: the next frame is a keyframe
            self.stream.on_loss()

    def request_keyframe(self) -> None:
        """The receiver lacks a reference (coding across frames): send a keyframe next."""
        if self.stream is not None:
            self.stream.request_keyframe()


# --------------------------------------------------------------------------- receiver


class NoImage(PacketError):
    """A pixel-codec packet that checked out but gave no picture (a decoder still waiting
    for its reference): the receiver has no observation from it."""


class NoInterPrior(PacketError):
    """A ``tokens-inter`` packet reached a receiver whose tokenizer has no inter-frame prior
    (``tokenizer_inter_prior.npy``): it cannot be decoded here."""


class Tokenizer(Protocol):
    """What the receiver needs of the learned tokenizer (``TokenCodec``)."""

    @property
    def model_id(self) -> int: ...

    @property
    def k_max(self) -> int: ...

    @property
    def frame_shape(self) -> tuple[int, int]: ...

    def decode(self, packet: bytes) -> Any: ...

    def tokenize(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Observation:
    """What the policy receives of one frame."""

    token_ids: np.ndarray  # "k_max" int64: the first ``budget`` ids, zeros after
    budget: int  # 0: no image (the blind policy's input)
    frame_id: int = 0

    @classmethod
    def blind(cls, k_max: int) -> Observation:
        """No image at all: the blind policy's input."""
        return cls(np.zeros(k_max, np.int64), 0)


@dataclass
class Receiver:
    """One stream's receiving side: packet → the policy's observation.

    Learned-token packets give their token ids (padded to ``k_max``); a pixel codec's packet
    is decoded and the image tokenized at full budget, so that pixels-codec and token-codec
    reach the same policy at equal bits. Malformed, foreign or undecodable packets are
    refused, counted by error class in ``stats`` and answered with None: never raised.
    Pixel decoders are kept per (codec, frame shape): stateful ones (H.264) need the stream
    in order.
    """

    tokenizer: Tokenizer
    stats: PacketStats = field(default_factory=PacketStats)
    _pixel: dict[tuple[str, tuple[int, int]], Codec] = field(default_factory=dict)
    _inter: Any = None  # the receiving end of a tokens-inter stream: its references

    @property
    def k_max(self) -> int:
        return int(self.tokenizer.k_max)

    @property
    def keyframe_wanted(self) -> bool:
        """A packet coded across frames was refused for want of its reference (or of the
        stream's context): the adapter sends a :data:`KEYFRAME_REQUEST` on its feedback path.
        Clears when a keyframe decodes."""
        stream = self._inter if self._inter is not None else self.tokenizer
        return bool(getattr(stream, "keyframe_wanted", False))

    def inter_stream(self) -> Any:
        """The receiving end of the ``tokens-inter`` stream (one per receiver: the references
        it holds), built on the first such packet from the tokenizer and its shipped prior.
        A tokenizer without a prior refuses the stream's packets (:class:`NoInterPrior`)."""
        if self._inter is None:
            tok = self.tokenizer
            if getattr(tok, "name", "") == INTER_CODEC:
                self._inter = tok
            else:
                from embodied.interframe import InterPriorError, InterTokenCodec

                try:
                    self._inter = InterTokenCodec(tok)  # type: ignore[arg-type]
                except InterPriorError as err:
                    raise NoInterPrior(f"cannot read tokens-inter packets: {err}") from None
        return self._inter

    def receive(
        self,
        packet: bytes,
        *,
        codec: str = "tokens",
        model_id: int | None = None,
        frame_shape: Sequence[int] | None = None,
    ) -> Observation | None:
        """Decode one packet; None (counted) when it must be dropped.

        ``model_id``: the stream's announced model (a ROS packet's format string); tokens of
        another tokenizer are refused before decoding."""
        obs, _, _ = self.receive_newest(
            [packet], codec=codec, model_id=model_id, frame_shape=frame_shape
        )
        return obs

    def receive_newest(
        self,
        packets: Sequence[bytes],
        *,
        codec: str = "tokens",
        model_id: int | None = None,
        frame_shape: Sequence[int] | None = None,
    ) -> tuple[Observation | None, int | None, list[int]]:
        """Packets that arrived together, oldest first → the newest one's observation.

        Every packet is decoded in order (a stateful decoder such as H.264's needs each one
        as its reference), but only the newest that decoded is tokenized: the policy acts on
        the newest frame. Returns the observation and the index of its packet (None, None if
        none decoded) and the indices of the packets refused (counted in ``stats``)."""
        refused: list[int] = []
        newest: tuple[Any, int] | None = None
        for i, packet in enumerate(packets):
            data = bytes(packet)
            try:
                got = self._decode(data, codec, model_id, frame_shape)
            except PacketError as err:
                self.stats.drop(err)
                refused.append(i)
                continue
            self.stats.accept(len(data), got[1])
            newest = (got[0], i)
        if newest is None:
            return None, None, refused
        obs, index = newest
        if not isinstance(obs, Observation):  # a decoded image: tokenize the newest only
            image, frame_id = obs
            obs = self.from_frame(image, frame_id=frame_id)
        return obs, index, refused

    def _decode(
        self,
        data: bytes,
        codec: str,
        model_id: int | None,
        frame_shape: Sequence[int] | None,
    ) -> tuple[Observation | tuple[np.ndarray, int], int]:
        """(Observation, payload bytes) for tokens; ((image, frame id), payload bytes) for a
        pixel codec: the caller tokenizes only the image it acts on."""
        if codec in ("tokens", INTER_CODEC):
            tok = self.inter_stream() if codec == INTER_CODEC else self.tokenizer
            if model_id is not None and model_id != tok.model_id:
                raise ForeignModel(
                    f"packets of tokenizer {model_id:08x}, this receiver runs {tok.model_id:08x}",
                    model_id,
                )
            d = tok.decode(data)
            ids = np.asarray(d.padded, np.int64)
            return Observation(ids, int(d.budget), int(d.header.frame_id)), _payload(data)
        from embodied.codecs import codec_spec, make_codec

        try:
            spec = codec_spec(codec)
        except KeyError as err:
            raise NoImage(f"unknown codec {codec!r}: {err}") from None
        if spec.kind != "image":
            raise NoImage(f"codec {codec!r} is not a pixel codec")
        shape = tuple(int(s) for s in (frame_shape or self.tokenizer.frame_shape))
        key = (codec, (shape[0], shape[1]))
        if key not in self._pixel:
            self._pixel[key] = make_codec(codec, frame_shape=key[1])
        d = self._pixel[key].decode(data)
        if d.image is None:
            raise NoImage(f"{codec} packet decoded to no image")
        return (d.image, int(d.header.frame_id)), _payload(data)

    def from_frame(self, image: np.ndarray, *, frame_id: int = 0) -> Observation:
        """An image at the receiver (uncompressed, or a pixel codec's output) → tokens at full
        budget (brought to the tokenizer's input the way training saw it: any size and aspect
        ratio, :func:`embodied.camera.to_model_input`, as the camera path does)."""
        from embodied.camera import to_model_input

        image = to_model_input(np.asarray(image), self.tokenizer.frame_shape)
        _, ids = self.tokenizer.tokenize(image[None])
        return Observation(np.asarray(ids[0], np.int64), self.k_max, frame_id)

    def blind(self) -> Observation:
        """No image at all: the blind policy's input."""
        return Observation.blind(self.k_max)


def _payload(data: bytes) -> int:
    """Payload bytes of a packet that decoded (the header excluded)."""
    from embodied.packet import bits

    try:
        return bits(data).payload_bits // 8
    except PacketError:  # pragma: no cover - decode already validated the packet
        return len(data)


# --------------------------------------------------------------------------- freshness


@dataclass
class Newest:
    """The receiver's rule for what the policy acts on: the newest observation by capture;
    an older one arriving after a newer was acted on is stale and is dropped (counted)."""

    last_capture: float = -float("inf")
    stale: int = 0

    def accept(self, capture_time: float) -> bool:
        if capture_time < self.last_capture:
            self.stale += 1
            return False
        self.last_capture = capture_time
        return True

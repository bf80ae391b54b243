"""A trace-driven link emulator in simulated time.

One bottleneck, as Mahimahi's link shell models it (Netravali et al., USENIX ATC
2015): packets wait in a FIFO drop-tail queue limited in bytes, leave at the
pace the bandwidth trace allows, then travel a fixed propagation delay. Two
loss processes act on the packets that crossed the bottleneck (a radio frame
that was sent but not received still used its airtime): independent random
loss, and bursty loss from a Gilbert–Elliott two-state Markov chain (Gilbert,
Bell Syst. Tech. J. 1960; Elliott, 1963).

Every packet carries ``overhead_bytes`` of transport framing on top of the
codec's payload (28 bytes for UDP/IPv4; more for DDS/RTPS). Those bytes occupy
the link like any other and are counted apart from the codec's bits.

Time only moves when the caller says so, so a run is a pure function of the
trace, the configuration (seed included) and the packets sent.

Queue arithmetic, with ``S(t)`` the trace's cumulative service curve and
``served`` the service position at which the last accepted packet completes::

    backlog(t)  = max(0, served - S(t))                  # bytes still ahead, in-service one included
    start       = max(served, S(t_send))                 # unused capacity is not banked
    served     += wire_bytes
    departure   = S^-1(served)                           # last byte leaves the bottleneck
    arrival     = departure + propagation_delay
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from embodied.link.traces import Trace

UDP_IPV4_OVERHEAD_BYTES = 28  # 20-byte IPv4 header + 8-byte UDP header

LinkEvent = Literal["delivered", "queue_drop", "random_loss", "burst_loss"]


@dataclass(frozen=True)
class GilbertElliott:
    """Bursty loss: a Good/Bad Markov chain, each state with its own loss probability.

    ``p_good_to_bad`` and ``p_bad_to_good`` are transition probabilities per
    step. By default a step is a packet (the classic per-packet chain; a burst
    lasts ``1 / p_bad_to_good`` packets on average). With ``step_s`` set, a
    step is that much time instead, and between packets the chain advances by
    the elapsed time (``n = Δt / step_s`` steps, in closed form), so a fade
    lasts the same time whether the sender is busy or quiet, as radio fades do.
    """

    p_good_to_bad: float
    p_bad_to_good: float
    loss_good: float = 0.0
    loss_bad: float = 1.0
    step_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("p_good_to_bad", "p_bad_to_good", "loss_good", "loss_bad"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} must be a probability in [0, 1]")
        if self.step_s is not None:
            if not self.step_s > 0:
                raise ValueError(f"step_s={self.step_s} must be positive")
            if self.p_good_to_bad + self.p_bad_to_good > 1.0:
                raise ValueError("a time-stepped chain needs p_good_to_bad + p_bad_to_good <= 1")

    def p_bad_after(self, bad: bool, steps: float) -> float:
        """Probability of Bad ``steps`` steps after a known state (two-state chain:
        ``P = π_B + (1[bad] - π_B)·(1 - p - r)^steps``)."""
        pb = self.stationary_bad
        decay = (1.0 - self.p_good_to_bad - self.p_bad_to_good) ** steps
        return pb + ((1.0 if bad else 0.0) - pb) * decay

    @property
    def stationary_bad(self) -> float:
        total = self.p_good_to_bad + self.p_bad_to_good
        return self.p_good_to_bad / total if total > 0 else 0.0

    @property
    def mean_loss(self) -> float:
        pb = self.stationary_bad
        return (1 - pb) * self.loss_good + pb * self.loss_bad


@dataclass(frozen=True)
class LinkConfig:
    """Everything about the link except its bandwidth."""

    propagation_delay_s: float = 0.02
    queue_limit_bytes: float | None = 3000.0  # drop-tail; None: unlimited
    overhead_bytes: int = UDP_IPV4_OVERHEAD_BYTES
    loss_rate: float = 0.0
    burst_loss: GilbertElliott | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.propagation_delay_s < 0:
            raise ValueError(f"propagation_delay_s={self.propagation_delay_s} must be >= 0")
        if self.queue_limit_bytes is not None and self.queue_limit_bytes <= 0:
            raise ValueError(f"queue_limit_bytes={self.queue_limit_bytes} must be > 0 or None")
        if self.overhead_bytes < 0:
            raise ValueError(f"overhead_bytes={self.overhead_bytes} must be >= 0")
        if not 0.0 <= self.loss_rate <= 1.0:
            raise ValueError(f"loss_rate={self.loss_rate} must be in [0, 1]")


@dataclass(frozen=True)
class PacketResult:
    """What happened to one packet. Times in seconds of simulated time."""

    seq: int
    send_time: float
    packet_bytes: int
    overhead_bytes: int
    backlog_bytes: float  # bytes ahead of it in the queue when it arrived
    departure_time: float | None  # None if dropped by the queue
    arrival_time: float | None  # None if lost in any way
    fate: LinkEvent
    service_start: float | None = None  # its first byte's position on the service curve S

    @property
    def wire_bytes(self) -> int:
        return self.packet_bytes + self.overhead_bytes

    @property
    def lost(self) -> bool:
        return self.arrival_time is None

    @property
    def delay(self) -> float | None:
        """One-way delay from send to arrival (queueing + transmission + propagation)."""
        return None if self.arrival_time is None else self.arrival_time - self.send_time


@dataclass
class LinkStats:
    packets: int = 0
    packet_bytes: int = 0  # accepted into the queue
    overhead_bytes: int = 0
    fates: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("delivered", "queue_drop", "random_loss", "burst_loss"), 0
        )
    )
    max_backlog_bytes: float = 0.0


class LinkEmulator:
    """Send packets at non-decreasing times; each call returns the packet's fate."""

    def __init__(self, trace: Trace, config: LinkConfig | None = None) -> None:
        self.trace = trace
        self.config = config or LinkConfig()
        self._rng = random.Random(self.config.seed)
        self._served = 0.0
        self._last_send = 0.0
        self._seq = 0
        self._bad = False  # Gilbert–Elliott state
        self._ge_time = 0.0  # when it was last stepped (time-stepped chains)
        self.stats = LinkStats()

    def backlog_bytes(self, t: float) -> float:
        """Bytes waiting at the bottleneck at time ``t`` (the one in service included)."""
        return max(0.0, self._served - self.trace.delivered_bytes(t))

    def probe(self, t: float, packet_bytes: int) -> float | None:
        """Arrival time of a packet if it were sent at ``t``, without sending it.

        Loss is not drawn (it is not knowable in advance); None if the queue
        would drop it. Only the oracle controller may use this.
        """
        wire = packet_bytes + self.config.overhead_bytes
        s_t = self.trace.delivered_bytes(t)
        backlog = max(0.0, self._served - s_t)
        limit = self.config.queue_limit_bytes
        if limit is not None and backlog + wire > limit:
            return None
        departure = self.trace.time_of_byte(max(self._served, s_t) + wire)
        return departure + self.config.propagation_delay_s

    def send(self, t: float, packet_bytes: int) -> PacketResult:
        if t < self._last_send:
            raise ValueError(f"send times must not decrease: {t} after {self._last_send}")
        if packet_bytes < 0:
            raise ValueError(f"packet_bytes={packet_bytes} must be >= 0")
        self._last_send = t
        cfg = self.config
        seq = self._seq
        self._seq += 1
        wire = packet_bytes + cfg.overhead_bytes
        s_t = self.trace.delivered_bytes(t)
        backlog = max(0.0, self._served - s_t)
        self.stats.packets += 1
        # Draw every random number for every packet, whatever its fate, so the
        # loss pattern depends only on the seed and the packet count.
        u_random, u_transition, u_loss = self._rng.random(), self._rng.random(), self._rng.random()
        limit = cfg.queue_limit_bytes
        if limit is not None and backlog + wire > limit:
            self.stats.fates["queue_drop"] += 1
            return PacketResult(
                seq, t, packet_bytes, cfg.overhead_bytes, backlog, None, None, "queue_drop"
            )
        start = max(self._served, s_t)
        self._served = start + wire
        self.stats.max_backlog_bytes = max(self.stats.max_backlog_bytes, backlog + wire)
        self.stats.packet_bytes += packet_bytes
        self.stats.overhead_bytes += cfg.overhead_bytes
        departure = self.trace.time_of_byte(self._served)
        fate: LinkEvent = "delivered"
        ge = cfg.burst_loss
        if ge is not None:
            if ge.step_s is None:
                p_bad = 1.0 - ge.p_bad_to_good if self._bad else ge.p_good_to_bad
            else:
                p_bad = ge.p_bad_after(self._bad, (t - self._ge_time) / ge.step_s)
                self._ge_time = t
            self._bad = u_transition < p_bad
            if u_loss < (ge.loss_bad if self._bad else ge.loss_good):
                fate = "burst_loss"
        if fate == "delivered" and u_random < cfg.loss_rate:
            fate = "random_loss"
        self.stats.fates[fate] += 1
        arrival = departure + cfg.propagation_delay_s if fate == "delivered" else None
        return PacketResult(
            seq, t, packet_bytes, cfg.overhead_bytes, backlog, departure, arrival, fate, start
        )

"""Deadline-aware budget control: the largest budget predicted to arrive in time.

For each frame it predicts the end-to-end latency of budget k::

    latency(k) = compute(k) + queue ahead + bytes(k)·8 / C + propagation

and picks the largest k that fits ``deadline - margin`` and whose rate the link
sustains (``bytes(k)·8·fps <= C``); if not even the minimum fits, it skips the
frame (a miss either way, but a late packet would also delay the next ones).
The capacity C is estimated as RobustMPC does (Yin et al., "A
Control-Theoretic Approach for Dynamic Adaptive Video Streaming over HTTP",
SIGCOMM 2015): the harmonic mean of the last 8 throughput samples divided by
``1 + max recent relative prediction error``, so it shrinks when the link is
hard to predict. The queue ahead is replayed from the packets still in flight.
bytes(k) and compute(k) are the online models of :class:`BaseController`
(upper predictions: mean · (1 + z · relative residual std)).

Token packets are tiny (tens of bytes), so a sample is one packet's service
time at the bottleneck, not a download's throughput:

* queued behind the previous packet (it reached the bottleneck before the
  previous one left: ``arrival_prev - send > min one-way delay``), its service
  is the gap between arrivals (packet pair: exact on a fluid link);
* otherwise ``one-way delay - propagation``. Propagation cannot be told from
  transmission time with one packet size, so now and then (every 0.5 s until
  it is known, then every 5 s) one frame is *dithered* to a clearly different
  budget: two idle packets of different sizes close in time give
  ``delay = prop + bytes/C`` twice, hence the propagation delay. Its lower
  quartile over recent pairs is used, so samples err towards too little
  capacity (0 before the first pair: very conservative).

The receiver's reports arrive a feedback delay late, which matters most when
the link slows. If the oldest report is overdue (later than the estimate
predicts), the packet has not left the bottleneck by ``now - feedback -
propagation``. One late report may be a loss: the frame goes at the minimum
budget. Two in a row mean the link slowed: the upper bound on C, halved as a
guess (the multiplicative back-off of delay-based control such as GCC,
Carlucci et al., "Analysis and Design of the Google Congestion Control for
WebRTC", MMSys 2016), and frames are skipped until a report explains the
slow-down. This is what brings latency back inside the deadline within a few
frames of a 10× drop, before any report about the slow packets is back. A
sample 2× away from the mean restarts the window (a step, not noise); a sample
below half the minimum-budget rate marks an outage and restarts the estimate
from that rate. While silent (outage, or a burst of losses, which look the
same to a sender) it skips, sending a minimum-budget probe every 0.1 s with at
most 6 packets in flight, so the queue stays bounded (about 100 bytes).

Assumes sender and receiver clocks agree (one-way delays), as ROS time stamps do.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import NamedTuple

from embodied.control.base import SKIP, BaseController, ControllerSettings, Feedback
from embodied.control.estimators import SlidingMin, harmonic_mean


class _Delivered(NamedTuple):
    send: float
    arrival: float
    delay: float
    wire: int
    idle: bool  # not queued behind the previous packet


class DeadlineAwareController(BaseController):
    """Largest budget whose predicted latency fits the deadline (RobustMPC-style capacity)."""

    name = "deadline"

    def __init__(
        self,
        settings: ControllerSettings | None = None,
        *,
        frame_rate_hz: float = 30.0,
        window: int = 8,
        error_window: int = 8,
        margin_ms: float = 10.0,
        size_z: float = 1.5,
        compute_z: float = 2.0,
        delay_window_s: float = 10.0,
        probe_interval_s: float = 0.1,
        max_probes_in_flight: int = 6,
        drop_ratio: float = 2.0,
        pair_min_bytes: float = 6.0,
        overdue_slack_ms: float = 10.0,
        overdue_backoff: float = 0.5,
        skip_when_overdue: bool = True,
    ) -> None:
        super().__init__(settings, frame_rate_hz=frame_rate_hz)
        self.margin_s = margin_ms / 1e3
        self.size_z, self.compute_z = size_z, compute_z
        self.probe_interval_s = probe_interval_s
        self.max_probes_in_flight = max_probes_in_flight
        self.drop_ratio = drop_ratio
        self.pair_min_bytes = pair_min_bytes
        self.overdue_slack_s = overdue_slack_ms / 1e3
        self.overdue_backoff = overdue_backoff
        self.skip_when_overdue = skip_when_overdue
        self._samples: deque[float] = deque(maxlen=window)  # capacity samples, bit/s
        self._errors: deque[float] = deque(maxlen=error_window)
        self._inflight: OrderedDict[int, tuple[float, int]] = OrderedDict()  # frame -> (send, wire)
        self._min_delay = SlidingMin(delay_window_s)  # one-way delay
        self._prop_samples: deque[float] = deque(maxlen=32)
        self._last_pair = -math.inf
        self._feedback_delay = math.inf
        self._prev: _Delivered | None = None
        self._last_send = -math.inf
        self._dithered = False
        self.outages = 0  # outage samples seen (estimate restarts)

    # -- estimates -------------------------------------------------------------------
    def capacity_mean(self) -> float | None:
        return harmonic_mean(self._samples) if self._samples else None

    def capacity_robust(self) -> float | None:
        mean = self.capacity_mean()
        if mean is None:
            return None
        return mean / (1.0 + max(self._errors, default=0.0))

    def prop_high(self) -> float:
        """Propagation for the latency prediction: the smallest one-way delay seen
        (an upper bound), or the median pair estimate once there are a few."""
        d = self._min_delay.value()
        high = 0.0 if d is None else d
        if len(self._prop_samples) >= 4:
            median = sorted(self._prop_samples)[len(self._prop_samples) // 2]
            high = min(high, median + 2e-3)
        return high

    def prop_low(self) -> float:
        """Propagation for capacity samples: the lower quartile of size-pair
        estimates, 0 before there is one (both err towards too little capacity)."""
        if not self._prop_samples:
            return 0.0
        return sorted(self._prop_samples)[len(self._prop_samples) // 4]

    def _min_rate_bps(self) -> float:
        return self.predicted_wire_bytes(self.settings.min_budget) * 8.0 * self.frame_rate_hz

    # -- feedback ----------------------------------------------------------------------
    def _observe(self, feedback: Feedback) -> None:
        fb = feedback
        if fb.status == "sent":
            self._inflight[fb.frame_id] = (fb.send_time, fb.wire_bytes)
            self._last_send = fb.send_time
            return
        self._inflight.pop(fb.frame_id, None)
        if fb.status == "lost" or fb.arrival_time is None:
            return
        for fid in [f for f in self._inflight if f < fb.frame_id]:
            del self._inflight[fid]  # reported later than a newer packet: treat as lost
        arrival = fb.arrival_time
        delay = arrival - fb.send_time
        wire = fb.wire_bytes
        self._feedback_delay = min(self._feedback_delay, fb.observed_at - arrival)
        min_delay = self._min_delay.value()
        self._min_delay.add(arrival, delay)
        prev = self._prev
        busy = (
            prev is not None and min_delay is not None and prev.arrival - fb.send_time > min_delay
        )
        self._prev = _Delivered(fb.send_time, arrival, delay, wire, not busy)
        if busy and prev is not None:
            service = arrival - prev.arrival  # queued behind the previous packet: packet pair
        else:
            service = delay - self.prop_low()
            if prev is not None and prev.idle:
                self._pair_sample(prev, delay, wire, fb.send_time)
        if service <= 0:
            return
        if wire * 8.0 / service < 0.5 * self._min_rate_bps():
            # The packet sat through an outage: its rate says nothing about the
            # link now. Restart from the minimum-budget rate.
            self._samples.clear()
            self._errors.clear()
            self.outages += 1
            return
        sample = wire * 8.0 / service
        mean = self.capacity_mean()
        if mean is not None and not 1.0 / self.drop_ratio <= sample / mean <= self.drop_ratio:
            # A step, not noise: start the window afresh rather than let stale
            # samples (and one huge error) rule the next frames.
            self._samples.clear()
            self._errors.clear()
        elif mean is not None:
            self._errors.append(abs(mean - sample) / sample)
        self._samples.append(sample)

    def _pair_sample(self, prev: _Delivered, delay: float, wire: int, send: float) -> None:
        """Two idle packets of different sizes close in time: delay = prop + bytes/C
        for both, so the pair gives C and hence the propagation delay."""
        dw = wire - prev.wire
        dd = delay - prev.delay
        if abs(dw) < self.pair_min_bytes or send - prev.send > 0.1 or dw * dd <= 0:
            return
        prop = prev.delay - prev.wire * dd / dw
        if 0.0 <= prop <= min(delay, prev.delay):
            self._prop_samples.append(prop)
            self._last_pair = send

    # -- decision ----------------------------------------------------------------------
    def capacity_now(self, now: float, robust: bool = True) -> float:
        """Capacity estimate (robust: discounted by recent error), bounded by what
        overdue reports imply; the minimum-budget rate while nothing is known."""
        c = self.capacity_robust() if robust else self.capacity_mean()
        if c is None:
            c = self._min_rate_bps()
        if self._inflight and math.isfinite(self._feedback_delay):
            send, wire = next(iter(self._inflight.values()))
            start = send
            if self._prev is not None:
                start = max(start, self._prev.arrival - self.prop_low())
            not_left_by = now - self._feedback_delay - self.prop_high()
            if not_left_by > start:
                c = min(c, wire * 8.0 / (not_left_by - start))
        return c

    def capacity_bps(self, now: float) -> float | None:
        return self.capacity_now(now)

    def overdue_reports(self, now: float) -> int:
        """How many of the oldest packets' reports are later than the robust
        estimate predicts (by more than ``overdue_slack``)? One may be a loss;
        two in a row mean the link slowed."""
        c = self.capacity_robust()
        if not self._inflight or c is None or not math.isfinite(self._feedback_delay):
            return 0
        free = -math.inf if self._prev is None else self._prev.arrival - self.prop_low()
        late_by = self.prop_high() + self._feedback_delay + self.overdue_slack_s
        count = 0
        for send, wire in self._inflight.values():
            free = max(free, send) + wire * 8.0 / c
            if now <= free + late_by:
                break
            count += 1
        return count

    def predicted_latency(self, now: float, budget: int, capacity: float) -> float:
        free = -math.inf if self._prev is None else self._prev.arrival - self.prop_low()
        for send, wire in self._inflight.values():
            free = max(free, send) + wire * 8.0 / capacity
        start = max(free, now + self.predicted_compute_s(budget, self.compute_z))
        wire_k = self.predicted_wire_bytes(budget, self.size_z)
        return start + wire_k * 8.0 / capacity + self.prop_high() - now

    def _largest(self, lo: int, hi: int, ok: Callable[[int], bool]) -> int:
        while lo < hi:  # ok(k) holds for lo and is monotone (true, then false)
            mid = (lo + hi + 1) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _decide(self, now: float) -> int:
        s = self.settings
        lo, hi = s.min_budget, self.cap_budget()
        overdue = self.overdue_reports(now)
        if overdue == 1:
            # One late report may be a loss: send no more than the minimum, and
            # do not bound the capacity by a packet that may never arrive.
            capacity = self.capacity_robust() or self._min_rate_bps()
            hi = lo
        elif overdue >= 2:
            # Two late reports in a row: the link has slowed by an unknown factor.
            # Its upper bound, halved, and skip until a report explains it.
            capacity = self.capacity_now(now) * self.overdue_backoff
            hi = lo
        else:
            capacity = self.capacity_now(now)
        target = s.deadline_ms / 1e3 - self.margin_s
        per_frame_bits = capacity / self.frame_rate_hz

        def fits(k: int) -> bool:
            return self.predicted_latency(now, k, capacity) <= target

        def sustainable(k: int) -> bool:
            return fits(k) and self.predicted_wire_bytes(k, self.size_z) * 8.0 <= per_frame_bits

        if not fits(lo) or (overdue >= 2 and self.skip_when_overdue):
            # Skipping is a certain miss; send the minimum if its *expected*
            # latency (undiscounted capacity, no margin) still fits.
            if overdue < 2:
                expected = self.capacity_now(now, robust=False) if overdue == 0 else capacity
                if self.predicted_latency(now, lo, expected) <= s.deadline_ms / 1e3:
                    return lo
            # Otherwise skip, but send a minimum-budget probe now and then (a few
            # at most in flight, so the queue stays bounded) to notice recovery.
            probe = (
                len(self._inflight) < self.max_probes_in_flight
                and now - self._last_send >= self.probe_interval_s
            )
            return lo if probe else SKIP
        k = self._largest(lo, hi, sustainable)
        # Dither the size now and then: two idle packets of different sizes are
        # what reveals the propagation delay (and so the capacity) exactly.
        interval = 0.5 if len(self._prop_samples) < 4 else 5.0
        if not self._dithered and now - self._last_pair > interval:
            wire_k = self.predicted_wire_bytes(k)
            up = self._largest(k, hi, fits)
            if self.predicted_wire_bytes(up) - wire_k >= 2 * self.pair_min_bytes:
                self._dithered = True
                return up
            down = max(lo, k // 3)
            if wire_k - self.predicted_wire_bytes(down) >= 2 * self.pair_min_bytes:
                self._dithered = True
                return down
        self._dithered = False
        return k

"""A sender over an emulated link in simulated time: the sim adapters' one link loop.

``LinkSession`` wraps a :class:`embodied.pipeline.Sender`: each packet goes through the
link emulator (or the ideal link: it arrives the instant it is sent); the receiver's
arrival report is handed back to the sender one feedback delay after the arrival, in time
order with the sender's own loss rule (a timeout, or a report about a later packet); and
the *ground-truth* fate of every captured frame is counted in ``fates`` with the one miss
rule of :func:`embodied.pipeline.frame_fate` (the simulator knows every arrival, also of
packets the sender has already written off).

``embodied eval`` (real codecs) and ``embodied link-sim`` (a packet-size model) both run it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied.control.base import SKIP
from embodied.link.emulator import LinkConfig, LinkEmulator, PacketResult
from embodied.link.traces import Trace
from embodied.pipeline import KEYFRAME_REQUEST, FateCounts, Sender, StreamStats, frame_fate


@dataclass(frozen=True)
class Arrival:
    """A packet the link delivered: what the receiver gets, and when."""

    key: int
    capture_time: float
    arrival_time: float
    payload: Any


class LinkSession:
    """One sender over one link, deterministic in simulated time.

    ``trace=None`` is the ideal link: every packet arrives the instant it is sent.
    ``emulator`` shares a link with an oracle's view of the future (link-sim).
    """

    def __init__(
        self,
        sender: Sender,
        trace: Trace | None,
        link: LinkConfig | None = None,
        *,
        feedback_delay_s: float | None = None,
        emulator: LinkEmulator | None = None,
        ideal_delay_s: float = 0.0,
    ) -> None:
        """``ideal_delay_s``: on the ideal link, a fixed one-way delay (no bandwidth limit:
        the added-latency curves of ``embodied success-curves``); feedback takes as long."""
        if ideal_delay_s < 0:
            raise ValueError(f"ideal_delay_s={ideal_delay_s} must be >= 0")
        self.ideal_delay_s = float(ideal_delay_s) if trace is None and emulator is None else 0.0
        self.sender = sender
        self.config = emulator.config if emulator is not None else (link or LinkConfig())
        if emulator is not None:
            self.link: LinkEmulator | None = emulator
        else:
            self.link = LinkEmulator(trace, self.config) if trace is not None else None
        # (the ideal link's reports come back after the config's propagation, plus any delay)
        prop = self.config.propagation_delay_s + self.ideal_delay_s
        self.feedback_delay_s = prop if feedback_delay_s is None else feedback_delay_s
        self.fates = FateCounts()  # ground truth per captured frame
        self.stats = StreamStats()
        self._reports: list[tuple[float, int, int, float]] = []  # (seen, seq, key, arrival)
        self._arrivals: list[tuple[float, int, Arrival]] = []  # packets on their way
        self._seq = 0
        self._frames = 0  # keys of offer()
        self.last_packet: bytes | None = None  # the packet of the last offer() that sent one

    def begin(self) -> None:
        """Start counting afresh (after a warm-up): fates and stats; the link, the sender's
        pending reports and its controller's state carry on."""
        self.fates = FateCounts()
        self.stats = StreamStats()

    def offer(
        self, frame: np.ndarray, capture_time: float, compute_s: float
    ) -> PacketResult | None:
        """One camera frame into the pipeline: the budget (None: skipped), the codec's packet
        at its setting, the link; the packet reaches :meth:`arrived` when the link delivers."""
        key, self._frames = self._frames, self._frames + 1
        k = self.next_budget(capture_time)
        if k == SKIP:
            self.last_packet = None
            return None
        enc, _ = self.sender.encode(frame, k, frame_id=key, capture_time=capture_time)
        self.last_packet = enc.packet
        return self.send(key, capture_time, k, len(enc.packet), compute_s, payload=enc.packet,
                         header_bytes=enc.header_bytes, keyframe=enc.header.keyframe)  # fmt: skip

    @property
    def frames_offered(self) -> int:
        """Frames :meth:`offer` has taken (their keys are ``0..frames_offered - 1``)."""
        return self._frames

    def arrived(self, now: float) -> list[Arrival]:
        """Every packet delivered by ``now`` not yet handed over, oldest first."""
        out = []
        while self._arrivals and self._arrivals[0][0] <= now:
            out.append(heapq.heappop(self._arrivals)[2])
        return out

    @property
    def overhead_bytes(self) -> int:
        return self.config.overhead_bytes if self.link is not None else 0

    def deliver_reports(self, now: float) -> None:
        """Hand the sender every report it would have seen by ``now``, in time order with
        its loss timeouts."""
        while self._reports and self._reports[0][0] <= now + 1e-12:
            seen, _, key, arrival = heapq.heappop(self._reports)
            self.sender.check_losses(seen)
            if key == KEYFRAME_REQUEST:
                self.sender.request_keyframe()
            else:
                self.sender.on_report(key, arrival_time=arrival, observed_at=seen)
        self.sender.check_losses(now)

    def request_keyframe(self, at: float) -> None:
        """The receiver asks for a keyframe at ``at``; the sender hears it a feedback delay
        later (with the arrival reports)."""
        heapq.heappush(self._reports, (at + self.feedback_delay_s, self._seq, KEYFRAME_REQUEST, at))
        self._seq += 1

    def next_budget(self, now: float) -> int:
        """The budget for a frame captured at ``now``, or ``SKIP`` (a skipped frame)."""
        self.deliver_reports(now)
        k = self.sender.next_budget(now)
        if k == SKIP:
            self.fates.add("skipped")
            self.stats.skipped()
        return k

    def send(
        self,
        key: int,
        capture_time: float,
        budget: int,
        packet_bytes: int,
        compute_s: float,
        *,
        payload: Any = None,
        header_bytes: int = 0,
        keyframe: bool = True,
    ) -> PacketResult:
        """Send one packet (it leaves after the sender's compute time); its fate on the link.
        A ``payload`` given is handed to :meth:`arrived` at its arrival."""
        send_time = capture_time + compute_s
        if self.link is None:
            res = PacketResult(
                seq=self._seq, send_time=send_time, packet_bytes=packet_bytes, overhead_bytes=0,
                backlog_bytes=0.0, departure_time=send_time,
                arrival_time=send_time + self.ideal_delay_s, fate="delivered",
            )  # fmt: skip
        else:
            res = self.link.send(send_time, packet_bytes)
        self.sender.on_sent(
            key, budget=budget, packet_bytes=packet_bytes, overhead_bytes=self.overhead_bytes,
            capture_time=capture_time, send_time=send_time, compute_s=compute_s, keyframe=keyframe,
        )  # fmt: skip
        arrival = res.arrival_time
        if arrival is not None:
            seen = arrival + self.feedback_delay_s
            heapq.heappush(self._reports, (seen, self._seq, key, arrival))
            if payload is not None:
                item = Arrival(key, capture_time, arrival, payload)
                heapq.heappush(self._arrivals, (arrival, self._seq, item))
        self._seq += 1
        self.fates.add(frame_fate(capture_time, arrival, self.sender.deadline_s))
        latency = None if arrival is None else arrival - capture_time
        self.stats.sent(budget, packet_bytes, header_bytes, res.wire_bytes, latency)
        return res

    def refused(self, capture_time: float, arrival_time: float) -> None:
        """The receiver refused a delivered packet: its frame is lost, not on time or late."""
        self.fates.move(frame_fate(capture_time, arrival_time, self.sender.deadline_s), "lost")

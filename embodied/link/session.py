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
from collections.abc import Hashable

from embodied.control.base import SKIP
from embodied.link.emulator import LinkConfig, LinkEmulator, PacketResult
from embodied.link.traces import Trace
from embodied.pipeline import FateCounts, Sender, frame_fate


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
    ) -> None:
        self.sender = sender
        self.config = emulator.config if emulator is not None else (link or LinkConfig())
        if emulator is not None:
            self.link: LinkEmulator | None = emulator
        else:
            self.link = LinkEmulator(trace, self.config) if trace is not None else None
        self.feedback_delay_s = (
            self.config.propagation_delay_s if feedback_delay_s is None else feedback_delay_s
        )
        self.fates = FateCounts()  # ground truth per captured frame
        self._reports: list[tuple[float, int, Hashable, float]] = []  # (seen, seq, key, arrival)
        self._seq = 0

    @property
    def overhead_bytes(self) -> int:
        return self.config.overhead_bytes if self.link is not None else 0

    def deliver_reports(self, now: float) -> None:
        """Hand the sender every report it would have seen by ``now``, in time order with
        its loss timeouts."""
        while self._reports and self._reports[0][0] <= now + 1e-12:
            seen, _, key, arrival = heapq.heappop(self._reports)
            self.sender.check_losses(seen)
            self.sender.on_report(key, arrival_time=arrival, observed_at=seen)
        self.sender.check_losses(now)

    def next_budget(self, now: float) -> int:
        """The budget for a frame captured at ``now``, or ``SKIP`` (a skipped frame)."""
        self.deliver_reports(now)
        k = self.sender.next_budget(now)
        if k == SKIP:
            self.fates.add("skipped")
        return k

    def send(
        self, key: Hashable, capture_time: float, budget: int, packet_bytes: int, compute_s: float
    ) -> PacketResult:
        """Send one packet (it leaves after the sender's compute time); its fate on the link."""
        send_time = capture_time + compute_s
        if self.link is None:
            res = PacketResult(
                seq=self._seq, send_time=send_time, packet_bytes=packet_bytes, overhead_bytes=0,
                backlog_bytes=0.0, departure_time=send_time, arrival_time=send_time,
                fate="delivered",
            )  # fmt: skip
        else:
            res = self.link.send(send_time, packet_bytes)
        self.sender.on_sent(
            key, budget=budget, packet_bytes=packet_bytes, overhead_bytes=self.overhead_bytes,
            capture_time=capture_time, send_time=send_time, compute_s=compute_s,
        )  # fmt: skip
        if res.arrival_time is not None:
            seen = res.arrival_time + self.feedback_delay_s
            heapq.heappush(self._reports, (seen, self._seq, key, res.arrival_time))
        self._seq += 1
        self.fates.add(frame_fate(capture_time, res.arrival_time, self.sender.deadline_s))
        return res

    def refused(self, capture_time: float, arrival_time: float) -> None:
        """The receiver refused a delivered packet: its frame is lost, not on time or late."""
        self.fates.move(frame_fate(capture_time, arrival_time, self.sender.deadline_s), "lost")

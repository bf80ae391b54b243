"""The sender's side of one control loop over a link: budget → packet → link → feedback.

``LinkSession`` is what runs between a camera and a policy in simulated time: it asks
the controller for a budget, sends a packet of a given size through the link emulator
(or an ideal link), and hands the controller the per-packet reports it would really
get: a "sent" report at once, "delivered" one feedback delay after arrival, "lost" at a
timeout or when a later packet is reported. The same plumbing serves ``embodied eval``
with real codecs; ``embodied link-sim`` replays traces with a packet-size model.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Any

from embodied.control.base import Controller, Feedback
from embodied.link.emulator import LinkConfig, LinkEmulator, PacketResult
from embodied.link.traces import Trace


class LinkSession:
    """One sender over one link, deterministic in simulated time.

    ``trace=None`` is the ideal link: every packet arrives the instant it is sent.
    """

    def __init__(
        self,
        trace: Trace | None,
        controller: Controller | None,
        link: LinkConfig | None = None,
        feedback_delay_s: float | None = None,
        loss_timeout_s: float = 0.5,
        emulator: LinkEmulator | None = None,
    ) -> None:
        self.trace = trace
        self.controller = controller
        self.config = emulator.config if emulator is not None else (link or LinkConfig())
        if emulator is not None:
            self.link: LinkEmulator | None = emulator  # shared with an oracle's view of the future
        else:
            self.link = LinkEmulator(trace, self.config) if trace is not None else None
        self.fb_delay = (
            self.config.propagation_delay_s if feedback_delay_s is None else feedback_delay_s
        )
        self.loss_timeout_s = loss_timeout_s
        self._pending: deque[list[Any]] = deque()

    @property
    def overhead_bytes(self) -> int:
        return self.config.overhead_bytes if self.link is not None else 0

    def deliver_feedback(self, now: float) -> None:
        """Hand the controller every report it would have seen by ``now``."""
        if self.controller is None:
            self._pending.clear()
            return
        while self._pending:
            fb, seen = self._pending[0]
            if seen is None:  # lost: known at a timeout or when a later packet is reported
                later = next((e[1] for e in self._pending if e[1] is not None), math.inf)
                seen_at = min(fb.send_time + self.loss_timeout_s, later)
                if seen_at > now:
                    return
                fb = replace(fb, observed_at=seen_at)
            elif seen > now:
                return
            self._pending.popleft()
            self.controller.observe(fb)

    def next_budget(self, now: float, fixed: int | None = None) -> int:
        """The controller's budget for a frame captured at ``now`` (or ``fixed``)."""
        self.deliver_feedback(now)
        if fixed is not None or self.controller is None:
            if fixed is None:
                raise ValueError("a session without a controller needs a fixed budget")
            return fixed
        return int(self.controller.next_budget(now))

    def send(
        self, frame_id: int, capture_time: float, budget: int, payload_bytes: int, compute_s: float
    ) -> PacketResult:
        """Send one packet (leaving after the sender's compute time); its fate on the link."""
        send_time = capture_time + compute_s
        if self.link is None:
            res = PacketResult(
                seq=frame_id, send_time=send_time, payload_bytes=payload_bytes, overhead_bytes=0,
                backlog_bytes=0.0, departure_time=send_time, arrival_time=send_time,
                fate="delivered",
            )  # fmt: skip
        else:
            res = self.link.send(send_time, payload_bytes)
        overhead = self.overhead_bytes
        if self.controller is not None:
            sent = Feedback(frame_id, budget, payload_bytes, overhead, capture_time,
                            res.send_time, compute_s, "sent", res.send_time)  # fmt: skip
            self.controller.observe(sent)
            if res.arrival_time is not None:
                seen = res.arrival_time + self.fb_delay
                final = replace(sent, status="delivered", arrival_time=res.arrival_time,
                                observed_at=seen)  # fmt: skip
                self._pending.append([final, seen])
            else:
                self._pending.append([replace(sent, status="lost"), None])
        return res

"""One ``embodied eval`` episode into a :class:`~embodied_tools.view.stream.StreamView`
(``embodied eval --view``): the sim's camera, the packets the sender sent, their arrivals
on the emulated link, the sender's statistics and the episode's events, in sim time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embodied_tools.view.stream import StreamView

STATS_PERIOD_S = 0.2  # sim seconds between statistics points (the nodes publish at 1 Hz)


class EvalTap:
    """An :class:`sim.evaluate.EpisodeObserver` that shows the episode in a view."""

    def __init__(self, view: StreamView) -> None:
        self.view = view
        self.session: Any = None
        self.format = ""
        self._next_stats = 0.0

    def begin(
        self, t: float, task: str, seed: int, instruction: str, policy: Any, session: Any
    ) -> None:
        from ros_nodes.wire import PacketFormat

        self.session = session
        if session is not None and session.sender.codec is not None:
            codec = session.sender.codec
            self.format = str(PacketFormat(codec.name, codec.model_id, codec.frame_shape))
        read_as = ""
        if getattr(policy, "tasks", ()):
            try:
                top, p = next(iter(policy.task_belief(instruction).items()))
                read_as = f"{top} ({p:.2f})"
                self.view.at(t)
                self.view.policy_stats(t, {"task_belief": p})
            except ValueError:
                read_as = "(no task belief for this sentence)"
        self.view.event(t, {"event": "start", "task": task, "seed": seed})
        self.view.instruction(t, instruction, read_as)
        self._next_stats = t

    def frame(self, t: float, image: np.ndarray, packet: bytes | None, sent: Any) -> None:
        self.view.camera(t, image)
        if packet is not None and sent is not None:
            self.view.packet(t, packet, self.format, sent.wire_bytes - sent.packet_bytes)
        if t >= self._next_stats and self.session is not None:
            self._next_stats = t + STATS_PERIOD_S
            self._stats(t)

    def arrived(self, t: float, arrivals: Sequence[Any], receiver: Any) -> None:
        for a in arrivals:
            self.view.arrival(a.capture_time, 1e3 * (a.arrival_time - a.capture_time))
        if receiver is not None and arrivals:
            self.view.at(t)
            self.view.policy_stats(t, {"packets_dropped": receiver.stats.dropped_total})

    def end(self, t: float, success: bool, steps: int) -> None:
        if self.session is not None:
            self._stats(t)
        self.view.event(t, {"event": "end", "success": success, "steps": steps})

    def _stats(self, t: float) -> None:
        s = self.session
        ctrl = s.sender.controller
        cap = ctrl.capacity_bps(t)
        self.view.tokenizer_stats(
            t,
            {
                "budget_param": ctrl.settings.budget,
                "max_budget": ctrl.settings.max_budget,
                "capacity_kbps": None if cap is None else cap / 1e3,
                "deadline_ms": ctrl.settings.deadline_ms,
                **s.fates.as_dict(),
            },
        )

"""AIMD on the budget, the rule of ROS 2's abr_image_transport."""

from __future__ import annotations

import math
import statistics
from collections import deque

from embodied.control.base import BaseController, ControllerSettings, Feedback


class AimdController(BaseController):
    """Multiplicative increase ×1.5 after a clean window, decrease ×0.7 on trouble.

    Follows abr_image_transport (abr-video-ros, a ROS 2 ``image_transport``
    plugin; ``params/abr_config.yaml``: ``increase_factor: 1.5``,
    ``decrease_factor: 0.7``): its receiver-side monitor keeps the frame
    inter-arrival rates of the last ``stable_window`` (10) frames; a relative
    standard deviation above ``fps_variance_threshold`` (0.8) cuts the bit
    rate, ``stable_window`` stable frames in a row raise it. Here the
    controlled quantity is the budget (bytes are about linear in it), and a
    deadline miss or a loss also counts as trouble. One cut per window: reports
    about packets sent before the last cut are not held against the new budget
    (as TCP reacts once per round trip). It neither predicts latency nor skips.
    """

    name = "aimd"

    def __init__(
        self,
        settings: ControllerSettings | None = None,
        *,
        frame_rate_hz: float = 30.0,
        increase: float = 1.5,
        decrease: float = 0.7,
        window: int = 10,
        jitter_threshold: float = 0.8,
    ) -> None:
        super().__init__(settings, frame_rate_hz=frame_rate_hz)
        if not (increase > 1.0 and 0.0 < decrease < 1.0 and window >= 2):
            raise ValueError("need increase > 1, 0 < decrease < 1, window >= 2")
        self.increase, self.decrease, self.window = increase, decrease, window
        self.jitter_threshold = jitter_threshold
        self._budget = float(self.settings.min_budget)
        self._arrivals: deque[float] = deque(maxlen=window)
        self._stable = 0
        self._last_cut = -math.inf

    def _jittery(self) -> bool:
        a = self._arrivals
        rates = [1.0 / (t1 - t0) for t0, t1 in zip(a, list(a)[1:], strict=False) if t1 > t0]
        if len(rates) < 2:
            return False
        return statistics.pstdev(rates) / statistics.fmean(rates) > self.jitter_threshold

    def _observe(self, feedback: Feedback) -> None:
        fb = feedback
        if fb.status == "sent":
            return
        s = self.settings
        trouble = fb.status == "lost"
        if fb.arrival_time is not None:
            self._arrivals.append(fb.arrival_time)
            trouble = (
                trouble
                or fb.arrival_time - fb.capture_time > s.deadline_ms / 1e3
                or self._jittery()
            )
        if trouble:
            self._stable = 0
            if fb.send_time >= self._last_cut:
                self._budget = max(float(s.min_budget), self._budget * self.decrease)
                self._last_cut = fb.observed_at
        else:
            self._stable += 1
            if self._stable >= self.window:
                self._stable = 0
                self._budget = min(float(s.max_budget), self._budget * self.increase)

    def _decide(self, now: float) -> int:
        s = self.settings
        self._budget = min(max(self._budget, float(s.min_budget)), float(s.max_budget))
        return round(self._budget)

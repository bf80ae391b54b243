"""The fixed-budget baseline."""

from __future__ import annotations

from embodied.control.base import BaseController


class FixedBudget(BaseController):
    """Always the same budget, whatever the link does: ``settings.budget``.

    The operating point of every rate-distortion table (one budget, one rate) and of a
    codec without rate control; the benchmark runs several. The budget is a setting like
    any other (``ControllerSettings.budget``), so it is set one way everywhere: in the
    settings a controller is made with, or live through ``update_settings(budget=...)``
    (the ROS parameter ``budget``). Like every decision it is clamped to
    ``min_budget..max_budget`` and the bit-rate cap.
    """

    name = "fixed"

    def _decide(self, now: float) -> int:
        return self.settings.budget

"""The fixed-budget baseline."""

from __future__ import annotations

from embodied.control.base import BaseController


class FixedBudget(BaseController):
    """Always the same budget, whatever the link does: ``settings.fixed_budget``.

    The operating point of every rate-distortion table (one budget, one rate) and of a
    codec without rate control; the benchmark runs several. The budget is a setting like
    any other (``ControllerSettings.budget``), so it is set one way everywhere: in the
    settings a controller is made with, or live through ``update_settings(budget=...)``
    (the ROS parameter ``budget``; 0 = ``max_budget``). It must lie within
    ``min_budget..max_budget`` (a setting refused otherwise); the bit-rate cap still applies.
    """

    name = "fixed"

    def _decide(self, now: float) -> int:
        return self.settings.fixed_budget

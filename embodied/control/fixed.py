"""The fixed-budget baseline."""

from __future__ import annotations

from embodied.control.base import BaseController, ControllerSettings


class FixedBudget(BaseController):
    """Always the same budget, whatever the link does.

    The operating point of every rate-distortion table (one budget, one
    rate) and of a codec without rate control; the benchmark runs several.
    ``budget`` defaults to the settings' ``max_budget``.
    """

    name = "fixed"

    def __init__(
        self,
        settings: ControllerSettings | None = None,
        *,
        frame_rate_hz: float = 30.0,
        budget: int | None = None,
    ) -> None:
        super().__init__(settings, frame_rate_hz=frame_rate_hz)
        self.budget = self.settings.max_budget if budget is None else int(budget)
        if not 1 <= self.budget <= self.settings.k_max:
            raise ValueError(f"budget={budget} is out of range: allowed 1..{self.settings.k_max}")

    def _decide(self, now: float) -> int:
        return self.budget

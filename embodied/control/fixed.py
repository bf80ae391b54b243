"""The fixed-budget baseline."""

from __future__ import annotations

from typing import Any, ClassVar

from embodied.control.base import SKIP, BaseController, Delegating


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


class EveryNth(Delegating):
    """Another controller's budget on every ``n``-th frame, the rest skipped: the send-interval
    axis of the success curves (``embodied success-curves``, ``embodied eval --intervals``)."""

    name: ClassVar[str] = "every-nth"

    def __init__(self, inner: Any, n: int) -> None:
        if n < 1:
            raise ValueError(f"interval n={n} must be >= 1")
        super().__init__(inner)
        self.n, self._frame = int(n), 0

    def next_budget(self, now: float, *, keyframe: bool = True) -> int:
        k = self.inner.next_budget(now, keyframe=keyframe)
        send = self._frame % self.n == 0
        self._frame += 1
        return k if send else SKIP

"""A clairvoyant controller: the ceiling for evaluation, never for deployment."""

from __future__ import annotations

from typing import Protocol

from embodied.control.base import SKIP, BaseController, ControllerSettings


class Clairvoyant(Protocol):
    """The simulator's view of the future: exact arrival of this frame at budget k."""

    def latency_if(self, now: float, budget: int) -> float | None:
        """Capture-to-arrival latency if the current frame were sent at ``budget``;
        None if the queue would drop it."""
        ...


class OracleController(BaseController):
    """Knows the future trace, the queue and this frame's exact size and compute time.

    Greedy per frame: the largest budget whose exact latency fits the deadline,
    else skip the frame. It is the upper bound used in evaluation (as ABR
    papers report an offline optimum beside RobustMPC, Yin et al. SIGCOMM 2015),
    not a global optimum over the whole trace.
    """

    name = "oracle"

    def __init__(
        self,
        settings: ControllerSettings | None = None,
        *,
        frame_rate_hz: float = 30.0,
        world: Clairvoyant,
    ) -> None:
        super().__init__(settings, frame_rate_hz=frame_rate_hz)
        self.world = world

    def _fits(self, now: float, k: int) -> bool:
        latency = self.world.latency_if(now, k)
        return latency is not None and latency <= self.settings.deadline_ms / 1e3

    def _decide(self, now: float) -> int:
        lo, hi = self.settings.min_budget, self.cap_budget()
        if not self._fits(now, lo):
            return SKIP
        while lo < hi:  # largest k that fits; latency grows with k
            mid = (lo + hi + 1) // 2
            if self._fits(now, mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

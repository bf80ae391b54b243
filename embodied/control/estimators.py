"""Small online estimators the controllers share."""

from __future__ import annotations

import math
from collections import deque


class OnlineLinear:
    """``y ≈ a + b·k`` learned online: exponentially forgetting least squares, ridge to a prior.

    The prior is worth ``prior_weight`` observations at each of k = 1 and
    k = 64, so the slope stays sensible while a controller sits at one budget.
    ``predict(k, z)`` adds ``z`` standard deviations of the *relative* residual
    (content makes sizes vary in proportion to the size), for a conservative
    (upper) prediction. The residual spread starts from ``prior_residual`` (worth
    ``prior_residual_weight`` samples) and each sample's relative residual is clipped
    to ±``max_residual``: otherwise the very first packet, judged against the prior
    alone, would read as a 100% error and inflate the upper prediction for hundreds of
    frames (a controller that then believes its smallest packet is 4× too big skips
    frames it could have sent).
    """

    def __init__(
        self,
        prior_intercept: float,
        prior_slope: float,
        prior_weight: float = 0.2,
        forget: float = 0.995,
        prior_residual: float = 0.1,
        prior_residual_weight: float = 4.0,
        max_residual: float = 0.5,
    ) -> None:
        self.forget = forget
        self._n = self._sk = self._skk = self._sy = self._sky = 0.0
        self._prior = []
        for k in (1.0, 64.0):
            self._prior.append((k, prior_intercept + prior_slope * k, prior_weight))
        self._res_n = prior_residual_weight
        self._res_ss = prior_residual_weight * prior_residual**2
        self.max_residual = max_residual
        self._seen = 0
        self.a, self.b = prior_intercept, prior_slope

    def update(self, k: float, y: float) -> None:
        pred = self.a + self.b * k
        resid = (y - pred) / max(abs(pred), 1e-12)
        resid = max(-self.max_residual, min(self.max_residual, resid))
        f = self.forget
        if self._seen:  # the first sample is judged against the prior only: no evidence
            self._res_n = f * self._res_n + 1.0
            self._res_ss = f * self._res_ss + resid * resid
        self._seen += 1
        self._n = f * self._n + 1.0
        self._sk = f * self._sk + k
        self._skk = f * self._skk + k * k
        self._sy = f * self._sy + y
        self._sky = f * self._sky + k * y
        n, sk, skk, sy, sky = self._n, self._sk, self._skk, self._sy, self._sky
        for pk, py, w in self._prior:
            n += w
            sk += w * pk
            skk += w * pk * pk
            sy += w * py
            sky += w * pk * py
        det = n * skk - sk * sk
        if det > 1e-12:
            self.b = (n * sky - sk * sy) / det
            self.a = (sy - self.b * sk) / n

    @property
    def residual_std(self) -> float:
        """Standard deviation of the relative residual."""
        return math.sqrt(self._res_ss / self._res_n) if self._res_n > 0 else 0.0

    def predict(self, k: float, z: float = 0.0) -> float:
        return (self.a + self.b * k) * (1.0 + z * self.residual_std)


class SlidingMin:
    """Minimum of timed samples over the last ``window`` seconds (monotone deque).

    Each sample may carry a payload, returned with the minimum.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._q: deque[tuple[float, float, float]] = deque()

    def add(self, t: float, value: float, payload: float = 0.0) -> None:
        q = self._q
        while q and q[-1][1] >= value:
            q.pop()
        q.append((t, value, payload))
        while q[0][0] < t - self.window:
            q.popleft()

    def value(self) -> float | None:
        return self._q[0][1] if self._q else None

    def value_at(self, now: float) -> float | None:
        """The minimum over the window ending at ``now`` (older samples dropped), or None."""
        q = self._q
        while q and q[0][0] < now - self.window:
            q.popleft()
        return q[0][1] if q else None

    def payload(self) -> float | None:
        return self._q[0][2] if self._q else None


def harmonic_mean(values: deque[float] | list[float]) -> float:
    return len(values) / sum(1.0 / v for v in values)

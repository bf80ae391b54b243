"""Success statistics: rates with Wilson 95% intervals, vision gain."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    successes: int
    n: int

    @property
    def value(self) -> float:
        return self.successes / self.n if self.n else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n)

    @property
    def half_width(self) -> float:
        lo, hi = self.ci95
        return (hi - lo) / 2

    def __str__(self) -> str:
        lo, hi = self.ci95
        return f"{100 * self.value:5.1f}% [{100 * lo:.0f}, {100 * hi:.0f}] (n={self.n})"


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval: well behaved at 0% and 100%, unlike the normal approximation."""
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..n ({n}), got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def vision_gain(success: float, blind: float, clean: float) -> float:
    """Share of what vision adds that survives: (success − blind) / (clean − blind)."""
    if clean <= blind:
        return float("nan")
    return (success - blind) / (clean - blind)

"""Success statistics (rates with Wilson 95% intervals, vision gain) and image distortion (PSNR)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: PSNR of identical images (dB): finite, so that means over frames stay finite
PSNR_CAP = 100.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of two images of one shape (uint8: ``peak`` 255),
    ``10 log10(peak² / MSE)`` over every pixel and channel, capped at :data:`PSNR_CAP`.

    The one PSNR of the project: the codec ladders pick rungs with it, the rate-distortion
    report and the codec benchmark report it, so the same images give the same number.
    """
    if a.shape != b.shape:
        raise ValueError(f"psnr of images of different shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


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

"""Procedural table and background textures, shipped as PNG package data (sim/assets/textures).

Regenerate (deterministic, same bytes each run)::

    python -m sim.cluttered.textures
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.cluttered.spec import N_TEXTURES

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "textures"
SIZE = 128


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    import cv2

    g = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.uniform(0.15, 0.85, 3)
    b = np.clip(a + rng.uniform(-0.35, 0.35, 3), 0, 1)
    return a, b


def pattern(kind: int, rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """One texture (H, W, 3) uint8; ``kind`` cycles through eight families."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    a, b = _palette(rng)
    k = kind % 8
    if k == 0:  # wood grain
        n = _smooth_noise(rng, size, 6)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (x * rng.integers(6, 14) + 2.5 * n))
    elif k == 1:  # checker
        f = int(rng.integers(4, 10))
        t = ((np.floor(x * f) + np.floor(y * f)) % 2).astype(np.float32)
    elif k == 2:  # speckle / granite
        t = rng.random((size, size)).astype(np.float32) * 0.6 + 0.4 * _smooth_noise(rng, size, 16)
    elif k == 3:  # stripes
        f = int(rng.integers(5, 16))
        t = (np.sin(2 * np.pi * f * (x + y * rng.uniform(-0.5, 0.5))) > 0).astype(np.float32)
    elif k == 4:  # marble
        n = _smooth_noise(rng, size, 5) + 0.5 * _smooth_noise(rng, size, 11)
        t = np.abs(np.sin(2 * np.pi * (x + y + 2 * n)))
    elif k == 5:  # plaid
        f, g = int(rng.integers(3, 8)), int(rng.integers(3, 8))
        t = 0.5 * (np.sin(2 * np.pi * f * x) > 0.6) + 0.5 * (np.sin(2 * np.pi * g * y) > 0.6)
    elif k == 6:  # blotches (camouflage)
        t = (_smooth_noise(rng, size, 8) > 0.5).astype(np.float32) * 0.7 + 0.3 * _smooth_noise(
            rng, size, 24
        )
    else:  # tiles with grout
        f = int(rng.integers(3, 7))
        gx, gy = (x * f) % 1, (y * f) % 1
        grout = (gx < 0.06) | (gy < 0.06)
        t = np.where(grout, 0.0, 0.6 + 0.4 * _smooth_noise(rng, size, 10)).astype(np.float32)
    t = np.clip(t, 0, 1)[..., None]
    img = a[None, None] * (1 - t) + b[None, None] * t
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def texture_paths() -> dict[str, list[Path]]:
    return {
        role: [ASSETS / f"{role}_{i}.png" for i in range(N_TEXTURES)] for role in ("table", "wall")
    }


def generate(out: Path = ASSETS) -> list[Path]:
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for r, role in enumerate(("table", "wall")):
        for i in range(N_TEXTURES):
            rng = np.random.default_rng([0x7E47, r, i])
            img = pattern(i + 3 * r, rng)
            path = out / f"{role}_{i}.png"
            cv2.imwrite(str(path), img[..., ::-1])
            written.append(path)
    return written


if __name__ == "__main__":
    for p in generate():
        print(p)

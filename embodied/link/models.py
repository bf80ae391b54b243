"""What a frame at budget k costs: packet bytes and encoder compute time.

The link simulator needs only these two numbers per frame. Until the learned
tokenizer has measured its own table, a stated linear model stands in:

* ``bytes(k) = 7 + ceil(0.9 · k · u)``: a 7-byte packet header plus about 0.9
  bytes per entropy-coded token; ``u`` is a per-frame content factor,
  log-normal with mean 1 and σ = 0.1 (how much harder some frames are to code).
  k = 1 gives 8 bytes, k = 64 about 65.
* ``compute(k) = (1.0 ms + 0.02 ms · k) · v``: encoder time, ``v`` log-normal with
  mean 1 and σ = 0.2.

A measured table (``{"budget": [...], "bytes": [...]}``) replaces the linear
bytes model; sizes between listed budgets are interpolated linearly and the
same content factor applies. A table of a codec that codes across frames
(``tokens-inter``) adds ``"inter_bytes"`` (a predicted frame's packet at each
budget, compact header included) and ``"keyframe_interval"``; which frames are
keyframes is then the stream's business (``embodied.interframe.KeyframeSchedule``:
start, losses, requests, interval), and ``packet_bytes(k, i, keyframe=...)``
answers for the kind asked. The noise of frame ``i`` is the ``i``-th draw of
a generator seeded once, so every controller sees the same frame content.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


class _FrameNoise:
    """Per-frame log-normal factors with mean 1, drawn in order from one seed."""

    def __init__(self, sigma: float, seed: int) -> None:
        self.sigma = sigma
        self._rng = np.random.default_rng(seed)
        self._values = np.empty(0)

    def __call__(self, frame: int) -> float:
        if self.sigma == 0:
            return 1.0
        while frame >= len(self._values):
            z = self._rng.standard_normal(4096)
            block = np.exp(self.sigma * z - self.sigma**2 / 2)
            self._values = np.concatenate([self._values, block])
        return float(self._values[frame])


class SizeModel(Protocol):
    @property
    def description(self) -> str: ...

    def packet_bytes(self, budget: int, frame: int, *, keyframe: bool = True) -> int:
        """Packet bytes (header included, transport overhead excluded) of frame ``frame``, coded
        on its own (``keyframe``) or predicted from a reference the receiver holds."""
        ...


@dataclass
class LinearSizeModel:
    header_bytes: int = 7
    bytes_per_token: float = 0.9
    jitter: float = 0.1
    seed: int = 0
    _noise: _FrameNoise = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._noise = _FrameNoise(self.jitter, self.seed)

    @property
    def description(self) -> str:
        return (
            f"linear: bytes(k) = {self.header_bytes} + ceil({self.bytes_per_token}·k·u), "
            f"u log-normal mean 1 σ={self.jitter}"
        )

    def packet_bytes(self, budget: int, frame: int, *, keyframe: bool = True) -> int:
        del keyframe  # intra: every frame is coded on its own
        body = self.bytes_per_token * budget * self._noise(frame)
        return self.header_bytes + max(1, math.ceil(body - 1e-9))


@dataclass
class TableSizeModel:
    budgets: tuple[int, ...]
    bytes: tuple[float, ...]
    jitter: float = 0.1
    seed: int = 0
    source: str = "table"
    _noise: _FrameNoise = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.budgets) != len(self.bytes) or not self.budgets:
            raise ValueError("size table: 'budget' and 'bytes' must be non-empty and equally long")
        if any(b <= a for a, b in zip(self.budgets, self.budgets[1:], strict=False)):
            raise ValueError(
                f"size table: budgets must increase strictly, got {list(self.budgets)}"
            )
        if any(not (math.isfinite(b) and b > 0) for b in self.bytes):
            raise ValueError("size table: bytes must be positive numbers")
        self._noise = _FrameNoise(self.jitter, self.seed)

    @classmethod
    def from_json(cls, path: str | Path, jitter: float = 0.1, seed: int = 0) -> TableSizeModel:
        """A table file; one with ``inter_bytes`` gives an :class:`InterTableSizeModel`."""
        data = json.loads(Path(path).read_text())
        try:
            budgets, sizes = data["budget"], data["bytes"]
        except (KeyError, TypeError):
            raise ValueError(f"{path}: expected {{'budget': [...], 'bytes': [...]}}") from None
        ks = tuple(int(b) for b in budgets)
        if isinstance(data, dict) and "inter_bytes" in data:
            inter = tuple(float(s) for s in data["inter_bytes"])
            if len(inter) != len(ks):
                raise ValueError(f"{path}: 'inter_bytes' must be as long as 'budget'")
            return InterTableSizeModel(
                ks, tuple(float(s) for s in sizes), jitter, seed, str(path), inter_bytes=inter,
                keyframe_interval=int(data.get("keyframe_interval", 90)),
            )  # fmt: skip
        return cls(ks, tuple(float(s) for s in sizes), jitter, seed, str(path))

    @property
    def description(self) -> str:
        return f"measured table {self.source} ({len(self.budgets)} budgets), u σ={self.jitter}"

    def mean_bytes(self, budget: int) -> float:
        return float(np.interp(budget, self.budgets, self.bytes))

    def packet_bytes(self, budget: int, frame: int, *, keyframe: bool = True) -> int:
        del keyframe  # intra: every frame is coded on its own
        return max(1, round(self.mean_bytes(budget) * self._noise(frame)))


@dataclass
class InterTableSizeModel(TableSizeModel):
    """A measured table of a codec across frames: keyframe and predicted-frame bytes."""

    inter_bytes: tuple[float, ...] = ()
    keyframe_interval: int = 90

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.inter_bytes) != len(self.budgets):
            raise ValueError("size table: 'inter_bytes' must be as long as 'budget'")
        if any(not (math.isfinite(b) and b > 0) for b in self.inter_bytes):
            raise ValueError("size table: inter_bytes must be positive numbers")
        if self.keyframe_interval < 1:
            raise ValueError(f"keyframe_interval={self.keyframe_interval} must be >= 1")

    @property
    def description(self) -> str:
        return (
            f"measured table {self.source} ({len(self.budgets)} budgets, keyframes and predicted "
            f"frames, a keyframe at least every {self.keyframe_interval}), u σ={self.jitter}"
        )

    def mean_inter_bytes(self, budget: int) -> float:
        return float(np.interp(budget, self.budgets, self.inter_bytes))

    def packet_bytes(self, budget: int, frame: int, *, keyframe: bool = True) -> int:
        mean = self.mean_bytes(budget) if keyframe else self.mean_inter_bytes(budget)
        return max(1, round(mean * self._noise(frame)))


@dataclass
class ComputeModel:
    base_ms: float = 1.0
    per_token_ms: float = 0.02
    jitter: float = 0.2
    seed: int = 1
    _noise: _FrameNoise = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._noise = _FrameNoise(self.jitter, self.seed)

    @property
    def description(self) -> str:
        return f"compute(k) = ({self.base_ms} ms + {self.per_token_ms} ms·k)·v, v log-normal σ={self.jitter}"

    def seconds(self, budget: int, frame: int) -> float:
        return (self.base_ms + self.per_token_ms * budget) * 1e-3 * self._noise(frame)

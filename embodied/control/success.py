"""Success-aware control: the budget, and whether to send this frame at all, that maximise
the task's expected success on the link as it is estimated now.

The deadline-aware controller spends every bit the deadline allows; success stops rising long
before (on the one-object suite one token is enough), and on a narrow link those bits are
queueing delay. This controller instead maximises the expected success of the policy
downstream, from curves measured in closed loop with the tokenizer and policy
(``success_curves.json`` beside the policy, ``embodied success-curves``):

* ``S_k(k)``: success against the budget on the ideal link;
* ``S_d(d)``: success against an added one-way delay d (k = 1, every frame sent);
* ``S_n(n)``: success when only every n-th frame is sent (k = 1, ideal link).

Delay and interval act as the share of success they keep, and the factors multiply (a separable
model, measured one axis at a time)::

    U(k, n) = S_k(k) · S_d(latency(k)) / S_d(0) · S_n(n) / S_n(1)

Not the blind policy's success as a floor: the policy downstream acts on the frames it gets and
holds between them, so sending (almost) nothing costs success down to zero (S_n at 32 frames
apart is 4.5%, under the blind policy's 29.5%), and the controller keeps sending what it can.

For every frame it considers every budget k in ``min..max`` and send interval n, keeps the
plans whose rate ``bytes(k)·8·fps/n`` stays under ``utilization`` of the estimated capacity (and
the bit-rate cap), predicts each plan's latency (propagation + queue + transmission + compute, the
deadline-aware controller's estimators: RobustMPC capacity, overdue reports), and picks the plan
of highest U, the cheaper one among plans within ``tolerance`` of the best. The frame goes out
when the plan's interval has passed since the last frame sent, at the plan's budget; otherwise it
is skipped (a deadline miss: the policy acts on the last frame it has). This is Salsify's rule
(Fouladi et al., "Salsify: Low-Latency Network Video through Tighter Integration between a Video
Codec and a Transport Protocol", NSDI 2018: send a frame only when the network can take it, at
the size that fits) with the utility of utility-maximising bit-rate adaptation (BOLA, Spiteri et
al., INFOCOM 2016) made task success instead of video quality: L = R + λ·D with D the loss of
success.

Settings are the same as every controller's: ``min_budget`` / ``max_budget`` bound k,
``bitrate_cap_kbps`` bounds the plan's mean rate, ``mode: hold`` holds the budget (sending every
frame), and ``deadline_ms`` bounds the **queueing** the sender causes (the wait behind its own
packets still in flight; not the transmission of one packet or the propagation, which no sender
can shorten): a frame that would wait longer is skipped.
Two late reports in a row halve the capacity it plans with (the deadline-aware controller's
back-off); where no plan is sustainable (an outage) it sends a minimum-budget probe now and then.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.control.base import SKIP, ControllerSettings
from embodied.control.deadline import DeadlineAwareController

SUCCESS_CURVES_FILE = "success_curves.json"


def curves_file(proprio: str = "capture") -> str:
    """The curves file of a proprioception pairing (``embodied.pipeline.PROPRIO_PAIRINGS``): the
    policy's success against delay depends on which robot state it reads beside a frame."""
    return SUCCESS_CURVES_FILE if proprio == "capture" else f"success_curves.{proprio}.json"


DEFAULT_INTERVALS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


class SuccessCurvesError(ValueError):
    """``success_curves.json`` is missing or malformed."""


@dataclass(frozen=True)
class SuccessCurves:
    """Measured success curves of one tokenizer + policy (``embodied success-curves``).

    ``success[task]`` per ``budgets``; ``success_delay[task]`` per ``delays_ms`` and
    ``success_interval[task]`` per ``intervals`` (both at budget ``budgets[0]``); ``blind[task]``
    the blind policy's success; task ``"all"`` is the suite's mean and the fallback."""

    budgets: tuple[int, ...]
    success: dict[str, tuple[float, ...]]
    delays_ms: tuple[float, ...]
    success_delay: dict[str, tuple[float, ...]]
    intervals: tuple[int, ...]
    success_interval: dict[str, tuple[float, ...]]
    blind: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> SuccessCurves:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise SuccessCurvesError(
                f"{path}: missing; measure it with `embodied success-curves`"
            ) from None
        except json.JSONDecodeError as err:
            raise SuccessCurvesError(f"{path}: not JSON ({err})") from None
        try:
            out = cls(
                budgets=tuple(int(k) for k in d["budgets"]),
                success={t: tuple(map(float, v)) for t, v in d["success"].items()},
                delays_ms=tuple(float(x) for x in d["delays_ms"]),
                success_delay={t: tuple(map(float, v)) for t, v in d["success_delay"].items()},
                intervals=tuple(int(n) for n in d["intervals"]),
                success_interval={
                    t: tuple(map(float, v)) for t, v in d["success_interval"].items()
                },
                blind={t: float(v) for t, v in d["blind"].items()},
                meta=dict(d.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise SuccessCurvesError(f"{path}: malformed ({err!r})") from None
        out.check(str(path))
        return out

    def check(self, where: str = "success curves") -> None:
        axes = (("success", self.success, self.budgets),
                ("success_delay", self.success_delay, self.delays_ms),
                ("success_interval", self.success_interval, self.intervals))  # fmt: skip
        for name, table, axis in axes:
            if "all" not in table:
                raise SuccessCurvesError(f"{where}: {name} has no 'all' entry")
            if list(axis) != sorted(axis) or len(set(axis)) != len(axis) or not axis:
                raise SuccessCurvesError(f"{where}: the axis of {name} must increase")
            for task, v in table.items():
                if len(v) != len(axis) or not all(0.0 <= x <= 1.0 for x in v):
                    raise SuccessCurvesError(f"{where}: {name}[{task!r}] must be {len(axis)} "
                                             "rates in [0, 1]")  # fmt: skip
        if self.delays_ms[0] != 0 or self.intervals[0] != 1:
            raise SuccessCurvesError(f"{where}: delays must start at 0 and intervals at 1")
        if "all" not in self.blind:
            raise SuccessCurvesError(f"{where}: blind has no 'all' entry")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        body = {"budgets": list(self.budgets), "success": self.success,
                "delays_ms": list(self.delays_ms), "success_delay": self.success_delay,
                "intervals": list(self.intervals), "success_interval": self.success_interval,
                "blind": self.blind, "meta": self.meta}  # fmt: skip
        path.write_text(json.dumps(body, indent=1) + "\n")
        return path

    # -- the model ----------------------------------------------------------------------
    def _row(self, table: dict[str, tuple[float, ...]], task: str | None) -> np.ndarray:
        return np.asarray(table.get(task or "all", table["all"]), float)

    def _blind(self, task: str | None) -> float:
        return self.blind.get(task or "all", self.blind["all"])

    def _ratio(self, axis: tuple[float, ...], row: np.ndarray, x: float) -> float:
        """Success at ``x`` over success at the axis' origin (interpolated, on the envelope
        from the origin on, so a noisy point never makes more delay or a longer interval
        better)."""
        env = np.minimum.accumulate(row)  # more delay / a longer interval never helps
        s = float(np.interp(x, np.asarray(axis, float), env))
        return 0.0 if env[0] <= 1e-9 else float(np.clip(s / env[0], 0.0, 1.0))

    def expected(
        self, budget: int, latency_ms: float, interval: int, task: str | None = None
    ) -> float:
        """U(k, n): expected success at budget k, one-way latency and send interval n."""
        s_k = float(np.interp(math.log2(budget), np.log2(self.budgets),
                              np.maximum.accumulate(self._row(self.success, task))))  # fmt: skip
        r_d = self._ratio(self.delays_ms, self._row(self.success_delay, task), latency_ms)
        r_n = self._ratio(tuple(map(float, self.intervals)),
                          self._row(self.success_interval, task), float(interval))  # fmt: skip
        return s_k * r_d * r_n


def default_curves() -> SuccessCurves:
    """The curves shipped with the default policy (``embodied/models/vla-task``)."""
    from embodied.modelfiles import MODELS_DIR

    return SuccessCurves.load(MODELS_DIR / "vla-task" / SUCCESS_CURVES_FILE)


class SuccessAwareController(DeadlineAwareController):
    """The plan (budget, send interval) of highest expected task success the link sustains."""

    name = "success"

    def __init__(
        self,
        settings: ControllerSettings | None = None,
        *,
        frame_rate_hz: float = 30.0,
        curves: SuccessCurves | str | Path | None = None,
        task: str | None = None,
        intervals: tuple[int, ...] = DEFAULT_INTERVALS,
        utilization: float = 0.85,
        tolerance: float = 0.005,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, frame_rate_hz=frame_rate_hz, **kwargs)
        if not 0 < utilization <= 1:
            raise ValueError(f"utilization={utilization} must be in (0, 1]")
        if not intervals or min(intervals) < 1:
            raise ValueError(f"intervals={intervals} must be positive")
        if curves is None:
            curves = default_curves()
        elif not isinstance(curves, SuccessCurves):
            curves = SuccessCurves.load(curves)
        self.curves = curves
        self.task = task
        self.intervals = tuple(sorted(set(int(n) for n in intervals)))
        self.utilization = float(utilization)
        self.tolerance = float(tolerance)
        self._last_plan_send = -math.inf
        self.plan: tuple[int, int, float] | None = None  # (budget, interval, expected success)

    def _min_rate_bps(self) -> float:
        """The slowest plan's rate (minimum budget, longest interval): what the link must carry
        to count as up, and the capacity assumed before any sample. (The deadline-aware
        controller takes the minimum budget at every frame, which a narrowband link is below:
        its every sample would read as an outage.)"""
        per_frame = self.predicted_wire_bytes(self.settings.min_budget) * 8.0 * self.frame_rate_hz
        return per_frame / max(self.intervals)

    def _candidates(self) -> list[int]:
        s = self.settings
        lo, hi = s.min_budget, s.max_budget
        ks = {lo, hi} | {k for k in self.curves.budgets if lo <= k <= hi}
        return sorted(ks)

    def choose(self, now: float, capacity: float | None = None) -> tuple[int, int, float] | None:
        """The best plan (budget, interval, U) the link sustains now, or None."""
        s = self.settings
        c = self.capacity_now(now) if capacity is None else capacity
        limit = self.utilization * c
        if s.bitrate_cap_kbps > 0:
            limit = min(limit, s.bitrate_cap_kbps * 1e3)
        # one-way propagation: the size-pair estimate once there is one, else the smallest
        # delay seen less one minimum packet's transmission (that delay includes it)
        wire_min = self.predicted_wire_bytes(s.min_budget)
        prop = (self.prop_low() if self._prop_samples
                else max(0.0, self.prop_high() - wire_min * 8.0 / c))  # fmt: skip
        fps = self.frame_rate_hz
        plans = []
        for k in self._candidates():
            wire = self.predicted_wire_bytes(k, self.size_z)
            send = wire * 8.0 / c + self.predicted_compute_s(k, self.compute_z)
            for n in self.intervals:
                rate = wire * 8.0 * fps / n
                if rate > limit:
                    continue
                age_ms = (prop + send) * 1e3
                u = self.curves.expected(k, age_ms, n, self.task)
                plans.append((u, -rate, k, n))
        if not plans:
            return None
        best_u = max(p[0] for p in plans)
        near = [p for p in plans if p[0] >= best_u - self.tolerance]
        u, _, k, n = max(near, key=lambda p: (p[1], p[0]))  # the cheapest of the best plans
        return k, n, u

    def _decide(self, now: float) -> int:
        s = self.settings
        c = self.capacity_now(now)
        if self.overdue_reports(now) >= 2:  # the link slowed by an unknown factor: back off
            c *= self.overdue_backoff
        plan = self.choose(now, c)
        if plan is None:  # nothing sustainable (an outage): a minimum-budget probe now and then
            probe = (
                len(self._inflight) < self.max_probes_in_flight
                and now - self._last_plan_send >= self.probe_interval_s * max(self.intervals)
            )
            if probe:
                self._last_plan_send = now
                return s.min_budget
            return SKIP
        self.plan = plan
        k, n, _ = plan
        if now - self._last_plan_send < (n - 0.5) / self.frame_rate_hz:
            return SKIP
        if self.queue_wait(now, c) > s.deadline_ms / 1e3:
            return SKIP  # the frames already sent would hold this one longer than the deadline
        self._last_plan_send = now
        return k

    def queue_wait(self, now: float, capacity: float) -> float:
        """How long a frame sent now would wait behind the packets still in flight."""
        free = -math.inf if self._prev is None else self._prev.arrival - self.prop_low()
        for send, wire in self._inflight.values():
            free = max(free, send) + wire * 8.0 / capacity
        return max(0.0, free - now)


__all__ = [
    "SUCCESS_CURVES_FILE",
    "SuccessAwareController",
    "SuccessCurves",
    "SuccessCurvesError",
    "default_curves",
]

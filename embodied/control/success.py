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

from embodied.control.base import SKIP, ControllerSettings, Feedback
from embodied.control.deadline import DeadlineAwareController
from embodied.control.estimators import SlidingMin

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
    # optional: success over the (delay, interval) grid at budgets[0], rows by delay; where
    # present it replaces the product of the two one-axis shares (their interaction measured)
    grid_delays_ms: tuple[float, ...] = ()
    grid_intervals: tuple[int, ...] = ()
    success_grid: dict[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)

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
                grid_delays_ms=tuple(float(x) for x in d.get("grid_delays_ms", ())),
                grid_intervals=tuple(int(n) for n in d.get("grid_intervals", ())),
                success_grid={
                    t: tuple(tuple(map(float, r)) for r in v)
                    for t, v in d.get("success_grid", {}).items()
                },
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
        if self.success_grid or self.grid_delays_ms or self.grid_intervals:
            gd, gn = self.grid_delays_ms, self.grid_intervals
            if not gd or not gn or gd[0] != 0 or gn[0] != 1 or list(gd) != sorted(set(gd)) \
                    or list(gn) != sorted(set(gn)):  # fmt: skip
                raise SuccessCurvesError(f"{where}: the grid's axes must increase from 0 ms "
                                         "and interval 1")  # fmt: skip
            if "all" not in self.success_grid:
                raise SuccessCurvesError(f"{where}: success_grid has no 'all' entry")
            for task, g in self.success_grid.items():
                if (
                    len(g) != len(gd)
                    or any(len(r) != len(gn) for r in g)
                    or not all(0.0 <= x <= 1.0 for r in g for x in r)
                ):
                    raise SuccessCurvesError(f"{where}: success_grid[{task!r}] must be "
                                             f"{len(gd)} x {len(gn)} rates in [0, 1]")  # fmt: skip

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        body = {"budgets": list(self.budgets), "success": self.success,
                "delays_ms": list(self.delays_ms), "success_delay": self.success_delay,
                "intervals": list(self.intervals), "success_interval": self.success_interval,
                "blind": self.blind, "meta": self.meta}  # fmt: skip
        if self.success_grid:
            body.update(grid_delays_ms=list(self.grid_delays_ms),
                        grid_intervals=list(self.grid_intervals),
                        success_grid={t: [list(r) for r in g]
                                      for t, g in self.success_grid.items()})  # fmt: skip
        path.write_text(json.dumps(body, indent=1) + "\n")
        return path

    # -- the model ----------------------------------------------------------------------
    #: A task's row is shrunk towards the suite's ("all") as if the suite's curve were this
    #: many episodes of the task (empirical Bayes, a Beta prior centred on the suite's
    #: mean): two episodes a point make a task's own row 0, 0.5 or 1, a coin and not a curve.
    PRIOR_EPISODES = 8.0

    def _row(self, table: dict[str, Any], task: str | None) -> np.ndarray:
        pooled = np.asarray(table["all"], float)
        if task is None or task == "all" or task not in table:
            return pooled
        n = float(self.meta.get("episodes_per_task_per_point", 0) or 0)
        own = np.asarray(table[task], float)
        return (n * own + self.PRIOR_EPISODES * pooled) / (n + self.PRIOR_EPISODES)

    def _blind(self, task: str | None) -> float:
        return self.blind.get(task or "all", self.blind["all"])

    def _ratio(self, axis: tuple[float, ...], row: np.ndarray, x: float) -> float:
        """Success at ``x`` over success at the axis' origin (interpolated, on the envelope
        from the origin on, so a noisy point never makes more delay or a longer interval
        better)."""
        env = np.minimum.accumulate(row)  # more delay / a longer interval never helps
        s = float(np.interp(x, np.asarray(axis, float), env))
        return 0.0 if env[0] <= 1e-9 else float(np.clip(s / env[0], 0.0, 1.0))

    def _grid_ratio(self, latency_ms: float, interval: float, task: str | None) -> float:
        """The share of success kept at (delay, interval) on the measured grid: bilinear on
        its envelope (more delay or a longer interval never helps), over its (0, 1) corner;
        past the grid's longest interval, times the interval curve's further share."""
        g = self._row(self.success_grid, task)
        env = np.minimum.accumulate(np.minimum.accumulate(g, axis=0), axis=1)
        if env[0, 0] <= 1e-9:
            return 0.0
        gd = np.asarray(self.grid_delays_ms, float)
        gn = np.asarray(self.grid_intervals, float)
        n_in = min(interval, float(gn[-1]))
        by_delay = np.array([np.interp(n_in, gn, env[i]) for i in range(len(gd))])
        share = float(np.interp(latency_ms, gd, by_delay)) / float(env[0, 0])
        if interval > gn[-1]:
            axis = tuple(map(float, self.intervals))
            row = self._row(self.success_interval, task)
            far, edge = self._ratio(axis, row, interval), self._ratio(axis, row, float(gn[-1]))
            share *= 0.0 if edge <= 1e-9 else far / edge
        return float(np.clip(share, 0.0, 1.0))

    def expected(
        self, budget: int, latency_ms: float, interval: int, task: str | None = None
    ) -> float:
        """U(k, n): expected success at budget k, one-way latency and send interval n."""
        s_k = float(np.interp(math.log2(budget), np.log2(self.budgets),
                              np.maximum.accumulate(self._row(self.success, task))))  # fmt: skip
        if self.success_grid:
            return s_k * self._grid_ratio(latency_ms, float(interval), task)
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
        self._last_pair_try = -math.inf
        self.pairs_sent = 0  # frames dithered to another size (propagation probes)
        self._min_delay_by_size: dict[int, SlidingMin] = {}  # wire bytes -> min one-way delay
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
            # (nothing heard yet: a cold start, not an outage; probe as the deadline-aware does)
            every = self.probe_interval_s * (max(self.intervals) if self._samples else 2)
            probe = (
                len(self._inflight) < self.max_probes_in_flight
                and now - self._last_plan_send >= every
            )
            if probe:
                self._last_plan_send = now
                return self._dither(now, s.min_budget)
            return SKIP
        self.plan = plan
        k, n, _ = plan
        if now - self._last_plan_send < (n - 0.5) / self.frame_rate_hz:
            return SKIP
        if self.queue_wait(now, c) > s.deadline_ms / 1e3:
            return SKIP  # the frames already sent would hold this one longer than the deadline
        self._last_plan_send = now
        return self._dither(now, k)

    def _dither(self, now: float, k: int) -> int:
        """The budget of a frame the plan sends: ``k``, or now and then (every 0.5 s until the
        propagation is known from 4 estimates, then every 5 s) a clearly different size.

        Without the propagation every capacity sample counts it as transmission: on a link of
        seconds of propagation and a few kbit/s that under-read the capacity ~30x and left no
        plan sustainable. The deadline-aware controller learns it from size pairs (two idle
        packets of different sizes within 0.1 s), which a plan sending every n-th frame never
        sends, and an extra frame sent for a pair queues behind the first on a narrow link;
        so the minimum one-way delay is kept per packet size over the delay window instead,
        and two sizes' minima give the propagation (:meth:`_observe`:
        ``d = prop + bytes·8 / C`` at the link's best)."""
        every = 0.5 if len(self._prop_samples) < 4 else 5.0
        if now - max(self._last_pair, self._last_pair_try) <= every:
            return k
        s = self.settings
        wire_k = self.predicted_wire_bytes(k)
        # a clear difference (6x the pair's minimum: predicted frames come out smaller than
        # predicted, and the delays differ by only bytes·8 / C), else the most there is
        need = 6 * self.pair_min_bytes
        bigger = [j for j in range(k + 1, s.max_budget + 1)
                  if self.predicted_wire_bytes(j) - wire_k >= need]  # fmt: skip
        smaller = [j for j in range(s.min_budget, k)
                   if wire_k - self.predicted_wire_bytes(j) >= need]  # fmt: skip
        other = bigger[0] if bigger else (smaller[-1] if smaller else None)
        if other is None and k < s.max_budget:
            other = s.max_budget
        if other is None:
            return k
        self._last_pair_try = now
        self.pairs_sent += 1
        return other

    def _observe(self, feedback: Feedback) -> None:
        super()._observe(feedback)
        fb = feedback
        if fb.status != "delivered" or fb.arrival_time is None:
            return
        delay = fb.arrival_time - fb.send_time
        by_size = self._min_delay_by_size
        if fb.wire_bytes not in by_size:
            by_size[fb.wire_bytes] = SlidingMin(self._min_delay.window)
            while len(by_size) > 64:  # the oldest sizes go first
                del by_size[next(iter(by_size))]
        by_size[fb.wire_bytes].add(fb.arrival_time, delay)
        # the smallest and the largest size seen within the window, by their minimum delays
        fresh = {w: d for w, m in by_size.items() if (d := m.value_at(fb.arrival_time)) is not None}
        if len(fresh) < 2:
            return
        w_a, w_b = min(fresh), max(fresh)
        d_a, d_b = fresh[w_a], fresh[w_b]
        if w_b - w_a < 2 * self.pair_min_bytes or d_b <= d_a:
            return
        prop = d_a - w_a * (d_b - d_a) / (w_b - w_a)
        if 0.0 <= prop <= d_a and (fb.wire_bytes in (w_a, w_b)):
            self._prop_samples.append(prop)
            self._last_pair = fb.send_time

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

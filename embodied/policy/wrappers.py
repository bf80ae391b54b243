"""Wrappers around anything with ``infer(obs)``: latency metering and action chunking.

Behaviour by wrapping, not branching (openpi's ``ActionChunkBroker``): each class here takes
a policy (an :class:`~embodied.policy.runtime.OnnxPolicy`, a meter, a stub) and is itself
one, so they compose. Pure numpy: the robot's chunk executor imports no ONNX Runtime.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied.policy.spec import (
    ObservationLike,
    Policy,
    PolicyInputError,
    PolicyOutputError,
    obs_field,
)


@dataclass(frozen=True)
class LatencyStats:
    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        x = np.asarray(samples_ms, np.float64)
        if x.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan)
        p50, p99 = np.percentile(x, [50, 99])
        return cls(int(x.size), float(p50), float(p99), float(x.mean()), float(x.max()))


class LatencyMeter:
    """Wraps a policy and records each ``infer`` call's wall time, overall and per budget.

    The per-budget samples are what the rate controller needs (compute(k)); ``window``
    keeps only the most recent calls so the numbers follow thermal throttling on a Jetson.
    Other attributes pass through to the wrapped policy.
    """

    def __init__(self, policy: Policy, window: int | None = None) -> None:
        self.policy = policy
        self.window = window
        self._all: deque[float] = deque(maxlen=window)
        self._by_budget: dict[int, deque[float]] = {}

    def infer(self, obs: ObservationLike) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.policy.infer(obs)
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            self._all.append(ms)
            try:
                k = int(obs_field(obs, "budget"))
            except (PolicyInputError, TypeError, ValueError):
                k = -1
            self._by_budget.setdefault(k, deque(maxlen=self.window)).append(ms)

    __call__ = infer

    @property
    def samples_ms(self) -> list[float]:
        return list(self._all)

    def stats(self, budget: int | None = None) -> LatencyStats:
        if budget is None:
            return LatencyStats.of(self._all)
        return LatencyStats.of(self._by_budget.get(budget, ()))

    def stats_by_budget(self) -> dict[int, LatencyStats]:
        return {k: LatencyStats.of(v) for k, v in sorted(self._by_budget.items())}

    def reset(self) -> None:
        self._all.clear()
        self._by_budget.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


class ActionChunker:
    """Serves one action per control step from the latest action chunk.

    Semantics (the asynchronous inference of LeRobot and openpi):

    * Control steps are counted by :meth:`next_action` (``step`` is the index of the next
      action to execute). A chunk computed from the observation of step ``t`` holds the
      actions for steps ``t, t+1, ...``; :meth:`submit` with ``obs_step=t`` drops the ones
      already in the past (the inference latency), so the robot never replays stale actions.
    * A newer chunk replaces whatever is left of the current one. A chunk from an older
      observation than the current chunk's (out-of-order arrival), or one entirely in the
      past, is ignored (``submit`` returns ``False``).
    * While a newer observation is in flight (:meth:`mark_requested`), the current chunk
      keeps executing: nothing waits for the policy.
    * When the chunk is exhausted and nothing newer has arrived, the chunker **holds**: it
      repeats the last action with the motion dimensions zeroed (``motion_dims``, the
      end-effector deltas xyz for Meta-World) and the gripper dimension unchanged, i.e. the
      arm stays where it is and keeps its grip. Before any chunk, the hold action is
      ``initial_action`` (zeros unless given). ``held_steps`` counts these steps: each one
      is a deadline miss of the inference loop.

    With a ``policy``, :meth:`act` is the synchronous loop: infer when the chunk is
    exhausted (or every ``replan_every`` steps), then serve the next action.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        action_dim: int = 4,
        motion_dims: Sequence[int] = (0, 1, 2),
        gripper_index: int | None = 3,
        initial_action: np.ndarray | Sequence[float] | None = None,
        replan_every: int | None = None,
    ) -> None:
        if replan_every is not None and replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {replan_every}")
        self.policy = policy
        self.action_dim = action_dim
        self.motion_dims = tuple(motion_dims)
        self.gripper_index = gripper_index
        init = np.zeros(action_dim, np.float32) if initial_action is None else initial_action
        self.initial_action = np.asarray(init, np.float32).reshape(action_dim).copy()
        self.replan_every = replan_every
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self._queue: deque[np.ndarray] = deque()
        self._chunk_obs_step: int | None = None
        self._since_submit = 0
        self._last = self.initial_action.copy()
        self.in_flight: int | None = None
        self.held_steps = 0
        self.stale_chunks = 0

    @property
    def remaining(self) -> int:
        """Actions left in the current chunk."""
        return len(self._queue)

    @property
    def holding(self) -> bool:
        return not self._queue

    def hold_action(self) -> np.ndarray:
        a = self._last.copy()
        a[list(self.motion_dims)] = 0.0
        return a

    def mark_requested(self, obs_step: int | None = None) -> None:
        """Note that the observation of ``obs_step`` (default: now) is on its way to the policy."""
        self.in_flight = self.step if obs_step is None else obs_step

    def should_request(self, threshold: float = 0.5, chunk_len: int | None = None) -> bool:
        """LeRobot's trigger: ask for a new chunk once ``remaining / chunk_len <= threshold``
        and no request is in flight."""
        if self.in_flight is not None:
            return False
        n = chunk_len or max(self._since_submit + self.remaining, 1)
        return self.remaining / n <= threshold

    def submit(self, chunk: np.ndarray, obs_step: int | None = None) -> bool:
        """Install ``chunk`` ``[H, action_dim]`` computed from the observation of ``obs_step``."""
        c = np.asarray(chunk, np.float32)
        if c.ndim != 2 or c.shape[1] != self.action_dim:
            raise ValueError(f"chunk shape {c.shape}, expected [H, {self.action_dim}]")
        if not np.all(np.isfinite(c)):
            raise PolicyOutputError("action chunk contains NaN/inf; not executed")
        t = self.step if obs_step is None else int(obs_step)
        if self.in_flight is not None and t >= self.in_flight:
            self.in_flight = None
        if self._chunk_obs_step is not None and t < self._chunk_obs_step:
            self.stale_chunks += 1
            return False
        skip = self.step - t
        if skip < 0:
            raise ValueError(f"chunk for observation step {t} is in the future (now {self.step})")
        if skip >= len(c):
            self.stale_chunks += 1
            return False
        self._queue = deque(c[skip:].copy())
        self._chunk_obs_step = t
        self._since_submit = 0
        return True

    def drop_chunk(self) -> None:
        """Discard what is left of the current chunk: the next steps hold.

        A stop command, or a watchdog that found the policy silent: executing actions
        planned from an observation that old is worse than holding still. Chunks older
        than the dropped one stay refused.
        """
        self._queue.clear()

    def next_action(self) -> np.ndarray:
        """The action for this control step (advances ``step``)."""
        if self._queue:
            a = self._queue.popleft()
            self._last = a
        else:
            a = self.hold_action()
            self.held_steps += 1
        self.step += 1
        self._since_submit += 1
        return a.copy()

    def act(self, obs: ObservationLike) -> np.ndarray:
        """Synchronous loop: re-plan when the chunk is exhausted (or every ``replan_every``)."""
        if self.policy is None:
            raise RuntimeError("ActionChunker.act needs a policy; use submit/next_action otherwise")
        due = not self._queue or (
            self.replan_every is not None and self._since_submit >= self.replan_every
        )
        if due:
            self.submit(self.policy.infer(obs), obs_step=self.step)
        return self.next_action()

    def __getattr__(self, name: str) -> Any:
        policy = self.__dict__.get("policy")
        if policy is None:
            raise AttributeError(name)
        return getattr(policy, name)


__all__ = ["ActionChunker", "LatencyMeter", "LatencyStats"]

"""The controller contract: feedback in, token budget out; live-tunable settings.

A controller sits beside the tokenizer. Before each frame it is asked for a
budget (``next_budget(now)``); about each packet it is told twice through
``observe(feedback)``: once when the packet leaves the sender (size, send
time, measured compute time) and once when its fate is known (arrival time
from the receiver's report, or loss). The second report comes a feedback
delay after the arrival, so a controller never sees the future.

A controller may answer :data:`SKIP` instead of a budget: the frame is not
sent, because even the minimum budget is predicted to miss its deadline behind
what is already queued (WebRTC's encoder frame dropper does the same). The
benchmark counts a skipped frame as a deadline miss.

Settings (:class:`ControllerSettings`) validate themselves; their ranges and
descriptions live in the fields' metadata, from which :func:`settings_spec`
builds the table a ROS node turns into parameter descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Protocol, runtime_checkable

from embodied.control.estimators import OnlineLinear
from embodied.settings import Settings, SettingSpec, setting, specs_of

SKIP: Final = 0
MODES: Final = ("adaptive", "hold", "min", "max")
DEFAULT_K_MAX: Final = 64

Status = Literal["sent", "delivered", "lost"]


@dataclass(frozen=True)
class Feedback:
    """One report about one packet. Times are seconds on the sender's clock.

    ``status`` is ``"sent"`` for the report made when the packet leaves
    (``arrival_time`` unknown), then ``"delivered"`` or ``"lost"``.
    """

    frame_id: int
    budget: int
    packet_bytes: int  # the codec's packet: our header + payload (no transport framing)
    overhead_bytes: int  # transport framing (UDP/IP, DDS, radio) on top
    capture_time: float
    send_time: float
    compute_time: float  # measured encoder time for this frame
    status: Status
    observed_at: float  # when the sender learns this report
    arrival_time: float | None = None
    keyframe: bool = True  # coded on its own (every packet of an intra codec); False: predicted
    # from an earlier frame (tokens-inter, H.264 P-frames), so much smaller at the same budget

    @property
    def wire_bytes(self) -> int:
        return self.packet_bytes + self.overhead_bytes

    @property
    def latency(self) -> float | None:
        """Capture to arrival, the number the deadline is about."""
        return None if self.arrival_time is None else self.arrival_time - self.capture_time


@dataclass(frozen=True)
class ControllerSettings(Settings):
    """The knobs of a controller. ``max`` given as a field name means "up to that field"."""

    deadline_ms: float = setting(
        100.0, "end-to-end deadline, capture to arrival (ms)", lo=1.0, hi=10_000.0
    )
    min_budget: int = setting(
        1, "smallest token budget the controller may choose", lo=1, hi="k_max"
    )
    max_budget: int = setting(
        64, "largest token budget the controller may choose", lo=1, hi="k_max"
    )
    budget: int = setting(
        0,
        "the fixed controller's budget and the one mode 'hold' starts from; 0 = max_budget; "
        "else within min_budget..max_budget",
        lo=0,
        hi="k_max",
    )
    bitrate_cap_kbps: float = setting(
        0.0,
        "cap on the sent bit rate incl. transport overhead (kbit/s); 0 = no cap",
        lo=0.0,
        hi=1_000_000.0,
    )
    mode: str = setting(
        "adaptive",
        "adaptive: the controller decides; hold: keep the last budget; min/max: pin to a bound",
        choices=MODES,
    )
    k_max: int = setting(
        DEFAULT_K_MAX,
        "tokens per frame of the tokenizer (fixed by the model)",
        lo=1,
        hi=4096,
        live=False,
    )

    @classmethod
    def for_k_max(cls, k_max: int, **changes: Any) -> ControllerSettings:
        """Settings for a codec of ``k_max`` budgets: ``max_budget`` defaults to ``k_max`` (the
        field defaults assume the 64-token tokenizer)."""
        values: dict[str, Any] = {"k_max": k_max, "max_budget": k_max}
        values.update(changes)
        return cls(**values)

    def _check(self) -> None:
        if self.min_budget > self.max_budget:
            raise ValueError(
                f"min_budget={self.min_budget} must not exceed max_budget={self.max_budget}"
            )
        if self.budget and not self.min_budget <= self.budget <= self.max_budget:
            raise ValueError(
                f"budget={self.budget} is outside min_budget..max_budget = "
                f"{self.min_budget}..{self.max_budget}"
            )

    @property
    def fixed_budget(self) -> int:
        """``budget``, or ``max_budget`` where it is 0."""
        return self.budget or self.max_budget


def settings_spec(k_max: int = DEFAULT_K_MAX) -> dict[str, SettingSpec]:
    """The settings table, built from :class:`ControllerSettings`' field metadata."""
    return specs_of(ControllerSettings, k_max=k_max)


SETTINGS_SPEC: Final = settings_spec()


@runtime_checkable
class Controller(Protocol):
    name: ClassVar[str]

    @property
    def settings(self) -> ControllerSettings: ...

    def update_settings(self, **changes: Any) -> ControllerSettings: ...

    def observe(self, feedback: Feedback) -> None: ...

    def next_budget(self, now: float, *, keyframe: bool = True) -> int: ...

    def capacity_bps(self, now: float) -> float | None: ...


class Delegating:
    """A controller that wraps another and passes everything through: subclass it and override
    what changes (``embodied.control.fixed.EveryNth``, the inter-bench's kind-unaware ablation)."""

    name: ClassVar[str] = "delegating"

    def __init__(self, inner: Controller) -> None:
        self.inner = inner

    @property
    def settings(self) -> ControllerSettings:
        return self.inner.settings

    def update_settings(self, **changes: Any) -> ControllerSettings:
        return self.inner.update_settings(**changes)

    def observe(self, feedback: Feedback) -> None:
        self.inner.observe(feedback)

    def next_budget(self, now: float, *, keyframe: bool = True) -> int:
        return self.inner.next_budget(now, keyframe=keyframe)

    def capacity_bps(self, now: float) -> float | None:
        return self.inner.capacity_bps(now)


class BaseController:
    """Settings, modes, the bit-rate cap and online bytes(k)/compute(k) models.

    Subclasses implement :meth:`_decide` (and optionally :meth:`_observe`).
    bytes(k) and compute(k) are learned from every "sent" report with a ridge
    regression toward a prior (:class:`OnlineLinear`), so a controller knows
    what a budget costs before the tokenizer's table is measured. A codec that
    codes across frames makes bytes(k) depend on the frame's kind, so there are
    two size models: ``packet_model`` learns from keyframes (and every packet of an
    intra codec), ``inter_packet_model`` from predicted frames; the sender says
    which kind the next frame is (``next_budget(now, keyframe=...)``) and every
    prediction the controller makes for that frame uses that kind's model.
    """

    name: ClassVar[str] = "base"

    def __init__(
        self, settings: ControllerSettings | None = None, *, frame_rate_hz: float = 30.0
    ) -> None:
        if not frame_rate_hz > 0:
            raise ValueError(f"frame_rate_hz={frame_rate_hz} must be positive")
        self._settings = settings or ControllerSettings()
        self.frame_rate_hz = float(frame_rate_hz)
        self.packet_model = OnlineLinear(prior_intercept=8.0, prior_slope=1.0)
        # predicted frames: a 3-byte compact header and a fraction of a byte per token
        self.inter_packet_model = OnlineLinear(prior_intercept=3.0, prior_slope=0.25)
        self.next_keyframe = True  # the kind of the frame being decided
        self.compute_model = OnlineLinear(prior_intercept=2e-3, prior_slope=5e-5)
        self.overhead_bytes = 0
        self.last_budget: int | None = None

    @property
    def settings(self) -> ControllerSettings:
        return self._settings

    def update_settings(self, **changes: Any) -> ControllerSettings:
        """Apply a validated change of some settings; on error keep all old values.

        Raises ValueError naming the setting, the allowed range and the value kept.
        """
        self._settings = self._settings.updated(**changes)
        if "budget" in changes:  # the budget mode 'hold' keeps from now on
            self.last_budget = self._settings.fixed_budget
        return self._settings

    # -- what a budget costs ---------------------------------------------------------
    def predicted_wire_bytes(
        self, budget: int, quantile_z: float = 0.0, *, keyframe: bool | None = None
    ) -> float:
        """Wire bytes of a frame at ``budget``; of the kind being decided unless ``keyframe``."""
        key = self.next_keyframe if keyframe is None else keyframe
        model = self.packet_model if key else self.inter_packet_model
        return max(1.0, model.predict(budget, quantile_z)) + self.overhead_bytes

    def predicted_compute_s(self, budget: int, quantile_z: float = 0.0) -> float:
        return max(0.0, self.compute_model.predict(budget, quantile_z))

    def cap_budget(self) -> int:
        """Largest budget whose predicted wire rate respects ``bitrate_cap_kbps``."""
        s = self._settings
        if s.bitrate_cap_kbps <= 0:
            return s.max_budget
        limit_bytes = s.bitrate_cap_kbps * 1e3 / 8.0 / self.frame_rate_hz
        k = s.max_budget
        while k > s.min_budget and self.predicted_wire_bytes(k) > limit_bytes:
            k -= 1
        return k

    # -- the protocol ----------------------------------------------------------------
    def observe(self, feedback: Feedback) -> None:
        if feedback.status == "sent":
            self.overhead_bytes = feedback.overhead_bytes
            model = self.packet_model if feedback.keyframe else self.inter_packet_model
            model.update(feedback.budget, feedback.packet_bytes)
            self.compute_model.update(feedback.budget, feedback.compute_time)
        self._observe(feedback)

    def next_budget(self, now: float, *, keyframe: bool = True) -> int:
        """This frame's budget (or ``SKIP``); ``keyframe`` is the frame's kind (see the class
        docstring), True for every frame of an intra codec."""
        s = self._settings
        self.next_keyframe = bool(keyframe)
        if s.mode == "min":
            k = s.min_budget
        elif s.mode == "max":
            k = s.max_budget
        elif s.mode == "hold":  # the last budget sent, or the setting's before the first
            k = s.fixed_budget if self.last_budget is None else self.last_budget
        else:
            k = self._decide(now)
            if k == SKIP:
                return SKIP
        k = max(s.min_budget, min(int(k), s.max_budget, self.cap_budget()))
        self.last_budget = k
        return k

    def capacity_bps(self, now: float) -> float | None:
        """The link capacity this controller estimates (bit/s), None if it keeps none."""
        return None

    def _observe(self, feedback: Feedback) -> None:
        pass

    def _decide(self, now: float) -> int:
        raise NotImplementedError

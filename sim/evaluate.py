"""Closed-loop evaluation: sim camera → codec → link → policy → robot, by seed.

One episode (``run_episode``), at every control step (``control_hz``, 30 by default: the
camera and the link run at this rate; the simulated arm moves one Meta-World step):

1. the camera renders the frame; the controller (or the rate point) picks the budget;
2. the codec encodes it to a packet: learned tokens at budget k, or a pixel codec at a
   target size whose decoded image the receiver tokenizes at full budget (the same policy
   then acts on it: pixels-codec against token-codec at equal bits into the same policy);
3. the link delivers the packet after the sender's compute time, queueing, transmission
   and propagation (ideal link: at once), or loses it;
4. when a newer observation arrives the policy computes a chunk from it; the robot keeps
   executing the current chunk meanwhile and drops the actions that latency made stale
   (LeRobot's and openpi's asynchronous inference); an exhausted chunk holds the arm.

Rate points: ``clean`` (uncompressed frame, full budget: the ceiling), ``blind`` (the policy
trained with no image: the floor), ``tokens@k``, ``<codec>@<bytes>``. Bits are packet bytes
× 8, header included; the transport's framing is counted apart (``wire``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from embodied.link.emulator import GilbertElliott
from embodied.modelfiles import MODELS_DIR
from embodied.pipeline import PROPRIO_PAIRINGS, FateCounts

if TYPE_CHECKING:
    from embodied.codecs.base import Codec
    from embodied.codecs.tokens import TokenCodec
    from embodied.link.emulator import LinkConfig, LinkEmulator, PacketResult
    from embodied.link.session import Arrival, LinkSession
    from embodied.pipeline import Receiver

RAW_BITS_64 = 64 * 64 * 3 * 8

#: Bursty loss of ``Point.burst``: per packet, Good → Bad 1%, Bad → Good 30%, every packet lost
#: in Bad: bursts of 3.3 packets on average, 3.2% of packets lost in all.
BURST_LOSS = GilbertElliott(0.01, 0.30)

#: Codecs of the learned tokenizer: every frame on its own, or coded across frames.
TOKEN_CODECS = ("tokens", "tokens-inter")

# Which policy acts on which tokenizer's tokens, by default.
POLICY_FOR = {"tok-task": "vla-task", "tok-recon": "vla-recon"}


@dataclass(frozen=True)
class Point:
    """One rate point of a sweep."""

    codec: str  # "clean", "blind", "tokens", "tokens-inter", or a registered pixel codec
    budget: int | None = None  # tokens: k; pixel codecs: ladder rung (with a controller)
    target_bytes: int | None = None  # pixel codecs: packet size, header included
    tokenizer: str = "tok-task"
    policy: str | None = None  # default: POLICY_FOR[tokenizer] (blind: vla-blind)
    trace: str | None = None  # None: ideal link
    controller: str | None = None  # with a trace: a registered controller (budget = its choice)
    deadline_ms: float = 100.0
    max_budget: int | None = None  # with a controller: the settings' cap (None: every budget)
    overhead_bytes: int = 8  # transport framing per packet on a trace (link-sim's default; UDP: 28)
    loss_pct: float = 0.0  # random packet loss on the trace's link (%)
    burst: bool = False  # Gilbert-Elliott bursts (BURST_LOSS) on the trace's link
    delay_ms: float = 0.0  # ideal link only: a fixed one-way delay (success vs added latency)
    interval: int = 1  # send only every n-th frame (the rest skipped): success vs send interval
    proprio: str = "capture"  # PROPRIO_PAIRINGS: the state the policy reads with a frame
    robots: int = 1  # with a trace: this many robots share its bottleneck (run_shared)

    def __post_init__(self) -> None:
        if self.proprio not in PROPRIO_PAIRINGS:
            raise ValueError(
                f"unknown proprio pairing {self.proprio!r}; valid: {', '.join(PROPRIO_PAIRINGS)}"
            )
        if self.robots < 1:
            raise ValueError(f"robots={self.robots} must be >= 1")
        if self.robots > 1 and self.trace is None:
            raise ValueError("several robots share a trace's bottleneck: give a trace")

    @property
    def policy_name(self) -> str:
        if self.policy:
            return self.policy
        if self.codec == "blind":
            return "vla-blind"
        return POLICY_FOR.get(self.tokenizer, "vla-task")

    @property
    def label(self) -> str:
        if self.codec == "clean":
            base = f"clean[{self.tokenizer}]"
        elif self.codec == "blind":
            base = "blind"
        elif self.codec in TOKEN_CODECS:
            how = self.budget if self.controller is None else self.controller
            base = f"{self.codec}[{self.tokenizer}]@{how}"
        else:
            what = self.target_bytes if self.target_bytes is not None else f"rung{self.budget}"
            base = f"{self.codec}@{what if self.controller is None else self.controller}"
            base += f"[{self.tokenizer}]"
        if self.controller is not None and self.max_budget is not None:
            base += f"(max{self.max_budget})"
        if self.delay_ms:
            base += f"+{self.delay_ms:g}ms"
        if self.interval > 1:
            base += f"/{self.interval}"
        if self.proprio != "capture":
            base += f"^{self.proprio}"
        if self.trace:
            base += f"~{self.trace}"
            if self.robots > 1:
                base += f"x{self.robots}"
            if self.overhead_bytes != 8:
                base += f"+{self.overhead_bytes}B"
            if self.loss_pct:
                base += f"!{self.loss_pct:g}%"
            if self.burst:
                base += "!burst"
        return base

    def key(self) -> str:
        return self.label


@dataclass
class EpisodeResult:
    point: str
    task: str
    seed: int
    success: bool
    steps: int
    frames_sent: int
    bits_mean: float  # packet bits per sent frame (header included)
    header_bits_mean: float
    wire_bits_mean: float  # with transport framing
    latency_mean_ms: float
    latency_p95_ms: float
    deadline_misses: int  # embodied.pipeline: late, lost or skipped, of frames captured
    held_steps: int
    budget_mean: float  # over frames captured (a skipped frame counts 0)
    decode_errors: int = 0
    frames_captured: int = 0
    frames_skipped: int = 0
    frames_late: int = 0
    frames_lost: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def fates_of(episode: dict[str, Any]) -> FateCounts:
    """An episode record's frames by fate."""
    captured, misses = episode["frames_captured"], episode["deadline_misses"]
    late, lost, skipped = episode["frames_late"], episode["frames_lost"], episode["frames_skipped"]
    if late + lost + skipped != misses:
        raise ValueError(f"episode {episode['point']} seed {episode['seed']}: fates disagree")
    return FateCounts(on_time=captured - misses, late=late, lost=lost, skipped=skipped)


# --------------------------------------------------------------------------- worker caches
@cache
def _env(task: str, split: str, slot: int = 0) -> Any:
    """The worker's env of a task; ``slot``: robots of one shared-link round that run the same
    task each have their own (one env steps one episode at a time)."""
    from sim.env import MetaWorldTaskEnv

    return MetaWorldTaskEnv(task, instruction_split=split)


@cache
def _tokenizer(models_dir: str, name: str) -> TokenCodec:
    from embodied.codecs.tokens import TokenCodec

    return TokenCodec(Path(models_dir) / name)


@cache
def _policy(models_dir: str, name: str) -> Any:
    from embodied.policy import OnnxPolicy

    return OnnxPolicy(Path(models_dir) / name)


def _make_pixel_codec(name: str) -> Codec:
    from embodied.codecs import make_codec

    return make_codec(name)


def _trace(name: str) -> Any:
    from embodied.link.catalog import entry

    return entry(name).load()


# --------------------------------------------------------------------------- one episode
def point_controller(
    point: Point,
    n_budgets: int,
    control_hz: float,
    *,
    models_dir: str | Path | None = None,
    task: str | None = None,
) -> Any:
    """The sender's controller for a rate point: a registered one, or the fixed budget.

    A controller that plans from measured success curves (``success``) reads the curves of
    the pipeline it controls: the point's policy and proprioception pairing
    (``success_curves.json`` or ``success_curves.<pairing>.json`` beside the policy), and the
    episode's task row of them."""
    import inspect

    from embodied.control.base import ControllerSettings
    from embodied.control.registry import get_spec, make_controller
    from embodied.control.success import curves_file

    name = point.controller or "fixed"
    if point.controller is None:  # a fixed budget (or a pixel codec's target size: unused)
        settings = ControllerSettings.for_k_max(
            n_budgets, deadline_ms=point.deadline_ms, budget=point.budget or 0
        )
    else:
        cap = min(point.max_budget or n_budgets, n_budgets)
        settings = ControllerSettings.for_k_max(
            n_budgets, deadline_ms=point.deadline_ms, max_budget=cap
        )
    kwargs: dict[str, Any] = {}
    takes = inspect.signature(get_spec(name).load()).parameters
    if "curves" in takes and models_dir is not None:
        kwargs["curves"] = Path(models_dir) / point.policy_name / curves_file(point.proprio)
    if "task" in takes and task is not None:
        kwargs["task"] = task
    return make_controller(name, settings, frame_rate_hz=control_hz, **kwargs)


def point_link(point: Point, seed: int) -> LinkConfig:
    """The link parameters of a rate point: its framing and loss; on a trace, the profile's
    own propagation, framing, queue and loss (an explicit loss rate wins over the profile's)."""
    from embodied.link.emulator import LinkConfig

    link = LinkConfig(
        overhead_bytes=point.overhead_bytes, loss_rate=point.loss_pct / 100.0,
        burst_loss=BURST_LOSS if point.burst else None, seed=seed,
    )  # fmt: skip
    if point.trace:
        from embodied.link.catalog import entry

        link = entry(point.trace).link_config(link)
        if point.loss_pct:
            link = replace(link, loss_rate=point.loss_pct / 100.0)
    return link


class EpisodeObserver(Protocol):
    """What an episode shows a viewer (``embodied_tools.view.eval.EvalTap``), in sim time."""

    def begin(
        self, t: float, task: str, seed: int, instruction: str, policy: Any,
        session: LinkSession | None,
    ) -> None: ...  # fmt: skip

    def frame(
        self, t: float, image: np.ndarray, packet: bytes | None, sent: PacketResult | None
    ) -> None: ...

    def arrived(self, t: float, arrivals: Sequence[Arrival], receiver: Receiver | None) -> None: ...

    def end(self, t: float, success: bool, steps: int) -> None: ...


def run_episode(
    point: Point,
    task: str,
    seed: int,
    *,
    models_dir: str | Path = MODELS_DIR,
    instruction_split: str = "train",
    control_hz: float = 30.0,
    compute_ms: float = 2.0,
    max_steps: int | None = None,
    link_warmup_s: float = 2.0,
    observer: EpisodeObserver | None = None,
) -> EpisodeResult:
    """One closed-loop episode; deterministic given (point, task, seed).

    ``observer`` (``embodied eval --view``) is shown each frame, packet, arrival and the
    stream's statistics; it changes nothing in the episode.

    On a trace, the camera streams for ``link_warmup_s`` before the episode starts (the
    first frame, encoded at the controller's budgets; the policy does not act on these), as
    on a robot whose camera is up before a task is given: controllers start the episode
    with what they learned of the link, not from nothing, and the link's queue carries
    over. Frames of the warm-up are not counted in the episode's fates."""
    ep = Episode(
        point, task, seed, models_dir=models_dir, instruction_split=instruction_split,
        control_hz=control_hz, compute_ms=compute_ms, max_steps=max_steps, observer=observer,
    )  # fmt: skip
    t = ep.t0
    for _ in range(ep.warmup_frames(link_warmup_s)):
        ep.warm(t)
        t += ep.dt
    ep.begin(t)
    while ep.result is None:
        ep.step()
    return ep.result


class Episode:
    """One closed-loop episode, a control step at a time (:func:`run_episode` runs one alone;
    :func:`run_shared` runs several in lockstep on one link).

    An adapter: it moves frames from the sim camera into the pipeline's sender
    (:class:`embodied.pipeline.Sender` over :class:`embodied.link.session.LinkSession`),
    packets from the link into its receiver, observations into the policy and actions into
    the sim; the budget, the loss rule and the miss rule are the pipeline's.

    ``emulator``: the link is shared (its trace, queue and loss are the emulator's; the
    caller sends every robot's packets in time order). ``t0``: the trace time the episode
    meets the link at (default: drawn from the seed, so that a sweep samples a trace's good
    and bad stretches instead of replaying its first seconds)."""

    def __init__(
        self,
        point: Point,
        task: str,
        seed: int,
        *,
        models_dir: str | Path = MODELS_DIR,
        instruction_split: str = "train",
        control_hz: float = 30.0,
        compute_ms: float = 2.0,
        max_steps: int | None = None,
        observer: EpisodeObserver | None = None,
        emulator: LinkEmulator | None = None,
        t0: float | None = None,
        env_slot: int = 0,
    ) -> None:
        from embodied.link.session import LinkSession
        from embodied.pipeline import Receiver, Sender
        from embodied.policy import ActionChunker

        self.point, self.task, self.seed, self.observer = point, task, seed, observer
        md = str(models_dir)
        self.env = env = _env(task, instruction_split, env_slot)
        self.obs, _ = env.reset(seed=seed)
        self.instruction = self.obs["instruction"]
        self.policy = policy = _policy(md, point.policy_name)
        self.k_max = policy.spec.k_max
        tokenizer = _tokenizer(md, point.tokenizer) if point.codec != "blind" else None
        inter = point.codec == "tokens-inter"
        from embodied.interframe import InterTokenCodec

        # tokens-inter: one stream state per end (the sender's codec, the receiver's own)
        self.receiver = Receiver(tokenizer) if tokenizer is not None else None
        self.chunker = ActionChunker(action_dim=policy.spec.action_dim)
        self.compute_s = compute_ms / 1e3
        self.dt = 1.0 / control_hz

        self.session: LinkSession | None = None
        trace = self.trace = _trace(point.trace) if point.trace else None
        if point.delay_ms and (trace is not None or point.codec in ("clean", "blind")):
            raise ValueError("delay_ms adds latency to a codec's stream on the ideal link only")
        if point.codec in ("clean", "blind"):
            if trace is not None:
                raise ValueError("clean/blind points run on the ideal link only")
        else:
            assert tokenizer is not None
            if inter:
                codec = InterTokenCodec(tokenizer)
            else:
                codec = tokenizer if point.codec == "tokens" else _make_pixel_codec(point.codec)
            by_size = point.codec not in TOKEN_CODECS and point.controller is None
            controller: Any = point_controller(
                point, len(list(codec.budgets())), control_hz, models_dir=md, task=task
            )
            if point.interval > 1:
                from embodied.control.fixed import EveryNth

                controller = EveryNth(controller, point.interval)
            sender = Sender(
                controller,
                codec=codec,
                target_bytes=point.target_bytes if by_size else None,
            )
            self.session = LinkSession(
                sender, trace, point_link(point, seed), ideal_delay_s=point.delay_ms / 1e3,
                emulator=emulator,
            )  # fmt: skip
        if t0 is None:
            t0 = (
                float(np.random.default_rng([seed, 0x7ACE]).uniform(0, trace.period_s))
                if trace
                else 0.0
            )
        self.t0 = t0
        self.max_steps = max_steps or env.max_steps
        self.step_index = 0
        self.result: EpisodeResult | None = None
        self._proprio_of: dict[
            int, np.ndarray
        ] = {}  # by step: the state the frame was captured with
        self._raw: list[Arrival] = []  # clean/blind: the frame itself, on the ideal link
        self._first = 0
        self._begin_t = t0

    def warmup_frames(self, seconds: float) -> int:
        """Frames of a camera warm-up of ``seconds`` (on a trace only; 0 elsewhere)."""
        if self.session is None or self.trace is None or seconds <= 0:
            return 0
        return round(seconds / self.dt)

    def warm(self, t: float) -> None:
        """A warm-up frame at ``t``: the first image streamed, the policy does not act on it."""
        assert self.session is not None
        self.session.offer(self.obs["image"], t, self.compute_s)

    def begin(self, t: float) -> None:
        """The episode starts at ``t``: fates and stats count from here."""
        from embodied.pipeline import FateCounts, StreamStats

        session = self.session
        if session is not None and self.trace is not None and session.frames_offered:
            session.begin()
        self._first = session.frames_offered if session is not None else 0
        self._stats = session.stats if session is not None else StreamStats()
        self._fates = session.fates if session is not None else FateCounts()
        self._deadline = self.point.deadline_ms / 1e3
        self._begin_t = t
        if self.observer is not None:
            self.observer.begin(t, self.task, self.seed, self.instruction, self.policy, session)

    @property
    def next_time(self) -> float:
        """The capture time of the next step's frame."""
        return self._begin_t + self.step_index * self.dt

    def step(self) -> None:
        """One control step: capture, send, receive what arrived, act. Sets ``result`` when
        the episode ends."""
        from embodied.link.session import Arrival
        from embodied.pipeline import frame_fate

        assert self.result is None, "the episode has ended"
        session, receiver, observer, point = self.session, self.receiver, self.observer, self.point
        obs, step, dt = self.obs, self.step_index, self.dt
        now = self.next_time
        self._proprio_of[step] = obs["proprio"]
        # ---- sender: this frame's budget, packet and fate on the link
        if session is None:
            arrival = now + self.compute_s
            self._fates.add(frame_fate(now, arrival, self._deadline))
            k_max, raw_bytes = (self.k_max, RAW_BITS_64 // 8) if receiver else (0, 0)
            self._stats.sent(k_max, raw_bytes, 0, raw_bytes, self.compute_s)
            self._raw.append(Arrival(step, now, arrival, obs["image"]))
        else:
            sent = session.offer(obs["image"], now, self.compute_s)
            if observer is not None:
                observer.frame(now, obs["image"], session.last_packet if sent else None, sent)
        # ---- receiver: every packet delivered by now, decoded in order; the newest acted on
        seen, ready, newest = self._receive(now + dt * 0.999)
        if observer is not None:
            observer.arrived(now, ready, receiver)
        if seen is not None and newest is not None:
            obs_step = ready[newest].key - self._first
            if obs_step >= 0:  # not a warm-up frame
                if point.proprio == "latest":  # the state now: the chunk starts at this step
                    state, start = obs["proprio"], step
                else:  # the frame's own state: the chunk starts at its capture
                    state, start = self._proprio_of[obs_step], obs_step
                chunk = self.policy.infer_batch(seen.token_ids[None], np.array([seen.budget]),
                                                [self.instruction], state[None])[0]  # fmt: skip
                self.chunker.submit(chunk, obs_step=start)
        action = self.chunker.next_action()
        self.obs, _, terminated, truncated, info = self.env.step(action)
        self.step_index += 1
        if terminated or truncated or self.step_index >= self.max_steps:
            success = bool(info["success"]) if (terminated or truncated) else False
            self._finish(success)

    def _receive(self, horizon: float) -> tuple[Any, list[Arrival], int | None]:
        """Packets delivered by ``horizon``, decoded in order: (the newest observation or
        None, the arrivals, the index of the one acted on)."""
        from embodied.pipeline import Observation

        session, receiver = self.session, self.receiver
        if session is not None:
            ready = session.arrived(horizon)
        else:
            ready, self._raw = [x for x in self._raw if x.arrival_time <= horizon], []
        seen: Observation | None = None
        newest: int | None = len(ready) - 1 if ready else None
        if not ready:
            pass
        elif receiver is None:  # blind
            seen = Observation.blind(self.k_max)
        elif session is None:  # clean: the raw frame
            seen = receiver.from_frame(ready[-1].payload)
        else:
            seen, newest, refused = receiver.receive_newest(
                [x.payload for x in ready], codec=self.point.codec
            )
            for i in refused:
                if ready[i].key >= self._first:  # a warm-up frame is not the episode's
                    session.refused(ready[i].capture_time, ready[i].arrival_time)
            if refused and receiver.keyframe_wanted:
                session.request_keyframe(ready[refused[-1]].arrival_time)
        return seen, ready, newest

    def idle(self) -> None:
        """After the end, one more camera frame at the next step's time: sent and received as
        before (the stream and its reference go on, as on a robot starting its next task),
        counted nowhere: the result was taken at the end."""
        assert self.result is not None and self.session is not None
        now = self.next_time
        self.session.offer(self.obs["image"], now, self.compute_s)
        self._receive(now + self.dt * 0.999)
        self.step_index += 1

    def _finish(self, success: bool) -> None:
        steps = self.step_index
        if self.observer is not None:
            self.observer.end(self._begin_t + steps * self.dt, success, steps)
        fates, stats, receiver = self._fates, self._stats, self.receiver
        sm = stats.summary()
        self.result = EpisodeResult(
            point=self.point.key(), task=self.task, seed=self.seed, success=success, steps=steps,
            frames_sent=stats.frames_sent, bits_mean=sm["bits_mean"],
            header_bits_mean=sm["header_bits_mean"], wire_bits_mean=sm["wire_bits_mean"],
            latency_mean_ms=sm["latency_mean_ms"], latency_p95_ms=sm["latency_p95_ms"],
            budget_mean=sm["budget_mean"],
            deadline_misses=fates.misses, held_steps=self.chunker.held_steps,
            decode_errors=receiver.stats.dropped_total if receiver is not None else 0,
            frames_captured=fates.captured, frames_skipped=fates.skipped, frames_late=fates.late,
            frames_lost=fates.lost,
        )  # fmt: skip


def run_shared(
    point: Point,
    episodes: Sequence[tuple[str, int]],
    *,
    models_dir: str | Path = MODELS_DIR,
    instruction_split: str = "train",
    control_hz: float = 30.0,
    compute_ms: float = 2.0,
    max_steps: int | None = None,
    link_warmup_s: float = 2.0,
) -> list[EpisodeResult]:
    """``len(episodes)`` robots, one episode each (task, seed), on one bottleneck.

    The bottleneck is ``point.trace`` with its capacity and queue scaled by the number of
    robots N (each robot's fair share is the one-robot profile, as ``embodied link-sim
    --robots N``); its propagation, framing and loss are the profile's. Every robot has its
    own sender, controller (``point.controller``, or the fixed budget), receiver and policy;
    the cameras run at the same rate, robot r capturing ``r / N`` of a frame period after
    robot 0, and every packet enters the one queue at its send time, in time order.
    Allocation is what independent controllers sharing a queue arrive at: no coordinator,
    each sees only its own packets' reports. All robots stream the warm-up together and
    start together; a robot whose episode has ended keeps its camera streaming (as one
    starting its next task would) until the last episode ends, so the load does not fall
    as robots finish. Deterministic given (point, episodes)."""
    from embodied.control.registry import get_spec
    from embodied.link.catalog import entry
    from embodied.link.emulator import LinkEmulator
    from embodied.link.traces import read_trace

    n = len(episodes)
    if n < 1 or point.trace is None:
        raise ValueError("a shared link needs a trace and at least one robot")
    if point.controller is not None and get_spec(point.controller).needs_world:
        raise ValueError(f"controller {point.controller!r} sees the future of a link it owns alone")
    e = entry(point.trace)
    trace = read_trace(e.path, scale=e.scale * n, name=e.name)
    link = point_link(point, episodes[0][1])
    if link.queue_limit_bytes is not None:
        link = replace(link, queue_limit_bytes=link.queue_limit_bytes * n)
    emulator = LinkEmulator(trace, link)
    # the round meets the trace at a moment drawn from its seeds (one robot: run_episode's)
    t0 = float(
        np.random.default_rng([*(s for _, s in episodes), 0x7ACE]).uniform(0, trace.period_s)
    )
    dt = 1.0 / control_hz
    eps = [
        Episode(
            point, task, seed, models_dir=models_dir, instruction_split=instruction_split,
            control_hz=control_hz, compute_ms=compute_ms, max_steps=max_steps,
            emulator=emulator, t0=t0 + r * dt / n,
            env_slot=sum(t == task for t, _ in episodes[:r]),
        )
        for r, (task, seed) in enumerate(episodes)
    ]  # fmt: skip
    times = [ep.t0 for ep in eps]  # (accumulated as run_episode does: the same floats)
    for _ in range(eps[0].warmup_frames(link_warmup_s)):
        for r, ep in enumerate(eps):
            ep.warm(times[r])
            times[r] += dt
    for ep, t in zip(eps, times, strict=True):
        ep.begin(t)
    while any(ep.result is None for ep in eps):
        for ep in eps:  # one control period: robot 0 first, each r / N of a period later
            if ep.result is None:
                ep.step()
            else:
                ep.idle()
    out = []
    for r, ep in enumerate(eps):
        assert ep.result is not None
        ep.result.extra.update(robot=r, robots=n)
        out.append(ep.result)
    return out


def shared_job(args: tuple[dict, list[tuple[str, int]], dict]) -> list[dict]:
    """One round of a shared-link point: its robots' episode records."""
    point, episodes, kw = args
    round_ = [(str(t), int(s)) for t, s in episodes]
    return [asdict(r) for r in run_shared(Point(**point), round_, **kw)]


def episode_job(args: tuple[dict, str, int, dict]) -> dict:
    point, task, seed, kw = args
    r = run_episode(Point(**point), task, seed, **kw)
    return asdict(r)


def sweep_job(job: tuple) -> list[dict]:
    """A sweep's unit of work, its episode records: one episode ``(point, task, seed, kw)``,
    or one shared-link round ``(point, [(task, seed), ...], kw)``."""
    return shared_job(job) if len(job) == 3 else [episode_job(job)]

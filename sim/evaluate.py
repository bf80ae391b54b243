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

import math
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from embodied.modelfiles import MODELS_DIR

RAW_BITS_64 = 64 * 64 * 3 * 8

# Which policy acts on which tokenizer's tokens, by default.
POLICY_FOR = {"tok-task": "vla-task", "tok-recon": "vla-recon"}


@dataclass(frozen=True)
class Point:
    """One rate point of a sweep."""

    codec: str  # "clean", "blind", "tokens", or a registered pixel codec
    budget: int | None = None  # tokens: k; pixel codecs: ladder rung (with a controller)
    target_bytes: int | None = None  # pixel codecs: packet size, header included
    tokenizer: str = "tok-task"
    policy: str | None = None  # default: POLICY_FOR[tokenizer] (blind: vla-blind)
    trace: str | None = None  # None: ideal link
    controller: str | None = None  # with a trace: a registered controller (budget = its choice)
    deadline_ms: float = 100.0
    max_budget: int | None = None  # with a controller: the settings' cap (None: every budget)
    overhead_bytes: int = 8  # transport framing per packet on a trace (link-sim's default; UDP: 28)

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
        elif self.codec == "tokens":
            base = f"tokens[{self.tokenizer}]@{self.budget if self.controller is None else self.controller}"
        else:
            what = self.target_bytes if self.target_bytes is not None else f"rung{self.budget}"
            base = f"{self.codec}@{what if self.controller is None else self.controller}"
            base += f"[{self.tokenizer}]"
        if self.controller is not None and self.max_budget is not None:
            base += f"(max{self.max_budget})"
        if self.trace:
            base += f"~{self.trace}"
            if self.overhead_bytes != 8:
                base += f"+{self.overhead_bytes}B"
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
    deadline_misses: int  # frames lost or later than the deadline
    held_steps: int
    budget_mean: float
    decode_errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- worker caches
@cache
def _env(task: str, split: str) -> Any:
    from sim.env import MetaWorldTaskEnv

    return MetaWorldTaskEnv(task, instruction_split=split)


@cache
def _tokenizer(models_dir: str, name: str) -> Any:
    from embodied.codecs.tokens import TokenCodec

    return TokenCodec(Path(models_dir) / name)


@cache
def _policy(models_dir: str, name: str) -> Any:
    from embodied.policy import OnnxPolicy

    return OnnxPolicy(Path(models_dir) / name)


def _make_pixel_codec(name: str) -> Any:
    from embodied.codecs import make_codec

    return make_codec(name)


def _trace(name: str) -> Any:
    from embodied.link.catalog import entry

    return entry(name).load()


# --------------------------------------------------------------------------- one episode
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
) -> EpisodeResult:
    """One closed-loop episode; deterministic given (point, task, seed).

    On a trace, the camera streams for ``link_warmup_s`` before the episode starts (the
    first frame, encoded at the controller's budgets; the policy does not act on these), as
    on a robot whose camera is up before a task is given: controllers start the episode
    with what they learned of the link, not from nothing, and the link's queue carries
    over."""
    from embodied.control.base import ControllerSettings
    from embodied.control.registry import make_controller
    from embodied.loop import LinkSession
    from embodied.packet import PacketError
    from embodied.policy import ActionChunker

    md = str(models_dir)
    env = _env(task, instruction_split)
    obs, _ = env.reset(seed=seed)
    instruction = obs["instruction"]
    policy = _policy(md, point.policy_name)
    vision = _tokenizer(md, point.tokenizer) if point.codec != "blind" else None
    k_max = policy.spec.k_max
    chunker = ActionChunker(action_dim=policy.spec.action_dim)

    enc = dec = None
    budgets: list[int] = []
    if point.codec == "tokens":
        enc = dec = vision
        budgets = list(range(1, vision.k_max + 1))
    elif point.codec not in ("clean", "blind"):
        enc, dec = _make_pixel_codec(point.codec), _make_pixel_codec(point.codec)
        budgets = list(enc.budgets())

    controller = None
    if point.trace is not None and point.controller is not None:
        kmax = len(budgets) if budgets else k_max
        cap = min(point.max_budget or kmax, kmax)
        settings = ControllerSettings(deadline_ms=point.deadline_ms, min_budget=1, max_budget=cap,
                                      k_max=kmax)  # fmt: skip
        controller = make_controller(point.controller, settings, frame_rate_hz=control_hz)
    trace = _trace(point.trace) if point.trace else None
    from embodied.link.emulator import LinkConfig

    session = LinkSession(trace, controller, LinkConfig(overhead_bytes=point.overhead_bytes))
    # Each episode meets the link at its own moment of the trace (drawn from the seed), so that
    # a sweep samples the trace's good and bad stretches instead of replaying its first seconds.
    t0 = float(np.random.default_rng([seed, 0x7ACE]).uniform(0, trace.period_s)) if trace else 0.0

    dt = 1.0 / control_hz
    fid = 0  # frame ids on the link (warm-up frames first)
    if trace is not None and link_warmup_s > 0:
        for _ in range(round(link_warmup_s * control_hz)):
            choice = session.next_budget(t0, fixed=_fixed_budget(point))
            if choice != 0 or point.controller is None:
                e = _encode(point, enc, budgets, obs["image"], int(choice), fid, t0)
                session.send(fid, t0, int(choice), len(e.packet), compute_ms / 1e3)
            fid += 1
            t0 += dt
    deadline = point.deadline_ms / 1e3
    inflight: list[
        tuple[float, int, Any, np.ndarray, int]
    ] = []  # arrival, step, payload, proprio, k
    bits, hbits, wbits, lat, kk = [], [], [], [], []
    misses = decode_errors = 0
    success = False
    steps = max_steps or env.max_steps
    for step in range(steps):
        now = t0 + step * dt
        frame, proprio = obs["image"], obs["proprio"]
        # ---- sender: encode this frame and put it on the link
        if point.codec in ("clean", "blind"):
            k = 0 if point.codec == "blind" else k_max
            payload: Any = frame
            size, hdr = (RAW_BITS_64 // 8 if point.codec == "clean" else 0), 0
            arrival: float | None = now + compute_ms / 1e3 if point.trace is None else None
            if point.trace is not None:
                raise ValueError("clean/blind points run on the ideal link only")
        else:
            choice = session.next_budget(now, fixed=_fixed_budget(point))
            fid += 1
            if choice == 0 and point.controller is not None:  # the controller skips this frame
                kk.append(0)
                action = chunker.next_action()
                obs, _, terminated, truncated, info = env.step(action)
                if terminated or truncated:
                    success = bool(info["success"])
                    break
                continue
            e = _encode(point, enc, budgets, frame, int(choice), step, now)
            k = int(choice)
            payload, size, hdr = e.packet, len(e.packet), e.header_bytes
            d = session.send(fid - 1, now, k, size, compute_ms / 1e3)
            arrival = d.arrival_time
            wbits.append(d.wire_bytes * 8)
        bits.append(size * 8)
        hbits.append(hdr * 8)
        kk.append(k)
        if arrival is None or arrival - now > deadline:
            misses += 1
        if arrival is not None:
            inflight.append((arrival, step, payload, proprio, k))
            lat.append((arrival - now) * 1000)
        # ---- receiver: newest delivered observation → policy → chunk
        ready = [x for x in inflight if x[0] <= now + dt * 0.999]
        if ready:
            inflight = [x for x in inflight if x[0] > now + dt * 0.999]
            _, obs_step, pl, prop, kb = max(ready, key=lambda x: x[1])
            try:
                ids, budget = _receive(point, pl, kb, vision, dec, k_max)
            except PacketError:
                decode_errors += 1
                ids = None
            if ids is not None:
                chunk = policy.infer_batch(ids[None], np.array([budget]), [instruction],
                                           prop[None])[0]  # fmt: skip
                chunker.submit(chunk, obs_step=obs_step)
        action = chunker.next_action()
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            success = bool(info["success"])
            break
    lat_arr = np.array(lat) if lat else np.array([math.nan])
    return EpisodeResult(
        point=point.key(), task=task, seed=seed, success=success, steps=step + 1,
        frames_sent=len(bits), bits_mean=float(np.mean(bits)) if bits else math.nan,
        header_bits_mean=float(np.mean(hbits)) if hbits else math.nan,
        wire_bits_mean=float(np.mean(wbits or bits)) if (wbits or bits) else math.nan,
        latency_mean_ms=float(np.nanmean(lat_arr)), latency_p95_ms=float(np.nanpercentile(lat_arr, 95)),
        deadline_misses=misses, held_steps=chunker.held_steps, budget_mean=float(np.mean(kk)),
        decode_errors=decode_errors,
    )  # fmt: skip


def _fixed_budget(point: Point) -> int | None:
    """The budget a point without a controller sends at (0: a pixel codec by target size)."""
    if point.controller is not None:
        return None
    if point.codec != "tokens" and point.target_bytes is not None:
        return 0  # sentinel: encode by target size
    return point.budget


def _encode(point: Point, enc: Any, budgets: list, frame: np.ndarray, choice: int, frame_id: int,
            now: float) -> Any:  # fmt: skip
    """Sender side: one frame → packet at the chosen budget (or target size)."""
    kw = {"frame_id": frame_id % 256, "stamp_ms": int(now * 1000) % 65536}
    if point.codec == "tokens":
        return enc.encode(frame, budget=choice, **kw)
    if point.target_bytes is not None and point.controller is None:
        return enc.encode(frame, target_bytes=point.target_bytes, **kw)
    return enc.encode(frame, budget=budgets[choice - 1], **kw)


def _receive(point: Point, payload: Any, k: int, vision: Any, dec: Any, k_max: int):
    """Receiver side: packet (or raw frame) → (token ids padded to k_max, budget)."""
    if point.codec == "blind":
        return np.zeros(k_max, np.int64), 0
    if point.codec == "clean":
        _, ids = vision.tokenize(payload[None])
        return ids[0].astype(np.int64), k_max
    if point.codec == "tokens":
        d = dec.decode(payload)
        return np.asarray(d.padded, np.int64), int(d.budget)
    d = dec.decode(payload)
    if d.image is None:
        return None, 0
    _, ids = vision.tokenize(d.image[None])
    return ids[0].astype(np.int64), k_max


def episode_job(args: tuple[dict, str, int, dict]) -> dict:
    point, task, seed, kw = args
    r = run_episode(Point(**point), task, seed, **kw)
    return asdict(r)

"""``embodied record-to-lerobot``: an ``embodied record`` MCAP → a LeRobotDataset v3.

    embodied record --out demos.mcap --duration 60        # e.g. a sim robot with driver:=expert
    embodied record-to-lerobot demos.mcap --out data/lerobot/demos

Read with ``mcap_ros2.reader`` (the decoder for the ``ros2msg`` schemas ``embodied record``
writes; no rclpy needed) and written with LeRobot's own writer (:class:`sim.lerobot.LeRobotWriter`).

* **Episodes**: ``robot/events``, from a ``start`` to the ``end`` of the same episode number;
  an episode the recording cut (no start or no end) is left out. ``end``'s ``success`` becomes
  ``next.success`` on the last frame; ``start``'s ``instruction`` (else the latest
  ``robot/instruction``) is every frame's task.
* **Frames**: one per executed control step: the ``camera/image_raw`` image and the
  ``robot/proprio`` state of the same header stamp, and the action executed on that
  observation. A step whose image or state the recorder did not get (both are best effort)
  is left out and counted.
* **Actions**: ``robot/executed_action`` where recorded (the sim robot publishes each step's
  action, labelled with the stamp of the observation it was executed on: exact). Older
  recordings without it: the policy's chunks (``policy/actions``) replayed through the robot's
  own :class:`embodied.policy.ActionChunker` (stale rows dropped, newer chunks replacing older,
  holds, watchdog holds from the ``hold`` events), a chunk counted as arrived before step k
  when the recorder logged it before the observation that step k produced; a chunk that
  reached the robot within the few milliseconds of a step's simulation can land one step off.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ros_nodes.wire import TOPICS, parse_chunk_label

ROLES = ("image", "proprio", "events", "instruction", "actions", "executed")


def _topic(role: str) -> str | None:
    t = TOPICS.get(role)
    return None if t is None else "/" + t.name.lstrip("/")


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def decode_image(msg: Any) -> np.ndarray:
    """A decoded ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) → uint8 [H, W, 3]."""
    enc = str(msg.encoding).lower()
    if enc not in _CHANNELS:
        raise ValueError(f"image encoding {msg.encoding!r} not supported ({', '.join(_CHANNELS)})")
    c = _CHANNELS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(bytes(msg.data), np.uint8)
    if h < 1 or w < 1 or step < w * c or buf.size < h * step:
        raise ValueError(f"image {w}x{h} step {step} with {buf.size} bytes is inconsistent")
    img = buf[: h * step].reshape(h, step)[:, : w * c].reshape(h, w, c)
    if enc in ("bgr8", "bgra8"):
        img = img[..., 2::-1]
    elif enc == "mono8":
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def decode_chunk(msg: Any) -> tuple[np.ndarray, int | None, int | None]:
    """A decoded action-chunk ``Float32MultiArray`` → (rows [H, A], source stamp, frame)."""
    dims = list(msg.layout.dim)
    if len(dims) != 2:
        raise ValueError(f"action layout has {len(dims)} dims, expected [chunk, action]")
    h, a = int(dims[0].size), int(dims[1].size)
    data = np.asarray(list(msg.data), np.float32)
    off = int(msg.layout.data_offset)
    if data.size < off + h * a:
        raise ValueError(f"action data has {data.size} values, layout needs {off + h * a}")
    stamp, frame = parse_chunk_label(str(dims[0].label))
    return data[off : off + h * a].reshape(h, a), stamp, frame


@dataclass
class _Obs:
    log: int
    stamp: int


@dataclass
class EpisodePlan:
    """One recorded episode: the observation stamps of its frames and their actions."""

    number: int
    start_log: int
    end_log: int
    instruction: str
    success: bool
    stamps: list[int] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    steps: int = 0  # the end event's count


@dataclass
class Recording:
    """What pass 1 reads: everything but the pixels."""

    images: list[_Obs] = field(default_factory=list)
    image_shape: tuple[int, int, int] | None = None
    proprio: dict[int, np.ndarray] = field(default_factory=dict)
    proprio_obs: list[_Obs] = field(default_factory=list)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    instructions: list[tuple[int, str]] = field(default_factory=list)
    executed: list[tuple[int, int | None, int | None, np.ndarray]] = field(default_factory=list)
    chunks: list[tuple[int, int | None, np.ndarray]] = field(default_factory=list)
    unreadable: int = 0


def _messages(path: Path, topics: Iterable[str]) -> Iterable[tuple[str, int, Any]]:
    """(topic, log time ns, decoded message) in log-time order."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with Path(path).open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _, channel, message, decoded in reader.iter_decoded_messages(
            topics=list(topics), log_time_order=True
        ):
            yield channel.topic, int(message.log_time), decoded


def read_recording(path: Path) -> Recording:
    role_of = {t: r for r in ROLES if (t := _topic(r)) is not None}
    rec = Recording()
    for topic, log, msg in _messages(path, role_of):
        role = role_of[topic]
        try:
            if role == "image":
                rec.images.append(_Obs(log, _stamp(msg)))
                if rec.image_shape is None:
                    rec.image_shape = (int(msg.height), int(msg.width), 3)
            elif role == "proprio":
                rec.proprio[_stamp(msg)] = np.asarray(list(msg.position), np.float32)
                rec.proprio_obs.append(_Obs(log, _stamp(msg)))
            elif role == "events":
                rec.events.append((log, json.loads(str(msg.data))))
            elif role == "instruction":
                rec.instructions.append((log, str(msg.data)))
            elif role == "executed":
                rows, stamp, frame = decode_chunk(msg)
                if rows.shape[0] == 1:
                    rec.executed.append((log, stamp, frame, rows[0]))
            elif role == "actions":
                rows, stamp, _ = decode_chunk(msg)
                rec.chunks.append((log, stamp, rows))
        except (ValueError, AttributeError, TypeError):
            rec.unreadable += 1
    return rec


def _episodes(rec: Recording) -> tuple[list[EpisodePlan], int]:
    """Complete episodes (start … end of one number) and how many were cut off."""
    plans: list[EpisodePlan] = []
    cut = 0
    open_: tuple[int, dict[str, Any]] | None = None
    for log, ev in rec.events:
        kind = ev.get("event")
        if kind == "start":
            cut += open_ is not None
            open_ = (log, ev)
        elif kind == "end":
            if open_ is None or open_[1].get("episode") != ev.get("episode"):
                cut += 1
                open_ = None
                continue
            start_log, start = open_
            instruction = str(start.get("instruction") or "")
            if not instruction:
                before = [text for t, text in rec.instructions if t <= log]
                instruction = before[-1] if before else ""
            plans.append(EpisodePlan(
                number=int(ev.get("episode", len(plans))), start_log=start_log, end_log=log,
                instruction=instruction, success=bool(ev.get("success", False)),
                steps=int(ev.get("steps", 0)),
            ))  # fmt: skip
            open_ = None
    return plans, cut + (open_ is not None)


def _plan_from_executed(rec: Recording, plan: EpisodePlan) -> None:
    for log, stamp, _frame, action in rec.executed:
        if plan.start_log <= log <= plan.end_log and stamp is not None:
            plan.stamps.append(stamp)
            plan.actions.append(action)


def _plan_from_chunks(rec: Recording, plan: EpisodePlan, after_log: int) -> None:
    """Replay the recorded chunks through the robot's ActionChunker (see the module doc)."""
    from embodied.policy import ActionChunker

    seen: dict[int, int] = {}
    for o in sorted(rec.images + rec.proprio_obs, key=lambda o: o.log):
        if after_log < o.log <= plan.end_log:
            seen.setdefault(o.stamp, o.log)
    before = [s for s, t in seen.items() if t < plan.start_log]  # the reset frame (and warm-ups)
    during = sorted((s for s, t in seen.items() if t >= plan.start_log), key=lambda s: seen[s])
    if not before:
        return
    obs = [max(before, key=lambda s: seen[s]), *during]
    step_of = {s: 0 for s in before} | {s: k for k, s in enumerate(obs) if k > 0}
    holds = {int(ev.get("step", -1)) for t, ev in rec.events
             if ev.get("event") == "hold" and ev.get("reason") == "watchdog"
             and plan.start_log <= t <= plan.end_log}  # fmt: skip
    chunks = [c for c in rec.chunks if after_log < c[0] <= plan.end_log]
    width = next((c[2].shape[1] for c in chunks if c[2].ndim == 2 and c[2].shape[1]), 4)
    chunker = ActionChunker(action_dim=width)
    ci = 0
    for k in range(len(obs) - 1):
        tick = seen[obs[k + 1]]  # step k ran before the observation it produced
        while ci < len(chunks) and chunks[ci][0] < tick:
            _, stamp, rows = chunks[ci]
            ci += 1
            if rows.shape[0] == 0:
                chunker.drop_chunk()  # the policy's stop command
                continue
            j = step_of.get(stamp) if stamp is not None else None
            if j is None or j > k or rows.shape[1] != width:
                continue
            try:
                chunker.submit(rows, obs_step=j)
            except ValueError:
                continue
        if k in holds:
            chunker.drop_chunk()
        plan.stamps.append(obs[k])
        plan.actions.append(chunker.next_action())


def nominal_fps() -> int:
    """The sim robot's ``control_hz`` default (a recording holds no parameters, and the
    stamps' rate is the loaded machine's, not the nominal one)."""
    from ros_nodes.settings import SimRobotNodeSettings

    return round(SimRobotNodeSettings().control_hz)


def measured_fps(plans: Sequence[EpisodePlan]) -> float:
    """Steps per second as recorded: the episodes' mean observation interval."""
    gaps = np.concatenate([np.diff(np.asarray(p.stamps, np.int64)) for p in plans]
                          + [np.zeros(0, np.int64)])  # fmt: skip
    gaps = gaps[(gaps > 0) & (gaps < 1_000_000_000)]
    return 1e9 / float(gaps.mean()) if len(gaps) else float("nan")


@dataclass
class ConvertReport:
    out: Path
    episodes: int
    frames: int
    fps: int
    measured_fps: float  # the recorded steps' rate
    action_source: str  # "executed" or "replayed chunks"
    cut_episodes: int  # started or ended outside the recording
    unsolved_skipped: int = 0
    missing_steps: int = 0  # steps without an image or a proprio message
    steps_without_action: int = 0  # end event's count minus the actions found


def record_to_lerobot(
    mcap: Path, out: Path, *, camera: str = "corner", fps: int | None = None,
    video: bool = True, vcodec: str = "h264", repo_id: str = "local/embodied-record",
    successful_only: bool = False, overwrite: bool = False,
) -> ConvertReport:  # fmt: skip
    """The conversion of the module doc; raises ValueError when nothing fits."""
    from sim.lerobot import LeRobotWriter

    mcap = Path(mcap)
    rec = read_recording(mcap)
    if rec.image_shape is None:
        raise ValueError(f"{mcap}: no message on {_topic('image')}")
    plans, cut = _episodes(rec)
    if not plans:
        raise ValueError(f"{mcap}: no complete episode (start and end) on {_topic('events')}")
    source = "executed" if rec.executed else "replayed chunks"
    previous_end = 0
    for plan in plans:
        if rec.executed:
            _plan_from_executed(rec, plan)
        else:
            _plan_from_chunks(rec, plan, previous_end)
        previous_end = plan.end_log
    skipped = sum(1 for p in plans if successful_only and not p.success)
    plans = [p for p in plans if p.stamps and (p.success or not successful_only)]
    if not plans:
        raise ValueError(f"{mcap}: no episode with actions ({source})")
    rate = int(fps or nominal_fps())
    writer = LeRobotWriter(out, {camera: rec.image_shape}, rate, repo_id=repo_id, video=video,
                           vcodec=vcodec, overwrite=overwrite)  # fmt: skip
    wanted: dict[int, int] = {s: i for i, p in enumerate(plans) for s in p.stamps}
    pixels: dict[int, np.ndarray] = {}
    missing = 0
    done = 0

    def flush(upto: int) -> None:  # write episodes [done, upto)
        nonlocal done, missing
        while done < upto:
            p = plans[done]
            keep = [k for k, s in enumerate(p.stamps) if s in pixels and s in rec.proprio]
            missing += len(p.stamps) - len(keep)
            if keep:
                images = np.stack([pixels.pop(p.stamps[k]) for k in keep])
                writer.add_episode({camera: images}, np.stack([rec.proprio[p.stamps[k]]
                                                               for k in keep]),
                                   np.stack([p.actions[k] for k in keep]), p.instruction,
                                   p.success)  # fmt: skip
            for s in p.stamps:
                pixels.pop(s, None)
            done += 1

    margin = 1_000_000_000  # an image logged 1 s after an episode's end is past it
    for _, log, msg in _messages(mcap, [str(_topic("image"))]):
        while done < len(plans) and log > plans[done].end_log + margin:
            flush(done + 1)
        stamp = _stamp(msg)
        if stamp in wanted and wanted[stamp] >= done:
            img = decode_image(msg)
            if img.shape != rec.image_shape:
                raise ValueError(f"{mcap}: images change size ({rec.image_shape} → {img.shape})")
            pixels[stamp] = img
    flush(len(plans))
    writer.finalize()
    if writer.episodes == 0:
        raise ValueError(f"{mcap}: no step had both an image and a proprio message")
    short = sum(max(0, p.steps - len(p.stamps)) for p in plans)
    return ConvertReport(Path(out), writer.episodes, writer.frames, rate, measured_fps(plans),
                         source, cut, skipped, missing, short)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    from sim.lerobot import SIM_FPS, VCODECS

    ap = argparse.ArgumentParser(
        prog="embodied record-to-lerobot", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    ap.add_argument("mcap", type=Path, help="a recording of `embodied record`")
    ap.add_argument("--out", type=Path, required=True, help="new LeRobotDataset root")
    ap.add_argument("--camera", default="corner", help="the key is observation.images.CAMERA")
    ap.add_argument(
        "--fps",
        type=int,
        default=None,
        help="the dataset's frame rate (default: the sim robot's control_hz, "
        f"{nominal_fps()}; Meta-World's own step rate is {SIM_FPS})",
    )
    ap.add_argument("--images", action="store_true", help="PNG images instead of video")
    ap.add_argument("--vcodec", choices=VCODECS, default="h264")
    ap.add_argument("--repo-id", default="local/embodied-record")
    ap.add_argument("--successful-only", action="store_true", help="leave unsolved episodes out")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = ap.parse_args(argv)
    try:
        r = record_to_lerobot(a.mcap, a.out, camera=a.camera, fps=a.fps, video=not a.images,
                              vcodec=a.vcodec, repo_id=a.repo_id,
                              successful_only=a.successful_only, overwrite=a.overwrite)  # fmt: skip
    except (ImportError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"embodied record-to-lerobot: {err}", file=sys.stderr)
        return 2
    print(f"wrote {r.out}: LeRobotDataset v3, {r.episodes} episodes, {r.frames} frames at "
          f"{r.fps} fps (recorded: {r.measured_fps:.1f} steps/s); actions: {r.action_source}")  # fmt: skip
    notes = {"episodes cut by the recording": r.cut_episodes,
             "unsolved episodes left out": r.unsolved_skipped,
             "steps without an image or proprio": r.missing_steps,
             "steps without an executed action": r.steps_without_action}  # fmt: skip
    for what, n in notes.items():
        if n:
            print(f"  {n} {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

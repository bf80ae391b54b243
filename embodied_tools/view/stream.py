"""One view of one stream in rerun: what the camera saw, what the receiver makes of the
packets actually sent, and what it cost, over time.

Every source (a running ROS 2 graph, an ``embodied eval`` episode, an MCAP recording) feeds
the same :class:`StreamView` methods, so the three look the same: the same entity paths,
one timeline (``stream``: seconds since the first thing seen, by the stream's own clock:
capture stamps, the sim's time or the recording's stamps) and one layout (:func:`blueprint`).

Entity paths (one meaning each; bits are packet bytes × 8 as in ``embodied.pipeline``):

``camera/<cam>``            the frame the camera captured
``received/<cam>``          the receiver's picture of the packet actually sent: the
                            tokenizer's decoder at the packet's budget, or the pixel codec's
                            decoded frame
``bits/payload|header|transport``   bits of each packet (transport: UDP/IP + DDS framing)
``rate/payload_kbps|wire_kbps``     over the last second; ``rate/capacity_kbps``: the
                            controller's capacity estimate (controllers that keep one)
``quality/psnr_db``         the received picture against the camera frame it was made from
``budget/sent``             the budget in each packet's header; ``budget/setting``: the
                            tokenizer's budget parameter (what ``embodied tune`` sets)
``latency/arrival_ms``      capture → arrival at the policy, per packet;
                            ``latency/action_p50_ms|p99_ms``: capture → action published;
                            ``latency/deadline_ms``
``misses/deadline_pct``     late + lost + skipped over frames captured (the pipeline's one
                            definition); ``misses/skipped|late|lost``: counts
``packets/dropped|malformed``       the policy's drops, and packets this view could not read
``task/belief``, ``task/instruction``, ``events``   the policy's reading of the instruction,
                            the instruction, and episode start / end / success, holds
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rerun as rr
import rerun.blueprint as rrb

from embodied.metrics import psnr
from embodied.packet import PacketError, bits, decode_packet

TIMELINE = "stream"
RATE_WINDOW_S = 1.0


def blueprint(cameras: tuple[str, ...] = ("front",), history_s: float = 20.0) -> rrb.Blueprint:
    """The layout: camera and reconstruction side by side, the task and events beside them;
    bits, rate and budget, then latency, misses and drops, over the last ``history_s``."""
    recent = rrb.VisibleTimeRange(
        TIMELINE,
        start=rrb.TimeRangeBoundary.cursor_relative(seconds=-history_s),
        end=rrb.TimeRangeBoundary.cursor_relative(),
    )

    def series(origin: str, name: str) -> rrb.TimeSeriesView:
        return rrb.TimeSeriesView(origin=origin, name=name, time_ranges=[recent])

    images: list[Any] = []
    for cam in cameras:
        images.append(rrb.Spatial2DView(origin=f"camera/{cam}", name=f"camera {cam}"))
        images.append(rrb.Spatial2DView(origin=f"received/{cam}", name=f"received {cam}"))
    return rrb.Blueprint(
        rrb.Vertical(
            rrb.Horizontal(
                *images,
                rrb.Vertical(
                    rrb.TextDocumentView(origin="task/instruction", name="instruction"),
                    rrb.TextLogView(origin="events", name="events"),
                ),
            ),
            rrb.Horizontal(
                series("quality", "received vs camera (PSNR dB)"),
                series("bits", "bits per frame"),
                series("rate", "kbit/s"),
                series("budget", "budget (tokens)"),
            ),
            rrb.Horizontal(
                series("latency", "latency (ms)"),
                series("misses", "deadline misses"),
                series("packets", "dropped packets"),
                series("task/belief", "task belief"),
            ),
            row_shares=[3, 2, 2],
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(state="collapsed"),
    )


@dataclass
class _Rate:
    """Bits over the last :data:`RATE_WINDOW_S` (kbit/s)."""

    window: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def add(self, t: float, nbits: int) -> float:
        self.window.append((t, nbits))
        self.total += nbits
        while self.window and self.window[0][0] <= t - RATE_WINDOW_S:
            self.total -= self.window.popleft()[1]
        return self.total / RATE_WINDOW_S / 1e3


class PacketPictures:
    """Packet → the receiver's picture of it, per stream format: the tokenizer's decoder at
    the packet's budget (tokens), or the pixel codec's decoded frame. Stateful codecs (H.264)
    see every packet in order; pictures are made at most ``hz`` times a second."""

    def __init__(self, tokenizer_dir: str | Path | None, hz: float = 10.0) -> None:
        self.tokenizer_dir = tokenizer_dir
        self.period = 1.0 / hz if hz > 0 else 0.0
        self._codecs: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self.unavailable: dict[str, str] = {}  # format -> why no picture

    def _codec(self, fmt: str) -> Any:
        if fmt in self._codecs or fmt in self.unavailable:
            return self._codecs.get(fmt)
        from embodied.codecs import make_codec
        from ros_nodes.wire import PacketFormat

        try:
            pf = PacketFormat.parse(fmt)
            if pf.codec == "tokens":
                codec = make_codec("tokens", model_dir=self.tokenizer_dir)
                if codec.model_id != pf.model_id:
                    raise ValueError(
                        f"the stream's tokenizer {pf.model_id:08x} is not the one this view "
                        f"holds ({codec.model_id:08x}, {self.tokenizer_dir}): --tokenizer-dir"
                    )
            else:
                codec = make_codec(pf.codec, frame_shape=pf.frame_shape)
        except (ValueError, OSError) as err:
            self.unavailable[fmt] = str(err)
            return None
        self._codecs[fmt] = codec
        return codec

    def picture(self, fmt: str, packet: bytes, t: float, stream: str = "front") -> Any:
        """The decoded picture, None when it is not due (or cannot be made; see
        ``unavailable``). Raises ``PacketError`` for a packet the codec refuses."""
        codec = self._codec(fmt)
        if codec is None:
            return None
        due = t - self._last.get(stream, -math.inf) >= self.period
        if hasattr(codec, "reconstruct"):  # tokens: stateless, decoded when a picture is due
            if not due:
                return None
            img = codec.decode(packet, image=True).image
        else:
            img = codec.decode(packet).image  # every packet: the decoder may keep state
            if not due:
                return None
        self._last[stream] = t
        return img


class StreamView:
    """Logs one stream to a rerun recording (see the module docstring for the paths)."""

    def __init__(
        self,
        rec: rr.RecordingStream,
        *,
        tokenizer_dir: str | Path | None = None,
        picture_hz: float = 10.0,
        camera_hz: float = 10.0,
        cameras: tuple[str, ...] = ("front",),
        send_blueprint: bool = True,
    ) -> None:
        self.rec = rec
        self.pictures = PacketPictures(tokenizer_dir, picture_hz)
        self.camera_period = 1.0 / camera_hz if camera_hz > 0 else 0.0
        self._camera_last: dict[str, float] = {}
        self._frames: dict[str, dict[float, np.ndarray]] = {}
        self._t0: float | None = None
        self._now = 0.0
        self._payload = _Rate()
        self._wire = _Rate()
        self.malformed = 0
        self._told: set[str] = set()
        self.logged = 0  # log calls (tests, progress)
        if send_blueprint:
            rec.send_blueprint(blueprint(cameras))

    # -- time ----------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """The stream time last shown (s on the stream's clock); before anything was shown,
        the wall clock (a live graph's stamps are on it)."""
        return self._now if self._t0 is not None else time.time()

    def at(self, t: float) -> float:
        """Set the timeline to stream time ``t`` (seconds on the stream's clock)."""
        if self._t0 is None:
            self._t0 = t
        self._now = t
        rel = max(0.0, t - self._t0)
        self.rec.set_time(TIMELINE, duration=rel)
        return rel

    def _scalar(self, path: str, value: float | None) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        self.rec.log(path, rr.Scalars(float(value)))
        self.logged += 1

    # -- what the camera saw and what arrived ----------------------------------------------
    def camera(self, t: float, rgb: np.ndarray, camera: str = "front") -> None:
        frames = self._frames.setdefault(camera, {})
        frames[round(t, 6)] = rgb  # by capture time: the packet of this frame is compared to it
        while len(frames) > 64:
            del frames[next(iter(frames))]
        if t - self._camera_last.get(camera, -math.inf) < self.camera_period:
            return
        self._camera_last[camera] = t
        self.at(t)
        self.rec.log(f"camera/{camera}", rr.Image(rgb))
        self.logged += 1

    def packet(
        self,
        t_capture: float,
        data: bytes,
        fmt: str,
        transport_bytes: int | None = None,
        camera: str = "front",
    ) -> None:
        """A packet the sender sent (at its capture time): bits, budget, the picture."""
        from ros_nodes.wire import PacketFormat, PacketFormatError

        self.at(t_capture)
        try:
            header, _ = decode_packet(data, PacketFormat.parse(fmt).model_id)  # the CRC too
            count = bits(data)
        except (PacketError, PacketFormatError) as err:
            self.malformed += 1
            self._scalar("packets/malformed", self.malformed)
            self.rec.log("events", rr.TextLog(f"unreadable packet: {err}", level="WARN"))
            return
        self._scalar("bits/payload", count.payload_bits)
        self._scalar("bits/header", count.header_bits)
        wire = count.total_bits
        if transport_bytes is not None:
            self._scalar("bits/transport", 8 * transport_bytes)
            wire += 8 * transport_bytes
        self._scalar("rate/payload_kbps", self._payload.add(t_capture, count.payload_bits))
        self._scalar("rate/wire_kbps", self._wire.add(t_capture, wire))
        self._scalar("budget/sent", header.budget)
        try:
            img = self.pictures.picture(fmt, data, t_capture, camera)
        except (PacketError, ValueError) as err:
            self.malformed += 1
            self._scalar("packets/malformed", self.malformed)
            self.rec.log("events", rr.TextLog(f"undecodable packet: {err}", level="WARN"))
            return
        if img is not None:
            self.rec.log(f"received/{camera}", rr.Image(img))
            self.logged += 1
            seen = self._frames.get(camera, {}).get(round(t_capture, 6))
            if seen is not None and seen.shape == img.shape:
                self._scalar("quality/psnr_db", psnr(seen, img))
        elif fmt in self.pictures.unavailable and fmt not in self._told:
            self._told.add(fmt)  # once per stream format
            why = self.pictures.unavailable[fmt]
            self.rec.log("events", rr.TextLog(f"no reconstruction: {why}", level="WARN"))

    def arrival(self, t_capture: float, latency_ms: float) -> None:
        self.at(t_capture)
        self._scalar("latency/arrival_ms", latency_ms)

    # -- node statistics ------------------------------------------------------------------
    def tokenizer_stats(self, t: float, values: Mapping[str, Any]) -> None:
        """The sender's statistics (the tokenizer node's ``/diagnostics`` keys)."""
        self.at(t)
        setting = _num(values.get("budget_param"))  # 0 = max_budget (the setting's meaning)
        self._scalar("budget/setting", setting or _num(values.get("max_budget")))
        self._scalar("rate/capacity_kbps", _num(values.get("capacity_kbps")))
        self._scalar("latency/deadline_ms", _num(values.get("deadline_ms")))
        self._scalar("misses/deadline_pct", _num(values.get("deadline_miss_pct")))
        for fate in ("skipped", "late", "lost"):
            self._scalar(f"misses/{fate}", _num(values.get(fate)))

    def policy_stats(self, t: float, values: Mapping[str, Any]) -> None:
        """The receiver's statistics (the policy node's ``/diagnostics`` keys)."""
        self.at(t)
        self._scalar("latency/action_p50_ms", _num(values.get("latency_p50_ms")))
        self._scalar("latency/action_p99_ms", _num(values.get("latency_p99_ms")))
        self._scalar("packets/dropped", _num(values.get("packets_dropped")))
        self._scalar("task/belief", _num(values.get("task_belief")))

    # -- words -------------------------------------------------------------------------------
    def instruction(self, t: float, text: str, task: str = "") -> None:
        self.at(t)
        body = f"**{text}**" + (f"\n\nread as: {task}" if task else "")
        self.rec.log("task/instruction", rr.TextDocument(body, media_type="text/markdown"))
        self.logged += 1

    def event(self, t: float, event: Mapping[str, Any]) -> None:
        """A robot event (``robot/events`` JSON: start, end with success, hold, resume...)."""
        self.at(t)
        kind = str(event.get("event", "?"))
        level = "INFO"
        if kind == "end":
            level = "INFO" if event.get("success") else "WARN"
        elif kind == "hold":
            level = "WARN"
        rest = {k: v for k, v in event.items() if k not in ("event", "t")}
        self.rec.log("events", rr.TextLog(f"{kind} {json.dumps(rest)}", level=level))
        self.logged += 1
        if kind == "end":
            self._scalar("events/success", 1.0 if event.get("success") else 0.0)


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None

"""``embodied view``: see what the policy sees, live, in the rerun viewer.

    embodied view                       # the running ROS 2 graph, served to a browser
    embodied view run.mcap              # a recording of `embodied record`, at recorded time
    embodied view run.mcap --fast --save run.rrd   # as fast as possible, into a file
    embodied eval --view --tasks drawer-open --codecs tokens --budgets 4   # one eval episode

Where it goes (one of): ``--web`` (the default: rerun's web viewer served from this machine,
open the printed address; it stays up until Ctrl-C), ``--spawn`` (the native viewer),
``--connect URL`` (a viewer already running, ``rerun+http://HOST:9876/proxy``), ``--save
FILE.rrd`` (open later with ``rerun FILE.rrd``). ``--screenshot PNG`` (with ``--web``) opens
the served viewer in headless Chromium after ``--screenshot-after`` seconds and saves what
it shows.

Why rerun: LeRobot visualizes its datasets with it, its web viewer ships inside the
``rerun-sdk`` wheel and is served from this machine with no internet (Foxglove's app is
a hosted web page, which a robot without internet cannot open), and it records to a file
that the same viewer opens.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_GRPC_PORT = 9876
DEFAULT_WEB_PORT = 9090


def add_output_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("where the view goes")
    out = g.add_mutually_exclusive_group()
    out.add_argument("--web", action="store_true", help="serve the web viewer (default)")
    out.add_argument("--spawn", action="store_true", help="start the native rerun viewer")
    out.add_argument("--connect", metavar="URL", help="send to a running viewer (rerun+http://...)")
    out.add_argument("--save", metavar="FILE.rrd", help="write a recording file")
    g.add_argument("--web-port", type=int, default=DEFAULT_WEB_PORT)
    g.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT)
    g.add_argument("--host", default="127.0.0.1", help="address printed for the browser")
    g.add_argument("--screenshot", metavar="PNG", help="with --web: a headless-Chromium screenshot")
    g.add_argument("--screenshot-after", type=float, default=20.0, metavar="S")
    g.add_argument(
        "--tokenizer-dir", default=None, help="the tokenizer whose decoder draws the received "
        "frames (default: the shipped tok-task; must be the stream's)",
    )  # fmt: skip
    g.add_argument("--picture-hz", type=float, default=10.0, help="reconstructions per second")
    g.add_argument("--camera-hz", type=float, default=10.0, help="camera frames per second shown")


@dataclass
class Output:
    """An open view: the recording stream, its ``StreamView``, and how to finish."""

    rec: Any
    view: Any
    url: str | None = None  # the browser's address (--web)
    args: argparse.Namespace | None = None

    def screenshot_later(self) -> threading.Thread | None:
        """With ``--screenshot``: take it ``--screenshot-after`` s from now, in the background."""
        a = self.args
        if a is None or not a.screenshot:
            return None
        if self.url is None:
            raise SystemExit("embodied view: --screenshot needs --web")

        def shoot() -> None:
            from embodied_tools.view.browser import screenshot

            path = screenshot(self.url or "", a.screenshot, wait_s=a.screenshot_after)
            print(f"embodied view: screenshot -> {path}", flush=True)

        t = threading.Thread(target=shoot, daemon=True)
        t.start()
        return t

    def finish(self, *, hold: bool) -> None:
        """Flush; with ``--web`` and ``hold`` keep serving until Ctrl-C."""
        self.rec.flush()
        if self.url is not None and hold:
            print(f"embodied view: serving {self.url} (Ctrl-C ends)", flush=True)
            try:
                while True:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                pass
        self.rec.disconnect()


def open_view(a: argparse.Namespace, name: str = "embodied") -> Output:
    import rerun as rr

    from embodied.modelfiles import MODELS_DIR
    from embodied_tools.view.stream import StreamView

    rec = rr.RecordingStream(f"embodied-view-{name}")
    url = None
    if a.save:
        Path(a.save).parent.mkdir(parents=True, exist_ok=True)
        rec.save(a.save)
    elif a.spawn:
        rec.spawn()
    elif a.connect:
        rec.connect_grpc(a.connect)
    else:
        grpc = rr.serve_grpc(grpc_port=a.grpc_port, recording=rec)
        rr.serve_web_viewer(web_port=a.web_port, open_browser=False, connect_to=grpc)
        url = f"http://{a.host}:{a.web_port}/?url={grpc.replace('127.0.0.1', a.host)}"
        print(f"embodied view: open {url}", flush=True)
    tok = a.tokenizer_dir or str(Path(MODELS_DIR) / "tok-task")
    view = StreamView(rec, tokenizer_dir=tok, picture_hz=a.picture_hz, camera_hz=a.camera_hz)
    return Output(rec, view, url, a)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied view", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument(
        "source", nargs="?", default="graph",
        help="'graph' (the running ROS 2 graph, default) or an MCAP file of `embodied record`",
    )  # fmt: skip
    ap.add_argument("--duration", type=float, default=None, help="graph: stop after S seconds")
    ap.add_argument("--fast", action="store_true", help="MCAP: as fast as possible")
    ap.add_argument("--speed", type=float, default=1.0, help="MCAP: replay speed at recorded time")
    add_output_args(ap)
    a = ap.parse_args(argv)
    if a.speed <= 0:
        ap.error(f"--speed must be positive, got {a.speed}")
    if a.screenshot and (a.save or a.spawn or a.connect):
        ap.error("--screenshot needs the served web viewer (--web)")
    from embodied_tools.view.ros import GraphTap, replay, watch_graph

    if a.source != "graph":
        path = Path(a.source)
        if not path.is_file():
            ap.error(f"{path}: no such recording (give 'graph' or an MCAP file)")
        out = open_view(a, path.stem)
        shot = out.screenshot_later()
        tap = GraphTap(out.view)
        try:
            n = replay(tap, path, realtime=not a.fast, speed=a.speed)
        except ValueError as err:
            ap.error(str(err))
        print(f"embodied view: replayed {n} messages of {path} ({tap.errors} unreadable)")
        if shot is not None:
            shot.join()
        out.finish(hold=shot is None)
        return 0
    out = open_view(a, "graph")
    shot = out.screenshot_later()
    tap = GraphTap(out.view)
    duration = a.duration
    if shot is not None and duration is None:
        duration = a.screenshot_after + 10.0
    watch_graph(tap, duration_s=duration)
    if shot is not None:
        shot.join()
    out.finish(hold=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

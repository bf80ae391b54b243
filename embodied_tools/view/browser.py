"""A screenshot of a page in headless Chromium (Debian's ``chromium`` package), driven over
the DevTools protocol on a pipe (``--remote-debugging-pipe``: no port, no websocket
library). Used to check the served rerun web viewer as a person would see it."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

#: Where Debian puts the browser itself (``/usr/bin/chromium`` is a shell wrapper).
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for c in CANDIDATES:
        path = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if path:
            return path
    return None


class Chromium:
    """One headless browser; :meth:`screenshot` opens a page, waits and captures it."""

    _IN, _OUT = 200, 201  # parked pipe ends, moved to fds 3 and 4 in the child

    def __init__(self, width: int = 1600, height: int = 900, binary: str | None = None) -> None:
        exe = binary or find_chromium()
        if exe is None:
            raise FileNotFoundError("no Chromium: apt-get install chromium")
        c_in, p_out = os.pipe()  # we write commands; the browser reads fd 3
        p_in, c_out = os.pipe()  # the browser writes replies on fd 4
        os.dup2(c_in, self._IN)
        os.dup2(c_out, self._OUT)
        os.close(c_in)
        os.close(c_out)

        def child() -> None:
            os.dup2(self._IN, 3)
            os.dup2(self._OUT, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--remote-debugging-pipe", "--no-first-run",
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--hide-scrollbars",
             f"--window-size={width},{height}", "about:blank"],
            preexec_fn=child, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(self._IN)
        os.close(self._OUT)
        self._w = os.fdopen(p_out, "wb", buffering=0)
        self._r = os.fdopen(p_in, "rb", buffering=0)
        self._buf = b""
        self._id = 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._w.write(json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = self._r.read(1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium exited during {method}")
                self._buf += chunk
            line, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(line)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def screenshot(self, url: str, out: str | Path, wait_s: float) -> Path:
        target = self.call("Target.createTarget", url=url)["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        time.sleep(wait_s)
        data = self.call("Page.captureScreenshot", session=session, format="png")["data"]
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._w.close()
        self._r.close()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def screenshot(url: str, out: str | Path, wait_s: float = 20.0, size=(1600, 900)) -> Path:
    with Chromium(*size) as browser:
        return browser.screenshot(url, out, wait_s)

"""Fixtures for the ROS node tests: real DDS, real processes, nothing left behind.

* Each test module gets its own random ``ROS_DOMAIN_ID`` and localhost-only discovery,
  so parallel runs (and a graph someone else runs on this machine) never cross.
* Every child process starts in its own session; teardown kills its whole process
  group (a launcher's nodes included), passing or failing.
* Models: the shipped ``embodied/models/{tok-task,vla-task}`` if present, else the smoke
  models under ``/tmp/models``; the tests skip, saying so, when neither exists.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODEL_CANDIDATES = (ROOT / "embodied" / "models", Path("/tmp/models"))


def _models() -> tuple[Path, Path] | None:
    for base in MODEL_CANDIDATES:
        tok, pol = base / "tok-task", base / "vla-task"
        if (tok / "tokenizer.json").is_file() and (pol / "policy.json").is_file():
            return tok, pol
    return None


@pytest.fixture(scope="session")
def models() -> tuple[Path, Path]:
    found = _models()
    if found is None:
        pytest.skip(
            "no tokenizer/policy models: expected tok-task + vla-task under "
            + " or ".join(str(b) for b in MODEL_CANDIDATES)
        )
    return found


@pytest.fixture(scope="module")
def ros_env() -> Iterator[dict[str, str]]:
    """A private DDS domain for this module (env for children and this process)."""
    pytest.importorskip("rclpy", reason="rclpy is not installed (pip install -e '.[ros]')")
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "MUJOCO_GL", "PYTHONUNBUFFERED")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["ROS_DOMAIN_ID"] = str(random.randint(1, 100))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["PYTHONUNBUFFERED"] = "1"
    yield dict(os.environ)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@dataclass
class Procs:
    """Child processes of one test; ``kill_all`` at teardown takes their groups down."""

    env: dict[str, str]
    tmp: Path
    started: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = (self.tmp / f"{name}.{len(self.started)}.log").open("w")
        if not os.path.isabs(cmd[0]):
            cmd = [str(BIN / cmd[0]), *cmd[1:]]
        p = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, p))
        return p

    def node(self, executable: str, name: str, **params: Any) -> subprocess.Popen:
        args = [executable, "--ros-args", "-r", f"__node:={name}"]
        for k, v in params.items():
            args += ["-p", f"{k}:={v}"]
        return self.start(name, args)

    def log(self, name: str) -> str:
        return "\n".join(
            (self.tmp / f"{n}.{i}.log").read_text()
            for i, (n, _) in enumerate(self.started)
            if n == name
        )

    def kill(self, p: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)

    def kill_all(self) -> None:
        for _, p in self.started:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGINT)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(p.poll() is None for _, p in self.started):
            time.sleep(0.05)
        for _, p in self.started:  # the group too: a launcher's children outlive it otherwise
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            if p.poll() is None:
                p.wait(timeout=5)


@pytest.fixture
def procs(ros_env: dict[str, str], tmp_path: Path) -> Iterator[Procs]:
    ps = Procs(ros_env, tmp_path)
    try:
        yield ps
    finally:
        ps.kill_all()


class Ros:
    """The test's own rclpy node: subscribe, publish, spin until something holds."""

    def __init__(self) -> None:
        import rclpy

        self.rclpy = rclpy
        self.node = rclpy.create_node(
            f"test_{os.getpid()}_{random.randint(0, 1 << 30)}", start_parameter_services=False
        )

    def spin_until(self, pred: Callable[[], bool], timeout: float, what: str = "") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
            if pred():
                return
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or pred}")

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.02)

    def collect(self, msg_type: type, topic: str, qos: Any) -> list[tuple[float, Any]]:
        """Every message on ``topic`` with its arrival time (monotonic s)."""
        got: list[tuple[float, Any]] = []
        self.node.create_subscription(
            msg_type, topic, lambda m: got.append((time.monotonic(), m)), qos
        )
        return got


@pytest.fixture(scope="module")
def rclpy_context(ros_env: dict[str, str]) -> Iterator[None]:
    import rclpy

    rclpy.init(args=[])
    try:
        yield
    finally:
        rclpy.try_shutdown()


@pytest.fixture
def ros(rclpy_context: None) -> Iterator[Ros]:
    r = Ros()
    try:
        yield r
    finally:
        r.node.destroy_node()


def events(got: list[tuple[float, Any]]) -> list[dict[str, Any]]:
    import json

    return [json.loads(m.data) for _, m in got]

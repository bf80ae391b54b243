"""Every node's parameters as a self-validating settings dataclass (no ROS import here).

One field per ROS parameter: its default, range, description and liveness
(:func:`embodied.settings.setting`). :func:`ros_nodes.common.declare_settings` declares a
node's parameters from these fields and :class:`ros_nodes.common.LiveParameters` validates a
set through :meth:`embodied.settings.Settings.updated` and applies it, or refuses it with
the reason (the old value stays). ``docs/ros.md``'s parameter tables are generated from the
same fields (:mod:`ros_nodes.doctables`). ``live=False`` is a read-only parameter: set at
launch (``-p name:=value`` or YAML), fixed while the node runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from embodied.codecs import codec_names
from embodied.control.registry import REGISTRY as CONTROLLERS
from embodied.interframe import DEFAULT_KEYFRAME_INTERVAL
from embodied.modelfiles import MODELS_DIR
from embodied.pipeline import PROPRIO_PAIRINGS
from embodied.settings import Settings, setting

DEFAULT_TOKENIZER_DIR: Final = MODELS_DIR / "tok-task"
DEFAULT_POLICY_DIR: Final = MODELS_DIR / "vla-task"


def _controllers() -> tuple[str, ...]:
    return tuple(n for n, s in CONTROLLERS.items() if not s.needs_world)


@dataclass(frozen=True)
class TokenizerNodeSettings(Settings):
    """The tokenizer node's own parameters (its controller's are ``ControllerSettings``)."""

    tokenizer_dir: str = setting(
        str(DEFAULT_TOKENIZER_DIR), "tokenizer model directory (docs/models.md)", live=False
    )
    codec: str = setting(
        "tokens", "codec: learned tokens or a pixel baseline", choices=tuple(codec_names()),
        live=False,
    )  # fmt: skip
    controller: str = setting("fixed", "budget controller", choices=_controllers(), live=False)
    providers: str = setting(
        "", "ONNX Runtime providers for the encoder, e.g. 'cuda,cpu' ('' = cpu)", live=False
    )
    resolution: int = setting(
        64, "frame size a pixel codec encodes at (tokens: the model's)", lo=16, hi=512,
        live=False,
    )  # fmt: skip
    frame_rate_hz: float = setting(
        30.0, "expected camera rate (the controller's bit-rate model)", lo=0.1, hi=1000.0,
        live=False,
    )  # fmt: skip
    loss_timeout_ms: float = setting(
        500.0, "a packet not reported by then counts as lost (the pipeline's loss rule; "
        "longer where the reports' round trip is: RFC 6298's SRTT + 4 RTTVAR)",
        lo=10.0, hi=60_000.0,
    )  # fmt: skip
    keyframe_interval: int = setting(
        DEFAULT_KEYFRAME_INTERVAL, "tokens-inter: a keyframe at least every this many frames "
        "(also on start, loss and the receiver's request)", lo=1, hi=100_000, live=False,
    )  # fmt: skip
    stats_period_s: float = setting(1.0, "diagnostics period", lo=0.05, hi=60.0, live=False)
    log_changes: bool = setting(True, "log accepted parameter changes")


@dataclass(frozen=True)
class PolicyNodeSettings(Settings):
    """The policy node's parameters; models are read on configure (a lifecycle transition)."""

    tokenizer_dir: str = setting(
        str(DEFAULT_TOKENIZER_DIR), "tokenizer model directory (read on configure)", live=False
    )
    policy_dir: str = setting(
        str(DEFAULT_POLICY_DIR), "policy model directory (read on configure)", live=False
    )
    providers: str = setting(
        "", "ONNX Runtime providers, e.g. 'tensorrt,cuda,cpu' ('' = TensorRT → CUDA → CPU, "
        "or $EMBODIED_ORT_PROVIDERS)", live=False,
    )  # fmt: skip
    precision: str = setting(
        "fp32", "policy.onnx (fp32) or policy_fp16.onnx", choices=("fp32", "fp16"), live=False
    )
    threads: int = setting(1, "CPU intra-op threads", lo=1, hi=64, live=False)
    trt_fp16: bool = setting(True, "TensorRT provider: fp16 kernels", live=False)
    trt_cache_dir: str = setting(
        "~/.cache/embodied/trt_engines", "TensorRT engine cache (built on first configure, "
        "minutes on a Jetson; loaded in about a second after)", live=False,
    )  # fmt: skip
    strict_model_check: bool = setting(
        True, "refuse a policy trained on another tokenizer's ids (false: warn and run)",
        live=False,
    )  # fmt: skip
    watchdog_ms: float = setting(
        250.0, "publish stop/hold when no observation arrived for this long (ms)",
        lo=10.0, hi=60_000.0,
    )  # fmt: skip
    hold_repeat_s: float = setting(
        1.0, "repeat the hold command this often while silent (s)", lo=0.05, hi=60.0
    )
    action_deadline_ms: float = setting(
        100.0, "capture → action chunk published (ms): above it an action is counted late "
        "(actions_late; frame deadline misses are the tokenizer node's)", lo=1.0, hi=10_000.0,
    )  # fmt: skip
    instruction: str = setting("", "instruction override ('' = from robot/instruction)")
    min_task_belief: float = setting(
        0.5, "an instruction read as its likeliest task with less belief than this is read as "
        "none of the policy's tasks: a warning on /diagnostics (policies with a task belief)",
        lo=0.0, hi=1.0,
    )  # fmt: skip
    unsure_instruction: str = setting(
        "hold", "on such an instruction: hold the robot (publish the hold command) or act anyway",
        choices=("hold", "act"),
    )  # fmt: skip
    proprio_pairing: str = setting(
        "capture", "the robot state read with a frame: its capture's (as trained; the chunk "
        "starts at the capture) or the latest (only the image crossed the link; the chunk "
        "starts now: far more success behind a slow link, docs/narrowband.md)",
        choices=PROPRIO_PAIRINGS,
    )  # fmt: skip
    autostart: bool = setting(True, "configure and activate at start-up", live=False)
    stats_period_s: float = setting(1.0, "diagnostics period", lo=0.05, hi=60.0, live=False)


@dataclass(frozen=True)
class CameraNodeSettings(Settings):
    """The camera node's parameters."""

    device: str = setting("0", "OpenCV device index ('0') or a video file path", live=False)
    rate_hz: float = setting(30.0, "publish rate", lo=0.1, hi=1000.0, live=False)
    width: int = setting(
        0, "output width, 0 = as captured (another aspect: centre-cropped, not stretched)",
        lo=0, hi=8192,
    )  # fmt: skip
    height: int = setting(0, "output height, 0 = as captured", lo=0, hi=8192)
    frame_id: str = setting("camera", "header.frame_id of the images")
    loop: bool = setting(True, "restart a video file at its end")
    autostart: bool = setting(True, "configure and activate at start-up", live=False)


@dataclass(frozen=True)
class SimRobotNodeSettings(Settings):
    """The simulated robot's parameters (``embodied tasks`` lists the tasks)."""

    task: str = setting(
        "drawer-open",
        "task (embodied tasks), a comma list or 'all': episode i runs the (i mod n)-th",
        live=False,
    )
    seed: int = setting(
        1_000_000, "seed of the first episode (layout); episode i uses seed + i",
        lo=0, hi=2**31 - 1, live=False,
    )  # fmt: skip
    episodes: int = setting(0, "episodes to run, 0 = until stopped", lo=0, hi=1_000_000, live=False)
    control_hz: float = setting(30.0, "control and camera rate", lo=1.0, hi=500.0, live=False)
    resolution: int = setting(64, "camera resolution (square)", lo=16, hi=512, live=False)
    camera: str = setting("corner", "MuJoCo camera", live=False)
    instruction_split: str = setting(
        "train",
        "instruction phrasings (sim.suite.INSTRUCTION_SPLITS)",
        choices=("train", "heldout", "novel"),
        live=False,
    )
    max_steps: int = setting(0, "steps per episode, 0 = the task's", lo=0, hi=1_000_000, live=False)
    driver: str = setting(
        "policy", "who acts: the policy's action chunks, or the task's scripted expert (the "
        "stand-in teleoperator when recording demonstrations)", choices=("policy", "expert"),
        live=False,
    )  # fmt: skip
    action_timeout_ms: float = setting(
        300.0, "hold when no action chunk arrived for this long (ms)", lo=10.0, hi=60_000.0
    )
    wait_for_policy_s: float = setting(
        30.0, "before the first episode, wait this long for a policy message", lo=0.0,
        hi=3600.0, live=False,
    )  # fmt: skip
    exit_when_done: bool = setting(True, "exit after the last episode", live=False)
    frame_id: str = setting("sim_camera", "image header.frame_id", live=False)


#: Node name → its settings class (docs/ros.md has a table per entry).
NODE_SETTINGS: Final = {
    "tokenizer": TokenizerNodeSettings,
    "policy": PolicyNodeSettings,
    "camera": CameraNodeSettings,
    "sim_robot": SimRobotNodeSettings,
}

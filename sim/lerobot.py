"""LeRobotDataset v3 in and out, through LeRobot's own dataset class (docs/lerobot.md).

Out: ``embodied export-lerobot`` turns an ``embodied collect`` dataset (:mod:`sim.dataset`)
into a LeRobotDataset v3 (parquet + video + ``meta/``) with ``LeRobotDataset.create`` /
``add_frame`` / ``save_episode`` / ``finalize``. In: ``embodied train ... --dataset PATH``
reads any LeRobotDataset v3 with ``LeRobotDataset(repo_id, root=PATH)`` and converts it into
the project's own format, which the training stages already read (:func:`import_lerobot`).

The library is ``lerobot-dataset`` (import name ``ledataset``): the ``LeRobotDataset`` class
of ``huggingface/lerobot`` split out with relaxed dependencies (``lerobot`` itself pins
torch < 2.11). It imports ``torchvision`` at module level, for two things only: ``ToTensor``
(image features) and the PyAV ``VideoReader`` (video features without torchcodec). PyPI has
no CPU build of torchvision for this torch (its wheel links libtorch_cuda), so where
``import torchvision`` fails, :func:`lerobot_dataset_class` lends the library a stand-in with
exactly those two, on PyAV, while the library's modules are imported, and removes it again
(nothing else in the process sees a ``torchvision``).

Key mapping (both directions)::

    observation.images.<camera>  uint8 (H, W, 3)  video (default) or PNG images   frames
    observation.images.wrist     the cluttered suite's second camera, when present wrist
    observation.state            float32 (4,)  ee_x, ee_y, ee_z, gripper            proprio
    action                       float32 (4,)  dx, dy, dz, gripper (in [-1, 1])     actions
    task                         the instruction in words (LeRobot's per-frame task)
    next.success                 bool (1,): true on the last frame of a solved episode
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

#: What the policies read (``policies.data``): state and action widths, the tokenizer's input.
STATE_NAMES = ("ee_x", "ee_y", "ee_z", "gripper")
ACTION_NAMES = ("dx", "dy", "dz", "gripper")
MODEL_RESOLUTION = 64
STATE_KEY = "observation.state"
ACTION_KEY = "action"
SUCCESS_KEY = "next.success"
CAMERA_PREFIX = "observation.images."
#: Meta-World steps 12.5 ms of simulated time (frame_skip 5 x 2.5 ms): the envs' render_fps.
SIM_FPS = 80
#: The codecs LeRobot's writer accepts; h264 is the default here (fast at 64 px, and quiet:
#: SVT-AV1 prints its configuration for every episode), libsvtav1 is LeRobot's own default.
VCODECS = ("h264", "hevc", "libsvtav1")
INSTALL_HINT = (
    "pip install -e '.[lerobot]' && pip install --no-deps 'lerobot-dataset==0.4.4' "
    "(`make install` does both; see docs/lerobot.md)"
)


class LeRobotFormatError(ValueError):
    """A LeRobotDataset whose keys or shapes do not fit what the policies read."""


# --------------------------------------------------------------------------- the library


class _VideoReader:
    """``torchvision.io.VideoReader`` as LeRobot's ``pyav`` backend uses it: ``seek(t)`` to
    the key frame at or before ``t``, then frames as ``{"data": uint8 [3, H, W], "pts": s}``."""

    def __init__(self, path: str, stream: str = "video") -> None:
        import av

        self.container = av.open(str(path))
        self._stream = self.container.streams.video[0]

    def seek(self, t: float, keyframes_only: bool = True) -> _VideoReader:
        s = self._stream
        tb = float(s.time_base) if s.time_base is not None else 1.0
        self.container.seek(int(t / tb), stream=s, backward=True, any_frame=not keyframes_only)
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        import torch

        for frame in self.container.decode(self._stream):
            rgb = frame.to_ndarray(format="rgb24")
            tb = frame.time_base
            pts = float(frame.pts * tb) if frame.pts is not None and tb is not None else 0.0
            yield {"data": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
                   "pts": pts}  # fmt: skip


class _ToTensor:
    """``torchvision.transforms.ToTensor``: HWC (PIL or array) → float CHW, uint8 / 255."""

    def __call__(self, pic: Any) -> Any:
        import torch

        a = np.asarray(pic)
        if a.ndim == 2:
            a = a[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
        return t.float().div(255) if t.dtype == torch.uint8 else t.float()


def _stand_in() -> dict[str, ModuleType]:
    def module(name: str, **attrs: Any) -> ModuleType:
        m = ModuleType(name, "stand-in for the few torchvision names lerobot-dataset uses")
        m.__spec__ = ModuleSpec(name, None)
        for k, v in attrs.items():
            setattr(m, k, v)
        return m

    transforms = module("torchvision.transforms", ToTensor=_ToTensor)
    io = module("torchvision.io", VideoReader=_VideoReader)
    tv = module("torchvision", transforms=transforms, io=io, set_video_backend=lambda b: None)
    return {"torchvision": tv, "torchvision.transforms": transforms, "torchvision.io": io}


def _torchvision_works() -> bool:
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401  # pyright: ignore[reportMissingImports]
    except Exception:  # a CUDA-only wheel under CPU torch: "operator torchvision::nms ..."
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return False
    return True


_CLASS: Any = None


def lerobot_dataset_class() -> Any:
    """LeRobot's ``LeRobotDataset`` (from ``lerobot-dataset``, else from ``lerobot``)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    lent = {} if _torchvision_works() else _stand_in()
    sys.modules.update(lent)
    try:
        try:
            from ledataset.datasets.lerobot_dataset import LeRobotDataset
        except ImportError as err:
            if getattr(err, "name", None) not in ("ledataset", "ledataset.datasets"):
                raise
            try:  # the full library, where it installs (it needs torch < 2.11)
                from lerobot.datasets.lerobot_dataset import (  # pyright: ignore[reportMissingImports]
                    LeRobotDataset,
                )
            except ImportError:
                raise ImportError(f"LeRobotDataset is not installed: {INSTALL_HINT}") from err
    finally:
        for name in lent:  # the library's modules keep what they imported; nobody else sees it
            sys.modules.pop(name, None)
    _CLASS = LeRobotDataset
    return LeRobotDataset


def _video_backend() -> str:
    import importlib.util

    return "torchcodec" if importlib.util.find_spec("torchcodec") else "pyav"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The library logs a warning per video it reads without torchcodec, and datasets bars."""
    import logging
    import warnings

    import av.logging

    root = logging.getLogger()
    level, av_level = root.level, av.logging.get_level()
    root.setLevel(max(level, logging.ERROR))
    # the writer hands FFmpeg's log back to its stderr printer after each video
    # (av.logging.restore_default_callback), before the encoder prints its statistics
    av.logging.set_libav_level(av.logging.ERROR)
    try:
        with contextlib.suppress(ImportError):
            import datasets

            datasets.disable_progress_bars()
        with warnings.catch_warnings():  # stats of the bool next.success feature
            warnings.filterwarnings("ignore", "Converting input from bool", RuntimeWarning)
            yield
    finally:
        root.setLevel(level)
        av.logging.set_libav_level(av.logging.INFO)  # FFmpeg's default
        av.logging.set_level(av_level)  # and PyAV's (None): FFmpeg's log ignored


# --------------------------------------------------------------------------- writing


def camera_key(camera: str) -> str:
    return f"{CAMERA_PREFIX}{camera}"


def features_for(
    image_shapes: Mapping[str, tuple[int, ...]], video: bool, state_dim: int = 4,
    action_dim: int = 4, success: bool = True,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The LeRobot feature spec: one image feature per camera (``{camera: (H, W, 3)}``)."""
    out: dict[str, dict[str, Any]] = {}
    for cam, shape in image_shapes.items():
        out[camera_key(cam)] = {"dtype": "video" if video else "image", "shape": tuple(shape),
                                "names": ["height", "width", "channels"]}  # fmt: skip
    state_names = list(STATE_NAMES) if state_dim == 4 else [f"s{i}" for i in range(state_dim)]
    action_names = list(ACTION_NAMES) if action_dim == 4 else [f"a{i}" for i in range(action_dim)]
    out[STATE_KEY] = {"dtype": "float32", "shape": (state_dim,), "names": state_names}
    out[ACTION_KEY] = {"dtype": "float32", "shape": (action_dim,), "names": action_names}
    if success:
        out[SUCCESS_KEY] = {"dtype": "bool", "shape": (1,), "names": None}
    return out


class LeRobotWriter:
    """Episodes → a new LeRobotDataset v3 at ``root``, through LeRobot's writer API."""

    def __init__(
        self, root: Path, image_shapes: Mapping[str, tuple[int, ...]], fps: int,
        repo_id: str = "local/embodied-demos", video: bool = True, vcodec: str = "h264",
        robot_type: str | None = "sawyer", overwrite: bool = False,
    ) -> None:  # fmt: skip
        if vcodec not in VCODECS:
            raise ValueError(f"vcodec {vcodec!r}: LeRobot's writer takes {', '.join(VCODECS)}")
        if int(fps) < 1:
            raise ValueError(f"fps must be >= 1, got {fps}")
        root = Path(root)
        if root.exists():
            if not overwrite:
                raise FileExistsError(f"{root} exists; choose another --out or pass --overwrite")
            shutil.rmtree(root)
        cls = lerobot_dataset_class()
        self.cameras = list(image_shapes)
        self.features = features_for(image_shapes, video)
        with _quiet():
            self.ds = cls.create(repo_id, fps=int(fps), features=self.features, root=root,
                                 robot_type=robot_type, use_videos=video, vcodec=vcodec,
                                 video_backend=_video_backend())  # fmt: skip
        self.root = root
        self.episodes = 0
        self.frames = 0

    def add_episode(
        self, images: Mapping[str, np.ndarray], state: np.ndarray, actions: np.ndarray,
        task: str | Sequence[str], success: bool = True,
    ) -> None:  # fmt: skip
        """One episode: ``images[camera]`` uint8 [T, H, W, 3], ``state`` [T, 4], ``actions``
        [T, 4], ``task`` one instruction (or one per frame)."""
        n = len(actions)
        if n == 0:
            raise ValueError("an episode needs at least one frame")
        tasks = [task] * n if isinstance(task, str) else list(task)
        lengths = {len(tasks), len(state), *(len(v) for v in images.values())}
        if lengths != {n} or set(images) != set(self.cameras):
            raise ValueError(
                f"episode arrays disagree: {n} actions, {len(state)} states, {len(tasks)} tasks, "
                f"images { ({k: len(v) for k, v in images.items()}) } (cameras {self.cameras})"
            )
        state = np.asarray(state, np.float32)
        actions = np.asarray(actions, np.float32)
        for t in range(n):
            frame: dict[str, Any] = {camera_key(c): np.asarray(images[c][t], np.uint8)
                                     for c in self.cameras}  # fmt: skip
            frame[STATE_KEY] = state[t]
            frame[ACTION_KEY] = actions[t]
            frame[SUCCESS_KEY] = np.array([bool(success) and t == n - 1])
            frame["task"] = str(tasks[t])
            self.ds.add_frame(frame)
        with _quiet():
            self.ds.save_episode(parallel_encoding=False)
        self.episodes += 1
        self.frames += n

    def finalize(self) -> Path:
        """Close the parquet writers (without this the files have no footer)."""
        self.ds.finalize()
        return self.root


def export_demos(
    data: Path, out: Path, *, repo_id: str = "local/embodied-demos", fps: int = SIM_FPS,
    video: bool = True, vcodec: str = "h264", tasks: list[str] | None = None,
    include_failed: bool = False, max_episodes: int | None = None, overwrite: bool = False,
) -> LeRobotWriter:  # fmt: skip
    """An ``embodied collect`` dataset → LeRobotDataset v3 (the instruction is the task)."""
    from sim.dataset import iter_episodes, read_manifest

    meta = read_manifest(data)
    eps = iter_episodes(Path(data), tasks=tasks, successful_only=not include_failed)
    first = next(eps, None)
    if first is None:
        raise FileNotFoundError(f"no {'' if include_failed else 'successful '}episodes in {data}")
    shapes = {str(meta["camera"]): tuple(first.frames.shape[1:])}
    if first.wrist is not None:
        shapes["wrist"] = tuple(first.wrist.shape[1:])
    writer = LeRobotWriter(out, shapes, fps, repo_id=repo_id, video=video, vcodec=vcodec,
                           overwrite=overwrite)  # fmt: skip
    for i, ep in enumerate([first, *eps]):
        if max_episodes is not None and i >= max_episodes:
            break
        images = {str(meta["camera"]): ep.frames}
        if "wrist" in shapes:
            if ep.wrist is None:
                raise ValueError(f"{ep.task} seed {ep.seed} has no wrist frames, others do")
            images["wrist"] = ep.wrist
        writer.add_episode(images, ep.proprio, ep.actions, ep.instruction, ep.success)
    writer.finalize()
    return writer


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class LeRobotKeys:
    """Which LeRobot keys are the camera, the state and the action (``--lerobot-*``).

    ``camera="auto"``: ``observation.images.corner`` where present, else the dataset's one
    camera; a dataset with several cameras and no ``corner`` must name one."""

    camera: str = "auto"
    state: str = STATE_KEY
    action: str = ACTION_KEY
    task_map: Mapping[str, str] = field(default_factory=dict)  # LeRobot task → suite task


def open_lerobot(path: Path, repo_id: str | None = None) -> Any:
    """``LeRobotDataset(repo_id, root=path)`` offline, with a readable refusal where ``path``
    holds no LeRobotDataset v3 (instead of an attempt to download it)."""
    path = Path(path)
    info_path = path / "meta" / "info.json"
    if not info_path.is_file():
        raise LeRobotFormatError(f"{path} is not a LeRobotDataset: {info_path} is missing")
    version = str(json.loads(info_path.read_text()).get("codebase_version", "?"))
    if not version.startswith("v3"):
        raise LeRobotFormatError(
            f"{path} is LeRobotDataset {version}; this reads v3.x (convert it with LeRobot's "
            "convert_dataset_v21_to_v30)"
        )
    cls = lerobot_dataset_class()
    with _quiet():
        return cls(repo_id or f"local/{path.name}", root=path, video_backend=_video_backend())


def _image_hw(feature: Mapping[str, Any]) -> tuple[int, int] | None:
    """(H, W) of an RGB image feature, channels first or last; None if not 3-channel."""
    shape = tuple(int(s) for s in feature.get("shape", ()))
    names = list(feature.get("names") or [])
    if len(shape) != 3:
        return None
    if "channels" in names:
        c = names.index("channels")
        hw = [s for i, s in enumerate(shape) if i != c]
        return (hw[0], hw[1]) if shape[c] == 3 else None
    if shape[-1] == 3:
        return shape[0], shape[1]
    if shape[0] == 3:
        return shape[1], shape[2]
    return None


def check_keys(name: str, features: Mapping[str, Mapping[str, Any]], keys: LeRobotKeys) -> str:
    """The camera key to read; refuses (naming what is missing) keys or shapes that do not fit."""
    cameras = [k for k, f in features.items() if f.get("dtype") in ("image", "video")]
    camera = keys.camera
    if camera == "auto":
        if camera_key("corner") in cameras:
            camera = camera_key("corner")
        elif len(cameras) == 1:
            camera = cameras[0]
        else:
            raise LeRobotFormatError(
                f"dataset {name} has no key '{camera_key('corner')}' and "
                f"{'no camera' if not cameras else 'several cameras'}; its camera keys are "
                f"{cameras}; pass --lerobot-camera"
            )
    if camera not in features:
        raise LeRobotFormatError(
            f"dataset {name} has no key '{camera}'; its camera keys are {cameras}; "
            "pass --lerobot-camera"
        )
    if camera not in cameras or _image_hw(features[camera]) is None:
        raise LeRobotFormatError(
            f"dataset {name}: '{camera}' is not an RGB image or video "
            f"(dtype {features[camera].get('dtype')}, shape {features[camera].get('shape')}); "
            f"its camera keys are {cameras}; pass --lerobot-camera"
        )
    vectors = [k for k, f in features.items() if f.get("dtype") in ("float32", "float64")]
    for role, key, names, option in (
        ("state", keys.state, STATE_NAMES, "--lerobot-state"),
        ("action", keys.action, ACTION_NAMES, "--lerobot-action"),
    ):
        if key not in features:
            raise LeRobotFormatError(
                f"dataset {name} has no {role} key '{key}'; its vector keys are {vectors}; "
                f"pass {option}"
            )
        shape = tuple(int(s) for s in features[key].get("shape", ()))
        if len(shape) != 1 or shape[0] != len(names):
            dims = f"{shape[0]} dims" if len(shape) == 1 else f"shape {shape}"
            raise LeRobotFormatError(
                f"dataset {name}: {role} '{key}' has {dims}, this policy needs {len(names)} "
                f"({', '.join(names)})"
            )
    return camera


def to_model_input(frame: np.ndarray, size: int = MODEL_RESOLUTION) -> np.ndarray:
    """A uint8 [H, W, 3] frame as the tokenizer's ``size`` x ``size`` input: the project's one
    resize (``embodied.camera.to_model_input``: centre crop to the square, ``INTER_AREA``
    down, bilinear up)."""
    from embodied.camera import to_model_input as camera_input

    return camera_input(np.ascontiguousarray(frame, np.uint8), (size, size))


def suite_task(text: str, task_map: Mapping[str, str]) -> str | None:
    """The suite task a LeRobot task string stands for: ``task_map``, else an instruction or
    paraphrase of a suite task (case and spaces ignored), else a task name; None if none."""
    from sim.suite import TASKS

    if text in task_map:
        return task_map[text]
    norm = " ".join(text.lower().split())
    for name, spec in TASKS.items():
        if norm in {" ".join(s.lower().split()) for s in (*spec.instructions, *spec.paraphrases)}:
            return name
    return norm if norm in TASKS else None


def _tensor_image(x: Any) -> np.ndarray:
    """A LeRobot item's image (float CHW in [0, 1]) → uint8 HWC."""
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    return a


@dataclass
class ImportReport:
    out: Path
    episodes: int
    frames: int
    camera: str
    tasks: dict[str, str]  # LeRobot task → suite task
    skipped_failed: int = 0


def import_lerobot(
    src: Path, out: Path, keys: LeRobotKeys | None = None, *, resolution: int = MODEL_RESOLUTION,
    include_failed: bool = False, repo_id: str | None = None,
) -> ImportReport:  # fmt: skip
    """Any LeRobotDataset v3 → an ``embodied-demos`` dataset at ``out`` (what training reads).

    Frames become ``resolution`` squares (:func:`to_model_input`); each episode's task is its
    first frame's task string, kept as the instruction, and filed under the suite task it
    names (:func:`suite_task`); episodes with ``next.success`` count as solved only if one of
    their frames says so (datasets without it are taken as demonstrations, all solved)."""
    from sim.dataset import Episode, save_episode, write_manifest
    from sim.suite import TASKS

    src, out = Path(src), Path(out)
    keys = keys or LeRobotKeys()
    ds = open_lerobot(src, repo_id)
    features = ds.meta.features
    camera = check_keys(str(src), features, keys)
    bad_map = {k: v for k, v in keys.task_map.items() if v not in TASKS}
    if bad_map:
        raise LeRobotFormatError(f"--lerobot-task maps to unknown suite tasks {bad_map}; "
                                 f"valid: {', '.join(TASKS)}")  # fmt: skip
    names = [str(t) for t in ds.meta.tasks.index]
    mapped = {t: suite_task(t, keys.task_map) for t in names}
    unknown = [t for t, m in mapped.items() if m is None]
    if unknown:
        example = unknown[0].replace("'", "")
        raise LeRobotFormatError(
            f"dataset {src}: task {unknown[:5]} is neither a suite task nor one of its "
            f"instructions; map each with --lerobot-task '{example}=drawer-open' "
            f"(suite tasks: {', '.join(TASKS)})"
        )
    episodes = ds.meta.episodes
    has_success = SUCCESS_KEY in features
    n_eps = n_frames = failed = max_len = 0
    cam_name = camera.removeprefix(CAMERA_PREFIX)
    written: list[Episode] = []
    for e in range(len(episodes)):
        row = episodes[e]
        lo, hi = int(row["dataset_from_index"]), int(row["dataset_to_index"])
        frames, state, actions, ok = [], [], [], not has_success
        task_text = None
        with _quiet():
            for i in range(lo, hi):
                item = ds[i]
                frames.append(to_model_input(_tensor_image(item[camera]), resolution))
                state.append(np.asarray(item[keys.state], np.float32).reshape(-1))
                actions.append(np.asarray(item[keys.action], np.float32).reshape(-1))
                task_text = task_text if task_text is not None else str(item["task"])
                if has_success and bool(np.asarray(item[SUCCESS_KEY]).reshape(-1)[0]):
                    ok = True
        if not frames or task_text is None:
            continue
        if not ok and not include_failed:
            failed += 1
            continue
        written.append(Episode(
            task=str(mapped[task_text]), seed=int(row["episode_index"]), instruction=task_text,
            frames=np.stack(frames), proprio=np.stack(state), actions=np.stack(actions),
            success=ok, layout=np.zeros(3),
        ))  # fmt: skip
        max_len = max(max_len, len(frames))
        n_eps += 1
        n_frames += len(frames)
    if not written:
        raise LeRobotFormatError(f"dataset {src}: no {'' if include_failed else 'solved '}"
                                 f"episodes to train on ({failed} unsolved)")  # fmt: skip
    if out.exists():
        shutil.rmtree(out)
    write_manifest(out, resolution, cam_name, max_len)
    for ep in written:
        save_episode(out, ep)
    source = {"lerobot": str(src.resolve()), "camera": camera, "state": keys.state,
              "action": keys.action, "tasks": mapped, "episodes": n_eps, "frames": n_frames,
              "info_mtime_ns": (src / "meta" / "info.json").stat().st_mtime_ns}  # fmt: skip
    (out / "lerobot_source.json").write_text(json.dumps(source, indent=2) + "\n")
    return ImportReport(out, n_eps, n_frames, camera, {k: str(v) for k, v in mapped.items()},
                        failed)  # fmt: skip


# --------------------------------------------------------------------------- training flags


def add_train_args(p: argparse.ArgumentParser) -> None:
    """``embodied train``'s LeRobot options (docs/lerobot.md)."""
    g = p.add_argument_group("LeRobotDataset input (docs/lerobot.md)")
    g.add_argument("--dataset", default=None, metavar="PATH",
                   help="train on a LeRobotDataset v3 at PATH (converted once into "
                        "--lerobot-cache, then read like --data)")  # fmt: skip
    g.add_argument(
        "--lerobot-camera",
        default="auto",
        help="camera key (default: observation.images.corner, else the only camera)",
    )
    g.add_argument("--lerobot-state", default=STATE_KEY, help="4-dim state key (ee xyz, gripper)")
    g.add_argument("--lerobot-action", default=ACTION_KEY, help="4-dim action key")
    g.add_argument("--lerobot-task", action="append", default=[], metavar="TEXT=TASK",
                   help="file episodes whose task string is TEXT under suite task TASK "
                        "(repeatable; needed for strings that are no suite instruction)")  # fmt: skip
    g.add_argument(
        "--lerobot-cache",
        default=None,
        metavar="DIR",
        help="where the converted dataset goes (default data/lerobot-cache/<name>; never the dataset itself)",
    )


def parse_task_map(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        text, sep, task = item.rpartition("=")
        if not sep or not text.strip() or not task.strip():
            raise ValueError(f"--lerobot-task {item!r}: expected 'TEXT=TASK'")
        out[text.strip()] = task.strip()
    return out


def prepare_train_data(a: argparse.Namespace) -> None:
    """With ``--dataset``: convert it (unless the cache already holds this conversion) and
    point ``a.data`` at the result. Raises :class:`LeRobotFormatError` for a misfit."""
    if not getattr(a, "dataset", None):
        return
    src = Path(a.dataset)
    keys = LeRobotKeys(a.lerobot_camera, a.lerobot_state, a.lerobot_action,
                       parse_task_map(a.lerobot_task))  # fmt: skip
    out = Path(a.lerobot_cache or Path("data") / "lerobot-cache" / src.resolve().name)
    s, o = src.resolve(), out.resolve()
    if o == s or s in o.parents or o in s.parents:  # the conversion clears its directory
        raise LeRobotFormatError(
            f"--lerobot-cache {out} would overwrite the dataset {src}: give another directory"
        )
    marker = out / "lerobot_source.json"
    info = src / "meta" / "info.json"
    if marker.is_file() and info.is_file():
        have = json.loads(marker.read_text())
        same = (have.get("lerobot") == str(src.resolve())
                and have.get("info_mtime_ns") == info.stat().st_mtime_ns
                and have.get("state") == keys.state and have.get("action") == keys.action
                and (keys.camera == "auto" or have.get("camera") == keys.camera)
                and all(have.get("tasks", {}).get(k) == v for k, v in keys.task_map.items()))  # fmt: skip
        if same:
            print(f"  LeRobotDataset {src}: converted copy in {out} is current")
            a.data = str(out)
            return
    print(f"  LeRobotDataset {src} -> {out} (embodied-demos, {MODEL_RESOLUTION} px)")
    r = import_lerobot(src, out, keys)
    print(f"  {r.episodes} episodes, {r.frames} frames; camera {r.camera}; tasks {r.tasks}"
          + (f"; {r.skipped_failed} unsolved skipped" if r.skipped_failed else ""))  # fmt: skip
    a.data = str(out)


# --------------------------------------------------------------------------- commands


def export_main(argv: Sequence[str] | None = None) -> int:
    """``embodied export-lerobot``: an ``embodied collect`` dataset → LeRobotDataset v3."""
    p = argparse.ArgumentParser(
        prog="embodied export-lerobot",
        description="Write an `embodied collect` dataset as a LeRobotDataset v3 (parquet + video "
        "+ meta/) with LeRobot's own writer; keys in docs/lerobot.md.",
    )
    p.add_argument("--data", default="data/demos", help="embodied-demos dataset root")
    p.add_argument("--out", required=True, help="new LeRobotDataset root")
    p.add_argument("--repo-id", default="local/embodied-demos", help="the dataset's repo id")
    p.add_argument("--fps", type=int, default=SIM_FPS, help=f"frame rate (sim: {SIM_FPS})")
    p.add_argument(
        "--images",
        action="store_true",
        help="store frames as PNG images (lossless) instead of video",
    )
    p.add_argument("--vcodec", choices=VCODECS, default="h264")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all)")
    p.add_argument("--include-failed", action="store_true", help="also unsolved episodes")
    p.add_argument("--max-episodes", type=int, default=None, help="stop after this many")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    a = p.parse_args(argv)
    tasks = [t.strip() for t in a.tasks.split(",")] if a.tasks else None
    try:
        w = export_demos(Path(a.data), Path(a.out), repo_id=a.repo_id, fps=a.fps,
                         video=not a.images, vcodec=a.vcodec, tasks=tasks,
                         include_failed=a.include_failed, max_episodes=a.max_episodes,
                         overwrite=a.overwrite)  # fmt: skip
    except (ImportError, FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"embodied export-lerobot: {err}", file=sys.stderr)
        return 2
    print(f"wrote {w.root}: LeRobotDataset v3, {w.episodes} episodes, {w.frames} frames, "
          f"keys {', '.join(w.features)}")  # fmt: skip
    return 0

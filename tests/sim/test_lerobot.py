"""LeRobotDataset v3 out (``embodied export-lerobot``) and in (``embodied train --dataset``),
checked with LeRobot's own class: a dataset our exporter wrote is read by
``LeRobotDataset(repo_id, root=...)``; one that LeRobot's writer built here is read by our
importer into training arrays (and a short training run); misfits are refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("torch")

from embodied.cli import main as cli
from sim import lerobot as lr
from sim.dataset import Episode, iter_episodes, save_episode, write_manifest

try:
    LeRobotDataset = lr.lerobot_dataset_class()
except ImportError as err:  # pragma: no cover - the `lerobot` extra is not installed
    pytest.skip(str(err), allow_module_level=True)

STEPS = 10  # steps per episode: short sim episodes keep this module at a few seconds


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """Two short drawer-open episodes from the project's own sim collection."""
    from sim.collect import expert_loop
    from sim.env import MetaWorldTaskEnv
    from sim.experts import ScriptedExpert

    root = tmp_path_factory.mktemp("demos")
    write_manifest(root, 64, "corner", STEPS)
    env = MetaWorldTaskEnv("drawer-open", max_steps=STEPS)
    for seed in (3, 4):
        obs, _ = env.reset(seed=seed)
        _, arr = expert_loop(env, ScriptedExpert(env), obs)
        save_episode(root, Episode("drawer-open", seed, env.instruction, arr["frames"],
                                   arr["proprio"], arr["actions"], True, env.layout.copy()))  # fmt: skip
    env.close()
    return root


@pytest.mark.parametrize("storage", ["images", "video"])
def test_export_is_read_by_lerobots_own_class(demos, tmp_path, storage):
    out = tmp_path / "lerobot"
    args = ["export-lerobot", "--data", str(demos), "--out", str(out), "--repo-id", "local/t"]
    assert cli(args + (["--images"] if storage == "images" else [])) == 0
    ds = LeRobotDataset("local/t", root=out)  # offline: the root holds everything
    eps = list(iter_episodes(demos))
    assert ds.num_episodes == 2 and len(ds) == sum(len(e) for e in eps) == 2 * STEPS
    assert ds.fps == lr.SIM_FPS
    f = ds.meta.features
    assert f["observation.images.corner"]["dtype"] == ("image" if storage == "images" else "video")
    assert tuple(f["observation.images.corner"]["shape"]) == (64, 64, 3)
    assert tuple(f["observation.state"]["shape"]) == (4,) and tuple(f["action"]["shape"]) == (4,)
    assert list(f["observation.state"]["names"]) == list(lr.STATE_NAMES)
    assert list(ds.meta.tasks.index) == [eps[0].instruction] == ["open the drawer"]
    i = STEPS + 3  # episode 1, step 3
    item = ds[i]
    assert item["task"] == eps[1].instruction and int(item["episode_index"]) == 1
    assert int(item["frame_index"]) == 3
    np.testing.assert_allclose(item["observation.state"].numpy(), eps[1].proprio[3], atol=1e-6)
    np.testing.assert_allclose(item["action"].numpy(), eps[1].actions[3], atol=1e-6)
    assert bool(ds[2 * STEPS - 1]["next.success"]) and not bool(item["next.success"])
    image = item["observation.images.corner"]
    assert tuple(image.shape) == (3, 64, 64)  # LeRobot's layout: float CHW in [0, 1]
    got = np.round(image.permute(1, 2, 0).numpy() * 255).astype(np.int16)
    err = np.abs(got - eps[1].frames[3]).mean()
    if storage == "images":
        assert err == 0  # PNG: lossless
    else:
        # h264 at LeRobot's crf 30 on 64 px frames: about 8.5 levels off on average, unbiased
        assert err < 12 and abs((got - eps[1].frames[3]).mean()) < 2, err
        assert abs(float(item["timestamp"]) - 3 / lr.SIM_FPS) < 1e-6


def _lerobot_written(root: Path, *, cameras=("top",), state_dim=4, action_dim=4,
                     task="open the drawer", size=(96, 128), video=False) -> list[np.ndarray]:  # fmt: skip
    """A dataset built directly with LeRobot's writer API (not our exporter): 2 episodes,
    frames of ``size`` (not the tokenizer's 64 x 64), one camera per name."""
    h, w = size
    feats = {f"observation.images.{c}": {"dtype": "video" if video else "image",
                                         "shape": (h, w, 3),
                                         "names": ["height", "width", "channels"]}
             for c in cameras}  # fmt: skip
    feats["observation.state"] = {"dtype": "float32", "shape": (state_dim,), "names": None}
    feats["action"] = {"dtype": "float32", "shape": (action_dim,), "names": None}
    ds = LeRobotDataset.create("someone/their-robot", fps=15, features=feats, root=root,
                               use_videos=video)  # fmt: skip
    rng = np.random.default_rng(0)
    frames = []
    for ep in range(2):
        for t in range(5 + ep):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, :, 0] = 40 * ep + 20 * t  # a flat colour per frame: exact after any resize
            img[:, :, 1] = np.linspace(0, 255, w)[None].astype(np.uint8)
            frames.append(img)
            frame = {f"observation.images.{c}": img for c in cameras}
            frame["observation.state"] = rng.random(state_dim).astype(np.float32)
            frame["action"] = np.full(action_dim, 0.1 * t, np.float32)
            frame["task"] = task
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return frames


def test_a_dataset_from_lerobots_writer_trains(tmp_path, capsys):
    from policies.data import load_demos

    src = tmp_path / "theirs"
    frames = _lerobot_written(src)
    cache = tmp_path / "converted"
    out = tmp_path / "vla-blind"
    assert cli(["train", "policy", "--blind", "--steps", "2", "--dataset", str(src),
                "--lerobot-cache", str(cache), "--out", str(out)]) == 0  # fmt: skip
    assert (out / "policy.json").is_file()
    source = json.loads((cache / "lerobot_source.json").read_text())
    assert source["camera"] == "observation.images.top"  # the one camera, picked by "auto"
    assert source["tasks"] == {"open the drawer": "drawer-open"}
    d = load_demos(cache, chunk=4)
    assert len(d) == 11 and len(d.seeds) == 2
    assert d.frames.shape == (11, 64, 64, 3) and d.proprio.shape == (11, 4)
    assert d.chunks.shape == (11, 4, 4)
    np.testing.assert_allclose(d.chunks[1, 0], np.full(4, 0.1), atol=1e-6)  # step 1 of ep 0
    np.testing.assert_allclose(d.chunks[0, :, 0], [0.0, 0.1, 0.2, 0.3], atol=1e-6)
    assert d.tasks[d.task[0]] == "drawer-open" and d.instructions[d.instr[0]] == "open the drawer"
    # 96 x 128 → the centred 96 x 96 square → 64 x 64 (INTER_AREA): flat red stays exact
    assert (d.frames[7, :, :, 0] == frames[7][0, 0, 0]).all()
    assert not (d.frames[7, :, :, 1] == d.frames[7, 0, 0, 1]).all()
    # a second run reuses the converted copy; other keys convert again
    import argparse

    p = argparse.ArgumentParser()
    lr.add_train_args(p)
    a = p.parse_args(["--dataset", str(src), "--lerobot-cache", str(cache)])
    lr.prepare_train_data(a)
    assert a.data == str(cache) and "is current" in capsys.readouterr().out
    a.lerobot_camera = "observation.images.top"
    lr.prepare_train_data(a)
    assert "is current" in capsys.readouterr().out
    a.lerobot_task = ["open the drawer=drawer-close"]
    lr.prepare_train_data(a)
    assert "is current" not in capsys.readouterr().out
    assert {e.task for e in iter_episodes(cache)} == {"drawer-close"}


def test_a_foreign_task_string_is_mapped_or_refused(tmp_path, capsys):
    src = tmp_path / "theirs"
    _lerobot_written(src, task="pick up the red cube")
    with pytest.raises(lr.LeRobotFormatError, match=r"'pick up the red cube'.*--lerobot-task"):
        lr.import_lerobot(src, tmp_path / "a")
    keys = lr.LeRobotKeys(task_map={"pick up the red cube": "drawer-open"})
    r = lr.import_lerobot(src, tmp_path / "b", keys)
    assert r.episodes == 2 and r.tasks == {"pick up the red cube": "drawer-open"}
    (ep,) = [e for e in iter_episodes(tmp_path / "b") if e.seed == 1]
    assert ep.task == "drawer-open" and ep.instruction == "pick up the red cube"


@pytest.mark.parametrize(
    ("kwargs", "options", "message"),
    [
        ({"cameras": ("left", "right")}, [],
         r"no key 'observation\.images\.corner'.*camera keys are \['observation\.images\.left', "
         r"'observation\.images\.right'\]; pass --lerobot-camera"),
        ({}, ["--lerobot-camera", "observation.images.wrist"],
         r"no key 'observation\.images\.wrist'; its camera keys are \['observation\.images\.top'\]"),
        ({"action_dim": 7}, [], r"action 'action' has 7 dims, this policy needs 4"),
        ({"state_dim": 6}, [], r"state 'observation\.state' has 6 dims, this policy needs 4"),
        ({}, ["--lerobot-state", "observation.joints"],
         r"no state key 'observation\.joints'; its vector keys are \['observation\.state', "
         r"'action'.*pass --lerobot-state"),
    ],
)  # fmt: skip
def test_a_dataset_that_does_not_fit_is_refused_naming_what(tmp_path, capsys, kwargs, options,
                                                            message):  # fmt: skip
    src = tmp_path / "theirs"
    _lerobot_written(src, **kwargs)
    with pytest.raises(SystemExit) as exit_:
        cli(["train", "policy", "--blind", "--dataset", str(src), "--lerobot-cache",
             str(tmp_path / "c"), "--out", str(tmp_path / "o"), *options])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "c").exists()


def test_not_a_lerobot_dataset_is_refused(tmp_path):
    with pytest.raises(lr.LeRobotFormatError, match="not a LeRobotDataset"):
        lr.open_lerobot(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    with pytest.raises(lr.LeRobotFormatError, match=r"v2\.1; this reads v3"):
        lr.open_lerobot(tmp_path)


def test_the_torchvision_stand_in_is_not_left_behind():
    import sys

    assert "torchvision" not in sys.modules or lr._torchvision_works()


def test_the_conversion_never_overwrites_the_dataset(tmp_path):
    """The converted copy clears its directory: one that is (or holds, or lies in) the dataset
    is refused, and the dataset stays as it was."""
    import argparse

    src = tmp_path / "lerobot" / "demos"
    (src / "meta").mkdir(parents=True)
    (src / "meta" / "info.json").write_text("{}")
    for cache in (src, src / "converted", tmp_path / "lerobot"):
        a = argparse.Namespace(dataset=str(src), lerobot_camera="auto",
                               lerobot_state="observation.state", lerobot_action="action",
                               lerobot_task=[], lerobot_cache=str(cache))  # fmt: skip
        with pytest.raises(lr.LeRobotFormatError, match="would overwrite the dataset"):
            lr.prepare_train_data(a)
    assert (src / "meta" / "info.json").read_text() == "{}"

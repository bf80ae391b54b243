"""Experts solve every task; datasets round-trip and refuse other versions; CLI smoke."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embodied.cli import main as cli
from sim.collect import rollout_expert
from sim.dataset import (
    DatasetVersionError,
    Episode,
    iter_episodes,
    load_episode,
    read_manifest,
    save_episode,
    write_manifest,
)
from sim.suite import TASKS, eval_seeds


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_solves_heldout_seeds(task):
    seeds = eval_seeds(3, start=500)
    ok = [rollout_expert(task, s, record=False)["success"] for s in seeds]
    assert sum(ok) >= 2, f"{task}: expert solved {sum(ok)}/3"


def test_dataset_round_trip(tmp_path):
    write_manifest(tmp_path, 64, "corner", 150)
    r = rollout_expert("drawer-open", 7, record=True)
    ep = Episode("drawer-open", 7, r["instruction"], r["frames"], r["proprio"], r["actions"],
                 r["success"], r["layout"])  # fmt: skip
    path = save_episode(tmp_path, ep)
    back = load_episode(path)
    np.testing.assert_array_equal(back.frames, ep.frames)
    np.testing.assert_array_equal(back.actions, ep.actions)
    assert back.instruction == ep.instruction and back.seed == 7 and back.success
    assert back.frames.shape[1:] == (64, 64, 3) and len(back.frames) == len(back.actions)
    assert [e.seed for e in iter_episodes(tmp_path)] == [7]


def test_dataset_of_another_version_is_refused(tmp_path):
    write_manifest(tmp_path, 64, "corner", 150)
    meta = json.loads((tmp_path / "manifest.json").read_text())
    meta["version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetVersionError, match=r"version 99.*version 1"):
        read_manifest(tmp_path)


def test_resume_with_other_settings_is_refused(tmp_path):
    write_manifest(tmp_path, 64, "corner", 150)
    with pytest.raises(ValueError, match="other settings"):
        write_manifest(tmp_path, 32, "corner", 150)


def test_collect_cli_writes_and_resumes(tmp_path, capsys):
    out = tmp_path / "demos"
    args = ["collect", "--tasks", "button-press", "--episodes", "2", "--workers", "1"]
    assert cli([*args, "--out", str(out)]) == 0
    files = sorted((out / "button-press").glob("ep_*.npz"))
    assert len(files) == 2
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert cli([*args, "--out", str(out)]) == 0
    assert "2 already on disk, 0 to run" in capsys.readouterr().out
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_cli_help_lists_subcommands(capsys):
    assert cli(["--help"]) == 0
    text = capsys.readouterr().out
    for name in ("collect", "expert-eval", "bench", "tasks"):
        assert name in text


def test_cli_unknown_command_lists_valid(capsys):
    assert cli(["colect"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'collect'" in err and "Valid commands" in err


def test_cli_unknown_task_refused(capsys):
    with pytest.raises(SystemExit):
        cli(["expert-eval", "--tasks", "nope", "--episodes", "1"])
    assert "Valid tasks" in capsys.readouterr().err


def test_tasks_cli(capsys):
    assert cli(["tasks"]) == 0
    assert "drawer-open" in capsys.readouterr().out


def test_action_noise_perturbs_execution_not_labels(tmp_path):
    from sim.collect import ActionNoise

    clean = rollout_expert("button-press-topdown", 3, record=True)
    noisy = rollout_expert("button-press-topdown", 3, record=True, noise=0.3)
    again = rollout_expert("button-press-topdown", 3, record=True, noise=0.3)
    assert noisy["success"] and noisy["noise"] == 0.3
    # same seed, same noise: identical episode; the perturbation changes the trajectory
    np.testing.assert_array_equal(noisy["proprio"], again["proprio"])
    n = min(len(clean["proprio"]), len(noisy["proprio"]))
    assert np.abs(clean["proprio"][:n] - noisy["proprio"][:n]).max() > 0.01
    # labels are the expert's clean actions: within [-1, 1] and not the executed noisy ones
    assert np.abs(noisy["actions"]).max() <= 1.0
    n = ActionNoise(0.3, "drawer-open", 1)
    a = np.zeros(4, np.float32)
    xs = np.stack([n(a) for _ in range(2000)])
    assert 0.2 < xs[:, :3].std() < 0.4 and np.all(xs[:, 3] == 0)  # gripper untouched
    assert np.corrcoef(xs[1:, 0], xs[:-1, 0])[0, 1] > 0.6  # temporally correlated
    with pytest.raises(ValueError, match="noise scale"):
        ActionNoise(1.5, "drawer-open", 1)
    # the noise level is stored with the episode (format v1, optional field)
    write_manifest(tmp_path, 64, "corner", 150)
    ep = Episode("button-press-topdown", 3, noisy["instruction"], noisy["frames"],
                 noisy["proprio"], noisy["actions"], True, noisy["layout"], action_noise=0.3)  # fmt: skip
    assert load_episode(save_episode(tmp_path, ep)).action_noise == 0.3


def test_paraphrase_pools_never_contain_heldout_phrasings():
    from sim.suite import TaskSpec, _norm

    for spec in TASKS.values():
        assert len(spec.training_phrasings) >= 8
        held = {_norm(h) for h in spec.heldout_instructions}
        assert not held & {_norm(p) for p in spec.training_phrasings}
    with pytest.raises(ValueError, match="held-out phrasings in the paraphrase pool"):
        TaskSpec("x", "x-v3", (0.0,), (1.0,), ("a b", "c d"), ("Open  the tap",),
                 paraphrases=("open the tap",))  # fmt: skip

"""The cluttered suite's environments (MuJoCo): gym ids, determinism, experts, delay."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cluttered import spec as cs

TASKS = list(cs.TASKS)


@pytest.fixture(scope="module")
def envs():
    from sim.cluttered.env import ClutteredEnv

    made = {t: ClutteredEnv(t, cameras=(), resolution=64) for t in TASKS}
    yield made
    for e in made.values():
        e.close()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_check_env_for_every_id(task):
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import sim.registration  # noqa: F401

    env = gym.make(cs.TASKS[task].gym_id, resolution=64)
    try:
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=5)
        assert obs["image"].shape == (64, 64, 3) and obs["wrist_image"].shape == (64, 64, 3)
        assert obs["instruction"] == cs.layout_for(task, 5).instruction
    finally:
        env.close()


def test_same_seed_same_episode():
    from sim.cluttered.env import ClutteredEnv

    env = ClutteredEnv("cluttered-conveyor-pick", resolution=64)
    try:
        runs = []
        for _ in range(2):
            obs, _ = env.reset(seed=11)
            frames = [obs["image"]]
            for t in range(15):
                obs, *_ = env.step(np.array([0.3, -0.2, -0.1, 1.0 if t > 8 else -1.0]))
            frames.append(obs["image"])
            runs.append((np.stack(frames), env.expert_state()["objects"]))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        np.testing.assert_array_equal(runs[0][1], runs[1][1])
        other, _ = env.reset(seed=12)
        assert not np.array_equal(other["image"], runs[0][0][0])
    finally:
        env.close()


def test_env_refuses_bad_parameters():
    from sim.cluttered.env import ClutteredEnv

    with pytest.raises(ValueError, match=r"speed must be in \[0.0, 0.3\]"):
        ClutteredEnv("cluttered-conveyor-pick", speed=0.4)
    with pytest.raises(ValueError, match=r"n_objects must be in \[4, 8\]"):
        ClutteredEnv("cluttered-pick-place", n_objects=3)
    with pytest.raises(ValueError, match=r"resolution must be in 64..256"):
        ClutteredEnv("cluttered-pick-place", resolution=300)
    with pytest.raises(ValueError, match="front, wrist"):
        ClutteredEnv("cluttered-pick-place", cameras=("side",))


def test_reset_refuses_an_unknown_word(envs):
    with pytest.raises(ValueError, match="valid colours"):
        envs["cluttered-push"].reset(
            seed=0, options={"instruction": "push the teal bar to the white pad"}
        )
    with pytest.raises(ValueError, match="valid: instruction"):
        envs["cluttered-push"].reset(seed=0, options={"target": 1})


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds_on_heldout_seeds(envs, task):
    from sim.cluttered.expert import run_episode
    from sim.suite import eval_seeds

    results = [run_episode(envs[task], s)["success"] for s in eval_seeds(3, start=500)]
    assert sum(results) >= 3, results


@pytest.mark.slow
def test_delay_hurts_the_conveyor(envs):
    from sim.cluttered.expert import run_episode
    from sim.suite import eval_seeds

    env = envs["cluttered-conveyor-pick"]
    seeds = eval_seeds(4, start=600)
    fresh = sum(run_episode(env, s, delay_steps=0)["success"] for s in seeds)
    stale = sum(run_episode(env, s, delay_steps=32)["success"] for s in seeds)  # 400 ms
    assert fresh == 4 and stale <= 1, (fresh, stale)


def test_moving_goal_success_is_judged_at_release(envs):
    env = envs["cluttered-moving-goal"]
    env.reset(seed=2)
    for _ in range(5):
        env.step(np.array([0, 0, 0, 1.0]))
    *_, info = env.step(np.array([0, 0, 0, -1.0]))  # a release far from any pad
    assert env.release_events and not env.release_events[-1]["success"] and not info["success"]

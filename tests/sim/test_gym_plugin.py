"""The suite's gymnasium ids from a fresh interpreter: ``import sim``, the ``sim:`` prefix, and the
``gymnasium.envs`` entry point the project declares (each in its own subprocess, so nothing this
test session imported earlier can register the ids for them)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("gymnasium")

from sim.suite import TASKS

IDS = sorted(spec.gym_id for spec in TASKS.values())


def _fresh(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


def test_import_sim_registers_every_id_without_mujoco():
    out = _fresh(
        f"""
        import sys
        import gymnasium
        assert not any(i in gymnasium.registry for i in {IDS!r}), "registered before import sim"
        import sim
        missing = [i for i in {IDS!r} if i not in gymnasium.registry]
        assert not missing, missing
        print(",".join(m for m in ("mujoco", "metaworld") if m in sys.modules))
        """
    )
    assert out == "", f"import sim imported {out}"


def test_entry_point_registers_the_ids_under_its_namespace():
    # what gymnasium 0.26-0.29's load_plugin_envs did for every plugin; gymnasium >= 1.0 no longer
    # calls the group itself, so this checks that the declared entry point is right
    out = _fresh(
        f"""
        import sys
        from importlib.metadata import entry_points
        import gymnasium
        from gymnasium.envs.registration import namespace
        eps = [ep for ep in entry_points(group="gymnasium.envs") if ep.value.startswith("sim.")]
        assert eps, "no gymnasium.envs entry point for sim: reinstall the project (make install)"
        assert "sim" not in sys.modules
        for ep in eps:
            with namespace(ep.name):
                ep.load()()
        missing = [i for i in {IDS!r} if i not in gymnasium.registry]
        assert not missing, missing
        print(" ".join(ep.name for ep in eps))
        """
    )
    assert out == "embodied"


def test_make_by_id_in_a_fresh_interpreter():
    pytest.importorskip("mujoco")
    pytest.importorskip("metaworld")
    out = _fresh(
        """
        import gymnasium
        env = gymnasium.make("sim:embodied/drawer-open-v0")  # gymnasium imports sim, then makes
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(env.action_space.sample())
        print(obs["image"].shape, env.unwrapped.spec_task.name)
        env.close()
        """
    )
    assert out == "(64, 64, 3) drawer-open"

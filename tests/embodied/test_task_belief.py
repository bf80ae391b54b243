"""The policy's task belief on the robot side (``task_belief.onnx``, ``embodied belief``, and the
policy node's diagnostics): which task an instruction is read as, without torch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from embodied.modelfiles import MODELS_DIR as MODELS
from embodied.policy import ModelFileError, OnnxPolicy, PolicyInputError
from embodied_tools.belief import main as belief_main
from sim.suite import TASKS

HAS_BELIEF = (MODELS / "vla-task" / "task_belief.onnx").is_file()
needs_belief = pytest.mark.skipif(not HAS_BELIEF, reason="shipped vla-task has no task belief")


@pytest.fixture(scope="module")
def policy() -> OnnxPolicy:
    if not HAS_BELIEF:
        pytest.skip("shipped vla-task has no task belief")
    return OnnxPolicy(MODELS / "vla-task")


@needs_belief
def test_training_phrasings_are_read_as_their_task(policy):
    assert policy.grounding == "task-belief" and set(policy.tasks) == set(TASKS)
    wrong = {}
    for name, spec in TASKS.items():
        for text in spec.training_phrasings:
            belief = policy.task_belief(text)
            assert list(belief.values()) == sorted(belief.values(), reverse=True)
            assert abs(sum(belief.values()) - 1) < 1e-5 and set(belief) == set(TASKS)
            if next(iter(belief)) != name:
                wrong[text] = next(iter(belief))
    assert not wrong, wrong  # all 110 training phrasings


@needs_belief
def test_held_out_phrasings_mostly_read_right(policy):
    """Measured on the shipped model: 10 of 11 held-out phrasings read as their task (the miss:
    "slide the open drawer back in" → drawer-open). A regression guard, not a tuning target."""
    right = sum(
        next(iter(policy.task_belief(s.heldout_instructions[0]))) == n for n, s in TASKS.items()
    )
    assert right >= 10


@needs_belief
def test_bad_instruction_refused(policy):
    with pytest.raises(PolicyInputError, match="instruction"):
        policy.task_belief(np.full(384, 0.5, np.float32))  # norm ≠ 1
    with pytest.raises(PolicyInputError, match="empty"):
        policy.task_belief("  ")


@needs_belief
def test_missing_or_foreign_belief_file_refused(tmp_path):
    d = tmp_path / "vla-task"
    shutil.copytree(MODELS / "vla-task", d)
    original = (d / "policy.json").read_text()
    meta = json.loads(original)
    meta["tasks"] = list(reversed(meta["tasks"]))
    (d / "policy.json").write_text(json.dumps(meta))
    # policy.onnx carries the tasks in its metadata: a reordered list is another model
    with pytest.raises(ModelFileError, match=r"describe different models.*tasks"):
        OnnxPolicy(d)
    (d / "policy.json").write_text(original)
    assert max(OnnxPolicy(d).task_belief("open the drawer").values()) > 0.5
    (d / "task_belief.onnx").unlink()
    with pytest.raises(ModelFileError, match="no task belief"):
        OnnxPolicy(d).task_belief("open the drawer")


@needs_belief
def test_belief_cli(capsys):
    assert belief_main(["open the drawer", "close the drawer", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert next(iter(out["open the drawer"])) == "drawer-open"
    assert next(iter(out["close the drawer"])) == "drawer-close"
    assert belief_main(["push the button in horizontally", "--top", "2"]) == 0
    line = capsys.readouterr().out
    assert "button-press" in line and "->" in line
    with pytest.raises(SystemExit):
        belief_main(["open the drawer", "--policy", "vla-tsk"])
    err = capsys.readouterr().err
    assert "Valid: " in err and "vla-task" in err and "Did you mean 'vla-task'" in err
    with pytest.raises(SystemExit):
        belief_main(["open the drawer", "--top", "0"])

"""The cluttered suite (sim.cluttered): seeds, language splits, bad input, gym ids, experts."""

from __future__ import annotations

import numpy as np
import pytest

from sim.cluttered import spec as cs
from sim.suite import EVAL_SEED_BASE

TASKS = list(cs.TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_layout_is_a_pure_function_of_task_and_seed(task):
    a, b = cs.layout_for(task, 17), cs.layout_for(task, 17)
    assert a.instruction == b.instruction and a.objects == b.objects
    np.testing.assert_array_equal(a.object_xy, b.object_xy)
    np.testing.assert_array_equal(a.goal_xy, b.goal_xy)
    assert a.velocity == b.velocity and a.table_texture == b.table_texture
    c = cs.layout_for(task, 18)
    assert not np.array_equal(a.object_xy, c.object_xy)


@pytest.mark.parametrize("task", TASKS)
def test_train_and_eval_seeds_are_disjoint(task):
    train = {cs.layout_for(task, s).as_vector().tobytes() for s in range(150)}
    ev = {cs.layout_for(task, EVAL_SEED_BASE + s).as_vector().tobytes() for s in range(150)}
    assert len(train) == 150 and len(ev) == 150 and not train & ev


@pytest.mark.parametrize("task", TASKS)
def test_heldout_language_never_on_training_seeds(task):
    spec = cs.TASKS[task]
    held_phr = {t.split("{")[0] for t in spec.heldout_templates}
    seen = set()
    for s in range(400):
        lay = cs.layout_for(task, s)
        combo = cs.parse_instruction(lay.instruction)
        assert combo == lay.target_name
        assert combo not in cs.HELDOUT_COMBOS, (s, lay.instruction)
        assert lay.template in spec.train_templates and not lay.heldout_phrasing
        assert not any(lay.instruction.startswith(h) for h in held_phr if h)
        seen.add(combo)
    assert len(seen) > 40  # the training combos are many, not a handful
    ev = [cs.layout_for(task, EVAL_SEED_BASE + s) for s in range(200)]
    assert 0.3 < np.mean([e.heldout_combo for e in ev]) < 0.7
    assert 0.3 < np.mean([e.heldout_phrasing for e in ev]) < 0.7
    assert all((e.target_name in cs.HELDOUT_COMBOS) == e.heldout_combo for e in ev)


def test_heldout_combos_leave_every_word_in_training():
    train = set(cs.TRAIN_COMBOS)
    assert {c for c, _, _ in train} == set(cs.COLOURS)
    assert {s for _, s, _ in train} == set(cs.SHAPES)
    assert {g for _, _, g in train} == set(cs.GOALS)
    assert {(c, s) for c, s, _ in train} == {(c, s) for c in cs.COLOURS for s in cs.SHAPES}
    assert 0 < len(cs.HELDOUT_COMBOS) < len(cs.ALL_COMBOS) / 3


@pytest.mark.parametrize("task", TASKS)
def test_scene_has_distractors_and_a_unique_target(task):
    for s in range(50):
        lay = cs.layout_for(task, s)
        c, sh = lay.objects[lay.target]
        assert lay.objects.count((c, sh)) == 1
        others = [o for i, o in enumerate(lay.objects) if i != lay.target]
        assert any(o[0] == c for o in others) and any(o[1] == sh for o in others)
        assert cs.PARAM_RANGES["n_objects"].low <= len(lay.objects) <= 8


def test_bad_input_is_refused_with_the_valid_values():
    with pytest.raises(ValueError, match="Valid colours: red, orange"):
        cs.compose("put the {obj} on the {goal}", "magenta", "block", "white")
    with pytest.raises(ValueError, match="Valid shapes: block, bar, cylinder, disc"):
        cs.compose("put the {obj} on the {goal}", "red", "sphere", "white")
    with pytest.raises(ValueError, match="Valid goals: white, black, pink, cyan"):
        cs.compose("put the {obj} on the {goal}", "red", "block", "blue")
    with pytest.raises(ValueError, match="fields"):
        cs.compose("put the {thing} on the {goal}", "red", "block", "white")
    with pytest.raises(ValueError, match="valid colours"):
        cs.parse_instruction("put the magenta block on the white pad")
    with pytest.raises(ValueError, match="valid goals"):
        cs.parse_instruction("put the red block on the blue pad")
    spec = cs.TASKS["cluttered-conveyor-pick"]
    with pytest.raises(ValueError, match=r"speed must be in \[0.0, 0.3\]"):
        spec.with_params(speed=0.5)
    with pytest.raises(ValueError, match=r"n_objects must be in \[4, 8\]"):
        spec.with_params(n_objects=9)
    with pytest.raises(ValueError, match="an integer"):
        spec.with_params(n_objects=5.5)
    with pytest.raises(ValueError, match="valid: n_objects"):
        spec.with_params(colour="red")
    with pytest.raises(ValueError, match="Valid tasks: cluttered-pick-place"):
        cs.get_task("cluttered-pick")
    with pytest.raises(ValueError, match="non-negative"):
        cs.layout_for("cluttered-push", -1)


def test_forced_instruction_puts_its_target_in_the_scene():
    lay = cs.layout_for("cluttered-pick-place", 3, "put the purple disc on the cyan pad")
    assert lay.target_name == ("purple", "disc", "cyan")
    assert lay.heldout_combo == (("purple", "disc", "cyan") in cs.HELDOUT_COMBOS)


def test_tasks_resolve_through_the_suite():
    from sim.suite import resolve_tasks

    assert [t.name for t in resolve_tasks("cluttered")] == TASKS
    assert resolve_tasks("cluttered-push,cluttered-moving-goal")[1].kind == "moving-goal"
    assert resolve_tasks("drawer-open")[0].mw_id == "drawer-open-v3"
    with pytest.raises(ValueError, match="cluttered-pick-place"):
        resolve_tasks("clutered-push")

"""The benchmark suite: Meta-World v3 tasks with widened, seed-driven layouts.

Why widen: with Meta-World's default object ranges a policy trained with the
image blanked still solved 54% of drawer-open / button-press-topdown /
window-open / door-open episodes in a probe here, so "vision" bought little.
Each task below draws its object position from a range several times wider
than Meta-World's (chosen as wide as the scripted expert still solves and the
``corner`` camera still frames), so only the camera can tell where to go.

Why our own seeds: Meta-World's MT1 ``reset(seed=...)`` does not set object
positions; its wrapper picks one of 50 fixed layouts from its own random
state, so "held-out" seeds repeat training layouts. Here the layout is a pure
function of (task, seed): ``layout_for(task, seed)``.

Seed splits: training seeds are ``0 <= seed < 1_000_000``; evaluation
(held-out) seeds are ``seed >= EVAL_SEED_BASE``. Layouts are continuous draws,
so distinct seeds give distinct layouts (a test checks the two sets are disjoint).
"""

from __future__ import annotations

import difflib
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

EVAL_SEED_BASE = 1_000_000
DEFAULT_MAX_STEPS = 150


@dataclass(frozen=True)
class TaskSpec:
    """One benchmark task: which Meta-World env, where its object may be, what to say."""

    name: str
    mw_id: str
    obj_low: tuple[float, ...]
    obj_high: tuple[float, ...]
    train_instructions: tuple[str, ...]
    heldout_instructions: tuple[str, ...]
    default_low: tuple[float, ...] = field(default=())  # Meta-World's own range, for the record
    default_high: tuple[float, ...] = field(default=())
    max_steps: int = DEFAULT_MAX_STEPS
    paraphrases: tuple[str, ...] = field(default=())  # training-only language augmentation

    def __post_init__(self) -> None:
        if len(self.obj_low) != len(self.obj_high):
            raise ValueError(f"{self.name}: obj_low and obj_high differ in length")
        if any(lo > hi for lo, hi in zip(self.obj_low, self.obj_high, strict=True)):
            raise ValueError(f"{self.name}: obj_low must be <= obj_high elementwise")
        if len(self.train_instructions) < 2 or len(self.heldout_instructions) < 1:
            raise ValueError(f"{self.name}: need >= 2 training and >= 1 held-out phrasing")
        leaked = {_norm(p) for p in self.paraphrases} & {
            _norm(h) for h in self.heldout_instructions
        }
        if leaked:
            raise ValueError(f"{self.name}: held-out phrasings in the paraphrase pool: {leaked}")

    @property
    def instructions(self) -> tuple[str, ...]:
        return self.train_instructions + self.heldout_instructions

    @property
    def training_phrasings(self) -> tuple[str, ...]:
        """What a policy may be trained on: the episode phrasings plus the paraphrase pool
        (never the held-out phrasings)."""
        return self.train_instructions + self.paraphrases

    @property
    def gym_id(self) -> str:
        return f"embodied/{self.name}-v0"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _t(*xs: float) -> tuple[float, ...]:
    return tuple(float(x) for x in xs)


TASKS: dict[str, TaskSpec] = {}


def _add(spec: TaskSpec) -> None:
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} registered twice")
    TASKS[spec.name] = spec


_add(TaskSpec(
    "button-press-topdown", "button-press-topdown-v3",
    _t(-0.3, 0.7, 0.115), _t(0.3, 0.9, 0.115),
    ("press the button from above", "push the button down from the top"),
    ("press down on the top of the button",),
    _t(-0.1, 0.8, 0.115), _t(0.1, 0.9, 0.115),
    paraphrases=(
        "press the button down",
        "push the top button",
        "hit the button from above",
        "press the button with a downward push",
        "tap the button vertically",
        "depress the button from above",
        "press the upward-facing button",
        "push the button down vertically",
    ),
))  # fmt: skip
_add(TaskSpec(
    "button-press", "button-press-v3",
    _t(-0.3, 0.8, 0.115), _t(0.3, 0.9, 0.115),
    ("press the button from the front", "push the button in horizontally"),
    ("poke the button straight ahead",),
    _t(-0.1, 0.85, 0.115), _t(0.1, 0.9, 0.115),
    paraphrases=(
        "push the button forward",
        "press the button sideways",
        "press the front button",
        "hit the button from the side",
        "push the button in from the front",
        "press the wall button horizontally",
        "jab the button forward",
        "press the button on the wall",
    ),
))  # fmt: skip
_add(TaskSpec(
    "drawer-open", "drawer-open-v3",
    _t(-0.3, 0.85, 0.0), _t(0.3, 0.95, 0.0),
    ("open the drawer", "pull the drawer out"),
    ("slide the drawer open toward you",),
    _t(-0.1, 0.9, 0.0), _t(0.1, 0.9, 0.0),
    paraphrases=(
        "pull the drawer open",
        "open the drawer up",
        "draw the drawer out",
        "pull out the drawer",
        "open up the drawer",
        "drag the drawer outward",
        "pull the drawer handle",
        "get the drawer open",
    ),
))  # fmt: skip
_add(TaskSpec(
    "drawer-close", "drawer-close-v3",
    _t(-0.3, 0.85, 0.0), _t(0.3, 0.92, 0.0),
    ("close the drawer", "push the drawer shut"),
    ("slide the open drawer back in",),
    _t(-0.1, 0.9, 0.0), _t(0.1, 0.9, 0.0),
    paraphrases=(
        "shut the drawer",
        "close the drawer up",
        "push the drawer in",
        "push the drawer closed",
        "slide the drawer shut",
        "close the open drawer",
        "push in the drawer",
        "get the drawer closed",
    ),
))  # fmt: skip
_add(TaskSpec(
    "window-open", "window-open-v3",
    _t(-0.3, 0.7, 0.16), _t(0.3, 0.9, 0.16),
    ("open the window", "slide the window open"),
    ("push the window pane to the side to open it",),
    _t(-0.1, 0.7, 0.16), _t(0.1, 0.9, 0.16),
    paraphrases=(
        "open the window up",
        "slide the window pane open",
        "push the window open",
        "move the window to open it",
        "open the sliding window",
        "slide the window sideways to open",
        "get the window open",
        "pull the window open",
    ),
))  # fmt: skip
_add(TaskSpec(
    "window-close", "window-close-v3",
    _t(-0.3, 0.7, 0.2), _t(0.25, 0.9, 0.2),
    ("close the window", "slide the window shut"),
    ("push the window pane back to close it",),
    _t(0.0, 0.75, 0.2), _t(0.0, 0.9, 0.2),
    paraphrases=(
        "shut the window",
        "close the window up",
        "push the window shut",
        "slide the window closed",
        "close the sliding window",
        "move the window to close it",
        "get the window closed",
        "slide the pane shut",
    ),
))  # fmt: skip
_add(TaskSpec(
    "door-open", "door-open-v3",
    _t(0.05, 0.8, 0.15), _t(0.3, 0.95, 0.15),
    ("open the door", "swing the door open"),
    ("pull the door open by its handle",),
    _t(0.0, 0.85, 0.15), _t(0.1, 0.95, 0.15),
    paraphrases=(
        "open the door up",
        "pull the door open",
        "swing open the door",
        "open the cabinet door",
        "pull the door toward you",
        "get the door open",
        "swing the door outward",
        "open the hinged door",
    ),
))  # fmt: skip
_add(TaskSpec(
    "faucet-open", "faucet-open-v3",
    _t(-0.3, 0.75, 0.0), _t(0.3, 0.9, 0.0),
    ("turn the faucet on", "rotate the faucet handle to open it"),
    ("open the tap",),
    _t(-0.05, 0.8, 0.0), _t(0.05, 0.85, 0.0),
    paraphrases=(
        "turn on the faucet",
        "open the faucet",
        "turn the faucet handle on",
        "rotate the faucet on",
        "turn the water on",
        "switch the faucet on",
        "twist the faucet open",
        "start the faucet",
    ),
))  # fmt: skip
_add(TaskSpec(
    "faucet-close", "faucet-close-v3",
    _t(-0.3, 0.75, 0.0), _t(0.3, 0.9, 0.0),
    ("turn the faucet off", "rotate the faucet handle to close it"),
    ("shut the tap",),
    _t(-0.1, 0.8, 0.0), _t(0.1, 0.85, 0.0),
    paraphrases=(
        "turn off the faucet",
        "close the faucet",
        "turn the faucet handle off",
        "rotate the faucet off",
        "turn the water off",
        "switch the faucet off",
        "twist the faucet closed",
        "stop the faucet",
    ),
))  # fmt: skip
_add(TaskSpec(
    "handle-press", "handle-press-v3",
    _t(-0.3, 0.75, -0.001), _t(0.3, 0.9, 0.001),
    ("press the handle down", "push the lever handle down"),
    ("push down on the handle",),
    _t(-0.1, 0.8, -0.001), _t(0.1, 0.9, 0.001),
    paraphrases=(
        "press down the handle",
        "push the handle down",
        "press the lever down",
        "lower the lever",
        "lower the handle",
        "press the handle",
        "push the lever all the way down",
        "pull the handle downward",
    ),
))  # fmt: skip
_add(TaskSpec(
    "coffee-button", "coffee-button-v3",
    _t(-0.3, 0.75, -0.001), _t(0.3, 0.9, 0.001),
    ("press the button on the coffee machine", "push the coffee machine's button"),
    ("start the coffee machine",),
    _t(-0.1, 0.8, -0.001), _t(0.1, 0.9, 0.001),
    paraphrases=(
        "press the coffee machine button",
        "push the button on the coffee maker",
        "hit the coffee button",
        "press the coffee maker's button",
        "push the espresso machine button",
        "press the button to make coffee",
        "push the coffee button",
        "press the coffee maker button",
    ),
))  # fmt: skip


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> TaskSpec:
    """Look a task up by name (``drawer-open``) or Meta-World id (``drawer-open-v3``)."""
    if name in TASKS:
        return TASKS[name]
    for spec in TASKS.values():
        if name in (spec.mw_id, spec.gym_id):
            return spec
    close = difflib.get_close_matches(name, TASKS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown task {name!r}.{hint} Valid tasks: {', '.join(TASKS)}")


def resolve_tasks(names: Sequence[str] | str | None) -> list[TaskSpec]:
    """``None``/"all" → the whole suite; else a comma list or sequence of names.

    Names of the cluttered suite (``sim.cluttered``) resolve to its task specs, and
    "cluttered" to all of them; "all" stays the Meta-World suite."""
    if names is None or names == "all" or names == ["all"]:
        return list(TASKS.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    from sim.cluttered import spec as cluttered

    out: list = []
    for n in names:
        if n == "cluttered":
            out += list(cluttered.TASKS.values())
        elif cluttered.is_cluttered(n):
            out.append(cluttered.get_task(n))
        elif n in TASKS or any(n in (t.mw_id, t.gym_id) for t in TASKS.values()):
            out.append(get_task(n))
        else:
            valid = [*TASKS, *cluttered.TASKS, "cluttered"]
            close = difflib.get_close_matches(n, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown task {n!r}.{hint} Valid tasks: {', '.join(valid)}")
    return out


def task_key(name: str) -> int:
    """A stable integer per task name, mixed into every seed-derived random stream (layouts,
    phrasings, collection noise) so that tasks never share a stream."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def layout_for(task: TaskSpec | str, seed: int) -> np.ndarray:
    """The object layout (Meta-World ``rand_vec``) of ``task`` for ``seed``: a pure function."""
    spec = get_task(task) if isinstance(task, str) else task
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([task_key(spec.name), int(seed)])
    return rng.uniform(np.array(spec.obj_low), np.array(spec.obj_high))


#: New sentences, two per task, for the "any instruction" check (``embodied eval --instructions
#: novel``): written for it, in no training pool, held-out set or shipped instruction cache
#: (tested), so a policy can only read them through the shipped sentence encoder.
NOVEL_INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "button-press-topdown": ("hit the button from the top", "smash the button downward from overhead"),
    "button-press": ("push the button that faces you", "press the button straight in with the gripper"),
    "drawer-open": ("yank the drawer toward the robot", "pull the drawer all the way out"),
    "drawer-close": ("shove the drawer back into the cabinet", "close the drawer by pushing it in all the way"),
    "window-open": ("slide the window glass to open it", "open the window by sliding it along"),
    "window-close": ("slide the window glass back to shut it", "close the window by sliding it back"),
    "door-open": ("pull the door so it swings open", "open the door by pulling on the handle"),
    "faucet-open": ("turn on the water tap", "twist the tap handle to let the water run"),
    "faucet-close": ("turn off the water tap", "twist the tap handle to stop the water"),
    "handle-press": ("push the lever downward", "press the handle all the way to the bottom"),
    "coffee-button": ("press the button on the espresso maker", "turn on the coffee maker with its button"),
}  # fmt: skip
INSTRUCTION_SPLITS = ("train", "heldout", "novel")


def instruction_for(task: TaskSpec, seed: int, split: str = "train") -> str:
    """A phrasing for the episode, drawn by seed from the training, held-out or novel
    (:data:`NOVEL_INSTRUCTIONS`) phrasings."""
    pool = {"train": task.train_instructions, "heldout": task.heldout_instructions,
            "novel": NOVEL_INSTRUCTIONS.get(task.name, ())}  # fmt: skip
    if split == "novel" and not pool["novel"]:
        raise ValueError(f"task {task.name!r} has no novel phrasings")
    if split not in pool:
        raise ValueError(f"instruction split must be one of {sorted(pool)}, got {split!r}")
    rng = np.random.default_rng([task_key(task.name), int(seed), 7])
    options = pool[split]
    return options[int(rng.integers(len(options)))]


def train_seeds(n: int, start: int = 0) -> list[int]:
    if start + n > EVAL_SEED_BASE:
        raise ValueError("training seeds must stay below EVAL_SEED_BASE")
    return list(range(start, start + n))


def eval_seeds(n: int, start: int = 0) -> list[int]:
    return list(range(EVAL_SEED_BASE + start, EVAL_SEED_BASE + start + n))


def tasks_main(argv: Sequence[str] | None = None) -> int:
    """``embodied tasks``: list the suite."""
    import argparse

    p = argparse.ArgumentParser(prog="embodied tasks", description=tasks_main.__doc__)
    p.parse_args(argv)
    for spec in TASKS.values():
        print(f"{spec.name:22s} {spec.gym_id:32s} meta-world {spec.mw_id}")
        print(f"{'':22s} object x,y range {spec.obj_low[:2]}..{spec.obj_high[:2]}"
              f" (Meta-World default {spec.default_low[:2]}..{spec.default_high[:2]})")  # fmt: skip
        print(f"{'':22s} train: {' | '.join(spec.train_instructions)}")
        print(f"{'':22s} held-out: {' | '.join(spec.heldout_instructions)}")
    print()
    print("cluttered suite (sim.cluttered, docs/cluttered.md):")
    from sim.cluttered.spec import tasks_main as cluttered_tasks

    cluttered_tasks([])
    sys.stdout.flush()
    return 0

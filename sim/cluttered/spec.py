"""The cluttered suite's tasks, vocabulary, instructions and seeded layouts (no MuJoCo here).

Everything an episode is made of is a pure function of ``(task, seed)``: which objects
(colour x shape) lie where, which one is the target, which pad is the goal, the table and
background textures, the conveyor or pad speed, and the instruction's phrasing. Training
seeds are ``0 <= seed < EVAL_SEED_BASE``; evaluation seeds are ``>= EVAL_SEED_BASE``.

Language: an instruction names the target by colour and shape and the goal pad by colour
("put the red cylinder on the blue pad"). Some (colour, shape, goal) combinations
(:data:`HELDOUT_COMBOS`) and some phrasings per task never occur on training seeds; on
evaluation seeds half the episodes use a held-out combination and half a held-out phrasing
(independently drawn). Every scene holds distractors that share the target's colour, its
shape, or a similar colour, so only the instruction says which object is the target.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sim.suite import EVAL_SEED_BASE, task_key

#: object colours (RGB) — pairs of similar colours are deliberate distractors
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "orange": (0.95, 0.48, 0.08),
    "yellow": (0.92, 0.85, 0.12),
    "green": (0.15, 0.65, 0.20),
    "blue": (0.12, 0.30, 0.85),
    "purple": (0.50, 0.18, 0.70),
}
#: which colours a person (or a coarse camera) confuses
SIMILAR_COLOUR: dict[str, tuple[str, ...]] = {
    "red": ("orange", "purple"),
    "orange": ("red", "yellow"),
    "yellow": ("orange", "green"),
    "green": ("yellow", "blue"),
    "blue": ("purple", "green"),
    "purple": ("blue", "red"),
}
#: shape -> (MuJoCo geom type name, size, half height); similar pairs: block/bar, cylinder/disc
SHAPES: dict[str, tuple[str, tuple[float, ...], float]] = {
    "block": ("box", (0.02, 0.02, 0.02), 0.02),
    "bar": ("box", (0.04, 0.016, 0.02), 0.02),
    "cylinder": ("cylinder", (0.018, 0.025), 0.025),
    "disc": ("cylinder", (0.026, 0.016), 0.016),
}
#: goal pads, named by colour
GOALS: dict[str, tuple[float, float, float]] = {
    "white": (0.95, 0.95, 0.95),
    "black": (0.05, 0.05, 0.05),
    "pink": (1.0, 0.55, 0.75),
    "cyan": (0.15, 0.85, 0.9),
}
PER_SHAPE_MAX = 4  # bodies per shape in the model (a scene holds at most this many of one shape)
PAD_RADIUS = 0.045
N_TEXTURES = 8  # table and background textures each (sim/assets/textures)

#: the table region where objects and static pads are drawn (x, y)
TABLE_LOW, TABLE_HIGH = (-0.30, 0.60), (0.30, 0.75)
#: the conveyor: a belt along x at y = BELT_Y, top surface BELT_Z above the table
BELT_Y, BELT_HALF_WIDTH, BELT_Z = 0.50, 0.06, 0.006
BELT_HALF_LENGTH = 1.0


def _combo_heldout(ci: int, si: int, gi: int) -> bool:
    # one in five (colour, shape, goal) triples; for each (colour, shape) at most one goal,
    # so every colour, shape, goal and (colour, shape) pair still occurs in training
    return (ci + 2 * si + 3 * gi) % 5 == 0


ALL_COMBOS: tuple[tuple[str, str, str], ...] = tuple(
    (c, s, g) for c in COLOURS for s in SHAPES for g in GOALS
)
HELDOUT_COMBOS: frozenset[tuple[str, str, str]] = frozenset(
    (c, s, g)
    for ci, c in enumerate(COLOURS)
    for si, s in enumerate(SHAPES)
    for gi, g in enumerate(GOALS)
    if _combo_heldout(ci, si, gi)
)
TRAIN_COMBOS: tuple[tuple[str, str, str], ...] = tuple(
    c for c in ALL_COMBOS if c not in HELDOUT_COMBOS
)


@dataclass(frozen=True)
class Range:
    """An allowed parameter range; :meth:`check` refuses a value outside it, naming it."""

    low: float
    high: float
    integer: bool = False

    def check(self, name: str, value: Any) -> float | int:
        ok_type = (
            isinstance(value, int | np.integer)
            if self.integer
            else isinstance(value, int | float | np.integer | np.floating)
        )
        if isinstance(value, bool) or not ok_type or not np.isfinite(value):
            kind = "an integer" if self.integer else "a number"
            raise ValueError(f"{name} must be {kind} in [{self.low}, {self.high}], got {value!r}")
        if not self.low <= value <= self.high:
            raise ValueError(f"{name} must be in [{self.low}, {self.high}], got {value}")
        return int(value) if self.integer else float(value)


PARAM_RANGES: dict[str, Range] = {
    "n_objects": Range(4, 8, integer=True),
    "n_goals": Range(2, 4, integer=True),
    "speed": Range(0.0, 0.3),  # m/s, conveyor belt (or pads riding it)
    "tolerance": Range(0.01, 0.1),  # m, target centre to pad centre
    "max_steps": Range(50, 1000, integer=True),
}


@dataclass(frozen=True)
class ClutteredTaskSpec:
    """One cluttered task: what moves, what counts as success, what to say."""

    name: str
    kind: str  # pick-place | push | conveyor-pick | moving-goal
    train_templates: tuple[str, ...]
    heldout_templates: tuple[str, ...]
    n_objects: int = 6
    n_goals: int = 3
    speed: float = 0.0
    tolerance: float = 0.04
    max_steps: int = 250
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for pname in ("n_objects", "n_goals", "speed", "tolerance", "max_steps"):
            PARAM_RANGES[pname].check(f"{self.name}: {pname}", getattr(self, pname))
        for t in self.train_templates + self.heldout_templates:
            check_template(t)
        if len(self.train_templates) < 2 or len(self.heldout_templates) < 1:
            raise ValueError(f"{self.name}: need >= 2 training and >= 1 held-out phrasing")

    @property
    def gym_id(self) -> str:
        return f"embodied/{self.name}-v0"

    @property
    def moving(self) -> bool:
        return self.kind in ("conveyor-pick", "moving-goal")

    def with_params(self, **kw: Any) -> ClutteredTaskSpec:
        """A copy with some of n_objects, n_goals, speed, tolerance, max_steps changed
        (each checked against its range)."""
        unknown = set(kw) - set(PARAM_RANGES)
        if unknown:
            raise ValueError(
                f"unknown task parameter(s) {sorted(unknown)}; valid: {', '.join(PARAM_RANGES)}"
            )
        kw = {k: PARAM_RANGES[k].check(k, v) for k, v in kw.items() if v is not None}
        return replace(self, **kw)


_TEMPLATE_FIELD = re.compile(r"\{(\w+)\}")


def check_template(template: str) -> str:
    """A phrasing template must use exactly the fields {obj} and {goal}."""
    fields = set(_TEMPLATE_FIELD.findall(template))
    if fields != {"obj", "goal"}:
        raise ValueError(
            f"instruction template {template!r} must use the fields {{obj}} and {{goal}} "
            f"(once each), found {sorted(fields)}"
        )
    return template


TASKS: dict[str, ClutteredTaskSpec] = {}


def _add(spec: ClutteredTaskSpec) -> None:
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} registered twice")
    TASKS[spec.name] = spec


_add(ClutteredTaskSpec(
    "cluttered-pick-place", "pick-place",
    ("put the {obj} on the {goal}", "place the {obj} onto the {goal}",
     "pick up the {obj} and set it on the {goal}", "move the {obj} to the {goal}"),
    ("grab the {obj} and drop it on the {goal}", "the {obj} belongs on the {goal}"),
    description="pick the named object among distractors and place it on the named pad",
))  # fmt: skip
_add(ClutteredTaskSpec(
    "cluttered-push", "push",
    ("push the {obj} to the {goal}", "slide the {obj} onto the {goal}",
     "shove the {obj} over to the {goal}"),
    ("nudge the {obj} until it sits on the {goal}",),
    tolerance=0.035, max_steps=300,
    description="push the named object along the table onto the named pad",
))  # fmt: skip
_add(ClutteredTaskSpec(
    "cluttered-conveyor-pick", "conveyor-pick",
    ("pick the {obj} off the conveyor and put it on the {goal}",
     "grab the {obj} from the belt and place it on the {goal}",
     "take the {obj} off the moving belt and set it on the {goal}"),
    ("catch the {obj} on the conveyor and bring it to the {goal}",),
    speed=0.12, max_steps=250,
    description="pick the named object from a moving conveyor, place it on the named pad",
))  # fmt: skip
_add(ClutteredTaskSpec(
    "cluttered-moving-goal", "moving-goal",
    ("put the {obj} on the moving {goal}", "place the {obj} onto the {goal} as it passes",
     "drop the {obj} on the {goal} riding the belt"),
    ("set the {obj} down on the sliding {goal}",),
    speed=0.10, tolerance=0.03, max_steps=300,
    description="place the named object on the named pad riding the conveyor; "
    "success is judged at the moment of release",
))  # fmt: skip


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> ClutteredTaskSpec:
    if name in TASKS:
        return TASKS[name]
    for spec in TASKS.values():
        if name == spec.gym_id:
            return spec
    close = difflib.get_close_matches(name, TASKS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown cluttered task {name!r}.{hint} Valid tasks: {', '.join(TASKS)}")


def is_cluttered(name: str) -> bool:
    return name in TASKS or any(name == s.gym_id for s in TASKS.values())


# -- instructions ------------------------------------------------------------------------


def _check_word(kind: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        close = difflib.get_close_matches(str(value), list(valid), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {kind} {value!r}.{hint} Valid {kind}s: {', '.join(valid)}")
    return value


def compose(template: str, colour: str, shape: str, goal: str) -> str:
    """Fill a phrasing template; an unknown colour, shape or goal is refused with the valid ones."""
    check_template(template)
    _check_word("colour", colour, list(COLOURS))
    _check_word("shape", shape, list(SHAPES))
    _check_word("goal", goal, list(GOALS))
    return template.format(obj=f"{colour} {shape}", goal=f"{goal} pad")


def parse_instruction(text: str) -> tuple[str, str, str]:
    """(colour, shape, goal) named by an instruction, or a ValueError naming the valid words."""
    words = re.findall(r"[a-z]+", text.lower())
    m = None
    for i in range(len(words) - 1):
        if words[i] in COLOURS and words[i + 1] in SHAPES:
            m = (words[i], words[i + 1])
            break
    if m is None:
        raise ValueError(
            f"instruction {text!r} names no object as '<colour> <shape>'; "
            f"valid colours: {', '.join(COLOURS)}; valid shapes: {', '.join(SHAPES)}"
        )
    goal = None
    for i in range(len(words) - 1):
        if words[i + 1] == "pad" and words[i] in GOALS:
            goal = words[i]
    if goal is None:
        raise ValueError(
            f"instruction {text!r} names no goal as '<colour> pad'; valid goals: "
            f"{', '.join(g + ' pad' for g in GOALS)}"
        )
    return m[0], m[1], goal


# -- layouts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One episode's scene, a pure function of (task, seed, parameters)."""

    task: str
    seed: int
    objects: tuple[tuple[str, str], ...]  # (colour, shape) per object; index 0 is NOT special
    object_xy: np.ndarray  # (n, 2) initial centre positions
    on_belt: tuple[bool, ...]  # object rides the conveyor
    target: int  # index into objects
    goals: tuple[str, ...]  # pad colours
    goal_xy: np.ndarray  # (g, 2) initial pad centres (on the belt for moving-goal)
    goal_index: int  # index into goals
    velocity: float  # belt velocity along x (m/s, signed)
    table_texture: int
    wall_texture: int
    tint: tuple[float, float, float]  # light tint of the table material
    template: str
    instruction: str
    heldout_combo: bool
    heldout_phrasing: bool

    @property
    def target_name(self) -> tuple[str, str, str]:
        c, s = self.objects[self.target]
        return c, s, self.goals[self.goal_index]

    def as_vector(self) -> np.ndarray:
        """A flat float summary (for datasets): target xy, goal xy, velocity, then all objects."""
        return np.concatenate([
            self.object_xy[self.target], self.goal_xy[self.goal_index], [self.velocity],
            self.object_xy.reshape(-1),
        ]).astype(np.float64)  # fmt: skip


def is_eval_seed(seed: int) -> bool:
    return int(seed) >= EVAL_SEED_BASE


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _sample_points(
    rng: np.random.Generator, n: int, low: Sequence[float], high: Sequence[float],
    min_dist: float, avoid: np.ndarray, avoid_dist: float, restarts: int = 200,
) -> np.ndarray:  # fmt: skip
    """``n`` points in the box, ``min_dist`` apart and ``avoid_dist`` from ``avoid``: greedy
    rejection sampling, restarted from scratch when it paints itself into a corner."""
    for _ in range(restarts):
        pts: list[np.ndarray] = []
        for _ in range(60 * n):
            if len(pts) == n:
                break
            p = rng.uniform(low, high)
            if any(np.linalg.norm(p - q) < min_dist for q in pts):
                continue
            if len(avoid) and np.min(np.linalg.norm(avoid - p, axis=1)) < avoid_dist:
                continue
            pts.append(p)
        if len(pts) == n:
            return np.array(pts)
    raise RuntimeError(f"layout sampling failed: {n} points {min_dist} m apart in {low}..{high}")


def _pick_objects(
    rng: np.random.Generator, n: int, target: tuple[str, str]
) -> list[tuple[str, str]]:
    """The target plus distractors: same colour (other shape), same shape (other colour),
    similar colour (same shape), then random; all distinct, at most PER_SHAPE_MAX per shape."""
    c, s = target
    objs = [target]
    shapes, colours = list(SHAPES), list(COLOURS)

    def ok(o: tuple[str, str]) -> bool:
        return o not in objs and sum(x[1] == o[1] for x in objs) < PER_SHAPE_MAX

    other_shapes = [x for x in shapes if x != s]
    other_colours = [x for x in colours if x != c]
    wanted = [
        (c, other_shapes[int(rng.integers(len(other_shapes)))]),
        (SIMILAR_COLOUR[c][int(rng.integers(2))], s),
        (other_colours[int(rng.integers(len(other_colours)))], s),
    ]
    for o in wanted:
        if len(objs) < n and ok(o):
            objs.append(o)
    while len(objs) < n:
        o = (colours[int(rng.integers(len(colours)))], shapes[int(rng.integers(len(shapes)))])
        if ok(o):
            objs.append(o)
    return objs


def layout_for(task: ClutteredTaskSpec | str, seed: int, instruction: str | None = None) -> Layout:
    """The scene of ``task`` for ``seed``. With ``instruction`` the named target and goal are
    forced into the scene (the rest still drawn from the seed)."""
    spec = get_task(task) if isinstance(task, str) else task
    seed = check_seed(seed)
    rng = np.random.default_rng([task_key(spec.name), seed, 0xC1])
    ev = is_eval_seed(seed)
    heldout_combo = bool(ev and rng.random() < 0.5)
    heldout_phrasing = bool(ev and rng.random() < 0.5)
    pool = sorted(HELDOUT_COMBOS) if heldout_combo else TRAIN_COMBOS
    colour, shape, goal = pool[int(rng.integers(len(pool)))]
    templates = spec.heldout_templates if heldout_phrasing else spec.train_templates
    template = templates[int(rng.integers(len(templates)))]
    if instruction is not None:
        colour, shape, goal = parse_instruction(instruction)
        heldout_combo = (colour, shape, goal) in HELDOUT_COMBOS
    objects = _pick_objects(rng, spec.n_objects, (colour, shape))
    order = rng.permutation(len(objects))
    objects = [objects[i] for i in order]
    target = int(np.argmax(order == 0))
    other_goals = [g for g in GOALS if g != goal]
    goals = [goal] + [other_goals[i] for i in rng.permutation(len(other_goals))[: spec.n_goals - 1]]
    gperm = rng.permutation(len(goals))
    goals = [goals[i] for i in gperm]
    goal_index = int(np.argmax(gperm == 0))
    speed = spec.speed * rng.uniform(0.85, 1.15)
    n = len(objects)
    on_belt = [False] * n
    empty = np.zeros((0, 2))
    if spec.kind == "conveyor-pick":
        # the target and one or two distractors ride the belt, entering from -x
        belt_idx = [
            target,
            *[i for i in rng.permutation(n) if i != target][: 1 + int(rng.integers(2))],
        ]
        xs = (
            -0.38
            + rng.uniform(0, 0.1)
            + np.cumsum([0.0, *list(rng.uniform(0.12, 0.16, len(belt_idx) - 1))])
        )
        xs = xs[rng.permutation(len(xs))][:, None]
        # the target no further than 0.1 m behind the first belt object, within reach in time
        obj_xy = np.zeros((n, 2))
        for k, i in enumerate(belt_idx):
            obj_xy[i] = (xs[k, 0], BELT_Y + rng.uniform(-0.01, 0.01))
            on_belt[i] = True
        rest = [i for i in range(n) if not on_belt[i]]
        goal_xy = _sample_points(rng, len(goals), TABLE_LOW, TABLE_HIGH, 0.14, empty, 0)
        pts = _sample_points(
            rng, len(rest), TABLE_LOW, TABLE_HIGH, 0.07, goal_xy, PAD_RADIUS + 0.03
        )
        for k, i in enumerate(rest):
            obj_xy[i] = pts[k]
        velocity = speed
    elif spec.kind == "moving-goal":
        direction = 1.0 if rng.random() < 0.5 else -1.0
        gaps = rng.uniform(0.16, 0.2, len(goals) - 1)
        xs = rng.uniform(-0.30, 0.30 - gaps.sum()) + np.cumsum([0.0, *gaps])
        goal_xy = np.stack([xs - direction * 0.15, np.full(len(goals), BELT_Y)], axis=1)
        obj_xy = _sample_points(rng, n, TABLE_LOW, TABLE_HIGH, 0.075, empty, 0)
        velocity = direction * speed
    else:
        goal_xy = _sample_points(rng, len(goals), TABLE_LOW, TABLE_HIGH, 0.14, empty, 0)
        obj_xy = _sample_points(rng, n, TABLE_LOW, TABLE_HIGH, 0.075, goal_xy, PAD_RADIUS + 0.03)
        if spec.kind == "push":
            obj_xy = _clear_push_path(rng, obj_xy, target, goal_xy[goal_index], goal_xy)
        velocity = 0.0
    tint = tuple(float(x) for x in rng.uniform(0.75, 1.0, 3))
    table_texture = int(rng.integers(N_TEXTURES))
    wall_texture = int(rng.integers(N_TEXTURES))
    text = instruction if instruction is not None else compose(template, colour, shape, goal)
    return Layout(
        task=spec.name, seed=seed, objects=tuple(objects), object_xy=obj_xy,
        on_belt=tuple(on_belt), target=target, goals=tuple(goals), goal_xy=goal_xy,
        goal_index=goal_index, velocity=float(velocity), table_texture=table_texture,
        wall_texture=wall_texture, tint=tint, template=template, instruction=text,  # type: ignore[arg-type]
        heldout_combo=heldout_combo, heldout_phrasing=heldout_phrasing,
    )  # fmt: skip


def _clear_push_path(
    rng: np.random.Generator, obj_xy: np.ndarray, target: int, goal: np.ndarray,
    goal_xy: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Move distractors off the straight push path (target -> goal, plus the approach behind
    the target) so that the push is the task, not clearing the way."""
    a = obj_xy[target]
    u = (goal - a) / max(np.linalg.norm(goal - a), 1e-9)
    start = a - u * 0.10
    out = obj_xy.copy()
    for i in range(len(out)):
        if i == target:
            continue
        for _ in range(2000):
            p = out[i]
            t = np.clip(np.dot(p - start, u), 0, np.linalg.norm(goal - start))
            d_path = np.linalg.norm(p - (start + t * u))
            others = [np.linalg.norm(p - out[j]) for j in range(len(out)) if j != i]
            d_pad = np.min(np.linalg.norm(goal_xy - p, axis=1))
            if d_path >= 0.07 and min(others) >= 0.075 and d_pad >= PAD_RADIUS + 0.03:
                break
            out[i] = rng.uniform(TABLE_LOW, TABLE_HIGH)
    return out


def instruction_split_of(seed: int) -> str:
    return "eval" if is_eval_seed(seed) else "train"


def tasks_main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - printing only
    for spec in TASKS.values():
        print(f"{spec.name:26s} {spec.gym_id:36s} cluttered ({spec.kind})")
        print(f"{'':26s} {spec.description}")
        print(f"{'':26s} objects {spec.n_objects}, pads {spec.n_goals}, speed {spec.speed} m/s, "
              f"tolerance {spec.tolerance} m, max steps {spec.max_steps}")  # fmt: skip
        print(f"{'':26s} train: {' | '.join(spec.train_templates)}")
        print(f"{'':26s} held-out: {' | '.join(spec.heldout_templates)}")
    print(f"{'':26s} colours {', '.join(COLOURS)}; shapes {', '.join(SHAPES)}; "
          f"pads {', '.join(GOALS)}; {len(HELDOUT_COMBOS)}/{len(ALL_COMBOS)} combos held out")  # fmt: skip
    sys.stdout.flush()
    return 0

"""The cluttered scene as a MuJoCo model, built with ``mujoco.MjSpec`` from Meta-World's own
``sawyer_pick_place_v3.xml`` (its Sawyer arm, gripper, table and mocap weld).

What changes: the puck is removed; a pool of free bodies (``PER_SHAPE_MAX`` per shape) is
added, parked off-stage and placed per episode; goal pads (static, and riding the belt); a
conveyor belt (a plate on a slide joint driven by a velocity actuator); textured table and
background materials (all textures loaded once, picked per episode through ``geom_matid``);
``front`` and ``wrist`` cameras. Meta-World's marker sites are hidden.

Traps handled: Meta-World's compiler sets ``inertiagrouprange="4 5"``, so every added body
carries explicit mass, inertia and ``ipos = 0`` (otherwise it drifts on its own); objects are
placed only after the arm's reset motion (or the arm knocks them off the table).
"""

# mujoco's compiled bindings ship no stubs for MjSpec, MjData, mj_* and the mjt* enums:
# pyright: reportAttributeAccessIssue=false

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.cluttered.spec import (
    BELT_HALF_LENGTH,
    BELT_HALF_WIDTH,
    BELT_Y,
    BELT_Z,
    GOALS,
    N_TEXTURES,
    PAD_RADIUS,
    PER_SHAPE_MAX,
    SHAPES,
)

OBJ_MASS = 0.1
#: contact bits: objects collide with the world (1) and with the belt (4); the belt with
#: objects only (not the table under it, not the gripper's inner claw geoms)
OBJ_CONTACT, BELT_CONTACT = 1 | 4, 4
PAD_HALF_HEIGHT = 0.0008
PARK = np.array([2.0, 3.0, -0.9])  # off-stage, on the floor behind the front camera
HIDDEN = np.array([0.0, 0.0, -5.0])
FRONT_CAMERA = {"pos": (0.0, 1.30, 0.78), "lookat": (0.0, 0.67, 0.0), "fovy": 48.0}
WRIST_HEIGHT = 0.0  # camera height above the hand body's origin (fingertips 0.045 below)


def pick_place_xml() -> Path:
    import metaworld

    return Path(metaworld.__file__).parent / "assets" / "sawyer_xyz" / "sawyer_pick_place_v3.xml"


def _look_quat(pos: np.ndarray, lookat: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a camera at ``pos`` looking at ``lookat`` (camera -z)."""
    import mujoco

    z = pos - lookat
    z = z / np.linalg.norm(z)
    x = np.cross(up, z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    mat = np.stack([x, y, z], axis=1).reshape(-1)
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, mat)
    return q


@dataclass
class SceneIds:
    """Indices into the compiled model, resolved once."""

    obj_body: dict[str, list[int]]
    obj_geom: dict[str, list[int]]
    obj_qpos: dict[str, list[int]]
    obj_qvel: dict[str, list[int]]
    static_pads: list[int]
    belt_pads: list[int]
    belt_qpos: int
    belt_qvel: int
    belt_geom: int
    table_geoms: list[int]
    wall_geom: int
    table_mats: list[int]
    wall_mats: list[int]
    hand_body: int
    right_claw: int
    left_claw: int
    left_pad_geom: int
    right_pad_geom: int
    mocap: int


def build_spec() -> Any:
    import mujoco

    spec = mujoco.MjSpec.from_file(str(pick_place_xml()))
    spec.detach_body(spec.body("obj"))
    for site in spec.sites:  # the goal marker and the fingertip spheres show in renders
        site.rgba = [0, 0, 0, 0]
    spec.visual.quality.offsamples = 0
    spec.visual.quality.shadowsize = 0
    for light in spec.lights:
        light.castshadow = False
    world = spec.worldbody

    # -- textures and materials (all loaded once; an episode picks by geom_matid) ----------
    from sim.cluttered.textures import texture_paths

    paths = texture_paths()
    for role in ("table", "wall"):
        for i, p in enumerate(paths[role]):
            tex = spec.add_texture()
            tex.name, tex.type, tex.file = f"cl_{role}_{i}", mujoco.mjtTexture.mjTEXTURE_2D, str(p)
            mat = spec.add_material()
            mat.name = f"cl_{role}_mat_{i}"
            mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
            mat.texrepeat = [3, 2] if role == "table" else [4, 2]
            mat.specular, mat.shininess, mat.reflectance = 0.1, 0.1, 0.0
    belt_tex = spec.add_texture()
    belt_tex.name, belt_tex.type = "cl_belt", mujoco.mjtTexture.mjTEXTURE_2D
    belt_tex.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
    belt_tex.rgb1, belt_tex.rgb2, belt_tex.width, belt_tex.height = [0.2] * 3, [0.32] * 3, 64, 64
    belt_mat = spec.add_material()
    belt_mat.name = "cl_belt_mat"
    belt_mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = belt_tex.name
    belt_mat.texrepeat = [40, 3]

    # -- background wall behind the robot ---------------------------------------------------
    world.add_geom(
        name="cl_wall", type=mujoco.mjtGeom.mjGEOM_BOX, size=[2.2, 0.02, 1.3],
        pos=[0, -0.75, 0.1], material="cl_wall_mat_0", contype=0, conaffinity=0,
    )  # fmt: skip

    # -- object pool -------------------------------------------------------------------------
    for shape, (gtype, size, _half) in SHAPES.items():
        for k in range(PER_SHAPE_MAX):
            b = world.add_body(name=f"cl_{shape}_{k}", pos=list(PARK))
            b.add_freejoint(name=f"cl_{shape}_{k}_joint")
            b.explicitinertial = True
            b.mass, b.ipos = OBJ_MASS, [0, 0, 0]
            b.inertia = list(_box_inertia(gtype, size))
            b.add_geom(
                name=f"cl_{shape}_{k}_geom",
                type=getattr(mujoco.mjtGeom, f"mjGEOM_{gtype.upper()}"),
                size=list(size) + [0] * (3 - len(size)), rgba=[1, 1, 1, 1],
                friction=[1.0, 0.01, 0.001], condim=4, contype=OBJ_CONTACT,
                conaffinity=OBJ_CONTACT, solref=[0.01, 1], solimp=[0.95, 0.99, 0.001, 0.5, 2],
            )  # fmt: skip

    # -- goal pads: static ones on the table, moving ones on the belt ------------------------
    for i in range(len(GOALS)):
        world.add_geom(
            name=f"cl_pad_{i}", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[PAD_RADIUS, PAD_HALF_HEIGHT, 0], pos=list(HIDDEN), contype=0, conaffinity=0,
        )  # fmt: skip

    # -- conveyor -----------------------------------------------------------------------------
    belt = world.add_body(name="cl_belt", pos=[0, BELT_Y, 0])
    belt.explicitinertial = True
    belt.mass, belt.ipos, belt.inertia = 5.0, [0, 0, 0], [0.1, 1.0, 1.0]
    j = belt.add_joint(name="cl_belt_x", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0])
    j.damping, j.armature = 0.0, 0.0
    belt.add_geom(
        name="cl_belt_geom", type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[BELT_HALF_LENGTH, BELT_HALF_WIDTH, BELT_Z / 2], pos=[0, 0, BELT_Z / 2],
        material="cl_belt_mat", contype=BELT_CONTACT, conaffinity=BELT_CONTACT,
        friction=[1.0, 0.01, 0.001], condim=4,
    )  # fmt: skip
    for i in range(len(GOALS)):
        belt.add_geom(
            name=f"cl_belt_pad_{i}", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[PAD_RADIUS, PAD_HALF_HEIGHT, 0], pos=list(HIDDEN), contype=0, conaffinity=0,
        )  # fmt: skip
    act = spec.add_actuator()
    act.name, act.target = "cl_belt_velocity", "cl_belt_x"
    act.trntype = mujoco.mjtTrn.mjTRN_JOINT
    kv = 400.0
    act.gaintype, act.biastype = mujoco.mjtGain.mjGAIN_FIXED, mujoco.mjtBias.mjBIAS_AFFINE
    act.gainprm[0] = kv
    act.biasprm[:3] = [0.0, 0.0, -kv]
    act.ctrllimited = 0

    # -- cameras -----------------------------------------------------------------------------
    pos = np.array(FRONT_CAMERA["pos"])
    world.add_camera(
        name="front", pos=list(pos),
        quat=list(_look_quat(pos, np.array(FRONT_CAMERA["lookat"]), np.array([0, 0, 1.0]))),
        fovy=FRONT_CAMERA["fovy"],
    )  # fmt: skip
    return spec


def _box_inertia(gtype: str, size: tuple[float, ...]) -> tuple[float, float, float]:
    m = OBJ_MASS
    if gtype == "box":
        a, b, c = (2 * s for s in size)
        return (m * (b * b + c * c) / 12, m * (a * a + c * c) / 12, m * (a * a + b * b) / 12)
    r, h = size[0], 2 * size[1]
    ixx = m * (3 * r * r + h * h) / 12
    return (ixx, ixx, m * r * r / 2)


def add_wrist_camera(spec: Any, data: Any) -> None:
    """A camera on the hand, looking straight down between the fingers (image up = world +y).

    The hand's world orientation is fixed by the mocap weld (quat 1 0 1 0), so the camera's
    local frame is computed once from the reset pose."""
    import mujoco

    r_hand = data.body("hand").xmat.reshape(3, 3)
    z = np.array([0, 0, 1.0])  # the camera looks along its -z: world down
    up = np.array([0, 1.0, 0])
    x = np.cross(up, z)
    y = np.cross(z, x)
    r_local = r_hand.T @ np.stack([x, y, z], axis=1)
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, r_local.reshape(-1))
    local = r_hand.T @ np.array([0.0, -0.03, WRIST_HEIGHT])
    spec.body("hand").add_camera(name="wrist", pos=list(local), quat=list(q), fovy=75.0)


def build_model() -> tuple[Any, SceneIds]:
    """Compile the scene (twice: the wrist camera's frame needs the hand's reset pose)."""
    import mujoco

    os.environ.setdefault("MUJOCO_GL", "egl")
    spec = build_spec()
    model = spec.compile()
    data = mujoco.MjData(model)
    home_arm(model, data)
    add_wrist_camera(spec, data)
    model = spec.compile()
    return model, resolve_ids(model)


def resolve_ids(model: Any) -> SceneIds:
    import mujoco

    def gid(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)

    def bid(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)

    obj_body, obj_geom, obj_qpos, obj_qvel = {}, {}, {}, {}
    for shape in SHAPES:
        bodies = [bid(f"cl_{shape}_{k}") for k in range(PER_SHAPE_MAX)]
        obj_body[shape] = bodies
        obj_geom[shape] = [gid(f"cl_{shape}_{k}_geom") for k in range(PER_SHAPE_MAX)]
        joints = [model.body_jntadr[b] for b in bodies]
        obj_qpos[shape] = [int(model.jnt_qposadr[j]) for j in joints]
        obj_qvel[shape] = [int(model.jnt_dofadr[j]) for j in joints]
    table_body = bid("tablelink")
    table_geoms = [
        i for i in range(model.ngeom)
        if model.geom_bodyid[i] == table_body and model.geom_group[i] == 1
    ]  # fmt: skip
    belt_joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "cl_belt_x")

    def mid(name: str) -> int:
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, name)

    return SceneIds(
        obj_body=obj_body, obj_geom=obj_geom, obj_qpos=obj_qpos, obj_qvel=obj_qvel,
        static_pads=[gid(f"cl_pad_{i}") for i in range(len(GOALS))],
        belt_pads=[gid(f"cl_belt_pad_{i}") for i in range(len(GOALS))],
        belt_qpos=int(model.jnt_qposadr[belt_joint]), belt_qvel=int(model.jnt_dofadr[belt_joint]),
        belt_geom=gid("cl_belt_geom"), table_geoms=table_geoms, wall_geom=gid("cl_wall"),
        table_mats=[mid(f"cl_table_mat_{i}") for i in range(N_TEXTURES)],
        wall_mats=[mid(f"cl_wall_mat_{i}") for i in range(N_TEXTURES)],
        hand_body=bid("hand"), right_claw=bid("rightclaw"), left_claw=bid("leftclaw"),
        left_pad_geom=gid("leftpad_geom"), right_pad_geom=gid("rightpad_geom"),
        mocap=int(model.body_mocapid[bid("mocap")]),
    )  # fmt: skip


HAND_INIT = np.array([0.0, 0.6, 0.2])
MOCAP_QUAT = np.array([1.0, 0.0, 1.0, 0.0])
FRAME_SKIP = 5
HAND_LOW, HAND_HIGH = np.array([-0.5, 0.40, 0.05]), np.array([0.5, 1.0, 0.5])


def home_arm(model: Any, data: Any, steps: int = 50) -> None:
    """Meta-World's reset: weld the mocap, then drive it to the hand's start for 50 actions
    with the gripper open (``SawyerXYZEnv._reset_hand``)."""
    import mujoco

    mujoco.mj_resetData(model, data)
    for i in range(model.neq):
        if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
            model.eq_data[i] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]
    mid = int(model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "mocap")])
    for _ in range(steps):
        data.mocap_pos[mid] = HAND_INIT
        data.mocap_quat[mid] = MOCAP_QUAT
        data.ctrl[:2] = [-1.0, 1.0]
        mujoco.mj_step(model, data, nstep=FRAME_SKIP)

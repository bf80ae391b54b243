"""`import embodied` must stay light: the robot-side run time pulls no torch, MuJoCo, rclpy,
plotting or progress bars, and none of the packages that do (sim, policies, embodied_tools)."""

import subprocess
import sys

HEAVY = (
    "torch",
    "mujoco",
    "metaworld",
    "gymnasium",
    "rclpy",
    "matplotlib",
    "tqdm",
    "sim",
    "policies",
    "embodied_tools",
)


def test_import_embodied_pulls_no_heavy_modules():
    code = (
        "import sys, embodied, embodied.cli, embodied.metrics\n"
        "import importlib, pkgutil\n"
        "for m in pkgutil.walk_packages(embodied.__path__, 'embodied.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"embodied imports {out.stdout.strip()}"

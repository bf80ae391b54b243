"""`import embodied` must stay light: no torch, MuJoCo or rclpy on the robot-side path."""

import subprocess
import sys


def test_import_embodied_pulls_no_heavy_modules():
    code = (
        "import sys, embodied, embodied.cli, embodied.metrics\n"
        "import importlib, pkgutil\n"
        "for m in pkgutil.walk_packages(embodied.__path__, 'embodied.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in ('torch', 'mujoco', 'rclpy', 'metaworld') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"embodied imports {out.stdout.strip()}"

"""ROS 2 launch file for the robot graph: camera, tokenizer and policy on the robot computer (e.g. a Jetson).

    ros2 launch launch/robot.launch.py [side:=all|robot|server] [params_file:=my.yaml]

The nodes, names, parameter files and remaps come from ``graphs.yaml`` (graph
``robot``); ``embodied launch robot`` runs the same graph where ROS's launch package is absent.
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "embodied_graph_launch", Path(__file__).resolve().parent / "embodied_graph_launch.py"
)
_helper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helper)


def generate_launch_description():
    return _helper.graph_launch_description("robot")

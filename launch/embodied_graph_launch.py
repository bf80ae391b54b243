"""Builds a ROS 2 LaunchDescription from one graph of ``graphs.yaml`` (helper of the
``*.launch.py`` files here; loaded by path, so ``launch/`` is never a Python package
that could shadow ROS's own ``launch``).

The graph itself is read by ``ros_nodes.graphs``, the same code ``embodied launch``
uses, so both launchers run the same nodes with the same names, parameter files and
remaps. Launch arguments: ``side`` (all | robot | server), ``params_file`` (an extra
parameters file, keyed by node name, that wins over the graph's).
"""

from __future__ import annotations

import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

HERE = Path(__file__).resolve().parent
try:
    from ros_nodes.graphs import get_graph, resolve_executable
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, str(HERE.parent))
    from ros_nodes.graphs import get_graph, resolve_executable


def _nodes(context, graph_name: str):
    side = LaunchConfiguration("side").perform(context)
    extra = LaunchConfiguration("params_file").perform(context)
    graph = get_graph(graph_name, HERE)
    actions = []
    for n in graph.select(side):
        params = [str(p) for p in n.params] + ([extra] if extra else [])
        actions.append(
            Node(
                executable=resolve_executable(n.executable),
                name=n.name,
                parameters=params,
                remappings=list(n.remaps),
                output="screen",
                on_exit=Shutdown(reason=f"{n.name} exited") if n.required else None,
            )
        )
    return actions


def graph_launch_description(graph_name: str, default_side: str = "all") -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("side", default_value=default_side,
                                  description="all | robot | server (split graph)"),
            DeclareLaunchArgument("params_file", default_value="",
                                  description="extra parameters file keyed by node name"),
            OpaqueFunction(function=_nodes, args=[graph_name]),
        ]
    )  # fmt: skip

"""The graph definitions of ``launch/graphs.yaml``, read the same way by ``ros2 launch``
(``launch/*.launch.py``) and by ``embodied launch`` (:mod:`ros_nodes.launcher`).

Plain Python and PyYAML: importable without rclpy or ROS's ``launch`` package, so the
launch files, the project's launcher and the tests all see one definition.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: ``launch/`` of this checkout (``EMBODIED_LAUNCH_DIR`` points elsewhere, e.g. an install).
LAUNCH_DIR = Path(
    os.environ.get("EMBODIED_LAUNCH_DIR", Path(__file__).resolve().parent.parent / "launch")
)
GRAPHS_FILE = "graphs.yaml"
SIDES = ("robot", "server")


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph: what to run, under which name, with which parameters."""

    name: str
    executable: str
    side: str = "robot"
    required: bool = False
    remaps: tuple[tuple[str, str], ...] = ()
    params: tuple[Path, ...] = ()  # the graph's files, then the node's own


@dataclass(frozen=True)
class Graph:
    name: str
    description: str
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)

    def select(self, side: str = "all") -> list[NodeSpec]:
        if side == "all":
            return list(self.nodes)
        if side not in SIDES:
            raise ValueError(f"side={side!r}: one of all, {', '.join(SIDES)}")
        return [n for n in self.nodes if n.side == side]


def _node(graph: str, raw: Any, base: Path, graph_params: list[Path]) -> NodeSpec:
    where = f"{GRAPHS_FILE}: graph {graph!r}"
    if not isinstance(raw, dict) or "name" not in raw or "executable" not in raw:
        raise ValueError(f"{where}: each node needs name and executable, got {raw!r}")
    unknown = set(raw) - {"name", "executable", "side", "required", "remaps", "params"}
    if unknown:
        raise ValueError(f"{where}, node {raw['name']!r}: unknown keys {sorted(unknown)}")
    side = raw.get("side", "robot")
    if side not in SIDES:
        raise ValueError(f"{where}, node {raw['name']!r}: side={side!r}, one of {SIDES}")
    own = [base / p for p in raw.get("params", [])]
    for p in own:
        if not p.is_file():
            raise ValueError(f"{where}, node {raw['name']!r}: parameter file {p} not found")
    remaps = tuple((str(k), str(v)) for k, v in (raw.get("remaps") or {}).items())
    return NodeSpec(
        name=str(raw["name"]), executable=str(raw["executable"]), side=side,
        required=bool(raw.get("required", False)), remaps=remaps,
        params=tuple(graph_params + own),
    )  # fmt: skip


def load_graphs(launch_dir: Path | str | None = None) -> dict[str, Graph]:
    """All graphs of ``graphs.yaml``, validated (unique node names, files present)."""
    base = Path(launch_dir or LAUNCH_DIR)
    raw = yaml.safe_load((base / GRAPHS_FILE).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{base / GRAPHS_FILE}: expected a mapping of graph names")
    graphs = {}
    for name, g in raw.items():
        params = [base / p for p in g.get("params", [])]
        for p in params:
            if not p.is_file():
                raise ValueError(f"{GRAPHS_FILE}: graph {name!r}: parameter file {p} not found")
        nodes = tuple(_node(name, n, base, params) for n in g.get("nodes", []))
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"{GRAPHS_FILE}: graph {name!r} names a node twice: {names}")
        graphs[name] = Graph(name, " ".join(str(g.get("description", "")).split()), nodes)
    return graphs


def get_graph(name: str, launch_dir: Path | str | None = None) -> Graph:
    graphs = load_graphs(launch_dir)
    if name not in graphs:
        close = difflib.get_close_matches(name, graphs, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise KeyError(f"unknown graph {name!r}.{hint} Graphs: {', '.join(graphs)}")
    return graphs[name]


def parse_override(text: str) -> tuple[str, str, Any]:
    """``node.param:=value`` (``*`` for every node) → (node key, param, YAML-typed value)."""
    key, sep, value = text.partition(":=")
    if not sep:
        key, sep, value = text.partition("=")
    node, dot, param = key.strip().rpartition(".")
    if not sep or not dot or not node or not param:
        raise ValueError(f"override {text!r}: write node.param:=value (node '*' = every node)")
    return ("/**" if node == "*" else node), param, yaml.safe_load(value) if value else ""


def overrides_document(items: list[str]) -> dict[str, Any]:
    """A parameters document (``{node: {ros__parameters: {...}}}``) from overrides."""
    doc: dict[str, Any] = {}
    for item in items:
        node, param, value = parse_override(item)
        doc.setdefault(node, {"ros__parameters": {}})["ros__parameters"][param] = value
    return doc


def resolve_executable(executable: str) -> str:
    """A console script beside this interpreter (the venv) or on PATH, as an absolute path."""
    here = Path(sys.executable).parent / executable
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(executable)
    if found is None:
        raise FileNotFoundError(
            f"executable {executable!r} not found beside {sys.executable} or on PATH; "
            "install the project (pip install -e .) in this environment"
        )
    return found


def ros_arguments(node: NodeSpec, extra_params: list[Path] | None = None) -> list[str]:
    """``--ros-args`` for one node: its name, parameter files (later ones win), remaps."""
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    for p in [*node.params, *(extra_params or [])]:
        args += ["--params-file", str(p)]
    for src, dst in node.remaps:
        args += ["-r", f"{src}:={dst}"]
    return args


def node_command(node: NodeSpec, extra_params: list[Path] | None = None) -> list[str]:
    return [resolve_executable(node.executable), *ros_arguments(node, extra_params)]

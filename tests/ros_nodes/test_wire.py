"""The wire conventions, graph definitions and parameter descriptors, without DDS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embodied.control.base import settings_spec

pytest.importorskip("yaml", reason="PyYAML (comes with the ROS wheels) is not installed")

from ros_nodes.graphs import get_graph, load_graphs, overrides_document, parse_override
from ros_nodes.wire import (
    FEEDBACK_FIELDS,
    TOPICS,
    ArrivalReport,
    PacketFormat,
    PacketFormatError,
    chunk_label,
    parse_chunk_label,
)


def test_packet_format_round_trip_and_refusals():
    f = PacketFormat("tokens", 0x32DE0C4E, (64, 64))
    assert str(f) == "embodied-packet; codec=tokens; v=1; model=32de0c4e; shape=64x64"
    assert PacketFormat.parse(str(f)) == f
    for bad in (
        "jpeg",
        "embodied-packet; codec=tokens",
        "embodied-packet; codec=tokens; v=2; model=32de0c4e; shape=64x64",
        "embodied-packet; codec=tokens; v=1; model=zz; shape=64x64",
        "embodied-packet; codec=tokens; v=1; model=32de0c4e; shape=64",
    ):
        with pytest.raises(PacketFormatError):
            PacketFormat.parse(bad)


def test_chunk_label_and_feedback_rows_are_exact():
    stamp = 1_795_629_961_420_014_053
    assert parse_chunk_label(chunk_label(stamp, 79)) == (stamp, 79)
    assert parse_chunk_label("chunk") == (None, None)
    r = ArrivalReport(7, stamp, stamp + 4_123_456, 68)
    row = r.to_row()
    assert len(row) == len(FEEDBACK_FIELDS)
    assert ArrivalReport.from_row(row) == r  # nanoseconds survive the doubles
    with pytest.raises(ValueError):
        ArrivalReport.from_row(row[:-1])
    assert not r.is_keyframe_request
    req = ArrivalReport.from_row(ArrivalReport.keyframe_request(stamp).to_row())
    assert req.is_keyframe_request and req.arrival_ns == stamp and req.capture_ns == 0


def test_graphs_define_the_three_graphs_once():
    graphs = load_graphs()
    assert set(graphs) >= {"sim", "robot", "split"}
    sim = graphs["sim"]
    assert [n.name for n in sim.nodes] == ["sim_robot", "tokenizer", "policy"]
    assert [n.name for n in sim.nodes if n.required] == ["sim_robot"]
    split = graphs["split"]
    assert {n.name for n in split.select("robot")} == {"camera", "tokenizer"}
    assert {n.name for n in split.select("server")} == {"policy"}
    for g in graphs.values():
        for n in g.nodes:
            assert all(p.is_file() for p in n.params)
    with pytest.raises(KeyError, match="Did you mean 'sim'"):
        get_graph("simm")


def test_params_files_are_keyed_by_node_name():
    import yaml

    for g in load_graphs().values():
        for n in g.nodes:
            doc = yaml.safe_load(n.params[0].read_text())
            assert n.name in doc and "ros__parameters" in doc[n.name], (g.name, n.name)


def test_overrides():
    assert parse_override("tokenizer.budget:=24") == ("tokenizer", "budget", 24)
    assert parse_override("*.tokenizer_dir:=/m/tok") == ("/**", "tokenizer_dir", "/m/tok")
    doc = overrides_document(["policy.watchdog_ms:=100.0", "policy.precision:=fp16"])
    assert doc == {"policy": {"ros__parameters": {"watchdog_ms": 100.0, "precision": "fp16"}}}
    with pytest.raises(ValueError):
        parse_override("budget=3")


def test_launcher_dry_run_prints_the_same_nodes():
    out = subprocess.run(
        [sys.executable, "-m", "embodied.cli", "launch", "sim", "--dry-run", "-p",
         "tokenizer.budget:=8"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = [line for line in out.stdout.splitlines() if line and not line.startswith(("#", " "))]
    names = [line.split(":")[0] for line in lines if "--ros-args" in line]
    assert names == ["sim_robot", "tokenizer", "policy"]
    assert all("__node:=" in line and "launch/params/sim.yaml" in line for line in lines[:3])
    assert "budget: 8" in out.stdout


def test_docs_tables_are_generated_from_the_code():
    from ros_nodes.doctables import main as doctables

    doc = Path(__file__).resolve().parents[2] / "docs" / "ros.md"
    assert doctables(["--check", str(doc)]) == 0, "run: python -m ros_nodes.doctables docs/ros.md"


def test_topic_table_uses_standard_messages():
    pkgs = {t.type.split("/")[0] for t in TOPICS.values()}
    assert pkgs <= {"sensor_msgs", "std_msgs", "diagnostic_msgs"}
    assert TOPICS["packets"].type == "sensor_msgs/msg/CompressedImage"


@pytest.mark.ros
def test_descriptors_come_from_the_settings_spec():
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from rcl_interfaces.msg import ParameterType

    from ros_nodes.common import descriptor

    specs = settings_spec(32)
    d = descriptor(specs["max_budget"])
    assert d.type == ParameterType.PARAMETER_INTEGER
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (1, 32)
    assert d.description == specs["max_budget"].description
    d = descriptor(specs["deadline_ms"])
    assert d.type == ParameterType.PARAMETER_DOUBLE and d.floating_point_range[0].to_value == 1e4
    d = descriptor(specs["mode"])
    assert d.type == ParameterType.PARAMETER_STRING and "adaptive" in d.additional_constraints
    assert descriptor(specs["k_max"]).read_only


@pytest.mark.ros
def test_chunk_message_round_trip():
    pytest.importorskip("rclpy", reason="rclpy is not installed")
    from ros_nodes.common import chunk_to_msg, msg_to_chunk

    c = np.arange(16, dtype=np.float32).reshape(4, 4) / 16
    chunk, stamp, frame = msg_to_chunk(chunk_to_msg(c, 123456789, 5))
    np.testing.assert_array_equal(chunk, c)
    assert (stamp, frame) == (123456789, 5)
    hold, _, _ = msg_to_chunk(chunk_to_msg(np.zeros((0, 4), np.float32), 0, 0))
    assert hold.shape == (0, 4)


def test_launch_files_build_the_graph_nodes(monkeypatch):
    """The ``*.launch.py`` files against stand-ins of ROS's launch API (not installed here):
    they must start the graph's nodes with the same names, files and exit policy."""
    import importlib.util
    import types

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    values = {"side": "all", "params_file": "/tmp/extra.yaml"}

    class Config(Recorder):
        def perform(self, context):
            return values[self.args[0]]

    fake = {
        "launch": types.SimpleNamespace(LaunchDescription=Recorder),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=Recorder, OpaqueFunction=Recorder, Shutdown=Recorder
        ),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=Config),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=Recorder),
    }
    for name, mod in fake.items():
        monkeypatch.setitem(sys.modules, name, mod)
    launch_dir = Path(__file__).resolve().parents[2] / "launch"
    for graph in ("sim", "robot", "split"):
        spec = importlib.util.spec_from_file_location(graph, launch_dir / f"{graph}.launch.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        ld = module.generate_launch_description()
        opaque = ld.args[0][-1]
        nodes = opaque.kwargs["function"](None, *opaque.kwargs["args"])
        want = get_graph(graph)
        assert [n.kwargs["name"] for n in nodes] == [n.name for n in want.nodes]
        for made, node in zip(nodes, want.nodes, strict=True):
            assert made.kwargs["parameters"] == [*map(str, node.params), "/tmp/extra.yaml"]
            assert made.kwargs["executable"].endswith(node.executable)
            assert (made.kwargs["on_exit"] is not None) == node.required

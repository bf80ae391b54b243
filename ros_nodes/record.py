"""``embodied record``: the graph's topics to an MCAP file, as rosbag2 writes it.

Messages are stored exactly as they crossed DDS (serialized CDR, subscribed ``raw``),
with ``ros2msg`` schemas built from the installed ``.msg`` definitions (the message and
every type it uses, joined by rosbag2's ``MSG:`` separators), so Foxglove Studio,
``ros2 bag info/play`` (rosbag2_storage_mcap) and ``mcap_ros2.reader`` read the file.

Default topics: images, packets, actions, statistics, plus feedback, proprioception,
instruction and events (``ros_nodes.wire.TOPICS``). Other topics are recorded with the
type the graph advertises for them.

    embodied record --out run.mcap --duration 30
    embodied record --out packets.mcap --duration 10 tokens/packets /diagnostics
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from ros_nodes.wire import TOPICS

PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
    "int32", "uint32", "int64", "uint64", "string", "wstring",
}  # fmt: skip
SEPARATOR = "=" * 80
DEFAULT_ROLES = (
    "image", "packets", "actions", "diagnostics", "feedback", "proprio", "instruction", "events",
    "executed",
)  # fmt: skip


def _share_dirs() -> list[Path]:
    dirs = [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(":") if p]
    dirs.append(Path(sys.prefix) / "share")
    dirs += sorted(Path("/opt/ros").glob("*/share"))
    return dirs


def msg_file(type_name: str) -> Path:
    """The ``.msg`` file of ``pkg/msg/Type`` (or ``pkg/Type``) in an installed share/ tree."""
    pkg, _, name = type_name.replace("/msg/", "/").partition("/")
    for share in _share_dirs():
        path = share / pkg / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no definition of {type_name} under {', '.join(str(d) for d in _share_dirs())}"
    )


def _field_types(text: str, pkg: str) -> list[str]:
    """Complex field types of a .msg text, as ``pkg/Type``, in order of appearance."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or "=" in parts[1] or (len(parts) > 2 and parts[2].startswith("=")):
            continue  # a constant
        base = re.sub(r"\[.*\]$", "", parts[0])
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES:
            continue
        if base == "Header":
            out.append("std_msgs/Header")
        elif "/" in base:
            out.append(base.replace("/msg/", "/"))
        else:
            out.append(f"{pkg}/{base}")
    return out


def msg_definition(type_name: str) -> str:
    """The full ``ros2msg`` schema text: the message, then each dependency once (depth first)."""
    root = type_name.replace("/msg/", "/")
    seen: list[str] = []
    texts: dict[str, str] = {}

    def visit(t: str) -> None:
        if t in texts:
            return
        texts[t] = msg_file(t).read_text()
        seen.append(t)
        for dep in _field_types(texts[t], t.split("/")[0]):
            visit(dep)

    visit(root)
    parts = [texts[root].rstrip("\n")]
    for t in seen[1:]:
        parts.append(f"{SEPARATOR}\nMSG: {t}\n{texts[t].rstrip(chr(10))}")
    return "\n".join(parts) + "\n"


def message_class(type_name: str) -> type:
    pkg, _, name = type_name.replace("/msg/", "/").partition("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


def _qos_yaml(reliable: bool, transient: bool) -> str:
    """rosbag2's ``offered_qos_profiles`` channel metadata (used by ``ros2 bag play``)."""
    return (
        f"- history: 3\n  depth: 0\n  reliability: {1 if reliable else 2}\n"
        f"  durability: {1 if transient else 2}\n"
        "  deadline:\n    sec: 9223372036\n    nsec: 854775807\n"
        "  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n"
        "  liveliness: 1\n"
        "  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n"
        "  avoid_ros_namespace_conventions: false\n"
    )


def _absolute(name: str) -> str:
    return name if name.startswith("/") else "/" + name


def record(
    out: Path, duration_s: float, topics: Iterable[str] = (), discovery_s: float = 1.0
) -> Counter[str]:
    """Record ``topics`` (default: the graph's) for ``duration_s`` seconds into ``out``."""
    import rclpy
    from mcap.writer import CompressionType, Writer
    from rclpy.executors import ExternalShutdownException

    from ros_nodes.common import qos

    known = {_absolute(t.name): t for t in TOPICS.values()}
    wanted = [_absolute(t) for t in topics] or [_absolute(TOPICS[r].name) for r in DEFAULT_ROLES]
    counts: Counter[str] = Counter()
    rclpy.init(args=[])
    node = rclpy.create_node("embodied_record", start_parameter_services=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    f = out.open("wb")
    writer = Writer(f, compression=CompressionType.ZSTD)
    writer.start(profile="ros2", library="embodied record")
    try:
        types: dict[str, str] = {}
        unknown = [t for t in wanted if t not in known]
        deadline = time.monotonic() + (discovery_s if unknown else 0.0)
        while unknown and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
            advertised = dict(node.get_topic_names_and_types())
            unknown = [t for t in unknown if t not in advertised]
        advertised = dict(node.get_topic_names_and_types())
        for t in wanted:
            if t in known:
                types[t] = known[t].type
            elif t in advertised:
                types[t] = advertised[t][0]
            else:
                print(f"embodied record: {t} is not advertised; skipped", file=sys.stderr)
        schemas: dict[str, int] = {}
        for topic, type_name in types.items():
            if type_name not in schemas:
                schemas[type_name] = writer.register_schema(
                    name=type_name, encoding="ros2msg", data=msg_definition(type_name).encode()
                )
            kind = known[topic].qos if topic in known else "sensor"
            channel = writer.register_channel(
                topic=topic, message_encoding="cdr", schema_id=schemas[type_name],
                metadata={"offered_qos_profiles": _qos_yaml(kind != "sensor",
                                                            kind == "latched")},
            )  # fmt: skip

            def on_message(data: bytes, topic: str = topic, channel: int = channel) -> None:
                t = time.time_ns()
                writer.add_message(
                    channel, log_time=t, data=bytes(data), publish_time=t,
                    sequence=counts[topic],
                )  # fmt: skip
                counts[topic] += 1

            node.create_subscription(
                message_class(type_name), topic, on_message, qos(kind), raw=True
            )
        end = time.monotonic() + duration_s
        while rclpy.ok() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        writer.finish()
        f.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied record", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("topics", nargs="*", help="topics (default: the graph's, see docs/ros.md)")
    ap.add_argument("--out", type=Path, required=True, help="output .mcap file")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds (Ctrl-C stops early)")
    args = ap.parse_args(argv)
    try:
        import rclpy  # noqa: F401
    except ImportError as err:
        print(f"embodied record: rclpy is not installed ({err}); pip install -e '.[ros]'")
        return 2
    counts = record(args.out, args.duration, args.topics)
    total = sum(counts.values())
    print(f"wrote {args.out}: {total} messages")
    for topic, n in sorted(counts.items()):
        print(f"  {topic:<24} {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

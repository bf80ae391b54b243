"""The tables of ``docs/ros.md``, generated from the code so they cannot drift.

Topics come from :data:`ros_nodes.wire.TOPICS`; every node's parameters from its settings
dataclass (:data:`ros_nodes.settings.NODE_SETTINGS`, and the tokenizer's controller's
:class:`embodied.control.base.ControllerSettings`): the same fields the nodes declare their
ROS parameters from. The doc holds each table between
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``.

    python -m ros_nodes.doctables docs/ros.md          # rewrite the tables
    python -m ros_nodes.doctables --check docs/ros.md  # exit 1 if they are stale (a test runs this)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from embodied.control.base import DEFAULT_K_MAX, settings_spec
from embodied.modelfiles import MODELS_DIR
from embodied.settings import SettingSpec
from ros_nodes.settings import NODE_SETTINGS
from ros_nodes.wire import TOPICS

_QOS = {
    "sensor": "best effort, keep last 5",
    "reliable": "reliable, keep last 10",
    "latched": "reliable, transient local",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def topics_table() -> str:
    rows = ["| topic | type | QoS | from | what |", "|---|---|---|---|---|"]
    for t in TOPICS.values():
        rows.append(
            f"| `{t.name}` | `{t.type}` | {_QOS[t.qos]} | {_cell(t.publisher)} "
            f"| {_cell(t.description)} |"
        )
    return "\n".join(rows)


def _rows(specs: dict[str, SettingSpec], *, bound_names: dict[str, str]) -> list[str]:
    rows = []
    for spec in specs.values():
        default = bound_names.get(spec.name, spec.default)
        if spec.type is str and default == "":
            default = "''"
        elif spec.type is bool:
            default = str(default).lower()
        if spec.name == "k_max":
            allowed = "from the model"
        elif spec.max_field is not None:
            allowed = f"{spec.min}..{spec.max_field}"
        else:
            allowed = spec.allowed()
        live = "yes" if spec.live else "no (read-only)"
        rows.append(
            f"| `{spec.name}` | {spec.type.__name__} | {_cell(str(default))} | {_cell(allowed)} "
            f"| {live} | {_cell(spec.description)} |"
        )
    return rows


_HEAD = ["| parameter | type | default | allowed | live | what |", "|---|---|---|---|---|---|"]


def node_table(node: str) -> str:
    """One node's parameters from its settings dataclass; the tokenizer's with its
    controller's settings after its own."""
    cls = NODE_SETTINGS[node]
    rows = _HEAD + _rows(cls.specs(), bound_names={})
    if node == "tokenizer":
        specs = settings_spec(DEFAULT_K_MAX)
        rows += _rows(specs, bound_names={"k_max": "k_max", "max_budget": "k_max"})
    text = "\n".join(rows)
    return text.replace(str(MODELS_DIR), "embodied/models")  # no machine's own path in docs


TABLES = {"topics": topics_table} | {
    f"parameters-{node}": (lambda node=node: node_table(node)) for node in NODE_SETTINGS
}


def render(text: str) -> str:
    for name, make in TABLES.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(\n<!-- END GENERATED: {name} -->)", re.S
        )
        if not pattern.search(text):
            raise ValueError(f"no <!-- BEGIN/END GENERATED: {name} --> markers")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ros_nodes.doctables", description=__doc__)
    ap.add_argument("doc", type=Path)
    ap.add_argument("--check", action="store_true", help="exit 1 if the tables are stale")
    args = ap.parse_args(argv)
    text = args.doc.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"{args.doc}: generated tables are stale; run without --check", file=sys.stderr)
            return 1
        return 0
    args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

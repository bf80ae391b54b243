"""The tables of ``docs/ros.md``, generated from the code so they cannot drift.

Topics come from :data:`ros_nodes.wire.TOPICS`; the live-tunable parameters from
:func:`embodied.control.base.settings_spec` (the same table the tokenizer node turns
into ROS parameter descriptors). The doc holds each table between
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
from ros_nodes.wire import TOPICS, budget_spec

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


def parameters_table(k_max: int = DEFAULT_K_MAX) -> str:
    specs = settings_spec(k_max)
    rows = [
        "| parameter | type | default | allowed | live | what |",
        "|---|---|---|---|---|---|",
    ]
    for spec in [budget_spec(specs), *specs.values()]:
        default = spec.default
        if spec.name in ("k_max", "max_budget", "budget"):
            default = "k_max"
        hi = "k_max" if spec.name in ("budget", "min_budget", "max_budget", "k_max") else spec.max
        allowed = spec.allowed() if spec.choices else f"{spec.min}..{hi}"
        if spec.name == "k_max":
            allowed = "from the model"
        live = "yes" if spec.live else "no (read-only)"
        rows.append(
            f"| `{spec.name}` | {spec.type.__name__} | {default} | {allowed} | {live} "
            f"| {spec.description} |"
        )
    return "\n".join(rows)


TABLES = {"topics": topics_table, "parameters": parameters_table}


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

"""``embodied tune NODE PARAM VALUE``: set one parameter of a running node, live.

What ``ros2 param set /NODE PARAM VALUE`` does, through the same parameter services
(``/NODE/describe_parameters``, ``/NODE/set_parameters``), for machines without the
``ros2`` command line. The value is read as YAML and converted to the parameter's
declared type (``50`` for a double becomes ``50.0``, where ``ros2 param set`` would
refuse it). Prints the new value, or the node's reason for refusing and the value it
kept; exits 0 when set, 1 when refused, 2 when the node cannot be reached.

    embodied tune tokenizer budget 24
    embodied tune tokenizer mode hold
    embodied tune /robot1/tokenizer deadline_ms 80
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

_TYPE_NAMES = {1: "bool", 2: "integer", 3: "double", 4: "string"}


def coerce(text: str, type_id: int) -> Any:
    """A command-line value as the declared parameter type (ParameterType ids)."""
    value = yaml.safe_load(text) if text.strip() else ""
    if type_id == 3 and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type_id == 4 and not isinstance(value, str):
        return text  # "64" for a string parameter stays the string "64"
    return value


def _value_of(msg: Any) -> Any:
    from rclpy.parameter import parameter_value_to_python

    return parameter_value_to_python(msg)


def _wait(node: Any, future: Any, timeout_s: float) -> Any:
    import rclpy

    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
    if not future.done():
        return None
    return future.result()


def tune(node_name: str, param: str, text: str, timeout_s: float = 5.0) -> tuple[int, str]:
    """Set ``param`` on ``node_name``; returns (exit code, message)."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    target = node_name if node_name.startswith("/") else "/" + node_name
    rclpy.init(args=[])
    node = rclpy.create_node("embodied_tune", start_parameter_services=False)
    try:
        client = AsyncParameterClient(node, target)
        if not client.wait_for_services(timeout_sec=timeout_s):
            return 2, f"{target}: no parameter services (is the node running, same ROS_DOMAIN_ID?)"
        described = _wait(node, client.describe_parameters([param]), timeout_s)
        if described is None or not described.descriptors:
            return 2, f"{target}: no answer from describe_parameters"
        desc = described.descriptors[0]
        if desc.type == 0:  # PARAMETER_NOT_SET: not declared
            listed = _wait(node, client.list_parameters([], 1), timeout_s)
            names = ", ".join(sorted(listed.result.names)) if listed is not None else "?"
            return 1, f"{target} has no parameter {param!r}; parameters: {names}"
        try:
            value = coerce(text, desc.type)
        except yaml.YAMLError as err:
            return 1, f"{param}: cannot read {text!r} ({err})"
        before = _wait(node, client.get_parameters([param]), timeout_s)
        old = _value_of(before.values[0]) if before is not None else "?"
        result = _wait(node, client.set_parameters([Parameter(param, value=value)]), timeout_s)
        if result is None or not result.results:
            return 2, f"{target}: no answer from set_parameters"
        res = result.results[0]
        after = _wait(node, client.get_parameters([param]), timeout_s)
        now = _value_of(after.values[0]) if after is not None else "?"
        if not res.successful:
            return 1, f"refused: {res.reason or 'no reason given'}; {param} kept {now!r}"
        return 0, f"{target} {param}: {old!r} -> {now!r}"
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied tune", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("node", help="node name, e.g. tokenizer or /ns/tokenizer")
    ap.add_argument("param", help="parameter name, e.g. budget")
    ap.add_argument("value", help="new value (YAML: 24, 80.0, hold, true)")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node")
    args = ap.parse_args(argv)
    try:
        import rclpy  # noqa: F401
    except ImportError as err:
        print(f"embodied tune: rclpy is not installed ({err}); pip install -e '.[ros]'")
        return 2
    code, message = tune(args.node, args.param, args.value, args.timeout)
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

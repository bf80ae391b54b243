"""The VLA policy on ONNX Runtime: one ``infer(observation) -> action chunk`` call, plus wrappers.

Three modules, one concern each:

* :mod:`embodied.policy.spec`: the observation, the ``Policy`` protocol, the errors (and
  ``PolicySpec``, the ``policy.json`` contract of :mod:`embodied.modelfiles`);
* :mod:`embodied.policy.runtime`: :class:`OnnxPolicy`, which checks every input before it
  reaches the model (ONNX Runtime);
* :mod:`embodied.policy.wrappers`: :class:`LatencyMeter` and :class:`ActionChunker`, pure
  numpy, which wrap anything with ``infer(obs)`` (the openpi pattern)::

    policy = OnnxPolicy(shipped("vla-task"))
    robot = ActionChunker(LatencyMeter(policy))
    a = robot.act({"token_ids": ids, "budget": 8, "instruction": "open the drawer",
                   "proprio": ee_state})

Names are imported from their module on first use (PEP 562), so ``from embodied.policy
import ActionChunker`` does not import onnxruntime; ``OnnxPolicy`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embodied.policy.runtime import NORM_TOL, OnnxPolicy
    from embodied.policy.spec import (
        INPUTS,
        ModelFileError,
        Observation,
        ObservationLike,
        Policy,
        PolicyInputError,
        PolicyOutputError,
        PolicySpec,
    )
    from embodied.policy.wrappers import ActionChunker, LatencyMeter, LatencyStats

_WHERE = {
    "OnnxPolicy": "runtime",
    "NORM_TOL": "runtime",
    "INPUTS": "spec",
    "ModelFileError": "spec",
    "Observation": "spec",
    "ObservationLike": "spec",
    "Policy": "spec",
    "PolicyInputError": "spec",
    "PolicyOutputError": "spec",
    "PolicySpec": "spec",
    "ActionChunker": "wrappers",
    "LatencyMeter": "wrappers",
    "LatencyStats": "wrappers",
}

__all__ = [
    "INPUTS",
    "NORM_TOL",
    "ActionChunker",
    "LatencyMeter",
    "LatencyStats",
    "ModelFileError",
    "Observation",
    "ObservationLike",
    "OnnxPolicy",
    "Policy",
    "PolicyInputError",
    "PolicyOutputError",
    "PolicySpec",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'embodied.policy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"embodied.policy.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

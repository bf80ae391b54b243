"""What crosses into and out of a policy: the observation, the ``Policy`` protocol, the errors.

``policy.json`` itself is :class:`embodied.modelfiles.PolicySpec` (re-exported here), the one
class that writes and reads it. Nothing here imports onnxruntime: wrappers and tests of the
observation contract run without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embodied.modelfiles import POLICY_IO, ModelFileError, PolicySpec

#: the observation fields, in the order of the ONNX inputs
INPUTS = tuple(POLICY_IO.input_names)


class PolicyInputError(ValueError):
    """An observation field the policy cannot take. ``field`` and ``allowed`` say which and what."""

    def __init__(self, field: str, problem: str, allowed: str) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        super().__init__(f"{field}: {problem}; allowed: {allowed}")


class PolicyOutputError(RuntimeError):
    """The model produced non-finite actions; they are withheld, never returned."""


@dataclass
class Observation:
    """One policy input. ``token_ids``: the first ``budget`` tokens (or a k_max-padded row);
    ``instruction``: a phrasing or its 384-d L2-normalised embedding; ``proprio``: (4,)."""

    token_ids: np.ndarray | Sequence[int] | None
    budget: int
    instruction: str | np.ndarray
    proprio: np.ndarray | Sequence[float]


class ObservationFields(Protocol):
    """Any object with the four fields as attributes (:class:`Observation`, another dataclass)."""

    @property
    def token_ids(self) -> np.ndarray | Sequence[int] | None: ...

    @property
    def budget(self) -> int: ...

    @property
    def instruction(self) -> str | np.ndarray: ...

    @property
    def proprio(self) -> np.ndarray | Sequence[float]: ...


#: what ``Policy.infer`` takes: the fields as attributes or as a mapping (``{"budget": 4, ...}``)
ObservationLike = ObservationFields | Mapping[str, Any]


@runtime_checkable
class Policy(Protocol):
    """Anything that maps an observation to an action chunk ``[chunk, action_dim]``."""

    def infer(self, obs: ObservationLike) -> np.ndarray: ...


def obs_field(obs: object, name: str) -> Any:
    """Field ``name`` of an observation (a mapping or an object with attributes); whatever
    arrived is checked here, so a missing field is a :class:`PolicyInputError`."""
    if isinstance(obs, Mapping):
        if name not in obs:
            raise PolicyInputError(name, "missing from the observation", f"keys {list(INPUTS)}")
        return obs[name]
    if not hasattr(obs, name):
        raise PolicyInputError(
            name, f"missing from the observation ({type(obs).__name__})", f"fields {list(INPUTS)}"
        )
    return getattr(obs, name)


__all__ = [
    "INPUTS",
    "ModelFileError",
    "Observation",
    "ObservationFields",
    "ObservationLike",
    "Policy",
    "PolicyInputError",
    "PolicyOutputError",
    "PolicySpec",
    "obs_field",
]

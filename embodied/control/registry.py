"""Controllers by name. One spec per entry; duplicates refused; unknown names answered
with the valid ones (and a close match).

Entries are ``"module:Class"`` strings, imported when made, as gymnasium
registers environments.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from embodied.control.base import Controller, ControllerSettings
from embodied.registry import Registry


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    entry: str  # "package.module:Class"
    summary: str  # one line, with the paper or system it follows
    needs_world: bool = False  # clairvoyant: needs the simulator's view of the future

    def load(self) -> type:
        module, _, attr = self.entry.partition(":")
        return getattr(importlib.import_module(module), attr)


REGISTRY: Registry[ControllerSpec] = Registry("controller")


def register(spec: ControllerSpec) -> None:
    REGISTRY.add(spec.name, spec)  # a duplicate raises DuplicateName


def available() -> list[str]:
    return REGISTRY.names()


def get_spec(name: str) -> ControllerSpec:
    """The spec called ``name``; an unknown name raises ``UnknownName`` (a KeyError) with the
    valid ones and a close match."""
    return REGISTRY.get(name)


def make_controller(
    name: str,
    settings: ControllerSettings | None = None,
    *,
    frame_rate_hz: float = 30.0,
    world: Any = None,
    **kwargs: Any,
) -> Controller:
    """Build a registered controller; ``world`` is passed only to clairvoyant ones."""
    spec = get_spec(name)
    if spec.needs_world:
        if world is None:
            raise ValueError(
                f"controller {name!r} needs the simulator's world (it sees the future)"
            )
        kwargs["world"] = world
    return spec.load()(settings, frame_rate_hz=frame_rate_hz, **kwargs)


register(ControllerSpec("fixed", "embodied.control.fixed:FixedBudget", "fixed budget (no control)"))
register(
    ControllerSpec(
        "aimd",
        "embodied.control.aimd:AimdController",
        "AIMD x1.5 / x0.7 per window, as ROS 2 abr_image_transport",
    )
)
register(
    ControllerSpec(
        "deadline",
        "embodied.control.deadline:DeadlineAwareController",
        "deadline-aware, RobustMPC capacity (Yin et al. SIGCOMM 2015) + overdue-report bound",
    )
)
register(
    ControllerSpec(
        "success",
        "embodied.control.success:SuccessAwareController",
        "success-aware: the budget and send interval of highest expected task success "
        "(measured curves), Salsify-style frame skipping (Fouladi et al. NSDI 2018)",
    )
)
register(
    ControllerSpec(
        "oracle",
        "embodied.control.oracle:OracleController",
        "clairvoyant greedy ceiling (evaluation only)",
        needs_world=True,
    )
)

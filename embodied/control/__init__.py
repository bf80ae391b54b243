"""Token-budget controllers: feedback about packets in, the next frame's budget out.

* :mod:`embodied.control.base`: :class:`Feedback`, the :class:`Controller` protocol,
  :class:`ControllerSettings` (validated, live-tunable) and :data:`SETTINGS_SPEC`.
* :mod:`embodied.control.registry`: controllers by name (``fixed``, ``aimd``,
  ``deadline``, ``oracle``).
"""

from embodied.control.base import (
    SETTINGS_SPEC,
    SKIP,
    BaseController,
    Controller,
    ControllerSettings,
    Feedback,
    SettingSpec,
    settings_spec,
)
from embodied.control.registry import REGISTRY, ControllerSpec, available, make_controller, register

__all__ = [
    "REGISTRY",
    "SETTINGS_SPEC",
    "SKIP",
    "BaseController",
    "Controller",
    "ControllerSettings",
    "ControllerSpec",
    "Feedback",
    "SettingSpec",
    "available",
    "make_controller",
    "register",
    "settings_spec",
]

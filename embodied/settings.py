"""Self-validating settings: one dataclass field per knob, its range and description in the
field, the table (for ROS parameter descriptors and the docs) built from the fields.

::

    @dataclass(frozen=True)
    class Knobs(Settings):
        deadline_ms: float = setting(100.0, "deadline (ms)", lo=1.0, hi=10_000.0)
        mode: str = setting("adaptive", "what decides", choices=("adaptive", "hold"))
        k_max: int = setting(64, "tokens per frame", lo=1, hi=4096, live=False)

    Knobs(deadline_ms=0)                      # ValueError: deadline_ms=0 is out of range ...
    Knobs().updated(mode="hold")              # a new, validated instance
    Knobs().updated(k_max=8)                  # ValueError: k_max cannot change while running
    specs_of(Knobs)                           # {name: SettingSpec}, in field order

``hi`` may name another field (``hi="k_max"``): the bound is that field's value. ``live``
says whether a running node may change it (ROS: a read-only parameter otherwise).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self, cast

_TYPES: dict[str, type] = {"float": float, "int": int, "str": str, "bool": bool}


def setting(
    default: Any,
    description: str,
    *,
    lo: float | None = None,
    hi: float | str | None = None,
    choices: tuple[str, ...] | None = None,
    live: bool = True,
) -> Any:
    """A settings field: its default, a one-line description, its range and liveness."""
    meta = {"description": description, "min": lo, "max": hi, "choices": choices, "live": live}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SettingSpec:
    """One setting's type, default, range and description (for ROS descriptors, docs)."""

    name: str
    type: type
    default: Any
    description: str
    min: float | None
    max: float | None
    choices: tuple[str, ...] | None
    live: bool
    max_field: str | None = None  # the field ``max`` is read from, if any

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return "any string"
        return f"{self.min}..{self.max}"

    def check(self, value: Any) -> None:
        name = self.name
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r} must be an integer in {self.allowed()}")
        elif self.type is float:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{name}={value!r} must be a finite number in {self.allowed()}")
        elif not isinstance(value, self.type):
            raise ValueError(f"{name}={value!r} must be a {self.type.__name__}: {self.allowed()}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name}={value!r} is not allowed: {self.allowed()}")
        if self.type in (int, float) and (
            (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
        ):
            raise ValueError(f"{name}={value!r} is out of range: allowed {self.allowed()}")


def specs_of(cls: type, **bounds: Any) -> dict[str, SettingSpec]:
    """The settings table of a settings dataclass; ``bounds`` give fields named as bounds
    (``k_max=16``), else their defaults."""
    specs: dict[str, SettingSpec] = {}
    fields = dataclasses.fields(cls)
    defaults = {f.name: f.default for f in fields}
    for f in fields:
        meta: Mapping[str, Any] = f.metadata
        if "description" not in meta:
            continue
        hi, max_field = meta["max"], None
        if isinstance(hi, str):
            max_field = hi
            hi = bounds.get(hi, defaults[hi])
        specs[f.name] = SettingSpec(
            name=f.name,
            type=_TYPES[f.type] if isinstance(f.type, str) else f.type,  # type: ignore[index]
            default=f.default,
            description=meta["description"],
            min=meta["min"],
            max=hi,
            choices=meta["choices"],
            live=meta["live"],
            max_field=max_field,
        )
    return specs


class Settings:
    """Base of a frozen settings dataclass: validated at construction, changed by
    :meth:`updated` (the whole change or nothing, with the reason and the kept values)."""

    def __post_init__(self) -> None:
        specs = self.current_specs()
        bounds = {s.max_field for s in specs.values() if s.max_field}
        for name in sorted(specs, key=lambda n: n not in bounds):  # the bounds themselves first
            specs[name].check(getattr(self, name))
        self._check()

    def _check(self) -> None:
        """Checks across fields (override)."""

    @classmethod
    def specs(cls, **bounds: Any) -> dict[str, SettingSpec]:
        return specs_of(cls, **bounds)

    def current_specs(self) -> dict[str, SettingSpec]:
        """The table with bounds read from this instance's fields."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return specs_of(type(self), **own)

    def launched(self, **values: Any) -> Self:
        """A validated copy with launch-time values (read-only settings included)."""
        return dataclasses.replace(cast(Any, self), **values)

    def updated(self, **changes: Any) -> Self:
        """A validated copy with ``changes``; ValueError naming the setting, the allowed
        values and the values kept (an unknown name lists the valid ones)."""
        specs = self.current_specs()
        for key in changes:
            if key not in specs:
                raise ValueError(f"unknown setting {key!r}; settings: {', '.join(specs)}")
            if not specs[key].live:
                raise ValueError(f"{key} cannot change while running (kept {getattr(self, key)!r})")
        try:
            return dataclasses.replace(cast(Any, self), **changes)
        except ValueError as e:
            kept = ", ".join(f"{k}={getattr(self, k)!r}" for k in changes)
            raise ValueError(f"{e} (kept {kept})") from None

"""The generic name registry (embodied.registry): a name once, the valid names on a miss, lazy
entry points; and the project's tables of named things are such registries."""

from __future__ import annotations

import pytest

from embodied.registry import DuplicateName, Registry, UnknownName, load_entry


def _colors() -> Registry[int]:
    reg: Registry[int] = Registry("color")
    for i, name in enumerate(("red", "green", "blue")):
        reg.add(name, i)
    return reg


def test_add_returns_the_value_and_keeps_registration_order():
    reg = _colors()
    assert reg.add("cyan", 9) == 9
    assert reg.names() == ["red", "green", "blue", "cyan"] == list(reg)
    assert reg.items()[0] == ("red", 0) and reg.values()[-1] == 9
    assert len(reg) == 4 and "green" in reg and "teal" not in reg and 3 not in reg
    assert reg.get("blue") == reg["blue"] == 2
    assert repr(reg) == "Registry('color': red, green, blue, cyan)"


def test_a_name_is_refused_twice_and_the_first_entry_stays():
    reg = _colors()
    with pytest.raises(DuplicateName, match=r"color 'green' is already registered \(1\)"):
        reg.add("green", 7)
    assert issubclass(DuplicateName, ValueError)
    assert reg["green"] == 1 and len(reg) == 3


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_name_must_be_a_non_empty_string(bad):
    with pytest.raises(ValueError, match="color name must be a non-empty string"):
        _colors().add(bad, 0)


def test_unknown_names_list_the_valid_ones_and_the_closest():
    reg = _colors()
    with pytest.raises(UnknownName) as err:
        reg.get("gren")
    assert str(err.value) == (
        "unknown color 'gren'. Did you mean 'green'? Valid colors: red, green, blue"
    )
    assert err.value.name == "gren" and err.value.valid == ["red", "green", "blue"]
    # both a KeyError (mapping-style callers) and a ValueError (argument checking)
    with pytest.raises(KeyError):
        reg["purple"]
    with pytest.raises(
        ValueError, match=r"unknown color 'purple'\. Valid colors: red, green, blue"
    ):
        reg["purple"]
    with pytest.raises(UnknownName, match="unknown color 5"):
        reg.get(5)  # type: ignore[arg-type]  # a key that is not a string: still a clean miss
    with pytest.raises(UnknownName, match="Valid shapes: none"):
        Registry("shape").get("square")


def test_load_entry_imports_package_module_attr():
    assert load_entry("embodied.registry:Registry") is Registry
    for bad in ("embodied.registry", "embodied.registry:", ":Registry", ""):
        with pytest.raises(ValueError, match=r"must read 'package\.module:attr'"):
            load_entry(bad)
    with pytest.raises(AttributeError):
        load_entry("embodied.registry:Nothing")


def test_the_project_tables_are_registries():
    from embodied.cli import COMMANDS
    from embodied.codecs import CODECS
    from embodied.entropy import CODERS

    for table, some in ((COMMANDS, "eval"), (CODECS, "jpeg"), (CODERS, "constriction")):
        assert isinstance(table, Registry)
        assert some in table.names()
        with pytest.raises(DuplicateName):
            table.add(some, table[some])
        with pytest.raises(UnknownName, match="Valid"):
            table.get(some + "x")

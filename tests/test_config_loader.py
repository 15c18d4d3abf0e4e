"""The one strict loader: nested sections, tuples, coercion and unknown keys by name."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hir_edge.config_loader import check_keys, from_mapping
from hir_edge.errors import BundleError, ConfigError


@dataclass
class Inner:
    rate: float = 0.1
    steps: int = 3


@dataclass
class Outer:
    name: str = "x"
    window: tuple[int, int] = (100, 400)
    inner: Inner = field(default_factory=Inner)
    extra: Inner | None = None
    flag: bool = False


def test_nested_sections_tuples_and_numbers_are_built_as_typed():
    out = from_mapping(
        Outer, {"window": [50, 60], "inner": {"rate": "1e-4"}, "extra": {"steps": 7}}, "cfg"
    )
    assert out == Outer(window=(50, 60), inner=Inner(rate=1e-4), extra=Inner(steps=7))
    assert from_mapping(Outer, None, "cfg") == Outer()


def test_values_are_copied_not_shared():
    @dataclass
    class Holder:
        table: dict = field(default_factory=dict)

    given = {"a": [1]}
    held = from_mapping(Holder, {"table": given}, "cfg")
    given["a"].append(2)
    assert held.table == {"a": [1]}


def test_unknown_keys_and_wrong_kinds_are_named():
    with pytest.raises(ConfigError) as err:
        from_mapping(Outer, {"inner": {"step": 2}}, "cfg")
    assert str(err.value) == (
        "cfg.inner: unknown key 'step'; did you mean 'steps'? (allowed: rate, steps)"
    )
    with pytest.raises(ConfigError, match=r"^cfg.inner.steps: expected an integer, got 'two'$"):
        from_mapping(Outer, {"inner": {"steps": "two"}}, "cfg")
    with pytest.raises(ConfigError, match=r"^cfg.flag: expected true or false, got 1$"):
        from_mapping(Outer, {"flag": 1}, "cfg")
    with pytest.raises(ConfigError, match=r"^cfg: expected a mapping, got list$"):
        from_mapping(Outer, [1], "cfg")
    with pytest.raises(BundleError, match=r"^m: unknown key 'zzz' \(allowed: a\)$"):
        check_keys({"zzz": 1}, {"a"}, "m", BundleError)

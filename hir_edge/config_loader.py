"""One strict loader from plain data (YAML, JSON) to the project's typed configs.

Recipes, model presets, synth settings, preprocessing, placement models and bundle manifests
are dataclasses; each is read from a mapping by :func:`from_mapping`, so they all refuse an
unknown key the same way — by name, with the closest allowed key — and never drop one
silently. A typo in a recipe must stop the run, not train with the default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, get_type_hints

from hir_edge.errors import ConfigError


def check_keys(
    data: Mapping, allowed: set[str] | frozenset[str], where: str, error: type = ConfigError
) -> None:
    """Raise ``error`` naming the first key of ``data`` not in ``allowed``."""
    unknown = sorted(str(k) for k in set(data) - set(allowed))
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise error(
        f"{where}: unknown key {unknown[0]!r}{hint} (allowed: {', '.join(sorted(allowed))})"
    )


def from_mapping(cls: type, data: Any, where: str, error: type = ConfigError, coerce: bool = True):
    """An instance of dataclass ``cls`` from ``data``.

    Fields typed as dataclasses are built the same way (``where.key`` in messages); lists
    become tuples where the field is a tuple; with ``coerce``, numbers and booleans are read as
    their fields say (YAML reads ``1e-4`` as a string). Absent keys take their defaults.

    Raises:
        ``error``: ``data`` is not a mapping, holds an unknown key, or a value of the wrong kind.
    """
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise error(f"{where}: expected a mapping, got {type(data).__name__}")
    check_keys(data, {f.name for f in dataclasses.fields(cls)}, where, error)
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if isinstance(value, (dict, list)):  # the instance owns its values
            value = copy.deepcopy(value)
        section = _section_type(hint)
        if section is not None and (value is not None or hint is section):
            kwargs[key] = from_mapping(section, value, f"{where}.{key}", error, coerce)
        elif isinstance(value, (list, tuple)) and _is_tuple(hint):
            kwargs[key] = tuple(value)
        elif coerce:
            kwargs[key] = _coerce(value, hint, f"{where}.{key}", error)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _section_type(hint: Any) -> type | None:
    """The dataclass a field holds (``Section`` or ``Section | None``), else None."""
    for candidate in (hint, *getattr(hint, "__args__", ())):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _is_tuple(hint: Any) -> bool:
    return any(getattr(c, "__origin__", c) is tuple for c in (hint, *getattr(hint, "__args__", ())))


def _coerce(value: Any, hint: Any, where: str, error: type) -> Any:
    """Numbers and booleans as their field says."""
    types = getattr(hint, "__args__", (hint,))
    if value is None and type(None) in types:
        return None
    if float in types and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise error(f"{where}: expected a number, got {value!r}") from None
    if int in types and not isinstance(value, int):
        raise error(f"{where}: expected an integer, got {value!r}")
    if bool in types and not isinstance(value, bool):
        raise error(f"{where}: expected true or false, got {value!r}")
    return value

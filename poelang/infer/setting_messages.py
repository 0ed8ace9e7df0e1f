"""Settings mistakes in words, one wording for ``poelang check`` and the engine.

Pydantic reports a mistake as a structured error; :func:`explain` turns each
into the setting it is about, the settings a rule between several names
(the first is blamed) and a lower-case message with the value as a program
writes it (``none``, ``true``, ``'median'``).
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

from .errors import did_you_mean


class Explained(NamedTuple):
    setting: str | None  # the field a mistake in one value is about; None for a rule between settings
    blamed: tuple[str, ...]  # a rule's settings, the first to point at
    message: str


def explain(errors: list[dict], values: dict[str, Any]) -> list[Explained]:
    """One message per setting (see :func:`_one_error_per_setting`), rules last."""
    out = []
    for error in _one_error_per_setting(errors, values):
        loc = error["loc"]
        cause = (error.get("ctx") or {}).get("error")
        blamed = tuple(getattr(cause, "settings", ()))
        out.append(Explained(loc[0] if loc else None, blamed, _message(error)))
    return out


def describe_errors(error, values: dict[str, Any]) -> list[str]:
    """The engine's wording: ``name: message`` for one value, the bare message for a rule."""
    return [f"{e.setting}: {e.message}" if e.setting else e.message for e in explain(error.errors(), values)]


def _message(error: dict) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "literal_error":
        expected = ctx.get("expected", "one of the allowed values")
        value = error.get("input")
        hint = did_you_mean(value, re.findall(r"'([^']*)'", expected)) if isinstance(value, str) else ""
        return f"expected {expected}, got {source_text(value)}{hint}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        ops = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}
        bound = next(iter(ctx.values()), "?")
        bound = f"{bound:g}" if isinstance(bound, float) else bound
        return f"must be {ops[kind]} {bound}, got {source_text(error.get('input'))}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {source_text(error.get('input'))}"
    if kind == "extra_forbidden":
        return "unknown setting"
    message = error.get("msg", "invalid value")
    return message.removeprefix("Value error, ").rstrip(".").lower() if message else "invalid value"


def _one_error_per_setting(errors: list[dict], values: dict[str, Any]) -> list[dict]:
    """Pydantic reports a value that fits no member of a union once per member
    (`schedule = [1.0, "a"]`: not 'linear' or 'flux_shift', and not a number);
    keep the member that matches the kind of value written: a list or a name."""
    chosen: dict[Any, dict] = {}
    for error in errors:
        loc = error["loc"]
        if not loc:
            chosen[len(chosen), None] = error
            continue
        tag = loc[1] if len(loc) > 1 and isinstance(loc[1], str) else ""
        fits = isinstance(values.get(loc[0]), list) == tag.startswith("list")
        if loc[0] not in chosen or (fits and not chosen[loc[0]].get("_fits")):
            chosen[loc[0]] = {**error, "_fits": fits}
    return list(chosen.values())


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "list_type": "a list",
    "bool_type": "true or false", "bool_parsing": "true or false",
}


def source_text(value: Any) -> str:
    """A setting's value as a program writes it, shortened."""
    if value is None or isinstance(value, bool):
        text = {None: "none", True: "true", False: "false"}[value]
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str):
        text = f"'{value}'"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(source_text(v) for v in value) + "]"
    else:
        text = type(value).__name__ if hasattr(value, "shape") else str(value)
    return text if len(text) <= 20 else text[:17] + "..."

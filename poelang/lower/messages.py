"""How values and types are named in diagnostics."""
from __future__ import annotations

from typing import Any

from poelang import graph as g
from poelang.infer.setting_messages import source_text
from poelang.lower.values import Val
from poelang.types import NumberT, TextT, TupleT, Type


def _a(t: Any) -> str:
    """A type with its article: 'a Number', 'an Image[64,64]'."""
    text = str(t)
    return ("an " if text[:1].lower() in "aeiou" else "a ") + text


def _hw(size) -> str:
    h, w = size
    return f"{'?' if h is None else h}×{'?' if w is None else w}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "2"


def _shown(val: Val) -> str:
    """A constant as the program writes it: 30, 12px, "two cats", [1, 2]."""
    if isinstance(val.type, (NumberT, TextT)):
        return _describe_val(val)
    return source_text(val.literal)


def _describe_param(default: Val) -> str:
    def kind(arg: g.ArgValue, t: Type) -> str:
        if isinstance(arg, bool):
            return "true or false"
        if isinstance(arg, int):
            return "an integer"
        if isinstance(arg, float):
            return "a number"
        if isinstance(arg, g.Quantity):
            return "an angle (deg)" if arg.unit == "deg" else "a length (px or %)"
        if isinstance(arg, str):
            return "a string"
        if isinstance(t, TupleT):
            return f"a tuple of {len(arg)}"
        return "a list"

    return kind(default.arg, default.type)


def _describe_val(val: Val) -> str:
    if isinstance(val.type, NumberT) and val.is_const:
        return f"{val.literal:g}{val.unit if val.unit in ('%', 'px', 'deg') else ''}"
    if isinstance(val.type, TextT) and val.is_const:
        return f'"{val.literal}"'
    return str(val.type)

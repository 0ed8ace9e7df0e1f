"""The Lowerer: one program (a main module and its imports) into a Graph, its concerns composed."""
from __future__ import annotations

from poelang.lower.calls import Calls
from poelang.lower.expressions import Expressions
from poelang.lower.operators import Operators
from poelang.lower.params import Params
from poelang.lower.products import Products
from poelang.lower.scope import Names
from poelang.lower.settings import SettingsLowering
from poelang.lower.statements import Statements


class Lowerer(Statements, Params, SettingsLowering, Products, Expressions, Operators, Calls, Names):
    """Lowers one program into a Graph: ``lower_module`` for each statement list, then ``finish``.

    Each base class is one concern; they share the state declared in
    :class:`poelang.lower.state.LoweringState` and report through ``error``.
    """

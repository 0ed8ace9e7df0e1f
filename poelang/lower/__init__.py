"""AST → typed expert graph, with every static check on the way.

The lowering walks the statements in order, evaluates each expression to a
:class:`Val` (its type, how it appears as a graph argument, its literal value
when it is a constant, and the factors it contributes when it is an expert
product) and reports mistakes into a :class:`DiagnosticBag` instead of
stopping at the first. An expression that failed gets the type ``AnyT``, which
matches everything, so one mistake gives one message.

One concern a module: :mod:`.statements` (bindings, imports, samples, saves),
:mod:`.scope` (names), :mod:`.expressions` and :mod:`.operators` (an operator
table: one small rule per operator and kinds of operands), :mod:`.calls`
(arguments bound to signatures), :mod:`.settings`, :mod:`.products`
(canvas, regions, parents), :mod:`.params`, :mod:`.messages`; the values it
computes with in :mod:`.values` and its state in :mod:`.state`. Imports are
read before lowering (:mod:`poelang.imports`): lowering does no I/O.
"""
from poelang.lower.lowerer import Lowerer
from poelang.lower.statements import save_path_problem
from poelang.lower.values import BAD, SPECIAL_FUNCTIONS, Symbol, Val

__all__ = ["BAD", "Lowerer", "SPECIAL_FUNCTIONS", "Symbol", "Val", "save_path_problem"]

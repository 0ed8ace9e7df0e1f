"""Scope and names: defining a name once, looking names up (with imports' prefixes), attributes."""
from __future__ import annotations

from poelang.builtins import SIMULATION_ATTRIBUTES
from poelang.diagnostics import ALREADY_DEFINED, Span, closest, did_you_mean
from poelang.lower.messages import _a
from poelang.lower.state import LoweringState
from poelang.lower.values import BAD, SPECIAL_FUNCTIONS, Symbol, Val, _copy
from poelang.syntax import ast
from poelang.types import ModuleT, SimulationT


class Names(LoweringState):
    """Scope and names: a part of :class:`poelang.lower.Lowerer`."""

    def _check_new_name(self, name: str, span: Span) -> bool:
        if name in self.env:
            previous = self.env[name].span
            self.diag.error(f"'{name}' is already defined", span, ("first defined here", previous), code=ALREADY_DEFINED)
            self.env[name].used = True  # the statement that redefines it is not lowered: no "never used" as well
            return False
        return True

    def _define(self, name: str, symbol: Symbol) -> None:
        self.env[name] = symbol

    def eval_Name(self, expr: ast.Name, hint) -> Val:
        """A name: a binding (marked used), or an expert with no arguments; a builtin named without a call, or
        an unknown name, is an error (with the closest name, which is then not also reported as unused)."""
        name = expr.id
        if name in self.env:
            symbol = self.env[name]
            symbol.used = True
            if symbol.override is not None:
                self._override_uses[expr.span] = symbol.override
            if symbol.kind == "module":
                return self.error(f"'{name}' is an imported module; use {name}.NAME", expr.span)
            return _copy(symbol.val, expr.span, at_use=True)
        spec = self.registry.get(name)
        if spec is not None:
            return self.instantiate_expert(spec, [], expr.span, hint)
        if name in self.registry.builtins or name in SPECIAL_FUNCTIONS:
            return self.error(f"'{name}' is a function; call it: {name}(...)", expr.span)
        if self._failed_import:  # perhaps defined in the file that could not be imported: already reported
            return BAD
        meant = closest(name, self._known_names())
        self.diag.error(f"undefined name '{name}'{did_you_mean(name, self._known_names())}", expr.span)
        if meant in self.env:  # the name the program meant is not also "never used"
            self.env[meant].used = True
        return BAD

    def _known_names(self) -> list[str]:
        return [*self.env, *self.registry.names(), *self.registry.builtins, *SPECIAL_FUNCTIONS]

    def eval_Attribute(self, expr: ast.Attribute, hint) -> Val:
        """``m.name`` (a binding of an imported module) or ``sim.rgb`` (an attribute of a simulation)."""
        if isinstance(expr.value, ast.Name) and isinstance(self.env.get(expr.value.id, Symbol(BAD, expr.span, "")).val.type, ModuleT):
            self.env[expr.value.id].used = True
            if self.env[expr.value.id].val.bad:  # the module could not be imported: already reported
                return BAD
            qualified = f"{expr.value.id}.{expr.attr}"
            if qualified in self.env:
                return self.eval_Name(ast.Name(expr.span, qualified), hint)
            names = [n.split(".", 1)[1] for n in self.env if n.startswith(expr.value.id + ".")]
            return self.error(f"module '{expr.value.id}' has no '{expr.attr}'{did_you_mean(expr.attr, names)}", expr.span)
        value = self.eval(expr.value)
        if value.bad:
            return BAD
        if isinstance(value.type, SimulationT):
            rule = SIMULATION_ATTRIBUTES.get(expr.attr)
            if rule is None:
                return self.error(f"a simulation has no '{expr.attr}'{did_you_mean(expr.attr, SIMULATION_ATTRIBUTES)}; "
                                  f"it has {', '.join(SIMULATION_ATTRIBUTES)}", expr.span)
            return self._value_node(expr.attr, {"of": value.arg}, rule(value.type), hint)
        return self.error(f"{_a(value.type)} has no attribute '{expr.attr}'", expr.span)

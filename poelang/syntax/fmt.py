"""AST → canonical program text (`poelang fmt`).

Canonical form: one statement per line, single spaces around binary
operators (none around `^`), parentheses only where precedence needs them,
`with` blocks one setting per line indented by four spaces, numbers as
written, strings re-escaped, at most one blank line between statements.
Comments are kept: a comment on its own line stays before the statement (or
setting) that follows it, an end-of-line comment stays at the end of its line.
`fmt(fmt(p)) == fmt(p)` and `fmt(p)` lowers to the same graph as `p`; both
are tested on every example and on mutated programs.
"""
from __future__ import annotations

from poelang.syntax import ast

INDENT = "    "

_PRECEDENCE = {"|": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4, "given": 5}
_UNARY, _POWER, _POSTFIX, _ATOM = 6, 7, 8, 9


def precedence(expr: ast.Expr) -> int:
    if isinstance(expr, ast.BinOp):
        return _POWER if expr.op == "^" else _PRECEDENCE[expr.op]
    if isinstance(expr, ast.UnaryOp):
        return _UNARY
    if isinstance(expr, (ast.Call, ast.Subscript, ast.Attribute)):
        return _POSTFIX
    return _ATOM


def format_expr(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Number):
        return expr.text
    if isinstance(expr, ast.String):
        return quote(expr.value)
    if isinstance(expr, ast.Constant):
        return {True: "true", False: "false", None: "none"}[expr.value]
    if isinstance(expr, ast.ListExpr):
        return "[" + ", ".join(format_expr(i) for i in expr.items) + "]"
    if isinstance(expr, ast.TupleExpr):
        items = [format_expr(i) for i in expr.items]
        return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(expr, ast.Call):
        args = ", ".join(a.name + "=" + format_expr(a.value) if a.name else format_expr(a.value) for a in expr.args)
        return f"{_wrap(expr.func, _POSTFIX)}({args})"
    if isinstance(expr, ast.Subscript):
        return f"{_wrap(expr.value, _POSTFIX)}[{format_expr(expr.index)}]"
    if isinstance(expr, ast.Attribute):
        return f"{_wrap(expr.value, _POSTFIX)}.{expr.attr}"
    if isinstance(expr, ast.UnaryOp):
        return expr.op + _wrap(expr.operand, _UNARY)
    if isinstance(expr, ast.BinOp):
        if expr.op == "^":  # right-associative: postfix ^ unary
            return f"{_wrap(expr.left, _POSTFIX)}^{_wrap(expr.right, _UNARY)}"
        level = _PRECEDENCE[expr.op]
        right_level = _UNARY if expr.op == "given" else level + 1
        return f"{_wrap(expr.left, level)} {expr.op} {_wrap(expr.right, right_level)}"
    raise TypeError(f"not an expression: {expr!r}")


def _wrap(expr: ast.Expr, minimum: int) -> str:
    text = format_expr(expr)
    return f"({text})" if precedence(expr) < minimum else text


def quote(value: str) -> str:
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


class _Comments:
    """Comments by line, handed out once each."""

    def __init__(self, comments: list[ast.Comment]):
        self.by_line = {c.line: c for c in comments}

    def take_range(self, first: int, last: int) -> list[ast.Comment]:
        found = [self.by_line.pop(line) for line in range(first, last + 1) if line in self.by_line]
        return found

    def take_line(self, line: int) -> ast.Comment | None:
        return self.by_line.pop(line, None)


def format_source(module: ast.Module) -> str:
    comments = _Comments(module.comments)
    source_lines = module.source.splitlines()
    out: list[str] = []
    previous_end = 0  # last source line consumed

    def blank_between(first: int, last: int) -> bool:
        return any(not source_lines[i - 1].strip() for i in range(first, last + 1) if 0 < i <= len(source_lines))

    for statement in module.statements:
        start, end = statement.span.line, statement.span.end_line
        leading = comments.take_range(previous_end + 1, start - 1)
        cursor = previous_end + 1
        for comment in leading:
            if out and blank_between(cursor, comment.line - 1):
                out.append("")
            out.append(comment.text)
            cursor = comment.line + 1
        if out and blank_between(cursor, start - 1):
            out.append("")
        out.extend(_format_statement(statement, comments))
        previous_end = end
    trailing = comments.take_range(previous_end + 1, len(source_lines) + 1)
    for comment in trailing:
        if out and blank_between(previous_end + 1, comment.line - 1):
            out.append("")
        out.append(comment.text)
        previous_end = comment.line
    return "\n".join(out) + "\n" if out else ""


def _format_statement(statement: ast.Statement, comments: _Comments) -> list[str]:
    if isinstance(statement, ast.Import):
        head = f"import {quote(statement.path)}" + (f" as {statement.alias}" if statement.alias else "")
        block: list[ast.Setting] = []
    elif isinstance(statement, ast.Let):
        head = f"{statement.name} = {format_expr(statement.value)}"
        block = []
    elif isinstance(statement, ast.Param):
        head = f"param {statement.name} = {format_expr(statement.value)}"
        block = []
    elif isinstance(statement, ast.Sample):
        head = f"{statement.name} ~ {format_expr(statement.value)}"
        block = statement.settings
    elif isinstance(statement, ast.Save):
        head = f"save {format_expr(statement.value)} to {quote(statement.path)}"
        block = statement.options
    else:  # pragma: no cover
        raise TypeError(statement)

    start, end = statement.span.line, statement.span.end_line
    if not block:
        # Comments inside a multi-line expression go before it; the last line's stays at the end.
        inner = comments.take_range(start, end - 1)
        last = comments.take_line(end)
        return [c.text for c in inner] + [head + (f"  {last.text}" if last else "")]

    head_end = block[0].span.line  # comments on lines of the head, before the first setting
    before = comments.take_range(start + 1, head_end - 1) if head_end > start else []
    head_comment = comments.take_line(start) if head_end > start else None
    lines = [c.text for c in before]
    lines.append(head + " with {" + (f"  {head_comment.text}" if head_comment else ""))
    cursor = head_end
    for setting in block:
        for c in comments.take_range(cursor, setting.span.line - 1):
            lines.append(INDENT + c.text)
        inner = comments.take_range(setting.span.line, setting.span.end_line - 1) if setting.span.end_line > setting.span.line else []
        lines.extend(INDENT + c.text for c in inner)
        same_line_next = any(s is not setting and s.span.line == setting.span.end_line for s in block[block.index(setting) + 1:])
        trailing = None if same_line_next else comments.take_line(setting.span.end_line)
        lines.append(f"{INDENT}{setting.name} = {format_expr(setting.value)}" + (f"  {trailing.text}" if trailing else ""))
        cursor = setting.span.end_line + 1
    for c in comments.take_range(cursor, end - 1):
        lines.append(INDENT + c.text)
    last = comments.take_line(end)
    lines.append("}" + (f"  {last.text}" if last else ""))
    return lines

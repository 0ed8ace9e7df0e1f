"""Parse tree → AST: Lark's tree becomes :mod:`poelang.syntax.ast` nodes with spans, strings unescaped.

Lark objects go no further than this module and :mod:`poelang.syntax.parser`.
"""
from __future__ import annotations

import re

from lark import Token, Transformer, Tree, v_args

from poelang.diagnostics import Span
from poelang.syntax import ast


class EscapeError(Exception):
    def __init__(self, message: str, span: Span):
        super().__init__(message)
        self.span = span


ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
ESCAPE_RE = re.compile(r"\\(u\{([^}\s]*)\}|.)")


def unescape(body: str, span: Span) -> str:
    def at(match: re.Match) -> Span:  # the escape itself, inside the string's quotes (strings are one line)
        if span.end_line != span.line:
            return span
        col = span.col + 1 + match.start()
        return Span(span.file, span.line, col, span.line, col + len(match.group(0)))

    def replace(match: re.Match) -> str:
        if match.group(2) is not None:
            return code_point(match.group(2), match.group(0), at(match))
        char = match.group(1)
        if char in ESCAPES:
            return ESCAPES[char]
        if char == "u":
            raise EscapeError("'\\u' takes a code point in braces, like \\u{263A}", at(match))
        if char == "0":
            raise EscapeError("a string cannot hold the NUL character '\\0'", at(match))
        raise EscapeError(f"unknown escape '\\{char}' in string; use '\\\\' for a backslash", at(match))

    return ESCAPE_RE.sub(replace, body)


def code_point(digits: str, text: str, span: Span) -> str:
    """The character of `\\u{…}`: 1 to 6 hex digits naming a Unicode scalar value other than NUL
    (a surrogate or NUL could not be written to a file name, or to a UTF-8 file)."""
    if not re.fullmatch(r"[0-9A-Fa-f]{1,6}", digits):
        raise EscapeError(f"'{text}' needs 1 to 6 hex digits between the braces", span)
    code = int(digits, 16)
    if code > 0x10FFFF:
        raise EscapeError(f"{text} is not a Unicode code point (the last is \\u{{10FFFF}})", span)
    if 0xD800 <= code <= 0xDFFF:
        raise EscapeError(f"{text} is a surrogate, not a character", span)
    if code == 0:
        raise EscapeError(f"a string cannot hold the NUL character {text}", span)
    return chr(code)


NUMBER_RE = re.compile(r"^(.*?)(%|px|deg)?$")


@v_args(meta=True, inline=True)
class ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _span(self, meta) -> Span:
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, token: Token) -> Span:
        return Span(self.file, token.line, token.column, token.end_line, token.end_column)

    # statements
    def start(self, meta, *statements):
        return list(statements)

    def import_stmt(self, meta, path, alias):
        return ast.Import(self._span(meta), self._string(path), self._tspan(path), str(alias) if alias else None)

    def let_stmt(self, meta, name, value):
        return ast.Let(self._span(meta), str(name), self._tspan(name), value)

    def param_stmt(self, meta, name, value):
        return ast.Param(self._span(meta), str(name), self._tspan(name), value)

    def sample_stmt(self, meta, name, value, settings):
        return ast.Sample(self._span(meta), str(name), self._tspan(name), value, settings or [])

    def save_stmt(self, meta, value, path, options):
        return ast.Save(self._span(meta), value, self._string(path), self._tspan(path), options or [])

    def with_block(self, meta, *settings):
        return [s for s in settings if s is not None]

    def setting(self, meta, name, value):
        return ast.Setting(self._span(meta), str(name), self._tspan(name), value)

    # expressions
    def _bin(op):  # noqa: N805 - a factory used in the class body
        def build(self, meta, left, right):
            return ast.BinOp(self._span(meta), op, left, right)

        return build

    union, intersect, add, sub = _bin("|"), _bin("&"), _bin("+"), _bin("-")
    mul, div, given, pow = _bin("*"), _bin("/"), _bin("given"), _bin("^")

    def neg(self, meta, operand):
        return ast.UnaryOp(self._span(meta), "-", operand)

    def complement(self, meta, operand):
        return ast.UnaryOp(self._span(meta), "!", operand)

    def call(self, meta, func, args):
        return ast.Call(self._span(meta), func, args or [])

    def args(self, meta, *args):
        return list(args)

    def positional(self, meta, value):
        return ast.Arg(self._span(meta), None, value)

    def named(self, meta, name, value):
        return ast.Arg(self._span(meta), str(name), value)

    def subscript(self, meta, value, index):
        return ast.Subscript(self._span(meta), value, index)

    def attribute(self, meta, value, name):
        return ast.Attribute(self._span(meta), value, str(name))

    def name(self, meta, token):
        return ast.Name(self._tspan(token), str(token))

    def number(self, meta, token):
        text = str(token)
        digits, unit = NUMBER_RE.match(text).groups()
        return ast.Number(self._tspan(token), float(digits), unit, text)

    def string(self, meta, token):
        return ast.String(self._tspan(token), self._string(token))

    def _string(self, token: Token) -> str:
        return unescape(str(token)[1:-1], self._tspan(token))

    def true(self, meta):
        return ast.Constant(self._span(meta), True)

    def false(self, meta):
        return ast.Constant(self._span(meta), False)

    def none(self, meta):
        return ast.Constant(self._span(meta), None)

    def list(self, meta, *items):
        return ast.ListExpr(self._span(meta), [i for i in items if i is not None])

    def tuple(self, meta, *items):
        return ast.TupleExpr(self._span(meta), [i for i in items if i is not None])

"""Syntax highlighting of poelang programs with Pygments.

    >>> from pygments import highlight
    >>> from pygments.formatters import TerminalFormatter
    >>> print(highlight('x ~ flux(prompt="a cat")', PoeLexer(), TerminalFormatter()))  # doctest: +SKIP

The tokens come from the grammar's own lexer (:func:`poelang.syntax.tokens.scan`);
this module only decides what each one is in its place: a name bound by its
statement, a keyword argument, a setting, an expert, a builtin. The lexer is
registered under the ``pygments.lexers`` entry point as ``poelang`` (aliases
``poe``), so ``pygmentize -l poe file.poe`` works once the package is
installed. Builtins and registered experts are looked up when text is lexed,
so experts of plugins are highlighted too. Importing this module never imports torch.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

from pygments.lexer import Lexer
from pygments.token import (
    Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace, _TokenType,
)

__all__ = ["PoeLexer", "builtin_names", "expert_names", "setting_names", "SPECIAL_NAMES"]

SPECIAL_NAMES = ("exp",)  # exp(reward): a function the checker handles itself

# Token types for parts that have no standard Pygments name; styles fall back
# to the parent (a unit is coloured like its number).
Unit = Number.Unit
Setting = Name.Property

_KEYWORDS = {"IMPORT": Keyword.Namespace, "AS": Keyword.Namespace, "GIVEN": Operator.Word, "WITH": Keyword,
             "SAVE": Keyword, "TO": Keyword, "PARAM": Keyword, "TRUE": Keyword.Constant, "FALSE": Keyword.Constant,
             "NONE": Keyword.Constant}
_PUNCTUATION = {"COMMA", "DOT"}


@functools.lru_cache(maxsize=1)
def builtin_names() -> frozenset[str]:
    """Builtin value functions (`box`, `blur`, …) and `exp`."""
    try:
        from poelang.experts.registry import default_registry

        builtins = default_registry().builtins
    except Exception:  # pragma: no cover - highlighting must never fail
        return frozenset(SPECIAL_NAMES)
    return frozenset(builtins) | frozenset(SPECIAL_NAMES)


@functools.lru_cache(maxsize=1)
def expert_names() -> frozenset[str]:
    """Experts of the default registry (the standard library and plugins)."""
    try:
        from poelang.experts.registry import default_registry

        return frozenset(default_registry().names())
    except Exception:  # pragma: no cover - a broken plugin must not break highlighting
        return frozenset()


@functools.lru_cache(maxsize=1)
def setting_names() -> frozenset[str]:
    """Names allowed in `with { ... }` blocks of samples (and `fps` of saves)."""
    try:
        from poelang.graph import SETTING_NAMES
    except Exception:  # pragma: no cover
        return frozenset({"fps"})
    return frozenset(SETTING_NAMES) | {"fps"}


class PoeLexer(Lexer):
    """Lexer for poelang (`.poe`) programs."""

    name = "poelang"
    aliases = ["poe", "poelang"]
    filenames = ["*.poe"]
    mimetypes = ["text/x-poelang"]
    url = "https://github.com/poelang/poelang"

    def get_tokens_unprocessed(self, text: str) -> Iterator[tuple[int, Any, str]]:  # type: ignore[override]
        from poelang.syntax import tokens as T

        scanned = T.scan(text)
        stack: list[tuple[str, bool]] = []  # open brackets: (kind, is a `with {` block)
        prev: Any = None  # the previous significant token
        for i, tok in enumerate(scanned):
            if tok.kind == T.CONTINUATION:
                backslash = tok.text.rstrip("\r\n")
                yield tok.start, Punctuation, backslash
                yield tok.start + len(backslash), Whitespace, tok.text[len(backslash):]
                continue
            if tok.kind in (T.SPACE, T.NEWLINE):
                yield tok.start, Whitespace, tok.text
                if tok.kind == T.NEWLINE and not stack:
                    prev = None  # the next token starts a statement
                continue
            if tok.kind == T.COMMENT:
                yield tok.start, Comment.Single, tok.text
                continue
            if tok.kind == "STRING":
                yield from _string(tok)
            elif tok.kind == "NUMBER":
                digits, unit = T.split_number(tok.text)
                yield tok.start, Number.Float if any(c in digits for c in ".eE") else Number.Integer, digits
                if unit:
                    yield tok.start + len(digits), Unit, unit
            elif tok.kind == "NAME":
                yield tok.start, _name(tok.text, prev, _next(scanned, i, bool(stack)), stack), tok.text
            else:
                yield tok.start, _punctuation(tok.kind, prev, stack), tok.text
            prev = tok


def _string(tok: Any) -> Iterator[tuple[int, Any, str]]:
    from poelang.syntax import tokens as T

    yield tok.start, String.Double, '"'
    position = tok.start + 1
    for kind, part in T.string_parts(tok.text[1:-1]):
        yield position, {"text": String.Double, "escape": String.Escape}.get(kind, Error), part
        position += len(part)
    yield position, String.Double, '"'


def _next(scanned: list[Any], i: int, nested: bool) -> str | None:
    """The kind of the next significant token (newlines count only outside brackets)."""
    from poelang.syntax import tokens as T

    for tok in scanned[i + 1:]:
        if tok.kind in (T.SPACE, T.CONTINUATION) or (nested and tok.kind == T.NEWLINE):
            continue
        return str(tok.kind)
    return None


def _name(text: str, prev: Any, following: str | None, stack: list[tuple[str, bool]]) -> _TokenType:
    if prev is not None and prev.kind == "DOT":
        return Name.Attribute
    if prev is not None and prev.kind == "AS":
        return Name.Namespace
    if following == "EQUAL" and stack:
        kind, settings = stack[-1]
        return Setting if settings and text in setting_names() else Name.Attribute
    if following in ("EQUAL", "TILDE") and (prev is None or prev.kind == "PARAM"):
        return Name.Variable
    if text in expert_names():
        return Name.Function
    if text in builtin_names():
        return Name.Builtin
    return Name


def _punctuation(kind: str, prev: Any, stack: list[tuple[str, bool]]) -> _TokenType:
    """Keywords, operators and brackets; a bracket that closes nothing open (or a stray `{`) is an error."""
    from poelang.syntax import tokens as T

    if kind in _KEYWORDS:
        return _KEYWORDS[kind]
    if kind in T.OPENERS:
        if kind == "LBRACE" and (prev is None or prev.kind != "WITH"):
            return Error
        stack.append((kind, kind == "LBRACE"))
        return Punctuation
    if kind in T.CLOSERS:
        if not stack or T.OPENERS[stack[-1][0]] != kind:
            return Error
        stack.pop()
        return Punctuation
    if kind in _PUNCTUATION:
        return Punctuation
    if kind in (T.ERROR, T.OPEN_STRING):
        return Error
    return Operator

"""Tokens of unfinished input, from the grammar's own lexer and LALR parser.

The parser (:mod:`poelang.syntax.parser`) reads whole programs. An editor (the
REPL's completion, the highlighter) must read the text up to the cursor, which
is often unfinished: an open string, an open bracket, half a statement.
:func:`scan` runs Lark's lexer for ``grammar/poelang.lark`` and, where it
stops (an unterminated string, a stray character), records an error token and
goes on, so no terminal of the grammar is restated as a regex elsewhere.
:func:`expected` asks the LALR parser which terminals may come next, as
Preql's autocompletion does. Lark objects go no further than this module.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Iterator

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput

from poelang.syntax import tables
from poelang.syntax.parser import _lark

__all__ = ["Tok", "OPENERS", "CLOSERS", "keywords", "expected", "scan", "split_number", "string_parts"]

# the kinds scan adds to the grammar's terminals
SPACE, CONTINUATION, NEWLINE, COMMENT = "SPACE", "CONTINUATION", "NEWLINE", "COMMENT"
OPEN_STRING = "OPEN_STRING"  # a string whose closing quote is missing (strings end with their line)
ERROR = "ERROR"  # a character no terminal matches

OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
CLOSERS = {v: k for k, v in OPENERS.items()}


@dataclass(frozen=True)
class Tok:
    """A token: its kind (a terminal of the grammar, `NAME`, `WITH`, `LPAR`, … or one of the kinds above),
    its text and its offset in the scanned text."""

    kind: str
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@functools.lru_cache(maxsize=1)
def _lexer() -> Lark:
    # the same grammar without the parser's post-lexer, so that ignored text (spaces, `\` continuations) is kept
    return tables.load()


@functools.lru_cache(maxsize=1)
def _keeping_lexer() -> Any:
    """The lexer that keeps ignored text, built once (Lark.lex(dont_ignore=True) builds it on every call)."""
    return _lexer()._build_lexer(dont_ignore=True)


def _lex(text: str) -> Iterator[Token]:
    from lark.lexer import LexerThread

    return LexerThread.from_text(_keeping_lexer(), text).lex(None)


@functools.lru_cache(maxsize=1)
def keywords() -> dict[str, str]:
    """``{word: terminal}`` for the grammar's keywords (`import`, `with`, `given`, `true`, …)."""
    words = {}
    for terminal in _lexer().terminals:
        if terminal.pattern.type == "str" and terminal.pattern.value.isidentifier():
            words[terminal.pattern.value] = terminal.name
    return words


def scan(text: str) -> list[Tok]:
    """Every piece of `text` as a token, in order; their texts join back to `text`."""
    return list(_scan(text))


def _scan(text: str) -> Iterator[Tok]:
    offset = 0
    while offset < len(text):
        try:
            for token in _lex(text[offset:]):
                yield from _split(token, offset)
            return
        except UnexpectedCharacters as e:
            at = offset + e.pos_in_stream
            if text[at] == '"':  # the rest of the line is an unfinished string
                end = text.find("\n", at)
                end = len(text) if end < 0 else end
                yield Tok(OPEN_STRING, text[at:end], at)
            else:
                end = at + 1
                yield Tok(ERROR, text[at], at)
            offset = end


def _split(token: Token, offset: int) -> Iterator[Tok]:
    """Grammar tokens as Toks; a newline token (which holds comments and indentation) split into its parts."""
    start = offset + (token.start_pos or 0)
    value = str(token)
    if token.type.startswith("__IGNORE"):
        yield Tok(CONTINUATION if "\\" in value else SPACE, value, start)
    elif token.type == "_NL":
        # the grammar's newline token: line breaks, the next line's indentation and whole-line comments;
        # what follows the indentation up to the line break is a comment
        for match in re.finditer(r"(\r?\n)|([ \t\f]+)|([^\r\n]+)", value):
            kind = NEWLINE if match.group(1) else SPACE if match.group(2) else COMMENT
            yield Tok(kind, match.group(0), start + match.start())
    else:
        yield Tok(token.type, value, start)


def significant(tokens: list[Tok]) -> list[Tok]:
    """The tokens the parser sees: no spaces, comments or continuations."""
    return [t for t in tokens if t.kind not in (SPACE, CONTINUATION, COMMENT)]


def expected(tokens: list[Tok]) -> set[str] | None:
    """The terminals the parser accepts after `tokens` (the text before the cursor), or None if they cannot parse.

    Newlines inside `(` and `[` are dropped and runs of newlines merged, as the parser's post-lexer does.
    Only the statement being typed is fed: after a statement's newline the parser is where it starts.
    """
    parser = _lark().parse_interactive("")
    stream = _current_statement([t for t in significant(tokens)])
    stack: list[str] = []
    newline = False
    try:
        for tok in stream:
            if tok.kind in (OPEN_STRING, ERROR):
                return None
            if tok.kind == NEWLINE:
                newline = newline or not stack or stack[-1] == "LBRACE"
                continue
            if newline:
                parser.feed_token(Token("_NL", "\n"))
                newline = False
            if tok.kind in OPENERS:
                stack.append(tok.kind)
            elif tok.kind in CLOSERS and stack:
                stack.pop()
            parser.feed_token(Token(tok.kind, tok.text))
        if newline:
            parser.feed_token(Token("_NL", "\n"))
        return set(parser.accepts())
    except UnexpectedInput:
        return None


def _current_statement(tokens: list[Tok]) -> list[Tok]:
    """The tokens after the last newline outside brackets (one that ends a statement), with that newline."""
    depth, start = 0, 0
    for i, tok in enumerate(tokens):
        if tok.kind in OPENERS:
            depth += 1
        elif tok.kind in CLOSERS:
            depth = max(depth - 1, 0)
        elif tok.kind == NEWLINE and depth == 0:
            start = i
    return tokens[start:]


def split_number(text: str) -> tuple[str, str]:
    """A NUMBER token's digits and unit (`"40%"` → `("40", "%")`)."""
    from poelang.syntax.to_ast import NUMBER_RE

    digits, unit = NUMBER_RE.match(text).groups()  # type: ignore[union-attr]
    return digits, unit or ""


def string_parts(text: str) -> Iterator[tuple[str, str]]:
    """A STRING token's pieces: ("text", …), ("escape", …) and ("bad-escape", …), as :func:`to_ast.unescape` reads them."""
    from poelang.syntax.to_ast import ESCAPE_RE, ESCAPES, EscapeError, code_point

    def known(match) -> bool:
        if match.group(2) is None:
            return match.group(1) in ESCAPES
        try:
            code_point(match.group(2), match.group(0), None)
        except EscapeError:
            return False
        return True

    position = 0
    for match in ESCAPE_RE.finditer(text):
        if match.start() > position:
            yield "text", text[position:match.start()]
        yield ("escape" if known(match) else "bad-escape"), match.group(0)
        position = match.end()
    if position < len(text):
        yield "text", text[position:]

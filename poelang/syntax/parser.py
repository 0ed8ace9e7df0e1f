"""Source text → :class:`~poelang.syntax.ast.Module`, or diagnostics.

The grammar (`grammar/poelang.lark`) is parsed by Lark's LALR parser with
``strict=True``, loaded from tables built ahead (:mod:`poelang.syntax.tables`).
A small post-lexer drops newlines inside brackets and merges blank and comment lines. Lark's exceptions are turned into poelang
diagnostics here and go no further; after a syntax error the parser blanks out
the broken statement and parses again, so one run reports every broken
statement, not only the first. The tree becomes the AST in :mod:`poelang.syntax.to_ast`.
"""
from __future__ import annotations

import functools
import re

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from poelang.diagnostics import UNCLOSED, Diagnostic, Span
from poelang.syntax import ast, tables
from poelang.syntax.to_ast import EscapeError, ToAst

MAX_SYNTAX_ERRORS = 20

_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_TEXT = {"LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "LBRACE": "{", "RBRACE": "}"}


class _BracketError(Exception):
    def __init__(self, message: str, token: Token, opener: Token | None = None, at_end: bool = False):
        super().__init__(message)
        self.token = token
        self.opener = opener
        self.at_end = at_end  # the input ended with the bracket open


class _PostLexer:
    """Ignores newlines inside ( ) and [ ]; merges runs of newlines."""

    always_accept = ("_NL",)

    def process(self, stream):
        stack: list[Token] = []
        pending_newline: Token | None = None
        for token in stream:
            if token.type == "_NL":
                if not stack or stack[-1].type == "LBRACE":
                    pending_newline = pending_newline or token
                continue
            if pending_newline is not None:
                yield pending_newline
                pending_newline = None
            if token.type in _OPENERS:
                stack.append(token)
            elif token.type in _CLOSERS:
                if not stack:
                    raise _BracketError(f"unbalanced '{token.value}': nothing to close", token)
                opener = stack.pop()
                if _OPENERS[opener.type] != token.type:
                    raise _BracketError(
                        f"'{opener.value}' opened at {opener.line}:{opener.column} is closed by '{token.value}'",
                        token,
                        opener,
                    )
            yield token
        if stack:
            opener = stack[-1]
            raise _BracketError(f"unexpected end of file: '{opener.value}' is never closed", opener, opener, at_end=True)
        if pending_newline is not None:
            yield pending_newline


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return tables.load(postlex=_PostLexer())


def parse_module(source: str, file: str = "<string>") -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse one file. Returns the module (None if any syntax error) and diagnostics."""
    diagnostics: list[Diagnostic] = []
    text = source
    for _ in range(MAX_SYNTAX_ERRORS):
        comments: list[Token] = []
        try:
            tree = _parse_with_comments(text, comments)
        except _BracketError as e:
            diagnostics.append(_bracket_diagnostic(e, file))
            return None, diagnostics
        except UnexpectedInput as e:
            diagnostic, line = _unclosed_diagnostic(e, text, file) or _syntax_diagnostic(e, text, file)
            diagnostics.append(diagnostic)
            if line is None:
                return None, diagnostics
            blanked = _blank_statement(text, line)
            if blanked == text:
                return None, diagnostics
            text = blanked
            continue
        if diagnostics:
            return None, diagnostics
        too_deep = _too_deep(tree, file)
        if too_deep is not None:
            return None, [too_deep]
        try:
            statements = ToAst(file).transform(tree)
        except VisitError as e:  # a bad string escape, reported with its span
            if isinstance(e.orig_exc, EscapeError):
                return None, [Diagnostic("error", str(e.orig_exc), e.orig_exc.span)]
            raise
        module_comments = [ast.Comment(str(t), t.line, t.column) for t in comments]
        return ast.Module(file, source, statements, module_comments), []
    return None, diagnostics


MAX_DEPTH = 100  # nesting of operators and calls; every later stage (lowering, fmt, the REPL) recurses on it


def _too_deep(tree: Tree, file: str) -> Diagnostic | None:
    """A diagnostic at the first subtree nested more than MAX_DEPTH levels deep, found without
    recursion (Python's stack is what the limit protects)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            line, col = getattr(meta, "line", 1), getattr(meta, "column", 1)
            return Diagnostic("error", f"expression nested too deeply (more than {MAX_DEPTH} levels of operators, "
                                       "calls or brackets); name its parts with `name = …`",
                              Span(file, line, col, line, col + 1))
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


def _parse_with_comments(text: str, comments: list) -> Tree:
    # Lark's lexer_callbacks are fixed at construction; the COMMENT tokens are
    # recovered from the text instead, which is cheap and keeps _lark() cached.
    tree = _lark().parse(text)
    comments.extend(_scan_comments(text))
    return tree


_COMMENT_OR_STRING = re.compile(r'"([^"\\\n]|\\.)*"|#[^\n]*')


def _scan_comments(text: str) -> list[Token]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _COMMENT_OR_STRING.finditer(line):
            if match.group(0).startswith("#"):
                found.append(Token("COMMENT", match.group(0), line=number, column=match.start() + 1))
                break
    return found


# --- syntax errors -----------------------------------------------------------

_TOKEN_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "_NL": "a newline",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "EQUAL": "'='", "TILDE": "'~'", "STAR": "'*'", "SLASH": "'/'", "PLUS": "'+'",
    "MINUS": "'-'", "CIRCUMFLEX": "'^'", "VBAR": "'|'", "AMPERSAND": "'&'", "BANG": "'!'", "DOT": "'.'",
    "$END": "end of file",
}


def _token_name(kind: str) -> str:
    if kind in _TOKEN_NAMES:
        return _TOKEN_NAMES[kind]
    pattern = _lark().get_terminal(kind).pattern if kind in _lark()._terminals_dict else None
    if pattern is not None and pattern.type == "str":
        return f"'{pattern.value}'"
    return kind.lower()


def _syntax_diagnostic(e: UnexpectedInput, text: str, file: str) -> tuple[Diagnostic, int | None]:
    """The diagnostic for a Lark error, and the line to blank before retrying (None: stop)."""
    if isinstance(e, UnexpectedCharacters):
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        span = Span(file, e.line, e.column, e.line, e.column + 1)
        if char == '"':
            end = text.find("\n", e.pos_in_stream)
            end_col = e.column + ((end if end >= 0 else len(text)) - e.pos_in_stream)
            span = Span(file, e.line, e.column, e.line, max(end_col, e.column + 1))
            return Diagnostic("error", "unterminated string", span), e.line
        return Diagnostic("error", f"unexpected character {char!r}", span), e.line
    assert isinstance(e, UnexpectedToken)
    token = e.token
    if token.type == "$END":
        line = text.count("\n") + 1
        col = len(text) - (text.rfind("\n") + 1) + 1
        return Diagnostic("error", f"unexpected end of file{_expected(e.expected)}", Span(file, line, col, line, col + 1)), None
    shown = _expected(e.expected)
    what = "a newline" if token.type == "_NL" else f"{_token_name(token.type) if token.type not in ('NAME', 'NUMBER', 'STRING') else repr(str(token))}"
    if str(token).isidentifier() and token.type != "NAME":
        what = f"keyword '{token}'"
    if token.type == "_NL":
        message = f"unexpected end of line{shown}"
        span = Span(file, token.line, token.column, token.line, token.column + 1)
    else:
        message = f"unexpected {what}{shown}"
        span = Span(file, token.line, token.column, token.end_line or token.line, token.end_column or token.column + 1)
    return Diagnostic("error", message, span), token.line


_BRACKET_SCAN = re.compile(r'"([^"\\\n]|\\.)*"|#[^\n]*|[()\[\]{}]')


def _unclosed_diagnostic(e: UnexpectedInput, text: str, file: str) -> tuple[Diagnostic, int] | None:
    """A bracket left open runs into the next line, and Lark sees that line's first token
    inside the brackets. Report the bracket, not the token, and blank its statement.

    The bracket is taken as unclosed when the line of the unexpected token starts a
    statement (at column 1), or, for `(` and `[`, when that token is the first of its
    line and the bracket is not closed anywhere after it.
    """
    if not isinstance(e, UnexpectedToken) or e.token.type in ("$END", "_NL"):
        return None
    token = e.token
    pos = token.start_pos
    stack: list[re.Match] = []
    for match in _BRACKET_SCAN.finditer(text, 0, pos):
        char = match.group(0)
        if char in "([{":
            stack.append(match)
        elif char in ")]}" and stack:
            stack.pop()
    if not stack:
        return None
    opener = stack[-1]
    line = text.count("\n", 0, opener.start()) + 1
    if line >= token.line:
        return None
    line_start = text.rfind("\n", 0, pos) + 1
    first_on_line = not text[line_start:pos].strip()
    starts_statement = text[line_start:line_start + 1] not in ("", " ", "\t", "\f", ")", "]", "}", "#")
    if not starts_statement:
        if not (first_on_line and opener.group(0) in "(["):
            return None
        depth = 0  # is the bracket closed somewhere after the token?
        for match in _BRACKET_SCAN.finditer(text, pos):
            char = match.group(0)
            if char in "([{":
                depth += 1
            elif char in ")]}":
                if depth == 0:
                    if _PAIRS[char] == opener.group(0):
                        return None
                    break
                depth -= 1
    col = opener.start() - (text.rfind("\n", 0, opener.start()) + 1) + 1
    here = Span(file, token.line, token.column, token.end_line or token.line, token.end_column or token.column + 1)
    diagnostic = Diagnostic("error", f"'{opener.group(0)}' is never closed", Span(file, line, col, line, col + 1),
                            [("still open here", here)])
    return diagnostic, line


_PAIRS = {")": "(", "]": "[", "}": "{"}


_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MINUS", "BANG", "TRUE", "FALSE", "NONE"}


def _expected(kinds) -> str:
    """`; expected ...` for a short list of expected tokens, or nothing."""
    kinds = set(kinds)
    names = set()
    if {"NAME", "NUMBER", "STRING"} <= kinds:
        kinds -= _EXPRESSION_START
        names.add("an expression")
    names |= {_token_name(k) for k in kinds}
    expected = sorted(names)
    return f"; expected {_join(expected)}" if 0 < len(expected) <= 4 else ""


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _bracket_diagnostic(e: _BracketError, file: str) -> Diagnostic:
    t = e.token
    code = UNCLOSED if e.at_end else ""
    return Diagnostic("error", str(e), Span(file, t.line, t.column, t.line, t.column + len(t.value)), code=code)


def _blank_statement(text: str, line: int) -> str:
    """Replace the statement around `line` with spaces (keeping positions) to parse on."""
    lines = text.split("\n")
    index = min(line, len(lines)) - 1

    def starts_statement(s: str) -> bool:
        return bool(s) and not s[0].isspace() and s[0] not in ")]}#"

    start = index
    while start > 0 and not starts_statement(lines[start]):
        start -= 1
    end = index + 1
    while end < len(lines) and not starts_statement(lines[end]):
        end += 1
    for i in range(start, end):
        lines[i] = " " * len(lines[i])
    return "\n".join(lines)

"""Syntax highlighting of poelang programs with Pygments.

    >>> from pygments import highlight
    >>> from pygments.formatters import TerminalFormatter
    >>> print(highlight('x ~ flux(prompt="a cat")', PoeLexer(), TerminalFormatter()))  # doctest: +SKIP

The lexer is registered under the ``pygments.lexers`` entry point as
``poelang`` (aliases ``poe``), so ``pygmentize -l poe file.poe`` works once
the package is installed. Builtin functions and registered experts are looked
up when text is lexed, so experts of plugins are highlighted too. Importing
this module never imports torch.
"""
from __future__ import annotations

import functools

from pygments.lexer import RegexLexer, bygroups, default, include, words
from pygments.token import (
    Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace,
)

__all__ = ["PoeLexer", "builtin_names", "expert_names", "setting_names", "KEYWORDS", "SPECIAL_NAMES"]

KEYWORDS = ("import", "as", "with", "save", "to", "given", "param")
CONSTANTS = ("true", "false", "none")
SPECIAL_NAMES = ("exp",)  # exp(reward): a function the checker handles itself
UNITS = ("%", "px", "deg")

# Token types for parts that have no standard Pygments name; styles fall back
# to the parent (a unit is coloured like its number).
Unit = Number.Unit
Setting = Name.Property


@functools.lru_cache(maxsize=1)
def builtin_names() -> frozenset[str]:
    """Builtin value functions (`box`, `blur`, …) and `exp`."""
    try:
        from poelang.builtins import BUILTINS
    except Exception:  # pragma: no cover - highlighting must never fail
        return frozenset(SPECIAL_NAMES)
    return frozenset(BUILTINS) | frozenset(SPECIAL_NAMES)


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


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING_START = r'"(?=(?:[^"\\\n]|\\.)*")'  # a quote that is closed on its line
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(%|px|deg)?"


def _number(lexer, match):
    digits, unit = match.group(1), match.group(2)
    kind = Number.Float if any(c in digits for c in ".eE") else Number.Integer
    yield match.start(1), kind, digits
    if unit:
        yield match.start(2), Unit, unit


class PoeLexer(RegexLexer):
    """Lexer for poelang (`.poe`) programs."""

    name = "poelang"
    aliases = ["poe", "poelang"]
    filenames = ["*.poe"]
    mimetypes = ["text/x-poelang"]
    url = "https://github.com/poelang/poelang"

    tokens = {
        "root": [
            # `name =` / `name ~` at the start of a statement binds a name
            (r"^([ \t]*)(" + _NAME + r")([ \t]*)(=|~)",
             bygroups(Whitespace, Name.Variable, Whitespace, Operator)),
            (r"(import)(\s+)", bygroups(Keyword.Namespace, Whitespace), "import"),
            (r"(with)(\s*)(\{)", bygroups(Keyword, Whitespace, Punctuation), "settings"),
            (r"[(\[]", Punctuation, "nested"),
            (r"[)\]}]", Error),
            include("expression"),
        ],
        "import": [
            (r"[ \t]+", Whitespace),
            (_STRING_START, String.Double, "string"),
            (r'"[^\n]*', Error),
            (r"(as)(\s+)(" + _NAME + ")", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            default("#pop"),
        ],
        # inside ( ) and [ ]: newlines are ignored and `name=` is a keyword argument
        "nested": [
            (r"(" + _NAME + r")(\s*)(=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (r"[(\[]", Punctuation, "#push"),
            (r"[)\]]", Punctuation, "#pop"),
            (r"[{}]", Error),
            include("expression"),
        ],
        # `with { name = value, ... }`
        "settings": [
            (r"(" + _NAME + r")(\s*)(=)", bygroups(Setting, Whitespace, Operator)),
            (r"[(\[]", Punctuation, "nested"),
            (r"\}", Punctuation, "#pop"),
            (r"[)\]{]", Error),
            include("expression"),
        ],
        "expression": [
            (r"\n", Whitespace),
            (r"[ \t\f]+", Whitespace),
            (r"\\[ \t\f]*(?=\r?\n)", Punctuation),  # line continuation
            (r"#.*?$", Comment.Single),
            (_STRING_START, String.Double, "string"),
            (r'"[^\n]*', Error),  # an unterminated string: strings end with their line
            (_NUMBER, _number),
            (words(KEYWORDS[:2], suffix=r"\b"), Keyword.Namespace),
            (words(("given",), suffix=r"\b"), Operator.Word),
            (words(("with", "save", "to", "param"), suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (r"(\.)(\s*)(" + _NAME + ")", bygroups(Punctuation, Whitespace, Name.Attribute)),
            (_NAME, Name),
            (r"[~*/+\-^|&!=]", Operator),
            (r"[,.]", Punctuation),
            (r".", Error),
        ],
        "string": [
            (r'\\(u\{[0-9A-Fa-f]{1,6}\}|["\\ntr0])', String.Escape),
            (r"\\.", Error),  # an unknown escape
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            default("#pop"),
        ],
    }

    def get_tokens_unprocessed(self, text, stack=("root",)):
        builtins, experts, settings = builtin_names(), expert_names(), setting_names()
        for index, token, value in super().get_tokens_unprocessed(text, stack):
            if token is Name:
                if value in experts:
                    token = Name.Function
                elif value in builtins:
                    token = Name.Builtin
            elif token is Setting and value not in settings:
                token = Name.Attribute  # an unknown setting (the checker reports it)
            yield index, token, value

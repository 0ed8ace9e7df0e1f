"""What the cursor is in, and what may be typed there: the REPL's completion.

The text before the cursor is read with the grammar's own lexer and LALR
parser (:mod:`poelang.syntax.tokens`): open brackets and the call or
``with { }`` block each belongs to come from the tokens, the keywords offered
are those the parser accepts next, and whether Enter continues the input is
decided by the parser's own diagnostic code (:data:`~poelang.diagnostics.UNCLOSED`).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from poelang.diagnostics import UNCLOSED
from poelang.syntax import tokens as T

__all__ = ["COMMANDS", "ALIASES", "Context", "Frame", "PoeCompleter", "analyze", "is_incomplete", "setting_values"]

COMMANDS: dict[str, tuple[str, str]] = {  # name: (usage, what it does)
    ":help": (":help", "show this help"),
    ":type": (":type NAME|EXPR", "the static type of a binding or an expression"),
    ":graph": (":graph", "print the session's expert graph as JSON"),
    ":dot": (":dot", "print the session's expert graph as Graphviz dot"),
    ":check": (":check", "check the session again and show its diagnostics"),
    ":run": (":run [setting=value ...]", "sample the session's `~` statements (progress on stderr)"),
    ":show": (":show NAME", "write a preview PNG of a value or sample and print its path"),
    ":save": (":save NAME PATH", "write a value or sample to PATH (.png .jpg .gif .mp4 .npy .safetensors)"),
    ":load": (":load FILE", "append the statements of a file"),
    ":list": (":list", "print the session's program text"),
    ":reset": (":reset", "forget every statement"),
    ":quit": (":quit", "leave (also Ctrl-D)"),
}
ALIASES = {":q": ":quit", ":exit": ":quit", ":h": ":help", ":?": ":help", ":t": ":type"}


@dataclass
class Frame:
    """An open bracket: `(`, `[` or `{`."""

    char: str
    call: str | None = None  # `name(`: the function or expert called
    given: set[str] = field(default_factory=set)  # keyword arguments or settings already written
    with_block: bool = False  # `with {`
    save: bool = False  # the `with {` of a save statement


@dataclass
class Context:
    """What surrounds the end of a partial input (the cursor)."""

    stack: list[Frame]
    prefix: str = ""  # the name being typed
    prev: str | None = None  # the significant token before it ("\n" for a separator newline)
    before_prev: str | None = None
    statement: list[str] = field(default_factory=list)  # significant tokens of the statement so far
    in_string: bool = False
    in_comment: bool = False
    expected: set[str] | None = None  # the terminals the parser accepts at the cursor (None: it cannot parse)
    setting: str | None = None  # in a `with { }` block after `name =`: the setting whose value is typed

    @property
    def depth(self) -> int:
        """How many brackets are open."""
        return len(self.stack)

    @property
    def top(self) -> Frame | None:
        """The innermost open bracket, if any."""
        return self.stack[-1] if self.stack else None


def analyze(text: str) -> Context:
    """Read a partial input: open brackets, the word being typed and what precedes it."""
    scanned = T.scan(text)
    ctx = Context([])
    last = scanned[-1] if scanned else None
    ctx.in_string = last is not None and last.kind == T.OPEN_STRING
    ctx.in_comment = last is not None and last.kind == T.COMMENT
    if last is not None and last.kind == "NAME":
        ctx.prefix = last.text
        scanned = scanned[:-1]
    ctx.expected = T.expected(scanned)
    tokens: list[T.Tok] = []  # significant tokens
    for tok in T.significant(scanned):
        if tok.kind == T.NEWLINE:
            if ctx.top is None:
                ctx.statement = []
            if ctx.top is None or ctx.top.char == "{":
                tokens.append(T.Tok(T.NEWLINE, "\n", tok.start))
            continue
        prev = tokens[-1] if tokens else None
        if tok.kind in T.OPENERS:
            ctx.stack.append(_frame(tok, tokens, ctx.statement))
        elif tok.kind in T.CLOSERS:
            if ctx.stack:
                ctx.stack.pop()
        elif tok.kind == "EQUAL" and ctx.top is not None and prev is not None and prev.kind == "NAME":
            ctx.top.given.add(prev.text)
        tokens.append(tok)
        ctx.statement.append(tok.text)
    ctx.prev = tokens[-1].text if tokens else None
    ctx.before_prev = tokens[-2].text if len(tokens) > 1 else None
    if ctx.top is not None and ctx.top.with_block and len(tokens) > 1 and tokens[-1].kind == "EQUAL" \
            and tokens[-2].kind == "NAME":
        ctx.setting = tokens[-2].text
    return ctx


def _frame(opener: T.Tok, tokens: list[T.Tok], statement: list[str]) -> Frame:
    """The bracket `opener` opens after `tokens`: a call's `(` after a name (not an attribute's), or the
    `{` of a `with` block (a save's, when the statement starts with `save`)."""
    prev = tokens[-1] if tokens else None
    frame = Frame(opener.text)
    if opener.kind == "LPAR" and prev is not None and prev.kind == "NAME" and not (
            len(tokens) > 1 and tokens[-2].kind == "DOT"):
        frame.call = prev.text
    if opener.kind == "LBRACE" and prev is not None and prev.kind == "WITH":
        frame.with_block = True
        frame.save = bool(statement) and statement[0] == "save"
    return frame


def is_incomplete(text: str) -> bool:
    """Whether Enter should continue the input on a new line rather than submit it.

    True while a bracket or a `with {` block is open at the end of the input
    (the parser's diagnostic has the code ``unclosed``) or the last line ends
    with a `\\` continuation. Any other early end (`x = 1 +`) cannot be
    completed on a new line, since newlines end statements outside brackets,
    so such an input is submitted and reported.
    """
    stripped = text.strip()
    if not stripped or stripped.startswith(":"):
        return False
    ended = text if text.endswith("\n") else text + "\n"  # the lexer knows a continuation by its line break
    significant = [t for t in T.scan(ended) if t.kind not in (T.SPACE, T.NEWLINE)]
    if significant and significant[-1].kind == T.CONTINUATION:
        return True
    from poelang.syntax.parser import parse_module

    _, diagnostics = parse_module(text, "<input>")
    return any(d.code == UNCLOSED for d in diagnostics)


def setting_values(name: str) -> list[str]:
    """The values a setting allows, as written in a program (`resample` → `none`, `multinomial`, …)."""
    from poelang.graph import SamplerSettings

    info = SamplerSettings.model_fields.get(name)
    if info is None:
        return []
    for check in info.metadata:  # a name checked against a registry (resamplers, kernels) lists its choices
        choices = getattr(getattr(check, "func", None), "choices", None)
        if choices is not None:
            return [str(c) for c in choices()]
    return _values_of(info.annotation)


def _values_of(annotation: Any) -> list[str]:
    if annotation is bool:
        return ["true", "false"]
    if typing.get_origin(annotation) is typing.Literal:
        return [str(v) for v in typing.get_args(annotation)]
    values: list[str] = []
    for arg in typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, _UnionType) else ():
        values += [v for v in _values_of(arg) if v not in values]
    return values


_UnionType = type(int | None)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


class PoeCompleter(Completer):
    """Completes bound names, experts, builtins, keyword arguments, settings, their values and commands.

    `bindings` returns the session's names as ``{name: description}`` (the
    type, shown beside the completion).
    """

    def __init__(self, bindings: Callable[[], Mapping[str, str]] | None = None, registry: Any = None) -> None:
        self._bindings = bindings or (lambda: {})
        self._registry = registry
        self._paths = PathCompleter(expanduser=True)

    def _experts(self) -> dict[str, Any]:
        try:
            if self._registry is None:
                from poelang.experts.registry import default_registry

                self._registry = default_registry()
            return dict(self._registry.experts)
        except Exception:  # a broken plugin must not break the prompt
            return {}

    def _builtins(self) -> dict[str, Any]:
        try:
            self._experts()  # loads the registry
            return dict(self._registry.builtins)
        except Exception:  # a broken plugin must not break the prompt
            return {}

    def _spec(self, name: str | None) -> Any:
        if name is None:
            return None
        return self._experts().get(name) or self._builtins().get(name)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        """prompt_toolkit's entry point: the completions at the cursor (none rather than an error)."""
        try:
            yield from self._completions(document, complete_event)
        except Exception:  # completion must never break the prompt
            return

    def _completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.lstrip().startswith(":"):
            yield from self._command_completions(text.lstrip(), event)
            return
        ctx = analyze(text)
        if ctx.in_string or ctx.in_comment:
            return
        prefix = ctx.prefix
        if ctx.prev == "." and ctx.before_prev is not None:
            yield from self._attribute_completions(ctx.before_prev, prefix)
            return
        top = ctx.top
        if top is not None and top.with_block and ctx.prev in ("{", ",", "\n"):
            yield from self._setting_completions(top, prefix)
            return
        if ctx.setting is not None and not top.save:  # type: ignore[union-attr]
            values = setting_values(ctx.setting)
            if values:
                for value in values:
                    if value.startswith(prefix) and value != prefix:
                        yield Completion(value, -len(prefix), display_meta=f"{ctx.setting} value")
                if ctx.setting != "invert":
                    return
        if top is not None and top.char == "(" and ctx.prev in ("(", ",") and self._spec(top.call) is not None:
            yield from self._argument_completions(top, prefix)
        if prefix or event.completion_requested:
            yield from self._name_completions(prefix, ctx.expected)

    def _command_completions(self, text: str, event: CompleteEvent) -> Iterator[Completion]:
        command, space, rest = text.partition(" ")
        if not space:
            for name, (usage, doc) in COMMANDS.items():
                if name.startswith(command):
                    yield Completion(name, -len(command), display_meta=f"{usage}: {doc}")
            return
        command = ALIASES.get(command, command)
        if command in (":type", ":show", ":save"):
            ctx = analyze(rest)
            if ctx.prev is None:
                yield from self._name_completions(ctx.prefix, None, callables=command == ":type")
        elif command == ":load":
            yield from self._paths.get_completions(Document(rest.lstrip()), event)

    def _attribute_completions(self, owner: str, prefix: str) -> Iterator[Completion]:
        bindings = self._bindings()
        qualified = [n.split(".", 1)[1] for n in bindings if n.startswith(owner + ".")]
        if qualified:
            for name in sorted(qualified):
                if name.startswith(prefix):
                    yield Completion(name, -len(prefix), display_meta=bindings.get(f"{owner}.{name}", ""))
            return
        from poelang.builtins import SIMULATION_ATTRIBUTES

        for name in SIMULATION_ATTRIBUTES:
            if name.startswith(prefix):
                yield Completion(name, -len(prefix), display_meta="attribute of a simulation")

    def _setting_completions(self, frame: Frame, prefix: str) -> Iterator[Completion]:
        if frame.save:
            names: Iterable[str] = ("fps",)
        else:
            from poelang.graph import SETTING_NAMES

            names = SETTING_NAMES
        for name in names:
            if name.startswith(prefix) and name not in frame.given:
                meta = "frames per second of a saved video" if name == "fps" else _setting_doc(name)
                yield Completion(name, -len(prefix), display_meta=meta)

    def _argument_completions(self, frame: Frame, prefix: str) -> Iterator[Completion]:
        spec = self._spec(frame.call)
        for param in spec.params:
            if param.name.startswith(prefix) and param.name not in frame.given:
                meta = param.describe() + (f" — {param.doc}" if param.doc else "")
                yield Completion(f"{param.name}=", -len(prefix), display=f"{param.name}=", display_meta=meta)

    def _name_completions(self, prefix: str, expected: set[str] | None, *,
                          callables: bool = True) -> Iterator[Completion]:
        """Names; and the keywords the parser accepts here (`expected`), once a word is begun."""
        candidates: list[tuple[str, str]] = []
        bindings = self._bindings()
        candidates += [(n, str(bindings[n])) for n in sorted(bindings) if "." not in n]
        if callables:
            for name, spec in sorted(self._experts().items()):
                candidates.append((name, f"{spec.kind} expert: {_first_line(spec.doc)}"))
            for name, spec in sorted(self._builtins().items()):
                candidates.append((name, _first_line(spec.doc)))
            candidates.append(("exp", "exp(reward): a reward as the factor exp(reward)"))
        if prefix and expected:
            candidates += [(word, "keyword") for word, terminal in T.keywords().items() if terminal in expected]
        seen: set[str] = set()
        for name, meta in candidates:
            if name.startswith(prefix) and name not in seen and name != prefix:
                seen.add(name)
                yield Completion(name, -len(prefix), display_meta=meta)


def _setting_doc(name: str) -> str:
    from poelang.graph import SamplerSettings

    info = SamplerSettings.model_fields[name]
    doc = info.description or ""
    default = info.default
    return (f"default {default!r}" + (f" — {doc}" if doc else "")) if default is not None else doc

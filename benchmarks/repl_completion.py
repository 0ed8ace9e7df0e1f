"""REPL responsiveness: completing at the cursor against checking the same input.

Completion reads the text before the cursor with the grammar's own lexer and
LALR parser on every keystroke (complete_while_typing); the check runs once,
when an input is submitted. The ratio says what a keystroke costs relative to
a submit, for inputs of growing length.

    python benchmarks/repl_completion.py [--repeat 20]
"""
from __future__ import annotations

import argparse
import time

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

import poelang
from poelang.repl import PoeCompleter, Repl

STATEMENT = 'm{i} = blur(box_mask(box(10%, 10%, 50%, 50%), size=(64, 64)), 2px)\n'
CURSOR = "x ~ gaussian(mean=[0.0, 0.0]) * exp(quadratic(center=[1.0, 1.0])) with {\n  particles = 8, resample = "


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    repl = Repl()
    completer = PoeCompleter(repl.bindings)
    event = CompleteEvent(completion_requested=True)
    print(f"{'lines before cursor':>20} {'complete ms':>12} {'check ms':>10} {'ratio':>7}")
    for lines in (0, 5, 20):
        text = "".join(STATEMENT.format(i=i) for i in range(lines)) + CURSOR
        document = Document(text)
        list(completer.get_completions(document, event))  # warm the caches (registry, grammar)
        complete = best_of(args.repeat, lambda: list(completer.get_completions(document, event)))
        program = text + "systematic\n}\n"
        check = best_of(args.repeat, lambda: poelang.parse(program))
        print(f"{lines:>20} {complete * 1e3:>12.2f} {check * 1e3:>10.2f} {complete / check:>7.2f}")


if __name__ == "__main__":
    main()

"""``python -m poelang.repl [FILE ...]``: the same as ``poelang repl``."""
import sys

from poelang.repl.prompt import main

raise SystemExit(main(sys.argv[1:]))

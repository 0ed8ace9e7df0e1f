"""`python -m poelang` is the `poelang` command."""
import sys

from poelang.cli import main

sys.exit(main())

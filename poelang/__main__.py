"""`python -m poelang` is the `poelang` command."""
from poelang._entry import console_main

console_main()

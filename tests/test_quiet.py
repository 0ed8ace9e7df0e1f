"""A normal run is quiet: no warning from poelang's own code, progress only on stderr."""
from __future__ import annotations

import warnings


def test_loading_the_mini_judges_raises_no_warning():
    from stdlib_experts.mini import judges

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        judges.MiniVQA(vocab=8)

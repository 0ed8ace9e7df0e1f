"""The examples of docs/language.md: ```poe blocks check clean, ```poe-error
blocks are rejected with the diagnostic quoted after them. The expert pages'
(docs/experts/*.md) ```poe blocks check clean too."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import poelang

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(poe|poe-error)\n(.*?)```\n(?:\n    (error: [^\n]*))?", re.S)
BLOCKS = [(m.group(1), m.group(2), m.group(3), DOC[: m.start()].count("\n") + 1) for m in BLOCK.finditer(DOC)]


def test_the_doc_has_examples():
    kinds = [k for k, *_ in BLOCKS]
    assert kinds.count("poe") >= 5 and kinds.count("poe-error") >= 5


@pytest.mark.parametrize("kind,text,expected,line", BLOCKS, ids=[f"line{b[3]}" for b in BLOCKS])
def test_doc_example(kind, text, expected, line):
    program = poelang.parse(text, f"docs/language.md:{line}")
    if kind == "poe":
        assert program.ok, program.render_diagnostics()
    else:
        assert not program.ok
        assert expected is not None, "a poe-error block must be followed by the expected diagnostic"
        assert any(expected.removeprefix("error: ") in d.message for d in program.errors), program.render_diagnostics()


EXPERT_PAGES = sorted((ROOT / "docs" / "experts").glob("*.md"))


@pytest.mark.parametrize("page", EXPERT_PAGES, ids=[p.stem for p in EXPERT_PAGES])
def test_expert_page_examples_check(page):
    text = page.read_text(encoding="utf-8")
    blocks = [(m.group(1), text[: m.start()].count("\n") + 2) for m in re.finditer(r"```poe\n(.*?)```", text, re.S)]
    assert blocks, "an expert page shows at least one program"
    for block, line in blocks:
        program = poelang.parse(block, f"docs/experts/{page.name}:{line}")
        assert program.ok, program.render_diagnostics()


def test_readme_tutorial_programs_check():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```poe\n(.*?)```", readme, re.S):
        program = poelang.parse(block)
        assert program.ok, program.render_diagnostics()


def test_readme_says_which_programs_need_the_world_extra():
    """The README's `[world]` note names exactly the shipped programs that use genesis-world's builtins."""
    from poelang.stdlib.scene_builtins import BUILTINS

    world = {spec.name for spec in BUILTINS}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    note = readme[readme.index("**The `[world]` extra**"):]
    note = note[: note.index("\n- ")]
    needs_world = set()
    for path in sorted((ROOT / "programs").rglob("*.poe")):
        program = poelang.load(path)
        assert program.ok, program.render_diagnostics()
        if any(v.op in world for v in program.graph.values):
            needs_world.add(path.relative_to(ROOT / "programs").as_posix())
    assert "quickstart.poe" not in needs_world and "video/simulate_ball.poe" in needs_world
    for name in needs_world:
        folder, file = name.split("/")
        named = f"programs/{folder}/*" in note or (file in note and f"programs/{folder}" in note)
        assert named, f"{name} needs [world] but the README does not say so"

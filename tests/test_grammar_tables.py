"""The shipped LALR tables (`grammar/poelang.tables`) are current and parse exactly as the grammar does."""
from __future__ import annotations

import ast
from pathlib import Path

import lark
import pytest
from lark.exceptions import UnexpectedInput

from poelang.syntax import tables
from poelang.syntax.parser import _BracketError, _PostLexer

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = [p for p in sorted(ROOT.glob("programs/**/*.poe")) + sorted(ROOT.glob("tests/golden/errors/**/*.poe"))
            if p.is_file()]
BROKEN = [
    "x = (1,\n", "x ~ a * * b\n", "save x to\n", "x = [1, 2}\n", "y = f(a=1 b=2)\n", "with { levels = 2 }\n",
    "x ~ a with {\n  levels = 3\n", "\"open string\n", "x = 1 2\n", "import \"a.poe\" as\n", "x = a[\n", "@\n",
]


def _stored() -> dict:
    return ast.literal_eval(tables.TABLES_PATH.read_text(encoding="utf-8").partition("\n")[2])


def test_tables_were_made_from_this_grammar():
    assert _stored()["grammar_sha256"] == tables.grammar_sha256(), "run: python -m poelang.syntax.tables"


def test_tables_are_what_this_lark_builds():
    if _stored()["lark"] != lark.__version__:
        pytest.skip(f"tables made by Lark {_stored()['lark']}, Lark {lark.__version__} installed: the parser is "
                    "built from the grammar (correct, slower); run: python -m poelang.syntax.tables")
    assert tables.serialize() == tables.TABLES_PATH.read_text(encoding="utf-8")


def _outcome(parser: lark.Lark, text: str):
    try:
        return parser.parse(text)
    except UnexpectedInput as e:
        return type(e).__name__, e.line, e.column, sorted(getattr(e, "expected", None) or [])
    except _BracketError as e:
        return "bracket", str(e)


def test_the_loaded_parser_reads_every_program_as_the_grammar_does():
    assert len(PROGRAMS) > 100
    loaded, built = tables.load(postlex=_PostLexer()), tables.build(postlex=_PostLexer())
    assert loaded.source_path == "<deserialized>"  # the tables, not a silent rebuild
    for text in [p.read_text(encoding="utf-8") for p in PROGRAMS] + BROKEN:
        assert _outcome(loaded, text) == _outcome(built, text), text


def test_stale_or_damaged_tables_fall_back_to_the_grammar(tmp_path, monkeypatch):
    stale = _stored() | {"grammar_sha256": "0" * 64}
    for content in ["# header\n" + repr(stale), "# header\n{'data': __import__('os')}", "", "# header\n[1, 2"]:
        path = tmp_path / "poelang.tables"
        path.write_text(content, encoding="utf-8")
        monkeypatch.setattr(tables, "TABLES_PATH", path)
        assert not tables.is_current()
        parser = tables.load()
        assert parser.source_path != "<deserialized>"
        assert parser.parse("x = 1\n").data == "start"

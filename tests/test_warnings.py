"""Warnings do not stop a program, and say what is odd."""
import poelang


def test_unused_binding_is_a_warning():
    program = poelang.parse("a = gaussian(mean=[0.0])\nb = 3\nx ~ gaussian(mean=[1.0])\n", "w.poe")
    assert program.ok
    assert [str(d) for d in program.diagnostics] == [
        "w.poe:1:1: warning: 'a' is defined but never used",
        "w.poe:2:1: warning: 'b' is defined but never used",
    ]


def test_missing_input_file_is_a_warning_at_check_time():
    program = poelang.parse('bg = load_image("nowhere.png", size=(8, 8))\nx ~ flux_fill(image=bg, size=(8, 8))\n', "w.poe")
    assert program.ok
    assert any("file not found: nowhere.png" in d.message for d in program.diagnostics)

"""The REPL (driven through prompt_toolkit's pipe input) and the Pygments lexer."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String

from poelang.experts.registry import default_registry
from poelang.highlight import PoeLexer
from poelang.repl import PoeCompleter, Repl, analyze, is_incomplete, main, session_environment

MASK = "m = blur(box_mask(box(10%, 10%, 50%, 50%), size=(64, 64)), 2px)"
ENTER = "\r"
CTRL_C = "\x03"
CTRL_D = "\x04"

if default_registry().get("gaussian") is not None:
    EXPERT = "g = gaussian(mean=[0.0, 0.0])"
    # the same expert typed over two lines, inside the call's parentheses
    EXPERT_LINES = ["g = gaussian(", "mean=[0.0, 0.0])"]
    EXPERT_NAME, EXPERT_PARAM = "gaussian", "mean"
else:  # pragma: no cover - while the analytic experts are not registered
    EXPERT = 'g = flux(prompt="a cat", size=(64, 64))'
    EXPERT_LINES = ['g = flux(prompt="a cat",', "size=(64, 64))"]
    EXPERT_NAME, EXPERT_PARAM = "flux", "prompt"


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def drive(*lines: str, argv: tuple[str, ...] = ("--no-history",), end: str = ":quit" + ENTER) -> tuple[int, str]:
    """Type `lines` (each followed by Enter) into a fresh REPL; return (exit status, what it printed)."""
    keys = "".join(line + ENTER for line in lines) + end
    out = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        status = main(["--no-banner", *argv], input=pipe, output=DummyOutput(), stdout=out)
    return status, out.getvalue()


def graph_json(output: str) -> dict:
    """The JSON document `:graph` printed (it starts with a line holding only `{`)."""
    start = output.index("{\n") if output.startswith("{\n") else output.index("\n{\n") + 1
    document, _ = json.JSONDecoder().raw_decode(output[start:])
    return document


# --- the session ---------------------------------------------------------------


def test_declare_step_by_step_and_type():
    status, out = drive(MASK, EXPERT, ":type m", ":type g")
    assert status == 0
    assert "m: Mask[64,64]" in out
    assert "g: Expert[" in out
    assert "error" not in out
    # unused names are not warned about in the REPL
    assert "never used" not in out


def test_graph_contains_the_bindings():
    status, out = drive(MASK, EXPERT, ":graph")
    assert status == 0
    graph = graph_json(out)
    assert "m" in [v["id"] for v in graph["values"]]
    assert [e["id"] for e in graph["experts"]] == ["g"]
    assert graph["experts"][0]["expert"] == EXPERT_NAME


def test_dot_and_check():
    status, out = drive(MASK, ":dot", ":check")
    assert status == 0
    assert out.splitlines()[0] == "digraph poelang {"
    assert '"m"' in out
    assert "ok: 1 statement" in out


def test_multiline_call_and_with_block():
    # Enter inside the open parenthesis and the open `with {` continues the statement
    status, out = drive(*EXPERT_LINES, "x ~ g with {", "particles = 2", "levels = 3", "}",
                        ":graph", ":list", ":type x")
    assert status == 0
    assert "error" not in out
    graph = graph_json(out)
    sample = graph["samples"][0]
    assert sample["id"] == "x"
    assert sample["settings"]["particles"] == 2 and sample["settings"]["levels"] == 3
    listing = out[out.rindex("x ~ g with {") - 200:]
    assert EXPERT_LINES[0] in listing and "particles = 2" in listing
    assert "x: " in out


def test_error_is_reported_and_dropped():
    status, out = drive(MASK, "y = nosuch(m)", "k = 2", ":type y", ":type k", ":list")
    assert status == 0
    assert "error: unknown function or expert 'nosuch'" in out
    assert "y = nosuch(m)" in out  # the excerpt under the message
    assert "unknown name 'y'" in out
    assert "k: Number" in out
    listing = out[out.rindex(MASK):]
    assert "nosuch" not in listing and "k = 2" in listing


def test_type_error_keeps_previous_bindings():
    status, out = drive(MASK, "m = blur(m, nope)", ":type m")
    assert status == 0
    assert "undefined name 'nope'" in out
    assert "m: Mask[64,64]" in out


def test_rebinding_replaces_the_definition_and_its_users_follow():
    status, out = drive(EXPERT, "x ~ g with { particles = 2 }", "g = gaussian(mean=[1.0, 2.0])", ":graph", ":list")
    assert status == 0 and "error" not in out
    assert "g rebound; x now uses it" in out
    graph = graph_json(out)
    [expert] = graph["experts"]
    assert expert["id"] == "g" and graph["samples"][0]["factors"][0]["expert"] == "g"
    assert "1.0" in json.dumps(expert["args"]) and "2.0" in json.dumps(expert["args"])
    listing = out[out.rindex("x ~ g"):]
    assert "mean=[0.0, 0.0]" not in out[out.index("g = gaussian(mean=[1.0"):]  # the old definition is gone
    assert listing.count("g = gaussian") == 0 and out.count("g = gaussian(mean=[1.0, 2.0])") == 1


def test_rebinding_puts_statements_in_dependency_order():
    status, out = drive("a = 1", "c = a * 2", "b = 5", "a = b + 1", ":list", ":type c")
    assert status == 0 and "error" not in out
    listing = out[out.index("c = a * 2") - 20:]
    assert listing.index("b = 5") < listing.index("a = b + 1") < listing.index("c = a * 2")
    assert "c: Number" in out
    status, out = drive("a = 1", "b = a + 1", "a = b")
    assert "rebinding 'a' would make it depend on itself" in out


def test_line_numbers_count_from_the_input():
    status, out = drive(MASK, EXPERT, "k = 1", "y = nosuch(m)")
    assert "<input 4>:1:5: error: unknown function or expert 'nosuch'" in out
    status, out = drive(MASK, "z = blur(", "m,", "nope)")
    assert "<input 2>:3:5: error: undefined name 'nope'" in out


def test_diagnostics_carry_stable_codes():
    from poelang.diagnostics import ALREADY_DEFINED, UNCLOSED, UNUSED
    from poelang.program import parse
    from poelang.syntax.parser import parse_module

    assert [d.code for d in parse_module("x = blur(m,", "f")[1]] == [UNCLOSED]
    assert [d.code for d in parse_module("x = 1 +", "f")[1]] == [""]
    assert [d.code for d in parse("a = 1").diagnostics] == [UNUSED]
    assert ALREADY_DEFINED in [d.code for d in parse("a = 1\na = 2\nb = a").diagnostics]
def test_syntax_error_does_not_continue_forever():
    # `x = 1 +` cannot continue on the next line (newlines end statements), so it is reported
    status, out = drive("x = 1 +", "x = 1", ":type x")
    assert status == 0
    assert "error: unexpected end" in out
    assert "x: Number" in out


def test_expression_shows_its_type():
    status, out = drive(MASK, "m", "blur(m, 3px)", ":type !m & m", "blur(m, nope)")
    assert status == 0
    assert "m: Mask[64,64]" in out
    assert "blur(m, 3px): Mask[64,64]" in out
    assert "!m & m: Mask[64,64]" in out
    assert "undefined name 'nope'" in out
    status, out = drive(MASK, ":list")
    assert "blur(m, 3px)" not in out


def test_ctrl_c_clears_the_input():
    status, out = drive(end="x = (1," + CTRL_C + "k = 2" + ENTER + ":list" + ENTER + ":quit" + ENTER)
    assert status == 0
    assert "k = 2" in out and "x = (1" not in out


def test_ctrl_d_exits_with_zero():
    status, out = drive(MASK, end=CTRL_D)
    assert status == 0


def test_quit_ends_the_session():
    status, out = drive(":quit", end="k = 2" + ENTER + ":list" + ENTER + CTRL_D)
    assert status == 0
    assert "k = 2" not in out


def test_reset_help_and_unknown_command():
    status, out = drive(MASK, ":reset", ":type m", ":help", ":grahp")
    assert status == 0
    assert "session cleared" in out
    assert "unknown name 'm'" in out
    assert ":type NAME" in out and ":graph" in out
    assert "unknown command ':grahp' (did you mean ':graph'?)" in out


def test_load_file(tmp_path):
    program = tmp_path / "masks.poe"
    program.write_text("# masks\n" + MASK + "\nn = dilate(m, 1px)\n", encoding="utf-8")
    status, out = drive(f":load {program}", ":type n", f":load {tmp_path / 'missing.poe'}")
    assert status == 0
    assert "loaded 2 statements" in out
    assert "n: Mask[64,64]" in out
    assert "cannot read" in out


def test_files_on_the_command_line_start_the_session(tmp_path):
    program = tmp_path / "start.poe"
    program.write_text(MASK + "\n", encoding="utf-8")
    status, out = drive(":type m", argv=("--no-history", str(program)))
    assert status == 0
    assert "m: Mask[64,64]" in out


VECTOR_SAMPLE = "x ~ gaussian(mean=[3.0, -1.0]) with { particles = 4, levels = 3 }"


def test_run_without_samples_and_run_failures(monkeypatch):
    status, out = drive(MASK, ":run")
    assert "nothing to run" in out

    from poelang.interpreter import Interpreter

    def missing(self, **kwargs):
        raise ImportError("No module named 'poelang.interpreter'")

    monkeypatch.setattr(Interpreter, "run", missing)
    status, out = drive(EXPERT, "x ~ g", ":run", "k = 1", ":type k")
    assert status == 0
    assert "cannot run: No module named 'poelang.interpreter'" in out
    assert "Traceback" not in out and "k: Number" in out

    def broken(self, **kwargs):
        raise RuntimeError("out of memory\nmore detail")

    monkeypatch.setattr(Interpreter, "run", broken)
    status, out = drive(EXPERT, "x ~ g", ":run particles=2")
    assert "run failed: out of memory" in out and "more detail" not in out
    status, out = drive(EXPERT, "x ~ g", ":run particles=0")
    assert "error" in out and "particles" in out and "Traceback" not in out


def test_run_show_and_save_a_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("POELANG_PREVIEW_DIR", str(tmp_path / "previews"))
    opened = tmp_path / "opened.txt"
    viewer = tmp_path / "viewer.py"
    viewer.write_text(f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\n", encoding="utf-8")
    monkeypatch.setenv("POELANG_VIEWER", f"{sys.executable} {viewer}")
    out_npy = tmp_path / "x.npy"
    status, out = drive(MASK, VECTOR_SAMPLE, ":run seed=1", ":show x", ":show m", f":save x {out_npy}", ":show k")
    assert status == 0 and "Traceback" not in out
    assert "x: Tensor 1×2" in out and "final ESS" in out  # the run's summary
    from PIL import Image

    sheet = tmp_path / "previews" / "x.png"
    assert f"{sheet}" in out.splitlines()
    assert Image.open(sheet).size[0] > 100  # a plot of the particles, with axes
    mask = Image.open(tmp_path / "previews" / "m.png")
    assert mask.size == (64, 64) and mask.mode == "L"
    import numpy as np

    assert np.load(out_npy).shape == (1, 2)
    assert f"wrote {out_npy}" in out
    assert "'k' is not a value of the session" in out
    import time

    for _ in range(100):  # the viewer runs in the background
        if opened.exists() and opened.read_text():
            break
        time.sleep(0.05)
    assert opened.read_text() in (str(sheet), str(tmp_path / "previews" / "m.png"))


def test_show_reuses_the_last_run_until_the_session_changes(tmp_path, monkeypatch):
    from poelang.repl.running import Runner

    monkeypatch.setenv("POELANG_PREVIEW_DIR", str(tmp_path))
    monkeypatch.delenv("POELANG_VIEWER", raising=False)
    made = []
    real = Runner._fresh

    def counting(program):
        made.append(program.graph.samples[0].settings.particles)
        return real(program)

    monkeypatch.setattr(Runner, "_fresh", staticmethod(counting))
    status, out = drive(VECTOR_SAMPLE, ":run particles=2", ":show x", f":save x {tmp_path / 'x.npy'}", "k = 1",
                        ":show x")
    assert made == [2, 4]  # the run (2 particles) served :show and :save; a new statement meant a new run
    import numpy as np

    assert np.load(tmp_path / "x.npy").shape == (1, 2)


def test_show_samples_what_it_needs_and_save_refuses_unknown_formats(tmp_path, monkeypatch):
    monkeypatch.setenv("POELANG_PREVIEW_DIR", str(tmp_path))
    monkeypatch.delenv("POELANG_VIEWER", raising=False)
    status, out = drive(VECTOR_SAMPLE, ":show x", f":save x {tmp_path / 'x.txt'}", EXPERT, ":show g")
    assert str(tmp_path / "x.png") in out  # no :run first: :show samples x itself
    assert "unknown output format '.txt'" in out
    assert "'g' is an expert" in out


def test_scripted_mode_runs_inputs_without_a_prompt():
    script = io.StringIO(f"{MASK}\nz = blur(\n  m, 1px)\n:type z\nm\nnosuch(1)\n")
    out = io.StringIO()
    status = main(["--no-banner"], stdout=out, stdin=script)
    assert "z: Mask[64,64]" in out.getvalue() and "m: Mask[64,64]" in out.getvalue()
    assert "unknown function or expert 'nosuch'" in out.getvalue()
    assert status == 1  # one input was refused
    status = main(["--no-banner"], stdout=io.StringIO(), stdin=io.StringIO(MASK + "\n"))
    assert status == 0


def test_poelang_repl_with_a_program_and_piped_input():
    result = subprocess.run([sys.executable, "-m", "poelang", "repl", "programs/quickstart.poe", "--no-banner"],
                            input=':type x\n:type scene\njudge = mini_vqa("a red cube")\n:list\n',
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "loaded 8 statements from programs/quickstart.poe" in result.stdout
    assert "x: Image[32,32]" in result.stdout and "scene: Expert[" in result.stdout
    assert "judge rebound; x now uses it" in result.stdout
    assert "Input is not a terminal" not in result.stderr and "Warning" not in result.stderr
    assert 'judge = mini_vqa("a red cube")' in result.stdout
    help_text = subprocess.run([sys.executable, "-m", "poelang", "repl", "--help"], capture_output=True,
                               text=True, cwd=ROOT, timeout=60).stdout
    assert "--no-history" in help_text and "--script" in help_text


def test_history_file(tmp_path):
    history = tmp_path / "history"
    status, _ = drive(MASK, argv=("--history", str(history)))
    assert status == 0
    assert MASK in history.read_text(encoding="utf-8")


def test_history_file_from_environment(tmp_path, monkeypatch):
    from poelang.repl import default_history_path

    monkeypatch.setenv("POELANG_HISTORY", str(tmp_path / "h"))
    assert default_history_path() == tmp_path / "h"


def test_import_without_torch():
    code = "import sys, poelang.repl, poelang.highlight; poelang.highlight.PoeLexer(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- incompleteness ---------------------------------------------------------------


@pytest.mark.parametrize("text, incomplete", [
    ("x = blur(m,", True),
    ("x = [1, 2", True),
    ("x ~ g with {", True),
    ("x ~ g with {\n  particles = 2\n", True),
    ("x = 1 + \\", True),
    ("x = blur(m, 1px)", False),
    ("x = 1 +", False),  # an error a new line cannot fix
    ("x = (1]", False),
    ('x = "(" # {', False),
    (":graph", False),
    ("", False),
])
def test_is_incomplete(text, incomplete):
    assert is_incomplete(text) is incomplete


def test_analyze_tracks_calls_and_blocks():
    ctx = analyze('x ~ g * flux(prompt="a (", size=(64, 64), gui')
    assert ctx.prefix == "gui" and ctx.prev == ","
    assert ctx.top.call == "flux" and ctx.top.given == {"prompt", "size"}
    ctx = analyze("x ~ g with {\n  particles = 2\n  le")
    assert ctx.top.with_block and not ctx.top.save and ctx.top.given == {"particles"}
    assert analyze('save x to "a.gif" with { ').top.save


# --- completion -----------------------------------------------------------------


@pytest.fixture
def completer():
    repl = Repl(stdout=io.StringIO())
    assert repl.add("hole = box_mask(box(10%, 10%, 50%, 50%), size=(64, 64))")
    assert repl.add(EXPERT)
    return PoeCompleter(repl.bindings)


def complete(completer, text: str, requested: bool = False) -> list[str]:
    event = CompleteEvent(completion_requested=requested)
    return [c.text for c in completer.get_completions(Document(text), event)]


def test_complete_names(completer):
    assert complete(completer, "x = ho") == ["hole"]
    assert "blur" in complete(completer, "x = bl")
    assert "box_mask" in complete(completer, "x = box_")
    assert "flux_fill" in complete(completer, "x = flux_")
    assert "given" in complete(completer, "x = g gi")
    assert "save" in complete(completer, "sa")
    assert complete(completer, "x = ") == []  # nothing unasked on an empty word
    requested = complete(completer, "x = ", requested=True)
    assert "hole" in requested and "g" in requested and EXPERT_NAME in requested


def test_complete_binding_meta_is_its_type(completer):
    [completion] = completer.get_completions(Document("x = ho"), CompleteEvent())
    assert completion.display_meta_text == "Mask[64,64]"
    assert completion.start_position == -2


def test_complete_arguments(completer):
    params = [p.name + "=" for p in default_registry().get(EXPERT_NAME).params]
    assert complete(completer, f"y = {EXPERT_NAME}(") == params
    after_first = complete(completer, f"y = {EXPERT_NAME}({EXPERT_PARAM}=1, ")
    assert after_first == [p for p in params if p != f"{EXPERT_PARAM}="]
    assert complete(completer, "x = blur(hole, ra") == ["radius="]
    assert complete(completer, "x = box_mask(box(1, 2, 3, 4), si")[0] == "size="
    # positional arguments may be bound names
    assert "hole=" not in complete(completer, "x = blur(ho") and "hole" in complete(completer, "x = blur(ho")


def test_complete_settings(completer):
    assert "particles" in complete(completer, "x ~ g with { ")
    assert complete(completer, "x ~ g with { particles = 2, lev") == ["levels"]
    assert "particles" not in complete(completer, "x ~ g with {\n  particles = 2\n  ")
    assert complete(completer, 'save x to "a.mp4" with { ') == ["fps"]
    assert complete(completer, "x ~ g with { particles = ho") == ["hole"]  # a value, not a setting


def test_complete_setting_values(completer):
    values = complete(completer, "x ~ g with { resample = ")
    assert "median" in values and "systematic" in values and "hole" not in values and EXPERT_NAME not in values
    assert complete(completer, "x ~ g with { particles = 2, resample = med") == ["median"]
    assert complete(completer, "x ~ g with {\n  adaptive_temper = ") == ["true", "false"]
    assert complete(completer, "x ~ g with { mcmc = ") == ["auto", "none", "langevin", "mala", "hmc"]


def test_keywords_come_from_the_parser(completer):
    assert "with" in complete(completer, "x ~ g wi")  # after a sample's expression
    assert "with" not in complete(completer, "x = g wi")  # a binding takes no settings
    assert "to" in complete(completer, "save hole t")
    assert "import" in complete(completer, "im") and "true" in complete(completer, "x = tr")


def test_complete_commands_and_nothing_in_strings(completer):
    assert complete(completer, ":gr") == [":graph"]
    assert complete(completer, ":type ho") == ["hole"]
    assert complete(completer, 'x = flux(prompt="bl') == []
    assert complete(completer, "x = 1  # bl") == []


def test_session_environment_types():
    env = session_environment(MASK + "\n" + EXPERT + "\nx ~ g\n")
    assert str(env["m"].val.type) == "Mask[64,64]"
    assert env["g"].kind == "expert" and env["x"].kind == "sample"


# --- the lexer -------------------------------------------------------------------

SAMPLE = '''# a comment
import "common.poe" as c
m = blur(box_mask(box(10%, 10%, 50%, 50%), size=(64, 64)), 2px)
g = flux(prompt="a \\"red\\" ball\\n", size=(64, 64))
x ~ g * (c.depth given g)[m] * exp(2.0 * vqascore("a")) ^ 0.5 with {
    particles = 4, bogus = 1
    resample_times = [0.3, .5]
}
y = !m | m & m
save x to "out.png"
'''


def tokens(text: str) -> list[tuple]:
    return [(t, v) for t, v in PoeLexer().get_tokens(text) if v.strip()]


def test_lexer_round_trips_without_errors():
    toks = list(PoeLexer().get_tokens(SAMPLE))
    assert "".join(v for _, v in toks) == SAMPLE
    assert not [v for t, v in toks if t in Error]


def test_lexer_token_types():
    toks = tokens(SAMPLE)
    expect = [
        (Comment.Single, "# a comment"),
        (Keyword.Namespace, "import"), (Keyword.Namespace, "as"), (Name.Namespace, "c"),
        (Name.Variable, "m"), (Operator, "="), (Name.Builtin, "blur"), (Name.Builtin, "box_mask"),
        (Number.Integer, "10"), (Number.Unit, "%"), (Number.Unit, "px"),
        (Name.Attribute, "size"),
        (Name.Function, "flux"), (Name.Attribute, "prompt"),
        (String.Escape, '\\"'), (String.Escape, "\\n"),
        (Operator, "~"), (Operator, "*"), (Operator.Word, "given"), (Name.Builtin, "exp"),
        (Number.Float, "2.0"), (Name.Function, "vqascore"), (Operator, "^"), (Number.Float, ".5"),
        (Keyword, "with"), (Name.Property, "particles"), (Name.Property, "resample_times"),
        (Name.Attribute, "bogus"),  # not a setting
        (Operator, "!"), (Operator, "|"), (Operator, "&"),
        (Keyword, "save"), (Keyword, "to"), (String.Double, "out.png"),
        (Punctuation, "{"), (Punctuation, "}"), (Punctuation, "("), (Punctuation, "["),
    ]
    for pair in expect:
        assert pair in toks, pair
    assert (Name.Attribute, "depth") in toks  # c.depth
    assert (Name, "g") in toks  # a bound name used


def test_lexer_constants_and_unterminated_string():
    toks = tokens("a = [true, false, none]\nb = \"open\n")
    assert (Keyword.Constant, "true") in toks and (Keyword.Constant, "none") in toks
    assert (Error, '"open') in toks
    assert all(v for _, v in PoeLexer().get_tokens('import "x\nb = "open\n'))  # no empty tokens
    # after an unterminated string the next line lexes normally
    assert (Name.Variable, "c") in tokens('b = "open\nc = 1\n')


def test_lexer_registered_with_pygments():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    try:
        lexer = get_lexer_by_name("poe")
    except Exception:  # pragma: no cover - the package is not installed with its entry points
        pytest.skip("poelang is not installed, so its pygments entry point is not registered")
    assert isinstance(lexer, PoeLexer)
    assert isinstance(get_lexer_for_filename("scene.poe"), PoeLexer)


def test_run_gives_parameters_their_values(monkeypatch):
    from poelang.program import Program

    seen = {}
    real = Program.with_settings

    def spy(self, params=None, **kwargs):
        seen.update(kwargs, params=params)
        return real(self, params=params, **kwargs)

    monkeypatch.setattr(Program, "with_settings", spy)
    status, out = drive('param mean = 1.0', 'x ~ gaussian(mean=[mean, 0.0]) with { levels = 2 }',
                        ':run mean=2.5 particles=2')
    assert seen["typed"] == {"particles": "2"}  # settings as typed, read as --set reads them
    [override] = seen["params"]
    assert (override.name, override.text) == ("mean", "2.5")
    assert "x: Tensor 1×2" in out


def test_run_reports_a_parameter_of_the_wrong_type():
    status, out = drive('param mean = 1.0', 'x ~ gaussian(mean=[mean, 0.0]) with { levels = 2, particles = 2 }',
                        ':run mean=true')
    assert "<:run mean>:1:6: error: parameter 'mean' takes a number (its default is 1), got true" in out
    assert "Traceback" not in out


def test_run_reads_settings_as_set_does_and_load_takes_programs_only(tmp_path):
    """`:run particles=1e999` used to say "got 'inf'" (read as a Python float, written back as a name);
    `:load` of any text file echoed its lines, and of a FIFO blocked."""
    import os

    os.mkfifo(tmp_path / "pipe.poe")
    status, out = drive('x ~ gaussian(mean=[0.0]) with { levels = 2 }', ":run particles=1e999",
                        ":load /etc/passwd", f":load {tmp_path / 'pipe.poe'}")
    assert status == 0
    assert "number 1e999 is too large" in out and "'inf'" not in out
    assert "cannot read /etc/passwd: only .poe programs can be loaded" in out and "/bin/bash" not in out
    assert "pipe.poe: not a regular file" in out

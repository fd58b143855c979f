import os
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.bin.main import available_subcommands, main


def test_help_lists_existing_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    expected = {"prepare", "tokenizer", "cmvn", "info", "train", "average", "decode", "score", "compare",
                "transcribe", "export"}
    assert set(available_subcommands()) == expected
    for name in expected:
        assert f"  {name} " in out
    listed = [line.split()[0] for line in out.split("commands:")[1].strip().splitlines()[:-2] if line.strip()]
    assert listed == list(available_subcommands())  # nothing listed that cannot run


def test_unknown_subcommand_is_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["trian"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("asrkit: unknown command 'trian' (known: prepare")


def test_python_dash_m_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "asrkit", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "usage: asrkit <command>" in out.stdout


# a command that prints inside its own `except OSError` (as compare and transcribe do)
CATCHING = """
import sys
import asrkit.bin.main, asrkit.bin.score

def main(argv):
    try:
        sys.stdout.writelines(f"line {i}\\n" for i in range(100000))
    except OSError as e:
        print(f"asrkit score: {e}", file=sys.stderr)
        return 2

asrkit.bin.score.main = main
asrkit.bin.main.main(["score"])
"""


@pytest.mark.parametrize("args", [["-m", "asrkit", "--help"], ["-m", "asrkit", "score", "--help"],
                                  ["-c", CATCHING]])
def test_output_to_a_reader_that_left_is_exit_141_without_a_traceback(args):
    """`asrkit ... | head`: head exits before the command's output ends; a command's own
    `except OSError` (for a file it could not read) does not take it for its failure."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first write
    try:
        out = subprocess.run([sys.executable, *args], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, check=False)
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (141, "")


def test_readme_shows_the_real_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = readme.split("$ .venv/bin/asrkit --help\n", 1)[1].split("```", 1)[0]
    assert shown == out


def test_an_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    """A Ctrl-C a command does not handle itself (training's second one) ends it with one
    line, not Python's traceback, and the shell's status for SIGINT."""
    import asrkit.bin.score

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(asrkit.bin.score, "main", interrupted)
    with pytest.raises(SystemExit) as exit_:
        main(["score", "--ref", "r", "--hyp", "h"])
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "asrkit score: interrupted\n"


def test_an_interrupt_while_the_command_loads_is_one_line_too(monkeypatch, capsys):
    """Importing a command's module takes a second or two (torch): a Ctrl-C then too."""
    import importlib

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", "exp", "a.wav"])
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "asrkit transcribe: interrupted\n"


@pytest.mark.parametrize("command", ["tokenizer", "score"])
def test_commands_that_need_no_model_start_without_torch(command):
    """torch takes seconds to import: the commands that never run a model do without it."""
    probe = (f"import sys, asrkit.bin.{command}; "
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

"""The `asrkit` command: dispatches `asrkit <subcommand> ...` to a module in asrkit.bin.

Each subcommand module defines `main(argv: list[str]) -> int | None` and a one-line
module docstring used for `asrkit --help`. Modules are imported lazily so that
`asrkit --help` and light subcommands start fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

# name -> module in asrkit.bin; a subcommand is listed only once its module exists.
SUBCOMMANDS = {
    "prepare": "asrkit.bin.prepare",
    "tokenizer": "asrkit.bin.tokenizer",
    "cmvn": "asrkit.bin.cmvn",
    "info": "asrkit.bin.info",
    "train": "asrkit.bin.train",
    "average": "asrkit.bin.average",
    "decode": "asrkit.bin.decode",
    "score": "asrkit.bin.score",
    "compare": "asrkit.bin.compare",
    "transcribe": "asrkit.bin.transcribe",
    "export": "asrkit.bin.export",
}


def available_subcommands() -> dict[str, str]:
    return {n: m for n, m in SUBCOMMANDS.items() if importlib.util.find_spec(m) is not None}


def _summary(module_name: str) -> str:
    spec = importlib.util.find_spec(module_name)
    with open(spec.origin, encoding="utf-8") as f:
        source = f.read()
    for quote in ('"""', "'''"):
        if source.lstrip().startswith(quote):
            return source.lstrip()[3:].split("\n", 1)[0].strip().rstrip(".")
    return ""


def usage() -> str:
    lines = ["usage: asrkit <command> [args...]", "", "commands:"]
    for name, module in available_subcommands().items():
        lines.append(f"  {name:<10} {_summary(module)}")
    lines.append("")
    lines.append("`asrkit <command> --help` shows a command's options.")
    return "\n".join(lines)


class _OutputClosed(Exception):  # not an OSError: commands catch those
    """stdout's reader has left (``asrkit ... | head``)."""


class _Stdout:
    """sys.stdout whose broken pipe is _OutputClosed, so that a command's own ``except
    OSError`` (a file it could not read) does not report it as a failure of its own."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise _OutputClosed from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _OutputClosed from None

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["_stream"], name)  # no recursion before __init__


def main(argv: list[str] | None = None) -> None:
    """Run a subcommand and exit with its status. When the reader of stdout has left
    (``asrkit ... | head``), exit quietly with 141, the shell's status for SIGPIPE."""
    stdout = sys.stdout
    if stdout is not None:  # None: stdout closed (`>&-`); print() then writes nothing
        sys.stdout = _Stdout(stdout)
    try:
        try:
            _run(argv)
        finally:
            if stdout is not None:
                sys.stdout.flush()  # a reader that left shows here, not at the exit
    except _OutputClosed:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # the last flush too
        sys.exit(141)
    finally:
        sys.stdout = stdout


def _run(argv: list[str] | None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    commands = available_subcommands()
    if name not in commands:
        print(f"asrkit: unknown command '{name}' (known: {', '.join(commands)})", file=sys.stderr)
        sys.exit(2)
    try:  # the import too: a command's module may take a second or two (torch)
        status = importlib.import_module(commands[name]).main(rest) or 0
    except KeyboardInterrupt:  # a Ctrl-C the command does not handle (training's second)
        print(f"asrkit {name}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status)

"""Running a command line: parse, dispatch to the chosen sub-command, and turn expected
failures into one line. Shared by ``napari-mr-reparam`` and ``napari-mr-reparam-train``."""

from __future__ import annotations

import argparse
import contextlib
import sys


def positive_ms(text: str) -> float:
    """An argparse type: a positive, finite number of milliseconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def bar_off(args) -> bool | None:
    """tqdm's ``disable`` for a command's progress bars: True with ``--quiet``, else None,
    which tqdm takes as "where the stream is no terminal" (a log file gets no bar updates)."""
    return True if getattr(args, "quiet", False) else None


def input_error(label, exc: BaseException, name: str | None = None) -> str:
    """``error: LABEL: reason`` for one input that failed; a reason that starts with the
    label or the input's file ``name`` (default: the last part of ``label``) does not name
    it twice."""
    from pathlib import Path

    text = str(exc)
    for prefix in (f"{label}: ", f"{name or Path(str(label)).name}: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return f"error: {label}: {text}"


class OneLineErrors(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``error: ... (see PROG --help)``,
    with exit status 2, instead of the usage and the error; its sub-command parsers too."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def command_parser(prog: str, description: str):
    """A command's parser and its sub-command set (each sub-command sets ``func``, which
    :func:`run_cli` runs): ``(parser, subparsers)``. Errors in the command line are one
    line (:class:`OneLineErrors`)."""
    parser = OneLineErrors(prog=prog, description=description)
    return parser, parser.add_subparsers(title="commands", metavar="COMMAND")


#: The ``--device`` option of every command that runs a model.
DEVICE_OPTION = {"default": "auto", "help": "auto (the default: CUDA, then MPS, then CPU), cpu, cuda or mps"}


class _ExamplesFormatter(argparse.HelpFormatter):
    """Help wrapped as argparse wraps it, but for an ``examples:`` section: one command a
    line, as written, to copy."""

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*commands: str) -> dict:
    """A sub-command parser's keywords for an ``examples:`` section at the end of its
    ``--help`` (:class:`_ExamplesFormatter`)."""
    return {"epilog": "examples:\n" + "\n".join(f"  {c}" for c in commands),
            "formatter_class": _ExamplesFormatter}


def run_cli(parser: argparse.ArgumentParser, argv=None, say_errors: bool = True) -> int:
    """Parse ``argv``, run the chosen sub-command, and turn expected failures into one line.

    Sub-commands set ``func`` (taking the parsed namespace, returning an exit status).
    Bad input (``ValueError``, ``FileNotFoundError``, ``FileExistsError``, ``OSError``)
    prints ``error: ...`` on stderr and returns 2, as does running out of memory
    (:func:`out_of_memory`); Ctrl-C returns 130, SIGTERM 143. ``say_errors`` False: the
    same statuses, the lines unsaid (the other processes of a torchrun job, whose first
    says them once).
    """
    if not say_errors:
        import os

        with open(os.devnull, "w") as unsaid, contextlib.redirect_stderr(unsaid):
            return run_cli(parser, argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        with _terminate_as_interrupt():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); what was not finished was not written", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM); what was not finished was not written", file=sys.stderr)
        return 143
    except (ValueError, OSError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        line = out_of_memory(exc)
        if line is None:
            raise  # a fault of the program's own: its traceback is what to report
        print(f"error: {line}", file=sys.stderr)
        return 2


class Terminated(BaseException):
    """Raised where SIGTERM arrives (a job scheduler's stop, ``kill``), so that the clean-up
    of half-written outputs runs as it does for Ctrl-C; not an ``Exception``, which a
    handler of bad input would take for one."""


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises :class:`Terminated` inside the block (in the main thread; elsewhere,
    where no handler can be set, it stops the process as it would)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated

    before = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def out_of_memory(exc: BaseException) -> str | None:
    """The one line for running out of memory (numpy's ``MemoryError``, torch's allocators'
    ``RuntimeError``: "can't allocate memory", "out of memory"), with the block it asked
    for where the message says; None for any other error."""
    import re

    text = str(exc)
    if not (isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    block = f" (a block of {int(asked.group(1)) / 2**20:.0f} MB more was asked for)" if asked else ""
    return (f"out of memory{block}: close other programs, give fewer or smaller inputs (fewer slices, "
            "a crop), or run on a machine with more memory")

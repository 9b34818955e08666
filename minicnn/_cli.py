"""The command lines' shared parts (train, evaluate, detect, export): errors reported as one line (`error: ...`,
exit code 2), argparse types that check their numbers, the device check, and the output directory of a run."""
import argparse
import contextlib
import itertools
import math
import os
import sys
import tempfile
from pathlib import Path

from . import backend, checkpoint, data, distributed

RUN_FILES = ("last.npz", "metrics.csv")  # a directory holding one of these holds a run


class CLIError(Exception):
    """A condition the command line reports as one line, `error: ...`, and stops on (exit code 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error reported as one line (`error: ...`, exit code 2) instead of the usage text."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _checked(cast, ok, expected):
    """An argparse type: `cast(text)`, refused with 'expected ..., got ...' unless `ok(value)`."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


POSITIVE_INT = _checked(int, lambda v: v > 0, "a positive integer")
NON_NEGATIVE = _checked(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
FRACTION = _checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
SEED = _checked(int, lambda v: v >= 0, "an integer >= 0")


def check_device(device):
    """CLIError when `device` is malformed or its backend is not available here."""
    try:
        backend.xp_for(device)
    except (ValueError, RuntimeError) as e:
        raise CLIError(str(e)) from None


def output_dir(args, name):
    """The run's directory, created if need be, and whether this run created it. See the module's docstring."""
    if args.resume and (args.out is None or Path(args.out).resolve() == Path(args.resume).resolve().parent):
        out, created = Path(args.resume).parent, False
    elif args.out is None:
        base = Path("runs") / name
        base.parent.mkdir(parents=True, exist_ok=True)
        for k in itertools.count(1):  # mkdir without exist_ok claims a directory: two runs never share one
            out = base if k == 1 else base.with_name(f"{name}-{k}")
            try:
                out.mkdir()
                break
            except FileExistsError:
                continue
        if out != base:
            print(f"{base} already exists: this run writes to {out}")
        created = True
    else:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise CLIError(f"--out {out} is a file, not a directory")
        held = [n for n in RUN_FILES if (out / n).exists()]
        if held and not args.overwrite:
            raise CLIError(f"--out {out} already holds a run ({', '.join(held)}); pass --overwrite to replace it, "
                           f"--resume {out / 'last.npz'} to continue it, or another --out")
        created = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CLIError(f"cannot create --out {out}: {e.strerror}") from None
    try:  # fail now, not after the first epoch
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        if created:
            out.rmdir()
        raise CLIError(f"cannot write to the output directory {out}: {e.strerror}") from None
    return out, created


# The CLIs' one-line errors: a bad setting, checkpoint or data file; ranks that disagree; a file system that refuses
ONE_LINE_ERRORS = (CLIError, checkpoint.CheckpointError, data.DataError, ValueError, distributed.DistributedError,
                   OSError)


def one_line(e):
    """The one line that reports a ONE_LINE_ERRORS error."""
    if isinstance(e, OSError) and not isinstance(e, ValueError):  # a path that is a file, a full disk...
        return f"{e.strerror or e}: {e.filename}" if e.filename else str(e)
    return str(e)


def one_line_errors(body):
    """body()'s exit code, or 2 with its error as one line on stderr (`error: ...`): ONE_LINE_ERRORS."""
    try:
        return body()
    except ONE_LINE_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def silenced():
    """Nothing printed on stdout or stderr in the block."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield

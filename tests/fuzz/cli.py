"""Fuzz cases: the command line (python -m minicnn.train and minicnn.evaluate), with hypothesis-drawn flags and
values, good and bad, over a directory that already holds a run. For every draw: the exit code is 0 (trained),
1 (the loss diverged) or 2 (refused); a refusal is one line on stderr starting with "error:"; no traceback; and the
earlier run's files are unchanged unless --overwrite named their directory."""
import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import minicnn as mc  # noqa: F401  (before PyTorch: Numba's OpenMP threads sleep between kernels)

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from minicnn import evaluate, train  # noqa: E402
from verdicts import FUZZ  # noqa: E402

SMALL = ["--dataset", "synthetic", "--limit", "64", "--epochs", "1", "--batch-size", "32"]
_earlier = {}


def earlier_run(tmp):
    """A copy in tmp of a finished run (trained once per process): its directory and the bytes of its files."""
    if not _earlier:
        out = Path(tempfile.mkdtemp()) / "earlier"
        assert train.main(["lenet", *SMALL, "--out", str(out), "--no-progress"]) == 0
        _earlier["out"] = out
    copy = shutil.copytree(_earlier["out"], tmp / "earlier")
    return copy, {p.name: p.read_bytes() for p in copy.iterdir()}


def numbers(low, high):
    """A value of a numeric flag as the user types it: in range, out of range, or not a number."""
    return st.one_of(st.integers(low, high).map(str), st.sampled_from(["nan", "inf", "-1e9", "1e3", "abc", "", "0"]))


def flags(out, tmp):
    options = {
        "--epochs": numbers(-2, 2), "--batch-size": numbers(-2, 48), "--limit": numbers(-2000, 96),
        "--lr": st.sampled_from(["0.05", "-0.1", "nan", "inf", "1e30", "0"]), "--seed": numbers(-3, 3),
        "--weight-decay": st.sampled_from(["0", "-1e-4", "5e-4", "x"]),
        "--label-smoothing": st.sampled_from(["0", "0.1", "1", "1.5", "-0.1"]),
        "--optimizer": st.sampled_from(["sgd", "adam", "rmsprop", "nesterov", "lbfgs"]),
        "--dataset": st.sampled_from(["synthetic", "synthetic", "cifar10", "imagenet"]),
        "--device": st.sampled_from(["cpu", "cpu", "cuda", "gpu", "cuda:7"]),
        "--out": st.sampled_from([str(out), str(tmp / "new"), str(tmp / "file"), str(tmp / "file" / "below")]),
        "--resume": st.sampled_from([str(out / "last.npz"), str(tmp / "missing.npz"), str(tmp / "file"), str(tmp)]),
        "--data-dir": st.sampled_from([str(tmp), str(tmp / "missing")]),
    }
    switches = st.sampled_from(["--overwrite", "--no-progress", "--no-progress"])
    pair = st.sampled_from(sorted(options)).flatmap(lambda f: options[f].map(lambda v: [f, v]))
    return st.lists(st.one_of(pair, switches.map(lambda s: [s])), max_size=5).map(lambda ps: [x for p in ps for x in p])


def run(main, argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's --help
            code = e.code
    return code, stdout.getvalue(), stderr.getvalue()


@FUZZ
@given(st.data())
def test_cli_train_and_evaluate(data):
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # a run without --out writes to ./runs
        tmp = Path(tmp)
        out, files = earlier_run(tmp)
        (tmp / "file").write_text("a user's file")
        model = data.draw(st.sampled_from(["lenet", "lenet", "lenet5", "resnet9000", ""]), label="model")
        argv = [model] + data.draw(flags(out, tmp), label="flags")
        if not any(f in argv for f in ("--epochs", "--limit")):  # keep every draw that trains small
            argv += ["--limit", "64", "--epochs", "1"]
        if "--dataset" not in argv and "--resume" not in argv:
            argv += ["--dataset", "synthetic"]
        code, stdout, stderr = run(train.main, argv + ["--no-progress"])
        assert code in (0, 1, 2), (argv, code, stderr)
        assert "Traceback" not in stdout + stderr, (argv, stderr)
        if code == 2:
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr)
        overwritten = "--overwrite" in argv and str(out) in argv or any(
            argv[i] == "--resume" and argv[i + 1] == str(out / "last.npz") for i in range(len(argv) - 1))
        if not overwritten:
            assert {p.name: p.read_bytes() for p in out.iterdir()} == files, argv
        assert (tmp / "file").read_text() == "a user's file"
        target = data.draw(st.sampled_from([str(out / "last.npz"), str(tmp / "file"), str(tmp), ""]), label="ckpt")
        code, stdout, stderr = run(evaluate.main, [target])
        assert code in (0, 2) and "Traceback" not in stdout + stderr, (target, stderr)

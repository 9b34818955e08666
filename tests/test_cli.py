"""The command lines never lose a run and never show a traceback: existing run directories, concurrent runs, bad
numbers, conflicting --resume flags, damaged checkpoints (non-finite, incomplete, past the epoch's end), bad
output directories, a missing GPU, a full disk and corrupt CIFAR files are each one line on stderr."""
import csv
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import _cli, backend, checkpoint, evaluate, train

QUICK = ["--dataset", "synthetic", "--limit", "64", "--batch-size", "32", "--no-progress", "--lr", "0.05"]
ROOT = Path(minicnn.__file__).parent.parent


def snapshot(directory):
    """{name: (bytes, mtime)} of the files in a directory: what a refused command must leave as it was."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(Path(directory).iterdir())}


def one_error(capsys, *parts):
    """The one stderr line of a refused command, checked to start with 'error: ' and to hold each of `parts`."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.out + captured.err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A directory holding a one-epoch run (last.npz, metrics.csv, curves.png)."""
    out = tmp_path_factory.mktemp("trained")
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the trained run, for tests that change it."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def rewrite(path, meta=None, drop=(), change=None):
    """Rewrite a checkpoint with meta entries replaced, arrays dropped, or arrays changed by `change(arrays)`."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    info = json.loads(str(arrays["__minicnn__"]))
    info["meta"].update(meta or {})
    arrays["__minicnn__"] = np.array(json.dumps(info))
    if change:
        change(arrays)
    np.savez(path, **arrays)


def test_second_run_with_default_out_goes_to_a_fresh_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert train.main(["lenet", *QUICK, "--epochs", "1"]) == 0
    first = snapshot(tmp_path / "runs" / "lenet5")
    assert sorted(first) == ["curves.png", "last.npz", "metrics.csv"]
    capsys.readouterr()
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--seed", "1"]) == 0
    assert "runs/lenet5 already exists: this run writes to runs/lenet5-2" in capsys.readouterr().out
    assert snapshot(tmp_path / "runs" / "lenet5") == first
    info, _, _ = checkpoint.load(tmp_path / "runs" / "lenet5-2" / "last.npz")
    assert info["meta"]["settings"]["seed"] == 1 and sorted(os.listdir("runs")) == ["lenet5", "lenet5-2"]


def test_explicit_out_holding_a_run_is_refused_without_overwrite(run_copy, capsys):
    before = snapshot(run_copy)
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--out", str(run_copy)]) == 2
    one_error(capsys, f"--out {run_copy} already holds a run (last.npz, metrics.csv); pass --overwrite")
    assert snapshot(run_copy) == before
    (run_copy / "last.npz").unlink()  # metrics.csv alone is a run too
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--out", str(run_copy)]) == 2
    one_error(capsys, "already holds a run (metrics.csv)")
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--out", str(run_copy), "--overwrite", "--lr", "0.02"]) == 0
    info, _, _ = checkpoint.load(run_copy / "last.npz")
    assert info["meta"]["settings"]["lr"] == 0.02 and info["meta"]["epoch"] == 1


def test_concurrent_runs_into_one_directory_both_finish(tmp_path):
    """Two runs into one --out (with --overwrite) and two into the default directory, all at once."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "minicnn.train", "lenet", *QUICK, "--epochs", "3", "--limit", "32"]
    shared = tmp_path / "shared"
    procs = [subprocess.Popen(args + extra, cwd=tmp_path, env=dict(env, PYTHONPATH=str(ROOT)), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for extra in (["--out", str(shared), "--overwrite"], ["--out", str(shared), "--overwrite"], [], [])]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0 and "Traceback" not in err, err
    info, sd, _ = checkpoint.load(shared / "last.npz")
    assert info["meta"]["epoch"] == 3 and np.isfinite(sd["features.0.weight"]).all()
    assert sorted(os.listdir(shared)) == ["curves.png", "last.npz", "metrics.csv"]  # no temporary file left
    assert sorted(os.listdir(tmp_path / "runs")) == ["lenet5", "lenet5-2"]
    for d in ("lenet5", "lenet5-2"):
        assert checkpoint.load(tmp_path / "runs" / d / "last.npz")[0]["meta"]["epoch"] == 3


@pytest.mark.parametrize("flag, value, expected", [
    ("--limit", "-1900", "expected a positive integer, got -1900"),
    ("--limit", "0", "expected a positive integer, got 0"),
    ("--limit", "many", "expected a positive integer, got many"),
    ("--epochs", "0", "expected a positive integer, got 0"),
    ("--batch-size", "0", "expected a positive integer, got 0"),
    ("--batch-size", "-8", "expected a positive integer, got -8"),
    ("--lr", "-0.1", "expected a finite number >= 0, got -0.1"),
    ("--lr", "nan", "expected a finite number >= 0, got nan"),
    ("--lr", "inf", "expected a finite number >= 0, got inf"),
    ("--weight-decay", "-0.001", "expected a finite number >= 0, got -0.001"),
    ("--weight-decay=-1e-4", None, "expected a finite number >= 0, got -1e-4"),
    ("--label-smoothing", "1.5", "expected a number in [0, 1], got 1.5"),
    ("--label-smoothing", "-0.1", "expected a number in [0, 1], got -0.1"),
    ("--seed", "-1", "expected an integer >= 0, got -1"),
])
def test_bad_numbers_are_one_line_errors(tmp_path, monkeypatch, capsys, flag, value, expected):
    monkeypatch.chdir(tmp_path)
    assert train.main(["lenet", "--dataset", "synthetic", flag] + ([value] if value else [])) == 2
    flag = flag.split("=")[0]
    one_error(capsys, f"argument {flag}: {expected}")
    assert os.listdir(tmp_path) == []  # nothing created


def test_resume_refuses_conflicting_flags_and_fewer_epochs(run_copy, capsys):
    before, ckpt = snapshot(run_copy), str(run_copy / "last.npz")
    assert train.main(["lenet", "--resume", ckpt, "--lr", "0.1", "--batch-size", "16", "--seed", "3",
                       "--optimizer", "adam", "--label-smoothing", "0.1", "--dataset", "mnist"]) == 2
    one_error(capsys, "--dataset mnist (checkpoint: synthetic)", "--batch-size 16 (checkpoint: 32)",
              "--lr 0.1 (checkpoint: 0.05)", "--optimizer adam (checkpoint: nesterov)",
              "--label-smoothing 0.1 (checkpoint: 0.0)", "--seed 3 (checkpoint: 0)")
    assert train.main(["lenet", "--resume", ckpt, "--limit", "100", "--weight-decay", "0"]) == 2
    one_error(capsys, "--weight-decay 0.0 (checkpoint: 0.0005), --limit 100 (checkpoint: 64)")
    run_copy.joinpath("last.npz").write_bytes(before["last.npz"][0])
    rewrite(run_copy / "last.npz", meta=dict(epoch=2))
    assert train.main(["lenet", "--resume", ckpt, "--epochs", "1"]) == 2
    one_error(capsys, f"--epochs 1 is fewer than the 2 epochs {ckpt} has already trained")
    # the same values as the checkpoint's are allowed; with --epochs equal to the epochs done, nothing is trained
    run_copy.joinpath("last.npz").write_bytes(before["last.npz"][0])
    assert train.main(["lenet", "--resume", ckpt, "--epochs", "1", "--lr", "0.05", "--dataset", "synthetic",
                       "--limit", "64", "--no-progress"]) == 0
    test_acc = float(list(csv.DictReader(open(run_copy / "metrics.csv")))[-1]["test_acc"])
    assert capsys.readouterr().out.strip().endswith(f"test accuracy: {test_acc:.4f}")


def test_checkpoint_step_past_the_epoch_end(run_copy, capsys):
    rewrite(run_copy / "last.npz", meta=dict(step=1000))
    before = snapshot(run_copy)
    assert train.main(["lenet", "--resume", str(run_copy / "last.npz"), "--epochs", "2"]) == 2
    one_error(capsys, "step 1000 is past the end of an epoch (2 batches)")
    assert snapshot(run_copy) == before


def test_non_finite_checkpoint_is_refused_by_evaluate_and_resume(run_copy, capsys):
    def poison(arrays):
        arrays["model/classifier.2.weight"][3, 4] = np.nan
        arrays["model/classifier.2.weight"][0, 0] = np.inf
    rewrite(run_copy / "last.npz", change=poison)
    before, ckpt = snapshot(run_copy), str(run_copy / "last.npz")
    assert evaluate.main([ckpt]) == 2
    one_error(capsys, f"{ckpt} holds non-finite weights: classifier.2.weight has 2 NaN or infinite values of 10080")
    assert train.main(["lenet", "--resume", ckpt, "--epochs", "2"]) == 2
    one_error(capsys, "holds non-finite weights: classifier.2.weight")
    assert snapshot(run_copy) == before


def test_incomplete_checkpoints_are_one_line_errors(run_copy, capsys):
    ckpt, good = run_copy / "last.npz", (run_copy / "last.npz").read_bytes()
    rewrite(ckpt, drop=["model/features.0.bias"])
    assert evaluate.main([str(ckpt)]) == 2
    one_error(capsys, "is damaged: its arrays do not match its header (missing ['model/features.0.bias']")
    assert train.main(["lenet", "--resume", str(ckpt), "--epochs", "2"]) == 2
    one_error(capsys, "missing ['model/features.0.bias']")
    for meta, entry in [({"settings": {"model": "lenet5"}}, "meta/settings/dataset"), ({"running": {}},
                                                                                         "meta/running/loss")]:
        ckpt.write_bytes(good)
        rewrite(ckpt, meta=meta)
        assert train.main(["lenet", "--resume", str(ckpt), "--epochs", "2"]) == 2
        one_error(capsys, f"{ckpt} lacks the entry {entry}")


@pytest.mark.parametrize("args, expected", [
    ([], "no such checkpoint file"), (["garbage"], "is not a minicnn checkpoint"),
    (["empty"], "is not a minicnn checkpoint"), (["dir"], "no such checkpoint file")])
def test_evaluate_bad_paths(tmp_path, capsys, args, expected):
    path = tmp_path / (args[0] if args else "missing.npz")
    if args == ["garbage"]:
        path.write_bytes(b"\x93NUMPY garbage")
    elif args == ["empty"]:
        path.write_bytes(b"")
    elif args == ["dir"]:
        path.mkdir()
    assert evaluate.main([str(path)]) == 2
    one_error(capsys, str(path), expected)


def test_bad_output_directories(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    assert train.main(["lenet", *QUICK, "--out", str(afile)]) == 2
    one_error(capsys, f"--out {afile} is a file, not a directory")
    assert train.main(["lenet", *QUICK, "--out", str(afile / "sub")]) == 2
    one_error(capsys, f"cannot create --out {afile / 'sub'}: Not a directory")
    assert afile.read_text() == "keep me"

    def refuse(*args, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(_cli.tempfile, "mkstemp", refuse)
    assert train.main(["lenet", *QUICK, "--out", str(tmp_path / "ro")]) == 2
    one_error(capsys, f"cannot write to the output directory {tmp_path / 'ro'}: Permission denied")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]  # the directory it made is gone again


def test_missing_gpu(trained, capsys):
    if backend.cuda.is_available():
        pytest.skip("a GPU is available here")
    assert train.main(["lenet", *QUICK, "--device", "cuda", "--out", "/nonexistent/x"]) == 2
    one_error(capsys, "device 'cuda': CuPy or a CUDA GPU is not available")
    assert evaluate.main([str(trained / "last.npz"), "--device", "cuda"]) == 2
    one_error(capsys, "device 'cuda'")
    assert train.main(["lenet", *QUICK, "--device", "tpu"]) == 2
    one_error(capsys, "device: expected 'cpu', 'cuda' or 'cuda:N', got 'tpu'")


def test_full_disk_keeps_the_previous_checkpoint(run_copy, monkeypatch, capsys):
    before = snapshot(run_copy)
    real_savez = checkpoint.np.savez

    def full(f, **arrays):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint.np, "savez", full)
    assert train.main(["lenet", "--resume", str(run_copy / "last.npz"), "--epochs", "2", "--no-progress"]) == 2
    one_error(capsys, f"could not write {run_copy / 'last.npz'}: No space left on device; the previous file is "
                      "unchanged")
    assert snapshot(run_copy) == before  # no temporary file left, nothing changed
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)


def test_corrupt_cifar_stops_the_run(tmp_path, capsys):
    d = tmp_path / "cifar" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (d / name).write_bytes(b"\x80\x02}q\x00(U\x04data")  # a pickle cut short
    out = tmp_path / "out"
    assert train.main(["lenet", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"), "--out", str(out),
                       "--no-progress"]) == 2
    one_error(capsys, "CIFAR-10 data_batch_1 is not a readable batch")
    assert not out.exists()


def test_subprocess_errors_show_no_traceback(run_copy, tmp_path):
    rewrite(run_copy / "last.npz", change=lambda a: a["model/features.0.weight"].fill(np.nan))
    for cmd in (["minicnn.evaluate", str(run_copy / "last.npz")],
                ["minicnn.train", "lenet", "--limit", "-1900", "--dataset", "synthetic"]):
        done = subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True, cwd=tmp_path,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")


def test_first_step_says_kernels_compile(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "_kernels_warm", False)
    args = [a for a in QUICK if a != "--no-progress"]
    assert train.main(["lenet", *args, "--epochs", "1", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("compiling kernels (first run only)") >= 1 and "epoch 1/1" in err
    assert train._kernels_warm is True
    assert train.main(["lenet", *args, "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
    assert "compiling kernels" not in capsys.readouterr().err


def test_written_files_get_the_umask_permissions_not_mkstemps(run_copy):
    """Checkpoints, metrics and figures are written under a temporary name that mkstemp makes owner-only (0o600);
    the file renamed into place has the mode any new file of the user gets (0o666 less the umask)."""
    old = os.umask(0o022)
    try:
        assert train.main(["lenet", "--resume", str(run_copy / "last.npz"), "--epochs", "2", "--no-progress"]) == 0
    finally:
        os.umask(old)
    for name in ("last.npz", "metrics.csv"):
        assert (run_copy / name).stat().st_mode & 0o777 == 0o644

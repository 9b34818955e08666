"""The training CLI: a short run's outputs, bit-identical resume, divergence, Ctrl-C, corrupt checkpoints,
unknown models, and the evaluate command."""
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

import minicnn
from minicnn import checkpoint, evaluate, tasks, train

QUICK = ["--dataset", "synthetic", "--limit", "256", "--batch-size", "32", "--no-progress", "--lr", "0.05"]


def weights(path):
    _, model_sd, optim = checkpoint.load(path)
    return model_sd, optim


def test_short_run_writes_everything(tmp_path, capsys):
    assert train.main(["lenet", *QUICK, "--epochs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: train loss" in out and "epoch 2: train loss" in out
    assert out.strip().splitlines()[-1].startswith("test accuracy: 0.")
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert (tmp_path / "last.npz").exists()
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info, sd, _ = checkpoint.load(tmp_path / "last.npz")
    assert info["meta"]["epoch"] == 2 and "features.0.weight" in sd
    assert evaluate.main([str(tmp_path / "last.npz")]) == 0
    assert capsys.readouterr().out.strip().endswith(f"test accuracy: {float(rows[-1]['test_acc']):.4f}")


def test_resume_is_bit_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main(["lenet", *QUICK, "--epochs", "3", "--out", str(a), "--optimizer", "adam", "--lr", "0.002"]) == 0
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--out", str(b), "--optimizer", "adam", "--lr", "0.002"]) == 0
    assert train.main(["lenet", "--resume", str(b / "last.npz"), "--epochs", "3", "--no-progress"]) == 0
    (wa, oa), (wb, ob) = weights(a / "last.npz"), weights(b / "last.npz")
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    for idx in oa:
        for key in oa[idx]:
            np.testing.assert_array_equal(oa[idx][key], ob[idx][key])
    ra = list(csv.DictReader(open(a / "metrics.csv")))
    rb = list(csv.DictReader(open(b / "metrics.csv")))
    assert [r["test_acc"] for r in ra] == [r["test_acc"] for r in rb]


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    assert train.main(["lenet", *QUICK, "--epochs", "1", "--out", str(tmp_path)]) == 0
    good = (tmp_path / "last.npz").read_bytes()
    real_step, calls = tasks.train_step, []

    def exploding_step(*args, **kw):
        loss, logits = real_step(*args, **kw)
        calls.append(1)
        return (loss * float("nan") if len(calls) > 2 else loss), logits
    monkeypatch.setattr(tasks, "train_step", exploding_step)
    code = train.main(["lenet", "--resume", str(tmp_path / "last.npz"), "--epochs", "2", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "training diverged: the loss is nan at epoch 2, step 3" in err and "last good checkpoint" in err
    assert (tmp_path / "last.npz").read_bytes() == good


def test_corrupt_checkpoint_and_unknown_model_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a checkpoint")
    assert train.main(["lenet", "--resume", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "is not a minicnn checkpoint" in err and len(err.splitlines()) == 1
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    assert evaluate.main([str(tmp_path / "other.npz")]) == 2
    assert "not a minicnn checkpoint (no minicnn header)" in capsys.readouterr().err
    assert train.main(["nosuchnet"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuchnet'" in err and "lenet5" in err


def test_ctrl_c_saves_and_resume_finishes(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "minicnn.train", "lenet", "--dataset", "synthetic", "--epochs", "50", "--no-progress",
           "--batch-size", "16", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=Path(minicnn.__file__).parent.parent)
    lines = []
    for line in proc.stdout:  # wait until a first epoch is done, then press Ctrl-C
        lines.append(line)
        if line.startswith("epoch 1:"):
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted: checkpoint saved to" in rest
    info, _, _ = checkpoint.load(tmp_path / "last.npz")
    assert info["meta"]["epoch"] >= 1
    done = subprocess.run([sys.executable, "-m", "minicnn.train", "lenet", "--resume", str(tmp_path / "last.npz"),
                           "--epochs", str(info["meta"]["epoch"] + 1), "--no-progress"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "test accuracy:" in done.stdout

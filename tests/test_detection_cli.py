"""The detectors from the command line: `python -m minicnn.train yolo_v1|fasterrcnn --dataset ...-detection`
trains with the classification loop's bar, checkpoints and resume, printing mAP@0.5 after each epoch (and in
metrics.csv); `minicnn.evaluate` prints mAP@0.5, mAP@[.5:.95] and images per second; `minicnn.detect` draws the
detections of a checkpoint on an image or on a test canvas. Tiny runs on the shapes data set (no download)."""
import csv
import re

import numpy as np
import pytest

from minicnn import detect, evaluate, tasks, train

QUICK = ["--dataset", "shapes-detection", "--limit", "32", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module", params=["yolo_v1", "fasterrcnn"])
def run_dir(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    assert train.main([request.param, *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    return request.param, out



def test_limit_draws_fresh_canvases_each_epoch():
    """--limit N with a detector: each epoch trains on N canvases it has not seen (epoch e: canvases e N ... (e + 1)
    N - 1 of the whole training split), not the same N again."""
    task = tasks.Detection()
    cfg = dict(dataset="shapes-detection", seed=0, limit=32, batch_size=16)
    train_set, _ = task.datasets(cfg)
    assert len(train_set) == 5000
    loader = task.loader(cfg, train_set)
    assert len(loader) == 2
    images = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        images.append(np.concatenate([x for x, _ in loader]))
    drawn = lambda idx: np.stack([train_set[i][0] for i in idx])  # noqa: E731
    for epoch, got in enumerate(images):  # the same canvases, in the loader's shuffled order
        assert sorted(map(bytes, got)) == sorted(map(bytes, drawn(range(32 * epoch, 32 * (epoch + 1)))))

def test_training_writes_map_per_epoch(run_dir, capsys):
    name, out = run_dir
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert list(rows[0]) == ["epoch", "train_loss", "test_map50", "lr", "seconds"]
    assert 0.0 <= float(rows[0]["test_map50"]) <= 1.0 and np.isfinite(float(rows[0]["train_loss"]))
    assert (out / "last.npz").exists() and (out / "curves.png").exists()


def test_resume_continues_a_detector_run(run_dir, capsys):
    name, out = run_dir
    assert train.main([name, "--resume", str(out / "last.npz"), "--epochs", "2", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"epoch 2: train loss [\d.]+, test mAP@0\.5: [\d.]+", text)
    assert text.strip().splitlines()[-1].startswith("test mAP@0.5: ")
    assert [r["epoch"] for r in csv.DictReader(open(out / "metrics.csv"))] == ["1", "2"]


def test_evaluate_prints_both_maps_and_speed(run_dir, capsys):
    name, out = run_dir
    assert evaluate.main([str(out / "last.npz")]) == 0
    line = capsys.readouterr().out
    assert re.search(r"test mAP@0\.5: [\d.]+; test mAP@\[\.5:\.95\]: [\d.]+; inference: [\d.]+ images/s", line)


def test_detect_draws_on_a_test_canvas_and_an_image_file(run_dir, tmp_path, capsys):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    name, out = run_dir
    picture = tmp_path / "det.png"
    assert detect.main([str(out / "last.npz"), "--out", str(picture)]) == 0
    assert picture.stat().st_size > 0 and "first test canvas of shapes-detection" in capsys.readouterr().out
    assert detect.main([str(out / "last.npz"), "--out", str(picture)]) == 2  # never replaced unasked
    assert "exists; pass --overwrite" in capsys.readouterr().err
    image = tmp_path / "input.png"
    plt.imsave(image, np.random.default_rng(0).random((80, 120, 3)))  # another size, colour: resized, greyed
    assert detect.main([str(out / "last.npz"), str(image), "--out", str(tmp_path / "b.png"), "--invert"]) == 0
    assert "detections" in capsys.readouterr().out


def test_task_and_data_set_must_agree(tmp_path, capsys):
    assert train.main(["lenet", "--dataset", "shapes-detection", "--out", str(tmp_path / "a")]) == 2
    assert "lenet5 is a classifier: train it on one of" in capsys.readouterr().err
    assert train.main(["yolo_v1", "--dataset", "mnist", "--out", str(tmp_path / "b")]) == 2
    assert "yolo_v1 is a detector: train it on one of digits-detection, shapes-detection" in capsys.readouterr().err


def test_detect_refuses_a_classifier(tmp_path, capsys):
    assert train.main(["lenet", "--dataset", "synthetic", "--epochs", "1", "--limit", "64", "--no-progress",
                       "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert detect.main([str(tmp_path / "last.npz"), "--out", str(tmp_path / "x.png")]) == 2
    assert "a classifier: detect needs a detector" in capsys.readouterr().err


@pytest.mark.slow
def test_yolo_learns_the_shapes_end_to_end(tmp_path, capsys):
    """A few hundred steps of YOLO v1 on the shapes data set (250 batches of 16) reach an mAP@0.5 far above chance
    (near 0 for an untrained detector): a broken loss, target encoding or decoder cannot land."""
    assert train.main(["yolo_v1", "--dataset", "shapes-detection", "--limit", "2000", "--epochs", "2",
                       "--batch-size", "16", "--no-progress", "--out", str(tmp_path)]) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(final.split(":")[-1]) > 0.4, final


@pytest.mark.slow
def test_faster_rcnn_learns_the_shapes_end_to_end(tmp_path, capsys):
    """One epoch of Faster R-CNN on the shapes data set (125 batches of 8) reaches an mAP@0.5 far above chance."""
    assert train.main(["fasterrcnn", "--dataset", "shapes-detection", "--limit", "1000", "--epochs", "1",
                       "--batch-size", "8", "--no-progress", "--out", str(tmp_path)]) == 0
    final = capsys.readouterr().out.strip().splitlines()[-1]
    assert float(final.split(":")[-1]) > 0.4, final

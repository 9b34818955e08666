"""What `python -m minicnn.train` trains: a classifier on labelled images, or a detector on images with boxes.

The loop in train.py (progress bar, checkpoints, resume, Ctrl-C, the divergence guard) is the same for both; a
task gives it the rest: its data sets and loader, one optimisation step, the running figures on the bar, the
test metric after each epoch, the columns of metrics.csv and the curves.

- Classification: cross-entropy on (images, labels); running loss and accuracy; test accuracy.
- Detection (torchvision's convention: in training mode `model(images, targets)` returns a dict of named losses,
  summed here; in eval mode `model(images)` returns per image a dict of boxes, scores and labels): the summed
  loss; test mAP@0.5 (PASCAL VOC, minicnn.detection.evaluate) after each epoch, and mAP@[.5:.95] (COCO) from
  `python -m minicnn.evaluate`.

Data parallelism (minicnn.distributed, under mpiexec): the loader gives each rank its shard of every global batch,
the step sums the gradients over the ranks before the optimiser's step (`reduce_gradients`), and evaluation runs
each rank on its shard of the test set and combines the results (`comm`). The gradients are weighted by the images
of each rank's shard: exact for a classifier's mean loss; for a detector, whose losses are means over anchors and
proposals, a close approximation of the one-process gradient.
"""
import time

import numpy as np

import minicnn as mc

from . import backend, data, detection, models
from .functional import cross_entropy

NORMALISE = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,)),
             "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), "synthetic": ((0.5,), (0.25,))}
EVAL_BATCH = 100  # test images per forward pass of a detector


def train_step(model, opt, x, y, label_smoothing=0.0, reduce_gradients=None):
    """One optimisation step of a classifier on a batch already on the model's device; the loss and the logits.
    `reduce_gradients(count)` (data parallelism) runs between backward and the step."""
    logits = model(x)
    loss = cross_entropy(logits, y, label_smoothing=label_smoothing)
    opt.zero_grad()
    loss.backward()
    if reduce_gradients is not None:
        reduce_gradients(len(y))
    opt.step()
    return loss, logits


def detection_step(model, opt, images, targets, reduce_gradients=None):
    """One optimisation step of a detector: the sum of the losses it returns in training mode, and that dict.
    `reduce_gradients(count)` (data parallelism) runs between backward and the step."""
    losses = model(images, targets)
    loss = sum(losses.values())
    opt.zero_grad()
    loss.backward()
    if reduce_gradients is not None:
        reduce_gradients(len(images))
    opt.step()
    return loss, losses


@mc.no_grad()
def accuracy(model, dataset, transform, device, batch_size=500, comm=None):
    """Accuracy of a classifier on a Dataset; with `comm` (a minicnn.distributed communicator) each rank counts
    its shard of the data set and the counts are summed."""
    model.eval()
    correct, part = 0, dataset
    if comm is not None:
        mine = data.loader.shard(len(dataset), comm.rank, comm.size)
        part = data.Dataset(dataset.images[mine], dataset.labels[mine], dataset.num_classes, dataset.name)
    for x, y in data.DataLoader(part, batch_size, transform=transform).batches():
        logits = model(mc.tensor(x, device=device))
        correct += int((logits.data.argmax(axis=1) == backend.to_device(y, device)).sum())
    if comm is not None:
        correct = int(comm.allreduce(np.array([correct], np.float64))[0])
    model.train()
    return correct / len(dataset)


@mc.no_grad()
def detect_all(model, dataset, device, batch_size=EVAL_BATCH):
    """(detections, ground truths, seconds in the model) of a detector over a detection data set, in the form
    minicnn.detection.evaluate takes."""
    model.eval()
    found, truth, seconds = [], [], 0.0
    loader = data.DataLoader(dataset, batch_size, collate_fn=data.detection_collate)
    for images, targets in loader.batches():
        t0 = time.perf_counter()
        out = model(mc.tensor(images, device=device))
        seconds += time.perf_counter() - t0
        found += [{k: backend.to_device(d[k].data, "cpu") for k in ("boxes", "scores", "labels")} for d in out]
        truth += [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
    model.train()
    return found, truth, seconds


class Classification:
    """A classifier of the zoo on a labelled image data set (minicnn.data.load_dataset)."""
    columns = ("train_loss", "train_acc", "test_acc")
    test_metric = "test_acc"

    def datasets(self, cfg):
        train_set, test_set = data.load_dataset(cfg["dataset"], cfg["data_dir"], seed=cfg["seed"])
        return train_set.subset(cfg["limit"]), test_set

    def build(self, cfg, train_set):
        mc.manual_seed(cfg["seed"])
        model = models.create(cfg["model"], num_classes=train_set.num_classes,
                              in_channels=train_set.images.shape[1])
        return model.to(cfg["device"])

    def transform(self, cfg, train):
        mean, std = NORMALISE[cfg["dataset"]]
        steps = [data.Normalize(mean, std)]
        if train and cfg["dataset"] == "cifar10":
            steps = [data.RandomCrop(32, 4), data.RandomHorizontalFlip()] + steps
        return data.Compose(steps)

    def loader(self, cfg, train_set, rank=0, world_size=1):
        """Batches of batch_size images; with world_size > 1, this rank's shard of each (minicnn.data.DataLoader)."""
        return data.DataLoader(train_set, cfg["batch_size"], shuffle=True, seed=cfg["seed"],
                               transform=self.transform(cfg, True), rank=rank, world_size=world_size)

    def running(self):
        """The figures an epoch sums as it goes (saved in a checkpoint taken mid-epoch)."""
        return dict(loss=0.0, correct=0, seen=0, seconds=0.0)

    def step(self, model, opt, batch, cfg, running, reduce_gradients=None):
        """One step; adds its figures to `running` and returns the loss's value."""
        x, y = mc.tensor(batch[0], device=cfg["device"]), mc.tensor(batch[1], device=cfg["device"])
        loss, logits = train_step(model, opt, x, y, cfg["label_smoothing"], reduce_gradients)
        value = loss.item()
        running["loss"] += value * len(y)
        running["correct"] += int((logits.data.argmax(axis=1) == y.data).sum())
        running["seen"] += len(y)
        return value

    def postfix(self, running):
        return dict(loss=f"{running['loss'] / running['seen']:.4f}", acc=f"{running['correct'] / running['seen']:.4f}")

    def train_figures(self, running):
        return dict(train_loss=round(running["loss"] / running["seen"], 6),
                    train_acc=round(running["correct"] / running["seen"], 6))

    def evaluate(self, model, test_set, cfg, comm=None):
        return {"test_acc": round(accuracy(model, test_set, self.transform(cfg, False), cfg["device"], comm=comm), 6)}

    def epoch_line(self, row):
        return f"train loss {row['train_loss']:.4f}, train acc {row['train_acc']:.4f}, test acc {row['test_acc']:.4f}"

    def final_line(self, metrics):
        return f"test accuracy: {metrics['test_acc']:.4f}"

    def plot(self, ax, history):
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
        ax.plot(epochs, [h["test_acc"] for h in history], "s-", label="test")
        ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        ax.legend()


class Detection:
    """A detector of the zoo (yolo_v1, fasterrcnn) on a detection data set (minicnn.data.DETECTION_DATASETS)."""
    columns = ("train_loss", "test_map50")
    test_metric = "test_map50"

    def datasets(self, cfg):
        return data.load_detection_dataset(cfg["dataset"], seed=cfg["seed"])

    def build(self, cfg, train_set):
        mc.manual_seed(cfg["seed"])
        image = train_set[0][0]
        model = models.create(cfg["model"], num_classes=len(train_set.classes), in_channels=image.shape[0])
        return model.to(cfg["device"])

    def loader(self, cfg, train_set, rank=0, world_size=1):
        """Batches of canvases; with --limit N an epoch is N fresh canvases (epoch e: canvases e N to (e + 1) N - 1);
        with world_size > 1, this rank's shard of each batch."""
        size = None if cfg["limit"] is None else min(cfg["limit"], len(train_set))
        return data.DataLoader(train_set, cfg["batch_size"], shuffle=True, seed=cfg["seed"],
                               collate_fn=data.detection_collate, epoch_size=size, rank=rank, world_size=world_size)

    def running(self):
        return dict(loss=0.0, seen=0, seconds=0.0)

    def step(self, model, opt, batch, cfg, running, reduce_gradients=None):
        images, targets = batch
        loss, _ = detection_step(model, opt, mc.tensor(images, device=cfg["device"]), targets, reduce_gradients)
        value = loss.item()
        running["loss"] += value * len(images)
        running["seen"] += len(images)
        return value

    def postfix(self, running):
        return dict(loss=f"{running['loss'] / running['seen']:.4f}")

    def train_figures(self, running):
        return dict(train_loss=round(running["loss"] / running["seen"], 6))

    def evaluate(self, model, test_set, cfg, comm=None):
        """mAP@0.5; with `comm` each rank detects on its shard of the test set and every rank scores them all."""
        if comm is None:
            found, truth, _ = detect_all(model, test_set, cfg["device"])
        else:
            mine = data.loader.shard(len(test_set), comm.rank, comm.size)
            parts = comm.allgather_objects(detect_all(model, [test_set[i] for i in range(len(test_set))[mine]],
                                                      cfg["device"])[:2])
            found, truth = [d for ds, _ in parts for d in ds], [g for _, gs in parts for g in gs]
        return {"test_map50": round(float(detection.evaluate(found, truth)["mAP"]), 6)}

    def epoch_line(self, row):
        return f"train loss {row['train_loss']:.4f}, test mAP@0.5: {row['test_map50']:.4f}"

    def final_line(self, metrics):
        return f"test mAP@0.5: {metrics['test_map50']:.4f}"

    def plot(self, ax, history):
        ax.plot([h["epoch"] for h in history], [h["test_map50"] for h in history], "s-", label="test")
        ax.set(xlabel="epoch", ylabel="mAP@0.5", title="test mAP@0.5 (PASCAL VOC)", ylim=(0, 1))
        ax.legend()


def task_for(model_name):
    """The task of a registered model: Detection for the detectors, Classification otherwise."""
    return Detection() if models.task_of(model_name) == "detection" else Classification()


def check_dataset(task, dataset, model_name):
    """A ValueError when the data set does not suit the task (a classifier on boxes, or a detector on labels)."""
    detecting = isinstance(task, Detection)
    if detecting != (dataset in data.DETECTION_DATASETS):
        kinds = data.DETECTION_DATASETS if detecting else data.DATASETS
        raise ValueError(f"{model_name} is a {'detector' if detecting else 'classifier'}: train it on one of "
                         f"{', '.join(kinds)}, not {dataset}")

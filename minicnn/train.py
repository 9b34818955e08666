"""`python -m minicnn.train MODEL`: train a model of the zoo on a data set, with a progress bar, per-epoch
evaluation, metrics.csv, curves.png and an atomic checkpoint after every epoch; `--resume` continues a run
bit-identically, Ctrl-C saves a checkpoint and exits, a non-finite loss stops the run and keeps the last good
checkpoint.
"""
import argparse
import csv
import signal
import sys
import time
from pathlib import Path

import minicnn as mc  # first: it tunes OpenBLAS's threads before NumPy loads it

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from . import backend, checkpoint, data, models, optim  # noqa: E402
from .functional import cross_entropy  # noqa: E402

# Per-model defaults; a flag given on the command line wins. LeNet-5's reach 99% on MNIST in a few minutes.
DEFAULTS = {
    "lenet5": dict(dataset="mnist", epochs=8, batch_size=64, lr=0.05, optimizer="nesterov", weight_decay=5e-4),
}
GENERIC = dict(dataset="cifar10", epochs=30, batch_size=128, lr=0.1, optimizer="nesterov", weight_decay=5e-4)
NORMALISE = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,)),
             "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), "synthetic": ((0.5,), (0.25,))}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minicnn.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model of the zoo (python -c 'import minicnn; print(minicnn.models.list_models())')")
    p.add_argument("--dataset", choices=data.DATASETS)
    p.add_argument("--data-dir", help="where CIFAR-10 (or another copy of Fashion-MNIST) lies")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", help="output directory (default runs/MODEL)")
    p.add_argument("--resume", help="a checkpoint (DIR/last.npz) to continue from")
    p.add_argument("--limit", type=int, help="train on the first N training images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return p.parse_args(argv)


def settings(args, name):
    """The run's settings: command-line values over the model's defaults."""
    out = dict(DEFAULTS.get(name, GENERIC))
    for key in ("dataset", "epochs", "batch_size", "lr", "optimizer", "weight_decay"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    out.update(model=name, seed=args.seed, label_smoothing=args.label_smoothing, limit=args.limit,
               device=args.device, data_dir=args.data_dir)
    return out


def make_optimizer(params, cfg):
    kind, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if kind in ("sgd", "momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=0.0 if kind == "sgd" else 0.9, nesterov=kind == "nesterov",
                         weight_decay=wd)
    if kind == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=wd)
    return optim.Adam(params, lr=lr, weight_decay=wd)


def train_step(model, opt, x, y, label_smoothing=0.0):
    """One optimisation step on a batch already on the model's device; returns the loss and the logits."""
    logits = model(x)
    loss = cross_entropy(logits, y, label_smoothing=label_smoothing)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss, logits


@mc.no_grad()
def evaluate(model, dataset, transform, device, batch_size=500):
    """Accuracy of `model` on a Dataset."""
    model.eval()
    correct = 0
    for x, y in data.DataLoader(dataset, batch_size, transform=transform).batches():
        logits = model(mc.tensor(x, device=device))
        correct += int((logits.data.argmax(axis=1) == backend.to_device(y, device)).sum())
    model.train()
    return correct / len(dataset)


def _plot(history, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], "o-")
    a.set(xlabel="epoch", ylabel="training loss", title="loss")
    b.plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
    b.plot(epochs, [h["test_acc"] for h in history], "s-", label="test")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    b.legend()
    fig.tight_layout()
    tmp = path.with_name(".curves.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return True


def _write_metrics(history, path):
    tmp = path.with_name(".metrics.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "train_loss", "train_acc", "test_acc", "lr", "seconds"])
        w.writeheader()
        w.writerows(history)
    tmp.replace(path)


class _StopFlag:
    """The first Ctrl-C asks the loop to stop after the current step (a second one interrupts at once)."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def build(cfg, train_set):
    mc.manual_seed(cfg["seed"])
    model = models.create(cfg["model"], num_classes=train_set.num_classes, in_channels=train_set.images.shape[1])
    return model.to(cfg["device"])


def transforms_for(cfg, train):
    mean, std = NORMALISE[cfg["dataset"]]
    steps = [data.Normalize(mean, std)]
    if train and cfg["dataset"] == "cifar10":
        steps = [data.RandomCrop(32, 4), data.RandomHorizontalFlip()] + steps
    return data.Compose(steps)


def run(args):
    name = models.canonical_name(args.model)
    info = model_sd = optim_arrays = None
    if args.resume:
        info, model_sd, optim_arrays = checkpoint.load(args.resume)
        cfg = dict(info["meta"]["settings"])
        if args.epochs is not None:
            cfg["epochs"] = args.epochs
        cfg["device"] = args.device
        if cfg["model"] != name:
            raise checkpoint.CheckpointError(f"{args.resume} holds a {cfg['model']}, not a {name}")
    else:
        cfg = settings(args, name)
    out = Path(args.out or (Path(args.resume).parent if args.resume else Path("runs") / name))
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.npz"

    train_set, test_set = data.load_dataset(cfg["dataset"], cfg["data_dir"], seed=cfg["seed"])
    train_set = train_set.subset(cfg["limit"])
    model = build(cfg, train_set)
    opt = make_optimizer(model.parameters(), cfg)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])
    loader = data.DataLoader(train_set, cfg["batch_size"], shuffle=True, seed=cfg["seed"],
                             transform=transforms_for(cfg, True))
    test_tf = transforms_for(cfg, False)
    epoch, step, history, running = 0, 0, [], dict(loss=0.0, correct=0, seen=0, seconds=0.0)
    if info is not None:
        model.load_state_dict(model_sd)
        checkpoint.restore_optimizer(opt, info, optim_arrays)
        sched.load_state_dict(info["scheduler"])
        sched.T_max = cfg["epochs"]  # --epochs may have grown: the rate is that of a run planned that long
        for group, base in zip(opt.param_groups, sched.base_lrs):
            group["lr"] = sched.lr_at(base, sched.last_epoch)
        meta = info["meta"]
        epoch, step, history, running = meta["epoch"], meta["step"], meta["history"], meta["running"]
        backend.set_rng_state(meta["rng"])
        print(f"resuming {name} from {args.resume}: epoch {epoch + 1}, step {step}")

    def save(epoch, step):
        checkpoint.save(ckpt_path, model, opt, sched, meta=dict(settings=cfg, epoch=epoch, step=step,
                        history=history, running=running, rng=backend.get_rng_state()))

    stop = _StopFlag()
    previous = signal.signal(signal.SIGINT, stop)
    try:
        while epoch < cfg["epochs"]:
            loader.set_epoch(epoch)
            bar = tqdm(total=len(loader), initial=step, desc=f"epoch {epoch + 1}/{cfg['epochs']}", unit="batch",
                       disable=args.no_progress, leave=False, dynamic_ncols=True, mininterval=0.5)
            t0 = time.perf_counter()
            for x, y in loader.batches(start=step):
                xb, yb = mc.tensor(x, device=cfg["device"]), mc.tensor(y, device=cfg["device"])
                loss, logits = train_step(model, opt, xb, yb, cfg["label_smoothing"])
                value = loss.item()
                if not np.isfinite(value):
                    bar.close()
                    kept = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint kept"
                    print(f"training diverged: the loss is {value} at epoch {epoch + 1}, step {step + 1}; stopping "
                          f"({kept}). Try a smaller --lr.", file=sys.stderr)
                    return 1
                step += 1
                running["loss"] += value * len(y)
                running["correct"] += int((logits.data.argmax(axis=1) == yb.data).sum())
                running["seen"] += len(y)
                elapsed = running["seconds"] + time.perf_counter() - t0
                bar.set_postfix(loss=f"{running['loss'] / running['seen']:.4f}",
                                acc=f"{running['correct'] / running['seen']:.4f}",
                                img_s=f"{running['seen'] / max(elapsed, 1e-9):.0f}", refresh=False)
                bar.update(1)
                if stop.requested:
                    running["seconds"] = elapsed
                    bar.close()
                    save(epoch, step)
                    print(f"interrupted: checkpoint saved to {ckpt_path}; continue with "
                          f"python -m minicnn.train {name} --resume {ckpt_path}")
                    return 130
            bar.close()
            seconds = running["seconds"] + time.perf_counter() - t0
            test_acc = evaluate(model, test_set, test_tf, cfg["device"])
            row = dict(epoch=epoch + 1, train_loss=round(running["loss"] / running["seen"], 6),
                       train_acc=round(running["correct"] / running["seen"], 6), test_acc=round(test_acc, 6),
                       lr=opt.param_groups[0]["lr"], seconds=round(seconds, 2))
            history.append(row)
            print(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, train acc {row['train_acc']:.4f}, "
                  f"test acc {test_acc:.4f} ({seconds:.1f} s)", flush=True)
            sched.step()
            epoch, step, running = epoch + 1, 0, dict(loss=0.0, correct=0, seen=0, seconds=0.0)
            save(epoch, step)
            _write_metrics(history, out / "metrics.csv")
            if not _plot(history, out / "curves.png") and epoch == 1:
                print("matplotlib is not installed: no curves.png (pip install minicnn[plot])")
    finally:
        signal.signal(signal.SIGINT, previous)
    final = history[-1]["test_acc"] if history else evaluate(model, test_set, test_tf, cfg["device"])
    print(f"test accuracy: {final:.4f}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (checkpoint.CheckpointError, data.DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

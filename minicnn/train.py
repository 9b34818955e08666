"""`python -m minicnn.train MODEL`: train a model of the zoo on a data set, with a progress bar, per-epoch
evaluation, metrics.csv, curves.png and an atomic checkpoint after every epoch; `--resume` continues a run
bit-identically, Ctrl-C saves a checkpoint and exits, a non-finite loss stops the run and keeps the last good
checkpoint.

Output directory: without --out a run writes to runs/MODEL, or, when that exists, to the first of runs/MODEL-2,
runs/MODEL-3, ... that does not (and says so). An --out that already holds a run (last.npz or metrics.csv) is
refused unless --overwrite is given. --resume continues in its checkpoint's directory with the checkpoint's
settings: only --epochs (to extend the run), --device, --data-dir, --no-progress and --sync-bn may be given; a
setting flag whose value differs from the checkpoint's is an error that names each one.

Every error (a bad number, a damaged checkpoint or data file, a full disk, a missing GPU) is one line on stderr
starting with "error:" and exit code 2.

Data parallelism: `mpiexec -n N python -m minicnn.train MODEL ...` trains one model on N processes, on one machine
or several (pip install minicnn[mpi]). --batch-size is the global batch: each rank takes its shard of every batch
(batch_size / N images), the ranks add up their gradients before every step, and so take the steps one process
would (exactly with --sync-bn; with plain batch norm each rank normalises with its shard's statistics). Rank 0
prints, shows the progress bar and writes the checkpoints; a checkpoint resumes on any number of ranks; evaluation
is split over the ranks. With --device cuda each rank takes a GPU of its machine. An error on any rank stops every
rank, the divergence guard and Ctrl-C stop them all at the same step.
"""
import argparse
import contextlib
import csv
import io
import signal
import sys
import time

import numpy as np
from tqdm import tqdm

from . import backend, checkpoint, data, distributed, models, optim
from ._cli import (FRACTION, NON_NEGATIVE, ONE_LINE_ERRORS, POSITIVE_INT, SEED, ArgumentParser, CLIError,
                   check_device, one_line, one_line_errors, output_dir, silenced)
from .tasks import check_dataset, task_for

# Per-model defaults; a flag given on the command line wins. LeNet-5's reach 99% on MNIST in a few minutes.
DEFAULTS = {
    "lenet5": dict(dataset="mnist", epochs=8, batch_size=64, lr=0.05, optimizer="nesterov", weight_decay=5e-4),
    # the detectors: 8,000 fresh digit canvases an epoch (--limit), Adam
    "yolo_v1": dict(dataset="digits-detection", epochs=3, batch_size=16, lr=2e-3, optimizer="adam", weight_decay=0.0,
                    limit=8000),
    "fasterrcnn": dict(dataset="digits-detection", epochs=3, batch_size=16, lr=1e-3, optimizer="adam",
                       weight_decay=0.0, limit=8000),
}
GENERIC = dict(dataset="cifar10", epochs=30, batch_size=128, lr=0.1, optimizer="nesterov", weight_decay=5e-4)
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam")
# The settings a resumed run takes from its checkpoint; giving one of them with another value is an error.
FIXED_ON_RESUME = ("dataset", "batch_size", "lr", "optimizer", "weight_decay", "label_smoothing", "seed", "limit")
SETTINGS = ("model", "dataset", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "label_smoothing", "seed",
            "limit", "device", "data_dir")
_kernels_warm = False  # whether this process has taken a training step (and so compiled the kernels it needs)


def parse_args(argv=None):
    """The parsed command line; a usage error or a bad number exits with one line and code 2 (SystemExit)."""
    p = ArgumentParser(prog="python -m minicnn.train", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model of the zoo (python -c 'import minicnn; print(minicnn.models.list_models())')")
    p.add_argument("--dataset", choices=data.DATASETS + tuple(data.DETECTION_DATASETS),
                   help="for the detectors (yolo_v1, fasterrcnn): digits-detection or shapes-detection")
    p.add_argument("--data-dir", help="where CIFAR-10 (or another copy of Fashion-MNIST) lies")
    p.add_argument("--epochs", type=POSITIVE_INT, help="with --resume: the new total, at least the epochs done")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="the global batch: under mpiexec -n N each rank takes "
                   "its shard (batch_size / N images) of every batch")
    p.add_argument("--lr", type=NON_NEGATIVE)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--weight-decay", type=NON_NEGATIVE)
    p.add_argument("--label-smoothing", type=FRACTION, help="in [0, 1] (default 0)")
    p.add_argument("--seed", type=SEED, help="default 0")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", help="output directory (default runs/MODEL, or runs/MODEL-2, -3, ... if it exists)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to be a directory that holds a run")
    p.add_argument("--resume", help="a checkpoint (DIR/last.npz) to continue, in DIR, with its settings; "
                   "flags that differ from them are refused (only --epochs may extend the run)")
    p.add_argument("--limit", type=POSITIVE_INT, help="train on the first N training images (detectors: on N fresh "
                   "canvases each epoch)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--sync-bn", action="store_true", help="under mpiexec: batch norm over the global batch "
                   "(SyncBatchNorm) instead of each rank's shard")
    return p.parse_args(argv)


def settings(args, name):
    """The run's settings: command-line values over the model's defaults."""
    out = dict(dict(label_smoothing=0.0, seed=0, limit=None), **DEFAULTS.get(name, GENERIC))
    for key in ("epochs",) + FIXED_ON_RESUME:
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    out.update(model=name, device=args.device, data_dir=args.data_dir)
    return out


def resume_conflicts(args, cfg):
    """'--flag given (checkpoint: value)' for each flag given with a value other than the checkpoint's."""
    return [f"--{key.replace('_', '-')} {getattr(args, key)} (checkpoint: {cfg[key]})" for key in FIXED_ON_RESUME
            if getattr(args, key) is not None and getattr(args, key) != cfg[key]]


def make_optimizer(params, cfg):
    kind, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if kind in ("sgd", "momentum", "nesterov"):
        return optim.SGD(params, lr=lr, momentum=0.0 if kind == "sgd" else 0.9, nesterov=kind == "nesterov",
                         weight_decay=wd)
    if kind == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=wd)
    return optim.Adam(params, lr=lr, weight_decay=wd)


def _plot(task, history, path):
    """Write curves.png atomically (the training loss, and the task's test metric); False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], "o-")
    a.set(xlabel="epoch", ylabel="training loss", title="loss")
    task.plot(b, history)
    fig.tight_layout()
    try:
        checkpoint.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
    return True


def _write_metrics(task, history, path):
    """Write metrics.csv atomically: the epoch, the task's columns, the learning rate and the seconds."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=["epoch", *task.columns, "lr", "seconds"])
    w.writeheader()
    w.writerows(history)
    checkpoint.atomic_write(path, lambda f: f.write(text.getvalue().encode()))


class _StopFlag:
    """The first Ctrl-C asks the loop to stop after the current step (a second one interrupts at once)."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _writing(path, write):
    """`write()`'s result, with an OSError (a full disk, an unwritable directory) turned into a one-line CLIError."""
    try:
        return write()
    except OSError as e:
        kept = "the previous file is unchanged" if path.exists() else "nothing was written"
        raise CLIError(f"could not write {path}: {e.strerror or e}; {kept}") from None


def run(args, comm=None):
    """Train as the command line asks; returns the exit code (0, 1 when the loss diverged, 130 on Ctrl-C). With
    `comm` (a minicnn.distributed communicator), data-parallel: rank 0 reads the checkpoint and owns the output
    directory, and an error before training (on any rank) stops every rank together."""
    with _together(comm):
        name = models.canonical_name(args.model)
        check_device(args.device)
        prepared = _prepare(args, name) if comm is None or comm.rank == 0 else None
    if comm is not None:
        prepared = comm.broadcast_object(prepared)
    info, cfg, model_sd, optim_arrays, out, created = prepared
    if comm is not None:
        cfg["device"] = comm.device(args.device)
    try:
        return _train(args, name, cfg, out, info, model_sd, optim_arrays, comm)
    finally:
        if created and (comm is None or comm.rank == 0):
            try:
                out.rmdir()  # only when empty: a run that failed before writing anything leaves no directory
            except OSError:
                pass


def _prepare(args, name):
    """(checkpoint info, settings, model and optimizer arrays, output directory, whether it was created) of a new or
    resumed run; the checkpoint's parts are None for a new run."""
    info = model_sd = optim_arrays = None
    if args.resume:
        info, cfg, model_sd, optim_arrays = checkpoint.load_run(args.resume, SETTINGS, resume=True)
        if cfg["model"] != name:
            raise checkpoint.CheckpointError(f"{args.resume} holds a {cfg['model']}, not a {name}")
        conflicts = resume_conflicts(args, cfg)
        if conflicts:
            raise CLIError("--resume continues with the checkpoint's settings, and these flags differ from them: "
                           f"{', '.join(conflicts)}; drop them, or start a new run")
        cfg["epochs"] = args.epochs or cfg["epochs"]
        if info["meta"]["epoch"] > cfg["epochs"]:
            raise CLIError(f"--epochs {cfg['epochs']} is fewer than the {info['meta']['epoch']} epochs "
                           f"{args.resume} has already trained")
        cfg.update(device=args.device, data_dir=args.data_dir or cfg["data_dir"])
    else:
        cfg = settings(args, name)
    out, created = output_dir(args, name)
    return info, cfg, model_sd, optim_arrays, out, created


def _together(comm):
    """A block after which the ranks agree on whether a one-line error stopped any (nothing in one process)."""
    return distributed.training.together(comm, ONE_LINE_ERRORS, one_line)


def _train(args, name, cfg, out, info, model_sd, optim_arrays, comm=None):
    """The training loop of run(), writing into `out`; resumes from `info` and the arrays when they are given."""
    global _kernels_warm
    ckpt_path = out / "last.npz"
    lead = comm is None or comm.rank == 0  # the rank that prints and writes
    with _together(comm):
        task = task_for(name)
        check_dataset(task, cfg["dataset"], name)
        train_set, test_set = task.datasets(cfg)
        model = task.build(cfg, train_set)
        opt = make_optimizer(model.parameters(), cfg)
        sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])
        loader = task.loader(cfg, train_set, *(() if comm is None else (comm.rank, comm.size)))
        epoch, step, history, running = 0, 0, [], task.running()
        if info is not None:
            epoch, step, history, running = _resume(args, name, cfg, info, model_sd, optim_arrays, model, opt,
                                                    sched, loader, lead)
    reduce_gradients = None
    if comm is not None:
        with _together(comm):
            reduce_gradients = distributed.training.prepare(model, train_set, comm, args.sync_bn, cfg["seed"],
                                                            (epoch, step))

    def save(epoch, step):
        _writing(ckpt_path, lambda: checkpoint.save(ckpt_path, model, opt, sched, meta=dict(
            settings=cfg, epoch=epoch, step=step, history=history, running=running, rng=backend.get_rng_state())))

    stop = _StopFlag()
    previous = signal.signal(signal.SIGINT, stop)
    try:
        while epoch < cfg["epochs"]:
            loader.set_epoch(epoch)
            desc = f"epoch {epoch + 1}/{cfg['epochs']}"
            with tqdm(total=len(loader), initial=step, desc=desc, unit="batch", disable=args.no_progress or not lead,
                      leave=False, dynamic_ncols=True, mininterval=0.5) as bar:
                t0 = time.perf_counter()
                for batch in loader.batches(start=step):
                    first = not _kernels_warm and not bar.disable
                    if first:  # Numba compiles the kernels on their first call: say so, keep it out of the ETA
                        bar.set_description("compiling kernels (first run only)")
                    if comm is None:
                        value = task.step(model, opt, batch, cfg, running)
                    else:
                        value = distributed.training.step(task, model, opt, batch, cfg, running, stop,
                                                          reduce_gradients, comm)
                    _kernels_warm = True
                    if first:
                        bar.set_description(desc, refresh=False)
                        bar.start_t = bar.last_print_t = time.time()  # tqdm's clock
                        bar.last_print_n = bar.n
                    if not np.isfinite(value):
                        bar.close()
                        kept = (f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists()
                                else "no checkpoint kept")
                        if lead:
                            print(f"training diverged: the loss is {value} at epoch {epoch + 1}, step {step + 1}; "
                                  f"stopping ({kept}). Try a smaller --lr.", file=sys.stderr)
                        return 1
                    step += 1
                    elapsed = running["seconds"] + time.perf_counter() - t0
                    bar.set_postfix(**task.postfix(running), img_s=f"{running['seen'] / max(elapsed, 1e-9):.0f}",
                                    refresh=False)
                    bar.update(1)
                    if stop.requested:
                        running["seconds"] = elapsed
                        bar.close()
                        with _together(comm):
                            if lead:
                                save(epoch, step)
                        if lead:
                            print(f"interrupted: checkpoint saved to {ckpt_path}; continue with "
                                  f"python -m minicnn.train {name} --resume {ckpt_path}")
                        return 130
            seconds = running["seconds"] + time.perf_counter() - t0
            if comm is not None:  # plain batch norm: every rank evaluates and saves rank 0's running statistics
                distributed.broadcast_buffers(model, comm)
            row = dict(epoch=epoch + 1, **task.train_figures(running), **task.evaluate(model, test_set, cfg, comm),
                       lr=opt.param_groups[0]["lr"], seconds=round(seconds, 2))
            history.append(row)
            if lead:
                print(f"epoch {epoch + 1}: {task.epoch_line(row)} ({seconds:.1f} s)", flush=True)
            sched.step()
            epoch, step, running = epoch + 1, 0, task.running()
            with _together(comm):
                if lead:
                    _save_epoch(task, history, out, lambda: save(epoch, step), epoch)
    finally:
        signal.signal(signal.SIGINT, previous)
    final = history[-1] if history else task.evaluate(model, test_set, cfg, comm)
    if lead:
        print(task.final_line(final))
    return 0


def _save_epoch(task, history, out, save, epoch):
    """After an epoch: the checkpoint, metrics.csv and curves.png."""
    save()
    _writing(out / "metrics.csv", lambda: _write_metrics(task, history, out / "metrics.csv"))
    plotted = _writing(out / "curves.png", lambda: _plot(task, history, out / "curves.png"))
    if not plotted and epoch == 1:
        print("matplotlib is not installed: no curves.png (pip install minicnn[plot])")


def _resume(args, name, cfg, info, model_sd, optim_arrays, model, opt, sched, loader, lead):
    """Load a checkpoint's state into the model, optimizer and scheduler; (epoch, step, history, running)."""
    meta = info["meta"]
    if meta["step"] > len(loader):
        raise checkpoint.CheckpointError(f"{args.resume}: step {meta['step']} is past the end of an epoch "
                                         f"({len(loader)} batches)")
    if meta["step"] > 0 and not meta["running"]["seen"] > 0:
        raise checkpoint.CheckpointError(f"{args.resume}: step {meta['step']} but no image counted so far")
    checkpoint.load_weights(model, model_sd, args.resume)
    checkpoint.restore_optimizer(opt, info, optim_arrays)
    sched.load_state_dict(info["scheduler"])
    sched.T_max = cfg["epochs"]  # --epochs may have grown: the rate is that of a run planned that long
    sched.reset_lr()
    backend.set_rng_state(meta["rng"])
    if lead:
        print(f"resuming {name} from {args.resume}: epoch {meta['epoch'] + 1}, step {meta['step']}")
    return meta["epoch"], meta["step"], meta["history"], meta["running"]


def run_distributed(args):
    """run() under mpiexec with more than one process: the exit code every rank returns. An error before training,
    or while rank 0 writes, stops every rank together (one line from the rank that had it, code 2); a one-line error
    on one rank during training stops every rank through MPI_Abort (the others wait in a collective), and any other
    exception through the hook minicnn.distributed.init installs."""
    try:
        comm = distributed.init()
    except RuntimeError as e:  # mpi4py is missing: every rank stops here, none waits
        if distributed.launched_rank() == 0:
            print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return run(args, comm)
    except distributed.StoppedTogether as e:
        if e.report:
            print(f"error: {e}", file=sys.stderr)
        return 2
    except ONE_LINE_ERRORS as e:
        print(f"error: rank {comm.rank} of {comm.size}: {one_line(e)}; stopping every rank", file=sys.stderr)
        comm.abort(2)


def restore(path, device, data_dir=None):
    """A run's checkpoint, for evaluate and detect: (info, settings, task, train set, test set, model with the
    checkpoint's weights on `device`)."""
    check_device(device)
    info, cfg, model_sd, _ = checkpoint.load_run(path, SETTINGS)
    cfg.update(device=device, data_dir=data_dir or cfg["data_dir"])
    task = task_for(cfg["model"])
    train_set, test_set = task.datasets(cfg)
    model = task.build(cfg, train_set)
    checkpoint.load_weights(model, model_sd, path)
    return info, cfg, task, train_set, test_set, model


def main(argv=None):
    """The command line; returns the exit code. Errors are one line on stderr, `error: ...`, and exit code 2. Under
    mpiexec with more than one process, data-parallel (run_distributed); the help and usage errors from rank 0 only."""
    parallel = distributed.launched_size() > 1
    try:
        with silenced() if parallel and distributed.launched_rank() > 0 else contextlib.nullcontext():
            args = parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already reported in one line
        return e.code
    return run_distributed(args) if parallel else one_line_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

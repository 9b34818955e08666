"""`python -m minicnn.evaluate DIR/last.npz`: the test accuracy of a checkpoint written by minicnn.train.

A missing, damaged or incomplete checkpoint, one holding non-finite weights, missing data or an unavailable device
is one line on stderr, `error: ...`, and exit code 2."""
import sys

from . import checkpoint, data
from .train import SETTINGS, ArgumentParser, CLIError, build, check_device, evaluate, transforms_for


def main(argv=None):
    """The command line; returns the exit code."""
    p = ArgumentParser(prog="python -m minicnn.evaluate", description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", help="override the data directory recorded in the checkpoint")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already reported in one line
        return e.code
    try:
        check_device(args.device)
        info, cfg, model_sd, _ = checkpoint.load_run(args.checkpoint, SETTINGS)
        cfg.update(device=args.device, data_dir=args.data_dir or cfg["data_dir"])
        train_set, test_set = data.load_dataset(cfg["dataset"], cfg["data_dir"], seed=cfg["seed"])
        model = build(cfg, train_set)
        checkpoint.load_weights(model, model_sd, args.checkpoint)
        acc = evaluate(model, test_set, transforms_for(cfg, False), args.device)
    except (CLIError, checkpoint.CheckpointError, data.DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused
        print(f"error: {e.strerror or e}: {e.filename}" if e.filename else f"error: {e}", file=sys.stderr)
        return 2
    print(f"{cfg['model']} on {cfg['dataset']}, epoch {info['meta']['epoch']}: test accuracy: {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

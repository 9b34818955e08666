"""`python -m minicnn.evaluate DIR/last.npz`: the test accuracy of a checkpoint written by minicnn.train."""
import argparse
import sys

import minicnn as mc  # noqa: F401  (first: it tunes OpenBLAS's threads before NumPy loads it)

from . import checkpoint, data  # noqa: E402
from .train import build, evaluate, transforms_for  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minicnn.evaluate", description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", help="override the data directory recorded in the checkpoint")
    args = p.parse_args(argv)
    try:
        info, model_sd, _ = checkpoint.load(args.checkpoint)
        cfg = dict(info["meta"]["settings"], device=args.device)
        if args.data_dir:
            cfg["data_dir"] = args.data_dir
        train_set, test_set = data.load_dataset(cfg["dataset"], cfg["data_dir"], seed=cfg["seed"])
        model = build(cfg, train_set)
        model.load_state_dict(model_sd)
    except (checkpoint.CheckpointError, data.DataError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    acc = evaluate(model, test_set, transforms_for(cfg, False), args.device)
    print(f"{cfg['model']} on {cfg['dataset']}, epoch {info['meta']['epoch']}: test accuracy: {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

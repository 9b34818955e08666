"""`python -m minicnn.export SOURCE OUT.onnx`: write a model as an ONNX file (minicnn.onnx), with a dynamic batch.

    python -m minicnn.export runs/lenet5/last.npz lenet5.onnx
    python -m minicnn.export resnet18 resnet18.onnx --num-classes 10 --input-size 3 32 32

SOURCE is a checkpoint written by minicnn.train (the model rebuilt as trained, with its weights; the input size is
its data set's unless --input-size says otherwise) or the name of a model of the zoo (random weights;
--input-size is needed, --num-classes defaults to the model's own, as in models.create). Detectors export up to
their raw outputs (see minicnn.onnx). An existing OUT is refused unless --overwrite is given; the file is written
atomically, so a failed export leaves no file behind and replaces none.

Every error (a missing or damaged checkpoint, an unknown model, an op without an ONNX mapping) is one line on
stderr starting with "error:" and exit code 2.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from . import checkpoint, models
from .train import POSITIVE_INT, SETTINGS, ArgumentParser, CLIError, one_line_errors

# (classes, image shape) of the data sets minicnn.train trains on: a checkpoint's model is rebuilt from them
# without loading the data
DATA = {"mnist": (10, (1, 28, 28)), "fashion-mnist": (10, (1, 28, 28)), "synthetic": (10, (1, 28, 28)),
        "cifar10": (10, (3, 32, 32)), "digits-detection": (10, (1, 96, 96)), "shapes-detection": (3, (1, 64, 64))}
MAX_INPUT = 2 ** 24  # values in the traced image (3 x 2364 x 2364): a larger one is a typo, and would fill the memory


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m minicnn.export", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a checkpoint (DIR/last.npz) or a model of the zoo")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--input-size", type=POSITIVE_INT, nargs=3, metavar=("C", "H", "W"),
                   help="the image size to trace at (needed with a zoo name; a checkpoint's default: its data set's)")
    p.add_argument("--num-classes", type=POSITIVE_INT,
                   help="with a zoo name (default: the model's own, 1000 for the ImageNet networks)")
    p.add_argument("--opset", type=int, default=17, help="13 to 17 (default 17)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size to 1 instead of a dynamic axis")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p.parse_args(argv)


def from_checkpoint(path, input_size):
    """(model with the checkpoint's weights, input shape C, H, W)."""
    _, cfg, weights, _ = checkpoint.load_run(path, SETTINGS)
    classes, shape = DATA.get(cfg["dataset"], (None, None))
    if classes is None:
        raise CLIError(f"{path} was trained on {cfg['dataset']!r}, whose image size and classes minicnn.export "
                       "does not know")
    model = models.create(cfg["model"], num_classes=classes, in_channels=shape[0])
    checkpoint.load_weights(model, weights, path)
    return model, tuple(input_size or shape)


def from_zoo(name, num_classes, input_size):
    if input_size is None:
        raise CLIError(f"with a model of the zoo give --input-size C H W (the image size to trace {name} at)")
    kw = {} if num_classes is None else {"num_classes": num_classes}
    return models.create(name, in_channels=input_size[0], **kw), tuple(input_size)


def _dims(value):
    """'[batch, 3, 32, 32]': the declared shape of a graph input or output."""
    return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim) + "]"


def check_arguments(args):
    """OUT as a Path, once neither it nor --input-size would make the export fail late or lose a file."""
    out = Path(args.out)
    if out.is_dir():
        raise CLIError(f"{out} is a directory; give the path of the .onnx file to write")
    if not out.parent.is_dir():
        raise CLIError(f"the directory {out.parent} of {out} does not exist")
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; pass --overwrite to replace it")
    if out.exists() and Path(args.source).exists() and out.samefile(args.source):
        raise CLIError(f"{out} is SOURCE itself; writing the ONNX file there would destroy the checkpoint")
    if args.input_size is not None and np.prod(args.input_size, dtype=object) > MAX_INPUT:
        raise CLIError(f"--input-size {' '.join(map(str, args.input_size))} has more than {MAX_INPUT} values: "
                       "tracing the model at that size would fill the memory (a typo?)")
    return out


def run(args):
    try:  # here, not at the top: --help needs no onnx package
        from . import onnx as mconnx
    except ImportError as e:
        raise CLIError(f"minicnn.export needs the onnx package ({e}): pip install onnx, or minicnn[onnx]") from None
    out = check_arguments(args)
    if Path(args.source).is_file():
        if args.num_classes is not None:
            raise CLIError("--num-classes goes with a zoo name: a checkpoint's model has the classes it was trained "
                           "with")
        model, shape = from_checkpoint(args.source, args.input_size)
    else:
        try:
            name = models.canonical_name(args.source)
        except ValueError:
            raise CLIError(f"{args.source} is neither a checkpoint file nor a model of the zoo (one of: "
                           f"{', '.join(models.list_models())})") from None
        model, shape = from_zoo(name, args.num_classes, args.input_size)
    example = np.random.default_rng(0).standard_normal((1,) + shape).astype(np.float32)
    proto = mconnx.export(model, example, out, opset=args.opset, dynamic_batch=not args.static_batch,
                          overwrite=args.overwrite)
    weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    print(f"wrote {out}: {type(model).__name__}, {len(proto.graph.node)} nodes, {weights:,} weights, opset "
          f"{args.opset}; input {_dims(proto.graph.input[0])} -> "
          + ", ".join(f"{o.name} {_dims(o)}" for o in proto.graph.output))
    return 0


def main(argv=None):
    """The command line; returns the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already reported in one line
        return e.code
    return one_line_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

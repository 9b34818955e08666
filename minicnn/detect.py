"""`python -m minicnn.detect DIR/last.npz [IMAGE.png] [--out OUT.png]`: a trained detector's boxes on an image.

The image is read with matplotlib (PNG), turned grey when the model takes one channel (the mean of its colour
channels), scaled to [0, 1], resized to the canvas the model was trained on (bilinear) and, with --invert, turned
to light ink on a dark ground, as the digits data set draws it (a scan of dark ink on paper needs it). Without an
image, the first canvas of the checkpoint's test set is used. The detections are printed, one line each (label,
score, box in the image's pixels), and drawn on the image into --out (default: detections.png), which is never
replaced unless --overwrite is given.

Errors (a bad checkpoint, a classifier's checkpoint, an unreadable image, an existing --out) are one line on
stderr, `error: ...`, and exit code 2.
"""
import sys
from pathlib import Path

import numpy as np

import minicnn as mc

from . import backend
from ._files import atomic_write
from .data.detection import resize_bilinear
from .detection import draw_boxes
from .tasks import Detection
from ._cli import ArgumentParser, CLIError, one_line_errors
from .train import restore


def read_image(path, channels, invert=False):
    """An image file as float32 [channels, H, W] in [0, 1]."""
    import matplotlib.image
    try:
        a = np.asarray(matplotlib.image.imread(path), dtype=np.float32)
    except (OSError, ValueError, SyntaxError) as e:
        raise CLIError(f"cannot read the image {path}: {e}") from None
    if a.dtype.kind != "f" or a.max(initial=0) > 1:
        a = a / 255.0
    if a.ndim == 3:
        a = a[..., :3]  # no alpha
        a = a.mean(axis=2, keepdims=True) if channels == 1 else a
        a = a.transpose(2, 0, 1)
    else:
        a = a[None] if channels == 1 else np.repeat(a[None], channels, axis=0)
    if a.shape[0] != channels:
        raise CLIError(f"the model takes {channels}-channel images; {path} has {a.shape[0]} channels")
    return (1 - a if invert else a).astype(np.float32)


@mc.no_grad()
def detect(model, image, canvas, device="cpu"):
    """Detections of `model` on one image [C, H, W]: resized to canvas x canvas for the model, the boxes scaled
    back to the image's pixels. (boxes [D, 4], scores [D], labels [D]) as NumPy arrays."""
    height, width = image.shape[1:]
    x = resize_bilinear(image, canvas, canvas) if (height, width) != (canvas, canvas) else image
    model.eval()
    found = model(mc.tensor(x[None].astype(np.float32), device=device))[0]
    boxes = backend.to_device(found["boxes"].data, "cpu") * np.array([width, height] * 2) / canvas
    return (boxes.astype(np.float32), backend.to_device(found["scores"].data, "cpu"),
            backend.to_device(found["labels"].data, "cpu"))


def main(argv=None):
    """The command line; returns the exit code."""
    p = ArgumentParser(prog="python -m minicnn.detect", description=__doc__)
    p.add_argument("checkpoint", help="a detector's checkpoint (DIR/last.npz from python -m minicnn.train)")
    p.add_argument("image", nargs="?", help="a PNG image (default: the first canvas of the test set)")
    p.add_argument("--out", default="detections.png", help="the picture to write (default detections.png)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--invert", action="store_true", help="dark ink on a light ground: invert the image first")
    p.add_argument("--device", default="cpu")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already reported in one line
        return e.code
    return one_line_errors(lambda: _run(args))


def _run(args):
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"--out {out} exists; pass --overwrite to replace it, or another --out")
    info, cfg, task, train_set, test_set, model = restore(args.checkpoint, args.device)
    if not isinstance(task, Detection):
        raise CLIError(f"{args.checkpoint} holds a {cfg['model']}, a classifier: detect needs a detector "
                       "(yolo_v1, fasterrcnn)")
    channels, canvas = train_set[0][0].shape[:2]
    image = test_set[0][0] if args.image is None else read_image(args.image, channels, args.invert)
    boxes, scores, labels = detect(model, image, canvas, args.device)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5))
    draw_boxes(image, boxes, labels, scores, ax=ax, class_names=train_set.classes)
    ax.set_title(f"{cfg['model']}: {len(boxes)} detections")
    try:
        atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    finally:
        plt.close(fig)
    source = args.image or f"the first test canvas of {cfg['dataset']}"
    print(f"{cfg['model']} (epoch {info['meta']['epoch']}) on {source}: {len(boxes)} detections")
    for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels):
        print(f"  {train_set.classes[int(label)]} {score:.3f} ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f})")
    print(f"drawn into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

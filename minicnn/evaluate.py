"""`python -m minicnn.evaluate DIR/last.npz`: how well a checkpoint written by minicnn.train does on its test set:
a classifier's test accuracy; a detector's mAP@0.5 (PASCAL VOC), mAP@[.5:.95] (COCO) and images per second.

A missing, damaged or incomplete checkpoint, one holding non-finite weights, missing data or an unavailable device
is one line on stderr, `error: ...`, and exit code 2."""
import sys

from . import detection
from .tasks import Detection, detect_all
from ._cli import ArgumentParser, one_line_errors
from .train import restore


def _report(task, model, test_set, cfg):
    """The lines to print: the test accuracy, or the detector's mAPs and speed."""
    if not isinstance(task, Detection):
        return [task.final_line(task.evaluate(model, test_set, cfg))]
    detect_all(model, [test_set[i] for i in range(min(2, len(test_set)))], cfg["device"])  # compiles, warms up
    found, truth, seconds = detect_all(model, test_set, cfg["device"])
    voc, coco = detection.evaluate(found, truth), detection.coco_map(found, truth)
    return [f"test mAP@0.5: {voc['mAP']:.4f}", f"test mAP@[.5:.95]: {coco['mAP']:.4f}",
            f"inference: {len(test_set) / seconds:.1f} images/s ({len(test_set)} images, batches of up to "
            f"100, {cfg['device']})"]


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

    def body():
        info, cfg, task, _, test_set, model = restore(args.checkpoint, args.device, args.data_dir)
        lines = _report(task, model, test_set, cfg)
        print(f"{cfg['model']} on {cfg['dataset']}, epoch {info['meta']['epoch']}: " + "; ".join(lines))
        return 0
    return one_line_errors(body)


if __name__ == "__main__":
    sys.exit(main())

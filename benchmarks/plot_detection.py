"""The detectors' learning curves for RESULTS.md: test mAP@0.5 after each epoch against the minutes of training,
read from the metrics.csv of runs of `python -m minicnn.train yolo_v1|fasterrcnn`.

    python benchmarks/plot_detection.py runs/yolo_v1 runs/fasterrcnn [--out benchmarks/detection-curves.png]

Each run is labelled by its directory's name; the figure is written atomically (an existing one is replaced).
"""
import argparse
import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import write_atomically  # noqa: E402


def read_run(directory):
    """(minutes of training at the end of each epoch, test mAP@0.5 after it) of one run directory."""
    path = Path(directory) / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist (give the directory of a detector's training run)")
    rows = list(csv.DictReader(open(path)))
    if not rows or "test_map50" not in rows[0]:
        raise SystemExit(f"error: {path} holds no test_map50 column: not a detector's run")
    minutes, total = [], 0.0
    for row in rows:
        total += float(row["seconds"]) / 60
        minutes.append(total)
    return minutes, [float(row["test_map50"]) for row in rows]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories (each holding metrics.csv)")
    p.add_argument("--out", default=str(HERE / "detection-curves.png"))
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    for directory in args.runs:
        minutes, map50 = read_run(directory)
        ax.plot([0] + minutes, [0] + map50, "o-", label=Path(directory).name)
    ax.set(xlabel="minutes of training (2 CPU cores)", ylabel="test mAP@0.5", ylim=(0, 1),
           title="Detectors on the digits canvas")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_atomically(Path(args.out), lambda f: fig.savefig(f, dpi=90, format="png"), mode="wb")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

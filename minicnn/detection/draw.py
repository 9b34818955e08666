"""A picture of an image with its boxes, class names and scores (matplotlib, imported only when drawing)."""
import numpy as np

from ._utils import check_boxes, host


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("draw_boxes needs matplotlib: pip install matplotlib (or the 'notebooks' extra)") from None
    return plt


def _picture(image):
    """An image as an array matplotlib shows: [H, W] (grey) or [H, W, 3|4], floats rescaled to [0, 1] when they
    leave it (e.g. after normalisation). A 3-D array whose first axis is 1, 3 or 4 long is taken as [C, H, W]."""
    a = host(image)
    if a.dtype == bool:
        a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4):  # CHW (minicnn's layout) -> HWC
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or a.dtype.kind not in "biuf":
        raise ValueError(f"draw_boxes: image must be real [H, W], [C, H, W] or [H, W, C] with C 1, 3 or 4, got "
                         f"{a.dtype} {a.shape}")
    if a.dtype.kind == "f" and a.size:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo < 0 or hi > 1:
            a = (a - lo) / (hi - lo if hi > lo else 1.0)
    return a


def draw_boxes(image, boxes, labels=None, scores=None, ax=None, class_names=None, colors=None, linewidth=1.5,
               fontsize=8):
    """Draw `boxes` [N, 4] (x1, y1, x2, y2, pixels, no +1) on `image` ([H, W], [C, H, W] or [H, W, C]; Tensor or
    array; [C, H, W] when the first of three axes is 1, 3 or 4 long) and return the matplotlib axes.

    Pixel (row i, column j) covers [j, j + 1] x [i, i + 1], so a box from 3 to 6 frames pixels 3, 4 and 5. Each
    box is a matplotlib Rectangle (ax.patches), coloured by its label (the tab10 colours, or `colors`, a list
    indexed by label); a caption "name score" sits on its top edge when labels or scores are given, the name from
    `class_names` (a list or dict) or the label itself. A new figure is made when `ax` is None.

        >>> ax = draw_boxes(np.zeros((1, 32, 32)), [[4, 4, 20, 12]], labels=[7], scores=[0.93])
        >>> len(ax.patches), ax.texts[0].get_text()
        (1, '7 0.93')
    """
    name = "draw_boxes"
    picture = _picture(image)
    b = host(check_boxes(name, "boxes", boxes)).astype(np.float64)
    n = len(b)
    labels = None if labels is None else np.asarray(host(labels)).reshape(-1)
    scores = None if scores is None else np.asarray(host(scores)).reshape(-1)
    for what, v in (("labels", labels), ("scores", scores)):
        if v is not None and len(v) != n:
            raise ValueError(f"{name}: {n} boxes but {len(v)} {what}")
    if labels is not None and n and labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    if scores is not None and n and scores.dtype.kind not in "biuf":
        raise TypeError(f"{name}: scores must be real numbers, got dtype {scores.dtype}")
    scores = None if scores is None else scores.astype(np.float64)
    if labels is not None and class_names is not None:
        known = (lambda c: c in class_names) if isinstance(class_names, dict) else \
            (lambda c: 0 <= c < len(class_names))
        missing = [int(c) for c in labels if not known(int(c))]
        if missing:
            raise ValueError(f"{name}: label {missing[0]} has no entry in class_names ({len(class_names)} names)")
    if colors is not None and len(colors) == 0:
        raise ValueError(f"{name}: colors must hold at least one colour, got an empty list")
    plt = _pyplot()
    from matplotlib.patches import Rectangle
    if ax is None:
        ax = plt.subplots()[1]
    height, width = picture.shape[:2]
    grey = dict(cmap="gray", vmin=0, vmax=255 if picture.dtype == np.uint8 else 1) if picture.ndim == 2 else {}
    ax.imshow(picture, extent=(0, width, height, 0), interpolation="nearest", **grey)
    palette = colors if colors is not None else plt.get_cmap("tab10").colors
    for i, (x1, y1, x2, y2) in enumerate(b):
        label = None if labels is None else int(labels[i])
        color = palette[(label if label is not None else 0) % len(palette)]
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=linewidth))
        words = [] if label is None else [str(class_names[label]) if class_names is not None else str(label)]
        words += [] if scores is None else [f"{scores[i]:.2f}"]
        if words:
            ax.text(x1, y1, " ".join(words), color="white", fontsize=fontsize, va="bottom",
                    bbox=dict(facecolor=color, edgecolor="none", pad=1, alpha=0.8))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    return ax

"""What the units of a CNN respond to: its filters, its feature maps, and the image patches that excite a channel
most, cut to the channel's receptive field (Zeiler and Fergus 2014, "Visualizing and Understanding Convolutional
Networks"; cs231n, "Understanding and Visualizing Convolutional Neural Networks").

Activations are captured with forward hooks (`Module.register_forward_hook`) in eval mode under no_grad; the hooks
are removed and the modules' modes restored afterwards, also on an error. Pictures use matplotlib (the `plot`
extra), imported only when drawing; figures are made without pyplot, so nothing stays open, and are saved
atomically when a path is given (format from the suffix: .png, .svg, .pdf); a file that exists is replaced only
with overwrite=True.
"""
from collections import namedtuple

import numpy as np

from .. import backend
from .._files import atomic_write, writable_path
from ..autograd import Tensor
from ..nn import Conv2d
from .receptive import ReceptiveField, field_of_layer, forward_capturing, model_place, resolve_layer

_MAX_PICTURE = 2 ** 24  # pixels in a grid of filters: 4096 x 4096

TopPatches = namedtuple("TopPatches", "patches values locations field")
TopPatches.__doc__ = """patches [k, C, rh, rw]: the input under each unit's receptive field (zeros where it lies past
the image); values [k]: the activations, largest first; locations [k, 3]: (image index, y, x) of each unit in the
layer's output; field: the layer's ReceptiveField."""


def host(a):
    """A NumPy array of a Tensor, a CuPy array or anything array-like."""
    a = a.data if isinstance(a, Tensor) else a
    return backend.to_device(a, "cpu") if backend.is_gpu_array(a) else np.asarray(a)


def _finite(a):
    """Whether every value of a NumPy or CuPy array is finite (integers always are)."""
    return a.dtype.kind != "f" or bool(backend.xp_of(a).isfinite(a).all())


def image_batch(name, model, x, what="x"):
    """x ([N, C, H, W], a Tensor or an array) as a Tensor on the model's device with its dtype."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x) if not backend.is_gpu_array(x) else x
    if data.ndim != 4 or data.dtype.kind not in "biuf" or 0 in data.shape:
        raise ValueError(f"{name}: {what} must be a batch of real images [N, C, H, W] (x[None] for one image), no "
                         f"size 0, got {data.dtype} of shape {tuple(data.shape)}")
    if not _finite(data):
        raise ValueError(f"{name}: {what} holds NaN or infinite values")
    device, dtype = model_place(model)
    return Tensor(backend.to_device(data.astype(dtype, copy=False), device))


def save_figure(name, fig, path, overwrite=False):
    """Save a matplotlib Figure at `path` (the format from its suffix, .png without one), atomically, after
    checking the path and the format; an existing file is replaced only with overwrite=True (FileExistsError
    otherwise); nothing when path is None. Returns the figure."""
    if path is None:
        return fig
    path = writable_path(name, path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{name}: {str(path)!r} exists; pass overwrite=True to replace it")
    fmt = path.suffix[1:].lower() or "png"
    formats = fig.canvas.get_supported_filetypes()
    if fmt not in formats:
        raise ValueError(f"{name}: cannot save a figure as .{fmt}; the suffix must be one of "
                         f"{', '.join('.' + f for f in sorted(formats))}")
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=100))
    return fig


def colormap(name, cmap):
    """The matplotlib colour map called `cmap`, or a ValueError naming the function."""
    import matplotlib
    if not isinstance(cmap, str) or cmap not in matplotlib.colormaps:
        raise ValueError(f"{name}: cmap must be the name of a matplotlib colour map ('viridis', 'gray', 'jet', "
                         f"...), got {cmap!r}")
    return matplotlib.colormaps[cmap]


def int_arg(name, what, v, low=1):
    """v as an int >= low (bools refused), or a ValueError naming the function."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name}: {what} must be an int >= {low}, got {v!r}")
    return int(v)


def activations(model, x, layers):
    """{layer name: its output for the batch x, a NumPy array}, for one layer or a list of them (names in
    model.named_modules() or the modules themselves), from one forward pass in eval mode under no_grad. A module
    that runs more than once in a pass (a shared ReLU) gives the output of its last call."""
    name = "activations"
    named = [resolve_layer(name, model, layer) for layer in (layers if isinstance(layers, (list, tuple)) else
                                                             [layers])]
    if not named:
        raise ValueError(f"{name}: expected at least one layer, got {layers!r}")
    outputs = forward_capturing(model, image_batch(name, model, x), named)
    result = {}
    for layer_name, outs in outputs.items():
        if not outs:
            raise ValueError(f"{name}: layer {layer_name!r} did not run in the model's forward pass (in eval mode)")
        if not isinstance(outs[-1], Tensor):
            raise TypeError(f"{name}: layer {layer_name!r} returned {type(outs[-1]).__name__}, expected a Tensor")
        result[layer_name] = np.array(host(outs[-1]), copy=True)
    return result


def _unit_range(a, axes):
    """a rescaled to [0, 1] over `axes` ((a - min) / (max - min)); a constant slice becomes 0.5."""
    lo, hi = a.min(axis=axes, keepdims=True), a.max(axis=axes, keepdims=True)
    span = hi - lo
    return np.where(span > 0, (a - lo) / np.where(span > 0, span, 1), 0.5)


def _tile(tiles, pad, fill, ncols=None):
    """Tiles [n, h, w] or [n, h, w, 3] laid out in a grid of ncols columns (about square by default), `pad`
    pixels of `fill` between them: one array [rows (h + pad) - pad, cols (w + pad) - pad (, 3)]."""
    n, h, w = tiles.shape[:3]
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = -(-n // ncols)
    spread = np.full((nrows * ncols, h + pad, w + pad) + tiles.shape[3:], fill, dtype=np.float64)
    spread[:n, :h, :w] = tiles
    grid = spread.reshape((nrows, ncols, h + pad, w + pad) + tiles.shape[3:]).swapaxes(1, 2)
    grid = grid.reshape((nrows * (h + pad), ncols * (w + pad)) + tiles.shape[3:])
    return grid[:grid.shape[0] - pad, :grid.shape[1] - pad]


def _weight(name, conv):
    """The weight [K, C, KH, KW] of an nn.Conv2d (or the weight itself) as a NumPy array."""
    if isinstance(conv, Conv2d):
        w = host(conv.weight)
    elif isinstance(conv, (Tensor, np.ndarray)) or backend.is_gpu_array(conv):
        w = host(conv)
    else:
        raise TypeError(f"{name}: expected an nn.Conv2d or its weight [K, C, KH, KW], got {type(conv).__name__}")
    if w.ndim != 4 or w.dtype.kind not in "biuf" or w.size == 0:
        raise ValueError(f"{name}: expected a convolution weight [K, C, KH, KW], got {w.dtype} of shape {w.shape}")
    if not _finite(w):
        raise ValueError(f"{name}: the weights hold NaN or infinite values (did the training diverge?)")
    return w


def filter_grid(conv, mode=None, pad=1):
    """The filters of a convolution (an nn.Conv2d, or its weight [K, C, KH, KW]) as one image in [0, 1]: each
    filter rescaled on its own to [0, 1] ((w - min) / (max - min); a constant filter becomes 0.5), laid out in an
    about square grid with `pad` white pixels between filters.

    mode: "rgb" shows each filter's three input channels as colours ([GH, GW, 3]; the default when C == 3, a
    first layer on colour images); "mean" the mean over its input channels (grey [GH, GW]; the default
    otherwise); an int c the slice of input channel c (grey).
    """
    name = "filter_grid"
    w = _weight(name, conv)
    pad = int_arg(name, "pad", pad, low=0)
    k, _, kh, kw = w.shape
    cols = int(np.ceil(np.sqrt(k)))  # the grid _tile lays out: cols columns, ceil(k / cols) rows
    if (-(-k // cols) * (kh + pad) - pad) * (cols * (kw + pad) - pad) > _MAX_PICTURE:
        raise ValueError(f"{name}: with pad={pad} the grid of {k} filters of {kh}x{kw} would have more than "
                         f"{_MAX_PICTURE} pixels; choose a smaller pad")
    w = w.astype(np.float64)
    mode = ("rgb" if w.shape[1] == 3 else "mean") if mode is None else mode
    if mode == "rgb":
        if w.shape[1] != 3:
            raise ValueError(f"{name}: mode 'rgb' needs filters of 3 input channels, got {w.shape[1]}")
        tiles = _unit_range(w, (1, 2, 3)).transpose(0, 2, 3, 1)
    elif mode == "mean":
        tiles = _unit_range(w.mean(axis=1), (1, 2))
    elif isinstance(mode, (int, np.integer)) and not isinstance(mode, bool) and 0 <= mode < w.shape[1]:
        tiles = _unit_range(w[:, mode], (1, 2))
    else:
        raise ValueError(f"{name}: mode must be 'rgb', 'mean' or an input channel in [0, {w.shape[1]}), got {mode!r}")
    return _tile(tiles, pad, 1.0)


def _figure(grid_shape, scale=6.0):
    from matplotlib.figure import Figure
    h, w = grid_shape[:2]
    return Figure(figsize=(scale, max(1.5, min(3 * scale, scale * h / w))), layout="constrained")


def filters(conv, mode=None, pad=1, path=None, title=None, overwrite=False):
    """A matplotlib Figure of filter_grid(conv, mode, pad) (grey or RGB, nearest-neighbour pixels); saved to
    `path` when one is given."""
    grid = filter_grid(conv, mode, pad)
    fig = _figure(grid.shape)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    k, c, kh, kw = _weight("filters", conv).shape
    ax.set_title(title or f"{k} filters of {c}x{kh}x{kw}")
    return save_figure("filters", fig, path, overwrite)


def show_feature_maps(maps, index=0, max_maps=64, cmap="viridis", path=None, title=None, overwrite=False):
    """A Figure of feature maps ([C, H, W], or [N, C, H, W] and the image `index`): the first max_maps channels,
    each rescaled on its own to [0, 1] (a constant map shows as 0.5), in a grid with white lines between them."""
    name = "show_feature_maps"
    a = host(maps)
    if a.ndim == 4:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < a.shape[0]:
            raise ValueError(f"{name}: index must be an image in [0, {a.shape[0]}), got {index!r}")
        a = a[index]
    if a.ndim != 3 or a.dtype.kind not in "biuf" or a.size == 0:
        raise ValueError(f"{name}: maps must be [C, H, W] or [N, C, H, W] real values, got {a.dtype} of shape "
                         f"{a.shape}")
    if not _finite(a):
        raise ValueError(f"{name}: the maps hold NaN or infinite values")
    max_maps = int_arg(name, "max_maps", max_maps)
    colours = colormap(name, cmap).with_extremes(bad="white")
    grid = _tile(_unit_range(a[:max_maps].astype(np.float64), (1, 2)), 1, np.nan)
    fig = _figure(grid.shape)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap=colours, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"{min(len(a), max_maps)} of {len(a)} feature maps")
    return save_figure(name, fig, path, overwrite)


def _images(name, data):
    """The images [N, C, H, W] of a minicnn.data Dataset (its .images) or of an array or Tensor."""
    images = host(data.images if hasattr(data, "images") else data)
    if images.ndim != 4 or images.dtype.kind not in "biuf" or images.shape[0] == 0:
        raise ValueError(f"{name}: expected a Dataset or images [N, C, H, W] of real values, got {images.dtype} of "
                         f"shape {images.shape}")
    if not _finite(images):
        raise ValueError(f"{name}: the images hold NaN or infinite values")
    return images


def top_patches(model, layer, channel, data, k=9, batch_size=64, transform=None):
    """The k units of `channel` at `layer` (any position, any image of `data`) with the largest activations, and
    the input patch each one sees: a TopPatches(patches, values, locations, field), largest first.

    data: a minicnn.data Dataset (its .images) or images [N, C, H, W]; the model runs on batches of batch_size
    (after `transform`, a callable batch -> batch such as data.Normalize, when given) in eval mode under no_grad.
    Each patch is the unit's receptive field (receptive_field(model, layer)) cut from the untransformed image:
    clipped at the image's borders and padded with zeros to the full field, so every patch is [C, rh, rw].
    """
    name = "top_patches"
    layer_name, module = resolve_layer(name, model, layer)
    images = _images(name, data)
    k, batch_size = int_arg(name, "k", k), int_arg(name, "batch_size", batch_size)
    channel = int_arg(name, "channel", channel, low=0)
    if transform is not None and not callable(transform):
        raise TypeError(f"{name}: transform must be a callable batch -> batch or None, got {type(transform).__name__}")
    field = field_of_layer(name, model, layer_name, images.shape[1:])
    values, units, map_size = _best_units(name, model, (layer_name, module), images, channel, k, batch_size,
                                          transform)
    idx, y, x = np.unravel_index(units, (len(images),) + map_size)
    return TopPatches(_crop(images, field, idx, y, x), values, np.stack([idx, y, x], axis=1), field)


def _best_units(name, model, layer, images, channel, k, batch_size, transform):
    """(activations largest first, their flat indices into [N, h, w], (h, w)) of the k best units of `channel`,
    keeping only the k best of the batches seen so far (ties: the lower index first)."""
    layer_name = layer[0]
    best_v, best_i = np.empty(0), np.empty(0, dtype=np.int64)
    for first in range(0, len(images), batch_size):
        batch = images[first:first + batch_size]
        x = image_batch(name, model, batch if transform is None else transform(batch), what="transform(batch)")
        a = host(forward_capturing(model, x, [layer])[layer_name][0])
        if first == 0:
            _check_units(name, layer_name, a.shape, channel, k, len(images))
        values = a[:, channel].reshape(-1).astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name}: layer {layer_name!r} gives NaN or infinite activations for images "
                             f"{first}..{first + len(batch) - 1}")
        best_v = np.concatenate([best_v, values])
        best_i = np.concatenate([best_i, first * a.shape[2] * a.shape[3] + np.arange(values.size)])
        if best_v.size > k:
            keep = np.argpartition(-best_v, k - 1)[:k]
            best_v, best_i = best_v[keep], best_i[keep]
    order = np.lexsort((best_i, -best_v))
    return best_v[order], best_i[order], a.shape[2:]


def _check_units(name, layer_name, shape, channel, k, n):
    """channel and k against the layer's output shape [B, C, h, w] over n images."""
    if not 0 <= channel < shape[1]:
        raise ValueError(f"{name}: channel must lie in [0, {shape[1]}) for layer {layer_name!r}, got {channel}")
    positions = n * shape[2] * shape[3]
    if k > positions:
        raise ValueError(f"{name}: k={k} is more than the {positions} units of a channel over the data ({n} images "
                         f"of {shape[2]}x{shape[3]} positions)")


def _crop(images, field, idx, y, x):
    """The fields of units (y, x) of images idx, one gather: [k, C, rh, rw], zeros past the image's borders."""
    (rh, rw), (jh, jw), (sh, sw) = field
    rows = np.rint(sh + y * jh - (rh - 1) / 2).astype(np.int64)[:, None] + np.arange(rh)
    cols = np.rint(sw + x * jw - (rw - 1) / 2).astype(np.int64)[:, None] + np.arange(rw)
    h, w = images.shape[2:]
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[:, None, None, :]
    taken = images[idx[:, None, None, None], np.arange(images.shape[1])[None, :, None, None],
                   np.clip(rows, 0, h - 1)[:, None, :, None], np.clip(cols, 0, w - 1)[:, None, None, :]]
    return np.where(inside, taken, 0).astype(images.dtype)


def _picture(name, a):
    """Images [..., C, H, W] as matplotlib shows them: C == 3 as RGB [..., H, W, 3], otherwise the mean over
    channels [..., H, W] (grey); values outside [0, 1] rescaled to [0, 1] over all of them."""
    a = np.asarray(a)
    if a.ndim < 3 or a.size == 0 or a.dtype.kind not in "biuf" or not _finite(a):
        raise ValueError(f"{name}: expected finite real images [..., C, H, W], got {a.dtype} of shape {a.shape}")
    a = a.astype(np.float64)
    a = np.moveaxis(a, -3, -1) if a.shape[-3] == 3 else a.mean(axis=-3)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo if hi > lo else 1.0) if lo < 0 or hi > 1 else a


def show_top_patches(result, ncols=None, path=None, title=None, overwrite=False):
    """A Figure of a TopPatches result: each patch (RGB for 3 channels, else the channel mean in grey; zeros past
    the image's borders) titled with its activation and (image, y, x)."""
    name = "show_top_patches"
    if not isinstance(result, TopPatches):
        raise TypeError(f"{name}: expected the TopPatches that top_patches returns, got {type(result).__name__}")
    pics = _picture(name, result.patches)
    ncols = int(np.ceil(np.sqrt(len(pics)))) if ncols is None else int_arg(name, "ncols", ncols)
    nrows = -(-len(pics) // ncols)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1.8 * ncols, 1.9 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, pic, v, (i, y, x) in zip(axes, pics, result.values, result.locations):
        ax.imshow(pic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{v:.3g}  #{i} ({y},{x})", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title or f"top {len(pics)} patches, receptive field {result.field.size[0]}x{result.field.size[1]}")
    return save_figure(name, fig, path, overwrite)


def _check_field(name, field):
    if not isinstance(field, ReceptiveField):
        raise TypeError(f"{name}: field must be the ReceptiveField that receptive_field returns, got "
                        f"{type(field).__name__}")


def draw_receptive_field(ax, field, y, x, color="red", linewidth=1.5):
    """Draw the receptive field of unit (y, x) (a ReceptiveField from receptive_field) as a rectangle on a
    matplotlib Axes that shows the input image (pixel centres at integer coordinates, as imshow puts them);
    returns the Rectangle."""
    from matplotlib.patches import Rectangle
    _check_field("draw_receptive_field", field)
    if not hasattr(ax, "add_patch"):
        raise TypeError(f"draw_receptive_field: ax must be a matplotlib Axes, got {type(ax).__name__}")
    for what, v in (("y", y), ("x", x)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"draw_receptive_field: {what} must be the int index of a unit, got {v!r}")
    top, left, bottom, right = field.box(y, x)
    return ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor=color,
                                  linewidth=linewidth))


def show_receptive_field(image, field, units, path=None, color="red", title=None, overwrite=False):
    """A Figure of an image ([C, H, W], [H, W, C] with C 1 or 3, or [H, W]) with the receptive fields of `units`
    (one (y, x) pair or a list of them) drawn as rectangles; the parts past the image's borders are cut off."""
    name = "show_receptive_field"
    _check_field(name, field)
    a = host(image)
    a = a[None] if a.ndim == 2 else a
    if a.ndim == 3 and a.shape[-1] in (1, 3) and a.shape[0] not in (1, 3):  # [H, W, C], as matplotlib takes it
        a = a.transpose(2, 0, 1)
    if a.ndim != 3:
        raise ValueError(f"{name}: image must be [C, H, W] or [H, W], got shape {a.shape}")
    units = np.asarray(units)
    units = units[None] if units.ndim == 1 else units
    if units.ndim != 2 or units.shape[1] != 2 or units.dtype.kind not in "iu":
        raise ValueError(f"{name}: units must be one (y, x) pair of ints or a list of them, got shape {units.shape}")
    fig = _figure(a.shape[1:], scale=4.0)
    ax = fig.add_subplot()
    ax.imshow(_picture(name, a), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for y, x in units:
        draw_receptive_field(ax, field, int(y), int(x), color)
    ax.set_xlim(-0.5, a.shape[2] - 0.5)
    ax.set_ylim(a.shape[1] - 0.5, -0.5)
    ax.set_axis_off()
    ax.set_title(title or f"receptive field {field.size[0]}x{field.size[1]}, stride {field.stride[0]}")
    return save_figure(name, fig, path, overwrite)

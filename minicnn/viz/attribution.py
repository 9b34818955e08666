"""Which pixels does a classifier look at? Occlusion, saliency (and SmoothGrad), Grad-CAM, and pictures of them.

Each function takes a classifier `model` that maps images x [N, C, H, W] to logits [N, classes], the images (a
NumPy array or Tensor; cast to the dtype and moved to the device of the model's parameters) and `target`, the class
to explain: an int for every image, one int per image ([N]), or None for the model's own top prediction. The model
runs in eval mode (batch norm uses its running statistics, dropout is off), so every image is independent of the
others in its batch; each module's mode and each parameter's `requires_grad` flag are restored afterwards and no
parameter's `.grad` is touched. Maps come back as host NumPy arrays in the model's dtype.

    occlusion   [N, OH, OW]  probability of the class with a square of the image hidden (Zeiler & Fergus 2014)
    saliency    [N, H, W]    max over channels of |d score / d pixel| (Simonyan et al. 2014; SmoothGrad 2017)
    grad_cam    [N, h, w]    ReLU(sum_k alpha_k A^k) at one layer (Selvaraju et al. 2017)
    overlay, show_attributions: a map blended over its image, and a figure of images beside their maps
"""
import contextlib

import numpy as np

from .. import backend
from ..autograd import Tensor, enable_grad, no_grad
from ..data.detection import resize_bilinear
from ..functional import softmax
from ..nn import Module
from .features import colormap, host, image_batch, int_arg, save_figure


_MAX_SMOOTH = 10_000  # noisy copies per image in SmoothGrad: more only takes longer (the paper's curves flatten by 50)


# --- checks and bookkeeping shared by the three maps ----------------------------------------------------------------
def _pair(name, what, v):
    """An int or an (h, w) pair of positive ints, as (h, w)."""
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v) if isinstance(v, (tuple, list)) else None
    if pair is None or len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1
                                             for p in pair):
        raise ValueError(f"{name}: {what} must be a positive int or an (h, w) pair of them, got {v!r}")
    return int(pair[0]), int(pair[1])


def _images(name, model, x):
    """x as an array [N, C, H, W] on the device and in the floating dtype of the model's parameters."""
    if not isinstance(model, Module):
        raise TypeError(f"{name}: model must be a minicnn.nn.Module, got {type(model).__name__}")
    return image_batch(name, model, x).data


def _logits(name, model, x):
    out = model(x)
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        got = f"shape {out.shape}" if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"{name}: the model must return logits [N, classes] for N = {x.shape[0]} images, got {got}")
    return out


def _targets(name, target, logits):
    """target as an int64 host array [N] of classes in range; None -> each image's top class."""
    n, classes = logits.shape
    if target is None:
        return host(logits.data.argmax(axis=1)).astype(np.int64)
    t = host(target)
    if t.dtype.kind not in "iu" and t.size:  # an empty list is float64 to NumPy: its shape is what is wrong
        raise TypeError(f"{name}: target must be an int or integers [N], got dtype {t.dtype}")
    if t.ndim == 0:
        t = np.full(n, t)
    if t.shape != (n,):
        raise ValueError(f"{name}: target must be an int or one class per image ([{n}]), got shape {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise ValueError(f"{name}: target classes must lie in [0, {classes}), got {t.min()}..{t.max()}")
    return t.astype(np.int64)


def _scores(logits, target):
    """The target logit of every image, summed: one backward gives each image's d score / d input, because in eval
    mode image i's logits do not depend on image j."""
    rows = backend.xp_of(logits.data).arange(logits.shape[0])
    return logits[rows, backend.to_device(target, logits.device)].sum()


@contextlib.contextmanager
def _explaining(model):
    """Eval mode, with the parameters' requires_grad off (the graph then holds only what the input needs, and no
    parameter's .grad changes); each module's mode and each flag restored on exit, errors included."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    try:
        for p, _ in flags:
            p.requires_grad = False
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad = flag


# --- occlusion -------------------------------------------------------------------------------------------------------
def _fill(name, baseline, x):
    """The occluder's values: a finite number or an array that broadcasts to one image of x, as x's array."""
    fill, image = host(baseline), x.shape[1:]
    try:
        fits = np.broadcast_shapes(fill.shape, image) == image
    except ValueError:
        fits = False
    if not fits or fill.dtype.kind not in "biuf" or not np.all(np.isfinite(fill)):
        raise ValueError(f"{name}: baseline must be a finite number or an array that broadcasts to one image "
                         f"{image}, got {fill.dtype} of shape {fill.shape}")
    return backend.to_device(fill.astype(x.dtype), backend.device_of(x))


def occlusion(model, x, target, window, stride, baseline=0.0, batch_size=128, with_top=False):
    """Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks", sec. 4.2).

    A square of `window` (int or (wh, ww)) pixels, filled with `baseline` (a number, or an array that broadcasts
    to one image [C, H, W], e.g. the per-channel mean [C, 1, 1]), is placed at every position (i * sh, j * sw) of
    the image, for `stride` (int or (sh, sw)); the map holds, for each position,

        P[n, i, j] = softmax(model(x_n with the square at (i * sh, j * sw)))[target_n]

    [N, OH, OW] with OH = (H - wh) // sh + 1 and OW = (W - ww) // sw + 1: only whole windows, as in a valid
    convolution and in Captum's Occlusion, so when sh does not divide H - wh the last H - wh - (OH - 1) sh rows are
    never hidden. Where the probability drops, the hidden pixels mattered. The N * OH * OW occluded copies are
    built with array ops and run `batch_size` at a time under no_grad.

    With with_top=True it returns (P_target, P_top, top): the same map for each image's top prediction on the
    unoccluded image (top [N]), from the same forward passes.

    What it shows: evidence the model actually uses, in the image's own pixels, with no gradients involved. What
    it misses: a part that is redundant (two eyes: hiding one leaves the other) shows as unimportant; the
    baseline square is itself an unnatural input; resolution is the stride; cost is N * OH * OW forward passes.
    """
    name = "occlusion"
    x = _images(name, model, x)
    n, _, h, w = x.shape
    (wh, ww), (sh, sw) = _pair(name, "window", window), _pair(name, "stride", stride)
    if wh > h or ww > w:
        raise ValueError(f"{name}: window ({wh}, {ww}) is larger than the image ({h}, {w})")
    batch_size = int_arg(name, "batch_size", batch_size)
    if not isinstance(with_top, (bool, np.bool_)):
        raise TypeError(f"{name}: with_top must be True or False, got {with_top!r}")
    xp, device, fill = backend.xp_of(x), backend.device_of(x), _fill(name, baseline, x)
    oh, ow = (h - wh) // sh + 1, (w - ww) // sw + 1
    # rows_hidden[i, y]: the square at vertical position i covers image row y; cols_hidden[j, x] likewise
    top_rows, left_cols = xp.arange(oh)[:, None] * sh, xp.arange(ow)[:, None] * sw
    rows_hidden = (xp.arange(h)[None, :] >= top_rows) & (xp.arange(h)[None, :] < top_rows + wh)
    cols_hidden = (xp.arange(w)[None, :] >= left_cols) & (xp.arange(w)[None, :] < left_cols + ww)
    with _explaining(model), no_grad():
        clean = _logits(name, model, Tensor(x))
        target = _targets(name, target, clean)
        top = _targets(name, None, clean)
        picked = np.empty((2, n * oh * ow), x.dtype)
        for start in range(0, n * oh * ow, batch_size):
            q = np.arange(start, min(start + batch_size, n * oh * ow))  # copy q: image q // L, position q % L
            image = q // (oh * ow)
            d_image, d_i, d_j = (backend.to_device(v, device) for v in (image, q % (oh * ow) // ow, q % ow))
            hidden = rows_hidden[d_i][:, None, :, None] & cols_hidden[d_j][:, None, None, :]  # [B, 1, H, W]
            probs = host(softmax(_logits(name, model, Tensor(xp.where(hidden, fill, x[d_image]))), axis=1))
            picked[:, q] = probs[np.arange(len(q)), target[image]], probs[np.arange(len(q)), top[image]]
    maps = picked.reshape(2, n, oh, ow)
    return (maps[0], maps[1], top) if with_top else maps[0]


# --- saliency --------------------------------------------------------------------------------------------------------
def _input_gradients(name, model, x, target):
    """d logits[i, target_i] / d x_i for every image i of x [N, C, H, W]: one forward and one backward."""
    with enable_grad():
        xt = Tensor(x, requires_grad=True)
        score = _scores(_logits(name, model, xt), target)
        if not score.requires_grad:
            raise ValueError(f"{name}: the class score has no autograd path back to the input x (the model ignores "
                             "it, or computes under no_grad)")
        score.backward()
    return xt.grad.data


def saliency(model, x, target, smooth=0, sigma=0.15, seed=0, batch_size=128):
    """Image-specific class saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks"):

        M[n, y, x] = max_c | d S_target(x_n) / d x_n[c, y, x] |        [N, H, W]

    with S the class score: the logit before the softmax (the probability also moves when the other classes'
    scores do). One backward of sum_n S_target_n(x_n) gives every image's gradient, the images being independent
    in eval mode.

    SmoothGrad (Smilkov, Thorat, Kim, Viegas & Wattenberg 2017) when smooth = s > 0: the gradient is averaged over
    s noisy copies x_n + e, e ~ N(0, (sigma (max x_n - min x_n))^2) per pixel, before the max over channels. The
    noise is np.random.default_rng(seed).standard_normal((s, N, C, H, W)), drawn batch by batch (the same numbers),
    and the s * N copies run `batch_size` at a time, so memory stays at one batch whatever s is.

    What it shows: the pixels whose small change moves the score most, at full resolution. What it misses: it is
    local (a first-order Taylor term) and noisy, speckled over edges the class does not need (SmoothGrad calms the
    speckle); it does not say whether a pixel raises or lowers the score (the absolute value drops the sign).
    """
    name = "saliency"
    x = _images(name, model, x)
    if isinstance(smooth, bool) or not isinstance(smooth, (int, np.integer)) or not 0 <= smooth <= _MAX_SMOOTH:
        raise ValueError(f"{name}: smooth must be an int in [0, {_MAX_SMOOTH}] (the number of noisy copies; the "
                         f"paper uses 50), got {smooth!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) or \
            not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{name}: sigma must be a finite number >= 0, got {sigma!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"{name}: seed must be None or an int >= 0, got {seed!r}")
    batch_size = int_arg(name, "batch_size", batch_size)
    with _explaining(model):
        with no_grad():
            target = _targets(name, target, _logits(name, model, Tensor(x)))
        grad = _summed_gradients(name, model, x, target, int(smooth), sigma, seed, batch_size) / max(smooth, 1)
    return host(backend.xp_of(grad).abs(grad).max(axis=1))


def _chunks(n, copies, batch_size):
    """[start, stop) ranges over the copies * n rows (row c n + i: copy c of image i), at most batch_size rows:
    when n >= batch_size each lies inside one copy, otherwise each is made of whole copies."""
    if n >= batch_size:
        for c in range(copies):
            for i in range(0, n, batch_size):
                yield c * n + i, c * n + min(i + batch_size, n)
    else:
        step = batch_size // n * n
        for start in range(0, copies * n, step):
            yield start, min(start + step, copies * n)


def _summed_gradients(name, model, x, target, smooth, sigma, seed, batch_size):
    """The sum over max(smooth, 1) copies of d S_target / d input, [N, C, H, W]. Copy c of image i is x_i, plus
    standard_normal((smooth, N, C, H, W))[c, i] * sigma (max x_i - min x_i) when smooth > 0."""
    n, xp, device = len(x), backend.xp_of(x), backend.device_of(x)
    rng = np.random.default_rng(seed)
    spread = sigma * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    total = xp.zeros_like(x)
    for start, stop in _chunks(n, max(smooth, 1), batch_size):
        images = np.arange(start, stop) % n
        rows = backend.to_device(images, device)
        batch = x[rows]
        if smooth:
            noise = rng.standard_normal((stop - start,) + x.shape[1:]).astype(x.dtype)
            batch = batch + backend.to_device(noise, device) * spread[rows]
        grad = _input_gradients(name, model, batch, target[images])
        if n >= batch_size:  # images[0], images[0] + 1, ... of one copy
            total[images[0]:images[0] + stop - start] += grad
        else:  # whole copies
            total += grad.reshape((-1,) + x.shape).sum(axis=0)
    return total


# --- Grad-CAM --------------------------------------------------------------------------------------------------------
def _layer(name, model, layer):
    """The module `layer` names (a key of model.named_modules()) or is, and its name."""
    modules = dict(model.named_modules())
    if isinstance(layer, str):
        if layer not in modules:
            names = [k for k in modules if k]
            raise ValueError(f"{name}: the model has no layer named {layer!r}; its layers are "
                             f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}")
        return modules[layer], layer
    if not isinstance(layer, Module):
        raise TypeError(f"{name}: layer must be a module of the model or its name, got {type(layer).__name__}")
    for key, m in modules.items():
        if m is layer:
            return m, key
    raise ValueError(f"{name}: layer {type(layer).__name__} is not a module of the model")


def grad_cam(model, x, target, layer):
    """Gradient-weighted class activation mapping (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra 2017,
    "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization"):

        alpha[n, k] = mean over (u, v) of d S_target(x_n) / d A[n, k, u, v]
        cam[n, u, v] = ReLU(sum_k alpha[n, k] A[n, k, u, v])             [N, h, w]

    with A [N, K, h, w] the output of `layer` (a module of the model, or its name in model.named_modules()) and S
    the class score (the logit). The map is not normalised (divide by its max for a picture; overlay does) and has
    the layer's resolution (h, w); overlay() stretches it over the image.

    A is caught with a forward hook that hands the rest of the forward a fresh leaf tensor holding A's values and
    requiring a gradient; the backward of the score then stops at that leaf and leaves d S / d A in its .grad
    (nothing before the layer needs a gradient).

    What it shows: where, at the layer's resolution, the evidence for the class sits; class-discriminative (other
    classes light up other places). What it misses: detail finer than the layer's cells (use a late layer for
    semantics, an earlier one for resolution); parts whose evidence is negative are cut by the ReLU; averaging the
    gradient over space weighs a channel by its mean effect only.
    """
    name = "grad_cam"
    x = _images(name, model, x)
    module, layer_name = _layer(name, model, layer)
    caught = []

    def catch(mod, inputs, out):
        if caught:
            raise ValueError(f"{name}: layer {layer_name!r} ran more than once in one forward (a module used twice, "
                             f"like a shared ReLU); choose a layer that runs once")
        if not isinstance(out, Tensor) or out.ndim != 4:
            got = f"shape {out.shape}" if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"{name}: layer {layer_name!r} must output feature maps [N, K, h, w], got {got}")
        caught.append(Tensor(out.data, requires_grad=True))
        return caught[0]

    handle = module.register_forward_hook(catch)
    try:
        with _explaining(model), enable_grad():
            logits = _logits(name, model, Tensor(x))
            if not caught:
                raise ValueError(f"{name}: layer {layer_name!r} did not run in the model's forward")
            score = _scores(logits, _targets(name, target, logits))
            if not score.requires_grad:  # only A requires a gradient: the score was computed without it
                raise ValueError(f"{name}: the class score does not depend on layer {layer_name!r}")
            score.backward()
    finally:
        handle.remove()
    a = caught[0]
    alpha = a.grad.data.mean(axis=(2, 3))
    cam = (alpha[:, :, None, None] * a.data).sum(axis=1)
    return host(backend.xp_of(cam).maximum(cam, 0))


# --- pictures --------------------------------------------------------------------------------------------------------
def _rgb(name, image):
    """An image [H, W], [1|3, H, W] or [H, W, 1|3] as float64 RGB [H, W, 3] in [0, 1] (min-max rescaled when its
    values leave [0, 1], as normalised inputs do)."""
    a = host(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)) or a.dtype.kind not in "biuf" or a.size == 0:
        raise ValueError(f"{name}: image must be real [H, W], [C, H, W] or [H, W, C] with C 1 or 3, got {a.dtype} "
                         f"of shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: image holds NaN or infinite values")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > 1:
        a = (a - lo) / (hi - lo if hi > lo else 1.0)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def overlay(image, heat, alpha=0.5, cmap="jet"):
    """The heat map [h, w] rescaled to [0, 1] ((heat - min) / (max - min); a constant map becomes 0), resized
    bilinearly to the image's H x W (pixel centres aligned), coloured with the matplotlib colour map `cmap` and
    blended over the image: (1 - alpha) image + alpha colour, float64 RGB [H, W, 3] in [0, 1].

    `image`: [H, W] (grey), [C, H, W] or [H, W, C] with C 1 or 3, values in [0, 1] (min-max rescaled otherwise).
    The resize assumes the map covers the whole image evenly, which holds for Grad-CAM and saliency; an occlusion
    map of whole windows covers it up to the last stride.
    """
    name = "overlay"
    return _overlay(name, image, heat, _alpha(name, alpha), colormap(name, cmap))


def _alpha(name, alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or \
            not 0 <= alpha <= 1:
        raise ValueError(f"{name}: alpha must lie in [0, 1] (a number), got {alpha!r}")
    return float(alpha)


def _overlay(name, image, heat, alpha, colours):
    """overlay(image, heat, alpha, cmap) with alpha checked and the colour map looked up."""
    rgb = _rgb(name, image)
    h = host(heat)
    if h.ndim != 2 or h.dtype.kind not in "biuf" or h.size == 0 or not np.all(np.isfinite(h)):
        raise ValueError(f"{name}: heat must be a finite real map [h, w], got {h.dtype} of shape {h.shape}")
    h = h.astype(np.float64) - h.min()
    h = resize_bilinear(h / h.max() if h.max() > 0 else h, rgb.shape[0], rgb.shape[1])
    return (1 - alpha) * rgb + alpha * colours(np.clip(h, 0, 1))[..., :3]


def _map_sets(name, maps, n):
    """maps (an array [N, h, w] or [M, N, h, w], a list of N 2-D maps, or a list of M sets) as M sets of n maps."""
    maps = host(maps) if isinstance(maps, Tensor) or backend.is_gpu_array(maps) else maps
    if isinstance(maps, np.ndarray):
        sets = [maps] if maps.ndim == 3 else list(maps) if maps.ndim == 4 else []
    elif isinstance(maps, (list, tuple)):
        one = bool(maps) and not isinstance(maps[0], (list, tuple)) and host(maps[0]).ndim == 2
        sets = [maps] if one else list(maps)
    else:
        raise TypeError(f"{name}: maps must be an array [N, h, w] or [M, N, h, w], or a list of maps or of sets of "
                        f"them, got {type(maps).__name__}")
    if not sets:
        raise ValueError(f"{name}: expected one set of maps [N, h, w] or several, got {np.shape(maps)}")
    for k, s in enumerate(sets):
        count = len(s) if isinstance(s, (list, tuple)) or getattr(s, "ndim", 0) >= 1 else 0
        if count != n:
            raise ValueError(f"{name}: {n} images but {count} maps in set {k}")
    return sets


def show_attributions(images, maps, titles=None, path=None, alpha=0.5, cmap="jet", overwrite=False):
    """A matplotlib Figure with one row per image: the image, then each of its maps overlaid on it (`overlay`).

    `images`: N images ([N, C, H, W] or a list); `maps`: one set of maps [N, h, w] or a list of M sets (e.g.
    [occlusion, saliency, grad-cam]); `titles`: M column titles. alpha=1 shows the maps alone. When `path` is given
    the figure is saved there (format from the suffix: .png, .svg, .pdf), atomically; an existing file only with
    overwrite=True. Returns the Figure (made
    without pyplot, so nothing stays open).
    """
    name = "show_attributions"
    if isinstance(images, Tensor) or backend.is_gpu_array(images):
        images = host(images)
    if not isinstance(images, (np.ndarray, list, tuple)):
        raise TypeError(f"{name}: images must be an array [N, C, H, W] or a list of images, got "
                        f"{type(images).__name__}")
    images = list(images)
    if not images:
        raise ValueError(f"{name}: expected at least one image")
    sets = _map_sets(name, maps, len(images))
    if isinstance(titles, str):
        raise TypeError(f"{name}: titles must be a list of {len(sets)} column titles, got the str {titles!r}")
    titles = [f"map {k}" for k in range(len(sets))] if titles is None else list(titles)
    if len(titles) != len(sets):
        raise ValueError(f"{name}: {len(sets)} sets of maps but {len(titles)} titles")
    alpha, colours = _alpha(name, alpha), colormap(name, cmap)
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2.2 * (1 + len(sets)), 2.2 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), 1 + len(sets), squeeze=False)
    for row, image in enumerate(images):
        axes[row, 0].imshow(_rgb(name, image))
        for k, s in enumerate(sets):
            axes[row, k + 1].imshow(_overlay(name, image, s[row], alpha, colours))
            if row == 0:
                axes[0, k + 1].set_title(titles[k])
    axes[0, 0].set_title("image")
    for ax in axes.ravel():
        ax.set_axis_off()
    return save_figure(name, fig, path, overwrite)

"""Fuzz cases: ops (see verdicts.py for how each draw is judged)."""

import minicnn as mc  # noqa: F401  (before PyTorch: Numba's OpenMP threads sleep between kernels)

import minicnn.functional as F  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402,F401
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from verdicts import (A, ANY, FUZZ, INF, M, MODES, NAN, RTOL, T, T64, arrays, call, check, conv_torch, dtypes, finite,
                      is_float, mismatch, nonfloat, np_of, summ)  # noqa: E402


# --- functional ops -----------------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_ops_conv2d(data):
    d = data.draw
    dtype = d(dtypes)
    wdtype = d(st.sampled_from([dtype] * 6 + ["float32", "float64", "float16", "int64"]))
    groups = d(st.sampled_from([1, 1, 1, 2, 3, 0, -1]))
    g = max(groups, 1)
    n = d(st.sampled_from([1, 2, 0]))
    c = d(st.integers(0, 2)) * g + d(st.sampled_from([0, 0, 0, 1]))
    k = d(st.integers(0, 2)) * g + d(st.sampled_from([0, 0, 0, 1]))
    wc = max(0, c // g + d(st.sampled_from([0, 0, 0, 0, 1, -1])))
    kh = d(st.sampled_from([1, 2, 3, 3, 4, 0]))
    kw = d(st.sampled_from([kh, kh, 1, 2, 5]))
    h, w = d(st.integers(1, 7)), d(st.sampled_from([None, None, 0, 1, 2, 5]))
    w = h if w is None else w
    shape = (n, c, h, w)
    rank = d(st.sampled_from([4] * 8 + [3, 5]))
    shape = shape[1:] if rank == 3 else (1,) + shape if rank == 5 else shape
    stride = d(st.sampled_from([1, 1, 2, 3, (1, 2), (2, 1), 0, -1, 10**6]))
    padding = d(st.sampled_from([0, 0, 1, 2, (1, 0), (0, 2), -1, 30]))
    dilation = d(st.sampled_from([1, 1, 1, 2, (2, 1), 3, 0, -1]))
    bias = d(st.sampled_from(["none", "ok", "ok", "wrong_shape", "wrong_dtype"]))
    x, wt = d(arrays(dtype, shape)), d(arrays(wdtype, (k, wc, kh, kw)))
    bdt = dtype if bias != "wrong_dtype" else ("float64" if dtype != "float64" else "float32")
    b = None if bias == "none" else d(arrays(bdt, (k + (bias == "wrong_shape"),)))
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    mx, mw, mb = M(x, True), M(wt, True), None if b is None else M(b, True)
    tx, tw, tb = T(x, True), T(wt, True), None if b is None else T(b, True)
    grads = finite(x, wt, b) and ((mx, mw, mb), (tx, tw, tb))

    def no_channels():  # PyTorch gives no output channels without input channels; bias alone is right too
        if c or wc or rank != 4:
            raise ValueError("has channels")
        return conv_torch(torch.zeros((n, g, h, w), dtype=tx.dtype), torch.zeros((k, 1, kh, kw), dtype=tw.dtype),
                          None if b is None else T(b), **kwargs)
    def padded():  # PyTorch refuses an input of zero width even with padding; the zero-padded input is right too
        ph, pw = (padding, padding) if isinstance(padding, int) else padding
        if rank != 4 or min(ph, pw) < 0:
            raise ValueError("no padding to apply")
        return conv_torch(TF.pad(T(x), (pw, pw, ph, ph)), T(wt), None if b is None else T(b),
                          **dict(kwargs, padding=0))
    check("conv2d", ["conv2d"], lambda: F.conv2d(mx, mw, mb, **kwargs), lambda: conv_torch(tx, tw, tb, **kwargs),
          call("F.conv2d", x, wt, b, **kwargs), in_dtypes=[dtype, wdtype], alt=[no_channels, padded],
          may_refuse=nonfloat(dtype) or rank != 4 or 0 in (c, k, kh, kw, wc, w) or wdtype != dtype,
          empty_ok=0 in (c, k, wc, w),
          leaves=grads or None)


@FUZZ
@given(st.data())
def test_ops_pool2d(data):
    d = data.draw
    op = d(st.sampled_from(["max_pool2d", "avg_pool2d"]))
    dtype = d(dtypes)
    kernel = d(st.sampled_from([1, 2, 2, 3, (2, 3), (3, 1), 0, -1]))
    stride = d(st.sampled_from([None, None, 1, 2, 3, (1, 2), 0, -1, 10**6]))
    padding = d(st.sampled_from([0, 0, 1, (1, 0), 2, -1]))
    ceil_mode, cip = d(st.booleans()), d(st.booleans())
    n, c = d(st.sampled_from([1, 2, 0])), d(st.sampled_from([1, 2, 0]))
    h, w = d(st.integers(1, 7)), d(st.sampled_from([None, None, 0, 1, 2, 5]))
    w = h if w is None else w
    rank = d(st.sampled_from([4] * 8 + [3, 5]))
    shape = (n, c, h, w)
    shape = shape[1:] if rank == 3 else (1,) + shape if rank == 5 else shape
    x = d(arrays(dtype, shape))
    mx, tx = M(x, True), T(x, True)
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    alt = ()
    if op == "max_pool2d":
        mfn, tfn = lambda: F.max_pool2d(mx, **kwargs), lambda: TF.max_pool2d(tx, **kwargs)
    else:
        kwargs["count_include_pad"] = cip
        mfn, tfn = lambda: F.avg_pool2d(mx, **kwargs), lambda: TF.avg_pool2d(tx, **kwargs)
        alt = (lambda: TF.avg_pool2d(T64(x), **kwargs),)  # integers averaged exactly (PyTorch truncates)
    kk = (kernel, kernel) if isinstance(kernel, int) else kernel
    pp = (padding, padding) if isinstance(padding, int) else padding
    too_big = any(k > n + 2 * q for k, n, q in zip(kk, shape[-2:], pp))  # PyTorch takes some with ceil_mode
    check(op, [op], mfn, tfn, call(f"F.{op}", x, **kwargs), in_dtypes=[dtype],
          may_refuse=nonfloat(dtype) or rank != 4 or 0 in (c, w) or too_big, alt=alt, empty_ok=0 in (c, w),
          leaves=((mx,), (tx,)) if finite(x) else None)


@FUZZ
@given(st.data())
def test_ops_global_adaptive_pool(data):
    d = data.draw
    op = d(st.sampled_from(["global_avg_pool2d", "global_max_pool2d", "adaptive_avg_pool2d"]))
    dtype = d(dtypes)
    n, c = d(st.sampled_from([1, 2, 0])), d(st.sampled_from([1, 2, 0]))
    h, w = d(st.integers(1, 6)), d(st.sampled_from([None, None, 0, 1, 5]))
    w = h if w is None else w
    rank = d(st.sampled_from([4] * 8 + [3, 2]))
    shape = (n, c, h, w)[4 - rank:]
    x = d(arrays(dtype, shape))
    mx, tx = M(x, True), T(x, True)
    if op == "global_avg_pool2d":
        mfn, tfn, desc = lambda: F.global_avg_pool2d(mx), lambda: TF.adaptive_avg_pool2d(tx, 1), call(f"F.{op}", x)
        alt, refuse = (lambda: TF.adaptive_avg_pool2d(T64(x), 1),), False
    elif op == "global_max_pool2d":
        mfn, tfn, desc = lambda: F.global_max_pool2d(mx), lambda: TF.adaptive_max_pool2d(tx, 1), call(f"F.{op}", x)
        alt, refuse = (lambda: torch.amax(T(x), dim=(-2, -1), keepdim=True),), False
    else:
        size = d(st.sampled_from([1, 2, 3, (1, 2), (2, 1), 5, 8, 0, -1, (2, None)]))
        mfn, tfn, desc = (lambda: F.adaptive_avg_pool2d(mx, size), lambda: TF.adaptive_avg_pool2d(tx, size),
                          call(f"F.{op}", x, size))
        alt, refuse = (lambda: TF.adaptive_avg_pool2d(T64(x), size),), size in (0, (2, None))
    check(op, [op], mfn, tfn, desc, in_dtypes=[dtype], alt=alt,
          may_refuse=refuse or nonfloat(dtype) or rank != 4 or 0 in (c, w), empty_ok=0 in (c, w),
          leaves=((mx,), (tx,)) if finite(x) else None)


@FUZZ
@given(st.data())
def test_ops_batch_norm(data):
    d = data.draw
    dtype = d(dtypes)
    rank = d(st.sampled_from([4, 4, 4, 2, 3, 1, 5]))
    n, c = d(st.sampled_from([2, 3, 1, 0])), d(st.sampled_from([1, 2, 3]))
    shape = (n, c) + tuple(d(st.integers(1, 3)) for _ in range(max(rank - 2, 0)))
    shape = shape[:rank]
    x = d(arrays(dtype, shape))
    training = d(st.booleans())
    momentum = d(st.sampled_from([0.1, 0.1, 0.0, 1.0, None, -0.5, 1.5]))
    eps = d(st.sampled_from([1e-5, 1e-5, 0.0, 1e-3, -1.0]))
    stats = d(st.sampled_from(["ok", "ok", "ok", "none", "wrong_shape", "wrong_dtype"]))
    affine = d(st.sampled_from(["both", "both", "none", "weight", "bias", "wrong_shape"]))
    sdt = dtype if stats != "wrong_dtype" else ("float64" if dtype != "float64" else "float32")
    sc = c + (stats == "wrong_shape")
    rm = None if stats == "none" else d(arrays(sdt, (sc,), modes=("uniform",)))
    rv = None if stats == "none" else np.abs(d(arrays(sdt, (sc,), modes=("uniform",)))) + 0.5
    ac = c + (affine == "wrong_shape")
    wt = d(arrays(dtype, (ac,))) if affine in ("both", "weight", "wrong_shape") else None
    b = d(arrays(dtype, (ac,))) if affine in ("both", "bias", "wrong_shape") else None
    mx, mw, mb = M(x, True), None if wt is None else M(wt, True), None if b is None else M(b, True)
    tx, tw, tb = T(x, True), None if wt is None else T(wt, True), None if b is None else T(b, True)
    mrm, mrv = (None, None) if rm is None else (M(rm), M(rv))
    trm, trv = (None, None) if rm is None else (T(rm), T(rv))
    kw = dict(training=training, momentum=momentum, eps=eps)

    def mfn():
        return F.batch_norm(mx, mrm, mrv, mw, mb, **kw), mrm, mrv

    def tfn():
        return TF.batch_norm(tx, trm, trv, tw, tb, **kw), trm, trv

    def any_momentum():  # PyTorch's functional form has no cumulative average: the output at least must be right
        return TF.batch_norm(T(x), None if rm is None else T(rm), None if rv is None else T(rv),
                             None if wt is None else T(wt), None if b is None else T(b),
                             training=training, momentum=0.1, eps=eps), ANY, ANY

    def stats_cast():  # running statistics of another float dtype: PyTorch refuses them, using them is right too
        if rm is None or not is_float(sdt):
            raise TypeError("no statistics to cast")
        return TF.batch_norm(T(x), T(rm.astype(dtype)), T(rv.astype(dtype)), None if wt is None else T(wt),
                             None if b is None else T(b), **kw), ANY, ANY
    check("batch_norm", ["batch_norm"], mfn, tfn, call("F.batch_norm", x, rm, rv, wt, b, **kw),
          in_dtypes=[dtype, sdt], alt=(any_momentum,) if momentum is None else (stats_cast,),
          may_refuse=nonfloat(dtype) or eps <= 0 or (momentum is not None and not 0 <= momentum <= 1)
          or ((not training and rm is None) or (training and n == 0))  # PyTorch checks little on an empty batch
          or rank not in (2, 3, 4)  # minicnn documents (N, C), (N, C, L) and (N, C, H, W)
          or (n == 0 and "wrong_shape" in (stats, affine)),  # PyTorch checks no shape on an empty batch
          leaves=((mx, mw, mb), (tx, tw, tb)) if finite(x, wt, b) else None)


ACTIVATIONS = {
    "relu": (lambda x, a: F.relu(x), lambda x, a: TF.relu(x)),
    "leaky_relu": (lambda x, a: F.leaky_relu(x, a), lambda x, a: TF.leaky_relu(x, a)),
    "sigmoid": (lambda x, a: F.sigmoid(x), lambda x, a: torch.sigmoid(x)),
    "tanh": (lambda x, a: F.tanh(x), lambda x, a: torch.tanh(x)),
    "softmax": (lambda x, a: F.softmax(x, a), lambda x, a: TF.softmax(x, a)),
    "log_softmax": (lambda x, a: F.log_softmax(x, a), lambda x, a: TF.log_softmax(x, a)),
}


@FUZZ
@given(st.data())
def test_ops_activations(data):
    d = data.draw
    op = d(st.sampled_from(sorted(ACTIVATIONS)))
    dtype = d(dtypes)
    shape = tuple(d(st.lists(st.sampled_from([2, 3, 1, 0]), max_size=3)))
    x = d(arrays(dtype, shape))
    if op == "leaky_relu":
        arg = d(st.sampled_from([0.01, 0.2, 0.0, -1.0, 2, 1e30]))
    elif "softmax" in op:
        arg = d(st.sampled_from([-1, -1, 0, 1, 2, -2, 3, -4, None]))
    else:
        arg = None
    mx, tx = M(x, True), T(x, True)
    mfn, tfn = ACTIVATIONS[op]
    alt = [lambda: tfn(T64(x), arg)]
    if op == "leaky_relu" and arg == 0:  # PyTorch computes -inf * 0 = NaN there; relu's 0 is right too
        alt.append(lambda: TF.relu(T(x)))
    if "softmax" in op and arg is None:  # NumPy's meaning of axis=None: the whole tensor
        alt.append(lambda: tfn(T(x).reshape(-1), 0).reshape(x.shape))
    refuse = nonfloat(dtype) or ("softmax" in op and (arg is None or x.ndim == 0))
    check(op, [op], lambda: mfn(mx, arg), lambda: tfn(tx, arg),
          call(f"F.{op}", x, *([arg] if arg is not None or "softmax" in op else [])), in_dtypes=[dtype],
          may_refuse=refuse, alt=alt, leaves=((mx,), (tx,)) if finite(x) else None)


@FUZZ
@given(st.data())
def test_ops_linear(data):
    d = data.draw
    dtype = d(dtypes)
    wdtype = d(st.sampled_from([dtype] * 5 + ["float32", "float64", "int64"]))
    fin, fout = d(st.sampled_from([3, 2, 1, 0])), d(st.sampled_from([2, 3, 1, 0]))
    lead = tuple(d(st.lists(st.sampled_from([2, 1, 0]), max_size=2)))
    xin = fin + d(st.sampled_from([0, 0, 0, 1]))
    x = d(arrays(dtype, lead + (xin,) if d(st.integers(0, 9)) else ()))
    wshape = d(st.sampled_from([(fout, fin)] * 5 + [(fin,), (fout, fin, 1)]))
    wt = d(arrays(wdtype, wshape))
    bias = d(st.sampled_from(["none", "ok", "ok", "wrong"]))
    b = None if bias == "none" else d(arrays(wdtype, (fout + (bias == "wrong"),)))
    mx, mw, mb = M(x, True), M(wt, True), None if b is None else M(b, True)
    tx, tw, tb = T(x, True), T(wt, True), None if b is None else T(b, True)
    def promoted():  # PyTorch wants one dtype: the product in the promoted dtype is right too
        dt = torch.promote_types(tx.dtype, tw.dtype)
        return TF.linear(T(x).to(dt), T(wt).to(dt), None if b is None else T(b).to(dt))
    check("linear", ["linear"], lambda: F.linear(mx, mw, mb), lambda: TF.linear(tx, tw, tb),
          call("F.linear", x, wt, b), in_dtypes=[dtype, wdtype], alt=[promoted],
          may_refuse=nonfloat(dtype, wdtype) or 0 in (fin, fout) or len(wshape) != 2,
          leaves=((mx, mw, mb), (tx, tw, tb)) if finite(x, wt, b) else None)


@FUZZ
@given(st.data())
def test_ops_losses(data):
    d = data.draw
    op = d(st.sampled_from(["cross_entropy", "cross_entropy", "hinge_loss", "mse_loss"]))
    dtype = d(dtypes)
    n, ncls = d(st.sampled_from([2, 3, 1, 0])), d(st.sampled_from([3, 2, 1]))
    rank = d(st.sampled_from([2] * 6 + [1, 3]))
    shape = (n, ncls, 2)[:rank] if rank > 1 else (ncls,)
    x = d(arrays(dtype, shape, modes=MODES + ("special",)))
    mx, tx = M(x, True), T(x, True)
    leaves = ((mx,), (tx,)) if finite(x) else None
    if op == "mse_loss":
        kind = d(st.sampled_from(["same", "same", "other_dtype", "broadcast", "tensor", "scalar"]))
        tdt = dtype if kind != "other_dtype" else d(dtypes)
        tshape = shape[1:] if kind == "broadcast" else shape
        tgt = 0.5 if kind == "scalar" else d(arrays(tdt, tshape))
        mt = M(tgt) if kind == "tensor" else tgt
        tt = tgt if kind == "scalar" else T(tgt)
        check(op, [op], lambda: F.mse_loss(mx, mt), lambda: TF.mse_loss(tx, tt), call("F.mse_loss", x, mt),
              in_dtypes=[dtype] + ([] if kind == "scalar" else [tdt]),
              may_refuse=nonfloat(dtype) or kind in ("broadcast", "scalar"),
              alt=[lambda: TF.mse_loss(T64(x), T64(tgt))] if kind != "scalar" else [], leaves=leaves)
        return
    kind = d(st.sampled_from(["int64"] * 4 + ["int32", "uint8", "list", "tensor", "float32", "bool",
                                             "out_of_range", "wrong_shape"]))
    seed = d(st.integers(0, 99))
    rng = np.random.default_rng(seed)
    nlab = n + (kind == "wrong_shape")
    labels = rng.integers(0, ncls, size=nlab if rank != 1 else ())
    if kind == "out_of_range" and labels.size:
        labels.flat[rng.integers(0, labels.size)] = rng.choice([-1, ncls, ncls + 3])
    if kind in ("int32", "uint8", "float32", "bool"):
        labels = labels.astype(kind)
    if rank == 3:
        labels = np.stack([labels, labels], axis=-1)
    mt = labels.tolist() if kind == "list" else M(labels) if kind == "tensor" else labels
    tt = T(labels)
    tlong = T(labels.astype(np.int64)) if labels.dtype.kind in "iu" else None
    desc_t = labels.tolist() if kind == "list" else mt
    if op == "cross_entropy":
        ls = d(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.1, 1.5]))
        alt = [lambda: TF.cross_entropy(tx.detach(), tlong, label_smoothing=ls)] if tlong is not None else []
        check(op, [op], lambda: F.cross_entropy(mx, mt, label_smoothing=ls),
              lambda: TF.cross_entropy(tx, tt, label_smoothing=ls),
              call("F.cross_entropy", x, desc_t, label_smoothing=ls), in_dtypes=[dtype],
              may_refuse=nonfloat(dtype) or rank != 2 or kind in ("float32", "bool") or not 0 <= ls <= 1
              or (kind == "list" and n == 0), alt=alt, leaves=leaves)
    else:
        margin = d(st.sampled_from([1.0, 1.0, 0.0, 2.5, -1.0]))
        c = shape[-1] if rank == 2 else 1

        def hinge(xt, yt):
            return (TF.multi_margin_loss(xt, yt, margin=margin, reduction="none") * c).mean()
        alt = [lambda: hinge(tx.detach(), tlong), lambda: hinge(T64(x), tlong)] if tlong is not None else []
        if not finite(x):  # PyTorch's kernel skips NaN margins (NaN > 0 is false): a NaN loss is right too
            alt.append(lambda: torch.tensor(NAN, dtype=tx.dtype))
        check(op, [op], lambda: F.hinge_loss(mx, mt, margin=margin), lambda: hinge(tx, tt),
              call("F.hinge_loss", x, desc_t, margin=margin), in_dtypes=[dtype],
              may_refuse=nonfloat(dtype) or rank != 2 or kind in ("float32", "bool") or (kind == "list" and n == 0),
              alt=alt, leaves=leaves)


@FUZZ
@given(st.data())
def test_ops_local_response_norm(data):
    d = data.draw
    dtype = d(dtypes)
    size = d(st.sampled_from([1, 2, 3, 5, 5, 0, -1, 2.5]))
    alpha = d(st.sampled_from([1e-4, 1.0, 0.0]))
    beta = d(st.sampled_from([0.75, 0.0, 2.0, -0.5]))
    k = d(st.sampled_from([1.0, 1.0, 2.0, 0.0]))
    rank = d(st.sampled_from([4, 4, 4, 3, 2, 5]))
    shape = (d(st.sampled_from([1, 2, 0])), d(st.sampled_from([4, 3, 1])), 3, 2, 2)[:rank]
    x = d(arrays(dtype, shape))
    mx, tx = M(x, True), T(x, True)
    kw = dict(alpha=alpha, beta=beta, k=k)
    check("local_response_norm", ["local_response_norm"], lambda: F.local_response_norm(mx, size, **kw),
          lambda: TF.local_response_norm(tx, size, **kw), call("F.local_response_norm", x, size, **kw),
          in_dtypes=[dtype], may_refuse=nonfloat(dtype) or not isinstance(size, int) or size < 1,
          alt=[lambda: TF.local_response_norm(T64(x), size, **kw)],
          leaves=((mx,), (tx,)) if finite(x) else None)


@FUZZ
@given(st.data())
def test_ops_dropout(data):
    d = data.draw
    dtype = d(dtypes)
    p = d(st.sampled_from([0.0, 0.5, 0.3, 1.0, -0.1, 1.5, NAN]))
    training = d(st.booleans())
    x = d(arrays(dtype, tuple(d(st.lists(st.sampled_from([3, 2, 0]), max_size=3)))))
    mx, tx = M(x), T(x)

    def cmp(got, want):
        if not training or p in (0.0, 1.0):
            return mismatch(got, want, exact=True)
        if not isinstance(got, mc.Tensor) or got.shape != x.shape or got.dtype != x.dtype:
            return f"got {summ(got)}, want a Tensor {x.dtype}{list(x.shape)}"
        g, kept = np_of(got).astype(np.complex128), (x / (1 - p)).astype(np.complex128)
        with np.errstate(all="ignore"):
            ok = (g == 0) | np.isclose(g, kept, rtol=RTOL[min(x.dtype.itemsize, 8)], equal_nan=True)
            ok |= np.isnan(g) & np.isinf(x)  # a dropped inf is inf * 0 = NaN, in PyTorch too
        return None if ok.all() else f"element {np.argwhere(~ok)[0].tolist()} is neither 0 nor x/(1-p)"
    check("dropout", ["dropout"], lambda: F.dropout(mx, p, training), lambda: TF.dropout(tx, p, training),
          call("F.dropout", x, p, training), in_dtypes=[dtype], may_refuse=nonfloat(dtype), cmp=cmp)




# --- the examples of issue 16, as fixed draws (each class the issue lists, judged like every other draw) --------
def issue16_examples():
    """(op, names, description, input arrays, minicnn fn, torch fn, may refuse, compare gradients)."""
    x5, x3 = A("float32", (1, 2, 5, 5), 1), A("float32", (2, 3), 3)
    i4 = A("int64", (1, 1, 4, 4), 4)
    yield ("max_pool2d", ["max_pool2d"], "F.max_pool2d(x (1, 2, 5, 5), 2, ceil_mode=True)", [x5],
           lambda x: F.max_pool2d(x, 2, ceil_mode=True), lambda x: TF.max_pool2d(x, 2, ceil_mode=True), False, True)
    yield ("*", ["mul"], "uint8 tensor * (1/255)", [A("uint8", (2, 3), 2)], lambda x: x * (1 / 255),
           lambda x: x * (1 / 255), False, False)
    yield ("cross_entropy", ["cross_entropy"], "F.cross_entropy with a -inf logit that is not the target",
           [np.array([[0.5, -INF, 1.0], [2.0, 0.0, -INF]], np.float32)],
           lambda x: F.cross_entropy(x, np.array([0, 1])), lambda x: TF.cross_entropy(x, torch.tensor([0, 1])),
           False, True)
    for axis in (2, -3):
        yield ("cat", ["cat"], f"mc.cat([x (2, 3)] * 2, axis={axis})", [x3, x3],
               lambda a, b, axis=axis: mc.cat([a, b], axis=axis), lambda a, b, axis=axis: torch.cat([a, b], axis),
               False, True)
        yield ("stack", ["stack"], f"mc.stack([x (2, 3)], axis={axis + 1})", [x3],
               lambda a, axis=axis: mc.stack([a], axis=axis + 1), lambda a, axis=axis: torch.stack([a], axis + 1),
               False, True)
        yield ("flatten", ["flatten"], f"x (2, 3).flatten({axis})", [x3], lambda a, axis=axis: a.flatten(axis),
               lambda a, axis=axis: torch.flatten(a, axis), False, True)
    for op, mfn, tfn in (("avg_pool2d", lambda t: F.avg_pool2d(t, 2), lambda t: TF.avg_pool2d(t.double(), 2)),
                         ("global_avg_pool2d", F.global_avg_pool2d, lambda t: TF.adaptive_avg_pool2d(t.double(), 1)),
                         ("adaptive_avg_pool2d", lambda t: F.adaptive_avg_pool2d(t, 3),
                          lambda t: TF.adaptive_avg_pool2d(t.double(), 3)),
                         ("leaky_relu", lambda t: F.leaky_relu(t, 0.5), lambda t: TF.leaky_relu(t.double(), 0.5))):
        yield (op, [op], f"F.{op} on int64 (no truncation)", [i4], mfn, tfn, True, False)
    yield ("**", ["pow"], "x ** y at x = 0 (d/dy as PyTorch's)", [np.array([0.0, 0.0, 2.0]), np.array([0.0, 1.5, 2.0])],
           lambda a, b: a ** b, lambda a, b: a ** b, False, True)
    yield ("iter", ["iter"], "list(x (2, 3))", [x3], list, list, False, False)
    yield ("float", ["float"], "float(x (1, 1))", [x3[:1, :1]], float, float, False, False)
    yield ("np.array", ["array"], "np.array(x (2, 3))", [x3], np.array, np.array, False, False)
    yield ("conv2d", ["conv2d"], "F.conv2d on an empty batch (forward and backward)",
           [A("float64", (0, 2, 5, 5), 5), A("float64", (3, 2, 3, 3), 6)], F.conv2d, TF.conv2d, False, True)
    yield ("conv2d", ["conv2d"], "F.conv2d on float16", [x5.astype("float16"), A("float16", (3, 2, 3, 3), 6)],
           F.conv2d, conv_torch, True, False)
    yield ("softmax", ["softmax"], "F.softmax(x, axis=None)", [x3], lambda a: F.softmax(a, axis=None),
           lambda a: TF.softmax(a.reshape(-1), 0).reshape(2, 3), True, False)


def test_ops_issue16_examples():
    """The inputs issue 16 names (its listed classes), each judged like a fuzz draw."""
    failures = []
    for op, names, desc, inputs, mfn, tfn, refuse, grads in issue16_examples():
        mts, tts = [M(a, grads) for a in inputs], [T(a, grads) for a in inputs]
        try:
            check(op, names, lambda: mfn(*mts), lambda: tfn(*tts), desc, in_dtypes=[a.dtype for a in inputs],
                  may_refuse=refuse, leaves=(mts, tts) if grads else None)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)

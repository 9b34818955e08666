"""Fuzz cases: tensor (see verdicts.py for how each draw is judged)."""

import minicnn as mc  # noqa: F401  (before PyTorch: Numba's OpenMP threads sleep between kernels)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from verdicts import (A, FUZZ, INF, M, NAN, T, T64, arrays, call, check, dtypes, finite, label,  # noqa: E402
                      mismatch)


# --- Tensor methods and operators ---------------------------------------------------------------------------------
shapes = st.lists(st.sampled_from([2, 3, 1, 0]), max_size=3).map(tuple)


@FUZZ
@given(st.data())
def test_tensor_reductions(data):
    d = data.draw
    op = d(st.sampled_from(["sum", "mean", "max"]))
    dtype = d(dtypes)
    x = d(arrays(dtype, d(shapes)))
    axis = d(st.one_of(st.none(), st.integers(-4, 3), st.lists(st.integers(-4, 3), max_size=3).map(tuple)))
    keepdims = d(st.booleans())
    mx, tx = M(x, True), T(x, True)
    tdim = tuple(range(x.ndim)) if axis is None else axis
    tfn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax}[op]
    nfn = {"sum": np.sum, "mean": np.mean, "max": np.max}[op]
    alt = [] if x.dtype.kind == "c" else [lambda: torch.from_numpy(np.asarray(nfn(x, axis=axis, keepdims=keepdims)))]
    if op == "mean":
        alt.append(lambda: torch.mean(T64(x), dim=tdim, keepdim=keepdims))
    check(op, [op], lambda: getattr(mx, op)(axis=axis, keepdims=keepdims),
          lambda: tfn(tx, dim=tdim, keepdim=keepdims), f"{call('mc.tensor', x)}.{op}(axis={axis!r}, "
          f"keepdims={keepdims})", in_dtypes=[dtype], may_refuse=x.ndim == 0 and axis is not None, alt=alt,
          leaves=((mx,), (tx,)) if finite(x) else None)


@FUZZ
@given(st.data())
def test_tensor_shape_ops(data):
    d = data.draw
    op = d(st.sampled_from(["reshape", "reshape", "transpose", "transpose", "flatten", "T"]))
    dtype = d(dtypes)
    shape = tuple(d(st.lists(st.sampled_from([2, 3, 1, 0]), max_size=4)))
    x = d(arrays(dtype, shape))
    mx, tx = M(x, True), T(x, True)
    n = x.ndim
    if op == "reshape":
        size = x.size
        choice = d(st.sampled_from(["same", "flat", "minus1", "two_minus1", "wrong", "neg", "zero"]))
        target = {"same": shape, "flat": (size,), "minus1": (-1,) + shape[1:], "two_minus1": (-1, -1),
                  "wrong": (size + 1,), "neg": (-2, max(1, size)), "zero": (0, -1)}[choice]
        as_tuple = d(st.booleans())
        mfn = (lambda: mx.reshape(target)) if as_tuple else (lambda: mx.reshape(*target))
        tfn, desc = lambda: tx.reshape(target), f"{call('mc.tensor', x)}.reshape{target!r}"
        alt = [lambda: torch.from_numpy(x.reshape(target))]
    elif op == "transpose":
        choice = d(st.sampled_from(["none", "perm", "perm", "random"]))
        if choice == "none":
            axes = ()
        elif choice == "perm":
            axes = tuple(d(st.permutations(range(n))))
            axes = tuple(a - n if d(st.booleans()) else a for a in axes)
        else:
            axes = tuple(d(st.lists(st.integers(-5, 4), min_size=max(0, n - 1), max_size=n + 1)))
        mfn = lambda: mx.transpose(*axes)  # noqa: E731
        tfn = lambda: tx.permute(*(axes or range(n - 1, -1, -1))) if axes or n else tx.clone()  # noqa: E731
        desc, alt = f"{call('mc.tensor', x)}.transpose{axes!r}", [lambda: torch.from_numpy(x.transpose(axes or None))]
    elif op == "flatten":
        start = d(st.integers(-5, 4))
        mfn, tfn = lambda: mx.flatten(start), lambda: torch.flatten(tx, start)
        desc, alt = f"{call('mc.tensor', x)}.flatten({start})", []
    else:
        mfn, tfn = lambda: mx.T, lambda: tx.permute(*range(n - 1, -1, -1)) if n else tx.clone()
        desc, alt = f"{call('mc.tensor', x)}.T", []
    names = {"T": ["transpose", "T"]}.get(op, [op])
    check(op, names, mfn, tfn, desc, in_dtypes=[dtype], alt=alt, may_refuse=op == "flatten" and n == 0,
          leaves=((mx,), (tx,)) if finite(x) else None)


@st.composite
def index_items(draw, ndim):
    kind = draw(st.sampled_from(["int", "int", "slice", "slice", "none", "ellipsis", "int_array", "tensor",
                                 "bool_mask", "list", "float"]))
    if kind == "int":
        return draw(st.integers(-4, 3))
    if kind == "slice":
        return slice(draw(st.sampled_from([None, 0, 1, -1, 5])), draw(st.sampled_from([None, 2, -1, 0])),
                     draw(st.sampled_from([None, None, 1, 2, -1, 0])))
    if kind == "none":
        return None
    if kind == "ellipsis":
        return Ellipsis
    if kind in ("int_array", "tensor", "list"):
        vals = draw(st.lists(st.integers(-3, 3), max_size=3))
        arr = np.array(vals, dtype=draw(st.sampled_from(["int64", "int32"])))
        return vals if kind == "list" else M(arr) if kind == "tensor" else arr
    if kind == "bool_mask":
        return np.array(draw(st.lists(st.booleans(), min_size=0, max_size=3)), dtype=bool)
    return 1.5


def torch_index(idx):
    def one(i):
        if isinstance(i, mc.Tensor):
            return torch.from_numpy(i.numpy().copy())
        if isinstance(i, np.ndarray):
            return torch.from_numpy(i.copy())
        return i
    return tuple(one(i) for i in idx) if isinstance(idx, tuple) else one(idx)


def numpy_index(i):
    return i.numpy() if isinstance(i, mc.Tensor) else i


@FUZZ
@given(st.data())
def test_tensor_indexing(data):
    d = data.draw
    dtype = d(dtypes)
    x = d(arrays(dtype, d(shapes)))
    items = d(st.lists(index_items(x.ndim), min_size=1, max_size=3))
    idx = items[0] if len(items) == 1 and d(st.booleans()) else tuple(items)
    mx, tx = M(x, True), T(x, True)
    np_idx = tuple(numpy_index(i) for i in idx) if isinstance(idx, tuple) else numpy_index(idx)
    alt = [lambda: torch.from_numpy(np.array(x[np_idx]))]  # NumPy's indexing (negative steps, empty masks)
    check("getitem", ["getitem", "index"], lambda: mx[idx], lambda: tx[torch_index(idx)],
          f"{call('mc.tensor', x)}[{label(idx)}]", in_dtypes=[dtype], alt=alt,
          # PyTorch checks no index when nothing is selected, and takes several ellipses
          may_refuse=lambda t: t.numel() == 0 or sum(i is Ellipsis for i in items) > 1,
          leaves=((mx,), (tx,)) if finite(x) else None)


CONVERSIONS = {
    "iter": (lambda t: list(t), ["iter", "iteration", "iterate", "0-d", "len"]),
    "float": (lambda t: float(t), ["float", "item", "scalar"]),
    "int": (lambda t: int(t), ["int", "integer", "item", "scalar"]),
    "bool": (lambda t: bool(t), ["bool", "truth", "item"]),
    "len": (lambda t: len(t), ["len", "0-d"]),
    "item": (lambda t: t.item(), ["item"]),
}


@FUZZ
@given(st.data())
def test_tensor_conversions(data):
    d = data.draw
    op = d(st.sampled_from(sorted(CONVERSIONS) + ["np.array", "np.array", "iter"]))
    dtype = d(dtypes)
    x = d(arrays(dtype, tuple(d(st.lists(st.sampled_from([1, 1, 2, 0]), max_size=3)))))
    mx, tx = M(x), T(x)
    if op == "np.array":
        check(op, ["array"], lambda: np.array(mx), lambda: np.array(tx), f"np.array({call('mc.tensor', x)})",
              cmp=lambda got, want: mismatch(got, want, exact=True))
        return
    fn, names = CONVERSIONS[op]
    check(op, names, lambda: fn(mx), lambda: fn(tx), f"{op}({call('mc.tensor', x)})", in_dtypes=[dtype],
          allowed=(ValueError, TypeError, IndexError) + ((OverflowError,) if op == "int" else ()))  # int(inf)


BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
          "**": lambda a, b: a ** b, "@": lambda a, b: a @ b}
BINARY_NAMES = {"+": ["add", "+"], "-": ["sub", "-"], "*": ["mul", "*"], "/": ["div", "/"], "**": ["pow", "**"],
                "@": ["matmul", "@"]}
for _names in BINARY_NAMES.values():
    _names.append("tensor")  # the other operand refused as a tensor ("tensor: expected numbers, got complex128")


@FUZZ
@given(st.data())
def test_tensor_operators(data):
    d = data.draw
    op = d(st.sampled_from(sorted(BINARY) + ["*", "/", "**"]))
    dtype = d(dtypes)
    if op == "@":
        m, k, n = d(st.sampled_from([2, 1, 0])), d(st.sampled_from([3, 2, 0])), d(st.sampled_from([2, 1]))
        lead = tuple(d(st.lists(st.sampled_from([2, 1]), max_size=1)))
        ashape = d(st.sampled_from([lead + (m, k), (k,), (m, k), ()]))
        oshape = d(st.sampled_from([(k, n), (k,), lead + (k, n), (k + 1, n), ()]))
    else:
        ashape = d(shapes)
        oshape = d(st.sampled_from([ashape, ashape[1:], ashape[-1:], (), (1,) * len(ashape), (4,)]))
    a = d(arrays(dtype, ashape))
    kind = d(st.sampled_from(["int", "float", "float", "bool", "special", "np_scalar", "array", "array",
                              "tensor", "tensor"]))
    odt = d(dtypes)
    if kind == "int":
        other = d(st.sampled_from([2, 0, -1, 3, 300, -2]))
    elif kind == "float":
        other = d(st.sampled_from([0.5, 1 / 255, -1.5, 2.0, 0.0, 3.0]))
    elif kind == "bool":
        other = d(st.booleans())
    elif kind == "special":
        other = d(st.sampled_from([NAN, INF, -INF]))
    elif kind == "np_scalar":
        other = A(odt, ())[()]
    else:
        other = d(arrays(odt, oshape))
    left = d(st.booleans())
    ma = M(a, True)
    mo = M(other, True) if kind == "tensor" else other
    ta = T(a, True)
    to = T(other, True) if kind == "tensor" else T(other) if kind == "array" else \
        other.item() if kind == "np_scalar" else other
    fn = BINARY[op]
    mfn = (lambda: fn(ma, mo)) if left else (lambda: fn(mo, ma))
    tfn = (lambda: fn(ta, to)) if left else (lambda: fn(to, ta))
    in_dt = [dtype, odt if kind in ("array", "tensor", "np_scalar") else
             "float64" if kind in ("float", "special") else "int64"]
    sa, so = call("mc.tensor", a), label(mo) if kind != "np_scalar" else f"np.{other.dtype}({other.item()!r})"
    desc = f"{sa} {op} {so}" if left else f"{so} {op} {sa}"
    leaves = None
    if finite(a, other if kind in ("array", "tensor") else np.zeros(0)) and "complex128" not in (dtype, odt) and \
            not (op == "**" and kind == "bool"):  # PyTorch's x ** False has a NaN gradient at 0 (d/dx x^0 = 0)
        leaves = ((ma, mo if kind == "tensor" else None), (ta, to if kind == "tensor" else None))
    # Python numbers are weak (they take the tensor's dtype where its kind can hold them), as in PyTorch;
    # a 0-d NumPy array is a full array in NumPy 2, a 0-d tensor (weak) in PyTorch: minicnn may follow either
    alt = [lambda: torch.from_numpy(np.asarray(fn(a, other) if left else fn(other, a)))] \
        if kind == "array" and np.ndim(other) == 0 else []

    def promoted():  # PyTorch's matmul wants one dtype: the product in the promoted dtype is right too
        if not isinstance(to, torch.Tensor):
            raise TypeError("a Python number")
        dt = torch.promote_types(ta.dtype, to.dtype)
        return fn(ta.detach().to(dt), to.detach().to(dt)) if left else fn(to.detach().to(dt), ta.detach().to(dt))

    def bool_as_int():  # PyTorch refuses `-` with a bool operand; NumPy's 0/1 meaning is right too
        def conv(v, other):
            dt = other.dtype if isinstance(other, torch.Tensor) else torch.int64
            return int(v) if isinstance(v, bool) else v.detach().to(dt) \
                if isinstance(v, torch.Tensor) and v.dtype == torch.bool else v
        if (kind == "bool" or (kind in ("array", "tensor", "np_scalar") and odt == "bool")) == (dtype == "bool"):
            raise TypeError("not exactly one bool operand")
        return fn(conv(ta, to), conv(to, ta)) if left else fn(conv(to, ta), conv(ta, to))
    alt += [promoted] if op == "@" else [bool_as_int] if op == "-" else []
    if op == "**" and not (finite(a) and (kind != "special")):  # (-inf) ** 0.5: NaN (NumPy) or inf (C's pow)
        alt.append(lambda: torch.from_numpy(np.asarray(fn(a, np.asarray(other)) if left else
                                                       fn(np.asarray(other), a))))
    fits = kind != "int" or np.dtype(dtype).kind not in "iu" or \
        np.iinfo(dtype).min <= other <= np.iinfo(dtype).max
    int_pow = op == "**" and np.dtype(dtype).kind in "iub" and np.dtype(in_dt[1]).kind in "iub"
    check(op, BINARY_NAMES[op], mfn, tfn, desc, in_dtypes=in_dt, alt=alt, leaves=leaves,
          # a Python int the integer tensor cannot hold (PyTorch wraps it around); integers to negative integer
          # powers (NumPy refuses them)
          may_refuse=not fits or int_pow or "complex128" in (dtype, in_dt[1]))  # mc.tensor refuses complex


@FUZZ
@given(st.data())
def test_tensor_cat_stack(data):
    d = data.draw
    op = d(st.sampled_from(["cat", "stack"]))
    base = tuple(d(st.lists(st.sampled_from([2, 1, 3]), min_size=0, max_size=3)))
    count = d(st.sampled_from([2, 2, 3, 1, 0]))
    dtype = d(dtypes)
    parts = []
    for _ in range(count):
        shape = list(base)
        change = d(st.sampled_from(["none", "none", "none", "axis0", "dim", "ndim", "dtype"]))
        if change == "axis0" and shape:
            shape[0] = d(st.sampled_from([1, 3]))
        elif change == "dim" and shape:
            i = d(st.integers(0, len(shape) - 1))
            shape[i] += 1
        elif change == "ndim":
            shape = shape + [2]
        parts.append(d(arrays(d(dtypes) if change == "dtype" else dtype, tuple(shape))))
    axis = d(st.integers(-4, 4))
    ms, ts = [M(p, True) for p in parts], [T(p, True) for p in parts]
    mfn = lambda: getattr(mc, op)(ms, axis=axis)  # noqa: E731
    tfn = lambda: getattr(torch, op)(ts, dim=axis)  # noqa: E731
    check(op, [op, "tensor"], mfn, tfn, f"mc.{op}([{', '.join(call('mc.tensor', p) for p in parts)}], axis={axis})",
          in_dtypes=[p.dtype for p in parts] or [dtype],
          leaves=(ms, ts) if finite(*parts) and all(p.dtype == parts[0].dtype for p in parts) else None)

"""What every fuzz group shares: hypothesis settings, the inputs a draw stands for, and the verdicts that judge a
draw against PyTorch. The group modules (ops.py, tensor.py, nn_optim.py, checkpoints.py) import it; tests/test_fuzz.py
runs each group in a subprocess of its own. None of these files is collected by the suite itself (their names do
not start with test_); to run one directly:

    python -m pytest tests/fuzz/ops.py -p no:cacheprovider -q

For every hypothesis draw, minicnn and PyTorch run the same call:
  - PyTorch returns: minicnn must return the same values (dtype kind, shape, NaN/inf pattern, values within a
    tolerance for the lower precision of the two) and, where the inputs require gradients, the same gradients;
    or, where the draw is outside what minicnn documents (float16/integer/complex inputs to network ops, 0-d
    tensors with an axis, zero-size channels or features, nonsense hyper-parameters PyTorch takes), a clear error.
  - PyTorch raises: minicnn must raise a clear error, unless it returns the mathematically right answer where
    PyTorch merely lacks a kernel for the dtype (an "alternative" oracle, e.g. the float64 result).
A clear error is a ValueError, TypeError or IndexError (or a subclass defined outside NumPy, Numba and PyTorch)
whose message names the op; never a segfault, a Numba typing error, a ZeroDivisionError, an AttributeError or
KeyError from inside, a NumPy error, or a silently different answer.

Environment: CI=1 derandomizes; FUZZ_EXAMPLES sets max_examples (default 25); FUZZ_COLLECT=path records every
failure as a JSON line there and keeps going (a survey of all failure classes instead of the first).
"""
import json
import math
import os
import re
import warnings

import minicnn as mc  # before PyTorch: Numba's OpenMP threads sleep between kernels

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from hypothesis import HealthCheck, note, reject, settings  # noqa: E402
from hypothesis.control import currently_in_test_context  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

torch.set_num_threads(1)

FUZZ = settings(deadline=None, derandomize=bool(os.environ.get("CI")), database=None, print_blob=True,
                max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
                suppress_health_check=list(HealthCheck))
COLLECT = os.environ.get("FUZZ_COLLECT")

NAN, INF = float("nan"), float("inf")
DT_FLOAT = ("float32", "float64")
DT_OTHER = ("float16", "int64", "int32", "uint8", "int8", "bool", "complex128")
dtypes = st.sampled_from(DT_FLOAT * 3 + DT_OTHER)
MODES = ("uniform", "uniform", "grid", "special", "zeros")
ANY = object()  # in an oracle's result: any value is fine there


# --- inputs -------------------------------------------------------------------------------------------------------
def A(dtype, shape, seed=0, mode="uniform"):
    """The array a draw stands for (reproducible from its description): values in [-3, 3), or halves in [-2, 2]
    (ties) or with a quarter NaN/inf/-inf, or zeros; integers in [-4, 5] ([0, 5] unsigned)."""
    rng = np.random.default_rng(seed)
    dt, shape = np.dtype(dtype), tuple(shape)
    if dt.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    if dt.kind in "iu":
        return np.asarray(rng.integers(0 if dt.kind == "u" else -4, 6, size=shape)).astype(dt)
    if mode == "grid":
        v = rng.integers(-4, 5, size=shape) / 2
    elif mode == "zeros":
        v = np.zeros(shape)
    else:
        v = rng.uniform(-3, 3, size=shape)
    if mode == "special":
        v = np.where(rng.random(shape) < 0.25, rng.choice([NAN, INF, -INF], size=shape), v)
    if dt.kind == "c":
        v = v + 1j * rng.uniform(-1, 1, size=shape)
    return np.asarray(v).astype(dt)


_LABELS = {}


@st.composite
def arrays(draw, dtype, shape, modes=MODES):
    seed, mode = draw(st.integers(0, 2**16)), draw(st.sampled_from(modes))
    a = A(dtype, shape, seed, mode)
    if len(_LABELS) > 2000:
        _LABELS.clear()
    _LABELS[id(a)] = a, f"A({str(np.dtype(dtype))!r}, {tuple(shape)}, {seed}, {mode!r})"
    return a


def label(v):
    """A short reproducible description of an argument."""
    if isinstance(v, np.ndarray):
        known = _LABELS.get(id(v))
        return known[1] if known and known[0] is v else f"np.array({v.tolist()!r}, {str(v.dtype)!r})"
    if isinstance(v, mc.Tensor):
        return f"mc.tensor({label(v.data)})"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(label(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({str(v)!r})"
    return repr(v)


def call(name, *args, **kw):
    parts = [label(a) for a in args] + [f"{k}={label(v)}" for k, v in kw.items()]
    return f"{name}({', '.join(parts)})"


def is_float(dtype):
    return np.dtype(dtype).name in DT_FLOAT


def finite(*arrs):
    return all(not isinstance(a, np.ndarray) or a.dtype.kind not in "fc" or np.isfinite(a).all() for a in arrs)


def M(a, grad=False):
    """A minicnn tensor of a copy of a (requiring grad only for float32/float64). Where mc.tensor refuses the
    dtype (complex), the refusal must be clear, and the draw is dropped."""
    t, e = attempt(lambda: mc.tensor(np.array(a, copy=True), requires_grad=grad and is_float(a.dtype)))
    if e is not None:
        why = unclear(e, ["tensor"])
        if why:
            fail("tensor", f"mc.tensor({label(a)})", f"unclear error: {why}")
        _note(f"mc.tensor refuses {a.dtype}: {short(e)}")
        reject()
    return t


def T(a, grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(True) if grad and is_float(a.dtype) else t


def T64(a):
    """The float64 (or complex128) torch tensor of a: the oracle where PyTorch lacks a kernel for a dtype."""
    a = np.asarray(a)
    return torch.from_numpy(a.astype(np.complex128 if a.dtype.kind == "c" else np.float64))


# --- verdicts -----------------------------------------------------------------------------------------------------
def _note(text):
    if currently_in_test_context():  # (the helpers also run outside hypothesis, to reproduce a case by hand)
        note(text)


def attempt(fn):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return fn(), None
        except Exception as e:  # noqa: BLE001  (any exception is a verdict here)
            return None, e


def short(e, n=300):
    text = f"{type(e).__module__}.{type(e).__qualname__}: {e}".replace("\n", " ")
    return text if len(text) <= n else text[:n] + "..."


def unclear(e, names, allowed=(ValueError, TypeError, IndexError)):
    """None when e is a clear error naming one of `names`, else why it is not."""
    root = type(e).__module__.split(".")[0]
    if not isinstance(e, allowed) or root in ("numba", "numpy", "torch", "llvmlite"):
        return short(e)
    low = str(e).lower()
    if "nopython" in low or "numba" in low:
        return "a Numba error: " + short(e)
    if "allow_pickle" in low:
        return "an error suggesting allow_pickle: " + short(e)
    if not any(re.search(r"(?<![a-z0-9_])" + re.escape(n.lower()) + r"(?![a-z0-9_])", low) for n in names):
        return f"an error that does not name {names[0]!r}: " + short(e)
    return None


def fail(op, desc, msg):
    if COLLECT:
        with open(COLLECT, "a") as f:
            f.write(json.dumps({"op": op, "msg": msg, "desc": desc}) + "\n")
        return None
    raise AssertionError(f"{op}: {msg}\n    call: {desc}")


def summ(v):
    if isinstance(v, mc.Tensor):
        return f"Tensor {v.dtype}{list(v.shape)}"
    if isinstance(v, torch.Tensor):
        return f"torch {str(v.dtype)[6:]}{list(v.shape)}"
    if isinstance(v, np.ndarray):
        return f"ndarray {v.dtype}{list(v.shape)}"
    if isinstance(v, (list, tuple)):
        return type(v).__name__ + "[" + ", ".join(summ(x) for x in v[:4]) + (", ..." if len(v) > 4 else "") + "]"
    return f"{type(v).__name__} {v!r}"[:80]


def np_of(v):
    if isinstance(v, mc.Tensor):
        return np.asarray(v.numpy())
    if isinstance(v, torch.Tensor):
        return v.detach().resolve_conj().numpy()
    return np.asarray(v)


KINDS = {"b": "b", "i": "i", "u": "i", "f": "f", "c": "c"}
RTOL = {2: 4e-3, 4: 2e-4, 8: 1e-9}


def mismatch(got, want, exact=True, rtol_scale=1.0, rtol_floor=0.0):
    """None when got (minicnn's) equals want (the oracle's), else why not."""
    if want is ANY:
        return None
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            return f"got {summ(got)}, want {len(want)} items ({summ(want)})"
        for i, (g, w) in enumerate(zip(got, want)):
            why = mismatch(g, w, exact, rtol_scale, rtol_floor)
            if why:
                return f"item {i}: {why}"
        return None
    if want is None:
        return None if got is None else f"got {summ(got)}, want None"
    if isinstance(want, (bool, int, float, complex)):
        if type(got) is not type(want) and not (isinstance(want, float) and isinstance(got, float)):
            return f"got {summ(got)}, want Python {type(want).__name__} {want!r}"
        if got == want or (isinstance(want, float) and math.isnan(want) and math.isnan(got)):
            return None
        if isinstance(want, float) and abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            return None
        return f"got {got!r}, want {want!r}"
    if isinstance(want, torch.Tensor) and not isinstance(got, mc.Tensor):
        return f"got {summ(got)}, want a Tensor like {summ(want)}"
    if isinstance(want, np.ndarray) and not isinstance(got, np.ndarray):
        return f"got {summ(got)}, want an ndarray like {summ(want)}"
    g, w = np_of(got), np_of(want)
    if g.shape != w.shape:
        return f"shape {g.shape}, want {w.shape}"
    gk, wk = KINDS.get(g.dtype.kind, g.dtype.kind), KINDS.get(w.dtype.kind, w.dtype.kind)
    if gk != wk or (exact and g.dtype != w.dtype):
        return f"dtype {g.dtype}, want {w.dtype}"
    if wk in "bi":
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)[:3].tolist()
            at = tuple(np.array(bad).T)
            return f"values differ at {bad}: {g[at]} vs {w[at]}"
        return None
    size = min(g.dtype.itemsize // (2 if gk == "c" else 1), w.dtype.itemsize // (2 if wk == "c" else 1))
    rtol = max(RTOL[size] * rtol_scale, rtol_floor)
    gc, wc = g.astype(np.complex128), w.astype(np.complex128)
    gn, wn = np.isnan(gc), np.isnan(wc)
    if not np.array_equal(gn, wn):
        i = np.argwhere(gn != wn)[0]
        return f"NaN pattern differs at {i.tolist()}: {g[tuple(i)]} vs {w[tuple(i)]}"
    ginf, winf = np.isinf(gc) & ~gn, np.isinf(wc) & ~wn
    if not np.array_equal(ginf, winf) or not np.array_equal(gc[winf], wc[winf]):
        i = np.argwhere((ginf != winf) | (winf & (gc != wc)))[0]
        return f"infinities differ at {i.tolist()}: {g[tuple(i)]} vs {w[tuple(i)]}"
    ok = ~(wn | winf)
    if ok.any():
        with np.errstate(all="ignore"):
            return _close(g, w, gc, wc, ok, rtol)
    return None


def _close(g, w, gc, wc, ok, rtol):
    """Finite values within rtol of the oracle's (relative to each value and a tenth of the largest)."""
    scale = max(1.0, float(np.abs(wc[ok]).max()))
    err = np.abs(gc - wc)
    bad = ok & (err > rtol * (np.abs(wc) + 0.1 * scale))
    if bad.any():
        i = np.argwhere(bad)[0]
        return f"values differ at {i.tolist()}: {g[tuple(i)]} vs {w[tuple(i)]} (max error {err[ok].max():.3g})"
    return None


def check(op, names, mc_fn, torch_fn, desc, in_dtypes=(), may_refuse=False, alt=(), leaves=None, cmp=None,
          empty_ok=False, allowed=(ValueError, TypeError, IndexError)):
    """Run minicnn and PyTorch on one draw and judge minicnn (see the module docstring).

    names: what an error message may name; may_refuse: a clear error is fine even where PyTorch returns (or a
    predicate on PyTorch's result saying so); alt: other oracles whose answer is also right; empty_ok: an empty
    result is fine where PyTorch refuses (zero-size channels or features); leaves: (minicnn leaves, torch
    leaves) whose gradients of a random projection of the (first) output are compared; cmp: a custom comparison
    (got, want) -> reason or None.
    Returns (minicnn result, torch result) when both returned, else None."""
    exact = bool(in_dtypes) and all(np.dtype(d).kind == "f" for d in in_dtypes)
    t_out, t_err = attempt(torch_fn)
    m_out, m_err = attempt(mc_fn)
    _note(f"{op}: {desc}\n  torch: {short(t_err) if t_err else summ(t_out)}\n  minicnn: "
         f"{short(m_err) if m_err else summ(m_out)}")
    compare = cmp or (lambda got, want: mismatch(got, want, exact))

    def matches_alt():
        for fb in alt:
            f_out, f_err = attempt(fb)
            if f_err is None and mismatch(m_out, f_out, exact=False) is None:
                return True
        return False

    if m_err is not None:
        why = unclear(m_err, names, allowed)
        if why:
            return fail(op, desc, f"unclear error: {why}")
        if t_err is None and not (may_refuse(t_out) if callable(may_refuse) else may_refuse):
            return fail(op, desc, f"raised where PyTorch returns {summ(t_out)}: {short(m_err)}")
        return None
    if t_err is not None:
        if matches_alt() or (empty_ok and isinstance(m_out, mc.Tensor) and m_out.size == 0):
            return None
        return fail(op, desc, f"returned {summ(m_out)} where PyTorch raises {short(t_err, 160)}")
    why = compare(m_out, t_out)
    if why:
        if matches_alt():
            return None
        return fail(op, desc, f"differs from PyTorch: {why}")
    if leaves is not None:
        sizes = [np.dtype(d).itemsize for d in in_dtypes if np.dtype(d).kind == "f"]
        check_grads(op, names, desc, m_out, t_out, *leaves, rtol_floor=10 * RTOL[min(sizes, default=8)])
    return m_out, t_out


def check_grads(op, names, desc, m_out, t_out, m_leaves, t_leaves, rtol_floor=0.0):
    """Gradients of a random projection of the output, within 10x the tolerance of the least precise input
    (PyTorch computes some gradients in the precision of a float32 operand)."""
    mo = m_out[0] if isinstance(m_out, (tuple, list)) else m_out
    to = t_out[0] if isinstance(t_out, (tuple, list)) else t_out
    if not (isinstance(mo, mc.Tensor) and mo.requires_grad and to.requires_grad):
        return
    gw = A(str(mo.dtype), mo.shape, seed=12345)
    _, t_err = attempt(lambda: to.backward(torch.from_numpy(gw.copy())))
    _, m_err = attempt(lambda: mo.backward(gw.copy()))
    if m_err is not None:
        why = unclear(m_err, names + ["backward"])
        if why or t_err is None:
            return fail(op, desc, f"backward raised where PyTorch's works: {why or short(m_err)}")
        return
    if t_err is not None:
        return
    for i, (ml, tl) in enumerate(zip(m_leaves, t_leaves)):
        if ml is None or tl is None or not tl.requires_grad:
            continue
        tg = tl.grad if tl.grad is not None else torch.zeros_like(tl)
        mg = ml.grad if ml.grad is not None else mc.tensor(np.zeros(ml.shape, ml.dtype))
        why = mismatch(mg, tg, exact=True, rtol_scale=10, rtol_floor=rtol_floor)
        if why:
            return fail(op, desc, f"gradient of input {i} differs from PyTorch's: {why}")


def replay(value, err):
    """A callable that returns value or raises err again (a verdict on a call already made)."""
    def fn():
        if err is not None:
            raise err
        return value
    return fn


def nonfloat(*dts):
    return any(not is_float(d) for d in dts)


def conv_torch(*a, **kw):
    with torch.backends.mkldnn.flags(enabled=False):  # the plain algorithm: NaN/inf stay where they are
        return TF.conv2d(*a, **kw)

"""Fuzz cases: nn and optim (see verdicts.py for how each draw is judged)."""
import copy
import warnings

import minicnn as mc  # noqa: F401  (before PyTorch: Numba's OpenMP threads sleep between kernels)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from minicnn import nn, optim  # noqa: E402
from verdicts import (A, FUZZ, INF, M, NAN, T, _note, arrays, attempt, call, check, conv_torch, fail, mismatch,
                      replay, short, summ, unclear)  # noqa: E402


# --- nn layers ------------------------------------------------------------------------------------------------------
SIZES = st.sampled_from([1, 2, 3, 3, 0, -1, 2.5])


def layer_spec(d):
    """(class name, keyword arguments, input shape, functional names) for one drawn layer."""
    name = d(st.sampled_from(["Conv2d", "Linear", "BatchNorm2d", "BatchNorm1d", "MaxPool2d", "AvgPool2d",
                              "AdaptiveAvgPool2d", "LocalResponseNorm", "Dropout", "LeakyReLU", "Flatten"]))

    def pos(v, default):
        return v if isinstance(v, int) and v >= 0 else default
    if name == "Conv2d":
        kw = dict(in_channels=d(SIZES), out_channels=d(SIZES), kernel_size=d(SIZES),
                  stride=d(st.sampled_from([1, 1, 2, 0, -1])), padding=d(st.sampled_from([0, 0, 1, -1])),
                  dilation=d(st.sampled_from([1, 1, 2, 0])), groups=d(st.sampled_from([1, 1, 1, 2, 0, -1])),
                  bias=d(st.booleans()))
        return name, kw, (2, pos(kw["in_channels"], 1), 6, 6), ["conv2d"]
    if name == "Linear":
        kw = dict(in_features=d(SIZES), out_features=d(SIZES), bias=d(st.booleans()))
        return name, kw, (2, pos(kw["in_features"], 1)), ["linear"]
    if name in ("BatchNorm2d", "BatchNorm1d"):
        kw = dict(num_features=d(SIZES), eps=d(st.sampled_from([1e-5, 1e-5, 0.0, -1.0])),
                  momentum=d(st.sampled_from([0.1, 0.1, None, 0.0, 1.0, -0.5])), affine=d(st.booleans()),
                  track_running_stats=d(st.sampled_from([True, True, False])))
        c = pos(kw["num_features"], 1)
        return name, kw, (3, c, 2, 2) if name == "BatchNorm2d" else (3, c), ["batch_norm"]
    if name in ("MaxPool2d", "AvgPool2d"):
        kw = dict(kernel_size=d(SIZES), stride=d(st.sampled_from([None, 1, 2, 0, -1])),
                  padding=d(st.sampled_from([0, 0, 1, -1, 3])), ceil_mode=d(st.booleans()))
        return name, kw, (2, 2, 5, 5), ["max_pool2d" if name == "MaxPool2d" else "avg_pool2d"]
    if name == "AdaptiveAvgPool2d":
        return name, dict(output_size=d(st.sampled_from([1, 2, (2, 3), 0, -1, 2.5]))), (1, 2, 5, 5), \
            ["adaptive_avg_pool2d"]
    if name == "LocalResponseNorm":
        return name, dict(size=d(SIZES)), (2, 4, 3, 3), ["local_response_norm"]
    if name == "Dropout":
        return name, dict(p=d(st.sampled_from([0.5, 0.0, 1.0, -0.1, 1.5]))), (2, 3), ["dropout"]
    if name == "LeakyReLU":
        return name, dict(negative_slope=d(st.sampled_from([0.01, 0.0, -1.0, 2]))), (2, 3), ["leaky_relu"]
    return name, dict(start_axis=d(st.integers(-5, 4))), (2, 3, 2, 2), ["flatten"]


def torch_layer(name, kw):
    kw = dict(kw)
    if name == "Flatten":
        kw = dict(start_dim=kw["start_axis"])
    return getattr(torch.nn, name)(**kw)


@FUZZ
@given(st.data())
def test_nn_layers(data):
    d = data.draw
    name, kw, in_shape, fnames = layer_spec(d)
    dtype = d(st.sampled_from(["float32"] * 4 + ["float64"]))
    names = [name] + fnames
    desc = f"nn.{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())})"
    degenerate = any(v == 0 and k not in ("padding", "eps", "momentum", "p", "negative_slope", "start_axis", "bias",
                                          "ceil_mode", "affine", "track_running_stats")
                     for k, v in kw.items())
    nonsense = ((kw.get("momentum") is not None and not 0 <= kw.get("momentum", 0) <= 1) or kw.get("eps", 1) <= 0
                or any(isinstance(v, float) or (isinstance(v, int) and v < 0) for k, v in kw.items()
                       if k in ("in_channels", "out_channels", "kernel_size", "in_features", "out_features",
                                "num_features", "size", "output_size")))
    tl, t_err = attempt(lambda: torch_layer(name, kw))
    ml, m_err = attempt(lambda: getattr(nn, name)(**kw))
    _note(f"{desc}\n  torch: {short(t_err) if t_err else 'ok'}\n  minicnn: {short(m_err) if m_err else 'ok'}")
    if m_err is not None:
        why = unclear(m_err, names)
        if why:
            return fail(name, desc, f"unclear error from the constructor: {why}")
        if t_err is None and not (degenerate or nonsense):
            x = A("float32", in_shape)
            _, tf_err = attempt(lambda: tl(T(x)))
            if tf_err is None:  # PyTorch's layer works: refusing it is a failure
                return fail(name, desc, f"constructor raised where PyTorch's layer works: {short(m_err)}")
        return
    if t_err is not None:  # PyTorch refuses the arguments: minicnn must refuse them too, at the latest in forward
        x = A(dtype, in_shape)
        out, f_err = attempt(lambda: ml(M(x)))
        if f_err is None:
            return fail(name, desc, f"accepted arguments PyTorch refuses ({short(t_err, 160)}); forward gave "
                                    f"{summ(out)}")
        why = unclear(f_err, names)
        if why:
            return fail(name, desc, f"unclear error from forward: {why}")
        return
    sd = {k: v.detach().numpy().copy() for k, v in tl.state_dict().items()}
    _, l_err = attempt(lambda: ml.load_state_dict(sd))
    if l_err is not None:
        return fail(name, desc, f"cannot load PyTorch's state_dict of the same layer: {short(l_err)}")
    if name == "Dropout":
        ml.eval(), tl.eval()
    if dtype == "float64":
        ml.double(), tl.double()
    for step in range(3 if name.startswith("BatchNorm") else 1):
        x = A(dtype, in_shape, seed=step)
        mx, tx = M(x), T(x)
        alt = []
        if name == "Conv2d" and kw["in_channels"] == 0:  # PyTorch: no output channels; the bias alone is right too
            alt = [lambda: conv_torch(torch.zeros((x.shape[0], tl.groups, *x.shape[2:]), dtype=tl.weight.dtype),
                                      torch.zeros((tl.out_channels, 1, *tl.kernel_size), dtype=tl.weight.dtype),
                                      tl.bias, stride=tl.stride, padding=tl.padding, dilation=tl.dilation,
                                      groups=tl.groups)]
        res = check(name, names, lambda: ml(mx), lambda: tl(tx), f"{desc}(x={call('mc.tensor', x)}) [call {step}]",
                    in_dtypes=[dtype], may_refuse=degenerate or nonsense, empty_ok=degenerate, alt=alt)
        if res is None:
            return
        if name.startswith("BatchNorm") and kw["track_running_stats"]:
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                why = mismatch(getattr(ml, buf), getattr(tl, buf), exact=buf != "num_batches_tracked")
                if why:
                    return fail(name, desc, f"{buf} after call {step} differs from PyTorch's: {why}")
    if name.startswith("BatchNorm"):
        ml.eval(), tl.eval()
        x = A(dtype, in_shape, seed=7)
        check(name, names, lambda: ml(M(x)), lambda: tl(T(x)), f"{desc}.eval()(x={call('mc.tensor', x)})",
              in_dtypes=[dtype], may_refuse=degenerate or nonsense)


# --- optimizers -----------------------------------------------------------------------------------------------------
def optimizer_spec(d):
    name = d(st.sampled_from(["SGD", "SGD", "Adam", "AdamW", "RMSprop"]))
    if name == "SGD":
        mom = d(st.sampled_from([0.0, 0.9, 0.5, -0.5]))
        kw = dict(lr=d(st.sampled_from([0.1, 0.01, 0.0, -0.1])), momentum=mom,
                  dampening=d(st.sampled_from([0.0, 0.0, 0.5, -1.0])),
                  weight_decay=d(st.sampled_from([0.0, 0.01, -0.1])), nesterov=d(st.booleans()))
    elif name in ("Adam", "AdamW"):
        kw = dict(lr=d(st.sampled_from([1e-2, 1e-3, 0.0, -0.1])),
                  betas=d(st.sampled_from([(0.9, 0.999), (0.9, 0.999), (0.0, 0.5), (1.0, 0.9), (0.5, 1.5),
                                           (-0.1, 0.9)])),
                  eps=d(st.sampled_from([1e-8, 1e-8, 0.0, -1.0])), weight_decay=d(st.sampled_from([0.0, 1e-2, -0.1])))
    else:
        kw = dict(lr=d(st.sampled_from([1e-2, 1e-3, -0.1])), alpha=d(st.sampled_from([0.99, 0.9, -0.1, 2.0])),
                  eps=d(st.sampled_from([1e-8, 1e-8, 0.0, -1.0])), weight_decay=d(st.sampled_from([0.0, 1e-2, -0.1])),
                  momentum=d(st.sampled_from([0.0, 0.9, -0.5])), centered=d(st.booleans()))
    nonsense = (kw.get("dampening", 0) < 0 or not 0 <= kw.get("alpha", 0.5) <= 1 or kw.get("eps", 1) < 0
                or kw["lr"] < 0 or kw.get("weight_decay", 0) < 0 or kw.get("momentum", 0) < 0
                or not all(0 <= b < 1 for b in kw.get("betas", (0, 0))))
    return name, kw, nonsense


VALID_OPTIMIZERS = [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                    ("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01)),
                    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True))]


def make_optimizers(name, kw, arrays_):
    mps = [nn.Parameter(np.array(a, copy=True)) for a in arrays_]
    tps = [torch.nn.Parameter(torch.from_numpy(np.array(a, copy=True))) for a in arrays_]
    return mps, tps, (lambda: getattr(optim, name)(mps, **kw)), (lambda: getattr(torch.optim, name)(tps, **kw))


@FUZZ
@given(st.data())
def test_optim_steps(data):
    d = data.draw
    name, kw, nonsense = optimizer_spec(d)
    dtype = d(st.sampled_from(["float32", "float32", "float64", "float16"]))
    shapes_ = d(st.lists(st.sampled_from([(3,), (2, 3), (), (1, 2, 2)]), min_size=1, max_size=2))
    params = [d(arrays(dtype, s, modes=("uniform",))) for s in shapes_]
    grads = [[d(arrays(dtype, s, modes=("uniform", "uniform", "special", "zeros"))) for s in shapes_]
             for _ in range(3)]
    mps, tps, mk_m, mk_t = make_optimizers(name, kw, params)
    desc = f"optim.{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())}) on {[call('A', p) for p in params]}"
    names = [name]
    mopt, m_err = attempt(mk_m)
    topt, t_err = attempt(mk_t)
    if m_err is not None or t_err is not None:
        check(name, names, replay(mopt, m_err), replay(topt, t_err), desc, may_refuse=nonsense,
              cmp=lambda got, want: None)
        return
    for step, gs in enumerate(grads):
        for mp, tp, g in zip(mps, tps, gs):
            mp.grad, tp.grad = mc.tensor(g.copy()), torch.from_numpy(g.copy())

        def m_step():
            mopt.step()
            return [mc.tensor(p.data) for p in mps]

        def t_step():
            with torch.no_grad():
                topt.step()
            return [p.detach().clone() for p in tps]
        res = check(name, names, m_step, t_step,
                    f"{desc}, step {step} with grads {[call('A', g) for g in gs]}", in_dtypes=[dtype],
                    may_refuse=dtype == "float16" or nonsense)
        if res is None:
            return


@FUZZ
@given(st.data())
def test_optim_bad_grad(data):
    """p.grad of the wrong shape, dtype or type: a clear error from step(), or (for a real dtype that casts) the
    step PyTorch takes with the grad cast to p's dtype; never a wrong update or a crash."""
    d = data.draw
    name, kw = d(st.sampled_from(VALID_OPTIMIZERS))
    dtype = d(st.sampled_from(["float32", "float64"]))
    shape = d(st.sampled_from([(3,), (2, 3), (2, 2, 2)]))
    p = d(arrays(dtype, shape, modes=("uniform",)))
    bad = d(st.sampled_from(["shape_bigger", "shape_smaller", "shape_broadcast", "shape_transposed", "scalar",
                             "dtype", "dtype", "ndarray", "list", "ok"]))
    size = int(np.prod(shape))
    gshape = {"shape_bigger": (size + 5,), "shape_smaller": (1,), "shape_broadcast": (1,) + shape[1:],
              "shape_transposed": shape[::-1] if len(shape) > 1 and shape != shape[::-1] else (size, 1),
              "scalar": ()}.get(bad, shape)
    gdt = d(st.sampled_from(["float64" if dtype == "float32" else "float32", "float16", "int64", "bool",
                             "complex128"])) if bad == "dtype" else dtype
    g = d(arrays(gdt, gshape))
    mps, tps, mk_m, mk_t = make_optimizers(name, kw, [p])
    mopt, topt = mk_m(), mk_t()
    for _ in range(2):  # two steps: the second one uses the state (momentum buffers) the first one made
        mps[0].grad = g.copy() if bad == "ndarray" else g.tolist() if bad == "list" else M(g)
        tps[0].grad = torch.from_numpy(g.astype(dtype).reshape(shape)) if g.size == size and gdt != "complex128" \
            else None

        def m_step():
            mopt.step()
            return mc.tensor(mps[0].data)

        def t_step():
            if tps[0].grad is None or bad.startswith("shape") or bad == "scalar":
                raise ValueError("PyTorch refuses a grad of another shape")
            with torch.no_grad():
                topt.step()
            return tps[0].detach().clone()
        desc = f"p = nn.Parameter({call('A', p)}); opt = optim.{name}([p], **{kw!r}); p.grad = {bad}: " \
               f"{call('A', g)}; opt.step()"
        if check(name, [name, "step", "grad"], m_step, t_step, desc, in_dtypes=[dtype],
                 may_refuse=bad in ("dtype", "ndarray", "list")) is None:
            return


@FUZZ
@given(st.data())
def test_optim_load_state_dict(data):
    """load_state_dict with state arrays of the wrong shape or dtype (or a corrupt layout): a clear error at load
    or at the next step, or (a real dtype that casts) exactly the step the cast state gives."""
    d = data.draw
    name = d(st.sampled_from(["SGD", "Adam", "AdamW", "RMSprop"]))
    kw = {"SGD": dict(lr=0.1, momentum=0.9), "RMSprop": dict(lr=0.01, momentum=0.9, centered=True)}.get(
        name, dict(lr=0.01))
    dtype = d(st.sampled_from(["float32", "float64"]))
    shape = d(st.sampled_from([(3,), (2, 3), (2, 2, 2)]))
    p0, g = d(arrays(dtype, shape, modes=("uniform",))), d(arrays(dtype, shape, modes=("uniform",)))

    def fresh():
        ps = [nn.Parameter(np.array(p0, copy=True))]
        return ps, getattr(optim, name)(ps, **kw)
    ps, opt = fresh()
    ps[0].grad = mc.tensor(g.copy())
    opt.step()
    sd = opt.state_dict()
    key = d(st.sampled_from(sorted(k for k, v in sd["state"][0].items() if isinstance(v, np.ndarray) and v.ndim)))
    corrupt = d(st.sampled_from(["shape_bigger", "shape_smaller", "shape_transposed", "scalar", "dtype", "dtype",
                                 "list", "index", "groups", "ok"]))
    arr = sd["state"][0][key]
    size = arr.size
    cast = None
    if corrupt == "shape_bigger":
        new = np.zeros(size + 7, arr.dtype)
    elif corrupt == "shape_smaller":
        new = arr.reshape(-1)[:1].copy()
    elif corrupt == "shape_transposed":
        new = arr.reshape(arr.shape[::-1] if arr.shape[::-1] != arr.shape else (arr.size, 1)).copy()
    elif corrupt == "scalar":
        new = np.asarray(arr.reshape(-1)[0])
    elif corrupt == "dtype":
        gdt = d(st.sampled_from(["float16", "float64" if dtype == "float32" else "float32", "int64", "complex128",
                                 "bool"]))
        new = arr.astype(gdt)
        cast = new.astype(dtype) if gdt not in ("complex128",) else None
    elif corrupt == "list":
        new = arr.tolist()
        cast = arr
    else:
        new, cast = arr, arr
    bad_sd = copy.deepcopy(sd)
    bad_sd["state"][0][key] = new
    if corrupt == "index":
        bad_sd["state"] = {5: bad_sd["state"][0]}
        cast = None
    elif corrupt == "groups":
        bad_sd["param_groups"] = bad_sd["param_groups"] * 2
        cast = None
    desc = (f"p = nn.Parameter({call('A', p0)}); opt = optim.{name}([p], **{kw!r}); one step; "
            f"sd = opt.state_dict(); sd['state'][0][{key!r}] <- {corrupt} {summ(new)}; "
            f"optim.{name}(...).load_state_dict(sd); step")
    ps2, opt2 = fresh()

    aliased = []

    def m_run():
        before = copy.deepcopy(bad_sd)
        opt2.load_state_dict(bad_sd)
        ps2[0].grad = mc.tensor(g.copy())
        opt2.step()
        aliased.extend(k for i, s in bad_sd["state"].items() for k, v in s.items()
                       if not np.array_equal(np.asarray(v), np.asarray(before["state"][i][k])))
        return mc.tensor(ps2[0].data)

    def reference():  # what loading the state cast to p's dtype and shape gives
        if cast is None:
            raise ValueError("no meaningful state to load")
        good = copy.deepcopy({"state": {0: dict(sd["state"][0], **{key: np.asarray(cast).astype(dtype)})},
                              "param_groups": sd["param_groups"]})
        ps3, opt3 = fresh()
        opt3.load_state_dict(good)
        ps3[0].grad = mc.tensor(g.copy())
        opt3.step()
        return torch.from_numpy(np.array(ps3[0].data))
    check(name, [name, "load_state_dict", "step", key], m_run, reference, desc, in_dtypes=[dtype],
          may_refuse=corrupt in ("dtype", "list"))
    if aliased:
        fail(name, desc, f"step() changed {aliased} in the state dict given to load_state_dict (PyTorch copies it)")


# --- learning-rate schedulers -------------------------------------------------------------------------------------
def scheduler_spec(d):
    name = d(st.sampled_from(["StepLR", "MultiStepLR", "CosineAnnealingLR"]))
    if name == "StepLR":
        kw = dict(step_size=d(st.sampled_from([1, 2, 3, 0, -1, 2.5])), gamma=d(st.sampled_from([0.1, 0.5, 1.0, 0.0])))
        nonsense = not isinstance(kw["step_size"], int) or kw["step_size"] < 1
    elif name == "MultiStepLR":
        kw = dict(milestones=d(st.lists(st.integers(-1, 6), max_size=3)), gamma=d(st.sampled_from([0.1, 0.5])))
        nonsense = any(m < 0 for m in kw["milestones"])
    else:
        kw = dict(T_max=d(st.sampled_from([1, 2, 5, 0, -1, 2.5])), eta_min=d(st.sampled_from([0.0, 0.01, 2.0])))
        nonsense = not isinstance(kw["T_max"], int) or kw["T_max"] < 1
    return name, kw, nonsense


@FUZZ
@given(st.data())
def test_sched_lr_schedulers(data):
    """One to three schedulers on one optimizer, stepped once per epoch: minicnn's learning rates are PyTorch's
    (chained schedulers compose), or a clear error where the arguments make no sense."""
    d = data.draw
    count = d(st.sampled_from([1, 1, 2, 3]))
    specs = [scheduler_spec(d) for _ in range(count)]
    lr = d(st.sampled_from([0.1, 1.0]))
    epochs = d(st.integers(1, 7))
    nonsense = any(s[2] for s in specs)
    desc = (f"opt = optim.SGD([p], lr={lr}); " + "; ".join(f"lr_scheduler.{n}(opt, **{kw!r})" for n, kw, _ in specs)
            + f"; {epochs} x (opt.step(); each scheduler.step()) -> learning rates")
    names = [s[0] for s in specs]

    def run(lib, o):
        ps = ([nn.Parameter(np.zeros(2, np.float32))] if lib is optim
              else [torch.nn.Parameter(torch.zeros(2))])
        opt = lib.SGD(ps, lr=lr)
        scheds = [getattr(lib.lr_scheduler, n)(opt, **kw) for n, kw, _ in specs]
        lrs = []
        for _ in range(epochs):
            if o == "torch":
                opt.step()
            for s in scheds:
                s.step()
            lrs.append(float(opt.param_groups[0]["lr"]))
        return lrs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check("lr_scheduler", names, lambda: run(optim, "mc"), lambda: run(torch.optim, "torch"), desc,
              may_refuse=nonsense)


@FUZZ
@given(st.data())
def test_sched_reduce_on_plateau(data):
    d = data.draw
    kw = dict(mode=d(st.sampled_from(["min", "max"])), factor=d(st.sampled_from([0.1, 0.5, 1.0, 2.0])),
              patience=d(st.sampled_from([0, 1, 2])))
    kind = d(st.sampled_from(["float", "tensor0d", "tensor1", "tensor11", "tensor2", "ndarray0d"]))
    values = d(st.lists(st.sampled_from([1.0, 0.5, 2.0, 0.5, NAN, INF]), min_size=1, max_size=5))
    shape = {"float": None, "tensor0d": (), "tensor1": (1,), "tensor11": (1, 1), "tensor2": (2,), "ndarray0d": ()}[kind]

    def metric(v, lib):
        if shape is None:
            return v
        a = np.full(shape, v, np.float32)
        return a if kind == "ndarray0d" else torch.from_numpy(a) if lib == "torch" else mc.tensor(a)

    def run(lib):
        ps = ([nn.Parameter(np.zeros(2, np.float32))] if lib == "mc" else [torch.nn.Parameter(torch.zeros(2))])
        opt = optim.SGD(ps, lr=1.0) if lib == "mc" else torch.optim.SGD(ps, lr=1.0)
        mod = optim.lr_scheduler if lib == "mc" else torch.optim.lr_scheduler
        s = mod.ReduceLROnPlateau(opt, **kw)
        lrs = []
        for v in values:
            s.step(metric(v, lib))
            lrs.append(float(opt.param_groups[0]["lr"]))
        return lrs
    check("ReduceLROnPlateau", ["ReduceLROnPlateau", "float", "step", "metric"], lambda: run("mc"),
          lambda: run("torch"), f"ReduceLROnPlateau(opt, **{kw!r}).step(each of {values} as {kind})")

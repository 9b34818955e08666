"""Regression tests for the classes of bad or edge input of issue 16: each gets PyTorch's answer or a clear
ValueError/TypeError/IndexError naming the op, checked before any kernel sees it (a kernel has no bounds checks)."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn, optim
from minicnn.autograd import Function


def param(*shape):
    return mc.nn.Parameter(np.ones(shape, np.float32))


# --- memory safety: every array that reaches a kernel is checked first ----------------------------------------------

@pytest.mark.parametrize("make,key", [(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), "momentum_buffer"),
                                      (lambda ps: optim.Adam(ps), "exp_avg"),
                                      (lambda ps: optim.RMSprop(ps, momentum=0.5), "square_avg")])
def test_optimizer_state_of_the_wrong_shape_is_refused(make, key):
    p = param(3, 4)
    p.grad = mc.tensor(np.ones((3, 4), np.float32))
    opt = make([p])
    opt.step()
    sd = opt.state_dict()
    sd["state"][0][key] = np.ones(5, np.float32)  # would be read past its end by the fused kernel
    before = {k: v.copy() for k, v in opt.state[id(p)].items() if hasattr(v, "copy")}
    with pytest.raises(ValueError, match=rf"{type(opt).__name__}.load_state_dict: state '{key}' .*shape \(3, 4\)"):
        opt.load_state_dict(sd)
    for k, v in before.items():  # nothing changed
        np.testing.assert_array_equal(opt.state[id(p)][k], v)


def test_optimizer_state_checks_counters_indices_and_names():
    p = param(2)
    opt = optim.Adam([p])
    good = {"step": 3, "exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}
    for state, match in [({0: dict(good, step=-1)}, "'step' .* integer >= 0"), ({5: good}, "state for parameter 5"),
                         ({0: dict(good, extra=np.zeros(2))}, "unknown state"),
                         ({0: {"step": 1, "exp_avg": np.zeros(2)}}, "lacks"),
                         ({0: dict(good, exp_avg=np.array(["a", "b"]))}, "'exp_avg'")]:
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict({"state": state, "param_groups": [dict(opt.param_groups[0], params=[0])]})
    with pytest.raises(ValueError, match="Adam.load_state_dict: expected a dict"):
        opt.load_state_dict([1, 2])
    opt.load_state_dict({"state": {0: good}, "param_groups": [dict(opt.param_groups[0], params=[0])]})
    assert opt.state[id(p)]["step"] == 3 and opt.state[id(p)]["exp_avg"].dtype == np.float32


@pytest.mark.parametrize("opt_class", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop])
def test_a_gradient_of_the_wrong_shape_or_dtype_is_refused_by_step(opt_class):
    p = param(3, 4)
    opt = opt_class([p], lr=0.1)
    for bad in (np.ones((4, 3), np.float32), np.ones(12, np.float32), np.ones((3, 4), np.int64)):
        p.grad = mc.tensor(bad)
        with pytest.raises(ValueError, match=rf"{opt_class.__name__}.step: .* shape \(3, 4\)"):
            opt.step()
    np.testing.assert_array_equal(p.numpy(), 1)  # untouched


def test_a_backward_returning_the_wrong_shape_is_refused_by_the_engine():
    class Bad(Function):
        def forward(self, x):
            return x * 2

        def backward(self, g):
            return g[:1]

    x = mc.tensor(np.ones((3, 2)), requires_grad=True)
    with pytest.raises(ValueError, match=r"Bad.backward: the gradient of input 0 has shape \(1, 2\), expected"):
        Bad.apply(x).sum().backward()

    class TooMany(Bad):
        def backward(self, g):
            return g, g

    with pytest.raises(ValueError, match="TooMany.backward: returned 2 gradients for 1 inputs"):
        TooMany.apply(x).sum().backward()


def test_a_grad_of_another_shape_is_not_broadcast_into():
    x = mc.tensor(np.ones((3, 2)), requires_grad=True)
    x.grad = mc.tensor(np.ones(1))
    with pytest.raises(ValueError, match=r"backward: the tensor's .grad .* shape \(1,\)"):
        (x * 2).sum().backward()


# --- answers that differed from PyTorch -----------------------------------------------------------------------------

@pytest.mark.parametrize("hw", [(5, 5), (5, 4), (4, 7), (3, 3)])
def test_max_pool_2x2_ceil_mode_on_odd_sizes(torch_mod, hw):
    torch = torch_mod
    x = np.random.default_rng(0).standard_normal((2, 3, *hw)).astype(np.float32)
    ours = mc.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(ours, 2, ceil_mode=True)
    ty = torch.nn.functional.max_pool2d(theirs, 2, ceil_mode=True)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6)


def test_type_promotion_follows_pytorch(torch_mod):
    torch = torch_mod
    u8 = np.array([10, 200], np.uint8)
    cases = [(lambda t: t * (1 / 255), u8), (lambda t: t / t, np.array([1, 2])), (lambda t: t + 2.5, np.array([1])),
             (lambda t: t + 1, np.array([True])), (lambda t: t * 2.0, np.ones(2, np.float32)),
             (lambda t: t ** 0.5, np.array([4])), (lambda t: 2 ** t, np.array([3])), (lambda t: t.exp(), u8[:1])]
    for fn, x in cases:
        ours, theirs = fn(mc.tensor(x)), fn(torch.tensor(x))
        assert ours.dtype == np.dtype(str(theirs.dtype).removeprefix("torch.")), (x.dtype, ours.dtype, theirs.dtype)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="pow: integers to negative integer powers"):
        mc.tensor([4]) ** -1


def test_cross_entropy_with_a_minus_infinity_logit(torch_mod):
    torch = torch_mod
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, 0.5, 2.0]])
    for smoothing in (0.0, 0.1):
        ours = mc.tensor(x, requires_grad=True)
        theirs = torch.tensor(x, requires_grad=True)
        loss = F.cross_entropy(ours, [0, 2], label_smoothing=smoothing)
        expected = torch.nn.functional.cross_entropy(theirs, torch.tensor([0, 2]), label_smoothing=smoothing)
        np.testing.assert_allclose(loss.item(), expected.item())
        if smoothing == 0:
            loss.backward()
            expected.backward()
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize("call", [lambda t: mc.cat([t, t], axis=2), lambda t: mc.stack([t], axis=-4),
                                  lambda t: t.flatten(5), lambda t: t.sum(axis=2), lambda t: t.softmax(axis=-3)])
def test_an_axis_out_of_range_is_an_error(call):
    with pytest.raises(ValueError, match=r"axis -?\d+ is out of range for (a tensor with 2|the stacked result with 3)"):
        call(mc.tensor(np.ones((2, 3))))


@pytest.mark.parametrize("name,call", [
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2)), ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, 1)),
    ("global_avg_pool2d", F.global_avg_pool2d), ("batch_norm", lambda x: F.batch_norm(x, None, None, training=True)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1)), ("mean", lambda x: x.mean()),
    ("softmax", lambda x: F.softmax(x, axis=1))])
def test_averaging_ops_refuse_integer_tensors(name, call):
    """Integer inputs would be truncated (or wrapped): refused, as PyTorch refuses most of them."""
    with pytest.raises(ValueError, match=rf"{name}: expected a .*float.* input, got int64"):
        call(mc.tensor(np.arange(32).reshape(2, 1, 4, 4)))


def test_zero_to_a_power_has_the_gradient_of_pytorch(torch_mod):
    torch = torch_mod
    a, b = np.array([0.0, 0.0, 2.0, 3.0]), np.array([2.0, 0.0, -1.0, 0.0])
    ours_a, ours_b = mc.tensor(a, requires_grad=True), mc.tensor(b, requires_grad=True)
    theirs_a, theirs_b = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (ours_a ** ours_b).sum().backward()
    (theirs_a ** theirs_b).sum().backward()
    np.testing.assert_allclose(ours_b.grad.numpy(), theirs_b.grad.numpy())
    np.testing.assert_allclose(ours_a.grad.numpy(), theirs_a.grad.numpy())


# --- valid code that failed ------------------------------------------------------------------------------------------

def test_tensors_iterate_and_convert():
    t = mc.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(t)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    sum(r.sum() * i for i, r in enumerate(rows)).backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(np.array(t), t.numpy())
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert float(mc.tensor([2.5])) == 2.5 and int(mc.tensor([[7]])) == 7
    assert [1, 2, 3][mc.tensor(1)] == 2
    with pytest.raises(ValueError, match="float: only a tensor with one element"):
        float(t)
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(mc.tensor(1.0))


def test_reduce_on_plateau_takes_a_loss_tensor():
    opt = optim.SGD([param(1)], lr=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for loss in (2.0, 3.0, 4.0):
        sched.step(mc.tensor(np.float32(loss)))
    assert opt.param_groups[0]["lr"] == 0.25


@pytest.mark.parametrize("shapes,kw", [(((0, 3, 8, 8), (4, 3, 3, 3)), dict(padding=1)),
                                       (((0, 16, 12, 12), (8, 16, 3, 3)), dict(padding=1)),
                                       (((0, 3, 9, 9), (4, 3, 3, 3)), dict(stride=2)),
                                       (((0, 4, 6, 6), (4, 1, 3, 3)), dict(groups=4)),
                                       (((2, 0, 5, 5), (3, 0, 3, 3)), {})])
def test_conv2d_on_an_empty_batch_or_without_channels(torch_mod, shapes, kw):
    torch = torch_mod
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1]), rng.standard_normal(shapes[1][0])
    ours = [mc.tensor(v, requires_grad=True) for v in (x, w, b)]
    y = F.conv2d(*ours, **kw)
    (y * y).sum().backward()
    expected = np.broadcast_to(b.reshape(-1, 1, 1), y.shape) if shapes[0][1] == 0 else \
        torch.nn.functional.conv2d(*(torch.tensor(v) for v in (x, w, b)), **kw).numpy()
    np.testing.assert_allclose(y.numpy(), expected)
    np.testing.assert_array_equal(ours[1].grad.numpy(), 0)
    np.testing.assert_allclose(ours[2].grad.numpy(), (2 * y.numpy()).sum(axis=(0, 2, 3)))


# --- errors that were unclear -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,call", [
    ("conv2d", lambda x: F.conv2d(x, x[:1])), ("max_pool2d", lambda x: F.max_pool2d(x, 2)),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2)), ("global_max_pool2d", F.global_max_pool2d),
    ("batch_norm", lambda x: F.batch_norm(x, None, None, training=True)), ("relu", F.relu),
    ("local_response_norm", lambda x: F.local_response_norm(x, 2))])
def test_float16_is_refused_by_kernel_ops(name, call):
    with pytest.raises(ValueError, match=rf"{name}: expected a float32 or float64 input, got float16"):
        call(mc.tensor(np.ones((2, 1, 4, 4), np.float16)))


def test_float16_works_where_numpy_computes_it():
    x = mc.tensor(np.array([1.0, 2.0], np.float16))
    assert (x * 2.0).dtype == np.float16 and x.exp().dtype == np.float16 and F.softmax(x).dtype == np.float16


def test_batch_norm_momentum_none_is_a_cumulative_average(torch_mod):
    torch = torch_mod
    ours, theirs = nn.BatchNorm2d(3, momentum=None), torch.nn.BatchNorm2d(3, momentum=None)
    rng = np.random.default_rng(0)
    for i in range(4):
        x = (rng.standard_normal((4, 3, 5, 5)) * (i + 1) + i).astype(np.float32)
        ours(mc.tensor(x))
        theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-5)
    with pytest.raises(TypeError, match="batch_norm: momentum must be a number"):
        F.batch_norm(mc.tensor(np.ones((4, 3))), None, None, training=True, momentum=None)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_layers_without_inputs_compute_their_bias(torch_mod):
    torch = torch_mod
    assert nn.Linear(0, 3)(mc.tensor(np.ones((2, 0), np.float32))).numpy().tolist() == \
        torch.nn.Linear(0, 3)(torch.ones(2, 0)).tolist()
    assert nn.Conv2d(0, 3, 3)(mc.tensor(np.ones((2, 0, 5, 5), np.float32))).shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="Linear: in_features must be an int >= 0, got -1"):
        nn.Linear(-1, 3)
    with pytest.raises(ValueError, match="Conv2d: stride must be >= 1"):
        nn.Conv2d(3, 4, 3, stride=0)


@pytest.mark.parametrize("call,match", [
    (lambda o: optim.lr_scheduler.StepLR(o, step_size=0), "StepLR: step_size must be a positive int"),
    (lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=0), "CosineAnnealingLR: T_max must be a positive int"),
    (lambda o: optim.lr_scheduler.MultiStepLR(o, milestones=3), "MultiStepLR: milestones must be a list of ints"),
    (lambda o: optim.lr_scheduler.ReduceLROnPlateau(o, patience=-1), "ReduceLROnPlateau: patience must be")])
def test_schedulers_refuse_bad_settings(call, match):
    with pytest.raises(ValueError, match=match):
        call(optim.SGD([param(1)], lr=0.1))


def test_softmax_axis_none_and_optimizer_settings_are_clear_errors():
    with pytest.raises(TypeError, match="softmax: axis must be an int, got None"):
        F.softmax(mc.tensor(np.ones((2, 2))), axis=None)
    with pytest.raises(TypeError, match="SGD: lr must be a number, got '0.1'"):
        optim.SGD([param(1)], lr="0.1")
    with pytest.raises(ValueError, match="Adam: a parameter appears twice"):
        p = param(1)
        optim.Adam([p, p])


def test_optimizer_state_follows_the_parameters_dtype():
    p = param(3)
    p.grad = mc.tensor(np.ones(3, np.float32))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    p.data = p.data.astype(np.float64)  # what model.double() does
    p.grad = mc.tensor(np.ones(3))
    opt.step()
    assert opt.state[id(p)]["momentum_buffer"].dtype == np.float64
    np.testing.assert_allclose(p.numpy(), 1 - 0.1 - 0.1 * 1.9)
    opt.state[id(p)]["momentum_buffer"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"SGD.step: state 'momentum_buffer' has shape \(7,\)"):
        opt.step()


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"", b"PK\x03\x04 truncated"])
def test_a_random_file_is_not_a_checkpoint_and_no_unsafe_advice_is_given(tmp_path, content):
    from minicnn import checkpoint
    path = tmp_path / "last.npz"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match="is not a minicnn checkpoint") as e:
        checkpoint.load(path)
    assert "allow_pickle" not in str(e.value) and "unsafe" not in str(e.value)
    objects = tmp_path / "objects.npz"
    np.savez(objects, **{"model/a": np.array([{"x": 1}], dtype=object), "__minicnn__": np.array("{}")})
    with pytest.raises(checkpoint.CheckpointError, match="never does"):
        checkpoint.load(objects)


@pytest.mark.parametrize("call,error,match", [
    (lambda: nn.MaxPool2d(0), ValueError, "max_pool2d: kernel_size must be >= 1"),
    (lambda: nn.AvgPool2d(2, padding=2), ValueError, "avg_pool2d: padding"),
    (lambda: nn.LocalResponseNorm(0), ValueError, "local_response_norm: size must be a positive int"),
    (lambda: mc.tensor([[1, 2], [3]]), ValueError, "tensor: cannot make a tensor of list"),
    (lambda: mc.tensor([1.0], dtype="float99"), TypeError, "tensor: cannot make a tensor"),
    (lambda: nn.Linear(2, 3).to(dtype=np.int32), ValueError, "Linear.to: dtype must be a floating-point dtype"),
    (lambda: nn.Linear(2, 3).load_state_dict({"weight": np.ones((3, 2)), "bias": np.array(["a", "b", "c"])}),
     ValueError, "load_state_dict: 'bias' holds <U1 values"),
    (lambda: mc.tensor(np.ones((2, 0))).argmax(), ValueError, "argmax: expected a non-empty tensor"),
    (lambda: mc.tensor(np.ones((2, 3))).argmax(axis=2), ValueError, "argmax: axis 2 is out of range"),
    (lambda: mc.summary(nn.Linear(2, 3), 2), ValueError, "summary: input_shape must be a tuple of positive ints"),
    (lambda: mc.data.Normalize((0.5,), (0.0,)), ValueError, "Normalize: std must be finite and non-zero"),
    (lambda: mc.data.DataLoader(mc.data.load_dataset("synthetic")[1], 2.5), ValueError, "DataLoader: batch_size"),
    (lambda: mc.manual_seed("a"), ValueError, "manual_seed: expected an int >= 0"),
    (lambda: mc.gradcheck(lambda t: t * 2, [mc.tensor(np.ones(2), requires_grad=True)], eps=0), ValueError,
     "gradcheck: eps must be > 0")])
def test_clear_errors_at_construction_and_at_the_boundary(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_softmax_of_an_empty_axis_is_empty(torch_mod):
    x = mc.tensor(np.ones((2, 0)), requires_grad=True)
    y = F.softmax(x)
    y.sum().backward()
    assert y.shape == F.log_softmax(x).shape == tuple(torch_mod.softmax(torch_mod.ones(2, 0), -1).shape) == (2, 0)
    assert x.grad.shape == (2, 0)


def test_loaded_optimizer_state_is_copied():
    """Loading one state dict into two optimizers gives two independent runs (PyTorch copies the state)."""
    p = param(2)
    p.grad = mc.tensor(np.ones(2, np.float32))
    first = optim.SGD([p], lr=0.1, momentum=0.9)
    first.step()
    saved = first.state_dict()
    second = optim.SGD([param(2)], lr=0.1, momentum=0.9)
    second.load_state_dict(saved)
    second.param_groups[0]["params"][0].grad = mc.tensor(np.ones(2, np.float32))
    second.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], 1.0)


def test_non_finite_values_stay_in_their_own_windows(torch_mod):
    torch = torch_mod
    x = np.array([[[[1.0, 2.0, 3.0, 4.0, -np.inf]]]])
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(mc.tensor(x), (1, 2)).numpy(),
                                  torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), (1, 2)).numpy())
    x = np.ones((1, 3, 1, 1))
    x[0, 0] = np.inf
    np.testing.assert_allclose(F.local_response_norm(mc.tensor(x), 1).numpy(),
                               torch.nn.functional.local_response_norm(torch.tensor(x), 1).numpy())
    zero = mc.tensor(np.zeros((1, 3, 2, 2)), requires_grad=True)
    F.local_response_norm(zero, 2, alpha=1.0, beta=0.0, k=0.0).sum().backward()
    np.testing.assert_array_equal(zero.grad.numpy(), 1.0)


def test_edge_shapes_follow_pytorch():
    assert mc.tensor(1.0).sum(axis=0).item() == 1.0 and mc.tensor(2.0).mean(axis=-1).item() == 2.0
    assert mc.tensor(np.zeros((2, 0, 1))).max(axis=0).shape == (0, 1)
    assert mc.tensor(np.zeros((0, 2, 2))).flatten(1).shape == (0, 4)
    x, w = mc.tensor(np.ones(2), requires_grad=True), mc.tensor(np.ones((0, 2)), requires_grad=True)
    F.linear(x, w).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0] and w.grad.shape == (0, 2)
    with pytest.raises(ValueError, match="getitem: index .* slice step cannot be zero"):
        mc.tensor(np.ones(3))[::0]
    with pytest.raises(ValueError, match="softmax: axis 2 is out of range"):
        F.softmax(mc.tensor(1.0), axis=2)
    with pytest.raises(ValueError, match="avg_pool2d: expected feature maps of at least one pixel"):
        F.avg_pool2d(mc.tensor(np.zeros((1, 1, 2, 0))), 2, 1, 1, count_include_pad=False)


def test_multistep_milestones_at_or_before_the_start(torch_mod):
    torch = torch_mod
    for milestones in ([0], [-1], [0, 2]):
        ours = optim.SGD([param(1)], lr=1.0)
        theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        s1 = optim.lr_scheduler.MultiStepLR(ours, milestones, 0.1)
        s2 = torch.optim.lr_scheduler.MultiStepLR(theirs, milestones, 0.1)
        for _ in range(3):
            assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"])
            theirs.step()
            s1.step()
            s2.step()


def test_a_damaged_checkpoint_member_is_found(tmp_path):
    """The header lists every array: a member renamed or dropped by damage is an error, not a silent gap."""
    import zipfile
    from minicnn import checkpoint
    model = nn.Linear(2, 3)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.weight.grad, model.bias.grad = mc.tensor(np.ones((3, 2), np.float32)), mc.tensor(np.ones(3, np.float32))
    opt.step()
    path = tmp_path / "last.npz"
    checkpoint.save(path, model, opt)
    damaged = tmp_path / "damaged.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            dst.writestr(item.filename.replace("optim/0/", "optin/0/"), src.read(item))
    with pytest.raises(checkpoint.CheckpointError, match=r"is damaged: .*missing \['optim/0/momentum_buffer'\]"):
        checkpoint.load(damaged)
    info, _, _ = checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError, match="holds no optimizer state"):
        checkpoint.restore_optimizer(opt, {k: v for k, v in info.items() if k != "optimizer"}, {})

"""Float64 gradient checks of the elementwise, reduction, shape, activation and loss ops over hypothesis-drawn
shapes, and comparisons with PyTorch (forward and backward)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import minicnn as mc
import minicnn.functional as F
from conftest import rand

seeds = st.integers(0, 2**16)
pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def t(shape, seed, low=-1.0, high=1.0):
    return rand(*shape, low=low, high=high, seed=seed)


@given(pairs, seeds)
def test_add_sub_mul_grad(shapes, seed):
    (sa, sb), _ = shapes
    a, b = t(sa, seed), t(sb, seed + 1)
    assert mc.gradcheck(lambda a, b: a + b, [a, b])
    assert mc.gradcheck(lambda a, b: a - b, [a, b])
    assert mc.gradcheck(lambda a, b: a * b, [a, b])


@given(pairs, seeds)
def test_div_pow_grad(shapes, seed):
    (sa, sb), _ = shapes
    a, b = t(sa, seed, 0.5, 2.0), t(sb, seed + 1, 0.5, 2.0)
    assert mc.gradcheck(lambda a, b: a / b, [a, b])
    assert mc.gradcheck(lambda a, b: a ** b, [a, b])
    assert mc.gradcheck(lambda a: a ** 3 + a ** -0.5 - 2.0 / a + 3 - a, [a])
    assert mc.gradcheck(lambda a: -a, [a])


@given(array_shapes(min_dims=0, max_dims=3, max_side=4), seeds)
def test_unary_grad(shape, seed):
    a = t(shape, seed, 0.2, 2.0)
    assert mc.gradcheck(lambda a: a.exp(), [a])
    assert mc.gradcheck(lambda a: a.log(), [a])
    assert mc.gradcheck(lambda a: a.sqrt(), [a])


@given(array_shapes(min_dims=1, max_dims=4, max_side=4), seeds, st.data())
def test_reductions_grad(shape, seed, data):
    a = t(shape, seed)
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
                               .map(tuple)))
    keep = data.draw(st.booleans())
    for op in ("sum", "mean", "max"):
        assert mc.gradcheck(lambda a: getattr(a, op)(axis=axis, keepdims=keep), [a])
        np.testing.assert_allclose(getattr(a, op)(axis=axis, keepdims=keep).numpy(),
                                   getattr(np, op)(a.numpy(), axis=axis, keepdims=keep))


def test_max_ties_share_the_gradient():
    a = mc.tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    a.max().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0, 0.5, 0.5])


@given(st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                        ((5, 2, 3), (1, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((4, 3), (2, 3, 5))]), seeds)
def test_matmul_grad(shapes, seed):
    a, b = t(shapes[0], seed), t(shapes[1], seed + 1)
    assert mc.gradcheck(lambda a, b: a @ b, [a, b])
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy())


def test_matmul_shape_error():
    with pytest.raises(ValueError, match=r"matmul: inner dimensions differ.*\(2, 3\).*\(4, 5\)"):
        rand(2, 3) @ rand(4, 5)
    with pytest.raises(ValueError, match="add: shapes"):
        rand(2, 3) + rand(4)


@given(array_shapes(min_dims=1, max_dims=4, max_side=4), seeds)
def test_reshape_transpose_flatten_grad(shape, seed):
    a = t(shape, seed)
    n = a.size
    assert mc.gradcheck(lambda a: a.reshape(n), [a])
    assert mc.gradcheck(lambda a: a.reshape(-1, 1) * 2, [a])
    assert mc.gradcheck(lambda a: a.transpose(), [a])
    perm = tuple(np.random.default_rng(seed).permutation(len(shape)))
    assert mc.gradcheck(lambda a: a.transpose(*perm) * 1.5, [a])
    np.testing.assert_array_equal(a.transpose(*perm).numpy(), a.numpy().transpose(perm))
    assert a.flatten(1 if len(shape) > 1 else 0).shape == ((shape[0], n // shape[0]) if len(shape) > 1 else (n,))


def test_indexing_grad():
    a = rand(4, 5, 3)
    assert mc.gradcheck(lambda a: a[1], [a])
    assert mc.gradcheck(lambda a: a[1:3, ::2, -1], [a])
    assert mc.gradcheck(lambda a: a[..., None, 0], [a])
    assert mc.gradcheck(lambda a: a[np.array([0, 2, 2, 3])], [a])  # repeated indices accumulate
    assert mc.gradcheck(lambda a: a[np.array([0, 1]), :, np.array([2, 2])], [a])
    assert mc.gradcheck(lambda a: a[mc.tensor(np.array([3, 3]))], [a])
    a.grad = None
    a[np.array([1, 1, 1])].sum().backward()
    np.testing.assert_array_equal(a.grad.numpy()[1], np.full((5, 3), 3.0))


@given(st.integers(1, 3), st.integers(0, 2), seeds)
def test_cat_stack_grad(n, axis, seed):
    xs = [t((2, 3, 1 + i), seed + i) if axis == 2 else t((2, 3, 2), seed + i) for i in range(n)]
    assert mc.gradcheck(lambda *xs: mc.cat(xs, axis=axis), xs)
    np.testing.assert_array_equal(mc.cat(xs, axis=axis).numpy(), np.concatenate([x.numpy() for x in xs], axis))
    if axis != 2:
        assert mc.gradcheck(lambda *xs: mc.stack(xs, axis=axis), xs)
    with pytest.raises(ValueError, match="cat: shapes must match"):
        mc.cat([rand(2, 3), rand(3, 4)], axis=0)


@given(array_shapes(min_dims=1, max_dims=3, max_side=5), seeds)
def test_activations_grad(shape, seed):
    a = t(shape, seed, -3, 3)
    assert mc.gradcheck(F.relu, [a])
    assert mc.gradcheck(lambda a: F.leaky_relu(a, 0.1), [a])
    assert mc.gradcheck(F.sigmoid, [a])
    assert mc.gradcheck(F.tanh, [a])
    assert mc.gradcheck(lambda a: F.softmax(a, axis=-1), [a])
    assert mc.gradcheck(lambda a: F.log_softmax(a, axis=0), [a])


def test_relu_of_infinities_is_exact():
    """relu(-inf) = 0 and an infinite gradient stops at x <= 0, as in PyTorch (a product with a 0 mask is NaN);
    a NaN passes through, forward and backward."""
    x = mc.tensor(np.array([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan], np.float32), requires_grad=True)
    y = F.relu(x)
    np.testing.assert_array_equal(y.numpy(), [0, 0, 0, 2, np.inf, np.nan])
    y.backward(np.full(6, np.inf, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 0, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(F.leaky_relu(x, 0.5).numpy(), [-np.inf, -0.5, 0, 2, np.inf, np.nan])


def test_softmax_stable_for_large_logits():
    x = mc.tensor(np.array([[1000.0, 0.0, -1000.0], [-1e3, -1e3, -1e3]]), requires_grad=True)
    s, ls = F.softmax(x), F.log_softmax(x)
    assert np.isfinite(s.numpy()).all() and np.isfinite(ls.numpy()).all()
    np.testing.assert_allclose(s.numpy()[1], [1 / 3] * 3)
    np.testing.assert_allclose(ls.numpy()[0], [0.0, -1000.0, -2000.0])
    loss = F.cross_entropy(x, np.array([1, 2]))
    assert np.isfinite(loss.item()) and abs(loss.item() - (1000 + np.log(3)) / 2) < 1e-9
    loss.backward()
    assert np.isfinite(x.grad.numpy()).all()


@given(st.integers(1, 5), st.integers(2, 6), st.sampled_from([0.0, 0.1, 0.5]), seeds)
def test_losses_grad(n, c, eps, seed):
    x = t((n, c), seed, -2, 2)
    y = np.random.default_rng(seed).integers(0, c, size=n)
    assert mc.gradcheck(lambda x: F.cross_entropy(x, y, label_smoothing=eps), [x])
    assert mc.gradcheck(lambda x: F.hinge_loss(x, y, margin=1.0), [x])
    target = t((n, c), seed + 7)
    assert mc.gradcheck(lambda x, z: F.mse_loss(x, z), [x, target])


def test_hinge_loss_lecture_example():
    # cs231n's three-image example: scores for cat, car, frog; losses 2.9, 0, 12.9 -> mean 5.27
    scores = mc.tensor(np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]]))
    loss = F.hinge_loss(scores, np.array([0, 1, 2]))
    assert abs(loss.item() - (2.9 + 0 + 12.9) / 3) < 1e-5


def test_loss_label_errors():
    x = rand(3, 4)
    with pytest.raises(ValueError, match=r"cross_entropy: labels must lie in \[0, 4\)"):
        F.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="cross_entropy: expected integer class labels"):
        F.cross_entropy(x, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"hinge_loss: expected 3 labels"):
        F.hinge_loss(x, np.array([0, 1]))
    with pytest.raises(ValueError, match="mse_loss: input and target"):
        F.mse_loss(x, rand(4, 3))


def test_dropout_inverted_and_mask_reused():
    x = rand(1000, seed=1)
    y = F.dropout(x, p=0.3, training=True)
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.7)
    assert 0.6 < kept.mean() < 0.8
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7)
    assert F.dropout(x, 0.3, training=False) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="dropout: p must lie"):
        F.dropout(x, 1.5)


def test_dropout_seeded():
    mc.manual_seed(3)
    a = F.dropout(rand(50), 0.5).numpy()
    mc.manual_seed(3)
    b = F.dropout(rand(50), 0.5).numpy()
    np.testing.assert_array_equal(a != 0, b != 0)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.booleans(), seeds)
def test_linear_grad(n, fin, fout, bias, seed):
    x, w = t((n, fin), seed), t((fout, fin), seed + 1)
    args = [x, w] + ([t((fout,), seed + 2)] if bias else [])
    assert mc.gradcheck(lambda *a: F.linear(*a), args)


def test_linear_shape_errors():
    with pytest.raises(ValueError, match=r"linear: expected input \(\.\.\., 5\)"):
        F.linear(rand(2, 4), rand(3, 5))
    with pytest.raises(ValueError, match=r"linear: expected bias of shape \(3,\)"):
        F.linear(rand(2, 5), rand(3, 5), rand(4))


# --- PyTorch comparisons ------------------------------------------------------------------------------------------

def _compare(torch, fn_mc, fn_torch, *arrays, rtol=1e-10, atol=1e-12):
    ins = [mc.tensor(a, requires_grad=True) for a in arrays]
    tins = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, tout = fn_mc(*ins), fn_torch(*tins)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.tensor(g))
    for a, b in zip(ins, tins):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol)


def test_ops_match_torch(torch_mod):
    torch, tF = torch_mod, torch_mod.nn.functional
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((5,))
    p = rng.uniform(0.5, 2, (4, 5))
    y = rng.integers(0, 5, 4)
    _compare(torch, lambda a, b: a * b + a / (b * b + 1) - b, lambda a, b: a * b + a / (b * b + 1) - b, a, b)
    _compare(torch, lambda p: p ** 1.7 + p.log() + p.sqrt() + p.exp(), lambda p: p ** 1.7 + p.log() + p.sqrt() + p.exp(), p)
    _compare(torch, lambda a: a.max(axis=1) + a.mean(axis=0).sum(), lambda a: a.amax(1) + a.mean(0).sum(), a)
    _compare(torch, lambda a, b: a @ b, lambda a, b: a @ b, a, b)
    _compare(torch, lambda a: F.softmax(a, 1) + F.log_softmax(a, 0), lambda a: tF.softmax(a, 1) + tF.log_softmax(a, 0), a)
    _compare(torch, lambda a: F.sigmoid(a) * F.tanh(a) + F.relu(a) + F.leaky_relu(a, 0.2),
             lambda a: torch.sigmoid(a) * torch.tanh(a) + tF.relu(a) + tF.leaky_relu(a, 0.2), a)
    for eps in (0.0, 0.2):
        _compare(torch, lambda a: F.cross_entropy(a, y, label_smoothing=eps),
                 lambda a: tF.cross_entropy(a, torch.tensor(y), label_smoothing=eps), a)
    _compare(torch, lambda a: F.hinge_loss(a, y), lambda a: tF.multi_margin_loss(a, torch.tensor(y)) * a.shape[1], a)
    _compare(torch, lambda a, p: F.mse_loss(a, p) + (p ** a).sum(), lambda a, p: tF.mse_loss(a, p) + (p ** a).sum(), a, p)
    w, bias = rng.standard_normal((3, 5)), rng.standard_normal(3)
    _compare(torch, lambda a, w, bias: F.linear(a, w, bias), lambda a, w, bias: tF.linear(a, w, bias), a, w, bias)
    _compare(torch, lambda a: mc.cat([a[1:3], a[::-1]], axis=0).transpose(1, 0).reshape(-1, 2),
             lambda a: torch.cat([a[1:3], a.flip(0)], 0).permute(1, 0).reshape(-1, 2), a)

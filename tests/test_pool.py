"""Pooling: gradient checks (overlapping windows, padding, all-negative inputs), PyTorch comparisons, the lecture's
4x4 example, and errors."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

LECTURE = np.array([[3, 4, -2, -1], [-2, 0, 1, 2], [1, -2, 2, 6], [0, 8, 3, 5]], dtype=np.float64)


@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)),
                h=draw(st.integers(max(1, kh - 2 * ph), 11)), w=draw(st.integers(max(1, kw - 2 * pw), 11)),
                k=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=(ph, pw),
                ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                negative=draw(st.booleans()), seed=draw(st.integers(0, 1000)))


def make(cfg):
    rng = np.random.default_rng(cfg["seed"])
    # distinct values, so the maximum of every window is unique and finite differences are well defined
    vals = rng.permutation(cfg["n"] * cfg["c"] * cfg["h"] * cfg["w"]).astype(np.float64) * 0.1 + 0.05
    vals = -vals if cfg["negative"] else vals
    return mc.tensor(vals.reshape(cfg["n"], cfg["c"], cfg["h"], cfg["w"]), requires_grad=True)


def maxp(cfg, x):
    return F.max_pool2d(x, cfg["k"], cfg["stride"], cfg["padding"], cfg["ceil_mode"])


def avgp(cfg, x):
    return F.avg_pool2d(x, cfg["k"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], cfg["count_include_pad"])


@given(pool_configs())
@example(dict(n=1, c=1, h=5, w=5, k=(3, 3), stride=(1, 1), padding=(1, 1), ceil_mode=False,
              count_include_pad=True, negative=True, seed=0))  # overlapping windows, padding, all negative
def test_pooling_gradcheck(cfg):
    x = make(cfg)
    assert mc.gradcheck(lambda x: maxp(cfg, x), [x], eps=1e-4)
    assert mc.gradcheck(lambda x: avgp(cfg, x), [x])
    if cfg["negative"] and any(cfg["padding"]):
        assert (maxp(cfg, x).numpy() < 0).all()  # padding is -inf, never a 0 that beats negative inputs


@given(pool_configs())
def test_pooling_matches_torch(torch_mod, cfg):
    torch = torch_mod
    x = make(cfg)
    tx = torch.tensor(x.numpy(), requires_grad=True)
    for ours_fn, theirs in [(maxp, lambda t: torch.nn.functional.max_pool2d(t, cfg["k"], cfg["stride"],
                                                                           cfg["padding"], ceil_mode=cfg["ceil_mode"])),
                            (avgp, lambda t: torch.nn.functional.avg_pool2d(
                                t, cfg["k"], cfg["stride"], cfg["padding"], ceil_mode=cfg["ceil_mode"],
                                count_include_pad=cfg["count_include_pad"]))]:
        x.grad, tx.grad = None, None
        y, ty = ours_fn(cfg, x), theirs(tx)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
        g = np.random.default_rng(0).standard_normal(y.shape)
        y.backward(g)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_max_pool_ties_first_maximum_wins(torch_mod):
    x = mc.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    F.max_pool2d(x, 2, 1).sum().backward()
    tx = torch_mod.ones((1, 1, 4, 4), dtype=torch_mod.float64, requires_grad=True)
    torch_mod.nn.functional.max_pool2d(tx, 2, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_lecture_4x4_example():
    x = mc.tensor(LECTURE[None, None])
    np.testing.assert_array_equal(F.max_pool2d(x, 2, 2).numpy()[0, 0], [[4, 2], [8, 6]])
    np.testing.assert_array_equal(F.avg_pool2d(x, 2, 2).numpy()[0, 0], [[1.25, 0], [1.75, 4]])


def test_global_and_adaptive_pooling(torch_mod):
    torch = torch_mod
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((2, 3, 5, 7)), requires_grad=True)
    assert mc.gradcheck(F.global_avg_pool2d, [x])
    assert mc.gradcheck(F.global_max_pool2d, [x])
    for size in [(1, 1), (2, 3), (3, 2), (5, 7), (4, 4)]:
        assert mc.gradcheck(lambda x: F.adaptive_avg_pool2d(x, size), [x])
        tx = torch.tensor(x.numpy(), requires_grad=True)
        ty = torch.nn.functional.adaptive_avg_pool2d(tx, size)
        y = F.adaptive_avg_pool2d(x, size)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal((2, 3, 1, 1))
    for ours, theirs in ((F.global_avg_pool2d, lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1)),
                         (F.global_max_pool2d, lambda t: torch.nn.functional.adaptive_max_pool2d(t, 1))):
        x.grad = None
        tx = torch.tensor(x.numpy(), requires_grad=True)
        y, ty = ours(x), theirs(tx)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
        y.backward(g)
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert nn.GlobalAvgPool2d()(x).shape == (2, 3, 1, 1)
    assert nn.AdaptiveAvgPool2d(1)(x).shape == (2, 3, 1, 1)


@pytest.mark.parametrize("size", [(4, 3), (8, 1), (2, 6)])
def test_adaptive_pooling_with_equal_bins_matches_pytorch_in_float32(torch_mod, size):
    """Sizes that divide the input's take the average-pooling kernel (equal bins); forward and backward as
    PyTorch's, in float32."""
    torch = torch_mod
    data = np.random.default_rng(1).standard_normal((2, 3, 8, 6)).astype(np.float32)
    x, tx = mc.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    y, ty = F.adaptive_avg_pool2d(x, size), torch.nn.functional.adaptive_avg_pool2d(tx, size)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-7)
    g = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    y.backward(mc.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_pool_errors():
    x = mc.tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="max_pool2d: padding \\(2, 2\\) must be at most half"):
        F.max_pool2d(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel \(5, 5\) is larger than the padded input"):
        F.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match="max_pool2d: stride must be >= 1"):
        F.max_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 4-D input"):
        F.max_pool2d(mc.tensor(np.zeros((4, 4))), 2)
    with pytest.raises(ValueError, match="global_avg_pool2d: expected a 4-D input"):
        F.global_avg_pool2d(mc.tensor(np.zeros((2, 4))))

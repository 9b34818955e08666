"""Batch normalisation and local response normalisation: gradient checks, running statistics, PyTorch."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn


@given(st.sampled_from([(4, 3), (3, 2, 5), (2, 3, 4, 5), (5, 1, 1, 1)]), st.booleans(), st.booleans(),
       st.integers(0, 100))
def test_batch_norm_gradcheck(shape, training, affine, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = mc.tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True)
    w = mc.tensor(rng.standard_normal(c), requires_grad=True)
    b = mc.tensor(rng.standard_normal(c), requires_grad=True)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)

    def f(x, *wb):
        return F.batch_norm(x, rm.copy(), rv.copy(), *(wb if affine else (None, None)), training=training)
    assert mc.gradcheck(f, [x, w, b] if affine else [x])


def test_batch_norm_matches_torch(torch_mod):
    torch = torch_mod
    rng = np.random.default_rng(0)
    for shape, ours, theirs in [((8, 5), nn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)),
                                ((4, 3, 6, 5), nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3))]:
        ours.double()
        theirs.double()
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(rng.standard_normal(shape[1])))
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        for step in range(3):
            x = rng.standard_normal(shape) * 3 + 2
            mx, tx = mc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
            y, ty = ours(mx), theirs(tx)
            np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
            g = rng.standard_normal(shape)
            y.backward(g)
            ty.backward(torch.tensor(g))
            np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-10)
            np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-10)
            ours.zero_grad()
            theirs.zero_grad()
        sd = ours.state_dict()
        for k, v in theirs.state_dict().items():  # running stats (unbiased variance) and num_batches_tracked
            np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-12)
        ours.eval()
        theirs.eval()
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(ours(mc.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def test_batch_norm_errors():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input, got shape \(2, 3\)"):
        bn(mc.tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"batch_norm: expected running_mean of shape \(4,\)"):
        bn(mc.tensor(np.zeros((2, 4, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm1d(3)(mc.tensor(np.zeros((1, 3), np.float32)))


def test_batch_norm_float32_stays_float32():
    bn = nn.BatchNorm2d(3)
    y = bn(mc.tensor(np.random.randn(4, 3, 5, 5).astype(np.float32)))
    assert y.dtype == np.float32 and bn.running_var.dtype == np.float32


@given(st.integers(1, 6), st.integers(1, 7), st.integers(0, 100))
def test_lrn_gradcheck(size, c, seed):
    x = mc.tensor(np.random.default_rng(seed).standard_normal((2, c, 3, 2)) * 3, requires_grad=True)
    assert mc.gradcheck(lambda x: F.local_response_norm(x, size, alpha=0.3, beta=0.75, k=2.0), [x])


def test_lrn_matches_torch(torch_mod):
    torch = torch_mod
    x = np.random.default_rng(0).standard_normal((2, 7, 4, 3)) * 10
    for size in (1, 2, 5):
        mx, tx = mc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y = nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)(mx)
        ty = torch.nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)(tx)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10)
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)

import gc
import weakref

import numpy as np
import pytest

import minicnn as mc
from conftest import rand


def test_reused_node_accumulates():
    a = rand(3, 4)
    b = a + a
    c = b + b
    c.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 4), 4.0))


def test_reused_leaf_through_different_paths():
    a = rand(5)
    y = (a * a + a.exp() * a).sum()
    y.backward()
    x = a.data
    np.testing.assert_allclose(a.grad.numpy(), 2 * x + np.exp(x) * (1 + x))


def test_grad_accumulates_across_backward_calls():
    a = rand(3)
    (a * 2).sum().backward()
    (a * 3).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(3, 5.0))


def test_deep_chain_does_not_recurse():
    a = mc.tensor(np.ones(2), requires_grad=True)
    x = a
    for _ in range(20000):
        x = x * 1.0001
    x.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(2, 1.0001**20000), rtol=1e-8)


def test_no_grad_records_nothing():
    a = rand(3)
    with mc.no_grad():
        b = a * 2
    assert not b.requires_grad and b.is_leaf

    @mc.no_grad()
    def f(x):
        return x + 1
    assert not f(a).requires_grad
    assert (a * 2).requires_grad  # re-enabled after the block


def test_detach_cuts_the_graph():
    a = rand(3)
    b = (a * 2).detach()
    assert not b.requires_grad
    c = (b * a).sum()
    c.backward()
    np.testing.assert_allclose(a.grad.numpy(), b.numpy())


def test_graph_released_after_backward():
    a = rand(64, 64)
    h = (a * 3).exp()
    loss = h.sum()
    ref = weakref.ref(h)
    node = weakref.ref(h._ctx)
    del h
    loss.backward()
    gc.collect()
    assert ref() is None and node() is None


def test_graph_freed_when_output_dropped_without_backward():
    a = rand(8)
    b = a.exp() * 2
    node = weakref.ref(b._ctx)
    del b
    assert node() is None  # no reference cycle keeps the graph alive: freed without the garbage collector


def test_second_backward_needs_retain_graph():
    a = rand(3)
    y = (a * a).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(a.grad.numpy(), 4 * a.numpy())
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_argument_errors():
    a = rand(3)
    with pytest.raises(ValueError, match="one-element"):
        (a * 2).backward()
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        (a * 2).backward(np.ones(4))
    with pytest.raises(RuntimeError, match="does not require grad"):
        mc.tensor([1.0]).backward()


def test_tensor_creation_dtypes():
    assert mc.tensor(1.5).dtype == np.float32
    assert mc.tensor([1.0, 2.0]).dtype == np.float32
    assert mc.tensor(np.zeros(2)).dtype == np.float64
    assert mc.tensor(np.arange(3)).dtype.kind == "i"
    assert mc.tensor([1, 2]).dtype == np.int64
    assert mc.tensor([1, 2], dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="floating-point"):
        mc.tensor(np.arange(3), requires_grad=True)


def test_scalars_keep_float32():
    x = mc.tensor(np.ones(3, np.float32), requires_grad=True)
    assert (x * 2.0).dtype == np.float32
    assert (2 / x).dtype == np.float32
    assert (x ** 2).dtype == np.float32
    assert (x + np.int64(1)).dtype == np.float32


def test_numpy_on_the_left_dispatches_to_tensor():
    x = rand(3)
    y = np.ones(3) * x + np.ones(3)
    assert isinstance(y, mc.Tensor) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(3))


def test_item_and_numpy_and_compare():
    x = mc.tensor([[1.0, 5.0], [7.0, 2.0]])
    assert x.sum().item() == 15.0
    assert (x.argmax(axis=1) == mc.tensor([1, 0])).numpy().all()
    with pytest.raises(ValueError, match="one element"):
        x.item()


def test_to_dtype_is_differentiable():
    x = mc.tensor(np.ones(3, np.float32), requires_grad=True)
    y = x.double() * 3
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 3)


def test_integer_gradient_flow_is_refused_and_ints_never_require_grad():
    i = mc.tensor(np.arange(3))
    assert not (i * 2).requires_grad


def test_truth_value_of_a_tensor():
    assert mc.tensor([2.0]) > 1 and not (mc.tensor(0.0) > 1)
    with pytest.raises(ValueError, match="truth value of a tensor with 3 elements is ambiguous"):
        bool(mc.tensor([1.0, 2.0, 3.0]) > 0)


def test_leaf_gradients_never_share_memory_with_each_other_or_the_caller():
    """A leaf keeps a gradient buffer uncopied only when nothing else was given it: two leaves handed the same array
    (an addition), a view of the caller's gradient (a reshape), a read-only broadcast (a sum) each get a copy;
    a product's fresh gradient is kept as it is."""
    x, y = mc.tensor(np.ones(3), requires_grad=True), mc.tensor(np.ones(3), requires_grad=True)
    (x + y).backward(mc.tensor(np.ones(3)))
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())
    g = np.ones(6)
    z = mc.tensor(np.zeros((2, 3)), requires_grad=True)
    z.reshape(-1).backward(g)
    g[0] = 5.0
    assert z.grad.numpy()[0, 0] == 1.0
    s = mc.tensor(np.zeros(4), requires_grad=True)
    s.sum().backward()
    assert s.grad.numpy().flags.writeable
    a, b = mc.tensor(np.ones((2, 2)), requires_grad=True), mc.tensor(np.full((2, 2), 3.0), requires_grad=True)
    (a @ b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), 6.0)
    np.testing.assert_array_equal(b.grad.numpy(), 2.0)
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())


def test_a_gradient_given_to_a_leaf_and_to_a_node_is_copied_for_the_leaf():
    """A backward that returns one fresh array for a leaf and for an input that is not one: the leaf gets a copy,
    so a later backward that scales its incoming gradient in place does not reach the leaf's .grad."""
    from minicnn.autograd import Function

    class Both(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            d = g * 1.0
            return d, d

    class DoubleInPlace(Function):
        def forward(self, a):
            return a * 2

        def backward(self, g):
            g *= 2
            return g

    leaf, base = mc.tensor(np.ones(2), requires_grad=True), mc.tensor(np.full(2, 5.0), requires_grad=True)
    Both.apply(leaf, DoubleInPlace.apply(base)).sum().backward()
    np.testing.assert_array_equal(leaf.grad.numpy(), 1.0)
    np.testing.assert_array_equal(base.grad.numpy(), 2.0)


def test_first_gradient_kept_for_arrays_without_a_writeable_flag():
    """CuPy's arrays have no `writeable` flag (they are always writable): a fresh gradient of one is kept as is,
    not an AttributeError (simulated with an ndarray whose flags lack it)."""
    from minicnn import autograd

    class Flags:
        def __init__(self, a):
            self.c_contiguous, self.f_contiguous, self.owndata = (a.flags.c_contiguous, a.flags.f_contiguous,
                                                                  a.flags.owndata)

    class NoWriteableFlag(np.ndarray):
        @property
        def flags(self):
            return Flags(np.asarray(self))

    leaf = mc.tensor(np.zeros(3), requires_grad=True)
    grad = np.ones(3).view(NoWriteableFlag)
    autograd._accumulate(leaf, grad, set())
    assert leaf.grad.data is grad

import numpy as np
import pytest

import minicnn as mc
from conftest import rand


class WrongSquare(mc.Function):
    """x^2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return 3 * self.x * g


def test_gradcheck_reports_input_index_and_values():
    x = rand(2, 3, low=0.5, high=1.0)
    with pytest.raises(mc.GradcheckError, match=r"input 0 \(shape \(2, 3\)\) at index \(0, 0\): backward gives"):
        mc.gradcheck(lambda x: WrongSquare.apply(x), [x])


def test_random_direction_check_for_large_inputs():
    x = rand(60, 60, low=0.5, high=1.0)
    assert mc.gradcheck(lambda x: (x * x).sum(axis=0), [x], max_entries=100)
    with pytest.raises(mc.GradcheckError, match="random direction"):
        mc.gradcheck(lambda x: WrongSquare.apply(x), [x], max_entries=100)


def test_gradcheck_needs_float64():
    with pytest.raises(ValueError, match="float64"):
        mc.gradcheck(lambda x: x * 2, [mc.tensor([1.0, 2.0], requires_grad=True)])


def test_gradcheck_skips_inputs_without_grad():
    x, c = rand(3), mc.tensor(np.ones(3))
    assert mc.gradcheck(lambda x, c: x * c, [x, c])

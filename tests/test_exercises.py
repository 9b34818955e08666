"""The exercise notebook (examples/11_exercises.ipynb) and the teacher's solutions (examples/solutions/exercises.py):
the solutions agree with minicnn's ops and pass float64 gradient checks, every skeleton of the notebook has a
solution of the same name and signature, and the committed notebook is the student's version."""
import ast
import importlib.util
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import geometry, nn
from minicnn.models.googlenet import Inception
from minicnn.models.resnet import BasicBlock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOK = EXAMPLES / "11_exercises.ipynb"
_spec = importlib.util.spec_from_file_location("exercise_solutions", EXAMPLES / "solutions" / "exercises.py")
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)

LECTURE = np.array([[3, 4, -2, -1], [-2, 0, 1, 2], [1, -2, 2, 6], [0, 8, 3, 5]], dtype=np.float64)[None, None]

# The lecture's GoogLeNet table: input (h, w, channels), the six channel counts, ops (millions).
GOOGLENET_ROWS = {
    "3a": ((28, 28, 192), (64, 96, 128, 16, 32, 32), 128), "3b": ((28, 28, 256), (128, 128, 192, 32, 96, 64), 304),
    "4a": ((14, 14, 480), (192, 96, 208, 16, 48, 64), 73), "4b": ((14, 14, 512), (160, 112, 224, 24, 64, 64), 88),
    "4c": ((14, 14, 512), (128, 128, 256, 24, 64, 64), 100),
    "4d": ((14, 14, 512), (112, 144, 288, 32, 64, 64), 119),
    "4e": ((14, 14, 528), (256, 160, 320, 32, 128, 128), 170),
    "5a": ((7, 7, 832), (256, 160, 320, 32, 128, 128), 54),
    "5b": ((7, 7, 832), (384, 192, 384, 48, 128, 128), 71),
}


class Op(mc.Function):
    """The notebook's wrapper: a forward and a backward on arrays as one minicnn op, for mc.gradcheck."""

    def __init__(self, forward, backward, **hyper):
        self.fwd, self.bwd, self.hyper = forward, backward, hyper

    def forward(self, *arrays):
        self.arrays = arrays
        return self.fwd(*arrays, **self.hyper)

    def backward(self, grad_y):
        return self.bwd(grad_y, *self.arrays, **self.hyper)


def minicnn_grads(op, arrays, grad_y):
    tensors = [mc.tensor(a, requires_grad=True) for a in arrays]
    (op(*tensors) * mc.tensor(grad_y)).sum().backward()
    return [t.grad.numpy() for t in tensors]


@st.composite
def conv_cases(draw):
    k, stride, pad = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h, w = draw(st.integers(max(1, k - 2 * pad), 9)), draw(st.integers(max(1, k - 2 * pad), 9))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    x = rng.standard_normal((draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w))
    wt = rng.standard_normal((draw(st.integers(1, 4)), x.shape[1], k, k))
    return x, wt, rng.standard_normal(len(wt)), stride, pad, rng


@given(conv_cases())
def test_convolution_forward_and_backward_match_minicnn(case):
    x, w, b, stride, pad, rng = case
    want = F.conv2d(mc.tensor(x), mc.tensor(w), mc.tensor(b), stride=stride, padding=pad).numpy()
    np.testing.assert_allclose(S.conv_forward_naive(x, w, b, stride, pad), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.conv_forward_im2col(x, w, b, stride, pad), want, rtol=1e-12, atol=1e-12)
    geom = geometry.Conv2d.of(x.shape, w.shape, (stride, stride), (pad, pad), (1, 1), 1)
    np.testing.assert_array_equal(S.im2col(x, w.shape[2], w.shape[3], stride, pad), mc.reference.im2col(x, geom))
    grad_y = rng.standard_normal(want.shape)
    wants = minicnn_grads(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=pad), (x, w, b), grad_y)
    for got, expected in zip(S.conv_backward_naive(grad_y, x, w, stride, pad), wants):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (1, 2)])
def test_convolution_gradcheck(stride, pad):
    rng = np.random.default_rng(stride + pad)
    inputs = [mc.tensor(a, requires_grad=True) for a in (rng.standard_normal((2, 2, 5, 4)),
                                                          rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3))]
    backward = lambda grad_y, x, w, b, **kw: S.conv_backward_naive(grad_y, x, w, **kw)  # noqa: E731
    assert mc.gradcheck(lambda *t: Op.apply(*t, forward=S.conv_forward_naive, backward=backward, stride=stride,
                                            pad=pad), inputs)


def test_convolution_by_hand():
    """A 3x3 box filter of ones on the lecture's 4x4 map: each output is the sum of its window."""
    y = S.conv_forward_naive(LECTURE, np.ones((1, 1, 3, 3)), np.array([0.5]))
    np.testing.assert_array_equal(y[0, 0], [[5.5, 10.5], [11.5, 25.5]])
    y = S.conv_forward_naive(LECTURE, np.ones((1, 1, 3, 3)), np.array([0.0]), stride=2, pad=1)
    np.testing.assert_array_equal(y[0, 0], [[3 + 4 - 2 + 0, 4 - 2 - 1 + 0 + 1 + 2],
                                            [-2 + 0 + 1 - 2 + 0 + 8, 0 + 1 + 2 - 2 + 2 + 6 + 8 + 3 + 5]])


@st.composite
def pool_cases(draw):
    size, stride = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(size, 9)), draw(st.integers(size, 9)))
    ties = draw(st.booleans())  # small integers: many windows hold their maximum twice
    x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    return x, size, stride, rng


@given(pool_cases())
def test_pooling_matches_minicnn(case):
    """Forward and backward, including ties, where the first maximum of the window takes the gradient."""
    x, size, stride, rng = case
    for forward, backward, op in ((S.max_pool_forward, S.max_pool_backward, F.max_pool2d),
                                  (S.avg_pool_forward, S.avg_pool_backward, F.avg_pool2d)):
        want = op(mc.tensor(x), size, stride).numpy()
        np.testing.assert_allclose(forward(x, size, stride), want, rtol=1e-12, atol=1e-12)
        grad_y = rng.standard_normal(want.shape)
        (expected,) = minicnn_grads(lambda t: op(t, size, stride), (x,), grad_y)
        np.testing.assert_allclose(backward(grad_y, x, size, stride), expected, rtol=1e-12, atol=1e-12)


def test_pooling_lecture_example():
    np.testing.assert_array_equal(S.max_pool_forward(LECTURE)[0, 0], [[4, 2], [8, 6]])
    np.testing.assert_array_equal(S.avg_pool_forward(LECTURE)[0, 0], [[1.25, 0], [1.75, 4]])
    grad = S.max_pool_backward(np.ones((1, 1, 2, 2)), LECTURE)[0, 0]
    np.testing.assert_array_equal(grad, [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 0, 0]])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size, stride", [(2, 2), (3, 1), (3, 2)])
def test_pooling_gradcheck(kind, size, stride):
    forward, backward = getattr(S, f"{kind}_pool_forward"), getattr(S, f"{kind}_pool_backward")
    x = mc.tensor(np.random.default_rng(size * stride).standard_normal((2, 2, 6, 5)), requires_grad=True)
    assert mc.gradcheck(lambda t: Op.apply(t, forward=forward, backward=backward, size=size, stride=stride), [x])


@pytest.mark.parametrize("cin, cout, stride", [(3, 3, 1), (2, 4, 1), (3, 3, 2), (2, 4, 2)])
def test_residual_block_is_basic_block(cin, cout, stride):
    mine = S.ResidualBlock(cin, cout, stride).double()
    projects = stride != 1 or cin != cout
    assert (mine.downsample is not None) == projects
    down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)) if projects else None
    ref = BasicBlock(cin, cout, stride, down).double()
    ref_state = ref.state_dict()
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in ref_state.items()}
    rng = np.random.default_rng(0)
    for p in ref.parameters():  # BN weights and biases away from 1 and 0, so a missing or swapped BN shows
        p.data[...] = p.data + rng.uniform(-0.3, 0.3, p.shape)
    mine.load_state_dict(ref.state_dict())
    x = mc.tensor(rng.standard_normal((2, cin, 6, 6)))
    y = mine(x)
    assert y.shape == (2, cout, 3 if stride == 2 else 6, 3 if stride == 2 else 6)
    np.testing.assert_allclose(y.numpy(), ref(x).numpy(), rtol=1e-12, atol=1e-12)
    mine.eval(), ref.eval()
    np.testing.assert_allclose(mine(x).numpy(), ref(x).numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin, cout, stride", [(2, 2, 1), (2, 3, 2)])
def test_residual_block_gradcheck(cin, cout, stride):
    mc.manual_seed(1)
    block = S.ResidualBlock(cin, cout, stride).double()
    x = mc.tensor(np.random.default_rng(1).standard_normal((2, cin, 5, 5)), requires_grad=True)
    assert mc.gradcheck(lambda x, *params: block(x), [x, *block.parameters()])


def test_inception_row_3a_matches_the_zoo():
    weights, macs = S.inception_cost(28, 28, 192, 64, 96, 128, 16, 32, 32)
    module = Inception(192, 64, 96, 128, 16, 32, 32)
    assert weights == 163_328 == sum(p.size for n, p in module.named_parameters() if n.endswith("weight"))
    assert macs == mc.summary(module, (192, 28, 28)).total_macs == 128_049_152


@pytest.mark.parametrize("row", GOOGLENET_ROWS)
def test_inception_ops_match_the_lecture_table(row):
    """The table's ops column is weights x h x w (to its rounding) for every Inception module but 5a, whose 54M
    is what its row would cost with a 5x5 reduce of 48 (5b's) instead of its own 32: 51.1M."""
    (h, w, cin), channels, ops_millions = GOOGLENET_ROWS[row]
    weights, macs = S.inception_cost(h, w, cin, *channels)
    assert macs == weights * h * w
    if row == "5a":
        assert round(macs / 1e6, 1) == 51.1
        channels = channels[:3] + (48,) + channels[4:]
        macs = S.inception_cost(h, w, cin, *channels)[1]
    assert abs(macs / 1e6 - ops_millions) < 1


def test_initial_loss_is_log_c():
    assert S.initial_loss(10) == pytest.approx(np.log(10), abs=1e-12)
    assert S.initial_loss(1000) == pytest.approx(6.907755, abs=1e-6)
    mc.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 14 * 14, 10))
    x = np.random.default_rng(0).uniform(0, 1, (256, 1, 28, 28)).astype(np.float32)
    with mc.no_grad():
        loss = F.cross_entropy(net(mc.tensor(x)), np.arange(256) % 10).item()
    assert abs(loss - S.initial_loss(10)) < 0.05


# --- the notebook -----------------------------------------------------------------------------------------------------

def _notebook():
    return json.loads(NOTEBOOK.read_text())


def _skeletons():
    """{name: ast node} of every @exercise-decorated function or class in the notebook's code cells."""
    found = {}
    for cell in _notebook()["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and any(
                    isinstance(d, ast.Name) and d.id == "exercise" for d in node.decorator_list):
                found[node.name] = node
    return found


def _arguments(node):
    args = node.args.args
    return [a.arg for a in args], [ast.literal_eval(d) for d in node.args.defaults]


def test_every_skeleton_has_a_solution_with_its_signature():
    skeletons = _skeletons()
    assert set(skeletons) == {"conv_forward_naive", "conv_backward_naive", "im2col", "conv_forward_im2col",
                              "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
                              "ResidualBlock", "inception_cost", "initial_loss"}
    for name, node in skeletons.items():
        solution = getattr(S, name)
        if isinstance(node, ast.ClassDef):
            node = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
            solution = solution.__init__
        names, defaults = _arguments(node)
        params = inspect.signature(solution).parameters.values()
        assert names == [p.name for p in params], name
        assert defaults == [p.default for p in params if p.default is not inspect.Parameter.empty], name


def test_the_committed_notebook_is_the_students_version():
    """Skeletons only (no solution in the notebook), saved from a run without MINICNN_SOLUTIONS: every check says
    "not implemented yet", none says PASS, and no cell holds an error."""
    for name, node in _skeletons().items():
        functions = [n for n in node.body if isinstance(n, ast.FunctionDef)] if isinstance(node, ast.ClassDef) \
            else [node]
        for fn in functions:
            *rest, last = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            assert ast.unparse(last) == "raise NotImplementedError", name
            assert [ast.unparse(s) for s in rest] in ([], ["super().__init__()"]), name
    text = "".join("".join(cell["source"]) for cell in _notebook()["cells"] if cell["cell_type"] == "code")
    assert text.count("# YOUR CODE HERE") == 12  # ResidualBlock has two
    outputs = [o for c in _notebook()["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
    assert "running your code" in printed and "PASS" not in printed and "FAIL" not in printed
    assert printed.count("not implemented yet") == 12

"""Convolution: gradient checks over hypothesis-drawn configurations, PyTorch comparisons, the lectures' worked
examples, and clear errors for bad input."""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 13))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 13))
    return dict(n=draw(st.integers(1, 3)), cin=cin, cout=cout, h=h, w=w, k=(kh, kw),
                stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding=(ph, pw), dilation=(dh, dw),
                groups=groups, bias=draw(st.booleans()), seed=draw(st.integers(0, 1000)))


def make(cfg, dtype=np.float64):
    rng = np.random.default_rng(cfg["seed"])
    x = mc.tensor(rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])).astype(dtype), requires_grad=True)
    w = mc.tensor(rng.standard_normal((cfg["cout"], cfg["cin"] // cfg["groups"], *cfg["k"])).astype(dtype),
                  requires_grad=True)
    b = mc.tensor(rng.standard_normal(cfg["cout"]).astype(dtype), requires_grad=True) if cfg["bias"] else None
    return x, w, b


def run(cfg, x, w, b=None):
    return F.conv2d(x, w, b, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                    groups=cfg["groups"])


@given(conv_configs())
@example(dict(n=1, cin=3, cout=3, h=5, w=4, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=3,
              bias=True, seed=0))  # depthwise
@example(dict(n=2, cin=4, cout=2, h=7, w=6, k=(3, 2), stride=(1, 1), padding=(2, 1), dilation=(2, 1), groups=2,
              bias=False, seed=1))  # stride 1, K <= C: dx as a convolution of dy, dilated and grouped
@example(dict(n=1, cin=3, cout=2, h=11, w=10, k=(4, 3), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
              bias=True, seed=2))  # 36 taps on 8x8 outputs: the register-tiled kernels
def test_conv2d_gradcheck(cfg):
    x, w, b = make(cfg)
    args = [x, w] + ([b] if b is not None else [])
    assert mc.gradcheck(lambda *a: run(cfg, *a), args)


@given(conv_configs())
def test_conv2d_matches_torch(torch_mod, cfg):
    torch = torch_mod
    x, w, b = make(cfg)
    y = run(cfg, x, w, b)
    tx, tw = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, w))
    tb = torch.tensor(b.numpy(), requires_grad=True) if b is not None else None
    ty = torch.nn.functional.conv2d(tx, tw, tb, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    for ours, theirs in [(x, tx), (w, tw)] + ([(b, tb)] if b is not None else []):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_conv2d_float32_matches_torch(torch_mod):
    cfg = dict(n=4, cin=6, cout=8, h=12, w=10, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=2,
               bias=True, seed=3)
    x, w, b = make(cfg, np.float32)
    y = run(cfg, x, w, b)
    assert y.dtype == np.float32
    ty = torch_mod.nn.functional.conv2d(*(torch_mod.tensor(t.numpy()) for t in (x, w, b)), 1, 1, 1, 2)
    np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-4, atol=1e-4)


def test_tiled_float32_matches_torch(torch_mod):
    """LeNet's conv2 in float32: the register-tiled kernels with 16 lanes (8 for dx's 6 channels)."""
    cfg = dict(n=8, cin=6, cout=16, h=14, w=14, k=(5, 5), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
               groups=1, bias=True, seed=7)
    x, w, b = make(cfg, np.float32)
    y = run(cfg, x, w, b)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    tx, tw, tb = (torch_mod.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
    ty = torch_mod.nn.functional.conv2d(tx, tw, tb)
    ty.backward(torch_mod.tensor(g))
    assert y.dtype == x.grad.dtype == w.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for ours, theirs in [(x, tx), (w, tw), (b, tb)]:
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("stride, image_bytes", [((1, 1), 18 * 6 * 8 * 8), ((2, 2), 18 * 3 * 3 * 8)])
def test_chunked_batches_give_the_same_result(monkeypatch, stride, image_bytes):
    """Stride 1 (the shifted layout, 8 matrix columns per output row of 6) and stride 2 (the general im2col)."""
    from minicnn import geometry
    from minicnn.functional import conv
    cfg = dict(n=5, cin=2, cout=3, h=6, w=6, k=(3, 3), stride=stride, padding=(1, 1), dilation=(1, 1), groups=1,
               bias=True, seed=0)
    x, w, b = make(cfg)
    monkeypatch.setitem(conv.CHUNK_BYTES, "cpu", 2**30)  # one chunk
    y_full = run(cfg, x, w, b)
    y_full.backward(np.ones(y_full.shape))
    full = [t.grad.numpy().copy() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    monkeypatch.setitem(conv.CHUNK_BYTES, "cpu", 2 * image_bytes)  # two images per chunk: 3 chunks
    layout = conv._Layout(x.data, geometry.Conv2d.of(x.shape, w.shape, stride, (1, 1), (1, 1), 1))
    assert layout.shifted == (stride == (1, 1)) and len(layout.chunks()) == 3
    y = run(cfg, x, w, b)
    y.backward(np.ones(y.shape))
    np.testing.assert_allclose(y.numpy(), y_full.numpy(), rtol=1e-12)
    for t, ref in zip((x, w, b), full):
        np.testing.assert_allclose(t.grad.numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("k, dilation", [((3, 3), (1, 1)), ((2, 4), (2, 1)), ((1, 1), (1, 1))])
def test_shifted_im2col_is_im2col_with_junk_columns(k, dilation):
    """im2col_shifted's columns j < OW of every output row are the reference im2col's; col2im_shifted is its adjoint
    (<im2col(x), d> = <x, col2im(d)>)."""
    from minicnn import geometry, kernels_cpu as K, reference
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    geom = geometry.Conv2d.of(x.shape, (4, 3, *k), (1, 1), (0, 0), dilation, 1)
    cols = K.im2col_shifted(x, geom)
    assert cols.shape == (3 * k[0] * k[1], 2 * geom.OH * 6)
    general = reference.im2col(x, geom)
    np.testing.assert_array_equal(cols.reshape(-1, 2, geom.OH, 6)[..., :geom.OW].reshape(general.shape), general)
    d = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.vdot(cols, d), np.vdot(x, K.col2im_shifted(d, geom)), rtol=1e-12)


@pytest.mark.parametrize("k, stride, padding, dilation", [
    ((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 3), (1, 0), (1, 2)), ((7, 7), (2, 2), (3, 3), (1, 1)),
    ((1, 1), (2, 2), (0, 0), (1, 1)), ((2, 3), (3, 1), (2, 1), (2, 1))])
def test_im2col_and_col2im_against_the_reference(k, stride, padding, dilation):
    """The Numba im2col is the reference's exactly; col2im agrees, and the reference's col2im is the adjoint of its
    im2col, <im2col(x), d> = <x, col2im(d)>."""
    from minicnn import geometry, kernels_cpu as K, reference
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    geom = geometry.Conv2d.of(x.shape, (4, 3, *k), stride, padding, dilation, 1)
    cols = reference.im2col(x, geom)
    np.testing.assert_array_equal(K.im2col(x, geom), cols)
    d = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(K.col2im(d, geom), reference.col2im(d, geom), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.vdot(cols, d), np.vdot(x, reference.col2im(d, geom)), rtol=1e-12)


def test_sharpen_kernel_on_the_lecture_patches():
    patches = np.array([[[76, 200, 249], [97, 143, 223], [108, 196, 236]],
                        [[206, 205, 247], [244, 161, 138], [192, 154, 76]]], dtype=np.float64)
    y = F.conv2d(mc.tensor(patches[:, None]), mc.tensor(SHARPEN[None, None]))
    np.testing.assert_allclose(y.numpy().ravel(), [-1, 64])


def test_cross_blur_on_the_lecture_image():
    u = np.array([[130, 136, 53, 44, 231, 67, 108], [130, 89, 77, 58, 250, 154, 130],
                  [208, 239, 120, 111, 112, 181, 22], [203, 223, 59, 79, 28, 57, 67],
                  [164, 140, 215, 235, 66, 30, 204], [97, 159, 50, 110, 104, 76, 7],
                  [207, 150, 58, 47, 152, 81, 237]], dtype=np.float64)
    expected = np.array([[79.2, 81.6, 62.0, 77.2, 118.4, 112.0, 61.0],
                         [111.4, 134.2, 79.4, 108.0, 161.0, 156.4, 82.8],
                         [156.0, 175.8, 121.2, 96.0, 136.4, 105.2, 80.0],
                         [159.6, 172.8, 139.2, 102.4, 68.4, 72.6, 70.0],
                         [120.8, 180.2, 139.8, 141.0, 92.6, 86.6, 61.6],
                         [125.4, 119.2, 118.4, 109.2, 101.6, 59.6, 104.8],
                         [90.8, 114.8, 61.0, 73.4, 76.8, 109.2, 65.0]])
    h = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=np.float64) / 5
    y = F.conv2d(mc.tensor(u[None, None]), mc.tensor(h[None, None]), padding=1)
    np.testing.assert_allclose(y.numpy()[0, 0], expected, atol=1e-9)


def test_output_sizes_of_the_lecture():
    assert F.conv_output_size(7, 3, stride=1) == 5
    assert F.conv_output_size(7, 3, stride=2) == 3
    assert F.conv_output_size(7, 3, stride=3) == 2
    with pytest.raises(ValueError, match="2.33 is not an integer"):
        F.conv_output_size(7, 3, stride=3, strict=True)
    assert F.conv_output_size(7, 3, stride=1, padding=1, strict=True) == 7
    assert F.conv_output_size(224, 11, stride=4, padding=2) == 55  # AlexNet's first layer
    x = mc.tensor(np.zeros((1, 1, 7, 7)))
    assert F.conv2d(x, mc.tensor(np.zeros((1, 1, 3, 3))), stride=2).shape == (1, 1, 3, 3)


def test_bad_input_errors():
    x, w = mc.tensor(np.zeros((1, 3, 8, 8))), mc.tensor(np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: weight \(4, 2, 3, 3\) with groups=1 expects 2 input channels"):
        F.conv2d(x, mc.tensor(np.zeros((4, 2, 3, 3))))
    with pytest.raises(ValueError, match="conv2d: groups=2 must divide the input channels"):
        F.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match=r"conv2d: kernel \(9, 9\).*larger than the padded input \(8, 8\)"):
        F.conv2d(x, mc.tensor(np.zeros((4, 3, 9, 9))))
    with pytest.raises(ValueError, match="conv2d: stride must be >= 1"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
        F.conv2d(mc.tensor(np.zeros((3, 8, 8))), w)
    with pytest.raises(ValueError, match=r"conv2d: expected bias of shape \(4,\)"):
        F.conv2d(x, w, mc.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="conv2d: input, weight and bias dtypes differ .float64, float64 and float32"):
        F.conv2d(x, w, mc.tensor(np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match="conv2d: expected a float32 or float64 input, got float16"):
        F.conv2d(mc.tensor(np.zeros((1, 6, 14, 14), np.float16)), mc.tensor(np.zeros((16, 6, 5, 5), np.float16)))
    with pytest.raises(ValueError, match="Conv2d: groups=2 must divide in_channels=3"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_conv_layer_shapes_and_init():
    mc.manual_seed(0)
    layer = nn.Conv2d(6, 16, 5, groups=2)
    assert layer.weight.shape == (16, 3, 5, 5) and layer.bias.shape == (16,)
    bound = 1 / np.sqrt(3 * 25)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert layer(mc.tensor(np.zeros((2, 6, 14, 14), np.float32))).shape == (2, 16, 10, 10)
    assert list(layer.state_dict()) == ["weight", "bias"]

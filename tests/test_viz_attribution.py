"""Occlusion, saliency (SmoothGrad) and Grad-CAM: against PyTorch on a twin network, against a direct loop over
occluder positions, against hand-derived maps of linear models; modes, flags and grads left as found; the pictures;
every bad input."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.viz.attribution import grad_cam, occlusion, overlay, saliency, show_attributions

N, C, H, W, CLASSES = 3, 2, 8, 8, 3


def tiny(seed=0):
    """conv-BN-ReLU-pool-conv-ReLU-dropout-linear in float64, with non-trivial BN statistics, left in train mode."""
    model = nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 5, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(5 * 2 * 2, CLASSES))
    model.double()
    rng = np.random.default_rng(seed)
    bn = model[1]
    bn.running_mean.data = rng.normal(0, 0.3, 4)
    bn.running_var.data = rng.uniform(0.5, 2.0, 4)
    bn.weight.data, bn.bias.data = rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.2, 4)
    return model.train()


def images(seed=1, n=N):
    return np.random.default_rng(seed).uniform(-1, 1, (n, C, H, W))


def torch_twin(torch, model):
    tn = torch.nn
    twin = tn.Sequential(tn.Conv2d(C, 4, 3, padding=1), tn.BatchNorm2d(4), tn.ReLU(), tn.MaxPool2d(2),
                         tn.Conv2d(4, 5, 3), tn.ReLU(), tn.Dropout(0.5), tn.Flatten(), tn.Linear(20, CLASSES))
    twin.double().eval()
    twin.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()}, strict=False)
    return twin


def torch_input_grad(torch, twin, x, target):
    tx = torch.tensor(x, requires_grad=True)
    twin(tx)[torch.arange(len(x)), torch.tensor(target)].sum().backward()
    return tx.grad.numpy()


# --- saliency --------------------------------------------------------------------------------------------------------
def test_saliency_matches_torch(torch_mod):
    model, x, target = tiny(), images(), np.array([0, 2, 1])
    twin = torch_twin(torch_mod, model)
    expected = np.abs(torch_input_grad(torch_mod, twin, x, target)).max(axis=1)
    got = saliency(model, x, target)
    assert got.shape == (N, H, W) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.abs(expected).max() > 1e-3  # the comparison is not between two maps of zeros
    one = saliency(model, mc.tensor(x), 1)  # a Tensor, one class for every image
    np.testing.assert_allclose(one, np.abs(torch_input_grad(torch_mod, twin, x, [1] * N)).max(axis=1), rtol=1e-10)


def test_smoothgrad_is_the_mean_gradient_over_the_same_noise(torch_mod):
    model, x, target, smooth, sigma = tiny(), images(), np.array([2, 0, 1]), 4, 0.2
    twin = torch_twin(torch_mod, model)
    noise = np.random.default_rng(7).standard_normal((smooth, N, C, H, W))
    spread = sigma * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    mean = sum(torch_input_grad(torch_mod, twin, x + e * spread, target) for e in noise) / smooth
    for batch_size in (128, 5):  # 12 copies: in one batch, and in chunks that split the copies of one draw
        got = saliency(model, x, target, smooth=smooth, sigma=sigma, seed=7, batch_size=batch_size)
        np.testing.assert_allclose(got, np.abs(mean).max(axis=1), rtol=1e-10, atol=1e-12)
    plain = saliency(model, x, target)
    assert not np.allclose(got, plain)  # the noise did something
    np.testing.assert_allclose(saliency(model, x, target, smooth=3, sigma=0.0), plain, rtol=1e-12)


def test_saliency_of_a_linear_model_is_its_weights():
    """S_t(x) = w_t . x + b_t, so dS/dx = w_t whatever x, and the map is max_c |w_t[c]|."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, CLASSES)).double()
    w = model[1].weight.numpy().reshape(CLASSES, C, H, W)
    got = saliency(model, images(), [2, 0, 2])
    np.testing.assert_allclose(got, np.abs(w[[2, 0, 2]]).max(axis=1), rtol=1e-12)


# --- Grad-CAM --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["1", "3", "4"])
def test_grad_cam_matches_torch(torch_mod, layer):
    torch = torch_mod
    model, x, target = tiny(), images(), np.array([1, 0, 2])
    twin = torch_twin(torch, model)
    caught = []
    handle = twin[int(layer)].register_forward_hook(lambda m, i, o: caught.append(o))
    score = twin(torch.tensor(x))[torch.arange(N), torch.tensor(target)].sum()
    handle.remove()
    a = caught[0]
    alpha = torch.autograd.grad(score, a)[0].mean(dim=(2, 3))
    expected = torch.relu((alpha[:, :, None, None] * a).sum(dim=1)).detach().numpy()
    for spec in (layer, model[int(layer)]):  # by name and by module
        got = grad_cam(model, x, target, spec)
        assert got.shape == expected.shape == (N,) + tuple(a.shape[2:])
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert expected.max() > 1e-3


def test_grad_cam_before_global_pooling_is_the_class_activation_map():
    """With A -> global average pool -> linear, dS/dA[k, u, v] = w[t, k] / (h w), so Grad-CAM is ReLU(sum_k w[t, k]
    A^k) / (h w): the CAM of Zhou et al. 2016, divided by the number of cells."""
    model = nn.Sequential(nn.Conv2d(C, 4, 3), nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(4, CLASSES)).double()
    x = images()
    with mc.no_grad():
        a = model[0](mc.tensor(x)).numpy()
    w = model[3].weight.numpy()
    expected = np.maximum(np.einsum("nk,nkuv->nuv", w[[0, 2, 1]], a), 0) / 36
    np.testing.assert_allclose(grad_cam(model, x, [0, 2, 1], "0"), expected, rtol=1e-12, atol=1e-14)


def test_none_target_explains_the_top_prediction():
    model, x = tiny(), images()
    model.eval()
    with mc.no_grad():
        top = model(mc.tensor(x)).numpy().argmax(axis=1)
    np.testing.assert_array_equal(saliency(model, x, None), saliency(model, x, top))
    np.testing.assert_array_equal(grad_cam(model, x, None, "3"), grad_cam(model, x, top, "3"))
    np.testing.assert_array_equal(occlusion(model, x, None, 3, 2), occlusion(model, x, top, 3, 2))


# --- occlusion -------------------------------------------------------------------------------------------------------
def occlusion_loop(model, x, target, window, stride, baseline):
    """The definition, one occluded image at a time."""
    (wh, ww), (sh, sw) = window, stride
    n, _, h, w = x.shape
    out = np.zeros((n, (h - wh) // sh + 1, (w - ww) // sw + 1))
    model.eval()
    for k in range(n):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                hidden = x[k].copy()
                hidden[:, i * sh:i * sh + wh, j * sw:j * sw + ww] = baseline
                with mc.no_grad():
                    logits = model(mc.tensor(hidden[None])).numpy()[0]
                p = np.exp(logits - logits.max())
                out[k, i, j] = p[target[k]] / p.sum()
    return out


def test_occlusion_matches_a_loop_over_positions():
    model, x, target = tiny(), images(), np.array([2, 1, 0])
    baseline = np.array([0.25, -0.5])[:, None, None]  # one grey per channel
    # window (3, 2), stride (2, 3): (8 - 3) // 2 + 1 = 3 rows of positions (row 7 never hidden), 3 columns
    got, top_map, top = occlusion(model, x, target, (3, 2), (2, 3), baseline=baseline, batch_size=4, with_top=True)
    expected = occlusion_loop(model, x, target, (3, 2), (2, 3), baseline)
    assert got.shape == (N, 3, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with mc.no_grad():
        assert np.array_equal(top, model(mc.tensor(x)).numpy().argmax(axis=1))
    np.testing.assert_allclose(top_map, occlusion_loop(model, x, top, (3, 2), (2, 3), baseline), rtol=1e-12)
    assert got.std() > 1e-4  # the square changes the probability: the map is not flat
    one_window = occlusion(model, mc.tensor(x), 1, 4, 5, baseline=0.0)  # (8 - 4) // 5 + 1 = 1 position per axis
    np.testing.assert_allclose(one_window, occlusion_loop(model, x, [1] * N, (4, 4), (5, 5), 0.0), rtol=1e-12)


def test_occlusion_with_the_whole_image_hidden_sees_only_the_baseline():
    model, x = tiny(), images()
    got = occlusion(model, x, [0, 1, 2], (H, W), 1, baseline=0.5)
    model.eval()
    with mc.no_grad():
        p = mc.functional.softmax(model(mc.tensor(np.full((1, C, H, W), 0.5))), axis=1).numpy()[0]
    np.testing.assert_allclose(got[:, 0, 0], p[[0, 1, 2]], rtol=1e-12)


# --- modes, flags, grads ---------------------------------------------------------------------------------------------
def test_modes_flags_and_grads_are_left_as_found():
    model, x = tiny(), images()
    model[1].eval()  # a frozen batch norm inside a training model
    model[4].weight.requires_grad = False
    grad = np.ones_like(model[0].weight.numpy())
    model[0].weight.grad = mc.tensor(grad)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    with mc.no_grad():  # saliency and Grad-CAM need gradients even inside no_grad
        saliency(model, x, 0, smooth=2)
        grad_cam(model, x, 0, "4")
    occlusion(model, x, 0, 4, 4)
    with pytest.raises(ValueError):
        grad_cam(model, x, 0, "7")  # an error half-way leaves them as found too
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    np.testing.assert_array_equal(model[0].weight.grad.numpy(), grad)
    assert all(p.grad is None for p in list(model.parameters())[1:])
    assert not model[4]._forward_hooks  # the hook is gone


# --- zoo models ------------------------------------------------------------------------------------------------------
def test_shapes_on_zoo_models():
    lenet, x = mc.models.create("lenet5"), np.random.default_rng(0).uniform(0, 1, (2, 1, 28, 28))
    assert occlusion(lenet, x, [3, 7], 7, 7).shape == (2, 4, 4)
    s = saliency(lenet, x, 3)
    assert s.shape == (2, 28, 28) and s.dtype == np.float32 and s.max() > 0
    cam = grad_cam(lenet, x, 3, "features.3")
    assert cam.shape == (2, 10, 10) and (cam >= 0).all()
    resnet = mc.models.create("resnet20", num_classes=10)
    x = np.random.default_rng(1).uniform(0, 1, (2, 3, 16, 16))
    assert grad_cam(resnet, x, [1, 2], "layer3").shape == (2, 4, 4)
    assert grad_cam(resnet, x, 1, resnet.layer2[0]).shape == (2, 8, 8)
    with pytest.raises(ValueError, match="^grad_cam: layer 'layer1.0.relu' ran more than once"):
        grad_cam(resnet, x, 0, "layer1.0.relu")


@pytest.mark.gpu
def test_gpu_maps_equal_cpu_maps():
    model, x, target = tiny(), images(), np.array([0, 2, 1])
    gpu = tiny()
    gpu.load_state_dict(model.state_dict())
    gpu.to("cuda")
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(occlusion(gpu, x, target, 3, 2, baseline=np.array([0.25, -0.5])[:, None, None]),
                               occlusion(model, x, target, 3, 2, baseline=np.array([0.25, -0.5])[:, None, None]),
                               **tol)
    np.testing.assert_allclose(saliency(gpu, mc.tensor(x, device="cuda"), target, smooth=2, batch_size=4),
                               saliency(model, x, target, smooth=2, batch_size=4), **tol)
    np.testing.assert_allclose(grad_cam(gpu, x, None, "3"), grad_cam(model, x, None, "3"), **tol)
    assert all(p.device.type == "cuda" for p in gpu.parameters())


# --- pictures --------------------------------------------------------------------------------------------------------
def test_overlay_blends_the_coloured_map_over_the_image():
    import matplotlib
    grey = np.random.default_rng(0).uniform(0, 1, (6, 6))
    heat = np.arange(36.0).reshape(6, 6)  # same size: the resize is the identity
    jet = matplotlib.colormaps["jet"](heat / 35)[..., :3]
    np.testing.assert_allclose(overlay(grey, heat, alpha=0.3), 0.7 * grey[..., None] + 0.3 * jet, rtol=1e-12)
    np.testing.assert_allclose(overlay(grey[None], heat, alpha=0.0), np.repeat(grey[..., None], 3, 2))
    rgb_chw = np.random.default_rng(1).uniform(0, 1, (3, 12, 12))
    out = overlay(rgb_chw, np.ones((3, 3)), alpha=1.0)  # a flat map is 0 everywhere: jet's dark blue
    assert out.shape == (12, 12, 3)
    np.testing.assert_allclose(out, np.broadcast_to(matplotlib.colormaps["jet"](0.0)[:3], (12, 12, 3)))
    small = overlay(grey, np.array([[0.0, 1.0]]), alpha=1.0)  # 1x2 stretched over 6x6: left dark, right red
    np.testing.assert_allclose(small[:, 0], np.broadcast_to(jet[0, 0], (6, 3)))
    np.testing.assert_allclose(small[:, -1], np.broadcast_to(jet[-1, -1], (6, 3)))
    normalised = overlay(grey * 4 - 2, heat, alpha=0.0)  # values outside [0, 1] are rescaled
    assert normalised.min() == 0 and normalised.max() == 1


def test_show_attributions_draws_and_saves(tmp_path):
    model, x = tiny(), images()
    maps = [occlusion(model, x, 0, 3, 1), saliency(model, x, 0), grad_cam(model, x, 0, "3")]
    path = tmp_path / "maps.png"
    fig = show_attributions(x[:, :1], maps, ["occlusion", "saliency", "grad-cam"], path=path)
    assert len(fig.axes) == N * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["image", "occlusion", "saliency", "grad-cam"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(show_attributions(x[:, :1], maps[1]).axes) == N * 2  # one set of maps, titles by default
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]  # no temporary file left


# --- bad input -------------------------------------------------------------------------------------------------------
def run(fn, model, x, target, **kw):
    if fn == "occlusion":
        return occlusion(model, x, target, kw.pop("window", 3), kw.pop("stride", 1), **kw)
    if fn == "saliency":
        return saliency(model, x, target, **kw)
    return grad_cam(model, x, target, kw.pop("layer", "3"), **kw)


@pytest.mark.parametrize("fn", ["occlusion", "saliency", "grad_cam"])
def test_bad_images_and_targets(fn):
    model, x = tiny(), images()
    wrong_length = r"target must be an int or one class per image \(\[3\]\), got shape \(2,\)"
    cases = [(x[0], 0, ValueError, "x must be"), (x[None], 0, ValueError, "x must be"),
             (x[:0], 0, ValueError, "x must be"), (x, CLASSES, ValueError, r"target classes must lie in \[0, 3\)"),
             (x, -1, ValueError, "target classes"), (x, [0, 1], ValueError, wrong_length),
             (x, [[0, 1, 2]], ValueError, "target must be an int or one"), (x, 0.5, TypeError, "target must be an int")]
    for xs, target, error, message in cases:
        with pytest.raises(error, match=f"^{fn}: {message}"):
            run(fn, model, xs, target)
    with pytest.raises(TypeError, match=f"^{fn}: model must be"):
        run(fn, lambda t: t, x, 0)
    with pytest.raises(ValueError, match=f"^{fn}: the model must return logits"):
        run(fn, nn.Sequential(nn.Conv2d(C, 2, 1)).double(), x, 0, **({"layer": "0"} if fn == "grad_cam" else {}))


def test_bad_occlusion_arguments():
    model, x = tiny(), images()
    for kw, message in [(dict(window=9), r"window \(9, 9\) is larger than the image \(8, 8\)"),
                        (dict(window=(3, 9)), r"window \(3, 9\) is larger"), (dict(window=0), "window must be"),
                        (dict(window=(2,)), "window must be"), (dict(window=2.0), "window must be"),
                        (dict(stride=0), "stride must be"), (dict(stride=(1, -1)), "stride must be"),
                        (dict(baseline=np.zeros((3, 1, 1))), "baseline must be"),
                        (dict(baseline=np.nan), "baseline must be"), (dict(batch_size=0), "batch_size must be")]:
        kw = dict(dict(window=3, stride=1), **kw)
        with pytest.raises(ValueError, match=f"^occlusion: {message}"):
            occlusion(model, x, 0, **kw)


def test_bad_saliency_arguments():
    model, x = tiny(), images()
    for kw, message in [(dict(smooth=-1), "smooth must be"), (dict(smooth=1.5), "smooth must be"),
                        (dict(smooth=2, sigma=-0.1), "sigma must be"), (dict(sigma=np.inf), "sigma must be"),
                        (dict(batch_size=0), "batch_size must be")]:
        with pytest.raises(ValueError, match=f"^saliency: {message}"):
            saliency(model, x, 0, **kw)


def test_bad_grad_cam_layers():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.spare, self.aside = tiny(), nn.Conv2d(C, 2, 1).double(), nn.Conv2d(C, 2, 1).double()

        def forward(self, x):
            self.aside(x)  # runs, but the logits do not use it
            return self.body(x)
    model, x = Unused(), images()
    for layer, error, message in [("body.99", ValueError, "the model has no layer named 'body.99'; its layers are"),
                                  (nn.ReLU(), ValueError, "layer ReLU is not a module of the model"),
                                  (3, TypeError, "layer must be a module"),
                                  ("spare", ValueError, "layer 'spare' did not run in the model's forward"),
                                  ("aside", ValueError, "the class score does not depend on layer 'aside'"),
                                  ("body.8", ValueError, r"layer 'body.8' must output feature maps \[N, K, h, w\], "
                                                         r"got shape \(3, 3\)"),
                                  ("body.7", ValueError, "layer 'body.7' must output feature maps")]:
        with pytest.raises(error, match=f"^grad_cam: {message}"):
            grad_cam(model, x, 0, layer)


def test_bad_pictures():
    image = np.zeros((4, 4))
    for args, kw, message in [((image, np.zeros((2, 2, 2))), {}, "heat must be"),
                              ((image, np.array([[np.nan]])), {}, "heat must be"),
                              ((image, np.zeros((2, 2))), dict(alpha=1.5), "alpha must lie"),
                              ((np.zeros((2, 4, 4)), np.zeros((2, 2))), {}, "image must be"),
                              ((np.full((4, 4), np.inf), np.zeros((2, 2))), {}, "image holds NaN")]:
        with pytest.raises(ValueError, match=f"^overlay: {message}"):
            overlay(*args, **kw)
    maps = np.zeros((2, 3, 3))
    for args, message in [((np.zeros((3, 1, 4, 4)), maps), "3 images but 2 maps in set 0"),
                          ((np.zeros((2, 1, 4, 4)), [maps, maps], ["one"]), "2 sets of maps but 1 titles"),
                          ((np.zeros((0, 1, 4, 4)), maps), "expected at least one image")]:
        with pytest.raises(ValueError, match=f"^show_attributions: {message}"):
            show_attributions(*args)

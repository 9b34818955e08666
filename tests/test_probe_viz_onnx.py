"""Bad input for minicnn.viz, the PyTorch checkpoint reader, models.create(weights=...), minicnn.onnx and
`python -m minicnn.export`: each case once gave a wrong answer, a deep traceback, a huge allocation or a lost file,
and must now give a ValueError/TypeError that starts with the function's name (or, for the command line, one line
starting with "error:")."""
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

import minicnn as mc
from minicnn import models, nn, viz
from test_torch_checkpoint import Call
from minicnn.torch_checkpoint import load_torch_checkpoint

C, H, W = 2, 8, 8


def tiny():
    """conv-BN-ReLU-conv-ReLU-global pool-linear in float64, left in train mode."""
    return nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(4, 3)).double().train()


def images(n=3, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, C, H, W))


def raises(error, message, fn, *args, **kw):
    with pytest.raises(error, match=message):
        fn(*args, **kw)


# --- checkpoints: every cut, flipped bytes, declared sizes, zip bombs, odd paths -------------------------------------
@pytest.fixture(scope="module")
def saved(torch_mod, tmp_path_factory):
    """Small real torch.save files, zip and legacy, of a training checkpoint."""
    torch, folder = torch_mod, tmp_path_factory.mktemp("saved")
    state = collections.OrderedDict(w=torch.arange(12.0).reshape(3, 4), b=torch.tensor([1, 2, 3]), n=torch.tensor(7))
    obj = {"state_dict": state, "epoch": 1, "misc": [1.5, "x", (1, 2)]}
    torch.save(obj, folder / "zip.pt")
    torch.save(obj, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    return folder


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt"])
def test_a_checkpoint_cut_anywhere_or_with_a_byte_changed_is_a_clear_error(saved, tmp_path, name):
    raw = (saved / name).read_bytes()
    assert load_torch_checkpoint(saved / name)["epoch"] == 1
    damaged = tmp_path / "damaged.pt"
    rng = np.random.default_rng(0)
    flips = []
    for _ in range(300):
        b = bytearray(raw)
        b[rng.integers(len(b))] = rng.integers(256)
        flips.append(bytes(b))
    for cut in range(len(raw)):
        damaged.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="^load_torch_checkpoint: ") as e:
            load_torch_checkpoint(damaged)
        assert "MemoryError" not in str(e.value)
    for content in flips:  # a changed byte may fall in a tensor's values and load; anything else is a ValueError
        damaged.write_bytes(content)
        try:
            load_torch_checkpoint(damaged)
        except ValueError as e:
            assert str(e).startswith("load_torch_checkpoint: ") and "MemoryError" not in str(e), str(e)


def legacy_file(obj, storages, pickler=pickle.Pickler):
    """A legacy torch.save file by hand: magic, protocol, sys_info, the object, the keys, then each storage."""
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    pickler(out, protocol=2).dump(obj)
    pickle.dump(list(storages), out, protocol=2)
    for count, raw in storages.values():
        out.write(struct.pack("<q", count) + raw)
    return out.getvalue()


class Stored:
    def __init__(self, torch, key, numel, view=None):
        self.pid = ("storage", torch.FloatStorage, key, "cpu", numel) + ((view,) if view else ())


class StoragePickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Stored) else None


def tensor(torch, stored, numel):
    return Call(torch._utils._rebuild_tensor, stored, 0, (numel,), (1,))


def test_declared_sizes_cannot_allocate_what_the_file_does_not_hold(torch_mod, tmp_path):
    torch = torch_mod
    path = tmp_path / "big.pt"
    # a storage count of 2**40 elements: the reader once asked the file for 4 TiB
    path.write_bytes(legacy_file({"w": tensor(torch, Stored(torch, "0", 4), 4)}, {"0": (2 ** 40, bytes(16))},
                                 StoragePickler))
    raises(ValueError, r"^load_torch_checkpoint: .* is truncated: storage '0' should hold 4398046511104 bytes, 16 "
                       r"are left", load_torch_checkpoint, path)
    # a pickled bytes object that claims 2**40 bytes: the C unpickler would allocate them before reading
    path.write_bytes(legacy_file(None, {})[:-20] + b"\x80\x02\x8e" + struct.pack("<Q", 2 ** 40) + b"abc.")
    with pytest.raises(ValueError, match="^load_torch_checkpoint: .* is damaged") as e:
        load_torch_checkpoint(path)
    assert "MemoryError" not in str(e.value)
    # an old-style storage view reaching past its storage (elements 2..9 of 4)
    path.write_bytes(legacy_file({"w": tensor(torch, Stored(torch, "0", 4, ("0", 2, 8)), 8)},
                                 {"0": (4, np.arange(4, dtype="<f4").tobytes())}, StoragePickler))
    raises(ValueError, r"^load_torch_checkpoint: a storage view .* does not lie inside its storage of 4",
           load_torch_checkpoint, path)
    path.write_bytes(legacy_file({"w": tensor(torch, Stored(torch, "0", 4, ("0", 1, 2)), 2)},
                                 {"0": (4, np.arange(4, dtype="<f4").tobytes())}, StoragePickler))
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], np.float32([1, 2]))  # a view inside works


def zip_checkpoint(path, obj, storages, compression=zipfile.ZIP_DEFLATED):
    data = io.BytesIO()
    StoragePickler(data, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("archive/data.pkl", data.getvalue())
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def test_zip_bombs_are_refused_before_they_unpack(torch_mod, tmp_path):
    torch, bomb = torch_mod, "more than 64 times the file's size .* a damaged file or a zip bomb"
    n = 2 ** 22  # 16 MiB of zeros deflate to about 16 KiB
    one = zip_checkpoint(tmp_path / "one.pt", {"w": tensor(torch, Stored(torch, "0", n), n)}, {"0": bytes(4 * n)})
    assert one.stat().st_size < 2 ** 15
    raises(ValueError, f"^load_torch_checkpoint: .*{bomb}", load_torch_checkpoint, one)
    many = {str(i): bytes(2 ** 16) for i in range(64)}  # each record within the bound, all of them beyond it
    path = zip_checkpoint(tmp_path / "many.pt", {k: tensor(torch, Stored(torch, k, 2 ** 14), 2 ** 14) for k in many},
                          many)
    raises(ValueError, f"^load_torch_checkpoint: .*{bomb}", load_torch_checkpoint, path)
    values = np.random.default_rng(0).standard_normal(100).astype("<f4")  # deflated, as a re-zipped file may be
    legit = zip_checkpoint(tmp_path / "legit.pt", {"w": tensor(torch, Stored(torch, "0", 100), 100)},
                           {"0": values.tobytes()})
    np.testing.assert_array_equal(load_torch_checkpoint(legit)["w"], values)


def test_paths_that_are_no_checkpoint_file(saved, tmp_path):
    raises(ValueError, r"^load_torch_checkpoint: '.*' is a directory; expected a checkpoint file",
           load_torch_checkpoint, tmp_path)
    raises(ValueError, "^load_torch_checkpoint: '.' is a directory", load_torch_checkpoint, "")
    raises(ValueError, "^load_torch_checkpoint: '/dev/null' is not a regular file", load_torch_checkpoint, "/dev/null")
    os.mkfifo(tmp_path / "pipe")  # opening it would wait forever for a writer
    raises(ValueError, "^load_torch_checkpoint: '.*pipe' is not a regular file", load_torch_checkpoint,
           tmp_path / "pipe")
    raises(TypeError, "^load_torch_checkpoint: path must be a str or os.PathLike, got NoneType",
           load_torch_checkpoint, None)
    (tmp_path / "link.pt").symlink_to(saved / "zip.pt")
    assert load_torch_checkpoint(tmp_path / "link.pt")["epoch"] == 1
    (tmp_path / "dangling.pt").symlink_to(tmp_path / "nowhere.pt")
    raises(FileNotFoundError, "no such file", load_torch_checkpoint, tmp_path / "dangling.pt")
    assert load_torch_checkpoint(os.fsencode(saved / "zip.pt"))["epoch"] == 1


def test_create_with_weights_checks_its_arguments(torch_mod, tmp_path):
    torch = torch_mod
    state = collections.OrderedDict((k, torch.from_numpy(np.array(v)))
                                    for k, v in models.create("lenet5", num_classes=10).state_dict().items())
    state["note"] = "trained on a laptop"
    torch.save(state, tmp_path / "noted.pt")
    raises(ValueError, "^load_torch_checkpoint: no state_dict .* also holds 'note': str, not a tensor",
           models.create, "lenet5", weights=tmp_path / "noted.pt")
    for bad in (0, -1, True, 10.0, "10"):
        raises(ValueError, f"^create: num_classes must be None or a positive int, got {bad!r}", models.create,
               "lenet5", num_classes=bad)
    assert models.create("lenet5", num_classes=np.int64(7)).classifier[4].out_features == 7
    raises(TypeError, "^create: name must be a str", models.create, ["lenet5"])
    raises(TypeError, "^create: weights must be the path of a checkpoint file, got OrderedDict", models.create,
           "lenet5", weights=state)
    raises(ValueError, "^load_torch_checkpoint: .* is a directory", models.create, "lenet5", weights=tmp_path)


# --- viz: images, arguments, figures ----------------------------------------------------------------------------------
def test_nan_or_infinite_images_are_refused_not_explained():
    model, x = tiny(), images()
    x[1, 0, 2, 3] = np.nan
    for fn, args in [(viz.occlusion, (0, 3, 1)), (viz.saliency, (0,)), (viz.grad_cam, (0, "3"))]:
        raises(ValueError, f"^{fn.__name__}: x holds NaN or infinite values", fn, model, x, *args)
    raises(ValueError, "^activations: x holds NaN", viz.activations, model, np.where(x > 0.5, np.inf, 0), "0")
    raises(ValueError, "^top_patches: the images hold NaN", viz.top_patches, model, "3", 0, x)
    raises(ValueError, "^activations: x must be a batch .* got float64 of shape \\(0, 2, 8, 8\\)", viz.activations,
           model, x[:0], "0")


def test_saliency_keeps_memory_to_one_batch_and_checks_its_seed():
    """SmoothGrad draws its noise batch by batch: the same numbers as one draw of (s, N, C, H, W), whatever the
    batch size, and the mean of the gradients over the noisy copies."""
    model, x, target, smooth, sigma = tiny(), images(), np.array([2, 0, 1]), 3, 0.2
    noise = np.random.default_rng(5).standard_normal((smooth,) + x.shape)
    spread = sigma * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))[:, None, None, None]
    model.eval()
    grads = []
    for e in noise:
        xt = mc.tensor(x + e * spread, requires_grad=True)
        model(xt)[np.arange(3), target].sum().backward()
        grads.append(xt.grad.numpy())
    model.train()
    expected = np.abs(np.mean(grads, axis=0)).max(axis=1)
    for batch_size in (1, 2, 3, 4, 7, 128):  # inside one copy, and whole copies per batch
        got = viz.saliency(model, x, target, smooth=smooth, sigma=sigma, seed=5, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13, err_msg=f"batch_size={batch_size}")
    raises(ValueError, r"^saliency: smooth must be an int in \[0, 10000\]", viz.saliency, model, x, 0, smooth=10 ** 12)
    for seed in ("a", -1, 1.5):
        raises(ValueError, "^saliency: seed must be None or an int >= 0", viz.saliency, model, x, 0, smooth=2,
               seed=seed)

    class Ignores(nn.Module):  # logits that do not depend on the image
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(np.zeros((1, 3)))

        def forward(self, x):
            return self.bias * mc.tensor(np.ones((len(x), 1)))
    raises(ValueError, "^saliency: the class score has no autograd path back to the input x", viz.saliency,
           Ignores(), x, 0)


def test_attribution_arguments():
    model, x = tiny(), images()
    raises(TypeError, "^occlusion: with_top must be True or False, got 'yes'", viz.occlusion, model, x, 0, 3, 1,
           with_top="yes")
    raises(ValueError, r"^grad_cam: target must be an int or one class per image \(\[3\]\), got shape \(0,\)",
           viz.grad_cam, model, x, [], "3")
    image, heat = np.random.default_rng(0).random((3, 8, 8)), np.random.default_rng(1).random((4, 4))
    for alpha in ("0.5", None, np.array([0.5, 0.5]), True):
        raises(ValueError, r"^overlay: alpha must lie in \[0, 1\]", viz.overlay, image, heat, alpha=alpha)
    raises(ValueError, "^overlay: cmap must be the name of a matplotlib colour map", viz.overlay, image, heat,
           cmap="nope")
    maps, x = np.random.default_rng(2).random((3, 4, 4)), x[:, :1]  # grey images
    for args, kw, error, message in [
            ((x, None), {}, TypeError, "maps must be an array"), ((3, maps), {}, TypeError, "images must be an array"),
            ((x, maps[0]), {}, ValueError, r"expected one set of maps \[N, h, w\] or several, got \(4, 4\)"),
            ((x, []), {}, ValueError, "expected one set of maps"),
            ((x, maps), dict(titles="saliency"), TypeError, "titles must be a list of 1 column titles"),
            ((x, np.full((3, 4, 4), np.nan)), {}, ValueError, "heat must be a finite real map"),
            ((x, maps), dict(cmap="nope"), ValueError, "cmap must be the name")]:
        raises(error, f"^show_attributions: {message}", viz.show_attributions, *args, **kw)


def test_figure_paths_are_checked_before_drawing_and_saved_by_suffix(tmp_path):
    maps = np.random.default_rng(0).random((3, 4, 4))
    for fn, args in [(viz.show_feature_maps, (maps,)), (viz.show_attributions, (images()[:, :1], maps)),
                     (viz.filters, (nn.Conv2d(3, 4, 3),))]:
        name = fn.__name__
        raises(ValueError, f"^{name}: '.*' is a directory", fn, *args, path=tmp_path)
        raises(ValueError, f"^{name}: the directory '.*missing' of", fn, *args, path=tmp_path / "missing" / "f.png")
        raises(ValueError, rf"^{name}: cannot save a figure as \.xyz; the suffix must be one of .*\.png",
               fn, *args, path=tmp_path / "f.xyz")
        raises(TypeError, f"^{name}: path must be a str or os.PathLike, got int", fn, *args, path=3)
    assert sorted(tmp_path.iterdir()) == []
    folder = tmp_path / "run.1"  # a dot in a folder's name, none in the file's: PNG
    folder.mkdir()
    viz.show_feature_maps(maps, path=folder / "maps")
    assert (folder / "maps").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    x = np.ones((1, 2, 4, 4))
    net = nn.Sequential(nn.Conv2d(2, 2, 3)).double()
    raises(ValueError, "^plot_graph: '.*' is a directory", viz.plot_graph, net, tmp_path, x)
    raises(ValueError, "^plot_graph: the directory '.*missing' of", viz.plot_graph, net, tmp_path / "missing/g.svg", x)
    raises(TypeError, "^plot_graph: path must be a str or os.PathLike, got NoneType", viz.plot_graph, net, None, x)


def test_feature_arguments():
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    raises(ValueError, "^filter_grid: pad must be an int >= 0, got True", viz.filter_grid, w, pad=True)
    raises(ValueError, "^filter_grid: with pad=1000000 the grid of 4 filters of 3x3 would have more than",
           viz.filter_grid, w, pad=10 ** 6)
    w[2, 1, 0, 0] = np.nan  # a diverged training: a grey tile would hide it
    raises(ValueError, "^filter_grid: the weights hold NaN or infinite values", viz.filter_grid, w)
    maps = np.random.default_rng(1).random((2, 3, 4, 4))
    raises(ValueError, r"^show_feature_maps: index must be an image in \[0, 2\), got True", viz.show_feature_maps,
           maps, index=True)
    raises(ValueError, "^show_feature_maps: max_maps must be an int >= 1, got True", viz.show_feature_maps, maps,
           max_maps=True)
    raises(ValueError, "^show_feature_maps: the maps hold NaN", viz.show_feature_maps, np.full((3, 4, 4), np.nan))
    raises(ValueError, "^show_feature_maps: cmap must be the name", viz.show_feature_maps, maps, cmap="nope")


def test_receptive_field_and_top_patch_arguments():
    model, x = tiny(), images()
    raises(ValueError, r"^receptive_field: input_size must be \(C, H, W\)", viz.receptive_field, model, "3",
           (True, 8, 8))
    raises(ValueError, "^receptive_field: input_size .* has more than 16777216 values", viz.receptive_field, model,
           "3", (2, 10 ** 5, 10 ** 5))
    raises(TypeError, "^top_patches: transform must be a callable", viz.top_patches, model, "3", 0, x, transform=3)
    raises(ValueError, r"^top_patches: transform\(batch\) must be a batch of real images", viz.top_patches, model,
           "3", 0, x, transform=lambda b: None)
    raises(ValueError, "^top_patches: the path to layer '7' passes through Reshape", viz.top_patches, model, "7", 0, x)
    relu = nn.ReLU()
    shared = nn.Sequential(nn.Conv2d(C, 2, 3), relu, nn.Conv2d(2, 2, 3), relu)
    raises(ValueError, "^top_patches: layer '1' ran 2 times", viz.top_patches, shared, "1", 0, x)
    broken = tiny()
    broken[3].weight.data[0, 0, 0, 0] = np.nan
    raises(ValueError, "^top_patches: layer '3' gives NaN or infinite activations for images 0..2",
           viz.top_patches, broken, "3", 0, x)
    class Frozen(nn.Module):  # as a detector's eval-mode forward: the layer runs, the graph does not reach x
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(C, 2, 3)

        def forward(self, x):
            with mc.no_grad():
                return self.conv(x)
    raises(ValueError, "^receptive_field: the output of layer 'conv' has no autograd path back to the input: .*"
                       "no_grad", viz.receptive_field, Frozen(), "conv")
    result = viz.top_patches(model, "3", 0, x, k=3)
    for ncols in (0, -1, 1.5):
        raises(ValueError, "^show_top_patches: ncols must be an int >= 1", viz.show_top_patches, result, ncols=ncols)


def test_receptive_field_pictures():
    from matplotlib.figure import Figure
    field = viz.receptive_field(tiny(), "3")
    raises(TypeError, "^show_receptive_field: field must be the ReceptiveField", viz.show_receptive_field,
           images()[0], tuple(field), (1, 1))
    ax = Figure().add_subplot()
    raises(TypeError, "^draw_receptive_field: field must be the ReceptiveField", viz.draw_receptive_field, ax,
           tuple(field), 1, 1)
    raises(TypeError, "^draw_receptive_field: y must be the int index of a unit, got 1.5", viz.draw_receptive_field,
           ax, field, 1.5, 1)
    raises(TypeError, "^draw_receptive_field: ax must be a matplotlib Axes", viz.draw_receptive_field, None, field,
           1, 1)
    hwc = np.random.default_rng(0).random((8, 6, 3))  # [H, W, C] as matplotlib takes it: 8 rows, 6 columns
    ax = viz.show_receptive_field(hwc, field, (1, 1)).axes[0]
    assert ax.get_xlim() == (-0.5, 5.5) and ax.get_ylim() == (7.5, -0.5)


def test_graph_of_integer_images_runs_in_the_models_dtype():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).double()
    dot = viz.graph(net, np.arange(25).reshape(1, 1, 5, 5))
    assert 'label="input\\n(1, 1, 5, 5) float64"' in dot
    raises(TypeError, "^graph: the example input must hold numbers, got <U3", viz.graph, net, np.array(["abc"]))


# --- ONNX export and its command line ----------------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
from minicnn import export as export_cli  # noqa: E402  (needs onnx)
from minicnn import onnx as mconnx  # noqa: E402


def test_onnx_export_arguments(tmp_path):
    model, x = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), np.zeros((1, 1, 5, 5), np.float32)
    raises(TypeError, "^onnx.export: model must be a minicnn.nn.Module, got NoneType", mconnx.to_model, None, x)
    raises(ValueError, r"^onnx.export: opset must be one of \[13, 14, 15, 16, 17\], got 17.0", mconnx.to_model, model,
           x, opset=17.0)
    raises(TypeError, "^onnx.export: dynamic_batch must be True or False, got 'no'", mconnx.to_model, model, x,
           dynamic_batch="no")
    raises(ValueError, "^onnx.export: expected a non-empty floating-point example input", mconnx.to_model, model,
           x[:0])
    raises(ValueError, "^onnx.export: the example input is float64, the model's parameters float32",
           mconnx.to_model, model, x.astype(np.float64))
    raises(ValueError, "^onnx.export: the directory '.*missing' of", mconnx.export, model, x,
           tmp_path / "missing" / "m.onnx")
    raises(ValueError, "^onnx.export: '.*' is a directory", mconnx.export, model, x, tmp_path)
    raises(TypeError, "^onnx.export: path must be a str or os.PathLike, got NoneType", mconnx.export, model, x, None)
    mine = tmp_path / "mine.onnx"
    mine.write_text("precious")
    raises(FileExistsError, "^onnx.export: .*mine.onnx exists; pass overwrite=True", mconnx.export, model, x, mine)
    assert mine.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.onnx"]
    proto = mconnx.export(model.train(), x, mine, overwrite=True)
    assert onnx.load(mine) == proto and model.training


def test_export_cli_refuses_before_tracing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def one_error(args, expected):
        assert export_cli.main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err

    one_error(["resnet20", "missing/r.onnx", "--input-size", "3", "8", "8"],
              "the directory missing of missing/r.onnx does not exist")
    one_error(["resnet20", "r.onnx", "--input-size", "3", "100000", "100000"],
              "--input-size 3 100000 100000 has more than 16777216 values")
    mc.checkpoint.save(tmp_path / "last.npz", models.create("lenet5", num_classes=10, in_channels=1), meta={})
    before = (tmp_path / "last.npz").read_bytes()
    one_error(["last.npz", "last.npz", "--overwrite"], "last.npz is SOURCE itself")
    assert (tmp_path / "last.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_figures_never_replace_a_file_unless_asked(tmp_path):
    """Every picture helper that saves (filters, show_feature_maps, show_attributions, ...) refuses to replace an
    existing file without overwrite=True, and then replaces it."""
    pytest.importorskip("matplotlib")
    conv = nn.Conv2d(3, 4, 3)
    path = tmp_path / "filters.png"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="filters: .* exists; pass overwrite=True"):
        viz.filters(conv, path=path)
    assert path.read_bytes() == b"mine"
    maps = np.random.default_rng(0).random((2, 5, 5))
    with pytest.raises(FileExistsError, match="show_feature_maps"):
        viz.show_feature_maps(maps, path=path)
    viz.filters(conv, path=path, overwrite=True)
    assert path.read_bytes()[:4] == b"\x89PNG"

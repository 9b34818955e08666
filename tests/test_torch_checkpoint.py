"""The PyTorch checkpoint reader (minicnn/torch_checkpoint.py) and models.create(name, weights=path).

Files are written by torch.save in the test (zip and legacy formats, every dtype, views of one storage, nested
training checkpoints) or crafted by hand (a big-endian archive, out-of-range strides, malicious pickles); the reader
runs in a subprocess that must not import torch. Malicious pickles try to create a marker file, which must not
appear. Models: a PyTorch twin's weights (benchmarks/torch_models.py) loaded by create(weights=...) give the same
parameters and outputs; torchvision's own checkpoints where torchvision imports (skipped otherwise)."""
import argparse
import codecs
import collections
import io
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import models
from minicnn.torch_checkpoint import load_torch_checkpoint

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import torch_models  # noqa: E402  (PyTorch twins of LeNet-5 and ResNet-18 with minicnn's names)

# torch dtype name -> (NumPy dtype the reader gives, values exactly representable in it)
DTYPES = {"float16": (np.float16, [1.5, -2.25, 0.0, 65504.0]),
          "bfloat16": (np.float32, [1.5, -2.25, 2.0 ** -7, 2.0 ** 100]),
          "float32": (np.float32, [1.5, -2.25, 2.0 ** -100, 2.0 ** 127]),
          "float64": (np.float64, [1.5, -2.25, 2.0 ** -1000, 1e300]),
          "int64": (np.int64, [0, -1, 2 ** 40, -(2 ** 62)]), "int32": (np.int32, [0, -1, 2 ** 30, 7]),
          "int16": (np.int16, [0, -1, 300, 7]), "int8": (np.int8, [0, -1, 100, -128]),
          "uint8": (np.uint8, [0, 1, 200, 255]), "bool": (np.bool_, [True, False, True, True]),
          "uint16": (np.uint16, [0, 1, 60000, 7]), "uint32": (np.uint32, [0, 1, 2 ** 32 - 1, 7]),
          "uint64": (np.uint64, [0, 1, 2 ** 50, 7]), "complex64": (np.complex64, [1.5, -2.25, 0.0, 2.0 ** 100]),
          "complex128": (np.complex128, [1.5, -2.25, 0.0, 1e300])}
NEW_DTYPES = ("uint16", "uint32", "uint64")  # written by _rebuild_tensor_v3, which the legacy format cannot read back


def training_checkpoint(torch, legacy=False):
    """What a training script saves: a state_dict of every dtype and layout, beside plain values."""
    torch.manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = collections.OrderedDict()
    for name, (_, values) in DTYPES.items():
        if legacy and name in NEW_DTYPES:
            continue
        state[name] = torch.tensor(values, dtype=torch.float64).to(getattr(torch, name))
    state.update({"base": base, "transposed": base.t(), "strided": base[1:, ::2], "column": base[:, 3],
                  "expanded": torch.arange(3.0).expand(4, 3), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 5),
                  "param": torch.nn.Parameter(torch.randn(3, 2)), "bn.num_batches_tracked": torch.tensor(7)})
    tagged = torch.ones(2, 2)  # a tensor with Python attributes is saved through _rebuild_from_type_v2
    tagged.note = "kept by torch, dropped by the reader"
    tagged_param = torch.nn.Parameter(torch.full((2,), 3.0))  # saved through _rebuild_parameter_with_state
    tagged_param.note = "also dropped"
    return {"state_dict": state, "epoch": 3, "best": 0.75, "history": [1.0, 0.5, (2, "x")], "name": "run-1",
            "blob": b"\x00\xffab", "tags": {"a", "b"}, "args": argparse.Namespace(lr=0.1, arch="lenet5"),
            "size": torch.Size([2, 3]), "dtype": torch.float16,
            "devices": [torch.device("cpu"), torch.device("cuda", 1)],
            "misc": [bytearray(b"ab"), 1 + 2j, frozenset([3]), np.float64(0.25), np.int64(-3), tagged, tagged_param],
            "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2, 2)}}, "param_groups": [{"lr": 0.1}]}}


READER = """
import pickle, sys
from pathlib import Path
from minicnn.torch_checkpoint import load_torch_checkpoint
out = {p.name: load_torch_checkpoint(p) for p in sorted(Path(sys.argv[1]).iterdir())}
out["torch imported"] = "torch" in sys.modules
Path(sys.argv[2]).write_bytes(pickle.dumps(out))
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory, torch_mod):
    """Checkpoints written by torch.save, and what the reader makes of them in a process without torch."""
    torch = torch_mod
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.save(training_checkpoint(torch), folder / "zip.pt")
    torch.save(training_checkpoint(torch, legacy=True), folder / "legacy.pt", _use_new_zipfile_serialization=False)
    out = folder.parent / "read.pickle"
    subprocess.run([sys.executable, "-c", READER, str(folder), str(out)], cwd=ROOT, check=True)
    read = pickle.loads(out.read_bytes())  # written just now by the subprocess above
    return torch, folder, read


def assert_same(ours, theirs, torch, where="checkpoint"):
    """The reader's object against torch.load's: tensors as arrays (bfloat16 as float32), the rest as saved."""
    if isinstance(theirs, torch.Tensor):
        expected = theirs.detach().float() if theirs.dtype == torch.bfloat16 else theirs.detach()
        assert isinstance(ours, np.ndarray) and ours.flags.owndata, where
        assert ours.dtype == expected.numpy().dtype and ours.shape == tuple(theirs.shape), where
        np.testing.assert_array_equal(ours, expected.numpy(), err_msg=where)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for key in theirs:
            assert_same(ours[key], theirs[key], torch, f"{where}[{key!r}]")
    elif isinstance(theirs, argparse.Namespace):
        assert isinstance(ours, types.SimpleNamespace) and vars(ours) == vars(theirs), where
    elif isinstance(theirs, (torch.dtype, torch.device)):
        assert ours == str(theirs), where
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is (tuple if isinstance(theirs, torch.Size) else type(theirs)), where
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, torch, f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def test_the_reader_never_imports_torch(written):
    _, _, read = written
    assert read["torch imported"] is False
    assert set(read) == {"zip.pt", "legacy.pt", "torch imported"}


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt"])
def test_every_dtype_layout_and_container_matches_torch_load(written, name):
    torch, folder, read = written
    assert_same(read[name], torch.load(folder / name, weights_only=False), torch)


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt"])
def test_values_against_hand_written_arrays(written, name):
    state = written[2][name]["state_dict"]
    for dtype, (np_dtype, values) in DTYPES.items():
        if dtype in NEW_DTYPES and name == "legacy.pt":
            continue
        assert state[dtype].dtype == np_dtype, dtype
        np.testing.assert_array_equal(state[dtype], np.array(values, dtype=np_dtype), err_msg=dtype)
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    for key, expected in {"base": base, "transposed": base.T, "strided": base[1:, ::2], "column": base[:, 3],
                          "expanded": np.tile(np.arange(3.0, dtype=np.float32), (4, 1)),
                          "scalar": np.array(2.5, np.float32), "empty": np.zeros((0, 5), np.float32),
                          "bn.num_batches_tracked": np.array(7)}.items():
        assert state[key].shape == expected.shape and state[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(state[key], expected, err_msg=key)
    state["transposed"][0, 0] = -1  # views of one storage come back as arrays of their own
    assert state["base"][0, 0] == 0 and state["strided"].flags.c_contiguous
    assert written[2][name]["epoch"] == 3 and written[2][name]["blob"] == b"\x00\xffab"


class Call:
    """Pickles as the call fn(*args); nothing runs while pickling."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class Stored:
    """A storage in a hand-made checkpoint: pickled as the persistent id torch.save writes."""

    def __init__(self, storage_type, key, numel):
        self.pid = ("storage", storage_type, key, "cpu", numel)


class CheckpointPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Stored) else None


def write_zip(path, obj=None, storages=(), folder="archive", byteorder=b"little", data_pkl=None):
    """A checkpoint archive made by hand: folder/data.pkl (obj pickled, or the bytes given), byteorder, data/<key>."""
    if data_pkl is None:
        buffer = io.BytesIO()
        CheckpointPickler(buffer, protocol=2).dump(obj)
        data_pkl = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", data_pkl)
        archive.writestr(f"{folder}/byteorder", byteorder)
        archive.writestr(f"{folder}/version", "3\n")
        for key, raw in dict(storages).items():
            archive.writestr(f"{folder}/data/{key}", raw)
    return path


def tensor_call(torch, storage, offset, size, stride):
    return Call(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, collections.OrderedDict())


def test_big_endian_archive_and_any_folder_name(tmp_path, torch_mod):
    torch = torch_mod
    floats, longs = (np.arange(6) - 2.5).astype(">f4"), np.array([1, -2, 2 ** 40], dtype=">i8")
    obj = {"f": tensor_call(torch, Stored(torch.FloatStorage, "0", 6), 1, (2, 2), (1, 2)),
           "i": tensor_call(torch, Stored(torch.LongStorage, "1", 3), 0, (3,), (1,))}
    path = write_zip(tmp_path / "big.pth", obj, {"0": floats.tobytes(), "1": longs.tobytes()},
                     folder="weights v2.final", byteorder=b"big")
    ours = load_torch_checkpoint(path)
    expected = {"f": np.array([[-1.5, 0.5], [-0.5, 1.5]], np.float32), "i": np.array([1, -2, 2 ** 40])}
    for key, value in expected.items():
        assert ours[key].dtype == value.dtype and ours[key].dtype.isnative
        np.testing.assert_array_equal(ours[key], value)
        np.testing.assert_array_equal(torch.load(path)[key].numpy(), value)  # the hand-made file is torch's format


@pytest.mark.parametrize("offset, size, stride", [(5, (2,), (1,)), (0, (2, 3), (3, 2)), (-1, (1,), (1,)),
                                                  (0, (2,), (-1,)), (0, (2 ** 20, 2 ** 10), (0, 0))])
def test_a_tensor_reaching_past_its_storage_is_refused(tmp_path, torch_mod, offset, size, stride):
    torch = torch_mod
    path = write_zip(tmp_path / "bad.pt", {"w": tensor_call(torch, Stored(torch.FloatStorage, "0", 6), offset, size,
                                                            stride)}, {"0": np.zeros(6, "<f4").tobytes()})
    with pytest.raises(ValueError, match=r"^load_torch_checkpoint: a tensor (of size|has)"):
        load_torch_checkpoint(path)


def legacy_bytes(pickled):
    """The legacy format's header (magic number, protocol 1001, sys_info) followed by a pickle."""
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    return header + pickled


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "inside a state_dict"])
def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path, monkeypatch, fmt, attack):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    if attack == "os.system":  # written opcode by opcode, as os.system would be pickled on any platform
        pickled = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    elif attack == "builtins.eval":
        pickled = pickle.dumps(Call(eval, f"open({str(marker)!r}, 'w').close()"), protocol=2)
    else:
        pickled = pickle.dumps(collections.OrderedDict(w=[1.0, 2.0], b=Call(exec, f"open({str(marker)!r}, 'w')")),
                               protocol=2)
        attack = "builtins.exec"
    path = tmp_path / "evil.pt"
    if fmt == "zip":
        write_zip(path, data_pkl=pickled)
    else:
        path.write_bytes(legacy_bytes(pickled))
    with pytest.raises(ValueError, match=rf"^load_torch_checkpoint: refuses to load '{attack}': a checkpoint holds "
                                         r"only tensors"):
        load_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("call, message", [((bytearray, 10 ** 12), r"refuses bytearray\(1000000000000\)"),
                                           ((codecs.encode, "eA==", "base64"), "refuses to encode 'eA==' as 'base64'")])
def test_allowed_globals_refuse_harmful_arguments(tmp_path, call, message):
    path = write_zip(tmp_path / "odd.pt", data_pkl=pickle.dumps(Call(*call), protocol=2))
    with pytest.raises(ValueError, match=f"^load_torch_checkpoint: {message}"):
        load_torch_checkpoint(path)


def test_a_pickled_module_is_refused_with_advice(tmp_path, torch_mod):
    torch_mod.save(torch_mod.nn.Linear(2, 3), tmp_path / "whole.pt")
    with pytest.raises(ValueError, match=r"refuses to load 'torch\.nn\.modules\.linear\.Linear'.*state_dict\(\)"):
        load_torch_checkpoint(tmp_path / "whole.pt")


def test_files_that_are_not_checkpoints(tmp_path):
    real = tmp_path / "real.pt"
    write_zip(real, {"a": [1, 2, 3]}, {"0": bytes(64)})
    assert load_torch_checkpoint(real) == {"a": [1, 2, 3]}
    files = {"picture.png": (b"\x89PNG\r\n\x1a\n" + bytes(100), "is not a PyTorch checkpoint"),
             "empty.pt": (b"", "is not a PyTorch checkpoint"),
             "truncated.pt": (real.read_bytes()[:len(real.read_bytes()) // 2], "is damaged or not a PyTorch"),
             "plain.pkl": (pickle.dumps({"a": 1}, protocol=2), r"is a pickle, but not one written by torch\.save"),
             "legacy_cut.pt": (legacy_bytes(b"\x80\x02}q\x00"), "is damaged or not a PyTorch checkpoint"),
             "notes.txt": (b"weights: none\n" * 5, "is not a PyTorch checkpoint")}
    for name, (content, message) in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"^load_torch_checkpoint: '.*{name}' {message}"):
            load_torch_checkpoint(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="a zip archive, but not one written by torch.save"):
        load_torch_checkpoint(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError, match="no such file: '.*missing.pth'"):
        load_torch_checkpoint(tmp_path / "missing.pth")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_and_missing_storage_records(tmp_path, torch_mod):
    torch = torch_mod
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "scripted.pt")
    with pytest.raises(ValueError, match="TorchScript archive"):
        load_torch_checkpoint(tmp_path / "scripted.pt")
    tensor = tensor_call(torch, Stored(torch.FloatStorage, "0", 6), 0, (6,), (1,))
    with pytest.raises(ValueError, match="storage '0', which the archive lacks"):
        load_torch_checkpoint(write_zip(tmp_path / "no_data.pt", {"w": tensor}))
    with pytest.raises(ValueError, match="storage '0' holds 8 bytes, the pickle expects 24"):
        load_torch_checkpoint(write_zip(tmp_path / "short.pt", {"w": tensor}, {"0": bytes(8)}))


def test_safetensors_round_trip_detected_by_content(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(0)
    arrays = {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "half": np.float16([1.5, -2]),
              "double": np.float64([1e-300]), "count": np.array(7, np.int64), "mask": np.array([True, False]),
              "bytes": np.uint8([0, 255]), "empty": np.zeros((0, 2), np.float32)}
    path = tmp_path / "weights.bin"  # no .safetensors suffix: the header says what it is
    safetensors_numpy.save_file(arrays, str(path))
    ours = load_torch_checkpoint(path)
    assert sorted(ours) == sorted(arrays)
    for key, value in arrays.items():
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape, key
        np.testing.assert_array_equal(ours[key], value, err_msg=key)


def test_safetensors_bfloat16_becomes_float32(tmp_path, torch_mod):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    values = DTYPES["bfloat16"][1]
    safetensors_torch.save_file({"w": torch_mod.tensor(values, dtype=torch_mod.bfloat16)}, tmp_path / "w.safetensors")
    w = load_torch_checkpoint(tmp_path / "w.safetensors")["w"]
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, np.float32(values))


def test_safetensors_without_the_package_says_so(tmp_path, monkeypatch):
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    path = tmp_path / "w.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if it were not installed
    with pytest.raises(ImportError, match="needs the safetensors package"):
        load_torch_checkpoint(path)


# --- models.create(name, weights=path) -------------------------------------------------------------------------
def torch_twin(torch, name, num_classes):
    """A PyTorch twin with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(1)
    twin = getattr(torch_models, name)(torch, num_classes)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.num_batches_tracked.fill_(5)
    return twin.eval()


def assert_weights_and_outputs_match(ours, twin, torch, shape, x_seed=0):
    mine = ours.state_dict()
    theirs = twin.state_dict()
    assert list(mine) == list(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(mine[key], value.numpy(), err_msg=key)
    x = np.random.default_rng(x_seed).standard_normal(shape).astype(np.float32)
    with mc.no_grad():
        got = ours.eval()(mc.tensor(x)).numpy()
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_resnet18_from_a_torch_checkpoint(tmp_path, torch_mod):
    torch = torch_mod
    twin = torch_twin(torch, "resnet18", 5)
    torch.save(twin.state_dict(), tmp_path / "resnet18.pth")
    ours = models.create("resnet18", weights=tmp_path / "resnet18.pth")  # 5 classes read from fc.weight
    assert ours.fc.out_features == 5 and int(ours.bn1.num_batches_tracked.item()) == 5
    assert_weights_and_outputs_match(ours, twin, torch, (2, 3, 32, 32))


def test_checkpoints_without_num_batches_tracked_keep_the_models(tmp_path, torch_mod):
    """Files from PyTorch before 0.4.1 have no num_batches_tracked buffers: the model keeps its own (0)."""
    torch = torch_mod
    twin = torch_twin(torch, "resnet18", 3)
    state = twin.state_dict()
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, tmp_path / "old.pth")
    ours = models.create("resnet18", weights=tmp_path / "old.pth")
    counts = {k: v for k, v in ours.state_dict().items() if k.endswith("num_batches_tracked")}
    assert len(counts) == 20 and all(v == 0 for v in counts.values())
    for key, value in state.items():
        if key not in counts:
            np.testing.assert_array_equal(ours.state_dict()[key], value.numpy(), err_msg=key)


@pytest.mark.parametrize("layout", ["nested in 'model'", "nested in 'state_dict', DataParallel names", "legacy",
                                    "safetensors", "reversed order"])
def test_checkpoint_layouts_load_into_lenet(tmp_path, torch_mod, layout):
    torch = torch_mod
    twin = torch_twin(torch, "lenet5", 7)
    state = twin.state_dict()
    path = tmp_path / "lenet.pt"
    if layout == "nested in 'model'":
        torch.save({"model": state, "epoch": 9}, path)
    elif layout.startswith("nested in 'state_dict'"):
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "arch": "lenet5"}, path)
    elif layout == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif layout == "safetensors":
        pytest.importorskip("safetensors")
        from safetensors.torch import save_file
        save_file(state, path)
    else:  # the classifier's rows are not the last matrix's: num_classes is still found
        torch.save(collections.OrderedDict(reversed(state.items())), path)
    ours = models.create("lenet5", weights=path, in_channels=1)
    assert ours.classifier[4].out_features == 7
    assert_weights_and_outputs_match(ours, twin, torch, (2, 1, 28, 28))


def test_weights_that_do_not_fit_say_which_key(tmp_path, torch_mod):
    torch = torch_mod
    state = torch_twin(torch, "lenet5", 7).state_dict()
    torch.save(state, tmp_path / "seven.pt")
    with pytest.raises(ValueError, match=r"classifier 'classifier\.4\.weight' has 7 classes, but num_classes=10"):
        models.create("lenet5", num_classes=10, weights=tmp_path / "seven.pt", in_channels=1)
    assert models.create("lenet5", num_classes=7, weights=tmp_path / "seven.pt", in_channels=1) is not None
    torch.save(dict(state, **{"features.3.weight": torch.zeros(16, 6, 3, 3)}), tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"^create\('lenet5', weights='.*shape\.pt'\): 'features\.3\.weight' has "
                                         r"shape \(16, 6, 3, 3\) in the checkpoint, but the model expects "
                                         r"\(16, 6, 5, 5\)"):
        models.create("lenet5", weights=tmp_path / "shape.pt", in_channels=1)
    extra = dict(state, **{"head.weight": torch.zeros(2)})
    del extra["features.0.bias"]
    torch.save(extra, tmp_path / "keys.pt")
    with pytest.raises(ValueError, match=r"1 keys missing \('features\.0\.bias'\), 1 unexpected \('head\.weight'\)"):
        models.create("lenet5", weights=tmp_path / "keys.pt", in_channels=1)
    torch.save({"epoch": 1, "lr": 0.1}, tmp_path / "none.pt")
    with pytest.raises(ValueError, match=r"no state_dict in the checkpoint .* keys \['epoch', 'lr'\]"):
        models.create("lenet5", weights=tmp_path / "none.pt")
    # without weights or num_classes: the model's own default (the data set it is made for)
    assert models.create("lenet5", in_channels=1).classifier[4].out_features == 10
    assert [p.shape for p in models.create("resnet20").parameters()][-1] == (10,)
    assert [p.shape for p in models.create("resnet18").parameters()][-1] == (1000,)


def torchvision_or_skip():
    try:
        import torchvision
    except Exception as e:  # a torchvision built for another torch raises RuntimeError on import
        pytest.skip(f"torchvision is not usable here ({type(e).__name__})")
    return torchvision


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_torchvision_checkpoints_load_and_compute_the_same(tmp_path, torch_mod, name):
    torchvision = torchvision_or_skip()
    torch = torch_mod
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None, num_classes=6).eval()
    torch.save(theirs.state_dict(), tmp_path / f"{name}.pth")
    ours = models.create(name, weights=tmp_path / f"{name}.pth")
    assert_weights_and_outputs_match(ours, theirs, torch, (1, 3, 64, 64))

"""Read PyTorch checkpoints into NumPy arrays without importing PyTorch and without running code from the file.

`load_torch_checkpoint(path)` returns what `torch.save` was given, with every tensor (and `nn.Parameter`) replaced by
a NumPy array: a state_dict comes back as an OrderedDict of names to arrays; a training checkpoint such as
{"state_dict": {...}, "epoch": 3, "optimizer": {...}} comes back with the same nesting of dicts, lists, tuples,
numbers and strings. `torch.Size` becomes a tuple, `torch.device` and dtype objects their names ("cpu",
"torch.float32"), `argparse.Namespace` a `types.SimpleNamespace`. bfloat16 becomes float32 (NumPy has no bfloat16);
every other dtype keeps its NumPy twin; each array owns its memory (views of one storage become separate copies).

Three formats, recognised by their first bytes, not by the file's suffix:

- The zip archive of torch.save (PyTorch >= 1.6). One top-level folder (named after the file, or "archive") holds
  data.pkl, a pickle of the object; data/<key>, the raw bytes of each storage; byteorder ("little" or "big";
  little when absent). In the pickle a tensor is the call
  `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`, where
  `storage` is a persistent id ("storage", torch.FloatStorage, key, device, numel) resolved from data/<key>;
  the tensor's element (i, j, ...) is storage[offset + i * stride[0] + j * stride[1] + ...]. Dtypes newer than
  the typed storages (uint16/32/64) use `_rebuild_tensor_v3` with an untyped (byte) storage and the dtype last.
- The legacy format (`_use_new_zipfile_serialization=False`, PyTorch < 1.6): back to back, the pickled magic
  number, protocol version 1001 and a sys_info dict; the pickle of the object (persistent ids carry a sixth
  field, an old-style storage view or None); the pickled list of storage keys; then for each key an int64 element
  count and the storage's raw bytes, little-endian. The storages come after the pickle, so the pickle is read
  twice: once to learn each storage's dtype, once to build the arrays.
- safetensors: an 8-byte header length, a JSON header, raw tensors; parsed by the `safetensors` package.

Why a restricted unpickler. A pickle is a small program: GLOBAL names any importable function, REDUCE calls it,
so `torch.load` of an untrusted file can run `os.system`. Here `find_class` answers only from the table
`_ALLOWED`, each entry this module's own function or a plain container, and refuses everything else with an error
naming the global; no module is imported on the file's behalf. (PyTorch's `weights_only=True` follows the same
idea.) Sizes, strides and offsets are checked against the storage before an array is made from it.

Why a damaged file cannot make it allocate much: every pickle is walked once with `pickletools.genops` before it
is loaded, which finds a length that runs past the data (the C unpickler would first allocate the bytes a length
claims); a legacy storage's element count is checked against the bytes left in the file; a zip archive may
unpack to at most _UNPACK_RATIO times its size in all (torch.save stores records uncompressed, but a deflated or
overlapping record, as in a zip bomb, could otherwise claim any size).
"""
import collections
import io
import os
import pickle
import pickletools
import struct
import types
import zipfile
from pathlib import Path

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C  # the legacy format's first pickle
_LEGACY_PROTOCOL = 1001
_UNPACK_RATIO = 64  # a zip archive's records unpack to at most this many times the file's size, in all

# torch dtype names -> NumPy dtypes; bfloat16 is read as uint16 and widened to float32 (_Storage.typed)
_DTYPES = {name: np.dtype(name) for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8",
                                             "uint8", "uint16", "uint32", "uint64", "bool", "complex64",
                                             "complex128")}
_DTYPES["bfloat16"] = np.dtype("uint16")
_STORAGES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
             "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
             "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128"}


class _Error(ValueError):
    """The errors of this module: a ValueError whose message starts with 'load_torch_checkpoint:'."""

    def __init__(self, message):
        super().__init__(f"load_torch_checkpoint: {message}")


class _StorageType:
    """What the pickle's `torch.FloatStorage` (or `torch.storage.UntypedStorage`, bytes) stands for: a dtype."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.itemsize = _DTYPES[dtype].itemsize

    def __repr__(self):
        return f"<storage of {self.dtype}>"


class _Storage:
    """The raw bytes of one storage (None while the legacy reader only scans), viewed as any dtype on demand."""

    def __init__(self, raw, dtype, byteorder):
        self.raw, self.dtype, self.byteorder = raw, dtype, byteorder
        self._typed = {}

    def typed(self, dtype):
        """The storage as a 1-D native-order array of `dtype` (a torch dtype name); bfloat16 widened to float32."""
        if dtype not in _DTYPES:
            raise _Error(f"tensors of dtype torch.{dtype} have no NumPy equivalent")
        if dtype not in self._typed:
            np_dtype = _DTYPES[dtype].newbyteorder("<" if self.byteorder == "little" else ">")
            usable = len(self.raw) - len(self.raw) % np_dtype.itemsize
            values = np.frombuffer(self.raw[:usable], np_dtype).astype(np_dtype.newbyteorder("="), copy=False)
            if dtype == "bfloat16":  # bfloat16 is the upper half of a float32's bits
                values = (values.astype(np.uint32) << 16).view(np.float32)
            self._typed[dtype] = values
        return self._typed[dtype]


def _tensor(storage, offset, size, stride, dtype=None):
    """The array of a tensor: element (i, j, ...) = storage[offset + i * stride[0] + j * stride[1] + ...]."""
    if not isinstance(storage, _Storage):
        raise _Error(f"a tensor refers to {type(storage).__name__}, expected a storage")
    if storage.raw is None:  # the legacy reader's first pass: storages not read yet
        return None
    dtype = storage.dtype if dtype is None else dtype
    for what, values in (("size", size), ("stride", stride)):
        if not isinstance(values, tuple) or not all(isinstance(v, int) and v >= 0 for v in values):
            raise _Error(f"a tensor has {what} {values!r}, expected a tuple of ints >= 0")
    if len(size) != len(stride) or not isinstance(offset, int) or offset < 0:
        raise _Error(f"a tensor has size {size}, stride {stride}, offset {offset!r}: they do not fit together")
    data = storage.typed(dtype)
    if 0 in size:
        return np.zeros(size, data.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= data.size:
        raise _Error(f"a tensor of size {size}, stride {stride}, offset {offset} reaches element {last} of a "
                     f"storage of {data.size} elements")
    count = int(np.prod(size, dtype=object))
    if count > max(16 * data.size, 2 ** 26):  # zero or overlapping strides: a small file must not fill the memory
        raise _Error(f"a tensor of size {size} repeats its storage of {data.size} elements beyond reason")
    strides = tuple(s * data.itemsize for s in stride)
    return np.lib.stride_tricks.as_strided(data[offset:], size, strides, writeable=False).copy()


def _rebuild_tensor(storage, offset, size, stride, *_requires_grad_hooks_metadata):
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    if not isinstance(dtype, str) or not dtype.startswith("torch."):
        raise _Error(f"a tensor has dtype {dtype!r}, expected a torch dtype")
    return _tensor(storage, offset, size, stride, dtype[len("torch."):])


def _rebuild_parameter(data, *_requires_grad_hooks_state):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """A tensor that carried Python attributes (`state`, dropped here) or was a Parameter."""
    return func(*args)


def _encode(text, encoding):
    """Protocol 2 pickles bytes as _codecs.encode(text, "latin1")."""
    if encoding != "latin1" or not isinstance(text, str):
        raise _Error(f"refuses to encode {text!r:.40} as {encoding!r}: only latin1 text makes bytes")
    return text.encode("latin1")


def _bytearray(data):
    if not isinstance(data, bytes):  # bytearray(n) would allocate n bytes
        raise _Error(f"refuses bytearray({data!r:.40}): only bytes make a bytearray")
    return bytearray(data)


def _device(kind, index=None):
    """torch.device("cuda", 0) -> "cuda:0"."""
    return str(kind) if index is None else f"{kind}:{int(index)}"


def _numpy_scalar(dtype, data):
    """A NumPy scalar (a metric saved as np.float64, say): its dtype and raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise _Error(f"refuses a NumPy scalar of dtype {dtype!r}: only numbers are read")
    return np.frombuffer(data, dtype)[0]


# Every global a checkpoint may name: tensor rebuilding, storage types and dtypes, plain containers and values.
_ALLOWED = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.tensor._rebuild_from_type_v2": _rebuild_from_type_v2,  # the module's name before PyTorch 1.9
    "torch.Tensor": "torch.Tensor",  # the `new_type` argument above: a name, never called
    "torch.storage.UntypedStorage": _StorageType("uint8"),
    "torch.Size": tuple,
    "torch.device": _device,
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,  # protocol 2 writes these four as calls of the builtin
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,
    "builtins.bytearray": _bytearray,
    "_codecs.encode": _encode,
    "argparse.Namespace": types.SimpleNamespace,  # torchvision's training scripts save their arguments
    "numpy.dtype": np.dtype,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
}
_ALLOWED.update({f"torch.{name}": _StorageType(dtype) for name, dtype in _STORAGES.items()})
_ALLOWED.update({f"torch.{name}": f"torch.{name}" for name in _DTYPES})


class _Unpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves globals only from _ALLOWED and storages through `read_raw(key, nbytes)`."""

    def __init__(self, file, read_raw=None, byteorder="little"):
        super().__init__(file)
        self._read_raw, self._byteorder = read_raw, byteorder
        self.storages = {}  # key -> (_StorageType, nbytes, _Storage)

    def find_class(self, module, name):
        if module == "__builtin__":  # protocol 2 writes Python 2's name of builtins
            module = "builtins"
        qualified = f"{module}.{name}"
        if qualified not in _ALLOWED:
            raise _Error(f"refuses to load {qualified!r}: a checkpoint holds only tensors and plain containers "
                         "(dicts, lists, numbers, strings), and nothing in it is run. If the file is a whole "
                         "pickled model, save its model.state_dict() instead")
        return _ALLOWED[qualified]

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or _text(pid[0]) != "storage":
            raise _Error(f"unknown persistent id {pid!r:.80}: expected ('storage', type, key, device, numel)")
        storage_type, key, _device, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise _Error(f"a storage is described as {pid!r:.80}, expected a storage type and a size")
        key = _text(key)
        if key not in self.storages:
            nbytes = numel * storage_type.itemsize
            raw = None if self._read_raw is None else self._read_raw(key, nbytes)
            self.storages[key] = (storage_type, nbytes, _Storage(raw, storage_type.dtype, self._byteorder))
        storage = self.storages[key][2]
        view = pid[5] if len(pid) == 6 else None
        if view is not None and storage.raw is not None:  # an old-style view: (key, offset, size) in elements
            size = _DTYPES[storage.dtype].itemsize
            if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) for v in view[1:])
                    and view[1] >= 0 and view[2] >= 0 and (view[1] + view[2]) * size <= len(storage.raw)):
                raise _Error(f"a storage view {view!r:.80} does not lie inside its storage of {numel} elements")
            _view_key, start, count = view
            storage = _Storage(storage.raw[start * size:(start + count) * size], storage.dtype, self._byteorder)
        return storage


def _text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


def _unpickler(f, read_raw=None, byteorder="little"):
    """An _Unpickler for the next pickle of the in-memory file `f`, once pickletools.genops has walked it: that
    raises a ValueError where a length runs past the data, before anything is allocated for it."""
    start = f.tell()
    for _ in pickletools.genops(f):
        pass
    f.seek(start)
    return _Unpickler(f, read_raw, byteorder)


def load_torch_checkpoint(path):
    """Read a PyTorch checkpoint (.pt/.pth from torch.save, zip or legacy format; or .safetensors) into NumPy.

    Returns the saved object with tensors as NumPy arrays (see the module docstring): an OrderedDict of names to
    arrays for a state_dict, the same nesting of dicts and lists for a training checkpoint, a dict for safetensors.
    Raises TypeError for a path that is not a str or os.PathLike; FileNotFoundError for a missing file; ValueError
    starting with "load_torch_checkpoint:" for a directory, for a file that is no checkpoint or is damaged, and for
    a pickle that names any global besides tensor rebuilding and plain containers (nothing from the file is run);
    ImportError for a safetensors file without the `safetensors` package.

    >>> state = load_torch_checkpoint("resnet18-f37072fd.pth")      # doctest: +SKIP
    >>> state["conv1.weight"].shape, state["conv1.weight"].dtype     # doctest: +SKIP
    ((64, 3, 7, 7), dtype('float32'))
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"load_torch_checkpoint: path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(os.fsdecode(path))
    if not path.exists():
        raise FileNotFoundError(f"load_torch_checkpoint: no such file: '{path}'")
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file (a device, pipe or socket)"
        raise _Error(f"'{path}' is {what}; expected a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(512)
    try:
        if head.startswith(b"PK\x03\x04"):
            return _load_zip(path)
        if _is_safetensors(path, head):
            return _load_safetensors(path)
        if head.startswith(b"\x80"):  # a pickle's PROTO opcode
            return _load_legacy(path)
    except (_Error, ImportError):
        raise
    except Exception as e:  # truncated or corrupt: zipfile, pickle, struct or safetensors say what broke
        raise _Error(f"'{path}' is damaged or not a PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if head[257:262] == b"ustar":
        raise _Error(f"'{path}' is a tar archive: PyTorch's tar format (before version 0.4) is not read; load it "
                     "with that PyTorch and save it again")
    raise _Error(f"'{path}' is not a PyTorch checkpoint: neither the zip archive that torch.save writes, its "
                 f"legacy pickle format, nor safetensors (it starts with {head[:8]!r})")


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        records = {info.filename: info for info in archive.infolist()}
        pickles = sorted(n for n in records if n.endswith("/data.pkl") and n.count("/") == 1)
        if len(pickles) != 1:
            raise _Error(f"'{path}' is a zip archive, but not one written by torch.save (it has "
                         f"{len(pickles)} <folder>/data.pkl records, expected one)")
        prefix = pickles[0][:-len("data.pkl")]
        if prefix + "constants.pkl" in records:
            raise _Error(f"'{path}' is a TorchScript archive (torch.jit.save): it holds code, not only weights; "
                         "save the model's state_dict() with torch.save instead")
        left = _UNPACK_RATIO * path.stat().st_size  # bytes the records may still unpack to

        def read(name):
            nonlocal left
            size = records[name].file_size
            if size > left:
                raise _Error(f"'{path}': its records would unpack to more than {_UNPACK_RATIO} times the file's "
                             f"size (reached at record {name!r} of {size} bytes): a damaged file or a zip bomb")
            left -= size
            return archive.read(name)

        byteorder = "little"  # what torch.load assumes when the record is absent
        if prefix + "byteorder" in records:
            byteorder = read(prefix + "byteorder").decode("ascii", "replace")
            if byteorder not in ("little", "big"):
                raise _Error(f"'{path}' gives the byte order {byteorder!r:.40}, expected 'little' or 'big'")

        def read_raw(key, nbytes):
            name = f"{prefix}data/{key}"
            if name not in records:
                raise _Error(f"'{path}': the pickle refers to storage {key!r}, which the archive lacks")
            if records[name].file_size < nbytes:
                raise _Error(f"'{path}': storage {key!r} holds {records[name].file_size} bytes, the pickle expects "
                             f"{nbytes}")
            return read(name)

        return _unpickler(io.BytesIO(read(pickles[0])), read_raw, byteorder).load()


def _load_legacy(path):
    """The legacy format, read from memory: a length or count in the file can then ask only for bytes it has."""
    data = path.read_bytes()
    f = io.BytesIO(data)
    if _unpickler(f).load() != _MAGIC:
        raise _Error(f"'{path}' is a pickle, but not one written by torch.save (no magic number)")
    protocol = _unpickler(f).load()
    if protocol != _LEGACY_PROTOCOL:
        raise _Error(f"'{path}' has legacy protocol version {protocol!r:.40}, expected {_LEGACY_PROTOCOL}")
    _unpickler(f).load()  # sys_info: the writer's byte order and C type sizes; the data is little-endian
    start = f.tell()
    scan = _unpickler(f)  # first pass: which storages, of which dtype (the arrays come out as None)
    scan.load()
    raws = {}
    for key in _unpickler(f).load():
        if key not in scan.storages:
            raise _Error(f"'{path}' lists storage {key!r:.40}, which its pickle never uses")
        (count,) = struct.unpack("<q", f.read(8))
        nbytes, at = count * scan.storages[key][0].itemsize, f.tell()
        if count < 0 or at + nbytes > len(data):
            raise _Error(f"'{path}' is truncated: storage {key!r} should hold {nbytes} bytes, "
                         f"{max(len(data) - at, 0)} are left")
        raws[key] = memoryview(data)[at:at + nbytes]
        f.seek(at + nbytes)

    def read_raw(key, nbytes):
        if key not in raws or len(raws[key]) < nbytes:
            raise _Error(f"'{path}': storage {key!r} is missing or shorter than the {nbytes} bytes expected")
        return raws[key]

    f.seek(start)
    return _unpickler(f, read_raw, "little").load()


_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                       "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16",
                       "U32": "uint32", "U64": "uint64", "BOOL": "bool"}


def _is_safetensors(path, head):
    """An 8-byte little-endian header length that fits the file, followed by a JSON object."""
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and length <= path.stat().st_size - 8


def _load_safetensors(path):
    """Through `safetensors.deserialize`, the parser under safetensors.numpy.load, which gives raw bytes and a dtype
    name per tensor, so bfloat16 (which NumPy and safetensors.numpy lack) can be widened to float32 here."""
    try:
        import safetensors
    except ImportError as e:
        raise ImportError(f"load_torch_checkpoint: '{path}' is a safetensors file; reading it needs the "
                          "safetensors package (pip install safetensors)") from e
    out = {}
    for name, view in safetensors.deserialize(path.read_bytes()):
        if view["dtype"] not in _SAFETENSORS_DTYPES:
            raise _Error(f"'{path}': tensor {name!r} has dtype {view['dtype']}, which NumPy cannot hold")
        dtype = _SAFETENSORS_DTYPES[view["dtype"]]
        out[name] = _Storage(bytes(view["data"]), dtype, "little").typed(dtype).reshape(view["shape"])
    return out


def state_dict_from(checkpoint):
    """The names -> arrays mapping inside a loaded checkpoint: the checkpoint itself when it is one, else its
    "state_dict" or "model" entry (where training scripts keep it). A "module." prefix on every key (what
    nn.DataParallel adds) is dropped."""
    found = [checkpoint] + [checkpoint.get(k) for k in ("state_dict", "model") if isinstance(checkpoint, dict)]
    for state in found:
        if isinstance(state, dict) and state and all(isinstance(k, str) and isinstance(v, np.ndarray)
                                                     for k, v in state.items()):
            if all(isinstance(k, str) and k.startswith("module.") for k in state):
                state = collections.OrderedDict((k[len("module."):], v) for k, v in state.items())
            return state
    what = f"a dict with keys {list(checkpoint)[:8]}" if isinstance(checkpoint, dict) else type(checkpoint).__name__
    tensors = max((d for d in found if isinstance(d, dict)), default={},
                  key=lambda d: sum(isinstance(v, np.ndarray) for v in d.values()))
    if any(isinstance(v, np.ndarray) for v in tensors.values()):  # a state_dict but for one entry
        key = next(k for k, v in tensors.items() if not isinstance(v, np.ndarray))
        what += f", whose dict of tensors also holds {key!r:.60}: {type(tensors[key]).__name__}, not a tensor"
    raise ValueError("load_torch_checkpoint: no state_dict in the checkpoint (expected a dict of names to tensors, "
                     f"itself or under 'state_dict' or 'model'); it holds {what}")

"""Checkpoints: one .npz holding the model weights, the optimizer and scheduler state, the training position
(epoch and step) and the random generator state, written atomically (a temporary file, then a rename), so a crash
or Ctrl-C never leaves a half-written checkpoint behind. The temporary name is unique (tempfile.mkstemp in the same
directory), so two processes writing into one directory never collide, and a failed write (a full disk) leaves the
previous file as it was."""
import json
from pathlib import Path

import numpy as np

from ._files import atomic_write  # noqa: F401  (also used by the command line as checkpoint.atomic_write)

FORMAT = "minicnn-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a usable minicnn checkpoint; the message is one line naming the file and the reason."""


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(path, model, optimizer=None, scheduler=None, meta=None):
    """Write a checkpoint atomically. `meta` is any JSON-able dict (epoch, step, arguments, history...)."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    info = dict(format=FORMAT, version=VERSION, meta=_jsonable(meta or {}))
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for idx, state in sd["state"].items():
            for key, value in state.items():
                if isinstance(value, np.ndarray) and value.ndim:
                    arrays[f"optim/{idx}/{key}"] = value
                else:
                    scalars.setdefault(str(idx), {})[key] = _jsonable(value)
        info["optimizer"] = dict(param_groups=_jsonable(sd["param_groups"]), scalars=scalars)
    if scheduler is not None:
        info["scheduler"] = _jsonable(scheduler.state_dict())
    info["arrays"] = sorted(arrays)  # the manifest: load() finds a damaged or missing member by it
    arrays["__minicnn__"] = np.array(json.dumps(info))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path):
    """Read a checkpoint: (info dict, model state dict, optimizer arrays {idx: {key: array}}). Anything that is
    not a minicnn checkpoint raises CheckpointError with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__minicnn__" not in z.files:
                raise CheckpointError(f"{path} is not a minicnn checkpoint (no minicnn header)")
            info = json.loads(str(z["__minicnn__"]))
            members = set(z.files) - {"__minicnn__"}
            expected = set(info.get("arrays", ())) if isinstance(info, dict) and "arrays" in info else {
                k for k in members if k.startswith(("model/", "optim/"))}
            if members != expected:
                raise CheckpointError(f"{path} is damaged: its arrays do not match its header (missing "
                                      f"{sorted(expected - members)}, unexpected {sorted(members - expected)})")
            model_sd = {k[len("model/"):]: z[k] for k in z.files if k.startswith("model/")}
            optim = {}
            for k in z.files:
                if k.startswith("optim/"):
                    _, idx, key = k.split("/", 2)
                    optim.setdefault(idx, {})[key] = z[k]
    except CheckpointError:
        raise
    except Exception as e:  # not a zip, truncated, not JSON, pickled objects ...
        reason = f"{type(e).__name__}: {e}"
        if "pickle" in str(e):  # NumPy's message would suggest loading it unsafely: never
            reason = "not an .npz archive of plain arrays: NumPy would have to unpickle it, which minicnn never does"
        raise CheckpointError(f"{path} is not a minicnn checkpoint ({reason})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a minicnn checkpoint of version {VERSION}")
    return info, model_sd, optim


def require(mapping, keys, path, where=""):
    """CheckpointError naming the first of `keys` missing from `mapping` (a dict read from checkpoint `path`)."""
    if not isinstance(mapping, dict):
        raise CheckpointError(f"{path}: {where or 'header'} is not a mapping; the checkpoint is damaged")
    for key in keys:
        if key not in mapping:
            raise CheckpointError(f"{path} lacks the entry {where}{key}; it is damaged or was not written by "
                                  "minicnn.train")


def check_finite(arrays, path, what="weights"):
    """CheckpointError naming the first floating-point array of `arrays` ({name: array}) holding NaN or inf."""
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise CheckpointError(f"{path} holds non-finite {what}: {name} has {bad} NaN or infinite value"
                                  f"{'s' if bad > 1 else ''} of {value.size}")


def load_run(path, settings, resume=False):
    """(info, settings dict, model arrays, optimizer arrays) of a checkpoint written by minicnn.train, checked:
    meta/settings holds every key of `settings` and every weight is finite; to resume, the training position
    and the optimizer and scheduler states are there too, and the optimizer's arrays are finite. A
    CheckpointError naming the file and what is wrong otherwise."""
    info, model_sd, optim_arrays = load(path)
    require(info, ["meta"], path)
    meta = info["meta"]
    require(meta, ["settings", "epoch"] + (["step", "history", "running", "rng"] if resume else []), path, "meta/")
    require(meta["settings"], settings, path, "meta/settings/")
    check_finite(model_sd, path)
    if resume:
        require(info, ["optimizer", "scheduler"], path)
        require(info["optimizer"], ["param_groups", "scalars"], path, "optimizer/")
        require(info["scheduler"], ["last_epoch", "base_lrs"], path, "scheduler/")
        require(meta["running"], ["loss", "seen", "seconds"], path, "meta/running/")
        for name in ("epoch", "step"):
            if not isinstance(meta[name], int) or meta[name] < 0:
                raise CheckpointError(f"{path}: meta/{name} is {meta[name]!r}, not a count")
        check_finite({f"optim/{i}/{k}": v for i, state in optim_arrays.items() for k, v in state.items()}, path,
                     "optimizer state")
    return info, dict(meta["settings"]), model_sd, optim_arrays


def load_weights(model, model_sd, path):
    """Copy a checkpoint's weights into `model`; CheckpointError when they do not fit it."""
    try:
        model.load_state_dict(model_sd)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path} does not fit the model: {e.args[0]}") from None


def restore_optimizer(optimizer, info, arrays):
    """Load the optimizer state that save() wrote (the JSON part in `info`, the arrays in `arrays`)."""
    if "optimizer" not in info:
        raise CheckpointError("the checkpoint holds no optimizer state (it was saved without an optimizer)")
    sd = info["optimizer"]
    state = {}
    for idx in set(arrays) | set(sd["scalars"]):
        state[int(idx)] = dict(sd["scalars"].get(idx, {}), **arrays.get(idx, {}))
    optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})

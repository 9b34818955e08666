"""Checkpoints: one .npz holding the model weights, the optimizer and scheduler state, the training position
(epoch and step) and the random generator state, written atomically (a temporary file, then a rename), so a crash
or Ctrl-C never leaves a half-written checkpoint behind."""
import json
import os
from pathlib import Path

import numpy as np

FORMAT = "minicnn-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    pass


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
    arrays["__minicnn__"] = np.array(json.dumps(info))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
            model_sd = {k[len("model/"):]: z[k] for k in z.files if k.startswith("model/")}
            optim = {}
            for k in z.files:
                if k.startswith("optim/"):
                    _, idx, key = k.split("/", 2)
                    optim.setdefault(idx, {})[key] = z[k]
    except CheckpointError:
        raise
    except Exception as e:  # not a zip, truncated, not JSON, ...
        raise CheckpointError(f"{path} is not a minicnn checkpoint ({type(e).__name__}: {e})") from None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a minicnn checkpoint of version {VERSION}")
    return info, model_sd, optim


def restore_optimizer(optimizer, info, arrays):
    sd = info["optimizer"]
    state = {}
    for idx in set(arrays) | set(sd["scalars"]):
        state[int(idx)] = dict(sd["scalars"].get(idx, {}), **arrays.get(idx, {}))
    optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})

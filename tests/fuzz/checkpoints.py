"""Fuzz cases: checkpoints (see verdicts.py for how each draw is judged)."""
import json
import tempfile
from pathlib import Path

import minicnn as mc  # noqa: F401  (before PyTorch: Numba's OpenMP threads sleep between kernels)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from minicnn import checkpoint, nn, optim  # noqa: E402
from verdicts import (A, ANY, FUZZ, check, mismatch, summ)  # noqa: E402


# --- checkpoints --------------------------------------------------------------------------------------------------
def small_run(tmp):
    """A Linear(3, 2) with an SGD (momentum) step and a StepLR, saved to tmp/ck.npz; (path, model, opt, grads)."""
    mc.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, 2)
    grads = [A("float32", p.shape, seed=i) for i, p in enumerate(model.parameters())]
    for p, g in zip(model.parameters(), grads):
        p.grad = mc.tensor(g)
    opt.step()
    sched.step()
    path = Path(tmp) / "ck.npz"
    checkpoint.save(path, model, opt, sched, meta=dict(epoch=1, step=0))
    return path, model, opt, grads


@FUZZ
@given(st.data())
def test_checkpoint_load_corrupt(data):
    """checkpoint.load on random bytes, truncated or bit-flipped files, foreign .npz files and checkpoints whose
    header or arrays are wrong: a CheckpointError (ValueError) naming the file, or, when it loads, exactly the saved
    values; restoring what loaded into the model and optimizer and taking a step never crashes."""
    d = data.draw
    kind = d(st.sampled_from(["random", "random_zip", "truncate", "truncate", "flip", "flip", "empty", "foreign",
                              "header", "optim_shape", "optim_dtype", "model_shape", "missing", "directory", "ok"]))
    seed = d(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path, model, opt, grads = small_run(tmp)
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as z:
            original = {k: z[k].copy() for k in z.files}
        detail, key, arrays_ = "", None, None
        if kind == "random":
            path.write_bytes(rng.bytes(int(rng.integers(1, 300))))
        elif kind == "random_zip":
            path.write_bytes(b"PK\x03\x04" + rng.bytes(int(rng.integers(0, 300))))
        elif kind == "truncate":
            cut = int(rng.integers(0, len(raw)))
            path.write_bytes(raw[:cut])
            detail = f" at {cut} of {len(raw)} bytes"
        elif kind == "flip":
            pos = int(rng.integers(0, len(raw)))
            path.write_bytes(raw[:pos] + bytes([raw[pos] ^ int(rng.integers(1, 256))]) + raw[pos + 1:])
            detail = f" byte {pos} of {len(raw)}"
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "foreign":
            np.savez(path, weights=A("float32", (3, 2), seed))
        elif kind == "directory":
            path.unlink()
            path.mkdir()
        elif kind == "missing":
            path.unlink()
        elif kind != "ok":
            arrays_ = dict(original)
            if kind == "header":
                header = d(st.sampled_from(["{}", "[]", "null", "not json", "3", '{"format": "minicnn-checkpoint"}',
                                            json.dumps(dict(json.loads(str(original["__minicnn__"])), version=99)),
                                            json.dumps({k: v for k, v in json.loads(str(original["__minicnn__"]))
                                                        .items() if k != "optimizer"})]))
                arrays_["__minicnn__"] = np.array(header)
                detail = f" = {header[:60]!r}"
            else:
                prefix = "model/" if kind == "model_shape" else "optim/"
                key = d(st.sampled_from(sorted(k for k in arrays_ if k.startswith(prefix))))
                a = arrays_[key]
                arrays_[key] = (a.astype(d(st.sampled_from(["float16", "int64", "complex64", "bool"])))
                                if kind == "optim_dtype" else
                                d(st.sampled_from([np.zeros(a.size + 3, a.dtype), a.reshape(-1)[:1].copy(),
                                                   a.reshape(-1, 1), np.asarray(a.reshape(-1)[0])])))
                detail = f" {key} -> {summ(arrays_[key])}"
            with open(path, "wb") as f:
                np.savez(f, **arrays_)
        desc = f"checkpoint.load(a {kind} file{detail}, seed {seed}); restore into Linear(3, 2) + SGD; step"
        names = ["checkpoint", path.name, "load_state_dict", "SGD", "restore_optimizer", "step", "optimizer"]

        def restore():
            info, model_sd, optim_arrays = checkpoint.load(path)
            m2 = nn.Linear(3, 2)
            o2 = optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
            m2.load_state_dict(model_sd)
            checkpoint.restore_optimizer(o2, info, optim_arrays)
            for p, g in zip(m2.parameters(), grads):
                p.grad = mc.tensor(g)
            o2.step()
            return info, model_sd, optim_arrays, [mc.tensor(p.data) for p in m2.parameters()]

        def expected():
            if kind in ("random", "random_zip", "empty", "foreign", "directory", "missing", "header", "optim_shape",
                        "model_shape", "truncate"):
                raise ValueError("not a checkpoint, or a broken one")
            info = json.loads(str(original["__minicnn__"]))
            if kind == "optim_dtype":  # right only as the step from the state cast to the parameters' dtype
                if arrays_[key].dtype.kind == "c":
                    raise ValueError("complex optimizer state")
                _, idx, name = key.split("/", 2)
                sd = opt.state_dict()
                sd["state"][int(idx)][name] = arrays_[key].astype(np.float32)
                m3 = nn.Linear(3, 2)
                m3.load_state_dict({k[len("model/"):]: v for k, v in original.items() if k.startswith("model/")})
                o3 = optim.SGD(m3.parameters(), lr=0.1, momentum=0.9)
                o3.load_state_dict(sd)
                params = list(m3.parameters())
            else:
                o3, params = opt, list(model.parameters())
            for p, g in zip(params, grads):
                p.grad = mc.tensor(g)
            o3.step()
            return (info, ANY, ANY, [torch.from_numpy(np.array(p.data)) for p in params])

        def cmp(got, want):
            why = mismatch(got[3], want[3])
            if why is None and got[0] != want[0]:
                why = "the header differs from the one saved"
            if why is None:
                for k, v in got[1].items():
                    if not np.array_equal(v, original["model/" + k]):
                        why = f"model array {k} differs from the one saved"
            return why
        check("checkpoint.load", names, restore, expected, desc,
              may_refuse=kind in ("flip", "optim_dtype"), cmp=cmp)

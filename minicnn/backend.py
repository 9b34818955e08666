"""Array-module selection (NumPy on the CPU, CuPy on the GPU), devices and random generators.

Everything above this module asks `xp_of(array)` which library to use, so an op runs on whichever device its
inputs live on. CuPy is optional: without it (or without a GPU) `cuda.is_available()` is simply False.
"""
import os

import numpy as np

try:  # CuPy is an optional dependency (the `cuda` extra).
    import cupy as _cupy
except Exception:  # ImportError, or a CuPy wheel that cannot find its CUDA libraries
    _cupy = None


class _Cuda:
    """`mc.cuda`: availability and synchronisation of the GPU backend."""

    @staticmethod
    def is_available():
        """True when CuPy imports and sees at least one GPU; never raises."""
        if _cupy is None:
            return False
        try:
            return _cupy.cuda.runtime.getDeviceCount() > 0
        except Exception:
            return False

    @staticmethod
    def synchronize():
        if _cupy is not None:
            _cupy.cuda.Device().synchronize()


cuda = _Cuda()


# --- which implementation the ops run -------------------------------------------------------------------------

KERNELS = ("fast", "reference")


def _kernels_from_environment():
    mode = os.environ.get("MINICNN_KERNELS", "fast")
    if mode not in KERNELS:
        raise ValueError(f"MINICNN_KERNELS must be 'fast' or 'reference', got {mode!r}")
    return mode


_kernels = _kernels_from_environment()


class use_kernels:
    """Choose what every op runs: "fast" (the default: Numba kernels on the CPU, CUDA kernels on the GPU) or
    "reference" (minicnn/reference/: plain NumPy or CuPy, written to be read and stepped through in a debugger).
    A plain call sets it for the rest of the program; `with mc.use_kernels("reference"):` sets it for the block.
    MINICNN_KERNELS=reference in the environment makes "reference" the default."""

    def __init__(self, mode):
        global _kernels
        if mode not in KERNELS:
            raise ValueError(f"use_kernels: expected 'fast' or 'reference', got {mode!r}")
        self.previous, _kernels = _kernels, mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _kernels
        _kernels = self.previous
        return False


def kernels_mode():
    """'fast' or 'reference' (see use_kernels)."""
    return _kernels


def xp_of(array):
    """The array module (numpy or cupy) an array belongs to."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def is_gpu_array(array):
    return _cupy is not None and isinstance(array, _cupy.ndarray)


class Device:
    """A device: 'cpu' or 'cuda' (optionally 'cuda:N')."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda") or (kind == "cpu" and idx) or (idx and not idx.isdigit()):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        self.type = kind
        self.index = int(idx) if idx else (0 if kind == "cuda" else None)

    def __eq__(self, other):
        if not isinstance(other, Device):
            try:
                other = Device(other)
            except ValueError:
                return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __repr__(self):
        return f"device('{self}')"

    def __str__(self):
        return "cpu" if self.type == "cpu" else f"cuda:{self.index}"


def device_of(array):
    if is_gpu_array(array):
        return Device(f"cuda:{array.device.id}")
    return _CPU


_CPU = Device("cpu")


def xp_for(device):
    """The array module for a device, with a clear error when the GPU backend is missing."""
    device = Device(device)
    if device.type == "cpu":
        return np
    if not cuda.is_available():
        raise RuntimeError("device 'cuda': CuPy or a CUDA GPU is not available (pip install minicnn[cuda])")
    return _cupy


def to_device(array, device):
    """Copy an array to a device (no copy when it is already there)."""
    device = Device(device)
    if device.type == "cpu":
        return array.get() if is_gpu_array(array) else array
    xp = xp_for(device)
    with xp.cuda.Device(device.index):
        return xp.asarray(array)


# --- random generators, all on the host and all seeded by manual_seed --------------------------------------------
# "cpu" draws the values minicnn needs on the host (initialisers, CPU dropout masks); "cuda:N" draws the seeds of
# the GPU kernels that make their own random numbers (dropout), so drawing one never waits for the device.

_seed = None
_generators = {}


def manual_seed(seed):
    """Seed every random source of minicnn (initialisers, dropout masks, shuffling) on every device."""
    global _seed
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: expected an int >= 0, got {seed!r}")
    _seed = int(seed)
    _generators.clear()


def _generator(name):
    gen = _generators.get(name)
    if gen is None:
        seed = _seed if _seed is not None else np.random.SeedSequence().entropy % (2**63)
        stream = 0 if name == "cpu" else 1 + Device(name).index
        gen = _generators[name] = np.random.default_rng([seed, stream])
    return gen


def uniform(shape, dtype=np.float32):
    """Uniform samples in [0, 1) from the host generator."""
    return _generator("cpu").random(shape, dtype=dtype)


def normal(shape, dtype=np.float32):
    """Standard normal samples from the host generator."""
    return _generator("cpu").standard_normal(shape, dtype=dtype)


def kernel_seed(device):
    """A 64-bit seed for a GPU kernel that draws its own random numbers (one seed stream per GPU)."""
    return int(_generator(str(Device(device))).integers(0, 2**63))


def get_rng_state():
    """The state of every generator used so far, JSON-able (for checkpoints)."""
    return {name: gen.bit_generator.state for name, gen in _generators.items()}


def set_rng_state(state):
    for name, value in state.items():
        _generator(name).bit_generator.state = value

"""The decorator of the CPU kernels: each is compiled twice by Numba, with threads (prange runs in parallel) and
without (prange is a plain loop), and a call picks by the size of its first array.

Numba's worker threads sleep soon after a kernel (minicnn/_process.py), and waking them costs more than a kernel on
a small array takes on one thread, so arrays below SERIAL_BELOW elements run on the calling thread. Each variant
compiles on its first use, so only the ones a program needs; on the first run on a machine a large call runs the
serial variant until a second process has compiled the parallel one (_compiler.py).
"""
import functools
import types

from numba import njit

from . import _compiler

SERIAL_BELOW = 1 << 15  # elements in the first argument: below this a kernel runs on the calling thread
KERNELS = {}  # every kernel by name, for the compiler process


def cpu_kernel(**options):
    """@cpu_kernel(**numba_options) on a function written with prange."""
    def wrap(fn):
        parallel = njit(parallel=True, cache=True, **options)(fn)
        # A renamed copy, so Numba's on-disk cache (keyed by the function's name) keeps the two apart.
        copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                  fn.__closure__)
        copy.__qualname__ = fn.__qualname__ + "_serial"
        serial = njit(cache=True, **options)(copy)

        @functools.wraps(fn)
        def call(*args):
            if args[0].size < SERIAL_BELOW:
                return serial(*args)
            if not call.ready:
                call.ready = _compiler.parallel_ready(call, args)
                if not call.ready:
                    return serial(*args)
            return parallel(*args)
        call.parallel, call.serial, call.ready = parallel, serial, False
        call.key = f"{fn.__module__}.{fn.__name__}"
        if call.key in KERNELS:
            raise RuntimeError(f"cpu_kernel: two kernels named {call.key}")
        KERNELS[call.key] = call
        return call
    return wrap

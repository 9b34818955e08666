"""The CPU kernels run on one thread for small inputs and on Numba's threads for large ones (kernels_cpu/_jit.py).
Both variants must give the same numbers: every parallel iteration owns its outputs, so they agree exactly."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.kernels_cpu import _jit


def _all_ops(x, w_direct, w_tiled, w_strided, w_back):
    a = F.conv2d(x, w_direct, padding=2)                # direct kernels, plane by plane (1 channel, 5x5: 25 taps)
    b = F.conv2d(F.relu(a), w_tiled, padding=1)         # register-tiled direct kernels (36 taps, 9x8 outputs)
    c = F.conv2d(a, w_strided, stride=2, padding=1)     # general im2col and col2im
    d = F.conv2d(F.max_pool2d(b, 3, 1), w_back, padding=1)  # shifted im2col (7x6 outputs), dx by convolution
    return [a, b, c, d, F.max_pool2d(b, 3, 2, 1), F.avg_pool2d(b, 3, 2, 1), F.global_avg_pool2d(b),
            F.global_max_pool2d(b), F.batch_norm(b, None, None, training=True), F.leaky_relu(c, 0.1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_kernels_agree(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(3, 1, 9, 8), (4, 1, 5, 5), (6, 4, 3, 3), (5, 4, 3, 3),
                                                                (3, 6, 3, 3)]]
    monkeypatch.setenv("MINICNN_COMPILE_PROCESS", "0")  # the parallel variants run even on a fresh cache
    results = []
    for threshold in (1 << 40, 0):  # every kernel on one thread, then every kernel on the thread pool
        monkeypatch.setattr(_jit, "SERIAL_BELOW", threshold)
        leaves = [mc.tensor(a, requires_grad=True) for a in arrays]
        outs = _all_ops(*leaves)
        sum((o * o).sum() for o in outs).backward()
        results.append([o.numpy() for o in outs] + [t.grad.numpy() for t in leaves])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


FRESH_CACHE_RUN = textwrap.dedent("""
    import time
    import numpy as np
    from minicnn.kernels_cpu import _jit, leaky_relu_forward
    kernel = _jit.KERNELS["minicnn.kernels_cpu.activation._leaky_relu"]
    x = np.random.default_rng(0).standard_normal(1 << 16).astype(np.float32)
    expected = np.where(x > 0, x, np.float32(0.5) * x)
    first = leaky_relu_forward(x, np.float32(0.5))
    print("ready after the first call:", kernel.ready)
    deadline = time.monotonic() + 120
    while not kernel.ready and time.monotonic() < deadline:
        time.sleep(0.05)
        leaky_relu_forward(x, np.float32(0.5))
    again = leaky_relu_forward(x, np.float32(0.5))
    stats = kernel.parallel.stats
    print("parallel compiled here:", sum(stats.cache_misses.values()), "loaded:", sum(stats.cache_hits.values()))
    print("equal:", np.array_equal(first, expected) and np.array_equal(again, expected))
""")


@pytest.mark.parametrize("process", ["1", "0"])
def test_parallel_variant_compiled_by_a_second_process_on_a_fresh_cache(tmp_path, process):
    """On an empty Numba cache a large call runs the serial variant while the compiler process compiles the
    parallel one; the kernel then loads it from the cache, never compiling it itself. MINICNN_COMPILE_PROCESS=0
    compiles it in the calling process instead, at once."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), MINICNN_COMPILE_PROCESS=process)
    out = subprocess.run([sys.executable, "-c", FRESH_CACHE_RUN], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "equal: True"
    if process == "1":
        assert lines[0] == "ready after the first call: False"
        assert lines[1] == "parallel compiled here: 0 loaded: 1"
    else:
        assert lines[0] == "ready after the first call: True"
        assert lines[1] == "parallel compiled here: 1 loaded: 0"


DRAIN_RUN = textwrap.dedent("""
    import numpy as np
    from minicnn.kernels_cpu import _compiler, _jit, leaky_relu_forward
    kernel = _jit.KERNELS["minicnn.kernels_cpu.activation._leaky_relu"]
    leaky_relu_forward(np.ones(1 << 16, np.float32), np.float32(0.5))  # asks the compiler process for it
    print("in the cache before drain:", _compiler._cached_before(kernel.parallel))
    _compiler.drain()
    print("in the cache after drain:", _compiler._cached_before(kernel.parallel), _compiler._process is None)
""")


def test_drain_waits_for_the_compiler_process(tmp_path):
    """drain() returns once the compiler process has written what it was asked for into the cache, and has ended
    (the cold-start benchmark then removes the cache)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), MINICNN_COMPILE_PROCESS="1")
    out = subprocess.run([sys.executable, "-c", DRAIN_RUN], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["in the cache before drain: False", "in the cache after drain: True True"]


def test_register_tile_intrinsics():
    """tile_fma adds an outer product (P broadcast scalars x T vectors) to a tile; tile_store and tile_add_into
    write its T*P vectors, vector t of row p at offsets[p] + t*stride, rows past `count` left out, and tile_load
    reads them back; gather and spaced build offset tuples that repeat the last one past the end."""
    from numba import njit
    from minicnn.kernels_cpu.simd import (gather, spaced, tile_add_into, tile_fma, tile_load, tile_of, tile_store,
                                         vloads, vzeros)

    @njit
    def run(x, w, out, four, at):  # offsets are run-time ints in the kernels
        acc = tile_of(vzeros(x, 4, 2), 3)
        for i in range(3):
            acc = tile_fma(acc, x, i, gather(at, 0, 1, 3), vloads(w, 0, 4, 2))
        tile_store(out, 0, spaced(0, 1, 2 * four, 0, 3), acc, four, 3)  # the third row repeats the second
        tile_add_into(out, 0, spaced(0, 2, 2 * four, 0, 3), acc, four, 1)
        back = tile_load(out, 0, spaced(0, 2, 2 * four, 0, 3), four, 4, 2)  # what the rows hold now
        tile_store(out, 0, spaced(0, 2, 2 * four, 0, 3), back, four, 3)   # written back unchanged
        return gather(at, 1, 2, 3), spaced(4, 5, 3, 1, 3)

    x, w, at = np.arange(10.0), np.arange(8.0), np.array([0, 5, 7])
    out = np.zeros(24)
    offsets = run(x, w, out, 4, at)
    sums = np.array([x[o:o + 3].sum() for o in (0, 5, 7)])
    ref = np.zeros((3, 8))
    ref[1] = np.concatenate([sums[2] * w[:4], sums[2] * w[4:]])  # row 1's place, written by rows 1 and then 2
    ref[0] = 2 * np.concatenate([sums[0] * w[:4], sums[0] * w[4:]])  # stored, then added once more
    np.testing.assert_array_equal(out, ref.ravel())
    assert offsets == ((10, 14, 14), (13, 16, 16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_kernel_matches_the_general_one(dtype):
    """The 2x2, stride-2 kernel gives the general kernel's maxima and argmax: ties (the first wins), -inf windows,
    NaN (wins; a later NaN wins over an earlier one) and odd sizes (the last row and column dropped); so does the
    reference."""
    from minicnn import geometry, reference
    from minicnn.kernels_cpu import pool
    x = np.random.default_rng(0).standard_normal((3, 2, 7, 9)).astype(dtype)
    x[0, 0, :2, :2] = -np.inf
    x[0, 1, :2, :2] = 1.5  # a four-way tie
    x[1, 0, 0, 1] = x[1, 0, 1, 0] = np.nan
    x[2, 1, 2:4, 4:6] = [[np.nan, 7.0], [3.0, np.nan]]
    fast = pool.max_pool2d_forward(x, geometry.Pool2d.of(x.shape, (2, 2), (2, 2), (0, 0), False))
    general = pool._max_pool(x, 2, 2, 2, 2, 0, 0, 3, 4)
    defined = reference.max_pool2d_forward(x, geometry.Pool2d.of(x.shape, (2, 2), (2, 2), (0, 0), False))
    for got in (general, defined):
        np.testing.assert_array_equal(fast[0], got[0])
        np.testing.assert_array_equal(fast[1], got[1])
    assert fast[1][1, 0, 0, 0] == 9 and fast[1][2, 1, 1, 2] == 3 * 9 + 5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("window", [(3, 2, 1, False), (3, 2, 1, True), (2, 2, 0, True), (3, 1, 1, False),
                                    (5, 3, 2, True), (1, 1, 0, False)])
def test_max_pool_kernels_match_the_reference(dtype, window):
    """The forward kernel's maxima and argmax, and the kernel without argmax (no gradient asked for), against the
    reference: with padding, ceil mode's last window, ties across rows and columns (after a ReLU: the first
    maximum in row-major order wins), NaN (wins; the last one in row-major order), -inf and odd sizes."""
    from minicnn import geometry, reference
    from minicnn.kernels_cpu import pool
    kernel, stride, padding, ceil = window
    x = np.maximum(np.random.default_rng(0).standard_normal((2, 3, 9, 11)), 0).round().astype(dtype)
    x[0, 0, :3, :3] = -np.inf
    x[0, 1, 4, 5] = x[0, 1, 5, 4] = x[0, 1, 3, 6] = np.nan
    x[1, 2, 8, 10] = np.nan
    geom = geometry.Pool2d.of(x.shape, (kernel, kernel), (stride, stride), (padding, padding), ceil)
    values, argmax = pool.max_pool2d_forward(x, geom)
    expected, expected_argmax = reference.max_pool2d_forward(x, geom)
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_array_equal(pool.max_pool2d_values(x, geom), expected)
    np.testing.assert_array_equal(reference.max_pool2d_values(x, geom), expected)


def test_max_pool_keeps_no_argmax_where_no_gradient_is_asked_for(monkeypatch):
    """Under no_grad (or for an input that needs no gradient) the forward runs the kernel without argmax; with a
    gradient it keeps the argmax for backward. Both give the same maxima."""
    import minicnn as mc
    from minicnn.functional import pool as fpool
    x = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
    kept = []
    apply = fpool.MaxPool2d.forward

    def spy(self, data):
        y = apply(self, data)
        kept.append(hasattr(self, "argmax"))
        return y
    monkeypatch.setattr(fpool.MaxPool2d, "forward", spy)
    with mc.no_grad():
        a = mc.functional.max_pool2d(mc.tensor(x, requires_grad=True), 3, 2, 1)
    b = mc.functional.max_pool2d(mc.tensor(x), 3, 2, 1)
    c = mc.functional.max_pool2d(mc.tensor(x, requires_grad=True), 3, 2, 1)
    assert kept == [False, False, True]
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(b.numpy(), c.numpy())

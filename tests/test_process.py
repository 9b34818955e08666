"""The process-wide settings made at import: OpenBLAS/OpenMP waiting and glibc's reuse of freed memory."""
import ctypes
import os
import subprocess
import sys

import pytest

from minicnn import _process


def test_thread_settings_are_made_unless_the_user_set_them(monkeypatch):
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] and os.environ["OMP_WAIT_POLICY"]
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(key, raising=False)
    assert _process.short_openmp_wait() is True
    assert (os.environ["OMP_WAIT_POLICY"], os.environ["GOMP_SPINCOUNT"]) == ("PASSIVE", _process.OPENMP_SPIN)
    for users in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}):
        for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
            monkeypatch.delenv(key, raising=False)
        for key, value in users.items():
            monkeypatch.setenv(key, value)
        assert _process.short_openmp_wait() is False
        assert [os.environ.get(k) for k in users] == list(users.values())
        assert len({"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ)) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_settings_respect_the_users_own(monkeypatch):
    for key in [k for k in os.environ if k.startswith("MALLOC_")]:
        monkeypatch.delenv(key)
    assert _process.keep_freed_memory() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert _process.keep_freed_memory() is False


def _fresh_import(preload_openmp):
    """Import minicnn in a fresh process (none of minicnn's settings inherited), optionally after libgomp."""
    code = f"""
import ctypes, warnings
if {preload_openmp}:
    ctypes.CDLL("libgomp.so.1")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import minicnn, numpy as np
import numba
minicnn.functional.relu(minicnn.tensor(np.ones(1 << 16, np.float32)))  # a threaded kernel
print(numba.threading_layer(), any("OpenMP" in str(w.message) for w in caught))
"""
    env = {k: v for k, v in os.environ.items() if k not in _process.THREAD_SETTINGS + ("OPENBLAS_THREAD_TIMEOUT",)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps")
def test_openmp_loaded_before_minicnn_moves_its_kernels_off_openmp():
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no libgomp on this machine")
    assert _fresh_import(True) == ["workqueue", "True"]
    assert _fresh_import(False) == ["omp", "False"]


def test_openmp_loaded_reads_the_maps(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f0000000000-7f0000001000 r-xp 00000000 08:01 42 /usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0\n")
    assert _process.openmp_loaded(str(maps))
    maps.write_text("7f0000000000-7f0000001000 r-xp 00000000 08:01 42 /usr/lib/libc.so.6\n")
    assert not _process.openmp_loaded(str(maps))
    assert not _process.openmp_loaded(str(tmp_path / "missing"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps")
@pytest.mark.parametrize("user_timeout", [None, "20"])
def test_openblas_loaded_before_minicnn_gets_the_short_timeout(user_timeout):
    """NumPy (and its OpenBLAS, threads running) imported first, as in a notebook: minicnn still makes OpenBLAS's
    threads sleep right after a product, unless the user chose a timeout."""
    code = """
import numpy as np
a = np.random.default_rng(0).random((400, 400)); b = a @ a   # OpenBLAS's threads started with the default timeout
import minicnn
from minicnn import _process
print([lib.openblas_thread_timeout() for lib in _process.loaded_openblas()], bool(np.allclose(a @ a, b)))
"""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if user_timeout:
        env["OPENBLAS_THREAD_TIMEOUT"] = user_timeout
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    timeouts, same = out.stdout.split("]")
    assert timeouts.strip("[ ").split(",")[0].strip() == (user_timeout or "4") and same.strip() == "True"

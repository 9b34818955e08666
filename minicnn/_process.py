"""Process-wide settings that a NumPy engine needs to run fast on a few cores. Imported first by minicnn/__init__.

Threads. OpenBLAS's worker threads busy-wait for a while after every matrix product, and Numba's OpenMP workers
busy-wait after every kernel: on a few cores each steals the cores the other needs next. minicnn sets
OPENBLAS_THREAD_TIMEOUT so that OpenBLAS's sleep at once, and OMP_WAIT_POLICY=PASSIVE with GOMP_SPINCOUNT=3000 so
that GNU OpenMP's wait a few tens of microseconds, often long enough for the next kernel of a step to find them
awake, then sleep (other OpenMP runtimes read PASSIVE alone: they sleep at once); a value set by the user wins.
OpenBLAS reads its setting when it loads; when NumPy (or SciPy, matplotlib...) loaded it before minicnn, minicnn
has it read its environment again and restart its threads (`short_openblas_timeout`), so the import order of
NumPy does not matter. OpenMP's setting is read once, when the runtime (libgomp) is loaded, and PyTorch loads the
same one: if PyTorch was imported first, without the setting, Numba's workers would spin against OpenBLAS's;
minicnn then runs its kernels on Numba's own thread pool instead ("workqueue") and warns.

Memory. A training step allocates and frees the same large arrays (im2col matrices, activations, gradients) again
and again. By default glibc hands every array over 128 KB straight back to the OS when it is freed, and the next
step pays a page fault for every 4 KB of it again. minicnn asks glibc to serve arrays up to 32 MB from its heap and
to keep up to 128 MB of freed heap for reuse. A user's own MALLOC_* environment settings win; other C libraries are
left alone. What each setting is worth, measured: benchmarks/PERFORMANCE.md.
"""
import ctypes
import os
import sys
import warnings

THREAD_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER")


def openmp_loaded(maps="/proc/self/maps"):
    """Whether this process has already loaded GNU OpenMP (Linux; False where that cannot be read)."""
    try:
        with open(maps) as f:
            return any("libgomp" in line for line in f)
    except OSError:
        return False


def avoid_spinning_openmp():
    """Run Numba's kernels on its workqueue pool when libgomp was loaded spinning. True when that was done."""
    if any(k in os.environ for k in THREAD_SETTINGS) or not openmp_loaded():
        return False
    if "numba" in sys.modules:
        sys.modules["numba"].config.THREADING_LAYER = "workqueue"
    else:
        os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    warnings.warn("minicnn: PyTorch (or another library using OpenMP) was imported before minicnn, so OpenMP's "
                  "threads spin-wait; minicnn runs its kernels on Numba's workqueue threads instead, which is "
                  "slower. For full speed import minicnn before PyTorch, or set OMP_WAIT_POLICY=PASSIVE.",
                  RuntimeWarning, stacklevel=3)
    return True


def loaded_openblas(maps="/proc/self/maps"):
    """The OpenBLAS libraries this process has already loaded (NumPy's, SciPy's...), as ctypes handles."""
    try:
        with open(maps) as f:
            paths = {line.split()[-1] for line in f if "openblas" in line and ".so" in line}
    except OSError:
        return []
    libraries = []
    for path in sorted(paths):
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            pass
    return libraries


def short_openblas_timeout():
    """Make OpenBLAS's worker threads sleep right after a product, also when NumPy loaded it before minicnn: set
    OPENBLAS_THREAD_TIMEOUT (unless the user did), then have every OpenBLAS already loaded read its environment
    again and stop its threads, which it starts again, with the new timeout, at its next threaded product."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    restarted = False
    for library in loaded_openblas():
        read_env, shutdown = (getattr(library, name, None) for name in ("openblas_read_env", "blas_thread_shutdown_"))
        if read_env is not None and shutdown is not None:
            read_env()
            shutdown()
            restarted = True
    return restarted


OPENMP_SPIN = "3000"  # GOMP_SPINCOUNT: how many times a GNU OpenMP worker checks for work before it sleeps


def short_openmp_wait():
    """OpenMP's workers wait briefly, then sleep (OMP_WAIT_POLICY, GOMP_SPINCOUNT), unless the user set either.
    True when minicnn made the settings."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN
    return True


avoid_spinning_openmp()
short_openblas_timeout()
short_openmp_wait()

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_threshold=32 << 20, trim_threshold=128 << 20):
    """Let glibc's malloc reuse freed memory instead of returning it to the OS. True when the settings were made."""
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt tunables of this kind
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                         trim_threshold))


keep_freed_memory()

"""The first run on a fresh install: the parallel kernels are compiled by a second process while this one runs.

Numba caches every compiled kernel on disk, but the first run on a machine compiles them all, and a kernel's
parallel variant takes two to five times as long to compile as its serial one (Numba outlines each prange loop
into a function of its own for the threads). So when a kernel is first called on a large input and its parallel
variant has never been compiled on this machine, `parallel_ready` returns False: the call runs the serial
variant (the same numbers: every kernel gives the same result on any number of threads), and the kernel and its
argument types go to a compiler process (`python -m minicnn.kernels_cpu._compiler`, started on the first such
request), which compiles the parallel variant into the same on-disk cache. When it reports back, the kernel's next
large call loads the parallel variant from the cache and runs on all cores.

A kernel whose parallel variant is in the cache (any earlier run on this machine) runs it at once, as does every
kernel when MINICNN_COMPILE_PROCESS=0, when Numba's cache cannot be written, or when the compiler process cannot be
started or fails (the kernel then compiles here, as Numba does by default). The compiler process exits when this
one does.
"""
import base64
import os
import pickle
import subprocess
import sys
import threading

ENV_SWITCH = "MINICNN_COMPILE_PROCESS"  # "0": compile every variant in this process, when first called

_lock = threading.Lock()
_process = None
_requested, _done = set(), set()


def enabled():
    return os.environ.get(ENV_SWITCH, "1") != "0"


def _cached_before(dispatcher):
    """Whether Numba's on-disk cache holds a compiled version of `dispatcher` (any signature): its index file. True
    where that cannot be told (no cache, or Numba's internals changed), so the kernel compiles here as usual."""
    try:
        return os.path.exists(dispatcher._cache._cache_file._index_path)
    except AttributeError:
        return True


def parallel_ready(kernel, args):
    """Whether `kernel` (a cpu_kernel) should run its parallel variant on `args` now; if not, asks the compiler
    process for it (once)."""
    name = kernel.key
    if name in _done or not enabled() or _cached_before(kernel.parallel):
        return True
    with _lock:
        if name not in _requested:
            _requested.add(name)
            signature = tuple(kernel.parallel.typeof_pyval(a) for a in args)
            if not _send(name, signature):
                _done.add(name)
    return name in _done


def _send(name, signature):
    """Queue a compilation in the compiler process (started on first use). False when it cannot be reached."""
    global _process
    try:
        if _process is None:
            _process = subprocess.Popen([sys.executable, "-m", "minicnn.kernels_cpu._compiler", str(os.getpid())],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=dict(os.environ, **{ENV_SWITCH: "0"}), text=True, bufsize=1)
            threading.Thread(target=_listen, args=(_process,), daemon=True, name="minicnn-compiler").start()
        payload = base64.b64encode(pickle.dumps(signature)).decode("ascii")
        _process.stdin.write(f"{name} {payload}\n")
        return True
    except (OSError, ValueError, pickle.PicklingError):
        return False


def drain():
    """Wait until the compiler process has compiled every kernel asked of it, and let it exit: for a program that
    removes its kernel cache when it is done (the cold-start benchmark), which the process would still be writing
    into."""
    global _process
    with _lock:
        process, _process = _process, None
    if process is not None:
        process.stdin.close()
        process.wait()


def _listen(process):
    """Mark each kernel the compiler process reports (compiled, or failed: then it compiles here when called)."""
    for line in process.stdout:
        _done.add(line.split(" ", 1)[-1].strip())
    _done.update(_requested)  # the process ended: nothing more will come from it


def _serve(parent):
    """The compiler process: one request per line, "name base64(pickled signature)", answered by "ok name" or
    "failed name" once the parallel variant is in the cache. Stops with its parent."""
    from ._jit import KERNELS
    for line in sys.stdin:
        if os.getppid() != parent:
            return
        name, payload = line.split()
        try:
            KERNELS[name].parallel.compile(pickle.loads(base64.b64decode(payload)))
            print("ok", name, flush=True)
        except Exception:  # any failure: the parent compiles this one itself
            print("failed", name, flush=True)


if __name__ == "__main__":
    import minicnn  # noqa: F401  (imports every kernel module, so KERNELS is complete)
    _serve(int(sys.argv[1]))

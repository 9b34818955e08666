"""Every CUDA source compiles (CI has nvcc but no GPU) with nvcc and with NVRTC, the compiler CuPy uses at run time
(it has no math.h macros such as INFINITY, which nvcc accepts), with the options kernels_gpu gives it; the compiled
entry points are the kernels kernels_gpu launches; and the device model degrades cleanly without a GPU."""
import ast
import ctypes
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
SOURCES = sorted(KERNELS.glob("*.cu"))


def _read_kernels_gpu():
    """_THREADS and the (file, kernel) pairs of every _launch call, read from kernels_gpu.py (it imports CuPy)."""
    tree = ast.parse((Path(mc.__file__).parent / "kernels_gpu.py").read_text())
    threads = [n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "_THREADS" for t in n.targets)]
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "_launch"]
    assert len(threads) == 1 and calls and all(isinstance(a, ast.Constant) for c in calls for a in c.args[:2])
    return threads[0], {(c.args[0].value, c.args[1].value) for c in calls}


THREADS, LAUNCHED = _read_kernels_gpu()
OPTIONS = ["-std=c++17", f"-I{KERNELS}", f"-DTHREADS={THREADS}"]  # kernels_gpu._module's, less the cache key


def test_every_source_is_launched_and_every_launch_has_a_source():
    assert {p.name for p in SOURCES} == {f for f, _ in LAUNCHED} >= {"im2col.cu", "conv_direct.cu", "pool.cu"}


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles(src, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    out = tmp_path / (src.stem + ".ptx")
    proc = subprocess.run([nvcc, *OPTIONS, "-arch=sm_90", "-ptx", str(src), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{src.name} failed to compile:\n{proc.stderr}"
    entries = set(re.findall(r"\.entry (\w+)\(", out.read_text()))
    # exactly the kernels kernels_gpu launches from this file, each with a float and a double entry point
    assert entries == {f"{name}_{t}" for f, name in LAUNCHED if f == src.name for t in ("f32", "f64")}


def _nvrtc():
    try:
        import nvidia
    except ImportError:
        return None
    libs = [p for root in nvidia.__path__ for p in glob.glob(os.path.join(root, "**", "libnvrtc.so*"), recursive=True)]
    return ctypes.CDLL(sorted(libs)[0]) if libs else None


def nvrtc_compile(lib, source, name, options=("-std=c++17",)):
    """(result code, log) of compiling CUDA C++ source with NVRTC for compute capability 9.0."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None) == 0
    opts = [o.encode() for o in options] + [b"--gpu-architecture=compute_90"]
    result = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return result, log.value.decode(errors="replace")


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles_with_nvrtc(src):
    lib = _nvrtc()
    if lib is None:
        pytest.skip("NVRTC (the nvidia-cuda-nvrtc wheel) is not installed")
    result, log = nvrtc_compile(lib, src.read_text(), src.name, OPTIONS)
    assert result == 0, f"{src.name} failed to compile with NVRTC:\n{log}"


def test_the_header_needs_threads_from_python():
    lib = _nvrtc()
    if lib is None:
        pytest.skip("NVRTC (the nvidia-cuda-nvrtc wheel) is not installed")
    result, log = nvrtc_compile(lib, '#include "common.cuh"', "no_threads.cu", ["-std=c++17", f"-I{KERNELS}"])
    assert result != 0 and "THREADS" in log


def test_nvrtc_check_catches_what_nvcc_lets_through():
    lib = _nvrtc()
    if lib is None:
        pytest.skip("NVRTC (the nvidia-cuda-nvrtc wheel) is not installed")
    source = "extern \"C\" __global__ void k(float* x) { x[0] = -INFINITY; }"
    result, log = nvrtc_compile(lib, source, "infinity.cu")
    assert result != 0 and "INFINITY" in log


def test_is_available_is_a_bool_and_never_raises():
    assert mc.cuda.is_available() in (True, False)


def test_cuda_device_without_gpu_is_a_clear_error():
    if mc.cuda.is_available():
        pytest.skip("a GPU is available")
    with pytest.raises(RuntimeError, match="device 'cuda': CuPy or a CUDA GPU is not available"):
        mc.tensor(np.zeros(3), device="cuda")


def test_device_strings():
    assert mc.Device("cuda") == mc.Device("cuda:0") and str(mc.Device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        mc.Device("gpu")
    assert mc.tensor([1.0]).device == "cpu"

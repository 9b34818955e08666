"""Every CUDA source compiles (CI has nvcc but no GPU), and the device model degrades cleanly without a GPU."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc

SOURCES = sorted((Path(__file__).resolve().parent.parent / "kernels").glob("*.cu"))


def test_there_are_kernels():
    assert {p.name for p in SOURCES} >= {"im2col.cu", "pool.cu"}


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles(src, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    out = tmp_path / (src.stem + ".ptx")
    proc = subprocess.run([nvcc, "-std=c++17", "-arch=sm_90", "-ptx", str(src), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"{src.name} failed to compile:\n{proc.stderr}"
    ptx = out.read_text()
    for dtype in ("f32", "f64"):  # every kernel has a float and a double entry point
        assert f"_{dtype}(" in ptx


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

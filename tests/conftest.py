import os

import minicnn as mc  # before PyTorch (below): Numba's OpenMP threads sleep between kernels (minicnn/_process.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", deadline=None, derandomize=True, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

try:
    import torch
    torch.set_num_threads(2)
except ImportError:
    torch = None


@pytest.fixture(scope="session")
def torch_mod():
    """PyTorch as a test oracle; tests that use it skip cleanly without it."""
    if torch is None:
        pytest.skip("PyTorch is not installed")
    return torch


def pytest_collection_modifyitems(config, items):
    if mc.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    mc.manual_seed(0)
    np.random.seed(0)


def rand(*shape, low=-1.0, high=1.0, seed=None, requires_grad=True):
    """A float64 tensor with values uniform in [low, high)."""
    rng = np.random.default_rng(seed)
    return mc.tensor(rng.uniform(low, high, size=shape), requires_grad=requires_grad)


_START = {}
_TOOL_CACHES = {".pytest_cache", ".hypothesis", ".benchmarks"}  # the caches of pytest and its plugins


def pytest_sessionstart(session):
    _START["entries"] = set(os.listdir(os.getcwd()))


def pytest_sessionfinish(session, exitstatus):
    """The suite writes into temporary directories only: a test that leaves a file where it was started from (a
    training run without --out writes ./runs) fails the session. The test tools' own caches are not the tests'."""
    if "entries" not in _START or hasattr(session.config, "workerinput"):
        return
    left = sorted(set(os.listdir(os.getcwd())) - _START["entries"] - _TOOL_CACHES)
    if left:
        print(f"\nerror: the tests left {left} in {os.getcwd()}")
        session.exitstatus = 1

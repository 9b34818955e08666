"""The fuzz test of issue 16: hypothesis drives the public API (functional ops, Tensor methods and operators, nn
layers, optimizers, schedulers, checkpoint.load, the command line) with bad shapes, dtypes, axes, sizes and values,
and checks every draw against PyTorch (tests/fuzz/verdicts.py says how). Each group runs in a subprocess of its own,
so that a segfault or an abort in a kernel fails this test (with the worker's output) instead of killing the suite,
and one group's crash does not hide another's failures. The groups run side by side.

CI=1 derandomizes the draws; FUZZ_EXAMPLES sets the examples per test (default 25)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("hypothesis")

ROOT = Path(__file__).resolve().parent.parent
FUZZ = Path(__file__).resolve().parent / "fuzz"
GROUPS = {"ops": ("ops.py", "test_"), "tensor": ("tensor.py", "test_"),  # group: its module, the -k selection
          "nn_sched": ("nn_optim.py", "test_nn_ or test_sched_"), "optim": ("nn_optim.py", "test_optim_"),
          "checkpoint": ("checkpoints.py", "test_"), "cli": ("cli.py", "test_")}
TIMEOUT = 600


@pytest.fixture(scope="module")
def workers(request, tmp_path_factory):
    """Start one worker per selected group, all at once; yield {group: (process, output file)}."""
    selected = {item.callspec.params["group"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_fuzz" and item.module is request.module}
    out_dir = tmp_path_factory.mktemp("fuzz")
    env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("FUZZ_COLLECT", None)
    procs = {}
    for group in (g for g in GROUPS if g in selected):
        log = open(out_dir / f"{group}.log", "w+")
        module, selection = GROUPS[group]
        cmd = [sys.executable, "-X", "faulthandler", "-m", "pytest", str(FUZZ / module), "-k", selection,
               "-p", "no:cacheprovider", "-p", "no:warnings", "-q", "--tb=short", "-o", "addopts=",
               "--rootdir", str(ROOT)]
        procs[group] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    yield procs
    for proc, log in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("group", list(GROUPS))
def test_fuzz(workers, group):
    proc, log = workers[group]
    try:
        rc = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    log.seek(0)
    output = log.read()
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        pytest.fail(f"the fuzz worker for {group!r} was killed by {name} (a crash in minicnn):\n{output[-20000:]}")
    assert rc is not None, f"the fuzz worker for {group!r} ran past {TIMEOUT} s:\n{output[-20000:]}"
    assert rc == 0, f"the fuzz worker for {group!r} failed (exit status {rc}):\n{output[-20000:]}"
    assert " passed" in output and " failed" not in output, output[-20000:]

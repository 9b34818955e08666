"""The benchmark harness: every case runs for minicnn (and PyTorch when installed), and the two worker processes
answer the coordinator. Smoke tests only; the figures themselves live in benchmarks/RESULTS.md."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cases  # noqa: E402
import timing  # noqa: E402

ARGS = {"lenet_step": dict(batch=2), "resnet_step": dict(size=32, batch=2), "mlp_step": dict(batch=4),
        "conv": dict(n=2, c=3, h=9, k=4, r=3, s=2, p=1), "max_pool": dict(kernel=3, stride=2, padding=1),
        "batch_norm": {}}


def test_every_case_has_arguments_here():
    assert set(ARGS) == set(cases.CASES)


@pytest.mark.parametrize("name", sorted(ARGS))
@pytest.mark.parametrize("framework", ["minicnn", "torch"])
def test_case_runs(name, framework):
    if framework == "torch":
        pytest.importorskip("torch")
    run = cases.build(name, framework, "cpu", **ARGS[name])
    run()
    run()  # a second step: optimizer state and cached gradients are reused


def test_workers_take_turns_and_report_medians():
    with timing.Workers("cpu") as workers:
        ours, theirs = workers.compare("lenet_step", repeats=2, per_turn=1, batch=2)
    assert ours > 0
    assert (theirs is None) == (not timing.have_torch()) and (theirs is None or theirs > 0)
    table = timing.table([("LeNet-5", ours, theirs)], "smoke")
    assert "| LeNet-5 |" in table


def test_a_failing_worker_is_an_error_not_a_hang():
    with timing.Workers("cpu") as workers, pytest.raises(RuntimeError, match="benchmark worker died"):
        workers.compare("no_such_case")

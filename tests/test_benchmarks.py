"""The benchmark harness: every case runs for minicnn (and PyTorch when installed), and the two worker processes
answer the coordinator (smoke tests only: the figures themselves live in benchmarks/RESULTS.md); and run.py --write
replaces its device's section of RESULTS.md in place, on a temporary copy, without running a benchmark."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cases  # noqa: E402
import run  # noqa: E402
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


# --- run.py --write: the device's section of RESULTS.md replaced in place (no benchmark runs here) ---------------

RESULTS = Path(run.__file__).resolve().parent / "RESULTS.md"


def _new_section(device, marker="new table"):
    return run.section(device, "2030-01-02", "Test CPU (AVX2), x86_64, 2 cores", f"python benchmarks/run.py "
                       f"--device {device} --write", f"| case | ... |\n| {marker} \\1 $& |", ["memory line"],
                       f"ratios-{device}.png")


def _split(text, device):
    start, end = run.markers(device)
    i, j = text.index(start), text.index(end) + len(end)
    return text[:i], text[i:j], text[j:]


def test_results_file_has_one_marked_section_per_device():
    text = RESULTS.read_text()
    for device in ("cpu", "cuda"):
        start, end = run.markers(device)
        assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end)
    assert text.count("ratios-cpu.png)") == 1  # the chart is referenced once, in its device's section


def test_write_replaces_the_device_section_in_place(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(RESULTS.read_text())
    before, _, after = _split(path.read_text(), "cpu")
    cuda_section = _split(path.read_text(), "cuda")[1]
    new = _new_section("cpu")
    run.write_section("cpu", new, path)
    text = path.read_text()
    assert _split(text, "cpu") == (before, new, after)  # everything outside the section untouched
    assert _split(text, "cuda")[1] == cuda_section
    assert "2030-01-02" in new and "Test CPU (AVX2)" in new and "`python benchmarks/run.py --device cpu --write`" in new
    run.write_section("cpu", new, path)  # a second run with the same table changes nothing
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md"]  # no temporary file left behind


def test_write_adds_a_missing_section_after_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    before, _, after = _split(RESULTS.read_text(), "cuda")
    original = before.rstrip("\n") + after
    path.write_text(original)
    new = _new_section("cuda")
    run.write_section("cuda", new, path)
    text = path.read_text()
    assert text.count(new) == 1
    assert text.index(run.markers("cpu")[1]) < text.index(new) < text.index("## What limits each row")
    assert text.replace("\n\n" + new, "") == original  # the rest of the file, the cpu section too, untouched


def test_write_appends_to_a_file_without_sections_and_creates_a_missing_one(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nintro\n")
    new = _new_section("cpu")
    run.write_section("cpu", new, path)
    assert path.read_text() == "# Results\n\nintro\n\n" + new + "\n"
    other = tmp_path / "NEW.md"
    run.write_section("cuda", _new_section("cuda"), other)
    assert other.read_text() == _new_section("cuda") + "\n"


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("old")

    def fail(f):
        f.write("half")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        run.write_atomically(path, fail)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md"]


@pytest.mark.parametrize("flags, simd", [("fpu sse2 avx2 avx512f avx512bw", "AVX-512"), ("fpu sse2 avx avx2", "AVX2"),
                                         ("fpu sse2", "SSE/NEON")])
def test_cpu_info_reads_the_model_and_simd_width(tmp_path, flags, simd):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: {flags}\n")
    assert run.cpu_info(info) == ("Some CPU 9000", simd)
    assert run.cpu_info(tmp_path / "absent")[1] == "SSE/NEON"


def test_no_speed_figure_in_the_code():
    """Speed figures and why a path is fast live in benchmarks/PERFORMANCE.md, not in docstrings and comments,
    where they drift from the truth."""
    import re
    root = Path(__file__).resolve().parents[1]
    figure = re.compile(r"RESULTS\.md|\d(\.\d+)?(-\d(\.\d+)?)?x (faster|slower)|\d+ ?(ms|us|µs)\b|GFLOP|GFMA|"
                        r"% (of|faster)")
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}"
             for path in sorted((root / "minicnn").rglob("*.py")) + sorted((root / "kernels").glob("*.cu*"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if figure.search(line)]
    assert not found, "\n".join(found)

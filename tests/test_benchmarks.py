"""The benchmark harness: every case runs for minicnn (and PyTorch when installed), and the two worker processes
answer the coordinator, import NumPy first (or their framework first when asked), run AVX2 code when asked, and
time a cold start (smoke tests only: the figures themselves live in benchmarks/RESULTS.md); the PyTorch twins match
minicnn's models; run.py --cases picks rows by name; and run.py --write replaces its section (device and ISA) of
RESULTS.md in place, on a temporary copy, without running a benchmark."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import cases  # noqa: E402
import run  # noqa: E402
import timing  # noqa: E402

ARGS = {"lenet_step": dict(batch=2), "resnet_step": dict(size=32, batch=2), "densenet_step": dict(size=32, batch=2),
        "inference": dict(arch="resnet18", size=32, batch=2), "mlp_step": dict(batch=4),
        "conv": dict(n=2, c=3, h=9, k=4, r=3, s=2, p=1), "max_pool": dict(kernel=3, stride=2, padding=1),
        "batch_norm": {}, "roi_op": dict(op="roi_align", n=2, c=3, h=8, rois=5, out=2, scale=0.5),
        "nms": dict(count=50, threshold=0.5)}
TORCHVISION_CASES = {"roi_op", "nms"}


def _torchvision_or_skip():
    """torchvision's compiled ops only load next to the PyTorch build they were made for; skip otherwise."""
    try:
        import torchvision.ops  # noqa: F401
    except Exception as e:  # ImportError, or RuntimeError from a torchvision built for another torch
        pytest.skip(f"torchvision is not usable here: {type(e).__name__}")


def test_every_case_has_arguments_here():
    assert set(ARGS) == set(cases.CASES)


@pytest.mark.parametrize("name", sorted(ARGS))
@pytest.mark.parametrize("framework", ["minicnn", "torch"])
def test_case_runs(name, framework):
    if framework == "torch":
        pytest.importorskip("torch")
        if name in TORCHVISION_CASES:
            _torchvision_or_skip()
    run = cases.build(name, framework, "cpu", **ARGS[name])
    run()
    run()  # a second step: optimizer state and cached gradients are reused


@pytest.mark.parametrize("framework", ["minicnn", "torch"])
def test_inference_runs_in_eval_mode_without_a_graph(framework, monkeypatch):
    """The inference rows: the model in eval mode, its output recorded by no autograd graph."""
    if framework == "torch":
        pytest.importorskip("torch")
    seen = []
    original = cases._model

    def spy(fw, arch):
        model = original(fw, arch)
        model.register_forward_hook(lambda m, inputs, out: seen.append((m.training, out.requires_grad)))
        return model
    monkeypatch.setattr(cases, "_model", spy)
    cases.build("inference", framework, "cpu", arch="lenet5", batch=1)()
    assert seen == [(False, False)]


def test_densenet121_twin_matches_minicnn():
    """benchmarks/torch_models.densenet121: torchvision's layout and parameter names, as minicnn's densenet121."""
    torch = pytest.importorskip("torch")
    import numpy as np

    import minicnn as mc
    import torch_models
    ours, theirs = mc.models.densenet121(), torch_models.densenet121(torch)
    assert sum(int(np.prod(p.shape)) for p in ours.parameters()) == 7_978_856
    assert sum(p.numel() for p in theirs.parameters()) == 7_978_856
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_workers_take_turns_and_report_medians():
    with timing.Workers("cpu") as workers:
        ours, theirs = workers.compare("lenet_step", repeats=2, per_turn=1, batch=2)
    assert ours > 0
    assert (theirs is None) == (not timing.have_torch()) and (theirs is None or theirs > 0)
    table = timing.table([("LeNet-5", ours, theirs)], "smoke")
    assert "| LeNet-5 |" in table


@pytest.mark.parametrize("framework_first", [False, True])
def test_workers_import_numpy_first_unless_told_otherwise(framework_first):
    with timing.Workers("cpu", framework_first=framework_first) as workers:
        for w in workers.workers:
            expected = w.framework if framework_first else "numpy"
            assert w.ask(probe=True)["first"] == expected
        assert "Numba targets" in workers.probe()  # checks the order too


def test_avx2_cpu_features_turn_every_avx512_feature_off():
    host = "+64bit,+avx,+avx2,+avx512f,-avx512vp2intersect,+avx512bw,+avx10.1,+evex512,+fma,+avxvnni,-amx-avx512"
    assert timing.avx2_cpu_features(host) == \
        "+64bit,+avx,+avx2,-avx512f,-avx512vp2intersect,-avx512bw,-avx10.1,-evex512,+fma,+avxvnni,-amx-avx512"
    real = timing.avx2_cpu_features().split(",")
    assert not [f for f in real if f.startswith("+") and "avx512" in f]


def test_isa_env():
    assert timing.isa_env("native", "minicnn") == timing.isa_env("native", "torch") == {}
    ours, theirs = timing.isa_env("avx2", "minicnn"), timing.isa_env("avx2", "torch")
    assert ours["NUMBA_CPU_NAME"] == "haswell" and "+avx512f" not in ours["NUMBA_CPU_FEATURES"]
    assert ours["OPENBLAS_CORETYPE"] == theirs["OPENBLAS_CORETYPE"] == "Haswell"
    assert Path(ours["NUMBA_CACHE_DIR"]) == timing.AVX2_NUMBA_CACHE  # kept apart from the native kernels' cache
    assert theirs["ATEN_CPU_CAPABILITY"] == "avx2" and theirs["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    with pytest.raises(ValueError, match="unknown ISA"):
        timing.isa_env("avx1024", "minicnn")


@pytest.mark.skipif(run.cpu_info()[1] not in ("AVX2", "AVX-512"), reason="an x86 CPU with AVX2")
def test_avx2_workers_run_no_avx512_code():
    with timing.Workers("cpu", isa="avx2") as workers:
        report = workers.probe()
    assert "Numba targets haswell, no 512-bit (zmm) code" in report
    assert not timing.have_torch() or "PyTorch CPU capability AVX2" in report


def test_cold_start_times_a_fresh_process_per_run():
    """A cheap case (the MLP compiles few kernels): the time includes the process's start-up and imports."""
    with timing.Workers("cpu") as workers:
        ours, theirs = workers.cold_start("mlp_step", repeats=1, batch=4)
        warm, _ = workers.compare("mlp_step", repeats=1, per_turn=1, batch=4)
    assert ours > 10 * warm and (theirs is None or theirs > 0)


def test_repeats_overrides_every_row():
    with timing.Workers("cpu", repeats=1) as workers:
        workers.compare("mlp_step", repeats=50, per_turn=1, batch=4)  # 1 turn, not 50: returns at once


def test_cases_filter_picks_rows_by_substring():
    import bench_models
    import bench_ops
    names = [c.name for c in bench_models.cases() + bench_ops.cases()]
    assert len(set(names)) == len(names)

    def pick(*patterns):
        return [c.name for c in timing.selected(bench_models.cases() + bench_ops.cases(), patterns)]
    assert pick("1x1") == ["conv2d fwd+bwd N=16 C=256 H=14 K=256 1x1 s=1 p=0"]
    assert pick("batch-1") == ["LeNet-5 batch-1 inference (eval, no_grad)"]
    assert len(pick("COLD")) == 1 and bench_models.cases()[-1].cold and "cold" in pick("cold")[0]
    assert len(pick("1x1", "batch-1", "cold")) == 3
    assert pick("DenseNet-121") == ["DenseNet-121 training step, 64x64, batch 8"]
    assert pick("ResNet-18 inference") == ["ResNet-18 inference (eval, no_grad), 64x64, batch 16"]
    assert pick() == names and pick("no such row") == []
    assert timing.selected([run.MEMORY_ROW], ["memory"]) == [run.MEMORY_ROW]
    assert not [c for c in bench_models.cases(gpu=True) if c.cold]


def test_run_options():
    args = run.parse_args(["--isa", "avx2", "--minicnn-first", "--cases", "1x1, cold,", "--repeats", "2"]) \
        if run.cpu_info()[1] in ("AVX2", "AVX-512") else run.parse_args(["--minicnn-first", "--cases", "1x1, cold,",
                                                                           "--repeats", "2"])
    assert args.minicnn_first and args.cases == ["1x1", "cold"] and args.repeats == 2
    defaults = run.parse_args([])
    assert (defaults.isa, defaults.minicnn_first, defaults.cases, defaults.repeats) == ("native", False, None, None)
    with pytest.raises(SystemExit):
        run.parse_args(["--write", "--cases", "1x1"])  # a partial table never replaces a section
    assert run.check_isa("avx2", "SSE/NEON") and not run.check_isa("avx2", "AVX-512")
    assert run.isa_line("native", "AVX-512") == "ISA: native (AVX-512)"
    assert run.isa_line("avx2", "AVX-512").startswith("ISA: AVX2 (targeted on an AVX-512 CPU")
    assert "NumPy before" in run.order_line(False) and "--minicnn-first" in run.order_line(True)


def test_a_failing_worker_is_an_error_not_a_hang():
    with timing.Workers("cpu") as workers, pytest.raises(RuntimeError, match="benchmark worker died"):
        workers.compare("no_such_case")


# --- run.py --write: the run's section (device and ISA) of RESULTS.md replaced in place (no benchmark runs here) ---

RESULTS = Path(run.__file__).resolve().parent / "RESULTS.md"


def _new_section(device, marker="new table", isa="native"):
    key = run.section_key(device, isa)
    return run.section(key, "2030-01-02", "Test CPU (AVX2), x86_64, 2 cores", f"python benchmarks/run.py "
                       f"--device {device} --isa {isa} --write", f"| case | ... |\n| {marker} \\1 $& |",
                       ["memory line"], f"ratios-{key}.png", [run.isa_line(isa, "AVX-512"), run.order_line(False)])


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
    assert "2030-01-02" in new and "Test CPU (AVX2)" in new and "`python benchmarks/run.py --device cpu --isa native" \
        " --write`" in new and "- ISA: native (AVX-512)\n" in new and "- Import order: each worker imports NumPy" in new
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


def test_an_isa_has_its_own_section(tmp_path):
    """--isa avx2 writes the `cpu-avx2` section: added after the others the first time, replaced in place after,
    and never touching the native `cpu` section (nor the other way round)."""
    assert run.section_key("cpu") == "cpu" and run.section_key("cpu", "avx2") == "cpu-avx2"
    path = tmp_path / "RESULTS.md"
    original = RESULTS.read_text()
    if "results:cpu-avx2:" in original:  # the file has one already: start from a copy without it
        before, _, after = _split(original, "cpu-avx2")
        original = before.rstrip("\n") + after
    path.write_text(original)
    cpu_section = _split(original, "cpu")[1]
    first = _new_section("cpu", "first", isa="avx2")
    run.write_section("cpu-avx2", first, path)
    text = path.read_text()
    assert text.replace("\n\n" + first, "") == original and _split(text, "cpu")[1] == cpu_section
    assert text.index(run.markers("cuda")[1]) < text.index(first) < text.index("## What limits each row")
    assert "## CPU, AVX2 code" in first and "- ISA: AVX2 (targeted on an AVX-512 CPU" in first
    second = _new_section("cpu", "second", isa="avx2")
    run.write_section("cpu-avx2", second, path)
    assert path.read_text() == text.replace(first, second)
    native = _new_section("cpu", "native")
    run.write_section("cpu", native, path)
    assert _split(path.read_text(), "cpu")[1] == native and _split(path.read_text(), "cpu-avx2")[1] == second


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


def test_plot_detection_reads_runs_and_refuses_a_classifiers(tmp_path):
    """plot_detection.py: the minutes at the end of each epoch add up the epochs' seconds; a run without a
    test_map50 column, or no run at all, is a one-line error; the figure is written."""
    pytest.importorskip("matplotlib")
    import plot_detection
    run_dir = tmp_path / "yolo_v1"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("epoch,train_loss,test_map50,lr,seconds\n1,3.6,0.7,0.002,120\n"
                                         "2,1.7,0.9,0.001,60\n")
    assert plot_detection.read_run(run_dir) == ([2.0, 3.0], [0.7, 0.9])
    (tmp_path / "lenet").mkdir()
    (tmp_path / "lenet" / "metrics.csv").write_text("epoch,train_loss,train_acc,test_acc,lr,seconds\n1,1,1,1,1,1\n")
    for bad, message in ((tmp_path / "lenet", "no test_map50 column"), (tmp_path / "none", "does not exist")):
        with pytest.raises(SystemExit, match=message):
            plot_detection.read_run(bad)
    plot_detection.main([str(run_dir), "--out", str(tmp_path / "curves.png")])
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"

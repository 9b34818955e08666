"""Data parallelism (minicnn.distributed): the sharding of batches, SyncBatchNorm, the gradient reduction and the
agreement on errors, in one process (ranks as threads, ThreadGroup); then under `mpiexec -n 2` (skipped without
mpi4py and mpiexec): 2 ranks with a global batch B reach the weights of 1 process with batch B after 20 steps
(tests/mpi_worker.py), a failing or disagreeing rank stops every rank, and the command line trains, stops on Ctrl-C,
resumes on another number of ranks and survives a killed rank."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn import checkpoint, data, distributed, models, nn, train
from minicnn.data.loader import shard

ROOT = Path(__file__).resolve().parent.parent


# --- ranks as threads -------------------------------------------------------------------------------------------

class ThreadGroup:
    """`size` ranks as threads of this process, each with a Communicator's collectives (`member(rank)`)."""

    def __init__(self, size):
        self.size, self.slots = size, [None] * size
        self.barrier = threading.Barrier(size, timeout=60)

    def member(self, rank):
        return _Member(self, rank)


class _Member:
    def __init__(self, group, rank):
        self.group, self.rank, self.size = group, rank, group.size

    def _exchange(self, value):
        group = self.group
        group.slots[self.rank] = value
        group.barrier.wait()
        values = list(group.slots)
        group.barrier.wait()
        return values

    def allreduce(self, array):
        array[...] = sum(self._exchange(array.copy()))
        return array

    def allgather(self, array):
        return np.stack(self._exchange(np.array(array)))

    def broadcast(self, array, root=0):
        array[...] = self._exchange(array.copy())[root]
        return array

    def allgather_objects(self, obj):
        return self._exchange(obj)

    def broadcast_object(self, obj, root=0):
        return self._exchange(obj)[root]


def on_ranks(size, fn):
    """fn(comm) on `size` thread ranks (NumPy reference kernels: Numba's are not for concurrent threads); the results
    (an exception where one was raised), in rank order."""
    group, results = ThreadGroup(size), [None] * size

    def body(rank):
        try:
            results[rank] = fn(group.member(rank))
        except BaseException as e:
            results[rank] = e
    with mc.use_kernels("reference"):
        threads = [threading.Thread(target=body, args=(r,)) for r in range(size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results


# --- sharding --------------------------------------------------------------------------------------------------

def test_shards_cover_a_batch_in_order_and_differ_by_at_most_one():
    for length in range(0, 12):
        for size in range(1, 5):
            sizes = [len(range(length)[shard(length, r, size)]) for r in range(size)]
            assert sum((list(range(length))[shard(length, r, size)] for r in range(size)), []) == list(range(length))
            assert sizes == [length // size + (r < length % size) for r in range(size)]


@pytest.mark.parametrize("size", [1, 2, 3])
def test_sharded_loader_gives_the_global_batches(size):
    ds = data.Dataset(np.random.default_rng(0).random((23, 1, 6, 6), np.float32), np.arange(23), 23, "t")
    aug = data.Compose([data.RandomCrop(6, 1), data.RandomHorizontalFlip()])
    one = data.DataLoader(ds, 5, shuffle=True, seed=3, transform=aug)
    ranks = [data.DataLoader(ds, 5, shuffle=True, seed=3, transform=aug, rank=r, world_size=size) for r in range(size)]
    for loader in [one] + ranks:
        loader.set_epoch(2)
    assert len({len(r) for r in ranks}) == 1
    parts = [list(r.batches(start=1)) for r in ranks]
    for b, (x, y) in enumerate(list(one.batches(start=1))[:len(parts[0])]):
        np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), x)  # same images, same augmentation
        np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), y)
        assert [len(p[b][1]) for p in parts] == [len(y) // size + (r < len(y) % size) for r in range(size)]
    # 23 = 4 x 5 + 3: the last batch of 3 is shared by up to 3 ranks, and dropped on every rank of 4 or more
    assert len(ranks[0]) == 5 and len(data.DataLoader(ds, 5, rank=0, world_size=4)) == 4


def test_sharded_loader_with_collate_fn_and_bad_ranks():
    items = [(np.full((1, 2, 2), i, np.float32), {"i": i}) for i in range(7)]

    def collate(batch):
        return np.stack([b[0] for b in batch]), [b[1]["i"] for b in batch]
    got = [list(data.DataLoader(items, 4, collate_fn=collate, rank=r, world_size=2)) for r in range(2)]
    assert [b[1] for b in got[0]] == [[0, 1], [4, 5]] and [b[1] for b in got[1]] == [[2, 3], [6]]
    for rank, size in ((2, 2), (-1, 2), (0, 0), (0, True)):
        with pytest.raises(ValueError, match="DataLoader: expected an int world_size"):
            data.DataLoader(items, 4, collate_fn=collate, rank=rank, world_size=size)


# --- SyncBatchNorm ---------------------------------------------------------------------------------------------

def bn_pass(layer, x, g):
    """(y, dx, dweight, dbias, running_mean, running_var) of one training pass of a batch norm layer."""
    xt = mc.tensor(x, requires_grad=True)
    y = layer(xt)
    y.backward(g)
    return (y.numpy(), xt.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy(),
            layer.running_mean.numpy().copy(), layer.running_var.numpy().copy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(6, 3), (5, 4, 6, 6)])
def test_sync_batchnorm_alone_is_batchnorm(dtype, shape):
    """Bit for bit, but for the running variance's rounding (v * M / (M - 1) against BatchNorm's sum / (M - 1))."""
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    plain = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(shape[1], momentum=None).to(dtype=dtype)
    sync = distributed.SyncBatchNorm(shape[1], momentum=None).to(dtype=dtype)
    for _ in range(2):  # the cumulative running average over two batches
        expected, got = bn_pass(plain, x, g), bn_pass(sync, x, g)
        for a, b in zip(expected[:5], got[:5]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(got[5], expected[5], rtol=4 * np.finfo(dtype).eps)
        plain.zero_grad()
        sync.zero_grad()
    plain.eval(), sync.eval()
    np.testing.assert_array_equal(plain(mc.tensor(x)).numpy(), sync(mc.tensor(x)).numpy())


def test_sync_batchnorm_gradcheck():
    x = mc.tensor(np.random.default_rng(2).standard_normal((4, 3, 2, 3)), requires_grad=True)
    w, b = (mc.tensor(np.random.default_rng(s).uniform(0.5, 1.5, 3), requires_grad=True) for s in (3, 4))

    def fn(x, w, b):
        return distributed.SyncBatchNormFunction.apply(x, w, b, comm=distributed.Alone(), running_mean=None,
                                                       running_var=None, has_weight=True, has_bias=True,
                                                       momentum=0.1, eps=1e-5)
    assert mc.gradcheck(fn, [x, w, b])


def test_sync_batchnorm_over_unequal_shards_is_batchnorm_of_the_whole_batch():
    """3 ranks hold 5, 2 and 4 images; each differentiates its mean loss sum(y * G_i) / n_r, and the parameter
    gradients are combined as GradientReducer does (n_r / N): everything equals one BatchNorm on the 11 images with
    the loss sum(y * G_i) / 11."""
    rng = np.random.default_rng(5)
    x, G = rng.standard_normal((11, 3, 4, 4)), rng.standard_normal((11, 3, 4, 4))
    cut = [slice(0, 5), slice(5, 7), slice(7, 11)]
    whole = nn.BatchNorm2d(3).double()
    whole.weight.data[:] = [0.5, 1.0, 2.0]
    expected = bn_pass(whole, x, G / 11)

    def rank(comm):
        layer = distributed.SyncBatchNorm(3, comm=comm).double()
        layer.weight.data[:] = [0.5, 1.0, 2.0]
        n = x[cut[comm.rank]].shape[0]
        y, dx, dw, db, rm, rv = bn_pass(layer, x[cut[comm.rank]], G[cut[comm.rank]] / n)
        return y, dx * n / 11, dw * n / 11, db * n / 11, rm, rv
    parts = on_ranks(3, rank)
    y, dx = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    np.testing.assert_allclose(y, expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, expected[1], rtol=1e-10, atol=1e-12)
    for i in (2, 3):
        np.testing.assert_allclose(sum(p[i] for p in parts), expected[i], rtol=1e-10, atol=1e-12)
    for p in parts:  # the running statistics are those of the whole batch, on every rank
        np.testing.assert_allclose(p[4], expected[4], rtol=1e-12)
        np.testing.assert_allclose(p[5], expected[5], rtol=1e-12)


def test_convert_sync_batchnorm_keeps_the_tensors_and_the_function():
    model = models.create("resnet20")
    bns = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    params, keys = list(model.parameters()), list(model.state_dict())
    model.eval()
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    before = model(x).numpy()
    assert distributed.convert_sync_batchnorm(model) is model
    converted = {name: m for name, m in model.named_modules() if isinstance(m, distributed.SyncBatchNorm)}
    assert converted.keys() == bns.keys() and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(a is b for a, b in zip(params, model.parameters())) and list(model.state_dict()) == keys
    assert all(not m.training for m in converted.values())
    np.testing.assert_array_equal(model(x).numpy(), before)


# --- reduction, broadcast, agreement -----------------------------------------------------------------------------

def test_gradient_reducer_weights_by_counts_in_buckets():
    shapes = [(3, 4), (5,), (2, 2, 2), (7,)]
    grads = [[np.random.default_rng(10 * r + i).standard_normal(s) for i, s in enumerate(shapes)] for r in range(3)]
    counts = [4, 1, 0]  # rank 2 had no sample: its gradients are ignored

    def rank(comm):
        params = [nn.Parameter(np.zeros(s)) for s in shapes] + [nn.Parameter(np.zeros(2))]
        for p, g in zip(params, grads[comm.rank]):
            p.grad = mc.tensor(g * 100 if counts[comm.rank] == 0 else g)
        if comm.rank == 1:
            params[1].grad = None  # no gradient on one rank: zero there
        reducer = distributed.GradientReducer(params, comm, bucket_bytes=100)
        reducer(counts[comm.rank])
        return reducer, [None if p.grad is None else p.grad.numpy() for p in params]
    results = on_ranks(3, rank)
    assert [len(b) for b in results[0][0].buckets] == [1, 1, 1, 2]  # 96, 40, 64, 56 + 16 bytes: runs within 100
    for reducer, got in results:
        for i in range(4):
            expected = (4 * grads[0][i] + (grads[1][i] if i != 1 else 0)) / 5
            np.testing.assert_allclose(got[i], expected, rtol=1e-14)
        assert got[4] is None  # no rank had one
    with pytest.raises(ValueError, match="GradientReducer: count must be an int >= 0"):
        results[0][0](-1)


def test_broadcast_parameters_and_checks():
    built = []
    for seed in (0, 1):  # built here: the initialisers' generator is not for concurrent threads
        mc.manual_seed(seed)
        built.append(models.create("lenet5"))
    expected = built[0].state_dict()

    def rank(comm):
        distributed.broadcast_parameters(built[comm.rank], comm)
        return distributed.checksum(built[comm.rank]), built[comm.rank].state_dict()
    (c0, sd0), (c1, sd1) = on_ranks(2, rank)
    assert c0 == c1
    for k in expected:
        np.testing.assert_array_equal(sd1[k], expected[k])
    others = [models.create("lenet5", num_classes=10), models.create("lenet5", num_classes=9)]
    for e in on_ranks(2, lambda comm: distributed.broadcast_parameters(others[comm.rank], comm)):
        assert isinstance(e, distributed.DistributedError)
        assert str(e) == ("the ranks disagree on the model: rank 0 has 'classifier.4.weight' (10, 84) float32 on cpu, "
                          "rank 1 has 'classifier.4.weight' (9, 84) float32 on cpu")


def test_agreed_stops_every_rank_and_one_reports():
    def rank(comm, failing):
        with distributed.agreed(comm, catch=(ValueError,)):
            if comm.rank in failing:
                raise ValueError("no data here")
    alone = on_ranks(3, lambda comm: rank(comm, {1}))
    assert all(isinstance(e, distributed.StoppedTogether) and e.ranks == [1] for e in alone)
    assert [str(e) for e in alone] == ["rank 1 failed: no data here", "rank 1: no data here",
                                       "rank 1 failed: no data here"]
    assert [e.report for e in alone] == [False, True, False] and isinstance(alone[1].error, ValueError)
    everywhere = on_ranks(3, lambda comm: rank(comm, {0, 1, 2}))
    assert [str(e) for e in everywhere] == ["no data here"] * 3
    assert [e.report for e in everywhere] == [True, False, False]
    assert on_ranks(2, lambda comm: rank(comm, set())) == [None, None]


# --- under mpiexec -----------------------------------------------------------------------------------------------

def mpiexec():
    """The mpiexec of the MPI mpi4py uses (the mpich wheel's, beside this Python), else one on the PATH."""
    pytest.importorskip("mpi4py")
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install minicnn[mpi])")
    return found


def launch(n, *args):
    """`mpiexec -n n` running args (a list), as a Popen with text output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([mpiexec(), "-n", str(n), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def run_mpi(n, *args, timeout=240):
    proc = launch(n, *args)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.fixture(scope="module")
def worker_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi")
    code, stdout, stderr = run_mpi(2, sys.executable, "tests/mpi_worker.py", "equivalence", str(out))
    assert code == 0, stdout + stderr
    return out


sys.path.insert(0, str(Path(__file__).parent))
from mpi_worker import CASES  # noqa: E402


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_reach_the_weights_of_one_process(worker_run, case):
    dist, ref = np.load(worker_run / f"dist-{case}.npz"), np.load(worker_run / f"ref-{case}.npz")
    tol = 1e-10 if CASES[case][1] == np.float64 else 1e-5
    floats = [k for k in dist.files if dist[k].dtype.kind == "f"]
    if CASES[case][-1] != "plain":
        for k in floats:
            assert rel(dist[k], ref[k]) < tol, (k, rel(dist[k], ref[k]))
        return
    # plain BatchNorm: each rank normalises its own shard, so 2 ranks compute what one process computes when its
    # batch norm sees each half of the batch apart ("ghost" batch norm), not what it computes on the whole batch
    ghost = np.load(worker_run / f"ghost-{case}.npz")
    params = [k for k in floats if "running" not in k]
    for k in params:
        assert rel(dist[k], ghost[k]) < tol, (k, rel(dist[k], ghost[k]))
    assert max(rel(dist[k], ref[k]) for k in params) > 1e-3


def test_a_rank_that_raises_stops_every_rank(tmp_path):
    t0 = time.perf_counter()
    code, out, err = run_mpi(2, sys.executable, "tests/mpi_worker.py", "raise", str(tmp_path), timeout=120)
    assert code != 0 and time.perf_counter() - t0 < 60
    assert "minicnn.distributed: rank 1 of 2 failed; stopping every rank" in err
    assert "RuntimeError: a deliberate failure on rank 1" in err


def test_ranks_that_disagree_are_told_at_the_start(tmp_path):
    code, out, err = run_mpi(2, sys.executable, "tests/mpi_worker.py", "mismatch", str(tmp_path), timeout=120)
    assert code == 0, out + err
    for r in (0, 1):
        assert f"rank {r}: DistributedError: the ranks disagree on the model: rank 0 has 'classifier.4.weight' " \
               "(10, 84) float32 on cpu, rank 1 has 'classifier.4.weight' (5, 84) float32 on cpu" in out
        assert f"rank {r}: DistributedError: the ranks disagree on the training data: rank 0 has ('Dataset', 50" in out


CLI = ["-m", "minicnn.train", "lenet", "--dataset", "synthetic", "--limit", "1024", "--batch-size", "16", "--lr",
       "0.01", "--no-progress"]


def test_cli_ctrl_c_on_two_ranks_then_resume_on_one_is_the_one_process_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    proc = launch(2, sys.executable, *CLI, "--epochs", "2", "--out", str(a))
    lines = []
    for line in proc.stdout:  # at the end of the first epoch, Ctrl-C (mpiexec passes it to every rank)
        lines.append(line)
        if line.startswith("epoch 1:"):
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode == 130, out + err
    assert out.count("epoch 1:") == 1 and out.count("interrupted: checkpoint saved to") == 1  # rank 0 alone
    info, _, _ = checkpoint.load(a / "last.npz")
    assert info["meta"]["epoch"] == 1 and 0 < info["meta"]["step"] < 64
    assert train.main(["lenet", "--resume", str(a / "last.npz"), "--no-progress"]) == 0
    assert train.main(["lenet", *CLI[3:], "--epochs", "2", "--out", str(b)]) == 0
    (_, wa, _), (_, wb, _) = checkpoint.load(a / "last.npz"), checkpoint.load(b / "last.npz")
    for k in wb:
        assert rel(wa[k], wb[k]) < 1e-5, k
    ra, rb = (list(csv.DictReader(open(d / "metrics.csv"))) for d in (a, b))
    assert [r["test_acc"] for r in ra] == [r["test_acc"] for r in rb]  # the sharded evaluation counts the same


def test_cli_sync_bn_on_two_ranks_is_the_one_process_run(tmp_path):
    """Up to float32's noise: ResNet-20 in float32 is ill-conditioned here (one process in float32 against float64
    differs by 3e-3 after these 4 steps), while plain BatchNorm on 2 ranks differs from one process by about 1."""
    flags = ["resnet20", "--dataset", "synthetic", "--limit", "80", "--batch-size", "24", "--lr", "0.002",
             "--epochs", "1", "--no-progress"]  # 80 = 3 x 24 + 8: an uneven last batch
    code, out, err = run_mpi(2, sys.executable, "-m", "minicnn.train", *flags, "--sync-bn", "--out",
                             str(tmp_path / "a"))
    assert code == 0, out + err
    assert train.main([*flags, "--out", str(tmp_path / "b")]) == 0
    (_, wa, _), (_, wb, _) = (checkpoint.load(tmp_path / d / "last.npz") for d in "ab")
    assert max(rel(wa[k], wb[k]) for k in wb if wb[k].dtype.kind == "f" and "running" not in k) < 0.05


def test_cli_divergence_stops_every_rank(tmp_path):
    code, out, err = run_mpi(2, sys.executable, *CLI[:-2], "1e12", "--no-progress", "--out", str(tmp_path / "x"))
    assert code == 1, out + err
    assert err.count("training diverged: the loss is nan at epoch 1") == 1 and not (tmp_path / "x").exists()


def rank_pids(parent):
    """{rank: pid} of the processes below `parent` (mpiexec) that MPI gave a rank (PMI_RANK in their environment)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    ranks, todo = {}, [parent]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            try:
                env = dict(v.split("=", 1) for v in (Path("/proc") / str(child) / "environ").read_text().split("\0")
                           if "=" in v)
            except OSError:
                continue
            if "PMI_RANK" in env and "python" in (Path("/proc") / str(child) / "cmdline").read_text():
                ranks[int(env["PMI_RANK"])] = child
    return ranks


def _ends_soon(pid, seconds=10):
    """Whether process `pid` is gone, a zombie or dead within `seconds` (a rank may still be tearing down for a
    moment after mpiexec returns)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                         if line.startswith("State:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            return True
        if state.split()[1] in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks' processes through /proc")
def test_killing_a_rank_stops_the_others_and_the_checkpoint_resumes(tmp_path):
    proc = launch(2, sys.executable, *CLI, "--epochs", "4", "--limit", "4096", "--out", str(tmp_path))
    try:
        for line in proc.stdout:
            if line.startswith("epoch 1:"):
                break
        t0 = time.perf_counter()  # rank 0 writes the checkpoint, metrics.csv, then curves.png (with matplotlib)
        while not (tmp_path / "curves.png").exists() and time.perf_counter() - t0 < 10:
            time.sleep(0.05)
        time.sleep(0.3)  # in the second epoch
        ranks = rank_pids(proc.pid)
        if len(ranks) != 2:
            pytest.skip(f"this mpiexec's ranks are not visible as its descendants with PMI_RANK: {ranks}")
        t0 = time.perf_counter()
        os.kill(ranks[0], signal.SIGKILL)  # the rank that writes the checkpoints
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and time.perf_counter() - t0 < 60
    for pid in ranks.values():
        assert _ends_soon(pid), f"rank process {pid} still runs after mpiexec returned"
    info, _, _, _ = checkpoint.load_run(tmp_path / "last.npz", train.SETTINGS, resume=True)
    assert 1 <= info["meta"]["epoch"] < 4  # killed in epoch 2 (or, on a fast machine, a little later)
    assert train.main(["lenet", "--resume", str(tmp_path / "last.npz"), "--no-progress"]) == 0
    assert len(list(csv.DictReader(open(tmp_path / "metrics.csv")))) == 4


@pytest.mark.gpu
def test_nccl_ranks_reach_the_weights_of_one_process(tmp_path):
    """One rank per GPU over NCCL (cupy.cuda.nccl): the equivalence cases on CUDA."""
    import cupy
    n = min(2, cupy.cuda.runtime.getDeviceCount())
    code, out, err = run_mpi(n, sys.executable, "tests/mpi_worker.py", "equivalence", str(tmp_path), "cuda")
    assert code == 0, out + err
    for case in CASES:
        dist, ref = np.load(tmp_path / f"dist-{case}.npz"), np.load(tmp_path / f"ref-{case}.npz")
        other = np.load(tmp_path / f"ghost-{case}.npz") if CASES[case][-1] == "plain" and n > 1 else ref
        tol = 1e-10 if CASES[case][1] == np.float64 else 1e-5
        for k in dist.files:
            if dist[k].dtype.kind == "f" and "running" not in k:
                assert rel(dist[k], other[k]) < tol, (case, k)

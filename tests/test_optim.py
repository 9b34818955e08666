"""Optimizers and schedulers against PyTorch over several steps (same update rules)."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import optim

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5)),
]


def _quadratic_steps(make_opt, params, torch_like, steps=6):
    """Minimise sum((p - target)^2 * scale) with gradients computed by hand, identical for both libraries."""
    rng = np.random.default_rng(1)
    targets = [rng.standard_normal(p.shape) for p in params]
    opt = make_opt()
    for _ in range(steps):
        for p, t in zip(params, targets):
            g = 2 * (np.asarray(p.detach().numpy() if torch_like else p.numpy()) - t) * 1.5
            if torch_like:
                import torch
                p.grad = torch.tensor(g)
            else:
                p.grad = mc.tensor(g)
        opt.step()
    return opt


@pytest.mark.parametrize("name,kw", CASES)
def test_optimizer_matches_torch(torch_mod, name, kw):
    torch = torch_mod
    rng = np.random.default_rng(0)
    init = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [mc.nn.Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    _quadratic_steps(lambda: getattr(optim, name)(ours, **kw), ours, False)
    with torch.no_grad():
        _quadratic_steps(lambda: getattr(torch.optim, name)(theirs, **kw), theirs, True)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kw", CASES)
def test_optimizer_state_dict_resumes_identically(name, kw):
    rng = np.random.default_rng(0)
    init = rng.standard_normal((3, 4))
    a = mc.nn.Parameter(init.copy())
    opt_a = _quadratic_steps(lambda: getattr(optim, name)([a], **kw), [a], False, steps=3)
    b = mc.nn.Parameter(a.numpy().copy())
    opt_b = getattr(optim, name)([b], **kw)
    opt_b.load_state_dict(opt_a.state_dict())
    for p, opt in ((a, opt_a), (b, opt_b)):
        p.grad = mc.tensor(np.ones((3, 4)))
        opt.step()
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_optimizer_errors():
    p = mc.nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="SGD: Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="requires grad"):
        optim.SGD([mc.tensor(np.zeros(2))], lr=0.1)


@pytest.mark.parametrize("name,kw", [("StepLR", dict(step_size=3, gamma=0.5)),
                                     ("MultiStepLR", dict(milestones=[2, 5], gamma=0.1)),
                                     ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001))])
def test_schedulers_match_torch(torch_mod, name, kw):
    torch = torch_mod
    ours = optim.SGD([mc.nn.Parameter(np.zeros(1))], lr=0.1)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s1 = getattr(optim.lr_scheduler, name)(ours, **kw)
    s2 = getattr(torch.optim.lr_scheduler, name)(theirs, **kw)
    for _ in range(12):
        theirs.step()
        s1.step()
        s2.step()
        np.testing.assert_allclose(s1.get_last_lr(), s2.get_last_lr(), rtol=1e-12)


def test_reduce_on_plateau_matches_torch(torch_mod):
    torch = torch_mod
    ours = optim.SGD([mc.nn.Parameter(np.zeros(1))], lr=1.0)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    s1 = optim.lr_scheduler.ReduceLROnPlateau(ours, patience=2, factor=0.5, cooldown=1)
    s2 = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, patience=2, factor=0.5, cooldown=1)
    for metric in [5, 4, 4, 4, 4, 4, 3.9999, 3, 3, 3, 3, 3, 3, 2]:
        s1.step(metric)
        s2.step(metric)
        assert s1.get_last_lr() == pytest.approx([g["lr"] for g in theirs.param_groups])


def test_scheduler_state_dict():
    opt = optim.SGD([mc.nn.Parameter(np.zeros(1))], lr=0.1)
    s = optim.lr_scheduler.StepLR(opt, 2)
    for _ in range(3):
        s.step()
    opt2 = optim.SGD([mc.nn.Parameter(np.zeros(1))], lr=0.1)
    s2 = optim.lr_scheduler.StepLR(opt2, 2)
    opt2.load_state_dict(opt.state_dict())  # the rate lives in the optimizer's state, as in PyTorch
    s2.load_state_dict(s.state_dict())
    s.step()
    s2.step()
    assert s.get_last_lr() == s2.get_last_lr() == [0.1 * 0.1 ** 2]


@pytest.mark.parametrize("make", [
    lambda m, o: [m.StepLR(o, 3, 0.5), m.CosineAnnealingLR(o, 5, 0.001)],
    lambda m, o: [m.MultiStepLR(o, [2, 5, 5], 0.1), m.StepLR(o, 2, 0.9)],
    lambda m, o: [m.CosineAnnealingLR(o, 3, 0.01), m.CosineAnnealingLR(o, 5)]], ids=["step+cosine", "multistep+step",
                                                                                 "cosine+cosine"])
def test_chained_schedulers_compose_as_in_torch(torch_mod, make):
    """Two schedulers on one optimizer multiply their effects (PyTorch's chainable form); neither overwrites the
    other's change with its closed form."""
    torch = torch_mod
    ours = optim.SGD([mc.nn.Parameter(np.zeros(1))], lr=0.1)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s1, s2 = make(optim.lr_scheduler, ours), make(torch.optim.lr_scheduler, theirs)
    for _ in range(14):
        theirs.step()
        for a, b in zip(s1, s2):
            a.step()
            b.step()
        assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-12)


@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(momentum=0.9, dampening=0.3, weight_decay=0.01),
                                dict(momentum=0.9, nesterov=True, weight_decay=0.01), dict()])
def test_sgd_float32_matches_torch_and_keeps_dtype(torch_mod, kw):
    """The fused SGD kernel works in the parameter's dtype, term by term as PyTorch does."""
    torch = torch_mod
    init = np.random.default_rng(0).standard_normal((64, 65)).astype(np.float32)
    ours, theirs = mc.nn.Parameter(init.copy()), torch.tensor(init.copy(), requires_grad=True)
    opt, topt = optim.SGD([ours], lr=0.1, **kw), torch.optim.SGD([theirs], lr=0.1, **kw)
    for step in range(4):
        g = np.random.default_rng(step).standard_normal(init.shape).astype(np.float32)
        ours.grad, theirs.grad = mc.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    assert ours.dtype == np.float32 and opt.state[id(ours)].get("momentum_buffer", init).dtype == np.float32
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_sgd_kernel_one_thread_and_threaded_agree(monkeypatch):
    from minicnn.kernels_cpu import _jit
    init = np.random.default_rng(0).standard_normal(50_000).astype(np.float32)
    monkeypatch.setenv("MINICNN_COMPILE_PROCESS", "0")  # the parallel variant runs even on a fresh cache
    results = []
    for threshold in (1 << 40, 0):
        monkeypatch.setattr(_jit, "SERIAL_BELOW", threshold)
        p = mc.nn.Parameter(init.copy())
        opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
        for _ in range(3):
            p.grad = mc.tensor(np.cos(p.numpy()))
            opt.step()
        results.append(p.numpy())
    np.testing.assert_array_equal(*results)

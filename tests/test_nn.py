import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)
        self.register_buffer("calls", mc.tensor(np.zeros(1)))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_registration_and_names():
    m = MLP()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in m.named_buffers()] == ["calls"]
    assert list(m.state_dict()) == ["calls", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    seq = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    ml = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 2)])
    assert len(list(ml.parameters())) == 4 and ml[1].out_features == 2


def test_shared_parameter_counted_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, lin)
    assert len(list(seq.parameters())) == 2


def test_default_init_is_pytorchs():
    mc.manual_seed(0)
    lin = nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() / (bound / np.sqrt(3)) - 1) < 0.05  # U(-b, b) has std b / sqrt(3)
    assert lin.weight.dtype == np.float32


def test_manual_seed_reproduces_initialisation():
    mc.manual_seed(5)
    a = nn.Linear(4, 4).weight.numpy().copy()
    mc.manual_seed(5)
    b = nn.Linear(4, 4).weight.numpy().copy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(), (0, 3), (3, 5), (1_500_000, 2)])
def test_initialisers_draw_the_whole_tensor_at_once_in_float64(shape):
    """uniform_ and normal_ fill a chunk at a time, with the numbers of a single float64 draw of the whole shape, cast
    to the tensor's dtype (the same weights in float32 as in float64, bar rounding)."""
    from minicnn import backend, init
    for fill, draw, args in ((init.uniform_, backend.uniform, (-0.5, 2.0)), (init.normal_, backend.normal, (1.0, 3.0))):
        t = mc.tensor(np.zeros(shape, np.float32))
        mc.manual_seed(7)
        fill(t, *args)
        mc.manual_seed(7)
        a, b = args
        want = (a + (b - a) * draw(shape, np.float64)) if fill is init.uniform_ else a + b * draw(shape, np.float64)
        np.testing.assert_array_equal(t.numpy(), want.astype(np.float32))


def test_state_dict_roundtrip_and_errors():
    m1, m2 = MLP(), MLP()
    sd = m1.state_dict()
    m2.load_state_dict(sd)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        np.testing.assert_array_equal(a, b)
    sd64 = {k: v.astype(np.float64) for k, v in sd.items()}
    m2.load_state_dict(sd64)
    assert m2.fc1.weight.dtype == np.float32  # keeps the model's dtype
    bad = dict(sd)
    del bad["fc1.bias"]
    bad["extra.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match=r"missing keys \['fc1.bias'\], unexpected keys \['extra.weight'\]"):
        m2.load_state_dict(bad)
    missing, unexpected = m2.load_state_dict(bad, strict=False)
    assert missing == ["fc1.bias"] and unexpected == ["extra.weight"]
    wrong = dict(sd, **{"fc2.weight": np.zeros((2, 8))})
    with pytest.raises(ValueError, match=r"'fc2.weight' has shape \(2, 8\) in the state dict, but \(3, 8\)"):
        m2.load_state_dict(wrong)


def test_double_and_train_eval():
    m = MLP().double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    x = mc.tensor(np.random.randn(2, 4))
    assert mc.gradcheck(lambda *ps: m(x), list(m.parameters()))
    m.eval()
    assert not m.training and not m.fc1.training
    m.train()
    assert m.act.training


def test_dropout_layer_modes():
    d = nn.Dropout(0.5)
    x = mc.tensor(np.ones(100))
    assert (d(x).numpy() == 0).any()
    d.eval()
    np.testing.assert_array_equal(d(x).numpy(), x.numpy())


def test_repr_shows_tree():
    text = repr(MLP())
    assert "(fc1): Linear(in_features=4, out_features=8, bias=True)" in text


def _train(opt_factory, steps=150):
    mc.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    model = MLP()
    opt = opt_factory(model.parameters())
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(mc.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("factory", [lambda p: mc.optim.SGD(p, lr=0.1, momentum=0.9),
                                     lambda p: mc.optim.Adam(p, lr=0.01)])
def test_tiny_mlp_learns(factory):
    losses = _train(factory)
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("name,expected_std", [
    ("kaiming_normal_", lambda fi, fo: np.sqrt(2.0 / fi)),
    ("kaiming_uniform_", lambda fi, fo: np.sqrt(2.0 / fi)),
    ("xavier_normal_", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),
    ("xavier_uniform_", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),
])
def test_initialisers_have_the_papers_variance(name, expected_std):
    w = mc.nn.Parameter(np.empty((256, 128, 3, 3), np.float32))  # fan_in 1152, fan_out 2304
    kw = {"nonlinearity": "relu"} if name.startswith("kaiming") else {}
    getattr(mc.init, name)(w, **kw)
    std = expected_std(128 * 9, 256 * 9)
    assert w.numpy().std() == pytest.approx(std, rel=0.02)
    if name.endswith("uniform_"):
        assert np.abs(w.numpy()).max() <= np.sqrt(3) * std * (1 + 1e-6)
    with pytest.raises(ValueError, match="fan in and fan out need a tensor with at least 2 dimensions"):
        getattr(mc.init, name)(mc.nn.Parameter(np.zeros(3)))

"""The benchmark cases, each written once for both frameworks: `build(name, framework, device, **args)` returns a
callable that runs the case once (one training step, one inference batch in eval mode under no_grad, or one
forward+backward pass). It runs inside a worker process (benchmarks/worker.py) that imports only its own framework
(and NumPy); both build the same data from the same seed.
"""
import numpy as np

# (N, C, H, K, R, stride, padding): the convolution issue's three shapes, and a 1x1 convolution as in ResNet-50's and
# DenseNet's bottlenecks
CONV_SHAPES = [(32, 64, 32, 64, 3, 1, 1), (128, 6, 14, 16, 5, 1, 0), (8, 3, 112, 64, 7, 2, 3),
               (16, 256, 14, 256, 1, 1, 0)]


class Framework:
    """The few calls the cases need, with minicnn's or PyTorch's names behind them."""

    def __init__(self, name, device):
        self.name, self.device = name, device
        if name == "minicnn":
            import minicnn as mc
            import minicnn.functional as F
            self.lib, self.F = mc, F
        else:
            import torch
            import torch.nn.functional as F
            if device == "cpu":
                import os
                torch.set_num_threads(len(os.sched_getaffinity(0)))
            self.lib, self.F = torch, F

    def tensor(self, a, requires_grad=False):
        if self.name == "minicnn":
            return self.lib.tensor(a, requires_grad=requires_grad, device=self.device)
        return self.lib.tensor(a, device=self.device).requires_grad_(requires_grad)

    def ones_like(self, y):
        if self.name == "minicnn":
            return self.lib.backend.xp_of(y.data).ones(y.shape, dtype=y.dtype)
        return self.lib.ones_like(y)

    def no_grad(self):
        return self.lib.no_grad()

    def sync(self):
        if self.device.startswith("cuda"):
            self.lib.cuda.synchronize()


def _training_step(fw, model, x, y):
    model = model.to(fw.device)
    opt = fw.lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = fw.tensor(x), fw.tensor(y)

    def step():
        loss = fw.F.cross_entropy(model(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _model(fw, arch):
    if fw.name == "minicnn":
        fw.lib.manual_seed(0)
        return getattr(fw.lib.models, arch)()
    import torch_models
    return getattr(torch_models, arch)(fw.lib)


def _images(arch, batch, size):
    """A batch of inputs and labels for the model: LeNet-5 takes 1x28x28 digits in [0, 1) and 10 classes, the
    ImageNet models 3 x size x size standard-normal images and 1000 classes."""
    rng = np.random.default_rng(0)
    if arch == "lenet5":
        return rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)
    return rng.standard_normal((batch, 3, size, size)).astype(np.float32), rng.integers(0, 1000, batch)


def lenet_step(fw, batch):
    return _training_step(fw, _model(fw, "lenet5"), *_images("lenet5", batch, 28))


def resnet_step(fw, size, batch):
    return _training_step(fw, _model(fw, "resnet18"), *_images("resnet18", batch, size))


def densenet_step(fw, size, batch):
    return _training_step(fw, _model(fw, "densenet121"), *_images("densenet121", batch, size))


def inference(fw, arch, batch, size=28):
    """One batch through the model in eval mode (batch norm on its running statistics) without recording a graph:
    minicnn's no_grad, torch.no_grad."""
    model = _model(fw, arch).to(fw.device)
    model.eval()
    x = fw.tensor(_images(arch, batch, size)[0])

    def run():
        with fw.no_grad():
            model(x)
    return run


def mlp_step(fw, batch):
    rng = np.random.default_rng(0)
    nn = fw.lib.nn
    if fw.name == "minicnn":
        fw.lib.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    return _training_step(fw, model, rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch))


def _fwd_bwd(fw, f):
    ones = []

    def run():
        y = f()
        if not ones:
            ones.append(fw.ones_like(y))
        y.backward(ones[0])
    return run


def conv(fw, n, c, h, k, r, s, p):
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((n, c, h, h)).astype(np.float32), True)
    w = fw.tensor((rng.standard_normal((k, c, r, r)) * 0.1).astype(np.float32), True)
    b = fw.tensor(np.zeros(k, np.float32), True)
    return _fwd_bwd(fw, lambda: fw.F.conv2d(x, w, b, stride=s, padding=p))


def _pool_bn_input(fw):
    return fw.tensor(np.random.default_rng(0).standard_normal((32, 64, 32, 32)).astype(np.float32), True)


def max_pool(fw, kernel, stride, padding):
    x = _pool_bn_input(fw)
    return _fwd_bwd(fw, lambda: fw.F.max_pool2d(x, kernel, stride, padding))


def batch_norm(fw):
    x = _pool_bn_input(fw)
    weight, bias = fw.tensor(np.ones(64, np.float32), True), fw.tensor(np.zeros(64, np.float32), True)
    mean, var = fw.tensor(np.zeros(64, np.float32)), fw.tensor(np.ones(64, np.float32))
    return _fwd_bwd(fw, lambda: fw.F.batch_norm(x, mean, var, weight, bias, training=True))


def _detection_ops(fw):
    if fw.name == "minicnn":
        import minicnn.ops as ops
    else:
        import torchvision.ops as ops
    return ops


def _boxes(rng, count, size, images=None):
    """`count` random boxes (x1, y1, x2, y2) in a size x size image, 8 to size/2 pixels wide and high, as float32;
    with a first column of image indices when `images` is given (RoI format)."""
    xy = rng.uniform(0, size * 0.75, (count, 2))
    wh = rng.uniform(8, size / 2, (count, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, size - 1)], axis=1)
    if images is not None:
        boxes = np.concatenate([rng.integers(0, images, (count, 1)), boxes], axis=1)
    return boxes.astype(np.float32)


def roi_op(fw, op, n, c, h, rois, out, scale):
    """roi_align (sampling_ratio 2, aligned) or roi_pool forward+backward: `rois` boxes over n feature maps
    (c, h, h) that are 1/scale of an image each."""
    rng = np.random.default_rng(0)
    x = fw.tensor(rng.standard_normal((n, c, h, h)).astype(np.float32), True)
    boxes = fw.tensor(_boxes(rng, rois, h / scale, images=n))
    ops = _detection_ops(fw)
    if op == "roi_align":
        return _fwd_bwd(fw, lambda: ops.roi_align(x, boxes, out, spatial_scale=scale, sampling_ratio=2,
                                                  aligned=True))
    return _fwd_bwd(fw, lambda: ops.roi_pool(x, boxes, out, spatial_scale=scale))


def nms(fw, count, threshold):
    """NMS of `count` random boxes in a 512 x 512 image with random scores."""
    rng = np.random.default_rng(0)
    boxes, scores = fw.tensor(_boxes(rng, count, 512)), fw.tensor(rng.random(count, dtype=np.float32))
    ops = _detection_ops(fw)
    return lambda: ops.nms(boxes, scores, threshold)


CASES = {f.__name__: f for f in (lenet_step, resnet_step, densenet_step, inference, mlp_step, conv, max_pool,
                                  batch_norm, roi_op, nms)}


def build(name, framework, device, **args):
    fw = Framework(framework, device)
    run = CASES[name](fw, **args)

    def timed():
        fw.sync()
        run()
        fw.sync()
    return timed

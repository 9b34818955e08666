"""YOLO v1 (minicnn.detection.yolo, minicnn.models.yolo): target encoding and the responsible predictor by hand,
the loss against a plain-loop version written here from the paper's equation 3, its gradient in float64, decoding
by hand, images without objects, bad targets, the zoo entry in both modes, and a short training whose loss falls.
torchvision has no YOLO, so there is no oracle to compare with beyond the hand-made cases."""
import numpy as np
import pytest

import minicnn as mc
from minicnn.detection import evaluate, yolo

B, C = 2, 3


def logit(p):
    return np.log(p / (1 - p))


def encode(boxes, labels, grid=(6, 6), size=(96, 96), num_classes=C, image=None):
    """YOLOTargets of one image (or of the images `image` gives) with these boxes and labels."""
    boxes, labels = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(labels, np.int64)
    image = np.zeros(len(boxes), np.int64) if image is None else np.asarray(image)
    n = int(image.max()) + 1 if len(image) else 1
    return yolo.encode_targets(image, boxes, labels, n, grid, num_classes, size)


# --- targets -------------------------------------------------------------------------------------------------------

def test_encode_targets_by_hand():
    # 96 px, 6 cells of 16 px: centre (25, 40) -> col 1 (25 / 16 = 1.5625), row 2 (40 / 16 = 2.5)
    t = encode([[10, 20, 40, 60]], [2])
    assert t.obj.sum() == 1 and t.obj[0, 2, 1] and t.dropped == 0
    np.testing.assert_allclose(t.box[0, 2, 1], [0.5625, 0.5, np.sqrt(30 / 96), np.sqrt(40 / 96)])
    np.testing.assert_allclose(t.corners[0, 2, 1], np.array([10, 20, 40, 60]) / 96)
    np.testing.assert_array_equal(t.onehot[0, 2, 1], [0, 0, 1])
    assert not t.box[0, 0, 0].any() and not t.onehot.sum(axis=-1)[~t.obj].any()


def test_encode_targets_rectangular_grid_and_batch():
    # a 64 x 128 image (H x W) on 2 x 4 cells of 32 px; the second box is in image 1, centre (100, 50) -> (1, 3)
    t = encode([[0, 0, 20, 10], [90, 40, 110, 60]], [0, 1], grid=(2, 4), size=(64, 128), image=[0, 1])
    assert t.obj.shape == (2, 2, 4) and t.obj.sum() == 2 and t.obj[0, 0, 0] and t.obj[1, 1, 3]
    np.testing.assert_allclose(t.box[1, 1, 3], [100 / 32 - 3, 50 / 32 - 1, np.sqrt(20 / 128), np.sqrt(20 / 64)])
    np.testing.assert_allclose(t.box[0, 0, 0], [10 / 32, 5 / 32, np.sqrt(20 / 128), np.sqrt(10 / 64)])


def test_two_centres_in_one_cell_keep_the_larger():
    # both centres in cell (row 2, col 1); the second box is larger and wins, wherever it is in the list
    small, large = [20, 36, 30, 46], [10, 30, 42, 50]
    for boxes, labels in (([small, large], [0, 1]), ([large, small], [1, 0])):
        t = encode(boxes, labels)
        assert t.obj.sum() == 1 and t.dropped == 1
        np.testing.assert_array_equal(t.onehot[0, 2, 1], [0, 1, 0])
        np.testing.assert_allclose(t.corners[0, 2, 1], np.array(large) / 96)


# --- the responsible predictor -------------------------------------------------------------------------------------

def raw_output(n=1, grid=(2, 2), rng=None):
    """A float64 head output [n, S_h, S_w, 5 B + C] of small random values."""
    rng = rng or np.random.default_rng(0)
    return rng.normal(0, 0.5, (n,) + grid + (5 * B + C,))


def test_responsible_predictor_is_the_best_iou():
    # 2 x 2 cells of 48 px on 96 px; object [8, 8, 40, 40] in cell (0, 0): centre (0.5, 0.5) of the cell, w = h = 1/3
    t = encode([[8, 8, 40, 40]], [1], grid=(2, 2))
    out = np.zeros((1, 2, 2, 5 * B + C))
    # linear outputs: predictor 0 is half the object's size, predictor 1 exactly the object
    out[0, 0, 0, 0:4] = [0.5, 0.5, np.sqrt(1 / 6), np.sqrt(1 / 6)]
    out[0, 0, 0, 5:9] = [0.5, 0.5, np.sqrt(1 / 3), np.sqrt(1 / 3)]
    resp, iou = yolo.assign_predictors(mc.tensor(out), t, B, C, "linear")
    np.testing.assert_allclose(iou[0, 0, 0], [0.25, 1.0])
    np.testing.assert_array_equal(resp[0, 0, 0], [False, True])
    assert resp.sum() == 1 and not iou[0, 1].any()
    # a tie (both predictors alike) goes to predictor 0; the sigmoid activation reads x, y through a sigmoid
    out[0, 0, 0, 5:9] = out[0, 0, 0, 0:4]
    out[0, 0, 0, [0, 1, 5, 6]] = 0.0  # sigmoid(0) = 0.5
    resp, iou = yolo.assign_predictors(mc.tensor(out), t, B, C, "sigmoid")
    np.testing.assert_allclose(iou[0, 0, 0], [0.25, 0.25])
    np.testing.assert_array_equal(resp[0, 0, 0], [True, False])


# --- the loss ------------------------------------------------------------------------------------------------------

def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def loop_loss(out, boxes, labels, size, activation, lambda_coord=5.0, lambda_noobj=0.5):
    """The paper's equation 3 with plain loops over images, cells and predictors: an independent implementation.
    boxes/labels: one list per image; a cell with several centres keeps the largest box."""
    n, rows, cols, _ = out.shape
    height, width = size
    total = dict.fromkeys(yolo.LOSS_NAMES, 0.0)
    for k in range(n):
        owner = {}
        for (x1, y1, x2, y2), c in zip(boxes[k], labels[k]):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            cell = (int(cy * rows), int(cx * cols))
            area = (x2 - x1) * (y2 - y1)
            if cell not in owner or area >= owner[cell][0]:
                owner[cell] = (area, (x1 / width, y1 / height, x2 / width, y2 / height), cx, cy, c)
        for i in range(rows):
            for j in range(cols):
                v = out[k, i, j]
                act = (lambda z: z) if activation == "linear" else sigmoid
                probs = np.exp(v[5 * B:]) / np.exp(v[5 * B:]).sum() if activation == "softmax" else v[5 * B:]
                preds = [(act(v[5 * b]), act(v[5 * b + 1]), v[5 * b + 2], v[5 * b + 3], act(v[5 * b + 4]))
                         for b in range(B)]
                if (i, j) not in owner:
                    total["loss_noobj"] += lambda_noobj * sum(p[4] ** 2 for p in preds)
                    continue
                _, (tx1, ty1, tx2, ty2), cx, cy, c = owner[(i, j)]
                ious = []
                for x, y, sw, sh, _ in preds:
                    px, py, pw, ph = (j + x) / cols, (i + y) / rows, sw * sw, sh * sh
                    iw = max(0.0, min(px + pw / 2, tx2) - max(px - pw / 2, tx1))
                    ih = max(0.0, min(py + ph / 2, ty2) - max(py - ph / 2, ty1))
                    ious.append(iw * ih / (pw * ph + (tx2 - tx1) * (ty2 - ty1) - iw * ih))
                r = int(np.argmax(ious))
                x, y, sw, sh, conf = preds[r]
                total["loss_coord"] += lambda_coord * ((x - (cx * cols - j)) ** 2 + (y - (cy * rows - i)) ** 2 +
                                                       (sw - np.sqrt(tx2 - tx1)) ** 2 + (sh - np.sqrt(ty2 - ty1)) ** 2)
                total["loss_confidence"] += (conf - ious[r]) ** 2
                total["loss_noobj"] += lambda_noobj * sum(p[4] ** 2 for b, p in enumerate(preds) if b != r)
                total["loss_class"] += sum((probs[q] - (q == c)) ** 2 for q in range(C))
    return {name: v / n for name, v in total.items()}


SCENE = ([[[8, 8, 40, 40], [60, 10, 90, 30], [50, 52, 94, 95]], [], [[2, 50, 30, 90], [10, 60, 26, 74]]],
         [[0, 2, 1], [], [1, 0]])  # image 1 has no object; image 2 has two centres in cell (1, 0)


def model_loss(out, boxes, labels, size, activation):
    t, n = mc.tensor(out), len(boxes)
    targets = [{"boxes": np.array(b, np.float32).reshape(-1, 4), "labels": np.array(c, np.int64)}
               for b, c in zip(boxes, labels)]
    image, bx, lb = yolo.check_targets("test", targets, n, C, size)
    enc = yolo.encode_targets(image, bx, lb, n, out.shape[1:3], C, size)
    resp, iou = yolo.assign_predictors(t, enc, B, C, activation)
    return enc, resp, iou, yolo.yolo_v1_loss(t, enc, resp, iou, B, C, activation)


@pytest.mark.parametrize("activation", yolo.ACTIVATIONS)
def test_loss_matches_the_paper_written_as_loops(activation):
    out = raw_output(3, (2, 2), np.random.default_rng(1))
    out[..., [2, 3, 7, 8]] = np.abs(out[..., [2, 3, 7, 8]]) + 0.3  # boxes that overlap their objects
    enc, _, _, losses = model_loss(out, *SCENE, (96, 96), activation)
    assert enc.dropped == 1
    expected = loop_loss(out, *SCENE, (96, 96), activation)
    assert expected["loss_confidence"] > 0 and expected["loss_class"] > 0
    for name in yolo.LOSS_NAMES:
        np.testing.assert_allclose(losses[name].item(), expected[name], rtol=1e-12, err_msg=name)


def test_loss_is_per_image():
    # the same image twice gives the same loss as once (sum over the grid, mean over the batch)
    out = raw_output(1, (2, 2))
    one = model_loss(out, SCENE[0][:1], SCENE[1][:1], (96, 96), "sigmoid")[3]
    two = model_loss(np.concatenate([out, out]), SCENE[0][:1] * 2, SCENE[1][:1] * 2, (96, 96), "sigmoid")[3]
    for name in yolo.LOSS_NAMES:
        np.testing.assert_allclose(two[name].item(), one[name].item(), rtol=1e-12)


@pytest.mark.parametrize("activation", yolo.ACTIVATIONS)
def test_loss_gradcheck(activation):
    # the assignment and the confidence targets are held fixed (they carry no gradient by definition)
    out = raw_output(3, (2, 2), np.random.default_rng(2))
    enc, resp, iou, _ = model_loss(out, *SCENE, (96, 96), activation)
    assert resp.any()

    def fn(o):
        losses = yolo.yolo_v1_loss(o, enc, resp, iou, B, C, activation)
        return mc.stack(list(losses.values()))
    assert mc.gradcheck(fn, [mc.tensor(out, requires_grad=True)])


def test_image_without_objects_trains_the_noobj_term_only():
    out = mc.tensor(raw_output(2, (2, 2)), requires_grad=True)
    losses = model_loss(out.data, [[], []], [[], []], (96, 96), "sigmoid")[3]
    assert losses["loss_coord"].item() == losses["loss_confidence"].item() == losses["loss_class"].item() == 0
    conf = sigmoid(out.data[..., [4, 9]])
    np.testing.assert_allclose(losses["loss_noobj"].item(), 0.5 * (conf ** 2).sum() / 2, rtol=1e-12)


@pytest.mark.parametrize("targets, message", [
    ([{"boxes": np.zeros((1, 3)), "labels": np.zeros(1, np.int64)}], "real boxes"),
    ([{"boxes": [[0, 0, 10, 10]], "labels": [0, 1]}], r"integers \[1\]"),
    ([{"boxes": [[0, 0, 10, 10]], "labels": [0.0]}], "integers .* float64"),
    ([{"boxes": [[0, 0, 10, 10]], "labels": [3]}], "labels in"),
    ([{"boxes": [[0, 0, 10, 10]], "labels": [-1]}], "labels in"),
    ([{"boxes": [[0, 0, 10, 10], [5, 5, 5, 20]], "labels": [0, 0]}], "box 1 is"),
    ([{"boxes": [[0, 0, 10, np.nan]], "labels": [0]}], "NaN"),
    ([{"boxes": [[-1, 0, 10, 10]], "labels": [0]}], "inside the image"),
    ([{"boxes": [[0, 0, 10, 97]], "labels": [0]}], "inside the image"),
    ([{"boxes": [[0, 0, 10, 10]]}], "dict with 'boxes' and 'labels'"),
    ([], "list of 1 dicts"),
    ({"boxes": [[0, 0, 10, 10]], "labels": [0]}, "list of 1 dicts"),
])
def test_bad_targets(targets, message):
    with pytest.raises(ValueError, match=f"^YOLOv1: .*{message}"):
        yolo.check_targets("YOLOv1", targets, 1, C, (96, 96))


# --- decoding ------------------------------------------------------------------------------------------------------

def test_decode_by_hand():
    # 3 x 3 cells of 32 px on 96 px; cell (row 1, col 2) predicts box 1 at the cell's centre, w = 1/4, h = 1/9
    out = np.full((1, 3, 3, 5 * B + C), -20.0)  # every confidence ~ 0
    out[..., 5 * B:] = 0.0
    out[0, 1, 2, 5:10] = [0.0, logit(0.25), 0.5, 1 / 3, logit(0.9)]
    out[0, 1, 2, 5 * B:] = [0.1, 0.8, 0.1]  # class scores, linear
    dets = yolo.decode(mc.tensor(out), (96, 96), B, C, "sigmoid", score_threshold=0.05)
    assert len(dets) == 1
    d = dets[0]
    # centre ((2 + 0.5) 32, (1 + 0.25) 32) = (80, 40), size (96 / 4, 96 / 9): one box, scored for each class
    box = [68, 40 - 16 / 3, 92, 40 + 16 / 3]
    np.testing.assert_allclose(d["boxes"].numpy(), [box] * 3, rtol=1e-12)
    np.testing.assert_allclose(d["scores"].numpy(), [0.72, 0.09, 0.09], rtol=1e-12)
    np.testing.assert_array_equal(d["labels"].numpy(), [1, 0, 2])
    assert d["labels"].dtype == np.int64
    # the threshold, top-k, and a box reaching outside the image clipped to it
    assert yolo.decode(mc.tensor(out), (96, 96), B, C, "sigmoid", 0.5)[0]["scores"].shape == (1,)
    assert yolo.decode(mc.tensor(out), (96, 96), B, C, "sigmoid", 0.05, 0.5, 2)[0]["scores"].shape == (2,)
    out[0, 1, 2, 7] = 2.0  # w = 4: from 80 - 192 to 80 + 192
    clipped = yolo.decode(mc.tensor(out), (96, 96), B, C, "sigmoid", 0.5)[0]["boxes"].numpy()
    np.testing.assert_allclose(clipped, [[0, box[1], 96, box[3]]], rtol=1e-12)


def test_decode_nms_per_image_and_class():
    # two images; in image 0 two cells predict nearly the same box of class 0 (one survives) and one of class 2
    out = np.full((2, 2, 2, 5 * B + C), -20.0)
    out[..., 5 * B:] = 0.0
    box = [0.0, 0.0, 0.6, 0.6]
    out[0, 0, 0, 0:5] = box + [logit(0.9)]
    out[0, 0, 0, 5:10] = [0.1, 0.0, 0.6, 0.6, logit(0.8)]
    out[0, 1, 1, 0:5] = box + [logit(0.7)]
    out[0, :, :, 5 * B:] = [1.0, 0.0, 0.0]
    out[0, 1, 1, 5 * B:] = [0.0, 0.0, 1.0]
    dets = yolo.decode(mc.tensor(out), (96, 96), B, C, "sigmoid", score_threshold=0.5)
    assert [len(d["scores"]) for d in dets] == [2, 0]
    np.testing.assert_array_equal(dets[0]["labels"].numpy(), [0, 2])
    np.testing.assert_allclose(dets[0]["scores"].numpy(), [0.9, 0.7], rtol=1e-3)
    assert dets[1]["boxes"].shape == (0, 4)


# --- the model -----------------------------------------------------------------------------------------------------

def digit_like_batch(n=2, size=96):
    targets = [{"boxes": np.array([[10, 12, 40, 50], [50, 50, 80, 90]], np.float32), "labels": np.array([3, 7])},
               {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}][:n]
    return np.random.default_rng(0).random((n, 1, size, size), dtype=np.float32), targets


@pytest.mark.parametrize("head", ["conv", "fc"])
def test_zoo_entry_train_and_eval(head):
    model = mc.models.create("yolo_v1", num_classes=10, head=head)
    assert mc.models.canonical_name("yolo") == "yolo_v1" and model.grid == 6 and model.trunk.stride == 16
    images, targets = digit_like_batch()
    losses = model(images, targets)
    assert sorted(losses) == sorted(yolo.LOSS_NAMES)
    assert all(np.isfinite(v.item()) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in model.parameters())
    model.eval()
    model.score_threshold = 0.0
    dets = model(mc.tensor(images))
    assert len(dets) == 2
    for d in dets:
        assert d["boxes"].dtype == np.float32 and d["labels"].dtype == np.int64 and 0 < len(d["scores"]) <= 100
        assert d["boxes"].shape == (len(d["scores"]), 4) and (np.diff(d["scores"].numpy()) <= 0).all()
        assert (d["boxes"].numpy() >= 0).all() and (d["boxes"].numpy() <= 96).all()
    assert model.predict(images, score_threshold=2.0)[0]["boxes"].shape == (0, 4)
    model.train()
    assert len(model.predict(images, detections_per_image=3)[0]["scores"]) == 3 and model.training


def test_model_bad_inputs():
    model = mc.models.create("yolo_v1", num_classes=10)
    images, targets = digit_like_batch()
    with pytest.raises(ValueError, match="^YOLOv1: expected images"):
        model(np.zeros((2, 1, 90, 96), np.float32), targets)
    with pytest.raises(ValueError, match="^YOLOv1: in training mode"):
        model(images)
    with pytest.raises(ValueError, match="^YOLOv1: .*labels in"):
        model(images, [{"boxes": [[0, 0, 5, 5]], "labels": [10]}, targets[1]])
    with pytest.raises(ValueError, match="^yolo_v1: image_size / grid"):
        mc.models.create("yolo_v1", grid=5)
    with pytest.raises(ValueError, match="^yolo_v1: 3 trunk stages"):
        mc.models.create("yolo_v1", grid=6, widths=(8, 16, 32))
    with pytest.raises(ValueError, match="^YOLOv1: head"):
        mc.models.create("yolo_v1", head="rnn")
    with pytest.raises(ValueError, match="^YOLOv1: the fc head takes"):
        mc.models.create("yolo_v1", head="fc").eval()(np.zeros((1, 1, 64, 64), np.float32))


def test_short_training_on_shapes_lowers_the_loss_and_detects():
    data = mc.data.ShapeDetection(size=64, length=64)
    model = mc.models.create("yolo_v1", num_classes=3, image_size=64, grid=8, widths=(8, 16, 32), hidden=32)
    opt = mc.optim.Adam(model.parameters(), lr=3e-3)
    images, targets = mc.data.detection_collate([data[i] for i in range(len(data))])
    history = []
    for step in range(120):
        batch = slice(16 * (step % 4), 16 * (step % 4 + 1))
        loss = sum(model(images[batch], targets[batch]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert np.mean(history[-8:]) < 0.3 * np.mean(history[:4]), history[::10]
    model.eval()  # the training images, learnt by heart: the decoder must find their boxes
    assert evaluate(model(images), targets)["mAP"] > 0.4


@pytest.mark.gpu
def test_gpu_matches_cpu():
    out = raw_output(3, (2, 2), np.random.default_rng(3))
    out[..., [2, 3, 7, 8]] = np.abs(out[..., [2, 3, 7, 8]]) + 0.3
    enc = model_loss(out, *SCENE, (96, 96), "sigmoid")[0]
    results = []
    for device in ("cpu", "cuda"):
        o = mc.tensor(out, requires_grad=True, device=device)
        losses = yolo.yolo_v1_loss(o, enc, *yolo.assign_predictors(o, enc, B, C, "sigmoid"), B, C, "sigmoid")
        sum(losses.values()).backward()
        dets = yolo.decode(o, (96, 96), B, C, "sigmoid", score_threshold=0.05)
        assert o.grad.device.type == device and dets[0]["boxes"].device.type == device
        results.append(([v.item() for v in losses.values()], o.grad.numpy(), dets))
    (cpu_losses, cpu_grad, cpu_dets), (gpu_losses, gpu_grad, gpu_dets) = results
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-10)
    np.testing.assert_allclose(gpu_grad, cpu_grad, rtol=1e-10, atol=1e-12)
    for c, g in zip(cpu_dets, gpu_dets):
        for key in ("boxes", "scores", "labels"):
            np.testing.assert_allclose(g[key].numpy(), c[key].numpy(), rtol=1e-10)

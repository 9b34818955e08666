"""mAP on random cases against independent plain-loop implementations of PASCAL VOC's devkit and of COCO's
cocoeval, and against pycocotools itself where it imports (skipped otherwise)."""
import math

import numpy as np
import pytest

from minicnn.detection import coco_map, evaluate


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _plain_voc(dets, gts, thr, use_07):
    """PASCAL VOC's devkit, one detection at a time."""
    classes = sorted({int(c) for d in dets for c in d[2]} | {int(c) for g in gts for c in g[1]})
    out = {}
    for c in classes:
        npos = sum(int(lab == c and not dif) for g in gts for lab, dif in zip(g[1], g[2]))
        found = [(s, i, b) for i, d in enumerate(dets) for b, s, lab in zip(d[0], d[1], d[2]) if lab == c]
        found.sort(key=lambda x: -x[0])
        taken, tp = set(), []
        for _, i, b in found:
            best, jmax = -math.inf, None
            for j, (g, lab) in enumerate(zip(gts[i][0], gts[i][1])):
                if lab == c and _iou(b, g) > best:
                    best, jmax = _iou(b, g), j
            if jmax is not None and best >= thr:
                if gts[i][2][jmax]:
                    continue
                tp.append((i, jmax) not in taken)
                taken.add((i, jmax))
            else:
                tp.append(False)
        if npos == 0:
            out[c] = math.nan
            continue
        rec = np.cumsum(tp) / npos
        prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
        if use_07:
            ap = sum(max([p for p, r in zip(prec, rec) if r >= t], default=0) for t in np.arange(0, 1.1, 0.1)) / 11
        else:
            ap, r_prev = 0.0, 0.0
            for k in range(len(rec)):
                ap += (rec[k] - r_prev) * max(prec[k:])
                r_prev = rec[k]
        out[c] = ap
    return out


def _plain_coco(dets, gts, thresholds, max_dets=100):
    """cocoeval's evaluateImg and accumulate for boxes over all areas, difficult as its ignore flag."""
    classes = sorted({int(c) for d in dets for c in d[2]} | {int(c) for g in gts for c in g[1]})
    out = {}
    for c in classes:
        npos = sum(int(lab == c and not dif) for g in gts for lab, dif in zip(g[1], g[2]))
        aps = []
        for t in thresholds:
            rows = []
            for i, (d, g) in enumerate(zip(dets, gts)):
                mine = sorted([(s, b) for b, s, lab in zip(d[0], d[1], d[2]) if lab == c], key=lambda x: -x[0])
                objs = [(b, dif) for b, lab, dif in zip(g[0], g[1], g[2]) if lab == c]
                objs = [o for o in objs if not o[1]] + [o for o in objs if o[1]]
                matched = [False] * len(objs)
                for s, b in mine[:max_dets]:
                    best, m = min(t, 1 - 1e-10), -1
                    for j, (gb, dif) in enumerate(objs):
                        if matched[j]:
                            continue
                        if m > -1 and not objs[m][1] and dif:
                            break
                        if _iou(b, gb) < best:
                            continue
                        best, m = _iou(b, gb), j
                    if m > -1:
                        matched[m] = True
                    rows.append((s, m > -1 and not objs[m][1], m > -1 and objs[m][1]))
            rows.sort(key=lambda x: -x[0])
            tp = np.array([r[1] for r in rows if not r[2]], bool)
            rec = np.cumsum(tp) / max(npos, 1)
            prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
            prec = [max(prec[k:]) for k in range(len(prec))]
            q = [prec[np.searchsorted(rec, r, side="left")] if np.searchsorted(rec, r, side="left") < len(rec)
                 else 0.0 for r in np.linspace(0, 1, 101)]
            aps.append(np.mean(q))
        out[c] = float(np.mean(aps)) if npos else math.nan
    return out


def _random_case(rng, images=6, classes=3):
    dets, gts = [], []
    for _ in range(images):
        g = int(rng.integers(0, 5))
        lo = rng.integers(0, 60, (g, 2))
        gb = np.concatenate([lo, lo + rng.integers(4, 30, (g, 2))], axis=1).astype(float)
        gl, gd = rng.integers(0, classes, g), rng.random(g) < 0.2
        picks = rng.integers(0, max(g, 1), int(rng.integers(0, 8)))
        size = np.tile(gb[:, 2:] - gb[:, :2], 2) if g else np.zeros((1, 4))
        db = np.array([gb[p] + rng.normal(0, 0.1, 4) * size[p] if g and rng.random() < 0.8 else
                       np.r_[rng.uniform(0, 60, 2), 0, 0] for p in picks]).reshape(-1, 4)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dl = np.array([gl[p] if g and rng.random() < 0.8 else rng.integers(0, classes) for p in picks], np.int64)
        dets.append((db, np.round(rng.random(len(db)), 1), dl))  # rounded scores: ties across images
        gts.append((gb, gl, gd))
    return dets, gts


@pytest.mark.parametrize("seed", range(6))
def test_map_matches_plain_implementations(seed):
    rng = np.random.default_rng(seed)
    dets, gts = _random_case(rng)
    for use_07 in (False, True):
        for thr in (0.3, 0.5, 0.7):
            res, plain = evaluate(dets, gts, thr, use_07), _plain_voc(dets, gts, thr, use_07)
            assert list(res)[:-1] == list(plain)
            np.testing.assert_allclose([res[c] for c in plain], list(plain.values()), rtol=1e-12, atol=1e-12)
            scored = [a for a in plain.values() if not math.isnan(a)]
            assert res["mAP"] == pytest.approx(np.mean(scored)) if scored else math.isnan(res["mAP"])
    res, plain = coco_map(dets, gts), _plain_coco(dets, gts, np.linspace(0.5, 0.95, 10))
    np.testing.assert_allclose([res[c] for c in plain], list(plain.values()), rtol=1e-12, atol=1e-12)
    res, plain = coco_map(dets, gts, max_detections=2), _plain_coco(dets, gts, np.linspace(0.5, 0.95, 10), 2)
    np.testing.assert_allclose([res[c] for c in plain], list(plain.values()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_coco_map_matches_pycocotools(seed):
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except Exception as e:
        pytest.skip(f"pycocotools is not usable here ({type(e).__name__}: {e})")
    import contextlib
    import io
    dets, gts = _random_case(np.random.default_rng(seed), images=8)
    gts = [(b, lab, np.zeros(len(b), bool)) for b, lab, _ in gts]  # cocoeval ignores only crowds
    xywh = lambda b: [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]  # noqa: E731
    objects = [(i, b, lab) for i, g in enumerate(gts) for b, lab in zip(g[0], g[1])]
    truth = COCO()
    truth.dataset = {"images": [{"id": i + 1} for i in range(len(gts))], "categories": [{"id": c} for c in range(3)],
                     "annotations": [{"id": n + 1, "image_id": i + 1, "category_id": int(lab), "bbox": xywh(b),
                                      "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0}
                                     for n, (i, b, lab) in enumerate(objects)]}
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        found = truth.loadRes([{"image_id": i + 1, "category_id": int(lab), "bbox": xywh(b), "score": float(s)}
                               for i, d in enumerate(dets) for b, s, lab in zip(*d)])
        ev = COCOeval(truth, found, "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    res = coco_map(dets, gts)
    assert 0.05 < res["mAP"] < 0.95 and res["mAP"] == pytest.approx(ev.stats[0], abs=1e-12)
    assert (res["mAP_50"], res["mAP_75"]) == pytest.approx((ev.stats[1], ev.stats[2]), abs=1e-12)
    precision = ev.eval["precision"][:, :, :, 0, 2]  # [T, R, K], all areas, 100 detections
    for k, c in enumerate(ev.params.catIds):
        if (precision[:, :, k] > -1).all():
            assert res[c] == pytest.approx(precision[:, :, k].mean(), abs=1e-12)

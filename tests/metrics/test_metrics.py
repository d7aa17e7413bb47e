"""Metrics: COCO mAP equals pycocotools; exact threshold-matching rules; exact F1-best threshold."""

import contextlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.metrics import DetectionEvaluator, best_metric
from engine.metrics.coco_io import CocoFileError, score_coco_files
from engine.metrics.matching import iou_matrix, match_image

PAIRS = [
    (
        "coco-val2014-100/instances_val2014_100.json",
        "coco-val2014-100/instances_val2014_fakebbox100_results.json",
    ),
    ("coco-3img/gt_dataset.json", "coco-3img/dt_dataset.json"),
    ("visdrone-train-50-coco/eval_gt_2img.json", "visdrone-train-50-coco/eval_pred_2img.json"),
]


def _pycocotools(gt_path, dets):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _perturb(dets, seed):
    rng = np.random.default_rng(seed)
    out = []
    for d in dets:
        if rng.random() < 0.1:
            continue  # drop some
        x, y, w, h = d["bbox"]
        j = rng.normal(0, 0.05, 4) * [w, h, w, h]
        out.append(
            {
                **d,
                "bbox": [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])],
                "score": float(np.clip(d["score"] + rng.normal(0, 0.1), 0.001, 1)),
            }
        )
    for d in dets[: len(dets) // 10]:  # add some duplicates with lower scores
        out.append({**d, "score": d["score"] * 0.5})
    return out


@pytest.mark.parametrize("pair", PAIRS, ids=["coco100", "coco3img", "visdrone2img"])
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_map_equals_pycocotools(data_dir, tmp_path, pair, seed):
    gt_path, dt_path = data_dir / pair[0], data_dir / pair[1]
    dets = json.loads(dt_path.read_text())
    for d in dets:
        d.pop("segmentation", None)  # score boxes only, as COCOeval('bbox') does
    if seed is not None:
        dets = _perturb(dets, seed)
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(dets))
    ref = _pycocotools(gt_path, [dict(d) for d in dets])
    ours = score_coco_files(gt_path, pred)
    assert ours.map50_95 == pytest.approx(ref[0], abs=1e-6)
    assert ours.map50 == pytest.approx(ref[1], abs=1e-6)
    assert ours.map75 == pytest.approx(ref[2], abs=1e-6)


def test_reference_numbers_from_readme(data_dir):
    r = score_coco_files(data_dir / PAIRS[0][0], data_dir / PAIRS[0][1])
    assert (round(r.map50_95, 6), round(r.map50, 6), round(r.map75, 6)) == (0.504581, 0.696973, 0.572982)


def _box(x, y, s=10):
    return [x, y, x + s, y + s]


def _eval(preds, gts, conf=0.5, iou=0.5, names=("a", "b")):
    ev = DetectionEvaluator(list(names), conf=conf, iou=iou)
    for (pb, ps, pl), (gb, gl) in zip(preds, gts, strict=True):
        ev.add(
            len(ev.images),
            np.array(pb, float).reshape(-1, 4),
            np.array(ps, float),
            np.array(pl, int),
            np.array(gb, float).reshape(-1, 4),
            np.array(gl, int),
            image_size=(100, 100),
        )
    return ev.compute()


def test_double_prediction_is_one_tp_one_fp():
    r = _eval([([_box(0, 0), _box(0, 0)], [0.9, 0.8], [0, 0])], [([_box(0, 0)], [0])])
    assert (r.tp, r.fp, r.fn) == (1, 1, 0)


def test_class_swap_is_fp_and_fn():
    r = _eval([([_box(0, 0)], [0.9], [1])], [([_box(0, 0)], [0])])
    assert (r.tp, r.fp, r.fn) == (0, 1, 1)
    assert r.confusion[0][1] == 1  # true a, predicted b


def test_below_conf_is_ignored():
    r = _eval([([_box(0, 0)], [0.4], [0])], [([_box(0, 0)], [0])], conf=0.5)
    assert (r.tp, r.fp, r.fn) == (0, 0, 1)


def test_iou_exactly_at_threshold_matches():
    # a 10x10 box shifted by 10/3: IoU = (20/3*10)/(2*100 - 20/3*10) = 0.5 exactly
    shifted = [10 / 3, 0, 10 / 3 + 10, 10]
    iou = iou_matrix(np.array([shifted]), np.array([_box(0, 0)]))[0, 0]
    assert iou == pytest.approx(0.5, abs=1e-12)
    assert (
        match_image(np.array([shifted]), [0.9], [0], np.array([_box(0, 0)]), [0], iou_thr=iou).outcome[0] == 0
    )
    tp_at = _eval([([shifted], [0.9], [0])], [([_box(0, 0)], [0])], iou=float(iou))
    assert (tp_at.tp, tp_at.fp, tp_at.fn) == (1, 0, 0)
    above = _eval([([shifted], [0.9], [0])], [([_box(0, 0)], [0])], iou=float(iou) + 1e-9)
    assert (above.tp, above.fp, above.fn) == (0, 1, 1)


def test_empty_images_either_side():
    r = _eval([([], [], []), ([_box(0, 0)], [0.9], [0])], [([_box(0, 0)], [0]), ([], [])])
    assert (r.tp, r.fp, r.fn) == (0, 1, 1)
    assert r.per_image == [{"image_id": 0, "fp": 0, "fn": 1}, {"image_id": 1, "fp": 1, "fn": 0}]


def test_same_class_preferred_over_higher_iou_other_class():
    gts = ([_box(0, 0), [1, 0, 11, 10]], [1, 0])  # first GT overlaps perfectly but is class b
    r = _eval([([_box(0, 0)], [0.9], [0])], [gts])
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)


def test_sweep_best_threshold_equals_brute_force():
    rng = np.random.default_rng(0)
    preds, gts = [], []
    for _ in range(30):
        n = rng.integers(0, 5)
        g = [_box(*rng.uniform(0, 80, 2)) for _ in range(n)]
        gl = rng.integers(0, 2, n).tolist()
        p = [np.array(b) + rng.normal(0, 2, 4) for b in g] + [_box(*rng.uniform(0, 80, 2)) for _ in range(3)]
        preds.append((p, rng.uniform(0, 1, len(p)).round(3).tolist(), rng.integers(0, 2, len(p)).tolist()))
        gts.append((g, gl))
    r = _eval(preds, gts)
    scores = sorted({s for p in preds for s in p[1]})
    best = max(scores, key=lambda t: (_eval(preds, gts, conf=t).f1, t))
    assert r.best_conf == pytest.approx(best)
    assert r.best_f1 == pytest.approx(_eval(preds, gts, conf=best).f1)


def test_ignore_regions_drop_both_sides():
    ev = DetectionEvaluator(["a"], conf=0.5)
    ignore = np.array([[0, 0, 50, 50]], float)
    ev.add(
        0,
        np.array([[0, 0, 10, 10], [60, 60, 70, 70]], float),
        np.array([0.9, 0.9]),
        np.array([0, 0]),
        np.array([[40, 40, 60, 60], [60, 60, 70, 70]], float),
        np.array([0, 0]),
        ignore_boxes=ignore,
    )
    r = ev.compute()
    # the first detection is inside the region (dropped); the first GT is 25% inside (kept, and missed)
    assert (r.tp, r.fp, r.fn) == (1, 0, 1)


def test_best_metric_formula_is_safe():
    r = _eval([([_box(0, 0)], [0.9], [0])], [([_box(0, 0)], [0])])
    assert best_metric(r, "(map50 + f1) / 2") == pytest.approx((r.map50 + r.f1) / 2)
    with pytest.raises(ValueError, match="unknown metric 'mAP'"):
        best_metric(r, "mAP + f1")
    with pytest.raises(ValueError, match="only"):
        best_metric(r, "__import__('os')")


def test_cli_scores_files_as_json(data_dir):
    r = CliRunner().invoke(
        cli, ["eval", "--gt", str(data_dir / PAIRS[0][0]), "--pred", str(data_dir / PAIRS[0][1]), "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("map50_95", "map50", "map75", "precision", "recall", "f1", "per_class"):
        assert key in out
    assert out["map50"] == pytest.approx(0.696973, abs=1e-6)
    assert len(out["per_class"]) == 80


def test_cli_bad_json_is_a_clean_error(tmp_path, data_dir):
    bad = tmp_path / "bad.json"
    bad.write_text("[{oops")
    r = CliRunner().invoke(cli, ["eval", "--gt", str(data_dir / PAIRS[0][0]), "--pred", str(bad)])
    assert r.exit_code == 1 and "not valid JSON" in r.output and "Traceback" not in r.output
    with pytest.raises(CocoFileError, match="category_id 999"):
        p = tmp_path / "p.json"
        p.write_text(json.dumps([{"image_id": 1, "category_id": 999, "bbox": [0, 0, 1, 1], "score": 1}]))
        score_coco_files(data_dir / PAIRS[1][0], p)


def _greedy_reference(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, iou_thr):
    """The matching rules written the obvious way, one prediction at a time (what match_image must equal)."""
    from engine.metrics.matching import FP_BACKGROUND, FP_MISMATCH, TP, iou_matrix

    order = np.argsort(-np.asarray(pred_scores, np.float64), kind="stable")
    ious = iou_matrix(np.asarray(pred_boxes)[order], gt_boxes)
    labels = np.asarray(pred_labels)[order]
    taken = np.zeros(len(gt_labels), bool)
    outcome, matched = [], []
    for i in range(len(order)):
        cand = np.where(~taken & (ious[i] >= iou_thr), ious[i], -1.0)
        same = np.where(np.asarray(gt_labels) == labels[i], cand, -1.0)
        if len(same) and same.max() >= 0:
            j, kind = int(np.argmax(same)), TP
        elif len(cand) and cand.max() >= 0:
            j, kind = int(np.argmax(cand)), FP_MISMATCH
        else:
            j, kind = -1, FP_BACKGROUND
        if j >= 0:
            taken[j] = True
        outcome.append(kind)
        matched.append(j)
    return outcome, matched


def test_matching_equals_the_obvious_implementation_with_ties():
    """Boxes on a coarse grid with few classes and duplicated scores: IoU ties and class conflicts everywhere."""
    from engine.metrics.matching import match_image

    rng = np.random.default_rng(0)
    for _ in range(300):
        n_gt, n_pred = int(rng.integers(0, 12)), int(rng.integers(0, 40))
        xy = rng.integers(0, 6, (n_gt, 2)) * 10.0
        gt = np.concatenate([xy, xy + rng.integers(1, 4, (n_gt, 2)) * 10.0], 1)
        pxy = rng.integers(0, 6, (n_pred, 2)) * 10.0
        pred = np.concatenate([pxy, pxy + rng.integers(1, 4, (n_pred, 2)) * 10.0], 1)
        scores = rng.integers(0, 5, n_pred) / 4  # ties in score too
        pl, gl = rng.integers(0, 3, n_pred), rng.integers(0, 3, n_gt)
        thr = float(rng.choice([0.3, 0.5, 1 / 3]))
        got = match_image(pred, scores, pl, gt, gl, thr)
        want_outcome, want_matched = _greedy_reference(pred, scores, pl, gt, gl, thr)
        assert got.outcome.tolist() == want_outcome
        assert got.matched_gt.tolist() == want_matched

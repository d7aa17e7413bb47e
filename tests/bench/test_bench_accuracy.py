"""`bench --accuracy` elsewhere, the scoring half: labels that travel as JSON with the job, and detections that
come back as JSON, scored by the evaluator local eval uses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.bench.accuracy import accuracy_payload, score_remote
from engine.config import load_config
from engine.data.synth import generate
from engine.infer.processing import Detections


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    data = generate(tmp_path_factory.mktemp("acc") / "ds", images=20, size=128, seed=5)
    cfg = load_config("demo", overrides=[f"data.root={data}"])
    meta, files = accuracy_payload(cfg)
    assert [r["path"] for r in meta["records"]] == [str(f) for f in files]
    return json.loads(json.dumps(meta))  # as it comes back in a results.json


def _as_sent(dets: list) -> list:
    return json.loads(json.dumps([d.to_json() if d is not None else None for d in dets]))


def _truth(rec: dict, score: float = 0.9) -> Detections:
    boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
    return Detections(boxes, np.full(len(boxes), score, np.float32), np.asarray(rec["labels"], np.int64))


def test_the_labels_returned_as_detections_score_perfectly(payload):
    res = score_remote(payload, _as_sent([_truth(r) for r in payload["records"]]))
    assert res.map50 == pytest.approx(1.0) and res.f1 == pytest.approx(1.0)
    assert res.tp == sum(len(r["labels"]) for r in payload["records"]) > 0 and res.fp == 0


def test_shifted_boxes_lose_what_they_miss(payload):
    dets = []
    for r in payload["records"]:
        d = _truth(r)
        d.boxes = d.boxes + np.float32(64.0)  # half the 128 px image off: no IoU 0.5 match left
        dets.append(d)
    res = score_remote(payload, _as_sent(dets))
    assert res.tp == 0 and res.f1 == 0.0 and res.fp > 0


def test_an_image_the_target_could_not_read_is_named_not_scored(payload):
    dets = [_truth(r) for r in payload["records"]]
    dets[0] = None
    res = score_remote(payload, _as_sent(dets))
    assert res.skipped == [payload["records"][0]["path"]]
    assert len(res.per_image) == len(payload["records"]) - 1 and res.fn == 0


def test_detections_for_the_wrong_number_of_images_are_refused(payload):
    with pytest.raises(ValueError, match="detections for 1 images"):
        score_remote(payload, _as_sent([_truth(payload["records"][0])]))


def test_float32_detections_survive_json_exactly():
    rng = np.random.default_rng(0)
    d = Detections(
        rng.random((7, 4), dtype=np.float32) * 640,
        rng.random(7, dtype=np.float32),
        np.arange(7, dtype=np.int64),
    )
    back = Detections.from_json(json.loads(json.dumps(d.to_json(limit=5))))
    assert np.array_equal(back.boxes, d.boxes[:5]) and np.array_equal(back.scores, d.scores[:5])
    assert back.boxes.dtype == np.float32 and np.array_equal(back.labels, d.labels[:5])

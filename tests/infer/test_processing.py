"""The deployed pre-processing feeds the model exactly what training and evaluation fed it."""

import cv2
import numpy as np
import pytest
import torch

from engine.config import AugsConfig
from engine.data.dataset import DetectionDataset, collate, to_model_input
from engine.data.records import ImageRecord
from engine.infer.processing import preprocess


@pytest.mark.parametrize("keep_ratio", [False, True])
def test_predictor_input_equals_evaluation_input(tmp_path, keep_ratio):
    img = np.random.default_rng(0).integers(0, 256, (190, 333, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    rec = ImageRecord(tmp_path / "a.png", 333, 190, np.array([[10, 10, 50, 60]], np.float32), [0])
    ds = DetectionDataset([rec], ["a"], (128, 160), keep_ratio, "val", AugsConfig())
    images, targets = collate([ds[0]])
    want = to_model_input(images, "cpu").numpy()
    blob, meta = preprocess(img, (128, 160), keep_ratio)
    assert blob.dtype == np.float32 and blob.shape == (1, 3, 128, 160)
    assert np.array_equal(blob, want)  # bit for bit: no drift between eval numbers and deployment
    assert (meta.input_h, meta.input_w) == (128, 160) and targets[0]["meta"] == meta
    assert torch.is_tensor(targets[0]["boxes"])

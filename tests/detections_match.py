"""The one check that two detectors agree, shared by the backend and export tests."""

import numpy as np


def assert_detections_match(a, b, px: float = 1.0, score: float = 1e-3, top: int = 20) -> None:
    """Each of `a`'s top detections has a partner in `b`: same label, box within `px`, score within `score`."""
    assert len(a) and len(b)
    for box, s, lab in list(zip(a.boxes, a.scores, a.labels, strict=True))[:top]:
        d = np.abs(b.boxes - box).max(1) + 1e9 * (b.labels != lab)
        j = int(np.argmin(d))
        assert d[j] <= px, (box, b.boxes[j])
        assert abs(b.scores[j] - s) <= score

import numpy as np
import pytest

from engine.geometry import boxes_to_input, boxes_to_original, plan_resize, resize_image


@pytest.mark.parametrize("keep_ratio", [False, True])
@pytest.mark.parametrize("hw", [(480, 640), (1500, 2000), (133, 178), (640, 300)])
def test_box_round_trip(hw, keep_ratio):
    meta = plan_resize(hw, (640, 640), keep_ratio=keep_ratio)
    boxes = np.array([[10, 20, 100, 120], [0, 0, hw[1], hw[0]]], dtype=np.float32)
    back = boxes_to_original(boxes_to_input(boxes, meta), meta)
    np.testing.assert_allclose(back, boxes, atol=1e-3)


def test_letterbox_centres_content_on_grey():
    img = np.full((100, 200, 3), 255, np.uint8)
    meta = plan_resize(img.shape[:2], (64, 64), keep_ratio=True)
    out = resize_image(img, meta)
    assert out.shape == (64, 64, 3)
    assert (meta.pad_top, meta.pad_left) == (16, 0)
    assert (out[:16] == 114).all() and (out[-16:] == 114).all() and (out[16:48] == 255).all()


def test_cut_padding_rounds_to_stride():
    meta = plan_resize((1080, 1920), (640, 640), keep_ratio=True, cut_padding=True)
    assert (meta.input_h, meta.input_w) == (384, 640)
    assert meta.pad_top == (384 - 360) // 2
    plain = plan_resize((1080, 1920), (640, 640), keep_ratio=True)
    # the same original box lands on the same content pixels, only shifted by the smaller padding
    box = np.array([[100, 100, 500, 400]], np.float32)
    d = boxes_to_input(box, plain) - boxes_to_input(box, meta)
    np.testing.assert_allclose(
        d[0], [0, plain.pad_top - meta.pad_top, 0, plain.pad_top - meta.pad_top], atol=1e-4
    )


def test_rejects_empty_image():
    with pytest.raises(ValueError, match="positive"):
        plan_resize((0, 10), (64, 64), keep_ratio=True)

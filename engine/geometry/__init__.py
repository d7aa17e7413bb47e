"""Image geometry shared by training, evaluation and every inference backend (resize / letterbox)."""

from engine.geometry.letterbox import ResizeMeta, boxes_to_input, boxes_to_original, plan_resize, resize_image

__all__ = ["ResizeMeta", "boxes_to_input", "boxes_to_original", "plan_resize", "resize_image"]

"""Readers and writers for the label formats detcli understands (YOLO txt, COCO json, VisDrone txt, VOC xml)."""

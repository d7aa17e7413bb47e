"""Datasets: formats, splits, checks, the synthetic demo set, and the training/eval Dataset with augmentations."""

"""Training: the loop, optimizer groups, schedulers, EMA, checkpoints, distributed helpers."""

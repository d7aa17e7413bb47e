"""Keeping a pretrained class head's rows for the user's classes that the file's class set also names.

A COCO checkpoint fine-tuned to `person, car, dog` has learnt those three classes already; re-initialising their
rows of the class head throws that away. The class-dependent tensors of D-FINE are the score heads (one row per
class) and the denoising class embedding (one row per class plus a padding row, kept last).
"""

from __future__ import annotations

import torch

from engine.weights.registry import class_set, class_set_for_rows

_SCORE_BIAS = "decoder.enc_score_head.bias"


def normalise(name: str) -> str:
    """Compare class names ignoring case, `_`/`-` for spaces and surrounding blanks."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def keep_class_rows(
    state: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
    reinitialised: list[str],
    class_names: list[str],
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """(tensors to load: the model's own values with the matched rows copied in, {class: file row})."""
    bias = state.get(_SCORE_BIAS)
    set_name = class_set_for_rows(int(bias.shape[0])) if bias is not None and bias.dim() == 1 else None
    if set_name is None:
        return {}, {}
    names, offset, file_rows = class_set(set_name)
    index = {normalise(n): i + offset for i, n in enumerate(names)}
    matched = {c: index[normalise(c)] for c in class_names if normalise(c) in index}
    if not matched:
        return {}, {}
    ours = [class_names.index(c) for c in matched]
    theirs = list(matched.values())
    out = {}
    for key in reinitialised:
        src, dst = state[key], own[key]
        if src.shape[1:] != dst.shape[1:] or src.shape[0] not in (file_rows, file_rows + 1):
            continue
        new = dst.clone()
        new[ours] = src[theirs].to(dst.dtype)
        if src.shape[0] == file_rows + 1 and dst.shape[0] == len(class_names) + 1:
            new[-1] = src[-1].to(dst.dtype)  # the denoising embedding's padding row
        out[key] = new
    return out, matched
